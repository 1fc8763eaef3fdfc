"""Environments kept for reuse, and the two things every consumer does with them.

Everything that uses environments from outside (the rollout engine, ``rlenv collect --gold``,
the HTTP server, the TRL, verl and OpenRLHF adapters) needs the same three pieces, written once
here:

- :class:`EnvPool`: idle envs per (env id, kwargs), lent to one user at a time; thread-safe,
  optionally bounded (least recently used idle envs are closed first);
- :func:`score`: one completion scored as the first turn of a task, by a :class:`TaskHandle`.
  It never raises on model output, and it never reports "could not judge" as "judged 0";
- :func:`pose_tasks`: the opening messages and handles of the tasks a seed names (task ``i``
  of seed ``s`` is ``reset(seed=s + i)``, :func:`~rlenv.handles.task_seeds`), which is what
  every adapter's dataset export writes.

>>> import rlenv
>>> with EnvPool() as pool:
...     posed = pose_tasks(pool, "rlenv/Arithmetic-v0", {"difficulty": 1}, n_tasks=2)
...     verdict = score(pool, posed[0].handle, "\\\\boxed{-1}")
>>> verdict.scored, verdict.reward
(True, 0.0)
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rlenv.env import TextEnv
from rlenv.handles import TaskHandle, task_seeds
from rlenv.registry import make as _make
from rlenv.verdict import Verdict

__all__ = ["EnvPool", "FirstTurn", "PosedTask", "first_turn", "pose_tasks", "score"]

logger = logging.getLogger("rlenv")

EnvKwargs = Mapping[str, Any] | Sequence[tuple[str, Any]] | None
"""Constructor kwargs: a mapping, or ``(name, value)`` pairs (:class:`EpisodeSpec`'s form)."""


def _env_key(env_id: str, env_kwargs: Mapping[str, Any]) -> tuple[str, str]:
    # repr for what JSON cannot hold (a TaskList passed as tasks=): distinct objects, distinct keys
    return env_id, json.dumps(dict(env_kwargs), sort_keys=True, default=repr)


def _close_quietly(env: TextEnv) -> None:
    try:
        env.close()
    except Exception:
        logger.warning("closing %r raised", env, exc_info=True)


class EnvPool:
    """Idle environments per (env id, kwargs), each lent to one user at a time.

    :meth:`acquire` lends an idle env made with the same id and kwargs, or makes one;
    :meth:`release` takes it back once its episode is over; :meth:`borrow` does both around a
    ``with`` block. An env is never lent to two users at once, from any number of threads
    (releasing one twice raises). Envs are made and closed outside the pool's lock, so a slow
    constructor or ``close`` holds up no one else.

    Args:
        max_idle: The most idle envs kept, all keys together; releasing one more closes the
            least recently released. ``None`` (the default) keeps every env released, which
            suits one run (the rollout engine); a long-lived service (the HTTP server) sets a
            bound. Envs on loan are not counted: their number is bounded by the users.
        make: Makes an env, ``make(env_id, **kwargs)`` (default ``rlenv.make``); the server
            passes one that turns a constructor's complaint into a 400.

    Closing the pool (:meth:`close`, or leaving ``with EnvPool() as pool:``) closes the idle
    envs; an env on loan then is closed when it comes back.
    """

    def __init__(
        self,
        *,
        max_idle: int | None = None,
        make: Callable[..., TextEnv] | None = None,
    ) -> None:
        if max_idle is not None and max_idle < 0:
            raise ValueError(f"max_idle must be None or >= 0, got {max_idle}")
        self.max_idle = max_idle
        self._make = make or _make
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[TextEnv]] = {}
        self._order: OrderedDict[int, tuple[tuple[str, str], TextEnv]] = OrderedDict()
        self._lent: weakref.WeakKeyDictionary[TextEnv, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False

    @property
    def idle(self) -> int:
        """How many envs wait to be lent."""
        with self._lock:
            return len(self._order)

    @property
    def lent(self) -> int:
        """How many envs are on loan (not yet released, discarded or garbage-collected)."""
        with self._lock:
            return len(self._lent)

    def acquire(self, env_id: str, env_kwargs: EnvKwargs = None) -> TextEnv:
        """An env made as ``rlenv.make(env_id, **env_kwargs)``, idle until now; a new one when
        none is idle (the constructor's errors propagate). Give it back with :meth:`release`,
        or :meth:`discard` it; one never given back is left to the garbage collector."""
        kwargs = dict(env_kwargs or {})
        key = _env_key(env_id, kwargs)
        with self._lock:
            idle = self._idle.get(key)
            env = idle.pop() if idle else None
            if env is not None:
                del self._order[id(env)]
                if not idle:
                    del self._idle[key]
                self._lent[env] = key
                return env
        env = self._make(env_id, **kwargs)
        with self._lock:
            self._lent[env] = key
        return env

    def release(self, env: TextEnv) -> None:
        """Take back an env :meth:`acquire` lent; its next user resets it. Closes it instead
        when the pool is closed, and closes the least recently released idle envs past
        ``max_idle``."""
        evicted: list[TextEnv] = []
        with self._lock:
            key = self._take_back(env)
            if self._closed:
                evicted.append(env)
            else:
                self._idle.setdefault(key, []).append(env)
                self._order[id(env)] = (key, env)
                while self.max_idle is not None and len(self._order) > self.max_idle:
                    _, (old_key, old) = self._order.popitem(last=False)
                    envs = self._idle[old_key]
                    envs[:] = [e for e in envs if e is not old]
                    if not envs:
                        del self._idle[old_key]
                    evicted.append(old)
        for old in evicted:
            _close_quietly(old)

    def discard(self, env: TextEnv) -> None:
        """Close an env :meth:`acquire` lent instead of taking it back (its state is not to be
        trusted: it raised mid-step)."""
        with self._lock:
            self._take_back(env)
        _close_quietly(env)

    def _take_back(self, env: TextEnv) -> tuple[str, str]:
        key = self._lent.pop(env, None)
        if key is None:
            raise ValueError(
                f"{env!r} is not on loan from this pool (released twice, or never acquired "
                "here): an env must not be shared by two users"
            )
        return key

    @contextmanager
    def borrow(self, env_id: str, env_kwargs: EnvKwargs = None) -> Iterator[TextEnv]:
        """:meth:`acquire` and :meth:`release` around a block; an env whose block raised is
        discarded (closed), not reused."""
        env = self.acquire(env_id, env_kwargs)
        try:
            yield env
        except BaseException:
            self.discard(env)
            raise
        self.release(env)

    def close(self) -> None:
        """Close every idle env; envs on loan are closed when released. Idempotent; the pool
        still lends new envs afterwards, but keeps none."""
        with self._lock:
            self._closed = True
            envs = [env for _, env in self._order.values()]
            self._order.clear()
            self._idle.clear()
        for env in envs:
            _close_quietly(env)

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ------------------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class FirstTurn:
    """What one completion did as the first turn of a task (see :func:`first_turn`)."""

    reward: float
    """What the step paid (0.0 when it raised)."""
    verdict: Verdict
    """The env's verdict, or an unscored one (see :func:`first_turn`)."""
    terminated: bool
    truncated: bool


def score(pool: EnvPool, handle: TaskHandle, completion: object) -> Verdict:
    """The verdict on ``completion`` as the first turn of ``handle``'s task.

    Reward functions (TRL's, verl's ``compute_score``, OpenRLHF's ``reward_func``) are this
    function plus their framework's format. See :func:`first_turn` for the rules. The
    verdict's ``reward`` is what the step paid (an env's ``Turn`` may pay a reward other than
    its verdict's). Honour ``verdict.scored``: ``False`` means nobody judged the completion,
    never that it earned 0.
    """
    turn = first_turn(pool, handle, completion)
    if turn.verdict.reward == turn.reward:
        return turn.verdict
    return turn.verdict.model_copy(update={"reward": turn.reward})


def first_turn(pool: EnvPool, handle: TaskHandle, completion: object) -> FirstTurn:
    """Reset an env from ``pool`` to ``handle``'s task and step it once with ``completion``.

    ``completion`` is model output and treated as hostile: any text (empty, megabytes, lone
    surrogates, fake chat-template tokens) is stepped as it is; an assistant message dict is
    stepped as a message; anything else is stepped as its ``str``. Nothing about it raises:

    - an env whose ``step`` raises (breaking ``TextEnv``'s promise) gives reward 0,
      ``truncated``, and a verdict with ``scored=False`` and the error; that env is closed,
      not reused (the HTTP server answers a session's step the same way);
    - **one rule for multi-turn envs**: a first step that does not end the episode
      (``terminated`` and ``truncated`` both False) gives a verdict with ``scored=False``,
      the step's reward and a reason saying to play whole episodes. One turn of an
      unfinished episode is not a judgement of it: a retry env would pay nothing for a first
      attempt the second could fix, a game nothing for an opening move. The env's own
      verdict ``scored`` stands otherwise.

    A handle that names no task (``TaskNotFoundError``), an env id not registered, or kwargs
    its constructor refuses raise: those are data bugs, not a sample's.
    """
    action = _as_action(completion)
    env = pool.acquire(handle.env_id, handle.env_kwargs)
    try:
        env.reset(options={"task_id": handle.task_id})
    except BaseException:
        pool.release(env)  # reset sets every field again: the env serves the next task
        raise
    try:
        _, reward, terminated, truncated, info = env.step(action)
    except Exception as error:
        logger.warning("%s.step raised on a completion", handle.env_id, exc_info=True)
        pool.discard(env)
        verdict = Verdict(
            reward=0.0,
            scored=False,
            error=f"environment failed: {type(error).__name__}: {error}",
        )
        return FirstTurn(0.0, verdict, terminated=False, truncated=True)
    pool.release(env)
    verdict = info["verdict"]
    if not (terminated or truncated):
        verdict = verdict.model_copy(
            update={
                "scored": False,
                "reason": (
                    f"{handle.env_id} is multi-turn and this completion did not end the episode "
                    f"(its first turn paid {reward:g}): one turn is not a judgement of an "
                    "episode; play whole episodes (rlenv.rollout.rollout, TRL's "
                    "RolloutFunction, verl's 'rlenv_agent' agent loop, OpenRLHF's "
                    "AgentExecutor)"
                ),
            }
        )
    return FirstTurn(reward, verdict, terminated=terminated, truncated=truncated)


def _as_action(completion: object) -> str | dict[str, Any]:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return dict(completion)
    if isinstance(completion, (bytes, bytearray)):
        return bytes(completion).decode("utf-8", errors="replace")
    try:
        return str(completion)
    except Exception:
        return f"<unprintable {type(completion).__name__}>"


# ------------------------------------------------------------------------------ posing tasks


@dataclass(frozen=True)
class PosedTask:
    """One task as a dataset row needs it: its handle and what the model is shown."""

    index: int
    """Its position, 0-based."""
    seed: int | None
    """The seed ``reset`` was given (``None`` when posed by task id)."""
    handle: TaskHandle
    observation: list[Any]
    """The opening chat messages."""
    info: dict[str, Any]
    """``reset``'s info (``task_id``, ``tools``...)."""


def pose_tasks(
    pool: EnvPool,
    env_id: str,
    env_kwargs: EnvKwargs = None,
    *,
    n_tasks: int,
    seed: int = 0,
    task_ids: Sequence[str] | None = None,
) -> list[PosedTask]:
    """Reset an env from ``pool`` to each of ``n_tasks`` tasks and record what it posed.

    Task ``i`` is the one ``reset(seed=seed + i)`` poses (:func:`~rlenv.handles.task_seeds`):
    the same tasks ``rlenv eval`` and the trainers draw for ``seed``. With ``task_ids``, task
    ``i`` is ``task_ids[i]`` instead.
    """
    kwargs = dict(env_kwargs or {})
    if task_ids is not None:
        if len(task_ids) < n_tasks:
            raise ValueError(f"n_tasks={n_tasks} but only {len(task_ids)} task_ids were given")
        starts: list[tuple[int | None, str | None]] = [(None, t) for t in task_ids[:n_tasks]]
    else:
        starts = [(s, None) for s in task_seeds(n_tasks, seed)]
    posed = []
    with pool.borrow(env_id, kwargs) as env:
        for index, (task_seed, task_id) in enumerate(starts):
            options = {"task_id": task_id} if task_id is not None else None
            observation, info = env.reset(seed=task_seed, options=options)
            handle = TaskHandle(env_id=env_id, env_kwargs=kwargs, task_id=info["task_id"])
            posed.append(PosedTask(index, task_seed, handle, observation, info))
    return posed
