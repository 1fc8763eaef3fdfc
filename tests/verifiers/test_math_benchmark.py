"""benchmarks/math_verifier.py runs: rlenv's half on a tiny corpus made here (no peer needed),
the peers' half answers through its JSON files, and held-out cases are never printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import math_verifier  # noqa: E402
from math_corpus import split_of  # noqa: E402

SHA = "0123456789abcdef0123456789abcdef01234567"


def _ids(split: str, count: int, start: int = 1) -> list[str]:
    out, n = [], start
    while len(out) < count:
        case_id = f"tiny-{n:04d}"
        if split_of(case_id) == split:
            out.append(case_id)
        n += 1
    return out


@pytest.fixture
def tiny(tmp_path) -> Path:
    dev = iter(_ids("dev", 6))
    held = iter(_ids("heldout", 3))

    def row(case_id, gold, response, expected, **extra):
        fields = {
            "id": case_id,
            "source": f"huggingface/Math-Verify@{SHA}:tests/test_all.py:L{case_id[-2:]}",
            "gold": gold,
            "response": response,
            "input": "answer",
            "expected": expected,
            "category": "numbers",
            "policy": [],
            "split": split_of(case_id),
        }
        fields.update(extra)
        return fields

    rows = [
        row(next(dev), "1/2", "0.5", True, category="fractions"),
        row(next(dev), "3", "The answer is $\\boxed{3}$.", True, input="response"),
        row(next(dev), "3", "So the answer is 4.", False, input="response", category="extraction"),
        row(next(dev), "7", "DEV-MISS-SENTINEL", True, source="huggingface/Math-Verify#1"),
        row(next(dev), "50\\%", "0.5", True, category="percent", policy=["percent"]),
        row(next(dev), "x+1", "1+x", True, category="expressions", source="rlenv sample: test"),
        row(next(held), "7", "HELDOUT-MISS-SENTINEL", True),
        row(next(held), "2", "HELDOUT-OK-SENTINEL is 2", False, input="response"),
        row(next(held), "\\{1,2\\}", "\\{2,1\\}", True, category="sets"),
    ]
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rlenv_half_on_a_tiny_corpus(tiny, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["--cases", str(tiny), "--no-peers", "--no-hostile", "--int-pairs", "10"]
    assert math_verifier.main([*argv, "--show-errors", "dev", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))

    rlenv = report["graders"]["rlenv"]
    assert set(report["graders"]) == {"rlenv"}
    assert "grade" in rlenv["entry_point"] or "MathVerifier" in rlenv["entry_point"]
    assert rlenv["dev"]["all_labels"]["n"] == 6 and rlenv["heldout"]["all_labels"]["n"] == 3
    assert rlenv["dev"]["policy_tagged"]["n"] == 1 and rlenv["dev"]["untagged"]["n"] == 5
    dev = rlenv["dev"]["untagged"]
    assert dev["false_rejects"] >= 1  # the sentinel answers nothing
    assert dev["correct"] + dev["false_accepts"] + dev["false_rejects"] == dev["n"]
    assert rlenv["timing"]["calls"] == 9 and rlenv["timing"]["calls_per_s"] > 0
    assert rlenv["integers"]["n"] == 10
    assert set(rlenv["dev"]["per_category"]) >= {"fractions", "numbers", "expressions"}
    assert "huggingface/Math-Verify" in rlenv["dev"]["per_repo"]
    assert set(report["peers_unavailable"]) == {"math_verify", "gem", "verifiers"}

    # rlenv's dev miss is listed; held-out cases appear nowhere, not even in the JSON.
    assert "DEV-MISS-SENTINEL" in printed
    assert any(m["response"] == "DEV-MISS-SENTINEL" for m in report["rlenv_dev_misses"])
    text = out.read_text(encoding="utf-8")
    for secret in ("HELDOUT-MISS-SENTINEL", "HELDOUT-OK-SENTINEL"):
        assert secret not in printed and secret not in text
    assert all(cid.startswith("tiny-") for cid in rlenv["dev_verdicts"])
    assert len(rlenv["dev_verdicts"]) == 6


def test_the_old_file_is_graded_converted(tmp_path, capsys):
    old = tmp_path / "math_equivalence.jsonl"
    rows = [
        {"gold": "1000", "pred": "1,000", "equivalent": True, "category": "thousands",
         "source": "mv-all", "policy": False},
        {"gold": "2", "pred": "3", "equivalent": False, "category": "near_miss",
         "source": "rlenv", "policy": False},
    ]  # fmt: skip
    old.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = ["--cases", str(old), "--no-peers", "--no-hostile", "--int-pairs", "0"]
    assert math_verifier.main(argv) == 0
    assert "PER CATEGORY" in capsys.readouterr().out


def test_validate_only_reports_schema_problems(tmp_path, capsys):
    bad = tmp_path / "tiny.jsonl"
    bad.write_text('{"id": "tiny-0001"}\n', encoding="utf-8")
    assert math_verifier.main(["--cases", str(bad), "--validate-only"]) == 1
    assert "tiny.jsonl:1: gold: missing" in capsys.readouterr().err


def test_the_peers_half_answers_through_json(tiny, tmp_path):
    """The exchange works with whatever peers this interpreter has (none in rlenv's venv)."""
    out = tmp_path / "report.json"
    argv = [
        "--cases", str(tiny), "--peers-python", sys.executable, "--no-hostile",
        "--int-pairs", "0", "--peer-selfcheck", "0", "--json", str(out),
    ]  # fmt: skip
    assert math_verifier.main(argv) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    graded = set(report["graders"]) - {"rlenv"}
    assert graded | set(report["peers_unavailable"]) == {"math_verify", "gem", "verifiers"}
    assert report["peers_half_python"]  # the child answered
    for name in graded:
        assert report["graders"][name]["timing"]["calls"] == 9


def test_rlenv_survives_a_hostile_input_in_a_forked_child():
    grade, _ = math_verifier.load_rlenv()
    row = math_verifier.run_hostile_call(grade, "1", "9^{9^{9^9}}", limit=60)
    assert not row["timed_out"] and row["result"] is False and row["error"] is None
