"""TransformersPolicy on a tiny randomly initialised model with a Qwen-style chat template."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from rlenv.rollout import SamplingParams, episodes, rollout  # noqa: E402
from rlenv.rollout.transformers import TransformersPolicy  # noqa: E402

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def policy():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = tokenizers.decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(
        ["Guess a number between 1 and 100. Higher. Lower. user assistant"] * 20, trainer
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<pad>", chat_template=CHAT_TEMPLATE
    )
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config)
    return TransformersPolicy(model, tokenizer, device="cpu", name="tiny-llama")


CONVERSATIONS = [
    [{"role": "user", "content": "Guess a number between 1 and 100."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Higher."}],
    [{"role": "user", "content": "Lower. Lower. Lower. Guess again, a long prompt this time."}],
]


def test_completions_carry_exact_token_ids_and_logprobs(policy):
    completions = policy.generate(
        CONVERSATIONS, [[]] * 3, SamplingParams(max_new_tokens=12, temperature=1.0, seed=1)
    )
    for conversation, completion in zip(CONVERSATIONS, completions, strict=True):
        assert completion.prompt_token_ids == policy.prompt_ids(conversation, [])
        assert 1 <= len(completion.completion_token_ids) <= 12
        assert len(completion.logprobs) == len(completion.completion_token_ids)
        assert all(lp <= 1e-6 for lp in completion.logprobs)
        ends_on_stop = completion.completion_token_ids[-1] in policy.stop_ids
        assert completion.finish_reason == ("stop" if ends_on_stop else "length")
        assert (
            policy.tokenizer.pad_token_id not in completion.completion_token_ids[:-1]
            or ends_on_stop
        )


def test_left_padding_does_not_change_greedy_outputs(policy):
    greedy = SamplingParams(max_new_tokens=10, temperature=0.0)
    batched = policy.generate(CONVERSATIONS, [[]] * 3, greedy)
    alone = [policy.generate([c], [[]], greedy)[0] for c in CONVERSATIONS]
    assert [c.completion_token_ids for c in batched] == [c.completion_token_ids for c in alone]


def test_sampling_is_seeded(policy):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=7)
    first = policy.generate(CONVERSATIONS, [[]] * 3, params)
    second = policy.generate(CONVERSATIONS, [[]] * 3, params)
    assert [c.completion_token_ids for c in first] == [c.completion_token_ids for c in second]


def test_the_rollout_engine_records_token_ids_from_a_local_model(policy):
    trajectories = rollout(
        policy,
        episodes("rlenv/GuessNumber-v0", n_tasks=2, max_turns=7),
        params=SamplingParams(max_new_tokens=6, seed=0),
    )
    assert len(trajectories) == 2 and all(t.policy == "tiny-llama" for t in trajectories)
    turn = trajectories[0].turns[0]
    assert turn.prompt_token_ids and turn.completion_token_ids and turn.completion_logprobs
