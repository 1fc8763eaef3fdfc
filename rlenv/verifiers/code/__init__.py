"""The code verifier: run unit tests against model-written code in a real sandbox.

>>> from rlenv.verifiers.code import run_tests
>>> result = run_tests("def add(a, b):\\n    return a + b\\n", "assert add(2, 3) == 5")
>>> result.passed, result.status
(True, 'passed')

See ``docs/verifiers/code.md``: the isolation tiers, the threat model, and why the verdict
cannot be forged by the code under test.
"""

from rlenv.verifiers.code.extract import DEFAULT_CODE_FALLBACKS, extract_code
from rlenv.verifiers.code.runner import (
    CandidateError,
    CodeResult,
    IOCase,
    TestOutcome,
    normalize_output,
    run_batch,
    run_io,
    run_tests,
)
from rlenv.verifiers.code.sandbox import Limits, Sandbox, default_sandbox, detect_tier

__all__ = [
    "DEFAULT_CODE_FALLBACKS",
    "CandidateError",
    "CodeResult",
    "IOCase",
    "Limits",
    "Sandbox",
    "TestOutcome",
    "default_sandbox",
    "detect_tier",
    "extract_code",
    "normalize_output",
    "run_batch",
    "run_io",
    "run_tests",
]
