"""rlenv environments in OpenRLHF: a dataset, a reward function and a multi-turn agent.

OpenRLHF's PPO/GRPO trainer (``openrlhf.cli.train_ppo_ray``) takes environments in two forms:

- **single-turn**, a reward function: ``--reward.remote_url my_reward.py`` loads
  ``reward_func(queries, prompts, labels)`` from a Python file. :func:`reward_func` is one
  (``from rlenv.adapters.openrlhf import reward_func`` is the whole file);
- **multi-turn**, an agent: ``--train.agent_func_path my_agent.py`` loads the file's
  ``AgentExecutor``. :class:`AgentExecutor` is one (``from rlenv.adapters.openrlhf import
  AgentExecutor``). It runs OpenRLHF's own ``MultiTurnAgentExecutor`` loop with one
  :class:`RLEnvAgentInstance` per episode, each driving one rlenv env with ``reset``/``step``.

(OpenRLHF 0.11's grouped flags, ``openrlhf/cli/train_ppo_ray.py``; releases before 0.10 spelt
them ``--remote_rm_url``, ``--agent_func_path``, ``--input_key``...)

Both read the task from the row's label: :func:`export_jsonl` writes rows whose ``label`` is a
task tag (:meth:`rlenv.TaskHandle.to_tag`, a JSON string with the env id, its kwargs and the task
id) and whose ``prompt`` is the opening chat messages (``--data.input_key prompt
--data.label_key label --data.apply_chat_template``).

**Length.** ``--data.max_len`` is OpenRLHF's budget for prompt and response together. Its
multi-turn loop (``MultiTurnAgentExecutor.execute``, ``openrlhf/utils/agent.py``) cuts an
opening prompt longer than ``max_len`` less the generation budget from the *left*, losing the
system prompt and the tool schemas first, with only a log warning: :class:`RLEnvAgentInstance`
refuses such a prompt instead, with the numbers (raise ``--data.max_len`` or lower
``--rollout.max_new_tokens``). A decoded query that does not start with its prompt (a tokenizer
whose decode does not give back the prompt's text, or a prompt cut by OpenRLHF) makes
:func:`reward_func` raise :class:`PromptMismatchError`: the response cannot be found, and a 0
there would look like a judgement.

Token faithfulness: OpenRLHF's loop concatenates the prompt's tokens, each action's exact
generated ids and the tokens of the text ``step`` returns as ``environment_feedback``. The agent
returns, as that text, exactly what the chat template adds after the model's turn (the end of
the turn unless the model generated it, the env's messages, the next generation prompt), the
same tokens :class:`~rlenv.rollout.transformers.TransformersPolicy` and the verl agent loop add.
To know whether the model generated its end-of-turn token, the executor watches the ids the
engine returns.

Needs OpenRLHF's ``openrlhf.utils.agent`` (``pip install --no-deps openrlhf`` plus ``aiohttp``
and ``pylatexenc`` is enough to import it on a CPU); :func:`reward_func` and
:func:`export_jsonl` work without it. See ``docs/adapters/openrlhf.md``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlenv.chat import copy_messages
from rlenv.handles import TaskHandle
from rlenv.pool import EnvPool, pose_tasks, score

try:
    from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor

    USING_OPENRLHF = True
except ImportError:  # reward_func and export_jsonl still work; the agent needs OpenRLHF's loop
    USING_OPENRLHF = False

    class AgentInstanceBase:  # type: ignore[no-redef]
        """Placeholder base: OpenRLHF is not installed."""

    class MultiTurnAgentExecutor:  # type: ignore[no-redef]
        """Placeholder: OpenRLHF's multi-turn loop is not installed."""

        def __init__(self, agent_instance_cls: type) -> None:
            raise ImportError(
                "rlenv.adapters.openrlhf.AgentExecutor runs OpenRLHF's MultiTurnAgentExecutor: "
                "install openrlhf (pip install --no-deps openrlhf aiohttp pylatexenc on a CPU)"
            )


__all__ = [
    "USING_OPENRLHF",
    "AgentExecutor",
    "PromptMismatchError",
    "RLEnvAgentInstance",
    "build_rows",
    "export_jsonl",
    "reward_func",
]

# ---------------------------------------------------------------------------------- dataset


def build_rows(env_id: str, n_tasks: int, seed: int = 0, **env_kwargs: Any) -> list[dict]:
    """Rows ``{"prompt": <opening messages>, "label": <task tag>, "env_id", "task_id"}`` for
    the tasks ``env.reset(seed=seed + i)`` poses (:func:`rlenv.pool.pose_tasks`)."""
    with EnvPool() as pool:
        posed = pose_tasks(pool, env_id, env_kwargs, n_tasks=n_tasks, seed=seed)
    return [
        {
            "prompt": task.observation,
            "label": task.handle.to_tag(),
            "env_id": env_id,
            "task_id": task.handle.task_id,
        }
        for task in posed
    ]


def export_jsonl(
    env_id: str, path: str | Path, n_tasks: int, seed: int = 0, **env_kwargs: Any
) -> list[dict]:
    """Write :func:`build_rows` to ``path`` as JSON lines (OpenRLHF's ``--prompt_data``, read
    with ``--input_key prompt --label_key label --apply_chat_template``); return the rows."""
    rows = build_rows(env_id, n_tasks, seed, **env_kwargs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return rows


# ---------------------------------------------------------------------------------- reward

# End-of-sequence texts a decoded query may end with (OpenRLHF decodes with special tokens).
_END_TEXTS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
              "<|end_of_text|>", "</s>", "<eos>", "<pad>", "<|eom_id|>")  # fmt: skip
_reward_envs = EnvPool()


def reward_func(
    queries: Sequence[str], prompts: Sequence[str], labels: Sequence[str], **_: Any
) -> dict[str, Any]:
    """OpenRLHF's remote reward function for single-turn envs (``--remote_rm_url file.py``).

    ``queries[i]`` is the prompt followed by the response, decoded with special tokens;
    ``prompts[i]`` the prompt text; ``labels[i]`` the task tag of :func:`export_jsonl`. The
    response is the query after the prompt, less trailing end-of-sequence markers; the env
    scores it as the task's first turn (:func:`rlenv.score`). Never raises on a response; a
    label that is not a task tag raises ``TaskTagError``, and a query that does not start with
    its prompt :class:`PromptMismatchError` (both ``ValueError``: a data or tokenizer bug, not
    the model's output).

    Returns ``{"rewards", "scores", "extra_logs"}`` as float tensors (OpenRLHF's form):
    ``rewards`` and ``scores`` are the env's rewards, 0.0 where a sample could not be scored;
    ``extra_logs["scored"]`` is 1.0 or 0.0. A sample is unscored when the verifier could not
    judge it (``Verdict.scored`` False), or when the env is multi-turn and one step did not end
    the episode (use :class:`AgentExecutor`).
    OpenRLHF takes one number per sample and cannot leave one out of the group baseline, so 0.0
    stands in and ``scored`` records that it is not a judgement.
    """
    import torch

    rewards, scored = [], []
    for query, prompt, label in zip(queries, prompts, labels, strict=True):
        reward, ok = _score(query, prompt, label)
        rewards.append(reward)
        scored.append(1.0 if ok else 0.0)
    values = torch.tensor(rewards, dtype=torch.float32)
    return {
        "rewards": values,
        "scores": values.clone(),
        "extra_logs": {"scored": torch.tensor(scored, dtype=torch.float32)},
    }


class PromptMismatchError(ValueError):
    """A decoded query does not start with its prompt, so its response cannot be found."""


def _score(query: str, prompt: str, label: str) -> tuple[float, bool]:
    handle = TaskHandle.from_tag(label, field="label")
    if not (isinstance(query, str) and isinstance(prompt, str)):
        raise PromptMismatchError(
            f"reward_func needs the query and the prompt as text, got {type(query).__name__} "
            f"and {type(prompt).__name__}"
        )
    if not query.startswith(prompt):
        at = next(
            (i for i, (a, b) in enumerate(zip(query, prompt, strict=False)) if a != b),
            min(len(query), len(prompt)),
        )
        raise PromptMismatchError(
            f"the decoded query does not start with its prompt (task {handle.task_id} of "
            f"{handle.env_id}; they differ at character {at}: prompt {prompt[at : at + 40]!r}, "
            f"query {query[at : at + 40]!r}). Either the tokenizer does not round-trip the "
            "prompt (decode(encode(prompt)) != prompt: check its normalisation and special "
            "tokens), or OpenRLHF cut the prompt to --data.max_len (raise it). The response "
            "cannot be found, so no reward is given."
        )
    response = query[len(prompt) :]
    stripped = True
    while stripped:
        stripped = False
        response = response.rstrip()
        for marker in _END_TEXTS:
            if response.endswith(marker):
                response, stripped = response[: -len(marker)], True
    verdict = score(_reward_envs, handle, response)
    return (verdict.reward if verdict.scored else 0.0), verdict.scored


# ---------------------------------------------------------------------------------- agent


@dataclass
class _Episode:
    """What the executor hands the agent instance of one ``execute`` call."""

    tokenizer: Any
    engine: _WatchedEngine
    max_length: int
    max_tokens: int | None


_EPISODE: contextvars.ContextVar[_Episode] = contextvars.ContextVar("rlenv_openrlhf_episode")


class _WatchedEngine:
    """The rollout engine, keeping the last generation so the agent sees the exact ids."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.last_token_ids: list[int] = []

    async def generate(self, *args: Any, **kwargs: Any) -> Any:
        output = await self.engine.generate(*args, **kwargs)
        self.last_token_ids = list(output.outputs[0].token_ids)
        return output

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


class RLEnvAgentInstance(AgentInstanceBase):
    """OpenRLHF agent instance driving one rlenv episode (made by :class:`AgentExecutor`).

    ``reset`` poses the label's task and returns the env's opening messages rendered with the
    chat template (and the env's tools) as the observation text. ``step`` steps the env with the
    action text and returns:

    - ``rewards``: this turn's env reward, so that OpenRLHF's sum over turns is the episode's
      env reward; once a verifier could not judge a turn, the increment that brings the sum to
      0.0 (the episode is unscored, as in :func:`reward_func`);
    - ``scores``: the episode's reward so far (0.0 if unscored);
    - ``environment_feedback``: the chat-template text after the model's turn; ``""`` once done
      (what the env says after the last turn is never fed to the model);
    - ``done``: the episode terminated or was truncated;
    - ``extra_logs``: ``scored`` (1.0/0.0), ``env_reward`` and ``turns``.
    """

    _envs = EnvPool()
    _chat_tokens: dict[int, Any] = {}  # noqa: RUF012 (one per tokenizer, shared by instances)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from rlenv.rollout.chat_tokens import ChatTokens

        episode = _EPISODE.get(None)
        if episode is None:
            raise RuntimeError(
                "RLEnvAgentInstance needs the tokenizer and engine of its episode: run it with "
                "rlenv.adapters.openrlhf.AgentExecutor (put `from rlenv.adapters.openrlhf import "
                "AgentExecutor` in the --agent_func_path file)"
            )
        self.engine = episode.engine
        key = id(episode.tokenizer)
        if key not in self._chat_tokens:
            self._chat_tokens[key] = ChatTokens(episode.tokenizer)
        self.chat_tokens = self._chat_tokens[key]
        self.env: Any = None
        self.tools: list[dict[str, Any]] = []
        self.env_reward = 0.0
        self.paid = 0.0
        self.scored = True
        self.turns = 0

    async def reset(self, states: dict, **kwargs: Any) -> dict:
        """Pose the task of ``states["label"]``; return ``{"observation": <prompt text>}``."""
        task = TaskHandle.from_tag(states.get("label"), field="label")
        self.env = self._envs.acquire(task.env_id, task.env_kwargs)
        observation, info = await asyncio.to_thread(
            self.env.reset, options={"task_id": task.task_id}
        )
        self.tools = info["tools"]
        text = self.chat_tokens.prompt_text(observation, self.tools)
        self._check_length(text, task)
        return {"observation": text}

    def _check_length(self, text: str, task: TaskHandle) -> None:
        """Refuse a prompt OpenRLHF would cut from the left (``MultiTurnAgentExecutor.execute``
        keeps its last ``max_length - max_tokens`` tokens, with only a warning)."""
        episode = _EPISODE.get()
        room = episode.max_length - (episode.max_tokens or 1)
        length = len(episode.tokenizer(text=text, add_special_tokens=False)["input_ids"])
        if length > room:
            self._envs.release(self.env)
            raise ValueError(
                f"the opening prompt of task {task.task_id} of {task.env_id} is {length} tokens, "
                f"more than the {room} OpenRLHF leaves it (--data.max_len {episode.max_length} "
                f"less --rollout.max_new_tokens {episode.max_tokens or 1}); OpenRLHF would cut "
                "it from the left, dropping the system prompt and tool schemas. Raise "
                "--data.max_len or lower --rollout.max_new_tokens."
            )

    async def step(self, states: dict, **kwargs: Any) -> dict:
        """Step the env with ``states["action_text"]``; see the class docstring."""
        import torch

        action = states.get("action_text")
        action = action if isinstance(action, str) else str(action)
        observation, reward, terminated, truncated, info = await asyncio.to_thread(
            self.env.step, action
        )
        self.turns += 1
        self.env_reward += float(reward)
        self.scored = self.scored and info["verdict"].scored
        score = self.env_reward if self.scored else 0.0
        increment, self.paid = score - self.paid, score
        done = terminated or truncated
        if done:
            self._envs.release(self.env)
            feedback = ""
        else:
            ids = self.engine.last_token_ids
            stopped = bool(ids) and ids[-1] in self.chat_tokens.stop_ids
            feedback = self.chat_tokens.continuation_text(
                copy_messages(observation), self.tools, stopped=stopped
            )
        return {
            "rewards": torch.tensor(increment),
            "scores": torch.tensor(score),
            "environment_feedback": feedback,
            "done": done,
            "extra_logs": {
                "scored": 1.0 if self.scored else 0.0,
                "env_reward": self.env_reward,
                "turns": float(self.turns),
            },
        }


class AgentExecutor(MultiTurnAgentExecutor):
    """OpenRLHF's multi-turn executor with one :class:`RLEnvAgentInstance` per episode.

    Made with no arguments, as OpenRLHF's ``--agent_func_path`` loader does. ``execute`` runs
    OpenRLHF's own loop, after making the tokenizer and the engine's generated ids available to
    the episode's instance.
    """

    def __init__(self, agent_instance_cls: type = RLEnvAgentInstance) -> None:
        super().__init__(agent_instance_cls)

    async def execute(
        self,
        prompt: Any,
        label: Any,
        sampling_params: Any,
        max_length: int,
        hf_tokenizer: Any,
        llm_engine: Any,
        images: Any = None,
    ) -> dict:
        """Play one episode (OpenRLHF gathers one ``execute`` per sample, each in its task)."""
        engine = _WatchedEngine(llm_engine)
        max_tokens = getattr(sampling_params, "max_tokens", None)
        token = _EPISODE.set(_Episode(hf_tokenizer, engine, max_length, max_tokens))
        try:
            return await super().execute(
                prompt, label, sampling_params, max_length, hf_tokenizer, engine, images
            )
        finally:
            _EPISODE.reset(token)
