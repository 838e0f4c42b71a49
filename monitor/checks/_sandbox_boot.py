"""Child side of the code sandbox: set limits, install audit hooks, then run solution.py.

Runs as ``python -I -S -B _sandbox_boot.py '<json config>'`` with cwd set to the throw-away work directory.
Everything here happens before the untrusted code runs; audit hooks cannot be removed once installed.
Standard library only: this file must not import llm-monitor.
"""

import json
import os
import resource
import sys

_SPAWN = {"os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system", "subprocess.Popen",
          "os.kill", "os.killpg", "signal.pthread_kill", "pty.spawn"}
_NETWORK = {"socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
            "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.socketpair"}
_NATIVE_IMPORTS = {"ctypes", "_ctypes", "cffi", "_posixsubprocess", "_xxsubinterpreters"}
_PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.link": (0, 1),
                "os.symlink": (0, 1), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,),
                "os.utime": (0,), "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
                "shutil.rmtree": (0,), "shutil.chown": (0,), "sqlite3.connect": (0,), "os.mkfifo": (0,),
                "os.mknod": (0,)}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Besides the work directory and the standard library, reads may only reach these: no other process's /proc
# (the daemon's environment holds API keys), no config, key files or store.
_READABLE = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/usr/share/zoneinfo", "/etc/localtime")


def _limits(cfg):
    mem = cfg["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = cfg["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new processes (or threads) for non-root users
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_bytes"], cfg["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def _under(real, roots):
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _hook(workdir):
    readable = (workdir, os.path.realpath(f"/proc/{os.getpid()}"), *(os.path.realpath(p) for p in sys.path if p),
                *_READABLE)

    def inside(path, roots=(workdir,)):
        if isinstance(path, int):
            return True  # an already-open descriptor
        return _under(os.path.realpath(os.fsdecode(path)), roots)

    def hook(event, args):
        if event in _SPAWN:
            raise PermissionError(f"sandbox: process creation and signals blocked ({event})")
        if event in _NETWORK:
            raise PermissionError(f"sandbox: network access blocked ({event})")
        if event == "import" and args[0].split(".")[0] in _NATIVE_IMPORTS:
            raise ImportError(f"sandbox: import of {args[0]} blocked")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing and path is not None and not inside(path):
                raise PermissionError(f"sandbox: write outside the work directory blocked ({path!r})")
            if path is not None and not inside(path, readable):
                raise PermissionError(f"sandbox: read outside the work directory and the standard library "
                                      f"blocked ({path!r})")
        elif event in _PATH_EVENTS:
            for i in _PATH_EVENTS[event]:
                if i < len(args) and args[i] is not None and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} outside the work directory blocked ({args[i]!r})")

    return hook


def main():
    cfg = json.loads(sys.argv[1])
    workdir = os.path.realpath(os.getcwd())
    with open(os.path.join(workdir, "solution.py"), encoding="utf-8") as f:
        source = f.read()
    code = compile(source, "solution.py", "exec")
    try:
        sys.stdin.close()
    finally:
        os.close(0)
    sys.stdin = None
    _limits(cfg)
    sys.addaudithook(_hook(workdir))
    sys.argv = ["solution.py"]
    scope = {"__name__": "__main__", "__file__": os.path.join(workdir, "solution.py"), "__builtins__": __builtins__}
    exec(code, scope)


if __name__ == "__main__":
    main()
