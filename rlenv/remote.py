"""``RemoteEnv``: an environment served by ``rlenv serve``, used like ``rlenv.make(...)``.

>>> env = RemoteEnv("http://127.0.0.1:8000", "rlenv/Arithmetic-v0")  # doctest: +SKIP
>>> observation, info = env.reset(seed=0)  # doctest: +SKIP

Observations, rewards, ``terminated``/``truncated`` and ``info`` are what the served
:class:`~rlenv.TextEnv` returned, with ``info["verdict"]`` a :class:`~rlenv.Verdict` again, so a
loop written against ``rlenv.make`` runs unchanged. The caller mistakes a local env raises
(:class:`~rlenv.errors.ResetNeededError`, :class:`~rlenv.errors.EpisodeFinishedError`,
:class:`~rlenv.errors.InvalidActionError`, :class:`~rlenv.errors.TaskNotFoundError`...) are
raised here too; anything else the server or the network says is a :class:`RemoteEnvError`,
never a silent zero reward.

Faults are survived where that is safe (:class:`RetryPolicy`): every reset and step carries a
``step_id``, one more each time, so a request whose connection dropped is sent again and the
server answers it once (a replay, never a second step); a full (429) or draining (503) server is
retried after its ``Retry-After``, within a bound. When the episode cannot go on (the session
expired, the server restarted, a step failed for good), :class:`EpisodeLostError` says so and
names the cure, ``reset()``, which opens a new session if the old one is gone; it is never a
silent new episode. See ``docs/server.md``, "Faults".

Long episodes: against a server that offers it, each step asks only for the messages the client
lacks (the request's ``since``) and the observation is rebuilt here, equal to the in-process one;
so an episode of n turns moves O(n) bytes, not O(n²). ``delta=False`` asks for the whole
conversation at every step, as older servers always send it.

Only the standard library is used (``http.client``, one keep-alive connection per env), so the
client side needs nothing beyond ``rlenv`` itself.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gymnasium as gym
from pydantic_core import to_jsonable_python

from rlenv.chat import Message, freeze_json, render_messages
from rlenv.env import Action, Observation
from rlenv.errors import (
    EpisodeFinishedError,
    InvalidActionError,
    ResetNeededError,
    RLEnvError,
    ServiceError,
    TaskFormatError,
    TaskNotFoundError,
    UnknownEnvError,
)
from rlenv.spaces import ActionSpace, ConversationSpace
from rlenv.verdict import Verdict

__all__ = [
    "NO_RETRIES",
    "EpisodeLostError",
    "RemoteEnv",
    "RemoteEnvError",
    "RetryPolicy",
    "ServerBusyError",
    "ServerUnreachableError",
    "SessionNotFoundError",
]

INSTANCE_HEADER = "x-rlenv-instance"  # rlenv.server.INSTANCE_HEADER (the client needs no server)


class RemoteEnvError(RLEnvError):
    """The server refused a request or could not be reached.

    ``status`` is the HTTP status (``None`` when no answer came), ``error`` the server's name
    for what went wrong (``"TooManySessions"``, ``"EnvNotServed"``...), ``detail`` its message.
    """

    def __init__(self, message: str, *, status: int | None = None, error: str = "", detail=None):
        super().__init__(message)
        self.status, self.error, self.detail = status, error, detail


class EpisodeLostError(RemoteEnvError, ServiceError):
    """The episode cannot go on: its session expired or was lost, the server restarted, or a
    request failed for good after its retries (then the server's state is unknown).

    Call ``reset()`` to start a new episode (:class:`RemoteEnv` opens a new session when the old
    one is gone). A trainer records the lost episode as unscored, never as reward 0: the rollout
    engine does (``rlenv.rollout.rollout``).
    """


class SessionNotFoundError(EpisodeLostError):
    """The server has no such session: it was closed, expired after its idle time-out, or the
    server restarted (``error == "ServerRestarted"``). ``reset()`` opens a new one."""


class ServerBusyError(RemoteEnvError, ServiceError):
    """The server stayed full (429) or unavailable (503) for the whole :class:`RetryPolicy`."""


class ServerUnreachableError(RemoteEnvError, ServiceError):
    """No answer came for the whole :class:`RetryPolicy` (the connection was refused, dropped
    or timed out), or a gateway in front of the server could not reach it (502, 504)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`RemoteEnv` retries a request that failed for a passing reason.

    Retried: a dropped or refused connection, a time-out, an answer cut short (the request
    carries its ``step_id``, so the server answers it once), 429 and 503 (after ``Retry-After``,
    at least). Not retried: any other answer (4xx, 500). Waits grow as ``backoff * 2**k``
    (with jitter, at most ``max_backoff``) and stop after ``attempts`` tries or ``budget``
    seconds, whichever comes first; then the last failure is raised.
    """

    attempts: int = 8
    backoff: float = 0.05
    max_backoff: float = 2.0
    budget: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < 0 or self.budget < 0:
            raise ValueError(f"bad RetryPolicy {self}: attempts >= 1, the rest >= 0")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        wait = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
        return max(wait, retry_after or 0.0)


NO_RETRIES = RetryPolicy(attempts=1, budget=0.0)
"""Fail at once, as RemoteEnv did before retries existed."""


# The caller mistakes a local TextEnv raises, re-raised as themselves.
_LOCAL_ERRORS: dict[str, type[RLEnvError]] = {
    cls.__name__: cls
    for cls in (
        ResetNeededError,
        EpisodeFinishedError,
        InvalidActionError,
        TaskNotFoundError,
        TaskFormatError,
        UnknownEnvError,
    )
}

# Statuses that say "not now": retried after their Retry-After, within the RetryPolicy.
_RETRY_STATUSES = frozenset({429, 503})
# A proxy's "the server behind me did not answer": not retried, but a service failure.
_GATEWAY_STATUSES = frozenset({502, 504})


class _Client:
    """JSON over one keep-alive HTTP connection, reopened after a failure; retried as its
    :class:`RetryPolicy` says. ``instance`` is the server instance seen first: an answer from
    another means the server restarted (:meth:`request` raises :class:`SessionNotFoundError`
    when ``session`` is set)."""

    def __init__(self, base_url: str, timeout: float, retry: RetryPolicy = RetryPolicy()) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must look like http://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        connection = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self.connection = connection(parts.hostname, parts.port, timeout=timeout)
        self.retry = retry
        self.instance: str | None = None

    def request(
        self, method: str, path: str, body: Any = None, *, session: bool = False, retry: bool = True
    ) -> Any:
        """Send a request; return the decoded JSON body of a 2xx, raise for anything else.

        Every request may be sent again (see :class:`RetryPolicy`): resets and steps carry a
        ``step_id`` the server answers once, and a retried ``POST /sessions`` at worst leaves
        an unused session for the server to expire. ``session``: the path names a session, so
        an answer from another server instance means it is gone. ``retry=False``: one try.
        """
        payload = None if body is None else json.dumps(body).encode("ascii")
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        url = self.prefix + path
        started = time.monotonic()
        policy = self.retry if retry else NO_RETRIES
        attempt = 0
        while True:
            error: RLEnvError
            retry_after = None
            try:
                self.connection.request(method, url, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if not (
                    response.getheader("content-length") or response.getheader("transfer-encoding")
                ):
                    # Cut short: http.client takes a connection closed inside the headers for
                    # their end, then reads an empty body. Every answer says how long it is.
                    raise http.client.IncompleteRead(data)
            except (OSError, http.client.HTTPException) as failure:
                # Dropped, refused, timed out, cut short: the connection is of no more use.
                self.connection.close()
                error = self._unreachable(method, url, failure)
            else:
                restarted = self._check_instance(response.getheader(INSTANCE_HEADER))
                if restarted and session:
                    raise SessionNotFoundError(
                        f"{method} {url}: the server at {self.base_url} restarted (instance "
                        f"{restarted}), so this session and its episode are lost: call reset() "
                        "to start a new episode on a new session",
                        status=response.status,
                        error="ServerRestarted",
                    )
                if 200 <= response.status < 300:
                    return json.loads(data) if data else None
                error = _error_from(method, url, response.status, data)
                if response.status not in _RETRY_STATUSES:
                    raise error
                retry_after = _seconds(response.getheader("retry-after"))
            wait = policy.delay(attempt, retry_after)
            attempt += 1
            spent = time.monotonic() - started
            if attempt >= policy.attempts or spent + wait > policy.budget:
                if isinstance(error, RemoteEnvError) and error.status in _RETRY_STATUSES:
                    raise ServerBusyError(
                        f"{error} (still so after {attempt} tries in {spent:.1f} s; the "
                        "RemoteEnv's RetryPolicy bounds the wait)",
                        status=error.status,
                        error=error.error,
                        detail=error.detail,
                    ) from None
                raise error
            time.sleep(wait)

    def _check_instance(self, instance: str | None) -> str | None:
        """``"OLD -> NEW"`` when ``instance`` is not the server instance seen first."""
        if instance is None:
            return None
        if self.instance is None:
            self.instance = instance
            return None
        return None if instance == self.instance else f"{self.instance} -> {instance}"

    def _unreachable(self, method: str, url: str, error: BaseException) -> RemoteEnvError:
        reason = "timed out" if isinstance(error, socket.timeout) else type(error).__name__
        return ServerUnreachableError(f"{method} {self.base_url}{url} failed: {reason}: {error}")

    def close(self) -> None:
        self.connection.close()


def _seconds(retry_after: str | None) -> float | None:
    try:
        return min(float(retry_after), 60.0) if retry_after else None
    except ValueError:  # an HTTP date: not something rlenv's server sends
        return None


def _error_from(method: str, url: str, status: int, data: bytes) -> RLEnvError:
    try:
        body = json.loads(data)
        error, detail = str(body.get("error", "")), body.get("detail", body)
    except (ValueError, AttributeError):
        error, detail = "", data[:500].decode("utf-8", "replace")
    local = _LOCAL_ERRORS.get(error)
    if local is not None and isinstance(detail, str):
        return local(detail)
    kind = SessionNotFoundError if error == "SessionNotFound" else RemoteEnvError
    if status in _GATEWAY_STATUSES:
        kind = ServerUnreachableError
    text = detail if isinstance(detail, str) else json.dumps(detail)
    message = f"{method} {url}: HTTP {status} {error or ''}: {text}".replace("  ", " ")
    if kind is SessionNotFoundError:
        message += "; the episode is lost: call reset() to start a new one on a new session"
    return kind(message, status=status, error=error, detail=detail)


class RemoteEnv(gym.Env[Observation, Action]):
    """A served environment as a Gymnasium env: ``reset``, ``step``, ``close``, the same spaces.

    Args:
        base_url: The server, e.g. ``"http://127.0.0.1:8000"`` (a path prefix is kept).
        env_id: A registered id the server serves, e.g. ``"rlenv/Arithmetic-v0"``.
        timeout: Seconds to wait for any one answer (a code sandbox step can be slow); keep it
            above the server's ``--step-timeout``, so a hung step comes back as its answer.
        retry_policy: How failed requests are retried (:class:`RetryPolicy`; ``NO_RETRIES``
            fails at once).
        delta: Ask each step for the new messages only (the observation is rebuilt here) when
            the server offers it (``rlenv serve`` since this option; older servers get the
            usual requests). False: the whole conversation in every answer.
        render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``"human"``.
        **kwargs: Constructor arguments for the environment, as for ``rlenv.make`` (JSON
            values; the server may refuse them).

    Creating the env opens a session on the server; :meth:`close` (or a ``with`` block) ends
    it, and an idle session is closed by the server after its ``session_ttl``. One RemoteEnv
    is one connection and, like any env, is not for concurrent use from several threads.

    When a step cannot be answered for good (the session expired, the server restarted or
    stayed unreachable), :meth:`step` raises :class:`EpisodeLostError` and the next call must
    be :meth:`reset`, which opens a new session if the old one is gone.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "render_fps": 1}  # noqa: RUF012

    def __init__(
        self,
        base_url: str,
        env_id: str,
        *,
        timeout: float = 300.0,
        retry_policy: RetryPolicy | None = None,
        delta: bool = True,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.env_id = env_id
        self._client = _Client(base_url, timeout, retry_policy or RetryPolicy())
        self.base_url = self._client.base_url
        self.session_id: str | None = None
        self._kwargs = _jsonable(kwargs)
        self._want_delta = delta
        self._open_session()
        self.observation_space = ConversationSpace()
        self.action_space = ActionSpace(self.max_action_chars)
        self._messages: list[Message] = []
        self._rendered = 0

    def _open_session(self) -> None:
        self._client.instance = None  # a new session may be on a restarted server
        session = self._client.request(
            "POST", "/sessions", {"env_id": self.env_id, "kwargs": self._kwargs}
        )
        self.session_id = session["session_id"]
        self.max_turns: int = session["max_turns"]
        self.max_reward: float = session["max_reward"]
        self.max_action_chars: int = session["max_action_chars"]
        self.session_ttl: float = session["session_ttl"]
        self._delta = self._want_delta and session.get("delta") is True
        self._step_id = 0  # the next request's step_id: one more at each reset and step
        self._lost = ""  # why the episode is lost (then only reset() may follow)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode on the server: the same ``seed`` poses the same task as locally."""
        super().reset(seed=seed)
        body: dict[str, Any] = {"seed": seed}
        if options is not None:
            body["options"] = _jsonable(options)
        self._path("reset")  # raises when closed
        try:
            result = self._send("reset", body)
        except SessionNotFoundError:  # expired, or the server restarted: a new session
            self._open_session()
            result = self._send("reset", body)
        self._lost = ""
        self._messages = [freeze_json(message) for message in result["observation"]]
        self._rendered = 0
        self._print_new()
        return list(self._messages), result["info"]

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """One model turn: ``action`` is the completion text or an assistant message dict."""
        if isinstance(action, Mapping):
            action = _jsonable(dict(action))
        elif not isinstance(action, str):
            raise InvalidActionError(
                f"an action must be the model's text (str) or an assistant message dict, "
                f"not {type(action).__name__}"
            )
        if self._lost:
            raise EpisodeLostError(f"{self._lost}; call reset() before stepping again")
        body: dict[str, Any] = {"action": action}
        if self._delta:
            body["since"] = len(self._messages)
        try:
            result = self._send("step", body)
        except (RemoteEnvError, *_LOCAL_ERRORS.values()) as error:
            if isinstance(error, RemoteEnvError) and error.status not in (400, 404, 409, 422):
                # Failed for good after its retries: whether the server stepped is unknown.
                self._lost = f"the episode is lost: {error}"
                raise EpisodeLostError(
                    f"{self._lost}; call reset() to start a new one",
                    status=error.status,
                    error=error.error,
                    detail=error.detail,
                ) from error
            if isinstance(error, SessionNotFoundError):
                self._lost = str(error)
            raise
        info = result["info"]
        if isinstance(info.get("verdict"), dict):
            info["verdict"] = Verdict.model_validate(info["verdict"])
        self._messages = self._rebuilt(result)
        self._print_new()
        return (
            list(self._messages),
            float(result["reward"]),
            bool(result["terminated"]),
            bool(result["truncated"]),
            info,
        )

    def _rebuilt(self, result: dict[str, Any]) -> list[Message]:
        """The conversation after a step: the answer's observation, after the messages this
        client already holds when it starts at ``observation_from`` (a replayed answer names
        the same start, so it never adds them twice)."""
        new = [freeze_json(message) for message in result["observation"]]
        start = result.get("observation_from")
        if start is None:
            return new
        if not isinstance(start, int) or not 0 <= start <= len(self._messages):
            self._lost = "the server's answer does not fit this client's conversation"
            raise EpisodeLostError(
                f"{self._lost} (observation_from={start!r}, {len(self._messages)} messages "
                "held); call reset() to start a new episode"
            )
        if start == len(self._messages):  # the usual case: no copy of what is held
            self._messages.extend(new)
            return self._messages
        return self._messages[:start] + new

    @property
    def messages(self) -> list[Message]:
        """The conversation so far (the same as the last observation): read-only messages
        (:class:`~rlenv.chat.FrozenDict`), as an in-process env gives them."""
        return list(self._messages)

    def render(self) -> str | None:
        """``"ansi"``: the transcript as text. ``"human"``: messages are printed as they come."""
        if self.render_mode == "ansi":
            return render_messages(self._messages)
        return None

    def close(self) -> None:
        """End the session on the server (an already expired one is fine) and disconnect."""
        session_id, self.session_id = self.session_id, None
        try:
            if session_id is not None:
                # One try: a session not closed expires on its own (session_ttl).
                self._client.request("DELETE", f"/sessions/{session_id}", retry=False)
        except (SessionNotFoundError, ServerUnreachableError):
            pass  # expired, or the server is gone (no answer, or a gateway's 502/504)
        finally:
            self._client.close()

    def _send(self, verb: str, body: dict[str, Any]) -> Any:
        """A reset or step with the session's next ``step_id`` (kept across its retries)."""
        body["step_id"] = self._step_id
        self._step_id += 1
        return self._client.request("POST", self._path(verb), body, session=True)

    def _path(self, verb: str) -> str:
        if self.session_id is None:
            raise RemoteEnvError("this RemoteEnv is closed; make a new one")
        return f"/sessions/{self.session_id}/{verb}"

    def _print_new(self) -> None:
        if self.render_mode == "human":
            print(render_messages(self._messages[self._rendered :]), end="\n\n", flush=True)
            self._rendered = len(self._messages)

    def __repr__(self) -> str:
        return f"<RemoteEnv {self.env_id} at {self.base_url}>"

    def _not_copied(self, *args: Any) -> Any:
        # A copy would be a second client of this session: a shallow one shares the connection
        # and the conversation, and either's steps reuse the other's step_ids (409
        # StepIdReused). Make another RemoteEnv, which opens its own session.
        raise TypeError(
            "a RemoteEnv is a client of one session on its server and cannot be copied or "
            "pickled: make another RemoteEnv(base_url, env_id, ...) (it opens its own session)"
        )

    __copy__ = __deepcopy__ = __reduce_ex__ = _not_copied


def _jsonable(value: Any) -> Any:
    """Tasks and other pydantic models as plain JSON data."""
    return to_jsonable_python(value)
