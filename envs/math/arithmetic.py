"""``rlenv/Arithmetic-v0``: exact arithmetic, from one-digit sums to multi-step fractions.

Tasks are built by construction from a seeded ``random.Random``: an expression tree of exact
``Fraction`` values, rendered in LaTeX with the fewest parentheses that keep its meaning, and
its value computed in Python. The reward uses :mod:`rlenv.verifiers.compose`: a format gate
(``\\boxed{}`` required) in front of the math verifier, or a weighted format bonus.
"""

from __future__ import annotations

import random
from fractions import Fraction
from operator import add, mul, sub
from typing import Union

from rlenv import GeneratedTasks, Task, TextEnv, Verdict

from ._common import (
    BOX_INSTRUCTION,
    EXACT,
    answer_scorer,
    boxed,
    check_format_options,
    latex_number,
)

# An expression: a number, or (operator, left, right) with operator in "+-*/".
Expr = Union[Fraction, tuple[str, "Expr", "Expr"]]  # noqa: UP007

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_LATEX_OPERATOR = {"+": "+", "-": "-", "*": "\\times", "/": "\\div"}

# Arithmetic answers are exact and in lowest terms: 14/6 does not answer 14 ÷ 6.
POLICY = EXACT.model_copy(update={"reduced_fractions": True})

LEVELS = {
    1: "one-digit addition and subtraction",
    2: "two-digit addition, subtraction and multiplication",
    3: "division with exact fractions",
    4: "order of operations: 3-4 whole numbers, parentheses",
    5: "multi-step: 4-5 operands with negatives and fractions",
}


class Arithmetic(TextEnv):
    """Compute ``a op b`` and longer expressions exactly; answer in ``\\boxed{}``.

    Reward 1.0 for the exact integer or fraction (in lowest terms; a decimal only if it is
    exactly the value), 0.0 otherwise. By default the answer must be the last ``\\boxed{...}``
    after any ``</think>``: ``gate(boxed_format(), correct)`` from
    :mod:`rlenv.verifiers.compose`. With ``require_boxed=False`` the answer may also be stated
    ("The answer is 12") or be the last number, and ``format_weight=w`` pays
    ``(1 - w) * correct + w * boxed``.

    Difficulty levels (``difficulty=``):

    1. one-digit addition and subtraction: ``7 - 9``;
    2. two-digit addition, subtraction and multiplication: ``37 \\times 58`` (the default);
    3. division with exact fractions: ``45 \\div 12``, ``\\frac{3}{4} \\div \\frac{5}{6}``;
    4. order of operations: 3-4 whole numbers with parentheses: ``(12 - 5) \\times 3 + 8``;
    5. multi-step: 4-5 operands with negatives and fractions:
       ``(-3) \\times \\frac{2}{5} - (7 + \\frac{1}{3}) \\div 2``.

    Args:
        difficulty: 1 to 5, as above.
        digits: Digits of each operand at levels 1 and 2 (default 1 and 2), 1 to 12.
        require_boxed: Whether an answer outside ``\\boxed{}`` scores 0 (default True).
        format_weight: With ``require_boxed=False``, the weight of the boxed-format bonus.
        prompt_template: How a task is worded: a ``str.format`` template with the fields
            ``{expression}`` (LaTeX, no dollar signs) and ``{instruction}`` (the box
            instruction, with the exact-value note at levels 3 and 5). Default:
            ``"Compute ${expression}$. {instruction}"``. Small models answer a bare
            ``"{expression}"`` under a calculator system prompt far more reliably.
    """

    def __init__(
        self,
        *,
        difficulty: int = 2,
        digits: int | None = None,
        require_boxed: bool = True,
        format_weight: float = 0.0,
        prompt_template: str = "Compute ${expression}$. {instruction}",
        **kwargs,
    ) -> None:
        if difficulty not in LEVELS:
            raise ValueError(f"difficulty must be one of {sorted(LEVELS)}, got {difficulty!r}")
        if digits is not None:
            if difficulty > 2:
                raise ValueError("digits applies to difficulty 1 and 2 only")
            if not 1 <= digits <= 12:
                raise ValueError(f"digits must be between 1 and 12, got {digits}")
        check_format_options(require_boxed, format_weight)
        try:
            prompt_template.format(expression="1 + 1", instruction="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"prompt_template may use only {{expression}} and {{instruction}}: {error}"
            ) from None
        self.prompt_template = prompt_template
        self.difficulty = difficulty
        self.digits = digits if digits is not None else min(difficulty, 2)
        self.require_boxed = require_boxed
        self.format_weight = format_weight
        self._scorer = answer_scorer(
            require_boxed=require_boxed, format_weight=format_weight, policy=POLICY
        )
        super().__init__(**kwargs)

    def load_tasks(self) -> GeneratedTasks:
        def make_task(rng: random.Random) -> Task:
            value: Fraction | int
            if self.difficulty in _WHOLE_LEVELS:  # a op b on whole numbers: ints suffice
                symbol, a, b = _whole_operation(rng, self.difficulty, self.digits)
                value = _WHOLE_VALUE[symbol](a, b)
                latex = f"{a} {_LATEX_OPERATOR[symbol]} {b}"
            else:
                expression = _GENERATORS[self.difficulty](rng, self.digits)
                value = evaluate(expression)
                latex = to_latex(expression)
            if self.difficulty in (1, 2, 4):  # whole-number answers
                instruction = BOX_INSTRUCTION
            else:
                instruction = (
                    "Give the exact value, as an integer or a fraction in lowest terms. "
                    f"{BOX_INSTRUCTION}"
                )
            prompt = self.prompt_template.format(expression=latex, instruction=instruction)
            return Task(
                prompt=prompt,
                # exact: an int for a whole number, else LaTeX such as "-\\frac{7}{3}"
                answer=value.numerator if value.denominator == 1 else latex_number(value),
                # str(value) of a whole number is the same for an int and a Fraction
                metadata={"difficulty": self.difficulty, "expression": latex, "value": str(value)},
            )

        return GeneratedTasks(make_task)

    def verify(self, task: Task, completion: str) -> Verdict | float | bool:
        return self._scorer(completion, task)

    def gold_action(self) -> str:
        return boxed(self.task.answer)


# ----------------------------------------------------------------------------- expressions


def evaluate(expression: Expr) -> Fraction:
    """The exact value; raises ``ZeroDivisionError`` on division by zero."""
    if isinstance(expression, Fraction):
        return expression
    operator, left, right = expression
    a, b = evaluate(left), evaluate(right)
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    return a / b


def to_latex(expression: Expr) -> str:
    """LaTeX with the parentheses the expression needs (and negative numbers parenthesised)."""
    if isinstance(expression, Fraction):
        text = latex_number(expression)
        return f"({text})" if expression < 0 else text
    operator, left, right = expression
    left_text, right_text = to_latex(left), to_latex(right)
    if _precedence(left) < _PRECEDENCE[operator]:
        left_text = f"({left_text})"
    if _precedence(right) < _PRECEDENCE[operator] or (
        _precedence(right) == _PRECEDENCE[operator] and operator in "-/"
    ):
        right_text = f"({right_text})"
    return f"{left_text} {_LATEX_OPERATOR[operator]} {right_text}"


def _precedence(expression: Expr) -> int:
    return 3 if isinstance(expression, Fraction) else _PRECEDENCE[expression[0]]


def _tree(rng: random.Random, operands: list[Fraction], operators: str) -> Expr:
    """A random binary tree over ``operands`` (in order) with operators drawn from ``operators``."""
    if len(operands) == 1:
        return operands[0]
    split = rng.randint(1, len(operands) - 1)
    operator = rng.choice(operators)
    return (
        operator,
        _tree(rng, operands[:split], operators),
        _tree(rng, operands[split:], operators),
    )


# ----------------------------------------------------------------------------- levels


def _whole_operation(rng: random.Random, difficulty: int, digits: int) -> tuple[str, int, int]:
    """Levels 1 and 2: ``(operator, a, b)`` with ``a, b >= 0`` of ``digits`` digits."""
    if difficulty == 1:
        operators, low = "+-", 0 if digits == 1 else 10 ** (digits - 1)
    else:
        operators, low = "+-*", 10 ** (digits - 1)
    high = 10**digits - 1
    return rng.choice(operators), rng.randint(low, high), rng.randint(low, high)


# Levels whose task ``make_task`` builds from ``_whole_operation`` in ints: with both operands
# whole and >= 0, ``to_latex`` puts no parentheses (``f"{a} {operator} {b}"``) and ``evaluate``
# gives a whole number, so the task is the one the ``Fraction`` tree gives, without building it
# (tests/envs/test_arithmetic_identity.py pins every task of seeds 0..2,000).
_WHOLE_LEVELS = frozenset({1, 2})
_WHOLE_VALUE = {"+": add, "-": sub, "*": mul}


def _level_1(rng: random.Random, digits: int) -> Expr:
    symbol, a, b = _whole_operation(rng, 1, digits)
    return (symbol, Fraction(a), Fraction(b))


def _level_2(rng: random.Random, digits: int) -> Expr:
    symbol, a, b = _whole_operation(rng, 2, digits)
    return (symbol, Fraction(a), Fraction(b))


def _proper_fraction(rng: random.Random, max_denominator: int = 12) -> Fraction:
    """A fraction that is not a whole number, e.g. 3/4 or 7/5."""
    while True:
        value = Fraction(rng.randint(1, 2 * max_denominator), rng.randint(2, max_denominator))
        if value.denominator != 1:
            return value


def _level_3(rng: random.Random, digits: int) -> Expr:
    if rng.random() < 0.5:
        divisor = rng.randint(2, 20)
        dividend = rng.randint(1, 99)
        return ("/", Fraction(dividend), Fraction(divisor))
    return (rng.choice("+-*/"), _proper_fraction(rng), _proper_fraction(rng))


def _level_4(rng: random.Random, digits: int) -> Expr:
    for _ in range(100):  # until the tree needs parentheses and every division is exact
        operands = [Fraction(rng.randint(1, 20)) for _ in range(rng.randint(3, 4))]
        expression = _tree(rng, operands, "+-*/")
        if "(" in to_latex(expression) and _integral_throughout(expression):
            return expression
    return ("*", ("+", Fraction(2), Fraction(3)), Fraction(4))  # unreachable in practice


def _integral_throughout(expression: Expr) -> bool:
    """Every intermediate value is a whole number (so a level-4 answer is an integer)."""
    if isinstance(expression, Fraction):
        return True
    _, left, right = expression
    if not (_integral_throughout(left) and _integral_throughout(right)):
        return False
    try:
        return evaluate(expression).denominator == 1
    except ZeroDivisionError:
        return False


def _level_5(rng: random.Random, digits: int) -> Expr:
    for _ in range(100):  # until the value is defined and of a sensible size
        count = rng.randint(4, 5)
        operands = [Fraction(-rng.randint(1, 12)), _proper_fraction(rng, 9)]
        while len(operands) < count:
            if rng.random() < 0.5:
                operands.append(Fraction(rng.choice((-1, 1)) * rng.randint(1, 12)))
            else:
                operands.append(_proper_fraction(rng, 9) * rng.choice((-1, 1)))
        rng.shuffle(operands)
        expression = _tree(rng, operands, "+-*/")
        try:
            value = evaluate(expression)
        except ZeroDivisionError:
            continue
        if value.denominator <= 1000 and abs(value.numerator) <= 100_000:
            return expression
    return ("-", Fraction(-3), Fraction(1, 2))  # unreachable in practice


_GENERATORS = {1: _level_1, 2: _level_2, 3: _level_3, 4: _level_4, 5: _level_5}
