"""The public tool-call corpus: ``tests/tools/data/public/calls_{dev,held_out}.jsonl``.

Real model outputs with the calls the model meant, one JSON object per line, in the format
``tests/tools/data/public/SCHEMA.md`` describes (sources in ``SOURCES.md`` beside it). This module
reads and validates both files (each problem is reported as ``file:line: field: what is wrong``),
holds the one definition of the dev/held-out split (:func:`split_of`) and of what "parsed to
exactly the expected calls" means (:func:`canonical_calls`, :func:`outcome`).

Standard library only: the benchmark's peer half imports it from a virtual environment that has
no rlenv in it.

    from tool_calls_corpus import load_corpus, outcome
    cases = load_corpus()                      # both files, validated
    ok = outcome(case, calls, errors) == "pass"

A case is a plain dict with the schema's fields plus ``split`` (``"dev"`` or ``"held_out"``),
``file`` and ``line``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "tests" / "tools" / "data" / "public"
SPLITS = ("dev", "held_out")
FILES = {split: CORPUS_DIR / f"calls_{split}.jsonl" for split in SPLITS}
HELD_OUT_FRACTION = 1 / 3
REQUIRED = {"id": str, "format": str, "family": str, "text": str, "expected": dict, "source": str}
OPTIONAL = {"tools": list, "note": str}

FORMATS = (
    "hermes", "qwen3_xml", "harmony", "deepseek_v3", "deepseek_v31", "kimi_k2", "glm45",
    "mistral", "llama3_json", "pythonic", "phi4_mini", "granite", "internlm", "minimax_m2",
    "gemma4", "functiongemma",
)  # fmt: skip
"""The parser names the corpus is labelled for (``format`` of a case is one of them)."""


class CorpusError(ValueError):
    """The corpus files break the schema; the message lists every problem found."""


def split_of(case_id: str, ids_of_format: Iterable[str]) -> str:
    """``held_out`` for the third of a format's cases whose ids hash lowest, else ``dev``.

    The hash is SHA-256 of the id; ``round(n / 3)`` of the ``n`` cases of a format are held out,
    so every format has held-out cases and the choice never depends on the labels.
    """
    ranked = sorted(ids_of_format, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    held = set(ranked[: round(len(ranked) * HELD_OUT_FRACTION)])
    return "held_out" if case_id in held else "dev"


def _problems(case: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for field, kind in REQUIRED.items():
        if not isinstance(case.get(field), kind):
            problems.append(f"{where}: {field}: missing or not a {kind.__name__}")
    for field, kind in OPTIONAL.items():
        if field in case and not isinstance(case[field], kind):
            problems.append(f"{where}: {field}: not a {kind.__name__}")
    unknown = set(case) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        problems.append(f"{where}: unknown fields {sorted(unknown)}")
    if isinstance(case.get("format"), str) and case["format"] not in FORMATS:
        problems.append(f"{where}: format: {case['format']!r} is not one of {FORMATS}")
    if isinstance(case.get("source"), str) and not case["source"].strip():
        problems.append(f"{where}: source: empty")
    expected = case.get("expected")
    if isinstance(expected, dict):
        calls, errors = expected.get("calls"), expected.get("errors")
        if set(expected) != {"calls", "errors"}:
            problems.append(f"{where}: expected: keys must be calls and errors")
        if not isinstance(errors, int) or isinstance(errors, bool) or errors < 0:
            problems.append(f"{where}: expected.errors: not a count")
        if not isinstance(calls, list) or not all(
            isinstance(c, dict)
            and set(c) == {"name", "arguments"}
            and isinstance(c["name"], str)
            and isinstance(c["arguments"], dict)
            for c in calls
        ):
            problems.append(f"{where}: expected.calls: not a list of {{name, arguments}}")
    for tool in case.get("tools") or []:
        if not (isinstance(tool, dict) and isinstance(tool.get("function", {}).get("name"), str)):
            problems.append(f"{where}: tools: not OpenAI-format tool schemas")
            break
    return problems


def load_corpus(files: Mapping[str, Path] | None = None) -> list[dict[str, Any]]:
    """Every case of both files, validated; raises :class:`CorpusError` listing all problems.

    Checks the schema, unique ids across both files, that each case sits in the file its id's
    hash assigns it to (:func:`split_of`), and that a ``derived:`` case sits with its origin."""
    files = dict(files or FILES)
    cases: list[dict[str, Any]] = []
    problems: list[str] = []
    for split, path in files.items():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.name}:{number}"
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"{where}: not JSON ({error})")
                continue
            if not isinstance(case, dict):
                problems.append(f"{where}: not an object")
                continue
            problems += _problems(case, where)
            cases.append({**case, "split": split, "file": path.name, "line": number})
    seen: dict[str, str] = {}
    for case in cases:
        where = f"{case['file']}:{case['line']}"
        if case.get("id") in seen:
            problems.append(f"{where}: id: {case.get('id')!r} already at {seen[case['id']]}")
        seen[case.get("id")] = where
    by_format: dict[str, list[str]] = {}
    for case in cases:
        by_format.setdefault(case.get("format"), []).append(case.get("id"))
    for case in cases:
        want = split_of(case["id"], by_format[case["format"]]) if case.get("id") else None
        if want and want != case["split"]:
            problems.append(f"{case['file']}:{case['line']}: id: belongs in calls_{want}.jsonl")
    split_by_id = {case.get("id"): case["split"] for case in cases}
    for case in cases:
        origin = str(case.get("source", "")).removeprefix("derived:").split()[0]
        if (
            str(case.get("source", "")).startswith("derived:")
            and split_by_id.get(origin) != case["split"]
        ):
            problems.append(
                f"{case['file']}:{case['line']}: source: derived from {origin!r}, "
                "which is not a case of the same split"
            )
    if problems:
        raise CorpusError("\n".join(problems))
    return cases


def _canonical(value: Any) -> Any:
    """JSON value with numbers compared by value (``10 == 10.0``) but booleans kept apart."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return repr(value)  # not JSON: never equal to a label


def canonical_calls(calls: Sequence[tuple[str, Any]]) -> str:
    """``(name, arguments)`` pairs as one comparable string (order of calls kept)."""
    return json.dumps([[name, _canonical(args)] for name, args in calls], sort_keys=True)


def outcome(case: Mapping[str, Any], calls: Sequence[tuple[str, Any]], errors: int) -> str:
    """``"pass"`` when ``calls`` and the number of malformed ``errors`` are exactly the label's;
    otherwise a one-line reason (without the case's text)."""
    expected = case["expected"]
    want = [(c["name"], c["arguments"]) for c in expected["calls"]]
    same_calls = canonical_calls(calls) == canonical_calls(want)
    if same_calls and errors == expected["errors"]:
        return "pass"
    reasons = []
    if not same_calls:
        got_names, want_names = [n for n, _ in calls], [n for n, _ in want]
        if got_names != want_names:
            reasons.append(f"calls {got_names} != expected {want_names}")
        else:
            reasons.append("argument values differ")
    if errors != expected["errors"]:
        reasons.append(f"{errors} errors != expected {expected['errors']}")
    return "; ".join(reasons)


def select(
    cases: Iterable[Mapping[str, Any]], *, split: str | None = None, format: str | None = None
) -> list[Mapping[str, Any]]:
    """The cases of one split and/or one format, in file order."""
    return [
        c
        for c in cases
        if (split is None or c["split"] == split) and (format is None or c["format"] == format)
    ]
