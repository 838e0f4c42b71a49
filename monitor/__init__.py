"""llm-monitor: watch the LLM APIs you depend on, and say with statistics what changed and when."""

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

# httpx's `__init__` imports its command-line client (`httpx._main`: rich's console, pygments' lexers, click) and
# falls back to a stub `httpx.main` when that import fails: 3 MB resident in every process that imports httpx, and
# nothing here runs httpx's client. A None entry makes the import fail; if httpx is already loaded it stays as it is.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def _uvicorn_main_on_demand() -> None:
    """Stand in for `uvicorn.main` until one of its names other than `Server` is used.

    uvicorn's `__init__` imports `uvicorn.main` (its command line: click, the reloader and worker supervisors),
    1.4 MB resident in every process; the daemon and the simulator serve with `uvicorn.Server` only.
    `uvicorn.main` and `uvicorn.run` stay callable and load the real module when called, as does any other name
    asked of `uvicorn.main`. If uvicorn is already loaded this does nothing.
    """
    if "uvicorn" in sys.modules or "uvicorn.main" in sys.modules:
        return
    stub = types.ModuleType("uvicorn.main", "Stands in for uvicorn's command line until it is used (monitor/__init__).")

    def real() -> types.ModuleType:
        if sys.modules.get("uvicorn.main") is stub:
            del sys.modules["uvicorn.main"]
        module = importlib.import_module("uvicorn.main")
        # as uvicorn's `__init__` leaves it: the command, not the module the import just bound there
        setattr(sys.modules["uvicorn"], "main", module.main)  # noqa: B010
        return module

    def forward(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(real(), name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        return call

    def attribute(name: str) -> Any:
        if name.startswith("__"):  # the import system's and repr's probes (`__path__`, `__file__`) load nothing
            raise AttributeError(name)
        if name == "Server":  # what `uvicorn.main` re-exports from `uvicorn.server`
            return importlib.import_module("uvicorn.server").Server
        return getattr(real(), name)

    stub.__dict__.update(main=forward("main"), run=forward("run"), __getattr__=attribute)
    sys.modules["uvicorn.main"] = stub


_uvicorn_main_on_demand()
