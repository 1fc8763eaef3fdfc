"""rlenv environments in TRL's ``GRPOTrainer`` (TRL 1.x; ``pip install 'rlenv[trl]'``).

Single-turn environments need two pieces, a dataset and a reward function::

    from trl import GRPOConfig, GRPOTrainer
    from rlenv.adapters.trl import build_dataset, reward_function

    dataset = build_dataset("rlenv/Arithmetic-v0", n_tasks=512, difficulty=1)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_function(), train_dataset=dataset,
                          args=GRPOConfig(...), processing_class=tokenizer)

Multi-turn environments (games, tools, feedback loops) add a rollout function. rlenv's rollout
engine plays whole episodes with the model being trained. It hands TRL the exact token ids,
with ``env_mask`` marking which tokens the model generated, so environment and tool tokens
never enter TRL's loss::

    from rlenv.adapters.trl import RolloutFunction, episode_reward

    trainer = GRPOTrainer(model=model, reward_funcs=episode_reward, train_dataset=dataset,
                          rollout_func=RolloutFunction(max_new_tokens=64), ...)

Every prompt carries its task in an extra key of its first message, ``rlenv_task``: a JSON string
with the env id, its kwargs and the task id. Chat templates ignore the key, and the
reward and rollout functions read it back, so every completion is scored against the task that
produced it. A dataset column alone would not do this: TRL passes a rollout function only the
prompts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import rlenv
from rlenv.chat import Message

__all__ = [
    "TASK_KEY",
    "EnvReward",
    "RolloutFunction",
    "build_dataset",
    "episode_reward",
    "reward_function",
    "task_of",
]

TASK_KEY = "rlenv_task"


def build_dataset(
    env_id: str,
    *,
    n_tasks: int,
    seed: int = 0,
    task_ids: Sequence[str] | None = None,
    **env_kwargs: Any,
) -> Any:
    """A conversational ``datasets.Dataset``: ``prompt`` (the env's opening messages, the task in
    ``prompt[0]["rlenv_task"]``), and ``env_id`` and ``task_id`` columns for inspection.

    Tasks are ``seed, seed + 1, ...`` (or ``task_ids``), the same tasks ``rlenv eval`` and the
    bundled trainer draw for those seeds.
    """
    from datasets import Dataset

    env = rlenv.make(env_id, **env_kwargs)
    rows = []
    try:
        for index in range(n_tasks):
            if task_ids is not None:
                observation, info = env.reset(options={"task_id": task_ids[index]})
            else:
                observation, info = env.reset(seed=seed + index)
            tag = json.dumps(
                {"env_id": env_id, "env_kwargs": env_kwargs, "task_id": info["task_id"]},
                sort_keys=True,
            )
            prompt = [dict(message) for message in observation]
            prompt[0] = {**prompt[0], TASK_KEY: tag}
            rows.append({"prompt": prompt, "env_id": env_id, "task_id": info["task_id"]})
    finally:
        env.close()
    return Dataset.from_list(rows)


def task_of(prompt: Sequence[Message]) -> dict[str, Any]:
    """The ``{"env_id", "env_kwargs", "task_id"}`` a :func:`build_dataset` prompt carries."""
    for message in prompt:
        tag = message.get(TASK_KEY)  # type: ignore[union-attr]
        if tag:
            return json.loads(tag)
    raise ValueError(
        f"this prompt carries no {TASK_KEY!r}: build the dataset with rlenv.adapters.trl."
        "build_dataset"
    )


class _Envs:
    """One env instance per (thread, env id, kwargs), reused across calls."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, env_id: str, env_kwargs: dict[str, Any]) -> Any:
        cache = self._local.__dict__.setdefault("envs", {})
        key = (env_id, json.dumps(env_kwargs, sort_keys=True))
        if key not in cache:
            cache[key] = rlenv.make(env_id, **env_kwargs)
        return cache[key]


def _clean(prompt: Sequence[Message]) -> list[dict[str, Any]]:
    """The prompt without the task key, and without the ``None`` fields Arrow adds to messages
    that lacked a key other messages had."""
    return [
        {key: value for key, value in message.items() if key != TASK_KEY and value is not None}
        for message in prompt
    ]


def reward_function(workers: int = 4) -> EnvReward:
    """The reward function for single-turn environments: ``reward_funcs=reward_function()``."""
    return EnvReward(workers)


class EnvReward:
    """TRL reward function: scores each completion with its task's environment.

    Called by TRL as ``f(prompts=..., completions=..., completion_ids=..., **columns)``. Returns one
    float per completion, the env's reward for that completion as its first turn. A verdict the
    verifier could not give (``Verdict.scored=False``) becomes ``None``, which TRL leaves out,
    never a 0. Scoring runs in ``workers`` threads, which pays off for slow verifiers such as
    the code sandbox. ``verdicts`` keeps the latest batch's verdicts for logging and tests.
    """

    def __init__(self, workers: int = 4) -> None:
        self.__name__ = "rlenv_reward"  # TRL logs rewards under the function's name
        self.workers = max(1, workers)
        self._envs = _Envs()
        self.verdicts: list[Any] = []

    def _score(self, prompt: Sequence[Message], completion: Any) -> tuple[float | None, Any]:
        task = task_of(prompt)
        env = self._envs.get(task["env_id"], task["env_kwargs"])
        env.reset(options={"task_id": task["task_id"]})
        action = completion[-1] if isinstance(completion, list) else completion
        if isinstance(action, dict):
            action = {key: value for key, value in action.items() if value is not None}
        _, reward, _, _, info = env.step(action)
        verdict = info["verdict"]
        return (reward if verdict.scored else None), verdict

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any
    ) -> list[float | None]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            results = list(pool.map(self._score, prompts, completions))
        self.verdicts = [verdict for _, verdict in results]
        return [reward for reward, _ in results]


def episode_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[Any]:
    """The reward function to pair with :class:`RolloutFunction`: each episode's total env reward,
    which the rollout function passes along as the ``rlenv_reward`` field."""
    return list(kwargs["rlenv_reward"])


class RolloutFunction:
    """TRL ``rollout_func``: plays each prompt's episode with rlenv's rollout engine.

    The model is the one being trained (``trainer.model``), sampled at ``trainer.temperature``.
    Each episode becomes one TRL sample:

    - ``prompt_ids``: the opening prompt's tokens;
    - ``completion_ids``: everything after it, which is the model's turns interleaved with the
      environment's replies, exactly as the model saw them;
    - ``env_mask``: 1 on model tokens and 0 on environment and tool tokens;
    - ``logprobs``: the sampling log-probs, 0 on environment tokens, which the mask hides;
    - ``rlenv_reward``: the episode's total reward, read by :func:`episode_reward`.

    TRL may hand the function each prompt once and expect ``num_generations`` samples back, or
    hand it prompts that are already repeated. Both are handled: an unrepeated batch is played
    ``num_generations`` times, with the samples of a prompt kept next to each other.
    """

    def __init__(self, *, max_new_tokens: int = 256, max_batch_size: int = 64) -> None:
        self.max_new_tokens = max_new_tokens
        self.max_batch_size = max_batch_size
        self.calls = 0

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        from rlenv.rollout import EpisodeSpec, SamplingParams, rollout
        from rlenv.rollout.transformers import TransformersPolicy

        self.calls += 1
        generations = int(getattr(trainer, "num_generations", 1) or 1)
        repeated = len(prompts) % generations == 0 and all(
            prompts[i] == prompts[i - i % generations] for i in range(len(prompts))
        )
        if not repeated:  # one entry per prompt: play each num_generations times
            prompts = [prompt for prompt in prompts for _ in range(generations)]
        specs = []
        for index, prompt in enumerate(prompts):
            task = task_of(prompt)
            specs.append(
                EpisodeSpec(
                    task["env_id"],
                    task_id=task["task_id"],
                    group=index % generations,
                    env_kwargs=tuple(sorted(task["env_kwargs"].items())),
                )
            )
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        policy = TransformersPolicy(
            model,
            trainer.processing_class,
            device=str(next(model.parameters()).device),
            batch_size=self.max_batch_size,
            cast_bf16=False,
        )
        params = SamplingParams(
            max_new_tokens=self.max_new_tokens,
            temperature=float(getattr(trainer, "temperature", 1.0) or 1.0),
            top_p=float(getattr(trainer.args, "top_p", 1.0) or 1.0),
        )
        trajectories = rollout(policy, specs, params=params, max_batch_size=self.max_batch_size)
        model.train(was_training)
        output: dict[str, list[Any]] = {
            "prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [],
            "rlenv_reward": [],
        }  # fmt: skip
        for trajectory in trajectories:
            sequence = trajectory.token_sequence()
            start = sequence.prompt_length
            output["prompt_ids"].append(sequence.token_ids[:start])
            output["completion_ids"].append(sequence.token_ids[start:])
            output["logprobs"].append(sequence.logprobs[start:])
            output["env_mask"].append(sequence.mask[start:])
            output["rlenv_reward"].append(trajectory.reward if trajectory.scored else None)
        return output
