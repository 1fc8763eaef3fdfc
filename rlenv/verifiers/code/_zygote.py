"""The sandbox zygote: a pre-warmed process that forks one isolated child per run.

Runs as a script (``python -I -S _zygote.py TIER FD``), inside bubblewrap or directly on the
host, importing only the standard library. It never runs model code itself: for each run it
forks a supervisor, which (in the namespace tiers) enters fresh PID, mount, network, IPC and UTS
namespaces and forks the run's process as PID 1 of the new PID namespace. That process mounts
private tmpfs over every writable directory, drops to an unprivileged user, applies rlimits,
and then serves the verifier over a socket. When the run ends — or its wall time runs out —
the supervisor is killed, the kernel kills the run's process (``PDEATHSIG``) and with it every
process in its PID namespace, however it daemonised. In the rlimits-only tier there are no
namespaces: the zygote is a child subreaper and kills every orphan it inherits.

Control protocol (a Unix socket to the verifier): one ``sendmsg`` per request, a JSON object
with the limits and three file descriptors (the run's socket, its stdout and stderr pipes);
the answer is one JSON object per run: ``{"status": ..., "timed_out": ...}``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _procs
import _wire

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MS_RDONLY, _MS_REMOUNT, _MS_BIND = 1, 32, 4096
_MS_REC, _MS_PRIVATE = 16384, 1 << 18
# The unprivileged user runs execute as (when the zygote is root): one uid per zygote, given
# by the verifier, so that process limits are per worker and one kill(-1) as that uid ends
# everything a run left behind.
_RUN_UID = 65534
_WORK = "/tmp/work"
# Imported once here, so that forked runs start with them warm.
# (Also what runs can import in the rlimits tier when the interpreter lives in a directory the
# unprivileged user cannot read, e.g. under /root; the namespace tiers bind-mount it instead.)
_PREIMPORT = (
    "math", "cmath", "itertools", "collections", "collections.abc", "functools", "heapq",
    "bisect", "re", "string", "typing", "operator", "fractions", "decimal", "statistics",
    "random", "copy", "dataclasses", "enum", "abc", "numbers", "array", "struct", "json",
    "textwrap", "unicodedata", "datetime", "time", "calendar", "io", "contextlib", "hashlib",
    "base64", "binascii", "zlib", "pprint", "traceback", "warnings", "weakref", "shutil",
    "pathlib", "glob", "fnmatch", "tempfile", "csv", "queue", "threading", "subprocess",
    "signal", "socket", "secrets", "uuid", "locale", "errno", "select", "types", "inspect",
    "difflib", "graphlib", "sys",
)  # fmt: skip
_PYTHON_VIEW = "/tmp/.python"


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _prctl(option: int, value: int) -> None:
    _check(_LIBC.prctl(option, value, 0, 0, 0), f"prctl({option})")


def _mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    _check(
        _LIBC.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()),
        f"mount {target}",
    )


# ---------------------------------------------------------------------------- the run process


_TMPFS_MB = 64


def _prepare_namespaces() -> None:
    """Before the request (so it overlaps the previous run): private mounts, a fresh /proc,
    tmpfs over every directory the unprivileged user could write, the interpreter exposed."""
    _mount("none", "/", "", _MS_REC | _MS_PRIVATE)
    _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    size = f"size={_TMPFS_MB}m,mode=1777"
    for directory in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
        if directory == "/tmp" or (os.path.isdir(directory) and _world_writable(directory)):
            _mount("tmpfs", directory, "tmpfs", _MS_NOSUID | _MS_NODEV, size)
    os.makedirs(_WORK, exist_ok=True)
    _expose_interpreter()


def _enter(limits: dict, namespaces: bool, supervisor: int) -> None:
    """After the request, before any model code: drop privileges, apply the limits."""
    if namespaces:
        work = _WORK
    else:
        work = limits["work_dir"]
        os.makedirs(work, exist_ok=True)
        os.setsid()
    if os.getuid() == 0:
        os.chown(work, _RUN_UID, _RUN_UID)
        os.setgroups([])
        os.setgid(_RUN_UID)
        os.setuid(_RUN_UID)  # drops every capability
        # Changing credentials clears the parent-death signal: arm it again, then make sure
        # the supervisor did not die in between.
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() not in (supervisor, 0):
            os._exit(1)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    megabyte = 1024 * 1024
    for name, value in (
        ("RLIMIT_AS", limits["memory_mb"] * megabyte),
        ("RLIMIT_CPU", limits["cpu_seconds"]),
        ("RLIMIT_FSIZE", limits["file_mb"] * megabyte),
        ("RLIMIT_NOFILE", 64),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    os.chdir(work)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8"})


# A seccomp filter (classic BPF, no libseccomp needed): sockets other than AF_UNIX and
# io_uring (which could open sockets around the filter) fail with EPERM; foreign syscall ABIs
# (x32, or another architecture) kill the process instead of slipping past the checks.
_SECCOMP_ARCH = {"x86_64": (0xC000003E, 41, 425), "aarch64": (0xC00000B7, 198, 425)}


def _block_network() -> bool:
    """Install the filter; returns False where the architecture is not supported."""
    import platform

    machine = platform.machine()
    if machine not in _SECCOMP_ARCH:
        return False
    arch, socket_nr, io_uring_setup_nr = _SECCOMP_ARCH[machine]
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, errno_eperm, kill = 0x7FFF0000, 0x00050001, 0x80000000
    # Jumps are relative: instruction i with offset n goes to i + 1 + n.
    program = [
        (load, 0, 0, 4),  # 0: arch
        (jeq, 0, 8, arch),  # 1: other arch -> 10 kill
        (load, 0, 0, 0),  # 2: syscall number
        (jge, 6, 0, 0x40000000),  # 3: x32 ABI -> 10 kill
        (jeq, 3, 0, io_uring_setup_nr),  # 4: -> 8 deny
        (jeq, 0, 3, socket_nr),  # 5: not socket() -> 9 allow
        (load, 0, 0, 16),  # 6: socket()'s domain (low 32 bits of args[0])
        (jeq, 1, 0, socket.AF_UNIX),  # 7: AF_UNIX -> 9 allow, else 8 deny
        (ret, 0, 0, errno_eperm),  # 8: deny
        (ret, 0, 0, allow),  # 9: allow
        (ret, 0, 0, kill),  # 10: kill
    ]

    class Filter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint),
        ]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(program))(*[Filter(*instruction) for instruction in program])
    fprog = Program(len(program), filters)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)  # required to install a filter, and inherited by runs
    _check(_LIBC.prctl(22, 2, ctypes.byref(fprog), 0, 0), "seccomp")  # PR_SET_SECCOMP, FILTER
    return True


def _world_writable(directory: str) -> bool:
    mode = os.stat(directory).st_mode
    read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
    return bool(mode & 0o002) and not read_only


def _expose_interpreter() -> None:
    """Bind the interpreter's tree read-only where the unprivileged user can read it.

    (An interpreter under /root cannot be read once the run drops to an unprivileged user.)
    """
    prefix = os.path.realpath(sys.base_prefix)
    os.makedirs(_PYTHON_VIEW, exist_ok=True)
    _mount(prefix, _PYTHON_VIEW, "", _MS_BIND | _MS_REC)
    _mount("none", _PYTHON_VIEW, "", _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
    sys.path[:] = [
        _PYTHON_VIEW + os.path.realpath(entry)[len(prefix) :]
        if os.path.realpath(entry).startswith(prefix)
        else entry
        for entry in sys.path
    ]


def _run_process(go: socket.socket, namespaces: bool, supervisor: int) -> None:
    """The run's own process: prepare, wait for the request, enter, serve. Never returns."""
    code = 1
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        # (In a new PID namespace the parent lies outside it and getppid() is 0.)
        if os.getppid() not in (supervisor, 0):
            os._exit(1)  # the supervisor died before PDEATHSIG was armed
        if namespaces:
            _prepare_namespaces()
        message, fds, _, _ = socket.recv_fds(go, 65536, 3)
        if not message or len(fds) != 3:
            os._exit(0)  # the zygote is shutting down
        limits = json.loads(message)["limits"]
        rpc, out, err = fds
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.dup2(rpc, 3)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.closerange(4, 65536)
        _enter(limits, namespaces, supervisor)
        _serve(socket.socket(fileno=3))
        code = 0
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve(sock: socket.socket) -> None:
    """Load the code, then answer calls (function mode) or run it as a program (script mode)."""
    request = _wire.receive(sock)
    code, mode = request["code"], request["mode"]
    if mode == "script":
        with open("stdin.txt", "w", encoding="utf-8") as handle:
            handle.write(request.get("stdin", ""))
        stdin = os.open("stdin.txt", os.O_RDONLY)
        os.dup2(stdin, 0)
        sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        _wire.send(sock, {"op": "started"})
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        try:
            exec(compile(code, "solution.py", "exec"), namespace)
        except SystemExit:
            pass
        except BaseException:
            traceback.print_exc()
        return
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(compile(code, "solution.py", "exec"), namespace)
    except BaseException as error:
        _wire.send(sock, {"op": "loaded", "ok": False, "error": _describe(error)})
        return
    callables, values = [], {}
    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        if callable(value):
            callables.append(name)
        else:
            with contextlib.suppress(_wire.WireError, RecursionError):
                values[name] = _wire.encode(value)
    _wire.send(sock, {"op": "loaded", "ok": True, "callables": callables, "values": values})
    while True:
        try:
            request = _wire.receive(sock)
        except EOFError:
            return
        if request.get("op") != "call":
            return
        function = namespace.get(request.get("name"))
        try:
            args = _wire.decode(request["args"])
            kwargs = _wire.decode(request["kwargs"])
            result = function(*args, **kwargs)
            reply = {"value": _wire.encode(result)}
        except _wire.WireError as error:
            reply = {"raise": "TypeError", "message": f"unsupported return value: {error}"}
        except BaseException as error:
            reply = {"raise": type(error).__name__, "message": _describe(error)}
        _wire.send(sock, reply)


def _describe(error: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
    except Exception:
        text = type(error).__name__
    return text[:2000]


# ---------------------------------------------------------------------------- the zygote


def _supervise(go: socket.socket, namespaces: bool, private_network: bool) -> None:
    """The supervisor: enter fresh namespaces, fork the run process, exit with its status.

    ``private_network``: the zygote already sits in an empty network namespace of its own
    (bubblewrap), where only one run executes at a time and everything of a run dies with it,
    so a new one per run (the costliest namespace to create) adds nothing.
    """
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if namespaces:
            flags = _CLONE_NEWPID | _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWUTS
            _check(_LIBC.unshare(flags if private_network else flags | _CLONE_NEWNET), "unshare")
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            _run_process(go, namespaces, me)
        go.close()
        _, status = os.waitpid(pid, 0)
        os._exit(min(255, max(0, os.waitstatus_to_exitcode(status) % 256)))
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
        os._exit(101)


def _prepare(namespaces: bool, control: socket.socket, tier: str) -> tuple[int, socket.socket]:
    """Fork the next run's supervisor now; it waits, isolated, for its request."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        control.close()
        ours.close()
        _supervise(theirs, namespaces, private_network=tier == "bubblewrap")
    theirs.close()
    return pid, ours


def _wait(pid: int, deadline: float) -> tuple[int | None, bool]:
    """Wait for ``pid`` until ``deadline``; returns (exit status, timed out)."""
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(pid)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, True
            if pidfd is not None:
                select.select([pidfd], [], [], remaining)
            else:
                time.sleep(min(remaining, 0.002))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _reap_orphans(spare: int) -> None:
    """Kill and reap every descendant but ``spare`` (orphans re-parent to this subreaper)."""
    me = str(os.getpid())
    for _ in range(200):
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as handle:
                        fields = handle.read().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                if fields[1].decode() == me and int(entry) != spare:
                    children.append(int(entry))
        if not children:
            break
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)


def _collect_zombies() -> None:
    """Reap dead orphans (a killed supervisor's run process re-parents here before dying)."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def main() -> None:
    global _RUN_UID
    tier, control_fd, _RUN_UID = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    namespaces = tier in ("bubblewrap", "namespaces")
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    for module in _PREIMPORT:
        __import__(module)
    # The network filter is installed once here and inherited by every run (the zygote itself
    # only ever uses Unix sockets).
    _block_network()
    # Keep the collector off the zygote's objects, so forked runs do not copy their pages.
    gc.collect()
    gc.freeze()
    control = socket.socket(fileno=control_fd)
    prepared = _prepare(namespaces, control, tier)
    control.sendall(b'{"ready": true}\n')
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 65536, 3)
        except OSError:
            return
        if not message:
            return
        request = json.loads(message)
        started = time.monotonic()
        pid, go = prepared
        with contextlib.suppress(OSError):  # if the prepared process died, the run fails
            socket.send_fds(go, [message], fds)
        go.close()
        for fd in fds:
            os.close(fd)
        prepared = _prepare(namespaces, control, tier)  # the next run, while this one runs
        status, timed_out = _wait(pid, started + request["limits"]["wall_seconds"])
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if not namespaces:  # in a PID namespace the kernel already killed everything
            if os.getuid() == 0:
                _procs.kill_all_as(_RUN_UID)
            _reap_orphans(spare=prepared[0])
        _collect_zombies()
        reply = {"status": status, "timed_out": timed_out, "seconds": time.monotonic() - started}
        control.sendall(json.dumps(reply).encode() + b"\n")


if __name__ == "__main__":
    main()
