"""rlenv's tool environments on TRL's native multi-turn path, ``environment_factory`` (TRL 1.16).

TRL's ``GRPOTrainer(environment_factory=...)`` plays multi-turn tool episodes with its own
generation (vLLM included) and its own distributed setup (ZeRO-3, FSDP, several GPUs). It takes a
callable that makes an *environment object*: its public methods are the tools, its ``reset``
starts an episode. This module makes that object for any rlenv :class:`~rlenv.tools.ToolEnv`
(and for single-turn ``TextEnv``\\ s, see below)::

    from trl import GRPOConfig, GRPOTrainer
    from rlenv.adapters.trl import build_dataset
    from rlenv.adapters.trl_environment import environment_factory, environment_reward

    dataset = build_dataset("rlenv/Calculator-v0", n_tasks=512, difficulty=1)
    trainer = GRPOTrainer(model=model, train_dataset=dataset, args=GRPOConfig(...),
                          environment_factory=environment_factory("rlenv/Calculator-v0",
                                                                  difficulty=1),
                          reward_funcs=environment_reward(), processing_class=tokenizer)

What TRL 1.16 does with the object, read from ``trl/trainer/grpo_trainer.py`` (``GRPOTrainer``):

- ``__init__`` calls the factory once (a probe, kept in a pool), requires a callable ``reset``,
  and takes every public function of the object's *class* (``inspect.getmembers(type(instance),
  inspect.isfunction)``, names not starting with ``_``, ``reset`` and ``get_reward`` excepted) as
  a tool. Their JSON schemas come from ``transformers.utils.get_json_schema``: the name, the type
  hints and the Google-style docstring (``Args:``). A ``get_reward()`` method, if present, would
  become an extra reward source called with *no argument*.
- ``_generate_and_score_completions`` lends one pooled instance per rollout and calls
  ``instance.reset(**row)`` with the dataset row (``prompt``, ``env_id``, ``task_id``); a string it
  returns is appended to the last prompt message, ``None`` leaves the prompt alone.
- ``_tool_call_loop`` parses the model's tool calls with the tokenizer's response schema, calls
  ``method(**arguments)`` for each (an exception becomes ``{"error": ...}``), appends
  ``{"role": "tool", "name", "content": str(result)}`` messages, generates again, until a turn
  has no call, ``max_tool_calling_iterations`` or ``max_completion_length`` stops it.
- ``_calculate_rewards`` calls each reward function with ``completions`` (the messages TRL built:
  assistant turns, tool messages, the final answer) and ``environments`` (the instances, one per
  completion, in order); a ``None`` reward becomes NaN, left out of the group baseline, and a
  completion every function left out gets advantage 0.

How rlenv maps onto it:

- **Tools.** One method per tool of the env's :class:`~rlenv.tools.Toolbox`, generated from its
  schema: the tool's name and description, one keyword parameter per visible argument (hidden
  ones such as ``state`` are not in the schema, so not in the method) with a type hint and the
  argument's description, required arguments without a default. ``get_json_schema`` then gives
  back the env's schema: name, description, properties, required, types and enums
  (:func:`trl_tool_schemas` shows it; constraints it cannot express, such as ``minimum`` or
  defaults, are not shown to the model but still enforced, since the env validates every call).
- **reset** poses the row's task (:func:`rlenv.adapters.trl.task_of` reads the tag
  :func:`~rlenv.adapters.trl.build_dataset` wrote) on a fresh episode of the object's own env and
  returns ``None``: the row's prompt already holds the env's opening messages.
- **A tool call** is stepped through the env itself, as an assistant message carrying that one
  call (``env.step({"role": "assistant", "content": "", "tool_calls": [call]})``), so the env
  validates the arguments, runs the tool on the episode's state with its hidden arguments,
  records it in ``env.trace`` and ends the episode on its ``finish_tool``. The method returns
  the tool message's content, which TRL shows the model.
- **The reward** is :func:`environment_reward`, a reward function reading ``environments`` and
  ``completions``: it steps the final answer (the last assistant message, without a tool call)
  into the env, whose ``grade`` sees it, and returns the episode's reward: the sum of its steps'
  rewards, as rlenv's own loop (``rlenv.rollout``) counts it. A verdict nobody could give
  (``Verdict.scored=False``: the grader crashed) is ``None``, which TRL leaves out. The object
  has no ``get_reward``, because TRL calls it without the final answer.

The grade is the one rlenv's own ``env.step`` loop gives for the same calls and answer, with
these rules for what TRL decides and rlenv would have decided otherwise:

- a completion with more model turns than the env's ``max_turns`` is scored as rlenv truncates
  it: the rewards of the calls in its first ``max_turns`` turns (the env's turn limit is lifted
  for the per-call steps, which are not turns);
- an episode TRL stopped on a tool call (``max_tool_calling_iterations``,
  ``max_completion_length``) ends there, truncated, with the reward earned so far (0 for
  tool-only turns);
- an answer the env reads as another call (a ``<tool_call>`` TRL's parser could not read) runs
  it and ends the episode the same way;
- known differences, from TRL running calls one by one: calls after a successful
  ``finish_tool`` call in the same turn are refused with an error instead of run, and TRL runs
  more than the env's ``max_calls_per_turn`` calls of one turn.

**Which envs.** Every ``ToolEnv`` that keeps ``ToolEnv``'s own ``respond`` and ``interpret``
(Calculator-v0, Bank-v0, ``rlenv new --tools`` scaffolds). Single-turn ``TextEnv``\\ s without
tools (``max_turns == 1``: Arithmetic-v0, HumanEval-v0, ...) map exactly too: no methods, and
the reward is the env's verdict on the completion, as
:func:`rlenv.adapters.trl.reward_function` gives. Other envs are refused with
:class:`EnvironmentFactoryError`: a single-turn env offering tools it grades without running
them (BFCL) would have them run by TRL; a multi-turn ``TextEnv`` (games, feedback loops)
answers text turns with text, which TRL's loop never hands to an environment, and a ``ToolEnv``
with its own ``respond`` (Retail-v0's simulated user) does the same. Train those with
:class:`rlenv.adapters.trl.RolloutFunction` (BFCL: ``reward_function``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Optional

import rlenv
from rlenv.adapters.trl import task_of
from rlenv.env import TextEnv
from rlenv.errors import RLEnvError
from rlenv.tools.env import ToolEnv
from rlenv.verdict import Verdict

__all__ = [
    "EnvironmentFactory",
    "EnvironmentFactoryError",
    "EnvironmentReward",
    "TRLEnvironment",
    "environment_factory",
    "environment_reward",
    "trl_tool_schemas",
]

_RESERVED = ("reset", "get_reward")
_NO_TURN_LIMIT = 1_000_000


class EnvironmentFactoryError(RLEnvError, TypeError):
    """An environment that TRL's ``environment_factory`` cannot play exactly, or a tool that
    cannot be a method. The message says why and names the alternative."""


def environment_factory(env_id: str, **env_kwargs: Any) -> EnvironmentFactory:
    """TRL's ``environment_factory=`` for a registered env: a callable making one
    :class:`TRLEnvironment` per call, each with its own env (``rlenv.make(env_id,
    **env_kwargs)``). Pass the same ``env_kwargs`` as to :func:`rlenv.adapters.trl.build_dataset`.

    Raises :class:`EnvironmentFactoryError` for an env whose episodes TRL's loop cannot play
    exactly (see the module docstring), naming ``RolloutFunction``.
    """
    return EnvironmentFactory(env_id, **env_kwargs)


def environment_reward() -> EnvironmentReward:
    """The reward function to pair with :func:`environment_factory`:
    ``reward_funcs=environment_reward()``."""
    return EnvironmentReward()


class TRLEnvironment:
    """One rollout's environment for TRL: the tools are generated methods (see
    :class:`EnvironmentFactory`), :meth:`reset` poses the row's task.

    Public attributes, for logging and tests: ``env`` (the rlenv env), ``handle`` (the task),
    ``verdict`` and ``reward`` (the finished episode's, set by :func:`environment_reward`).
    Everything else is private: TRL exposes every public function of this class as a tool.
    """

    env_id: str = ""
    env_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.env: TextEnv = rlenv.make(self.env_id, **self.env_kwargs)
        self._max_turns = self.env.max_turns
        self._is_tool_env = isinstance(self.env, ToolEnv)
        if self._is_tool_env:
            self.env.max_turns = _NO_TURN_LIMIT  # per-call steps are not turns (module docstring)
        self.handle: Any = None
        self.verdict: Verdict | None = None
        self.reward: float | None = None
        self._step_rewards: list[float] = []
        self._end: Verdict | None = None  # the verdict of the step that ended the episode
        self._end_call = 0  # how many calls had run when it ended

    def reset(self, prompt: Sequence[Mapping[str, Any]] | None = None, **row: Any) -> None:
        """Start the episode of the row's task (TRL passes the whole dataset row).

        The task is the tag :func:`~rlenv.adapters.trl.build_dataset` wrote into the prompt;
        returns ``None`` because that prompt already holds the env's opening messages.
        Raises ``TaskTagError`` for a prompt without a tag, and :class:`EnvironmentFactoryError`
        for a task of another env or other kwargs than this factory's, or a single-turn task
        offering tools (BFCL's tools are per task, so known only here).
        """
        handle = task_of(prompt or [])
        if handle.env_id != self.env_id or dict(handle.env_kwargs) != dict(self.env_kwargs):
            raise EnvironmentFactoryError(
                f"this row's task is {handle.env_id} with {handle.env_kwargs}, but the factory "
                f"makes {self.env_id} with {self.env_kwargs}: build the dataset and the factory "
                "with the same env id and kwargs (a dict environment_factory routes mixed data)"
            )
        _, info = self.env.reset(options={"task_id": handle.task_id})
        if not self._is_tool_env and info["tools"]:  # tools per task, only known now
            raise _graded_tools(self.env_id)
        self.handle = handle
        self.verdict = self.reward = self._end = None
        self._step_rewards = []
        self._end_call = 0
        return None

    # The generated tool methods call this; TRL turns an exception into {"error": ...}.
    def _call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        if self.handle is None:
            raise RuntimeError("reset() was not called: TRL resets each rollout's environment")
        if self._end is not None:
            return f"Error: the episode has ended; {name!r} was not run"
        call = {
            "id": f"call{len(self._step_rewards) + 1:06d}",
            "type": "function",
            "function": {"name": name, "arguments": dict(arguments)},
        }
        _, reward, terminated, truncated, info = self.env.step(
            {"role": "assistant", "content": "", "tool_calls": [call]}
        )
        self._step_rewards.append(reward)
        if terminated or truncated:
            self._end, self._end_call = info["verdict"], len(self._step_rewards)
        replies = [str(m.get("content") or "") for m in info["new_messages"][1:]]
        return "\n".join(replies)

    def _finish(self, completion: Any) -> Verdict:
        """The finished episode's verdict, its ``reward`` the episode's total (computed once)."""
        if self.verdict is not None:
            return self.verdict
        if self.handle is None:
            raise RuntimeError("reset() was not called: TRL resets each rollout's environment")
        messages = _messages(completion)
        turns = [m for m in messages if m.get("role") == "assistant"]
        if not self._is_tool_env:
            verdict = self._answer(turns[-1] if turns else {"role": "assistant", "content": ""})
        else:
            verdict = self._tool_episode(turns)
        self.verdict = verdict
        self.reward = verdict.reward if verdict.scored else None
        return verdict

    def _tool_episode(self, turns: list[dict[str, Any]]) -> Verdict:
        calls_per_turn = [len(turn.get("tool_calls") or []) for turn in turns]
        allowed = calls_per_turn[: self._max_turns]
        within = sum(allowed)  # calls rlenv's loop would have run before truncating
        if self._end is not None and self._end_call <= within:
            return self._total(self._end, sum(self._step_rewards))
        if len(turns) > self._max_turns:
            return Verdict(
                reward=sum(self._step_rewards[:within]),
                reason=f"truncated: more than max_turns={self._max_turns} model turns",
            )
        final = turns[-1] if turns else {"role": "assistant", "content": ""}
        if final.get("tool_calls"):
            return Verdict(
                reward=sum(self._step_rewards),
                reason="truncated: TRL ended the episode on a tool call "
                "(max_tool_calling_iterations or max_completion_length)",
            )
        _, reward, terminated, truncated, info = self.env.step(
            {"role": "assistant", "content": _text(final.get("content"))}
        )
        self._step_rewards.append(reward)
        if terminated or truncated:
            return self._total(info["verdict"], sum(self._step_rewards))
        return Verdict(
            reward=sum(self._step_rewards),
            reason="truncated: the final answer did not end the episode (the env read a tool "
            "call in it, which TRL's parser did not)",
        )

    def _answer(self, message: Mapping[str, Any]) -> Verdict:
        action = {key: value for key, value in message.items() if value is not None}
        action.setdefault("role", "assistant")
        action["content"] = _text(action.get("content"))
        _, reward, _, _, info = self.env.step(action)
        return self._total(info["verdict"], reward)

    @staticmethod
    def _total(verdict: Verdict, reward: float) -> Verdict:
        if verdict.reward == reward:
            return verdict
        return verdict.model_copy(update={"reward": reward})


class EnvironmentFactory:
    """TRL's ``environment_factory``: ``factory()`` makes a :class:`TRLEnvironment` subclass's
    instance whose methods are the env's tools. Made by :func:`environment_factory`, which checks
    the env once here."""

    def __init__(self, env_id: str, **env_kwargs: Any) -> None:
        probe = rlenv.make(env_id, **env_kwargs)
        try:
            _check_supported(env_id, probe)
            methods: dict[str, Any] = {}
            if isinstance(probe, ToolEnv):
                for schema in probe.toolbox.schemas():
                    function = schema["function"]
                    methods[function["name"]] = _tool_method(function)
        finally:
            probe.close()
        name = "".join(part for part in env_id.split("/")[-1].split("-")[0] if part.isalnum())
        self.env_class: type[TRLEnvironment] = type(
            f"{name or 'Env'}Environment",
            (TRLEnvironment,),
            {"env_id": env_id, "env_kwargs": dict(env_kwargs), **methods},
        )
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs)

    def __call__(self) -> TRLEnvironment:
        return self.env_class()


class EnvironmentReward:
    """TRL reward function for :func:`environment_factory`'s environments.

    Called by TRL as ``f(prompts=..., completions=..., environments=..., **columns)``; returns
    each episode's reward (see the module docstring), ``None`` where the verdict is unscored.
    ``verdicts`` keeps the latest batch's verdicts, ``rewards`` its returned values.
    """

    def __init__(self) -> None:
        self.__name__ = "rlenv_reward"  # TRL logs rewards under the function's name
        self.verdicts: list[Verdict] = []
        self.rewards: list[float | None] = []

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        environments: Sequence[Any] | None = None,
        **_: Any,
    ) -> list[float | None]:
        if environments is None or len(environments) != len(completions):
            raise EnvironmentFactoryError(
                "environment_reward needs TRL's environments= (one per completion): pass "
                "environment_factory=rlenv.adapters.trl_environment.environment_factory(...) to "
                "GRPOTrainer"
            )
        for environment in environments:
            if not isinstance(environment, TRLEnvironment):
                raise EnvironmentFactoryError(
                    f"environment_reward scores rlenv environments, got "
                    f"{type(environment).__name__}: use rlenv's environment_factory"
                )
        self.verdicts = [env._finish(c) for env, c in zip(environments, completions, strict=True)]
        self.rewards = [v.reward if v.scored else None for v in self.verdicts]
        return list(self.rewards)


def trl_tool_schemas(environment: Any) -> list[dict[str, Any]]:
    """The tool schemas TRL 1.16 renders for an environment object, built the way
    ``GRPOTrainer.__init__`` and ``_tokenize_prompts`` do (its public functions, through
    ``transformers.utils.get_json_schema``), for comparing with the env's own ``tools``."""
    from transformers.utils import get_json_schema

    members = inspect.getmembers(type(environment), predicate=inspect.isfunction)
    return [
        get_json_schema(getattr(environment, name))
        for name, _ in members
        if name not in _RESERVED and not name.startswith("_")
    ]


# ---------------------------------------------------------------------------------- helpers


def _check_supported(env_id: str, env: TextEnv) -> None:
    alternative = (
        "train it with rlenv.adapters.trl.RolloutFunction (rollout_func=), which plays whole "
        "episodes of any TextEnv"
    )
    if isinstance(env, ToolEnv):
        for hook in ("respond", "interpret"):
            if getattr(type(env), hook) is not getattr(ToolEnv, hook):
                raise EnvironmentFactoryError(
                    f"{env_id}: {type(env).__name__} overrides ToolEnv.{hook}, so a turn without "
                    "a tool call does not simply end its episode (Retail-v0's text turns go to a "
                    "simulated user), which TRL's environment_factory loop cannot play; "
                    + alternative
                )
        for name in env.toolbox.tools:
            if name.startswith("_") or name in _RESERVED:
                raise EnvironmentFactoryError(
                    f"{env_id}: the tool {name!r} cannot be a method TRL exposes (TRL hides "
                    f"names starting with '_' and reserves {_RESERVED}); rename it, or "
                    + alternative
                )
        return
    if env.max_turns == 1 and not env.tools:
        return
    if env.max_turns == 1:
        raise _graded_tools(env_id)
    raise EnvironmentFactoryError(
        f"{env_id} is a multi-turn {type(env).__name__} (max_turns={env.max_turns}) without "
        "tools: it answers the model's text turns with text, and TRL's environment_factory "
        "loop only hands an environment tool calls; " + alternative
    )


def _graded_tools(env_id: str) -> EnvironmentFactoryError:
    return EnvironmentFactoryError(
        f"{env_id} is single-turn but offers tools it grades without running them (BFCL): TRL "
        "renders only an environment's methods as tools, and would run them; use "
        "rlenv.adapters.trl.reward_function (reward_funcs=), or "
        "rlenv.adapters.trl.RolloutFunction"
    )


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict,
    "array": list,
}


def _type_hint(schema: Mapping[str, Any]) -> Any:
    """A type hint ``get_json_schema`` turns back into ``schema``'s type (``Any`` where it
    cannot: nested objects' properties, ``$ref``)."""
    if schema.get("enum"):
        return Literal[tuple(schema["enum"])]
    options = schema.get("anyOf")
    if isinstance(options, list):
        kinds = [option for option in options if option.get("type") != "null"]
        nullable = len(kinds) < len(options)
        if len(kinds) == 1:
            hint = _type_hint(kinds[0])
        else:
            hint = _union([_type_hint(kind) for kind in kinds]) if kinds else Any
        return Optional[hint] if nullable and hint is not Any else hint  # noqa: UP045
    kind = schema.get("type")
    if isinstance(kind, list):
        hints = [_JSON_TYPES.get(k) for k in kind if k != "null"]
        if any(hint is None for hint in hints) or not hints:
            return Any
        hint = _union(hints)
        return Optional[hint] if "null" in kind else hint  # noqa: UP045
    if kind == "array":
        items = schema.get("items")
        return list[_type_hint(items)] if isinstance(items, Mapping) and items else list
    if kind == "object":
        extra = schema.get("additionalProperties")
        return dict[str, _type_hint(extra)] if isinstance(extra, Mapping) and extra else dict
    return _JSON_TYPES.get(kind, Any)


def _union(hints: list[Any]) -> Any:
    hint = hints[0]
    for other in hints[1:]:
        hint = hint | other
    return hint


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _tool_method(function: Mapping[str, Any]) -> Callable[..., str]:
    """A method named after the tool whose signature and docstring ``get_json_schema`` reads
    back as the tool's schema; calling it steps the call through the env."""
    name = function["name"]
    parameters = function.get("parameters") or {}
    properties: dict[str, Any] = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    lines = []
    for argument, schema in properties.items():
        if not argument.isidentifier():
            raise EnvironmentFactoryError(
                f"tool {name!r}: the argument {argument!r} is not a Python name, so no method "
                "can take it; train this env with rlenv.adapters.trl.RolloutFunction"
            )
        hint = _type_hint(schema)
        annotations[argument] = hint
        default = inspect.Parameter.empty if argument in required else None
        signature.append(
            inspect.Parameter(
                argument, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint
            )
        )
        # get_json_schema needs a description for every argument: the name stands in
        lines.append(f"    {argument}: {_one_line(schema.get('description') or argument)}")
    description = _one_line(function.get("description") or name)
    doc = description + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")

    def method(self: TRLEnvironment, **arguments: Any) -> str:
        return self._call_tool(name, arguments)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = doc
    method.__annotations__ = annotations
    method.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    return method


def _messages(completion: Any) -> list[dict[str, Any]]:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return [dict(m) for m in completion if isinstance(m, Mapping) and m]


def _text(content: Any) -> str:
    if isinstance(content, list):  # content blocks
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, Mapping))
    return "" if content is None else str(content)
