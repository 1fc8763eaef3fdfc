"""Composing verifiers: weighted sums and gates.

A *verifier* here is any callable ``(completion: str, task: Task) -> Verdict | float | bool``,
the same shape as :meth:`rlenv.TextEnv.verify`. Compositions are verifiers too, so they nest::

    from rlenv.verifiers.compose import boxed_format, gate, math_answer, weighted

    strict = gate(boxed_format(), math_answer())            # no box, no reward
    shaped = weighted(correct=(math_answer(), 0.9), format=(boxed_format(), 0.1))

    class MyEnv(TextEnv):
        def verify(self, task, completion):
            return strict(completion, task)

Each part's reward lands in ``Verdict.components`` under its name (nested parts as
``"name.part"``). A part that raises, or returns something that is not a reward, does not crash
the composition: the result is reward 0 with ``scored=False``, as :meth:`TextEnv.score` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Union

from rlenv.chat import message_text
from rlenv.tasks import Task
from rlenv.verdict import Verdict, as_verdict
from rlenv.verifiers._completion import final_text
from rlenv.verifiers.math import MathVerifier, extract_answer

__all__ = ["Verifier", "boxed_format", "gate", "math_answer", "task_question", "weighted"]

Verifier = Callable[[str, Task], Union[Verdict, float, bool]]  # noqa: UP007
"""``(completion, task) -> Verdict | float | bool``."""


def _run(verifier: Verifier, completion: str, task: Task, name: str) -> Verdict:
    """``verifier``'s verdict; a part that raises gives reward 0 with ``scored=False``."""
    try:
        return as_verdict(verifier(completion, task))
    except Exception as error:  # one broken part must not kill a training run
        return Verdict(
            reward=0.0, scored=False, error=f"{name} failed: {type(error).__name__}: {error}"
        )


def _components(name: str, verdict: Verdict) -> dict[str, float]:
    nested = {f"{name}.{key}": value for key, value in verdict.components.items()}
    return {name: verdict.reward, **nested}


def boxed_format() -> Verifier:
    """1.0 if the completion commits to a final answer in ``\\boxed{}``, else 0.0 and why.

    Only text after the last ``</think>`` counts (an unclosed ``<think>`` is no answer); the last
    box must be closed and not empty. It checks the form, not whether the answer is right.
    """

    def check(completion: str, task: Task) -> Verdict:
        answer = extract_answer(completion, fallbacks=False)
        if answer:
            return Verdict(reward=1.0, parsed=answer, reason="boxed answer")
        tail = final_text(completion)
        if tail is None:
            error = "<think> is never closed, so there is no final answer"
        elif answer == "":
            error = "the last \\boxed{} is empty"
        elif "\\boxed" in tail or "\\fbox" in tail:
            error = "the last \\boxed{...} is not closed"
        else:
            error = "no \\boxed{} answer found"
        return Verdict(reward=0.0, error=error, reason="no boxed answer")

    return check


def task_question(task: Task) -> str:
    """The text of a task's prompt messages (what an answer must not merely restate)."""
    return "\n".join(message_text(message) for message in task.prompt)


def math_answer(verifier: MathVerifier | None = None) -> Verifier:
    """Correctness: the completion's final answer is equivalent to ``task.answer``.

    Wraps a :class:`~rlenv.verifiers.math.MathVerifier` (default settings if none is given) and
    passes the prompt text as ``question=``, so an answer that restates the question scores 0.
    """
    verifier = verifier or MathVerifier()

    def check(completion: str, task: Task) -> Verdict:
        return verifier(completion, task.answer, question=task_question(task))

    return check


def weighted(
    parts: Mapping[str, tuple[Verifier, float]] | None = None,
    /,
    *,
    normalize: bool = True,
    **named: tuple[Verifier, float],
) -> Verifier:
    """The weighted sum of named parts: ``weighted(correct=(v1, 0.9), format=(v2, 0.1))``.

    Parts come as keyword arguments or as one mapping ``{"name": (verifier, weight)}`` (use the
    mapping for a part called ``normalize``). Weights must be finite and non-negative, with a
    positive sum. With ``normalize=True`` (the default) the sum is divided by the total weight,
    so parts that each score at most 1 give at most 1; with ``normalize=False`` it is the raw
    sum. ``components`` holds each part's own (unweighted) reward. If any part cannot score
    (``scored=False``), the whole reward is 0 and unscored: a partial sum is not a judgement.
    """
    table = {**(parts or {}), **named}
    if not table:
        raise ValueError("weighted() needs at least one part: weighted(name=(verifier, weight))")
    for name, (verifier, weight) in table.items():
        if not callable(verifier):
            raise TypeError(f"part {name!r}: {verifier!r} is not callable")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"part {name!r}: weight must be finite and >= 0, got {weight!r}")
    total_weight = sum(weight for _, weight in table.values())
    if total_weight <= 0:
        raise ValueError("weighted() needs a positive total weight")
    scale = 1.0 / total_weight if normalize else 1.0

    def combined(completion: str, task: Task) -> Verdict:
        verdicts = {name: _run(v, completion, task, name) for name, (v, _) in table.items()}
        components: dict[str, float] = {}
        for name, verdict in verdicts.items():
            components.update(_components(name, verdict))
        errors = [f"{name}: {v.error}" for name, v in verdicts.items() if v.error]
        scored = all(v.scored for v in verdicts.values())
        reward = sum(verdicts[name].reward * w for name, (_, w) in table.items()) * scale
        return Verdict(
            reward=reward if scored else 0.0,
            reason="; ".join(f"{name}: {v.reason or v.reward}" for name, v in verdicts.items()),
            parsed={name: v.parsed for name, v in verdicts.items() if v.parsed is not None},
            components=components,
            error="; ".join(errors) or None,
            scored=scored,
        )

    return combined


def gate(
    required: Verifier, then: Verifier, *, required_name: str = "format", then_name: str = "correct"
) -> Verifier:
    """``then``'s verdict, but only when ``required`` scores 1: "format before correctness".

    If ``required`` scores below 1 (or cannot score), the reward is 0 with its error and
    ``then`` is not run. Otherwise the result is ``then``'s verdict with the components of both
    (under ``required_name`` and ``then_name``).
    """

    def gated(completion: str, task: Task) -> Verdict:
        first = _run(required, completion, task, required_name)
        if not first.scored or first.reward < 1.0:
            return Verdict(
                reward=0.0,
                reason=f"{required_name} not met",
                parsed=first.parsed,
                components=_components(required_name, first),
                error=first.error or f"{required_name} scored {first.reward} < 1",
                scored=first.scored,
            )
        second = _run(then, completion, task, then_name)
        components = {**_components(required_name, first), **_components(then_name, second)}
        return second.model_copy(update={"components": components})

    return gated
