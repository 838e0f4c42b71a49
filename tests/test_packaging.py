"""The wheel carries what a user without a checkout needs: the canary library (for `demo`) and the dashboards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("llm_monitor-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_probe_file_and_dashboard(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.split("/data/", 1)[1] for n in names if ".data/data/share/llm-monitor/" in n}
    expected = {f"share/llm-monitor/probes/{p.name}" for p in (ROOT / "probes").glob("*.yaml")}
    expected |= {f"share/llm-monitor/dashboards/{p.name}" for p in (ROOT / "dashboards").glob("*.json")}
    assert expected <= shipped, sorted(expected - shipped)
    assert "share/llm-monitor/probes/README.md" in shipped


@pytest.mark.slow
def test_demo_finds_the_canary_library_of_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    # --ignore-installed: install beside the test environment's own llm-monitor, never uninstalling it.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix",
                    str(prefix), str(wheel)], check=True, capture_output=True, timeout=300)
    (site,) = prefix.glob("lib/python3*/site-packages")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    # The installed copy ahead of the checkout; its dependencies from the test environment.
    found = subprocess.run([sys.executable, "-c", "import monitor.commands.demo as d; print(d.__file__); "
                            "print(d.shipped_probes()); print(*d.installed_data('dashboards'))"],
                           cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
                           text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.split("\n")
    assert lines[0].startswith(str(site)), lines  # the installed copy, not the checkout
    probes, dashboards = Path(lines[1]), Path(lines[2])
    assert probes == (prefix / "share" / "llm-monitor" / "probes").resolve()
    assert {p.name for p in probes.glob("*.yaml")} == {p.name for p in (ROOT / "probes").glob("*.yaml")}
    assert {p.name for p in dashboards.glob("*.json")} == {p.name for p in (ROOT / "dashboards").glob("*.json")}


@pytest.mark.slow
def test_the_container_image_build_context_makes_a_wheel(tmp_path: Path) -> None:
    """deploy/Dockerfile copies only some folders before `pip install .`: they must be all the build needs."""
    text = re.sub(r"\\\n", " ", (ROOT / "deploy" / "Dockerfile").read_text())
    src = tmp_path / "src"
    src.mkdir()
    for line in text.splitlines():
        if line.startswith("RUN pip install ."):
            break
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            for pattern in sources:
                for path in ROOT.glob(pattern):
                    target = src / dest / path.name if dest.endswith("/") else src / dest
                    if path.is_dir():
                        shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                    else:
                        shutil.copy(path, target)
    else:
        pytest.fail("no `RUN pip install .` in deploy/Dockerfile")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "out"),
                            str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "out").glob("llm_monitor-*.whl")
    assert any("share/llm-monitor/probes/" in n for n in zipfile.ZipFile(wheel).namelist())
