"""Verifiers for answers that are text, not mathematics: exact match, a regular expression, a
multiple-choice letter.

Each is a verifier in the sense of :mod:`rlenv.verifiers.compose` (``(completion, task) ->
Verdict``), comparing the final answer a completion commits to with ``task.answer``, so they
compose with ``gate``/``weighted`` like the math verifier. They never raise on model output.

The final answer is read as the math verifier reads it (:mod:`rlenv.verifiers._answer`), with
the rules that suit text: reasoning (``<think>``...) never answers; the last ``\\boxed{...}``;
else "The answer is X" / "Answer: X"; else a reply that is one short line is the answer itself.
A reply that states nothing in those forms has no answer (reward 0, ``error`` says so): a long
essay that merely *contains* the gold somewhere earns nothing.

Threat model (a reward a policy can fake is a bug):

- ``exact``: equality after trimming whitespace, a closing full stop, markdown emphasis and
  math delimiters (the same cleaning for the gold), and (by default) case. No substring match.
- ``regex``: ``re.fullmatch`` of the gold pattern on the extracted answer, never ``search``: an
  answer listing every candidate does not match a pattern for one. Patterns come from the
  dataset's author, not from the model; the model controls only the answer text, which the
  extraction bounds (300 characters for a phrase, 2,000 for a box), so a pattern's backtracking
  cost is bounded by the author's pattern on a short string.
- ``choice``: one letter A–J, read by :func:`rlenv.verifiers.math.grade`'s multiple-choice
  rules (the one implementation): "(B)", "The answer is B", ``\\boxed{B}``; the last one
  stated counts, so listing every letter earns at most the last.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rlenv.tasks import Task
from rlenv.verdict import Verdict
from rlenv.verifiers._answer import (
    _ANSWER_COLON,
    _FINAL_ANSWER,
    _TAIL,
    _clean,
    _reasoning_removed,
    read_answer,
)
from rlenv.verifiers.math import grade

__all__ = [
    "choice_answer",
    "choice_letter",
    "exact_answer",
    "final_answer",
    "regex_answer",
]

_LETTERS = "ABCDEFGHIJ"
_SPACES = re.compile(r"\s+")


def final_answer(completion: str) -> tuple[str | None, str]:
    """The text answer ``completion`` commits to and the rule that found it, or ``None`` and
    why there is none (see the module docstring for the rules)."""
    boxed, how = read_answer(completion, fallbacks=False)  # the box rules, and reasoning's
    if boxed is not None or how != "no final answer found":
        return boxed, how
    body = _reasoning_removed(completion) or ""
    tail = body[-_TAIL:]
    # The phrase as written: the math rules would cut "7 apples" down to its number.
    for rule, pattern in (("final_answer", _FINAL_ANSWER), ("answer_colon", _ANSWER_COLON)):
        found = [_clean(match.group(1)) for match in pattern.finditer(tail)]
        if found and found[-1]:
            return found[-1], rule
    stripped = _clean(body)
    if stripped and "\n" not in stripped and len(stripped) <= 300:
        return stripped, "bare_answer"
    return None, "no final answer found"


def _normal(text: str, case_sensitive: bool) -> str:
    text = _SPACES.sub(" ", _clean(text)).strip()
    return text if case_sensitive else text.casefold()


def _gold_text(task: Task) -> str | None:
    gold = task.answer
    if gold is None or isinstance(gold, (dict, list)):
        return None
    return str(gold)


def exact_answer(*, case_sensitive: bool = False) -> Any:
    """1.0 when the final answer equals ``task.answer`` (a string, or a number written as
    ``str`` writes it) after trimming, else 0.0. ``case_sensitive=False`` (default) ignores
    case. A gold that is missing or not a scalar gives an unscored verdict."""

    def check(completion: str, task: Task) -> Verdict:
        gold = _gold_text(task)
        if gold is None:
            return Verdict(reward=0.0, scored=False, error=f"no text gold: {task.answer!r:.80}")
        answer, how = final_answer(completion)
        if answer is None:
            return Verdict(reward=0.0, error=how, reason="no answer")
        right = _normal(answer, case_sensitive) == _normal(gold, case_sensitive)
        return Verdict(
            reward=float(right), parsed=answer, reason="exact match" if right else "wrong"
        )

    return check


def regex_answer(*, flags: int = 0) -> Any:
    """1.0 when the gold ``task.answer`` (a regular expression) matches the *whole* final
    answer (``re.fullmatch`` with ``flags``), else 0.0. An invalid pattern gives an unscored
    verdict (the dataset is wrong, not the model)."""

    def check(completion: str, task: Task) -> Verdict:
        pattern = task.answer
        if not isinstance(pattern, str):
            return Verdict(reward=0.0, scored=False, error=f"no pattern: {pattern!r:.80}")
        try:
            compiled = _compile(pattern, flags)
        except re.error as error:
            return Verdict(reward=0.0, scored=False, error=f"invalid gold pattern: {error}")
        answer, how = final_answer(completion)
        if answer is None:
            return Verdict(reward=0.0, error=how, reason="no answer")
        right = compiled.fullmatch(answer.strip()) is not None
        return Verdict(reward=float(right), parsed=answer, reason="matches" if right else "wrong")

    return check


_patterns: dict[tuple[str, int], re.Pattern[str]] = {}


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    key = (pattern, flags)
    if key not in _patterns:
        if len(_patterns) > 4096:
            _patterns.clear()
        _patterns[key] = re.compile(pattern, flags)
    return _patterns[key]


def choice_letter(gold: Any, choices: Sequence[Any] | None = None) -> str | None:
    """The letter a multiple-choice gold names, or ``None``: a letter (``"b"``, ``"(B)"``,
    ``"B."``), a 0-based index (``1`` is ``B``, as MMLU stores it), or the text of one of
    ``choices``."""
    if isinstance(gold, bool):
        return None
    if isinstance(gold, int):
        limit = len(choices) if choices else len(_LETTERS)
        return _LETTERS[gold] if 0 <= gold < min(limit, len(_LETTERS)) else None
    if not isinstance(gold, str):
        return None
    text = gold.strip().strip("().: ").upper()
    if len(text) == 1 and text in _LETTERS:
        return text
    if choices:
        for index, choice in enumerate(choices[: len(_LETTERS)]):
            if str(choice).strip() == gold.strip():
                return _LETTERS[index]
    return None


def choice_answer() -> Any:
    """1.0 when the completion's choice letter is the gold's (:func:`choice_letter`; the
    options, when the task has them, are ``task.metadata["choices"]``), else 0.0."""

    def check(completion: str, task: Task) -> Verdict:
        choices = task.metadata.get("choices")
        letter = choice_letter(task.answer, choices if isinstance(choices, list) else None)
        if letter is None:
            return Verdict(
                reward=0.0, scored=False, error=f"the gold is not a choice: {task.answer!r:.80}"
            )
        return grade(letter, completion)

    return check
