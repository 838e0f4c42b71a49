"""Load scenario files: parse YAML, merge each model's phases, and report every issue with file and field.

Each YAML piece (``defaults``, each phase) is validated on its own first, so an error names the piece that
has it; the pieces are then merged (a phase patches the one before, the first patches ``defaults``).
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.config.yamlsrc import load_yaml
from monitor.errors import ConfigError, ConfigIssue
from monitor.known_names import known as known_list
from monitor.sim.scenario import Phase, Scenario


def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _issues(file: str, prefix: str, exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        value = err.get("input") if err["type"] != "missing" else None
        reason = err["msg"].removeprefix("Value error, ")
        issues.append(ConfigIssue(file=file, field=_loc(prefix, loc), reason=reason, value=value))
    return issues


def _patch(file: str, prefix: str, raw: Any, issues: list[ConfigIssue], defaults: bool = False) -> dict[str, Any]:
    # Each YAML piece is validated as a phase on its own, so an error points at the piece that has it.
    if not isinstance(raw, dict):
        issues.append(ConfigIssue(file, prefix, "expected a mapping", value=raw))
        return {}
    try:
        phase = Phase.model_validate({"name": "defaults", **raw} if defaults else raw)
    except ValidationError as exc:
        issues.extend(_issues(file, prefix, exc))
        return {}
    dumped = phase.model_dump(exclude_unset=True)
    return {k: v for k, v in dumped.items() if k != "name"} if defaults else dumped


def scenario_from_dict(data: Any, file: str = "<scenario>") -> Scenario:
    """Validate a parsed scenario document, merging phases; raise ConfigError listing every issue."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, "<root>", "expected a mapping", value=data)])
    issues: list[ConfigIssue] = []
    raw_models = data.get("models")
    top = {k: v for k, v in data.items() if k not in ("models", "defaults")}
    defaults = _patch(file, "defaults", data.get("defaults") or {}, issues, defaults=True)
    models: dict[str, Any] = {}
    if isinstance(raw_models, dict):
        for model, mspec in raw_models.items():
            models[model] = _merge_model(file, str(model), mspec, defaults, issues)
    elif raw_models is not None:
        top["models"] = raw_models
    try:
        scenario = Scenario.model_validate({**top, "models": models} if isinstance(raw_models, dict) else top)
    except ValidationError as exc:
        issues.extend(i for i in _issues(file, "", exc) if not i.field.startswith("models."))
        scenario = None
    if scenario is not None:
        issues.extend(_voice_issues(file, scenario))
    if issues or scenario is None:
        raise ConfigError(issues)
    return scenario


def _merge_model(file: str, model: str, mspec: Any, defaults: dict[str, Any], issues: list[ConfigIssue]) -> Any:
    prefix = f"models.{model}"
    if not isinstance(mspec, dict) or set(mspec) != {"phases"} or not isinstance(mspec["phases"], list):
        issues.append(ConfigIssue(file, prefix, "expected a mapping with one key, phases (a list)", value=mspec))
        return None
    merged: dict[str, Any] = dict(defaults)
    phases = []
    for i, raw in enumerate(mspec["phases"]):
        where = f"{prefix}.phases[{i}]"
        patch = _patch(file, where, raw, issues)
        merged = {**{k: v for k, v in merged.items() if k not in ("after", "after_requests", "name")}, **patch}
        if i > 0 and patch and "after" not in patch and "after_requests" not in patch:
            issues.append(ConfigIssue(file, where, "every phase after the first needs after or after_requests"))
        try:
            phases.append(Phase.model_validate(merged))
        except ValidationError as exc:
            if patch:  # a broken patch was reported already
                issues.extend(_issues(file, where, exc))
    names = [p.name for p in phases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        issues.append(ConfigIssue(file, f"{prefix}.phases", "phase names must be unique", value=dupes))
    return {"phases": phases}


def _voice_issues(file: str, scenario: Scenario) -> list[ConfigIssue]:
    from monitor.sim.textgen import BUILTIN_VOICES

    known = set(BUILTIN_VOICES) | set(scenario.voices)
    return [
        ConfigIssue(file, f"models.{m}.phases[{i}].voice", f"unknown voice {known_list(sorted(known), p.voice)}",
                    value=p.voice)
        for m, spec in scenario.models.items()
        for i, p in enumerate(spec.phases)
        if p.voice not in known
    ]


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; every problem names the file, line and field."""
    src = load_yaml(Path(path), interpolate=False)
    try:
        return scenario_from_dict(src.data, src.path)
    except ConfigError as e:
        raise ConfigError([i if i.line is not None else replace(i, line=src.line_of_field(i.field))
                           for i in e.issues]) from None


def builtin_scenario(name: str) -> Scenario:
    """Load a scenario shipped in ``monitor/sim/scenarios`` (``demo``, ``steady``, ``faults``)."""
    ref = resources.files("monitor.sim") / "scenarios" / f"{name.removesuffix('.yaml')}.yaml"
    if not ref.is_file():
        names = sorted(p.name.removesuffix(".yaml") for p in (resources.files("monitor.sim") / "scenarios").iterdir()
                       if p.name.endswith(".yaml"))
        raise ConfigError([ConfigIssue("<builtin>", "name", f"no such scenario {known_list(names, name)}",
                                       value=name)])
    with resources.as_file(ref) as path:
        return load_scenario(path)
