"""Checks named by their order: a canary's checks of one type left unnamed (or given one name) are told apart by
position (`contains`, `contains#2`), so an edit to one hands the next its stored history, baselines and drift events.

A check's result name is its identity in the store, in the `check` metric label and in its drift signal
(`check:NAME`). Two unnamed `contains` checks get `contains` and `contains#2` from where they stand: removing the
first renames the second `contains`, and the history and any open event on `check:contains` silently become
another check's. Not refused (the names work until a neighbour is edited): warned of by check-config, at the
daemon's start and by a reload that makes or changes such a group; and a reload that renames a check so, whose
group may be gone by then, says which check now goes by which name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.checks import check_names
from monitor.config.canary import Canary

WHY = "their names come from their order, and removing or reordering one hands its history and drift events to another"


def order_named(canaries: Sequence[Canary], running: Sequence[Canary] | None = None) -> list[str]:
    """Warnings for each group of a canary's checks that share a name (unnamed: their type), naming the probe file
    and line of its first check, the canary, the checks and the names their order gives them. `running` (the
    running config's canaries, at a reload): only the groups it does not have as they are now."""
    before = {c.id: c for c in running} if running is not None else None
    out = []
    for c in canaries:
        names = check_names(c.checks)
        for base, where in _groups(c.checks).items():
            if len(where) < 2:
                continue
            old = before.get(c.id) if before is not None else None
            if old is not None and [old.checks[i] for i in _groups(old.checks).get(base, [])] == \
                    [c.checks[i] for i in where]:
                continue  # warned of already, at the start or the reload that made it so
            out.append(_warning(c, base, where, names))
    return out


def _groups(checks: Sequence[Any]) -> dict[str, list[int]]:
    """Each name a check goes by before the suffix (its `name`, else its type) -> the indices of the checks."""
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(checks):
        groups.setdefault(spec.name or spec.type, []).append(i)
    return groups


def _warning(c: Canary, base: str, where: list[int], names: list[str]) -> str:
    unnamed = [c.checks[i].name is None for i in where]
    what = (f"unnamed {base} checks" if all(unnamed) else f"checks named {base}" if not any(unnamed)
            else f"checks called {base}, by their type or their name")
    fix = "name them" if all(unnamed) else "give them names of their own"
    shown = [f"checks[{i}]" for i in where]
    place = c.where_of(f"checks[{where[0]}]") or c.source
    return (f"{place + ': ' if place else ''}canary {c.id}: {', '.join(shown[:-1])} and {shown[-1]} ({what}) are named "
            f"by their order ({', '.join(names[i] for i in where)}): {fix} (`name: ...`): {WHY}")


def renamed_by_order(canaries: Sequence[Canary], running: Sequence[Canary]) -> list[str]:
    """Warnings for each check a reload renamed without its own edit (a check before it removed or moved): the same
    check (equal as written) in the `running` config's canary under another result name."""
    before = {c.id: c for c in running}
    out = []
    for c in canaries:
        old = before.get(c.id)
        if old is None:
            continue
        old_names, names = check_names(old.checks), check_names(c.checks)
        matched: set[int] = set()
        for i, spec in enumerate(c.checks):
            j = next((k for k, o in enumerate(old.checks) if k not in matched and o == spec), None)
            if j is None:
                continue
            matched.add(j)
            if old_names[j] != names[i]:
                out.append(_renamed(c, i, old_names[j], names[i], names[i] in old_names))
    return out


def _renamed(c: Canary, i: int, was: str, now: str, taken: bool) -> str:
    place = c.where_of(f"checks[{i}]") or c.source
    whose = f"check:{now}, another check's until now" if taken else f"check:{now}"
    return (f"{place + ': ' if place else ''}canary {c.id}: checks[{i}] ({c.checks[i].type}) is now called {now}, "
            f"where it was {was} (a check before it was removed or moved): its results now meet the stored history, "
            f"baseline and drift events of {whose}; name checks that share a type (`name: ...`)")
