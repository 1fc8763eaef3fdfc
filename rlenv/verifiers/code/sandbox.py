"""Isolated execution of untrusted code, in tiers, through pre-warmed zygotes.

Tiers, strongest first (:func:`detect_tier` picks the strongest that works here):

- ``"bubblewrap"``: each zygote lives in a ``bwrap`` sandbox (read-only root, private ``/tmp``,
  no network, its own PID/IPC/UTS namespaces, dies with its parent), and every run is further
  isolated inside it (below).
- ``"namespaces"``: the zygote runs on the host; every run enters fresh PID, mount, network, IPC
  and UTS namespaces (``unshare``), with private tmpfs over every world-writable directory.
- ``"rlimits"``: no namespaces (no root and no user namespaces): rlimits, an unprivileged user
  when possible, and the zygote as a child subreaper that kills what a run leaves behind. Runs
  can see each other's leftovers in ``/tmp``: every result says so, and a warning is logged.

In every tier a seccomp filter refuses sockets other than ``AF_UNIX`` (and ``io_uring``) on
x86_64 and aarch64.

In every tier a run gets: limits on CPU time, wall time, address space, file size, processes and
open files; an empty environment (no secrets); empty stdin; bounded captured output; and an
unprivileged user (when rlenv runs as root). Everything a run started is killed when it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlenv.verifiers.code import _wire
from rlenv.verifiers.code._procs import kill_all_as

__all__ = ["Limits", "Run", "Sandbox", "Tier", "default_sandbox", "detect_tier"]

logger = logging.getLogger("rlenv")

Tier = Literal["bubblewrap", "namespaces", "rlimits"]
_TIERS: tuple[Tier, ...] = ("bubblewrap", "namespaces", "rlimits")
_ZYGOTE = Path(__file__).with_name("_zygote.py")
RLIMITS_WARNING = (
    "rlimits-only isolation: no namespaces are available, so runs share /tmp (a run can see "
    "files an earlier run left there) and only a seccomp filter keeps them off the network. "
    "Install bubblewrap or run as root for full isolation."
)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run."""

    timeout: float = 5.0
    """Wall-clock seconds for the whole run."""
    memory_mb: int = 512
    """Address space."""
    cpu_seconds: int = 5
    file_mb: int = 16
    """Largest file the run may write (and its tmpfs size)."""
    processes: int = 64
    output_bytes: int = 64 * 1024
    """Captured stdout and stderr, each; the rest is read and dropped."""

    def for_zygote(self, work_dir: str) -> dict[str, Any]:
        return {
            "wall_seconds": self.timeout + 0.5,
            "memory_mb": self.memory_mb,
            "cpu_seconds": max(1, int(self.cpu_seconds)),
            "file_mb": self.file_mb,
            "disk_mb": max(self.file_mb * 2, 8),
            "processes": self.processes,
            "work_dir": work_dir,
        }


def _bwrap_command() -> list[str]:
    return [
        # No tmpfs over /tmp here: rlenv itself may live there, and every run mounts its own.
        "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
        "--new-session", "--cap-add", "CAP_SYS_ADMIN,CAP_SETUID,CAP_SETGID,CAP_CHOWN",
    ]  # fmt: skip


RUN_UID_BASE = 61000
"""Runs execute as uid ``RUN_UID_BASE + n`` for the n-th live zygote (when rlenv is root)."""
_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()


def _take_uid() -> int:
    with _uid_lock:
        uid = next(u for u in range(RUN_UID_BASE, RUN_UID_BASE + 4096) if u not in _uids_in_use)
        _uids_in_use.add(uid)
        return uid


class _Zygote:
    """One zygote process and its control socket."""

    def __init__(self, tier: Tier) -> None:
        self.tier = tier
        self.uid = _take_uid()
        if tier == "rlimits" and os.geteuid() == 0:
            kill_all_as(self.uid)  # leftovers of a verifier that died without cleaning up
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control = parent_end
        child_fd = child_end.fileno()
        command = [sys.executable, "-I", "-S", str(_ZYGOTE), tier, str(child_fd), str(self.uid)]
        if tier == "bubblewrap":  # bwrap hands inherited descriptors through to the zygote
            command = [*_bwrap_command(), "--", *command]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(child_fd,),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            start_new_session=True,
        )
        child_end.close()
        self.buffer = b""
        self.ready = False
        self.pending = False  # a finished run whose report has not been read yet

    def wait_ready(self, timeout: float) -> bool:
        if not self.ready:
            line = self.read_line(time.monotonic() + timeout)
            self.ready = line is not None and b"ready" in line
        return self.ready

    def read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.control], [], [], remaining)
            if not readable:
                return None
            chunk = self.control.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def settle(self, timeout: float = 15.0) -> bool:
        """Read the report of the previous run (it killed that run's processes first)."""
        if self.pending:
            self.pending = self.read_line(time.monotonic() + timeout) is None
        return not self.pending

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.control.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(timeout=5)
        if self.tier == "rlimits" and os.geteuid() == 0:
            kill_all_as(self.uid)  # orphans of a killed zygote must not outlive it
        with _uid_lock:
            _uids_in_use.discard(self.uid)


@dataclass
class Run:
    """A live run: a channel to the sandboxed process and its captured output."""

    channel: socket.socket
    limits: Limits
    deadline: float
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    _pipes: dict[int, bytearray] = field(default_factory=dict)

    def send(self, message: dict[str, Any]) -> None:
        _wire.send(self.channel, message)

    def receive(self) -> dict[str, Any]:
        """The next message from the run; raises ``TimeoutError``, ``EOFError``, ``WireError``."""
        while True:
            readable = self._wait([self.channel])
            if self.channel in readable:
                self.channel.settimeout(max(0.001, self.deadline - time.monotonic()))
                try:
                    return _wire.receive(self.channel)
                except TimeoutError:
                    raise TimeoutError("the run timed out") from None
                except OSError as error:
                    raise EOFError(str(error)) from None

    def drain(self) -> None:
        """Read the output pipes until the run's processes are all gone (or the deadline)."""
        while self._pipes and time.monotonic() < self.deadline + 1.0:
            self._wait([], extra=1.0)

    def _wait(self, sockets: list[socket.socket], extra: float = 0.0) -> list[Any]:
        remaining = self.deadline + extra - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the run timed out")
        readable, _, _ = select.select([*sockets, *self._pipes], [], [], remaining)
        if not readable:
            raise TimeoutError("the run timed out")
        for fd in [r for r in readable if isinstance(r, int)]:
            chunk = os.read(fd, 65536)
            if not chunk:
                os.close(fd)
                del self._pipes[fd]
                continue
            buffer = self._pipes[fd]
            room = self.limits.output_bytes - len(buffer)
            buffer += chunk[: max(0, room)]
            self.dropped += max(0, len(chunk) - max(0, room))
        return readable


class Sandbox:
    """A pool of zygotes of one isolation tier. Thread-safe; one run per zygote at a time.

    Args:
        tier: ``"auto"`` (the strongest that works here) or a tier name.
        workers: Zygotes to keep (default: the number of CPUs).
    """

    def __init__(self, tier: Tier | Literal["auto"] = "auto", workers: int | None = None) -> None:
        self.tier: Tier = detect_tier() if tier == "auto" else tier
        if self.tier not in _TIERS:
            raise ValueError(f"unknown tier {tier!r}; choose from {_TIERS} or 'auto'")
        if self.tier == "rlimits":
            logger.warning(RLIMITS_WARNING)
        self.workers = workers or os.cpu_count() or 1
        self._idle: list[_Zygote] = []
        self._count = 0
        self._lock = threading.Condition()
        self._work_root = tempfile.mkdtemp(prefix="rlenv-runs-")
        os.chmod(self._work_root, 0o711)
        self._closed = False
        atexit.register(self.close)

    @property
    def warning(self) -> str | None:
        return RLIMITS_WARNING if self.tier == "rlimits" else None

    def _checkout(self, timeout: float) -> _Zygote:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("the sandbox is closed")
                while self._idle:
                    zygote = self._idle.pop()
                    if zygote.alive() and zygote.settle():
                        return zygote
                    zygote.close()
                    self._count -= 1
                if self._count < self.workers:
                    self._count += 1
                    break
                if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("no sandbox worker became free")
        try:
            zygote = _Zygote(self.tier)
            if not zygote.wait_ready(30.0):
                zygote.close()
                raise RuntimeError(f"the {self.tier} sandbox did not start")
        except BaseException:
            with self._lock:
                self._count -= 1
                self._lock.notify()
            raise
        return zygote

    def _checkin(self, zygote: _Zygote, healthy: bool) -> None:
        with self._lock:
            if healthy and not self._closed:
                self._idle.append(zygote)
            else:
                zygote.close()
                self._count -= 1
            self._lock.notify()

    def _send(self, request: bytes, fds: list[int], attempts: int = 3) -> _Zygote:
        """Hand a run to a worker. A worker that died while idle (its control socket answers
        with a broken pipe) is replaced and the request sent again: nothing had started."""
        for attempt in range(attempts):
            zygote = self._checkout(timeout=60.0)
            try:
                socket.send_fds(zygote.control, [request], fds)
                return zygote
            except OSError:
                self._checkin(zygote, healthy=False)
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def run(self, limits: Limits):
        """Start an isolated process; yields a :class:`Run` speaking the harness protocol.

        On exit the run is over: its channel is closed and every process it started is dead.
        """
        healthy = False
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        work_dir = tempfile.mkdtemp(dir=self._work_root) if self.tier == "rlimits" else ""
        request = json.dumps({"limits": limits.for_zygote(work_dir)}).encode()
        try:
            zygote = self._send(request, [child_end.fileno(), out_write, err_write])
        except BaseException:
            for end in (parent_end, child_end):
                end.close()
            for fd in (out_read, out_write, err_read, err_write):
                os.close(fd)
            if work_dir:
                shutil.rmtree(work_dir, ignore_errors=True)
            raise
        run = Run(parent_end, limits, time.monotonic() + limits.timeout)
        run._pipes = {out_read: run.stdout, err_read: run.stderr}
        try:
            child_end.close()
            os.close(out_write)
            os.close(err_write)
            yield run
            healthy = True
        finally:
            with contextlib.suppress(OSError):
                parent_end.close()
            with contextlib.suppress(TimeoutError):
                run.drain()
            for fd in list(run._pipes):
                with contextlib.suppress(OSError):
                    os.close(fd)
            run._pipes.clear()
            # The zygote reports once it has killed the run's processes; that report is read
            # when the zygote is next used, so this run's caller does not wait for it.
            zygote.pending = True
            self._checkin(zygote, healthy)
            if work_dir:
                shutil.rmtree(work_dir, ignore_errors=True)

    def close(self) -> None:
        atexit.unregister(self.close)
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for zygote in idle:
            zygote.close()
        shutil.rmtree(self._work_root, ignore_errors=True)


_TIER_CACHE: dict[str, Tier] = {}


def detect_tier() -> Tier:
    """The strongest tier that works on this machine (checked once, by really starting one)."""
    if "tier" in _TIER_CACHE:
        return _TIER_CACHE["tier"]
    chosen: Tier = "rlimits"
    for tier in ("bubblewrap", "namespaces"):
        if tier == "bubblewrap" and shutil.which("bwrap") is None:
            continue
        if _tier_works(tier):
            chosen = tier
            break
    _TIER_CACHE["tier"] = chosen
    return chosen


def _tier_works(tier: Tier) -> bool:
    work_root = ""
    try:
        zygote = _Zygote(tier)
    except OSError:
        return False
    try:
        if not zygote.wait_ready(20.0):
            return False
        parent_end, child_end = socket.socketpair()
        out_read, out_write = os.pipe()
        work_root = tempfile.mkdtemp(prefix="rlenv-probe-")
        os.chmod(work_root, 0o711)
        limits = Limits(timeout=10.0).for_zygote(os.path.join(work_root, "run"))
        socket.send_fds(
            zygote.control, [json.dumps({"limits": limits}).encode()],
            [child_end.fileno(), out_write, out_write],
        )  # fmt: skip
        child_end.close()
        os.close(out_write)
        parent_end.settimeout(10.0)
        _wire.send(parent_end, {"code": "x = 1", "mode": "function"})
        reply = _wire.receive(parent_end)
        parent_end.close()
        os.close(out_read)
        return bool(reply.get("ok"))
    except (TimeoutError, OSError, EOFError, _wire.WireError):
        return False
    finally:
        zygote.close()
        if work_root:
            shutil.rmtree(work_root, ignore_errors=True)


_DEFAULT: dict[str, Sandbox] = {}
_DEFAULT_LOCK = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox pool used by :func:`~rlenv.verifiers.code.run_tests`."""
    with _DEFAULT_LOCK:
        if "sandbox" not in _DEFAULT:
            _DEFAULT["sandbox"] = Sandbox()
        return _DEFAULT["sandbox"]
