"""Math grading: rlenv next to math-verify, GEM's math grader and verifiers' MathRubric.

Every case of the public corpus (``tests/verifiers/data/public/*.jsonl``, format in SCHEMA.md
beside it, read by ``benchmarks/math_corpus.py``) is graded by each grader, in one run, and
scored against its label. Numbers are given on the dev split and on the held-out split
separately (``math_corpus.split_of``). Held-out cases are never printed, nor written to
``--json``: only their aggregate numbers are, so whoever tunes rlenv's verifier never sees them.

Two halves, two processes, one command:

- rlenv's half runs in this process (rlenv's virtual environment);
- the peers' half runs this same script with ``--peer-half IN OUT`` under another interpreter,
  by default ``.venv-peers/bin/python`` (``make bench-math`` creates it with the peers pinned:
  math-verify 0.9.0, gem-llm 0.1.0, verifiers 0.3.1), otherwise this interpreter. The cases go
  to it as a JSON file and its verdicts and timings come back as one. The peers' pins would
  resolve together with rlenv's, but they stay out of rlenv's environment: they add a few dozen
  packages (openai, mcp, reasoning-gym, nltk ...), GEM calls ``logging.basicConfig`` on import,
  and a separate process keeps each half's sympy caches and signal handlers to itself. The two
  halves run one after the other, never at the same time, so their timings do not compete.

Both halves call their graders from the main thread (math-verify's and GEM's timeouts use
``signal.alarm``, which only works there). Every call is timed with ``time.perf_counter``;
throughput is calls / summed call time, and the worst call is the slowest single call. A grader
that raises counts as a reject and the run goes on (exceptions are counted). Log records and
printed output of the graders are counted and dropped, never shown (they can quote inputs).

How each grader is called, on a case ``(gold, response, input)``; ``input`` is ``response``
for a whole model response and ``answer`` for a bare answer:

- rlenv: ONE entry point, :func:`load_rlenv`: ``rlenv.verifiers.math.grade(gold, response)``
  when it exists (a Verdict; accepted when its reward is 1.0), else
  ``rlenv.verifiers.math.MathVerifier()(response, gold)``. Same call for both input kinds.
  Its one-time costs (mpmath import, sympy's worker) are paid before timing, then its caches
  are cleared.
- math-verify (``math_verify``): ``verify(parse(wrap(gold)), parse(response'))`` with default
  settings (6-place rounding, 5 s timeouts), where ``response'`` is the response unchanged for
  ``input: response`` and ``wrap(response)`` for ``input: answer``. ``parse`` reads LaTeX only
  inside ``$...$``, ``\\(...\\)``, ``\\[...\\]`` or ``\\boxed{}``, so a bare ``\\frac{1}{2}``
  needs a wrapping. The wrapping study: ``dollar`` (``$s$`` unless ``s`` is empty, already
  starts with a math delimiter or holds ``\\boxed``/``\\fbox``), ``boxed`` (``\\boxed{s}``,
  same exceptions) and ``raw`` are each run on the dev split; the best one there grades
  everything (``--mv-mode`` forces one). Its ``lru_cache``s are cleared before each pass.
- GEM (``gem``): what ``gem.envs.math_env.MathEnv`` does in a step without its process pool
  (``use_mp=False``, ``_local_step``): ``run_with_timeout_signal(MathEnv.check_correct,
  (response, gold), timeout_seconds=1)``; ``check_correct`` calls ``boxed_reward_fn(response,
  gold, fast=False)`` (last ``\\boxed{}``, then ``grade``: MATH-style normalisation, sympy, then
  math-verify). For ``input: answer`` the bare answer goes to what ``boxed_reward_fn`` calls on
  the boxed content: ``run_with_timeout_signal(gem.utils.math_grader.grade, (answer, gold),
  {"fast": False}, timeout_seconds=1)``.
- verifiers (``verifiers``): what ``MathRubric.correct_answer`` does (verifiers 0.3.1,
  ``verifiers.legacy.rubrics.math_rubric``; 0.4.0 has no MathRubric) without its process pool:
  the answer is ``MaybeThinkParser(extract_fn=partial(extract_boxed_answer,
  strict=True)).parse_answer(response) or ""`` (text after the last ``</think>``, last
  ``\\boxed{}``, none: empty), then ``verify_response(answer, gold, 50_000, 5)`` (which is
  ``verify(parse("\\boxed{gold}"), parse("\\boxed{answer}"))``), scored 0 past 5 s as the rubric
  does. For ``input: answer`` the bare answer goes straight to ``verify_response``.

``--peer-selfcheck N`` (default 20) re-grades the first N cases through each peer's own public
entry point (GEM: a ``MathEnv`` stepped with ``use_mp=False``; verifiers: ``MathRubric()``'s
``correct_answer`` through its process pool; a bare answer given to them inside ``\\boxed{}``)
and reports how often that agrees with the call above.

Also measured, as before: ``--int-pairs`` random integer gold/answer pairs (seeded, half equal)
for plain throughput, and a hostile set (``9^{9^{9^9}}``, ``100000!``, 100 KB of nested
brackets, ``\\boxed{}`` x 10,000, 64 KB of random LaTeX ...) given as a bare answer against the
gold ``1``. Each hostile call runs in a forked child (where it is again the main thread, so
alarms work), timed inside the child, under a 4 GiB address-space limit, and is killed after
``--hostile-limit`` seconds; a killed call is reported as ``>= limit``.

Usage::

    make bench-math                                   # creates .venv-peers, then runs this
    python benchmarks/math_verifier.py [--quick] [--json PATH] [--show-errors dev]
    python benchmarks/math_verifier.py --cases tests/verifiers/data/math_equivalence.jsonl
    python benchmarks/math_verifier.py --validate-only  # check the corpus, print counts
    python benchmarks/math_verifier.py --no-peers     # rlenv's half only
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import logging
import multiprocessing
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import math_corpus  # the folder above is not a package: found through sys.path

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
GRADERS = ("rlenv", "math_verify", "gem", "verifiers")
PEERS = GRADERS[1:]
LABELS = {"rlenv": "rlenv", "math_verify": "math-verify", "gem": "GEM", "verifiers": "verifiers"}
DISTRIBUTIONS = {"math_verify": "math-verify", "gem": "gem-llm", "verifiers": "verifiers"}
MV_MODES = ("dollar", "boxed", "raw")
HOSTILE_MEMORY_BYTES = 4 * 1024**3
GEM_TIMEOUT_S = 1  # MathEnv's step: res.get(timeout=1) / run_with_timeout_signal(..., 1)
VERIFIERS_TIMEOUT_S = 5  # MathRubric(timeout_seconds=5)
VERIFIERS_MAX_CHARS = 50_000  # MathRubric.MAX_VERIFY_CHARS
SPLITS = math_corpus.SPLITS
REPO_ROW_MIN = 10  # repositories with fewer cases are summed into one row when printed

Grader = Callable[[str, str, str], object]  # (gold, response, input kind) -> bool or Verdict

HOW_CALLED = {
    "rlenv": "rlenv.verifiers.math.grade(gold, response) (else MathVerifier()(response, gold))",
    "math_verify": "verify(parse(wrap(gold)), parse(response or wrap(answer)))",
    "gem": "run_with_timeout_signal(MathEnv.check_correct, (response, gold), 1); "
    "answers: run_with_timeout_signal(math_grader.grade, (answer, gold), {fast: False}, 1)",
    "verifiers": "verify_response(MaybeThinkParser(extract_boxed_answer strict)"
    ".parse_answer(response) or '', gold, 50000, 5); answers: verify_response(answer, gold, ...)",
}


class _LogCounter(logging.Handler):
    """Counts log records (by logger) instead of printing them: graders' warnings quote their
    inputs, held-out cases included, and math-verify's quote 100 KB hostile inputs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: collections.Counter[str] = collections.Counter()
        self.timeouts = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name.split(".")[0]] += 1
        if str(record.msg).startswith("Timeout"):
            self.timeouts += 1


LOGS = _LogCounter()


def silence_logging() -> None:
    """Route every log record to the counter (and nothing else), warnings included."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(LOGS)
    root.setLevel(logging.WARNING)
    for name in ("math_verify", "gem", "verifiers", "rlenv"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    warnings.simplefilter("ignore")


_QUIET_LOGGERS = ("", "math_verify", "gem", "verifiers", "rlenv")


@contextlib.contextmanager
def quiet():
    """:func:`silence_logging` for a while; logging and warning filters restored after."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    with warnings.catch_warnings():
        silence_logging()
        try:
            yield
        finally:
            for lg, level, handlers, propagate in saved:
                for handler in list(lg.handlers):
                    lg.removeHandler(handler)
                for handler in handlers:
                    lg.addHandler(handler)
                lg.setLevel(level)
                lg.propagate = propagate


# --------------------------------------------------------------------------- cases


def quick_subset(cases: list[dict], per_group: int = 2) -> list[dict]:
    """A few cases of every (file, category, label): both verdicts wherever a category has them."""
    seen: collections.Counter[tuple] = collections.Counter()
    picked = []
    for case in cases:
        key = (case.get("file"), case["category"], case["expected"])
        if seen[key] < per_group:
            seen[key] += 1
            picked.append(case)
    return picked


def integer_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        gold = rng.randint(-(10**6), 10**9)
        pred = gold if i % 2 == 0 else gold + rng.choice([-1, 1]) * rng.randint(1, 10**6)
        pairs.append((str(gold), str(pred)))
    rng.shuffle(pairs)
    return pairs


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


# --------------------------------------------------------------------------- rlenv's half


def load_rlenv() -> tuple[Grader, str]:
    """rlenv's grader, through its one entry point, warmed up; and how it is called.

    ``rlenv.verifiers.math.grade(gold, response)`` when rlenv has it, else
    ``MathVerifier()(response, gold)``: both return a Verdict and read a whole response or a
    bare answer alike, so the input kind is not passed on.
    """
    from rlenv.verifiers import math as rlenv_math

    grade = getattr(rlenv_math, "grade", None)
    if callable(grade):
        how = "rlenv.verifiers.math.grade(gold, response)"

        def call(gold: str, response: str, kind: str) -> object:
            return grade(gold, response)

    else:
        verifier = rlenv_math.MathVerifier()
        how = "rlenv.verifiers.math.MathVerifier()(response, gold)"

        def call(gold: str, response: str, kind: str) -> object:
            return verifier(response, gold)

    # One-time costs a training run pays once, not per call: import mpmath, start sympy's worker.
    call("\\sqrt{2}", "The answer is $2^{1/2}$.", "response")
    with contextlib.suppress(Exception):
        from rlenv.verifiers import _symbolic

        _symbolic.warm_up()
    # Cold caches for the timed passes, as the peers' caches are cleared before theirs.
    for name in ("_normalize_cached", "_parse_cached"):
        cache_clear = getattr(getattr(rlenv_math, name, None), "cache_clear", None)
        if callable(cache_clear):
            cache_clear()
    return call, how


def accepted(result: object) -> bool:
    """A grader's answer as accept/reject: a Verdict with reward 1.0 (and scored), or truthy."""
    if hasattr(result, "reward"):
        return bool(getattr(result, "scored", True)) and float(result.reward) == 1.0
    return bool(result)


# --------------------------------------------------------------------------- the peers


def _math_delimited(s: str) -> bool:
    return s.startswith(("$", "\\(", "\\[")) or "\\boxed" in s or "\\fbox" in s


def mv_wrap(s: str, mode: str) -> str:
    """Present a bare answer to math-verify's extractor (see the module docstring)."""
    if mode == "raw":
        return s
    stripped = s.strip()
    if not stripped or _math_delimited(stripped):
        return s
    return f"${stripped}$" if mode == "dollar" else f"\\boxed{{{stripped}}}"


def clear_math_verify_caches() -> None:
    with contextlib.suppress(ImportError):
        from math_verify import parser

        for value in vars(parser).values():
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()


def make_peer(name: str, mode: str = "dollar") -> Grader:
    """A peer's grader, called as its users call it (module docstring); raises ImportError."""
    if name == "math_verify":
        from math_verify import parse, verify

        def grade_mv(gold: str, response: str, kind: str) -> bool:
            pred = mv_wrap(response, mode) if kind == "answer" else response
            return bool(verify(parse(mv_wrap(gold, mode)), parse(pred)))

        return grade_mv

    if name == "gem":
        from gem.envs.math_env import MathEnv
        from gem.utils import math_grader

        def grade_gem(gold: str, response: str, kind: str) -> bool:
            if kind == "answer":
                result = math_grader.run_with_timeout_signal(
                    math_grader.grade,
                    args=(response, gold),
                    kwargs={"fast": False},
                    timeout_seconds=GEM_TIMEOUT_S,
                )
            else:
                result = math_grader.run_with_timeout_signal(
                    MathEnv.check_correct, args=(response, gold), timeout_seconds=GEM_TIMEOUT_S
                )
            return bool(result)

        return grade_gem

    if name == "verifiers":
        from functools import partial

        from verifiers.legacy.parsers.maybe_think_parser import MaybeThinkParser
        from verifiers.legacy.rubrics.math_rubric import verify_response
        from verifiers.legacy.utils.data_utils import extract_boxed_answer

        parser = MaybeThinkParser(extract_fn=partial(extract_boxed_answer, strict=True))

        def grade_vf(gold: str, response: str, kind: str) -> bool:
            answer = response if kind == "answer" else (parser.parse_answer(response) or "")
            if len(answer) > VERIFIERS_MAX_CHARS:
                return False
            reward, elapsed = verify_response(
                answer, gold, VERIFIERS_MAX_CHARS, VERIFIERS_TIMEOUT_S
            )
            return reward == 1.0 and elapsed <= VERIFIERS_TIMEOUT_S

        return grade_vf

    raise ValueError(f"unknown peer {name!r}")


def peer_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTIONS[name])
    except PackageNotFoundError:
        return None


def peer_selfcheck(name: str, cases: Sequence[dict], results: Sequence[bool]) -> dict:
    """Re-grade cases through the peer's own public entry point; count agreement."""
    if name == "gem":
        from datasets import Dataset
        from gem.envs.math_env import MathEnv

        env = MathEnv(
            dataset=Dataset.from_list([{"problem": "", "answer": c["gold"]} for c in cases]),
            use_mp=False,
            eval=True,
        )

        def official(i: int, case: dict) -> bool:
            env.reset(idx=i)
            response = case["response"]
            if case["input"] == "answer":
                response = f"\\boxed{{{response}}}"
            return env.step(response)[1] == 1.0

    elif name == "verifiers":
        import asyncio

        from verifiers.legacy.rubrics.math_rubric import MathRubric

        rubric = MathRubric()

        def official(i: int, case: dict) -> bool:
            response = case["response"]
            if case["input"] == "answer":
                response = f"\\boxed{{{response}}}"
            score = asyncio.run(
                rubric.correct_answer(
                    parser=rubric.parser, completion=response, answer=case["gold"]
                )
            )
            return score == 1.0

    else:
        return {"n": 0, "agree": 0, "disagree": [], "entry_point": None}
    disagree = []
    for i, (case, ours) in enumerate(zip(cases, results, strict=False)):
        try:
            theirs = official(i, case)
        except Exception as exc:  # reported, not raised
            theirs = f"{type(exc).__name__}"
        if theirs != ours:
            disagree.append(i)
    if name == "verifiers":
        with contextlib.suppress(Exception):
            asyncio.run(rubric.teardown())
    return {
        "n": len(cases),
        "agree": len(cases) - len(disagree),
        "disagree": disagree,
        "entry_point": "MathEnv(use_mp=False).step"
        if name == "gem"
        else "MathRubric().correct_answer",
    }


# --------------------------------------------------------------------------- timing


def timed(grader: Grader, gold: str, response: str, kind: str):
    """One call, timed: (accepted, seconds, error or None, result)."""
    start = time.perf_counter()
    try:
        result = grader(gold, response, kind)
        ok, error = accepted(result), None
    except Exception as exc:  # any grader failure counts as a reject
        result, ok, error = None, False, f"{type(exc).__name__}: {str(exc)[:200]}"
    return ok, time.perf_counter() - start, error, result


def run_pass(
    grader: Grader,
    items: Sequence[tuple[str, str, str]],
    before: Callable[[], None] | None = None,
    keep: Callable[[object], object] | None = None,
) -> dict:
    """Grade every (gold, response, kind); stdout from the grader is swallowed."""
    if before is not None:
        before()
    out: dict[str, list] = {"results": [], "seconds": [], "errors": [], "details": []}
    with contextlib.redirect_stdout(io.StringIO()):
        for gold, response, kind in items:
            ok, dt, err, result = timed(grader, gold, response, kind)
            out["results"].append(ok)
            out["seconds"].append(dt)
            out["errors"].append(err)
            out["details"].append(keep(result) if keep is not None else None)
    return out


def _hostile_child(grader: Grader, gold: str, text: str, conn) -> None:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (HOSTILE_MEMORY_BYTES, HOSTILE_MEMORY_BYTES))
    LOGS.timeouts = 0
    with contextlib.redirect_stdout(io.StringIO()):
        ok, dt, err, _ = timed(grader, gold, text, "answer")
    conn.send((ok, dt, err, LOGS.timeouts))
    conn.close()


def run_hostile_call(grader: Grader, gold: str, text: str, limit: float) -> dict:
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_hostile_child, args=(grader, gold, text, send))
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


def side_passes(
    grader: Grader,
    n_int: int,
    hostile_names: Sequence[str],
    limit: float,
    before,
    label: str = "rlenv",
):
    """Integer pairs and hostile inputs for one grader."""
    ints = integer_pairs(n_int)
    out: dict = {}
    if ints:
        run = run_pass(grader, [(g, p, "answer") for g, p in ints], before)
        out["integers"] = {
            "n": len(ints),
            "calls_per_s": len(ints) / sum(run["seconds"]),
            "worst_call_s": max(run["seconds"]),
            "accuracy": sum(r == (g == p) for r, (g, p) in zip(run["results"], ints, strict=True))
            / len(ints),
            "exceptions": sum(e is not None for e in run["errors"]),
        }
    hostile = {}
    for name, text in hostile_inputs():
        if name in hostile_names:
            hostile[name] = run_hostile_call(grader, "1", text, limit)
            print(
                f"[{label}] hostile {name}: {hostile[name]['seconds']:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    out["hostile"] = hostile
    return out


# --------------------------------------------------------------------------- the peers' half


def peer_half(in_path: Path, out_path: Path) -> int:
    """Grade the cases of ``in_path`` with every peer that imports here; write ``out_path``."""
    job = json.loads(in_path.read_text(encoding="utf-8"))
    cases = job["cases"]
    silence_logging()
    out: dict = {"python": sys.version.split()[0], "executable": sys.executable, "peers": {}}
    for name in job["peers"]:
        entry: dict = {"available": False, "version": peer_version(name)}
        out["peers"][name] = entry
        try:
            grader = make_peer(name)
        except Exception as exc:  # not installed, or broken: reported, the run goes on
            entry["error"] = f"{type(exc).__name__}: {exc}"
            print(f"[peers] {LABELS[name]}: unavailable ({entry['error']})", file=sys.stderr)
            continue
        silence_logging()  # GEM's import calls logging.basicConfig
        entry["available"] = True
        items = [(c["gold"], c["response"], c["input"]) for c in cases]
        t0 = time.perf_counter()
        LOGS.counts.clear()
        LOGS.timeouts = 0
        if name == "math_verify":
            dev = [i for i, c in enumerate(cases) if c["split"] == "dev"] or list(range(len(cases)))
            modes = MV_MODES if job.get("mv_mode", "auto") == "auto" else (job["mv_mode"],)
            passes = {}
            for mode in modes:
                passes[mode] = run_pass(
                    make_peer(name, mode), [items[i] for i in dev], clear_math_verify_caches
                )
                right = sum(
                    r == cases[i]["expected"]
                    for r, i in zip(passes[mode]["results"], dev, strict=True)
                )
                print(
                    f"[peers] math-verify ({mode}) on {len(dev)} dev cases: "
                    f"{100 * right / max(1, len(dev)):.1f}%",
                    file=sys.stderr,
                    flush=True,
                )
                passes[mode]["accuracy"] = right / max(1, len(dev))
            mode = max(modes, key=lambda m: (passes[m]["accuracy"], m == "dollar"))
            entry["mode"] = mode
            entry["mode_accuracy_dev"] = {m: p["accuracy"] for m, p in passes.items()}
            grader = make_peer(name, mode)
            dev_set = set(dev)
            rest = [i for i in range(len(cases)) if i not in dev_set]
            rest_run = run_pass(grader, [items[i] for i in rest], clear_math_verify_caches)
            run: dict[str, list] = {"results": [], "seconds": [], "errors": []}
            for key in run:
                merged = [None] * len(cases)
                for i, v in zip(dev, passes[mode][key], strict=True):
                    merged[i] = v
                for i, v in zip(rest, rest_run[key], strict=True):
                    merged[i] = v
                run[key] = merged
        else:
            run = run_pass(grader, items, clear_math_verify_caches)
        entry.update(
            results=run["results"],
            seconds=run["seconds"],
            errors=run["errors"],
            log_records=dict(LOGS.counts),
            internal_timeouts=LOGS.timeouts,
        )
        print(
            f"[peers] {LABELS[name]}: {len(cases)} cases in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        n_check = min(job.get("selfcheck", 0), len(cases))
        if n_check and name in ("gem", "verifiers"):
            try:
                entry["selfcheck"] = peer_selfcheck(name, cases[:n_check], run["results"])
            except Exception as exc:
                entry["selfcheck"] = {"error": f"{type(exc).__name__}: {exc}"}
            silence_logging()
        entry.update(
            side_passes(
                grader,
                job.get("int_pairs", 0),
                job.get("hostile", []),
                job.get("hostile_limit", 10.0),
                clear_math_verify_caches,
                LABELS[name],
            )
        )
    out_path.write_text(json.dumps(out), encoding="utf-8")
    return 0


def run_peer_half(python: str, cases: list[dict], args, hostile_names: list[str]) -> dict:
    """Run the peers' half under ``python``; its parsed output, or ``{"error": ...}``."""
    job = {
        "cases": [
            {k: c[k] for k in ("gold", "response", "input", "expected", "split")} for c in cases
        ],
        "peers": list(PEERS),
        "mv_mode": args.mv_mode,
        "int_pairs": args.int_pairs,
        "hostile": hostile_names,
        "hostile_limit": args.hostile_limit,
        "selfcheck": args.peer_selfcheck,
    }
    with tempfile.TemporaryDirectory(prefix="math-bench-") as tmp:
        in_path, out_path = Path(tmp) / "cases.json", Path(tmp) / "results.json"
        in_path.write_text(json.dumps(job), encoding="utf-8")
        command = [
            python,
            str(Path(__file__).resolve()),
            "--peer-half",
            str(in_path),
            str(out_path),
        ]
        print(f"peers' half: {python}", flush=True)
        proc = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
        if proc.returncode != 0 or not out_path.exists():
            return {"error": f"the peers' half exited with status {proc.returncode}", "peers": {}}
        return json.loads(out_path.read_text(encoding="utf-8"))


def choose_peers_python(option: str | None) -> str | None:
    if option in ("none", ""):
        return None
    if option and option != "auto":
        return option
    if PEERS_VENV_PYTHON.exists():
        return str(PEERS_VENV_PYTHON)
    return sys.executable


# --------------------------------------------------------------------------- scoring


def _stats(cases: Sequence[dict], results: Sequence[bool], idx: Sequence[int]) -> dict:
    pos = [i for i in idx if cases[i]["expected"]]
    neg = [i for i in idx if not cases[i]["expected"]]
    false_rejects = sum(not results[i] for i in pos)
    false_accepts = sum(bool(results[i]) for i in neg)
    n = len(idx)
    return {
        "n": n,
        "correct": n - false_rejects - false_accepts,
        "accuracy": (n - false_rejects - false_accepts) / n if n else None,
        "positives": len(pos),
        "negatives": len(neg),
        "false_accepts": false_accepts,
        "false_rejects": false_rejects,
    }


def _groups(cases, idx, key) -> dict[str, list[int]]:
    out: dict[str, list[int]] = collections.defaultdict(list)
    for i in idx:
        for k in key(cases[i]):
            out[k].append(i)
    return dict(sorted(out.items()))


def grader_report(cases: list[dict], repos: list[str], run: dict) -> dict:
    """Accuracy per split and breakdown; timings; dev misses (held-out: aggregates only)."""
    results, seconds, errors = run["results"], run["seconds"], run["errors"]
    report: dict = {}
    for split in ("dev", "heldout", "all"):
        idx = [i for i, c in enumerate(cases) if split in ("all", c["split"])]
        plain = [i for i in idx if not cases[i]["policy"]]
        tagged = [i for i in idx if cases[i]["policy"]]
        report[split] = {
            "all_labels": _stats(cases, results, idx),
            "untagged": _stats(cases, results, plain),
            "policy_tagged": _stats(cases, results, tagged),
            "per_policy_tag": {
                k: _stats(cases, results, v)
                for k, v in _groups(cases, tagged, lambda c: c["policy"]).items()
            },
            "per_file": {
                k: _stats(cases, results, v)
                for k, v in _groups(cases, plain, lambda c: [c.get("file", "?")]).items()
            },
            "per_repo": {
                k: _stats(cases, results, v)
                for k, v in _group_by_index(plain, lambda i: repos[i]).items()
            },
            "per_category": {
                k: _stats(cases, results, v)
                for k, v in _groups(cases, plain, lambda c: [c["category"]]).items()
            },
            "per_input": {
                k: _stats(cases, results, v)
                for k, v in _groups(cases, plain, lambda c: [c["input"]]).items()
            },
        }
    worst = max(range(len(seconds)), key=seconds.__getitem__) if seconds else None
    report["timing"] = {
        "calls": len(seconds),
        "calls_per_s": len(seconds) / sum(seconds) if seconds and sum(seconds) else None,
        "median_call_s": sorted(seconds)[len(seconds) // 2] if seconds else None,
        "worst_call_s": seconds[worst] if worst is not None else None,
        # a held-out case is named by its split only
        "worst_call_case": (
            cases[worst]["id"] if worst is not None and cases[worst]["split"] == "dev" else None
        ),
        "worst_call_split": cases[worst]["split"] if worst is not None else None,
        "total_s": sum(seconds),
    }
    report["exceptions"] = {
        split: sum(
            e is not None
            for e, c in zip(errors, cases, strict=True)
            if split in ("all", c["split"])
        )
        for split in ("dev", "heldout", "all")
    }
    report["dev_verdicts"] = {
        c["id"]: bool(r) for c, r in zip(cases, results, strict=True) if c["split"] == "dev"
    }
    return report


def _group_by_index(idx, key) -> dict[str, list[int]]:
    out: dict[str, list[int]] = collections.defaultdict(list)
    for i in idx:
        out[key(i)].append(i)
    return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def dev_misses(cases: list[dict], run: dict, others: dict[str, dict]) -> list[dict]:
    """The dev cases a grader gets wrong, with what the other graders said (dev only)."""
    misses = []
    for i, case in enumerate(cases):
        if case["split"] != "dev" or run["results"][i] == case["expected"]:
            continue
        detail = run["details"][i] if run.get("details") else None
        misses.append(
            {
                "id": case["id"],
                "where": f"{case.get('file', '?')}.jsonl:{case.get('line', '?')}",
                "category": case["category"],
                "input": case["input"],
                "policy": case["policy"],
                "expected": case["expected"],
                "got": run["results"][i],
                "gold": case["gold"],
                "response": case["response"],
                "source": case["source"],
                "note": case.get("note"),
                "parsed": detail.get("parsed") if detail else None,
                "reason": detail.get("reason") if detail else None,
                "error": run["errors"][i],
                "others": {k: o["results"][i] for k, o in others.items()},
            }
        )
    return misses


# --------------------------------------------------------------------------- output


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def secs(x: float | None, timed_out: bool = False) -> str:
    if x is None:
        return "n/a"
    return (">=" if timed_out else "") + (f"{x:.3f} s" if x < 100 else f"{x:.0f} s")


def _pair(rep: dict, key: Callable[[dict], str]) -> str:
    return f"{key(rep['dev'])} / {key(rep['heldout'])}"


def print_report(report: dict) -> None:
    names = [g for g in GRADERS if g in report["graders"]]
    reps = {g: report["graders"][g] for g in names}
    width = 15
    head = "".join(f"{LABELS[g]:>{width}}" for g in names)

    def table(title: str, rows: list[tuple[str, list[str]]], label_width: int = 34) -> None:
        print(f"\n{title}")
        print(f"{'':<{label_width}}{head}")
        for label, cells in rows:
            print(f"{label:<{label_width}}" + "".join(f"{c:>{width}}" for c in cells))

    def acc(part: str) -> Callable[[dict], str]:
        return lambda s: pct(s[part]["accuracy"])

    rows = [
        ("accuracy %, untagged labels", [_pair(reps[g], acc("untagged")) for g in names]),
        (
            "  false accepts (of negatives)",
            [_pair(reps[g], lambda s: str(s["untagged"]["false_accepts"])) for g in names],
        ),
        (
            "  false rejects (of positives)",
            [_pair(reps[g], lambda s: str(s["untagged"]["false_rejects"])) for g in names],
        ),
        ("accuracy %, policy-tagged labels", [_pair(reps[g], acc("policy_tagged")) for g in names]),
        ("accuracy %, all labels", [_pair(reps[g], acc("all_labels")) for g in names]),
        ("exceptions", [_pair(reps[g]["exceptions"], str) for g in names]),
    ]
    counts = reps[names[0]]
    print(
        f"\ncases graded: dev {counts['dev']['all_labels']['n']} "
        f"(untagged {counts['dev']['untagged']['n']}: {counts['dev']['untagged']['negatives']} "
        f"negatives), heldout {counts['heldout']['all_labels']['n']} "
        f"(untagged {counts['heldout']['untagged']['n']}: "
        f"{counts['heldout']['untagged']['negatives']} negatives)"
    )
    table("ACCURACY  (each cell: dev / heldout)", rows)

    t = {g: reps[g]["timing"] for g in names}
    speed = [
        ("calls/s, corpus (summed call time)", [f"{t[g]['calls_per_s']:.1f}" for g in names]),
        ("median call", [secs(t[g]["median_call_s"]) for g in names]),
        ("worst call", [secs(t[g]["worst_call_s"]) for g in names]),
    ]
    if all("integers" in reps[g] for g in names):
        speed.append(
            ("calls/s, integer pairs", [f"{reps[g]['integers']['calls_per_s']:.1f}" for g in names])
        )
        speed.append(
            (
                "worst call, integer pairs",
                [secs(reps[g]["integers"]["worst_call_s"]) for g in names],
            )
        )
    if report["hostile"] and all(reps[g].get("hostile") for g in names):
        speed.append(
            (
                "worst call, hostile",
                [
                    secs(
                        max(h["seconds"] for h in reps[g]["hostile"].values()),
                        any(h["timed_out"] for h in reps[g]["hostile"].values()),
                    )
                    for g in names
                ],
            )
        )
        speed.append(
            (
                "hostile calls killed / accepted",
                [
                    f"{sum(h['timed_out'] for h in reps[g]['hostile'].values())} / "
                    f"{sum(h['result'] for h in reps[g]['hostile'].values())}"
                    for g in names
                ],
            )
        )
    table("SPEED", speed)
    print(
        "worst call on: "
        + ", ".join(
            LABELS[g] + " " + (t[g]["worst_call_case"] or f"a {t[g]['worst_call_split']} case")
            for g in names
        )
    )
    if report["ratios"]:
        print(
            "\nspeed ratio, rlenv calls/s / peer's: "
            + ", ".join(
                f"{LABELS[p]} {r['corpus']:.2f}x"
                + (f" (integers {r['integers']:.2f}x)" if r.get("integers") else "")
                for p, r in report["ratios"].items()
            )
        )

    def breakdown(title: str, key: str, min_n: int = 0, which: str = "untagged labels") -> None:
        groups = sorted(
            set(reps[names[0]]["dev"][key]) | set(reps[names[0]]["heldout"][key]),
            key=lambda k: (
                (
                    -(
                        reps[names[0]]["dev"][key].get(k, {}).get("n", 0)
                        + reps[names[0]]["heldout"][key].get(k, {}).get("n", 0)
                    ),
                    k,
                )
                if key == "per_repo"
                else k
            ),
        )

        def n_of(g: str, split: str, k: str) -> int:
            return reps[g][split][key].get(k, {}).get("n", 0)

        def cell(g: str, k: str) -> str:
            return " / ".join(pct(reps[g][s][key].get(k, {}).get("accuracy")) for s in SPLITS)

        shown = [
            k for k in groups if n_of(names[0], "dev", k) + n_of(names[0], "heldout", k) >= min_n
        ]
        rest = [k for k in groups if k not in shown]
        rows = [
            (
                f"{k[:36]:<36} {n_of(names[0], 'dev', k):>4}/{n_of(names[0], 'heldout', k):<4}",
                [cell(g, k) for g in names],
            )
            for k in shown
        ]
        if rest:
            merged = []
            for g in names:
                parts = []
                for s in SPLITS:
                    n = sum(n_of(g, s, k) for k in rest)
                    c = sum(reps[g][s][key].get(k, {}).get("correct", 0) for k in rest)
                    parts.append(pct(c / n) if n else "n/a")
                merged.append(" / ".join(parts))
            n_dev = sum(n_of(names[0], "dev", k) for k in rest)
            n_held = sum(n_of(names[0], "heldout", k) for k in rest)
            rows.append(
                (f"{f'({len(rest)} others, <{min_n} each)':<36} {n_dev:>4}/{n_held:<4}", merged)
            )
        table(f"{title}  ({which}; n dev/heldout; accuracy % dev / heldout)", rows, 47)

    breakdown("PER FILE", "per_file")
    breakdown("PER SOURCE REPOSITORY", "per_repo", REPO_ROW_MIN)
    breakdown("PER CATEGORY", "per_category")
    breakdown("PER INPUT KIND", "per_input")
    breakdown("POLICY-TAGGED LABELS, PER TAG", "per_policy_tag", which="tagged labels")

    mv = reps.get("math_verify", {})
    if mv.get("mode_accuracy_dev"):
        print(
            "\nmath-verify wrapping of bare strings, accuracy % on dev: "
            + ", ".join(f"{m} {pct(a)}" for m, a in mv["mode_accuracy_dev"].items())
            + f"  -> using '{mv['mode']}'"
        )
    for g in names:
        check = reps[g].get("selfcheck")
        if check and "n" in check:
            print(
                f"{LABELS[g]} self-check: {check['agree']}/{check['n']} of the first cases agree "
                f"with {check['entry_point']}"
            )
        elif check:
            print(f"{LABELS[g]} self-check failed: {check.get('error')}")
    for name, info in report["peers_unavailable"].items():
        print(f"{LABELS[name]}: not graded ({info})")

    if report["hostile"]:
        print(
            f"\nHOSTILE INPUTS (a bare answer against gold '1'; forked child, killed after "
            f"{report['hostile_limit_s']:g} s)"
        )
        print(f"{'input':<26}{'chars':>8}" + "".join(f"{LABELS[g]:>20}" for g in names))
        for name, chars in report["hostile"]:
            cells = []
            for g in names:
                r = reps[g].get("hostile", {}).get(name)
                if r is None:
                    cells.append("n/a")
                    continue
                tag = "kill" if r["timed_out"] else ("err" if r["error"] else str(r["result"]))
                if r.get("internal_timeouts"):
                    tag = "t/o " + tag
                cells.append(f"{secs(r['seconds'], r['timed_out'])} {tag}")
            print(f"{name:<26}{chars:>8}" + "".join(f"{c:>20}" for c in cells))


def _clip(text: str, limit: int) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit // 3] + " ... " + text[-2 * limit // 3 :]


def print_dev_misses(misses: list[dict]) -> None:
    print(f"\nrlenv is wrong on {len(misses)} dev case(s)  [held-out cases are never listed]")
    for m in misses:
        others = " ".join(f"{LABELS[k]}={'Y' if v else 'n'}" for k, v in m["others"].items())
        tags = f" policy={','.join(m['policy'])}" if m["policy"] else ""
        print(
            f"\n- {m['id']} ({m['where']}) {m['category']}/{m['input']}{tags}: "
            f"expected {m['expected']}, rlenv {m['got']}; {others}"
        )
        print(f"  gold={_clip(m['gold'], 160)}")
        print(f"  response={_clip(m['response'], 400)}")
        print(
            f"  rlenv read {m['parsed']!r}: {m['reason']}"
            + (f" ({m['error']})" if m["error"] else "")
        )
        if m["note"]:
            print(f"  note: {m['note']}")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        type=Path,
        default=None,
        help="a corpus folder or file, or the old math_equivalence.jsonl "
        "(default: every tests/verifiers/data/public/*.jsonl)",
    )
    parser.add_argument("--split", choices=SPLITS, help="grade only this split")
    parser.add_argument("--source", action="append", help="file stem, repository or source kind")
    parser.add_argument("--category", action="append", help="grade only these categories")
    parser.add_argument("--input", choices=("response", "answer"), help="grade only this kind")
    parser.add_argument("--quick", action="store_true", help="a few cases per file and category")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every number as JSON")
    parser.add_argument(
        "--show-errors",
        nargs="?",
        const="dev",
        choices=("dev",),
        help="list rlenv's misses on the dev split (held-out cases are never listed)",
    )
    parser.add_argument("--validate-only", action="store_true", help="check the corpus, exit")
    parser.add_argument("--mv-mode", choices=("auto", *MV_MODES), default="auto")
    parser.add_argument("--int-pairs", type=int, default=None, help="default 1000; quick 100")
    parser.add_argument(
        "--hostile-limit", type=float, default=None, help="seconds per hostile call (20; quick 5)"
    )
    parser.add_argument("--no-hostile", action="store_true", help="skip the hostile inputs")
    parser.add_argument(
        "--peers-python",
        default="auto",
        help="interpreter for the peers' half (auto: .venv-peers/bin/python if it exists, "
        "else this one; none: rlenv only)",
    )
    parser.add_argument("--no-peers", action="store_true", help="rlenv's half only")
    parser.add_argument("--peer-selfcheck", type=int, default=None, help="default 20; quick 5")
    parser.add_argument(
        "--peer-half", nargs=2, type=Path, metavar=("IN", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.peer_half:
        return peer_half(*args.peer_half)

    try:
        corpus = math_corpus.load_any(args.cases)
    except (math_corpus.CorpusError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print_summary = math_corpus.print_summary
    print_summary(math_corpus.summary(corpus))
    if args.validate_only:
        return 0
    by_id = {c["id"]: c for c in corpus}
    cases = math_corpus.select(
        corpus, split=args.split, source=args.source, category=args.category, input=args.input
    )
    if args.quick:
        cases = quick_subset(cases)
    if not cases:
        print("no case matches the filters", file=sys.stderr)
        return 1
    if len(cases) != len(corpus):
        print(f"grading {len(cases)} of {len(corpus)} cases")
    repos = [math_corpus.case_repo(c, by_id) for c in cases]
    args.int_pairs = args.int_pairs if args.int_pairs is not None else (100 if args.quick else 1000)
    args.hostile_limit = (
        args.hostile_limit if args.hostile_limit is not None else (5.0 if args.quick else 20.0)
    )
    args.peer_selfcheck = (
        args.peer_selfcheck if args.peer_selfcheck is not None else (5 if args.quick else 20)
    )
    hostile_names = [] if args.no_hostile else [n for n, _ in hostile_inputs()]
    if args.quick:
        hostile_names = hostile_names[:4]

    # The peers' half first, in its own process; rlenv's half after it, never concurrently.
    peers_python = None if args.no_peers else choose_peers_python(args.peers_python)
    peer_out: dict = {"peers": {}}
    if peers_python:
        peer_out = run_peer_half(peers_python, cases, args, hostile_names)

    with quiet():
        rlenv_grade, rlenv_how = load_rlenv()
        LOGS.counts.clear()
        t0 = time.perf_counter()
        items = [(c["gold"], c["response"], c["input"]) for c in cases]
        runs: dict[str, dict] = {
            "rlenv": run_pass(
                rlenv_grade,
                items,
                keep=lambda v: {
                    "parsed": getattr(v, "parsed", None),
                    "reason": getattr(v, "reason", ""),
                },
            )
        }
        rlenv_logs = dict(LOGS.counts)
        print(f"rlenv: {len(cases)} cases in {time.perf_counter() - t0:.1f} s", flush=True)
        rlenv_side = side_passes(
            rlenv_grade, args.int_pairs, hostile_names, args.hostile_limit, None
        )

    unavailable = {}
    for name in PEERS:
        entry = peer_out.get("peers", {}).get(name)
        if entry and entry.get("available"):
            runs[name] = entry
        else:
            unavailable[name] = (
                entry.get("error") if entry else peer_out.get("error", "peers not run")
            )

    graders: dict[str, dict] = {}
    for name, run in runs.items():
        rep = grader_report(cases, repos, run)
        if name == "rlenv":
            rep.update(rlenv_side, entry_point=rlenv_how, log_records=rlenv_logs)
        else:
            rep.update(
                {
                    k: run[k]
                    for k in (
                        "version",
                        "mode",
                        "mode_accuracy_dev",
                        "integers",
                        "hostile",
                        "selfcheck",
                        "log_records",
                        "internal_timeouts",
                    )
                    if k in run
                },
                entry_point=HOW_CALLED[name],
            )
        graders[name] = rep
    ratios = {}
    for name in PEERS:
        if name in graders:
            ours, theirs = graders["rlenv"], graders[name]
            ratios[name] = {
                "corpus": ours["timing"]["calls_per_s"] / theirs["timing"]["calls_per_s"],
                "integers": (
                    ours["integers"]["calls_per_s"] / theirs["integers"]["calls_per_s"]
                    if "integers" in ours and "integers" in theirs
                    else None
                ),
            }
    hostile = [(n, len(t)) for n, t in hostile_inputs() if n in hostile_names]
    report = {
        "corpus": math_corpus.summary(corpus),
        "graded": math_corpus.summary(cases),
        "cases_path": str(args.cases) if args.cases else str(math_corpus.CORPUS_DIR),
        "filters": {
            "split": args.split,
            "source": args.source,
            "category": args.category,
            "input": args.input,
            "quick": args.quick,
        },
        "integer_pairs": args.int_pairs,
        "hostile_limit_s": args.hostile_limit,
        "hostile": hostile,
        "graders": graders,
        "peers_unavailable": unavailable,
        "peers_python": peers_python,
        "peers_half_python": peer_out.get("python"),
        "ratios": ratios,
        "how_called": {g: graders[g]["entry_point"] for g in graders},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
    }
    print_report(report)
    misses = dev_misses(cases, runs["rlenv"], {k: v for k, v in runs.items() if k != "rlenv"})
    report["rlenv_dev_misses"] = misses
    if args.show_errors == "dev":
        print_dev_misses(misses)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
