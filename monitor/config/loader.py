"""Load monitor.yaml and the probe files it names into one validated :class:`Config`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from monitor.alerts.config import REFERENCES_CHECKED, AlertsConfig
from monitor.checks import canary_issues
from monitor.config.links import broken_link
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
from monitor.config.references import canary_references, monitor_references, written_ids
from monitor.config.secrets import literal_header_issues
from monitor.config.timing import runs_per_day
from monitor.config.validate import validate, validate_each
from monitor.config.yamlsrc import Located, at, load_yaml
from monitor.domain import EMBEDDINGS_CANARY, JUDGE_CANARY
from monitor.drift.settings import DriftSettings
from monitor.errors import ConfigError, ConfigIssue, named
from monitor.webconfig.model import WebConfigFile
from monitor.webconfig.tls import (
    FILE_FIELDS,
    ServerTls,
    TlsFileError,
    TlsFilesError,
    build_server_tls,
    check_files,
    tls_restart_only,
)

M = TypeVar("M", bound=BaseModel)
# the store's settings its engine was made with: a reload keeps the running ones (its connections are open)
STORE_SESSION = ("connect_timeout", "statement_timeout", "lock_timeout")


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
    web: WebConfigFile = WebConfigFile()  # TLS and basic auth of the HTTP listener
    web_file: str | None = None  # the web config file read (--web.config.file, else http.web_config_file)
    web_flag: str | None = None  # --web.config.file as given to `run`: a reload reads it again
    # The listener's context, built from web.tls_server_config when loading checked its files (None: not built)
    listener_tls: ServerTls | None = field(default=None, compare=False, repr=False)
    # `file:line: probes[j]: ...` for each probe folder that holds no probe file (check-config warns of them)
    empty_probe_folders: tuple[str, ...] = ()

    def target(self, target_id: str) -> Target:
        return next(t for t in self.targets if t.id == target_id)

    def canary(self, canary_id: str) -> Canary:
        return next(c for c in self.canaries if c.id == canary_id)

    def targets_of(self, canary: Canary) -> list[Target]:
        """Return the targets a canary runs against: those it names, else every target open to all canaries."""
        if canary.targets is None:
            return [t for t in self.targets if t.canaries == "all"]
        return [t for t in self.targets if t.id in canary.targets]

    def pairs(self) -> list[tuple[Canary, Target]]:
        return [(c, t) for c in self.canaries for t in self.targets_of(c)]

    def observations_per_day(self) -> float:
        """How many observations every canary x target stream together makes (and drift analyses) per day (a cron
        schedule's: its mean over a week, nights and weekends included)."""
        return sum(c.samples * runs_per_day(c.schedule) for c, _ in self.pairs())

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


def probe_paths(entries: list[str], base: Path, config: Path | None = None) -> tuple[list[Path], list[str]]:
    """Expand probe entries (files, folders, globs) relative to `base`; return files and missing entries. The
    `config` file (monitor.yaml) is never one of them: its own folder listed (`probes: [.]`) read it as a probe file,
    each of its keys "unknown"."""
    files: list[Path] = []
    missing: list[str] = []
    for entry in entries:
        p = (base / entry) if not Path(entry).is_absolute() else Path(entry)
        if any(ch in entry for ch in "*?[") and not _exists(p):
            # Path.glob takes relative patterns only: an absolute one globs from its root
            root = Path(p.anchor) if p.is_absolute() else base
            try:
                found = sorted(root.glob(str(p.relative_to(p.anchor)) if p.is_absolute() else entry))
            except OSError:  # a part longer than the system takes
                found = []
            files += found
            if not found:
                missing.append(entry)
        elif not _exists(p):  # also a name the system refuses to look up (longer than it takes)
            missing.append(entry)
        elif p.is_dir():
            # a link leading nowhere (its target gone, a loop) is read, and fails naming it: skipped, its canaries
            # stopped running without a word
            files += sorted(q for q in p.iterdir() if q.suffix in {".yaml", ".yml"}
                            and (q.is_file() or (q.is_symlink() and not _exists(q))))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(entry)
    # a file reached twice (a folder and a glob or a file in it) is read once: else each of its canaries was a
    # "duplicate canary id (also defined in" the same file and line
    unique: dict[str, Path] = {}
    for f in files:
        unique.setdefault(os.path.realpath(f), f)
    if config is not None:
        unique.pop(os.path.realpath(config), None)
    return list(unique.values()), missing


def _exists(path: Path) -> bool:
    """Tell whether `path` exists; False for a path the system refuses to look up (a name too long, a NUL)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def load_probe_files(paths: list[Path], environ: Mapping[str, str] | None = None) -> list[Canary]:
    """Load and validate canaries from probe files; ids must be unique across files."""
    issues: list[ConfigIssue] = []
    files = _load_probes(paths, environ, issues)
    canaries = _canaries(files, issues)
    if issues:
        raise ConfigError(_as_written(_in_order(issues, [str(p) for p in paths]), [f.src for f in files]))
    return canaries


@dataclass(frozen=True)
class _ProbeFile:
    """A parsed probe file and each canary it writes, validated (None: invalid, and reported)."""

    src: Located
    canaries: list[Canary | None]


def _load_probes(paths: list[Path], environ: Mapping[str, str] | None, issues: list[ConfigIssue]) -> list[_ProbeFile]:
    """Parse and validate the probe files, adding their issues; a file that fails keeps the canaries that hold."""
    out: list[_ProbeFile] = []
    for path in paths:
        try:
            src = load_yaml(path, environ=dict(environ) if environ is not None else None, keep_going=True)
        except ConfigError as e:  # unreadable, or not YAML: nothing in it to check
            issues += e.issues
            continue
        issues += src.problems
        pf = validate(ProbeFile, src, issues)
        canaries = list(pf.canaries) if pf is not None else validate_each(Canary, at(src.data, "canaries"))
        out.append(_ProbeFile(src, [c.model_copy(update={"source": str(path)}).located(
            _place(src, "canaries", i), {**{f"checks[{j}]": _place(src, "canaries", i, "checks", j)
                                            for j in range(len(c.checks))},
                                         "targets": _place(src, "canaries", i, "targets")}) if c else None
                                    for i, c in enumerate(canaries)]))
    return out


def _canaries(files: list[_ProbeFile], issues: list[ConfigIssue], target_ids: list[str] | None = None,
              *, references: bool = False) -> list[Canary]:
    """Return the valid canaries of the probe files; add an issue for each id written twice and, with
    `references`, for each canary inconsistent in itself or naming a target not among `target_ids`."""
    seen: dict[str, str] = {}
    canaries: list[Canary] = []
    for pf in files:
        src = pf.src
        for i, c in enumerate(pf.canaries):
            cid = c.id if c is not None else src.written("canaries", i, "id")
            if not isinstance(cid, str):
                continue
            line = src.line_of(("canaries", i, "id"))
            if cid in seen:
                issues.append(ConfigIssue(src.path, f"canaries[{i}].id", f"duplicate canary id (also defined in "
                                          f"{seen[cid]})", line, cid))
            elif c is not None:
                canaries.append(c)
            # file:line of the first definition: two canaries of one id in one file, or in a folder of many, are
            # found at once
            seen.setdefault(cid, src.path + (f":{line}" if line else ""))
            if references:
                issues += canary_references(src, i, cid, target_ids)
            for j, reason in canary_issues(c.checks, tools=c.tools or []) if references and c is not None else []:
                issues.append(ConfigIssue(src.path, f"canary {named(cid)}: checks[{j}]", reason,
                                          src.line_of(("canaries", i, "checks", j))))
    return canaries


def _as_written(issues: list[ConfigIssue], sources: list[Located]) -> list[ConfigIssue]:
    """Show each value the environment gave as the ${NAME} written in its file (`Located.as_written`)."""
    for src in sources:
        issues = [src.as_written(i) for i in issues]
    return issues


def _in_order(issues: list[ConfigIssue], files: list[str]) -> list[ConfigIssue]:
    """Sort issues by file (in the order given) and line, keeping the order they were found in within a line."""
    rank: dict[str, int] = {}
    for n, f in enumerate(files):
        rank.setdefault(f, n)
    return sorted(issues, key=lambda i: (rank.get(i.file, len(files)), i.line or 0))


def restart_only(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """Split a reloaded config: return it with the settings only a restart can change kept as running, and
    the names of those that differ (the store, the listen address, the drift engine's settings and the listener's
    TLS but for its certificate and key)."""
    changed = [name for name, old, new in (
        ("storage.url", running.storage.url, loaded.storage.url),
        *((f"storage.{name}", getattr(running.storage, name), getattr(loaded.storage, name)) for name in STORE_SESSION),
        ("http.listen", running.http.listen, loaded.http.listen),
        ("drift", running.drift, loaded.drift),
    ) if old != new]
    tls, tls_changed = tls_restart_only(running.web.tls_server_config, loaded.web.tls_server_config)
    storage = {"url": running.storage.url, **{name: getattr(running.storage, name) for name in STORE_SESSION}}
    kept = replace(loaded, storage=loaded.storage.model_copy(update=storage),
                   http=loaded.http.model_copy(update={"listen": running.http.listen}), drift=running.drift,
                   web=loaded.web.model_copy(update={"tls_server_config": tls}),
                   listener_tls=loaded.listener_tls if tls == loaded.web.tls_server_config else None)
    return kept, changed + tls_changed


def load_config(path: str | Path, environ: Mapping[str, str] | None = None, *,
                web_config_file: str | None = None, listener: bool = True) -> Config:
    """Load monitor.yaml, its probe files and its web config file; raise ConfigError listing every problem found.

    One pass finds them all: the fields of monitor.yaml, of every probe file and of the web config file, and the
    references between them, checked over every part written (a canary that fails validation does not hide
    another's unknown target). Nothing is returned unless everything holds. `web_config_file` (`run`'s
    --web.config.file) replaces http.web_config_file."""
    path = Path(path)
    src = load_yaml(path, environ=dict(environ) if environ is not None else None, keep_going=True)
    issues = list(src.problems)
    mf = validate(MonitorFile, src, issues, context={REFERENCES_CHECKED: True})
    valid: dict[str, Target] = {}
    for t in mf.targets if mf is not None else validate_each(Target, at(src.data, "targets")):
        if t is not None:
            valid.setdefault(t.id, t)
    issues += monitor_references(src, valid)
    issues += literal_header_issues(src)
    listed = _probe_entries(src)
    files, missing = probe_paths([e for e in listed if e is not None], path.parent, path)
    for m in missing:
        j = listed.index(m)
        said = broken_link(path.parent / m) or "no such probe file or folder"  # an absolute `m` replaces the base
        issues.append(ConfigIssue(str(path), f"probes[{j}]", said, src.line_of(("probes", j)), m))
    empty = [str(ConfigIssue(str(path), f"probes[{j}]", "a folder holding no probe files (*.yaml, *.yml): no "
                             "canary is read from it", src.line_of(("probes", j)), e))
             for j, e in enumerate(listed) if e is not None and e not in missing and _empty_folder(e, path)]
    probe_srcs = _load_probes(files, environ, issues)
    canaries = _canaries(probe_srcs, issues, written_ids(src, ("targets",), "id"), references=True)
    # Commands that serve no listener (drift, export, probe, ...) neither read nor need the web config file: an
    # operator who may read the store but not the server's private key can still use them.
    web_file = (web_config_file or _web_config_file(src, path.parent)) if listener else None
    web, served = _load_web(Path(web_file), src, web_config_file is not None, issues) if web_file \
        else (WebConfigFile(), None)
    if issues:
        raise ConfigError(_as_written(_in_order(issues, [str(path), *([web_file] if web_file else []),
                                                         *(str(f) for f in files)]), [src, *(f.src for f in probe_srcs)]))
    assert mf is not None  # it failed only with an issue
    mf = _locate(anchor_files(mf, path.parent), src)
    return Config(
        path=str(path), targets=tuple(mf.targets), canaries=tuple(canaries), storage=mf.storage,
        http=mf.http, daemon=mf.daemon, drift=mf.drift, alerts=mf.alerts, refusal=mf.refusal,
        probe_files=tuple(str(f) for f in files), web=web or WebConfigFile(), web_file=web_file,
        web_flag=web_config_file, listener_tls=served, empty_probe_folders=tuple(empty),
    )


def _empty_folder(entry: str, config: Path) -> bool:
    """Tell whether a probe entry names a folder that holds no probe file (a typo'd folder, files named .json)."""
    if any(ch in entry for ch in "*?["):
        return False  # a glob matching nothing is an error of its own
    p = (config.parent / entry) if not Path(entry).is_absolute() else Path(entry)
    return _exists(p) and p.is_dir() and not probe_paths([entry], config.parent, config)[0]


def _web_config_file(src: Located, base: Path) -> str | None:
    """The web config file monitor.yaml names (http.web_config_file), from its folder unless absolute."""
    written = src.written("http", "web_config_file")
    return str(base / written) if isinstance(written, str) and written else None


def _load_web(path: Path, src: Located, flag: bool,
              issues: list[ConfigIssue]) -> tuple[WebConfigFile | None, ServerTls | None]:
    """Read and check the web config file: its fields and the TLS files it names; return it and the server
    context built from them (the check that they load), or None when it fails (with its issues added). A missing
    file is reported where it is named. The files are checked even when fields fail: one pass reports all."""
    if not _exists(path) or not path.is_file():
        where, line = ("(command line)", None) if flag else (src.path, src.line_of(("http", "web_config_file")))
        issues.append(ConfigIssue(where, "--web.config.file" if flag else "http.web_config_file",
                                  "a folder, not a web config file" if _exists(path) and path.is_dir()
                                  else broken_link(path) or "no such web config file",
                                  line, str(path)))
        return None, None
    try:
        web_src = load_yaml(path, interpolate=False, keep_going=True)  # exporter-toolkit does not interpolate
    except ConfigError as e:
        issues += e.issues
        return None, None
    issues += web_src.problems
    web = validate(WebConfigFile, web_src, issues)
    if web is None:
        issues += _tls_issues(web_src, check_files(_written_tls_files(web_src, path.parent)))
        return None, None
    web = web.located(web_src.path, {part: _place(web_src, *part.split(".")) for part in _WEB_PARTS})
    if web.tls_server_config is None:
        return web, None
    tls = web.tls_server_config
    tls = tls.model_copy(update={f: str(path.parent / v) for f, v in tls.files().items() if not Path(v).is_absolute()})
    web = web.model_copy(update={"tls_server_config": tls})
    try:
        served = build_server_tls(tls)
    except TlsFilesError as e:
        issues += _tls_issues(web_src, e.problems)
        return None, None
    return web, served


_WEB_PARTS = ("basic_auth_users", "tls_server_config.cert_file")  # what check-config's warnings are about


def _written_tls_files(web_src: Located, base: Path) -> dict[str, str]:
    """The TLS files a web config file that failed validation names (field -> path, from `base` unless absolute)."""
    written = {f: web_src.written("tls_server_config", f) for f in FILE_FIELDS}
    return {f: v if Path(v).is_absolute() else str(base / v) for f, v in written.items() if isinstance(v, str) and v}


def _tls_issues(web_src: Located, problems: list[TlsFileError]) -> list[ConfigIssue]:
    return [ConfigIssue(web_src.path, f"tls_server_config.{p.field}", p.reason,
                        web_src.line_of(("tls_server_config", p.field)), p.path) for p in problems]


_FILE_FIELDS = ("api_key_file", "url_file", "secret_file", "routing_key_file")


def anchor_files(mf: MonitorFile, base: Path) -> MonitorFile:
    """Return `mf` with every relative ``*_file`` (targets' keys, sinks' secrets) taken from `base`, the folder
    of monitor.yaml, as Prometheus reads the files its config names: where the daemon is started from does not
    change which secret it reads."""

    def anchored(model: M) -> M:
        update = {f: str(base / v) for f in _FILE_FIELDS
                  if isinstance(v := getattr(model, f, None), str) and not Path(v).is_absolute()}
        return model.model_copy(update=update) if update else model

    sinks = [anchored(s) for s in mf.alerts.sinks]
    web = mf.http.web_config_file
    http = mf.http.model_copy(update={"web_config_file": str(base / web)}) \
        if web is not None and not Path(web).is_absolute() else mf.http
    return mf.model_copy(update={"targets": [anchored(t) for t in mf.targets], "http": http,
                                 "alerts": mf.alerts.model_copy(update={"sinks": sinks})})


def _locate(mf: MonitorFile, src: Located) -> MonitorFile:
    """Return `mf` with each target and alert sink knowing its file and line, for the problems of the secrets it
    names (read when it is built: check-config, run, a reload, probe), and drift.embeddings its own, for
    check-config's warning about its price."""
    targets = [t.located(_place(src, "targets", i)) for i, t in enumerate(mf.targets)]
    sinks = [s.located(_place(src, "alerts", "sinks", i)).url_written_as(("alerts", "sinks", i, "url") in
                                                                       src.interpolated)
             for i, s in enumerate(mf.alerts.sinks)]
    emb = mf.drift.embeddings
    drift = mf.drift.model_copy(update={"embeddings": emb.located(_place(src, "drift", "embeddings"))}) if emb \
        else mf.drift
    labels = {f"external_labels.{name}": _place(src, "alerts", "external_labels", name)
              for name in mf.alerts.external_labels}  # for check-config's and the start's warnings
    labels |= {f"routes[{i}].match.{key}": _place(src, "alerts", "routes", i, "match", key)
               for i, route in enumerate(mf.alerts.routes) for key in ("canary", "target")
               if getattr(route.match, key)}  # for check-config's warning of a route that matches none
    alerts = mf.alerts.model_copy(update={"sinks": sinks}).located(_place(src, "alerts"), labels)
    return mf.model_copy(update={"targets": targets, "alerts": alerts, "drift": drift})


def _place(src: Located, *loc: str | int) -> str:
    """`file:line` of the entry at `loc` (the file alone where its line is unknown)."""
    line = src.line_of(loc)
    return src.path + (f":{line}" if line else "")


def _probe_entries(src: Located) -> list[str | None]:
    """The probe entries monitor.yaml writes, or the default; None for one that is not a string, is empty, or stands
    in for a value the YAML could not give (an unset ${VAR} or "" must not turn into monitor.yaml's own folder)."""
    if not isinstance(src.data, dict):
        return []
    if "probes" not in src.data:
        return list(MonitorFile.model_fields["probes"].default)
    entries = src.written("probes")
    if not isinstance(entries, list):
        return []
    return [e if isinstance(e, str) and e else None for e in (src.written("probes", j) for j in range(len(entries)))]
