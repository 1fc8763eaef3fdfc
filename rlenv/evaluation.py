"""Evaluation: summaries of trajectories (pass@k, failures by reason) and a self-contained report.

``rlenv eval`` and ``rlenv view`` use these; they work on any list of
:class:`~rlenv.rollout.Trajectory`, so a training run's rollouts can be summarised the same way.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlenv.chat import render_messages
from rlenv.rollout.trajectory import Trajectory

__all__ = ["EvalSummary", "html_report", "pass_at_k", "passed", "render_table", "summarize"]


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


def _failure_reason(trajectory: Trajectory) -> str:
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
    failures = Counter(_failure_reason(t) for t in trajectories if not _passed(t))
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


def _histogram_svg(rewards: Sequence[float], bins: int = 10) -> str:
    low, high = min(min(rewards), 0.0), max(max(rewards), 1.0)
    span = (high - low) or 1.0
    counts = [0] * bins
    for reward in rewards:
        counts[min(bins - 1, int((reward - low) / span * bins))] += 1
    tallest = max(counts) or 1
    bars = []
    for index, count in enumerate(counts):
        height = 160 * count / tallest
        x = 40 + index * 36
        bars.append(
            f'<rect x="{x}" y="{180 - height:.1f}" width="30" height="{height:.1f}" fill="#4c72b0">'
            f"<title>{count}</title></rect>"
        )
    labels = (
        f'<text x="40" y="198" font-size="11">{low:g}</text>'
        f'<text x="{40 + bins * 36 - 20}" y="198" font-size="11">{high:g}</text>'
        f'<text x="4" y="20" font-size="11">{tallest}</text>'
    )
    return f'<svg width="{60 + bins * 36}" height="205" role="img">{"".join(bars)}{labels}</svg>'


def html_report(
    summary: EvalSummary,
    trajectories: Sequence[Trajectory],
    path: str | Path,
    *,
    transcripts: int = 5,
) -> Path:
    """Write a self-contained HTML report: summary, reward histogram, per-task table, and a few
    transcripts with their verdicts. Returns the path."""
    escape = html.escape
    rows = "".join(
        f"<tr><td>{escape(str(row['task_id']))}</td><td>{row['samples']}</td>"
        f"<td>{row['correct']}</td><td>{row['mean_reward']:.3f}</td></tr>"
        for row in summary.per_task
    )
    shown = "".join(
        f"<details><summary>{escape(str(t.task_id))} — reward {t.reward:.3f}"
        f" — {escape((t.final_verdict.reason if t.final_verdict else '') or '')}</summary>"
        f"<pre>{escape(render_messages(t.messages, width=4000))}</pre>"
        f"<p>verdict: {escape(t.final_verdict.model_dump_json() if t.final_verdict else '')}</p>"
        f"</details>"
        for t in list(trajectories)[:transcripts]
    )
    document = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>rlenv evaluation</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:8px}}</style></head>
<body><h1>rlenv evaluation</h1>
<pre>{escape(render_table(summary))}</pre>
<h2>Reward histogram</h2>{_histogram_svg([t.reward for t in trajectories])}
<h2>Tasks</h2><table><tr><th>task</th><th>samples</th><th>correct</th><th>mean reward</th></tr>
{rows}</table>
<h2>Transcripts</h2>{shown}
</body></html>
"""
    path = Path(path)
    path.write_text(document, encoding="utf-8")
    return path
