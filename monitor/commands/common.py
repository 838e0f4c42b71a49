"""Helpers the commands share: loading config with exit code 2 on bad input."""

from __future__ import annotations

import sys

from rich.console import Console

from monitor.config.loader import Config, load_config
from monitor.errors import ConfigError

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def load_or_exit(path: str) -> Config:
    """Load the config, or print every issue (file:line: field: reason) and exit 2."""
    try:
        return load_config(path)
    except ConfigError as e:
        err_console.print(f"[bold red]invalid configuration[/] ({len(e.issues)} problem"
                          f"{'s' if len(e.issues) != 1 else ''}):", markup=True)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
