"""Child side of the code sandbox: confine this process, then run solution.py.

Runs as ``python -I -S -B _sandbox_boot.py '<json config>'`` with cwd set to the throw-away work directory.
Everything here happens before the untrusted code runs. The kernel layers are the barrier: Landlock (reads
only the work directory, the standard library and a few device files; writes only the work directory; no TCP;
no signals or abstract sockets out of the sandbox; no ptrace), a seccomp filter (no sockets of any family, no
io_uring, ptrace or cross-process memory access), a dropped uid when started as root, and rlimits. The audit hook
only gives readable error messages and is a last layer where the kernel has none of the others: CPython audit
hooks can be bypassed from Python, so they are not a security boundary on their own.
Standard library only: this file must not import llm-monitor. The layers applied are written as JSON to the
descriptor named in the config, which is closed before the untrusted code starts.
"""

import json
import os
import platform
import resource
import struct
import sys

_SPAWN = frozenset({"os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system",
                    "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "pty.spawn"})
_NETWORK = frozenset({"socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                      "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.socketpair"})
# Introspection that reaches the hook's own state (its closure) from Python.
_INTROSPECTION = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames"})
_NATIVE_IMPORTS = frozenset({"ctypes", "_ctypes", "cffi", "_posixsubprocess", "_xxsubinterpreters"})
_PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.link": (0, 1),
                "os.symlink": (0, 1), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,),
                "os.utime": (0,), "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
                "shutil.rmtree": (0,), "shutil.chown": (0,), "sqlite3.connect": (0,), "os.mkfifo": (0,),
                "os.mknod": (0,)}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Besides the work directory and the standard library, reads may only reach these: no other process's /proc
# (the daemon's environment holds API keys), no config, key files or store.
_READABLE = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/usr/share/zoneinfo", "/etc/localtime")

# Landlock (linux/landlock.h); the syscall numbers are the same on every architecture.
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_WORKDIR = 0b1_0001_1011_1110  # write, read file/dir, remove dir/file, make dir/regular/symlink
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
# seccomp, by machine: (audit arch, clone, clone3, syscalls that answer EPERM: socket, ptrace,
# process_vm_readv/writev, io_uring x3, unshare, setns, bpf, userfaultfd, perf_event_open, add_key, request_key,
# keyctl, and on x86_64 fork and vfork). clone3 answers ENOSYS (libc then uses clone); clone only makes threads.
_SECCOMP = {
    "x86_64": (0xC000003E, 56, 435, (41, 101, 310, 311, 425, 426, 427, 272, 308, 321, 323, 298, 248, 249, 250, 57,
                                     58)),
    "aarch64": (0xC00000B7, 220, 435, (198, 117, 270, 271, 425, 426, 427, 97, 268, 280, 282, 241, 217, 218, 219)),
}


def _reachable(path):
    """Tell whether "others" may read ``path`` (and search every folder above it)."""
    try:
        st = os.stat(path)
    except OSError:
        return True  # a path this Python does not have
    parts = os.path.realpath(path).split(os.sep)
    folders = [os.sep.join(parts[:i]) or os.sep for i in range(1, len(parts))]
    return bool(st.st_mode & 0o004) and all(os.stat(d).st_mode & 0o001 for d in folders)


def _drop_privileges(cfg, libc, ctypes, workdir):
    """As root: become uid/gid ``run_as`` if it can read the standard library, else stay uid 0 without capabilities."""
    uid, gid = cfg.get("run_as") or (None, None)
    if uid is None or os.geteuid() != 0:
        return None
    if all(_reachable(p) for p in sys.path if p):
        os.chown(workdir, uid, gid)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        return f"uid {uid}"
    if libc is None:
        return None
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (EINVAL past the last capability)
    header, data = struct.pack("=Ii", 0x20080522, 0), bytes(24)  # _LINUX_CAPABILITY_VERSION_3, two empty sets
    nr = {"x86_64": 126, "aarch64": 91}.get(platform.machine())
    if nr is None or libc.syscall(nr, ctypes.c_char_p(header), ctypes.c_char_p(data)) != 0:
        return None
    return f"uid 0 without capabilities (uid {uid} cannot read the standard library)"


def _landlock(libc, ctypes, workdir):
    """Allow reads of the standard library and the work directory, writes of the work directory only."""
    abi = libc.syscall(_LL_CREATE, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return None
    fs = (1 << 13) - 1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) | (
        _FS_IOCTL_DEV if abi >= 5 else 0)
    attr = struct.pack("=QQQ", fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)  # TCP bind+connect; scopes
    attr = attr[:24 if abi >= 6 else 16 if abi >= 4 else 8]
    ruleset = libc.syscall(_LL_CREATE, ctypes.c_char_p(attr), len(attr), 0)
    if ruleset < 0:
        return None
    workdir_rights = _FS_WORKDIR | (fs & (_FS_REFER | _FS_TRUNCATE))
    readable = [(p, _FS_READ_FILE | _FS_READ_DIR) for p in (*sys.path, f"/proc/{os.getpid()}", *_READABLE) if p]
    try:
        for path, rights in [(workdir, workdir_rights), ("/dev/null", _FS_READ_FILE | _FS_WRITE), *readable]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a path this Python does not have
            try:
                if not os.path.isdir(path):
                    rights &= _FS_FILE_ONLY
                rule = struct.pack("=Qi", rights & fs, fd)
                if libc.syscall(_LL_ADD_RULE, ruleset, 1, ctypes.c_char_p(rule), 0) != 0:
                    return None
            finally:
                os.close(fd)
        if libc.syscall(_LL_RESTRICT, ruleset, 0) != 0:
            return None
    finally:
        os.close(ruleset)
    return f"landlock abi {abi}"


def _seccomp(libc, ctypes):
    """Install a filter: no new processes, sockets, io_uring, ptrace and friends (EPERM); kill on a foreign arch."""
    arch = _SECCOMP.get(platform.machine())
    if arch is None:
        return None
    audit_arch, clone, clone3, denied = arch
    allow, deny, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000  # RET_ALLOW, RET_ERRNO|EPERM, RET_KILL_PROCESS
    enosys = 0x00050000 | 38
    # ld/jeq/jge/jset/ret: 0x20/0x15/0x35/0x45/0x06; seccomp_data: nr at 0, arch at 4, args[0] (low half) at 16.
    prog = [(0x20, 0, 0, 4), (0x15, 1, 0, audit_arch), (0x06, 0, 0, kill), (0x20, 0, 0, 0),
            (0x15, 0, 1, clone3), (0x06, 0, 0, enosys),
            (0x15, 0, 4, clone), (0x20, 0, 0, 16), (0x45, 0, 1, 0x00010000), (0x06, 0, 0, allow),  # CLONE_THREAD
            (0x06, 0, 0, deny)]
    if audit_arch == 0xC000003E:
        prog.append((0x35, len(denied) + 1, 0, 0x40000000))  # x32 syscalls -> deny
    prog += [(0x15, len(denied) - i, 0, nr) for i, nr in enumerate(denied)]
    prog += [(0x06, 0, 0, allow), (0x06, 0, 0, deny)]
    code = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(buf))  # struct sock_fprog
    if libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        return None
    return "seccomp"


def _tmpfs(libc, workdir, size, source):
    """In the child's own mount namespace, put a tmpfs of `size` bytes over the work directory (writes past it fail
    with ENOSPC: a per-file limit alone lets the code fill the host's disk with many files), and solution.py in it."""
    flags = 2 | 4 | 8  # MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", flags, f"size={size},mode=0700".encode()) != 0:
        return None
    os.chdir(workdir)  # into the new file system (the old cwd is the directory beneath it)
    with open(os.path.join(workdir, "solution.py"), "w", encoding="utf-8") as f:
        f.write(source)
    return f"tmpfs {size // (1024 * 1024)} MB"


def _confine(cfg, workdir, source):
    """Apply the kernel layers this host has and return their names."""
    layers = []
    try:
        import ctypes
    except ImportError:
        ctypes = None
    libc = ctypes.CDLL(None, use_errno=True) if ctypes else None
    if libc is not None and cfg.get("disk_bytes"):  # the parent started us in our own mount namespace
        disk = _tmpfs(libc, workdir, cfg["disk_bytes"], source)  # first: the other layers see the new directory
        layers += [disk] if disk else []
    if libc is not None:
        libc.syscall.restype = ctypes.c_long
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: required for Landlock and seccomp without privileges
        landlock = _landlock(libc, ctypes, workdir)  # before dropping the uid: the rule paths are opened here
        layers += [landlock] if landlock else []
    dropped = _drop_privileges(cfg, libc, ctypes, workdir)
    layers += [dropped] if dropped else []
    if libc is not None:
        seccomp = _seccomp(libc, ctypes)
        layers += [seccomp] if seccomp else []
    for name in [m for m in sys.modules if m.split(".")[0] in ("ctypes", "_ctypes")]:
        del sys.modules[name]  # so that the untrusted code's `import ctypes` meets the audit hook
    return layers


def _limits(cfg):
    mem = cfg["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = cfg["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new processes (or threads) for non-root users
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_bytes"], cfg["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def _hook(workdir):
    # Everything the hook uses is bound here, before the untrusted code runs: rebinding this module's globals
    # later changes nothing.
    spawn, network, introspection, native = _SPAWN, _NETWORK, _INTROSPECTION, _NATIVE_IMPORTS
    paths, write_flags = dict(_PATH_EVENTS), _WRITE_FLAGS
    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep
    readable = (workdir, realpath(f"/proc/{os.getpid()}"), *(realpath(p) for p in sys.path if p), *_READABLE)

    def inside(path, roots):
        if isinstance(path, int):
            return True  # an already-open descriptor
        real = realpath(fsdecode(path))
        return any(real == root or real.startswith(root.rstrip(sep) + sep) for root in roots)

    def hook(event, args):
        if event in spawn:
            raise PermissionError(f"sandbox: process creation and signals blocked ({event})")
        if event in network:
            raise PermissionError(f"sandbox: network access blocked ({event})")
        if event in introspection:
            raise PermissionError(f"sandbox: {event} blocked")
        if event == "import" and args[0].split(".")[0] in native:
            raise ImportError(f"sandbox: import of {args[0]} blocked")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if writing and path is not None and not inside(path, (workdir,)):
                raise PermissionError(f"sandbox: write outside the work directory blocked ({path!r})")
            if path is not None and not inside(path, readable):
                raise PermissionError(f"sandbox: read outside the work directory and the standard library "
                                      f"blocked ({path!r})")
        elif event in paths:
            for i in paths[event]:
                if i < len(args) and args[i] is not None and not inside(args[i], (workdir,)):
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
    layers = _confine(cfg, workdir, source)
    _limits(cfg)
    sys.addaudithook(_hook(workdir))
    report = cfg.get("report_fd")
    if report is not None:
        os.write(report, json.dumps(layers).encode())
        os.close(report)
    sys.argv = ["solution.py"]
    scope = {"__name__": "__main__", "__file__": os.path.join(workdir, "solution.py"), "__builtins__": __builtins__}
    del cfg, source, layers
    exec(code, scope)


if __name__ == "__main__":
    main()
