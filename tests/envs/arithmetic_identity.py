"""What ``rlenv/Arithmetic-v0`` poses and how it judges, in a form that can be pinned.

``tests/envs/test_arithmetic_identity.py`` compares these against values recorded on the code
before the issue-22 speed-ups (commit 943dd8a), so a faster generator or grader that changes a
single task or verdict fails. Re-record with ``python tests/envs/arithmetic_identity.py``
(run from a directory where ``rlenv`` resolves to the code you mean to record).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

from rlenv import Task
from rlenv.envs.math.arithmetic import Arithmetic

LEVELS = (1, 2, 3, 4, 5)
SEEDS = range(2001)  # 0..2,000
FIXTURE = Path(__file__).with_name("data") / "arithmetic_verdicts.jsonl.gz"  # one row a line


def task_record(task: Task) -> str:
    """One task as canonical JSON: id, prompt, answer (with its type), metadata."""
    return json.dumps(
        [task.id, task.prompt, task.answer, type(task.answer).__name__, task.metadata],
        sort_keys=True,
        ensure_ascii=False,
    )


def task_digest() -> str:
    """sha256 over every task of seeds 0..2,000 at each level, built as ``reset`` builds them."""
    digest = hashlib.sha256()
    for level in LEVELS:
        source = Arithmetic(difficulty=level).load_tasks()
        for seed in SEEDS:
            digest.update(task_record(source.build(seed)).encode())
            digest.update(b"\n")
    return digest.hexdigest()


# ----------------------------------------------------------------------------- verdicts

CONFIGS = {
    "boxed": {},  # the default: gate(boxed_format(), correct)
    "unboxed": {"require_boxed": False},
    "weighted": {"require_boxed": False, "format_weight": 0.25},
}


def _golds() -> list[Task]:
    """Generated tasks of every level, and a few crafted golds (zero, huge, negative...)."""
    tasks = []
    for level in LEVELS:
        source = Arithmetic(difficulty=level).load_tasks()
        tasks += [source.build(seed) for seed in range(4)]
    prompt = "Compute $x$. Put your final answer in \\boxed{}."
    for answer in (
        0,
        -7,
        3,
        10**30,
        "\\frac{3}{4}",
        "-\\frac{7}{3}",
        "\\frac{1}{3}",
        "-\\frac{1}{8}",
    ):
        tasks.append(Task(id=f"crafted-{answer}", prompt=prompt, answer=answer))
    # the question restated: an answer that copies the expression must not score
    tasks.append(Task(id="restate", prompt="Compute $3 + 4$. Box it.", answer=7))
    return tasks


def _forms(answer: object) -> list[str]:
    """Answers to one gold: right ones in several forms, wrong, malformed and adversarial."""
    gold = str(answer)
    if isinstance(answer, int):
        n, d = answer, 1
    else:
        sign = -1 if gold.startswith("-") else 1
        n, d = (int(part) for part in gold.lstrip("-")[len("\\frac{") : -1].split("}{"))
        n *= sign
    plain = f"{n}/{d}" if d != 1 else str(n)
    replies = [
        f"\\boxed{{{gold}}}",
        f"\\boxed{{{plain}}}",
        f"The answer is \\boxed{{{plain}}}.",
        f"$\\boxed{{{gold}}}$",
        f"\\boxed{{ {plain} }}",
        f"\\boxed{{\\frac{{{n}}}{{{d}}}}}",
        f"\\boxed{{\\dfrac{{{n}}}{{{d}}}}}",
        f"\\boxed{{\\frac{{{abs(n)}}}{{{d}}}}}",
        f"\\boxed{{-\\frac{{{abs(n)}}}{{{d}}}}}",
        f"\\boxed{{\\frac{{{-n}}}{{{-d}}}}}",
        f"\\boxed{{\\frac{{{2 * n}}}{{{2 * d}}}}}",  # unreduced: fails under reduced_fractions
        f"\\boxed{{{2 * n}/{2 * d}}}",
        f"\\boxed{{{n * 3}/{d * 3}}}",
        f"\\boxed{{{n / d!r}}}",  # a decimal: right only when exact
        f"\\boxed{{{n / d:.4f}}}",
        f"\\boxed{{{n / d:.20f}}}",
        f"\\boxed{{{n}.0}}" if d == 1 else f"\\boxed{{{n}.0/{d}}}",
        f"\\boxed{{{plain.replace('-', '−')}}}",  # unicode minus
        f"\\boxed{{{plain.replace('-', '–')}}}",  # en dash
        f"\\boxed{{{{{plain}}}}}",  # nested braces
        f"\\boxed{{{{{{{plain}}}}}}}",
        f"\\boxed{{\\frac{{{{{n}}}}}{{{{{d}}}}}}}",
        f"\\boxed{{+{plain}}}",
        f"\\boxed{{0{plain}}}",
        f"\\boxed{{{plain}\\%}}",
        f"\\boxed{{{plain}}}.",
        f"\\boxed{{{plain}}} and more text \\boxed{{{n + 1}}}",  # two boxes: the last counts
        f"\\boxed{{{n + 1}}} wait, \\boxed{{{plain}}}",
        f"\\boxed{{{plain}}} \\boxed{{{plain}}}",
        f"\\boxed{{{plain} = {plain}}}",
        f"\\boxed{{x = {plain}}}",
        f"\\boxed{{{plain} + 0}}",
        f"\\boxed{{{n} + 1}}",
        f"\\boxed{{{n}, {d}}}",
        f"\\boxed{{\\text{{{plain}}}}}",
        f"\\boxed{{\\mathbf{{{plain}}}}}",
        f"\\fbox{{{plain}}}",
        f"\\boxed {plain}",
        f"\\boxed{{{plain}",
        f"\\boxed{{{plain}}}}}",
        f"<think>\\boxed{{{plain}}}</think>",
        f"<think>\\boxed{{{n + 1}}}</think> so \\boxed{{{plain}}}",
        f"<think>no end \\boxed{{{plain}}}",
        f"{plain}",
        f"The answer is {plain}.",
        f"Answer: {plain}",
        f"\\boxed{{{n + 1}}}",
        f"\\boxed{{{n - 1}}}",
        f"\\boxed{{{n}/{d + 1}}}",
        f"\\boxed{{{n}{'0' * 400}}}",  # huge
        f"\\boxed{{{'9' * 7000}}}",  # past the exact-arithmetic bit limit
        f"\\boxed{{1e{len(str(abs(n)))}}}",
        f"\\boxed{{{n}e0}}",
        f"\\boxed{{{n:,}}}",
        f"\\boxed{{{n}_{{10}}}}",
        f"\\boxed{{{plain}\x00}}",
        f"\\boxed{{{plain}\u200b}}",
        f"\\boxed{{\\left({plain}\\right)}}",
        f"\\boxed{{({plain})}}",
        f"\\boxed{{-({plain})}}",
        f"\\boxed{{--{plain}}}",
        "\\boxed{-0}",
        f"\\boxed{{{-n}}}" if d == 1 else f"\\boxed{{{-n}/{d}}}",
        "\\boxed{}",
        "\\boxed{ }",
        "\\boxed{\\infty}",
        "\\boxed{nan}",
        "\\boxed{x}",
        "\\boxed{\\frac{1}{0}}",
        "\\boxed{" + "{" * 300 + "1" + "}" * 300 + "}",
        "\\boxed{" * 50,
        "junk " * 100,
        "",
        "   ",
        "\\boxed{\\boxed{" + plain + "}}",
        # what the answer region drops or keeps: chat tokens, annotations, code, escapes
        f"<|im_start|>assistant \\boxed{{{plain}}}",
        f"\\boxed{{{plain}}}<|im_end|>",
        f"\\boxed{{{plain}}}</s>",
        f"\\boxed{{{plain}}}\nUser: \\boxed{{{n + 1}}}",
        f"\\boxed{{{plain}}}\nHuman: what?",
        f"\\boxed{{{plain}}} <<{n}+0={n}>>",
        f"\\boxed{{{plain}}}\n```python\nprint({n + 1})\n```",
        f"\\\\boxed{{{plain}}}",  # JSON-escaped twice
        f"\\\\boxed{{{plain}}} \\frac{{1}}{{2}}",
        f"\\boxed{{{plain}}} I hope it is correct.",
        f"\\fbox{{{n + 1}}} \\boxed{{{plain}}}",
        f"\\boxed{{{n + 1}}} \\fbox{{{plain}}}",
        f"\\boxed{{{plain}}}, \\boxed{{{plain}}}",
        f"<|channel|>final<|message|>\\boxed{{{plain}}}<|return|>",
        f"<|channel|>analysis \\boxed{{{plain}}}",
    ]
    return replies


def _compact(value: object) -> object:
    """``value`` with each string over 160 characters replaced by its length and sha256."""
    if isinstance(value, str) and len(value) > 160:
        return f"<{len(value)} chars, sha256 {hashlib.sha256(value.encode()).hexdigest()[:24]}>"
    if isinstance(value, dict):
        return {key: _compact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_compact(item) for item in value]
    return value


def verdicts() -> list[list]:
    """``[config, task id, completion, verdict]`` for every config, gold and answer form.

    Strings over 160 characters (huge numbers, junk) are stored as their length and sha256.
    """
    envs = {name: Arithmetic(difficulty=1, **options) for name, options in CONFIGS.items()}
    rows = []
    for task in _golds():
        for completion in _forms(task.answer):
            for name, env in envs.items():
                verdict = env.verify(task, completion)
                row = [name, task.id, completion, verdict.model_dump(mode="json")]
                rows.append(_compact(row))
    return rows


def recorded() -> list[list]:
    """The rows in :data:`FIXTURE`."""
    text = gzip.decompress(FIXTURE.read_bytes()).decode()
    return [json.loads(line) for line in text.splitlines()]


if __name__ == "__main__":
    rows = verdicts()
    FIXTURE.parent.mkdir(exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    FIXTURE.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"{len(rows)} verdicts -> {FIXTURE}", file=sys.stderr)
    print("task digest:", task_digest())
