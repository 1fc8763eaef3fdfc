"""The HTML report of an evaluation, of one run or of runs side by side, and loading a run.

``rlenv eval`` writes :func:`html_report` next to its trajectories; ``rlenv view a.jsonl``
re-renders it, and ``rlenv view before.jsonl after.jsonl`` writes :func:`html_report_compare`.
:func:`load_run` reads a trajectories file and refuses, with a message that says what to do, a
file that is something else (a trainer's ``metrics.jsonl``, a task file).

The page is one self-contained file (inline CSS and a little vanilla JavaScript, no network):
summary, reward histogram, failures grouped by reason with links to examples, the tasks with
their prompts, and every episode, expandable to its whole conversation with each turn's verdict
and reward, filtered by outcome, reason, run and text.

Threat model: model output is hostile. A completion may hold ``</script><script>...``, an
``<img onerror=...>`` or anything else, and so may a verdict (verifiers quote what they parsed) or
a task. Every piece of text from a trajectory reaches the page one of two ways: through
:func:`html.escape` (the parts written here: summary, failure reasons), or as JSON inside
``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as ``\\u003c``... (so it
cannot close the element), which the page's script puts in the document as text nodes and
attribute properties (``title``) only, never as markup (no ``innerHTML``). Tests open hostile
reports in headless Chromium and check that nothing ran and no element was injected.

Size: 10,000 episodes make a page of about 3 MB that Chromium shows in well under a second. The
conversations are stored once per distinct text (the samples of a task share their prompt),
drawn only when an episode is opened, and the list shows 200 episodes at a time. A message
longer than ``max_message_chars`` is cut with a note, and past ``max_text_chars`` of text in
all, further episodes keep their verdicts but not their conversation (the trajectories file has
it all).
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlenv.chat import message_text
from rlenv.errors import RLEnvError
from rlenv.evaluation import EvalSummary, outcome_reason, passed, summarize
from rlenv.rollout.trajectory import Trajectory, read_trajectories

__all__ = [
    "RunFileError",
    "default_report_path",
    "html_report",
    "html_report_compare",
    "load_run",
    "load_runs",
    "run_labels",
]

MAX_MESSAGE_CHARS = 20_000
"""A message (or raw completion) longer than this is cut in the report, with a note."""
MAX_VERDICT_CHARS = 2_000
"""A verdict's parsed answer or error longer than this is cut, with a note."""
MAX_TEXT_CHARS = 30_000_000
"""Past this much distinct text, later episodes are listed without their conversation."""


class RunFileError(RLEnvError, ValueError):
    """A path given to :func:`load_run` is not a trajectories file (missing, empty, a metrics
    file, malformed); the message says which and what to open instead."""


# ----------------------------------------------------------------------------- loading


def load_run(path: str | Path) -> list[Trajectory]:
    """The trajectories in a JSONL file written by ``rlenv eval`` (``OUT/trajectories.jsonl``),
    ``rlenv collect`` or :func:`~rlenv.rollout.write_trajectories`.

    Raises :class:`RunFileError` when the file is missing or empty, when it is a trainer's
    ``metrics.jsonl`` (one object per step: ``{"step": 1, "reward_mean": ...}``), or when a
    line is not a trajectory (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"no such file: {path}")
    first = _first_record(path)
    if first is None:
        raise RunFileError(f"{path} holds no trajectories (the file is empty)")
    if _is_metrics(first):
        raise RunFileError(
            f"{path} is a metrics file (training metrics, one line per step), not trajectories: "
            f"the trainer plots it as curves.png in the same folder (or plot it with "
            f"rlenv.plots.line_plots); to see episodes, view a trajectories.jsonl "
            f"(rlenv eval writes one to its --out folder)"
        )
    if not isinstance(first, dict) or not {"env_id", "messages"} <= first.keys():
        keys = ", ".join(sorted(first)[:8]) if isinstance(first, dict) else type(first).__name__
        raise RunFileError(
            f"{path} does not hold trajectories: its first record has {keys or 'no keys'}, not "
            f"a trajectory's env_id, messages, turns and reward; view a trajectories.jsonl "
            f"(rlenv eval writes one to its --out folder)"
        )
    try:
        trajectories = list(read_trajectories(path))
    except ValueError as error:
        raise RunFileError(str(error)) from None
    return trajectories


def run_labels(paths: Sequence[str | Path]) -> list[str]:
    """Short names that tell the paths apart: the fewest trailing path parts that differ, less
    a file name they all share (``before`` and ``after`` for ``before/trajectories.jsonl`` and
    ``after/trajectories.jsonl``; ``a.jsonl`` and ``b.jsonl``)."""
    parts = [Path(path).parts for path in paths]
    if len(parts) > 1 and all(len(p) > 1 for p in parts) and len({p[-1] for p in parts}) == 1:
        parts = [p[:-1] for p in parts]
    longest = max((len(p) for p in parts), default=1)
    for count in range(1, longest + 1):
        labels = ["/".join(p[-count:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{index + 1}: {Path(path)}" for index, path in enumerate(paths)]


def load_runs(paths: Sequence[str | Path]) -> list[tuple[str, list[Trajectory]]]:
    """``(label, trajectories)`` for each path (see :func:`load_run` and :func:`run_labels`):
    what :func:`html_report_compare` takes."""
    return list(zip(run_labels(paths), (load_run(path) for path in paths), strict=True))


def default_report_path(paths: Sequence[str | Path]) -> Path:
    """Where ``rlenv view`` writes its report: ``a.html`` next to ``a.jsonl``; for several runs
    ``compare.html`` next to the first."""
    first = Path(paths[0])
    return first.with_suffix(".html") if len(paths) == 1 else first.with_name("compare.html")


def _first_record(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    return json.loads(line)
                except json.JSONDecodeError as error:
                    raise RunFileError(f"{path}:{number}: not JSON ({error})") from None
    return None


def _is_metrics(record: Any) -> bool:
    """A trainer's metrics line (``rlenv.train``: GRPO, SFT, DPO): a flat object keyed by
    ``step`` with numbers (and a few strings or nulls), no conversation."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("step"), int)
        and "messages" not in record
        and all(isinstance(value, (int, float, str, type(None))) for value in record.values())
    )


# ----------------------------------------------------------------------------- public writers


def html_report(
    summary: EvalSummary,
    trajectories: Sequence[Trajectory],
    path: str | Path,
    *,
    title: str = "rlenv evaluation",
    max_message_chars: int = MAX_MESSAGE_CHARS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> Path:
    """Write the report of one run to ``path`` and return it: ``summary`` (from
    :func:`~rlenv.evaluation.summarize`) at the top, then the reward histogram, failures by
    reason, the tasks with their prompts, and every episode of ``trajectories``."""
    if not trajectories:
        raise ValueError("no trajectories to report")
    runs = [(summary.policy or "run", list(trajectories), summary)]
    return _write(runs, Path(path), title, max_message_chars, max_text_chars)


def html_report_compare(
    runs: Sequence[tuple[str, Sequence[Trajectory]]],
    path: str | Path,
    *,
    k: int | None = None,
    title: str | None = None,
    max_message_chars: int = MAX_MESSAGE_CHARS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> Path:
    """Write a report of runs side by side (before/after training) to ``path`` and return it.

    ``runs`` is ``[(label, trajectories), ...]``, first the baseline. The page shows each run's
    summary (pass@``k`` with the same ``k`` for all, default the smallest group) and the change
    from the first run to the last; per task, matched by env id and task id, the mean reward in
    each run, improved and regressed tasks counted and highlighted; failures by reason per run;
    and every episode, filterable by run. One run gives :func:`html_report`'s page.
    """
    if not runs:
        raise ValueError("no runs to compare")
    for label, trajectories in runs:
        if not trajectories:
            raise ValueError(f"run {label!r} has no trajectories")
    summaries = [summarize(trajectories, k=k) for _, trajectories in runs]
    common_k = min(summary.k for summary in summaries)
    if any(summary.k != common_k for summary in summaries):
        summaries = [summarize(trajectories, k=common_k) for _, trajectories in runs]
    triples = [
        (label, list(trajectories), summary)
        for (label, trajectories), summary in zip(runs, summaries, strict=True)
    ]
    if title is None:
        title = "rlenv comparison" if len(triples) > 1 else "rlenv evaluation"
    return _write(triples, Path(path), title, max_message_chars, max_text_chars)


# ----------------------------------------------------------------------------- the page data

_Run = tuple[str, list[Trajectory], EvalSummary]


class _Strings:
    """Distinct texts, stored once; long ones cut (``[text, omitted_chars]`` in the page)."""

    def __init__(self, budget: int) -> None:
        self.items: list[Any] = []
        self.index: dict[tuple[str, int], int] = {}
        self.budget = budget
        self.spent = 0

    def add(self, text: str, limit: int) -> int:
        key = (text, limit)
        found = self.index.get(key)
        if found is not None:
            return found
        if len(text) > limit:
            note = len(text) - limit
            self.items.append([text[:limit], note])
            self.spent += limit
        else:
            self.items.append(text)
            self.spent += len(text)
        self.index[key] = len(self.items) - 1
        return len(self.items) - 1

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _encode_message(message: Any, strings: _Strings, limit: int) -> dict[str, Any]:
    """One message as ``{"r": role, "x": text, "c": [[name, arguments]], "n": name, "i": id}``."""
    encoded: dict[str, Any] = {"r": str(message.get("role", "?"))}
    text = message_text(message)
    content = message.get("content")
    if isinstance(content, list):
        others = sum(1 for part in content if not (isinstance(part, dict) and "text" in part))
        if others:
            text += f"\n[{others} non-text part{'s' if others > 1 else ''} not shown]"
    if text:
        encoded["x"] = strings.add(text, limit)
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, dict) else {}
        name = _as_text(function.get("name", "?"))
        calls.append(
            [strings.add(name, 200), strings.add(_as_text(function.get("arguments")), limit)]
        )
    if calls:
        encoded["c"] = calls
    for key, short in (("name", "n"), ("tool_call_id", "i")):
        if message.get(key):
            encoded[short] = strings.add(_as_text(message[key]), 200)
    return encoded


def _encode_turn(turn: Any, shown_text: str | None, strings: _Strings, limit: int) -> dict:
    """A turn's verdict: reward ``w``, reason ``y``, parsed ``a``, error ``e``, unscored
    ``u``, finish reason ``f``, components ``k``, and the raw completion ``raw`` when it differs
    from the message the conversation shows."""
    verdict = turn.verdict
    encoded: dict[str, Any] = {
        "w": turn.reward,
        "y": strings.add(verdict.reason, MAX_VERDICT_CHARS),
    }
    if verdict.parsed is not None:
        encoded["a"] = strings.add(_as_text(verdict.parsed), MAX_VERDICT_CHARS)
    if verdict.error:
        encoded["e"] = strings.add(verdict.error, MAX_VERDICT_CHARS)
    if not verdict.scored:
        encoded["u"] = 1
    if turn.finish_reason:
        encoded["f"] = turn.finish_reason
    if verdict.components:
        encoded["k"] = strings.add(_as_text(verdict.components), MAX_VERDICT_CHARS)
    if shown_text is not None and turn.completion.strip() != shown_text.strip():
        encoded["raw"] = strings.add(turn.completion, limit)
    return encoded


def _first_user_text(trajectory: Trajectory) -> str:
    for message in trajectory.messages:
        if message.get("role") == "user":
            return message_text(message)
    return ""


def _page_data(runs: list[_Run], message_limit: int, text_budget: int) -> dict:
    """Everything the page's script draws: strings, tasks, reasons and episodes."""
    strings = _Strings(text_budget)
    reasons: dict[str, int] = {}
    tasks: dict[tuple[str, str | None], dict[str, Any]] = {}
    task_index: dict[tuple[str, str | None], int] = {}
    per_task: dict[tuple[str, str | None], list[list[Trajectory]]] = defaultdict(
        lambda: [[] for _ in runs]
    )
    episodes = []
    for run_index, (_, trajectories, _) in enumerate(runs):
        for number, trajectory in enumerate(trajectories, start=1):
            key = (trajectory.env_id, trajectory.task_id)
            if key not in tasks:
                tasks[key] = {
                    "env": trajectory.env_id,
                    "id": "" if trajectory.task_id is None else trajectory.task_id,
                    "p": strings.add(_first_user_text(trajectory), message_limit),
                }
            per_task[key][run_index].append(trajectory)
            reason = outcome_reason(trajectory)
            ok = passed(trajectory)
            episode: dict[str, Any] = {
                "r": run_index,
                "n": number,
                "t": task_index.setdefault(key, len(task_index)),
                "g": trajectory.group,
                "s": trajectory.seed,
                "w": trajectory.reward,
                "p": int(ok),
                "y": reasons.setdefault(reason, len(reasons)),
                "end": "truncated" if trajectory.truncated else "",
            }
            if not trajectory.scored:
                episode["u"] = 1
            if trajectory.metadata:
                episode["meta"] = strings.add(_as_text(trajectory.metadata), MAX_VERDICT_CHARS)
            if trajectory.tools:
                names = [
                    str((tool.get("function") or tool).get("name", "?"))
                    for tool in trajectory.tools
                    if isinstance(tool.get("function") or tool, dict)
                ]
                episode["tools"] = strings.add(", ".join(names), 2000)
            assistant_texts = [
                message_text(m) for m in trajectory.messages if m.get("role") == "assistant"
            ]
            if strings.exhausted:
                episode["m"] = None
            else:
                episode["m"] = [
                    _encode_message(m, strings, message_limit) for m in trajectory.messages
                ]
            episode["v"] = [
                _encode_turn(
                    turn,
                    assistant_texts[i] if i < len(assistant_texts) else None,
                    strings,
                    message_limit,
                )
                for i, turn in enumerate(trajectory.turns)
            ]
            episodes.append(episode)
    task_rows = []
    for key, task in tasks.items():
        task["runs"] = [
            [len(group), sum(passed(t) for t in group), sum(t.reward for t in group) / len(group)]
            if group
            else None
            for group in per_task[key]
        ]
        task_rows.append(task)
    return {
        "runs": [label for label, _, _ in runs],
        "strings": strings.items,
        "reasons": list(reasons),
        "tasks": task_rows,
        "episodes": episodes,
    }


def _script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``
    survive, so no text can close the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# ----------------------------------------------------------------------------- server-side HTML

_esc = html.escape


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _summary_rows(summary: EvalSummary) -> list[tuple[str, str, float | None]]:
    """(name, shown value, number for the change column) per summary line."""
    sizes = sorted({row["samples"] for row in summary.per_task}) or [0]
    each = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
    plural = "" if sizes == [1] else "s"
    return [
        ("environment", ", ".join(summary.env_ids), None),
        ("policy", summary.policy or "–", None),
        ("tasks", f"{summary.tasks:,} ({each} sample{plural} each)", None),
        ("episodes", f"{summary.samples:,}", float(summary.samples)),
        ("mean reward", _number(summary.mean_reward), summary.mean_reward),
        ("pass@1", _number(summary.pass_at_1), summary.pass_at_1),
        *(
            [(f"pass@{summary.k}", _number(summary.pass_at_k), summary.pass_at_k)]
            if summary.k > 1
            else []
        ),
        ("mean turns", _number(summary.mean_turns, 2), summary.mean_turns),
        (
            "mean tokens per turn",
            _number(summary.mean_completion_tokens, 1),
            summary.mean_completion_tokens,
        ),
        ("unscored (verifier failed)", f"{summary.unscored:,}", float(summary.unscored)),
    ]


def _summary_cards(summary: EvalSummary) -> str:
    rows = _summary_rows(summary)
    main = {"episodes", "mean reward", "pass@1", f"pass@{summary.k}", "unscored (verifier failed)"}
    cards = "".join(
        f'<div class="card"><div class="label">{_esc(name)}</div>'
        f'<div class="value">{_esc(value)}</div></div>'
        for name, value, _ in rows
        if name in main
    )
    facts = "".join(
        f"<tr><th>{_esc(name)}</th><td>{_esc(value)}</td></tr>"
        for name, value, _ in rows
        if name not in main
    )
    return f'<div class="cards">{cards}</div><table class="facts">{facts}</table>'


def _summary_table(runs: list[_Run]) -> str:
    """Run summaries side by side, with the change from the first run to the last."""
    labels = "".join(f"<th>{_esc(label)}</th>" for label, _, _ in runs)
    per_run = [_summary_rows(summary) for _, _, summary in runs]  # one k for all runs
    body = []
    for line, (name, _, _) in enumerate(per_run[0]):
        cells = "".join(f"<td>{_esc(rows[line][1])}</td>" for rows in per_run)
        first, last = per_run[0][line][2], per_run[-1][line][2]
        change = "<td></td>"
        if first is not None and last is not None and name != "episodes":
            delta = last - first
            better = -delta if name.startswith("unscored") else delta
            style = "up" if better > 1e-9 else "down" if better < -1e-9 else ""
            change = f'<td class="{style}">{delta:+.3f}</td>'
        body.append(f"<tr><th>{_esc(name)}</th>{cells}{change}</tr>")
    return (
        f'<table class="compare"><tr><th></th>{labels}<th>change</th></tr>{"".join(body)}</table>'
    )


def _failures_table(runs: list[_Run], data: dict) -> str:
    """Failed episodes grouped by reason, with counts per run, examples and a filter button."""
    counts: dict[int, list[int]] = defaultdict(lambda: [0] * len(runs))
    examples: dict[tuple[int, int], list[int]] = defaultdict(list)
    per_run = 3 if len(runs) == 1 else 2
    failed = [0] * len(runs)
    for index, episode in enumerate(data["episodes"]):
        if episode["p"]:
            continue
        counts[episode["y"]][episode["r"]] += 1
        failed[episode["r"]] += 1
        if len(examples[episode["y"], episode["r"]]) < per_run:
            examples[episode["y"], episode["r"]].append(index)
    if not counts:
        return '<p class="note">No failed episodes.</p>'
    many = len(runs) > 1
    head = (
        "".join(f"<th>{_esc(label)}</th>" for label, _, _ in runs) if many else "<th>episodes</th>"
    )
    rows = []
    for reason, run_counts in sorted(counts.items(), key=lambda item: (-sum(item[1]), item[0])):
        cells = "".join(
            f"<td>{count:,} <span class='dim'>({count / failed[run]:.0%})</span></td>"
            if failed[run]
            else "<td>0</td>"
            for run, count in enumerate(run_counts)
        )
        links = " ".join(
            f'<a href="#ep-{i}" data-ep="{i}">'
            f"{_esc(runs[data['episodes'][i]['r']][0]) + ' ' if many else ''}"
            f"#{data['episodes'][i]['n']}</a>"
            for run in range(len(runs))
            for i in examples[reason, run]
        )
        rows.append(
            f"<tr><td class='reason'>{_esc(data['reasons'][reason])}</td>{cells}"
            f"<td>{links}</td><td><button type='button' class='show-reason' "
            f"data-reason='{reason}'>show</button></td></tr>"
        )
    return (
        f"<table class='failures'><tr><th>reason</th>{head}<th>examples</th><th></th></tr>"
        f"{''.join(rows)}</table>"
    )


def _nice_step(top: int) -> int:
    """A tick step (1, 2, 5, 10, 20, 50...) that gives at most five ticks up to ``top``."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))
    while top / step > 5:
        step = round(step * next(factors))
    return step


def _histogram_bins(all_rewards: list[float]) -> tuple[list[tuple[float, float]], bool]:
    """Bars as ``(low, high)`` reward ranges: one per value when there are at most 11 distinct
    rewards (pass/fail, partial credit), else at most 12 bins of a round width (0.1, 0.25...)
    covering ``min(0, lowest)`` to ``max(1, highest)``. Returns the bars and whether they are
    single values."""
    distinct = sorted(set(all_rewards))
    if len(distinct) <= 11:
        return [(value, value) for value in distinct], True
    low, high = min(0.0, distinct[0]), max(1.0, distinct[-1])
    for exponent, mantissa in itertools.product(range(-3, 10), (1, 2, 2.5, 5)):
        width = mantissa * 10.0**exponent
        start = math.floor(low / width) * width
        count = max(1, math.ceil((high - start) / width - 1e-9))
        if count <= 12:
            break
    return [(start + i * width, start + (i + 1) * width) for i in range(count)], False


def _bar_index(reward: float, bars: list[tuple[float, float]], single: bool) -> int:
    if single:
        return bars.index((reward, reward))
    low, high = bars[0][0], bars[-1][1]
    return max(0, min(len(bars) - 1, int((reward - low) / ((high - low) or 1.0) * len(bars))))


def _histogram_svg(
    rewards: Sequence[float], bars: list[tuple[float, float]], single: bool, top: int, label: str
) -> str:
    """An SVG bar chart: reward on x (labelled ``episode reward``), episodes on y."""
    counts = [0] * len(bars)
    for reward in rewards:
        counts[_bar_index(reward, bars, single)] += 1
    width, height, left, right, top_pad, bottom = 440, 230, 52, 12, 16, 48
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    step = _nice_step(max(top, 1))
    ceiling = max(step, -(-max(top, 1) // step) * step)
    slot = plot_w / len(bars)
    parts = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_esc(label)}: episodes per reward">'
    ]
    for tick in range(0, ceiling + 1, step):
        y = top_pad + plot_h - plot_h * tick / ceiling
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>'
        )
    total = max(1, len(rewards))
    for index, ((low, high), count) in enumerate(zip(bars, counts, strict=True)):
        bar_h = plot_h * count / ceiling
        x = left + index * slot + slot * 0.1
        name = f"reward {low:g}" if single else f"reward {low:.3g} to {high:.3g}"
        parts.append(
            f'<rect x="{x:.1f}" y="{top_pad + plot_h - bar_h:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{bar_h:.1f}"><title>{_esc(name)}: {count:,} episodes '
            f"({count / total:.0%})</title></rect>"
        )
        if count and len(bars) <= 11:
            parts.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{top_pad + plot_h - bar_h - 3:.1f}" '
                f'text-anchor="middle" class="count">{count:,}</text>'
            )
        if single:
            parts.append(
                f'<text x="{left + (index + 0.5) * slot:.1f}" y="{top_pad + plot_h + 15}" '
                f'text-anchor="middle">{low:g}</text>'
            )
    if not single:
        every = 1 if len(bars) <= 6 else 2
        for index in range(len(bars) + 1):
            if index % every == 0:
                edge = bars[0][0] + (bars[-1][1] - bars[0][0]) * index / len(bars)
                parts.append(
                    f'<text x="{left + index * slot:.1f}" y="{top_pad + plot_h + 15}" '
                    f'text-anchor="middle">{edge:.4g}</text>'
                )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top_pad + plot_h}" '
        f'y2="{top_pad + plot_h}" class="axis"/>'
        f'<line x1="{left}" x2="{left}" y1="{top_pad}" y2="{top_pad + plot_h}" class="axis"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle" '
        f'class="axis-label">episode reward</text>'
        f'<text transform="translate(14 {top_pad + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle" class="axis-label">episodes</text></svg>'
    )
    return "".join(parts)


def _histograms(runs: list[_Run]) -> str:
    everything = [t.reward for _, trajectories, _ in runs for t in trajectories]
    bars, single = _histogram_bins(everything)
    rewards = [[t.reward for t in trajectories] for _, trajectories, _ in runs]
    tallest = 0
    for run_rewards in rewards:
        counts = Counter(_bar_index(reward, bars, single) for reward in run_rewards)
        tallest = max(tallest, max(counts.values(), default=0))
    figures = []
    for (label, _, _), run_rewards in zip(runs, rewards, strict=True):
        caption = f"<figcaption>{_esc(label)}</figcaption>" if len(runs) > 1 else ""
        svg = _histogram_svg(run_rewards, bars, single, tallest, label)
        figures.append(f"<figure>{svg}{caption}</figure>")
    return f'<div class="hists">{"".join(figures)}</div>'


def _write(runs: list[_Run], path: Path, title: str, message_limit: int, text_budget: int) -> Path:
    data = _page_data(runs, message_limit, text_budget)
    many = len(runs) > 1
    env_ids = sorted({env for _, _, summary in runs for env in summary.env_ids})
    subtitle = " · ".join([", ".join(env_ids), *(s.policy for _, _, s in runs[:1] if not many)])
    if many:
        subtitle = " → ".join(label for label, _, _ in runs) + " · " + ", ".join(env_ids)
    summary_html = _summary_table(runs) if many else _summary_cards(runs[0][2])
    omitted = sum(1 for episode in data["episodes"] if episode["m"] is None)
    notes = (
        f'<p class="note">{omitted} episodes are listed without their conversation: the '
        f"report holds at most {text_budget:,} characters of text (see the trajectories "
        f"file).</p>"
        if omitted
        else ""
    )
    document = (
        _PAGE.replace("%TITLE%", _esc(title))
        .replace("%SUBTITLE%", _esc(subtitle))
        .replace("%CSS%", _CSS)
        .replace("%SUMMARY%", summary_html + notes)
        .replace("%ROWCLASS%", "row stack" if many else "row")
        .replace("%HISTOGRAMS%", _histograms(runs))
        .replace("%FAILURES%", _failures_table(runs, data))
        .replace("%CHANGES%", _CHANGES if many else "")
        .replace("%RUNFILTER%", _RUN_FILTER if many else "")
        .replace("%JS%", _JS)
        .replace("%DATA%", _script_json(data))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


_CHANGES = (
    '<p id="changes" class="changes"></p>'
    '<label>show <select id="f-change"><option value="">all tasks</option>'
    '<option value="changed">changed</option><option value="improved">improved</option>'
    '<option value="regressed">regressed</option><option value="same">unchanged</option>'
    '<option value="partial">not in every run</option></select></label>'
)
_RUN_FILTER = '<label>run <select id="f-run"><option value="">all runs</option></select></label>'

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>%TITLE%</title>
<style>%CSS%</style></head>
<body>
<header><h1>%TITLE%</h1><p class="subtitle">%SUBTITLE%</p></header>
<noscript><p class="note">The tasks and episodes are drawn by the page's script: allow
JavaScript for this file to see them.</p></noscript>
<section id="summary"><h2>Summary</h2>%SUMMARY%</section>
<section class="%ROWCLASS%">
<div id="histogram"><h2>Reward histogram</h2>%HISTOGRAMS%</div>
<div id="failures"><h2>Failures by reason</h2>%FAILURES%</div>
</section>
<section id="tasks-section"><h2>Tasks</h2>%CHANGES%
<table id="tasks" class="tasks"><thead id="tasks-head"></thead>
<tbody id="tasks-body"></tbody></table>
<p><span id="tasks-status" class="dim"></span>
<button type="button" id="tasks-more" hidden>show more tasks</button></p></section>
<section id="episodes-section"><h2>Episodes</h2>
<div class="filters">
%RUNFILTER%
<label>outcome <select id="f-outcome"><option value="">all</option>
<option value="passed">passed</option><option value="failed">failed</option>
<option value="unscored">unscored</option></select></label>
<label>reason <select id="f-reason"><option value="">any reason</option></select></label>
<label>task <select id="f-task"><option value="">any task</option></select></label>
<label>text <input id="f-text" type="search" placeholder="task id or prompt contains"></label>
<button type="button" id="f-clear">clear filters</button>
</div>
<p id="ep-status" class="dim"></p>
<div id="episodes"></div>
<p><button type="button" id="ep-more" hidden>show more episodes</button></p>
</section>
<script type="application/json" id="report-data">%DATA%</script>
<script>%JS%</script>
</body></html>
"""

_CSS = """
:root{--fg:#1d2330;--dim:#667085;--line:#d9dee7;--bg:#f6f7f9;--pass:#1a7f37;--fail:#c62828;
--bar:#4c72b0;--up:#e6f4ea;--down:#fdecea}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
max-width:1200px;margin:0 auto;padding:16px 24px 64px}
h1{font-size:22px;margin:8px 0 0}h2{font-size:17px;margin:28px 0 10px}
.subtitle,.dim{color:var(--dim)}.subtitle{margin:2px 0 0}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:6px 10px;border-radius:6px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px;
background:#fff}
.card .label{color:var(--dim);font-size:12px}.card .value{font-size:20px;font-weight:600}
table{border-collapse:collapse}
th,td{text-align:left;padding:4px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600}
table.facts th{color:var(--dim);font-weight:500}
table.compare td.up,tr.up td.change{background:var(--up);color:var(--pass)}
table.compare td.down,tr.down td.change{background:var(--down);color:var(--fail)}
.row{display:flex;flex-wrap:wrap;gap:24px 40px;align-items:flex-start}
.row>div{flex:1 1 440px;min-width:0}.row.stack>div{flex-basis:100%}
.hists{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{text-align:center;color:var(--dim)}
svg.hist text{font-size:11px;fill:var(--fg)}svg.hist .axis-label{font-size:12px;fill:var(--dim)}
svg.hist rect{fill:var(--bar)}svg.hist rect:hover{fill:#355a91}svg.hist .count{fill:var(--dim)}
svg.hist .grid{stroke:#eceff3}svg.hist .axis{stroke:#98a2b3}
td.reason{max-width:360px;overflow-wrap:anywhere}
button{font:inherit;padding:2px 10px;border:1px solid var(--line);border-radius:6px;
background:#fff;cursor:pointer}
button:hover{background:var(--bg)}
table.tasks{width:100%;table-layout:auto}
table.tasks td.prompt{color:#344054;width:100%;min-width:18em;
overflow-wrap:anywhere}table.tasks .num{text-align:right;white-space:nowrap}
a.task{cursor:pointer;color:#175cd3;text-decoration:none;white-space:nowrap}a.task:hover{text-decoration:underline}
.changes span{margin-right:14px}
.filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;background:var(--bg);
padding:8px 12px;border-radius:8px}
.filters select,.filters input{font:inherit;max-width:260px}
details.ep{border:1px solid var(--line);border-radius:8px;margin:6px 0;background:#fff}
details.ep>summary{cursor:pointer;padding:6px 10px;display:flex;gap:12px;align-items:baseline;
flex-wrap:wrap}
details.ep[open]>summary{border-bottom:1px solid var(--line);background:var(--bg)}
.badge{font-weight:600;font-size:12px;padding:1px 8px;border-radius:10px;color:#fff}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}.badge.unscored{background:#b54708}
.ep .reward{font-variant-numeric:tabular-nums}.ep .why{color:var(--dim);overflow-wrap:anywhere}
.body{padding:8px 12px}.meta{color:var(--dim);margin-bottom:8px}
.msg{border-left:4px solid #98a2b3;margin:8px 0;padding:2px 10px;background:#fafbfc}
.msg.system{border-color:#98a2b3}.msg.user{border-color:#175cd3}.msg.assistant{border-color:#7f56d9}
.msg.tool{border-color:#0e9384}.msg .role{font-weight:600;font-size:12px;text-transform:uppercase;
color:var(--dim)}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0;font:12.5px/1.45 ui-monospace,
SFMono-Regular,Menlo,Consolas,monospace}
.call{color:#0e9384}.cut{color:#b54708;font-style:italic}
.verdict{margin:4px 0 10px 14px;padding:4px 10px;border-radius:6px;background:var(--bg);
font-size:13px}
.verdict.pass{background:var(--up)}.verdict.fail{background:var(--down)}
.verdict b{font-weight:600}
"""

_JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const S = data.strings, E = data.episodes, T = data.tasks, R = data.reasons;
  const many = data.runs.length > 1, PAGE = 200, TASK_PAGE = 100;
  const $ = (id) => document.getElementById(id);
  let epLimit = PAGE, taskLimit = TASK_PAGE;

  // Every text from a trajectory goes into the page through textContent (append of a string).
  function el(tag, cls, ...children) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  function str(i) { const v = S[i]; return Array.isArray(v) ? v[0] : (v === undefined ? "" : v); }
  function cut(i) { const v = S[i]; return Array.isArray(v) ? v[1] : 0; }
  function textBlock(i) {
    const pre = el("pre", "", str(i));
    if (cut(i)) pre.append(el("span", "cut", "\n[… " + cut(i).toLocaleString() +
      " more characters not shown; the trajectories file has the whole text]"));
    return pre;
  }
  function short(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }
  function fmt(x) { return typeof x === "number" ? x.toFixed(3) : "–"; }
  const taskLower = T.map((t) => null);
  function taskText(ti) {
    if (taskLower[ti] === null) taskLower[ti] = (T[ti].id + "\n" + str(T[ti].p)).toLowerCase();
    return taskLower[ti];
  }

  // ---- filters
  const F = { run: $("f-run"), outcome: $("f-outcome"), reason: $("f-reason"),
              task: $("f-task"), text: $("f-text"), change: $("f-change") };
  const reasonCounts = R.map(() => 0);
  for (const e of E) reasonCounts[e.y] += 1;
  R.forEach((r, i) => {
    const o = el("option", "", short(r, 60) + " (" + reasonCounts[i] + ")"); o.value = String(i);
    F.reason.append(o);
  });
  if (F.run) data.runs.forEach((label, i) => {
    const o = el("option", "", label); o.value = String(i); F.run.append(o);
  });
  T.forEach((t, i) => {
    const o = el("option", "", short(t.id || "(no id)", 50)); o.value = String(i); F.task.append(o);
  });
  function epMatches(i) {
    const e = E[i];
    if (F.run && F.run.value !== "" && e.r !== +F.run.value) return false;
    const outcome = F.outcome.value;
    if (outcome === "passed" && !e.p) return false;
    if (outcome === "failed" && e.p) return false;
    if (outcome === "unscored" && !e.u) return false;
    if (F.reason.value !== "" && e.y !== +F.reason.value) return false;
    if (F.task.value !== "" && e.t !== +F.task.value) return false;
    const q = F.text.value.trim().toLowerCase();
    if (q && !taskText(e.t).includes(q)) return false;
    return true;
  }

  // ---- episodes
  function badge(e) {
    if (e.u) return el("span", "badge unscored", "unscored");
    return e.p ? el("span", "badge pass", "passed") : el("span", "badge fail", "failed");
  }
  function episodeRow(i) {
    const e = E[i], t = T[e.t];
    const d = el("details", "ep " + (e.p ? "passed" : "failed"));
    d.id = "ep-" + i;
    d.dataset.reason = String(e.y);
    d.dataset.outcome = e.p ? "passed" : "failed";
    const head = el("summary", "", badge(e),
      el("span", "reward", "reward " + fmt(e.w)),
      el("span", "", (many ? data.runs[e.r] + " " : "") + "#" + e.n),
      el("span", "", "task " + short(t.id || "(no id)", 40) +
        (e.g ? " · sample " + (e.g + 1) : "")),
      el("span", "why", short(R[e.y], 90)));
    d.append(head);
    d.addEventListener("toggle", () => { if (d.open && !d.dataset.built) buildBody(d, e); });
    return d;
  }
  function verdictBlock(v, number, last) {
    // Only the final turn is coloured: an earlier turn's 0 (a tool call) is not a failure.
    const box = el("div", "verdict " + (v.u || !last ? "" : v.w > 0 ? "pass" : "fail"));
    const line = el("div", "", el("b", "", "turn " + number + " verdict"),
      " · reward " + fmt(v.w) + " · " +
        (v.u ? "not scored (the verifier could not judge)" : "scored"),
      v.f ? " · finish " + v.f : "");
    box.append(line);
    box.append(el("div", "", el("b", "", "reason: "), str(v.y) || "(none)"));
    if (v.a !== undefined) box.append(el("div", "", el("b", "", "parsed answer: "), str(v.a)));
    if (v.e !== undefined) box.append(el("div", "", el("b", "", "error: "), str(v.e)));
    if (v.k !== undefined) box.append(el("div", "", el("b", "", "components: "), str(v.k)));
    if (v.raw !== undefined) {
      const raw = el("details", "", el("summary", "", "raw completion"), textBlock(v.raw));
      box.append(raw);
    }
    return box;
  }
  function buildBody(d, e) {
    d.dataset.built = "1";
    const t = T[e.t];
    const body = el("div", "body");
    const facts = ["env " + t.env, "task " + (t.id || "(no id)"),
      "seed " + (e.s === null ? "–" : e.s),
      "sample " + (e.g + 1), e.v.length + " turn" + (e.v.length === 1 ? "" : "s"),
      e.end || "ended", "episode reward " + fmt(e.w)];
    if (e.tools !== undefined) facts.push("tools: " + str(e.tools));
    body.append(el("div", "meta", facts.join(" · ")));
    if (e.meta !== undefined) body.append(el("div", "meta", "metadata: " + str(e.meta)));
    let turn = 0;
    if (e.m === null) {
      body.append(el("p", "note", "The conversation is not in this report (its text budget was " +
        "spent); the trajectories file has it."));
    } else {
      for (const m of e.m) {
        const box = el("div", "msg " + m.r);
        let role = m.r;
        if (m.n !== undefined) role += " · " + str(m.n);
        if (m.i !== undefined) role += " · call " + str(m.i);
        box.append(el("div", "role", role));
        if (m.x !== undefined) box.append(textBlock(m.x));
        for (const call of m.c || []) {
          const pre = el("pre", "call", "→ " + str(call[0]) + "(" + str(call[1]) + ")");
          if (cut(call[1])) {
            pre.append(el("span", "cut", " [… " + cut(call[1]) + " more characters]"));
          }
          box.append(pre);
        }
        body.append(box);
        if (m.r === "assistant" && turn < e.v.length) {
          body.append(verdictBlock(e.v[turn], turn + 1, turn === e.v.length - 1));
          turn += 1;
        }
      }
    }
    for (; turn < e.v.length; turn += 1) {
      body.append(verdictBlock(e.v[turn], turn + 1, turn === e.v.length - 1));
    }
    d.append(body);
  }
  let shown = [];
  function renderEpisodes() {
    shown = [];
    for (let i = 0; i < E.length; i += 1) if (epMatches(i)) shown.push(i);
    const list = $("episodes");
    const rows = document.createDocumentFragment();
    for (const i of shown.slice(0, epLimit)) rows.append(episodeRow(i));
    list.replaceChildren(rows);
    const n = Math.min(epLimit, shown.length);
    $("ep-status").textContent = "showing " + n.toLocaleString() + " of " +
      shown.length.toLocaleString() + " matching episodes (" + E.length.toLocaleString() +
      " in all)";
    $("ep-more").hidden = shown.length <= epLimit;
  }
  function reveal(i) {
    if (!epMatches(i)) clearFilters(false);
    if (!$("ep-" + i)) {
      if (shown.indexOf(i) < 0) renderEpisodes();
      epLimit = Math.max(epLimit, shown.indexOf(i) + 1);
      renderEpisodes();
    }
    const d = $("ep-" + i);
    if (d) { d.open = true; d.scrollIntoView({ block: "start" }); }
  }
  function clearFilters(render) {
    for (const key of ["run", "outcome", "reason", "task", "text"]) if (F[key]) F[key].value = "";
    epLimit = PAGE;
    if (render !== false) { renderEpisodes(); renderTasks(); }
  }

  // ---- tasks
  function taskChange(t) {
    const first = t.runs[0], last = t.runs[t.runs.length - 1];
    if (!many) return null;
    if (t.runs.some((r) => r === null)) return { kind: "partial", delta: 0 };
    const delta = last[2] - first[2];
    return { kind: delta > 1e-9 ? "improved" : delta < -1e-9 ? "regressed" : "same", delta: delta };
  }
  const changes = T.map(taskChange);
  let taskOrder = T.map((t, i) => i);
  if (many) {
    const rank = (i) => changes[i].kind === "same" || changes[i].kind === "partial" ? 1 : 0;
    const size = (i) => Math.abs(changes[i].delta);
    taskOrder.sort((a, b) => rank(a) - rank(b) || size(b) - size(a) || a - b);
    const counts = { improved: 0, regressed: 0, same: 0, partial: 0 };
    for (const c of changes) counts[c.kind] += 1;
    const p = $("changes");
    const names = { improved: "improved", regressed: "regressed", same: "unchanged",
                    partial: "not in every run" };
    for (const kind of ["improved", "regressed", "same", "partial"]) {
      const s = el("span", "", el("b", "", String(counts[kind])), " " + names[kind]);
      s.id = "count-" + kind;
      p.append(s);
    }
    p.append(el("span", "dim", "(mean reward per task, " + data.runs[data.runs.length - 1] +
      " against " + data.runs[0] + ")"));
  }
  const envs = new Set(T.map((t) => t.env));
  function taskHead() {
    const tr = el("tr");
    if (envs.size > 1) tr.append(el("th", "", "environment"));
    tr.append(el("th", "", "task"), el("th", "", "prompt"));
    for (const label of data.runs) {
      tr.append(el("th", "num", many ? label + " passed" : "passed"),
                el("th", "num", many ? label + " reward" : "mean reward"));
    }
    if (many) tr.append(el("th", "num", "change"));
    $("tasks-head").replaceChildren(tr);
  }
  function taskMatches(i) {
    const q = F.text.value.trim().toLowerCase();
    if (q && !taskText(i).includes(q)) return false;
    if (F.change && F.change.value) {
      const kind = changes[i].kind;
      const moved = kind === "improved" || kind === "regressed";
      if (F.change.value === "changed" ? !moved : kind !== F.change.value) return false;
    }
    return true;
  }
  function renderTasks() {
    const matching = taskOrder.filter(taskMatches);
    const rows = document.createDocumentFragment();
    for (const i of matching.slice(0, taskLimit)) {
      const t = T[i];
      const tr = el("tr");
      if (many) tr.className = { improved: "up", regressed: "down" }[changes[i].kind] || "";
      if (envs.size > 1) tr.append(el("td", "", t.env));
      const link = el("a", "task", short(t.id || "(no id)", 40));
      link.title = short(t.id, 1000);
      link.href = "#episodes-section";
      link.addEventListener("click", (event) => {
        event.preventDefault();
        clearFilters(false); F.task.value = String(i); renderEpisodes();
        $("episodes-section").scrollIntoView();
      });
      tr.append(el("td", "", link));
      const prompt = el("td", "prompt", short(str(t.p), 160));
      prompt.title = short(str(t.p), 1000);
      tr.append(prompt);
      for (const r of t.runs) {
        tr.append(el("td", "num", r ? r[1] + "/" + r[0] : "–"),
                  el("td", "num", r ? fmt(r[2]) : "–"));
      }
      if (many) {
        const c = changes[i];
        const text = c.kind === "partial" ? "–" : (c.delta >= 0 ? "+" : "") + c.delta.toFixed(3);
        tr.append(el("td", "num change", text));
      }
      rows.append(tr);
    }
    $("tasks-body").replaceChildren(rows);
    const n = Math.min(taskLimit, matching.length);
    $("tasks-status").textContent = "showing " + n.toLocaleString() + " of " +
      matching.length.toLocaleString() + " matching tasks (" + T.length.toLocaleString() +
      " in all)";
    $("tasks-more").hidden = matching.length <= taskLimit;
  }

  // ---- wiring
  for (const key of ["run", "outcome", "reason", "task"]) {
    if (F[key]) F[key].addEventListener("change", () => { epLimit = PAGE; renderEpisodes(); });
  }
  F.text.addEventListener("input", () => {
    epLimit = PAGE; taskLimit = TASK_PAGE; renderEpisodes(); renderTasks();
  });
  if (F.change) {
    F.change.addEventListener("change", () => { taskLimit = TASK_PAGE; renderTasks(); });
  }
  $("f-clear").addEventListener("click", () => clearFilters(true));
  $("ep-more").addEventListener("click", () => { epLimit += PAGE; renderEpisodes(); });
  $("tasks-more").addEventListener("click", () => { taskLimit += TASK_PAGE; renderTasks(); });
  for (const button of document.querySelectorAll("button.show-reason")) {
    button.addEventListener("click", () => {
      clearFilters(false);
      F.reason.value = button.dataset.reason;
      F.outcome.value = "failed";
      renderEpisodes();
      $("episodes-section").scrollIntoView();
    });
  }
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-ep]");
    if (!link) return;
    event.preventDefault();
    history.replaceState(null, "", "#ep-" + link.dataset.ep);
    reveal(+link.dataset.ep);
  });
  taskHead();
  renderTasks();
  renderEpisodes();
  const hash = /^#ep-(\d+)$/.exec(location.hash);
  if (hash && +hash[1] < E.length) reveal(+hash[1]);
  document.body.dataset.ready = "1";
})();
"""
