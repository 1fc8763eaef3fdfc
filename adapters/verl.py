"""rlenv environments in verl: a parquet dataset, a reward function and a multi-turn agent loop.

Three pieces, each usable alone (``pip install 'rlenv[verl]'`` for the parquet export):

- :func:`export_parquet` writes an env's tasks as verl's RL dataset: ``data_source`` (the env id),
  ``prompt`` (the opening chat messages), ``ability``, ``reward_model`` ``{"style": "rule",
  "ground_truth": <task tag>}``, ``extra_info`` and, for agent loops, ``agent_name``. The task tag
  (:meth:`rlenv.TaskHandle.to_tag`) is a JSON string with the env id, its kwargs and the task
  id: everything needed to pose the same task again on any worker.
- :func:`compute_score` is verl's custom reward function for single-turn envs (point
  ``reward.custom_reward_function.path`` at a file that says ``from rlenv.adapters.verl import
  compute_score``): :func:`rlenv.score` of the decoded response as the row's task's first turn,
  returned as ``{"score": ..., ...}``.
- :class:`RLEnvAgentLoop`, registered as ``"rlenv_agent"``, plays whole multi-turn episodes
  inside verl's rollout: it renders the opening prompt once, appends each model turn's exact
  generated ids (``response_mask`` 1) and the env's reply tokens, computed as what the chat
  template adds after the model's turn (mask 0), and returns the episode's env reward as
  ``reward_score``, which verl then uses directly instead of calling a reward function.

The agent loop subclasses verl's own ``AgentLoopBase`` and exists only where verl imports (verl
0.9.1; its agent-loop module needs Ray, Hydra, OmegaConf, TensorDict and a transformers older than
rlenv's, so ``make test-verl`` tests it in a separate virtual environment). Without verl,
``export_parquet`` and ``compute_score`` work and ``RLEnvAgentLoop`` raises an ImportError that
says why. See ``docs/adapters/verl.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlenv.chat import Message
from rlenv.env import TextEnv
from rlenv.handles import TaskHandle
from rlenv.pool import EnvPool, pose_tasks, score

_VERL_IMPORT_ERROR: ImportError | None = None
try:  # verl's real classes: the agent loop exists only where verl does
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopBase,
        AgentLoopOutput,
        register,
    )
except ImportError as error:  # verl absent (or broken): the dataset and reward parts still work
    _VERL_IMPORT_ERROR = error

__all__ = [
    "ABORTED_STOP_REASONS",
    "AGENT_NAME",
    "RLEnvAgentLoop",
    "build_rows",
    "compute_score",
    "export_parquet",
]

logger = logging.getLogger("rlenv")

AGENT_NAME = "rlenv_agent"
"""The name :class:`RLEnvAgentLoop` is registered under: rows select it with ``agent_name``."""

ABORTED_STOP_REASONS = ("aborted", "abort")
"""``TokenOutput.stop_reason`` values of a generation the rollout server cut off (verl 0.9.1's
vLLM server on ``pause_generation``/weight sync; its ``FullyAsyncLLMServerClient`` resumes these
itself when partial rollouts are on, so one that reaches the loop was not resumed)."""


def __getattr__(name: str) -> Any:
    if name == "RLEnvAgentLoop":  # only defined below when verl imports
        raise ImportError(
            "rlenv.adapters.verl.RLEnvAgentLoop subclasses verl's AgentLoopBase, and "
            f"verl.experimental.agent_loop does not import here ({_VERL_IMPORT_ERROR!r}). Install "
            "verl (tested with verl==0.9.1; `make test-verl` builds such an environment)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------- dataset


def build_rows(
    env_id: str,
    n_tasks: int,
    seed: int = 0,
    agent_name: str | None = None,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """verl dataset rows for ``n_tasks`` tasks of ``env_id``, as plain dicts (see
    :func:`export_parquet`). Tasks are the ones ``env.reset(seed=seed + i)`` poses
    (:func:`rlenv.pool.pose_tasks`), the same tasks ``rlenv eval`` and the other adapters draw
    for those seeds."""
    with EnvPool() as pool:
        with pool.borrow(env_id, env_kwargs) as env:
            ability = _ability(env)
        posed = pose_tasks(pool, env_id, env_kwargs, n_tasks=n_tasks, seed=seed)
    rows = []
    for task in posed:
        row: dict[str, Any] = {
            "data_source": env_id,
            "prompt": [_prompt_message(message, env_id) for message in task.observation],
            "ability": ability,
            "reward_model": {"style": "rule", "ground_truth": task.handle.to_tag()},
            "extra_info": {
                "index": task.index,
                "seed": task.seed,
                "env_id": env_id,
                "task_id": task.handle.task_id,
                "env_kwargs": json.dumps(env_kwargs, sort_keys=True),
            },
        }
        if agent_name is not None:
            row["agent_name"] = agent_name
        rows.append(row)
    return rows


def export_parquet(
    env_id: str,
    path: str | Path,
    n_tasks: int,
    seed: int = 0,
    agent_name: str | None = None,
    **env_kwargs: Any,
) -> Any:
    """Write ``n_tasks`` tasks of ``env_id`` to ``path`` in verl's parquet schema; return the
    ``pandas.DataFrame`` written.

    Columns: ``data_source`` (the env id, which verl groups metrics by), ``prompt`` (the opening
    messages, role and content), ``ability`` (the env's family: ``math``, ``code``, ``games``,
    ``tools``), ``reward_model`` (``{"style": "rule", "ground_truth": <task tag>}``),
    ``extra_info`` (``index``, ``seed``, ``env_id``, ``task_id``, and ``env_kwargs`` as a JSON
    string) and, when ``agent_name`` is given (``AGENT_NAME`` for :class:`RLEnvAgentLoop`),
    ``agent_name``. ``env_kwargs`` are passed to ``rlenv.make`` and recorded in the tag.
    """
    import pandas as pd

    frame = pd.DataFrame(build_rows(env_id, n_tasks, seed, agent_name, **env_kwargs))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return frame


def _prompt_message(message: Message, env_id: str) -> dict[str, str]:
    extra = set(message) - {"role", "content"}
    content = message.get("content")
    if extra or not isinstance(content, str):
        raise ValueError(
            f"{env_id} opens with a message verl's prompt column cannot hold (keys "
            f"{sorted(message)}, content {type(content).__name__}); only role and text content "
            "are exported"
        )
    return {"role": message["role"], "content": content}


def _ability(env: TextEnv) -> str:
    """The env's family for verl's ``ability`` column: its ``ability`` attribute if it has one,
    else the folder of a bundled env (``rlenv.envs.math.arithmetic`` gives ``math``)."""
    declared = getattr(env, "ability", None)
    if isinstance(declared, str):
        return declared
    parts = type(env).__module__.split(".")
    if parts[:2] == ["rlenv", "envs"] and len(parts) > 3:
        return parts[2]
    return "rlenv"


# ---------------------------------------------------------------------------------- reward

_score_envs = EnvPool()


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    **_: Any,
) -> dict[str, Any]:
    """verl's reward function: the env's reward for ``solution_str`` as the first turn of the
    row's task (:func:`rlenv.score`).

    ``ground_truth`` is the row's task tag (``reward_model.ground_truth`` of
    :func:`export_parquet`), which names the env; ``data_source`` and ``extra_info`` are not
    needed. verl calls this from a thread pool; the envs are pooled per env id and kwargs, one
    per concurrent call. Any text is scored, never raises (hostile text gets 0 and a reason); a
    ``ground_truth`` that is not a task tag raises ``TaskTagError``, a ``ValueError`` (a data
    bug, not a sample's).

    Returns a dict, whose every key verl logs:

    - ``score``: the env's reward, or ``0.0`` when ``scored`` is False;
    - ``scored``: False when the verifier could not judge the text (``Verdict.scored``), or the
      env is multi-turn and one step did not end the episode (use :class:`RLEnvAgentLoop`). verl
      needs a number for every sample and has no way to leave one out of the GRPO group
      baseline (a NaN would poison the whole group), so 0.0 stands in and ``scored`` records
      that it is not a judgement: watch its mean, and filter or fix rather than train on it;
    - ``reason`` and ``error``: the verdict's explanation (strings, ``""`` when none).
    """
    handle = TaskHandle.from_tag(ground_truth, field="ground_truth")
    verdict = score(_score_envs, handle, solution_str)
    return {
        "score": verdict.reward if verdict.scored else 0.0,
        "scored": verdict.scored,
        "reason": verdict.reason,
        "error": verdict.error or "",
    }


# ---------------------------------------------------------------------------------- agent loop


class _TemplateKwargs:
    """A tokenizer whose ``apply_chat_template`` gets verl's ``data.apply_chat_template_kwargs``
    (``enable_thinking`` and the like) under the call's own arguments, as verl's dataset and
    Continuous Token builder render; everything else is the tokenizer's."""

    def __init__(self, tokenizer: Any, kwargs: Mapping[str, Any]) -> None:
        self._tokenizer = tokenizer
        self._kwargs = {
            key: value
            for key, value in kwargs.items()
            if key not in ("tokenize", "return_dict", "return_tensors")  # as verl's dataset drops
        }

    def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
        return self._tokenizer.apply_chat_template(*args, **{**self._kwargs, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def _plain(value: Any) -> Any:
    """An OmegaConf node as plain Python (verl's configs are DictConfigs)."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - verl always brings omegaconf
        pass
    return value


if _VERL_IMPORT_ERROR is None:

    @register(AGENT_NAME)
    class RLEnvAgentLoop(AgentLoopBase):
        """verl agent loop that plays an rlenv episode, token in, token out.

        Rows select it with ``agent_name="rlenv_agent"`` (``export_parquet(..., agent_name=
        AGENT_NAME)``) and carry their task in ``reward_model.ground_truth``. Each run:

        1. borrows an env for the row's env id and kwargs (one episode per env at a time) and
           resets it to the row's task;
        2. renders the opening messages once with the chat template (the env's tools and
           ``data.apply_chat_template_kwargs`` included) and, like verl's own loops
           (``AgentLoopBase._cap_text_prompt_length``), keeps the last ``rollout.prompt_length``
           tokens of a longer prompt, with verl's warning; ``prompt_truncated`` logs how many
           were cut;
        3. asks ``server_manager.generate(request_id=..., prompt_ids=..., sampling_params=...)``
           for the model's turn, appends its exact ids (``response_mask`` 1, log-probs kept),
           and steps the env with the decoded text;
        4. appends the tokens the chat template adds for the env's reply and the next generation
           prompt (mask 0, log-prob 0), without re-tokenising anything before; a template that
           re-renders earlier turns raises ``TemplateNotPrefixPreserving`` rather than train on
           tokens the model never saw;
        5. repeats until the episode ends or the ``rollout.response_length`` budget is spent.

        A generation the server aborted (``stop_reason`` ``"aborted"``, a partial rollout not
        resumed) ends the episode unscored: its tokens are kept, the env is not stepped with a
        cut-off turn, and ``aborted`` says so.

        ``reward_score`` is the episode's total env reward, or 0.0 when a verifier could not
        judge a turn or the generation was aborted; ``extra_fields["reward_extra_info"]`` logs
        ``scored``, ``env_reward``, ``terminated``, ``truncated``, ``aborted``,
        ``prompt_truncated`` and ``reason``; ``extra_fields["turn_scores"]`` the reward of each
        turn.
        """

        _envs = EnvPool()
        _chat_tokens: dict[tuple[int, str], Any] = {}  # noqa: RUF012 (per tokenizer and kwargs)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            from rlenv.rollout.chat_tokens import ChatTokens

            template_kwargs = dict(_plain(self.apply_chat_template_kwargs) or {})
            key = (id(self.tokenizer), json.dumps(template_kwargs, sort_keys=True, default=str))
            if key not in self._chat_tokens:
                tokenizer = (
                    _TemplateKwargs(self.tokenizer, template_kwargs)
                    if template_kwargs
                    else self.tokenizer
                )
                self._chat_tokens[key] = ChatTokens(tokenizer)
            self.chat_tokens = self._chat_tokens[key]
            self.response_length = self.rollout_config.response_length

        async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
            """Play the row's episode; ``kwargs`` are the row's fields (``reward_model``
            needed)."""
            reward_model = kwargs.get("reward_model") or {}
            task = TaskHandle.from_tag(
                reward_model.get("ground_truth"), field="reward_model.ground_truth"
            )
            with self._envs.borrow(task.env_id, task.env_kwargs) as env:
                return await self._play(env, task.task_id, sampling_params)

        async def _play(
            self, env: TextEnv, task_id: str, sampling_params: dict[str, Any]
        ) -> AgentLoopOutput:
            loop = asyncio.get_running_loop()
            observation, info = await loop.run_in_executor(
                None, lambda: env.reset(options={"task_id": task_id})
            )
            tools = info["tools"]
            full_prompt = self.chat_tokens.prompt_ids(observation, tools)
            prompt_ids = self._cap_text_prompt_length(full_prompt)  # verl's rule and warning
            cut = len(full_prompt) - len(prompt_ids)
            ids = list(full_prompt)  # the whole rendering, which the template extends
            mask: list[int] = []
            logprobs: list[float] | None = []
            turn_scores: list[float] = []
            scored, terminated, truncated, aborted, reason = True, False, False, False, ""
            timing = {"generate_sequences": 0.0, "tool_calls": 0.0}
            request_id = uuid.uuid4().hex  # one id per episode: the server keeps its prefix cache
            budget = self.response_length
            while True:
                params = dict(sampling_params)
                params.setdefault("max_tokens", max(1, budget - len(mask)))
                start = time.perf_counter()
                output = await self.server_manager.generate(
                    request_id=request_id, prompt_ids=ids[cut:], sampling_params=params
                )
                timing["generate_sequences"] += time.perf_counter() - start
                generated = list(output.token_ids)
                ids += generated
                mask += [1] * len(generated)
                if logprobs is not None and output.log_probs is not None:
                    logprobs += list(output.log_probs)
                else:
                    logprobs = None
                if output.stop_reason in ABORTED_STOP_REASONS:
                    scored, aborted = False, True
                    reason = (
                        f"the rollout server aborted the generation (stop_reason "
                        f"{output.stop_reason!r}) after {len(generated)} tokens of turn "
                        f"{len(turn_scores) + 1}: the cut-off turn is not scored"
                    )
                    break
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                start = time.perf_counter()
                observation, reward, terminated, truncated, info = await loop.run_in_executor(
                    None, env.step, text
                )
                timing["tool_calls"] += time.perf_counter() - start
                verdict = info["verdict"]
                turn_scores.append(float(reward))
                scored = scored and verdict.scored
                reason = verdict.reason or verdict.error or reason
                if terminated or truncated:
                    break
                if len(mask) >= budget:
                    reason = f"response_length ({budget} tokens) reached before the episode ended"
                    break
                extended = self.chat_tokens.continued_prompt_ids(observation, tools, ids)
                added = len(extended) - len(ids)
                ids = extended
                mask += [0] * added
                if logprobs is not None:
                    logprobs += [0.0] * added
            env_reward = sum(turn_scores)
            response = ids[len(full_prompt) :][:budget]
            mask = mask[:budget]
            logprobs = logprobs[:budget] if logprobs is not None else None
            return AgentLoopOutput(
                prompt_ids=list(prompt_ids),
                response_ids=response,
                response_mask=mask,
                response_logprobs=logprobs,
                reward_score=env_reward if scored else 0.0,
                num_turns=(
                    sum(1 for message in observation if message["role"] != "system") + 1
                    if aborted  # the conversation so far and the cut-off turn
                    else _chat_turns(observation)
                ),
                metrics=timing,
                extra_fields={
                    "turn_scores": turn_scores,
                    "tool_rewards": [],
                    "reward_extra_info": {
                        "scored": scored,
                        "env_reward": env_reward,
                        "terminated": terminated,
                        "truncated": truncated,
                        "aborted": aborted,
                        "prompt_truncated": cut,
                        "reason": reason,
                    },
                },
            )


def _chat_turns(conversation: list[Message]) -> int:
    """verl's ``num_turns``: the chat messages in the token sequence (the prompt's user turn, the
    model's turns and the env's replies between them; not the system prompt, nor what the env
    said after the last model turn, which the model never sees)."""
    last = max(i for i, message in enumerate(conversation) if message["role"] == "assistant")
    return sum(1 for message in conversation[: last + 1] if message["role"] != "system")
