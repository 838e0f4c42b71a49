"""Run untrusted Python in a throw-away, resource-limited child process (parent side).

Layers, outermost first: a new network namespace (``unshare -n``) when the host allows it, and a mount namespace
in which the work directory is a size-limited tmpfs (``-m``); a new session so
every descendant is killed with the process group; a wall-clock timeout; inside the child (see
``_sandbox_boot.py``), before the untrusted code starts, the kernel layers the host has: Landlock (reads confined
to the work directory and the standard library, writes to the work directory, no TCP, no signals out), a seccomp
filter (no sockets, io_uring or ptrace) and, when the daemon runs as root, uid/gid 65534; then rlimits on address
space, CPU time, processes, file size and descriptors, and an audit hook that turns the common attempts into
readable errors (the only barrier left where the kernel has none of the layers: it can be bypassed). The child
runs ``python -I -S -B`` with a scrubbed environment, stdin closed, and a fresh temporary directory as cwd.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_BOOT = Path(__file__).with_name("_sandbox_boot.py")
_TAIL = 2000
_NOBODY = 65534  # the uid and gid the child drops to when the daemon runs as root
_KERNEL_LAYERS = ("landlock", "seccomp")
_MEANING = {"landlock": "without Landlock, reads and writes are confined only by the audit hook, which Python code "
                        "can bypass",
            "seccomp": "without seccomp, sockets and new processes are stopped only by the audit hook and the "
                       "network namespace",
            "tmpfs": "without its own mount namespace, each file is capped but not their total on disk"}
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How a sandboxed run ended: exit code (negative = signal), timeout, output tails, isolation used."""

    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    network: str  # "namespace" (own network namespace + hook) or "hook" (audit hook only)
    isolation: tuple[str, ...] = ()  # the child's kernel layers, e.g. ("landlock abi 7", "uid 65534", "seccomp")

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@functools.cache
def netns_command() -> tuple[str, ...] | None:
    """Return the unshare prefix that gives a child its own empty network namespace (and, where the host allows
    it, its own mount namespace, for a size-limited tmpfs as its work directory) here, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in ((unshare, "-n", "-m"), (unshare, "-r", "-n", "-m"), (unshare, "-n"), (unshare, "-r", "-n")):
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


def _tail(f: BinaryIO) -> str:
    # Read through the descriptor the child wrote to, never the path: the child may have replaced the path.
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _TAIL))
    return f.read().decode("utf-8", "replace")


def _read_report(fd: int) -> tuple[str, ...]:
    with os.fdopen(fd, "rb") as f:
        data = f.read(4096)
    try:
        layers = json.loads(data)
    except ValueError:
        return ()  # the child died before confining itself
    return tuple(str(x) for x in layers) if isinstance(layers, list) else ()


@functools.cache
def _warn_missing(missing: tuple[str, ...]) -> None:
    log.warning("code_runs sandbox: %s not available on this host; the child runs with the layers it has (%s)",
                ", ".join(missing), "; ".join(_MEANING[k] for k in missing))


def run_python(source: str, *, timeout_s: float = 5.0, memory_mb: int = 256, file_mb: int = 16,
               disk_mb: int = 64, netns: bool | None = None) -> SandboxResult:
    """Run ``source`` in the sandbox and return how it ended; ``netns=None`` uses a namespace if available.

    ``file_mb`` caps each file, ``disk_mb`` all of them (where the child gets its own mount namespace)."""
    prefix = netns_command() if netns in (None, True) else None
    if netns is True and prefix is None:
        raise RuntimeError("network namespaces are not available on this host")
    as_root = os.geteuid() == 0
    report_r, report_w = os.pipe()
    cfg = {"memory_bytes": memory_mb * 1024 * 1024, "cpu_s": math.ceil(timeout_s) + 1,
           "file_bytes": file_mb * 1024 * 1024, "report_fd": report_w,
           "run_as": [_NOBODY, _NOBODY] if as_root and "-r" not in (prefix or ()) else None,  # -r: a user namespace
           "disk_bytes": disk_mb * 1024 * 1024 if prefix and "-m" in prefix else None}
    with tempfile.TemporaryDirectory(prefix="llm-monitor-sandbox-") as root:
        work = Path(root, "work")
        work.mkdir()
        (work / "solution.py").write_text(source, encoding="utf-8")
        if as_root:
            os.chmod(root, 0o711)  # the child, as nobody, reaches its work directory but cannot list the root
        argv = [*(prefix or ()), sys.executable, "-I", "-S", "-B", str(_BOOT), json.dumps(cfg)]
        with tempfile.TemporaryFile(dir=root) as fo, tempfile.TemporaryFile(dir=root) as fe:
            try:
                proc = subprocess.Popen(argv, cwd=work, env=_env(str(work)), stdin=subprocess.DEVNULL, stdout=fo,
                                        stderr=fe, start_new_session=True, close_fds=True, pass_fds=(report_w,))
            finally:
                os.close(report_w)
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)
                proc.wait()
            layers = _read_report(report_r)
            if layers:
                missing = tuple(k for k in (*_KERNEL_LAYERS, "tmpfs") if not any(x.startswith(k) for x in layers))
                if missing:
                    _warn_missing(missing)
            result = SandboxResult(None if timed_out else proc.returncode, timed_out, _tail(fo), _tail(fe),
                                   "namespace" if prefix else "hook", layers)
        return result


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


__all__ = ["SandboxResult", "netns_command", "run_python"]
