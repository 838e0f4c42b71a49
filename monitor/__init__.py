"""llm-monitor: watch the LLM APIs you depend on, and say with statistics what changed and when."""

import sys

__version__ = "0.1.0"

# httpx's `__init__` imports its command-line client (`httpx._main`: rich's console, pygments' lexers, click) and
# falls back to a stub `httpx.main` when that import fails: 3 MB resident in every process that imports httpx, and
# nothing here runs httpx's client. A None entry makes the import fail; if httpx is already loaded it stays as it is.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
