"""A sandbox run as a verdict, and the feedback a retrying environment gives: what the code
environments (``rlenv.envs.code``) and ``DatasetEnv``'s ``code`` verifier share."""

from __future__ import annotations

from rlenv.verdict import Verdict
from rlenv.verifiers.code.runner import CodeResult

INSTRUCTION = "Reply with your complete solution in a single ```python code block."
MAX_FEEDBACK_CHARS = 800


def verdict_from(result: CodeResult, code: str) -> Verdict:
    """A verdict from a sandbox run. A sandbox that could not start is not a judgement."""
    reason = f"{result.tests_passed}/{result.tests_total} tests passed ({result.status})"
    return Verdict(
        reward=result.reward,
        reason=reason,
        parsed=code if len(code) <= 4000 else code[:4000] + "...",
        components={
            "tests_passed": float(result.tests_passed),
            "tests_total": float(result.tests_total),
        },
        error=result.error if result.status in ("error", "timeout") else None,
    )


def no_code_verdict() -> Verdict:
    return Verdict(reward=0.0, error="no ```python code block found", reason="no code")


def feedback(result: CodeResult) -> str:
    """What a feedback environment tells the model after a failed attempt (bounded)."""
    if result.status == "error":
        text = f"Your code failed to run:\n{result.error}"
    elif result.status == "timeout":
        text = "Your code ran out of time."
    else:
        failing = next((outcome for outcome in result.outcomes if not outcome.passed), None)
        text = f"{result.tests_passed} of {result.tests_total} tests passed."
        if failing is not None:
            text += f"\nA failing test:\n{failing.source}"
            if failing.message:
                text += f"\n{failing.message}"
    if len(text) > MAX_FEEDBACK_CHARS:
        text = text[:MAX_FEEDBACK_CHARS] + "..."
    return text + "\nFix the code and reply with the whole solution again."
