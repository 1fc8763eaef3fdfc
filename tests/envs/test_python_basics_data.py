"""The bundled Python problem set (envs/code/data/python_basics.jsonl) is well formed, every
reference solution passes every test, and obviously wrong solutions fail at least one test of
every problem.

The harness here is deliberately small and trusts the code it runs (only the bundled reference
solutions and a few fixed wrong ones): it is a check of the data, not the sandboxed verifier.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "envs" / "code" / "data" / "python_basics.jsonl"

FUNCTION_FIELDS = {
    "id": str,
    "kind": str,
    "difficulty": int,
    "entry_point": str,
    "prompt": str,
    "tests": str,
    "solution": str,
}
IO_FIELDS = {
    "id": str,
    "kind": str,
    "difficulty": int,
    "prompt": str,
    "cases": list,
    "solution": str,
}
OPTIONAL_FIELDS = {"function": {"public_tests": str}, "io": {}}
MIN_ASSERTS = 6
MIN_CASES = 5
# Names a test may use: the candidate, a few builtins that read its result, and constants.
ALLOWED_NAMES = {"candidate", "abs", "len", "None", "True", "False"}
TIMEOUT_S = 30

# Wrong solutions every problem must reject. {name} is the function's entry point.
WRONG_FUNCTIONS = {
    "returns None": "def {name}(*args, **kwargs):\n    return None\n",
    "returns its first argument": "def {name}(*args, **kwargs):\n    return args[0]\n",
}
WRONG_PROGRAMS = {
    "prints nothing": "",
    "echoes its input": "import sys\nsys.stdout.write(sys.stdin.read())\n",
}

# Runs in a child process: exec the solution, then the tests, then check(entry point).
_FUNCTION_HARNESS = """
import json, sys
job = json.loads(sys.stdin.read())
namespace = {"__name__": "__solution__"}
exec(compile(job["solution"], "<solution>", "exec"), namespace)
exec(compile(job["tests"], "<tests>", "exec"), namespace)
namespace["check"](namespace[job["entry_point"]])
print("ALL-PASSED")
"""


def _load() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


PROBLEMS = _load()
FUNCTIONS = [p for p in PROBLEMS if p.get("kind") == "function"]
IOS = [p for p in PROBLEMS if p.get("kind") == "io"]


def _ids(problems: list[dict]) -> list[str]:
    return [p.get("id", "?") for p in problems]


def _check_function(tests: str) -> ast.FunctionDef:
    """The one ``def check(candidate):`` in ``tests``; fails if the module holds anything else."""
    module = ast.parse(tests)
    assert len(module.body) == 1, "tests must hold only `def check(candidate):`"
    check = module.body[0]
    assert isinstance(check, ast.FunctionDef) and check.name == "check"
    assert [arg.arg for arg in check.args.args] == ["candidate"]
    return check


def normalise_output(text: str) -> list[str]:
    """Trailing whitespace on each line and trailing blank lines are not compared."""
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _run_function(problem: dict, solution: str) -> subprocess.CompletedProcess:
    job = {k: problem[k] for k in ("tests", "entry_point")} | {"solution": solution}
    return subprocess.run(
        [sys.executable, "-I", "-c", _FUNCTION_HARNESS],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _run_program(program: str, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-c", program],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _io_results(problem: dict, program: str) -> list[tuple[bool, str]]:
    """(passed, why) for every case, the cases run in parallel processes."""

    def run(case: dict) -> tuple[bool, str]:
        result = _run_program(program, case["input"])
        if result.returncode != 0:
            return False, f"exit {result.returncode}: {result.stderr[-500:]}"
        got, want = normalise_output(result.stdout), normalise_output(case["output"])
        return got == want, f"input {case['input'][:80]!r}: got {got[:5]}, want {want[:5]}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(run, problem["cases"]))


# --- the set as a whole ---------------------------------------------------------------------


def test_the_set_is_big_and_spread_over_kinds_and_difficulties():
    assert len(PROBLEMS) >= 45
    assert len(FUNCTIONS) >= 28 and len(IOS) >= 14
    assert len(FUNCTIONS) + len(IOS) == len(PROBLEMS), "kind must be 'function' or 'io'"
    for kind in (FUNCTIONS, IOS):
        for difficulty in (1, 2, 3):
            assert sum(p["difficulty"] == difficulty for p in kind) >= 3


def test_ids_are_unique_and_well_formed():
    ids = _ids(PROBLEMS)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"pb-\d{3}", i) for i in ids)


def test_entry_points_are_unique():
    names = [p["entry_point"] for p in FUNCTIONS]
    assert len(set(names)) == len(names)


# --- each problem is well formed ------------------------------------------------------------


def _check_fields(problem: dict, required: dict[str, type]) -> None:
    optional = OPTIONAL_FIELDS[problem["kind"]]
    unknown = set(problem) - set(required) - set(optional)
    assert not unknown, f"unknown fields {unknown}"
    for field, kind in {**required, **optional}.items():
        if field in required or field in problem:
            assert isinstance(problem.get(field), kind), f"{field} must be a {kind.__name__}"
            assert problem[field] or kind is list, f"{field} is empty"
    assert problem["difficulty"] in (1, 2, 3)
    assert not isinstance(problem["difficulty"], bool)


@pytest.mark.parametrize("problem", FUNCTIONS, ids=_ids(FUNCTIONS))
def test_function_problem_is_well_formed(problem):
    _check_fields(problem, FUNCTION_FIELDS)
    name = problem["entry_point"]
    assert name.isidentifier()

    # The prompt shows the exact signature in a python block, the solution defines it.
    block = re.search(r"```python\n(def .*?:)\n```", problem["prompt"])
    assert block, "the prompt needs the signature in a ```python block"
    signature = block.group(1)
    assert signature.startswith(f"def {name}(")
    solution = ast.parse(problem["solution"])
    defined = [n for n in solution.body if isinstance(n, ast.FunctionDef) and n.name == name]
    assert defined, f"the solution does not define {name}"
    assert signature in problem["solution"].splitlines()

    check = _check_function(problem["tests"])
    asserts = [s for s in check.body if isinstance(s, ast.Assert)]
    assert len(asserts) == len(check.body), "check's body must be top-level asserts only"
    assert len(asserts) >= MIN_ASSERTS
    for statement in asserts:
        names = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
        assert names <= ALLOWED_NAMES, f"{ast.unparse(statement)} uses {names - ALLOWED_NAMES}"
        assert "candidate" in names, f"{ast.unparse(statement)} does not test the candidate"
        for node in ast.walk(statement):
            assert not isinstance(node, (ast.Lambda, ast.Attribute, ast.NamedExpr)), (
                f"{ast.unparse(statement)}: tests use plain data only"
            )
            # == on floats is fragile: float literals appear only in abs(a - b) < tol form.
            if isinstance(node, ast.Compare) and any(isinstance(o, ast.Eq) for o in node.ops):
                constants = [c for c in ast.walk(node) if isinstance(c, ast.Constant)]
                assert not any(isinstance(c.value, float) for c in constants), (
                    f"{ast.unparse(statement)}: compare floats with abs(a - b) < 1e-6"
                )

    # Public tests are some of the hidden ones.
    if "public_tests" in problem:
        public = ast.parse(problem["public_tests"]).body
        assert public and all(isinstance(s, ast.Assert) for s in public)
        hidden = {ast.dump(s) for s in asserts}
        assert all(ast.dump(s) in hidden for s in public)


@pytest.mark.parametrize("problem", IOS, ids=_ids(IOS))
def test_io_problem_is_well_formed(problem):
    _check_fields(problem, IO_FIELDS)
    cases = problem["cases"]
    assert len(cases) >= MIN_CASES
    for case in cases:
        assert set(case) == {"input", "output"}
        assert isinstance(case["input"], str) and isinstance(case["output"], str)
    inputs = [case["input"] for case in cases]
    assert len(set(inputs)) == len(inputs), "duplicate case"
    assert any(normalise_output(case["output"]) for case in cases), "all outputs are empty"
    assert "Input" in problem["prompt"] and "Output" in problem["prompt"]
    assert any(case["input"] in problem["prompt"] for case in cases), "no example in the prompt"
    ast.parse(problem["solution"])


# --- reference solutions pass, wrong ones fail ----------------------------------------------


@pytest.mark.parametrize("problem", FUNCTIONS, ids=_ids(FUNCTIONS))
def test_function_reference_passes_and_wrong_solutions_fail(problem):
    result = _run_function(problem, problem["solution"])
    assert result.returncode == 0 and "ALL-PASSED" in result.stdout, result.stderr[-2000:]
    for why, template in WRONG_FUNCTIONS.items():
        wrong = template.format(name=problem["entry_point"])
        result = _run_function(problem, wrong)
        assert result.returncode != 0 and "ALL-PASSED" not in result.stdout, (
            f"a solution that {why} passes every test"
        )


@pytest.mark.parametrize("problem", IOS, ids=_ids(IOS))
def test_io_reference_passes_and_wrong_programs_fail(problem):
    for passed, why in _io_results(problem, problem["solution"]):
        assert passed, why
    for why, program in WRONG_PROGRAMS.items():
        results = _io_results(problem, program)
        assert not all(passed for passed, _ in results), f"a program that {why} passes"


def test_normalisation_ignores_only_trailing_whitespace_and_blank_lines():
    assert normalise_output("1 \n2\t\n\n\n") == normalise_output("1\n2")
    assert normalise_output("") == normalise_output("\n\n") == []
    assert normalise_output(" 1\n") != normalise_output("1\n")
    assert normalise_output("1\n\n2\n") != normalise_output("1\n2\n")
