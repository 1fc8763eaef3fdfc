"""Rejection sampling: roll a policy out on an environment and keep the episodes that passed.

The same engine as ``rlenv eval`` (:func:`~rlenv.rollout.episodes`,
:func:`~rlenv.rollout.rollout`) samples the episodes; an episode passes when its verifier scored
every turn and it earned full reward (:func:`rlenv.evaluation.passed`, the definition behind
pass@k). The kept trajectories, written with :func:`~rlenv.rollout.write_trajectories`, are the
data of ``rlenv train-sft`` (:mod:`rlenv.train.sft`).

:func:`demonstrations` writes the same trajectories without a model: each episode is played
with the environment's own ``gold_action()``. That is the SFT data for a format the model never
produces by itself (no sample would pass rejection sampling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rlenv.chat import copy_messages, message_text
from rlenv.env import TextEnv
from rlenv.evaluation import passed
from rlenv.pool import EnvPool
from rlenv.rollout import EpisodeSpec, Policy, SamplingParams, Trajectory, TurnRecord, rollout

__all__ = ["GOLD_POLICY", "Collected", "collect", "demonstrations"]

GOLD_POLICY = "gold"
"""The ``policy`` name of trajectories played by :func:`demonstrations`."""

Keep = Literal["passed", "all"]


@dataclass
class Collected:
    """What :func:`collect` sampled and what it kept."""

    sampled: list[Trajectory]
    """Every episode, in the order of the specs."""
    kept: list[Trajectory]
    """The episodes kept (all of them with ``keep="all"``)."""

    def coverage(self) -> list[tuple[str, str | None, int, int]]:
        """Per task: ``(env_id, task_id, kept, sampled)``, in the order tasks first appear."""
        counts: dict[tuple[str, str | None], list[int]] = {}
        kept_ids = {id(t) for t in self.kept}
        for trajectory in self.sampled:
            row = counts.setdefault((trajectory.env_id, trajectory.task_id), [0, 0])
            row[0] += id(trajectory) in kept_ids
            row[1] += 1
        return [(env, task, kept, total) for (env, task), (kept, total) in counts.items()]

    @property
    def tasks_covered(self) -> int:
        """Tasks with at least one kept episode."""
        return sum(kept > 0 for _, _, kept, _ in self.coverage())


def collect(
    policy: Policy,
    specs: Sequence[EpisodeSpec],
    *,
    keep: Keep = "passed",
    params: SamplingParams | None = None,
    max_batch_size: int = 64,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> Collected:
    """Roll ``policy`` out on ``specs`` and keep the episodes that passed (``keep="passed"``) or
    all of them (``keep="all"``). Sample several per task (``episodes(..., group_size=K)``) to
    keep more tasks: best-of-K rejection sampling."""
    if keep not in ("passed", "all"):
        raise ValueError(f"keep must be 'passed' or 'all', got {keep!r}")
    sampled = rollout(
        policy, specs, params=params, max_batch_size=max_batch_size, on_episode=on_episode
    )
    kept = list(sampled) if keep == "all" else [t for t in sampled if passed(t)]
    return Collected(sampled=list(sampled), kept=kept)


def demonstrations(
    specs: Sequence[EpisodeSpec],
    *,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> Collected:
    """Play every episode of ``specs`` with the environment's ``gold_action()``.

    Each turn submits ``env.gold_action()`` for the current state, so multi-turn environments
    are played to the end. ``kept`` holds the episodes that passed; an episode whose env has no
    gold action (``None``) or whose gold play did not pass is in ``sampled`` only, which points
    at an environment bug worth a look. The trajectories carry ``policy="gold"`` and no token
    ids (nothing was sampled). Group samples of one task are identical, so give
    ``group_size=1``.
    """
    sampled: list[Trajectory] = []
    with EnvPool() as pool:
        for spec in specs:
            with pool.borrow(spec.env_id, spec.env_kwargs) as env:
                trajectory = _play_gold(env, spec)
            sampled.append(trajectory)
            if on_episode is not None:
                on_episode(trajectory)
    return Collected(sampled=sampled, kept=[t for t in sampled if passed(t)])


def _play_gold(env: TextEnv, spec: EpisodeSpec) -> Trajectory:
    options = {"task_id": spec.task_id} if spec.task_id is not None else None
    observation, info = env.reset(seed=spec.seed, options=options)
    turns: list[TurnRecord] = []
    total, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        action = env.gold_action()
        if action is None:
            break
        observation, reward, terminated, truncated, info = env.step(action)
        text = action if isinstance(action, str) else message_text(action)
        turns.append(
            TurnRecord(
                reward=reward, verdict=info["verdict"], completion=text, finish_reason="stop"
            )
        )
        total += reward
    return Trajectory(
        env_id=spec.env_id,
        task_id=info.get("task_id"),
        seed=spec.seed,
        group=spec.group,
        messages=copy_messages(observation),
        tools=info.get("tools", []),
        turns=turns,
        reward=total,
        terminated=terminated,
        truncated=truncated,
        policy=GOLD_POLICY,
    )
