"""`llm-monitor probe`: run canaries once now, print a table or JSON lines, exit 1 if any call or check failed."""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
from datetime import timedelta

from prometheus_client import CollectorRegistry
from rich.markup import escape
from rich.table import Table

from monitor import jsonl
from monitor.app import App
from monitor.commands.common import (
    EXIT_CONFIG,
    EXIT_FAIL,
    EXIT_OK,
    err_console,
    known_names,
    load_or_exit,
    run_terminable,
    table_console,
    utc_time,
)
from monitor.config.loader import Config
from monitor.config.models import Canary, Target
from monitor.console import write_line
from monitor.domain import Observation
from monitor.errors import MonitorError
from monitor.spend import midnight

MESSAGE_SHOWN = 100  # characters of a failed call's message the table shows (--json has it whole, up to 300)


def mark(o: Observation) -> str:
    """The mark of an observation: ✓ answered and no check failed, ! answered but a check failed, ✗ the call failed."""
    if not o.ok:
        return "[red]✗[/]"
    return "[yellow]![/]" if any(r.passed is False for r in o.checks) else "[green]✓[/]"


def checks_failed(o: Observation) -> str:
    """`failed 1/3 checks: kw` for an observation whose checks failed, else ''."""
    failed = [r.name for r in o.checks if r.passed is False]
    return f"failed {len(failed)}/{len(o.checks)} checks: {escape(', '.join(failed))}" if failed else ""


def observation_table(observations: list[Observation]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    failed = any(o.call.error_type for o in observations)
    for col in ("canary", "target", "#", "result", "model", "latency", "ttft", "tok in/out", "tok/s", "cost $",
                "refusal", "checks", *(("error",) if failed else ())):
        table.add_column(col, no_wrap=col in {"canary", "target", "result", "model"})
    for o in observations:
        c = o.call
        result = f"{mark(o)} " + (f"[red]{c.error_type.value}[/]" if c.error_type else
                                   (c.finish_reason.value if c.finish_reason else "?"))
        checks = ", ".join(f"{escape(r.name)}:{'✓' if r.passed else ('✗' if r.passed is False else '?')}" for r in o.checks)
        table.add_row(
            escape(o.canary), escape(o.target), str(o.sample_index), result, escape(c.response_model or ""),
            f"{c.latency_s:.3f}s" if c.latency_s is not None else "",
            f"{c.ttft_s:.3f}s" if c.ttft_s is not None else "",
            f"{_n(c.usage.input_tokens)}/{_n(c.usage.output_tokens)}",
            f"{o.output_tokens_per_s:.0f}" if o.output_tokens_per_s else "",
            f"{o.cost_usd:.6f}" if o.cost_usd is not None else "", o.refusal or "", checks,
            *((_message(c.error_message) if c.error_type else "",) if failed else ()),
        )
    return table


def _message(text: str | None) -> str:
    """A failed call's message for the table: on one line, cut at MESSAGE_SHOWN characters, shown as written (not
    read as markup). Its key is already scrubbed: the provider's results never carry it (`providers.scrub`)."""
    text = " ".join((text or "").split())
    return escape(text if len(text) <= MESSAGE_SHOWN else text[:MESSAGE_SHOWN - 1] + "…")


def _n(v: int | None) -> str:
    return "?" if v is None else str(v)


def narrowed(config: Config, pairs: list[tuple[Canary, Target]]) -> Config:
    """The config a probe of `pairs` runs on: their canaries and only the targets it calls (theirs, and the judges
    of their checks and of refusals), so `probe --target a` does not ask for the key of a target it leaves alone."""
    called = {t.id for _, t in pairs} | {config.refusal.judge_target or ""}
    called |= {judge for c, _ in pairs for check in c.checks if (judge := getattr(check, "judge_target", None))}
    run = {c.id for c, _ in pairs}
    return dataclasses.replace(config, targets=tuple(t for t in config.targets if t.id in called),
                               canaries=tuple(c for c in config.canaries if c.id in run))


def paused_lines(app: App, idle: list[Target]) -> list[str]:
    """Why each of the `idle` targets (whose runs made no call) ran nothing, if its daily spend cap pauses it:
    `target gpt is paused by its daily spend cap ($5) until 2026-12-03T00:00:00+00:00`."""
    resumes = utc_time(midnight(app.runner.spend.now()) + timedelta(days=1))
    return [f"target {t.id} is paused by its daily spend cap (${t.daily_spend_cap_usd:g}) until {resumes}"
            for t in {t.id: t for t in idle}.values() if app.runner.spend.over_cap_now(t)]


def main(config_path: str, canary: str | None, target: str | None, as_json: bool) -> int:
    config = load_or_exit(config_path)
    pairs = [(c, t) for c, t in config.pairs()
             if (canary is None or c.id == canary) and (target is None or t.id == target)]
    if not pairs:
        asked = " ".join(f"--{flag} {shlex.quote(value)}" for flag, value in (("canary", canary), ("target", target))
                         if value is not None)  # as typed: an empty name shows as ''
        canaries, targets = known_names([c.id for c in config.canaries], canary), \
            known_names([t.id for t in config.targets], target)
        err_console.print("[red]error:[/] " + escape(f"no canary x target pair matches {asked} (canaries: {canaries}; "
                                                     f"targets: {targets})"))
        return EXIT_CONFIG
    config = narrowed(config, pairs)

    async def _main() -> int:
        try:
            app = App(config, registry=CollectorRegistry(), serve_http=False, analyse=False)
            await app.start(schedule=False)
        except MonitorError as e:
            err_console.print(f"[red]cannot start:[/] {escape(str(e))}")
            return EXIT_CONFIG
        try:
            results = await asyncio.gather(*(app.runner.run(c, t, trigger="manual") for c, t in pairs))
            paused = paused_lines(app, [t for (_, t), batch in zip(pairs, results, strict=True) if not batch])
        finally:
            await app.stop()
        observations = [o for batch in results for o in batch]
        if as_json:
            for o in observations:
                write_line(jsonl.line(o.as_json()))
        elif observations or not paused:
            table_console().print(observation_table(observations))
        for line in paused:  # what ran nothing, said on standard error (the log's warning alone explained it)
            err_console.print(("nothing ran" if not observations else "not run") + f": {escape(line)}")
        # as a test runner: an answered call whose check failed fails the probe too (a check not judged, None, not)
        failed = any(not o.ok or any(r.passed is False for r in o.checks) for o in observations)
        return EXIT_FAIL if failed or not observations else EXIT_OK

    return run_terminable(_main())
