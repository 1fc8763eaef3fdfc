"""``rlenv/ArithmeticRetry-v0``: Arithmetic-v0 with feedback and retries after a wrong answer."""

from __future__ import annotations

from rlenv import Turn, Verdict
from rlenv.chat import AssistantMessage, message_text
from rlenv.retry import Retry

from .arithmetic import Arithmetic

WRONG = "That is not correct. Try again."
NO_BOX = "I could not find a final answer in \\boxed{}. Try again."
LAST_WRONG = "That is not correct, and that was your last attempt."


class ArithmeticRetry(Arithmetic):
    """Arithmetic with retries: a wrong answer is told so and may try again; reward decays.

    The tasks, difficulty levels and scoring of each attempt are those of
    ``rlenv/Arithmetic-v0``. A right answer on attempt ``k`` (1-based) ends the episode with
    reward ``decay ** (k - 1)``: 1.0, 0.5, 0.25 with the defaults. A wrong answer earns 0 and the
    reply "That is not correct. Try again." (or a reminder to use ``\\boxed{}`` when there is no
    boxed answer); the feedback never reveals the answer or whether it was too high or too low.
    After ``max_turns`` (default 3) wrong attempts the episode is truncated with reward 0.
    Only a right answer pays: with ``format_weight``, a boxed wrong answer earns 0 here. The
    retry rule is :class:`rlenv.retry.Retry`'s.

    Args:
        decay: Reward factor per extra attempt, in (0, 1].
        max_turns: Attempts allowed.
        **kwargs: As for ``rlenv/Arithmetic-v0`` (``difficulty``, ``require_boxed``...).
    """

    max_turns = 3

    def __init__(self, *, decay: float = 0.5, **kwargs) -> None:
        self.retry = Retry(decay)
        super().__init__(**kwargs)

    def respond(self, message: AssistantMessage) -> Turn:
        verdict = self.score(message_text(message))
        if self.turn >= self.max_turns:
            feedback = LAST_WRONG
        else:
            feedback = NO_BOX if verdict.components.get("format") == 0.0 else WRONG
        return self.retry.turn(
            verdict,
            attempt=self.turn,
            solved=_correct(verdict),
            feedback=feedback,
            reason=f"correct on attempt {self.turn} of {self.max_turns}",
        )


def _correct(verdict: Verdict) -> bool:
    """Right answer (a format bonus alone, with ``format_weight``, is not a right answer)."""
    return verdict.scored and verdict.components.get("correct", verdict.reward) >= 1.0
