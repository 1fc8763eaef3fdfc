"""GRPO with ``generation_backend="vllm"``, against the fake vLLM engine of
``tests/rollout/fake_vllm.py`` (vLLM needs a GPU; the fake follows its API, checked against its
source by ``tests/rollout/test_vllm_api.py``, and runs a real tiny model): the engine samples,
sleeps while the trainer trains, and holds the trained weights before it samples again."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rollout"))

import fake_vllm  # noqa: E402

from rlenv.train import GRPOConfig  # noqa: E402
from rlenv.train.grpo import GRPOTrainer  # noqa: E402


@pytest.fixture
def engine_model(monkeypatch, tiny):
    fake_vllm.install(monkeypatch)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    model, tokenizer = tiny
    # the engine loads its own copy, as vLLM loads the checkpoint: training never touches it
    fake_vllm.register_model("tiny-vllm", copy.deepcopy(model), tokenizer)
    return model, tokenizer


def test_the_engine_samples_sleeps_and_gets_the_trained_weights(engine_model, tmp_path):
    model, tokenizer = engine_model
    config = GRPOConfig(
        env_id="tests/CountA-v0", model="tiny-vllm", out=str(tmp_path), steps=2,
        prompts_per_step=2, group_size=4, max_new_tokens=8, precision="fp32",
        generation_backend="vllm", learning_rate=5e-2, warmup_steps=0, eval_tasks=0,
        progress=False, plots=False, skip_zero_advantage=False, truncation="none",
    )  # fmt: skip
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    trainer = GRPOTrainer(config, model, tokenizer)
    assert trainer.correct_sampler  # auto: vLLM is not the trainer's forward pass
    engine = trainer.policy.llm
    assert engine.logprobs_mode == "processed_logprobs" and engine.enable_sleep_mode
    for _ in range(2):
        metrics = trainer.train_step()
        assert metrics["logprob_mismatch"] == pytest.approx(0.0, abs=1e-4)  # same weights, fp32
        assert metrics["tis_capped"] == 0.0
        # the engine's copy of the model now holds the trained weights
        trained = trainer.model.state_dict()
        for name, value in engine.model.state_dict().items():
            torch.testing.assert_close(value, trained[name], rtol=0, atol=0, msg=name)
    kinds = [call[0] for call in engine.calls]
    # each step: generate, sleep for training, then the new weights (waking only them); the
    # next generate first wakes the rest (the KV cache)
    step = ["generate", "sleep", "wake_up", "collective_rpc"]
    assert kinds == [*step, "wake_up", *step], kinds
    assert engine.calls[2] == ("wake_up", ["weights"])
    assert engine.calls[4] == ("wake_up", ["kv_cache"])
    moved = any(
        not torch.equal(value, initial[name]) for name, value in engine.model.state_dict().items()
    )
    assert moved  # the comparison above could fail: the weights did change


def test_a_resumed_run_gives_the_engine_the_checkpoints_weights(engine_model, tmp_path):
    model, tokenizer = engine_model
    base = dict(
        env_id="tests/CountA-v0", model="tiny-vllm", steps=1, prompts_per_step=2, group_size=4,
        max_new_tokens=8, precision="fp32", generation_backend="vllm", learning_rate=5e-2,
        warmup_steps=0, eval_tasks=0, progress=False, plots=False, skip_zero_advantage=False,
        truncation="none",
    )  # fmt: skip
    first = GRPOTrainer(GRPOConfig(**base, out=str(tmp_path / "a")), model, tokenizer)
    first.train_step()
    checkpoint = first.save_checkpoint()
    second = GRPOTrainer(
        GRPOConfig(**{**base, "steps": 2}, out=str(tmp_path / "b")), type(model)(model.config),
        tokenizer,
    )  # fmt: skip
    engine = second.policy.llm.model
    assert not torch.equal(engine.lm_head.weight, first.model.lm_head.weight)  # before resuming
    second.load_checkpoint(checkpoint)
    trained = first.model.state_dict()
    for name, value in second.policy.llm.model.state_dict().items():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=0, msg=name)
