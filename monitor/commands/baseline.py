"""`baseline show|accept|reset|pin`: what each canary x target is compared against, and the operator's say in it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.table import Table

from monitor import jsonl
from monitor.commands.common import (
    EXIT_CONFIG,
    EXIT_OK,
    check_range,
    err_console,
    known_names,
    table_console,
    utc_time,
    when,
)
from monitor.commands.drift import analysis_on, open_stored
from monitor.commands.drift import forming as forming_note
from monitor.console import cell, write_line
from monitor.domain import Observation
from monitor.errors import shown
from monitor.timeinput import parse_time


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


# Observations (failed calls included) `baseline pin` reads from its range at most: a baseline built while pinning
# keeps every answer's continuous values (its samples are capped only as it learns later), and the daemon loads it at
# every refresh. A larger range is refused rather than pinned from its first part.
PIN_MAX_OBSERVATIONS = 100_000
OPERATOR_CHOSEN = ("pinned", "accepted")  # baselines built from a range of stored answers an operator chose
REMOVED = "(removed)"  # `baseline show`'s mark, after the target, of a pair the configuration no longer has


def _since(row: dict[str, Any], firsts: dict[str, datetime]) -> str:
    """When a stored baseline's behaviour is from: a pinned or accepted one's range, its first answer (kept by id
    only: pruned past storage.retention_days) to its last, else when it was made."""
    if row["source"] not in OPERATOR_CHOSEN:
        return utc_time(row["created_at"])
    first = firsts.get(row["data"].get("first_obs_id") or "")
    return f"{row['source']} range {utc_time(first) or '(pruned)'} .. {utc_time(row['data'].get('last_obs_at'))}"


def as_json(row: dict[str, Any], firsts: dict[str, datetime]) -> dict[str, Any]:
    """One stored baseline as `baseline show --json` writes it: `/api/baselines`' fields and the table's columns
    (`since`: when it was made, or a pinned or accepted one's first answer, null once pruned; `until`: that one's
    last answer), times ISO 8601 as stored."""
    d = row["data"]
    chosen = row["source"] in OPERATOR_CHOSEN
    first = firsts.get(d.get("first_obs_id") or "") if chosen else row["created_at"]
    out = d.get("outages") or {}
    return {"id": row["id"], "canary": row["canary"], "target": row["target"],
            "created_at": row["created_at"].isoformat(), "source": row["source"], "note": row["note"],
            "active": row["active"], "since": first.isoformat() if first else None,
            "until": d.get("last_obs_at") if chosen else None, "ready": d.get("ready"), "built_from": d.get("count"),
            "reference": reference_n(d), "outages_left_out": int(out.get("left_out") or 0),
            "outage_runs": int(out.get("outages") or 0), "identity": d.get("identity") or {}}


def reached_targets(config: Any, repo: Any, canary: str, target: str | None) -> tuple[list[str], set[str]]:
    """The targets a `baseline` command on `canary` reaches (only `target`, if given), and those of them the
    configuration no longer has: the canary's configured targets, or, for a canary the configuration no longer has,
    the targets of its stored drift events and baselines; `--target` also names a removed target of a configured
    canary (one left with no configured target needs it). So an event left open by a removal can be ended without
    adding the pair back. ValueError names the known ones."""
    canaries = [c.id for c in config.canaries]
    configured = [t.id for c, t in config.pairs() if c.id == canary]
    stored = sorted(t for _, t in repo.pairs(canary) if t not in configured)
    if not configured and not stored:
        if canary in canaries:
            raise ValueError(f"canary {shown(canary)} runs against no configured target (and has no stored drift "
                             "event or baseline)")
        known = [*canaries, *sorted({c for c, _ in repo.pairs()} - set(canaries))]
        raise ValueError(f"no canary {shown(canary)} in the configuration or in any stored drift event or baseline "
                         f"(known: {known_names(known, canary)})")
    if target is None:
        if not configured and canary in canaries:
            # a configured canary's run reaches its configured targets only: none is not "every stored one"
            raise ValueError(f"canary {shown(canary)} runs against no configured target; its stored drift events and "
                             f"baselines are of {known_names(stored)} (no longer configured): name one with --target")
        return (configured, set()) if configured else (stored, set(stored))
    if target not in configured and target not in stored:
        raise ValueError(f"no target {shown(target)} for canary {shown(canary)} in the configuration or in its "
                         f"stored drift events and baselines (known: {known_names([*configured, *stored], target)})")
    return [target], set() if target in configured else {target}


def baseline(config_path: str, action: str, canary: str | None, target: str | None, note: str,
             since: str | None = None, until: str | None = None, json_out: bool = False) -> int:
    from monitor import operator_baselines as operator
    from monitor.operator_baselines import MIN_BASELINE_OBSERVATIONS
    from monitor.store.drift_repo import DriftRepository

    # The command line gives each action only its own options (`baseline show --note` is a usage error), and a
    # canary to every action but show
    assert canary is not None or action == "show"
    config, store = open_stored(config_path)
    repo = DriftRepository(store.engine)
    removed: set[str] = set()  # targets of the canary's pairs the configuration no longer has
    configured = {(c.id, t.id) for c, t in config.pairs()}
    try:
        if canary is None:  # show: every configured pair and every stored one (only `target`'s, if given)
            known = [*(t.id for t in config.targets), *sorted({t for _, t in repo.pairs()} - {t.id for t in config.targets})]
            if target is not None and target not in known:
                raise ValueError(f"no target {shown(target)} in the configuration or in any stored drift event or "
                                 f"baseline (known: {known_names(known, target)})")
            pairs = [(c.id, t.id) for c, t in config.pairs() if target in (None, t.id)]
        else:
            targets, removed = reached_targets(config, repo, canary, target)
            pairs = [(canary, t) for t in targets]
    except ValueError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    analysis = analysis_on(config, store)
    targets = [t for _, t in pairs]
    console = table_console()
    if action == "show":
        # a pair the configuration no longer has is shown too, marked removed: `reset` reaches its baselines, and
        # the pair resumes from them if it comes back
        pairs += sorted(p for p in repo.pairs(canary) if p not in configured and p not in pairs
                        and target in (None, p[1]))
        table = Table(title=f"baselines of {escape(canary)}" if canary else "baselines", header_style="bold")
        for col in ("canary", "target", "since", "source", "note", "ready", "built from", "reference",
                    "outages left out", "model / fingerprint", "active"):
            table.add_column(col)
        forming = []
        stored = {(cid, tid): analysis.repo.baselines(canary=cid, target=tid, active_only=False) for cid, tid in pairs}
        firsts = analysis.store.started_at(row["data"].get("first_obs_id") or "" for rows in stored.values()
                                           for row in rows if row["source"] in OPERATOR_CHOSEN)
        for (cid, tid), rows in stored.items():
            if not rows and (cid, tid) in configured:  # a removed pair's events alone: no baseline to show
                forming.append((cid, tid))
            for row in rows:
                if json_out:
                    write_line(jsonl.line(as_json(row, firsts) | {"configured": (cid, tid) in configured}))
                    continue
                d = row["data"]
                ident = ", ".join(v for vals in (d.get("identity") or {}).values() for v in vals)
                # Text cells: a note, a served model or a fingerprint is data, never console markup
                shown_target = tid if (cid, tid) in configured else f"{tid} {REMOVED}"
                table.add_row(*map(cell, (cid, shown_target, _since(row, firsts), row["source"], row["note"] or "",
                                          str(d.get("ready")), str(d.get("count")), str(reference_n(d)), left_out(d),
                                          ident, "yes" if row["active"] else "")))
        if not json_out and table.row_count:  # no rows: the lines below say why, an empty table would not
            console.print(table)
        for cid, tid in forming:  # an empty table alone does not say why
            (err_console if json_out else console).print(f"[yellow]{escape(cid)} @ {escape(tid)}: no baseline yet[/] "
                                                         f"{escape(forming_note(config))}")
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
                                                   limit=PIN_MAX_OBSERVATIONS + 1, oldest_first=True)
                if len(rows) > PIN_MAX_OBSERVATIONS:
                    err_console.print("[red]error:[/] " + escape(_too_many(analysis.store, canary, tid, start, end,
                                                                           rows, now)))
                    return EXIT_CONFIG
                where = "in that range"
            else:
                # "Current behaviour" starts where the open events say the change did: observations from before
                # it would make the new baseline a mix of old and new.
                change = _change_point(analysis.repo.events(canary=canary, target=tid, state="open", limit=None))
                recent = analysis.store.observations(canary=canary, target=tid, limit=size * 2, since=change)
                rows = _latest_answers(list(reversed(recent)), size)
                wait = "no more come for a pair not configured: reset it" if tid in removed else \
                    "wait for more runs"
                where = f"among the latest {len(recent)} calls" if change is None else \
                    f"since the change at {utc_time(change)} (the open events' first observation; {wait}, or " \
                    "choose a range with baseline pin --since)"
            answers = sum(1 for o in rows if o.ok)
            if answers < MIN_BASELINE_OBSERVATIONS:
                err_console.print("[red]error:[/] " + escape(f"{canary} @ {tid}: only {answers} successful "
                                  f"observations {where}; a baseline needs at least {MIN_BASELINE_OBSERVATIONS} "
                                  "(nothing changed)"))
                return EXIT_CONFIG
            chosen[tid] = rows
    for tid in sorted(removed):
        console.print(f"note: {escape(canary)} @ {escape(tid)} is not in the configuration (nothing watches it): its "
                      "stored baseline and events change; a receiver hears of an end only where its alert still "
                      "fires", highlight=False)
    analysis.restore([(canary, t) for t in targets])
    for tid in targets:
        if action == "pin":
            rows = chosen[tid]
            updates = operator.pin(analysis, canary, tid, rows, note)
            console.print(f"{canary} @ {tid}: baseline pinned to {_counted(rows)} "
                          f"from {utc_time(rows[0].started_at)} to {utc_time(rows[-1].started_at)}; "
                          f"{_judged(updates)}")
        elif action == "accept":
            updates = operator.accept_observations(analysis, canary, tid, chosen[tid], note)
            console.print(f"{canary} @ {tid}: current behaviour accepted as the baseline "
                          f"({_counted(chosen[tid])}); {len(updates)} open event(s) marked accepted")
        else:
            updates = operator.reset(analysis, canary, tid, note)
            forms = "if the pair is configured again, its next" if tid in removed else "the next"
            console.print(f"{canary} @ {tid}: baseline reset; {forms} {config.drift.baseline_size} successful "
                          f"observations form a new one; {len(updates)} open event(s) resolved")
    if action in ("reset", "accept") and target is None and not removed:
        _hint_stray(console, analysis.repo, canary, action, targets)
    console.print("A running daemon applies this within 30 s (or at once on SIGHUP / POST /-/reload).")
    return EXIT_OK


def _hint_stray(console: Any, repo: Any, canary: str, action: str, configured: list[str]) -> None:
    """Say which targets the configuration no longer has still hold open events of a configured `canary`: a run
    without --target leaves them open (it reaches the configured targets only), and `drift` shows them `open (not
    configured)`."""
    stray = sorted({e["target"] for e in repo.events(canary=canary, state="open", limit=None)} - set(configured))
    if stray:
        each = " (a target a run)" if len(stray) > 1 else ""
        console.print(f"hint: {escape(canary)} also has open drift events on {escape(known_names(stray))} (no longer "
                      f"configured; left open): `baseline {action} {escape(canary)} --target {escape(stray[0])}` "
                      f"ends them{each}", highlight=False)


def _too_many(store: Any, canary: str, target: str, start: datetime | None, end: datetime | None,
              oldest: list[Observation], now: datetime) -> str:
    """Why a range is refused for holding more than PIN_MAX_OBSERVATIONS observations, and two ranges that fit."""
    count = store.count_observations(canary=canary, target=target, since=start, before=end)
    first_out = oldest[PIN_MAX_OBSERVATIONS].started_at  # the oldest observation past the cap
    return (f"{canary} @ {target}: the range {utc_time(start)} .. {utc_time(end) or f'now ({utc_time(now)})'} holds "
            f"{count:,} observations (failed calls included), more than baseline pin reads ({PIN_MAX_OBSERVATIONS:,}; "
            f"nothing changed): choose a shorter range, --until {utc_time(first_out)} for its oldest "
            f"{PIN_MAX_OBSERVATIONS:,} or fewer, or a later --since")


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
