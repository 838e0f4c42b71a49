"""Cross-references in a config: canaries, judges and embeddings naming targets, alert routes naming sinks.

They are read from the parsed documents rather than the validated models, so a reference is checked wherever it is
written, also inside a part that failed validation for something else: one run of `check-config` reports it with
the rest. A reference is judged only where that cannot mislead: against every id written, valid or not (a canary
naming a target that exists but is itself invalid gets no "unknown target" on top of that target's own errors),
and not at all while some target (or sink) has no id (name) that can be read, as it might be the one meant; nor is
a reference or an id that stands in for a value the YAML could not give (an unset ${VAR}: that is reported).
"""

from __future__ import annotations

from typing import Any

from monitor.config.models import Target
from monitor.config.yamlsrc import Located, at, dotted
from monitor.errors import ConfigIssue, named
from monitor.known_names import known


def written_ids(src: Located, loc: tuple[Any, ...], key: str) -> list[str] | None:
    """Return the `key` of every item of the list at `loc`, in order; None when that cannot be told (no list there,
    or an item without a string `key`)."""
    items = src.written(*loc)
    if not isinstance(items, list):
        return None
    ids = [src.written(*loc, i, key) for i in range(len(items))]
    return [i for i in ids if isinstance(i, str)] if all(isinstance(i, str) for i in ids) else None


def duplicates(src: Located, loc: tuple[Any, ...], key: str) -> list[tuple[int, str]]:
    """Return (index, value) of each item of the list at `loc` whose string `key` an earlier item already has."""
    items = src.written(*loc)
    seen: set[str] = set()
    out = []
    for i in range(len(items) if isinstance(items, list) else 0):
        value = src.written(*loc, i, key)
        if isinstance(value, str):
            if value in seen:
                out.append((i, value))
            seen.add(value)
    return out


def monitor_references(src: Located, valid: dict[str, Target]) -> list[ConfigIssue]:
    """Check monitor.yaml's own references: unique target ids and sink names, the embeddings and refusal judge
    targets, and the sinks each route names. `valid` holds the targets that passed validation, by id."""
    issues = []

    def issue(loc: tuple[Any, ...], reason: str, value: object) -> None:
        issues.append(ConfigIssue(src.path, dotted(loc), reason, src.line_of(loc), value))

    for i, name in duplicates(src, ("targets",), "id"):
        issue(("targets", i, "id"), "duplicate target id", name)
    ids = written_ids(src, ("targets",), "id")
    emb = src.written("drift", "embeddings", "target")
    if ids is not None and isinstance(emb, str):
        if emb not in ids:
            issue(("drift", "embeddings", "target"), unknown_target(ids, emb), emb)
        elif emb in valid and valid[emb].provider != "openai":
            issue(("drift", "embeddings", "target"), "embeddings need an OpenAI-compatible target (provider: openai)",
                  emb)
    judge = src.written("refusal", "judge_target")
    if ids is not None and isinstance(judge, str) and judge not in ids:
        issue(("refusal", "judge_target"), unknown_target(ids, judge), judge)
    for i, name in duplicates(src, ("alerts", "sinks"), "name"):
        issue(("alerts", "sinks", i, "name"), "duplicate sink name", name)
    no_sinks = at(src.data, "alerts", "sinks") is None and ("alerts", "sinks") not in src.stand_ins
    names = [] if no_sinks else written_ids(src, ("alerts", "sinks"), "name")
    routes = src.written("alerts", "routes")
    if names is not None and isinstance(routes, list):
        for i in range(len(routes)):
            wanted = src.written("alerts", "routes", i, "sinks")
            for j in range(len(wanted) if isinstance(wanted, list) else 0):
                name = src.written("alerts", "routes", i, "sinks", j)
                if isinstance(name, str) and name not in names:
                    issue(("alerts", "routes", i, "sinks", j), f"unknown sink {known(names, name)}", name)
    return issues


def canary_references(src: Located, index: int, canary_id: str, ids: list[str] | None) -> list[ConfigIssue]:
    """Check the targets a canary (the `index`-th of its probe file) names: its own, and its judges'. `ids` are
    the target ids monitor.yaml writes (None: they cannot be told, so nothing is judged)."""
    if ids is None:
        return []
    issues = []
    here = ("canaries", index)
    targets = src.written(*here, "targets")
    for j in range(len(targets) if isinstance(targets, list) else 0):
        name = src.written(*here, "targets", j)
        if isinstance(name, str) and name not in ids:
            issues.append(ConfigIssue(src.path, f"canary {named(canary_id)}: targets[{j}]", unknown_target(ids, name),
                                      src.line_of((*here, "targets", j)), name))
    checks = src.written(*here, "checks")
    for i in range(len(checks) if isinstance(checks, list) else 0):
        judge = src.written(*here, "checks", i, "judge_target")
        if src.written(*here, "checks", i, "type") == "llm_judge" and isinstance(judge, str) and judge not in ids:
            issues.append(ConfigIssue(src.path, f"canary {named(canary_id)}: checks[{i}].judge_target",
                                      unknown_target(ids, judge), src.line_of((*here, "checks", i, "judge_target")),
                                      judge))
    return issues


def unknown_target(ids: list[str], name: str) -> str:
    return f"unknown target {known(ids, name)}"  # as a route's unknown sink says
