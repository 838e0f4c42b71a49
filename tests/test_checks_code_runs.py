"""code_runs and its sandbox, with real child processes: bad code is stopped, good code passes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from monitor.checks import evaluate, parse_check
from monitor.checks.code_runs import extract_code
from monitor.checks.sandbox import netns_command, run_python
from monitor.domain import CallResult, CheckResult, Observation

pytestmark = pytest.mark.slow

SOLUTION = """Here is the function:

```python
def add(a, b):
    return a + b
```

Example:

```python
print(add(1, 2))
```
"""


def obs(text: str) -> Observation:
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), CallResult(text=text))


def run(code: str, asserts: list[str] | None = None, **opts: object) -> CheckResult:
    spec = parse_check({"type": "code_runs", "asserts": asserts or [], **opts})
    return evaluate(spec, obs(f"```python\n{code}\n```"))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv
    srv.close()


def assert_no_connection(srv: socket.socket) -> None:
    srv.setblocking(False)
    with pytest.raises(BlockingIOError):
        srv.accept()


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    yield
    assert psutil.Process().children(recursive=True) == []


def test_correct_solution_passes() -> None:
    r = evaluate(parse_check({"type": "code_runs", "asserts": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"]}),
                 obs(SOLUTION))
    assert r.passed is True, r.detail
    assert "2 asserts" in r.detail


def test_failing_assert_names_the_assert() -> None:
    r = evaluate(parse_check({"type": "code_runs", "asserts": ["assert add(2, 2) == 5"]}), obs(SOLUTION))
    assert r.passed is False
    assert "AssertionError at `assert add(2, 2) == 5`" in r.detail


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("I cannot write code today.", "no python code block"),
        ("```python\ndef add(a, b)\n    return a + b\n```", "syntax error"),
        ("", "no python code block"),
    ],
)
def test_malformed_completion_fails(text: str, detail: str) -> None:
    r = evaluate(parse_check({"type": "code_runs", "asserts": ["assert add(1, 1) == 2"]}), obs(text))
    assert r.passed is False
    assert detail in r.detail


def test_extract_code_choices() -> None:
    assert extract_code(SOLUTION, "first", False).startswith("def add")
    assert extract_code(SOLUTION, "last", False).startswith("print")
    assert "def add" in extract_code(SOLUTION, "all", False) and "print" in extract_code(SOLUTION, "all", False)
    assert extract_code("def f():\n    return 1\n", "first", False) == "def f():\n    return 1\n"
    assert extract_code("def f():\n    return 1\n", "first", True) is None
    assert extract_code("```python\ndef f():\n    return 1\n", "first", True) == "def f():\n    return 1\n"


def test_infinite_loop_is_stopped() -> None:
    r = run("while True:\n    pass", timeout_s=1)
    assert r.passed is False
    assert "timed out after 1s" in r.detail


def test_fork_bomb_is_stopped() -> None:
    r = run("import os\nwhile True:\n    os.fork()")
    assert r.passed is False
    assert "process creation and signals blocked (os.fork)" in r.detail


def test_subprocesses_and_native_code_are_blocked() -> None:
    assert "import of _posixsubprocess blocked" in run("import subprocess\nsubprocess.run(['true'])").detail
    assert "os.system" in run("import os\nos.system('true')").detail
    assert "import of ctypes blocked" in run("import ctypes").detail
    assert "os.kill" in run("import os\nos.kill(1, 0)").detail


@pytest.mark.parametrize("code", ["x = bytearray(4 * 1024 ** 3)",
                                  "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))"])
def test_memory_bomb_is_stopped(code: str) -> None:
    r = run(code, memory_mb=128, timeout_s=20)
    assert r.passed is False
    assert "MemoryError" in r.detail


CONNECT = "import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('127.0.0.1', {port}))\n"


def test_network_connection_is_blocked(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=3):  # control: the listener is reachable
        listener.accept()[0].close()
    r = run(CONNECT.format(port=port))
    assert r.passed is False
    assert "network access blocked" in r.detail
    assert_no_connection(listener)


def test_network_is_blocked_by_the_hook_alone(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run_python(CONNECT.format(port=port) + "print('connected')\n", netns=False)
    assert result.network == "hook"
    assert not result.ok
    assert "network access blocked (socket.__new__)" in result.stderr
    assert "connected" not in result.stdout
    assert_no_connection(listener)


def test_network_namespace_alone_has_no_route_to_the_host(listener: socket.socket) -> None:
    prefix = netns_command()
    if prefix is None:
        pytest.skip("network namespaces are not available here; the audit hook is the only network barrier")
    port = listener.getsockname()[1]
    done = subprocess.run([*prefix, sys.executable, "-I", "-c", CONNECT.format(port=port)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert "Error" in done.stderr
    assert_no_connection(listener)
    assert run_python("print(1)").network == "namespace"


def test_write_outside_the_work_directory_is_blocked(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    r = run(f"open({str(target)!r}, 'w').write('x')")
    assert r.passed is False
    assert "write outside the work directory blocked" in r.detail
    assert not target.exists()


def test_delete_and_mkdir_outside_are_blocked(tmp_path: Path) -> None:
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    assert "os.remove outside" in run(f"import os\nos.remove({str(keep)!r})").detail
    assert "os.mkdir outside" in run(f"import os\nos.mkdir({str(tmp_path / 'd')!r})").detail
    assert keep.read_text() == "precious"
    assert not (tmp_path / "d").exists()


def test_the_daemons_environment_and_files_outside_cannot_be_read(tmp_path: Path) -> None:
    """The daemon's environment holds the API keys: another process's /proc, a key file, the store are off limits."""
    key_file = tmp_path / "openai.key"
    key_file.write_text("sk-secret-from-a-file")
    r = run("import os\nprint(open(f'/proc/{os.getppid()}/environ', 'rb').read())")
    assert r.passed is False and "read outside the work directory and the standard library blocked" in r.detail
    r = run(f"raise SystemExit(open({str(key_file)!r}).read())")
    assert r.passed is False and "sk-secret" not in r.detail and "read outside" in r.detail
    r = run("import json, os, textwrap, zoneinfo\nos.urandom(4)\nopen('own.txt', 'w').write('x')\n"
            "assert open('own.txt').read() == 'x' and open(f'/proc/{os.getpid()}/status').read()")
    assert r.passed is True, r.detail


def test_many_files_cannot_fill_the_hosts_disk() -> None:
    """Each file is capped (file_mb); in its own mount namespace the work directory is a tmpfs capping them all."""
    unshare = shutil.which("unshare")
    if unshare is None or not any(subprocess.run([unshare, *flags, "true"], capture_output=True).returncode == 0
                                  for flags in (["-n", "-m"], ["-r", "-n", "-m"])):
        pytest.skip("no mount namespace here: only each file's size is capped")
    code = ("n = 0\ntry:\n    for i in range(20):\n        with open(f'f{i}', 'wb') as f:\n"
            "            f.write(b'x' * (10 << 20))\n        n += 10\nexcept OSError as e:\n"
            "    print('stopped', e.errno, n)\nprint(open(__file__).read()[:4])")
    r = run_python(code, timeout_s=20, disk_mb=32)
    assert r.ok and any(layer.startswith("tmpfs 32 MB") for layer in r.isolation), (r.stderr, r.isolation)
    stopped, errno, written = r.stdout.split()[:3]
    assert (stopped, int(errno)) == ("stopped", 28) and int(written) <= 32  # ENOSPC at the cap, not 200 MB
    assert r.stdout.split()[3] == "n", r.stdout  # solution.py is in the tmpfs too


def test_writes_inside_the_work_directory_are_allowed() -> None:
    code = ("import os, tempfile\nopen('scratch.txt', 'w').write('ok')\nos.mkdir('sub')\n"
            "fd, path = tempfile.mkstemp()\nos.close(fd)\nos.remove(path)\n")
    r = run(code, asserts=["assert open('scratch.txt').read() == 'ok'"])
    assert r.passed is True, r.detail


def test_environment_is_scrubbed_and_stdin_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    r = run("import os\nassert not any('KEY' in k or 'sk-secret' in v for k, v in os.environ.items())")
    assert r.passed is True, r.detail
    r = run("name = input()")
    assert r.passed is False
    assert "stdin" in r.detail


# Python code can get past the audit hook (rebinding the boot module's globals, a descriptor relative to another
# folder, the standard library's own ctypes loaded by path); what follows must still be stopped by the kernel.
BYPASS = """
import glob, importlib.machinery as m, importlib.util as u, os, sys, types
import __main__
for name in ("_SPAWN", "_NETWORK", "_NATIVE_IMPORTS"):
    try:
        getattr(__main__, name).clear()
    except Exception:
        pass
def ctypes_by_path():
    dyn = [p for p in sys.path if p.endswith("lib-dynload")][0]
    so = glob.glob(dyn + "/_ctypes.*.so")[0]
    spec = u.spec_from_file_location("_ctypes", so, loader=m.ExtensionFileLoader("_ctypes", so))
    sys.modules["_ctypes"] = u.module_from_spec(spec)
    sys.modules["ctypes._endian"] = types.SimpleNamespace(BigEndianStructure=None, LittleEndianStructure=None,
                                                          BigEndianUnion=None, LittleEndianUnion=None)
    init = os.path.join(os.path.dirname(os.__file__), "ctypes", "__init__.py")
    spec = u.spec_from_file_location("ctypes", init, submodule_search_locations=[])
    ct = u.module_from_spec(spec)
    spec.loader.exec_module(ct)
    return ct.CDLL(None, use_errno=True)
def attempt(label, fn):
    try:
        print(label, fn(), flush=True)
    except Exception as e:
        print("blocked", label, type(e).__name__, e, flush=True)
work = os.open(".", os.O_RDONLY)
up = "../" * os.getcwd().count("/")  # from the work directory to /; from the cwd below, still inside it
deep = "/".join("d" * (up.count("/") + 1))
os.makedirs(deep)
os.chdir(deep)
"""


def test_the_daemons_environment_stays_unreadable_past_the_audit_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-in-the-daemon-env")
    code = BYPASS + ("attempt('ESCAPED', lambda: os.read(os.open(up + 'proc/%d/environ' % os.getppid(), os.O_RDONLY,"
                     " dir_fd=work), 1 << 20))\n"
                     "attempt('ESCAPED', lambda: os.read(ctypes_by_path().open(b'/proc/%d/environ' % os.getppid(),"
                     " 0), 1 << 20))\n")
    # The child's parent is a fresh interpreter started with the key in its environment, like the daemon.
    parent = subprocess.run([sys.executable, "-c", "import sys; from monitor.checks.sandbox import run_python; "
                             "r = run_python(sys.stdin.read()); print(r.stdout, r.stderr)"],
                            input=code, capture_output=True, text=True, timeout=60, check=True)
    assert "sk-secret-in-the-daemon-env" not in parent.stdout
    assert "\nESCAPED" not in parent.stdout and "blocked ESCAPED" in parent.stdout, parent.stdout


def test_writes_outside_stay_blocked_past_the_audit_hook(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    tmp_path.chmod(0o777)
    code = BYPASS + (f"attempt('ESCAPED', lambda: os.open(up + {str(target)[1:]!r}, os.O_WRONLY | os.O_CREAT, 0o666,"
                     " dir_fd=work))\n"
                     f"attempt('ESCAPED', lambda: ctypes_by_path().open({str(target).encode()!r}, 0o101, 0o666))\n")
    r = run_python(code)
    assert not target.exists(), r.stdout
    assert "blocked ESCAPED" in r.stdout


def test_no_connection_process_or_signal_past_the_audit_hook(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = BYPASS + (
        "import socket\n"
        f"attempt('ESCAPED', lambda: socket.create_connection(('127.0.0.1', {port}), timeout=3))\n"
        "attempt('ESCAPED', lambda: os.kill(os.getppid(), 0) or 'signalled')\n"
        "attempt('ESCAPED', lambda: ctypes_by_path().kill(os.getppid(), 0) == 0 or 'no')\n"
        "attempt('ESCAPED', lambda: ctypes_by_path().socket(1, 1, 0) >= 0 or 'no')\n"
        "def persist():\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        import time\n"
        "        time.sleep(60)\n"
        "    return 'forked'\n"
        "attempt('ESCAPED', persist)\n"
        "attempt('ESCAPED', lambda: ctypes_by_path().fork() >= 0 or 'no')\n")
    r = run_python(code, netns=False)
    escaped = [line for line in r.stdout.splitlines() if line.startswith("ESCAPED") and not line.endswith(" no")]
    for proc in psutil.process_iter(["cmdline", "cwd"]):  # a forked child in its own session outlives the group
        # This code's own: it waits in the deep folder it made (another daemon's or test's sandboxes may run now)
        if proc.info["cmdline"] and str(Path("_sandbox_boot.py")) in " ".join(proc.info["cmdline"]) \
                and "/work/d/d" in (proc.info["cwd"] or ""):
            proc.kill()
            escaped.append(f"left running: {proc.pid}")
    assert escaped == [], r.stdout
    assert_no_connection(listener)
    assert "sandbox: network access blocked" in r.stdout or "Errno" in r.stdout
