"""``rlenv.reasoning``: the one definition of where reasoning is, shared by the tool-call parsers
and the verifiers, so that neither reads an answer or a call out of a model's thinking."""

from __future__ import annotations

import pytest

from rlenv.reasoning import final_text
from rlenv.tools import get_parser
from rlenv.verifiers.math import grade


@pytest.mark.parametrize(
    ("text", "final"),
    [
        ("The answer is 4.", "The answer is 4."),
        ("<think>2+2</think>The answer is 4.", "The answer is 4."),
        ("[THINK]2+2[/THINK]The answer is 4.", "The answer is 4."),
        ("<|channel>thought\n2+2<channel|>The answer is 4.", "The answer is 4."),
        ("2+2, so</think>The answer is 4.", "The answer is 4."),  # the prompt opened <think>
        ("<think>2+2 is maybe 5", None),  # never finished thinking
        ("[THINK]maybe 5", None),
        ("A <think>x</think> 4 <think>y 9", None),  # ends inside a second block
        ("<think>a</think>", ""),
        (None, None),
    ],
)
def test_final_text(text, final):
    assert final_text(text) == final


@pytest.mark.parametrize(
    "response",
    [
        "[THINK]maybe \\boxed{5}",  # unclosed Magistral reasoning: no answer
        "maybe \\boxed{5}[/THINK]nothing else",  # the prompt opened [THINK]
        "<think>x</think> \\boxed{4} <think>or \\boxed{5}",  # ends thinking again
    ],
)
def test_the_math_grader_never_takes_an_answer_from_reasoning(response):
    assert grade("5", response).reward == 0.0


def test_verifiers_and_parsers_agree_on_what_is_reasoning():
    text = '[THINK]call it? <tool_call>{"name": "f", "arguments": {}}</tool_call>[/THINK]No.'
    turn = get_parser("hermes").parse(text)
    assert (turn.calls, turn.content) == ([], "No.")
    assert final_text(text) == "No."
