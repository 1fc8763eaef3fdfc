"""Evaluation summaries, pass@k, the HTML report, and the eval/view commands."""

from __future__ import annotations

import json
import math
import re

import pytest
from test_openai_policy import FakeServer

from rlenv.cli import main
from rlenv.evaluation import html_report, pass_at_k, render_table, summarize
from rlenv.rollout import ScriptedPolicy, episodes, read_trajectories, rollout


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 0, 1, 0.0),
        (10, 10, 5, 1.0),
        (10, 3, 1, 0.3),
        (5, 1, 2, 1 - math.comb(4, 2) / math.comb(5, 2)),
        (4, 2, 3, 1.0),
    ],
)
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_inputs():
    for n, c, k in ((3, 4, 1), (3, 1, 0), (2, 1, 3)):
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def _answer_half_right(conversation):
    """Right on even calls only: every other sample of a task passes."""
    _answer_half_right.calls = getattr(_answer_half_right, "calls", 0) + 1
    text = conversation[-1]["content"]
    a, op, b = text.split("$")[1].split()
    value = {"+": int(a) + int(b), "-": int(a) - int(b), "\\times": int(a) * int(b)}[op]
    return f"\\boxed{{{value if _answer_half_right.calls % 2 == 0 else value + 1}}}"


def test_summary_groups_samples_by_task():
    trajectories = rollout(
        ScriptedPolicy(_answer_half_right), episodes("rlenv/Arithmetic-v0", n_tasks=3, group_size=2)
    )
    summary = summarize(trajectories, k=2)
    assert (summary.tasks, summary.samples, summary.k) == (3, 6, 2)
    assert summary.mean_reward == pytest.approx(0.5) and summary.pass_at_1 == pytest.approx(0.5)
    assert summary.pass_at_k == pytest.approx(1.0)
    assert summary.failures == [("wrong", 3)]
    table = render_table(summary)
    assert "pass@2" in table and "mean reward                 0.500" in table


def test_html_report_is_self_contained_and_escaped(tmp_path):
    trajectories = rollout(
        ScriptedPolicy(answers=["<script>alert(1)</script>"]),
        episodes("rlenv/Arithmetic-v0", n_tasks=2),
    )
    path = html_report(summarize(trajectories), trajectories, tmp_path / "report.html")
    text = path.read_text()
    # The page's own two scripts (its data as JSON, and its code), nothing from the model: the
    # completion sits in the JSON with < and > escaped, so it cannot close the script element.
    assert "<svg" in text and text.count("<script") == 2
    assert "<script>alert(1)" not in text and "alert(1)</script>" not in text
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in text
    assert "http" not in text  # no external assets
    # Every episode is in the page now, not only the first few.
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text)
    assert len(json.loads(data.group(1))["episodes"]) == len(trajectories) == 2


def test_eval_command_against_an_endpoint_and_view(tmp_path, capsys):
    server = FakeServer()
    server.reply = lambda body: {"content": "\\boxed{0}"}
    try:
        code = main(["eval", "rlenv/Arithmetic-v0", "--model", "tiny", "--base-url", server.url,
                     "-n", "3", "--samples", "2", "--out", str(tmp_path)])  # fmt: skip
    finally:
        server.close()
    assert code == 0
    out = capsys.readouterr().out
    assert "pass@2" in out and "report:" in out
    trajectories = list(read_trajectories(tmp_path / "trajectories.jsonl"))
    assert len(trajectories) == 6 and (tmp_path / "report.html").exists()
    for name in ("reward_histogram.png", "pass_rate_by_task.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        main(["view", str(tmp_path / "trajectories.jsonl"), "--out", str(tmp_path / "again.html")])
        == 0
    )
    assert (tmp_path / "again.html").exists()


def test_eval_rejects_unknown_envs_before_loading_a_model(capsys):
    assert main(["eval", "rlenv/Nope-v0", "--model", "smollm2-135m"]) == 2
    assert "no text environment" in capsys.readouterr().err


def test_line_plots_draw_one_panel_per_series_and_refuse_nothing(tmp_path):
    pytest.importorskip("matplotlib")
    from rlenv.plots import line_plots

    path = line_plots(
        {"reward": [(0, 0.1), (1, 0.4)], "loss": [(0, 1.0), (1, 0.5)], "empty": []},
        tmp_path / "curves.png",
        title="run",
    )
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="nothing to plot"):
        line_plots({"empty": []}, tmp_path / "none.png")
