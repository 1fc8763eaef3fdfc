"""Rejection sampling: roll a policy out on an environment and keep the episodes that passed.

The same engine as ``rlenv eval`` (:func:`~rlenv.rollout.episodes`,
:func:`~rlenv.rollout.rollout`) samples the episodes; an episode passes when its verifier scored
every turn and it earned full reward (:func:`rlenv.evaluation.passed`, the definition behind
pass@k). The kept trajectories, written with :func:`~rlenv.rollout.write_trajectories`, are the
data of ``rlenv train-sft`` (:mod:`rlenv.train.sft`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rlenv.evaluation import passed
from rlenv.rollout import EpisodeSpec, Policy, SamplingParams, Trajectory, rollout

__all__ = ["Collected", "collect"]

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
