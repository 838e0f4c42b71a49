"""`llm-monitor check-config`: validate monitor.yaml and every probe file; exit 2 on bad input."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from monitor.alerts.sinks import sink_problems
from monitor.commands.common import (
    EXIT_CONFIG,
    EXIT_OK,
    known_names,
    load_or_exit,
    print_problems,
    table_console,
)
from monitor.config.check_order import order_named
from monitor.config.loader import Config
from monitor.config.secrets import resolve_api_key
from monitor.config.validate import redact_url
from monitor.counted import counted
from monitor.domain import EMBEDDINGS_CANARY, JUDGE_CANARY, utcnow
from monitor.drift import budget
from monitor.errors import SecretError, SecretMissing
from monitor.pricing import uncounted_caps


def main(config_path: str, web_config_file: str | None = None) -> int:
    config = load_or_exit(config_path, web_config_file, listener=True)
    out = table_console()
    targets = Table(title="targets", header_style="bold")
    for col in ("id", "provider", "model", "base_url", "stream", "key"):
        targets.add_column(col)
    warnings: list[str] = []
    key_errors: list[str] = []
    for t in config.targets:
        try:
            key = "set" if resolve_api_key(t) else "none needed"
        except SecretMissing as e:
            key = "[yellow]missing[/]"
            warnings.append(str(e))
        except SecretError as e:  # there, but no call could send it: an error, as an unusable sink secret is
            key = "[red]unusable[/]"
            key_errors.append(str(e))
        targets.add_row(*map(escape, (t.id, t.provider, t.model, redact_url(t.base_url), str(t.stream))), key)
    out.print(targets)
    per_file = Counter(c.source for c in config.canaries)
    files = Table(title="probe files", header_style="bold")
    files.add_column("file")
    files.add_column("canaries", justify="right")
    for f in config.probe_files:
        files.add_row(escape(f), str(per_file.get(f, 0)))
    out.print(files)
    n_checks = sum(len(c.checks) for c in config.canaries)
    out.print(f"{counted(len(config.canaries), 'canary')}, {counted(n_checks, 'check')}, "
              f"{counted(len(config.pairs()), 'canary x target pair')}, "
              f"store {redact_url(config.storage.url)}, listen {config.http.listen}", markup=False)
    if config.web_file is not None:
        out.print(f"web config {config.web_file}: {_web_summary(config)}", highlight=False, soft_wrap=True,
                  markup=False)
    if config.drift.enabled and config.pairs():
        per_stream, cap = config.drift_settings().false_alarms_per_10k, config.drift.false_alarms_per_day
        scope = ("capped by drift.false_alarms_per_day" if cap is not None and per_stream < config.drift.false_alarms_per_10k
                 else "drift.false_alarms_per_10k" + ("" if cap is not None else
                                                      "; no fleet cap: more canaries, more false alarms"))
        out.print(f"drift false-alarm budget: {counted(config.false_alarms_per_day(), 'event', '.2g', '/day')} over "
                  f"{counted(config.observations_per_day(), 'observation', ',.0f', '/day')} ({per_stream:.2g} per "
                  "10,000 per stream, "
                  f"{scope})", soft_wrap=True)
    # what `run` refuses to start with, checked the same way; an unset secret is a warning, as a target's key is
    problems = sink_problems(config.alerts)
    warnings += [str(p) for p in problems if isinstance(p, SecretMissing)]
    said = [f"{w} (the daemon will refuse to start without it)" for w in warnings] + _unchecked(config)
    said += [f"{f}: no canaries (an empty file, or one whose canaries list is empty)"
             for f in config.probe_files if not per_file.get(f)]
    said += config.empty_probe_folders
    if config.drift.enabled and config.pairs() and (why := budget.mmd_out_of_reach(config.drift_settings())):
        said.append(why)  # a fleet so large its budget's share puts the whole-completion test out of reach
    for w in _in_order(said, [config.path, *([config.web_file] if config.web_file else []), *config.probe_files]):
        _warn(out, w)
    errors = key_errors + [str(p) for p in problems if not isinstance(p, SecretMissing)]
    if errors:
        print_problems("invalid configuration", errors)
        return EXIT_CONFIG
    out.print("[green]configuration OK[/]")
    return EXIT_OK


def _in_order(warnings: list[str], files: list[str]) -> list[str]:
    """Sort warnings by file (in the order given: monitor.yaml, the web config file, the probe files, as the
    config's errors are) and line, each read from the `file:line: ` that leads it; one naming no file comes last.
    The order found is kept within a line."""
    rank: dict[str, int] = {}
    for n, f in enumerate(files):
        rank.setdefault(f, n)
    longest_first = sorted(rank, key=len, reverse=True)  # a file whose path begins another's is not taken for it

    def place(w: str) -> tuple[int, int]:
        for f in longest_first:
            if w.startswith(f + ":"):
                line = re.match(r":(\d+): ", w[len(f):])
                return rank[f], int(line.group(1)) if line else 0
        return len(files), 0

    return sorted(warnings, key=place)


def _warn(out: Console, message: str) -> None:
    # the message is text, not markup: a path or an id may hold brackets ("[/x]" made rich raise)
    out.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _unchecked(config: Config) -> list[str]:
    """What runs but cannot be trusted as configured: uncalibrated judges, spend caps on models without a price,
    unsigned webhooks, a listener certificate that has expired or expires within 14 days, checks named by their
    order."""
    out = [f"{c.where_of(f'checks[{i}]') or c.source}: canary {c.id}: checks[{i}] (llm_judge, judge target "
           f"{check.judge_target}) has no calibration: its verdicts count unchecked, so a judge its provider changes "
           "can open drift events on its own (add `calibration:` answers with known verdicts)"
           for c in config.canaries for i, check in enumerate(c.checks)
           if check.type == "llm_judge" and not check.calibration]
    out += uncounted_caps(config)
    if config.web.basic_auth_users and config.web.tls_server_config is None:
        out.append(f"{config.web.where_of('basic_auth_users') or config.web_file}: basic_auth_users: set without "
                   "tls_server_config: passwords cross the network in the clear")
    served = config.listener_tls
    expiring = served.expiry.warning(served.tls.cert_file, utcnow()) if served and served.expiry else None
    if expiring is not None:
        out.append(f"{config.web.where_of('tls_server_config.cert_file') or config.web_file}: "
                   f"tls_server_config.cert_file: {expiring}")
    out += [f"{sink.where or config.path}: alerts.sinks: {sink.name}: a webhook without secret_env or secret_file: "
            "its messages go out unsigned, and receivers cannot tell them from forgeries"
            for sink in config.alerts.sinks if sink.type == "webhook" and not (sink.secret_env or sink.secret_file)]
    out += config.alerts.secret_looking_labels()
    out += order_named(config.canaries)  # checks told apart by their order: an edit to one renames another
    return out + _unmatched_routes(config) + _idle_canaries(config)


def _idle_canaries(config: Config) -> list[str]:
    """A canary that runs on no target (`targets: []`, or every target says `canaries: listed` and none is named):
    it is never probed, silently; only the summary's pair count showed it."""
    paired = {c.id for c, _ in config.pairs()}
    return [f"{c.where_of('targets') or c.source}: canary {c.id}: runs on no target, so it is never probed ("
            + ("its targets list is empty: leave `targets:` out to run it on every target)" if c.targets == [] else
               "every target says `canaries: listed`: name one in its `targets:`)")
            for c in config.canaries if c.id not in paired]


def _unmatched_routes(config: Config) -> list[str]:
    """A route's `canary` or `target` value that matches no configured one (a typo): it routes nothing, silently."""
    known = {"canary": [c.id for c in config.canaries], "target": [t.id for t in config.targets]}
    own = [JUDGE_CANARY, EMBEDDINGS_CANARY]  # the daemon's own calls: a route may match their events too
    out = []
    for i, route in enumerate(config.alerts.routes):
        for key, ids in known.items():
            for value in getattr(route.match, key) or []:
                if not any(fnmatch.fnmatchcase(x, value) for x in ids + (own if key == "canary" else [])):
                    shown = known_names(ids, value)
                    out.append(f"{config.alerts.where_of(f'routes[{i}].match.{key}') or config.path}: "
                               f"alerts.routes[{i}].match.{key}: {value!r} matches no configured {key} (known: "
                               f"{shown}): the route sends nothing for it")
    return out


def _web_summary(config: Config) -> str:
    """What the web config file sets up: TLS (and client certificates), basic auth."""
    tls = config.web.tls_server_config
    parts = ["plain HTTP" if tls is None else f"TLS (min {tls.min_version}, client certificates: "
             f"{tls.client_auth_type})"]
    users = len(config.web.basic_auth_users)
    parts.append(f"basic auth for {users} user{'s' if users != 1 else ''}" if users else "no basic auth")
    return ", ".join(parts)
