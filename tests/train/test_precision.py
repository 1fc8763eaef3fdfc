"""Where each tensor of GRPO lives under ``precision="bf16"`` and ``"fp32"``: frozen weights
(the reference copy, the LoRA base) in bf16, trained weights and AdamW state in fp32.

``precision="bf16"`` forces the bf16 path whatever the CPU (``"auto"`` would use it only on a
CPU with native bf16)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import tiny_model_and_tokenizer  # noqa: E402

from rlenv.rollout import SamplingParams, episodes, rollout  # noqa: E402
from rlenv.rollout.transformers import TransformersPolicy  # noqa: E402
from rlenv.train import GRPOConfig, GRPOTrainer  # noqa: E402
from rlenv.train.grpo import build_batch, frozen_copy  # noqa: E402

REFERENCE_TOLERANCE = 0.01
"""Largest |bf16 - fp32| reference log-prob allowed on the tiny model (nats). bf16 keeps 8
significant bits; the measured largest difference is 0.001 (the log-probs are near log(1/287))."""


def _trainer(tmp_path, precision, **overrides) -> GRPOTrainer:
    settings = dict(
        env_id="tests/CountA-v0", out=str(tmp_path / precision), steps=1, prompts_per_step=2,
        group_size=4, max_new_tokens=8, learning_rate=1e-3, warmup_steps=0, eval_tasks=0,
        progress=False, plots=False, precision=precision, device="cpu", truncation="none",
        beta=0.1, final_model=False, final_checkpoint=False,
    )  # fmt: skip
    settings.update(overrides)
    model, tokenizer = tiny_model_and_tokenizer(0)
    return GRPOTrainer(GRPOConfig(**settings), model, tokenizer)


def _batch():
    model, tokenizer = tiny_model_and_tokenizer(0)
    trajectories = rollout(
        TransformersPolicy(model, tokenizer, device="cpu"),
        episodes("tests/CountA-v0", n_tasks=2, group_size=2),
        params=SamplingParams(max_new_tokens=8, seed=0),
    )
    return build_batch(trajectories, [1.0, -1.0, 0.5, -0.5], [True] * 4, tokenizer.pad_token_id)


def _reference_logprobs(trainer, batch):
    with torch.no_grad(), trainer._autocast_context():
        return trainer._reference_logprobs(batch).float()


def _dtypes(parameters) -> set:
    return {p.dtype for p in parameters}


def _adam_state_dtypes(trainer) -> set:
    return {
        value.dtype
        for state in trainer.optimizer.state.values()
        for key, value in state.items()
        if key in ("exp_avg", "exp_avg_sq")
    }


def test_bf16_reference_is_a_bf16_copy_whose_logprobs_are_close_to_fp32(tmp_path):
    bf16, fp32 = _trainer(tmp_path, "bf16"), _trainer(tmp_path, "fp32")
    assert _dtypes(bf16.reference.parameters()) == {torch.bfloat16}
    assert _dtypes(fp32.reference.parameters()) == {torch.float32}
    # the rotary frequencies are buffers: kept in fp32, not rounded to bf16
    assert {b.dtype for b in bf16.reference.buffers()} == {torch.float32}
    # the policy's own weights are untouched fp32 master weights, and the copy has their values
    assert _dtypes(bf16.model.parameters()) == {torch.float32}
    for ours, theirs in zip(bf16.reference.parameters(), bf16.model.parameters(), strict=True):
        assert theirs.requires_grad and not ours.requires_grad
        assert torch.equal(ours, theirs.to(torch.bfloat16))
    batch = _batch()
    low, high = _reference_logprobs(bf16, batch), _reference_logprobs(fp32, batch)
    error = ((low - high) * batch.mask).abs().max().item()
    assert 0 < error < REFERENCE_TOLERANCE  # computed in bf16 (not equal), and close


def test_fp32_reference_is_the_exact_fp32_policy(tmp_path):
    """precision="fp32": the reference is an fp32 copy whose log-probs are the policy's, bit
    for bit (the fp32 path is what it was; the run-level check is in the report of issue 18)."""
    trainer = _trainer(tmp_path, "fp32")
    assert not trainer.autocast
    batch = _batch()
    with torch.no_grad():
        policy = trainer._logprobs(batch)[0]
    assert torch.equal(_reference_logprobs(trainer, batch), policy)


def test_bf16_lora_base_is_stored_in_bf16_adapters_and_adam_state_in_fp32(tmp_path):
    pytest.importorskip("peft")
    trainer = _trainer(tmp_path, "bf16", lora_rank=4, lora_alpha=8)
    assert trainer.reference is None  # the reference is the base, adapters disabled: no copy
    named = dict(trainer.model.named_parameters())
    adapters = {name: p for name, p in named.items() if p.requires_grad}
    base = {name: p for name, p in named.items() if not p.requires_grad}
    assert adapters and all("lora_" in name for name in adapters)
    assert _dtypes(adapters.values()) == {torch.float32}
    assert _dtypes(base.values()) == {torch.bfloat16}
    assert {b.dtype for b in trainer.model.buffers()} == {torch.float32}
    before = {name: p.detach().clone() for name, p in base.items()}
    adapters_before = {name: p.detach().clone() for name, p in adapters.items()}
    metrics = trainer.train()[0]
    assert metrics["skipped"] is None and metrics["kl"] is not None
    assert _adam_state_dtypes(trainer) == {torch.float32}
    assert _dtypes(p for p in trainer.model.parameters() if p.requires_grad) == {torch.float32}
    assert all(torch.equal(before[name], base[name]) for name in base)  # frozen, bf16
    assert any(not torch.equal(adapters_before[name], adapters[name]) for name in adapters)
    # the saved model is merged in fp32: W + (alpha / r) B A, the small delta not rounded to bf16
    from safetensors.torch import load_file

    saved = load_file(str(trainer.save_model(tmp_path / "merged") / "model.safetensors"))
    prefix = "base_model.model.model.layers.0.mlp.down_proj"
    delta = named[f"{prefix}.lora_B.default.weight"] @ named[f"{prefix}.lora_A.default.weight"]
    merged = named[f"{prefix}.base_layer.weight"].float() + 2.0 * delta
    assert saved["model.layers.0.mlp.down_proj.weight"].dtype == torch.float32
    assert torch.allclose(saved["model.layers.0.mlp.down_proj.weight"], merged, atol=1e-7)
    assert not torch.equal(merged.to(torch.bfloat16).float(), merged)


def test_bf16_lora_reference_logprobs_are_close_to_the_fp32_base(tmp_path):
    pytest.importorskip("peft")
    bf16 = _trainer(tmp_path, "bf16", lora_rank=4, lora_alpha=8)
    fp32 = _trainer(tmp_path, "fp32", lora_rank=4, lora_alpha=8)
    assert _dtypes(p for p in fp32.model.parameters() if not p.requires_grad) == {torch.float32}
    batch = _batch()
    low, high = _reference_logprobs(bf16, batch), _reference_logprobs(fp32, batch)
    error = ((low - high) * batch.mask).abs().max().item()
    assert 0 < error < REFERENCE_TOLERANCE


def test_bf16_full_fine_tuning_keeps_fp32_master_weights_and_adam_state_with_bf16_compute(
    tmp_path,
):
    trainer = _trainer(tmp_path, "bf16", beta=0.0)
    assert trainer.reference is None
    outputs = []
    layer = trainer.model.model.layers[0].mlp.down_proj
    handle = layer.register_forward_hook(lambda module, args, out: outputs.append(out.dtype))
    try:
        metrics = trainer.train()[0]
    finally:
        handle.remove()
    assert metrics["skipped"] is None
    assert outputs and set(outputs) == {torch.bfloat16}  # generation and the loss in bf16
    assert _dtypes(trainer.model.parameters()) == {torch.float32}
    assert _adam_state_dtypes(trainer) == {torch.float32}
    assert len(trainer.optimizer.state) == len(list(trainer.model.parameters()))


def test_frozen_copy_keeps_tied_parameters_tied_and_makes_no_full_precision_copy():
    embedding = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = embedding.weight
    model = torch.nn.Sequential(embedding, head)
    copy = frozen_copy(model, torch.bfloat16)
    assert copy[1].weight is copy[0].weight
    assert copy[0].weight.dtype == torch.bfloat16 and not copy[0].weight.requires_grad
    assert model[0].weight.dtype == torch.float32 and model[0].weight.requires_grad
    same = frozen_copy(model)
    assert same[0].weight.dtype == torch.float32 and torch.equal(same[0].weight, model[0].weight)
