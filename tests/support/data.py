"""Where the shared recorded datasets are: ../shared beside the checkout (as on developers' machines and CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LLM_MONITOR_SHARED", ROOT.parent / "shared"))
LLMDRIFT = SHARED / "datasets" / "llmdrift"
XSTEST = SHARED / "datasets" / "xstest"


def require(path: Path) -> Path:
    """Return `path`; skip when it is missing, except in CI where the datasets must be there."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"dataset missing in CI: {path}")
        pytest.skip(f"dataset not present: {path}")
    return path
