"""`llm-monitor sim`: the simulated upstream on its own, for dry-running a config."""

from __future__ import annotations

import logging

from rich.markup import escape

from monitor.commands.common import EXIT_CONFIG, EXIT_OK, err_console, print_problems
from monitor.errors import ConfigError


def main(host: str, port: int, scenario_path: str | None) -> int:
    from monitor.sim import builtin_scenario, load_scenario, serve

    try:
        scenario = load_scenario(scenario_path) if scenario_path else builtin_scenario("demo")
    except ConfigError as e:
        print_problems("invalid scenario", e.issues)
        return EXIT_CONFIG
    bound: list[bool] = []

    def listening(url: str) -> None:  # with the port bound, not the one asked for: --port 0 takes any free one
        bound.append(True)
        err_console.print(f"simulated upstream on {url}  (OpenAI: {url}/v1, Anthropic: {url})", markup=False)

    try:
        # uvicorn's loggers (requests served, start and stop) follow --log-level like the rest of the process
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        serve(scenario, host, port, log_level=level, on_listening=listening)
    except OSError as e:
        if bound:  # not the bind: a failure while serving is a bug, shown as such
            raise
        err_console.print("[bold red]error:[/] " + escape(f"cannot listen on {host}:{port}: {e.strerror or e} "
                                                         "(choose another with --port)"))
        return EXIT_CONFIG
    return EXIT_OK
