"""rlenv's tool-call parsers measured from outside, on real model outputs.

The corpus (``tests/tools/data/public/calls_{dev,held_out}.jsonl``, schema in SCHEMA.md, sources
in SOURCES.md) holds outputs taken from inference engines' parser tests, model docs and bug
reports, each labelled with the calls the model meant and the number of malformed calls. For
every registered parser: at least 98% of its format's cases, on dev and on held-out apart, parse
to exactly the label (names and argument values compared as JSON, error count equal); and
``auto`` never reads a case differently from the format's own parser when that parser gets it
right (no format mistaken for another). Failures name case ids and a reason, never the text of a
held-out case. A format whose parser is not registered yet is skipped with the reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import tool_calls  # noqa: E402
import tool_calls_corpus as corpus  # noqa: E402

FLOOR = 0.98
CASES = corpus.load_corpus()
REGISTERED = set(tool_calls.registered_parsers())


def test_the_corpus_follows_its_schema():
    assert CASES, "no cases in tests/tools/data/public"
    assert all(case["source"].strip() for case in CASES)
    assert {case["format"] for case in CASES} <= set(corpus.FORMATS)
    for fmt in corpus.FORMATS:
        of_format = corpus.select(CASES, format=fmt)
        assert len(of_format) >= 10, f"{fmt}: {len(of_format)} cases, want at least 10"
        assert any(c["expected"]["errors"] for c in of_format), f"{fmt}: no malformed case"
        assert any(not c["expected"]["calls"] for c in of_format), f"{fmt}: no case without a call"
        assert corpus.select(of_format, split="held_out"), f"{fmt}: nothing held out"


def test_the_validator_refuses_a_broken_case(tmp_path):
    good = (corpus.FILES["dev"]).read_text(encoding="utf-8").splitlines()[0]
    broken = good.replace('"source": "', '"source": " ', 1).replace(
        '"format": "', '"format": "x', 1
    )
    (tmp_path / "dev.jsonl").write_text(broken + "\n", encoding="utf-8")
    with pytest.raises(corpus.CorpusError, match="format"):
        corpus.load_corpus({"dev": tmp_path / "dev.jsonl"})


def test_outcome_compares_values_as_json():
    case = {"expected": {"calls": [{"name": "f", "arguments": {"n": 10, "b": True}}], "errors": 0}}
    assert corpus.outcome(case, [("f", {"n": 10.0, "b": True})], 0) == "pass"
    assert corpus.outcome(case, [("f", {"n": 1, "b": 1})], 0) != "pass"  # a boolean is not 1
    assert corpus.outcome(case, [("f", {"n": "10", "b": True})], 0) != "pass"
    assert corpus.outcome(case, [("f", {"n": 10, "b": True})], 1) != "pass"
    assert corpus.outcome(case, [], 0) != "pass"


def _skip_unless_registered(fmt: str) -> None:
    if fmt not in REGISTERED:
        pytest.skip(f"no parser registered as {fmt!r} yet: its cases are not scored")


@pytest.mark.parametrize("split", corpus.SPLITS)
@pytest.mark.parametrize("fmt", corpus.FORMATS)
def test_each_parser_reads_its_formats_real_outputs(fmt, split):
    _skip_unless_registered(fmt)
    cases = corpus.select(CASES, split=split, format=fmt)
    outcomes = {c["id"]: corpus.outcome(c, *tool_calls.run_rlenv(fmt, c)) for c in cases}
    misses = {i: why for i, why in outcomes.items() if why != "pass"}
    rate = 1 - len(misses) / len(cases)
    assert rate >= FLOOR, f"{fmt} {split}: {rate:.1%} exact, failing: {misses}"


@pytest.mark.parametrize("fmt", corpus.FORMATS)
def test_auto_never_mistakes_one_format_for_another(fmt):
    _skip_unless_registered(fmt)
    confused = {}
    for case in corpus.select(CASES, format=fmt):
        named = tool_calls.run_rlenv(fmt, case)
        if not named[0] or corpus.outcome(case, *named) != "pass":
            continue  # judged above; here only what auto does with a case its format reads
        auto = tool_calls.run_rlenv("auto", case)
        if corpus.canonical_calls(auto[0]) != corpus.canonical_calls(named[0]):
            confused[case["id"]] = corpus.outcome(case, *auto)
    assert not confused, f"auto reads these {fmt} cases differently: {confused}"
