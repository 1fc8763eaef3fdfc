"""TRL's OpenEnv integration (``environment_factory``) for an rlenv env served over OpenEnv.

TRL 1.16 trains on OpenEnv environments with the ``environment_factory`` pattern of its docs
(``docs/source/openenv.md``) and examples (``examples/scripts/openenv/echo.py``, ``wordle.py``):
a class whose ``__init__`` opens an OpenEnv client on a base URL, whose ``reset(**row)`` resets
the remote env and returns the opening text, whose public methods are tools calling
``client.step(...)``, and which keeps ``self.reward`` for a ``reward_func(environments, ...)``.
For an rlenv env served with :func:`rlenv.adapters.openenv.create_app` (``rlenv.adapters.openenv
.serve``), that class is ~45 lines a user would write per env; this module makes it from the
served env's own tool schemas::

    from rlenv.adapters.openenv_trl import openenv_reward, trl_environment_factory

    factory = trl_environment_factory("http://127.0.0.1:8000")   # the OpenEnv server
    trainer = GRPOTrainer(model=..., train_dataset=dataset,      # rows: prompt, seed
                          environment_factory=factory, reward_funcs=openenv_reward(), ...)
    trainer.train()
    factory.close()                                              # the instances' sessions

- **Client.** Each instance opens its own OpenEnv ``GenericEnvClient`` (one ``/ws`` session on
  the server, kept for the instance's life: TRL pools instances and resets them per episode).
- **reset(\\*\\*row)** resets the served env with the row's ``seed`` and/or ``task_id`` columns
  (rlenv's replay; neither: the server draws a task) and returns the env's opening messages
  other than the system prompt (the task), which TRL appends to the row's prompt.
- **Tools.** One method per tool the served env advertises (the ``tools`` of its reset
  observation), made by :mod:`rlenv.adapters.trl_environment`'s generator (name, description,
  typed keyword arguments, so TRL's ``get_json_schema`` gives back the env's schema). A call is
  stepped as an assistant message carrying that one call (``{"message": {"role": "assistant",
  "tool_calls": [call]}}``); the method returns the tool's reply, adds the step's reward to
  ``self.reward``, and raises ``ValueError`` once the episode has ended (TRL shows the error).
- **Reward.** :func:`openenv_reward` steps the completion's final answer (its last assistant
  message, when it has no tool call) into the served env, whose grader sees it, and returns
  each episode's total (``self.reward``), or ``None`` (TRL leaves it out) when the served
  verdict is unscored (the env failed).

Differences from :func:`rlenv.adapters.trl_environment.environment_factory` (the env in
process): each call is one served turn, so the served env's ``max_turns`` counts calls, not
model turns (the in-process adapter lifts it for calls); and the answer is what the server
graded, over the network. Not covered: TRL's async GRPO harness
(``trl/experimental/async_grpo/openenv_harness.py``), which needs a vLLM server (GPU).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from typing import Any

from rlenv.errors import RLEnvError

try:
    from openenv.core import GenericEnvClient
except ImportError as _error:  # pragma: no cover - the extra is missing
    raise ImportError(
        f"rlenv.adapters.openenv_trl needs openenv-core ({_error}): pip install 'rlenv[openenv]'"
    ) from _error

__all__ = [
    "OpenEnvEnvironmentFactory",
    "OpenEnvReward",
    "OpenEnvTRLEnvironment",
    "openenv_reward",
    "trl_environment_factory",
]

_RESET_COLUMNS = ("seed", "task_id")


def trl_environment_factory(base_url: str, **client_kwargs: Any) -> OpenEnvEnvironmentFactory:
    """TRL's ``environment_factory=`` for the rlenv env an OpenEnv server at ``base_url``
    serves: reads its tools once (a reset on a short session), then makes one
    :class:`OpenEnvTRLEnvironment` per call. ``client_kwargs`` go to OpenEnv's
    ``GenericEnvClient`` (``connect_timeout_s``, ``message_timeout_s``)."""
    return OpenEnvEnvironmentFactory(base_url, **client_kwargs)


def openenv_reward() -> OpenEnvReward:
    """The reward function to pair with :func:`trl_environment_factory`."""
    return OpenEnvReward()


class OpenEnvTRLEnvironment:
    """One pooled TRL environment: an OpenEnv client session on the served env.

    Public attributes (TRL exposes public *functions* only): ``client`` (OpenEnv's sync
    ``GenericEnvClient``), ``task_id``, ``reward`` (the episode's total so far), ``done``,
    ``verdict`` (the served env's last verdict, JSON).
    """

    base_url: str = ""
    client_kwargs: dict[str, Any] = {}  # noqa: RUF012 - set per generated subclass

    def __init__(self) -> None:
        self.client = GenericEnvClient(base_url=self.base_url, **self.client_kwargs).sync()
        self.task_id: str | None = None
        self.reward = 0.0
        self.done = False
        self.verdict: dict[str, Any] | None = None
        self._calls = 0

    def reset(self, **row: Any) -> str | None:
        """Reset the served env (the row's ``seed``/``task_id``); returns the task's text."""
        kwargs = {key: row[key] for key in _RESET_COLUMNS if row.get(key) is not None}
        observation = self.client.reset(**kwargs).observation
        self.task_id = observation["task_id"]
        self.reward, self.done, self.verdict, self._calls = 0.0, False, None, 0
        opening = [m for m in observation["messages"] if m.get("role") != "system"]
        return "\n\n".join(str(m.get("content") or "") for m in opening) or None

    def _step(self, action: dict[str, Any]) -> dict[str, Any]:
        result = self.client.step(action)
        self.reward += float(result.reward or 0.0)
        self.done = bool(result.done)
        self.verdict = result.observation.get("verdict")
        return result.observation

    # The generated tool methods call this; TRL turns an exception into {"error": ...}.
    def _call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        if self.task_id is None:
            raise RuntimeError("reset() was not called: TRL resets each rollout's environment")
        if self.done:
            raise ValueError(f"the episode has ended; {name!r} was not run")
        self._calls += 1
        call = {"id": f"call{self._calls:06d}", "type": "function",
                "function": {"name": name, "arguments": dict(arguments)}}  # fmt: skip
        message = {"role": "assistant", "content": "", "tool_calls": [call]}
        observation = self._step({"message": message})
        return "\n".join(str(m.get("content") or "") for m in observation["new_messages"][1:])

    def _answer(self, completion: Any) -> float | None:
        """Step the completion's final answer (if it ends on one) and return the total."""
        from rlenv.adapters.trl_environment import _messages, _text

        messages = _messages(completion)
        last = messages[-1] if messages else {"role": "assistant", "content": ""}
        if not self.done and last.get("role") == "assistant" and not last.get("tool_calls"):
            self._step({"text": _text(last.get("content"))})
        if self.verdict is not None and not self.verdict.get("scored", True):
            return None
        return self.reward


class OpenEnvEnvironmentFactory:
    """Makes :class:`OpenEnvTRLEnvironment` subclass instances whose methods are the served
    env's tools; :meth:`close` closes every instance's session."""

    def __init__(self, base_url: str, **client_kwargs: Any) -> None:
        from rlenv.adapters.trl_environment import _RESERVED, EnvironmentFactoryError, _tool_method

        probe = GenericEnvClient(base_url=base_url, **client_kwargs).sync()
        try:
            observation = probe.reset().observation
            name = probe.state().get("env_id") or "Served"
        finally:
            probe.close()
        if "tools" not in observation or "task_id" not in observation:
            raise RLEnvError(
                f"{base_url} does not serve an rlenv env (no 'tools' and 'task_id' in its "
                "observation): serve it with rlenv.adapters.openenv.serve"
            )
        methods = {}
        for schema in observation["tools"]:
            function = schema["function"]
            if function["name"].startswith("_") or function["name"] in _RESERVED:
                raise EnvironmentFactoryError(
                    f"the tool {function['name']!r} cannot be a method TRL exposes"
                )
            methods[function["name"]] = _tool_method(function)
        label = "".join(c for c in name.split("/")[-1].split("-")[0] if c.isalnum()) or "Served"
        self.env_class: type[OpenEnvTRLEnvironment] = type(
            f"{label}OpenEnvEnvironment",
            (OpenEnvTRLEnvironment,),
            {"base_url": base_url, "client_kwargs": dict(client_kwargs), **methods},
        )
        self.base_url = base_url
        self._made: weakref.WeakSet[OpenEnvTRLEnvironment] = weakref.WeakSet()

    def __call__(self) -> OpenEnvTRLEnvironment:
        instance = self.env_class()
        self._made.add(instance)
        return instance

    def close(self) -> None:
        """Close the OpenEnv session of every instance made (TRL never closes them)."""
        for instance in list(self._made):
            with contextlib.suppress(Exception):
                instance.client.close()


class OpenEnvReward:
    """TRL reward function for :func:`trl_environment_factory`'s environments: steps each
    completion's final answer and returns the episode's total (``None`` if unscored)."""

    def __init__(self) -> None:
        self.__name__ = "openenv_reward"  # TRL logs rewards under the function's name
        self.rewards: list[float | None] = []

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        environments: Sequence[Any] | None = None,
        **_: Any,
    ) -> list[float | None]:
        if environments is None or len(environments) != len(completions):
            raise RLEnvError(
                "openenv_reward needs TRL's environments= (one per completion): pass "
                "environment_factory=trl_environment_factory(url) to GRPOTrainer"
            )
        for environment in environments:
            if not isinstance(environment, OpenEnvTRLEnvironment):
                raise RLEnvError(
                    f"openenv_reward scores trl_environment_factory's environments, got "
                    f"{type(environment).__name__}"
                )
        self.rewards = [
            env._answer(completion)
            for env, completion in zip(environments, completions, strict=True)
        ]
        return list(self.rewards)
