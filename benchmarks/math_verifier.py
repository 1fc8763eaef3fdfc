"""Math-answer equivalence: Hugging Face math-verify vs rlenv's ``is_equivalent``, side by side.

Both graders run in this one process, from the main thread (math-verify's timeouts use
``signal.alarm``, which only works there), on the same inputs:

- the labelled cases in ``tests/verifiers/data/math_equivalence.jsonl`` (gold, pred, expected
  verdict, category, whether the verdict depends on an rlenv policy choice; see SOURCES.md);
- plain integer answers: ``--int-pairs`` random gold/pred pairs (seeded), half of them equal;
- a hostile set (``9^{9^{9^9}}``, ``100000!``, 100 KB of nested brackets, ``\\boxed{}`` repeated
  10,000 times, ``10^{10^{10}}``, ``(x+1)^{100000}``, 64 KB of random LaTeX, ...) compared with
  the gold ``1``. Each hostile call runs in a forked child (where it is again the main thread,
  so math-verify's alarms work), timed inside the child with ``time.perf_counter``, under a 4 GiB
  address-space limit, and killed after ``--hostile-limit`` seconds; a killed call is reported
  as ``>= limit``.

Every call is timed with ``time.perf_counter``. Throughput is calls / summed call time; the
worst case is the slowest single call. A grader that raises counts as "not equivalent" and the
run goes on (exceptions are counted and reported).

How math-verify is called. Its ``parse`` only reads LaTeX inside ``$...$``, ``\\(...\\)``,
``\\[...\\]`` or ``\\boxed{}``, and otherwise falls back to a plain-number/expression regex, so a
bare answer string such as ``\\frac{1}{2}`` or ``\\{1,2\\}`` is not seen as LaTeX at all. Each
case is therefore graded as ``verify(parse(wrap(gold)), parse(wrap(pred)))`` with default
``parse``/``verify`` settings (6-place float rounding, 5 s timeouts) under three wrappings,
applied identically to gold and pred:

- ``dollar`` (the fair default): ``$s$``, unless ``s`` is empty, already starts with a math
  delimiter (``$``, ``\\(``, ``\\[``) or contains ``\\boxed``/``\\fbox``, in which case it is left
  as is;
- ``boxed``: ``\\boxed{s}`` under the same exceptions;
- ``raw``: the string unchanged.

The wrapping with the highest accuracy on the labelled cases is used for the reported numbers
(all three accuracies are printed; ``--mv-mode`` forces one). math-verify keeps small
``lru_cache``s of parsed strings; they are cleared before every measured pass.

rlenv's verifier is imported lazily (``rlenv.verifiers.math.is_equivalent``) and called as
``is_equivalent(gold, pred)`` on the raw strings, with its default timeout.

Usage::

    python benchmarks/math_verifier.py [--quick] [--json PATH] [--show-errors]
    python benchmarks/math_verifier.py --validate-only     # check the dataset, print counts

``--stub-rlenv`` is for testing this script only: it replaces rlenv's verifier with a trivial
inline string/number comparison, so the math-verify half can run before rlenv's exists. Its
numbers say nothing about rlenv.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import math
import multiprocessing
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ROOT / "tests" / "verifiers" / "data" / "math_equivalence.jsonl"
REQUIRED = {
    "gold": str,
    "pred": str,
    "equivalent": bool,
    "category": str,
    "source": str,
    "policy": bool,
}
OPTIONAL = {"note": str}
MV_MODES = ("dollar", "boxed", "raw")
HOSTILE_MEMORY_BYTES = 4 * 1024**3

Grader = Callable[[str, str], bool]


class _TimeoutCounter(logging.Handler):
    """Counts math-verify's internal timeout warnings instead of printing them (they echo the
    whole input, which is 100 KB for some hostile cases)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Timeout"):
            self.count += 1


MV_TIMEOUTS = _TimeoutCounter()


# --------------------------------------------------------------------------- dataset


def load_cases(path: Path) -> list[dict]:
    """Read and validate the labelled cases; raise ValueError listing every problem found."""
    problems: list[str] = []
    cases: list[dict] = []
    seen: dict[tuple[str, str], int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                problems.append(f"line {lineno}: blank line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {lineno}: invalid JSON ({exc})")
                continue
            if not isinstance(row, dict):
                problems.append(f"line {lineno}: not an object")
                continue
            for key, typ in REQUIRED.items():
                if key not in row:
                    problems.append(f"line {lineno}: missing {key!r}")
                elif not isinstance(row[key], typ):
                    problems.append(f"line {lineno}: {key!r} is not {typ.__name__}")
            for key in set(row) - set(REQUIRED) - set(OPTIONAL):
                problems.append(f"line {lineno}: unknown field {key!r}")
            if "note" in row and not isinstance(row["note"], str):
                problems.append(f"line {lineno}: 'note' is not str")
            pair = (row.get("gold"), row.get("pred"))
            if pair in seen:
                problems.append(f"line {lineno}: duplicate (gold, pred) of line {seen[pair]}")
            else:
                seen[pair] = lineno
            row["line"] = lineno
            cases.append(row)
    if problems:
        raise ValueError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return cases


def dataset_summary(cases: list[dict]) -> dict:
    per_cat: dict[str, dict[str, int]] = {}
    for case in cases:
        entry = per_cat.setdefault(case["category"], {"true": 0, "false": 0, "policy": 0})
        entry["true" if case["equivalent"] else "false"] += 1
        entry["policy"] += case["policy"]
    return {
        "cases": len(cases),
        "true": sum(c["equivalent"] for c in cases),
        "false": sum(not c["equivalent"] for c in cases),
        "policy": sum(c["policy"] for c in cases),
        "per_category": dict(sorted(per_cat.items())),
        "per_source": dict(collections.Counter(c["source"] for c in cases).most_common()),
    }


def print_dataset_summary(summary: dict) -> None:
    print(
        f"{summary['cases']} cases: {summary['true']} equivalent, {summary['false']} not, "
        f"{summary['policy']} policy-dependent"
    )
    print(f"  {'category':<12} {'true':>5} {'false':>6} {'policy':>7}")
    for cat, entry in summary["per_category"].items():
        print(f"  {cat:<12} {entry['true']:>5} {entry['false']:>6} {entry['policy']:>7}")
    print("  sources: " + ", ".join(f"{k} {v}" for k, v in summary["per_source"].items()))


def quick_subset(cases: list[dict], per_category: int = 4) -> list[dict]:
    """The first few cases of every category, keeping both verdicts where a category has them."""
    picked: list[dict] = []
    for cat in sorted({c["category"] for c in cases}):
        rows = [c for c in cases if c["category"] == cat]
        trues = [c for c in rows if c["equivalent"]][: per_category // 2]
        falses = [c for c in rows if not c["equivalent"]][: per_category - len(trues)]
        chosen = trues + falses
        chosen += [c for c in rows if c not in chosen][: per_category - len(chosen)]
        picked.extend(chosen)
    return sorted(picked, key=lambda c: c["line"])


# --------------------------------------------------------------------------- graders


def _math_delimited(s: str) -> bool:
    return s.startswith(("$", "\\(", "\\[")) or "\\boxed" in s or "\\fbox" in s


def mv_wrap(s: str, mode: str) -> str:
    """Present an answer string to math-verify's extractor (see the module docstring)."""
    if mode == "raw":
        return s
    stripped = s.strip()
    if not stripped or _math_delimited(stripped):
        return s
    return f"${stripped}$" if mode == "dollar" else f"\\boxed{{{stripped}}}"


def make_math_verify(mode: str) -> Grader:
    from math_verify import parse, verify

    mv_logger = logging.getLogger("math_verify")
    if MV_TIMEOUTS not in mv_logger.handlers:
        mv_logger.addHandler(MV_TIMEOUTS)
        mv_logger.propagate = False

    def grade(gold: str, pred: str) -> bool:
        return bool(verify(parse(mv_wrap(gold, mode)), parse(mv_wrap(pred, mode))))

    return grade


def clear_math_verify_caches() -> None:
    from math_verify import parser

    for value in vars(parser).values():
        clear = getattr(value, "cache_clear", None)
        if callable(clear):
            clear()


def load_rlenv(stub: bool) -> Grader:
    if stub:
        return _stub_is_equivalent
    try:
        from rlenv.verifiers.math import is_equivalent
    except ImportError as exc:
        raise SystemExit(
            "benchmarks/math_verifier.py: cannot import rlenv.verifiers.math.is_equivalent "
            f"({exc}).\nrlenv's math verifier is not there yet; run with --stub-rlenv to exercise "
            "the math-verify half of this benchmark (the stub's numbers mean nothing), or "
            "--validate-only to check the dataset."
        ) from exc
    # One-time costs a training run pays once, not per call: import mpmath, start sympy's worker.
    from rlenv.verifiers import _symbolic
    from rlenv.verifiers import math as rlenv_math

    is_equivalent("\\sqrt{2}", "2^{1/2}")
    _symbolic.warm_up()
    # Cold caches for the timed passes, as math-verify's are cleared before each of its passes.
    rlenv_math._normalize_cached.cache_clear()
    rlenv_math._parse_cached.cache_clear()
    return is_equivalent


def _stub_is_equivalent(gold: str, pred: str) -> bool:
    """TESTING ONLY, not rlenv's verifier: strip a few wrappers, compare numbers or strings."""

    def norm(s: str) -> str:
        s = s.strip().strip("$").strip()
        if s.startswith("\\boxed{") and s.endswith("}"):
            s = s[len("\\boxed{") : -1]
        for old in ("\\left", "\\right", "\\!", "\\,", "{,}", " ", "\\dfrac", "\\tfrac"):
            s = s.replace(old, "\\frac" if old in ("\\dfrac", "\\tfrac") else "")
        return s

    a, b = norm(gold), norm(pred)
    if not b:
        return False
    try:
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
    except ValueError:
        return a == b
    return math.isclose(x, y, rel_tol=1e-4)


# --------------------------------------------------------------------------- timing


def timed(grader: Grader, gold: str, pred: str) -> tuple[bool, float, str | None]:
    """One call, timed; an exception is a "not equivalent" verdict plus its name."""
    start = time.perf_counter()
    try:
        result = bool(grader(gold, pred))
        error = None
    except Exception as exc:  # any grader failure counts as "not equivalent"
        result, error = False, f"{type(exc).__name__}: {str(exc)[:200]}"
    return result, time.perf_counter() - start, error


def run_pass(
    grader: Grader, pairs: list[tuple[str, str]], before: Callable[[], None] | None = None
):
    if before is not None:
        before()
    MV_TIMEOUTS.count = 0
    results, seconds, errors = [], [], []
    for gold, pred in pairs:
        ok, dt, err = timed(grader, gold, pred)
        results.append(ok)
        seconds.append(dt)
        errors.append(err)
    return results, seconds, errors


def accuracy(cases: list[dict], results: list[bool], keep: Callable[[dict], bool] = lambda c: True):
    picked = [(c, r) for c, r in zip(cases, results, strict=True) if keep(c)]
    if not picked:
        return None
    return sum(r == c["equivalent"] for c, r in picked) / len(picked)


def grader_report(cases: list[dict], results, seconds, errors) -> dict:
    per_cat = {}
    for cat in sorted({c["category"] for c in cases}):
        idx = [i for i, c in enumerate(cases) if c["category"] == cat]
        per_cat[cat] = {
            "n": len(idx),
            "accuracy": sum(results[i] == cases[i]["equivalent"] for i in idx) / len(idx),
        }
    wrong = [
        {
            "line": c["line"],
            "category": c["category"],
            "gold": c["gold"],
            "pred": c["pred"],
            "expected": c["equivalent"],
            "got": r,
            "policy": c["policy"],
            "source": c["source"],
            "note": c.get("note"),
            "error": e,
        }
        for c, r, e in zip(cases, results, errors, strict=True)
        if r != c["equivalent"]
    ]
    worst = max(range(len(seconds)), key=seconds.__getitem__)
    return {
        "accuracy": {
            "all": accuracy(cases, results),
            "non_policy": accuracy(cases, results, lambda c: not c["policy"]),
            "policy": accuracy(cases, results, lambda c: c["policy"]),
            "expected_true": accuracy(cases, results, lambda c: c["equivalent"]),
            "expected_false": accuracy(cases, results, lambda c: not c["equivalent"]),
        },
        "false_positives": sum(1 for w in wrong if not w["expected"]),
        "false_negatives": sum(1 for w in wrong if w["expected"]),
        "per_category": per_cat,
        "calls_per_s_labelled": len(seconds) / sum(seconds),
        "median_call_s_labelled": sorted(seconds)[len(seconds) // 2],
        "worst_call_s_labelled": seconds[worst],
        "worst_call_case": {
            "line": cases[worst]["line"],
            "gold": cases[worst]["gold"],
            "pred": cases[worst]["pred"],
        },
        "exceptions": sum(e is not None for e in errors),
        "wrong": wrong,
    }


def integer_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        gold = rng.randint(-(10**6), 10**9)
        pred = gold if i % 2 == 0 else gold + rng.choice([-1, 1]) * rng.randint(1, 10**6)
        pairs.append((str(gold), str(pred)))
    rng.shuffle(pairs)
    return pairs


# --------------------------------------------------------------------------- hostile inputs


def hostile_inputs(seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    tokens = [
        "\\frac{",
        "}{",
        "}",
        "{",
        "x",
        "y",
        "^",
        "_",
        "\\sqrt{",
        "\\sqrt[3]{",
        "+",
        "-",
        "\\cdot",
        "(",
        ")",
        "\\left(",
        "\\right)",
        "[",
        "]",
        "\\pi",
        "e",
        "\\infty",
        "=",
        "<",
        ",",
        "!",
        "\\sin",
        "\\log",
        "\\int",
        "\\sum_{",
        "\\begin{pmatrix}",
        "&",
        "\\\\",
        "\\end{pmatrix}",
        "\\text{",
        "\\%",
        "\\$",
        "\\boxed{",
        " ",
    ] + [str(d) for d in range(10)]
    random_latex = []
    size = 0
    while size < 64 * 1024:
        tok = rng.choice(tokens)
        random_latex.append(tok)
        size += len(tok)
    return [
        ("power tower 9^{9^{9^9}}", "9^{9^{9^9}}"),
        ("10^{10^{10}}", "10^{10^{10}}"),
        ("100000!", "100000!"),
        ("(x+1)^{100000}", "(x+1)^{100000}"),
        ("100 KB nested ()", "(" * 50_000 + "1" + ")" * 50_000),
        ("100 KB nested {}", "{" * 50_000 + "1" + "}" * 50_000),
        ("\\boxed{} x 10,000", "\\boxed{}" * 10_000),
        ("64 KB random LaTeX", "".join(random_latex)),
        ("2^{2^{2^{2^{2^{2}}}}}", "2^{2^{2^{2^{2^{2}}}}}"),
        ("\\frac{1}{0}", "\\frac{1}{0}"),
        ("10,000-term sum", "+".join(f"x^{{{i}}}" for i in range(10_000))),
    ]


def _hostile_child(grader: Grader, gold: str, pred: str, conn) -> None:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (HOSTILE_MEMORY_BYTES, HOSTILE_MEMORY_BYTES))
    MV_TIMEOUTS.count = 0
    ok, dt, err = timed(grader, gold, pred)
    conn.send((ok, dt, err, MV_TIMEOUTS.count))
    conn.close()


def run_hostile_call(grader: Grader, gold: str, pred: str, limit: float) -> dict:
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_hostile_child, args=(grader, gold, pred, send))
    started = time.perf_counter()
    proc.start()
    send.close()
    got = recv.poll(limit)
    internal_timeouts = 0
    if got:
        try:
            ok, dt, err, internal_timeouts = recv.recv()
        except EOFError:  # the child died (for instance out of memory) without answering
            got, ok, dt, err = True, False, time.perf_counter() - started, "child died"
    if not got:
        proc.terminate()
        proc.join(2)
        if proc.is_alive():
            proc.kill()
        proc.join()
        return {
            "seconds": limit,
            "timed_out": True,
            "result": False,
            "error": f"killed after {limit:g} s",
            "internal_timeouts": None,
        }
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return {
        "seconds": dt,
        "timed_out": False,
        "result": ok,
        "error": err,
        "internal_timeouts": internal_timeouts,
    }


# --------------------------------------------------------------------------- output


def pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def secs(x: float, timed_out: bool = False) -> str:
    return (">=" if timed_out else "  ") + (f"{x:.3f} s" if x < 100 else f"{x:.0f} s")


def print_report(report: dict, show_errors: bool) -> None:
    mv, ours = report["math_verify"], report["rlenv"]
    print()
    print(
        "math-verify wrapping accuracy: "
        + ", ".join(f"{m} {pct(a).strip()}" for m, a in mv["mode_accuracy"].items())
        + f"  -> using '{mv['mode']}'"
    )
    if ours.get("stub"):
        print("NOTE: rlenv column uses --stub-rlenv (testing only); its numbers mean nothing.")
    rows = [
        ("accuracy, all cases", pct(mv["accuracy"]["all"]), pct(ours["accuracy"]["all"])),
        (
            "accuracy, non-policy",
            pct(mv["accuracy"]["non_policy"]),
            pct(ours["accuracy"]["non_policy"]),
        ),
        ("accuracy, policy cases", pct(mv["accuracy"]["policy"]), pct(ours["accuracy"]["policy"])),
        (
            "accuracy, expected true",
            pct(mv["accuracy"]["expected_true"]),
            pct(ours["accuracy"]["expected_true"]),
        ),
        (
            "accuracy, expected false",
            pct(mv["accuracy"]["expected_false"]),
            pct(ours["accuracy"]["expected_false"]),
        ),
        (
            "false positives / negatives",
            f"{mv['false_positives']} / {mv['false_negatives']}",
            f"{ours['false_positives']} / {ours['false_negatives']}",
        ),
        ("exceptions (labelled)", str(mv["exceptions"]), str(ours["exceptions"])),
        ("internal timeouts (labelled)", str(mv["internal_timeouts_labelled"]), "n/a"),
        (
            "calls/s, labelled set",
            f"{mv['calls_per_s_labelled']:.1f}",
            f"{ours['calls_per_s_labelled']:.1f}",
        ),
        (
            "calls/s, integer pairs",
            f"{mv['calls_per_s_integers']:.1f}",
            f"{ours['calls_per_s_integers']:.1f}",
        ),
        (
            "median call, labelled",
            secs(mv["median_call_s_labelled"]),
            secs(ours["median_call_s_labelled"]),
        ),
        (
            "worst call, labelled",
            secs(mv["worst_call_s_labelled"]),
            secs(ours["worst_call_s_labelled"]),
        ),
        (
            "worst call, integers",
            secs(mv["worst_call_s_integers"]),
            secs(ours["worst_call_s_integers"]),
        ),
    ]
    if report["hostile"]:
        rows.append(
            (
                "worst call, hostile",
                secs(mv["worst_call_s_hostile"], mv["hostile_timed_out"] > 0),
                secs(ours["worst_call_s_hostile"], ours["hostile_timed_out"] > 0),
            )
        )
        rows.append(
            ("hostile calls killed", str(mv["hostile_timed_out"]), str(ours["hostile_timed_out"]))
        )
    width = max(len(r[0]) for r in rows)
    print(f"\n{'':<{width}}  {'math-verify':>14}  {'rlenv':>14}")
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>14}  {b:>14}")
    ratios = report["ratios"]
    print(
        f"\nthroughput ratio rlenv / math-verify: labelled {ratios['throughput_labelled']:.2f}x, "
        f"integers {ratios['throughput_integers']:.2f}x"
    )

    print(f"\n{'category':<12} {'n':>4}  {'math-verify':>11}  {'rlenv':>7}")
    for cat, entry in mv["per_category"].items():
        print(
            f"{cat:<12} {entry['n']:>4}  {pct(entry['accuracy']):>11}  "
            f"{pct(ours['per_category'][cat]['accuracy']):>7}"
        )

    if report["hostile"]:
        print(
            "\nhostile inputs (gold '1'; forked child, killed after "
            f"{report['hostile_limit_s']:g} s)"
        )
        print(f"{'input':<26} {'chars':>7}  {'math-verify':>22}  {'rlenv':>22}")
        for h in report["hostile"]:
            cells = []
            for key in ("math_verify", "rlenv"):
                r = h[key]
                tag = "kill" if r["timed_out"] else ("err" if r["error"] else str(r["result"]))
                if r.get("internal_timeouts"):
                    tag = "t/o " + tag
                cells.append(f"{secs(r['seconds'], r['timed_out'])} {tag:>9}")
            print(f"{h['name']:<26} {h['chars']:>7}  {cells[0]:>22}  {cells[1]:>22}")

    if show_errors:
        for key, label in (("math_verify", "math-verify"), ("rlenv", "rlenv")):
            wrong = report[key]["wrong"]
            print(f"\n{label} is wrong on {len(wrong)} case(s)  [P = policy-dependent label]")
            for w in wrong:
                flag = "P" if w["policy"] else " "
                extra = f"  ({w['error']})" if w["error"] else ""
                print(
                    f"  {flag} line {w['line']:>3} {w['category']:<11} "
                    f"gold={w['gold']!r} pred={w['pred']!r} "
                    f"expected={w['expected']} got={w['got']}{extra}"
                )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", type=Path, default=DEFAULT_CASES, help="labelled JSONL (default: %(default)s)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small subset: a few cases per category, fewer pairs"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument(
        "--show-errors", action="store_true", help="list the cases each grader gets wrong"
    )
    parser.add_argument(
        "--validate-only", action="store_true", help="validate the dataset, print counts, exit"
    )
    parser.add_argument(
        "--mv-mode", choices=("auto", *MV_MODES), default="auto", help="math-verify wrapping"
    )
    parser.add_argument(
        "--int-pairs", type=int, default=None, help="integer pairs (default 2000; quick 200)"
    )
    parser.add_argument(
        "--hostile-limit", type=float, default=None, help="seconds per hostile call (30; quick 10)"
    )
    parser.add_argument("--no-hostile", action="store_true", help="skip the hostile set")
    parser.add_argument(
        "--stub-rlenv", action="store_true", help="TESTING ONLY: stand-in for rlenv's verifier"
    )
    args = parser.parse_args(argv)

    try:
        cases = load_cases(args.cases)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    summary = dataset_summary(cases)
    print_dataset_summary(summary)
    if args.validate_only:
        return 0

    rlenv_grade = load_rlenv(args.stub_rlenv)
    from importlib.metadata import version

    import math_verify  # noqa: F401 - fail early if missing

    if args.quick:
        cases = quick_subset(cases)
        print(f"--quick: {len(cases)} labelled cases")
    n_int = args.int_pairs if args.int_pairs is not None else (200 if args.quick else 2000)
    limit = args.hostile_limit if args.hostile_limit is not None else (10.0 if args.quick else 30.0)
    pairs = [(c["gold"], c["pred"]) for c in cases]

    # math-verify: every wrapping on the labelled set, keep the most accurate one.
    modes = MV_MODES if args.mv_mode == "auto" else (args.mv_mode,)
    mv_passes = {}
    mv_internal_timeouts = {}
    for mode in modes:
        t0 = time.perf_counter()
        mv_passes[mode] = run_pass(make_math_verify(mode), pairs, clear_math_verify_caches)
        mv_internal_timeouts[mode] = MV_TIMEOUTS.count
        acc = accuracy(cases, mv_passes[mode][0])
        print(f"math-verify ({mode}): {pct(acc).strip()} in {time.perf_counter() - t0:.1f} s")
    mode = max(modes, key=lambda m: (accuracy(cases, mv_passes[m][0]), m == "dollar"))
    mv_grade = make_math_verify(mode)
    mv = grader_report(cases, *mv_passes[mode])
    mv["mode"] = mode
    mv["mode_accuracy"] = {m: accuracy(cases, p[0]) for m, p in mv_passes.items()}
    mv["mode_wrong_lines"] = {
        m: [c["line"] for c, r in zip(cases, p[0], strict=True) if r != c["equivalent"]]
        for m, p in mv_passes.items()
    }
    mv["internal_timeouts_labelled"] = mv_internal_timeouts[mode]
    mv["version"] = version("math-verify")

    t0 = time.perf_counter()
    ours = grader_report(cases, *run_pass(rlenv_grade, pairs))
    ours["stub"] = args.stub_rlenv
    print(f"rlenv: {pct(ours['accuracy']['all']).strip()} in {time.perf_counter() - t0:.1f} s")

    ints = integer_pairs(n_int)
    for report, grade, before in (
        (mv, mv_grade, clear_math_verify_caches),
        (ours, rlenv_grade, None),
    ):
        results, seconds, errors = run_pass(grade, ints, before)
        report["calls_per_s_integers"] = len(seconds) / sum(seconds)
        report["worst_call_s_integers"] = max(seconds)
        report["integer_accuracy"] = sum(
            r == (g == p) for r, (g, p) in zip(results, ints, strict=True)
        ) / len(ints)
        report["integer_exceptions"] = sum(e is not None for e in errors)
    print(f"integer pairs: {n_int}")

    hostile = []
    if not args.no_hostile:
        inputs = hostile_inputs()
        if args.quick:
            inputs = inputs[:4]
        for name, text in inputs:
            row = {"name": name, "chars": len(text)}
            for key, grade in (("math_verify", mv_grade), ("rlenv", rlenv_grade)):
                row[key] = run_hostile_call(grade, "1", text, limit)
            hostile.append(row)
            print(
                f"hostile {name}: math-verify {row['math_verify']['seconds']:.2f} s, "
                f"rlenv {row['rlenv']['seconds']:.2f} s"
            )
        for key, report in (("math_verify", mv), ("rlenv", ours)):
            report["worst_call_s_hostile"] = max(h[key]["seconds"] for h in hostile)
            report["hostile_timed_out"] = sum(h[key]["timed_out"] for h in hostile)
            report["hostile_false_positives"] = sum(h[key]["result"] for h in hostile)

    report = {
        "dataset": summary,
        "evaluated_cases": len(cases),
        "quick": args.quick,
        "integer_pairs": n_int,
        "hostile_limit_s": limit,
        "math_verify": mv,
        "rlenv": ours,
        "ratios": {
            "throughput_labelled": ours["calls_per_s_labelled"] / mv["calls_per_s_labelled"],
            "throughput_integers": ours["calls_per_s_integers"] / mv["calls_per_s_integers"],
        },
        "hostile": hostile,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
    }
    print_report(report, args.show_errors)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
