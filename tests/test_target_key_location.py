"""A target's API key problems name the config file and line of the target, as an alert sink's secrets do.

`check-config` warned `target t: environment variable K (named by api_key_env) is not set or empty`, and `run` and a
reload refused with it, naming neither the file nor the line: with several config files, or several targets
naming the same variable, there was no telling which entry to fix. The key itself is never shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config, resolve_api_key
from monitor.config.models import Target
from monitor.errors import SecretError
from monitor.own_calls import OwnCalls
from tests.conftest import write_config
from tests.support.daemon import cli

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
URL = "base_url: 'http://127.0.0.1:9/v1', model: m"
KEY = "sk-proj-0123456789abcdefKEYVALUE"  # a key that is set: it must never be shown
TARGETS = (f"  - {{id: set, provider: openai, {URL}, api_key_env: SET_KEY}}\n"
           "  - id: t\n    provider: openai\n    base_url: 'http://127.0.0.1:9/v1'\n    model: m\n    api_key_env: K\n"
           f"  - {{id: f, provider: openai, {URL}, api_key_file: keys/missing}}\n"
           f"  - {{id: e, provider: openai, {URL}, api_key_file: keys/empty}}")
NOT_SET = "environment variable K (named by api_key_env) is not set or empty"


def at(cfg: Path, written: str) -> str:
    """`file:line` of the first line of `cfg` holding `written`: where an error about a target's key points."""
    return f"{cfg}:{next(n for n, line in enumerate(cfg.read_text().splitlines(), 1) if written in line)}"


def config(tmp_path: Path, targets: str = TARGETS, extra: str = "") -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "empty").write_text(" \n")
    return write_config(tmp_path, targets, PROBES, extra=extra)


def test_check_config_warns_with_the_file_and_line_of_the_target(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    ok = cli("check-config", "-c", str(cfg), env={"SET_KEY": KEY, "K": ""})
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stdout + ok.stderr
    out = " ".join(ok.stdout.split())  # rich folds long lines
    for warning in (f"{at(cfg, 'id: t')}: target t: {NOT_SET}",
                    f"{at(cfg, 'id: f')}: target f: cannot read api_key_file {tmp_path}/keys/missing: No such file or "
                    "directory",
                    f"{at(cfg, 'id: e')}: target e: api_key_file {tmp_path}/keys/empty is empty"):
        assert f"warning: {warning} (the daemon will refuse to start without it)" in out, warning
    assert out.count("(the daemon will refuse to start without it)") == 3
    assert KEY not in ok.stdout + ok.stderr


def test_a_key_given_as_the_files_name_is_located_and_not_shown(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"  - {{id: t, provider: openai, {URL}, api_key_file: '${{OPENAI_API_KEY}}'}}")
    ok = cli("check-config", "-c", str(cfg), env={"OPENAI_API_KEY": KEY})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"warning: {at(cfg, 'id: t')}: target t: cannot read api_key_file {tmp_path}/<a name that looks like a " \
        "secret, not shown>" in " ".join(ok.stdout.split())
    assert KEY not in ok.stdout + ok.stderr


def test_run_refuses_to_start_naming_the_file_and_line_of_the_target(tmp_path: Path) -> None:
    cfg = config(tmp_path, TARGETS.split("\n  - {id: f")[0])  # set, t
    unset = cli("run", "-c", str(cfg), env={"SET_KEY": KEY, "K": ""}, timeout=60)
    assert unset.returncode == 2 and "Traceback" not in unset.stderr, unset.stderr
    assert f"{at(cfg, 'id: t')}: target t: {NOT_SET}" in unset.stderr
    cfg = config(tmp_path, TARGETS.replace("api_key_file: keys/missing", "api_key_env: SET_KEY"))
    empty = cli("run", "-c", str(cfg), env={"SET_KEY": KEY, "K": KEY}, timeout=60)
    assert empty.returncode == 2 and "Traceback" not in empty.stderr, empty.stderr
    assert f"{at(cfg, 'id: e')}: target e: api_key_file {tmp_path}/keys/empty is empty" in empty.stderr
    assert KEY not in unset.stdout + unset.stderr + empty.stdout + empty.stderr


async def test_a_reload_refuses_naming_the_file_and_line_and_keeps_the_running_providers(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"  - {{id: f, provider: openai, {URL}, api_key_file: keys/f}}\n"
                           f"  - {{id: t, provider: openai, {URL}, api_key_env: K}}")
    (tmp_path / "keys" / "f").write_text(KEY + "\n")
    environ = {"K": KEY}
    app = App(load_config(cfg, environ=environ), registry=CollectorRegistry(), environ=environ, serve_http=False)
    await app.start(schedule=False)
    try:
        running = dict(app.runner.providers)
        environ["K"] = ""
        ok, message = await app.reload()
        assert not ok and message == f"{at(cfg, 'id: t')}: target t: {NOT_SET}"
        environ["K"] = KEY
        (tmp_path / "keys" / "f").write_text("")
        ok, message = await app.reload()
        assert not ok and message == f"{at(cfg, 'id: f')}: target f: api_key_file {tmp_path}/keys/f is empty"
        (tmp_path / "keys" / "f").unlink()
        ok, message = await app.reload()
        assert not ok and message == (f"{at(cfg, 'id: f')}: target f: cannot read api_key_file {tmp_path}/keys/f: "
                                      "No such file or directory")
        assert app.runner.providers == running  # the running config stays in force
    finally:
        await app.stop()


def test_the_embeddings_and_judge_targets_key_problems_are_located_too(tmp_path: Path) -> None:
    """Both are targets like any other: their keys are read by the same function, wherever the daemon reads them."""
    cfg = config(tmp_path, f"  - {{id: a, provider: openai, {URL}}}\n"
                           f"  - {{id: emb, provider: openai, {URL}, canaries: listed, api_key_env: EMB_KEY}}",
                 extra="drift: {embeddings: {target: emb, model: e}}\n")
    loaded = load_config(cfg, environ={})
    own = OwnCalls(lambda: None, lambda: loaded, {}, lambda: datetime.now(UTC))
    with pytest.raises(SecretError) as e:
        own.embedder(loaded)
    assert str(e.value) == f"{at(cfg, 'id: emb')}: target emb: environment variable EMB_KEY (named by api_key_env) " \
        "is not set or empty"


def test_a_target_made_in_code_names_no_location() -> None:
    with pytest.raises(SecretError) as e:
        resolve_api_key(Target(id="t", provider="openai", base_url="http://x", model="m", api_key_env="K"), {})
    assert str(e.value) == f"target t: {NOT_SET}"


def test_where_an_entry_was_written_is_not_part_of_it() -> None:
    # Found by review: the place was compared with the fields, so the same target on another line (an edit above
    # it) was another target to any check of what a reload changed
    t = Target(id="t", provider="openai", base_url="http://x/v1", model="m", api_key_env="K")
    assert t.located("a.yaml:2") == t.located("a.yaml:9") and t.located("a.yaml:9").where == "a.yaml:9"
    assert t.located("a.yaml:2") != t.model_copy(update={"model": "n"})


def test_run_names_every_secret_it_lacks_not_only_the_first(tmp_path: Path) -> None:
    """The README: a start "reports every problem it finds". With three secrets missing (two targets' keys and a
    sink's URL) `run` named only the first, so an operator fixed them one restart at a time; `check-config` listed
    all three. A reload says them all too."""
    sink = "alerts:\n  sinks:\n    - {name: chat, type: slack, url_env: SLACK_URL}\n"
    cfg = config(tmp_path, TARGETS.split("\n  - {id: e")[0], extra=sink)  # set, t (K), f (missing file)
    out = cli("run", "-c", str(cfg), env={"SET_KEY": KEY, "K": ""}, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    for problem in (f"{at(cfg, 'id: t')}: target t: {NOT_SET}",
                    f"{at(cfg, 'id: f')}: target f: cannot read api_key_file {tmp_path}/keys/missing",
                    f"{at(cfg, 'name: chat')}: alert sink chat: environment variable SLACK_URL"):
        assert problem in out.stderr, (problem, out.stderr)
    assert KEY not in out.stdout + out.stderr


async def test_a_reload_names_every_secret_it_lacks(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"  - {{id: t, provider: openai, {URL}, api_key_env: K}}\n"
                           f"  - {{id: u, provider: openai, {URL}, api_key_env: K2}}")
    environ = {"K": KEY, "K2": KEY}
    app = App(load_config(cfg, environ=environ), registry=CollectorRegistry(), environ=environ, serve_http=False)
    await app.start(schedule=False)
    try:
        environ["K"] = environ["K2"] = ""
        ok, message = await app.reload()
        assert not ok and f"{at(cfg, 'id: t')}: target t: {NOT_SET}" in message
        assert f"{at(cfg, 'id: u')}: target u: {NOT_SET.replace('K ', 'K2 ')}" in message
    finally:
        await app.stop()
