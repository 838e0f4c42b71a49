"""Lazy package exports (PEP 562): a package's `__init__` names what it re-exports and from which module, and a
name's module is imported the first time the name is asked for.

`monitor.drift` and `monitor.alerts` re-export their main classes, but most importers need one light module of
theirs (the config needs `drift.settings` and `alerts.config`): importing everything up front loaded SciPy and
SQLAlchemy into `check-config` and every other command that only reads the configuration.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, which re-exports each name of `names` from its module."""

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module)
        # Every name of that module is bound, not only this one (found directly from now on): importing the module
        # bound its own name on the package, and where a name is also its module's (`monitor.drift.replay`, the
        # function), asking for another name first (`replay_observations`) left the module there for good.
        for other, where in names.items():
            if where == module:
                setattr(sys.modules[package], other, getattr(loaded, other))
        return getattr(loaded, name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
