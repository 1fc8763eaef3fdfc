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

Only the standard library is used (``http.client``, one keep-alive connection per env), so the
client side needs nothing beyond ``rlenv`` itself.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import gymnasium as gym
from pydantic_core import to_jsonable_python

from rlenv.chat import Message, copy_messages, render_messages
from rlenv.env import Action, Observation
from rlenv.errors import (
    EpisodeFinishedError,
    InvalidActionError,
    ResetNeededError,
    RLEnvError,
    TaskFormatError,
    TaskNotFoundError,
    UnknownEnvError,
)
from rlenv.spaces import ActionSpace, ConversationSpace
from rlenv.verdict import Verdict

__all__ = ["RemoteEnv", "RemoteEnvError", "SessionNotFoundError"]


class RemoteEnvError(RLEnvError):
    """The server refused a request or could not be reached.

    ``status`` is the HTTP status (``None`` when no answer came), ``error`` the server's name
    for what went wrong (``"TooManySessions"``, ``"EnvNotServed"``...), ``detail`` its message.
    """

    def __init__(self, message: str, *, status: int | None = None, error: str = "", detail=None):
        super().__init__(message)
        self.status, self.error, self.detail = status, error, detail


class SessionNotFoundError(RemoteEnvError):
    """The server has no such session: it was closed, or expired after its idle time-out.

    Make a new :class:`RemoteEnv` (the server's ``session_ttl`` says how long it waits).
    """


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

# A kept-alive connection the server closed while idle fails with one of these on reuse.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _Client:
    """JSON over one keep-alive HTTP connection, reopened when the server closed it."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must look like http://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        connection = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self.connection = connection(parts.hostname, parts.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request; return the decoded JSON body of a 2xx, raise for anything else."""
        payload = None if body is None else json.dumps(body).encode("ascii")
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        url = self.prefix + path
        for attempt in (0, 1):
            reused = self.connection.sock is not None
            try:
                self.connection.request(method, url, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except _STALE as error:
                self.connection.close()
                # The server closes idle connections: retry once, on a fresh one. A request on
                # a fresh connection that fails was maybe received: never resend that.
                if reused and attempt == 0:
                    continue
                raise self._unreachable(method, url, error) from None
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                raise self._unreachable(method, url, error) from None
        if 200 <= response.status < 300:
            return json.loads(data) if data else None
        raise _error_from(method, url, response.status, data)

    def _unreachable(self, method: str, url: str, error: BaseException) -> RemoteEnvError:
        reason = "timed out" if isinstance(error, socket.timeout) else type(error).__name__
        return RemoteEnvError(f"{method} {self.base_url}{url} failed: {reason}: {error}")

    def close(self) -> None:
        self.connection.close()


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
    text = detail if isinstance(detail, str) else json.dumps(detail)
    message = f"{method} {url}: HTTP {status} {error or ''}: {text}".replace("  ", " ")
    return kind(message, status=status, error=error, detail=detail)


class RemoteEnv(gym.Env[Observation, Action]):
    """A served environment as a Gymnasium env: ``reset``, ``step``, ``close``, the same spaces.

    Args:
        base_url: The server, e.g. ``"http://127.0.0.1:8000"`` (a path prefix is kept).
        env_id: A registered id the server serves, e.g. ``"rlenv/Arithmetic-v0"``.
        timeout: Seconds to wait for any one answer (a code sandbox step can be slow).
        render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``"human"``.
        **kwargs: Constructor arguments for the environment, as for ``rlenv.make`` (JSON
            values; the server may refuse them).

    Creating the env opens a session on the server; :meth:`close` (or a ``with`` block) ends
    it, and an idle session is closed by the server after its ``session_ttl``. One RemoteEnv
    is one connection and, like any env, is not for concurrent use from several threads.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "render_fps": 1}  # noqa: RUF012

    def __init__(
        self,
        base_url: str,
        env_id: str,
        *,
        timeout: float = 300.0,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.env_id = env_id
        self._client = _Client(base_url, timeout)
        self.base_url = self._client.base_url
        self.session_id: str | None = None
        session = self._client.request(
            "POST", "/sessions", {"env_id": env_id, "kwargs": _jsonable(kwargs)}
        )
        self.session_id = session["session_id"]
        self.max_turns: int = session["max_turns"]
        self.max_reward: float = session["max_reward"]
        self.max_action_chars: int = session["max_action_chars"]
        self.session_ttl: float = session["session_ttl"]
        self.observation_space = ConversationSpace()
        self.action_space = ActionSpace(self.max_action_chars)
        self._messages: list[Message] = []
        self._rendered = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode on the server: the same ``seed`` poses the same task as locally."""
        super().reset(seed=seed)
        body: dict[str, Any] = {"seed": seed}
        if options is not None:
            body["options"] = _jsonable(options)
        result = self._client.request("POST", self._path("reset"), body)
        self._messages = result["observation"]
        self._rendered = 0
        self._print_new()
        return copy_messages(self._messages), result["info"]

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """One model turn: ``action`` is the completion text or an assistant message dict."""
        if isinstance(action, Mapping):
            action = _jsonable(dict(action))
        elif not isinstance(action, str):
            raise InvalidActionError(
                f"an action must be the model's text (str) or an assistant message dict, "
                f"not {type(action).__name__}"
            )
        result = self._client.request("POST", self._path("step"), {"action": action})
        info = result["info"]
        if isinstance(info.get("verdict"), dict):
            info["verdict"] = Verdict.model_validate(info["verdict"])
        self._messages = result["observation"]
        self._print_new()
        return (
            copy_messages(self._messages),
            float(result["reward"]),
            bool(result["terminated"]),
            bool(result["truncated"]),
            info,
        )

    @property
    def messages(self) -> list[Message]:
        """A copy of the conversation so far (the same as the last observation)."""
        return copy_messages(self._messages)

    def render(self) -> str | None:
        """``"ansi"``: the transcript as text. ``"human"``: messages are printed as they come."""
        if self.render_mode == "ansi":
            return render_messages(self._messages)
        return None

    def close(self) -> None:
        """End the session on the server (an already expired one is fine) and disconnect."""
        session_id, self.session_id = self.session_id, None
        if session_id is not None:
            try:
                self._client.request("DELETE", f"/sessions/{session_id}")
            except RemoteEnvError as error:  # expired, or the server is gone: nothing to end
                if not isinstance(error, SessionNotFoundError) and error.status is not None:
                    raise
        self._client.close()

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


def _jsonable(value: Any) -> Any:
    """Tasks and other pydantic models as plain JSON data."""
    return to_jsonable_python(value)
