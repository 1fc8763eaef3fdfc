"""``rlenv/Algebra-v0``: equations, polynomials and rational expressions with symbolic answers.

Every task is built *by construction* (choose the roots, the factors or the solution first,
then multiply out), so the reference answer is exact and generation takes microseconds: no
sympy at generation or scoring time. Equivalence, not string match, decides the reward:
``(x + 3)(x - 2)`` answers ``(x - 2)(x + 3)``; ``x = 1/2, x = -3`` answers ``-3, \\frac{1}{2}``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from math import gcd

from rlenv import GeneratedTasks, Task, TextEnv, Verdict
from rlenv.verifiers.compose import Verifier, gate
from rlenv.verifiers.math import extract_answer

from ._common import (
    BOX_INSTRUCTION,
    answer_scorer,
    boxed,
    check_format_options,
    latex_number,
)

KINDS = ("linear", "quadratic", "expand", "factor", "simplify", "system")
LEVEL_KINDS = {
    1: ("linear", "quadratic", "expand"),
    2: ("linear", "quadratic", "expand", "factor", "system"),
    3: KINDS,
}


class Algebra(TextEnv):
    """Solve equations, expand, factor and simplify: symbolic answers judged by equivalence.

    Kinds of task, and the answer each wants:

    - ``linear``: solve a linear equation for x; a number (``x = 5`` is accepted too).
    - ``quadratic``: solve a quadratic with two distinct rational roots; both roots, separated by
      commas, in any order (one root, or a list with an extra candidate, scores 0).
    - ``expand``: expand a product; a polynomial written without parentheses.
    - ``factor``: factor a polynomial over the integers; a product (no top-level + or -).
    - ``simplify``: cancel the common factor of a rational expression; a fraction with no more
      occurrences of x than the reference (``\\frac{x - 1}{x + 2}``), so the unsimplified
      expression, however rearranged, scores 0.
    - ``system``: solve two linear equations; the ordered pair ``(x, y)``.

    Equivalence (the math verifier) cannot see the *form* of an answer: ``x^{2} + 5x + 6`` and
    ``(x + 2)(x + 3)`` are the same polynomial. For ``expand``, ``factor`` and ``simplify`` a
    form check gates correctness: ``gate(form, answer)`` from :mod:`rlenv.verifiers.compose`.
    The answer itself goes through ``gate(boxed_format(), correct)`` as in Arithmetic-v0:
    it must be in ``\\boxed{}`` unless ``require_boxed=False``.

    Difficulty levels (``difficulty=``):

    1. linear ``ax + b = c`` with a whole-number solution, monic quadratics with whole-number
       roots, expanding ``(x + a)(x + b)``; coefficients up to 9.
    2. adds factoring and 2x2 systems; linear equations with x on both sides, quadratics with a
       leading coefficient, expanding ``(px + a)(qx + b)`` (the default).
    3. adds simplifying rational expressions; fractional solutions, rational roots, products of
       three factors and of two variables, a common factor to take out; coefficients up to 12.

    Args:
        difficulty: 1 to 3, as above.
        kinds: Restrict tasks to these kinds (default: all kinds of the level).
        require_boxed: Whether an answer outside ``\\boxed{}`` scores 0 (default True).
        format_weight: With ``require_boxed=False``, the weight of the boxed-format bonus.
    """

    def __init__(
        self,
        *,
        difficulty: int = 2,
        kinds: Sequence[str] | None = None,
        require_boxed: bool = True,
        format_weight: float = 0.0,
        **kwargs,
    ) -> None:
        if difficulty not in LEVEL_KINDS:
            raise ValueError(f"difficulty must be one of 1, 2, 3, got {difficulty!r}")
        chosen = tuple(kinds) if kinds is not None else LEVEL_KINDS[difficulty]
        unknown = [kind for kind in chosen if kind not in KINDS]
        if unknown or not chosen:
            raise ValueError(f"kinds must be a non-empty list drawn from {KINDS}, got {kinds!r}")
        check_format_options(require_boxed, format_weight)
        self.difficulty = difficulty
        self.kinds = chosen
        self.require_boxed = require_boxed
        self.format_weight = format_weight
        scorer = answer_scorer(require_boxed=require_boxed, format_weight=format_weight)
        self._scorers: dict[str, Verifier] = {kind: scorer for kind in KINDS}
        for kind, check in _FORM_CHECKS.items():
            form = _form_verifier(check, fallbacks=not require_boxed)
            self._scorers[kind] = gate(form, scorer, required_name="form", then_name="answer")
        super().__init__(**kwargs)

    def load_tasks(self) -> GeneratedTasks:
        def make_task(rng: random.Random) -> Task:
            kind = rng.choice(self.kinds)
            question, answer = _GENERATORS[kind](rng, self.difficulty)
            return Task(
                prompt=f"{question} {BOX_INSTRUCTION}",
                answer=answer,
                metadata={"kind": kind, "difficulty": self.difficulty},
            )

        return GeneratedTasks(make_task)

    def verify(self, task: Task, completion: str) -> Verdict | float | bool:
        kind = task.metadata.get("kind")
        return self._scorers.get(kind, self._scorers["linear"])(completion, task)

    def gold_action(self) -> str:
        return boxed(self.task.answer)


# ----------------------------------------------------------------------------- form checks

_NOISE = re.compile(r"\s|\\left|\\right|\\[,;!: ]|\$")
_X = re.compile(r"(?<![A-Za-z\\])x(?![A-Za-z])")


def _has_no_parentheses(answer: str, gold: str) -> str | None:
    if re.search(r"[()\[\]]", answer):
        return "an expanded polynomial is written without parentheses"
    return None


def _is_product(answer: str, gold: str) -> str | None:
    depth = 0
    for index, char in enumerate(answer):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char in "+-" and depth == 0 and index > 0:
            return "a factored answer is a product of factors, with no + or - outside them"
    if "(" not in answer:
        return "a factored answer is a product of factors in parentheses"
    return None


def _is_simplified(answer: str, gold: str) -> str | None:
    if len(_X.findall(answer)) > len(_X.findall(gold)):
        return "not simplified: cancel the common factor"
    return None


_FORM_CHECKS: dict[str, Callable[[str, str], str | None]] = {
    "expand": _has_no_parentheses,
    "factor": _is_product,
    "simplify": _is_simplified,
}


def _form_verifier(check: Callable[[str, str], str | None], *, fallbacks: bool) -> Verifier:
    def form(completion: str, task: Task) -> Verdict:
        answer = extract_answer(completion, fallbacks=fallbacks)
        if not answer:  # nothing to judge the form of: the answer check says why it fails
            return Verdict(reward=1.0, reason="no answer to check the form of")
        error = check(_NOISE.sub("", answer), _NOISE.sub("", str(task.answer)))
        return Verdict(reward=0.0 if error else 1.0, error=error, reason=error or "form")

    return form


# ----------------------------------------------------------------------------- polynomials

# A polynomial in x and y: {(power of x, power of y): coefficient}.
Poly = dict[tuple[int, int], Fraction]


def _poly(*terms: tuple[int | Fraction, int, int]) -> Poly:
    result: Poly = {}
    for coefficient, x_power, y_power in terms:
        key = (x_power, y_power)
        result[key] = result.get(key, Fraction(0)) + Fraction(coefficient)
    return {key: value for key, value in result.items() if value}


def _linear(p: int | Fraction, q: int | Fraction, variable: str = "") -> Poly:
    """``p x + q`` (or ``p x + q y`` with ``variable="y"``)."""
    return _poly((p, 1, 0), (q, 0, 1) if variable == "y" else (q, 0, 0))


def _times(*polys: Poly) -> Poly:
    result: Poly = {(0, 0): Fraction(1)}
    for poly in polys:
        product: Poly = {}
        for (a, b), c in result.items():
            for (d, e), f in poly.items():
                product[(a + d, b + e)] = product.get((a + d, b + e), Fraction(0)) + c * f
        result = {key: value for key, value in product.items() if value}
    return result


def _monomial(x_power: int, y_power: int) -> str:
    parts = []
    for name, power in (("x", x_power), ("y", y_power)):
        if power == 1:
            parts.append(name)
        elif power > 1:
            parts.append(f"{name}^{{{power}}}")
    return "".join(parts)


def poly_latex(poly: Poly) -> str:
    """``3x^{2} - xy + \\frac{1}{2}``: terms by descending power of x, then of y."""
    if not poly:
        return "0"
    text = ""
    for key in sorted(poly, reverse=True):
        coefficient, monomial = poly[key], _monomial(*key)
        magnitude = abs(coefficient)
        body = latex_number(magnitude) if magnitude != 1 or not monomial else ""
        term = body + monomial
        if not text:
            text = ("-" if coefficient < 0 else "") + term
        else:
            text += (" - " if coefficient < 0 else " + ") + term
    return text


def _factor_latex(factor: Poly) -> str:
    return f"({poly_latex(factor)})"


def _product_latex(constant: int, factors: Sequence[Poly]) -> str:
    """``2(x - 1)(x + 3)``, with equal factors as powers: ``(x - 2)^{2}``."""
    text = "" if constant == 1 else "-" if constant == -1 else str(constant)
    index = 0
    while index < len(factors):
        count = 1
        while index + count < len(factors) and factors[index + count] == factors[index]:
            count += 1
        text += _factor_latex(factors[index]) + (f"^{{{count}}}" if count > 1 else "")
        index += count
    return text


# ----------------------------------------------------------------------------- generators


def _nonzero(rng: random.Random, bound: int) -> int:
    return rng.choice((-1, 1)) * rng.randint(1, bound)


def _primitive_linear(rng: random.Random, max_p: int, max_q: int) -> tuple[int, int]:
    """``(p, q)`` with p > 0, q != 0 and gcd(p, q) = 1: the factor ``px + q``."""
    while True:
        p, q = rng.randint(1, max_p), _nonzero(rng, max_q)
        if gcd(p, q) == 1:
            return p, q


def _linear_equation(rng: random.Random, level: int) -> tuple[str, str]:
    if level == 1:
        a, solution, b = rng.randint(2, 9), rng.randint(-10, 10), _nonzero(rng, 20)
        left, right = _linear(a, b), _poly((a * solution + b, 0, 0))
        answer = Fraction(solution)
    else:
        while True:
            a, c = _nonzero(rng, 9 if level == 2 else 12), _nonzero(rng, 9 if level == 2 else 12)
            if a != c:
                break
        if level == 2:
            solution, b = rng.randint(-10, 10), _nonzero(rng, 20)
            left, right = _linear(a, b), _linear(c, (a - c) * solution + b)
            answer = Fraction(solution)
        else:
            b, d = _nonzero(rng, 9), _nonzero(rng, 20)
            answer = Fraction(d - a * b, a - c)
            bracket = poly_latex(_linear(1, b))
            question = f"Solve for $x$: ${a}({bracket}) = {poly_latex(_linear(c, d))}$."
            return question, latex_number(answer)
    question = f"Solve for $x$: ${poly_latex(left)} = {poly_latex(right)}$."
    return question, latex_number(answer)


def _quadratic(rng: random.Random, level: int) -> tuple[str, str]:
    while True:
        if level == 1:
            roots = [Fraction(rng.randint(-9, 9)), Fraction(rng.randint(-9, 9))]
            factors = [_linear(1, -root) for root in roots]
            constant = 1
        else:
            pairs = (
                [(1, _nonzero(rng, 9)), (1, _nonzero(rng, 9))]
                if level == 2
                else [_primitive_linear(rng, 6, 9), _primitive_linear(rng, 6, 9)]
            )
            factors = [_linear(p, q) for p, q in pairs]
            roots = [Fraction(-q, p) for p, q in pairs]
            constant = rng.randint(2, 5) if level == 2 else 1
        if roots[0] != roots[1]:
            break
    polynomial = _times(_poly((constant, 0, 0)), *factors)
    answer = ", ".join(latex_number(root) for root in sorted(roots))
    question = (
        f"Solve ${poly_latex(polynomial)} = 0$ for $x$. Give all real solutions, "
        "separated by commas."
    )
    return question, answer


def _random_factors(rng: random.Random, level: int) -> tuple[int, list[Poly]]:
    """A constant and linear factors whose product is a level-appropriate polynomial."""
    if level == 1:
        return 1, [_linear(1, _nonzero(rng, 9)), _linear(1, _nonzero(rng, 9))]
    if level == 2:
        shape = rng.choice(("monic", "leading", "squares"))
        if shape == "monic":
            return 1, [_linear(1, _nonzero(rng, 9)), _linear(1, _nonzero(rng, 9))]
        if shape == "squares":
            a = rng.randint(1, 9)
            return 1, [_linear(1, -a), _linear(1, a)]
        return 1, [_linear(*_primitive_linear(rng, 5, 9)), _linear(*_primitive_linear(rng, 5, 9))]
    shape = rng.choice(("three", "two variables", "common factor"))
    if shape == "three":
        return 1, [_linear(1, _nonzero(rng, 6)) for _ in range(3)]
    if shape == "two variables":
        return 1, [_linear(*_primitive_linear(rng, 5, 7), "y") for _ in range(2)]
    return rng.randint(2, 6), [_linear(*_primitive_linear(rng, 4, 9)) for _ in range(2)]


def _sorted_factors(factors: list[Poly]) -> list[Poly]:
    return sorted(factors, key=lambda factor: sorted(factor.items()))


def _expand(rng: random.Random, level: int) -> tuple[str, str]:
    constant, factors = _random_factors(rng, level)
    product = _times(_poly((constant, 0, 0)), *factors)
    question = f"Expand and simplify: ${_product_latex(constant, factors)}$."
    return question, poly_latex(product)


def _factor(rng: random.Random, level: int) -> tuple[str, str]:
    constant, factors = _random_factors(rng, level)
    product = _times(_poly((constant, 0, 0)), *factors)
    question = f"Factor completely over the integers: ${poly_latex(product)}$."
    return question, _product_latex(constant, _sorted_factors(factors))


def _simplify(rng: random.Random, level: int) -> tuple[str, str]:
    bound = 6 if level < 3 else 9
    while True:
        common, top, bottom = (_nonzero(rng, bound) for _ in range(3))
        if len({common, top, bottom}) == 3:
            break
    lead = rng.randint(1, 3) if level == 3 else 1
    if top == lead * bottom:  # lead(x + bottom) would cancel too: the answer must be simplest
        top += 1
    numerator, denominator = _linear(lead, top), _linear(1, bottom)
    shared = _linear(1, common)
    question = (
        f"Simplify: $\\frac{{{poly_latex(_times(shared, numerator))}}}"
        f"{{{poly_latex(_times(shared, denominator))}}}$."
    )
    return question, f"\\frac{{{poly_latex(numerator)}}}{{{poly_latex(denominator)}}}"


def _system(rng: random.Random, level: int) -> tuple[str, str]:
    bound = 6 if level < 3 else 9
    while True:
        a, b, c, d = (_nonzero(rng, bound) for _ in range(4))
        if level == 1:
            a = 1
        if a * d - b * c != 0:
            break
    if level < 3:
        x, y = Fraction(rng.randint(-9, 9)), Fraction(rng.randint(-9, 9))
        e, f = a * x + b * y, c * x + d * y
    else:
        e, f = _nonzero(rng, 20), _nonzero(rng, 20)
        determinant = a * d - b * c
        x, y = Fraction(e * d - b * f, determinant), Fraction(a * f - e * c, determinant)
    first, second = _poly((a, 1, 0), (b, 0, 1)), _poly((c, 1, 0), (d, 0, 1))
    question = (
        f"Solve the system of equations ${poly_latex(first)} = {latex_number(e)}$ and "
        f"${poly_latex(second)} = {latex_number(f)}$. Give the solution as an ordered pair "
        "$(x, y)$."
    )
    return question, f"({latex_number(x)}, {latex_number(y)})"


_GENERATORS: dict[str, Callable[[random.Random, int], tuple[str, str]]] = {
    "linear": _linear_equation,
    "quadratic": _quadratic,
    "expand": _expand,
    "factor": _factor,
    "simplify": _simplify,
    "system": _system,
}
