"""Helpers the commands share: loading config with exit code 2 on bad input."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from monitor.config.loader import Config, load_config
from monitor.errors import ConfigError, MonitorError

if TYPE_CHECKING:
    from monitor.store import Store

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


def open_store_or_exit(config: Config, *, create: bool = True) -> Store:
    """Open and migrate the configured store, or print why it cannot be used and exit 2.

    `create=False` (commands that only look at stored data): a SQLite file that does not exist is an error.
    """
    from monitor.store import Store

    store = Store(config.storage.url)
    try:
        store.migrate(create=create)
    except MonitorError as e:
        store.close()
        err_console.print(f"[bold red]error:[/] {escape(str(e))}")
        raise SystemExit(EXIT_CONFIG) from None
    return store
