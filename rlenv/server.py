"""Environments over HTTP: an ASGI app (FastAPI) that serves sessions of registered envs.

A trainer on one machine can step environments that live on another (a code sandbox, a tool
world with a database) through :class:`rlenv.remote.RemoteEnv`, or any HTTP client::

    GET    /health               {"status": "ok", "sessions": n, "max_sessions": m}
    GET    /envs                 {"env_ids": [...]}: what this server serves
    POST   /sessions             {env_id, kwargs} -> {session_id, max_turns, ...}
    POST   /sessions/{id}/reset  {seed?, options?} -> {observation, info}
    POST   /sessions/{id}/step   {action, since?} -> {observation, reward, terminated, truncated,
                                 info}; with since, observation holds only the new messages
    DELETE /sessions/{id}        close the session
    POST   /verify               {env_id, kwargs?, seed | task_id, completion} -> verdict
    GET    /openapi.json, /docs  the OpenAPI spec and its browsable page

Every body is JSON (labelled ``Content-Type: application/json``; a body labelled otherwise, as
``curl -d`` labels it, is a 415 that says so) and validated; every error is a 4xx with
``{"error": name, "detail": ...}`` naming what was wrong, and model output never causes a 5xx
(see :func:`create_app`). ``/verify`` is :func:`rlenv.pool.first_turn` on the server's
:class:`~rlenv.pool.EnvPool`: the same scoring, and the same rule for a multi-turn first turn
that did not end, as ``rlenv.score`` and every adapter's reward function. A session
is one environment instance behind a random, unguessable id; its steps run in a thread pool,
one at a time (a per-session lock), and it is closed after ``session_ttl`` idle seconds.
Sessions live in the server's memory, so one server is one process: to scale out, run several
servers and spread the clients over them.

Faults (``docs/server.md``, "Faults"): every env call has a deadline (``step_timeout``; a hung
call's thread is abandoned and counted, and at ``max_abandoned`` of them the server answers 503
until they return); a reset or step may carry a ``step_id``, and the session keeps its last id
and answer, so a retried request is answered once (a replay, never a second step); every answer
carries the header ``X-Rlenv-Instance``, new at each start, so a client tells a restarted server
from its own; a full server answers 429 with ``Retry-After``; SIGTERM drains (requests in flight
finish, new ones get 503) before shutting down.

Run it with ``rlenv serve ENV_ID ...`` (needs ``pip install 'rlenv[server]'``). See
``docs/server.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import queue
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator
from pydantic_core import to_jsonable_python

try:
    import anyio
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException
except ImportError as _error:  # pragma: no cover - exercised by the CLI's message
    raise ImportError(
        f"rlenv.server needs FastAPI and uvicorn ({_error}): pip install 'rlenv[server]'"
    ) from _error

import rlenv
from rlenv.env import TextEnv
from rlenv.errors import (
    EpisodeFinishedError,
    InvalidActionError,
    ResetNeededError,
    RLEnvError,
    TaskFormatError,
    TaskNotFoundError,
    UnknownEnvError,
)
from rlenv.handles import TaskHandle
from rlenv.pool import EnvPool, first_turn, pose_tasks
from rlenv.verdict import Verdict

__all__ = [
    "DENIED_KWARGS",
    "CreateSessionRequest",
    "ErrorResponse",
    "ResetRequest",
    "ResetResponse",
    "ServerLimits",
    "SessionResponse",
    "StepRequest",
    "StepResponse",
    "VerifyRequest",
    "VerifyResponse",
    "create_app",
    "default_threads",
    "serve",
    "serve_in_thread",
]

logger = logging.getLogger("rlenv.server")

DENIED_KWARGS = frozenset({"tasks", "render_mode"})
"""Constructor arguments a client may never pass: ``tasks`` can name a file on the server and
``render_mode="human"`` prints every message to the server's console."""

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)


def default_threads() -> int:
    """Env threads when ``--threads`` is not given: 8 per CPU this process may use, at most 32.

    More threads than that add no throughput to environments that compute in Python (they
    take turns at the GIL) and spread the latency: on 2 CPUs, 64 clients of Arithmetic-v0
    had a p99 of 17-19 ms with 8 or 16 threads and 38-39 ms with 32 (``docs/server.md``).
    Environments that wait rather than compute (code sandboxes, remote calls) release the GIL
    while they wait: give them more with ``--threads``.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(32, 8 * (cpus or 1))


class ServerLimits(BaseModel):
    """What one server accepts; ``rlenv serve`` flags set each field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_sessions: int = Field(
        default=1024, ge=1, description="Open sessions at most; creating one more gives 429."
    )
    session_ttl: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a session may stay idle before it is closed (then 404).",
    )
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="Largest request body; larger gives 413. The default fits an action of "
        "TextEnv's 200,000-character limit, even with JSON escapes.",
    )
    threads: int = Field(
        default_factory=default_threads,
        ge=1,
        description="Threads that run environment code (make/reset/step); the default is "
        "8 per CPU, at most 32 (default_threads()).",
    )
    client_kwargs: bool = Field(
        default=True,
        description="Whether clients may pass constructor arguments (never those in "
        "DENIED_KWARGS). Off: every session gets the registered defaults.",
    )
    step_timeout: float | None = Field(
        default=120.0,
        gt=0,
        description="Seconds one env call (make, reset, step, close, verify) may run once it "
        "has a thread. A step past it answers an unscored, truncated turn and the session must "
        "be reset (its env is abandoned to the hung thread); None: no deadline.",
    )
    max_abandoned: int = Field(
        default=8,
        ge=1,
        description="Hung env calls left running past their deadline (threads cannot be "
        "killed); at this many, env calls get 503 until some return: restart the server.",
    )
    max_waiting: int = Field(
        default=1024,
        ge=0,
        description="Env calls that may wait for a free thread; one more gives 429 ServerBusy "
        "with Retry-After.",
    )
    drain_timeout: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, seconds to let requests in flight finish (new ones get 503) "
        "before shutting down.",
    )


# ------------------------------------------------------------------------------ the API's data


_STEP_ID_DOC = (
    "The session's request number, chosen by the client and larger at each reset and step of "
    "the session. The same id again (a retry after a dropped connection) gets the first "
    "answer back without stepping again when the request is the same (another request with "
    "that id is a 409 StepIdReused); a smaller one is a late duplicate (409 StaleStep)."
)


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body."""

    error: str = Field(
        description="What went wrong, e.g. 'SessionNotFound', 'EpisodeFinishedError'."
    )
    detail: Any = Field(description="A message, or the list of validation errors.")


class CreateSessionRequest(BaseModel):
    """``POST /sessions``: open a session on one environment."""

    model_config = ConfigDict(extra="forbid")

    env_id: StrictStr = Field(description="A served environment id, e.g. 'rlenv/Arithmetic-v0'.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Constructor arguments (as for rlenv.make)."
    )


class SessionResponse(BaseModel):
    """A new session, with what a client needs to mirror the environment's attributes."""

    session_id: str = Field(description="Random and unguessable; use it in every later call.")
    env_id: str
    max_turns: int
    max_reward: float
    max_action_chars: int
    session_ttl: float = Field(description="Idle seconds after which the session is closed.")
    delta: bool = Field(
        default=True,
        description="Whether this server answers a step's ``since`` with only the new messages "
        "(servers before it lack the field: send no ``since`` to them).",
    )


class ResetRequest(BaseModel):
    """``POST /sessions/{id}/reset``: start an episode (the body may be empty)."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(default=None, ge=0, description="The same seed, the same task.")
    options: dict[str, Any] | None = Field(
        default=None, description="{'task_id': id} or {'task': {...}}, as for TextEnv.reset."
    )
    step_id: int | None = Field(default=None, ge=0, description=_STEP_ID_DOC)


class ResetResponse(BaseModel):
    observation: list[dict[str, Any]] = Field(description="The opening chat messages.")
    info: dict[str, Any] = Field(description="task_id, new_messages, tools.")


class StepRequest(BaseModel):
    """``POST /sessions/{id}/step``: what the model said."""

    model_config = ConfigDict(extra="forbid")

    action: StrictStr | dict[str, Any] = Field(
        description="The model's completion text, or an assistant message dict."
    )
    step_id: int | None = Field(default=None, ge=0, description=_STEP_ID_DOC)
    since: int | None = Field(
        default=None,
        ge=0,
        description="How many messages of the conversation the client holds (its last "
        "observation's length). Given, the answer's observation holds only the messages from "
        "index observation_from on (observation_from == since when the client's messages are "
        "a prefix of the conversation, else 0: the whole of it): the client keeps "
        "messages[:observation_from] and appends them. Absent: the whole conversation.",
    )


class StepResponse(BaseModel):
    observation: list[dict[str, Any]] = Field(
        description="The whole conversation so far, or with ``since`` its messages from "
        "``observation_from`` on."
    )
    observation_from: int | None = Field(
        default=None,
        description="Only when the request gave ``since``: the index of the observation's "
        "first message in the conversation (the client's messages before it are kept).",
    )
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = Field(
        description="task_id, turn, new_messages, tools and verdict (a Verdict as a dict)."
    )


class VerifyRequest(BaseModel):
    """``POST /verify``: score one completion for one task, without a session."""

    model_config = ConfigDict(extra="forbid")

    env_id: StrictStr
    kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(default=None, ge=0, description="The task posed by this seed...")
    task_id: StrictStr | None = Field(default=None, description="...or by this task id.")
    completion: StrictStr = Field(description="The model's first-turn completion text.")

    @model_validator(mode="after")
    def _one_task(self) -> VerifyRequest:
        if (self.seed is None) == (self.task_id is None):
            raise ValueError("give exactly one of seed and task_id")
        return self


class VerifyResponse(BaseModel):
    reward: float = Field(description="What env.step(completion) pays after the reset.")
    terminated: bool
    truncated: bool
    task_id: str | None
    verdict: dict[str, Any] = Field(description="The Verdict, as a dict.")


# ------------------------------------------------------------------------------ errors


class _ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.retry_after = retry_after


class _DeadlineExceeded(Exception):
    """An env call ran past ``step_timeout``; its thread was abandoned."""


INSTANCE_HEADER = "x-rlenv-instance"
"""Every answer's header naming the server instance (new at each start): a client that sees it
change knows the server restarted and its session, and episode, are gone."""

REPLAY_HEADER = "x-rlenv-replay"
"""Set on the answer to a retried ``step_id``: the stored answer, sent again."""


# Most specific first: EpisodeFinishedError is a ResetNeededError.
_RLENV_ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (ResetNeededError, 409),
    (TaskNotFoundError, 404),
    (UnknownEnvError, 404),
    (InvalidActionError, 422),
    (TaskFormatError, 422),
    (RLEnvError, 400),
)

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "a bad argument (constructor kwargs, reset options)"),
        (404, "unknown or expired session, environment not served, unknown task id"),
        (409, "step before reset or after the episode ended; a step_id out of order or reused"),
        (413, "request body too large"),
        (415, "a body not labelled as JSON (send Content-Type: application/json)"),
        (422, "the body is not valid JSON of the documented shape"),
        (429, "too many open sessions, or env calls waiting (Retry-After says when to retry)"),
        (503, "shutting down (draining), or too many hung env calls (Retry-After)"),
    )
}


_MAX_DETAIL = 2000


def _json_bytes(content: Any) -> bytes:
    # ensure_ascii: a lone surrogate (valid in a Python str, not in UTF-8) stays representable.
    return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _json_response(content: Any, status: int = 200) -> Response:
    return Response(_json_bytes(content), status_code=status, media_type="application/json")


def _error_response(status: int, error: str, detail: Any) -> Response:
    if isinstance(detail, str) and len(detail) > _MAX_DETAIL:  # messages may quote the input
        detail = detail[:_MAX_DETAIL] + f"... [{len(detail) - _MAX_DETAIL} more chars]"
    return _json_response({"error": error, "detail": detail}, status)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data: Verdicts and other models dumped, anything unknown as its str."""
    return to_jsonable_python(value, serialize_unknown=True)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _verdict_dict(verdict: Any) -> dict[str, Any]:
    if not isinstance(verdict, Verdict):
        return _jsonable(verdict)
    data = _jsonable(verdict)
    data["components"] = {k: _finite(v) for k, v in verdict.components.items()}
    return data


def _info_dict(info: dict[str, Any]) -> dict[str, Any]:
    out = {key: _jsonable(value) for key, value in info.items() if key != "verdict"}
    if "verdict" in info:
        out["verdict"] = _verdict_dict(info["verdict"])
    return out


# ------------------------------------------------------------------------------ state


@dataclass
class _Session:
    id: str
    env_id: str
    env: TextEnv
    last_used: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False
    needs_reset: str = ""  # why the env's state is not to be trusted (it raised, or hung)
    abandoned: bool = False  # env left to a hung thread: the next reset makes a new one
    # The last request's id, kind ("reset"/"step") and answer, sent again to a retry.
    last_id: int = -1
    last_kind: str = ""
    last_answer: bytes = b""
    last_request: tuple[Any, ...] = ()  # what was asked: a retry asks the same again
    # The conversation as of the last reset or step answer (its message objects), against
    # which a step's ``since`` is checked: only a true prefix is left out of the answer.
    sent: list[Any] = field(default_factory=list)

    def replay(self, step_id: int | None, kind: str, request: tuple[Any, ...]) -> bytes | None:
        """The stored answer when ``step_id`` was answered already; None when it is new.
        ``request`` is what the request asks (a retry asks the same again)."""
        if step_id is None or step_id > self.last_id:
            return None
        if step_id == self.last_id and kind == self.last_kind:
            if request == self.last_request:
                return self.last_answer
            raise _ApiError(
                409,
                "StepIdReused",
                f"step_id {step_id} ({kind}) was answered already for another request: it is "
                "no retry, and its answer is not yours. Send a new, larger id for each request; "
                "one client per session (a copied client shares the session and its ids)",
            )
        raise _ApiError(
            409,
            "StaleStep",
            f"step_id {step_id} ({kind}) is not after this session's last ({self.last_id}, "
            f"{self.last_kind}): a late duplicate, ignored; send increasing ids",
        )

    def remember(
        self, step_id: int | None, kind: str, request: tuple[Any, ...], answer: bytes
    ) -> None:
        # The answer is stored as sent. An answer shaped by its request (only the new messages,
        # say) stays right for a retry, which sends the same request again.
        if step_id is not None:
            self.last_id, self.last_kind, self.last_answer = step_id, kind, answer
            self.last_request = request


class _Call:
    """One env call on a worker thread, which its caller may stop waiting for (a deadline).

    Python cannot kill a thread: an abandoned call runs on, counted in ``_State.abandoned``
    until it returns, when ``cleanup`` (closing the abandoned env) runs on its thread. The
    caller awaits ``future``, settled from the thread (the answer) or by :meth:`expire` on the
    event loop (the deadline), whichever comes first.
    """

    __slots__ = (
        "abandoned",
        "args",
        "cleanup",
        "done",
        "function",
        "future",
        "lock",
        "loop",
        "state",
    )

    def __init__(
        self,
        state: _State,
        loop: asyncio.AbstractEventLoop,
        function: Callable[..., Any],
        args: tuple,
    ) -> None:
        self.state, self.loop, self.function, self.args = state, loop, function, args
        self.future: asyncio.Future[Any] = loop.create_future()
        self.lock = threading.Lock()
        self.done = self.abandoned = False
        self.cleanup: Callable[[], None] | None = None

    def __call__(self) -> None:  # on a worker thread
        try:
            result, error = self.function(*self.args), None
        except BaseException as raised:
            result, error = None, raised
        with self.lock:
            self.done = True
            abandoned = self.abandoned
        if abandoned:
            self.state.count_abandoned(-1)
            if self.cleanup is not None:
                self.cleanup()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)

    def expire(self, cleanup: Callable[[], None] | None, error: Exception) -> None:
        """The deadline passed (on the event loop): abandon the thread, fail the future."""
        with self.lock:
            if self.done:  # it returned just as the deadline passed: its answer is on its way
                return
            self.abandoned, self.cleanup = True, cleanup
        self.state.count_abandoned(+1)
        if not self.future.done():
            self.future.set_exception(error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _Workers:
    """Daemon threads that run env calls. A call never waits for a thread: when none is idle,
    one more starts, so a hung call (abandoned at its deadline) is replaced at once. Their
    number is bounded by the ``threads`` limiter plus the abandoned calls (``max_abandoned``).
    Daemon threads, unlike ``concurrent.futures``' workers, do not hold up the process's exit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = 0
        self._jobs: queue.SimpleQueue[_Call] = queue.SimpleQueue()

    def submit(self, call: _Call) -> None:
        with self._lock:
            start = not self._idle
            if not start:
                self._idle -= 1  # that idle thread is this call's
        self._jobs.put(call)
        if start:
            threading.Thread(target=self._work, name="rlenv-env", daemon=True).start()

    def _work(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


class _InFlight:
    """Counts requests in flight in ``state.in_flight`` (a class, not a generator: it is on
    every request's path)."""

    __slots__ = ("state",)

    def __init__(self, state: _State) -> None:
        self.state = state

    def __enter__(self) -> None:
        self.state.in_flight += 1

    def __exit__(self, *exc_info: object) -> None:
        self.state.in_flight -= 1


class _State:
    """The server's sessions, the verify pool and the thread limiter (one per app)."""

    _TOMBSTONES = 10_000  # recently expired ids remembered, to say "expired" not "unknown"

    def __init__(self, env_ids: Sequence[str], limits: ServerLimits) -> None:
        self.env_ids = tuple(env_ids)
        self.limits = limits
        self.sessions: dict[str, _Session] = {}
        self.expired: OrderedDict[str, None] = OrderedDict()
        self.pending = 0  # sessions being made (they count against max_sessions)
        # /verify's envs. At most `threads` are in use at once (env code runs only in the
        # thread pool); twice that many idle keeps a busy id warm with room for a few others.
        self.pool = EnvPool(max_idle=2 * limits.threads, make=self.make)
        # Env calls at once (`threads`). An asyncio semaphore: taking a free one does not
        # yield to the event loop, as anyio's CapacityLimiter does twice per call.
        self.limiter: asyncio.Semaphore | None = None
        self.workers = _Workers()
        self.closing: set[asyncio.Task[None]] = set()
        self.instance = secrets.token_hex(8)  # new at each start: see INSTANCE_HEADER
        self.calls = 0  # env calls running or waiting for a thread
        self.in_flight = 0  # session and verify requests being answered (drain waits for 0)
        self.draining = False
        self.abandoned = 0  # hung env calls still running past their deadline
        self._abandoned_lock = threading.Lock()
        self._in_flight = _InFlight(self)
        # Resets and steps labelled JSON skip FastAPI's routing and validation (see _Edge);
        # False sends them through FastAPI's routes instead (the tests compare the two).
        self.fast_path = True

    def count_abandoned(self, change: int) -> None:
        with self._abandoned_lock:  # changed from worker threads and the event loop
            self.abandoned += change

    async def run(
        self,
        function: Callable[..., _T],
        *args: Any,
        on_abandon: Callable[[], None] | None = None,
        admit: bool = True,
    ) -> _T:
        """``function(*args)`` in the environment thread pool, within ``step_timeout``.

        ``admit=False`` (closing an env): never refused for a degraded or busy server, only
        queued for a thread; a refused close would leave the env (a sandbox, a subprocess)
        open for good.

        The deadline counts from when the call has a thread (waiting for one is not the env's
        fault). Past it, the call is abandoned (its thread runs on, counted; ``on_abandon``
        runs on that thread when it returns) and :class:`_DeadlineExceeded` is raised. An
        unexpected exception (an environment bug in make, reset or close) becomes a JSON 500 on
        a connection that stays open, and is logged with its traceback.
        """
        limits = self.limits
        if admit:
            self._admit()
        if self.limiter is None:  # a mounted app's lifespan does not run: make it here
            self.limiter = asyncio.Semaphore(limits.threads)
        self.calls += 1
        try:
            async with self.limiter:
                loop = asyncio.get_running_loop()
                call = _Call(self, loop, function, args)
                self.workers.submit(call)
                if limits.step_timeout is None:
                    return await call.future
                name = getattr(function, "__name__", "env code").strip("_")
                late = _DeadlineExceeded(
                    f"the environment's {name.removesuffix('_env')} ran past this server's "
                    f"{limits.step_timeout:g} s deadline (--step-timeout) and was abandoned"
                )
                timer = loop.call_later(limits.step_timeout, call.expire, on_abandon, late)
                try:
                    return await call.future
                except _DeadlineExceeded:
                    logger.error("%s (%d hung)", late, self.abandoned)
                    raise
                finally:
                    timer.cancel()
        except (_ApiError, RLEnvError, _DeadlineExceeded):
            raise
        except Exception as error:
            logger.error("%s raised", getattr(function, "__name__", "env code"), exc_info=True)
            raise _ApiError(500, "InternalError", f"{type(error).__name__}: {error}") from None
        finally:
            self.calls -= 1

    def _admit(self) -> None:
        """Refuse an env call: 503 with too many hung calls, 429 with too many waiting."""
        limits = self.limits
        if self.abandoned >= limits.max_abandoned:
            raise _ApiError(
                503,
                "ServerDegraded",
                f"{self.abandoned} env calls hung past the {limits.step_timeout:g} s deadline "
                "and still hold their threads; this server takes no env calls until some "
                "return: restart it (rlenv serve), or retry later",
                retry_after=5,
            )
        if self.calls >= limits.threads + limits.max_waiting:
            raise _ApiError(
                429,
                "ServerBusy",
                f"{self.calls} env calls are running or waiting for one of {limits.threads} "
                "threads (--threads, --max-waiting): retry after Retry-After seconds",
                retry_after=1,
            )

    async def run_or_504(self, function: Callable[..., _T], *args: Any) -> _T:
        """:meth:`run`, a deadline answered 504 (calls with no episode to end: make, verify)."""
        try:
            return await self.run(function, *args)
        except _DeadlineExceeded as late:
            raise _ApiError(504, "EnvTimeout", f"{late}; retry, or ask for a longer one") from None

    def request(self) -> _InFlight:
        """``with state.request():`` counts a request in flight; refused with 503 once SIGTERM
        started the drain."""
        if self.draining:
            raise _ApiError(
                503,
                "ServerDraining",
                "this server is shutting down: requests in flight finish, new ones are "
                "refused. Sessions here end with it: reset on the server that replaces it",
                retry_after=1,
            )
        return self._in_flight

    def check_env(self, env_id: str, kwargs: dict[str, Any]) -> None:
        if env_id not in self.env_ids:
            raise _ApiError(
                404,
                "EnvNotServed",
                f"{env_id!r} is not served here; this server serves {list(self.env_ids)}",
            )
        if kwargs and not self.limits.client_kwargs:
            raise _ApiError(
                400, "KwargsNotAllowed", "this server takes no constructor arguments (kwargs)"
            )
        denied = sorted(DENIED_KWARGS.intersection(kwargs))
        if denied:
            raise _ApiError(400, "KwargsNotAllowed", f"kwargs {denied} cannot be set remotely")

    def make(self, env_id: str, /, **kwargs: Any) -> TextEnv:
        """``rlenv.make`` (in a worker thread); a constructor's complaint becomes a 400."""
        try:
            return rlenv.make(env_id, **kwargs)
        except (RLEnvError, TypeError, ValueError, KeyError) as error:
            raise _ApiError(
                400, "BadKwargs", f"could not make {env_id} with {kwargs}: {error}"
            ) from None

    def get(self, session_id: str) -> _Session:
        session = self.sessions.get(session_id)
        now = time.monotonic()
        if session is not None and self._idle(session, now):
            self._expire(session)
            session = None
        if session is None:
            if session_id in self.expired:
                detail = (
                    f"session {session_id!r} expired after {self.limits.session_ttl:g} s idle; "
                    "open a new one"
                )
            else:
                detail = f"no session {session_id!r} (never opened, or closed)"
            raise _ApiError(404, "SessionNotFound", detail)
        session.last_used = now
        return session

    def _idle(self, session: _Session, now: float) -> bool:
        return not session.lock.locked() and now - session.last_used > self.limits.session_ttl

    def _expire(self, session: _Session) -> None:
        self.sessions.pop(session.id, None)
        session.closed = True
        self.expired[session.id] = None
        while len(self.expired) > self._TOMBSTONES:
            self.expired.popitem(last=False)
        if not session.abandoned:  # an abandoned env is closed by its hung thread
            self.close_later(session.env)

    def close_later(self, env: TextEnv) -> None:
        """Close ``env`` in the thread pool (a sandbox may take a while), not on the loop."""
        task = asyncio.get_running_loop().create_task(self.close_env(env))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def close_env(self, env: TextEnv) -> None:
        """Close ``env`` in the thread pool, even when the server refuses env calls; a close
        past the deadline is left to its thread (never an error: nobody waits for it)."""
        with contextlib.suppress(_DeadlineExceeded, _ApiError):
            await self.run(_close_quietly, env, admit=False)

    def expire_idle(self) -> int:
        now = time.monotonic()
        idle = [s for s in self.sessions.values() if self._idle(s, now)]
        for session in idle:
            self._expire(session)
        return len(idle)

    def reserve(self) -> None:
        if len(self.sessions) + self.pending >= self.limits.max_sessions:
            self.expire_idle()
        if len(self.sessions) + self.pending >= self.limits.max_sessions:
            raise _ApiError(
                429,
                "TooManySessions",
                f"the server is full ({self.limits.max_sessions} sessions): close sessions "
                f"you are done with (DELETE /sessions/{{id}}) or wait for idle ones to expire "
                f"({self.limits.session_ttl:g} s)",
                retry_after=1,
            )
        self.pending += 1

    def close_all(self) -> None:
        for session in list(self.sessions.values()):
            session.closed = True
            if not session.abandoned:
                _close_quietly(session.env)
        self.sessions.clear()
        self.pool.close()


def _close_quietly(env: TextEnv) -> None:
    try:
        env.close()
    except Exception:
        logger.warning("closing %r raised", env, exc_info=True)


# ------------------------------------------------------------------------------ env calls
# These run in worker threads and return the response body as bytes, so that the JSON work
# stays off the event loop too. They read the session's state but never write it: a call
# abandoned at its deadline may return much later, when the session has moved on (a new env,
# a new episode), so what a call changes is returned and applied by its caller, on the event
# loop, only when the call was answered in time.


def _reset_env(
    env: TextEnv, seed: int | None, options: dict[str, Any] | None
) -> tuple[bytes, list[Any]]:
    """The answer to a reset, and the conversation sent (the session's next ``sent``)."""
    try:
        observation, info = env.reset(seed=seed, options=options)
    except RLEnvError:  # mapped to a status by the app's handler
        raise
    except (ValueError, TypeError, KeyError) as error:  # bad options
        raise _ApiError(400, type(error).__name__, f"reset failed: {error}") from None
    return _json_bytes({"observation": observation, "info": _info_dict(info)}), observation


def _tail(previous: list[Any], observation: list[Any], since: int | None) -> dict[str, Any]:
    """The answer's observation fields: the whole conversation, or with ``since`` what the
    client lacks (from ``since`` when its messages are a prefix of it, which it is unless the
    client is out of step or the env rewrote its history: then all of it, from 0).
    ``previous`` is the conversation of the session's last answer."""
    if since is None:
        return {"observation": observation}
    # A list compares its items by identity first: the env's messages are the objects sent.
    fits = since <= len(previous) and since <= len(observation)
    if fits and observation[:since] == previous[:since]:
        return {"observation": observation[since:], "observation_from": since}
    return {"observation": observation, "observation_from": 0}


def _step_env(
    env: TextEnv,
    env_id: str,
    previous: list[Any],
    action: str | dict[str, Any],
    since: int | None = None,
) -> tuple[bytes, list[Any], str]:
    """(the answer, the conversation sent, why the session must be reset now or "")."""
    try:
        observation, reward, terminated, truncated, info = env.step(action)
    except RLEnvError:  # the caller's mistake: step before reset, a malformed message dict
        raise
    except Exception as error:
        # TextEnv promises that no text makes step raise; an env that breaks the promise must
        # not turn model output into a 5xx. Report it like a crashed verifier: an unscored 0.
        logger.warning("%s.step raised on a model action", env_id, exc_info=True)
        content, sent = _failed_step(
            env, previous, "EnvError", f"environment failed: {type(error).__name__}: {error}", since
        )
        return content, sent, "the last step failed inside the environment"
    body = {
        **_tail(previous, observation, since),
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "info": _info_dict(info),
    }
    return _json_bytes(body), observation, ""


def _failed_step(
    env: TextEnv, previous: list[Any], error: str, message: str, since: int | None = None
) -> tuple[bytes, list[Any]]:
    """The answer to a step the environment could not finish (it raised, or hung), and the
    conversation sent: the episode ends truncated with reward 0 and an unscored verdict, so
    trainers leave it out rather than learn a 0, and ``info["error"]`` names the fault."""
    verdict = Verdict(reward=0.0, scored=False, error=message)
    try:  # a hung step's env belongs to its thread now: read what it holds, nothing more
        observation, turn = list(env.messages), env.turn
    except Exception:
        observation, turn = [], None
    info = {"turn": turn, "error": error, "verdict": _verdict_dict(verdict)}
    body = {
        **_tail(previous, observation, since),
        "reward": 0.0,
        "terminated": False,
        "truncated": True,
    }
    return _json_bytes({**body, "info": info}), observation


def _verify(pool: EnvPool, request: VerifyRequest) -> bytes:
    """``rlenv.pool.first_turn`` on the request's task; a seed is turned into its task's handle
    first (the seed's task, as ``pose_tasks`` poses it for every adapter)."""
    try:
        if request.task_id is not None:
            handle = TaskHandle(
                env_id=request.env_id, env_kwargs=request.kwargs, task_id=request.task_id
            )
        else:
            posed = pose_tasks(pool, request.env_id, request.kwargs, n_tasks=1, seed=request.seed)
            handle = posed[0].handle
        turn = first_turn(pool, handle, request.completion)
    except (_ApiError, RLEnvError):
        raise
    except (ValueError, TypeError, KeyError) as error:
        raise _ApiError(400, type(error).__name__, f"reset failed: {error}") from None
    body = {
        "reward": turn.reward,
        "terminated": turn.terminated,
        "truncated": turn.truncated,
        "task_id": handle.task_id,
        "verdict": _verdict_dict(turn.verdict),
    }
    return _json_bytes(body)


def _is_json(content_type: str | None) -> bool:
    """Whether a Content-Type is one FastAPI parses as JSON (``application/json``, ``+json``)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


# ------------------------------------------------------------------------------ the app


class _Edge:
    """ASGI middleware: 413 for a body over ``max_bytes`` (declared or streamed), every
    answer's :data:`INSTANCE_HEADER` (one layer for both: it is on every request's path), and
    the fast path of resets and steps.

    The fast path: ``POST /sessions/{id}/reset`` and ``/step`` with a body labelled JSON are
    read, parsed (``json.loads``, as FastAPI parses) and validated by the same pydantic models
    here, then answered by the same functions as the routes (:func:`_reset`, :func:`_step`),
    with the same errors (:func:`_error_for`); what FastAPI's routing, dependency solving and
    exception middleware cost per request (about a third of the server's CPU per step) is
    skipped. Anything else goes on to FastAPI.
    """

    def __init__(self, app: Any, max_bytes: int, instance: str, state: _State | None = None):
        self.app, self.max_bytes, self.state = app, max_bytes, state
        self.header = (INSTANCE_HEADER.encode(), instance.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        original_send = send

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await original_send(message)

        declared = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"content-type":
                content_type = value
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await _error_response(400, "BadRequest", "invalid Content-Length")(
                    scope, receive, send
                )
                return
            if too_large:
                await self._reject(scope, receive, send)
                return
        fast = self._fast_path(scope, content_type)
        if fast is not None:
            response = await self._fast(*fast, receive)
            if response is not None:
                await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # a chunked body: FastAPI re-raises HTTPException
                raise HTTPException(413, self._detail())
            return message

        await self.app(scope, limited_receive, send)

    def _detail(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    def _fast_path(self, scope: Any, content_type: bytes | None) -> tuple[str, str] | None:
        """(``"reset"`` or ``"step"``, session id) for a request the fast path answers."""
        state = self.state
        if state is None or not state.fast_path or scope["method"] != "POST":
            return None
        path = scope["path"]
        if not path.startswith("/sessions/") or scope.get("root_path"):
            return None
        session_id, slash, verb = path[10:].partition("/")
        if not session_id or not slash or verb not in ("reset", "step"):
            return None
        if content_type is None or not _is_json(content_type.decode("latin-1")):
            return None  # FastAPI's route answers (415 for a body not labelled JSON)
        return verb, session_id

    async def _fast(self, verb: str, session_id: str, receive: Any) -> Response | None:
        """The answer to a fast-path request; None when the client left before sending it
        all (as Starlette, nothing is answered)."""
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                return _error_response(413, "BodyTooLarge", self._detail())
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        state = self.state
        assert state is not None
        try:
            if verb == "reset":
                request = _parsed(ResetRequest, body, optional=True)
                return await _reset(state, session_id, request or ResetRequest())
            return await _step(state, session_id, _parsed(StepRequest, body))
        except Exception as error:
            return _error_for(error)

    async def _reject(self, scope: Any, receive: Any, send: Any) -> None:
        response = _error_response(413, "BodyTooLarge", self._detail())
        response.headers["connection"] = "close"  # the unread body must not be parsed next
        await response(scope, receive, send)


def create_app(env_ids: Sequence[str], limits: ServerLimits | None = None) -> FastAPI:
    """The ASGI app serving ``env_ids`` (registered ids; others are refused with 404).

    Environment code (make, reset, step, close) runs in a thread pool of ``limits.threads``
    threads; one session's steps never overlap. A step whose environment raises on the model's
    action answers 200 with reward 0, ``truncated`` and an unscored verdict (like a crashed
    verifier in-process), and the session must be reset. Caller mistakes are 4xx with a JSON
    ``{"error", "detail"}``: 404 unknown session, 409 step before reset or after the end, 413
    body too large, 415 a body not labelled as JSON, 422 malformed body, 429 too many sessions
    (or env calls waiting) with ``Retry-After``. An environment bug outside a step (make, reset)
    is a JSON 500, logged. Faults: a step past ``step_timeout`` answers like a crashed one (and
    its env is abandoned: the next reset makes a new one), a reset or make past it is a 504;
    503 while draining or with ``max_abandoned`` hung calls; see ``docs/server.md``.
    """
    limits = limits or ServerLimits()
    env_ids = list(dict.fromkeys(env_ids))
    if not env_ids:
        raise ValueError("serve at least one environment id")
    for env_id in env_ids:
        rlenv.spec(env_id)  # an unknown id raises UnknownEnvError, with suggestions
    state = _State(env_ids, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.limiter = asyncio.Semaphore(limits.threads)
        sweeper = asyncio.create_task(_sweep_forever(state))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await asyncio.gather(*state.closing)
            await anyio.to_thread.run_sync(state.close_all)

    app = FastAPI(
        title="rlenv",
        version=rlenv.__version__,
        summary="Gymnasium-style text environments over HTTP.",
        lifespan=lifespan,
    )
    app.state.rlenv = state
    app.add_middleware(_Edge, max_bytes=limits.max_body_bytes, instance=state.instance, state=state)

    @app.exception_handler(_ApiError)
    async def _api_error(request: Request, error: _ApiError) -> Response:
        return _error_for(error)

    @app.exception_handler(RLEnvError)
    async def _rlenv_error(request: Request, error: RLEnvError) -> Response:
        return _error_for(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        content_type = request.headers.get("content-type")
        if isinstance(error.body, bytes) and error.body and not _is_json(content_type):
            # FastAPI reads a body as JSON only when it is labelled so (`curl -d` labels it a
            # form); without this, the 422 would only say "Input should be a valid dictionary".
            return _error_response(
                415,
                "UnsupportedMediaType",
                f"the body was sent as {content_type or 'no Content-Type'}: send it as JSON "
                "with Content-Type: application/json (curl: --json '{...}', or "
                "-H 'Content-Type: application/json' -d '{...}')",
            )
        return _validation_error(error.errors())

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        names = {404: "NotFound", 405: "MethodNotAllowed", 413: "BodyTooLarge"}
        name = names.get(error.status_code, "HTTPError")
        response = _error_response(error.status_code, name, error.detail)
        if error.headers:
            response.headers.update(error.headers)
        return response

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> Response:
        return _error_for(error)

    @app.get("/health")
    async def health() -> Response:
        """Liveness, and how full the server is; 503 while draining or with too many hung
        env calls (``status`` says which), so a load balancer stops sending work."""
        status = (
            "draining"
            if state.draining
            else "degraded"
            if state.abandoned >= limits.max_abandoned
            else "ok"
        )
        body = {
            "status": status,
            "sessions": len(state.sessions),
            "max_sessions": limits.max_sessions,
        }
        if state.abandoned:
            body["hung_calls"] = state.abandoned
        return _json_response(body, 200 if status == "ok" else 503)

    @app.get("/envs")
    async def envs() -> dict[str, list[str]]:
        """The environment ids this server serves."""
        return {"env_ids": list(state.env_ids)}

    @app.post("/sessions", response_model=SessionResponse, responses=_ERROR_RESPONSES)
    async def create_session(body: CreateSessionRequest) -> Response:
        """Open a session: one environment instance, made with ``kwargs``."""
        with state.request():
            state.check_env(body.env_id, body.kwargs)
            state.reserve()
            try:
                env = await state.run_or_504(
                    functools.partial(state.make, body.env_id, **body.kwargs)
                )
            finally:
                state.pending -= 1
        session = _Session(
            secrets.token_urlsafe(24), body.env_id, env, time.monotonic(), dict(body.kwargs)
        )
        state.sessions[session.id] = session
        return _json_response(
            {
                "session_id": session.id,
                "env_id": session.env_id,
                "max_turns": env.max_turns,
                "max_reward": env.max_reward,
                "max_action_chars": env.max_action_chars,
                "session_ttl": limits.session_ttl,
                "delta": True,
            }
        )

    @app.post(
        "/sessions/{session_id}/reset", response_model=ResetResponse, responses=_ERROR_RESPONSES
    )
    async def reset(session_id: str, body: ResetRequest | None = None) -> Response:
        """Start an episode: ``env.reset(seed=..., options=...)``. With ``step_id``, a retry
        of an answered reset gets the same answer back."""
        return await _reset(state, session_id, body or ResetRequest())

    @app.post(
        "/sessions/{session_id}/step", response_model=StepResponse, responses=_ERROR_RESPONSES
    )
    async def step(session_id: str, body: StepRequest) -> Response:
        """One model turn: ``env.step(action)``. Never a 5xx for any text. With ``step_id``,
        a retry of an answered step gets the same answer back, and the env steps once."""
        return await _step(state, session_id, body)

    @app.delete("/sessions/{session_id}", responses=_ERROR_RESPONSES)
    async def close_session(session_id: str) -> dict[str, Any]:
        """Close a session and its environment (waits for a step in progress)."""
        session = state.get(session_id)
        async with session.lock:
            _check_open(session)
            state.sessions.pop(session.id, None)
            session.closed = True
            if not session.abandoned:  # an abandoned env is closed by its hung thread
                await state.close_env(session.env)
        return {"session_id": session_id, "closed": True}

    @app.post("/verify", response_model=VerifyResponse, responses=_ERROR_RESPONSES)
    async def verify(body: VerifyRequest) -> Response:
        """Score one completion as the first turn of the task of ``seed`` or ``task_id``
        (:func:`rlenv.pool.first_turn`); unscored when a multi-turn episode did not end."""
        with state.request():
            state.check_env(body.env_id, body.kwargs)
            content = await state.run_or_504(_verify, state.pool, body)
        return Response(content, media_type="application/json")

    return app


async def _reset(state: _State, session_id: str, body: ResetRequest) -> Response:
    """``POST /sessions/{id}/reset`` (the route and the fast path in :class:`_Edge`)."""
    with state.request():
        session = state.get(session_id)
        async with session.lock:
            _check_open(session)
            asked = (body.seed, body.options)
            replayed = session.replay(body.step_id, "reset", asked)
            if replayed is not None:
                return _replayed(replayed)
            if session.abandoned:  # the old env is stuck in a hung thread: a new one
                session.env = await state.run_or_504(
                    functools.partial(state.make, session.env_id, **session.kwargs)
                )
                session.abandoned = False
            try:
                content, sent = await state.run(
                    _reset_env,
                    session.env,
                    body.seed,
                    body.options,
                    on_abandon=functools.partial(_close_quietly, session.env),
                )
            except _DeadlineExceeded as late:
                session.abandoned = True
                session.needs_reset = f"{late}"
                raise _ApiError(504, "EnvTimeout", f"{late}; reset again") from None
            session.needs_reset, session.sent = "", sent
            session.remember(body.step_id, "reset", asked, content)
            session.last_used = time.monotonic()
    return Response(content, media_type="application/json")


async def _step(state: _State, session_id: str, body: StepRequest) -> Response:
    """``POST /sessions/{id}/step`` (the route and the fast path in :class:`_Edge`)."""
    with state.request():
        session = state.get(session_id)
        async with session.lock:
            _check_open(session)
            asked = (body.action, body.since)
            replayed = session.replay(body.step_id, "step", asked)
            if replayed is not None:
                return _replayed(replayed)
            if session.needs_reset:
                raise EpisodeFinishedError(f"{session.needs_reset}; reset first")
            try:
                content, session.sent, session.needs_reset = await state.run(
                    _step_env,
                    session.env,
                    session.env_id,
                    session.sent,
                    body.action,
                    body.since,
                    on_abandon=functools.partial(_close_quietly, session.env),
                )
            except _DeadlineExceeded as late:
                session.abandoned = True
                session.needs_reset = f"{late}"
                content, session.sent = _failed_step(
                    session.env, session.sent, "StepTimeout", f"{late}; reset to go on", body.since
                )
            session.remember(body.step_id, "step", asked, content)
            session.last_used = time.monotonic()
    return Response(content, media_type="application/json")


class _BadBody(Exception):
    """A fast-path body FastAPI would refuse: ``response`` is its answer."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _parsed(model: type[_M], body: bytes, optional: bool = False) -> _M | None:
    """``body`` as FastAPI reads a JSON body parameter of type ``model`` (``| None`` when
    ``optional``: an empty body or ``null`` is None): ``json.loads``, then the model's
    validation from Python data, errors located under ``"body"``."""
    if not body:
        if optional:
            return None
        missing = {"loc": ("body",), "msg": "Field required", "type": "missing"}
        raise _BadBody(_validation_error([missing]))
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise _BadBody(
            _validation_error(
                [{"loc": ("body", error.pos), "msg": "JSON decode error", "type": "json_invalid"}]
            )
        ) from None
    except Exception:  # not text in any encoding json reads: FastAPI's 400
        raise _BadBody(
            _error_response(400, "HTTPError", "There was an error parsing the body")
        ) from None
    if optional and data is None:
        return None
    try:
        return model.model_validate(data, from_attributes=True)
    except ValidationError as error:
        raise _BadBody(
            _validation_error(
                [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
            )
        ) from None


def _validation_error(errors: Sequence[Any]) -> Response:
    # Without "input": a 2 MB body with one wrong field must not be echoed back.
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    return _error_response(422, "ValidationError", _jsonable(errors))


def _error_for(error: Exception) -> Response:
    """The JSON answer to an exception raised while answering a request (the app's exception
    handlers and the fast path's)."""
    if isinstance(error, _BadBody):
        return error.response
    if isinstance(error, _ApiError):
        response = _error_response(error.status, error.error, error.detail)
        if error.retry_after is not None:
            response.headers["retry-after"] = str(error.retry_after)
        return response
    if isinstance(error, RLEnvError):
        status = next(code for kind, code in _RLENV_ERROR_STATUS if isinstance(error, kind))
        return _error_response(status, type(error).__name__, str(error))
    # A bug of the server's own (environment code is handled in _State.run): still JSON.
    logger.error("answering a request raised", exc_info=error)
    return _error_response(500, "InternalError", f"{type(error).__name__}: {error}")


def _replayed(content: bytes) -> Response:
    return Response(content, media_type="application/json", headers={REPLAY_HEADER: "1"})


def _check_open(session: _Session) -> None:
    if session.closed:  # closed or expired while this request waited for the lock
        raise _ApiError(404, "SessionNotFound", f"session {session.id!r} was closed")


async def _sweep_forever(state: _State) -> None:
    interval = min(max(state.limits.session_ttl / 4, 0.05), 30.0)
    while True:
        await asyncio.sleep(interval)
        expired = state.expire_idle()
        if expired:
            logger.info("closed %d idle session(s)", expired)


# ------------------------------------------------------------------------------ running it


def _config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    settings: dict[str, Any] = {
        "access_log": False,
        "timeout_keep_alive": 65,  # longer than a client's usual pause between steps
        "timeout_graceful_shutdown": 10,
        "lifespan": "on",
        **options,
    }
    return uvicorn.Config(app, host=host, port=port, **settings)


def serve(
    env_ids: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    access_log: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``env_ids`` until SIGINT/SIGTERM (what ``rlenv serve`` runs).

    Shutdown drains first: on the first signal, requests in flight finish (``drain_timeout``
    at most) while new ones are answered 503 ``ServerDraining``; then uvicorn shuts down
    gracefully and every session's environment is closed. A second signal stops at once.
    ``port=0`` picks a free port; ``on_ready(base_url)`` is called once the socket is bound,
    with the real port.
    """
    app = create_app(env_ids, limits)
    config = _config(app, host, port, access_log=access_log)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    if on_ready is not None:
        on_ready(_base_url(bound_host, bound_port))
    _DrainingServer(config, app.state.rlenv).run(sockets=[sock])


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, which drains on the first SIGTERM/SIGINT before shutting down.

    uvicorn alone stops listening at once, so a client's next request finds the port closed
    and cannot tell a shutdown from a crash; draining answers it 503 with ``Retry-After``.
    """

    def __init__(self, config: uvicorn.Config, state: _State) -> None:
        super().__init__(config)
        self.state = state
        self._drainer: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._drainer is not None or self.state.limits.drain_timeout == 0:
            super().handle_exit(sig, frame)  # a second signal: shut down now
            return
        logger.info("draining: %d request(s) in flight", self.state.in_flight)
        self.state.draining = True
        self._drainer = threading.Thread(
            target=self._exit_when_drained, args=(sig, frame), name="rlenv-drain", daemon=True
        )
        self._drainer.start()

    def _exit_when_drained(self, sig: int, frame: Any) -> None:
        deadline = time.monotonic() + self.state.limits.drain_timeout
        while self.state.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        super().handle_exit(sig, frame)


def _bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (raises ``OSError``, where uvicorn would exit).

    It listens at once, so connections made before the app has started wait in the backlog
    instead of being refused.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def serve_in_thread(
    env_ids: Sequence[str] | FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: ServerLimits | None = None,
    keep_alive: int = 65,
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Run a server in a background thread for the ``with`` block; yields its base URL.

    For tests and notebooks: ``with serve_in_thread(["rlenv/Arithmetic-v0"]) as url: ...``.
    ``port=0`` (the default) picks a free port; ``keep_alive`` is how many seconds an idle
    connection stays open. Logging is left as it is configured. Leaving the block shuts the
    server down as SIGTERM would (sessions' environments are closed).
    """
    app = env_ids if isinstance(env_ids, FastAPI) else create_app(env_ids, limits)
    config = _config(
        app, host, port, log_config=None, timeout_graceful_shutdown=2, timeout_keep_alive=keep_alive
    )
    sock = _bind(host, port)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="rlenv-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the rlenv server did not start (see the log)")
        time.sleep(0.01)
    try:
        yield _base_url(*sock.getsockname()[:2])
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        with contextlib.suppress(OSError):
            sock.close()
