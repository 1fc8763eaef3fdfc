"""sympy comparisons in worker processes that a timeout can kill.

sympy cannot be interrupted from another thread, and ``signal.alarm`` works only in the main
thread. So symbolic work runs in a small pool of long-lived worker processes (started lazily,
one per concurrent caller, at most one per CPU). A call that overruns its timeout kills its
worker's whole process group and returns ``None``; a fresh worker is started in its place.
Workers exit when the parent does (they read requests from a pipe and stop at end-of-file, and
on Linux they also ask the kernel to kill them when the parent dies), so none is left behind.

sympy is never handed an unbounded expression: the tree is rebuilt with guards that refuse
towers of powers, huge exponents and huge factorials before sympy sees them.

Run as ``python -m rlenv.verifiers._symbolic`` it is the worker's main loop.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from typing import Any

__all__ = ["equal", "shutdown", "warm_up", "worker_pids"]

Node = tuple[Any, ...]

# ----------------------------------------------------------------------------- wire format


def to_wire(node: Any) -> Any:
    """A parsed tree as JSON-compatible lists (Fractions as "p/q" strings)."""
    if isinstance(node, tuple):
        if node and node[0] == "num":
            return ["num", f"{node[1].numerator}/{node[1].denominator}", node[2]]
        return [to_wire(part) for part in node]
    return node


def from_wire(data: Any) -> Any:
    if isinstance(data, list):
        if data and data[0] == "num":
            return ("num", Fraction(data[1]), data[2])
        return tuple(from_wire(part) for part in data)
    return data


# ----------------------------------------------------------------------------- worker side


class _Unbounded(Exception):
    pass


_MAX_EXPONENT = 10_000
_MAX_FACTORIAL = 5_000


def _to_sympy(node: Node, percent: str) -> Any:  # runs in the worker
    import sympy

    kind = node[0]
    if kind == "num":
        return sympy.Rational(node[1].numerator, node[1].denominator)
    if kind == "const":
        return {"pi": sympy.pi, "e": sympy.E, "i": sympy.I, "oo": sympy.oo}[node[1]]
    if kind == "sym":
        return sympy.Symbol(node[1])
    if kind == "neg":
        return -_to_sympy(node[1], percent)
    if kind == "add":
        return sympy.Add(*(_to_sympy(child, percent) for child in node[1]))
    if kind == "mul":
        return sympy.Mul(*(_to_sympy(child, percent) for child in node[1]))
    if kind == "div":
        return _to_sympy(node[1], percent) / _to_sympy(node[2], percent)
    if kind == "pct":
        inner = _to_sympy(node[1], percent)
        return inner / 100 if percent == "fraction" else inner
    if kind == "pow":
        base, exponent = _to_sympy(node[1], percent), _to_sympy(node[2], percent)
        trivial_base = base in (0, 1, -1)
        if exponent.is_number and base.is_number and not trivial_base:  # noqa: SIM102
            if abs(complex(exponent.evalf(15))) > _MAX_EXPONENT:  # checked before sympy.Pow
                raise _Unbounded("exponent too large")
        return sympy.Pow(base, exponent)
    if kind == "func":
        name, args = node[1], [None if a is None else _to_sympy(a, percent) for a in node[2]]
        x = args[0]
        if name == "factorial":
            if x.is_number and abs(complex(x.evalf(15))) > _MAX_FACTORIAL:
                raise _Unbounded("factorial too large")
            return sympy.factorial(x)
        if name == "root":
            return sympy.real_root(x, args[1]) if x.is_negative else sympy.root(x, args[1])
        if name == "log":
            return sympy.log(x, args[1]) if len(args) > 1 and args[1] is not None else sympy.log(x)
        if name == "binom":
            return sympy.binomial(x, args[1])
        simple = {
            "sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan,
            "cot": sympy.cot, "sec": sympy.sec, "csc": sympy.csc, "arcsin": sympy.asin,
            "arccos": sympy.acos, "arctan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh,
            "tanh": sympy.tanh, "ln": sympy.log, "exp": sympy.exp, "abs": sympy.Abs,
            "floor": sympy.floor, "ceil": sympy.ceiling,
            "log10": lambda value: sympy.log(value, 10),
        }  # fmt: skip
        if name in simple:
            return simple[name](x)
    raise _Unbounded(f"cannot build {kind}")


def _worker_equal(gold: Node, pred: Node, percent: str) -> bool | None:  # runs in the worker
    import sympy

    try:
        difference = _to_sympy(gold, percent) - _to_sympy(pred, percent)
    except _Unbounded:
        return None
    simplified = sympy.simplify(difference)
    if simplified == 0:
        return True
    if simplified.is_number and simplified.is_zero is False:
        return False
    verdict = simplified.equals(0)
    return verdict if isinstance(verdict, bool) else None


def _worker_main() -> None:  # pragma: no cover - runs in the child process
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        return
    import sympy  # noqa: F401  (import before announcing readiness)

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            result = _worker_equal(
                from_wire(request["gold"]), from_wire(request["pred"]), request["percent"]
            )
        except Exception:
            result = None
        out.write(json.dumps({"result": result}) + "\n")
        out.flush()


# ----------------------------------------------------------------------------- parent side


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rlenv.verifiers._symbolic"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill takes every descendant
            # The worker imports rlenv from wherever this process found it.
            env={
                **os.environ,
                "PYTHONHASHSEED": "0",
                "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
            },
        )
        self.ready = False
        self.buffer = b""

    def read_line(self, deadline: float) -> bytes | None:
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BrokenPipeError("worker exited")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def call(self, request: dict[str, Any], deadline: float) -> bool | str | None:
        """The result, or ``"timeout"``."""
        if not self.ready:
            line = self.read_line(deadline)
            if line is None:
                return "timeout"
            self.ready = line == b"ready"
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        line = self.read_line(deadline)
        if line is None:
            return "timeout"
        return json.loads(line)["result"]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(Exception):
                stream.close()


_lock = threading.Lock()
_idle: list[_Worker] = []
_busy: set[_Worker] = set()
_MAX_WORKERS = max(1, os.cpu_count() or 1)


def _checkout() -> _Worker | None:
    with _lock:
        while _idle:
            worker = _idle.pop()
            if worker.process.poll() is None:
                _busy.add(worker)
                return worker
            worker.kill()
        if len(_busy) >= _MAX_WORKERS:
            return None
        worker = _Worker()
        _busy.add(worker)
        return worker


def _checkin(worker: _Worker, healthy: bool) -> None:
    with _lock:
        _busy.discard(worker)
        if healthy:
            _idle.append(worker)
            return
    worker.kill()
    with _lock:  # a warm replacement, so the next call does not pay sympy's import
        if len(_idle) + len(_busy) < _MAX_WORKERS:
            _idle.append(_Worker())


def equal(gold: Node, pred: Node, *, percent: str, timeout: float) -> bool | None:
    """sympy's verdict on ``gold == pred``: True, False, or None (undecided or out of time)."""
    deadline = time.monotonic() + timeout
    worker = _checkout()
    if worker is None:
        return None
    request = {"gold": to_wire(gold), "pred": to_wire(pred), "percent": percent}
    try:
        result = worker.call(request, deadline)
    except (BrokenPipeError, OSError, ValueError):
        _checkin(worker, healthy=False)
        return None
    if result == "timeout":
        _checkin(worker, healthy=False)
        return None
    _checkin(worker, healthy=True)
    return result if isinstance(result, bool) else None


def warm_up(timeout: float = 30.0) -> bool:
    """Start a worker and wait until sympy is imported in it (so the first call is fast)."""
    worker = _checkout()
    if worker is None:
        return False
    deadline = time.monotonic() + timeout
    try:
        line = worker.read_line(deadline) if not worker.ready else b"ready"
    except (BrokenPipeError, OSError):
        _checkin(worker, healthy=False)
        return False
    worker.ready = line == b"ready"
    _checkin(worker, healthy=worker.ready)
    return worker.ready


def worker_pids() -> list[int]:
    """Process ids of the live workers (for tests and diagnostics)."""
    with _lock:
        return [w.process.pid for w in (*_idle, *_busy) if w.process.poll() is None]


@atexit.register
def shutdown() -> None:
    """Kill every worker (also run at interpreter exit)."""
    with _lock:
        workers = [*_idle, *_busy]
        _idle.clear()
        _busy.clear()
    for worker in workers:
        worker.kill()


if __name__ == "__main__":  # pragma: no cover
    _worker_main()
