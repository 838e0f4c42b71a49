"""Load monitor.yaml and the probe files it names into one validated :class:`Config`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from monitor.alerts.config import AlertsConfig
from monitor.checks import canary_issues
from monitor.config.models import (
    Canary,
    Daemon,
    DriftConfig,
    Http,
    MonitorFile,
    ProbeFile,
    RefusalConfig,
    Storage,
    Target,
)
from monitor.config.yamlsrc import Located, dotted, load_yaml
from monitor.domain import EMBEDDINGS_CANARY, JUDGE_CANARY
from monitor.drift.settings import DriftSettings
from monitor.errors import ConfigError, ConfigIssue


@dataclass(frozen=True)
class Config:
    """Everything the daemon runs from: targets, canaries (with their source files) and settings."""

    path: str
    targets: tuple[Target, ...]
    canaries: tuple[Canary, ...]
    storage: Storage
    http: Http
    daemon: Daemon
    drift: DriftConfig
    alerts: AlertsConfig
    refusal: RefusalConfig
    probe_files: tuple[str, ...]

    def target(self, target_id: str) -> Target:
        return next(t for t in self.targets if t.id == target_id)

    def canary(self, canary_id: str) -> Canary:
        return next(c for c in self.canaries if c.id == canary_id)

    def targets_of(self, canary: Canary) -> list[Target]:
        """Return the targets a canary runs against (all of them unless it names some)."""
        if canary.targets is None:
            return list(self.targets)
        return [t for t in self.targets if t.id in canary.targets]

    def pairs(self) -> list[tuple[Canary, Target]]:
        return [(c, t) for c in self.canaries for t in self.targets_of(c)]

    def observations_per_day(self) -> float:
        """How many observations every canary x target stream together makes (and drift analyses) per day."""
        return sum(c.samples * 86_400 / c.schedule.interval_s for c, _ in self.pairs())

    def drift_settings(self) -> DriftSettings:
        """The drift engine's settings, with a fleet budget (`false_alarms_per_day`) split over the streams."""
        return self.drift.settings(self.observations_per_day())

    def false_alarms_per_day(self) -> float:
        """The false drift events per day the budget allows across every stream (the fleet's total)."""
        observations = self.observations_per_day()
        return self.drift.settings(observations).false_alarms_per_10k * observations / 10_000

    def service_pairs(self) -> set[tuple[str, str]]:
        """The (canary, target) ids the daemon's own calls are stored and measured under: judges', embeddings'."""
        judges = {getattr(check, "judge_target", None) for c in self.canaries for check in c.checks}
        pairs = {(JUDGE_CANARY, t) for t in judges | {self.refusal.judge_target} if t}
        if self.drift.enabled and self.drift.embeddings is not None:
            pairs.add((EMBEDDINGS_CANARY, self.drift.embeddings.target))
        return pairs


M = TypeVar("M", bound=BaseModel)
_SECRETISH = re.compile(r"key|secret|token|password", re.I)
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]+@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.I)


def _validate(model: type[M], src: Located, issues: list[ConfigIssue]) -> M | None:
    try:
        return model.model_validate(src.data if src.data is not None else {})
    except ValidationError as e:
        for err in e.errors():
            loc = _strip_union_tags(tuple(err["loc"]))
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key"
            elif not loc and err["type"] in ("model_type", "dict_type"):  # a list or a scalar as the whole file
                keys = ", ".join(f"{k}:" for k in model.model_fields if k != "source")
                reason = f"expected a mapping at the top level (keys {keys}), got a {type(err.get('input')).__name__}"
            value = err.get("input") if err["type"] != "missing" else None
            if isinstance(value, dict | list):
                value = None
            elif isinstance(value, str) and loc and (_SECRETISH.search(str(loc[-1])) or str(loc[-1]).endswith("_env")):
                # never echo something that may be a secret (a number, e.g. max_token: 5, is not); a *_env value
                # refused is most often the secret itself (a Slack URL given to url_env)
                value = "<redacted>"
            elif isinstance(value, str):
                value = redact_url(value)
            issues.append(ConfigIssue(src.path, dotted(loc), reason, src.line_of(loc), value))
        return None


def redact_url(text: str) -> str:
    """Replace the password of a URL (user:PASSWORD@ or ?password=) with <redacted>."""
    text = _URL_PASSWORD.sub(r"\1<redacted>@", text)
    return _QUERY_PASSWORD.sub(r"\1<redacted>", text)


def _strip_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's discriminator/union tags (e.g. 'contains', 'function-after[...]') from an error path."""
    known = {"function-after", "function-before", "function-wrap"}
    return tuple(p for p in loc if not (isinstance(p, str) and any(p.startswith(k) for k in known)))


def probe_paths(entries: list[str], base: Path) -> tuple[list[Path], list[str]]:
    """Expand probe entries (files, folders, globs) relative to `base`; return files and missing entries."""
    files: list[Path] = []
    missing: list[str] = []
    for entry in entries:
        p = (base / entry) if not Path(entry).is_absolute() else Path(entry)
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix in {".yaml", ".yml"} and q.is_file())
        elif p.is_file():
            files.append(p)
        elif any(ch in entry for ch in "*?["):
            # Path.glob takes relative patterns only: an absolute one globs from its root
            root = Path(p.anchor) if p.is_absolute() else base
            found = sorted(root.glob(str(p.relative_to(p.anchor)) if p.is_absolute() else entry))
            files += found
            if not found:
                missing.append(entry)
        else:
            missing.append(entry)
    return files, missing


def load_probe_files(paths: list[Path], environ: Mapping[str, str] | None = None) -> list[Canary]:
    """Load and validate canaries from probe files; ids must be unique across files."""
    issues: list[ConfigIssue] = []
    canaries = _load_probes(paths, environ, issues)
    if issues:
        raise ConfigError(issues)
    return canaries


def _load_probes(paths: list[Path], environ: Mapping[str, str] | None, issues: list[ConfigIssue],
                 where: dict[str, tuple[Located, int]] | None = None) -> list[Canary]:
    """Validate the probe files; `where` (if given) receives each canary's parsed file and index, for line numbers."""
    seen: dict[str, str] = {}
    canaries: list[Canary] = []
    for path in paths:
        try:
            src = load_yaml(path, environ=dict(environ) if environ is not None else None)
        except ConfigError as e:
            issues += e.issues
            continue
        pf = _validate(ProbeFile, src, issues)
        if pf is None:
            continue
        for i, c in enumerate(pf.canaries):
            if c.id in seen:
                issues.append(ConfigIssue(str(path), f"canaries[{i}].id",
                                          f"duplicate canary id (also defined in {seen[c.id]})",
                                          src.line_of(("canaries", i, "id")), c.id))
                continue
            seen[c.id] = str(path)
            if where is not None:
                where[c.id] = (src, i)
            canaries.append(c.model_copy(update={"source": str(path)}))
    return canaries


def restart_only(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """Split a reloaded config: return it with the settings only a restart can change kept as running, and
    the names of those that differ (the store, the listen address and the drift engine's settings)."""
    changed = [name for name, old, new in (
        ("storage.url", running.storage.url, loaded.storage.url),
        ("http.listen", running.http.listen, loaded.http.listen),
        ("drift", running.drift, loaded.drift),
    ) if old != new]
    kept = replace(loaded, storage=loaded.storage.model_copy(update={"url": running.storage.url}),
                   http=loaded.http.model_copy(update={"listen": running.http.listen}), drift=running.drift)
    return kept, changed


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load monitor.yaml and its probe files; raise ConfigError listing every problem found."""
    path = Path(path)
    issues: list[ConfigIssue] = []
    src = load_yaml(path, environ=dict(environ) if environ is not None else None)
    mf = _validate(MonitorFile, src, issues)
    if mf is None:
        raise ConfigError(issues)
    ids = [t.id for t in mf.targets]
    for i, t in enumerate(mf.targets):
        if ids.index(t.id) != i:
            issues.append(ConfigIssue(str(path), f"targets[{i}].id", "duplicate target id",
                                      src.line_of(("targets", i, "id")), t.id))
    emb = mf.drift.embeddings
    if emb is not None and emb.target not in ids:
        issues.append(ConfigIssue(str(path), "drift.embeddings.target", f"unknown target (known: {', '.join(ids)})",
                                  src.line_of(("drift", "embeddings", "target")), emb.target))
    elif emb is not None and next(t for t in mf.targets if t.id == emb.target).provider != "openai":
        issues.append(ConfigIssue(str(path), "drift.embeddings.target",
                                  "embeddings need an OpenAI-compatible target (provider: openai)",
                                  src.line_of(("drift", "embeddings", "target")), emb.target))
    judge = mf.refusal.judge_target
    if judge is not None and judge not in ids:
        issues.append(ConfigIssue(str(path), "refusal.judge_target", f"unknown target (known: {', '.join(ids)})",
                                  src.line_of(("refusal", "judge_target")), judge))
    files, missing = probe_paths(mf.probes, path.parent)
    for m in missing:
        j = mf.probes.index(m)
        issues.append(ConfigIssue(str(path), f"probes[{j}]", "no such probe file or folder",
                                  src.line_of(("probes", j)), m))
    where: dict[str, tuple[Located, int]] = {}
    canaries = _load_probes(files, environ, issues, where)
    unknown = f"unknown target (known: {', '.join(ids)})"
    for c in canaries:
        csrc, ci = where[c.id]

        def line(*sub: Any, csrc: Located = csrc, ci: int = ci) -> int | None:
            return csrc.line_of(("canaries", ci, *sub))

        for i, reason in canary_issues(c.checks, tools=c.tools or []):
            issues.append(ConfigIssue(c.source, f"canary {c.id}: checks[{i}]", reason, line("checks", i)))
        for i, check in enumerate(c.checks):
            judge = getattr(check, "judge_target", None)
            if judge is not None and judge not in ids:
                issues.append(ConfigIssue(c.source, f"canary {c.id}: checks[{i}].judge_target", unknown,
                                          line("checks", i, "judge_target"), judge))
        for j, name in enumerate(c.targets or []):
            if name not in ids:
                issues.append(ConfigIssue(c.source, f"canary {c.id}: targets[{j}]", unknown, line("targets", j), name))
    if issues:
        raise ConfigError(issues)
    return Config(
        path=str(path), targets=tuple(mf.targets), canaries=tuple(canaries), storage=mf.storage,
        http=mf.http, daemon=mf.daemon, drift=mf.drift, alerts=mf.alerts, refusal=mf.refusal,
        probe_files=tuple(str(f) for f in files),
    )
