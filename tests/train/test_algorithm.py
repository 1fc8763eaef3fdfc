"""The GRPO pieces against hand-computed values on tiny tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from rlenv.train.algorithm import (  # noqa: E402
    aggregate,
    clipped_surrogate,
    group_advantages,
    kl_k3,
    overlong_penalty,
    token_logprobs,
)

# ------------------------------------------------------------------------------ advantages


def test_advantages_are_reward_minus_group_mean_over_the_sample_std():
    advantages, informative = group_advantages([1, 0, 0, 1, 1, 1], ["a"] * 4 + ["b"] * 2)
    std = math.sqrt(((0.5**2) * 4) / 3)  # rewards 1,0,0,1: mean 0.5, sample std
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 2
    assert advantages[:4] == pytest.approx([expected[0], expected[1], expected[1], expected[0]])
    assert advantages[4:] == [0.0, 0.0]  # all equal: no signal
    assert informative == [True] * 4 + [False] * 2


def test_dr_grpo_does_not_divide_by_the_std():
    advantages, _ = group_advantages([1.0, 0.0, 0.0, 0.0], ["g"] * 4, scale=False)
    assert advantages == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_unscored_samples_leave_the_baseline_and_get_zero():
    with_none, _ = group_advantages([1.0, None, 0.0], ["g"] * 3, scale=False)
    assert with_none == pytest.approx([0.5, 0.0, -0.5])  # mean of 1 and 0, not of 1, 0, 0
    nan, _ = group_advantages([1.0, float("nan"), 0.0], ["g"] * 3, scale=False)
    assert nan == with_none


def test_a_group_of_one_scored_sample_carries_no_signal():
    advantages, informative = group_advantages([1.0, None], ["g", "g"])
    assert advantages == [0.0, 0.0] and informative == [False, False]
    assert group_advantages([0.7], ["solo"])[0] == [0.0]


def test_groups_need_not_be_contiguous():
    advantages, _ = group_advantages([1, 5, 0, 3], ["a", "b", "a", "b"], scale=False)
    assert advantages == pytest.approx([0.5, 1.0, -0.5, -1.0])


# ------------------------------------------------------------------------ overlong penalty


@pytest.mark.parametrize(
    ("length", "expected"), [(10, 0.0), (32, 0.0), (36, -0.25), (40, -0.5), (48, -1.0)]
)
def test_overlong_penalty_ramps_to_minus_one_in_the_buffer(length, expected):
    assert overlong_penalty(length, 48, 16) == pytest.approx(expected)


def test_overlong_penalty_rejects_a_bad_buffer():
    with pytest.raises(ValueError):
        overlong_penalty(3, 10, 11)


# ------------------------------------------------------------------------ clipped surrogate


def _surrogate(ratios, advantage, mask=None, low=0.2, high=0.28):
    old = torch.zeros(1, len(ratios))
    new = torch.log(torch.tensor([ratios], dtype=torch.float32))
    mask = torch.tensor([mask or [1] * len(ratios)], dtype=torch.float32)
    return clipped_surrogate(
        new, old, torch.tensor([advantage]), mask, epsilon_low=low, epsilon_high=high
    )


def test_positive_advantage_is_clipped_above_at_one_plus_eps_high():
    loss, stats = _surrogate([0.5, 1.0, 1.2, 1.5], 2.0)
    # -min(r A, clip(r) A): r=0.5 -> -1.0 (unclipped is smaller), 1.0 -> -2, 1.2 -> -2.4,
    # 1.5 -> clipped at 1.28 -> -2.56
    assert loss[0].tolist() == pytest.approx([-1.0, -2.0, -2.4, -2.56])
    assert stats.high == pytest.approx(0.25) and stats.low == 0.0


def test_negative_advantage_is_clipped_below_at_one_minus_eps_low():
    loss, stats = _surrogate([0.5, 1.0, 1.5], -1.0)
    # r=0.5 -> clip 0.8 -> max(-0.5*-1, ...) = -min(-0.5, -0.8) = 0.8; r=1.5 -> 1.5 (unclipped)
    assert loss[0].tolist() == pytest.approx([0.8, 1.0, 1.5])
    assert stats.low == pytest.approx(1 / 3) and stats.high == 0.0


def test_clip_higher_is_asymmetric():
    symmetric, _ = _surrogate([1.25], 1.0, low=0.2, high=0.2)
    higher, _ = _surrogate([1.25], 1.0, low=0.2, high=0.28)
    assert symmetric.item() == pytest.approx(-1.2) and higher.item() == pytest.approx(-1.25)


def test_masked_tokens_get_no_loss_and_no_gradient_even_with_garbage_logprobs():
    new = torch.tensor([[0.0, 500.0, -0.1]], requires_grad=True)  # 500: a placeholder
    old = torch.tensor([[0.0, -500.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    loss, _ = clipped_surrogate(new, old, torch.tensor([1.0]), mask)
    loss.sum().backward()
    assert loss[0, 1].item() == 0.0 and new.grad[0, 1].item() == 0.0
    assert torch.isfinite(new.grad).all() and new.grad[0, 0].item() != 0.0


def test_ratio_one_gradient_is_minus_advantage():
    """mu = 1: old = new.detach(), so d loss / d logprob = -A on every model token."""
    new = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, _ = clipped_surrogate(new, new.detach(), torch.tensor([0.7]), torch.ones(1, 2))
    loss.sum().backward()
    assert new.grad[0].tolist() == pytest.approx([-0.7, -0.7])


# ----------------------------------------------------------------------------- aggregation


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])


def test_token_level_aggregation_divides_by_all_model_tokens():
    value = aggregate(PER_TOKEN, MASK, "token", total_tokens=4, total_sequences=2, constant=8)
    assert value.item() == pytest.approx((1 + 2 + 3 + 4) / 4)


def test_sequence_level_aggregation_averages_per_sequence_first():
    value = aggregate(PER_TOKEN, MASK, "sequence", total_tokens=4, total_sequences=2, constant=8)
    assert value.item() == pytest.approx((2.0 + 4.0) / 2)


def test_constant_aggregation_divides_by_the_given_constant():
    value = aggregate(PER_TOKEN, MASK, "constant", total_tokens=4, total_sequences=2, constant=8)
    assert value.item() == pytest.approx(10 / 8)


def test_dr_grpo_token_gradient_is_minus_advantage_over_the_constant_whatever_is_masked():
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical
    Perspective"): with the std and 1/|o_i| removed, d L / d log pi(o_i,t) = -A_i / C at
    ratio 1, with C = sequences per step x token budget: the same for every length, and
    unchanged when another sequence is masked out (truncated, unscored)."""
    advantages = torch.tensor([1.5, -0.5, -1.0])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    constant = 3 * 4  # 3 sequences per step x a budget of 4 tokens
    gradients = []
    for masked_out in (None, 1):
        rows_mask = mask.clone()
        if masked_out is not None:
            rows_mask[masked_out] = 0.0
        logprobs = torch.full((3, 4), -1.0, requires_grad=True)
        per_token, _ = clipped_surrogate(logprobs, logprobs.detach(), advantages, rows_mask)
        loss = aggregate(
            per_token,
            rows_mask,
            "constant",
            total_tokens=int(rows_mask.sum()),
            total_sequences=int((rows_mask.sum(-1) > 0).sum()),
            constant=constant,
        )
        loss.backward()
        expected = -advantages.unsqueeze(-1) * rows_mask / constant
        assert torch.allclose(logprobs.grad, expected, atol=1e-7)
        gradients.append(logprobs.grad)
    # the rows still trained have exactly the gradient they had before row 1 was masked
    assert torch.equal(gradients[0][[0, 2]], gradients[1][[0, 2]])


def test_the_trainers_dr_grpo_normaliser_is_fixed_by_the_config_not_by_the_mask(tmp_path):
    """Through GRPOTrainer: the 'constant' loss is sum(-A_i) over model tokens / (prompts_per_step
    x group_size x budget), budget = max_episode_tokens or max_new_tokens; masking a sequence
    out removes its tokens and nothing else (the normaliser used to count unmasked rows)."""
    pytest.importorskip("transformers")
    from conftest import tiny_model_and_tokenizer

    from rlenv.train import GRPOConfig, GRPOTrainer
    from rlenv.train.grpo import TrainBatch

    rows, length, prompt = 8, 12, 4
    generator = torch.Generator().manual_seed(0)
    lengths = [8, 3, 5, 1, 7, 2, 6, 4]  # completion tokens per row
    mask = torch.zeros(rows, length - 1)
    attention = torch.zeros(rows, length, dtype=torch.long)
    for row, count in enumerate(lengths):
        mask[row, prompt - 1 : prompt - 1 + count] = 1.0
        attention[row, : prompt + count] = 1
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.25, -0.25])

    def loss(budget: dict, masked_out: int | None) -> float:
        model, tokenizer = tiny_model_and_tokenizer()
        config = GRPOConfig(
            env_id="tests/CountA-v0", out=str(tmp_path / "run"), prompts_per_step=2,
            group_size=4, max_new_tokens=8, loss_aggregation="constant", eval_tasks=0,
            progress=False, plots=False, precision="fp32", device="cpu", **budget,
        )  # fmt: skip
        rows_mask = mask.clone()
        if masked_out is not None:
            rows_mask[masked_out] = 0.0
        batch = TrainBatch(
            input_ids=torch.randint(3, len(tokenizer), (rows, length), generator=generator),
            attention_mask=attention,
            mask=rows_mask,
            sampler_logprobs=torch.zeros(rows, length - 1),
            advantages=advantages,
            first=prompt - 1,
            prefix_lengths=[prompt] * rows,
        )
        return GRPOTrainer(config, model, tokenizer)._update(batch)["loss"]

    signed = [-a * n for a, n in zip(advantages.tolist(), lengths, strict=True)]
    assert loss({}, None) == pytest.approx(sum(signed) / (8 * 8), abs=1e-6)
    # row 4 (A = 2, 7 tokens) masked out: its term goes, the divisor stays 8 x 8 (was 7 x 8)
    assert loss({}, 4) == pytest.approx((sum(signed) - signed[4]) / (8 * 8), abs=1e-6)
    assert loss({"max_episode_tokens": 20}, 4) == pytest.approx(
        (sum(signed) - signed[4]) / (8 * 20), abs=1e-6
    )


@pytest.mark.parametrize("kind", ["token", "sequence", "constant"])
def test_micro_batches_sum_to_the_whole_batch(kind):
    whole = aggregate(PER_TOKEN, MASK, kind, total_tokens=4, total_sequences=2, constant=8)
    parts = sum(
        aggregate(PER_TOKEN[i : i + 1], MASK[i : i + 1], kind, total_tokens=4, total_sequences=2,
                  constant=8)
        for i in range(2)
    )  # fmt: skip
    assert parts.item() == pytest.approx(whole.item())


def test_unknown_aggregation_is_an_error():
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(PER_TOKEN, MASK, "mean", total_tokens=4, total_sequences=2, constant=8)


# ------------------------------------------------------------------------------------- KL


def test_k3_is_zero_at_equality_and_matches_the_formula():
    logprobs = torch.tensor([-1.0, -2.0, -0.5])
    reference = torch.tensor([-1.0, -1.0, -1.5])
    values = kl_k3(logprobs, reference)
    expected = [math.exp(d) - d - 1 for d in (0.0, 1.0, -1.0)]
    assert values.tolist() == pytest.approx(expected)
    assert (values >= 0).all()


# -------------------------------------------------------------------------------- logprobs


class _Table(torch.nn.Module):
    """A 'model' whose next-token logits depend only on the current token."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(logits)

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        logits = self.table[input_ids]
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return type("Out", (), {"logits": logits})()


def test_token_logprobs_at_a_temperature_and_skipping_the_prompt():
    table = torch.tensor([[0.0, 1.0, 2.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    model = _Table(table)
    ids = torch.tensor([[0, 2, 1, 0]])
    logprobs, entropy = token_logprobs(
        model, ids, torch.ones_like(ids), temperature=2.0, first=1, entropy=True
    )
    scaled = torch.log_softmax(table / 2.0, dim=-1)
    expected = [0.0, scaled[2, 1].item(), scaled[1, 0].item()]  # position 0 is prompt
    assert logprobs[0].tolist() == pytest.approx(expected)
    probabilities = scaled.exp()
    entropies = -(probabilities * scaled).sum(-1)
    assert entropy[0, 1:].tolist() == pytest.approx([entropies[2].item(), entropies[1].item()])
    full, _ = token_logprobs(model, ids, torch.ones_like(ids), temperature=2.0, first=0)
    assert full[0, 1:].tolist() == pytest.approx(expected[1:])
    assert full[0, 0].item() == pytest.approx(scaled[0, 2].item())
