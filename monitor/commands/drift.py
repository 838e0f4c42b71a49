"""Drift commands: `drift` (events), `diff` (baseline vs latest), `replay`; `baseline` is in baseline.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from monitor import jsonl
from monitor.commands.common import (
    EXIT_CONFIG,
    EXIT_OK,
    err_console,
    known_names,
    load_or_exit,
    open_store_or_exit,
    table_console,
    utc_time,
)
from monitor.configured import Configured
from monitor.console import Console, cell, write_line
from monitor.counted import counted
from monitor.decision import decision
from monitor.domain import Observation
from monitor.errors import shown

LIST_LIMIT = 1000
JSON_KEYS = ("id", "canary", "target", "signal", "kind", "state", "test", "baseline_value", "current_value",
             "effect_size", "statistic", "p_value", "threshold", "baseline_n", "current_n", "first_obs_id",
             "first_obs_at", "opened_at", "resolved_at", "accepted_at", "note", "evidence", "detail")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


NOT_CONFIGURED = "open (not configured)"  # an open event whose pair (or check) the config no longer has


def events_table(events: list[dict[str, Any]], title: str, configured: Configured | None = None) -> Table:
    """The events as a table, each with when it opened and since when (its change's estimated start); given what is `configured`, an open event of another pair, or of a check its pair
    no longer has (a canary, target or check since removed: nothing watches it, it resumes if it comes back), shows
    state `NOT_CONFIGURED`."""
    table = Table(title=title, header_style="bold")
    for col in ("opened", "since", "canary", "target", "signal", "kind", "state", "baseline", "current", "test", "n"):
        # a time is never cut (2026-12-03T19:20:32+00:…) to make room for long values: the other columns fold
        table.add_column(col, no_wrap=col in {"canary", "signal", "opened", "since"},
                         min_width=25 if col in {"opened", "since"} else None)
    for e in events:  # Text cells: canary ids, check names and served models are data, never console markup
        state = e["state"]
        if state == "open" and configured is not None and not configured.event(e):
            state = NOT_CONFIGURED
        table.add_row(*map(cell, (utc_time(e.get("opened_at")), utc_time(e.get("first_obs_at")), e["canary"], e["target"], e["signal"], e["kind"],
                                  state, _fmt(e.get("baseline_value")), _fmt(e.get("current_value")),
                                  decision(e), f"{e.get('baseline_n', '')}/{e.get('current_n', '')}")))
    return table


def open_analysis(config_path: str) -> Any:
    """Load the config, open its store and return both with the analysis on them."""
    config, store = open_stored(config_path)
    return config, analysis_on(config, store)


def open_stored(config_path: str) -> Any:
    """Load the config and open its store (never a new one): exit on an error in either."""
    config = load_or_exit(config_path)
    return config, open_store_or_exit(config, create=False)  # these commands work on stored data


def analysis_on(config: Any, store: Any) -> Any:
    """The analysis on `store`: the drift engine (SciPy, NumPy) loads here, after the config, the store and the
    names asked for checked out (an error about them came after a second of loading it)."""
    from prometheus_client import CollectorRegistry

    from monitor.alerts.outbox import Outbox
    from monitor.alerts.service import Alerting
    from monitor.analysis import Analysis
    from monitor.domain import utcnow
    from monitor.telemetry.metrics import Metrics

    # Notifications are only enqueued here (in the event's transaction); the running daemon delivers them.
    alerting = Alerting(config.alerts, Outbox(store.engine), None, utcnow)  # type: ignore[arg-type]
    tags = {c.id: tuple(c.tags) for c in config.canaries}
    watched = Configured.of(config.pairs())  # another's events (ended by `baseline`): see told_only
    return Analysis(store, Metrics(CollectorRegistry()), config.drift_settings(), alerting=alerting,
                    tags=lambda canary: tags.get(canary, ()),
                    routed=watched.signal)


def forming(config: Any) -> str:
    """Why a pair has no baseline yet, and when it will: with drift analysis off, never (the daemon forms none)."""
    if not config.drift.enabled:
        return "(drift analysis is off, drift.enabled: false: the daemon forms no baseline and opens no event)"
    return f"(it forms from the first {config.drift.baseline_size} successful observations)"


def drift_list(config_path: str, open_only: bool, as_json: bool, canaries: list[str] | None = None,
               targets: list[str] | None = None) -> int:
    """List the stored events, newest first; only those of `canaries` and `targets` when given (each any of its
    names). A name neither configured nor in any stored event is an error (a typo would list nothing)."""
    from monitor.store.drift_repo import DriftRepository  # only the stored events: no drift engine, no SciPy

    config = load_or_exit(config_path)
    repo = DriftRepository(open_store_or_exit(config, create=False).engine)
    asked = {"canary": (canaries or [], [c.id for c in config.canaries]),
             "target": (targets or [], [t.id for t in config.targets])}
    if any(name not in configured for names, configured in asked.values() for name in names):
        stored = dict(zip(asked, repo.names(), strict=True))  # a removed canary's events are still listed by name
        for what, (names, configured) in asked.items():
            known = sorted({*configured, *stored[what]})
            unknown = [name for name in names if name not in known]
            if unknown:
                err_console.print("[red]error:[/] " + escape(
                    f"--{what}: no {what} {shown(unknown[0])} in the configuration or in any stored drift event "
                    f"(known: {known_names(known, unknown[0])})"))
                return EXIT_CONFIG
    events = repo.events(canary=canaries, target=targets, state="open" if open_only else None, limit=LIST_LIMIT)
    if len(events) == LIST_LIMIT:
        err_console.print(f"[yellow]note:[/] showing the newest {LIST_LIMIT} events; older ones are in the store "
                          "(GET /api/drift, or export the store)")
    watched = Configured.of(config.pairs())
    if not config.drift.enabled:  # an empty table alone would read as "nothing changed"
        err_console.print("[yellow]note:[/] drift analysis is off (drift.enabled: false): the daemon opens no events; "
                          "only stored ones are listed")
    if as_json:
        for e in events:
            line = {k: e.get(k) for k in JSON_KEYS} | {"configured": watched.event(e)}
            write_line(jsonl.line(line))
    else:
        table_console().print(events_table(events, "open drift events" if open_only else "drift events",
                                           watched))
    return EXIT_OK


def colour_diff(diff: str) -> Text:
    """Render a word diff ([-removed-] {+added+}) in colour, its text escaped as shown (console.cell)."""
    out = Text()
    i = same = 0  # the unchanged text from `same` on is not written yet
    while i < len(diff):
        for opener, closer, style in (("[-", "-]", "red strike"), ("{+", "+}", "green")):
            if diff.startswith(opener, i):
                j = diff.find(closer, i + 2)
                if j != -1:
                    out.append_text(cell(diff[same:i]))
                    out.append_text(cell(diff[i + 2:j], style))
                    i = same = j + 2
                    break
        else:
            i += 1
    out.append_text(cell(diff[same:]))
    return out


def diff_renderer(console: Console) -> Callable[[str], Text]:
    """How to print a word diff on `console`: in colour, or, where the styles would be dropped (a pipe, a file,
    NO_COLOR), as the diff's own [-removed-] {+added+} markers."""
    return colour_diff if console.color_system is not None and not console.no_color else cell


def diff(config_path: str, canary: str, target: str | None, count: int) -> int:
    from monitor.store.drift_repo import DriftRepository

    config, store = open_stored(config_path)
    try:
        targets, unconfigured = pair_targets(config, canary, target, DriftRepository(store.engine), store)
    except ValueError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    from monitor.drift.baseline import Baseline
    from monitor.drift.events import cut, word_diff

    if unconfigured:  # a canary removed or renamed, a target dropped: what the store holds, told as such
        told = canary if canary not in {c.id for c in config.canaries} else \
            ", ".join(f"{canary} @ {t}" for t in unconfigured)
        err_console.print(f"[yellow]note:[/] {escape(told)} is not in the configuration: showing what the store "
                          "holds", highlight=False)
    analysis = analysis_on(config, store)
    console = table_console()
    render = diff_renderer(console)
    for tid in targets:
        rows = analysis.repo.baselines(canary=canary, target=tid)
        # the latest completions however many calls failed since (an outage): those are counted, not compared
        latest = analysis.store.observations(canary=canary, target=tid, limit=count, ok_only=True)
        failed = analysis.store.count_observations(canary=canary, target=tid, failed_only=True,
                                                   since=latest[-1].started_at if latest else None)
        if not rows:
            console.print(f"[yellow]{escape(canary)} @ {escape(tid)}: no baseline yet[/] "
                          + ("(none stored)" if tid in unconfigured else forming(config)))
            continue
        base = Baseline.from_json(rows[0]["data"])
        reference = base.representative_text()
        left_out = f"; {counted(failed, 'failed call')}{' since' if latest else ''} left out" if failed else ""
        console.rule(f"{canary} @ {tid}: baseline ({rows[0]['source']}, {utc_time(rows[0]['created_at'])}) "
                     f"vs latest {counted(len(latest), 'completion')}{left_out}")
        console.print(Text.assemble(("baseline: ", "bold"), cell(cut(reference))))
        for obs in latest:
            console.print(Text.assemble(cell(f"\n{utc_time(obs.started_at)} #{obs.sample_index} "
                                             f"{obs.call.response_model or ''}: ", "bold"),
                                        render(word_diff(reference, obs.text))))
    return EXIT_OK


STORED_SCAN = 1000  # latest observations a canary's stored targets are read from, beside its baselines and events


def pair_targets(config: Any, canary: str, target: str | None, repo: Any, store: Any) -> tuple[list[str], set[str]]:
    """The targets of `canary` to show (only `target` if given) and which of them the configuration does not have:
    the configured ones, then the ones the store holds baselines, events or observations of (a canary removed from
    the configuration still has them). ValueError names the known ones."""
    configured = [t.id for c, t in config.pairs() if c.id == canary]
    stored = {t for _, t in repo.pairs(canary)}
    stored |= {o.target for o in store.observations(canary=canary, limit=STORED_SCAN)}
    if target is not None and target not in stored and store.observations(canary=canary, target=target, limit=1):
        stored.add(target)  # older than the scan
    known = configured + sorted(stored - set(configured))
    if canary not in {c.id for c in config.canaries} and not known:
        canaries = [c.id for c in config.canaries]
        canaries += sorted({c for c, _ in repo.pairs()} - set(canaries))
        raise ValueError(f"no canary {shown(canary)} in the configuration or the store (known: "
                         f"{known_names(canaries, canary)})")
    if not known:
        raise ValueError(f"canary {canary!r} runs against no configured target, and the store holds nothing of it")
    if target is not None and target not in known:
        raise ValueError(f"no target {shown(target)} for canary {shown(canary)} in the configuration or the store "
                         f"(known: {known_names(known, target)})")
    shown_targets = [target] if target is not None else known
    return shown_targets, set(shown_targets) - set(configured)


PAIRS_SHOWN = 3  # canary x target pairs an error or note lists


def _pairs(pairs: set[tuple[str, str]]) -> str:
    """Canary x target pairs as `c1@t, c2@t`, a few of them, each cut short (a dump may hold thousands, or a
    megabyte-long name)."""
    names = [f"{c}@{t}" if len(c) + len(t) < 60 else f"{(c + '@' + t)[:60]}..." for c, t in sorted(pairs)]
    more = f" and {len(names) - PAIRS_SHOWN:,} more" if len(names) > PAIRS_SHOWN else ""
    return ", ".join(names[:PAIRS_SHOWN]) + more


def replay(baseline_path: str, current_path: str, as_json: bool, zero_tolerance: list[str] | None = None) -> int:
    from monitor.drift import DumpError, load_dump, replay_observations
    from monitor.drift.dump import row_to_observation, shown
    from monitor.drift.names import declarable
    from monitor.refusal import RefusalDetector

    try:
        base_rows, cur_rows = load_dump(baseline_path), load_dump(current_path)
    except (DumpError, OSError) as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    base = [row_to_observation(r, baseline_path, i + 1) for i, r in enumerate(base_rows)]
    cur = [row_to_observation(r, current_path, i + 1) for i, r in enumerate(cur_rows)]
    known = declarable(sorted({c.name for o in (*base, *cur) for c in o.checks}))
    unknown = [name for name in zero_tolerance or [] if name not in known]
    if unknown:  # bounded: a dump may hold thousands of check names, or one of a megabyte
        err_console.print("[red]error:[/] " + escape(f"--zero-tolerance: unknown signal {shown(unknown[0])} "
                                                    f"(known: {known_names(known, unknown[0])})"))
        return EXIT_CONFIG

    # Replay compares the streams (canary x target) the two dumps share: one only one holds is not compared, and
    # with none shared an empty table would read as "no drift".
    in_base, in_cur = {(o.canary, o.target) for o in base}, {(o.canary, o.target) for o in cur}
    only = [(path, _pairs(a - b)) for path, a, b in ((baseline_path, in_base, in_cur), (current_path, in_cur, in_base))
            if a - b]
    if not in_base & in_cur:
        err_console.print("[red]error:[/] " + escape(
            f"{baseline_path} and {current_path} share no canary x target, so nothing can be compared: "
            + "; ".join(f"{path} holds {pairs}" for path, pairs in only)))
        return EXIT_CONFIG
    if only:
        err_console.print("note: " + escape("not compared, in one dump only: " + "; ".join(
            f"{pairs} (in {path} only)" for path, pairs in only)), highlight=False)

    detector = RefusalDetector()

    def refused(obs: Observation) -> bool | None:  # as the daemon labels it: a content-policy error is a refusal
        if obs.refusal is not None:
            return obs.refusal in ("partial", "full")
        verdict = detector.detect_observation(obs)
        return None if verdict is None else verdict.label in ("partial", "full")

    events = replay_observations(base, cur, refusal=refused, zero_tolerance=zero_tolerance or ())
    if as_json:
        for event in events:
            d = event.to_json()
            write_line(jsonl.line({k: d.get(k) for k in JSON_KEYS}))
    else:
        table_console().print(events_table([event.to_json() for event in events],
                                      f"replay: {len(base)} baseline vs {len(cur)} current rows"))
    return EXIT_OK

