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

Every prompt carries its task in an extra key of its first message, ``rlenv_task``: the task's
tag (:meth:`rlenv.TaskHandle.to_tag`, a JSON string with the env id, its kwargs and the task id,
the same tag the verl and OpenRLHF adapters write). Chat templates ignore the key, and the
reward and rollout functions read it back, so every completion is scored against the task that
produced it. A dataset column alone would not do this: TRL passes a rollout function only the
prompts. Scoring is :func:`rlenv.score` on an :class:`rlenv.EnvPool`; this module only
translates TRL's formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlenv.chat import Message
from rlenv.handles import TaskHandle, TaskTagError
from rlenv.pool import EnvPool, pose_tasks, score

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
    bundled trainer draw for those seeds (:func:`rlenv.pool.pose_tasks`).
    """
    from datasets import Dataset

    with EnvPool() as pool:
        posed = pose_tasks(pool, env_id, env_kwargs, n_tasks=n_tasks, seed=seed, task_ids=task_ids)
    rows = []
    for task in posed:
        prompt = [dict(message) for message in task.observation]
        prompt[0] = {**prompt[0], TASK_KEY: task.handle.to_tag()}
        rows.append({"prompt": prompt, "env_id": env_id, "task_id": task.handle.task_id})
    return Dataset.from_list(rows)


def task_of(prompt: Sequence[Message]) -> TaskHandle:
    """The task a :func:`build_dataset` prompt carries."""
    for message in prompt:
        tag = message.get(TASK_KEY)  # type: ignore[union-attr]
        if tag:
            return TaskHandle.from_tag(tag, field=f"the prompt's {TASK_KEY!r}")
    raise TaskTagError(
        f"this prompt carries no {TASK_KEY!r}: build the dataset with rlenv.adapters.trl."
        "build_dataset"
    )


def reward_function(workers: int = 4) -> EnvReward:
    """The reward function for single-turn environments: ``reward_funcs=reward_function()``."""
    return EnvReward(workers)


class EnvReward:
    """TRL reward function: scores each completion with its task's environment.

    Called by TRL as ``f(prompts=..., completions=..., completion_ids=..., **columns)``. Returns one
    float per completion, the env's reward for that completion as its first turn
    (:func:`rlenv.score`). A verdict nobody could give (``Verdict.scored=False``: the verifier
    crashed, or the env is multi-turn and the completion did not end the episode, for which
    use :class:`RolloutFunction`) becomes ``None``, which TRL leaves out, never a 0. Scoring
    runs in ``workers`` threads, which pays off for slow verifiers such as the code sandbox.
    ``verdicts`` keeps the latest batch's verdicts for logging and tests.
    """

    def __init__(self, workers: int = 4) -> None:
        self.__name__ = "rlenv_reward"  # TRL logs rewards under the function's name
        self.workers = max(1, workers)
        self._envs = EnvPool()
        self.verdicts: list[Any] = []

    def _score(self, prompt: Sequence[Message], completion: Any) -> Any:
        action = completion[-1] if isinstance(completion, list) else completion
        if isinstance(action, dict):  # Arrow fills the keys a message lacked with None
            action = {key: value for key, value in action.items() if value is not None}
        return score(self._envs, task_of(prompt), action)

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any
    ) -> list[float | None]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            self.verdicts = list(pool.map(self._score, prompts, completions))
        return [verdict.reward if verdict.scored else None for verdict in self.verdicts]


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
        specs = [
            EpisodeSpec.for_task(task_of(prompt), group=index % generations)
            for index, prompt in enumerate(prompts)
        ]
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
