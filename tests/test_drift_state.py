"""What a drift stream keeps per observation: a compact, read-only view of its signals."""

from __future__ import annotations

import sys

import pytest

from monitor.drift.state import Signals


def test_signals_read_like_the_dict_they_were_built_from() -> None:
    raw = {"error": False, "refused": None, "output_chars": 536.0, "finish_reason": "stop", "check:json": True}
    s = Signals(raw)
    assert dict(s) == raw and list(s) == list(raw) and len(s) == len(raw)
    assert s["output_chars"] == 536.0 and s.get("refused") is None and s.get("missing", 7) == 7
    assert "check:json" in s and "missing" not in s
    with pytest.raises(KeyError):
        s["missing"]


def test_observations_with_the_same_signals_share_their_names_and_category_strings() -> None:
    a = Signals({"error": False, "finish_reason": "".join(["st", "op"]), "response_model": "gpt-x"})
    b = Signals({"error": True, "finish_reason": "".join(["s", "top"]), "response_model": "gpt-x"})
    assert a._index is b._index  # one name table for every observation with these signals
    assert a["finish_reason"] is b["finish_reason"] is sys.intern("stop")
    c = Signals({"error": True})
    assert c._index is not a._index and dict(c) == {"error": True}
