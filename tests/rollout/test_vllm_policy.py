"""VLLMPolicy against a fake vLLM engine (``fake_vllm.py``) backed by a tiny Hugging Face model.

vLLM cannot run on these CPU machines; the fake follows vLLM 0.34.0's API (checked against its
source by ``test_vllm_api.py``), so these tests check what VLLMPolicy sends and what it makes of
real tokens and log-probs: ids, log-probs equal to the model's ``log_softmax(logits / T)``,
seeds, stops, multi-turn prefixes, and the sleep / wake / weight-sync calls of a trainer.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import fake_vllm  # noqa: E402

from rlenv.rollout import SamplingParams, episodes, rollout  # noqa: E402
from rlenv.rollout.policy import row_seed  # noqa: E402
from rlenv.rollout.transformers import (  # noqa: E402
    TransformersPolicy,
    render_prompt_ids,
    stop_token_ids,
)
from rlenv.rollout.vllm import MissingVLLM, VLLMPolicy  # noqa: E402
from rlenv.testing import tiny_chat_model  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "Say a or b."}],
    [{"role": "system", "content": "Say more."}, {"role": "user", "content": "Say a."}],
    [{"role": "user", "content": "Say b. Say more. Say a or b, aaaa bbbb."}],
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_chat_model(0)


@pytest.fixture
def vllm(monkeypatch, tiny):
    module = fake_vllm.install(monkeypatch)
    model, tokenizer = tiny
    fake_vllm.register_model("tiny", model, tokenizer)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    return module


@pytest.fixture
def policy(vllm, tiny):
    return VLLMPolicy("tiny", tiny[1])


def forward_logprobs(model, completion, temperature):
    """The sampled tokens' log-probs under ``log_softmax(logits / T)`` of one forward pass."""
    ids = completion.prompt_token_ids + completion.completion_token_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    if temperature > 0:
        logits = logits / temperature
    start = len(completion.prompt_token_ids)
    chosen = torch.tensor(completion.completion_token_ids).unsqueeze(-1)
    return torch.log_softmax(logits[start - 1 : -1], -1).gather(-1, chosen).squeeze(-1).tolist()


def test_building_an_engine_asks_for_sleep_mode_prefix_caching_and_processed_logprobs(vllm, tiny):
    import os

    policy = VLLMPolicy("tiny", tiny[1], gpu_memory_utilization=0.25, max_model_len=512)
    assert policy.llm.init_kwargs == {
        "model": "tiny", "dtype": "auto", "seed": 0, "gpu_memory_utilization": 0.25,
        "enable_sleep_mode": True, "enable_prefix_caching": True, "enable_lora": False,
        "logprobs_mode": "processed_logprobs", "max_model_len": 512,
    }  # fmt: skip
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # in-process: weights by reference
    assert policy.name == "tiny" and policy.supports_prefixes
    with_lora = VLLMPolicy("tiny", tiny[1], enable_lora=True, max_lora_rank=8)
    assert with_lora.llm.init_kwargs["enable_lora"] is True
    assert with_lora.llm.init_kwargs["max_lora_rank"] == 8


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 1.0), (1.6, 1.0)])
def test_completions_carry_exact_ids_and_the_models_logprobs_at_the_temperature(
    policy, tiny, temperature, top_p
):
    model, tokenizer = tiny
    params = SamplingParams(max_new_tokens=10, temperature=temperature, top_p=top_p, seed=4)
    completions = policy.generate(CONVERSATIONS, [[]] * 3, params)
    stops = stop_token_ids(tokenizer)
    for conversation, completion in zip(CONVERSATIONS, completions, strict=True):
        assert completion.prompt_token_ids == render_prompt_ids(tokenizer, conversation)
        ids = completion.completion_token_ids
        assert 1 <= len(ids) <= 10
        stopped = ids[-1] in stops
        assert completion.finish_reason == ("stop" if stopped else "length")
        assert completion.text == tokenizer.decode(ids[:-1] if stopped else ids)
        expected = forward_logprobs(model, completion, temperature)
        assert completion.logprobs == pytest.approx(expected, abs=1e-5)
    # what went to the engine: token prompts, one request each, the sampled token's log-prob
    _, prompts, sampling, lora = policy.llm.calls[-1]
    assert prompts == [{"prompt_token_ids": c.prompt_token_ids} for c in completions]
    assert lora is None
    for index, request in enumerate(sampling):
        assert (request.n, request.logprobs, request.max_tokens) == (1, 0, 10)
        assert (request.temperature, request.top_p) == (temperature, top_p)
        assert request.seed == row_seed(4, index)
        assert request.stop_token_ids == stops and request.ignore_eos


def test_raw_logprobs_would_not_be_those_of_the_temperature(vllm, tiny):
    """Why the engine is built with processed log-probs: vLLM's default is before T."""
    model, tokenizer = tiny
    engine = fake_vllm.LLM("tiny", logprobs_mode="raw_logprobs")
    policy = VLLMPolicy(engine, tokenizer)
    params = SamplingParams(max_new_tokens=6, temperature=0.5, seed=1)
    completion = policy.generate(CONVERSATIONS[:1], [[]], params)[0]
    assert completion.logprobs != pytest.approx(forward_logprobs(model, completion, 0.5), abs=1e-3)
    assert completion.logprobs == pytest.approx(forward_logprobs(model, completion, 1.0), abs=1e-5)


def test_greedy_output_equals_transformers_policy(policy, tiny):
    model, tokenizer = tiny
    greedy = SamplingParams(max_new_tokens=12, temperature=0.0)
    reference = TransformersPolicy(model, tokenizer, device="cpu")
    ours = policy.generate(CONVERSATIONS, [[]] * 3, greedy)
    theirs = reference.generate(CONVERSATIONS, [[]] * 3, greedy)
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.prompt_token_ids == other.prompt_token_ids
        assert mine.completion_token_ids == other.completion_token_ids
        assert mine.logprobs == pytest.approx(other.logprobs, abs=1e-5)
        assert (mine.text, mine.finish_reason) == (other.text, other.finish_reason)


def test_requests_of_one_call_get_their_own_seeds_and_a_seed_repeats_the_call(policy):
    group = [CONVERSATIONS[0]] * 6  # a GRPO group: one prompt, six samples
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=7)
    first = [c.completion_token_ids for c in policy.generate(group, [[]] * 6, params)]
    again = [c.completion_token_ids for c in policy.generate(group, [[]] * 6, params)]
    other = SamplingParams(max_new_tokens=8, temperature=1.0, seed=8)
    moved = [c.completion_token_ids for c in policy.generate(group, [[]] * 6, other)]
    assert first == again
    assert len({tuple(ids) for ids in first}) > 1  # the samples of a group differ
    assert moved != first
    assert len({row_seed(7, i) for i in range(100)}) == 100
    assert row_seed(None, 3) is None
    unseeded = policy.generate(group[:2], [[]] * 2, SamplingParams(max_new_tokens=4))
    assert all(c.completion_token_ids for c in unseeded)
    assert [r.seed for r in policy.llm.calls[-1][2]] == [None, None]


def test_the_engine_stops_on_rlenvs_stop_ids_only(monkeypatch, tiny):
    """vLLM adds the generation config's EOS ids to a request's stops unless ignore_eos; the
    multi-turn continuation would not know them as ends of turn."""
    fake_vllm.install(monkeypatch)
    model, tokenizer = tiny
    greedy = SamplingParams(max_new_tokens=8, temperature=0.0)
    fake_vllm.register_model("tiny", model, tokenizer)
    plain = VLLMPolicy("tiny", tokenizer).generate(CONVERSATIONS[:1], [[]], greedy)[0]
    first = plain.completion_token_ids[0]
    assert first not in stop_token_ids(tokenizer) and len(plain.completion_token_ids) > 1
    fake_vllm.register_model("other-eos", model, tokenizer, generation_eos=[first])
    engine = fake_vllm.LLM("other-eos")
    assert engine.generate(
        [{"prompt_token_ids": plain.prompt_token_ids}],
        fake_vllm.SamplingParams(temperature=0.0, max_tokens=8),
    )[0].outputs[0].token_ids == [first]  # an engine left to its EOS ids stops there...
    policy = VLLMPolicy(engine, tokenizer)
    again = policy.generate(CONVERSATIONS[:1], [[]], greedy)[0]
    assert again.completion_token_ids == plain.completion_token_ids  # ...the policy's does not


def test_multi_turn_prompts_extend_the_exact_ids_the_engine_generated(policy):
    trajectories = rollout(
        policy,
        episodes("rlenv/GuessNumber-v0", n_tasks=3, max_turns=3, high=8),
        params=SamplingParams(max_new_tokens=6, temperature=1.0, seed=5),
    )
    assert any(len(t.turns) > 1 for t in trajectories)
    for trajectory in trajectories:
        for earlier, later in zip(trajectory.turns, trajectory.turns[1:], strict=False):
            exact = earlier.prompt_token_ids + earlier.completion_token_ids
            assert later.prompt_token_ids[: len(exact)] == exact
        sequence = trajectory.token_sequence()
        last = trajectory.turns[-1]
        assert sequence.token_ids == last.prompt_token_ids + last.completion_token_ids
        assert trajectory.policy == "tiny"


def test_a_trainer_step_sleeps_loads_the_new_weights_and_wakes(policy, tiny):
    """sleep -> (training) -> load_weights -> generate: the engine samples from the new
    weights, and the KV cache stays released while the weights load."""
    trained, _ = tiny_chat_model(1)  # stands for the model after an optimizer step
    params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=3)
    before = policy.generate(CONVERSATIONS, [[]] * 3, params)
    assert before[0].logprobs == pytest.approx(forward_logprobs(tiny[0], before[0], 1.0), abs=1e-5)
    policy.llm.calls.clear()

    policy.sleep()
    assert policy.asleep
    with pytest.raises(RuntimeError):  # the fake engine refuses to schedule while asleep
        policy.llm.generate([], [])
    policy.llm.calls.clear()
    policy.load_weights(trained.state_dict().items())
    after = policy.generate(CONVERSATIONS, [[]] * 3, params)
    assert not policy.asleep
    assert [call[:2] for call in policy.llm.calls] == [
        ("wake_up", ["weights"]),
        ("collective_rpc", "reload_weights"),
        ("wake_up", ["kv_cache"]),
        ("generate", policy.llm.calls[-1][1]),
    ]
    for completion in after:
        expected = forward_logprobs(trained, completion, 1.0)
        assert completion.logprobs == pytest.approx(expected, abs=1e-5)
    assert [c.completion_token_ids for c in after] != [c.completion_token_ids for c in before]


def test_sleep_and_wake_without_new_weights(policy):
    policy.sleep()
    policy.sleep()  # already asleep: nothing more
    policy.wake()
    policy.wake()  # already awake: nothing more
    assert [call[0:2] for call in policy.llm.calls] == [("sleep", 1), ("wake_up", None)]
    policy.sleep(level=2)
    policy.generate(CONVERSATIONS[:1], [[]], SamplingParams(max_new_tokens=2))  # wakes first
    assert [call[0] for call in policy.llm.calls[2:]] == ["sleep", "wake_up", "generate"]
    assert policy.llm.calls[2] == ("sleep", 2)


def test_weights_load_into_an_awake_engine_too(policy):
    trained, _ = tiny_chat_model(1)
    policy.load_weights(trained.state_dict().items())
    # awake, the prefix cache still holds keys and values of the old weights: reset it
    assert [call[0:2] for call in policy.llm.calls] == [
        ("collective_rpc", "reload_weights"),
        ("reset_prefix_cache",),
    ]
    completion = policy.generate(CONVERSATIONS[:1], [[]], SamplingParams(max_new_tokens=4))[0]
    assert completion.logprobs == pytest.approx(
        forward_logprobs(trained, completion, 1.0), abs=1e-5
    )


def test_lora_adapters_saved_by_the_trainer_are_used_and_replaced(vllm, tiny, tmp_path):
    peft = pytest.importorskip("peft")
    model, tokenizer = tiny
    policy = VLLMPolicy("tiny", tokenizer, enable_lora=True)
    params = SamplingParams(max_new_tokens=5, temperature=1.0, seed=2)
    adapters = []
    for step in range(2):
        torch.manual_seed(step)
        config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        adapted = peft.get_peft_model(__import__("copy").deepcopy(model), config)
        adapted.save_pretrained(tmp_path / "adapter")  # the same folder, rewritten each step
        adapters.append(adapted.eval())
        policy.use_lora(tmp_path / "adapter")
        completion = policy.generate(CONVERSATIONS[:1], [[]], params)[0]
        expected = forward_logprobs(adapted, completion, 1.0)
        assert completion.logprobs == pytest.approx(expected, abs=1e-5)
        assert completion.logprobs != pytest.approx(
            forward_logprobs(model, completion, 1.0), abs=1e-3
        )
        request = policy.llm.calls[-1][3]
        assert (request.lora_int_id, request.lora_path) == (step + 1, str(tmp_path / "adapter"))
    policy.use_lora(None)
    base = policy.generate(CONVERSATIONS[:1], [[]], params)[0]
    assert policy.llm.calls[-1][3] is None
    assert base.logprobs == pytest.approx(forward_logprobs(model, base, 1.0), abs=1e-5)


def test_without_vllm_the_error_says_how_to_install_it(monkeypatch, tiny):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(MissingVLLM, match="pip install vllm") as raised:
        VLLMPolicy("tiny", tiny[1])
    assert isinstance(raised.value, ImportError)
