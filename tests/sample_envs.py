"""Small environments written the way a user would write them, shared by the tests."""

from __future__ import annotations

import random

from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict


class EchoWord(TextEnv):
    """Single-turn: repeat the word back. Reward 1 for the exact word."""

    def load_tasks(self) -> GeneratedTasks:
        def make(rng: random.Random) -> Task:
            word = "".join(rng.choice("abcdefgh") for _ in range(6))
            return Task(prompt=f"Repeat the word {word}.", answer=word)

        return GeneratedTasks(make)

    def verify(self, task: Task, completion: str) -> Verdict:
        ok = completion.strip() == task.answer
        return Verdict(reward=float(ok), parsed=completion.strip()[:50])


class Countdown(TextEnv):
    """Multi-turn: the model must say the numbers from N down to 1, one per turn."""

    max_turns = 6

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt="Count down from 3.", answer=3))

    def start(self, task: Task):
        self.next_number = task.answer
        return super().start(task)

    def respond(self, message) -> Turn:
        if (message.get("content") or "").strip() != str(self.next_number):
            return Turn.reply(
                f"Say {self.next_number}.", verdict=Verdict(reward=0.0, error="wrong")
            )
        self.next_number -= 1
        if self.next_number == 0:
            return Turn.end(1.0)
        return Turn.reply("Next.")

    def gold_action(self) -> str:
        return str(self.next_number)
