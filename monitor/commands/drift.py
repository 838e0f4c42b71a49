"""Drift commands: `drift` (events), `diff` (baseline vs latest), `baseline show|accept|reset`, `replay`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from monitor.commands.common import (
    EXIT_CONFIG,
    EXIT_OK,
    check_range,
    err_console,
    known_names,
    load_or_exit,
    open_store_or_exit,
    table_console,
    utc_time,
    when,
)
from monitor.domain import Observation
from monitor.errors import shown
from monitor.timeinput import parse_time

LIST_LIMIT = 1000
JSON_KEYS = ("id", "canary", "target", "signal", "kind", "state", "test", "baseline_value", "current_value",
             "effect_size", "statistic", "p_value", "threshold", "baseline_n", "current_n", "first_obs_id",
             "first_obs_at", "opened_at", "resolved_at", "accepted_at", "note", "evidence", "detail")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


def decision(e: dict[str, Any]) -> str:
    """The test that decided and its figure: a p-value for window tests, level against threshold for charts."""
    test, p, stat, limit = e.get("test") or "", e.get("p_value"), e.get("statistic"), e.get("threshold")
    if p is not None:
        return f"{test} p={p:.2g}"
    if stat is not None and limit is not None:
        return f"{test} {stat:.3g}/{limit:.3g}"
    return test


def events_table(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for col in ("opened", "canary", "target", "signal", "kind", "state", "baseline", "current", "test", "n"):
        table.add_column(col, no_wrap=col in {"canary", "signal"})
    for e in events:  # Text cells: canary ids, check names and served models are data, never console markup
        table.add_row(*map(Text, (utc_time(e.get("opened_at")), e["canary"], e["target"], e["signal"], e["kind"],
                                  e["state"], _fmt(e.get("baseline_value")), _fmt(e.get("current_value")),
                                  decision(e), f"{e.get('baseline_n', '')}/{e.get('current_n', '')}")))
    return table


def _analysis(config_path: str) -> Any:
    from prometheus_client import CollectorRegistry

    from monitor.alerts.outbox import Outbox
    from monitor.alerts.service import Alerting
    from monitor.analysis import Analysis
    from monitor.domain import utcnow
    from monitor.telemetry.metrics import Metrics

    config = load_or_exit(config_path)
    store = open_store_or_exit(config, create=False)  # these commands work on stored data: never start a store
    # Notifications are only enqueued here (in the event's transaction); the running daemon delivers them.
    alerting = Alerting(config.alerts, Outbox(store.engine), None, utcnow)  # type: ignore[arg-type]
    tags = {c.id: tuple(c.tags) for c in config.canaries}
    return config, Analysis(store, Metrics(CollectorRegistry()), config.drift_settings(), alerting=alerting,
                            tags=lambda canary: tags.get(canary, ()))


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
                    f"(known: {known_names(known)})"))
                return EXIT_CONFIG
    events = repo.events(canary=canaries, target=targets, state="open" if open_only else None, limit=LIST_LIMIT)
    if len(events) == LIST_LIMIT:
        err_console.print(f"[yellow]note:[/] showing the newest {LIST_LIMIT} events; older ones are in the store "
                          "(GET /api/drift, or export the store)")
    if as_json:
        for e in events:
            sys.stdout.write(json.dumps({k: e.get(k) for k in JSON_KEYS}, ensure_ascii=False) + "\n")
    else:
        table_console().print(events_table(events, "open drift events" if open_only else "drift events"))
    return EXIT_OK


def colour_diff(diff: str) -> Text:
    """Render a word diff ([-removed-] {+added+}) in colour."""
    out = Text()
    i = 0
    while i < len(diff):
        for opener, closer, style in (("[-", "-]", "red strike"), ("{+", "+}", "green")):
            if diff.startswith(opener, i):
                j = diff.find(closer, i + 2)
                if j != -1:
                    out.append(diff[i + 2:j], style=style)
                    i = j + 2
                    break
        else:
            out.append(diff[i])
            i += 1
    return out


def diff_renderer(console: Console) -> Callable[[str], Text]:
    """How to print a word diff on `console`: in colour, or, where the styles would be dropped (a pipe, a file,
    NO_COLOR), as the diff's own [-removed-] {+added+} markers."""
    return colour_diff if console.color_system is not None and not console.no_color else Text


def diff(config_path: str, canary: str, target: str | None, count: int) -> int:
    from monitor.drift.baseline import Baseline
    from monitor.drift.events import word_diff

    config, analysis = _analysis(config_path)
    try:
        targets = _pair_targets(config, canary, target)
    except ValueError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    console = table_console()
    render = diff_renderer(console)
    for tid in targets:
        rows = analysis.repo.baselines(canary=canary, target=tid)
        latest = [o for o in analysis.store.observations(canary=canary, target=tid, limit=count * 3) if o.ok][:count]
        if not rows:
            console.print(f"[yellow]{canary} @ {tid}: no baseline yet[/] (it forms from the first "
                          f"{config.drift.baseline_size} successful observations)")
            continue
        base = Baseline.from_json(rows[0]["data"])
        reference = base.representative_text()
        console.rule(f"{canary} @ {tid}: baseline ({rows[0]['source']}, {rows[0]['created_at']:%Y-%m-%d %H:%M}) "
                     f"vs latest {len(latest)}")
        console.print(Text.assemble(("baseline: ", "bold"), reference[:1500]))
        for obs in latest:
            console.print(Text.assemble((f"\n{obs.started_at:%Y-%m-%d %H:%M:%S} #{obs.sample_index} "
                                         f"{obs.call.response_model or ''}: ", "bold"),
                                        render(word_diff(reference, obs.text))))
    return EXIT_OK


def _pair_targets(config: Any, canary: str, target: str | None) -> list[str]:
    """Return the configured targets of `canary` (only `target` if given); ValueError names the known ones."""
    canaries = [c.id for c in config.canaries]
    if canary not in canaries:
        raise ValueError(f"no canary {canary!r} in the configuration (known: {', '.join(canaries) or 'none'})")
    targets = [t.id for c, t in config.pairs() if c.id == canary]
    if not targets:
        raise ValueError(f"canary {canary!r} runs against no configured target")
    if target is not None and target not in targets:
        raise ValueError(f"no target {target!r} for canary {canary!r} in the configuration "
                         f"(known: {', '.join(targets)})")
    return [target] if target is not None else targets


def reference_n(data: dict[str, Any]) -> int:
    """Observations behind a stored baseline's rate reference: the ones it was built from plus those it learned
    while in control (``Baseline.absorb``), up to the caps."""
    totals = [int(r[1]) for r in (data.get("rates") or {}).values() if isinstance(r, list) and len(r) == 2]
    return max(totals, default=int(data.get("count") or 0))


def left_out(data: dict[str, Any]) -> str:
    """Failed calls a stored baseline left out of its error rate as outages (runs of ``drift.baseline_outage_run``
    or more in a row while it formed), and in how many runs."""
    out = data.get("outages") or {}
    calls, runs = int(out.get("left_out") or 0), int(out.get("outages") or 0)
    return f"{calls} calls in {runs} {'run' if runs == 1 else 'runs'}" if calls else "0"


def _since(row: dict[str, Any], firsts: dict[str, datetime]) -> str:
    """When a stored baseline's behaviour is from: a pinned one's range, its first answer (kept by id only: pruned
    past storage.retention_days) to its last, else when it was made."""
    if row["source"] != "pinned":
        return utc_time(row["created_at"])
    first = firsts.get(row["data"].get("first_obs_id") or "")
    return f"pinned range {utc_time(first) or '(pruned)'} .. {utc_time(row['data'].get('last_obs_at'))}"


def baseline(config_path: str, action: str, canary: str | None, target: str | None, note: str,
             since: str | None = None, until: str | None = None) -> int:
    from monitor.analysis import MIN_BASELINE_OBSERVATIONS

    if canary is None and action != "show":
        err_console.print(f"[red]error:[/] baseline {action} needs a canary (`baseline show` without one lists every "
                          "canary's)")
        return EXIT_CONFIG
    if action != "pin" and (since is not None or until is not None):
        err_console.print(f"[red]error:[/] --since and --until choose the observations of `baseline pin`; `baseline "
                          f"{action}` takes none (accept: current behaviour, from the open events' change on)")
        return EXIT_CONFIG
    config, analysis = _analysis(config_path)
    try:
        if canary is None:  # show: every configured pair (only `target`'s, if given)
            known = [t.id for t in config.targets]
            if target is not None and target not in known:
                raise ValueError(f"no target {target!r} in the configuration (known: {', '.join(known) or 'none'})")
            pairs = [(c.id, t.id) for c, t in config.pairs() if target in (None, t.id)]
        else:
            pairs = [(canary, t) for t in _pair_targets(config, canary, target)]
    except ValueError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    targets = [t for _, t in pairs]
    console = table_console()
    if action == "show":
        table = Table(title=f"baselines of {canary}" if canary else "baselines", header_style="bold")
        for col in ("canary", "target", "since", "source", "note", "ready", "built from", "reference",
                    "outages left out", "model / fingerprint", "active"):
            table.add_column(col)
        forming = []
        stored = {(cid, tid): analysis.repo.baselines(canary=cid, target=tid, active_only=False) for cid, tid in pairs}
        firsts = analysis.store.started_at(row["data"].get("first_obs_id") or "" for rows in stored.values()
                                           for row in rows if row["source"] == "pinned")
        for (cid, tid), rows in stored.items():
            if not rows:
                forming.append((cid, tid))
            for row in rows:
                d = row["data"]
                ident = ", ".join(v for vals in (d.get("identity") or {}).values() for v in vals)
                table.add_row(cid, tid, _since(row, firsts), row["source"], row["note"],
                              str(d.get("ready")), str(d.get("count")), str(reference_n(d)), left_out(d), ident,
                              "yes" if row["active"] else "")
        console.print(table)
        for cid, tid in forming:  # an empty table alone does not say why
            console.print(f"[yellow]{cid} @ {tid}: no baseline yet[/] (it forms from the first "
                          f"{config.drift.baseline_size} successful observations)")
        return EXIT_OK
    assert canary is not None
    # Every target's observations are chosen and checked before anything changes, so a refusal changes nothing.
    chosen: dict[str, list[Observation]] = {}
    if action in ("pin", "accept"):
        try:
            now = datetime.now(UTC)
            start, end = when(since, "--since", now), when(until, "--until", now)
            check_range(start, end, now)
            if action == "pin" and start is None:
                raise ValueError("baseline pin needs --since, the start of the behaviour to pin (--until defaults "
                                 "to now): the whole history would mix every behaviour the canary ever had")
        except ValueError as e:
            err_console.print(f"[red]error:[/] {escape(str(e))}")
            return EXIT_CONFIG
        size = config.drift.baseline_size
        for tid in targets:
            if action == "pin":
                # failed calls too: the baseline's error rate counts them as a forming baseline does (outages
                # left out), or a pinned baseline would expect no error at all
                rows = analysis.store.observations(canary=canary, target=tid, since=start, before=end,
                                                   limit=100_000, oldest_first=True)
                where = "in that range"
            else:
                # "Current behaviour" starts where the open events say the change did: observations from before
                # it would make the new baseline a mix of old and new.
                change = _change_point(analysis.repo.events(canary=canary, target=tid, state="open", limit=None))
                recent = analysis.store.observations(canary=canary, target=tid, limit=size * 2, since=change)
                rows = _latest_answers(list(reversed(recent)), size)
                where = f"among the latest {len(recent)} calls" if change is None else \
                    f"since the change at {change:%Y-%m-%d %H:%M:%S} (the open events' first observation; wait " \
                    "for more runs, or choose a range with baseline pin --since)"
            answers = sum(1 for o in rows if o.ok)
            if answers < MIN_BASELINE_OBSERVATIONS:
                err_console.print("[red]error:[/] " + escape(f"{canary} @ {tid}: only {answers} successful "
                                  f"observations {where}; a baseline needs at least {MIN_BASELINE_OBSERVATIONS} "
                                  "(nothing changed)"))
                return EXIT_CONFIG
            chosen[tid] = rows
    analysis.restore([(canary, t) for t in targets])
    for tid in targets:
        if action == "pin":
            rows = chosen[tid]
            updates = analysis.pin(canary, tid, rows, note)
            console.print(f"{canary} @ {tid}: baseline pinned to {_counted(rows)} "
                          f"from {rows[0].started_at:%Y-%m-%d %H:%M:%S} to {rows[-1].started_at:%Y-%m-%d %H:%M:%S}"
                          f" UTC; {_judged(updates)}")
        elif action == "accept":
            updates = analysis.accept_observations(canary, tid, chosen[tid], note)
            console.print(f"{canary} @ {tid}: current behaviour accepted as the baseline "
                          f"({_counted(chosen[tid])}); {len(updates)} open event(s) marked accepted")
        else:
            updates = analysis.reset(canary, tid, note)
            console.print(f"{canary} @ {tid}: baseline reset; the next {config.drift.baseline_size} successful "
                          f"observations form a new one; {len(updates)} open event(s) resolved")
    console.print("A running daemon applies this within 30 s (or at once on SIGHUP / POST /-/reload).")
    return EXIT_OK


PAIRS_SHOWN = 3  # canary x target pairs an error or note lists


def _pairs(pairs: set[tuple[str, str]]) -> str:
    """Canary x target pairs as `c1@t, c2@t`, a few of them, each cut short (a dump may hold thousands, or a
    megabyte-long name)."""
    names = [f"{c}@{t}" if len(c) + len(t) < 60 else f"{(c + '@' + t)[:60]}..." for c, t in sorted(pairs)]
    more = f" and {len(names) - PAIRS_SHOWN:,} more" if len(names) > PAIRS_SHOWN else ""
    return ", ".join(names[:PAIRS_SHOWN]) + more


def _latest_answers(rows: list[Observation], size: int) -> list[Observation]:
    """The latest `size` successful observations of `rows` (oldest first) and the failed calls among and after
    them, which the baseline's error rate counts as a forming baseline's does."""
    answers = [i for i, o in enumerate(rows) if o.ok][-size:]
    return rows[answers[0]:] if answers else []


def _judged(updates: list[Any]) -> str:
    """What a pin did with the open events: accepted those whose change the pinned range holds, kept the others."""
    if not updates:
        return "no open events"
    accepted = sum(1 for u in updates if u.action == "accepted")
    return (f"{accepted} open event(s) accepted (the pinned range shows their change), {len(updates) - accepted} "
            "kept open against the pinned range (it does not: they resolve once behaviour is back at it)")


def _counted(rows: list[Observation]) -> str:
    answers = sum(1 for o in rows if o.ok)
    failed = len(rows) - answers
    return f"{answers} observations" + (f" and {failed} failed call{'s' * (failed != 1)}" if failed else "")


def _change_point(events: list[dict[str, Any]]) -> Any:
    """The earliest first observation after the change among open events (None without any)."""
    return min((parse_time(e["first_obs_at"]) for e in events if e.get("first_obs_at")), default=None)


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
        err_console.print("[red]error:[/] " + escape(f"--zero-tolerance: unknown signal {shown(unknown[0])}; expected "
                                                    f"one of {known_names(known)}"))
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
            sys.stdout.write(json.dumps({k: d.get(k) for k in JSON_KEYS}, ensure_ascii=False) + "\n")
    else:
        table_console().print(events_table([event.to_json() for event in events],
                                      f"replay: {len(base)} baseline vs {len(cur)} current rows"))
    return EXIT_OK

