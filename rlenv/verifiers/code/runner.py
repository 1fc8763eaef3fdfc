"""Running unit tests and stdin/stdout cases against sandboxed code, with unforgeable verdicts.

The test code never enters the sandbox. The code under test runs in an isolated process and
only *answers calls*: the verifier's process runs the tests, and every call the tests make to a
function of the candidate is a message to the sandbox that comes back as plain data (see
:mod:`._wire`). So the candidate cannot see the tests or the expected values, cannot patch the
harness, ``unittest`` or the verifier's builtins, cannot return an object with a lying
``__eq__``, and cannot turn ``sys.exit(0)`` into a pass: a dead process answers no call.
"""

from __future__ import annotations

import ast
import builtins
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from rlenv.verifiers.code import _wire
from rlenv.verifiers.code.sandbox import Limits, Run, Sandbox, default_sandbox

__all__ = ["CodeResult", "IOCase", "TestOutcome", "run_batch", "run_io", "run_tests"]


class TestOutcome(BaseModel):
    """One test: an ``assert`` statement, or one stdin/stdout case."""

    __test__ = False  # not a pytest class

    index: int
    passed: bool
    source: str = Field(description="The test's source (or the case's input), shortened.")
    message: str = ""


class CodeResult(BaseModel):
    """The verdict of running tests against code in the sandbox."""

    passed: bool = Field(description="Every test passed.")
    reward: float = Field(description="1.0/0.0, or the fraction passed with partial=True.")
    status: str = Field(
        description="'passed', 'failed' (a test failed), 'error' (the code did not load or "
        "broke the protocol), 'timeout', or 'no_tests'."
    )
    tests_passed: int = 0
    tests_total: int = 0
    tier: str = Field(description="The isolation tier the code ran in.")
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    warning: str | None = Field(
        default=None, description="Set when the isolation is weak (rlimits-only tier)."
    )
    outcomes: list[TestOutcome] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return self.tests_passed / self.tests_total if self.tests_total else 0.0


class CandidateError(Exception):
    """The code under test raised, died, timed out, or returned something that is not data."""


# Exceptions from the candidate keep their type when it is one of these (so tests that expect
# a ValueError still work); anything else, SystemExit included, becomes a CandidateError.
_SAFE_EXCEPTIONS = {
    name: getattr(builtins, name)
    for name in (
        "ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError",
        "ArithmeticError", "OverflowError", "AttributeError", "RuntimeError", "RecursionError",
        "NotImplementedError", "LookupError", "AssertionError", "StopIteration",
    )
}  # fmt: skip


class _Session:
    """The verifier's side of one run: proxies that forward calls to the sandbox."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.dead: str | None = None

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        if self.dead:
            raise CandidateError(self.dead)
        try:
            request = {
                "op": "call",
                "name": name,
                "args": _wire.encode(list(args)),
                "kwargs": _wire.encode(dict(kwargs)),
            }
        except _wire.WireError as error:
            raise CandidateError(f"cannot pass this argument to sandboxed code: {error}") from None
        try:
            self.run.send(request)
            reply = self.run.receive()
            if "value" in reply:
                return _wire.decode(reply["value"])
            kind, message = str(reply.get("raise")), str(reply.get("message", ""))[:2000]
        except TimeoutError:
            self.dead = "the code under test timed out"
            raise CandidateError(self.dead) from None
        except (EOFError, OSError):
            self.dead = "the code under test exited"
            raise CandidateError(self.dead) from None
        except _wire.WireError as error:
            self.dead = f"the code under test broke the protocol: {error}"
            raise CandidateError(self.dead) from None
        raise _SAFE_EXCEPTIONS.get(kind, CandidateError)(message)

    def proxy(self, name: str):
        def candidate_function(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, args, kwargs)

        candidate_function.__name__ = name
        return candidate_function


@dataclass
class _Tests:
    """Test code split into setup statements and test statements (each one test)."""

    setup: list[ast.stmt] = field(default_factory=list)
    tests: list[ast.stmt] = field(default_factory=list)
    candidate_name: str | None = None


def _split_tests(tests: str, entry_point: str | None) -> _Tests:
    module = ast.parse(tests)
    check = next(
        (
            node
            for node in module.body
            if isinstance(node, ast.FunctionDef) and node.name == "check"
        ),
        None,
    )
    if check is not None and entry_point:
        split = _Tests(setup=[node for node in module.body if node is not check])
        split.candidate_name = check.args.args[0].arg if check.args.args else "candidate"
        for node in check.body:
            (split.tests if _is_test(node) else split.setup).append(node)
        return split
    split = _Tests()
    for node in module.body:
        (split.tests if _is_test(node) else split.setup).append(node)
    return split


def _is_test(node: ast.stmt) -> bool:
    """An ``assert``, or a loop/with/if that contains one: one test each."""
    return isinstance(node, ast.Assert) or (
        any(isinstance(child, ast.Assert) for child in ast.walk(node))
        and not isinstance(node, (ast.FunctionDef, ast.ClassDef))
    )


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def run_tests(
    code: str,
    tests: str,
    *,
    entry_point: str | None = None,
    timeout: float = 5.0,
    memory_mb: int = 512,
    partial: bool = False,
    sandbox: Sandbox | None = None,
) -> CodeResult:
    """Run Python ``tests`` against ``code`` in the sandbox.

    Args:
        code: The code under test (a module defining functions).
        tests: Test code: top-level ``assert`` statements using the code's names, or a
            HumanEval-style ``def check(candidate)`` with ``entry_point`` naming the function
            under test. Every ``assert`` statement (or loop containing asserts) is one test.
        entry_point: The function ``check`` receives.
        timeout: Wall-clock seconds for the whole run.
        memory_mb: Address-space limit of the sandboxed process.
        partial: Reward the fraction of tests passed instead of all-or-nothing.
        sandbox: A :class:`Sandbox` (default: a shared pool of the strongest tier available).

    Never raises on anything the code does; a malformed ``tests`` string (trusted input) raises
    ``SyntaxError``. Arguments and return values cross the sandbox boundary as plain data
    (numbers, strings, lists, tuples, dicts, sets, bytes, None): functions taking callbacks or
    returning custom objects cannot be tested this way, and in-place mutation of an argument
    is not visible to the tests.
    """
    split = _split_tests(tests, entry_point)
    sandbox = sandbox or default_sandbox()
    limits = Limits(timeout=timeout, memory_mb=memory_mb, cpu_seconds=max(1, int(timeout) + 1))
    started = time.monotonic()
    outcomes: list[TestOutcome] = []
    error: str | None = None
    status = "passed"
    with sandbox.run(limits) as run:
        session = _Session(run)
        try:
            run.send({"code": code, "mode": "function"})
            loaded = run.receive()
        except TimeoutError:
            loaded, error, status = {}, "the code timed out while loading", "timeout"
        except (EOFError, OSError, _wire.WireError) as failure:
            loaded, error, status = {}, f"the code exited while loading ({failure})", "error"
        if status == "passed" and (loaded.get("op") != "loaded" or not loaded.get("ok")):
            error = str(loaded.get("error", "the code did not load"))[:2000]
            status = "error"
        if status == "passed":
            outcomes, error, status = _execute(split, loaded, session, entry_point)
    total = len(split.tests)
    passed_count = sum(outcome.passed for outcome in outcomes)
    if status == "passed" and total == 0:
        status = "no_tests"
    all_passed = status == "passed" and passed_count == total and total > 0
    if status == "passed" and not all_passed:
        status = "failed"
    reward = 1.0 if all_passed else (passed_count / total if partial and total else 0.0)
    return CodeResult(
        passed=all_passed,
        reward=reward,
        status=status,
        tests_passed=passed_count,
        tests_total=total,
        tier=sandbox.tier,
        stdout=run.stdout.decode("utf-8", "replace"),
        stderr=run.stderr.decode("utf-8", "replace"),
        error=error,
        warning=sandbox.warning,
        outcomes=outcomes,
        seconds=time.monotonic() - started,
    )


def _execute(
    split: _Tests, loaded: dict, session: _Session, entry_point: str | None
) -> tuple[list[TestOutcome], str | None, str]:
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "rlenv_tests"}
    try:
        for name, value in dict(loaded.get("values", {})).items():
            namespace[str(name)] = _wire.decode(value)
    except _wire.WireError as failure:
        return [], f"the code broke the protocol: {failure}", "error"
    for name in loaded.get("callables", []):
        namespace[str(name)] = session.proxy(str(name))
    if split.candidate_name is not None:
        if entry_point not in loaded.get("callables", []):
            return [], f"the code defines no function {entry_point!r}", "failed"
        namespace[split.candidate_name] = session.proxy(entry_point)
    for node in split.setup:
        try:
            exec(compile(ast.Module([node], []), "<tests>", "exec"), namespace)
        except Exception as failure:  # the tests' own setup failed (e.g. a missing function)
            message = f"test setup failed: {type(failure).__name__}: {failure}"
            return [], message[:2000], "failed"
    outcomes = []
    for index, node in enumerate(split.tests):
        source = _short(ast.unparse(node))
        try:
            exec(compile(ast.Module([node], []), "<tests>", "exec"), namespace)
        except AssertionError as failure:
            outcomes.append(
                TestOutcome(index=index, passed=False, source=source, message=str(failure)[:500])
            )
        except Exception as failure:
            message = f"{type(failure).__name__}: {failure}"[:500]
            outcomes.append(TestOutcome(index=index, passed=False, source=source, message=message))
        else:
            outcomes.append(TestOutcome(index=index, passed=True, source=source))
    if session.dead and "timed out" in session.dead:
        return outcomes, session.dead, "timeout"
    return outcomes, session.dead, "passed"


class IOCase(BaseModel):
    """One stdin/stdout test case."""

    input: str = ""
    output: str


def normalize_output(text: str) -> str:
    """Trailing whitespace of each line and trailing blank lines removed."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def run_io(
    code: str,
    cases: Sequence[IOCase | dict[str, str]],
    *,
    timeout: float = 5.0,
    memory_mb: int = 512,
    partial: bool = False,
    sandbox: Sandbox | None = None,
    match: Callable[[str, str], bool] | None = None,
) -> CodeResult:
    """Run ``code`` as a program once per case (a fresh sandboxed process each), feeding the
    case's input on stdin and comparing stdout with the expected output (after
    :func:`normalize_output`; ``match(stdout, expected)`` instead, for a benchmark that
    publishes its own rule). ``timeout`` is per case."""
    sandbox = sandbox or default_sandbox()
    parsed = [case if isinstance(case, IOCase) else IOCase.model_validate(case) for case in cases]
    limits = Limits(timeout=timeout, memory_mb=memory_mb, cpu_seconds=max(1, int(timeout) + 1))
    started = time.monotonic()
    outcomes, stdout, stderr, status = [], "", "", "passed"
    for index, case in enumerate(parsed):
        with sandbox.run(limits) as run:
            timed_out = False
            try:
                run.send({"code": code, "mode": "script", "stdin": case.input})
                while True:
                    run.receive()
            except TimeoutError:
                timed_out = True
            except (EOFError, OSError, _wire.WireError):
                pass
        out = run.stdout.decode("utf-8", "replace")
        if match is None:
            ok = not timed_out and normalize_output(out) == normalize_output(case.output)
        else:
            ok = not timed_out and match(out, case.output)
        message = "timed out" if timed_out else "" if ok else "wrong output"
        outcomes.append(
            TestOutcome(index=index, passed=ok, source=_short(case.input), message=message)
        )
        if not ok and status == "passed":
            status = "timeout" if timed_out else "failed"
            stdout, stderr = out, run.stderr.decode("utf-8", "replace")
    passed_count = sum(outcome.passed for outcome in outcomes)
    all_passed = bool(parsed) and passed_count == len(parsed)
    if not parsed:
        status = "no_tests"
    return CodeResult(
        passed=all_passed,
        reward=1.0 if all_passed else (passed_count / len(parsed) if partial and parsed else 0.0),
        status=status,
        tests_passed=passed_count,
        tests_total=len(parsed),
        tier=sandbox.tier,
        stdout=stdout,
        stderr=stderr,
        warning=sandbox.warning,
        outcomes=outcomes,
        seconds=time.monotonic() - started,
    )


def run_batch(
    jobs: Sequence[dict[str, Any]], *, sandbox: Sandbox | None = None
) -> list[CodeResult]:
    """Run many jobs concurrently (one per sandbox worker); results in the order of ``jobs``.

    Each job is the keyword arguments of :func:`run_tests` (with ``code`` and ``tests``) or of
    :func:`run_io` (with ``code`` and ``cases``).
    """
    sandbox = sandbox or default_sandbox()

    def one(job: dict[str, Any]) -> CodeResult:
        job = {**job, "sandbox": sandbox}
        return run_io(**job) if "cases" in job else run_tests(**job)

    with ThreadPoolExecutor(max_workers=sandbox.workers) as pool:
        return list(pool.map(one, jobs))
