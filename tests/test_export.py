"""`llm-monitor export`: stored observations as replay dumps, compared with `replay` as users would."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.sim import SimServer, scenario_from_dict
from tests.support.drift_app import started_app
from tests.support.inprocess import Cli

SCENARIO = {"name": "export", "seed": 5, "defaults": {"ttft": 5, "output_tps": 5000,
                                                      "length": {"dist": "normal", "mean": 40, "sd": 5}},
            "models": {"m": {"phases": [{"name": "a"}, {"name": "b", "after_requests": 10**6, "verbosity": 4.0,
                                                       "system_fingerprint": "fp_new"}]}}}
PROBES = ("canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 5\n"
          "    params: {temperature: 0.7}\n    checks: [{type: length, unit: words, max: 80, name: short}]\n")


async def one_run_stored(tmp_path: Path) -> Path:
    """Run the canary once against the simulator, store it, stop; return the config path."""
    with SimServer(scenario_from_dict(SCENARIO)) as sim:
        app, cfg, canary, target = await started_app(tmp_path, sim, PROBES, "{baseline_size: 10}")
        try:
            await app.runner.run(canary, target)
        finally:
            await app.stop()
    return cfg


async def test_export_then_replay_finds_the_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    with SimServer(scenario_from_dict(SCENARIO)) as sim:
        app, cfg, canary, target = await started_app(tmp_path, sim, PROBES, "{baseline_size: 10}")
        try:
            for _ in range(4):
                await app.runner.run(canary, target)
            await asyncio.sleep(0.05)
            change = datetime.now(UTC).isoformat()
            httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": "b"}).raise_for_status()
            for _ in range(4):
                await app.runner.run(canary, target)
        finally:
            await app.stop()
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    code, _, err = cli("export", "-c", str(cfg), "--until", change, "-o", str(before))
    assert code == 0 and "exported 20 observations" in err, err
    assert cli("export", "-c", str(cfg), "--since", change, "--canary", "c1", "-o", str(after))[0] == 0
    rows = [json.loads(x) for x in before.read_text().splitlines()]
    assert len(rows) == 20 and all(r["started_at"] < change for r in rows)
    assert rows == sorted(rows, key=lambda r: r["started_at"])
    first = rows[0]
    assert (first["canary"], first["target"], first["finish_reason"]) == ("c1", "t", "stop")
    assert first["text"] and first["output_tokens"] > 0 and first["latency_s"] > 0
    assert set(first["checks"]) == {"short"} and first["refusal"] == "none"
    assert {json.loads(x)["system_fingerprint"] for x in after.read_text().splitlines()} == {"fp_new"}
    _, everything, _ = cli("export", "-c", str(cfg))  # standard output: both halves, in order
    assert everything == before.read_text() + after.read_text()

    code, out, err = cli("replay", "--baseline", str(before), "--current", str(after), "--json")
    assert code == 0, err
    events = {e["signal"]: e for e in map(json.loads, out.splitlines())}
    assert events["system_fingerprint"]["kind"] == "model"
    assert events["output_chars"]["current_value"] > 2 * events["output_chars"]["baseline_value"]
    assert events["check:short"]["current_value"] < events["check:short"]["baseline_value"]


async def test_export_errors_name_the_flag_and_leave_no_half_file(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    code, _, err = cli("export", "-c", str(cfg), "--since", "last tuesday")
    assert code == 2 and "--since: not an RFC 3339 time or a duration: 'last tuesday'" in err
    missing = tmp_path / "no-such-dir" / "x.jsonl"
    code, _, err = cli("export", "-c", str(cfg), "-o", str(missing))
    assert code == 2 and "no folder" in err and not missing.parent.exists()  # an argument error, as --keep's
    code, out, _ = cli("export", "-c", str(cfg), "--since", "1h", "--target", "t")
    assert code == 0 and len(out.splitlines()) == 5
    assert cli("export", "-c", str(cfg), "--since", "0s")[1] == ""  # from now on: nothing yet
    code, out, err = cli("export", "-c", str(cfg), "--canary", "removed")
    assert code == 0 and "not in the configuration" in err and out == ""


async def test_export_refuses_to_write_over_the_store_the_config_or_a_probe_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`export -o m.db` (the store's own file) replaced the SQLite store with the dump, every stored observation,
    baseline and event gone, and said "exported 5 observations to m.db"; `-o monitor.yaml` replaced the config."""
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    store, probe = tmp_path / "m.db", tmp_path / "probes" / "p.yaml"
    kept = {p: p.read_bytes() for p in (store, cfg, probe)}
    monkeypatch.chdir(tmp_path)
    for output, what in (("m.db", f"the store's SQLite file ({store})"), (str(store) + "-wal",
                         f"the store's -wal file ({store}-wal)"), ("monitor.yaml", "the configuration file"),
                         ("probes/../probes/p.yaml", "a probe file")):
        code, _, err = cli("export", "-c", str(cfg), "-o", output)
        assert code == 2 and f"-o {output}: that is {what}, which the export would replace" in err, err
    assert {p: p.read_bytes() for p in kept} == kept and cli("drift", "-c", str(cfg))[0] == 0
    code, _, err = cli("export", "-c", str(cfg), "-o", "dump.jsonl")
    assert code == 0 and "exported 5 observations to dump.jsonl" in err


async def test_export_to_standard_output_names_it_and_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    # Found by QA: `llm-monitor export | head -2` ended with "error: None: cannot write: Broken pipe" (exit 1),
    # where the other commands treat a closed pipe as the end; a full disk also said "None".
    import os
    import subprocess

    from tests.support.daemon import EXE

    cfg = await one_run_stored(tmp_path)
    with open("/dev/full", "w") as full:
        done = subprocess.run([*EXE, "export", "-c", str(cfg)], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    assert done.returncode == 1 and "error: standard output: cannot write: No space left on device" in done.stderr
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: as `| head` that has read enough
    try:
        done = subprocess.run([*EXE, "export", "-c", str(cfg)], stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == ""


async def test_export_piped_into_refusal_labels_every_line(tmp_path: Path) -> None:
    # Found by a newcomer: `export | refusal --jsonl -` exited 2, "field 'completion' missing": export writes `text`
    import json
    import subprocess

    from tests.support.daemon import EXE

    cfg = await one_run_stored(tmp_path)
    exported = subprocess.run([*EXE, "export", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    labelled = subprocess.run([*EXE, "refusal", "--jsonl", "-"], input=exported.stdout, capture_output=True,
                              text=True, timeout=60)
    assert labelled.returncode == 0, labelled.stderr
    before = [json.loads(line) for line in exported.stdout.splitlines()]
    after = [json.loads(line) for line in labelled.stdout.splitlines()]
    assert before and len(after) == len(before)
    for b, a in zip(before, after, strict=True):
        assert {k: a[k] for k in b if k != "refusal"} == {k: v for k, v in b.items() if k != "refusal"}
        assert a["refusal"] in {"none", "partial", "full"} and 0.0 <= a["refusal_score"] <= 1.0


async def test_baseline_show_says_why_a_target_has_no_baseline(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: before the first baseline_size observations, `baseline show` printed an empty table and nothing
    # else (`diff` says "no baseline yet")
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    code, out, err = cli("baseline", "show", "c1", "-c", str(cfg))
    assert code == 0 and err == "", err
    assert "c1 @ t: no baseline yet (it forms from the first 10 successful observations)" in " ".join(out.split())
    assert "baselines of c1" not in out and "canary" not in out  # and no empty table above the line (operator review)


async def test_with_drift_off_baseline_show_diff_and_drift_say_so(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Found by walkthrough: with drift.enabled false, `baseline show` and `diff` said a baseline "forms from the
    first 10 successful observations" (none ever does), and `drift` showed an empty table as if nothing changed."""
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    cfg.write_text(cfg.read_text().replace("baseline_size: 10", "baseline_size: 10, enabled: false"))
    off = "c1 @ t: no baseline yet (drift analysis is off, drift.enabled: false: the daemon forms no baseline and " \
          "opens no event)"
    for command in (("baseline", "show", "c1"), ("diff", "c1")):
        code, out, err = cli(*command, "-c", str(cfg))
        assert code == 0 and off in " ".join(out.split()), (out, err)
    code, _, err = cli("drift", "-c", str(cfg))
    assert code == 0 and "note: drift analysis is off (drift.enabled: false): the daemon opens no events; only " \
        "stored ones are listed" in " ".join(err.split()), err


async def test_a_range_that_ends_before_it_starts_is_refused_by_export_and_pin(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: `export --since 04:05 --until 04:00` wrote nothing and said "exported 0 observations", and
    # `baseline pin` with the same range blamed the store ("only 0 successful observations in that range").
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    for args in (["export"], ["baseline", "pin", "c1"]):
        code, out, err = cli(*args, "-c", str(cfg), "--since", "2026-11-29T04:05:00Z", "--until", "2026-11-29T04:00")
        assert code == 2 and out == "", (args, err)
        assert "--until (2026-11-29T04:00:00+00:00) is not after --since (2026-11-29T04:05:00+00:00)" in err, err


async def test_a_since_in_the_future_is_refused_by_export_and_pin(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # `export --since 2027-01-01` (a year mistyped) wrote an empty dump and exited 0, which `replay` then took as
    # the week to compare with.
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    for args in (["export"], ["baseline", "pin", "c1"]):
        code, out, err = cli(*args, "-c", str(cfg), "--since", "9999-01-01")
        assert code == 2 and out == "", (args, err)
        assert "--since (9999-01-01T00:00:00+00:00) is in the future (now " in err, err


async def test_baseline_pin_takes_durations_as_export_does_and_needs_a_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: `baseline pin` without a range pinned the whole history (every behaviour the canary ever had,
    # mixed), and its --since took only ISO times where export's takes 7d
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    code, out, err = cli("baseline", "pin", "c1", "-c", str(cfg))
    assert code == 2 and out == "" and "baseline pin needs --since" in err, err
    code, out, err = cli("baseline", "pin", "c1", "-c", str(cfg), "--since", "1h", "--note", "last hour")
    assert code == 0 and err == "", err
    assert "c1 @ t: baseline pinned to 5 observations" in out, out
    code, out, err = cli("baseline", "pin", "c1", "-c", str(cfg), "--since", "2h", "--until", "1h")
    assert code == 2 and "only 0 successful observations in that range" in err, err


def test_a_duration_ago_may_say_ago() -> None:
    """The README's `--since ... ISO-8601 or 14d ago` invited `--since "5m ago"`, which was refused."""
    from monitor.commands.common import when

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for text in ("5m ago", "5m", " 5m  AGO ", "300s ago"):
        assert when(text, "--since", now) == datetime(2026, 11, 30, 11, 55, tzinfo=UTC), text
    for text in ("ago", "5m ago ago", "last tuesday ago", "2026-11-01 ago"):
        with pytest.raises(ValueError, match=r"^--since: not an RFC 3339 time or a duration: "):
            when(text, "--since", now)


async def test_export_and_pin_take_a_duration_ago_written_with_ago(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    cfg = await one_run_stored(tmp_path)
    code, out, err = cli("export", "-c", str(cfg), "--since", "1h ago", "--until", "0s ago")
    assert code == 0 and len(out.splitlines()) == 5, err
    assert cli("export", "-c", str(cfg), "--until", "1h ago")[1] == ""  # nothing stored that long ago
    code, out, err = cli("baseline", "pin", "c1", "-c", str(cfg), "--since", "1h ago", "--note", "last hour")
    assert code == 0 and "c1 @ t: baseline pinned to 5 observations" in out, err


async def test_export_writes_the_providers_refusal_and_refusal_jsonl_reads_it(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review23: a refusal the provider gave in OpenAI's `refusal` field (no content) was stored but not
    exported, and `refusal --jsonl` read only the text: `export | refusal --jsonl -` labelled it `none`, where the
    daemon had it `full`."""
    from monitor.refusal import annotate_jsonl

    scenario = {"name": "field", "seed": 5, "defaults": {"ttft": 5, "output_tps": 5000},
                "models": {"m": {"phases": [{"name": "a", "refusals": [{"pattern": ".*", "p": 1, "style": "field"}]}]}}}
    with SimServer(scenario_from_dict(scenario)) as sim:
        app, cfg, canary, target = await started_app(tmp_path, sim, PROBES, "{baseline_size: 10}")
        try:
            observed = await app.runner.run(canary, target)
        finally:
            await app.stop()
    assert {(o.call.text, o.refusal) for o in observed} == {("", "full")} and observed[0].call.refusal_text
    out = tmp_path / "out.jsonl"
    assert Cli(capsys)("export", "-c", str(cfg), "-o", str(out))[0] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["refusal_text"] for r in rows] == [o.call.refusal_text for o in observed]
    for r in rows:
        del r["refusal"]  # judged again from what the line says
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import io

    labelled = io.StringIO()
    assert annotate_jsonl(out, labelled) == 5
    assert [json.loads(line)["refusal"] for line in labelled.getvalue().splitlines()] == ["full"] * 5


def test_an_output_path_that_cannot_be_a_file_is_an_argument_error(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: `-o missing-folder/x.jsonl` was exit 1 (a failure), where every other path argument that cannot
    # be used is exit 2 (`--keep`, `--jsonl`, `--baseline`); `-o some-folder` read the whole store, then failed
    from monitor.store import Store
    from tests.conftest import write_config

    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    store.close()
    cli = Cli(capsys)
    for output, said in ((tmp_path / "missing" / "x.jsonl", f"no folder {tmp_path / 'missing'} to write it in"),
                         (tmp_path / "probes", "that is a folder: name a file")):
        code, out, err = cli("export", "-c", str(cfg), "-o", str(output))
        assert (code, out) == (2, "") and f"-o {output}: {said}" in err, err
