"""Evaluation: summaries of trajectories (pass@k, failures by reason) and a self-contained report.

``rlenv eval`` and ``rlenv view`` use these; they work on any list of
:class:`~rlenv.rollout.Trajectory`, so a training run's rollouts can be summarised the same way.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlenv.rollout.trajectory import Trajectory

__all__ = [
    "EvalSummary",
    "html_report",
    "outcome_reason",
    "pass_at_k",
    "passed",
    "render_table",
    "summarize",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021): ``1 - C(n-c, k) / C(n, k)`` for ``c``
    correct samples out of ``n``."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} samples")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class EvalSummary:
    """What an evaluation measured."""

    env_ids: list[str]
    policy: str
    tasks: int
    samples: int
    k: int
    mean_reward: float
    pass_at_1: float
    pass_at_k: float
    mean_turns: float
    mean_completion_tokens: float | None
    unscored: int
    failures: list[tuple[str, int]] = field(default_factory=list)
    per_task: list[dict] = field(default_factory=list)


def passed(trajectory: Trajectory) -> bool:
    """Whether an episode passed: a verifier scored every turn and it earned full reward (1.0)."""
    return trajectory.scored and trajectory.reward >= 1.0 - 1e-9


_passed = passed


def outcome_reason(trajectory: Trajectory) -> str:
    """A short reason for an episode's outcome, to group episodes by: the final verdict's error
    or reason up to its first ``:`` (``"wrong: 41 != 42"`` groups as ``"wrong"``), or
    ``"truncated (turn limit)"``, or ``"no turn"``; an episode whose served env failed at
    reset groups as ``"reset failed"``."""
    if trajectory.stop_reason == "reset_failed":
        return "reset failed"
    verdict = trajectory.final_verdict
    if trajectory.truncated and (verdict is None or not verdict.error):
        return "truncated (turn limit)"
    if verdict is None:
        return "no turn"
    text = verdict.error or verdict.reason or "no reason given"
    return text.split(":")[0][:80]


def summarize(trajectories: Sequence[Trajectory], *, k: int | None = None) -> EvalSummary:
    """Group trajectories by task; a sample passes when it is scored and earns full reward."""
    if not trajectories:
        raise ValueError("no trajectories to summarise")
    groups: dict[tuple[str, str | None], list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        groups[(trajectory.env_id, trajectory.task_id)].append(trajectory)
    smallest = min(len(group) for group in groups.values())
    k = min(k or smallest, smallest)
    per_task = []
    for (env_id, task_id), group in groups.items():
        correct = sum(_passed(t) for t in group)
        per_task.append(
            {
                "env_id": env_id,
                "task_id": task_id,
                "samples": len(group),
                "correct": correct,
                "mean_reward": sum(t.reward for t in group) / len(group),
                "pass@1": pass_at_k(len(group), correct, 1),
                f"pass@{k}": pass_at_k(len(group), correct, k),
            }
        )
    tokens = [
        len(turn.completion_token_ids)
        for t in trajectories
        for turn in t.turns
        if turn.completion_token_ids is not None
    ]
    failures = Counter(outcome_reason(t) for t in trajectories if not _passed(t))
    return EvalSummary(
        env_ids=sorted({t.env_id for t in trajectories}),
        policy=trajectories[0].policy,
        tasks=len(groups),
        samples=len(trajectories),
        k=k,
        mean_reward=sum(t.reward for t in trajectories) / len(trajectories),
        pass_at_1=sum(row["pass@1"] for row in per_task) / len(per_task),
        pass_at_k=sum(row[f"pass@{k}"] for row in per_task) / len(per_task),
        mean_turns=sum(len(t.turns) for t in trajectories) / len(trajectories),
        mean_completion_tokens=sum(tokens) / len(tokens) if tokens else None,
        unscored=sum(not t.scored for t in trajectories),
        failures=failures.most_common(10),
        per_task=per_task,
    )


def render_table(summary: EvalSummary) -> str:
    """The summary as a plain-text table."""
    tokens = (
        f"{summary.mean_completion_tokens:.1f}"
        if summary.mean_completion_tokens is not None
        else "-"
    )
    rows = [
        ("environment", ", ".join(summary.env_ids)),
        ("policy", summary.policy),
        ("tasks x samples", f"{summary.tasks} x {summary.samples // max(1, summary.tasks)}"),
        ("mean reward", f"{summary.mean_reward:.3f}"),
        ("pass@1", f"{summary.pass_at_1:.3f}"),
        *([(f"pass@{summary.k}", f"{summary.pass_at_k:.3f}")] if summary.k > 1 else []),
        ("mean turns", f"{summary.mean_turns:.2f}"),
        ("mean tokens per turn", tokens),
        ("unscored (verifier failed)", str(summary.unscored)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if summary.failures:
        lines.append("failures by reason:")
        lines += [f"  {count:>5}  {reason}" for reason, count in summary.failures]
    return "\n".join(lines)


def html_report(
    summary: EvalSummary,
    trajectories: Sequence[Trajectory],
    path: str | Path,
    **options: Any,
) -> Path:
    """Write the self-contained HTML report of a run and return its path: summary, reward
    histogram, failures by reason, tasks with their prompts, every episode with its verdicts.
    See :func:`rlenv.report.html_report` (and :func:`rlenv.report.html_report_compare` for
    runs side by side)."""
    from rlenv.report import html_report as write_report

    return write_report(summary, trajectories, path, **options)
