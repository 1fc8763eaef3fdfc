"""Shared pieces of the math environments: LaTeX for exact numbers, the boxed gold answer, and
the scoring rule (format gate or format weight, then equivalence)."""

from __future__ import annotations

from fractions import Fraction

from rlenv.verifiers.compose import Verifier, boxed_format, gate, math_answer, weighted
from rlenv.verifiers.math import MathPolicy, MathVerifier

BOX_INSTRUCTION = "Put your final answer in \\boxed{}."

# Exact answers: a decimal counts only when it equals the reference exactly (0.5 for 1/2, never
# 0.3333 for 1/3).
EXACT = MathPolicy(rel_tol=0.0)


def latex_number(value: Fraction | int) -> str:
    """``7`` → ``"7"``, ``-7/3`` → ``"-\\frac{7}{3}"`` (lowest terms)."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def boxed(answer: object) -> str:
    """A reply that commits to ``answer`` the way the prompts ask."""
    return f"The final answer is \\boxed{{{answer}}}."


def check_format_options(require_boxed: bool, format_weight: float) -> None:
    if not 0.0 <= format_weight < 1.0:
        raise ValueError(f"format_weight must be in [0, 1), got {format_weight!r}")
    if require_boxed and format_weight:
        raise ValueError(
            "format_weight needs require_boxed=False: with require_boxed=True an answer "
            "outside \\boxed{} already scores 0"
        )


def answer_scorer(
    *, require_boxed: bool, format_weight: float, policy: MathPolicy = EXACT
) -> Verifier:
    """How the math envs score a reply (see ``docs/environments/math.md``).

    - ``require_boxed=True``: ``gate(boxed_format(), correct)``: no ``\\boxed{}``, no reward;
      the boxed answer must be equivalent to the reference.
    - ``require_boxed=False``: the answer may also be given as "The answer is X", "Answer: X" or
      as the last number; with ``format_weight=w > 0`` the reward is
      ``(1 - w) * correct + w * boxed`` (``weighted``), a shaping bonus for the format.
    """
    correct = math_answer(MathVerifier(policy=policy, fallbacks=not require_boxed))
    if require_boxed:
        return gate(boxed_format(), correct)
    if format_weight:
        return weighted(
            correct=(correct, 1.0 - format_weight), format=(boxed_format(), format_weight)
        )
    return correct
