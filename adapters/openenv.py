"""OpenEnv both ways, with the real ``openenv-core`` (0.3; ``pip install 'rlenv[openenv]'``).

**Serve** any rlenv environment as an OpenEnv environment, with OpenEnv's own FastAPI app
(``openenv.core.env_server.create_app``: ``/ws`` sessions, stateless ``/reset`` and ``/step``,
``/state``, ``/schema``, ``/health``, ``/metadata``), so OpenEnv's ``EnvClient`` (and what
drives it: TRL's OpenEnv examples) can play it::

    from rlenv.adapters.openenv import serve
    serve("rlenv/Arithmetic-v0", host="127.0.0.1", port=8000)

- action :class:`RlenvAction`: ``{"text": completion}`` or ``{"message": assistant_dict}``;
- observation :class:`RlenvObservation`: ``messages`` (the whole conversation),
  ``new_messages``, ``verdict`` (rlenv's Verdict as JSON), ``task_id``, ``turn``,
  ``terminated``, ``truncated``, ``tools``, ``info``, with OpenEnv's ``reward`` and ``done``
  (``terminated or truncated``);
- state :class:`RlenvState`: ``episode_id``, ``step_count``, ``task_id``, ``env_id`` and the
  limits (``max_turns``, ``max_reward``, ``max_action_chars``).

**Wrap** an OpenEnv environment (a running server, through OpenEnv's ``GenericEnvClient``, or
an in-process ``Environment``) as an rlenv :class:`~rlenv.TextEnv`, so ``check_env``,
``rlenv eval`` and the bundled trainer run on it: :class:`OpenEnvTextEnv`, or
:func:`openenv_env` (``"openenv+http://..."`` URLs too).

See ``docs/adapters/openenv.md``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import re
import typing
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from rlenv.chat import (
    AssistantMessage,
    Message,
    copy_json,
    is_valid_message,
    message_text,
    validate_assistant_message,
)
from rlenv.env import TextEnv, Turn
from rlenv.errors import RLEnvError, ServiceError
from rlenv.tasks import GeneratedTasks, Task
from rlenv.verdict import Verdict

try:
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
except ImportError as _error:  # pragma: no cover - the extra is missing
    raise ImportError(
        f"rlenv.adapters.openenv needs openenv-core ({_error}): pip install 'rlenv[openenv]'"
    ) from _error

__all__ = [
    "OpenEnvError",
    "OpenEnvServerError",
    "OpenEnvTextEnv",
    "RlenvAction",
    "RlenvEnvironment",
    "RlenvObservation",
    "RlenvState",
    "check_targets",
    "create_app",
    "openenv_env",
    "serve",
]

OPENENV_TESTED_VERSION = "0.3.0"


class OpenEnvError(RLEnvError, RuntimeError):
    """An OpenEnv environment or server could not be reached or used."""


class OpenEnvServerError(OpenEnvError, ServiceError):
    """The OpenEnv server could not be reached or stopped answering (a service failure: the
    rollout engine records the episode as unscored and goes on)."""


# ====================================================================== rlenv -> OpenEnv


class RlenvAction(Action):
    """The model's turn: its completion text, or an assistant message dict (tool calls parsed)."""

    text: str | None = Field(default=None, description="The model's completion text.")
    message: dict[str, Any] | None = Field(
        default=None,
        description="An assistant message dict (role, content, tool_calls), instead of text.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> RlenvAction:
        if (self.text is None) == (self.message is None):
            # A PydanticCustomError, not a ValueError: OpenEnv's server sends e.errors() as
            # JSON, and a ValueError in their context cannot be (the session would be lost).
            raise PydanticCustomError(
                "text_or_message", "give exactly one of 'text' (a string) or 'message' (a dict)"
            )
        return self


class RlenvObservation(Observation):
    """The conversation so far and why the last turn earned its reward."""

    messages: list[dict[str, Any]] = Field(default_factory=list, description="The conversation.")
    new_messages: list[dict[str, Any]] = Field(
        default_factory=list, description="The messages the last reset or step added."
    )
    tools: list[dict[str, Any]] = Field(default_factory=list, description="OpenAI tool schemas.")
    task_id: str | None = Field(default=None, description="Pass back to reset to replay.")
    turn: int = Field(default=0, description="Model turns so far.")
    terminated: bool = Field(default=False, description="The task is over.")
    truncated: bool = Field(default=False, description="A limit was hit or the env failed.")
    verdict: dict[str, Any] | None = Field(
        default=None, description="rlenv's Verdict of the last step (reward, reason, error...)."
    )
    info: dict[str, Any] = Field(default_factory=dict, description="Other info keys (JSON).")


class RlenvState(State):
    """Episode id, step count, task id and the environment's limits."""

    env_id: str | None = None
    task_id: str | None = None
    max_turns: int = 1
    max_reward: float = 1.0
    min_reward: float = 0.0
    max_action_chars: int = 200_000
    done: bool = True


_INFO_KEYS = ("verdict", "new_messages", "tools", "task_id", "turn")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


class RlenvEnvironment(Environment[RlenvAction, RlenvObservation, RlenvState]):
    """An rlenv :class:`~rlenv.TextEnv` as an OpenEnv ``Environment`` (one per session).

    Args:
        env: A registered id, a ``TextEnv``, or a function making one.
        expose_gold: Put the env's ``gold_action()`` in :attr:`state` (for conformance tests
            over the wire; never for training: whoever reads the state reads the answer).
        **make_kwargs: Passed to ``rlenv.make`` with an id.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # one TextEnv per session, nothing shared

    def __init__(
        self,
        env: str | TextEnv | Callable[[], TextEnv],
        *,
        expose_gold: bool = False,
        **make_kwargs: Any,
    ) -> None:
        super().__init__()
        if isinstance(env, str):
            import rlenv

            self.env: TextEnv = rlenv.make(env, **make_kwargs).unwrapped
            self.env_id: str | None = env
        else:
            self.env = env if isinstance(env, TextEnv) else env()
            self.env_id = self.env.spec.id if self.env.spec is not None else None
        self.expose_gold = expose_gold
        self._episode_id: str | None = None
        self._steps = 0

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        **kwargs: Any,
    ) -> RlenvObservation:
        """``TextEnv.reset(seed=seed)``, or the task ``task_id`` (rlenv's replay)."""
        if kwargs:
            raise ValueError(
                f"unknown reset parameter(s) {sorted(kwargs)}; supported: seed, episode_id, task_id"
            )
        options = {"task_id": task_id} if task_id is not None else None
        observation, info = self.env.reset(seed=seed, options=options)
        self._episode_id = episode_id or uuid.uuid4().hex
        self._steps = 0
        return RlenvObservation(
            messages=copy_json(observation),
            new_messages=copy_json(info["new_messages"]),
            tools=copy_json(info["tools"]),
            task_id=info["task_id"],
            metadata={"task_id": info["task_id"], "episode_id": self._episode_id},
        )

    def step(
        self, action: RlenvAction, timeout_s: float | None = None, **kwargs: Any
    ) -> RlenvObservation:
        """One model turn. Model output never raises: junk earns the env's reward (0) and
        a verdict saying why; a dict that is not an assistant message earns 0 with the reason.
        Stepping before ``reset`` or after the end raises (a client bug), which OpenEnv's
        server answers as an ``EXECUTION_ERROR``."""
        payload: Any = action.text if action.text is not None else action.message
        if isinstance(payload, Mapping) and not self.env.done:
            # (before reset or after the end, env.step raises the error naming reset(), as it
            # does for text: a refusal here would answer done=False for a finished episode)
            try:
                validate_assistant_message(dict(payload))
            except ValidationError as error:
                return self._refused(f"invalid action: not an assistant message: {error}")
        observation, reward, terminated, truncated, info = self.env.step(payload)
        self._steps += 1
        verdict = info["verdict"].model_dump(mode="json")
        extra = {k: _jsonable(v) for k, v in info.items() if k not in _INFO_KEYS}
        return RlenvObservation(
            messages=copy_json(observation),
            new_messages=copy_json(info["new_messages"]),
            tools=copy_json(info["tools"]),
            task_id=info["task_id"],
            turn=info["turn"],
            terminated=terminated,
            truncated=truncated,
            verdict=verdict,
            info=extra,
            reward=float(reward),
            done=terminated or truncated,
            metadata={"verdict": verdict, "task_id": info["task_id"], "turn": info["turn"]},
        )

    def _refused(self, error: str) -> RlenvObservation:
        verdict = Verdict(reward=self.env.min_reward, error=error).model_dump(mode="json")
        messages = copy_json(self.env.messages)
        return RlenvObservation(
            messages=messages,
            task_id=self.env.task.id,
            turn=self.env.turn,
            verdict=verdict,
            reward=self.env.min_reward,
            done=False,
            metadata={"verdict": verdict},
        )

    @property
    def state(self) -> RlenvState:
        env = self.env
        extra = {}
        if self.expose_gold and not env.done:
            extra["gold_action"] = copy_json(env.gold_action())
        return RlenvState(
            episode_id=self._episode_id,
            step_count=self._steps,
            env_id=self.env_id,
            task_id=env._task.id if env._task is not None else None,
            max_turns=env.max_turns,
            max_reward=env.max_reward,
            min_reward=env.min_reward,
            max_action_chars=env.max_action_chars,
            done=env.done,
            **extra,
        )

    def get_metadata(self) -> EnvironmentMetadata:
        from rlenv import __version__

        doc = inspect.getdoc(type(self.env)) or ""
        return EnvironmentMetadata(
            name=self.env_id or type(self.env).__name__,
            description=doc.split("\n\n")[0] or f"rlenv environment {self.env_id}",
            version=f"rlenv {__version__}",
        )

    def close(self) -> None:
        self.env.close()


def create_app(
    env_id: str,
    *,
    max_concurrent_envs: int = 64,
    session_timeout: float | None = None,
    expose_gold: bool = False,
    **make_kwargs: Any,
) -> Any:
    """OpenEnv's FastAPI app serving ``env_id``: each WebSocket session (``/ws``, what
    ``EnvClient`` uses) gets its own environment, up to ``max_concurrent_envs``; idle sessions
    are closed after ``session_timeout`` seconds (None: never). ``make_kwargs`` go to
    ``rlenv.make``. The id is checked (made once) before the app is built."""
    from functools import partial

    from openenv.core.env_server.http_server import create_app as openenv_create_app
    from openenv.core.env_server.types import ConcurrencyConfig

    RlenvEnvironment(env_id, **make_kwargs).close()  # an unknown id or bad kwargs fail here
    factory = partial(RlenvEnvironment, env_id, expose_gold=expose_gold, **make_kwargs)
    return openenv_create_app(
        factory,
        RlenvAction,
        RlenvObservation,
        env_name=env_id,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_concurrent_envs, session_timeout=session_timeout
        ),
    )


def serve(env_id: str, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Serve ``env_id`` as an OpenEnv environment with uvicorn until interrupted;
    ``kwargs`` go to :func:`create_app`."""
    import uvicorn

    uvicorn.run(create_app(env_id, **kwargs), host=host, port=port)


# ====================================================================== OpenEnv -> rlenv

ActionFn = Callable[[str], "Mapping[str, Any] | Action"]
ObservationFn = Callable[[dict[str, Any]], "str | list[Message]"]

_TEXT_FIELDS = ("text", "message", "content", "prompt", "action", "command", "code", "answer")
_WS_CODE = re.compile(r"\(code: ([A-Za-z_.]+)\)\s*$")
_NO_SEED = "(posed by the OpenEnv environment at reset)"


class _InvalidAction(Exception):
    """The OpenEnv environment refused the action's shape (a validation error)."""


def _is_type(prop: Mapping[str, Any], kind: str) -> bool:
    return prop.get("type") == kind or any(
        isinstance(p, Mapping) and p.get("type") == kind for p in prop.get("anyOf", ())
    )


def _text_field(schema: Mapping[str, Any]) -> str | None:
    """The action field a text completion goes in, read from the action's JSON schema."""
    props = {k: v for k, v in schema.get("properties", {}).items() if k != "metadata"}
    strings = [k for k, p in props.items() if _is_type(p, "string")]
    required = [k for k in schema.get("required", ()) if k in props]
    if any(k not in strings for k in required) or len(required) > 1:
        return None  # a required field that text cannot fill: needs action_fn
    if required:
        return required[0]
    if len(strings) == 1:
        return strings[0]
    return next((name for name in _TEXT_FIELDS if name in strings), None)


def _split_observation(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any, bool]:
    observation = dict(payload)
    reward = observation.pop("reward", None)
    done = bool(observation.pop("done", False))
    return observation, reward, done


class _InProcess:
    """An ``openenv`` ``Environment`` instance, called directly."""

    def __init__(self, env: Any, action_cls: type | None, owned: bool) -> None:
        self.env = env
        self.owned = owned
        self.action_cls = action_cls or self._action_cls(env)

    @staticmethod
    def _action_cls(env: Any) -> type:
        try:
            hints = typing.get_type_hints(type(env).step)
        except Exception:
            hints = {}
        hinted = hints.get("action")
        if isinstance(hinted, type) and issubclass(hinted, Action) and hinted is not Action:
            return hinted
        for base in getattr(type(env), "__orig_bases__", ()):
            for arg in typing.get_args(base):
                if isinstance(arg, type) and issubclass(arg, Action) and arg is not Action:
                    return arg
        raise OpenEnvError(
            f"cannot tell the action type of {type(env).__name__}: pass action_cls=..."
        )

    def action_schema(self) -> dict[str, Any]:
        return self.action_cls.model_json_schema()

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        params = inspect.signature(method).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params}
        return method(**kwargs)

    def _dump(self, observation: Any) -> tuple[dict[str, Any], Any, bool]:
        if not isinstance(observation, Observation):
            raise OpenEnvError(f"the environment returned {type(observation).__name__}")
        return _split_observation(observation.model_dump(mode="json"))

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], Any, bool]:
        return self._dump(self._call(self.env.reset, **kwargs))

    def step(self, action: Any) -> tuple[dict[str, Any], Any, bool]:
        if not isinstance(action, Action):
            try:
                action = self.action_cls.model_validate(dict(action))
            except ValidationError as error:
                raise _InvalidAction(str(error)) from None
        return self._dump(self.env.step(action))

    def state(self) -> dict[str, Any]:
        state = self.env.state
        return state.model_dump(mode="json") if hasattr(state, "model_dump") else dict(state)

    def close(self) -> None:
        if self.owned:
            self.env.close()


class _Remote:
    """A running OpenEnv server, through OpenEnv's own ``GenericEnvClient`` (WebSocket)."""

    def __init__(self, url: str, connect_timeout_s: float, message_timeout_s: float) -> None:
        self.url = url
        self.http_url = re.sub(r"^ws(s?)://", r"http\1://", url).rstrip("/")
        self.timeouts = (connect_timeout_s, message_timeout_s)
        self.client: Any = None
        self.stale = True

    def _connect(self) -> None:
        from openenv.core import GenericEnvClient

        self.close()
        connect, message = self.timeouts
        client = GenericEnvClient(
            base_url=self.http_url, connect_timeout_s=connect, message_timeout_s=message
        ).sync()
        try:
            client.connect()
        except Exception as error:
            client.close()
            raise OpenEnvServerError(
                f"cannot reach the OpenEnv server at {self.url}: {error}"
            ) from None
        self.client, self.stale = client, False

    def _run(self, call: Callable[[], Any]) -> Any:
        if self.stale or self.client is None:
            self._connect()
        try:
            return call()
        except RuntimeError as error:
            match = _WS_CODE.search(str(error))
            if match and match.group(1).endswith("VALIDATION_ERROR"):
                raise _InvalidAction(str(error)) from None
            if match is None:  # not a server answer: the connection is unusable
                self.stale = True
            raise
        except BaseException:
            self.stale = True  # a timeout leaves an answer in flight: never reuse the socket
            raise

    def action_schema(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"{self.http_url}/schema", timeout=10) as answer:
                return json.load(answer)["action"]
        except urllib.error.HTTPError as error:  # the server answered: not a service fault
            raise OpenEnvError(
                f"cannot read the action schema from {self.http_url}/schema ({error}); "
                "pass action_fn=..."
            ) from None
        except OSError as error:  # refused, unreachable, timed out (URLError is an OSError)
            reason = getattr(error, "reason", error)
            raise OpenEnvServerError(
                f"cannot reach the OpenEnv server at {self.http_url}: {reason}"
            ) from None
        except Exception as error:
            raise OpenEnvError(
                f"cannot read the action schema from {self.http_url}/schema ({error}); "
                "pass action_fn=..."
            ) from None

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], Any, bool]:
        result = self._run(lambda: self.client.reset(**kwargs))
        return dict(result.observation), result.reward, bool(result.done)

    def step(self, action: Any) -> tuple[dict[str, Any], Any, bool]:
        if isinstance(action, Action):
            action = action.model_dump(mode="json")
        result = self._run(lambda: self.client.step(dict(action)))
        return dict(result.observation), result.reward, bool(result.done)

    def state(self) -> dict[str, Any]:
        return dict(self._run(lambda: self.client.state()) or {})

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                client.close()


class OpenEnvTextEnv(TextEnv):
    """An OpenEnv environment as an rlenv :class:`~rlenv.TextEnv`.

    Args:
        target: The URL of a running OpenEnv server (``http://``, ``ws://``, or with an
            ``openenv+`` prefix), an OpenEnv ``Environment`` instance, or a function making one.
        action_fn: ``text -> action`` (a dict of the action's fields, or an ``Action``), for
            environments whose action is not text. It may raise on text it cannot read: that
            turn earns 0 with the reason and the model is told (the episode goes on). Default:
            the text goes in the action's text field, read from its schema (``message`` for
            OpenEnv's echo env, ``text`` for an rlenv env served by :func:`create_app`).
        observation_fn: ``observation dict -> text or messages`` (what the model is shown).
            Default: an rlenv-served env's messages as they are; a ``messages`` field of chat
            messages; the observation's one text field; else its fields as JSON.
        action_cls: The in-process environment's ``Action`` class, when it cannot be read from
            the type hints of its ``step``.
        max_turns, max_reward, min_reward, max_action_chars: rlenv's limits; an rlenv env
            served by :func:`create_app` advertises its own in its state, used by default.
            Otherwise ``max_turns=1``: set it for multi-step environments.
        message_timeout_s, connect_timeout_s: For a server: how long one answer / connecting
            may take. A server that fails, times out or drops the connection ends the episode
            truncated with reward 0 and an *unscored* verdict (trainers leave it out); the next
            ``reset`` reconnects.
        **kwargs: ``TextEnv`` options (``system_prompt``, ``render_mode``...).

    Tasks: each reset draws an OpenEnv seed from the env's generator (task ids
    ``"openenv-seed-N"``; the same seed or id resets the OpenEnv environment with the same seed);
    ``tasks=`` with ``metadata={"openenv_reset": {...}}`` passes other reset parameters (such
    as ``task_id`` for an rlenv-served env).
    """

    def __init__(
        self,
        target: str | Any,
        *,
        action_fn: ActionFn | None = None,
        observation_fn: ObservationFn | None = None,
        action_cls: type | None = None,
        max_turns: int | None = None,
        max_reward: float | None = None,
        min_reward: float | None = None,
        max_action_chars: int | None = None,
        message_timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        **kwargs: Any,
    ) -> None:
        if isinstance(target, str):
            url = target.removeprefix("openenv+")
            if not re.match(r"^(https?|wss?)://", url):
                raise ValueError(f"not an OpenEnv server URL: {target!r}")
            self._backend: Any = _Remote(url, connect_timeout_s, message_timeout_s)
            self.target_name = url
        elif isinstance(target, Environment):
            self._backend = _InProcess(target, action_cls, owned=False)
            self.target_name = type(target).__name__
        elif callable(target):
            made = target()
            if not isinstance(made, Environment):
                raise TypeError(
                    f"target() made a {type(made).__name__}, not an OpenEnv Environment"
                )
            self._backend = _InProcess(made, action_cls, owned=True)
            self.target_name = type(made).__name__
        else:
            raise TypeError(
                "target must be an OpenEnv server URL, an openenv Environment or a function "
                f"making one, not {type(target).__name__}"
            )
        try:
            self.action_fn = action_fn
            self.observation_fn = observation_fn
            self._text_field: str | None = None
            self._message_field = False
            if action_fn is None:
                schema = self._backend.action_schema()
                self._text_field = _text_field(schema)
                if self._text_field is None:
                    raise OpenEnvError(
                        f"the action of {self.target_name} has no text field to put the model's "
                        f"text in (schema properties: {sorted(schema.get('properties', {}))}); "
                        "pass action_fn=text -> action"
                    )
                message_prop = schema.get("properties", {}).get("message", {})
                self._message_field = self._text_field != "message" and _is_type(
                    message_prop, "object"
                )
            advertised = self._advertised()
            self.rlenv_served = bool(advertised)
            for name, value in (
                ("max_reward", max_reward),
                ("min_reward", min_reward),
            ):
                value = value if value is not None else advertised.get(name)
                if value is not None:
                    setattr(self, name, float(value))
            max_turns = max_turns if max_turns is not None else advertised.get("max_turns")
            if max_action_chars is None:
                max_action_chars = advertised.get("max_action_chars")
            self._pending: tuple[dict[str, Any], Any, bool] | None = None
            self._failure: str | None = None
            self._refusal: str | None = None
            self._truncate = False
            self._last_observation: dict[str, Any] = {}
            super().__init__(max_turns=max_turns, max_action_chars=max_action_chars, **kwargs)
        except BaseException:
            # a refused setting or schema must not leave the session open (it holds one
            # of the server's max_concurrent_envs) nor an owned environment
            self._backend.close()
            raise

    def _advertised(self) -> dict[str, Any]:
        """The limits an rlenv env served by :func:`create_app` puts in its state."""
        try:
            state = self._backend.state()
        except Exception:
            return {}
        if not isinstance(state, Mapping) or "max_action_chars" not in state:
            return {}
        limits = ("max_turns", "max_reward", "min_reward", "max_action_chars")
        return {name: state.get(name) for name in limits}

    # ------------------------------------------------------------------ TextEnv hooks

    def load_tasks(self) -> GeneratedTasks:
        def make_task(rng: Any) -> Task:
            return Task(prompt=_NO_SEED, metadata={"openenv_seed": rng.randrange(2**31)})

        return GeneratedTasks(make_task, prefix="openenv-seed-")

    def start(self, task: Task) -> list[Message]:
        kwargs = dict(task.metadata.get("openenv_reset", {}))
        if "openenv_seed" in task.metadata:
            kwargs.setdefault("seed", task.metadata["openenv_seed"])
        try:
            observation, _, _ = self._backend.reset(**kwargs)
        except OpenEnvError:
            raise
        except Exception as error:
            if isinstance(self._backend, _Remote) and self._backend.stale:
                # no answer from the server (dropped, timed out): the service failed
                raise OpenEnvServerError(
                    f"the OpenEnv server at {self._backend.url} failed during reset: "
                    f"{type(error).__name__}: {error}"
                ) from None
            raise OpenEnvError(
                f"the OpenEnv environment {self.target_name} failed to reset: "
                f"{type(error).__name__}: {error}"
            ) from None
        self._last_observation = observation
        opening = self._messages_of(observation, already=0)[1]
        if not opening:
            opening = [{"role": "user", "content": "(the environment gave no observation)"}]
        if self.system_prompt is not None and opening[0].get("role") != "system":
            opening.insert(0, {"role": "system", "content": self.system_prompt})
        return opening

    def interpret(self, message: AssistantMessage) -> AssistantMessage:
        """Steps the OpenEnv environment (so the transcript records the model's message as
        an rlenv-served env recorded it, tool calls included); :meth:`respond` scores it."""
        self._pending = None
        try:
            action = self._action(message)
        except Exception as error:
            self._pending = ({}, None, False)
            self._refusal = f"invalid action: {type(error).__name__}: {error}"
            return message
        try:
            self._pending = self._backend.step(action)
        except _InvalidAction as error:
            self._pending = ({}, None, False)
            self._refusal = f"invalid action: {error}"
            return message
        except Exception as error:
            self._failure = f"{type(error).__name__}: {error}"
            raise _ServerFailure(self._failure) from None
        self._refusal = None
        recorded = self._messages_of(self._pending[0], already=len(self._messages))[0]
        return recorded if recorded is not None else message

    def respond(self, message: AssistantMessage) -> Turn:
        assert self._pending is not None
        observation, reward, done = self._pending
        if self._refusal is not None:
            error = self._refusal[:2000]
            return Turn.reply(
                f"Invalid action: {error}", verdict=Verdict(reward=self.min_reward, error=error)
            )
        if reward is None:
            reward = 0.0
        elif isinstance(reward, bool) or not isinstance(reward, (int, float)):
            self._failure = f"the environment gave a non-numeric reward {reward!r:.80}"
            raise _ServerFailure(self._failure)
        reward = float(reward)
        if not math.isfinite(reward):
            self._failure = f"the environment gave a non-finite reward {reward}"
            raise _ServerFailure(self._failure)
        self._last_observation = observation
        verdict = self._verdict(observation, reward)
        replies = self._messages_of(observation, already=len(self._messages))[1]
        self._truncate = bool(done and observation.get("truncated") and self.rlenv_served)
        if self._truncate and not observation.get("terminated"):
            return Turn(messages=replies, reward=reward, verdict=verdict)
        return Turn(messages=replies, reward=reward, done=done, verdict=verdict)

    def step(self, action: Any) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        self._failure, self._truncate, self._refusal = None, False, None
        observation, reward, terminated, truncated, info = super().step(action)
        if self._failure is not None:
            info["verdict"] = Verdict(
                reward=0.0,
                scored=False,
                error=f"OpenEnv environment failed: {self._failure}; the episode was "
                "truncated and is unscored (call reset(), which reconnects)",
            )
        elif self._truncate and not terminated and not truncated:
            truncated = True
            self._done = True
        return observation, reward, terminated, truncated, info

    def gold_action(self) -> Any:
        """The served env's gold action, where its server exposes it (``expose_gold``)."""
        if self.done:
            return None
        try:
            return self._backend.state().get("gold_action")
        except Exception:
            return None

    def close(self) -> None:
        self._backend.close()
        super().close()

    # ------------------------------------------------------------------ mapping

    def _action(self, message: AssistantMessage) -> Any:
        if self.action_fn is not None:
            action = self.action_fn(message_text(message))
            if not isinstance(action, (Action, Mapping)):
                raise TypeError(f"action_fn returned {type(action).__name__}, not a dict")
            return action
        if message.get("tool_calls") and self._message_field:
            return {"message": copy_json(message)}
        return {self._text_field: message_text(message)}

    def _messages_of(
        self, observation: dict[str, Any], *, already: int
    ) -> tuple[Message | None, list[Message]]:
        """(the model's message as the env recorded it, the env's messages), from an
        observation; ``already`` is how many messages the conversation had before."""
        if self.observation_fn is not None:
            shown = self.observation_fn(observation)
            if isinstance(shown, str):
                return None, [{"role": "user", "content": shown}] if shown else []
            return None, [dict(m) for m in shown]
        new = observation.get("new_messages")
        if self.rlenv_served and isinstance(new, list):
            if new and new[0].get("role") == "assistant" and already:
                return new[0], list(new[1:])
            return None, list(new)
        messages = observation.get("messages")
        if isinstance(messages, list) and messages and all(map(is_valid_message, messages)):
            rest = messages[already:]
            if already and rest and rest[0].get("role") == "assistant":
                return rest[0], list(rest[1:])
            return None, list(rest)
        text = _observation_text(observation)
        return None, [{"role": "user", "content": text}] if text else []

    def _verdict(self, observation: dict[str, Any], reward: float) -> Verdict:
        served = observation.get("verdict")
        if self.rlenv_served and isinstance(served, Mapping):
            try:
                return Verdict.model_validate(served)
            except ValidationError:
                pass
        return Verdict(reward=reward, reason=f"reward {reward:g} from the OpenEnv environment")

    def __repr__(self) -> str:
        return f"<OpenEnvTextEnv {self.target_name}>"


class _ServerFailure(Exception):
    pass


def _observation_text(observation: Mapping[str, Any]) -> str:
    fields = {k: v for k, v in observation.items() if k != "metadata"}
    texts = [v for v in fields.values() if isinstance(v, str)]
    if len(fields) == 1 and texts:
        return texts[0]
    if not fields:
        return ""
    return json.dumps(fields, sort_keys=True, default=repr)


def openenv_env(url_or_env: str | Any, **kwargs: Any) -> OpenEnvTextEnv:
    """An OpenEnv environment (a server URL, ``openenv+http://...`` included, an
    ``Environment`` or a function making one) as an rlenv ``TextEnv``; ``kwargs`` go to
    :class:`OpenEnvTextEnv`."""
    return OpenEnvTextEnv(url_or_env, **kwargs)


def check_targets(url: str) -> list[tuple[str, Any]]:
    """What ``rlenv check openenv+http://host:port`` (or ``openenv+https://``) checks: the
    OpenEnv server at that address, wrapped as an :class:`OpenEnvTextEnv` (one client per
    session the check opens). A query string sets the wrapper's numeric settings, e.g.
    ``?max_turns=4`` for an env that never ends by itself (the default, 1, truncates after one
    step, which Gymnasium's checker rejects). Registered with
    :func:`rlenv.testing.register_check_scheme`."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    from rlenv.testing import ConformanceTargetError

    parts = urlsplit(url)
    settings: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query):
        if key not in ("max_turns", "max_reward", "min_reward", "max_action_chars"):
            raise ConformanceTargetError(
                f"{url}: unknown setting {key!r} (max_turns, max_reward, min_reward, "
                "max_action_chars)"
            )
        try:
            settings[key] = int(value) if key in ("max_turns", "max_action_chars") else float(value)
        except ValueError:
            raise ConformanceTargetError(f"{url}: {key}={value!r} is not a number") from None
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    try:
        openenv_env(base, **settings).close()  # reachable and speaking OpenEnv: else say why
    except Exception as error:
        raise ConformanceTargetError(
            f"{base}: no OpenEnv server answers there ({type(error).__name__}: {error})"
        ) from None
    return [(f"OpenEnv server {base}", lambda: openenv_env(base, **settings))]
