"""Published code benchmarks as environments on :class:`rlenv.DatasetEnv`: MBPP and HumanEval+.

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
"""

from __future__ import annotations

import ast
import math
import os
import warnings
from pathlib import Path
from typing import Any

from rlenv import Task, TaskList, Verdict
from rlenv.datasets import BENCHMARK_SAMPLE_ENV_VAR as SAMPLE_ENV_VAR
from rlenv.datasets import (
    DatasetEnv,
    DatasetError,
    DatasetUnavailableError,
    MissingDependencyError,
)
from rlenv.datasets import hub_reachable as _hub_reachable
from rlenv.datasets import sample_setting as _sample_setting
from rlenv.envs.code.humaneval import score_function
from rlenv.errors import RLEnvError
from rlenv.verifiers.code.verdicts import INSTRUCTION

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
        reason = self._choose_source()
        tasks = None
        if reason is None:
            try:
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
