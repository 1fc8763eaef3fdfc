"""``rlenv/Arithmetic-v0``: integer arithmetic, answered in ``\\boxed{}``.

A small single-turn environment with exact integer answers. Its checker reads the last
``\\boxed{...}`` (or, with ``require_boxed=False``, the last whole number) and compares integers
exactly; the math issue's sympy verifier covers the general case.
"""

from __future__ import annotations

import random
import re

from rlenv import GeneratedTasks, Task, TextEnv, Verdict

# An integer, optionally with comma thousands separators in groups of three.
_INTEGER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d{1,40})")
_LAST_NUMBER = re.compile(r"(?<![\d.])-?\d{1,30}(?![\d.])")
_OPERATORS = ("+", "-", "*")


class Arithmetic(TextEnv):
    """Compute ``a op b`` for random integers with ``digits`` digits; op in ``+ - *``.

    Reward 1.0 for the exact integer, 0.0 otherwise. By default the answer must be the last
    ``\\boxed{...}`` in the reply (thousands separators allowed); text after ``</think>`` only.
    """

    def __init__(self, *, digits: int = 2, require_boxed: bool = True, **kwargs) -> None:
        if not 1 <= digits <= 12:
            raise ValueError(f"digits must be between 1 and 12, got {digits}")
        self.digits = digits
        self.require_boxed = require_boxed
        super().__init__(**kwargs)

    def load_tasks(self) -> GeneratedTasks:
        low, high = 10 ** (self.digits - 1), 10**self.digits - 1

        def make_task(rng: random.Random) -> Task:
            a, b = rng.randint(low, high), rng.randint(low, high)
            op = rng.choice(_OPERATORS)
            answer = a + b if op == "+" else a - b if op == "-" else a * b
            prompt = f"Compute {a} {op} {b}. Put the final answer in \\boxed{{}}."
            return Task(prompt=prompt, answer=answer, metadata={"a": a, "b": b, "op": op})

        return GeneratedTasks(make_task)

    def verify(self, task: Task, completion: str) -> Verdict:
        if "</think>" in completion:
            completion = completion.rsplit("</think>", 1)[1]
        boxed = _last_boxed(completion)
        if boxed is not None:
            text = boxed.strip()
            if not _INTEGER.fullmatch(text):
                return Verdict(
                    reward=0.0, error=f"the boxed answer is not an integer: {text!r:.80}"
                )
        elif not self.require_boxed and (numbers := _LAST_NUMBER.findall(completion)):
            text = numbers[-1]
        else:
            return Verdict(reward=0.0, error="no \\boxed{} answer found")
        value = int(text.replace(",", ""))
        correct = value == task.answer
        return Verdict(
            reward=1.0 if correct else 0.0,
            parsed=value,
            reason="correct" if correct else f"expected {task.answer}, got {value}",
        )

    def gold_action(self) -> str:
        return f"The answer is \\boxed{{{self.task.answer}}}."


def _last_boxed(text: str, limit: int = 200) -> str | None:
    """The content of the last ``\\boxed{...}`` (balanced braces, at most ``limit`` chars)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    begin = start + len("\\boxed{")
    for index in range(begin, min(len(text), begin + limit)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return text[begin:index]
            depth -= 1
    return None
