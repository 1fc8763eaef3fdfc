"""``rlenv/GuessNumber-v0``: find a secret number from "higher" / "lower" hints.

The smallest multi-turn environment: no tools, one number per turn, feedback after each guess.
It proves the loop (observation → model turn → environment reply → ...) end to end.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict
from rlenv.chat import AssistantMessage, message_text

# Whole numbers of at most 9 digits, not part of a longer run of digits: hostile text with
# thousands of digits cannot make int() slow or raise.
_NUMBER = re.compile(r"(?<![\d.])-?\d{1,9}(?![\d])")


class GuessNumber(TextEnv):
    """Guess a secret whole number in ``[low, high]``; the environment says higher or lower.

    The model's *last* whole number in each turn is its guess. Reward, paid when the number is
    found: 1.0 within ``ceil(log2(high - low + 1))`` guesses (what binary search needs), then
    falling linearly to ``1 / (max_turns - optimal + 1)`` at the last allowed turn. Not finding
    it in ``max_turns`` turns truncates the episode with reward 0. A turn with no number, or one
    out of range, counts as a guess and earns a hint about the format.
    """

    max_turns = 10

    def __init__(self, *, low: int = 1, high: int = 100, **kwargs) -> None:
        if high <= low:
            raise ValueError(f"high must be greater than low, got low={low}, high={high}")
        self.low, self.high = low, high
        self.optimal_turns = max(1, math.ceil(math.log2(high - low + 1)))
        super().__init__(**kwargs)
        if self.max_turns < self.optimal_turns:
            raise ValueError(
                f"max_turns={self.max_turns} is below the {self.optimal_turns} guesses "
                f"binary search needs for [{low}, {high}]"
            )

    def load_tasks(self) -> GeneratedTasks:
        def make_task(rng: random.Random) -> Task:
            secret = rng.randint(self.low, self.high)
            prompt = (
                f"I am thinking of a whole number between {self.low} and {self.high}. "
                "Guess it: reply with one number per turn, and I will say whether my number "
                f"is higher or lower. You have {self.max_turns} guesses."
            )
            return Task(prompt=prompt, answer=secret)

        return GeneratedTasks(make_task)

    def respond(self, message: AssistantMessage) -> Turn:
        secret = self.task.answer
        numbers = _NUMBER.findall(message_text(message))
        if not numbers:
            return Turn.reply(
                f"Reply with one whole number between {self.low} and {self.high}.",
                verdict=Verdict(reward=0.0, error="no whole number in the reply"),
            )
        guess = int(numbers[-1])
        if not self.low <= guess <= self.high:
            return Turn.reply(
                f"{guess} is outside the range: my number is between {self.low} and {self.high}.",
                verdict=Verdict(reward=0.0, parsed=guess, error="guess out of range"),
            )
        if guess == secret:
            reward = self._reward_for(self.turn)
            return Turn.end(
                Verdict(reward=reward, parsed=guess, reason=f"found in {self.turn} guesses"),
                messages=[{"role": "user", "content": f"Correct! It was {secret}."}],
            )
        hint = "Higher." if secret > guess else "Lower."
        return Turn.reply(
            hint, verdict=Verdict(reward=0.0, parsed=guess, reason=f"{guess}: {hint.lower()}")
        )

    def _reward_for(self, turns: int) -> float:
        if turns <= self.optimal_turns:
            return 1.0
        slack = self.max_turns - self.optimal_turns + 1
        return (self.max_turns - turns + 1) / slack


_RANGE = re.compile(r"between (-?\d+) and (-?\d+)")
_INTEGER = re.compile(r"-?\d+")


def binary_search_guess(observation: Sequence[Mapping[str, Any]]) -> str:
    """A scripted policy for this game (``rlenv tour`` plays it): the middle of the range the
    conversation has not ruled out.

    Reads the range from the opening ("between 1 and 100") and narrows it with each
    "Higher." / "Lower." reply to an earlier guess. A pure function of the observation.
    """
    texts = [message_text(message) for message in observation]
    found = next((match for text in texts if (match := _RANGE.search(text))), None)
    if found is None:
        return "50"
    low, high = int(found.group(1)), int(found.group(2))
    guess: int | None = None
    for message, text in zip(observation, texts, strict=True):
        if message.get("role") == "assistant":
            numbers = _INTEGER.findall(text)
            guess = int(numbers[-1]) if numbers else None
        elif guess is not None and text.startswith("Higher"):
            low = guess + 1
        elif guess is not None and text.startswith("Lower"):
            high = guess - 1
    return str((low + high) // 2)
