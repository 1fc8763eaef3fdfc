"""rlenv.verifiers.text: the exact, regex and choice verifiers on their own (their use in
DatasetEnv is tested in tests/test_datasets_env.py)."""

from __future__ import annotations

import pytest

from rlenv.tasks import Task
from rlenv.verifiers.text import (
    choice_answer,
    choice_letter,
    exact_answer,
    final_answer,
    regex_answer,
)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("Paris", ("Paris", "bare_answer")),
        ("Reasoning first.\n\nThe answer is 7 apples.", ("7 apples", "final_answer")),
        ("Work.\nAnswer: **Rome**", ("Rome", "final_answer")),
        ("I think \\boxed{Oslo} is it.", ("Oslo", "box")),
        ("\\boxed{Oslo", (None, "the last box is never closed")),
        ("<think>Paris</think>", (None, "no final answer found")),
        ("<think>Paris", (None, "no answer after the reasoning")),
        ("A long essay\n\nwith Paris inside it", (None, "no final answer found")),
    ],
)
def test_final_answer(completion, expected):
    assert final_answer(completion) == expected


@pytest.mark.parametrize(
    ("gold", "choices", "letter"),
    [("B", None, "B"), ("(c)", None, "C"), ("D.", None, "D"), (0, None, "A"), (3, ["a"] * 4, "D"),
     (4, ["a"] * 4, None), (True, None, None), ("9", ["2", "9"], "B"), ("nine", ["2", "9"], None),
     (None, None, None)],
)  # fmt: skip
def test_choice_letter(gold, choices, letter):
    assert choice_letter(gold, choices) == letter


def test_never_raises_and_unjudgeable_golds_are_unscored():
    hostile = ["", "\x00" * 5000, "\\boxed{" * 3000, "Answer: " + "(" * 10_000, "\udcff"]
    for verifier, gold in ((exact_answer(), "x"), (regex_answer(), "a+"), (choice_answer(), "A")):
        for text in hostile:
            assert verifier(text, Task(prompt="q", answer=gold)).reward == 0.0
    assert not exact_answer()("x", Task(prompt="q", answer=None)).scored
    assert not regex_answer()("x", Task(prompt="q", answer="[")).scored
    assert not choice_answer()("A", Task(prompt="q", answer="maybe")).scored
