"""`llm-monitor demo`: zero set-up. Simulator + daemon + SQLite in a temporary folder, results as they arrive."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shlex
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.markup import escape

from monitor.app import App
from monitor.commands.common import EXIT_CONFIG, err_console, table_console
from monitor.commands.probe import checks_failed, mark
from monitor.commands.run import serve
from monitor.config.loader import Config, load_config
from monitor.config.models import Schedule
from monitor.console import Console
from monitor.counted import counted
from monitor.domain import Observation
from monitor.durations import parse_duration

DEMO_KEY_ENV = "LLM_MONITOR_DEMO_KEY"
# Every demo canary samples 3 times a run: its 12-observation baseline forms in 4 runs (about 20 s at 5s), well before
# the scenario changes at 45 s, and a rate change (a check that starts failing) shows within the two minutes.
DEMO_SAMPLES = 3


def shipped_probes() -> Path:
    """The canary library: probes/ beside the package (source checkout), else the copy a wheel installs under
    <prefix>/share/llm-monitor/probes, else ./probes, else /etc/llm-monitor/probes (the container image's)."""
    here = Path(__file__).resolve().parent.parent
    candidates = [here.parent / "probes", *installed_data("probes"), Path.cwd() / "probes",
                  Path("/etc/llm-monitor/probes")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the canary library was not found (looked in "
                            f"{', '.join(str(c) for c in candidates)}): reinstall llm-monitor, or run the demo from a "
                            "checkout")


def installed_data(folder: str) -> list[Path]:
    """Where the installed distribution put share/llm-monitor/`folder` (any install scheme: system, venv,
    --user), from its file list; empty for a source checkout or an editable install."""
    try:
        dist = metadata.distribution("llm-monitor")
    except metadata.PackageNotFoundError:
        return []
    marker = f"share/llm-monitor/{folder}/"
    for file in dist.files or ():
        posix = file.as_posix()
        if marker in posix:
            return [Path(str(dist.locate_file(posix[:posix.index(marker) + len(marker)]))).resolve()]
    return []


DEFAULT_PORT = 9464  # /metrics of the demo's daemon, when free (the daemon's own default listen port)


def free_port(preferred: int, *, fallback: bool = True) -> int:
    """Return `preferred` if it is free on 127.0.0.1, else (with `fallback`) any free port; OSError otherwise."""
    for port in (preferred, 0) if fallback else (preferred,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return int(s.getsockname()[1])
            except OSError:
                continue
    raise OSError(f"port {preferred} on 127.0.0.1 is in use" if not fallback else "no free port")


def metrics_port(port: int | None) -> int:
    """The demo daemon's /metrics port: `port` if free (0: any free one; OSError if taken), by default 9464 if free,
    else any free one."""
    return free_port(DEFAULT_PORT if port is None else port, fallback=port is None)


def demo_config(folder: Path, openai_url: str, anthropic_url: str, port: int, interval: str) -> Config:
    """Write monitor.yaml for the demo targets and load it with the shipped probes on a fast schedule."""
    sim_port = urlsplit(anthropic_url).port
    (folder / "monitor.yaml").write_text(f"""\
# Written by `llm-monitor demo`. `drift`, `diff` and `export` read its store as the demo left it. Its targets are
# the demo's simulated upstream, which stopped with the demo: to run the daemon on this store again, start one on
# the same port first (`llm-monitor sim --port {sim_port}`) and set {DEMO_KEY_ENV} (any value). The demo ran only the
# canaries tagged `demo`, every {interval} with {DEMO_SAMPLES} samples each; a daemon run on this file runs the whole canary
# library named below on its own schedules, as a deployment would.
targets:
  - {{id: sim-gpt, provider: openai, base_url: "{openai_url}", model: sim-gpt, api_key_env: {DEMO_KEY_ENV}}}
  - {{id: sim-claude, provider: anthropic, base_url: "{anthropic_url}", model: sim-claude,
      api_key_env: {DEMO_KEY_ENV}}}
probes: ["{shipped_probes()}"]
storage: {{url: "sqlite:///{folder / 'demo.db'}"}}
http: {{listen: "127.0.0.1:{port}"}}
daemon: {{grace_period: 5, max_start_delay: 5}}
drift: {{baseline_size: 12, false_alarms_per_day: null}}  # a day goes by in minutes here: no fleet cap
""", encoding="utf-8")
    config = load_config(folder / "monitor.yaml", environ={DEMO_KEY_ENV: "demo"})
    demo = [c for c in config.canaries if "demo" in c.tags] or list(config.canaries)
    fast = Schedule(every=interval)
    canaries = tuple(c.model_copy(update={"schedule": fast, "samples": DEMO_SAMPLES}) for c in demo)
    return dataclasses.replace(config, canaries=canaries)


def printer(console: Console, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):  # type: ignore[no-untyped-def]
    """Print each observation as the runner reports it, stamped with the time it is printed (UTC): a run reports its
    samples when the last one ends, so their start times would put lines out of order on the terminal."""
    def show(obs: Observation) -> None:
        c = obs.call
        when = clock().strftime("%H:%M:%S")
        if c.error_type:
            console.print(f"{when} {mark(obs)} {escape(obs.canary)} @ {escape(obs.target)}: {c.error_type.value} "
                          f"{escape(c.error_message or '')}")
            return
        ttft = f" ttft {c.ttft_s * 1000:.0f}ms" if c.ttft_s is not None else ""
        refusal = f" [yellow]refusal={obs.refusal}[/]" if obs.refusal in ("partial", "full") else ""
        failed = checks_failed(obs)
        checks = f" [red]{failed}[/]" if failed else ""
        text = " ".join(c.text.split())[:60]
        served = "".join(f" {escape(v)}" for v in (c.response_model, c.system_fingerprint) if v)  # either unsaid
        console.print(f"{when} {mark(obs)} {escape(obs.canary)} @ {escape(obs.target)}[dim]{served}[/] "
                      f"{c.latency_s or 0:.2f}s{ttft} "
                      f"{c.usage.output_tokens or '?'} tok{refusal}{checks} [dim]{escape(repr(text))}[/]", markup=True,
                      highlight=False)
    return show


def drift_printer(console: Console, seen: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Print each opening and resolution as it happens; keep every event's latest state in `seen` (by id)."""
    def show(update: Any) -> None:
        e = update.event
        seen[e.id] = type(e).from_json(e.to_json())  # as published (and stored): the engine goes on changing e
        if update.action == "updated":
            return
        colour = "bold red" if update.action == "opened" else "bold green"
        stat = f"p={e.p_value:.2g}" if e.p_value is not None else (
            f"cusum={e.statistic:.3g}" if e.statistic is not None else "")
        if e.test == "zero_tolerance":
            stat = "(declared zero-tolerance)"
        values = "" if e.baseline_value is None and e.current_value is None else \
            f"{_v(e.baseline_value)} -> {_v(e.current_value)} "
        console.print(f"[{colour}]DRIFT {update.action.upper()}[/] {escape(e.kind)} change in [bold]{escape(e.signal)}[/] "
                      f"of {escape(e.canary)} @ {escape(e.target)}: {escape(values)}{stat} ({escape(e.test)}, "
                      f"baseline n={e.baseline_n}, current n={e.current_n})", highlight=False)
    return show


def summary(events: list[Any], kept: Path | None) -> None:
    """At the end: every event of the run in one table, the evidence of its first behaviour change, and (with
    --keep) the commands that explore the kept store."""
    from monitor.commands.drift import diff_renderer, events_table
    from monitor.drift.events import cut

    console = table_console()
    console.print()
    shown = next((e for e in events if e.kind == "behaviour" and e.evidence.get("diff")), None)
    if not events:
        console.print("No drift event opened (the scenario changes behaviour about 45 seconds in: run longer).")
    else:
        rows = [e.to_json() for e in sorted(events, key=lambda e: (e.opened_at, e.canary, e.target, e.signal))]
        console.print(events_table(rows, f"drift events of this demo ({len(rows)})"))
    if shown is not None:
        console.print(f"\n[bold]Evidence[/] of {escape(shown.signal)} on {escape(shown.canary)} @ "
                      f"{escape(shown.target)} (the baseline's representative completion against the first changed "
                      "one):")
        console.print(diff_renderer(console)(cut(shown.evidence["diff"], 800)))
    if kept is not None:
        config = shlex.quote(str(kept / "monitor.yaml"))  # pasted into a shell: a folder with a space stays one
        # the diff command shows the latest completions of the pair whose evidence is above
        canary = (shown or events[0]).canary if events else "kill-python-process"
        console.print(f"\nStore kept in {kept}. Explore it:\n"  # a folder named [x] is a path, not markup
                      f"  llm-monitor drift -c {config}\n"
                      f"  llm-monitor diff {canary} -c {config}\n"
                      f"  llm-monitor export -c {config} > observations.jsonl", markup=False)


def _v(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(port: int | None, interval: str, duration: str | None, keep: str | None = None) -> int:
    console = Console(highlight=False, soft_wrap=True)  # piped: whole lines, not cut at 80 columns
    # The demo prints drift events itself (drift_printer): the analysis's "drift opened/resolved" log lines would
    # say the same again on stderr.
    logging.getLogger("monitor.analysis").setLevel(logging.ERROR)
    try:
        http_port = metrics_port(port)
    except OSError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))} (choose another with --port, or leave it out)")
        return EXIT_CONFIG
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="llm-monitor-demo-") as tmp:
            return _demo(console, Path(tmp), http_port, interval, duration, kept=False)
    folder = Path(keep).resolve()
    refused = _keep_refused(folder)
    if refused is not None:
        err_console.print("[bold red]error:[/] " + escape(f"--keep {keep}: {refused}"))
        return EXIT_CONFIG
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        err_console.print("[bold red]error:[/] " + escape(f"--keep {keep}: {e.strerror or e}"))
        return EXIT_CONFIG
    return _demo(console, folder, http_port, interval, duration, kept=True)


def _keep_refused(folder: Path) -> str | None:
    """Why the demo may not keep its store in `folder`, or None: it writes demo.db and monitor.yaml there, and
    must neither reuse an earlier demo's store nor overwrite a monitor.yaml of the user's (`--keep .` in a
    project folder)."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is not a folder"
    if (folder / "demo.db").exists():
        return (f"{folder / 'demo.db'} is an earlier demo's store; choose another folder or remove it (a demo starts "
                "from an empty store)")
    if (folder / "monitor.yaml").exists():
        return (f"{folder / 'monitor.yaml'} exists and the demo would overwrite it with its own; choose a new or "
                "empty folder")
    return None


def _demo(console: Console, folder: Path, http_port: int, interval: str, duration: str | None, kept: bool) -> int:
    from monitor.sim import SimServer, builtin_scenario

    with SimServer(builtin_scenario("demo")) as sim:
        config = demo_config(folder, sim.openai_base_url, sim.url, http_port, interval)
        console.print(f"[bold]llm-monitor demo[/]: simulated upstream at {sim.url}, store {escape(str(folder))}/demo.db")
        console.print(f"  metrics:      http://127.0.0.1:{http_port}/metrics")
        console.print(f"  observations: http://127.0.0.1:{http_port}/api/observations")
        console.print(f"  {counted(len(config.canaries), 'canary')} x {counted(len(config.targets), 'target')} "
                      f"every {interval}; "
                      "the scenario changes behaviour after about 45 seconds. Ctrl-C to stop.")
        events: dict[str, Any] = {}

        async def _main() -> int:
            app = App(config, environ={DEMO_KEY_ENV: "demo"})
            app.runner.listeners.append(printer(console))
            if app.analysis is not None:
                app.analysis.listeners.append(drift_printer(console, events))
            stop = asyncio.Event()
            if duration:
                asyncio.get_running_loop().call_later(parse_duration(duration), stop.set)
            return await serve(app, stop)

        code = asyncio.run(_main())
        summary(list(events.values()), folder if kept else None)
        return code
