"""A tiny randomly initialised Llama with a ChatML template, and small envs to train on."""

from __future__ import annotations

import random

import pytest

from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict, register, unregister

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_model_and_tokenizer(seed: int = 0):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(["Say a or b. Say more. user assistant aaaa bbbb"] * 20, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<pad>", chat_template=CHAT_TEMPLATE
    )
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config), tokenizer


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
