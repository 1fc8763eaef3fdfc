"""Published code benchmarks as environments on :class:`rlenv.DatasetEnv`: MBPP, HumanEval+ and
LiveCodeBench.

Each benchmark reads the rows of its Hugging Face dataset, pinned to a revision, through
``DatasetEnv``'s loader (``pip install 'rlenv[datasets]'``), or the same rows from a local
export (``source=PATH``: a ``.jsonl``/``.parquet`` file or a dataset folder). Offline, as the
math benchmarks do (``envs/math/benchmarks.py``): ``sample=True`` (or
``RLENV_BENCHMARK_SAMPLE=1``) poses the few rows of ``envs/code/data/<name>_sample.jsonl`` in
the hub's schema, through the same loading code; ``sample=False`` (or ``=0``) fails with
:class:`~rlenv.datasets.DatasetUnavailableError`; the default falls back to the sample, with a
warning, when the hub cannot be loaded. Sample tasks say so: ``env.provenance["sample"]`` is
True, ``provenance["warning"]`` says it is NOT the benchmark, and every task's
``metadata["provenance"]`` is ``"sample"``. Scores on the sample are not benchmark scores.

Scoring rules (see ``docs/environments/code.md``):

- MBPP (Austin et al. 2021, arXiv:2108.07732, section 2.1/4): a problem is solved when the
  program passes every assert of its ``test_list`` (after ``test_setup_code``; sanitized:
  ``test_imports``). The prompt shows the problem text and the tests, as the paper's prompt does.
- HumanEval+ (Liu et al. 2023, arXiv:2305.01210; github.com/evalplus/evalplus): the base and
  plus inputs, each compared with the canonical solution's output (the ``results`` in the row's
  ``test``), exactly or, for floats, within ``atol`` (1e-6 when the row says 0), as EvalPlus's
  ``evalplus/eval/__init__.py`` does. A problem is solved when every input passes.
- LiveCodeBench (Jain et al. 2024, arXiv:2403.07974; github.com/LiveCodeBench/LiveCodeBench):
  every public and private test passes; stdin/stdout outputs compared line by line, stripped,
  numbers as ``Decimal`` (``lcb_runner/evaluation/testing_util.py``, ``grade_stdio``), LeetCode
  calls by ``==`` (``grade_call_based``); ``start_date``/``end_date`` keep problems released
  after a model's cutoff. See :class:`LiveCodeBench`.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import math
import os
import pickle
import re
import warnings
import zlib
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rlenv import Task, TaskList, Verdict
from rlenv.datasets import BENCHMARK_SAMPLE_ENV_VAR as SAMPLE_ENV_VAR
from rlenv.datasets import (
    DatasetEnv,
    DatasetError,
    DatasetUnavailableError,
    MissingDependencyError,
    load_rows,
)
from rlenv.datasets import hub_reachable as _hub_reachable
from rlenv.datasets import sample_setting as _sample_setting
from rlenv.envs.code.humaneval import score_function
from rlenv.errors import RLEnvError
from rlenv.verifiers.code import extract_code, run_io, run_tests
from rlenv.verifiers.code.verdicts import INSTRUCTION, no_code_verdict, verdict_from

DATA = Path(__file__).parent / "data"

# name, config, split, revision of each benchmark's hub dataset, and its bundled sample.
HUB: dict[str, dict[str, Any]] = {
    "mbpp": {
        "name": "google-research-datasets/mbpp",
        "config": "full",
        "data_split": "test",
        "revision": "7bc94ee8bd8f4b07324968e85b7b54f505cba1e5",
        "sample": DATA / "mbpp_sample.jsonl",
    },
    "mbpp-sanitized": {
        "name": "google-research-datasets/mbpp",
        "config": "sanitized",
        "data_split": "test",
        "revision": "7bc94ee8bd8f4b07324968e85b7b54f505cba1e5",
        "sample": DATA / "mbpp_sanitized_sample.jsonl",
    },
    "humanevalplus": {
        "name": "evalplus/humanevalplus",
        "config": None,
        "data_split": "test",
        "revision": "084b2ab17b4c045817861dd12e8d2fc7cb6c4f85",
        "sample": DATA / "humanevalplus_sample.jsonl",
    },
}


_warned: set[str] = set()


class _Benchmark(DatasetEnv):
    """A benchmark on ``DatasetEnv``: the hub's rows at a pinned revision (or a local export
    of them, ``source=PATH``), else the bundled sample, marked as such.

    Args:
        sample: ``True``: the bundled sample only; ``False``: the hub (or ``source``) only, an
            error offline; ``None`` (default): ``RLENV_BENCHMARK_SAMPLE`` decides (1/0), else
            the hub, falling back to the sample, with a warning, when it cannot be loaded.
        source: A local export of the hub rows (a ``.jsonl``/``.parquet`` file or a dataset
            folder) to load instead of the hub.
        timeout: Seconds per sandboxed test run.
    """

    benchmark = ""

    def __init__(
        self,
        *,
        sample: bool | None = None,
        source: str | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        for fixed in ("revision", "config", "data_split", "verifier"):
            if fixed in kwargs:
                raise RLEnvError(f"{type(self).__name__}: {fixed}= is the benchmark's")
        self.sample = sample
        self.local_source = source
        self.is_sample = False
        super().__init__(
            str(HUB[self.benchmark]["sample"]),
            verifier="code",
            timeout=timeout,
            **self._fields(),
            **kwargs,
        )

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def _benchmark_task(self, task: Task) -> Task:
        raise NotImplementedError

    def _choose_source(self) -> str | None:
        """Set ``self.source``/``_load_options`` to the hub (or the local export); returns
        why the sample is used instead, or None."""
        hub = HUB[self.benchmark]
        setting = _sample_setting(self.sample)
        if setting is True:
            return f"sample=True (or {SAMPLE_ENV_VAR}=1)"
        if self.local_source is not None:
            self.source = self.local_source
            self._load_options = {"config": hub["config"], "data_split": hub["data_split"]}
            return None
        offline = os.environ.get("HF_DATASETS_OFFLINE") or os.environ.get("HF_HUB_OFFLINE")
        if setting is None and not offline and not _hub_reachable():
            return "the hub (huggingface.co) is unreachable from here"
        self.source = hub["name"]
        self._load_options = {k: hub[k] for k in ("revision", "config", "data_split")}
        return None

    def load_tasks(self) -> TaskList:
        hub = HUB[self.benchmark]
        tasks = None
        try:  # choosing the source may download it (LiveCodeBench's data files)
            reason = self._choose_source()
            if reason is None:
                tasks = super().load_tasks()
        except (DatasetUnavailableError, MissingDependencyError) as error:
            if _sample_setting(self.sample) is False:
                raise
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        self.is_sample = tasks is None
        if tasks is None:
            self.source, self._load_options = str(hub["sample"]), {}
            tasks = super().load_tasks()
            warning = (
                f"{type(self).__name__}: the {len(tasks)}-task SAMPLE ({hub['sample'].name}), "
                f"NOT the benchmark {hub['name']}@{hub['revision'][:7]}: {reason}. Scores on it "
                "are not benchmark results."
            )
            self.provenance["warning"] = warning
            if _sample_setting(self.sample) is None and warning not in _warned:
                _warned.add(warning)  # once per process: every make would repeat it
                warnings.warn(warning, stacklevel=2)
        self.provenance["sample"] = self.is_sample
        self.provenance["benchmark"] = {k: v for k, v in hub.items() if k != "sample"}
        provenance = "sample" if self.is_sample else "dataset"
        converted = []
        for task in tasks:
            task = self._benchmark_task(task)
            converted.append(
                Task(
                    id=task.id,
                    prompt=task.prompt,
                    answer=task.answer,
                    metadata={**task.metadata, "provenance": provenance},
                )
            )
        return TaskList(converted)


# ----------------------------------------------------------------------------- MBPP


class MBPP(_Benchmark):
    """MBPP (``config="full"``: 500 test problems) and MBPP sanitized (257): write a function
    that passes the shown asserts. Reward 1.0 when all of ``test_list`` passes."""

    benchmark = "mbpp"

    def _fields(self) -> dict[str, Any]:
        prompt = "text" if self.benchmark == "mbpp" else "prompt"
        return {
            "prompt_field": prompt,
            "tests_field": "test_list",
            "solution_field": "code",
            "id_field": "task_id",
            "instruction": INSTRUCTION,
        }

    def _benchmark_task(self, task: Task) -> Task:
        meta = task.metadata
        text = meta.get("text", meta.get("prompt"))
        asserts = [str(test) for test in meta["tests"]]
        setup = meta.get("test_setup_code") or "\n".join(meta.get("test_imports") or [])
        # The paper's prompt: the problem, then "Your code should pass these tests:" and them.
        prompt = (
            f"You are an expert Python programmer, and here is your task: {text} "
            "Your code should pass these tests:\n\n" + "\n".join(asserts) + f"\n\n{INSTRUCTION}"
        )
        tests = ([setup] if setup.strip() else []) + asserts
        return Task(id=f"MBPP/{task.id}", prompt=prompt, metadata={**meta, "tests": tests})


class MBPPSanitized(MBPP):
    benchmark = "mbpp-sanitized"


# ----------------------------------------------------------------------------- HumanEval+


def evalplus_match(out: Any, expected: Any, atol: float) -> bool:
    """EvalPlus's comparison of an output with the canonical solution's (after
    ``evalplus/eval/__init__.py``): equal, or, for float results, ``allclose`` within ``atol``
    (1e-6 when ``atol`` is 0) and a relative 1e-7. Plain Python (no numpy needed)."""
    try:
        if out == expected:
            return True
    except Exception:
        return False
    if atol == 0 and _is_floats(expected):
        atol = 1e-6
    if atol == 0:
        return False
    left, right = _flat(out), _flat(expected)
    if left is None or right is None or len(left) != len(right):
        return False
    return all(
        (math.isfinite(a) and abs(a - b) <= atol + 1e-7 * abs(b)) or a == b
        for a, b in zip(left, right, strict=True)
    )


def _is_floats(value: Any) -> bool:
    if isinstance(value, float):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(item, float) for item in value)


def _flat(value: Any) -> list[float] | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
        return None
    if isinstance(value, (int, float)):
        return [float(value)]
    flat: list[float] = []
    for item in value:
        inner = _flat(item)
        if inner is None:
            return None
        flat.extend(inner)
    return flat


_MATCH_SETUP = "from rlenv.envs.code.benchmarks import evalplus_match as _evalplus_match\n"


def humanevalplus_tests(test: str) -> str:
    """The row's ``check(candidate)`` (``inputs``/``results`` lists and a loop calling
    ``assertion(candidate(*inp), exp, atol)``) as one ``assert`` per input, so each is a test
    of :func:`~rlenv.verifiers.code.run_tests` and a failure names its input."""
    module = ast.parse(test)
    check = next(
        (n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is None:
        raise DatasetError("a HumanEval+ test has no check(candidate)")
    lists: dict[str, list[ast.expr]] = {}
    atol = "0"
    for node in check.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    lists[target.id] = list(node.value.elts)
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "assertion"
                and len(call.args) == 3
            ):
                atol = ast.unparse(call.args[2])
    inputs, results = lists.get("inputs"), lists.get("results")
    if inputs is None or results is None or len(inputs) != len(results):
        raise DatasetError("a HumanEval+ test without matching inputs and results lists")
    lines = [_MATCH_SETUP, "def check(candidate):"]
    for inp, exp in zip(inputs, results, strict=True):
        lines.append(
            f"    assert _evalplus_match(candidate(*{ast.unparse(inp)}), "
            f"{ast.unparse(exp)}, {atol})"
        )
    return "\n".join(lines) + "\n"


class HumanEvalPlus(_Benchmark):
    """HumanEval+ (164 problems): HumanEval's prompts, judged on the base and EvalPlus's plus
    inputs against the canonical solution's outputs. Reward 1.0 when every input passes
    (``partial_reward=True``: the fraction of inputs)."""

    benchmark = "humanevalplus"

    def __init__(self, *, partial_reward: bool = False, **kwargs: Any) -> None:
        self.partial_reward = partial_reward
        super().__init__(**kwargs)

    def _fields(self) -> dict[str, Any]:
        return {
            "prompt_field": "prompt",
            "tests_field": "test",
            "solution_field": "canonical_solution",
            "id_field": "task_id",
        }

    def _benchmark_task(self, task: Task) -> Task:
        meta = task.metadata
        prompt = (
            "Complete the following Python function.\n\n```python\n"
            f"{meta['prompt']}```\n\n{INSTRUCTION}"
        )
        tests = humanevalplus_tests(meta["tests"])
        return Task(id=task.id, prompt=prompt, metadata={**meta, "tests": tests})

    def verify(self, task: Task, completion: str) -> Verdict:
        meta = task.metadata
        return score_function(
            completion, meta["prompt"], meta["tests"], meta["entry_point"],
            timeout=self.timeout, partial=self.partial_reward,
        )  # fmt: skip

    def gold_action(self) -> str:
        meta = self.task.metadata
        return f"```python\n{meta['prompt']}{meta['canonical_solution']}```"


# ----------------------------------------------------------------------------- LiveCodeBench

# The hub repository's data files per release, as its loading script (code_generation_lite.py,
# huggingface.co/datasets/livecodebench/code_generation_lite) maps them: release_vN is
# test.jsonl ... testN.jsonl; vN the one file of release N; vX_vY the files X..Y (LiveCodeBench
# README.md, "fine-grained release versions such as v1, v2, v1_v3, v4_v5").
LCB_RELEASES = 6
LCB_REPO = "livecodebench/code_generation_lite"
# A commit of the hub repo (cited as the pin of release_v5/v6 evaluations; not checked from
# here: no hub is reachable): huggingface.co/datasets/livecodebench/code_generation_lite/tree/
# 0fe84c3912ea0c4d4a78037083943e8f0c4dd505
LCB_REVISION = "0fe84c3912ea0c4d4a78037083943e8f0c4dd505"
HUB["livecodebench"] = {
    "name": LCB_REPO,
    "config": None,
    "data_split": "test",
    "revision": LCB_REVISION,
    "sample": DATA / "livecodebench_sample.jsonl",
}

# LiveCodeBench's harness runs every program after these imports (lcb_runner/evaluation/
# testing_util.py, import_string), so a solution may use math, collections, List... unimported.
LCB_IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\n"
    "from functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\n"
    "from json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\n"
    "import datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\n"
    "import operator\nimport io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)

# lcb_runner/prompts/code_generation.py: PromptConstants and get_generic_question_template_answer.
LCB_SYSTEM_PROMPT = (
    "You are an expert Python programmer. You will be given a question (problem specification) "
    "and will generate a correct Python program that matches the specification and passes all "
    "tests."
)
_LCB_WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose "
    "your code within delimiters."
)
_LCB_WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
    "directly test on the sample inputs). Enclose your code within delimiters as follows. "
    "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
    "writes output to STDOUT."
)
SAMPLE_SOLUTION_FIELD = "reference_solution_sample_only"
_MAX_PRIVATE_BYTES = 1 << 30  # a decompressed payload over 1 GiB is refused (a zlib bomb)


def lcb_prompt(question_content: str, starter_code: str) -> str:
    """LiveCodeBench's generic code-generation prompt (lcb_runner/prompts/code_generation.py,
    ``get_generic_question_template_answer``)."""
    prompt = f"### Question:\n{question_content}\n\n"
    if starter_code:
        prompt += f"### Format: {_LCB_WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
    else:
        prompt += f"### Format: {_LCB_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return prompt + "### Answer: (use the provided format with backticks)\n\n"


def lcb_stdio_match(output: str, expected: str) -> bool:
    """LiveCodeBench's stdin/stdout rule (lcb_runner/evaluation/testing_util.py, ``grade_stdio``
    and ``get_stripped_lines``): both texts stripped, split on ``\\n``, each line stripped; the
    line counts must be equal and each pair of lines equal, or else both lines' whitespace-split
    tokens all parse as ``Decimal`` and the two token lists are equal (so ``2.50`` matches
    ``2.5`` and ``1e3`` matches ``1000``, but ``0.3333`` does not match ``0.333333``: no
    tolerance). Unlike :func:`~rlenv.verifiers.code.runner.normalize_output`, leading spaces and
    leading blank lines are forgiven and numbers compare as decimals."""
    got = [line.strip() for line in output.strip().split("\n")]
    want = [line.strip() for line in expected.strip().split("\n")]
    if len(got) != len(want):
        return False
    for left, right in zip(got, want, strict=True):
        if left == right:
            continue
        try:
            if [Decimal(t) for t in left.split()] != [Decimal(t) for t in right.split()]:
                return False
        except (InvalidOperation, ValueError):
            return False
    return True


def lcb_call_match(prediction: Any, expected: Any) -> bool:
    """LiveCodeBench's functional rule (``grade_call_based``): a tuple result counts as a list,
    then ``prediction == expected`` (the expected value is the test's output, ``json.loads``-ed).
    The prediction crossed the sandbox boundary as plain data, so no ``__eq__`` of the
    candidate's runs here."""
    if isinstance(prediction, tuple):
        prediction = list(prediction)
    return bool(prediction == expected)


def lcb_stdio_program(code: str) -> str:
    """The program a stdin/stdout test runs: LCB's imports, then the code; ``SystemExit`` ends
    it quietly (LCB's ``call_method`` swallows it), and any other uncaught exception adds a
    ``[runtime error]`` line to stdout, so the output cannot match: LCB fails a test that
    raises (``grade_stdio``: "Runtime Error") even when the output was already printed, and
    ``run_io`` itself only compares stdout."""
    return (
        f"{LCB_IMPORTS}\n_lcb_code = {code!r}\ntry:\n"
        "    exec(compile(_lcb_code, 'solution.py', 'exec'), globals())\n"
        "except SystemExit:\n    pass\nexcept BaseException:\n"
        "    import sys as _lcb_sys\n    import traceback as _lcb_traceback\n"
        "    _lcb_traceback.print_exc()\n"
        "    _lcb_sys.__stdout__.write('\\n[runtime error]\\n')\n"
        "    _lcb_sys.__stdout__.flush()\n"
    )


class _RefuseGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refused: the pickled private tests name the global {module}.{name}; LiveCodeBench "
            "pickles a plain str, and anything else could run code"
        )


def decode_private_tests(value: str) -> list[dict[str, Any]]:
    """A row's ``private_test_cases``: JSON, or (the lite dataset) base64 of zlib of a pickle of
    a JSON string, as ``CodeGenerationProblem.__post_init__`` (lcb_runner/benchmarks/
    code_generation.py) reads it. Never ``pickle.loads``: the unpickler refuses every global, so
    a payload that is not a plain string (``os.system``...) raises :class:`DatasetError` and
    runs nothing."""
    try:
        cases = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        try:
            raw = base64.b64decode(str(value).encode("utf-8"), validate=False)
            inflater = zlib.decompressobj()
            data = inflater.decompress(raw, _MAX_PRIVATE_BYTES)
            if inflater.unconsumed_tail:
                raise DatasetError("the private tests decompress to over 1 GiB")
            text = _RefuseGlobals(io.BytesIO(data)).load()
        except (pickle.UnpicklingError, zlib.error, ValueError, EOFError) as error:
            raise DatasetError(f"private_test_cases cannot be decoded: {error}") from None
        if not isinstance(text, (str, bytes)):
            raise DatasetError(
                f"private_test_cases unpickle to a {type(text).__name__}, not a JSON string"
            ) from None
        try:
            cases = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetError(f"private_test_cases are not JSON: {error}") from None
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise DatasetError("private_test_cases are not a list of {input, output, testtype}")
    return cases


def _iso_date(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.strptime(str(value), "%Y-%m-%d")
    except ValueError:
        raise RLEnvError(
            f"{name}={value!r}: expected an ISO date YYYY-MM-DD (e.g. '2024-08-01')"
        ) from None


def _release_files(release: str) -> list[str]:
    def file(n: int) -> str:
        return "test.jsonl" if n == 1 else f"test{n}.jsonl"

    match = re.fullmatch(r"release_v(\d+)|release_latest|v(\d+)|v(\d+)_v(\d+)", release)
    if match:
        whole, one, first, last = match.groups()
        if release == "release_latest":
            first, last = 1, LCB_RELEASES
        elif whole is not None:
            first, last = 1, int(whole)
        elif one is not None:
            first = last = int(one)
        first, last = int(first), int(last)
        if 1 <= first <= last <= LCB_RELEASES:
            return [file(n) for n in range(first, last + 1)]
    raise RLEnvError(
        f"release={release!r}: choose release_v1 ... release_v{LCB_RELEASES}, release_latest, "
        f"v1 ... v{LCB_RELEASES}, or vX_vY (X < Y)"
    )


class LiveCodeBench(_Benchmark):
    """LiveCodeBench code generation (Jain et al. 2024, arXiv:2403.07974; github.com/
    LiveCodeBench/LiveCodeBench), the ``code_generation_lite`` problems from LeetCode, AtCoder
    and Codeforces contests, each dated (``contest_date``).

    Contamination: a model trained after a problem was published may have seen it (and its
    solutions). Pass ``start_date`` (and ``end_date``), ``YYYY-MM-DD``, to keep only problems
    whose ``contest_date`` is within (``start_date <= contest_date <= end_date``, the dates at
    midnight, as ``load_code_generation_dataset`` in lcb_runner/benchmarks/code_generation.py
    compares them): pick a start after the model's training cutoff.

    Scoring, as LiveCodeBench's ``lcb_runner/evaluation/testing_util.py`` does: every public and
    private test must pass (reward 1.0, else 0.0). A problem without ``func_name`` in its
    metadata is stdin/stdout: the program runs once per test (:func:`~rlenv.verifiers.code.
    run_io`, ``timeout`` seconds per test, LCB's default 6) and its output is compared by
    :func:`lcb_stdio_match`. A LeetCode problem (``func_name``) is functional: each test's input
    lines are the JSON arguments of ``Solution().func_name`` (one instance for all the tests),
    its output the JSON result, compared by :func:`lcb_call_match`. The program runs after LCB's
    imports (:data:`LCB_IMPORTS`); the code is the last ```` ```python ```` block of the reply
    (rlenv's :func:`~rlenv.verifiers.code.extract_code`; LCB takes the last fenced block).

    Args:
        release: ``release_v1`` ... ``release_v6`` / ``release_latest`` (the default, all six
            files), ``vN`` or ``vX_vY`` (the hub files of those releases).
        start_date, end_date: Keep problems whose ``contest_date`` is in this range.
        platform: ``"leetcode"``, ``"atcoder"`` or ``"codeforces"`` (or a list of them).
        difficulty: ``"easy"``, ``"medium"`` or ``"hard"`` (or a list).
        **kwargs: As for the other benchmarks (``sample``, ``source``, ``timeout``...).
            ``source`` is a ``.jsonl`` export of the rows or a folder holding the hub's
            ``test*.jsonl`` files (a ``git clone`` of the hub repository): the release's files
            are read from it.

    The hub repository has a loading script, which ``datasets`` 4 refuses to run; the data
    files (``test.jsonl`` ... ``test6.jsonl``) are downloaded at the pinned revision with
    ``huggingface_hub`` and read by ``DatasetEnv``'s file loader (``pip install
    'rlenv[datasets]'``).
    """

    benchmark = "livecodebench"

    def __init__(
        self,
        *,
        release: str = "release_latest",
        start_date: str | date | None = None,
        end_date: str | date | None = None,
        platform: str | Sequence[str] | None = None,
        difficulty: str | Sequence[str] | None = None,
        timeout: float = 6.0,
        **kwargs: Any,
    ) -> None:
        self.release = release
        self.release_files = _release_files(release)
        self.start_date = _iso_date(start_date, "start_date")
        self.end_date = _iso_date(end_date, "end_date")
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise RLEnvError(f"start_date {start_date} is after end_date {end_date}")
        self.platforms = self._choices(platform, "platform", ("leetcode", "atcoder", "codeforces"))
        self.difficulties = self._choices(difficulty, "difficulty", ("easy", "medium", "hard"))
        kwargs.setdefault("system_prompt", LCB_SYSTEM_PROMPT)
        super().__init__(timeout=timeout, **kwargs)

    @staticmethod
    def _choices(value: Any, name: str, allowed: tuple[str, ...]) -> set[str] | None:
        if value is None:
            return None
        chosen = {value} if isinstance(value, str) else set(value)
        if not chosen or not chosen <= set(allowed):
            raise RLEnvError(f"{name}={value!r}: choose from {', '.join(allowed)}")
        return chosen

    def _fields(self) -> dict[str, Any]:
        return {
            "prompt_field": "question_content",
            "tests_field": "public_test_cases",
            "id_field": "question_id",
            "instruction": "",
        }

    def _choose_source(self) -> str | None:
        reason = super()._choose_source()
        if reason is not None:
            return reason
        if self.source == LCB_REPO:  # the hub: its data files, not its loading script
            self.source = self._hub_rows()
        elif Path(str(self.source)).is_dir():
            self.source = self._folder_rows(Path(str(self.source)))
        self._load_options = {}
        return None

    def _hub_rows(self) -> list[dict[str, Any]]:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise MissingDependencyError(
                "LiveCodeBench from the hub needs huggingface_hub: pip install 'rlenv[datasets]'"
            ) from None
        rows: list[dict[str, Any]] = []
        for name in self.release_files:
            try:
                path = hf_hub_download(LCB_REPO, name, repo_type="dataset", revision=LCB_REVISION)
            except Exception as error:
                raise DatasetUnavailableError(
                    f"could not download {name} of {LCB_REPO}@{LCB_REVISION[:7]}: "
                    f"{type(error).__name__}: {str(error)[:300]}\nOn a machine with access: "
                    f"`huggingface-cli download --repo-type dataset {LCB_REPO} --revision "
                    f"{LCB_REVISION} --local-dir DIR`, then pass source='DIR'."
                ) from error
            rows += load_rows(path)[0]
        return rows

    def _folder_rows(self, folder: Path) -> list[dict[str, Any]]:
        missing = [name for name in self.release_files if not (folder / name).is_file()]
        if missing:
            raise DatasetError(f"{folder} lacks {', '.join(missing)} of release {self.release!r}")
        rows: list[dict[str, Any]] = []
        for name in self.release_files:
            rows += load_rows(folder / name)[0]
        return rows

    def _benchmark_task(self, task: Task) -> Task:
        meta = task.metadata
        extra = meta.get("metadata") or "{}"
        info = json.loads(extra) if isinstance(extra, str) else dict(extra)
        prompt = lcb_prompt(meta["question_content"], meta.get("starter_code") or "")
        return Task(
            id=f"LiveCodeBench/{task.id}",
            prompt=prompt,
            metadata={**meta, "func_name": info.get("func_name")},
        )

    def load_tasks(self) -> TaskList:
        tasks = super().load_tasks()
        kept = [task for task in tasks if self._wanted(task)]
        self.provenance["filters"] = {
            "release": self.release,
            "files": self.release_files if not self.is_sample else None,
            "start_date": self.start_date.date().isoformat() if self.start_date else None,
            "end_date": self.end_date.date().isoformat() if self.end_date else None,
            "platform": sorted(self.platforms) if self.platforms else None,
            "difficulty": sorted(self.difficulties) if self.difficulties else None,
            "rows": len(tasks),
            "kept": len(kept),
        }
        self.provenance["tasks"] = len(kept)
        if not kept:
            raise DatasetError(f"no LiveCodeBench problem passes the filters {self.provenance}")
        return TaskList(kept)

    def _wanted(self, task: Task) -> bool:
        meta = task.metadata
        when = datetime.fromisoformat(str(meta["contest_date"])).replace(tzinfo=None)
        if self.start_date is not None and when < self.start_date:
            return False
        if self.end_date is not None and when > self.end_date:
            return False
        if self.platforms is not None and meta.get("platform") not in self.platforms:
            return False
        return self.difficulties is None or meta.get("difficulty") in self.difficulties

    def cases(self, task: Task) -> list[dict[str, Any]]:
        """The problem's public then private tests (``{input, output, testtype}``)."""
        public = json.loads(task.metadata["public_test_cases"])
        return list(public) + decode_private_tests(task.metadata["private_test_cases"])

    def verify(self, task: Task, completion: str) -> Verdict:
        code = extract_code(completion)
        if code is None:
            return no_code_verdict()
        cases = self.cases(task)
        func_name = task.metadata.get("func_name")
        if not func_name:
            io_cases = [{"input": c["input"], "output": c["output"]} for c in cases]
            result = run_io(
                lcb_stdio_program(code), io_cases, timeout=self.timeout, match=lcb_stdio_match
            )
            return verdict_from(result, code)
        program = (
            f"{LCB_IMPORTS}\n\n{code}\n\n\n_lcb_instance = []\n\n\ndef _lcb_call(*args):\n"
            "    if not _lcb_instance:\n"
            "        _lcb_instance.append(Solution() if 'Solution' in globals() else None)\n"
            f"    target = _lcb_instance[0]\n"
            f"    method = getattr(target, {func_name!r}) if target is not None "
            f"else globals()[{func_name!r}]\n"
            "    return method(*args)\n"
        )
        lines = [
            "import json as _json",
            "from rlenv.envs.code.benchmarks import lcb_call_match as _lcb_match",
        ]
        for case in cases:
            args = "[" + ", ".join(case["input"].split("\n")) + "]"
            lines.append(
                f"assert _lcb_match(_lcb_call(*_json.loads({args!r})), "
                f"_json.loads({case['output']!r}))"
            )
        result = run_tests(
            program, "\n".join(lines) + "\n", timeout=self.timeout * max(1, len(cases))
        )
        return verdict_from(result, code)

    def gold_action(self) -> str | None:
        solution = self.task.metadata.get(SAMPLE_SOLUTION_FIELD)
        return f"```python\n{solution.rstrip()}\n```" if solution else None
