"""``rlenv/Calculator-v0``: arithmetic and unit conversions too big to do in one's head.

The model has two tools — ``calculate`` (exact arithmetic) and ``convert`` (units) — and must
finish with the answer in ``\\boxed{}``, which the math verifier checks. ``calculate`` is the math
verifier's own exact arithmetic (:func:`rlenv.verifiers.math.exact_value`, a bounded parser and
``Fraction``): it never calls ``eval``.
"""

from __future__ import annotations

import random
from fractions import Fraction

from rlenv import GeneratedTasks, Task, Verdict
from rlenv.tools import ParsedCall, ToolEnv, get_parser, tool
from rlenv.verifiers.math import MathVerifier, exact_value

_LENGTH = {"mm": Fraction(1, 1000), "cm": Fraction(1, 100), "m": Fraction(1), "km": Fraction(1000),
           "in": Fraction(254, 10000), "ft": Fraction(3048, 10000), "yd": Fraction(9144, 10000),
           "mi": Fraction(1609344, 1000)}  # fmt: skip
_MASS = {"g": Fraction(1, 1000), "kg": Fraction(1), "lb": Fraction(45359237, 10**8),
         "oz": Fraction(45359237, 16 * 10**8)}  # fmt: skip
_UNITS = {**{unit: ("length", factor) for unit, factor in _LENGTH.items()},
          **{unit: ("mass", factor) for unit, factor in _MASS.items()}}  # fmt: skip


def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator} (≈ {float(value):.10g})"


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly.

    Args:
        expression: Numbers with + - * / ^ and parentheses, e.g. "(48213 * 9377 - 123) / 7".
    """
    if len(expression) > 500:
        raise ValueError("expression longer than 500 characters")
    return _show(exact_value(expression))  # a ValueError says what is wrong, for the model


@tool
def convert(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a length or a mass between units.

    Args:
        value: The quantity to convert.
        from_unit: One of mm, cm, m, km, in, ft, yd, mi, g, kg, lb, oz.
        to_unit: A unit of the same kind.
    """
    if from_unit not in _UNITS or to_unit not in _UNITS:
        raise ValueError(f"unknown unit; known units: {', '.join(_UNITS)}")
    (kind_from, factor_from), (kind_to, factor_to) = _UNITS[from_unit], _UNITS[to_unit]
    if kind_from != kind_to:
        raise ValueError(f"cannot convert {kind_from} to {kind_to}")
    return _show(Fraction(str(value)) * factor_from / factor_to)


class Calculator(ToolEnv):
    """Compute with the ``calculate`` and ``convert`` tools; answer in ``\\boxed{}``.

    ``difficulty`` 1: one product of two 4–5 digit numbers; 2: a three-operation expression with
    6-digit numbers; 3: a unit conversion rounded to the nearest whole number. Reward 1.0 when
    the boxed answer equals the exact result (the math verifier decides), else 0.
    """

    max_turns = 6
    system_prompt = (
        'You can call tools. To call one, write <tool_call>{"name": ..., "arguments": {...}}'
        "</tool_call>. When you know the result, reply with the final answer in \\boxed{}."
    )

    def __init__(self, *, difficulty: int = 2, **kwargs) -> None:
        if difficulty not in (1, 2, 3):
            raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
        self.difficulty = difficulty
        self.verifier = MathVerifier(fallbacks=False)
        super().__init__(**kwargs)

    def load_tools(self):
        return [calculate, convert]

    def load_tasks(self) -> GeneratedTasks:
        def make_task(rng: random.Random) -> Task:
            if self.difficulty == 1:
                a, b = rng.randint(1000, 99999), rng.randint(1000, 99999)
                expression = f"{a} * {b}"
                return Task(
                    prompt=f"What is {a} × {b}?",
                    answer=str(a * b),
                    metadata={"expression": expression},
                )
            if self.difficulty == 2:
                a, b, c, d = (rng.randint(100_000, 999_999) for _ in range(4))
                expression = f"({a} * {b} - {c}) / {d}"
                value = exact_value(expression)
                answer = (
                    f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
                    if value.denominator != 1
                    else str(value)
                )
                return Task(
                    prompt=f"Compute ({a} × {b} − {c}) ÷ {d} exactly, as a fraction in lowest "
                    "terms.",
                    answer=answer,
                    metadata={"expression": expression},
                )
            unit_from, unit_to = rng.choice(
                [("km", "in"), ("mi", "m"), ("kg", "oz"), ("lb", "g"), ("yd", "cm")]
            )
            amount = rng.randint(2, 999)
            exact = Fraction(amount) * _UNITS[unit_from][1] / _UNITS[unit_to][1]
            rounded = int(exact + Fraction(1, 2))
            return Task(
                prompt=f"How many {unit_to} are in {amount} {unit_from}? Round to the nearest "
                "whole number.",
                answer=str(rounded),
                metadata={"convert": [amount, unit_from, unit_to]},
            )

        return GeneratedTasks(make_task)

    def verify(self, task: Task, completion: str) -> Verdict:
        return self.verifier(completion, task.answer)

    def gold_action(self) -> str:
        """First the tool call, then the boxed answer."""
        if self.trace:
            return f"The answer is \\boxed{{{self.task.answer}}}."
        meta = self.task.metadata
        if "convert" in meta:
            amount, unit_from, unit_to = meta["convert"]
            arguments = {"value": amount, "from_unit": unit_from, "to_unit": unit_to}
            call = ParsedCall("convert", arguments)
        else:
            call = ParsedCall("calculate", {"expression": meta["expression"]})
        return get_parser(self.parser).render([call])
