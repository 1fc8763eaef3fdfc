"""PNG plots for evaluations and training runs (needs ``matplotlib``:
``pip install 'rlenv[plots]'``; ``rlenv[train]`` includes it).

matplotlib is imported only here and only when a plot is drawn, with the non-interactive ``Agg``
backend, so a headless machine works and ``import rlenv`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlenv.errors import RLEnvError

__all__ = ["MissingPlotting", "eval_plots", "line_plots"]


class MissingPlotting(RLEnvError, ImportError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingPlotting("PNG plots need matplotlib: pip install 'rlenv[plots]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as pyplot

    return pyplot


def eval_plots(summary: Any, trajectories: Sequence[Any], out: str | Path) -> list[Path]:
    """Write ``reward_histogram.png`` and ``pass_rate_by_task.png`` for an evaluation to the
    folder ``out``; returns their paths."""
    pyplot = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rewards = [t.reward for t in trajectories]
    written = []

    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=110)
    axes.hist(rewards, bins=20, range=(min(0.0, *rewards), max(1.0, *rewards)), color="#4c72b0")
    axes.set_xlabel("episode reward")
    axes.set_ylabel("episodes")
    axes.set_title(
        f"{', '.join(summary.env_ids)} · {summary.policy}\n"
        f"mean {summary.mean_reward:.3f}, pass@1 {summary.pass_at_1:.3f}",
        fontsize=9,
    )
    written.append(_save(pyplot, figure, out / "reward_histogram.png"))

    rows = sorted(summary.per_task, key=lambda row: row["correct"] / row["samples"])
    rates = [row["correct"] / row["samples"] for row in rows]
    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=110)
    axes.bar(range(len(rates)), rates, width=1.0, color="#55a868")
    axes.set_ylim(0, 1)
    axes.set_xlabel(f"task (sorted, {len(rates)} tasks)")
    axes.set_ylabel("fraction of samples correct")
    axes.set_title("pass rate by task", fontsize=9)
    written.append(_save(pyplot, figure, out / "pass_rate_by_task.png"))
    return written


def line_plots(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "step",
    columns: int = 3,
) -> Path:
    """One small line chart per named series of ``(x, y)`` points, in a grid, as one PNG —
    training curves. Series with no points are left out."""
    pyplot = _pyplot()
    named = [(name, points) for name, points in series.items() if points]
    if not named:
        raise ValueError("nothing to plot")
    columns = max(1, min(columns, len(named)))
    rows = -(-len(named) // columns)
    figure, grid = pyplot.subplots(
        rows, columns, figsize=(4 * columns, 2.8 * rows), dpi=100, squeeze=False
    )
    for index, (name, points) in enumerate(named):
        axes = grid[index // columns][index % columns]
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, marker="." if len(xs) < 40 else None, linewidth=1.2)
        axes.set_title(name, fontsize=9)
        axes.set_xlabel(xlabel, fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    for index in range(len(named), rows * columns):
        grid[index // columns][index % columns].axis("off")
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(pyplot, figure, Path(path))


def _save(pyplot: Any, figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path
