"""Run untrusted Python in a throw-away, resource-limited child process (parent side).

Layers, outermost first: a new network namespace (``unshare -n``) when the host allows it; a new session so
every descendant is killed with the process group; a wall-clock timeout; inside the child (see
``_sandbox_boot.py``) rlimits on address space, CPU time, processes, file size and descriptors, and audit hooks
that block process creation, sockets, native-code imports, writes outside the work directory and reads outside it
and the standard library (another process's ``/proc`` holds its environment: the daemon's API keys). The child runs
``python -I -S -B`` with a scrubbed environment, stdin closed, and a fresh temporary directory as cwd.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_BOOT = Path(__file__).with_name("_sandbox_boot.py")
_TAIL = 2000


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How a sandboxed run ended: exit code (negative = signal), timeout, output tails, isolation used."""

    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    network: str  # "namespace" (own network namespace + hook) or "hook" (audit hook only)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@functools.cache
def netns_command() -> tuple[str, ...] | None:
    """Return the unshare prefix that gives a child its own empty network namespace here, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in ((unshare, "-n"), (unshare, "-r", "-n")):
        try:
            done = subprocess.run([*prefix, "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return prefix
    return None


def _env(home: str) -> dict[str, str]:
    # Nothing from the daemon's environment (API keys, tokens) reaches the child.
    return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8"}


def _tail(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - _TAIL))
        return f.read().decode("utf-8", "replace")


def run_python(source: str, *, timeout_s: float = 5.0, memory_mb: int = 256, file_mb: int = 16,
               netns: bool | None = None) -> SandboxResult:
    """Run ``source`` in the sandbox and return how it ended; ``netns=None`` uses a namespace if available."""
    prefix = netns_command() if netns in (None, True) else None
    if netns is True and prefix is None:
        raise RuntimeError("network namespaces are not available on this host")
    cfg = {"memory_bytes": memory_mb * 1024 * 1024, "cpu_s": math.ceil(timeout_s) + 1,
           "file_bytes": file_mb * 1024 * 1024}
    with tempfile.TemporaryDirectory(prefix="llm-monitor-sandbox-") as root:
        work, out, err = Path(root, "work"), Path(root, "stdout"), Path(root, "stderr")
        work.mkdir()
        (work / "solution.py").write_text(source, encoding="utf-8")
        argv = [*(prefix or ()), sys.executable, "-I", "-S", "-B", str(_BOOT), json.dumps(cfg)]
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(argv, cwd=work, env=_env(str(work)), stdin=subprocess.DEVNULL, stdout=fo,
                                    stderr=fe, start_new_session=True, close_fds=True)
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)
                proc.wait()
        return SandboxResult(None if timed_out else proc.returncode, timed_out, _tail(out), _tail(err),
                             "namespace" if prefix else "hook")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


__all__ = ["SandboxResult", "netns_command", "run_python"]
