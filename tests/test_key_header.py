"""A key no HTTP header can carry is refused where it is read, naming its variable or file, never the key.

A key with a line break inside (two lines pasted into the variable, a file holding a key and a note) or a non-ASCII
character (a typographic quote) was sent anyway: every call failed (`server_error`, "connection closed before an
answer: LocalProtocolError: Illegal header value b'Bearer sk-...\\n...'"), and that message, the key in it escaped so
the redaction did not match it, was stored, printed by `probe` and served by the JSON API.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.models import Target
from monitor.config.secrets import resolve_api_key
from monitor.errors import SecretError, SecretMissing
from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.daemon import cli

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
FIRST, SECOND = "sk-first-0123456789", "SECONDHALFsecret42"
BROKEN = f"{FIRST}\n{SECOND}"


@pytest.mark.parametrize(("key", "what"), [(BROKEN, "a line break (character 20 of 38)"),
                                           (f"{FIRST}\r{SECOND}", "a line break (character 20 of 38)"),
                                           (f"{FIRST}\x00{SECOND}", "a control character (character 20 of 38)"),
                                           (f"{FIRST}\x85{SECOND}", "a control character (character 20 of 38)"),
                                           (f"{FIRST}\x7f{SECOND}", "a control character (character 20 of 38)"),
                                           ("sk-\u201csecret\u201d-0123", "a non-ASCII character (character 4 of 16)")])
def test_a_key_no_header_can_carry_is_refused_naming_its_variable(key: str, what: str) -> None:
    target = Target(id="t", provider="openai", base_url="http://x/v1", model="m", api_key_env="K")
    with pytest.raises(SecretError) as e:
        resolve_api_key(target, {"K": key})
    assert not isinstance(e.value, SecretMissing)  # it is there, but unusable: check-config's error, not a warning
    assert str(e.value) == (f"target t: environment variable K (named by api_key_env): the key holds {what}, which "
                            "an HTTP header cannot carry; the key is not shown")
    assert resolve_api_key(target, {"K": f" {FIRST}\t{SECOND}\n"}) == f"{FIRST}\t{SECOND}"  # a tab is a header's


def test_check_config_and_probe_refuse_it_and_never_show_it(tmp_path: Path, steady_sim: SimServer) -> None:
    (tmp_path / "key").write_text(f"{BROKEN}\n")
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt,"
                                 " api_key_env: K}\n"
                                 f"  - {{id: f, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt,"
                                 " api_key_file: key}", PROBES)
    checked = cli("check-config", "-c", str(cfg), env={"K": BROKEN})
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stdout + checked.stderr
    said = " ".join(checked.stderr.split())
    assert f"{cfg}:2: target t: environment variable K (named by api_key_env): the key holds a line break" in said
    assert f"{cfg}:3: target f: api_key_file {tmp_path}/key: the key holds a line break" in said
    probed = cli("probe", "-c", str(cfg), "--json", env={"K": BROKEN})
    assert probed.returncode == 2 and "Traceback" not in probed.stderr, probed.stdout + probed.stderr
    for out in (checked, probed):
        assert SECOND not in out.stdout + out.stderr
