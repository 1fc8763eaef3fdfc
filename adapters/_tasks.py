"""What the verl and OpenRLHF adapters share: the task tag a dataset row carries, and env caches.

A task tag is a JSON string, ``{"env_id", "env_kwargs", "task_id"}`` with sorted keys, enough to
rebuild the env and pose the same task again (the same tag the TRL adapter puts in its prompts).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import rlenv
from rlenv.env import TextEnv

__all__ = ["EnvCache", "EnvPool", "parse_task_tag", "task_tag"]


def task_tag(env_id: str, env_kwargs: dict[str, Any], task_id: str) -> str:
    """The JSON tag that identifies a task: env id, env kwargs and task id."""
    return json.dumps(
        {"env_id": env_id, "env_kwargs": env_kwargs, "task_id": task_id}, sort_keys=True
    )


def parse_task_tag(tag: Any, where: str) -> dict[str, Any]:
    """The ``{"env_id", "env_kwargs", "task_id"}`` dict of a tag; ``where`` names the field in
    the error raised for anything that is not a tag."""
    try:
        task = json.loads(tag) if isinstance(tag, (str, bytes)) else tag
        if isinstance(task, dict) and isinstance(task.get("env_id"), str) and "task_id" in task:
            return {
                "env_id": task["env_id"],
                "env_kwargs": dict(task.get("env_kwargs") or {}),
                "task_id": str(task["task_id"]),
            }
    except (TypeError, ValueError):
        pass
    raise ValueError(
        f"{where} is not an rlenv task tag (JSON with env_id, env_kwargs, task_id): {tag!r:.200}; "
        "build the data with the rlenv adapter's export function"
    )


def _key(env_id: str, env_kwargs: dict[str, Any]) -> tuple[str, str]:
    return env_id, json.dumps(env_kwargs, sort_keys=True)


class EnvCache:
    """One env per (thread, env id, kwargs), reused across calls: for reward functions, which
    reset and step an env within one synchronous call."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, env_id: str, env_kwargs: dict[str, Any]) -> TextEnv:
        cache = self._local.__dict__.setdefault("envs", {})
        key = _key(env_id, env_kwargs)
        if key not in cache:
            cache[key] = rlenv.make(env_id, **env_kwargs)
        return cache[key]


class EnvPool:
    """Idle envs per (env id, kwargs), lent to one episode at a time: for agent loops, where many
    episodes interleave on one event loop and an env must not be shared while one is running."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str], list[TextEnv]] = {}
        self._lock = threading.Lock()

    def acquire(self, env_id: str, env_kwargs: dict[str, Any]) -> TextEnv:
        """An idle env for ``env_id`` and ``env_kwargs`` (a new one when none is idle); hand it
        back with :meth:`release` when its episode is over (one never released is simply left
        to the garbage collector)."""
        with self._lock:
            idle = self._idle.get(_key(env_id, env_kwargs))
            if idle:
                return idle.pop()
        return rlenv.make(env_id, **env_kwargs)

    def release(self, env_id: str, env_kwargs: dict[str, Any], env: TextEnv) -> None:
        with self._lock:
            self._idle.setdefault(_key(env_id, env_kwargs), []).append(env)

    @contextmanager
    def borrow(self, env_id: str, env_kwargs: dict[str, Any]) -> Iterator[TextEnv]:
        """:meth:`acquire` and :meth:`release` around a block."""
        env = self.acquire(env_id, env_kwargs)
        try:
            yield env
        finally:
            self.release(env_id, env_kwargs, env)
