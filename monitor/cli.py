"""The `llm-monitor` command line: parses arguments and dispatches to monitor.commands.

Loading this module imports nothing but os, sys, __future__ and its package, which the interpreter has loaded
already: every other import, the standard library's included, is made inside entry()'s handler for Ctrl-C, which
says `interrupted` in one line where a Ctrl-C in the first 60 ms of a command (argparse, the logging and errors
modules loading) printed a traceback."""

from __future__ import annotations

import os
import sys

from monitor import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

# Empty is unset, as for the logging variables: `LLM_MONITOR_CONFIG=` (an env file's blank line, compose's
# ${LLM_MONITOR_CONFIG:-}) must not make the working directory the config file
DEFAULT_CONFIG = (os.environ.get("LLM_MONITOR_CONFIG") or "").strip() or "monitor.yaml"


def _path(hint: str = "") -> Callable[[str], str]:
    """An argparse type: a file or folder name, not empty or blank (kept as written). `-o ""` wrote the export to
    ".", `--scenario ""` ran the built-in scenario, `demo --keep ""` kept its files in the working directory."""
    def parse(text: str) -> str:
        import argparse

        if not text.strip():
            raise argparse.ArgumentTypeError(f"an empty path{f' ({hint})' if hint else ''}")
        return text

    return parse


def _absolute_path(text: str) -> str:
    """An argparse type: `_path`, made absolute."""
    return os.path.abspath(_path()(text))


def _config_arg(p: argparse.ArgumentParser, *, action: bool = False) -> None:
    """-c; an `action`'s has no default, its command's parser holds it (an action's default would replace a value
    given before the action: `baseline -c m.yaml accept c1`)."""
    import argparse

    p.add_argument("-c", "--config", default=argparse.SUPPRESS if action else DEFAULT_CONFIG, type=_path(),
                   help=f"monitor.yaml (default: {DEFAULT_CONFIG}; $LLM_MONITOR_CONFIG sets it)")


def _web_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--web.config.file", dest="web_config_file", type=_absolute_path, metavar="FILE",
                   help="TLS and basic auth for the HTTP listener (exporter-toolkit's web config format); "
                        "replaces http.web_config_file")


def _duration(text: str) -> str:
    """An argparse type: a positive duration (30s, 5m, 1h30m) or, as monitor.yaml takes, a number of seconds (10);
    kept as written, a number with its unit (10s)."""
    import argparse
    import re

    from monitor.durations import parse_duration

    seconds_only = re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text.strip()) is not None  # ASCII, as durations
    try:
        seconds = parse_duration(float(text) if seconds_only else text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 (e.g. 5s)")
    return f"{text.strip()}s" if seconds_only else text


def _interval(text: str) -> str:
    """An argparse type: how often a demo canary runs, at least 1s as a schedule's `every` (kept as written)."""
    import argparse

    from monitor.durations import parse_duration

    written = _duration(text)
    if parse_duration(written) < 1:  # else the demo's Schedule refused it with a traceback
        raise argparse.ArgumentTypeError("must be at least 1s (a canary's schedule.every; e.g. 5s)")
    return written


def _int_type(noun: str, lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `lo` (to `hi`), in ASCII digits (int() also takes '１２' and '1_0')."""
    def parse(text: str) -> int:
        import argparse
        import re

        from monitor.errors import shown

        if not re.fullmatch(r"[+-]?[0-9]+", text.strip(), flags=re.ASCII):
            raise argparse.ArgumentTypeError(f"not a {noun}: {shown(text)} (digits 0-9)")
        bounds = f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        digits = text.strip().lstrip("+-").lstrip("0")
        if len(digits) > 18:  # int() refuses past 4,300 digits, and argparse then echoed the value whole
            raise argparse.ArgumentTypeError(f"must be {bounds} (got a number of {len(digits):,} digits)")
        n = int(text)
        if n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"must be {bounds} (got {n})")
        return n

    return parse


_count = _int_type("whole number", 1)
PENDING_LIMIT = 1000  # rows `alerts pending` (and completions `diff`) shows at most: as `drift` lists, a page of GET /api/drift
_port = _int_type("port number", 0, 65535)  # 0: any free port

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")
# argparse checks `choices` only for values given on the command line, never for a default: the variables
# that set these defaults are checked in main(), so a bad one is an argument error rather than a traceback
_LOG_ENV = {"log_level": ("LLM_MONITOR_LOG_LEVEL", LOG_LEVELS), "log_format": ("LLM_MONITOR_LOG_FORMAT", LOG_FORMATS)}


def parser() -> argparse.ArgumentParser:
    import argparse

    from monitor.argparser import ArgumentParser

    ap = ArgumentParser(prog="llm-monitor", description="Watch the LLM APIs you depend on.")
    ap.add_argument("--version", action="version", version=f"llm-monitor {__version__}")
    _logging_flags(ap, (os.environ.get("LLM_MONITOR_LOG_LEVEL") or "info").strip().lower(),
                   (os.environ.get("LLM_MONITOR_LOG_FORMAT") or "json").strip().lower())
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon in the foreground",
                       description="Run the daemon in the foreground: probe on schedule, analyse, alert, serve /metrics "
                                   "and the JSON API. SIGTERM/SIGINT drain and exit 0, SIGHUP reloads; exit 1 when the "
                                   "stop gave up on writes the store did not take, 2 on a bad config at start.")
    _config_arg(p)
    _web_config_arg(p)
    p = sub.add_parser("probe", help="run canaries once now and print the observations",
                       description="Run canaries once now (real calls, stored and counted in the day's spend like the "
                                   "daemon's) and print the observations. Exit 0 all calls succeeded and passed their "
                                   "checks, 1 a call or a check failed or nothing ran, 2 bad config or arguments.")
    _config_arg(p)
    p.add_argument("--canary", help="only this canary")
    p.add_argument("--target", help="only this target")
    p.add_argument("--json", action="store_true", help="one JSON object per observation")
    p = sub.add_parser("check-config", help="validate the config, every probe file and the web config file",
                       description="Validate monitor.yaml, every probe file and the web config file, listing every "
                                   "problem (exit 2). Unset API key variables and alert sink secrets are only warned "
                                   "of (exit 0), so it runs without them; a secret that is there but unusable, and "
                                   "the web config's TLS files, are checked.")
    _config_arg(p)
    _web_config_arg(p)
    p = sub.add_parser("sim", help="run the simulated upstream (OpenAI and Anthropic wire formats)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8900,
                   help="port to listen on (0: any free one, printed at start; default: %(default)s)")
    p.add_argument("--scenario", type=_path(), help="scenario YAML (default: the built-in demo scenario)")
    p = sub.add_parser("demo", help="zero set-up: simulator + daemon + SQLite in a temp folder")
    p.add_argument("--port", type=_port, default=None,
                   help="port for /metrics (0: any free one; default: 9464 if free, else a free one; a port given "
                        "must be free)")
    p.add_argument("--interval", type=_interval, default="5s",
                   help="how often each demo canary runs: a duration or a number of seconds (default: %(default)s)")
    p.add_argument("--duration", type=_duration, default=None,
                   help="stop after this long (e.g. 3m, or 90: seconds); default: until Ctrl-C")
    p.add_argument("--keep", metavar="DIR", default=None, type=_path(),
                   help="keep the store and monitor.yaml in DIR (a new folder, or one without demo.db and "
                        "monitor.yaml) instead of a temp folder, to explore them afterwards with drift, diff and "
                        "export")
    p = sub.add_parser("drift", help="list drift events",
                       description="List drift events, newest first. The table's test column is the deciding test's "
                                   "p-value, or a chart's level/threshold; its n column, e.g. 41/30, is how many "
                                   "observations the baseline value and the current value stand on (the baseline's, "
                                   "then the current window's or the chart's run since the change began).")
    _config_arg(p)
    p.add_argument("--canary", action="append", metavar="NAME",
                   help="only this canary's events; repeatable (any of them)")
    p.add_argument("--target", action="append", metavar="NAME",
                   help="only this target's events; repeatable (any of them)")
    p.add_argument("--open", action="store_true", help="only open events")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p = sub.add_parser("diff", help="baseline versus latest completions, as a coloured word diff")
    _config_arg(p)
    p.add_argument("canary")
    p.add_argument("--target", help="only this target (default: every target of the canary)")
    p.add_argument("-n", "--count", type=_int_type("whole number", 1, PENDING_LIMIT), default=3,
                   help=f"latest completions to show, up to {PENDING_LIMIT} (default: %(default)s)")
    p = sub.add_parser("baseline", help="show, accept, reset or pin (to a time range) a canary's baseline",
                       description="show: the canary's baselines per target. accept: make the latest successful "
                                   "observations since the open events' change the baseline (open events: accepted). "
                                   "reset: drop it; the next drift.baseline_size observations form a new one (open "
                                   "events: resolved). pin: build it from the observations of a time range (open "
                                   "events it shows: accepted; the others stay open against it). A running daemon "
                                   "applies a change within 30 s. A pair no longer configured but in the store (drift: "
                                   "open (not configured)) is reached too, and `show` lists its baselines, the target "
                                   "marked (removed). `llm-monitor baseline ACTION --help`: the options of each.")
    _config_arg(p)  # before the action too, as before the actions had parsers of their own (scripts say so)
    _baseline_target_arg(p, action=False)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("show", help="list the canary's baselines per target (every canary's without one)",
                           description="List the stored baselines per canary x target: when each was made (a pinned "
                                       "or accepted one's range), its source and note, how many observations it "
                                       "stands on, the outages it left out, and which is active.")
    a.add_argument("canary", nargs="?", help="only this canary (default: every canary's baselines)")
    _config_arg(a, action=True)
    _baseline_target_arg(a)
    a.add_argument("--json", action="store_true", help="one JSON object per baseline")
    a = actions.add_parser("accept", help="make current behaviour the baseline (open events: accepted)",
                           description="Make the latest successful observations since the open events' change the "
                                       "baseline (drift.baseline_size of them; open events: accepted). A running "
                                       "daemon applies it within 30 s.")
    _baseline_change_args(a)
    a = actions.add_parser("reset", help="drop the baseline: the next observations form a new one (open events: "
                                         "resolved)",
                           description="Drop the baseline; the next drift.baseline_size successful observations form "
                                       "a new one (open events: resolved). A running daemon applies it within 30 s.")
    _baseline_change_args(a)
    a = actions.add_parser("pin", help="build the baseline from a time range's observations",
                           description="Build the baseline from the observations between --since and --until, failed "
                                       "calls included (open events the range shows: accepted; the others stay open "
                                       "against it). A running daemon applies it within 30 s.")
    _baseline_change_args(a)
    a.add_argument("--since", help="start of the time range (an RFC 3339 time, 2026-11-30T07:50:00Z, or a duration "
                                   "ago: 7d or '7d ago', 24h); required")
    a.add_argument("--until", help="end of the time range (an RFC 3339 time or a duration ago, 2d or '2d ago'; "
                                   "default: now)")
    p = sub.add_parser("replay", help="run two JSONL dumps through the drift engine and print the events")
    p.add_argument("--baseline", required=True, type=_path(),
                   help="JSONL dump the baseline forms from (see README: Drift)")
    p.add_argument("--current", required=True, type=_path(), help="JSONL dump tested against it")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--zero-tolerance", action="append", default=[], metavar="SIGNAL",
                   help="a rate signal declared zero in every stream (refused, error, exact_match, check:NAME): "
                        "any violation in the current dump is an event; repeatable")
    p = sub.add_parser("export", help="write stored observations as JSONL dump lines (the format replay reads)",
                       description="Write stored observations, oldest first, as JSON lines in the format `replay` "
                                   "reads: canary, target, text, started_at and the recorded facts (finish reason, "
                                   "served model, fingerprint, checks, refusal, tokens, latency, TTFT, error type).")
    _config_arg(p)
    p.add_argument("--canary", help="only this canary")
    p.add_argument("--target", help="only this target")
    p.add_argument("--since", help="from this time on: an RFC 3339 time (2026-11-30T07:50:00Z), or a duration "
                                   "meaning that long ago (7d or '7d ago', 24h)")
    p.add_argument("--until", help="before this time: an RFC 3339 time, or a duration meaning that long ago (2d or "
                                   "'2d ago')")
    p.add_argument("-o", "--output", metavar="FILE", type=_path("leave -o out to write to standard output"), help="write to FILE (replaced only once complete); "
                                                         "default: standard output")
    p = sub.add_parser("alerts", help="alert outbox: send a test message, list pending notifications, send again what "
                                      "was given up on",
                       description="Send a test notification through a sink, list the alert outbox, or send again "
                                   "the notifications given up on.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("test", help="send a test notification through one sink now",
                           description="Send a test notification through one sink now, bypassing the outbox, and "
                                       "print the outcome (exit 0 delivered, 1 failed, 2 configuration problem). "
                                       "An Alertmanager test alert (LLMMonitorTest) ends by itself 5 minutes later.")
    _config_arg(a)
    a.add_argument("--sink", required=True, metavar="NAME", help="the sink to test (a name under alerts.sinks)")
    a = actions.add_parser("pending", help="list the notifications waiting in the outbox",
                           description="List the notifications waiting in the outbox (next attempt first); with "
                                       "--all also the delivered and dead (given up) ones the outbox still keeps. An "
                                       "alert's messages (per sink, group and signal) go out in order: one due but "
                                       "not tried (attempts 0) waits behind an earlier one still failing, named "
                                       "below the table (--json: waits_behind).")
    _config_arg(a)
    shown = a.add_mutually_exclusive_group()
    shown.add_argument("--all", action="store_true", help="also delivered and dead notifications, with why they died")
    shown.add_argument("--dead", action="store_true",
                       help="only the dead ones (given up on), with why they died: what `alerts resend` sends again")
    a.add_argument("--json", action="store_true", help="one JSON object per notification, one per line")
    a.add_argument("-n", "--limit", type=_int_type("whole number", 1, PENDING_LIMIT), default=100,
                   help=f"show at most N, up to {PENDING_LIMIT} (default: %(default)s)")
    a = actions.add_parser("resend", help="send again notifications given up on (dead)",
                           description="Make notifications given up on (dead: retries past retry.give_up_after, a "
                                       "410, a sink disabled) wait for delivery again, due now: the running daemon "
                                       "sends them at its next look at the outbox, a stopped one when it starts, "
                                       "with their message ids as first sent (a receiver that had one drops it). "
                                       "Name them by message id (`alerts pending --dead` lists them), or give --sink "
                                       "for every one given up on there. Not re-sent (each named on standard error "
                                       "with why): a row not dead, a held row ended unsent on purpose, a row of a "
                                       "sink not configured, and a firing or resolving message a later message of "
                                       "its alert followed. Exit 0 done, 1 a named one not found or not re-sent, 2 "
                                       "bad arguments, config or store.")
    _config_arg(a)
    a.add_argument("ids", nargs="*", metavar="ID", help="a message id (or row id) to send again")
    a.add_argument("--sink", metavar="NAME", help="only notifications of this sink; without IDs, every one given up "
                                                  "on there")
    p = sub.add_parser("store", help="copy the store into another database (SQLite <-> PostgreSQL), or scrub secrets "
                                     "from it",
                       description="Work on the store as a whole.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("copy", help="copy every table into a new, empty store (SQLite <-> PostgreSQL)",
                           description="Copy every table of a store (observations, runs, baselines, drift events, "
                                       "the alert outbox; ids and values as stored) into an empty store, created or "
                                       "upgraded to this version's schema. Stop the daemons using the source first: "
                                       "a running one makes the copy refuse. Exit 0 copied, 1 the copy failed or the "
                                       "row counts differ, 2 bad arguments, config or stores.")
    source = a.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", default=DEFAULT_CONFIG, type=_path(),
                        help="copy the store of this config's storage.url (default: %(default)s; "
                             "$LLM_MONITOR_CONFIG sets it)")
    source.add_argument("--from", dest="source", metavar="URL", help="copy the store at this URL instead")
    a.add_argument("--to", dest="destination", required=True, metavar="URL",
                   help="the new store: sqlite:///path.db, or postgresql+psycopg://user@host/db (a password: give it "
                        "to libpq with PGPASSWORD or ~/.pgpass)")
    a.add_argument("--batch", type=_count, default=1000, help="rows per insert and transaction (default: %(default)s)")
    a = actions.add_parser("scrub", help="replace every secret the config names wherever the store holds it",
                           description="Replace each secret the config names (the targets' API keys and credential "
                                       "headers' values, the alert sinks' secrets and secret URLs, the reload token), "
                                       "and the start of one a cut-short message kept, by <redacted> in every stored "
                                       "row (observations, drift events, baselines, the alert outbox): rows a release "
                                       "before the providers' scrubbing stored. Only rows holding a secret's start "
                                       "(a URL's host) are read; each batch is its own "
                                       "transaction, and a rerun rewrites nothing more. Stop the daemons first: "
                                       "one running writes its open events and baselines back from memory. Exit 0 "
                                       "done, 1 the store failed, 2 bad config or store.")
    _config_arg(a)
    a.add_argument("--batch", type=_count, default=500, help="rows per read and transaction (default: %(default)s)")
    p = sub.add_parser("refusal", help="label completions in a JSONL file as refusals (none|partial|full)")
    p.add_argument("--jsonl", required=True, type=_path(),
                   help="lines with `completion` (or `text`, which `export` writes), optionally `prompt` and "
                        "`refusal_text` (the provider's refusal, which `export` writes too); '-' for "
                        "stdin; each line is written back with `refusal` and `refusal_score` added")
    for command in _commands(ap):
        _logging_flags(command, argparse.SUPPRESS, argparse.SUPPRESS)
    return ap


def _baseline_target_arg(p: argparse.ArgumentParser, *, action: bool = True) -> None:
    """--target of `baseline` (default None) and of each of its actions (no default: `baseline`'s holds it)."""
    import argparse

    p.add_argument("--target", default=argparse.SUPPRESS if action else None, help="only this target, configured or in the store (default: every configured target "
                                    "of the canary; for a canary no longer configured, every target in the store)")


def _baseline_change_args(p: argparse.ArgumentParser) -> None:
    """The arguments every `baseline` action that changes a baseline takes: the canary, -c, --target and --note."""
    p.add_argument("canary")
    _config_arg(p, action=True)
    _baseline_target_arg(p)
    p.add_argument("--note", default="", help="why (recorded with the baseline)")


def _logging_flags(p: argparse.ArgumentParser, level: str, form: str) -> None:
    """Add --log-level and --log-format to `p`: before the command they set the defaults, after it (default
    SUPPRESS: only when given) they replace them, so `llm-monitor probe ... --log-level debug` works too."""
    p.add_argument("--log-level", default=level, choices=LOG_LEVELS, help="default: $LLM_MONITOR_LOG_LEVEL, else info")
    p.add_argument("--log-format", default=form, choices=LOG_FORMATS, help="default: $LLM_MONITOR_LOG_FORMAT, else json")


def _commands(ap: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (sub)command's parser under `ap`: `probe`'s, `store`'s and `store scrub`'s."""
    import argparse

    found = []
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in dict.fromkeys(action.choices.values()):  # an alias names a parser again
                found += [p, *_commands(p)]
    return found


def _innermost(ap: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command `args` chose: `baseline show`'s, not `llm-monitor`'s."""
    import argparse

    for dest in ("command", "action"):
        subs = [a for a in ap._actions if isinstance(a, argparse._SubParsersAction) and a.dest == dest]
        chosen = getattr(args, dest, None)
        if not subs or chosen not in subs[0].choices:
            break
        ap = subs[0].choices[chosen]
    return ap


def _taken_by_others(ap: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> str:
    """For an option the chosen action does not take but another action of its command does (`baseline show --note`,
    `alerts test --dead`), which ones take it: ` (--note is an option of `baseline accept`, `baseline pin` and
    `baseline reset`)`; else ''."""
    import argparse

    chosen = getattr(args, "action", None)
    command = _innermost(ap, argparse.Namespace(command=args.command))
    subs = [a for a in command._actions if isinstance(a, argparse._SubParsersAction) and a.dest == "action"]
    if chosen is None or not subs:
        return ""
    notes = []
    for option in dict.fromkeys(u.split("=", 1)[0] for u in unknown if u.startswith("-")):
        takers = sorted(name for name, p in subs[0].choices.items() if name != chosen
                        and option in p._option_string_actions and option not in ("-h", "--help"))
        if takers:
            named = [f"`{args.command} {t}`" for t in takers]
            listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
            notes.append(f"{option} is an option of {listed}")
    return f" ({'; '.join(notes)})" if notes else ""


DURATION_FLAGS = ("--duration", "--interval")  # the flags whose type is _duration


def _negative_durations_glued(argv: list[str]) -> list[str]:
    """`--duration -5s` as `--duration=-5s`, so its type says it is no duration: argparse took '-5s' for an option
    (a negative number it knows only as digits) and said `expected one argument`."""
    import re

    out: list[str] = []
    for arg in argv:
        if out and out[-1] in DURATION_FLAGS and re.match(r"-[0-9.]", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args, unknown = ap.parse_known_args(_negative_durations_glued(sys.argv[1:] if argv is None else argv))
    if unknown:  # said by the command's own parser: its usage is what the user needs, not the top level's
        _innermost(ap, args).error(f"unrecognized arguments: {' '.join(unknown)}{_taken_by_others(ap, args, unknown)}")
    for dest, (variable, choices) in _LOG_ENV.items():
        if getattr(args, dest) not in choices:  # only a default can be: argparse checked a value given
            ap.error(f"{variable}={os.environ.get(variable, '')!r} is not one of {', '.join(choices)} (it sets the "
                     f"default of --{dest.replace('_', '-')})")
    from monitor.logs import setup_logging

    quiet = args.command not in {"run", "sim"}
    setup_logging("warning" if quiet and args.log_level == "info" else args.log_level,
                  "text" if quiet else args.log_format)
    if args.command == "run":
        from monitor.commands import run

        return run.main(args.config, args.web_config_file)
    if args.command == "probe":
        from monitor.commands import probe

        return probe.main(args.config, args.canary, args.target, args.json)
    if args.command == "check-config":
        from monitor.commands import check_config

        return check_config.main(args.config, args.web_config_file)
    if args.command == "sim":
        from monitor.commands import sim

        return sim.main(args.host, args.port, args.scenario)
    if args.command == "demo":
        from monitor.commands import demo

        return demo.main(args.port, args.interval, args.duration, args.keep)
    if args.command in {"drift", "diff", "baseline", "replay"}:
        from monitor.commands import drift

        if args.command == "drift":
            return drift.drift_list(args.config, args.open, args.json, args.canary, args.target)
        if args.command == "diff":
            return drift.diff(args.config, args.canary, args.target, args.count)
        if args.command == "baseline":
            from monitor.commands import baseline

            return baseline.baseline(args.config, args.action, args.canary, args.target, getattr(args, "note", ""),
                                     getattr(args, "since", None), getattr(args, "until", None),
                                     getattr(args, "json", False))
        return drift.replay(args.baseline, args.current, args.json, args.zero_tolerance)
    if args.command == "export":
        from monitor.commands import export

        return export.main(args.config, args.canary, args.target, args.since, args.until, args.output)
    if args.command == "alerts":
        from monitor.alerts.commands import alerts_pending, alerts_resend, alerts_test
        from monitor.commands.common import load_or_exit

        if args.action == "resend" and not args.ids and args.sink is None:
            _innermost(ap, args).error("name the notifications to send again (their message ids, as `alerts pending "
                                       "--dead` lists them), or --sink NAME for every one given up on at a sink")
        config = load_or_exit(args.config)
        if args.action == "pending":
            return alerts_pending(config, limit=args.limit, every=args.all, dead=args.dead, as_json=args.json)
        if args.action == "resend":
            return alerts_resend(config, args.ids, args.sink)
        return alerts_test(config, args.sink)
    if args.command == "store":
        if args.action == "scrub":
            from monitor.commands import scrub

            return scrub.scrub(args.config, args.batch)
        from monitor.commands import store

        return store.copy(args.config, args.source, args.destination, args.batch)
    if args.command == "refusal":
        from monitor.commands import refusal

        return refusal.main(args.jsonl)
    raise AssertionError(args.command)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a CI job cancelled), ending a command as Ctrl-C does."""


def _on_sigterm(signum: int, frame: object) -> None:
    # As Ctrl-C: killed outright, probe's runs stayed `running` and its calls in flight were lost. Probe's event
    # loop first cancels the command's task (commands.common.run_terminable: its calls in flight are stored as
    # cancelled), then hands the signal here; `run`, `demo` and `sim` put their own handlers in place of this one.
    import signal

    global _terminated
    _terminated = True
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a shell: no Ctrl-C
        raise _Terminated
    signal.raise_signal(signal.SIGINT)


_terminated = False
SIGINT, SIGTERM = 2, 15  # their numbers on every platform Python runs on (signal may be the import Ctrl-C cut)


def entry() -> None:
    """Console-script entry: exit with main()'s code; a closed stdout pipe (| head) is not an error."""
    try:
        import signal  # here, as every import: a Ctrl-C while the command loads is one line too

        signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            code: str | int | None = main()
        except SystemExit as e:  # argparse's --help, --version and usage errors, a config's exit 2: flushed too
            code = e.code
        _flush_stdout()  # in the try: a reader gone by the interpreter's own flush made it exit 120, with a
        # traceback-like `Exception ignored` on stderr; a full disk there (`--version > /dev/full`) exited 0
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: one line, not a traceback (probe has stored its calls in
        # flight as cancelled)
        terminated = _terminated or isinstance(e, _Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        code = 128 + (SIGTERM if terminated else SIGINT)
    except Exception as e:
        failed = _output_failed(e)
        code = _store_failed(e) if failed is None else failed
    sys.exit(code)


def _flush_stdout() -> None:
    """Flush standard output, a failure (a full disk) raised as the console's OutputFailed (imported only then)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        from monitor.console import OutputFailed

        raise OutputFailed(f"standard output: cannot write: {e.strerror or e}") from e


def _output_failed(e: Exception) -> int | None:
    """An output that could not be written (a full disk, an I/O error: the console's, write_line's or the final
    flush's OutputFailed) told in one line on standard error, if that can be written: 1; None for any other
    exception."""
    import contextlib

    from monitor.console import OutputFailed

    if not isinstance(e, OutputFailed):
        return None
    with contextlib.suppress(OSError):
        print(f"error: {e}", file=sys.stderr, flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's own flush at exit: no retry
    return 1


def _store_failed(e: Exception) -> int:
    """A store that fails in the middle of a command (a lock past its timeout, a full disk, a dropped
    connection, a deadlock) is the store's error, told in one line with exit 1; anything else is a bug: raise.
    The driver's message is the store's text (a trigger's, a PostgreSQL error echoing a schema or database name):
    escaped for the terminal, and a URL's password in it redacted."""
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(e, SQLAlchemyError):
        raise e
    from monitor.config.validate import redact_url
    from monitor.escapes import printable
    from monitor.store.repository import driver_message

    print(f"error: the store failed: {printable(redact_url(driver_message(e)))}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    entry()
