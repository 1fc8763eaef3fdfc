"""The GRPO trainer end to end on a tiny model: batches, masking, resume, learning, guards."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import frozen_base_weights, tiny_model_and_tokenizer  # noqa: E402

from rlenv.rollout import SamplingParams, episodes, rollout  # noqa: E402
from rlenv.rollout.transformers import TransformersPolicy  # noqa: E402
from rlenv.train import GRPOConfig, GRPOTrainer  # noqa: E402
from rlenv.train.grpo import build_batch, sample_rewards  # noqa: E402


def _config(tmp_path, **overrides) -> GRPOConfig:
    settings = dict(
        env_id="tests/CountA-v0", out=str(tmp_path / "run"), steps=2, prompts_per_step=2,
        group_size=4, max_new_tokens=8, learning_rate=1e-3, warmup_steps=0, eval_tasks=0,
        progress=False, plots=False, precision="fp32", device="cpu", truncation="none",
    )  # fmt: skip
    settings.update(overrides)
    return GRPOConfig(**settings)


def _multi_turn_trajectories(model, tokenizer, n=2):
    policy = TransformersPolicy(model, tokenizer, device="cpu")
    return rollout(
        policy,
        episodes("tests/SayMore-v0", n_tasks=n, group_size=2),
        params=SamplingParams(max_new_tokens=5, seed=0),
    )


def test_the_batch_is_built_from_the_exact_sampled_ids_with_only_model_tokens_masked_in(tiny):
    model, tokenizer = tiny
    trajectories = _multi_turn_trajectories(model, tokenizer)
    assert all(len(t.turns) == 3 for t in trajectories)
    batch = build_batch(trajectories, [1.0, -1.0, 0.5, -0.5], [True] * 4, tokenizer.pad_token_id)
    for row, trajectory in enumerate(trajectories):
        sequence = trajectory.token_sequence()
        length = len(sequence.token_ids)
        assert batch.input_ids[row, :length].tolist() == sequence.token_ids
        assert batch.attention_mask[row].sum().item() == length
        targets = batch.input_ids[row, 1:length].tolist()
        trained = [
            t for t, m in zip(targets, batch.mask[row, : length - 1].tolist(), strict=True) if m
        ]
        assert trained == [i for turn in trajectory.turns for i in turn.completion_token_ids]
        assert batch.mask[row, length - 1 :].sum().item() == 0  # padding


def test_env_inserted_tokens_get_zero_gradient(tiny, tmp_path):
    """The final hidden states (so the logits) at positions whose next token is a prompt/env
    token get no gradient."""
    model, tokenizer = tiny
    trajectories = _multi_turn_trajectories(model, tokenizer)
    batch = build_batch(trajectories, [1.0, -1.0, 0.5, -0.5], [True] * 4, tokenizer.pad_token_id)
    captured = {}

    def keep_logits(module, inputs, output):
        output.retain_grad()
        captured["logits"] = output

    # the final norm's output, [batch, length, hidden]: the output layer's input, one position
    # at a time (the log-probs run the output layer over chunks of target positions)
    handle = model.model.norm.register_forward_hook(keep_logits)
    config = _config(tmp_path, env_id="tests/SayMore-v0", share_prompt_prefix=False)
    trainer = GRPOTrainer(config, model, tokenizer)
    batch.first = 0  # keep every position so each one's gradient can be inspected
    trainer._update(batch)
    handle.remove()
    gradient = captured["logits"].grad.abs().sum(-1)[:, :-1]  # position t predicts token t + 1
    model_positions = batch.mask > 0
    assert gradient[~model_positions].max().item() == 0.0
    assert gradient[model_positions].min().item() > 0.0
    env_positions = (~model_positions) & (batch.attention_mask[:, 1:] > 0)
    assert env_positions[:, batch.mask.nonzero()[0, 1] :].any()  # env tokens between turns


def test_truncated_and_unscored_samples_are_kept_out_of_the_loss(tiny, tmp_path):
    model, tokenizer = tiny
    trajectories = _multi_turn_trajectories(model, tokenizer)
    trajectories[0].turns[-1].finish_reason = "length"
    trajectories[1].turns[-1].verdict = (
        trajectories[1].turns[-1].verdict.model_copy(update={"scored": False})
    )
    config = _config(tmp_path, truncation="mask")
    rewards = sample_rewards(trajectories, config)
    assert rewards[1] is None and rewards[0] is not None
    penalised = sample_rewards(trajectories, _config(tmp_path, truncation="penalty",
                                                     overlong_buffer=4))  # fmt: skip
    assert penalised[0] < trajectories[0].reward or trajectories[0].turns[-1].completion_token_ids


def test_a_step_logs_the_metrics_that_matter(tiny, tmp_path):
    model, tokenizer = tiny
    trainer = GRPOTrainer(_config(tmp_path, steps=1, eval_tasks=4), model, tokenizer)
    history = trainer.train()
    metrics = history[0]
    for key in (
        "reward_mean", "reward_std", "accuracy", "frac_zero_std", "clip_low", "clip_high",
        "entropy", "grad_norm", "completion_length_mean", "tokens_per_second", "time_generate",
        "time_score", "time_train", "loss", "lr", "eval_sampled_accuracy", "eval_greedy_accuracy",
    ):  # fmt: skip
        assert key in metrics, key
    assert metrics["logprob_mismatch"] < 1e-4  # fp32: sampler and trainer agree
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert rows[0]["step"] == 0 and "eval_sampled_accuracy" in rows[0]  # the baseline eval
    assert rows[-1]["step"] == 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["env_id"] == "tests/CountA-v0" and saved["steps"] == 1


def test_resuming_from_a_checkpoint_reproduces_the_next_step_exactly(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    config = _config(tmp_path, steps=3, updates_per_batch=2)
    original = GRPOTrainer(config, model, tokenizer)
    original.train_step()
    checkpoint = original.save_checkpoint(tmp_path / "step1.pt")
    expected = [original.train_step() for _ in range(2)]

    fresh_model, fresh_tokenizer = tiny_model_and_tokenizer(seed=123)  # different weights
    resumed = GRPOTrainer(config, fresh_model, fresh_tokenizer)
    resumed.load_checkpoint(checkpoint)
    assert resumed.step == 1
    again = [resumed.train_step() for _ in range(2)]
    for first, second in zip(expected, again, strict=True):
        assert first["loss"] == second["loss"] and first["loss"] != 0.0
        assert first["reward_mean"] == second["reward_mean"]
        assert first["grad_norm"] == second["grad_norm"]


def test_the_same_seed_reproduces_a_run_from_scratch_and_another_seed_does_not(tmp_path):
    def run(seed: int, name: str) -> list[dict]:
        model, tokenizer = tiny_model_and_tokenizer()
        torch.manual_seed(999 + len(name))  # global RNG state the trainer must not depend on
        config = _config(tmp_path, out=str(tmp_path / name), seed=seed, steps=2)
        return GRPOTrainer(config, model, tokenizer).train()

    first, again, other = run(0, "a"), run(0, "bb"), run(1, "c")
    keys = ("loss", "reward_mean", "grad_norm", "entropy")
    assert [[m[k] for k in keys] for m in first] == [[m[k] for k in keys] for m in again]
    assert [m["loss"] for m in first] != [m["loss"] for m in other]


def test_grpo_raises_the_reward_of_a_tiny_model(tmp_path):
    """Tests that can fail: 12 steps must move a random model toward saying 'a'."""
    model, tokenizer = tiny_model_and_tokenizer()
    config = _config(tmp_path, steps=12, prompts_per_step=4, group_size=8, learning_rate=1e-2)
    trainer = GRPOTrainer(config, model, tokenizer)
    history = trainer.train()
    start = sum(m["reward_mean"] for m in history[:3]) / 3
    end = sum(m["reward_mean"] for m in history[-3:]) / 3
    assert end > start + 0.3, (start, end)


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_every_loss_variant_trains_without_error(tiny, tmp_path, aggregation):
    model, tokenizer = tiny
    config = _config(
        tmp_path, steps=1, loss_aggregation=aggregation, beta=0.01, scale_rewards=False,
        dynamic_sampling=True, micro_batch_size=3,
    )  # fmt: skip
    metrics = GRPOTrainer(config, model, tokenizer).train()[0]
    assert metrics["kl"] is not None and metrics["kl"] >= 0
    assert 0.0 <= metrics["dynamic_dropped_fraction"] <= 1.0


def test_micro_batching_gives_the_same_gradient_as_one_batch(tmp_path):
    losses = []
    for micro in (16, 3):
        model, tokenizer = tiny_model_and_tokenizer()
        config = _config(tmp_path, steps=1, micro_batch_size=micro, group_size=8)
        metrics = GRPOTrainer(config, model, tokenizer).train_step()
        losses.append((metrics["loss"], metrics["grad_norm"]))
    assert losses[0][0] == pytest.approx(losses[1][0], abs=1e-6)
    assert losses[0][1] == pytest.approx(losses[1][1], rel=1e-4)


def test_a_non_finite_loss_skips_the_update_and_says_why(tiny, tmp_path, monkeypatch):
    model, tokenizer = tiny
    trainer = GRPOTrainer(_config(tmp_path, steps=1), model, tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    import rlenv.train.grpo as grpo

    real = grpo.aggregate
    monkeypatch.setattr(grpo, "aggregate", lambda *a, **k: real(*a, **k) * float("nan"))
    metrics = trainer.train_step()
    assert "non-finite" in metrics["skipped"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_trained_model_saves_and_loads(tiny, tmp_path):
    from rlenv.models import load_model

    model, tokenizer = tiny
    trainer = GRPOTrainer(_config(tmp_path, steps=1), model, tokenizer)
    path = trainer.save_model(tmp_path / "model")
    loaded, _ = load_model(str(path))
    ids = torch.tensor([[1, 5, 9]])
    assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)


def test_config_from_toml_and_overrides(tmp_path):
    path = tmp_path / "grpo.toml"
    path.write_text('env_id = "rlenv/Arithmetic-v0"\nsteps = 5\n[env_kwargs]\ndifficulty = 1\n')
    config = GRPOConfig.from_toml(path)
    assert config.steps == 5 and config.env_kwargs == {"difficulty": 1}
    changed = config.with_overrides(["steps=7", "loss_aggregation=sequence", "beta=0.01"])
    assert (changed.steps, changed.loss_aggregation, changed.beta) == (7, "sequence", 0.01)
    with pytest.raises(ValueError, match="unknown setting 'stepz'; did you mean 'steps'"):
        config.with_overrides(["stepz=3"])
    # the CLI's -k reader: Python literals too, so False is False (not the truthy "False")
    assert config.with_overrides(["progress=False"]).progress is False
    with pytest.raises(TypeError, match="--set expects KEY=VALUE"):
        config.with_overrides(["steps"])
    with pytest.raises(ValueError):
        config.with_overrides(["loss_aggregation=mean"])
    with pytest.raises(ValueError):
        GRPOConfig(dynamic_sampling=True, group_size=1)


def test_lora_trains_only_adapters_and_uses_the_base_model_as_reference(tmp_path):
    pytest.importorskip("peft")
    model, tokenizer = tiny_model_and_tokenizer()
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = _config(tmp_path, steps=2, lora_rank=4, beta=0.05, learning_rate=1e-2)
    trainer = GRPOTrainer(config, model, tokenizer)
    history = trainer.train()
    assert all(m["kl"] is not None for m in history) and history[-1]["kl"] > 0
    trained = dict(trainer.model.named_parameters())
    assert all(not p.requires_grad for n, p in trained.items() if "lora_" not in n)
    frozen = frozen_base_weights(trainer.model)
    assert all(torch.equal(frozen[name], value) for name, value in base.items())
    merged = trainer.save_model(tmp_path / "merged")
    assert (merged / "config.json").exists()


def test_activation_checkpointing_gives_the_same_step(tmp_path):
    results = []
    for checkpointing in (False, True):
        model, tokenizer = tiny_model_and_tokenizer()
        config = _config(tmp_path, steps=1, gradient_checkpointing=checkpointing)
        metrics = GRPOTrainer(config, model, tokenizer).train_step()
        results.append((metrics["loss"], metrics["grad_norm"], metrics["reward_mean"]))
    assert results[0] == pytest.approx(results[1], rel=1e-5)


@pytest.mark.parametrize("env_id", ["tests/CountA-v0", "tests/SayMore-v0"])
def test_the_shared_prefix_pass_equals_the_plain_pass(env_id):
    """Each group's prompt runs once: same log-probs, entropies and gradients as per sample."""
    from rlenv.train.algorithm import shared_prefix_logprobs, token_logprobs

    model, tokenizer = tiny_model_and_tokenizer()
    policy = TransformersPolicy(model, tokenizer, device="cpu")
    trajectories = rollout(
        policy, episodes(env_id, n_tasks=3, group_size=4),
        params=SamplingParams(max_new_tokens=6, seed=4),
    )  # fmt: skip
    batch = build_batch(trajectories, [0.0] * 12, [True] * 12, tokenizer.pad_token_id)
    prefixes = [len(t.turns[0].prompt_token_ids) for t in trajectories]
    model.train()
    results = []
    for shared in (False, True):
        model.zero_grad()
        if shared:
            logprobs, entropy = shared_prefix_logprobs(
                model, batch.input_ids, batch.attention_mask, prefixes, temperature=0.8,
                entropy=True,
            )  # fmt: skip
        else:
            logprobs, entropy = token_logprobs(
                model, batch.input_ids, batch.attention_mask, temperature=0.8, entropy=True
            )
        (logprobs * batch.mask).sum().backward()
        gradient = torch.cat([p.grad.flatten() for p in model.parameters()])
        results.append((logprobs * batch.mask, entropy * batch.mask, gradient))
    (plain, plain_entropy, plain_grad), (shared, shared_entropy, shared_grad) = results
    assert torch.allclose(plain, shared, atol=1e-5)
    assert torch.allclose(plain_entropy, shared_entropy, atol=1e-5)
    assert torch.allclose(plain_grad, shared_grad, atol=1e-5, rtol=1e-4)
    assert batch.mask.sum() > 0


def test_leaving_out_zero_advantage_rows_changes_no_parameter(tmp_path):
    """Rows with advantage 0 are not forwarded (beta = 0): the updates are the same, including
    a step where every row is 0 (AdamW still applies its momentum, as with a zero gradient)."""
    model, tokenizer = tiny_model_and_tokenizer()
    trajectories = _multi_turn_trajectories(model, tokenizer, n=3)
    batches = [
        build_batch(trajectories, advantages, [True] * 6, tokenizer.pad_token_id)
        for advantages in ([1, -1, 0.5, -0.5, 1, -1], [1, -1, 0, 0, 0, 0], [0] * 6)
    ]
    states = []
    for skip in (True, False):
        model, tokenizer = tiny_model_and_tokenizer()
        config = _config(tmp_path, skip_zero_advantage=skip, micro_batch_size=4)
        trainer = GRPOTrainer(config, model, tokenizer)
        trace = []
        for batch in batches:
            metrics = trainer._update(batch)
            trace.append([p.detach().clone() for p in model.parameters()])
        states.append((trace, metrics))
    (skipped, skipped_metrics), (full, full_metrics) = states
    assert skipped_metrics["trained_sequences"] == 0 and full_metrics["trained_sequences"] == 6
    for after_skip, after_full in zip(skipped, full, strict=True):
        for a, b in zip(after_skip, after_full, strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    assert not torch.equal(skipped[1][0], skipped[2][0])  # the all-zero step still moved


def test_the_example_config_is_the_demo():
    from pathlib import Path

    from rlenv.train.demo import DEMO_CONFIG

    path = Path(__file__).parents[2] / "examples" / "grpo_arithmetic.toml"
    config = GRPOConfig.from_toml(path, env_id="rlenv/Arithmetic-v0")
    assert config.model_dump(exclude={"out"}) == DEMO_CONFIG.model_dump(exclude={"out"})


def test_training_on_the_train_split_evaluates_on_the_test_split(monkeypatch):
    from rlenv.train import grpo
    from rlenv.train.config import held_out_env_kwargs

    assert held_out_env_kwargs({"difficulty": 1, "split": "train"}) == {
        "difficulty": 1,
        "split": "test",
    }
    assert held_out_env_kwargs({"difficulty": 1}) == {"difficulty": 1}  # no split: seeds only
    assert held_out_env_kwargs({"split": "test"}) == {"split": "test"}

    model, tokenizer = tiny_model_and_tokenizer()
    config = GRPOConfig(
        env_id="rlenv/Arithmetic-v0", env_kwargs={"difficulty": 1, "split": "train"}, steps=1,
        eval_tasks=3, eval_greedy=False, max_new_tokens=4, plots=False, progress=False,
        device="cpu",
    )  # fmt: skip
    trainer = GRPOTrainer(config, model, tokenizer)
    asked = []
    real_episodes = grpo.episodes
    monkeypatch.setattr(grpo, "episodes", lambda *a, **k: asked.append(k) or real_episodes(*a, **k))
    trainer.evaluate()
    assert asked and asked[-1]["split"] == "test" and asked[-1]["n_tasks"] == 3


def test_envs_are_made_once_and_reused_across_steps_and_evaluations(tiny, tmp_path):
    model, tokenizer = tiny
    trainer = GRPOTrainer(_config(tmp_path, steps=2, eval_tasks=4), model, tokenizer)
    made = []
    make = trainer.env_pool._make
    trainer.env_pool._make = lambda *args, **kwargs: made.append(args) or make(*args, **kwargs)
    trainer.train()
    # two baseline/final evaluations and two training steps share the same few envs
    assert 0 < len(made) <= trainer.env_pool.idle
