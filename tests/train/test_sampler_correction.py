"""Truncated importance sampling (TIS) by the sampler's log-probs (issue 19, point 2): the
weights by hand, the loss against a hand computation, a sampler deliberately perturbed, and
no change at all when the sampler is the trainer's own forward pass."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from rlenv.train import GRPOConfig  # noqa: E402
from rlenv.train.algorithm import (  # noqa: E402
    aggregate,
    clipped_surrogate,
    token_logprobs,
    truncated_importance_weights,
)
from rlenv.train.grpo import GRPOTrainer, TrainBatch  # noqa: E402


def test_the_weights_by_hand():
    trainer = torch.tensor([[-1.0, -1.0, -2.0, -3.0]])
    sampler = torch.tensor([[-1.0, -2.0, -0.5, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    weights, capped = truncated_importance_weights(trainer, sampler, mask, cap=2.0)
    # ratios 1, e (capped to 2), e^-1.5; the masked token keeps weight 1 whatever its ratio
    expected = torch.tensor([[1.0, 2.0, math.exp(-1.5), 1.0]])
    torch.testing.assert_close(weights, expected)
    assert capped == pytest.approx(1 / 3)
    # no gradient flows through the weights
    trainer.requires_grad_(True)
    weights, _ = truncated_importance_weights(trainer, sampler, mask, cap=2.0)
    assert not weights.requires_grad
    # an extreme ratio neither overflows nor escapes the cap
    weights, capped = truncated_importance_weights(
        torch.tensor([[0.0]]), torch.tensor([[-1e4]]), torch.tensor([[1.0]]), cap=3.0
    )
    assert weights.item() == 3.0 and capped == 1.0


def make_trainer(tiny, tmp_path, correction: str) -> GRPOTrainer:
    model, tokenizer = tiny
    config = GRPOConfig(
        env_id="tests/CountA-v0", out=str(tmp_path / correction), precision="fp32",
        prompts_per_step=2, group_size=2, micro_batch_size=8, sampler_correction=correction,
        tis_cap=2.0, eval_tasks=0, progress=False, plots=False, learning_rate=1e-2,
    )  # fmt: skip
    return GRPOTrainer(config, model, tokenizer)


def fixed_batch(trainer: GRPOTrainer, shift: float) -> TrainBatch:
    """Four rows; the sampler's log-probs are the trainer's own, minus ``shift`` on every other
    generated token (a sampler that found those tokens less likely than the trainer does)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 200, (4, 10), generator=generator)
    attention = torch.ones_like(ids)
    mask = torch.zeros(4, 9)
    mask[:, 3:] = 1.0
    with torch.no_grad():
        own, _ = token_logprobs(trainer.model, ids, attention)
    sampler = own.clone()
    sampler[:, 3::2] -= shift
    return TrainBatch(
        input_ids=ids, attention_mask=attention, mask=mask, sampler_logprobs=sampler,
        advantages=torch.tensor([1.0, -0.5, 0.5, -0.25]), first=0, prefix_lengths=[4] * 4,
    )  # fmt: skip


def test_a_sampler_equal_to_the_trainer_changes_nothing(tiny, tmp_path):
    state = {k: v.clone() for k, v in tiny[0].state_dict().items()}
    off = make_trainer(tiny, tmp_path, "off")
    metrics_off = off._update(fixed_batch(off, 0.0))
    tiny[0].load_state_dict(state)
    on = make_trainer(tiny, tmp_path, "tis")
    metrics_on = on._update(fixed_batch(on, 0.0))
    assert metrics_off["tis_capped"] is None and metrics_on["tis_capped"] == 0.0
    assert metrics_on["loss"] == pytest.approx(metrics_off["loss"], rel=1e-6, abs=1e-9)
    assert metrics_on["grad_norm"] == pytest.approx(metrics_off["grad_norm"], rel=1e-6)


def test_a_perturbed_sampler_is_reweighted_and_capped(tiny, tmp_path):
    """shift = 1 nat on half the tokens: their ratio is e > cap 2, so they weigh 2; the loss is
    the hand-weighted surrogate, and half the tokens are reported capped."""
    trainer = make_trainer(tiny, tmp_path, "tis")
    batch = fixed_batch(trainer, 1.0)
    with torch.no_grad():
        logprobs, _ = token_logprobs(trainer.model, batch.input_ids, batch.attention_mask)
    per_token, _ = clipped_surrogate(logprobs, logprobs, batch.advantages, batch.mask)
    weights = torch.ones_like(per_token)
    weights[:, 3::2] = 2.0
    expected = aggregate(
        per_token * weights, batch.mask, "token", total_tokens=int(batch.mask.sum()),
        total_sequences=4, constant=1,
    )  # fmt: skip
    metrics = trainer._update(batch)
    assert metrics["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert metrics["tis_capped"] == pytest.approx(3 / 6)  # 3 of each row's 6 tokens
    assert metrics["logprob_mismatch"] == pytest.approx(0.5, rel=1e-4)  # half the tokens, 1 nat
    # without the correction, the same batch trains on the unweighted surrogate
    unweighted = aggregate(
        per_token, batch.mask, "token", total_tokens=int(batch.mask.sum()), total_sequences=4,
        constant=1,
    )  # fmt: skip
    assert float(expected) != pytest.approx(float(unweighted), rel=1e-3)


def test_a_training_step_with_a_perturbed_sampler_logs_the_mismatch(tiny, tmp_path):
    """A real rollout whose sampler reports log-probs 1.5 nats lower than the model's (as a
    sampler in another precision might): the step's metrics show the mismatch and the capped
    share; with the correction off, no capped share is logged."""
    for correction in ("tis", "off"):
        trainer = make_trainer(tiny, tmp_path, correction)
        generate = trainer.policy.generate

        def perturbed(conversations, tools, params, prefixes=None, generate=generate):
            completions = generate(conversations, tools, params, prefixes=prefixes)
            for completion in completions:
                completion.logprobs = [value - 1.5 for value in completion.logprobs]
            return completions

        trainer.policy.generate = perturbed
        metrics = trainer.train_step()
        if metrics["trained_tokens"] == 0:
            pytest.skip("the tiny model's rewards were all equal (nothing to train on)")
        assert metrics["logprob_mismatch"] == pytest.approx(1.5, abs=1e-3)
        if correction == "tis":
            assert metrics["tis_capped"] == pytest.approx(1.0)  # e^1.5 > 2 on every token
        else:
            assert metrics["tis_capped"] is None


def test_auto_follows_the_backend():
    assert GRPOConfig().sampler_correction == "auto"
    with pytest.raises(ValueError):
        GRPOConfig(tis_cap=0.5)
