"""The one wording of an unknown name's error: the known ones, the nearest to it first, at most KNOWN_SHOWN and how
many more: `unknown signal 'latency' (known: latency_s, refused, ... and 11 more)`. The commands (probe, export,
diff, baseline, drift, replay) and the config's checks (check-config, run, a reload, sim's scenarios) all say it so."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

KNOWN_SHOWN = 20  # names an error lists


def known_names(names: Sequence[str], near: str | None = None) -> str:
    """Names for an error's list of the known ones: the first KNOWN_SHOWN, each cut at 60 characters, and how many
    more (a store or a dump may hold thousands, or a megabyte-long name). Given the name asked for (`near`), the
    known ones closest to it come first: a typo's name may be past the list's cut."""
    names = list(dict.fromkeys(names))
    if near is not None:
        close = difflib.get_close_matches(near, names, n=3)
        names = [*close, *(n for n in names if n not in close)]
    shown_names = [n if len(n) <= 60 else f"{n[:60]}..." for n in names[:KNOWN_SHOWN]]
    more = f" and {len(names) - KNOWN_SHOWN:,} more" if len(names) > KNOWN_SHOWN else ""
    return (", ".join(shown_names) or "none") + more


def known(names: Sequence[str], near: str | None = None) -> str:
    """`(known: ...)`, for after the unknown name: `known_names` in the words every such error uses."""
    return f"(known: {known_names(names, near)})"
