"""Write the dashboards' JSON models (dashboards/*.json) from boards.py; --check verifies they are current.

Usage: python dashboards/generate.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from boards import DASHBOARDS  # noqa: E402


def render(name: str) -> str:
    """Return the JSON text of one dashboard."""
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Generate (or check) every dashboard file; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a committed file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name in DASHBOARDS:
        path = HERE / f"llm-monitor-{name}.json"
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python dashboards/generate.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
