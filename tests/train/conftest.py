"""A tiny randomly initialised Llama with a ChatML template, and small envs to train on."""

from __future__ import annotations

import random

import pytest

from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict, register, unregister
from rlenv.testing import tiny_chat_model


def tiny_model_and_tokenizer(seed: int = 0):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return tiny_chat_model(seed)


def frozen_base_weights(peft_model) -> dict:
    """A LoRA-wrapped model's non-adapter parameters under the plain model's names."""
    return {
        name.replace("base_model.model.", "").replace(".base_layer", ""): parameter
        for name, parameter in peft_model.named_parameters()
        if "lora_" not in name
    }


class CountA(TextEnv):
    """Single-turn: the reward is the number of 'a' characters in the answer over 4, at most 1.
    A random tiny model gets varied rewards, and GRPO can raise them."""

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(
            lambda rng: Task(prompt=f"Say a or b. {rng.randint(0, 9)}", answer="")
        )

    def verify(self, task: Task, completion: str) -> Verdict:
        return Verdict(reward=min(1.0, completion.count("a") / 4))


class SayMore(TextEnv):
    """Multi-turn: the env replies 'Say more.' twice; the reward is the last turn's 'a' share."""

    max_turns = 3

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt="Say a or b.", answer=""))

    def respond(self, message) -> Turn:
        text = (message.get("content") or "")[:8]
        reward = text.count("a") / 8
        if self.turn < 3:
            return Turn.reply("Say more.", verdict=Verdict(reward=0.0))
        return Turn.end(Verdict(reward=reward))


@pytest.fixture(scope="session", autouse=True)
def training_envs():
    register("tests/CountA-v0", CountA)
    register("tests/SayMore-v0", SayMore)
    yield
    unregister("tests/CountA-v0")
    unregister("tests/SayMore-v0")


@pytest.fixture
def tiny():
    return tiny_model_and_tokenizer()


__all__ = ["random"]
