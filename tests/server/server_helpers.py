"""Test environments for the server tests, and a raw HTTP client.

The environments registered here misbehave on purpose: one raises on some text, one is slow
and notices being stepped concurrently, one records being closed.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from fractions import Fraction
from typing import Any

from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict
from rlenv.chat import message_text

SERVED = [
    "rlenv/Arithmetic-v0",
    "rlenv/GuessNumber-v0",
    "rlenvtest/Crashy-v0",
    "rlenvtest/Slow-v0",
    "rlenvtest/Closing-v0",
]


def _tasks() -> GeneratedTasks:
    return GeneratedTasks(lambda rng: Task(prompt=f"Say {rng.randint(1, 9)}.", answer="x"))


class Crashy(TextEnv):
    """Raises on 'boom' (breaking TextEnv's promise) and in ``start`` for the task id 'crash';
    its verdicts hold a Fraction."""

    max_turns = 3

    def load_tasks(self) -> GeneratedTasks:
        return _tasks()

    def start(self, task: Task) -> list:
        if task.id == "crash":
            raise RuntimeError("start() is broken")
        return super().start(task)

    def respond(self, message) -> Turn:
        if "boom" in message_text(message):
            raise RuntimeError("the environment exploded")
        return Turn.reply("again", verdict=Verdict(reward=0.0, parsed=Fraction(1, 3)))


class Slow(TextEnv):
    """Each step sleeps; ``overlaps`` counts steps that ran while another was running."""

    max_turns = 1000
    delay = 0.08
    overlaps = 0
    _running = 0
    _lock = threading.Lock()

    def load_tasks(self) -> GeneratedTasks:
        return _tasks()

    def respond(self, message) -> Turn:
        with Slow._lock:
            self._inside = getattr(self, "_inside", 0) + 1
            if self._inside > 1:
                Slow.overlaps += 1
        time.sleep(self.delay)
        with Slow._lock:
            self._inside -= 1
        return Turn.reply("ok")


class Closing(TextEnv):
    """Records the ids of closed instances in ``closed``."""

    closed: list[int] = []  # noqa: RUF012

    def load_tasks(self) -> GeneratedTasks:
        return _tasks()

    def verify(self, task, completion) -> float:
        return 1.0

    def close(self) -> None:
        Closing.closed.append(id(self))


TEST_ENVS = {
    "rlenvtest/Crashy-v0": Crashy,
    "rlenvtest/Slow-v0": Slow,
    "rlenvtest/Closing-v0": Closing,
}


class Client:
    """Raw HTTP on one keep-alive connection: ``call`` returns (status, decoded JSON)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        self.connection.request(
            method,
            path,
            body=payload,
            headers=headers if headers is not None else {"Content-Type": "application/json"},
        )
        response = self.connection.getresponse()
        data = response.read()
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data
        return response.status, decoded

    def session(self, env_id: str = "rlenv/Arithmetic-v0", **kwargs: Any) -> str:
        status, body = self.call("POST", "/sessions", {"env_id": env_id, "kwargs": kwargs})
        assert status == 200, body
        return body["session_id"]

    def close(self) -> None:
        self.connection.close()
