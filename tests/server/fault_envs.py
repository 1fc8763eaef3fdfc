"""Faults on demand for the fault-injection tests: an env that hangs, sleeps or counts its steps,
and a TCP proxy that drops connections.

Importable in a subprocess too (``rlenv serve`` started by a test): ``sys.path`` gets this folder
and :func:`register` adds the env there.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time

import rlenv
from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict
from rlenv.chat import message_text

FAULTY = "rlenvtest/Faulty-v0"


class Faulty(TextEnv):
    """Its action says what to do (and a task whose prompt is ``"hang"`` hangs the reset):
    ``"hang"`` waits on :attr:`release` (at most 10 s, so a test
    of old code ends), ``"sleep S"`` sleeps S seconds, anything else answers at once. Every
    step is counted in :attr:`steps`, and each reply names its turn, so a doubled step shows."""

    max_turns = 1000
    release = threading.Event()
    steps = 0
    _lock = threading.Lock()

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt=f"Say {rng.randint(1, 9)}.", answer="x"))

    def start(self, task: Task) -> list:
        if task.id == "hang":  # a reset that hangs
            Faulty.release.wait(10)
        return super().start(task)

    def respond(self, message) -> Turn:
        text = message_text(message)
        with Faulty._lock:
            Faulty.steps += 1
        if text == "hang":
            Faulty.release.wait(10)
        elif text.startswith("sleep "):
            time.sleep(float(text.split()[1]))
        return Turn.reply(f"turn {self.turn}", verdict=Verdict(reward=1.0))


def register() -> None:
    rlenv.register(FAULTY, Faulty)


def unregister() -> None:
    rlenv.unregister(FAULTY)


class DroppingProxy:
    """A loopback TCP proxy that drops connections at random, three ways.

    ``before``: the request is not forwarded (the server never sees it). ``after``: the request
    went through and the answer is not relayed (the server did the work: a retry must not do it
    again). ``cut``: half of the answer's first chunk is relayed, then the connection closes.
    Each is drawn with its probability per chunk; ``drops`` counts them by kind, and dropping
    stops once their total reaches ``limit``.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        before: float = 0.0,
        after: float = 0.0,
        cut: float = 0.0,
        limit: int | None = None,
        seed: int = 0,
    ) -> None:
        self.upstream = upstream
        self.p = {"before": before, "after": after, "cut": cut}
        self.limit = limit
        self.drops = {"before": 0, "after": 0, "cut": 0}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def total(self) -> int:
        return sum(self.drops.values())

    def _draw(self, kinds: tuple[str, ...]) -> str | None:
        with self._lock:
            if self.limit is not None and self.total >= self.limit:
                return None
            for kind in kinds:
                if self._rng.random() < self.p[kind]:
                    self.drops[kind] += 1
                    return kind
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, request: bool) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                kind = self._draw(("before",) if request else ("after", "cut"))
                if kind == "cut":
                    target.sendall(chunk[: len(chunk) // 2])
                if kind is not None:
                    break
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
