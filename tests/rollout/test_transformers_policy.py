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


def test_multi_turn_prompts_extend_the_exact_tokens_the_model_generated(policy):
    """Token faithfulness: turn k+1's prompt starts with turn k's prompt + generated ids."""
    trajectories = rollout(
        policy,
        episodes("rlenv/GuessNumber-v0", n_tasks=2, max_turns=4, high=16),
        params=SamplingParams(max_new_tokens=6, temperature=1.0, seed=3),
    )
    for trajectory in trajectories:
        assert len(trajectory.turns) > 1
        for earlier, later in zip(trajectory.turns, trajectory.turns[1:], strict=False):
            exact = earlier.prompt_token_ids + earlier.completion_token_ids
            assert later.prompt_token_ids[: len(exact)] == exact
            # ...and the added tokens are the environment's reply, then the generation prompt
            added = policy.tokenizer.decode(later.prompt_token_ids[len(exact) :])
            stopped = earlier.finish_reason == "stop"  # else cut at the length limit
            opening = "\n" if stopped else "<|im_end|>\n"
            assert added.startswith(opening + "<|im_start|>user\n")
            assert added.endswith("<|im_start|>assistant\n")


def test_retokenising_the_transcript_would_not_be_faithful(policy):
    """Why prefixes matter: re-applying the template to the decoded text changes the ids."""
    trajectories = rollout(
        policy,
        episodes("rlenv/GuessNumber-v0", n_tasks=4, max_turns=3, high=8),
        params=SamplingParams(max_new_tokens=8, temperature=1.0, seed=5),
    )
    mismatches = 0
    for trajectory in trajectories:
        first, second = trajectory.turns[0], trajectory.turns[1]
        conversation = trajectory.messages[: 1 + 2]  # the prompt, the model's turn, the env's reply
        retokenised = policy.prompt_ids(conversation, [])
        mismatches += retokenised != second.prompt_token_ids
        assert second.prompt_token_ids[: len(first.prompt_token_ids)] == first.prompt_token_ids
    assert mismatches > 0  # random bytes do not survive decode + re-encode


def test_a_template_that_rewrites_earlier_turns_is_refused(policy):
    from rlenv.rollout.transformers import TemplateNotPrefixPreserving

    original = policy.tokenizer.chat_template
    # Renders an assistant turn differently once it is no longer the last message.
    policy.tokenizer.chat_template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% if message['role'] == 'assistant' and not loop.last %}[earlier]{% else %}{{ message['content'] }}{% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    try:
        with pytest.raises(TemplateNotPrefixPreserving):
            rollout(
                policy,
                episodes("rlenv/GuessNumber-v0", n_tasks=1, max_turns=3, high=8),
                params=SamplingParams(max_new_tokens=4),
            )
    finally:
        policy.tokenizer.chat_template = original


def test_continued_prompt_after_an_end_of_turn_token(policy):
    tokenizer = policy.tokenizer
    first = [{"role": "user", "content": "Guess a number between 1 and 8."}]
    prompt = policy.prompt_ids(first, [])
    generated = tokenizer("4", add_special_tokens=False)["input_ids"] + [
        tokenizer.convert_tokens_to_ids("<|im_end|>")
    ]
    conversation = [
        *first,
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "Higher."},
    ]
    ids = policy.continued_prompt_ids(conversation, [], prompt + generated)
    assert ids[: len(prompt) + len(generated)] == prompt + generated
    assert (
        tokenizer.decode(ids[len(prompt) + len(generated) :])
        == "\n<|im_start|>user\nHigher.<|im_end|>\n<|im_start|>assistant\n"
    )
    # Here re-tokenising happens to agree; the point is that it is never needed.
    assert ids == policy.prompt_ids(conversation, [])


def test_a_multi_turn_episode_is_one_token_sequence_with_a_generated_mask(policy):
    trajectories = rollout(
        policy,
        episodes("rlenv/GuessNumber-v0", n_tasks=3, max_turns=4, high=16),
        params=SamplingParams(max_new_tokens=6, temperature=1.0, seed=11),
    )
    for trajectory in trajectories:
        sequence = trajectory.token_sequence()
        last = trajectory.turns[-1]
        assert sequence.token_ids == last.prompt_token_ids + last.completion_token_ids
        generated = [t for t, m in zip(sequence.token_ids, sequence.mask, strict=True) if m]
        assert generated == [t for turn in trajectory.turns for t in turn.completion_token_ids]
        assert sequence.prompt_length == len(trajectory.turns[0].prompt_token_ids)
        assert all(m == 0 for m in sequence.mask[: sequence.prompt_length])
        scored = [lp for lp, m in zip(sequence.logprobs, sequence.mask, strict=True) if m]
        assert scored == [lp for turn in trajectory.turns for lp in turn.completion_logprobs]


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9), (1.6, 1.0)])
def test_logprobs_are_those_of_a_forward_pass_at_the_sampling_temperature(
    policy, temperature, top_p
):
    """What a trainer recomputes: log_softmax(logits / T) of the full distribution."""
    params = SamplingParams(max_new_tokens=10, temperature=temperature, top_p=top_p, seed=2)
    for completion in policy.generate(CONVERSATIONS, [[]] * 3, params):
        ids = completion.prompt_token_ids + completion.completion_token_ids
        with torch.no_grad():
            logits = policy.model(torch.tensor([ids])).logits[0].float() / temperature
        start = len(completion.prompt_token_ids)
        expected = torch.log_softmax(logits[start - 1 : -1], dim=-1).gather(
            -1, torch.tensor(completion.completion_token_ids).unsqueeze(-1)
        )
        assert completion.logprobs == pytest.approx(expected.squeeze(-1).tolist(), abs=1e-4)


def test_the_decoding_loop_matches_generate_greedily(policy):
    """rlenv's loop (shared prefill, rows leaving the batch) against model.generate."""
    conversations = CONVERSATIONS + [CONVERSATIONS[0]] * 3  # duplicates share one prefill
    greedy = SamplingParams(max_new_tokens=12, temperature=0.0)
    hf = TransformersPolicy(policy.model, policy.tokenizer, device="cpu", decoder="hf")
    ours = policy.generate(conversations, [[]] * 6, greedy)
    theirs = hf.generate(conversations, [[]] * 6, greedy)
    assert [c.completion_token_ids for c in ours] == [c.completion_token_ids for c in theirs]
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.logprobs == pytest.approx(other.logprobs, abs=1e-4)
        assert mine.finish_reason == other.finish_reason


def test_top_p_sampling_stays_in_the_nucleus(policy):
    params = SamplingParams(max_new_tokens=1, temperature=1.0, top_p=0.3, seed=0)
    conversation = CONVERSATIONS[0]
    with torch.no_grad():
        prompt = policy.prompt_ids(conversation, [])
        probabilities = torch.softmax(policy.model(torch.tensor([prompt])).logits[0, -1], -1)
    ordered, order = probabilities.sort(descending=True)
    nucleus = set(order[: int((ordered.cumsum(0) - ordered <= 0.3).sum())].tolist())
    seen = {
        completion.completion_token_ids[0]
        for completion in policy.generate([conversation] * 40, [[]] * 40, params)
    }
    assert seen <= nucleus and len(nucleus) < len(probabilities)


def test_an_unknown_decoder_is_refused(policy):
    with pytest.raises(ValueError, match="decoder"):
        TransformersPolicy(policy.model, policy.tokenizer, device="cpu", decoder="vllm")
