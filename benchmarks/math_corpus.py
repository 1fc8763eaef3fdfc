"""The public math-grading corpus: ``tests/verifiers/data/public/*.jsonl``.

One JSON object per line, in the format ``tests/verifiers/data/public/SCHEMA.md`` describes. This
module reads and validates every file of that folder (each problem is reported as
``file:line: field: what is wrong``), holds the one definition of the dev/held-out split
(:func:`split_of`), and selects cases by split, source, category and input kind.

Standard library only: the benchmark's peer half imports it from a virtual environment that has
no rlenv in it.

    from math_corpus import load_corpus, select
    cases = load_corpus()                                   # every file, validated
    dev = select(cases, split="dev", input="response")

A case is a plain dict with the schema's fields plus ``file`` (the file's stem) and ``line``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "tests" / "verifiers" / "data" / "public"
LEGACY_FILE = ROOT / "tests" / "verifiers" / "data" / "math_equivalence.jsonl"

CATEGORIES = (
    "extraction",
    "latex",
    "numbers",
    "fractions",
    "units",
    "percent",
    "sets",
    "tuples",
    "intervals",
    "inequalities",
    "equations",
    "expressions",
    "matrices",
    "functions",
    "mcq",
    "text",
    "labelled",
    "hack",
)
POLICY_TAGS = (
    "decimal_comma",
    "x_prefix",
    "percent",
    "units",
    "tolerance",
    "mcq",
    "thousands_space",
)
INPUT_KINDS = ("response", "answer")
SPLITS = ("dev", "heldout")
REQUIRED = {
    "id": str,
    "source": str,
    "gold": str,
    "response": str,
    "input": str,
    "expected": bool,
    "category": str,
    "policy": list,
    "split": str,
}
OPTIONAL = {"note": str}

# owner/repo@<commit sha>:path/to/file.py:L123 (a range L123-L130 is accepted too)
_AT_COMMIT = re.compile(
    r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)@(?P<sha>[0-9a-f]{7,40}):(?P<path>\S+?):L\d+(?:-L?\d+)?"
)
_ISSUE = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)#\d+")
_DERIVED = re.compile(r"derived:(?P<id>[\w.-]+-\d+)")
_RLENV_SAMPLE = re.compile(r"rlenv sample: \S.*", re.S)


class CorpusError(ValueError):
    """The corpus does not follow SCHEMA.md; ``problems`` lists every ``file:line: ...`` found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        super().__init__(
            f"{len(self.problems)} problem(s) in the math corpus:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )


def split_of(case_id: str) -> str:
    """``heldout`` for about one case in four, ``dev`` for the rest: the one definition.

    ``heldout`` when ``int(sha256(id).hexdigest(), 16) % 4 == 0``. Held-out cases are never
    looked at while tuning the verifier: only their aggregate numbers are ever printed.
    """
    digest = hashlib.sha256(case_id.encode("utf-8")).hexdigest()
    return "heldout" if int(digest, 16) % 4 == 0 else "dev"


def original_id(case: dict, by_id: dict[str, dict]) -> str:
    """The id of the case a derived near miss was made from, following ``derived:`` links to
    the first case that is not derived (the case's own id when it is not derived)."""
    seen = {case["id"]}
    while (match := _DERIVED.fullmatch(case.get("source") or "")) and match["id"] in by_id:
        if match["id"] in seen:
            break
        seen.add(match["id"])
        case = by_id[match["id"]]
    return case["id"]


def expected_split(case: dict, by_id: dict[str, dict]) -> str:
    """A case's split: :func:`split_of` its id, or, for a derived near miss, its original's
    (so a held-out case never shows up in the dev split with one thing changed)."""
    return split_of(original_id(case, by_id))


def source_kind(source: str) -> str | None:
    """``commit``, ``issue``, ``derived`` or ``rlenv``; ``None`` for a source of no known form."""
    for kind, pattern in (
        ("commit", _AT_COMMIT),
        ("issue", _ISSUE),
        ("derived", _DERIVED),
        ("rlenv", _RLENV_SAMPLE),
    ):
        if pattern.fullmatch(source):
            return kind
    return None


def source_repo(source: str) -> str:
    """The repository a source names (the part before ``@`` or ``#``); ``derived`` for a
    near miss made from another case, ``rlenv sample`` for rlenv's own model samples.

    :func:`case_repo` follows ``derived:`` links to the repository of the original case.
    """
    kind = source_kind(source)
    if kind in ("commit", "issue"):
        return re.split(r"[@#]", source, maxsplit=1)[0]
    if kind == "rlenv":
        return "rlenv sample"
    if kind == "derived":
        return "derived"
    return source.split(":", 1)[0] or "unknown"


def case_repo(case: dict, by_id: dict[str, dict] | None = None) -> str:
    """The repository of a case; a derived case reads ``<repo of its original> (derived)``."""
    seen: set[str] = set()
    source = case["source"]
    derived = False
    while by_id is not None and (match := _DERIVED.fullmatch(source)) and match["id"] in by_id:
        if match["id"] in seen:
            break
        seen.add(match["id"])
        derived = True
        source = by_id[match["id"]]["source"]
    repo = source_repo(source)
    return f"{repo} (derived)" if derived and repo != "derived" else repo


def validate_row(row: object, stem: str | None = None) -> list[str]:
    """Problems with one parsed line, each as ``field: what is wrong`` (empty when none)."""
    if not isinstance(row, dict):
        return [f"(line): not a JSON object but {type(row).__name__}"]
    problems = []
    for key, typ in REQUIRED.items():
        if key not in row:
            problems.append(f"{key}: missing")
        elif not isinstance(row[key], typ):
            problems.append(f"{key}: {type(row[key]).__name__}, not {typ.__name__}")
    for key, typ in OPTIONAL.items():
        if key in row and not isinstance(row[key], typ):
            problems.append(f"{key}: {type(row[key]).__name__}, not {typ.__name__}")
    for key in sorted(set(row) - set(REQUIRED) - set(OPTIONAL)):
        problems.append(f"{key}: unknown field")
    if isinstance(row.get("id"), str):
        if stem is not None and not re.fullmatch(re.escape(stem) + r"-\d+", row["id"]):
            problems.append(f"id: {row['id']!r} is not '{stem}-<n>'")
        derived = isinstance(row.get("source"), str) and _DERIVED.fullmatch(row["source"])
        own = split_of(row["id"])
        if isinstance(row.get("split"), str) and not derived and row["split"] != own:
            problems.append(
                f"split: {row['split']!r}, but split_of({row['id']!r}) is {split_of(row['id'])!r}"
            )
    if isinstance(row.get("split"), str) and row["split"] not in SPLITS:
        problems.append(f"split: {row['split']!r} is not one of {', '.join(SPLITS)}")
    if isinstance(row.get("input"), str) and row["input"] not in INPUT_KINDS:
        problems.append(f"input: {row['input']!r} is not one of {', '.join(INPUT_KINDS)}")
    if isinstance(row.get("category"), str) and row["category"] not in CATEGORIES:
        problems.append(f"category: {row['category']!r} is not one of the schema's categories")
    if isinstance(row.get("policy"), list):
        for tag in row["policy"]:
            if tag not in POLICY_TAGS:
                problems.append(f"policy: {tag!r} is not one of {', '.join(POLICY_TAGS)}")
        if len(set(map(str, row["policy"]))) != len(row["policy"]):
            problems.append("policy: a tag is repeated")
    if isinstance(row.get("source"), str) and source_kind(row["source"]) is None:
        problems.append(
            f"source: {row['source'][:80]!r} is none of owner/repo@<sha>:path:L<n>, "
            "owner/repo#<n>, derived:<id>, rlenv sample: ..."
        )
    if isinstance(row.get("gold"), str) and not row["gold"].strip():
        problems.append("gold: empty")
    return problems


def load_file(path: Path | str) -> tuple[list[dict], list[str]]:
    """The cases of one corpus file and the problems found in it (``file:line: field: ...``)."""
    path = Path(path)
    cases: list[dict] = []
    problems: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            where = f"{path.name}:{lineno}"
            if not line.strip():
                problems.append(f"{where}: (line): blank line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: (line): invalid JSON ({exc})")
                continue
            row_problems = validate_row(row, path.stem)
            problems.extend(f"{where}: {p}" for p in row_problems)
            if isinstance(row, dict):
                row = dict(row, file=path.stem, line=lineno)
                row["policy"] = list(row.get("policy") or [])
                cases.append(row)
    return cases, problems


def corpus_files(directory: Path | str = CORPUS_DIR) -> list[Path]:
    return sorted(Path(directory).glob("*.jsonl"))


def check_links(cases: Sequence[dict]) -> list[str]:
    """Problems across files: ids repeated, ``derived:`` links to ids that do not exist, a
    derived case in another split than its original."""
    problems = []
    first: dict[str, str] = {}
    for case in cases:
        case_id = case.get("id")
        if not isinstance(case_id, str):
            continue
        where = f"{case['file']}.jsonl:{case['line']}"
        if case_id in first:
            problems.append(f"{where}: id: {case_id!r} is also at {first[case_id]}")
        else:
            first[case_id] = where
    for case in cases:
        match = _DERIVED.fullmatch(case.get("source") or "")
        if match and match["id"] not in first:
            where = f"{case['file']}.jsonl:{case['line']}"
            problems.append(f"{where}: source: derived from {match['id']!r}, which no file has")
        elif match and match["id"] == case.get("id"):
            where = f"{case['file']}.jsonl:{case['line']}"
            problems.append(f"{where}: source: derived from itself")
    by_id = {case["id"]: case for case in cases if isinstance(case.get("id"), str)}
    for case in cases:
        if _DERIVED.fullmatch(case.get("source") or "") and isinstance(case.get("split"), str):
            want = expected_split(case, by_id)
            if case["split"] != want:
                where = f"{case['file']}.jsonl:{case['line']}"
                problems.append(
                    f"{where}: split: {case['split']!r}, but the case it is derived from "
                    f"({original_id(case, by_id)}) is in {want!r}"
                )
    return problems


def load_corpus(
    directory: Path | str = CORPUS_DIR, files: Iterable[Path | str] | None = None
) -> list[dict]:
    """Every case of every ``*.jsonl`` in ``directory`` (or of ``files``), validated.

    Raises :class:`CorpusError` listing every problem (``file:line: field: ...``) when any file
    breaks the schema, and ``FileNotFoundError`` when there is no file at all.
    """
    paths = [Path(p) for p in files] if files is not None else corpus_files(directory)
    if not paths:
        raise FileNotFoundError(f"no *.jsonl corpus file in {directory}")
    cases: list[dict] = []
    problems: list[str] = []
    for path in paths:
        file_cases, file_problems = load_file(path)
        cases.extend(file_cases)
        problems.extend(file_problems)
    problems.extend(check_links(cases))
    if problems:
        raise CorpusError(problems)
    return cases


def from_legacy(path: Path | str = LEGACY_FILE) -> list[dict]:
    """The old ``math_equivalence.jsonl`` (gold, pred, equivalent, category, source, policy as a
    bool) read as corpus cases: bare answers, ids ``<stem>-<line>``, the split from
    :func:`split_of`, its own categories kept, a policy label tagged ``legacy_policy``."""
    path = Path(path)
    cases = []
    problems = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                case_id = f"{path.stem}-{lineno:04d}"
                case = {
                    "id": case_id,
                    "source": f"legacy {row['source']}",
                    "gold": row["gold"],
                    "response": row["pred"],
                    "input": "answer",
                    "expected": bool(row["equivalent"]),
                    "category": row["category"],
                    "policy": ["legacy_policy"] if row.get("policy") else [],
                    "split": split_of(case_id),
                    "file": path.stem,
                    "line": lineno,
                }
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                problems.append(f"{path.name}:{lineno}: (line): {type(exc).__name__}: {exc}")
                continue
            if "note" in row:
                case["note"] = row["note"]
            cases.append(case)
    if problems:
        raise CorpusError(problems)
    return cases


def is_legacy_file(path: Path | str) -> bool:
    """Whether a JSONL file is in the old format (``pred``/``equivalent``, no ``id``)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(row, dict) and "pred" in row and "id" not in row
    return False


def load_any(path: Path | str | None = None) -> list[dict]:
    """A corpus folder, one corpus file, or the old-format file (converted), by what ``path`` is."""
    if path is None:
        return load_corpus()
    path = Path(path)
    if path.is_dir():
        return load_corpus(path)
    if is_legacy_file(path):
        return from_legacy(path)
    return load_corpus(files=[path])


def _matches(value: str, wanted: str | Sequence[str] | None) -> bool:
    if wanted is None:
        return True
    return value in ((wanted,) if isinstance(wanted, str) else tuple(wanted))


def select(
    cases: Iterable[dict],
    *,
    split: str | Sequence[str] | None = None,
    source: str | Sequence[str] | None = None,
    category: str | Sequence[str] | None = None,
    input: str | Sequence[str] | None = None,
    policy: bool | None = None,
    expected: bool | None = None,
) -> list[dict]:
    """The cases that match every filter given.

    ``source`` matches a file stem (``math_verify``), a repository (``huggingface/Math-Verify``),
    or a source kind (``commit``, ``issue``, ``derived``, ``rlenv``). ``policy``: ``True`` keeps
    the cases whose label carries a policy tag, ``False`` the others.
    """
    out = []
    for case in cases:
        if not _matches(case["split"], split) or not _matches(case["category"], category):
            continue
        if not _matches(case["input"], input):
            continue
        if source is not None and not (
            _matches(case.get("file", ""), source)
            or _matches(source_repo(case["source"]), source)
            or _matches(source_kind(case["source"]) or "", source)
        ):
            continue
        if policy is not None and bool(case["policy"]) != policy:
            continue
        if expected is not None and case["expected"] != expected:
            continue
        out.append(case)
    return out


def summary(cases: Sequence[dict]) -> dict:
    """Counts per file, split, category, input kind and policy tag (no case content)."""

    def count(key) -> dict:
        out: dict[str, dict[str, int]] = {}
        for case in cases:
            for k in key(case):
                entry = out.setdefault(k, {"n": 0, "true": 0, "false": 0})
                entry["n"] += 1
                entry["true" if case["expected"] else "false"] += 1
        return dict(sorted(out.items()))

    return {
        "cases": len(cases),
        "true": sum(c["expected"] for c in cases),
        "false": sum(not c["expected"] for c in cases),
        "policy": sum(bool(c["policy"]) for c in cases),
        "per_file": count(lambda c: [c.get("file", "?")]),
        "per_split": count(lambda c: [c["split"]]),
        "per_category": count(lambda c: [c["category"]]),
        "per_input": count(lambda c: [c["input"]]),
        "per_policy_tag": count(lambda c: c["policy"]),
    }


def print_summary(info: dict) -> None:
    print(
        f"{info['cases']} cases: {info['true']} expected true, {info['false']} expected false, "
        f"{info['policy']} with a policy-tagged label"
    )
    for title, key in (
        ("file", "per_file"),
        ("split", "per_split"),
        ("input", "per_input"),
        ("category", "per_category"),
        ("policy tag", "per_policy_tag"),
    ):
        parts = [f"{k} {v['n']} ({v['false']} neg)" for k, v in info[key].items()]
        print(f"  {title}: " + (", ".join(parts) if parts else "none"))


if __name__ == "__main__":
    import sys

    try:
        loaded = load_any(sys.argv[1] if len(sys.argv) > 1 else None)
    except (CorpusError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    print_summary(summary(loaded))
