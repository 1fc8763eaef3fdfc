"""Retries with a decaying reward: the answer a multi-turn ``respond`` gives to each attempt.

An environment that lets the model try again after a wrong answer should pay less for a later
right one, or a policy learns nothing from getting it right first. :class:`Retry` holds that
rule in one place: a right answer on attempt ``k`` (1-based) ends the episode with
``verdict.reward * decay ** (k - 1)`` — 1.0, 0.5, 0.25 with ``decay=0.5`` — and a wrong one
earns 0 and gets the environment's feedback, so the episode goes on until ``max_turns``
truncates it. The environment keeps its own hooks: ``verify`` (or whatever scores an attempt)
says how good the answer is, ``respond`` says what counts as solved and what feedback to give,
and delegates the rest::

    class ArithmeticRetry(Arithmetic):
        max_turns = 3

        def __init__(self, *, decay: float = 0.5, **kwargs) -> None:
            self.retry = Retry(decay)
            super().__init__(**kwargs)

        def respond(self, message: AssistantMessage) -> Turn:
            verdict = self.score(message_text(message))
            return self.retry.turn(
                verdict, attempt=self.turn, solved=verdict.reward >= 1.0, feedback="Try again."
            )
"""

from __future__ import annotations

from dataclasses import dataclass

from rlenv.env import Turn
from rlenv.verdict import Verdict

__all__ = ["Retry"]


@dataclass(frozen=True)
class Retry:
    """Attempts with feedback, where a right answer on attempt ``k`` earns ``decay ** (k - 1)``
    of its verdict's reward.

    Args:
        decay: The reward factor per extra attempt, in (0, 1]; 1 means no decay.
    """

    decay: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay!r}")

    def factor(self, attempt: int) -> float:
        """``decay ** (attempt - 1)``: what a right answer on ``attempt`` (1-based) is worth."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt!r}")
        return self.decay ** (attempt - 1)

    def turn(
        self,
        verdict: Verdict,
        *,
        attempt: int,
        solved: bool,
        feedback: str,
        reason: str | None = None,
    ) -> Turn:
        """The environment's answer to attempt number ``attempt`` (1-based; ``self.turn`` in a
        ``respond``), scored ``verdict``.

        - ``solved``: the episode ends (``Turn.end``) with the verdict's reward times
          :meth:`factor`, and ``reason`` (default ``"solved on attempt k"``) as its reason.
        - otherwise the verdict is kept with reward 0 (a partial score or a format bonus does
          not pay until the answer is right) and ``feedback`` is the environment's reply
          (``Turn.reply``); ``max_turns`` ends the episode, truncated, after the last attempt.
        """
        if solved:
            reward = verdict.reward * self.factor(attempt)
            reason = reason if reason is not None else f"solved on attempt {attempt}"
            return Turn.end(verdict.model_copy(update={"reward": reward, "reason": reason}))
        return Turn.reply(feedback, verdict=verdict.model_copy(update={"reward": 0.0}))
