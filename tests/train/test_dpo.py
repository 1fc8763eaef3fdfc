"""Verifier-built DPO: the pairing rule, the TRL export, the loss, and the trainer on a tiny
model (learning, exact resume, saved model)."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import tiny_model_and_tokenizer  # noqa: E402

from rlenv.models import load_model  # noqa: E402
from rlenv.rollout.trajectory import Trajectory, TurnRecord  # noqa: E402
from rlenv.train.dpo import (  # noqa: E402
    DPOConfig,
    DPOTrainer,
    PreferencePair,
    dpo_loss,
    load_pairs,
    preference_pairs,
    run_dpo,
    to_trl_records,
    write_dpo_jsonl,
    write_pairs,
)
from rlenv.verdict import Verdict  # noqa: E402

PROMPT = [{"role": "user", "content": "Say a or b."}]


def _trajectory(reward, *, task="t0", group=0, scored=True, turns=1, ids=True, text=None):
    text = text if text is not None else f"answer {group}"
    records = [
        TurnRecord(
            reward=reward,
            verdict=Verdict(reward=reward, scored=scored),
            completion=text,
            prompt_token_ids=[1, 2, 3] if ids else None,
            completion_token_ids=[10 + group, 2] if ids else None,
        )
        for _ in range(turns)
    ]
    return Trajectory(
        env_id="tests/CountA-v0", task_id=task, seed=7, group=group,
        messages=[*PROMPT, {"role": "assistant", "content": text}], turns=records,
        reward=reward, terminated=True, truncated=False,
    )  # fmt: skip


# ----------------------------------------------------------------------------- pairing rule


def test_pairs_match_top_samples_with_the_worst_failures_one_to_one():
    group = [_trajectory(r, group=i) for i, r in enumerate([0.0, 1.0, 0.5, 1.0, 0.0, 1.0])]
    pairs = preference_pairs(group)
    # chosen: the three 1.0 samples in rollout order; rejected: lowest reward first
    assert [(p.chosen, p.rejected) for p in pairs] == [
        ("answer 1", "answer 0"),
        ("answer 3", "answer 4"),
        ("answer 5", "answer 2"),
    ]
    assert [(p.chosen_reward, p.rejected_reward) for p in pairs] == [
        (1.0, 0.0), (1.0, 0.0), (1.0, 0.5)
    ]  # fmt: skip
    assert pairs[0].prompt == PROMPT
    assert pairs[0].prompt_token_ids == [1, 2, 3]
    assert pairs[0].chosen_token_ids == [11, 2] and pairs[0].rejected_token_ids == [10, 2]
    assert preference_pairs(list(group)) == pairs  # deterministic


def test_margin_ties_and_unscored_samples():
    group = [_trajectory(r, group=i) for i, r in enumerate([1.0, 0.8, 0.2])]
    assert [p.rejected_reward for p in preference_pairs(group, margin=0.5)] == [0.2]
    partial = [_trajectory(0.5, group=0), _trajectory(0.0, group=1)]
    assert len(preference_pairs(partial)) == 1
    assert preference_pairs(partial, min_chosen_reward=1.0) == []  # nothing passed
    ties = [_trajectory(1.0, group=0), _trajectory(1.0, group=1)]
    assert preference_pairs(ties) == []
    unscored = [_trajectory(1.0, group=0), _trajectory(0.0, group=1, scored=False)]
    assert preference_pairs(unscored) == []
    # an unscored sample never counts as the top either
    top_unscored = [
        _trajectory(5.0, group=0, scored=False),
        _trajectory(1.0, group=1),
        _trajectory(0.0, group=2),
    ]
    assert [(p.chosen, p.rejected) for p in preference_pairs(top_unscored)] == [
        ("answer 1", "answer 2")
    ]


def test_groups_are_per_task_and_multi_turn_episodes_are_left_out():
    mixed = [
        _trajectory(1.0, task="a", group=0),
        _trajectory(0.0, task="b", group=0),  # alone in its group
        _trajectory(0.0, task="a", group=1),
        _trajectory(1.0, task="c", group=0, turns=2),
        _trajectory(0.0, task="c", group=1, turns=2),
    ]
    pairs = preference_pairs(mixed)
    assert [(p.task_id, p.chosen, p.rejected) for p in pairs] == [("a", "answer 0", "answer 1")]


def test_pairs_without_ids_keep_the_text_only():
    pairs = preference_pairs([_trajectory(1.0, group=0, ids=False), _trajectory(0.0, group=1)])
    assert pairs[0].prompt_token_ids is None and pairs[0].chosen_token_ids is None


# ----------------------------------------------------------------------------- TRL export


def test_the_trl_records_are_conversational_preference_data(tmp_path):
    data_utils = pytest.importorskip("trl.data_utils")
    _, tokenizer = tiny_model_and_tokenizer()
    pairs = preference_pairs([_trajectory(1.0, group=0), _trajectory(0.0, group=1)])
    (record,) = to_trl_records(pairs)
    assert set(record) == {"prompt", "chosen", "rejected"}
    assert record["chosen"] == [{"role": "assistant", "content": "answer 0"}]
    assert data_utils.is_conversational(record)
    rendered = data_utils.maybe_apply_chat_template(record, tokenizer)
    assert rendered["prompt"].endswith("<|im_start|>assistant\n")
    assert rendered["chosen"].startswith("answer 0")
    path = tmp_path / "dpo.jsonl"
    assert write_dpo_jsonl(pairs, path) == 1
    assert json.loads(path.read_text()) == record
    (back,) = load_pairs(path)  # TRL records read back as text-only pairs
    assert (back.prompt, back.chosen, back.rejected) == (PROMPT, "answer 0", "answer 1")


# ----------------------------------------------------------------------------------- the loss


def test_dpo_loss_on_hand_computed_values():
    policy_c, policy_r = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    ref_c, ref_r = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    # h = (pc - rc) - (pr - rr) = [1 - (-1), 0 - 1] = [2, -1]
    result = dpo_loss(policy_c, policy_r, ref_c, ref_r, beta=0.5)
    expected = [math.log1p(math.exp(-1.0)), math.log1p(math.exp(0.5))]  # -log sigmoid(beta h)
    assert result.losses.tolist() == pytest.approx(expected)
    assert result.chosen_rewards.tolist() == pytest.approx([0.5, 0.0])
    assert result.rejected_rewards.tolist() == pytest.approx([-0.5, 0.5])
    assert result.accuracy.tolist() == [1.0, 0.0]
    # beta scales the logit (and the implicit rewards): beta 1.0 on h equals beta 0.5 on 2h
    doubled = dpo_loss(policy_c, policy_r, ref_c, ref_r, beta=1.0)
    assert doubled.losses.tolist() == pytest.approx(
        [math.log1p(math.exp(-2.0)), math.log1p(math.exp(1.0))]
    )
    assert doubled.chosen_rewards.tolist() == pytest.approx([1.0, 0.0])


def test_label_smoothing_mixes_in_the_flipped_preference():
    one = torch.tensor([0.0])
    result = dpo_loss(one + 1.0, one, one, one, beta=2.0, label_smoothing=0.1)  # beta h = 2
    expected = 0.9 * math.log1p(math.exp(-2.0)) + 0.1 * math.log1p(math.exp(2.0))
    assert result.losses.item() == pytest.approx(expected)


def test_equal_policy_and_reference_give_log_2():
    logps = torch.tensor([-3.0, -7.5, -0.2])
    for smoothing in (0.0, 0.2):
        result = dpo_loss(logps, logps - 1, logps, logps - 1, beta=0.3, label_smoothing=smoothing)
        assert result.losses.tolist() == pytest.approx([math.log(2)] * 3)


# -------------------------------------------------------------------------------- the trainer


def _pairs(tokenizer, n=4):
    """Pairs with exact ids (as a rollout keeps them): chosen says 'aaaa', rejected 'bbbb'."""
    render = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(render, add_special_tokens=False)["input_ids"]
    pairs = []
    for index in range(n):
        good, bad = "aaaa " * (1 + index % 2), "bbbb " * (1 + index % 2)
        pairs.append(
            PreferencePair(
                prompt=PROMPT, chosen=good, rejected=bad, chosen_reward=1.0, rejected_reward=0.0,
                prompt_token_ids=prompt_ids,
                chosen_token_ids=tokenizer(good + "<|im_end|>", add_special_tokens=False)[
                    "input_ids"],
                rejected_token_ids=tokenizer(bad + "<|im_end|>", add_special_tokens=False)[
                    "input_ids"],
            )
        )  # fmt: skip
    return pairs


def _config(tmp_path, **overrides) -> DPOConfig:
    settings = dict(
        out=str(tmp_path / "run"), steps=3, batch_size=4, micro_batch_size=2, beta=0.5,
        learning_rate=1e-3, precision="fp32", device="cpu", progress=False, plots=False,
    )  # fmt: skip
    settings.update(overrides)
    return DPOConfig(**settings)


def test_sequence_logps_cover_only_the_completion_tokens(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    pairs = _pairs(tokenizer, n=2)
    trainer = DPOTrainer(_config(tmp_path), model, tokenizer, pairs=pairs)
    batch = trainer._batch([0, 1])
    for row in range(4):
        pair = pairs[row // 2]
        completion = pair.chosen_token_ids if row % 2 == 0 else pair.rejected_token_ids
        targets = batch.input_ids[row, 1:].tolist()
        masked = [t for t, m in zip(targets, batch.mask[row].tolist(), strict=True) if m]
        assert masked == completion
    # before any update the policy is the reference: loss log 2, rewards 0
    metrics = trainer.train_step()
    assert metrics["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert metrics["margin"] == pytest.approx(0.0, abs=1e-5)


def test_pairs_without_ids_are_rendered_with_the_chat_template(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    exact = _pairs(tokenizer, n=1)
    text_only = [exact[0].model_copy(update={
        "prompt_token_ids": None, "chosen_token_ids": None, "rejected_token_ids": None})]  # fmt: skip
    trainer = DPOTrainer(_config(tmp_path), model, tokenizer, pairs=text_only)
    prompt, chosen, rejected = trainer._tokens[0]
    assert prompt == exact[0].prompt_token_ids
    # the template's completion: the reply, end of turn, and the template's newline
    assert chosen[: len(exact[0].chosen_token_ids)] == exact[0].chosen_token_ids
    assert tokenizer.decode(rejected).startswith("bbbb <|im_end|>")


def test_training_raises_the_margin_and_reward_accuracy(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    config = _config(tmp_path, steps=20, learning_rate=3e-3, plots=True)
    trainer = DPOTrainer(config, model, tokenizer, pairs=_pairs(tokenizer))
    history = trainer.train()
    assert len(history) == 20
    assert history[-1]["margin"] > 1.0
    assert history[-1]["reward_accuracy"] == 1.0
    assert history[-1]["loss"] < 0.3 < math.log(2)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    for key in ("loss", "reward_accuracy", "chosen_reward", "rejected_reward", "margin",
                "grad_norm", "lr", "time_step"):  # fmt: skip
        assert rows[-1][key] is not None, key
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert (tmp_path / "run" / "model" / "config.json").exists()
    pytest.importorskip("matplotlib")
    assert (tmp_path / "run" / "curves.png").exists()


def test_resuming_from_a_checkpoint_reproduces_the_next_step_exactly(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    pairs = _pairs(tokenizer, n=6)
    config = _config(tmp_path, steps=4, batch_size=4, warmup_steps=2)
    original = DPOTrainer(config, model, tokenizer, pairs=pairs)
    original.train_step()
    original.train_step()
    path = original.save_checkpoint(tmp_path / "resume.pt")
    expected = original.train_step()

    fresh_model, fresh_tokenizer = tiny_model_and_tokenizer(seed=1)  # other initial weights
    resumed = DPOTrainer(config, fresh_model, fresh_tokenizer, pairs=pairs)
    resumed.load_checkpoint(path)
    again = resumed.train_step()
    assert again["loss"] == expected["loss"]
    assert again["margin"] == expected["margin"]
    assert again["lr"] == expected["lr"]
    assert again["grad_norm"] == expected["grad_norm"]


def test_a_non_finite_loss_skips_the_update(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    trainer = DPOTrainer(_config(tmp_path), model, tokenizer, pairs=_pairs(tokenizer))
    before = [p.detach().clone() for p in model.parameters()]
    trainer.reference_logps[0, 0] = float("nan")
    metrics = trainer.train_step()
    assert metrics["skipped"] == "non-finite loss" and metrics["loss"] is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_saved_model_loads_with_equal_logits(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    trainer = DPOTrainer(_config(tmp_path, steps=1), model, tokenizer, pairs=_pairs(tokenizer))
    trainer.train_step()
    path = trainer.save_model(tmp_path / "saved")
    loaded, loaded_tokenizer = load_model(str(path))
    ids = torch.tensor([trainer._tokens[0][0] + trainer._tokens[0][1]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-6)
    assert loaded_tokenizer.apply_chat_template(PROMPT, tokenize=False) == (
        tokenizer.apply_chat_template(PROMPT, tokenize=False)
    )


def test_lora_dpo_trains_only_the_adapters_from_the_base_models_reference(tmp_path):
    pytest.importorskip("peft")
    model, tokenizer = tiny_model_and_tokenizer()
    pairs = _pairs(tokenizer)
    plain = DPOTrainer(_config(tmp_path / "plain"), model, tokenizer, pairs=pairs)
    model, tokenizer = tiny_model_and_tokenizer()
    config = _config(tmp_path, steps=20, learning_rate=3e-3, lora_rank=8)
    trainer = DPOTrainer(config, model, tokenizer, pairs=pairs)
    # the adapters start at zero: the reference is the base model's
    assert torch.allclose(trainer.reference_logps, plain.reference_logps, atol=1e-5)
    history = trainer.train()
    assert history[-1]["margin"] > 0.5 and history[-1]["reward_accuracy"] == 1.0
    trained = dict(trainer.model.named_parameters())
    assert all("lora_" in n for n, p in trained.items() if p.requires_grad)
    assert (tmp_path / "run" / "model" / "config.json").exists()  # merged, loadable


def test_trajectories_files_are_paired_on_load(tmp_path):
    from rlenv.rollout.trajectory import write_trajectories

    path = tmp_path / "rollouts.jsonl"
    write_trajectories([_trajectory(1.0, group=0), _trajectory(0.0, group=1)], path)
    (pair,) = load_pairs(path)
    assert (pair.chosen, pair.rejected) == ("answer 0", "answer 1")
    with pytest.raises(ValueError, match="no preference pairs"):
        model, tokenizer = tiny_model_and_tokenizer()
        DPOTrainer(_config(tmp_path, data=str(path), margin=2.0), model, tokenizer)


def test_run_dpo_trains_from_a_pairs_file_and_a_model_folder(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    pairs = _pairs(tokenizer, n=2)
    data = tmp_path / "pairs.jsonl"
    assert write_pairs(pairs, data) == 2
    assert load_pairs(data) == pairs  # token ids and rewards survive the round trip
    config = _config(tmp_path, model=str(tmp_path / "base"), data=str(data), steps=2)
    saved = run_dpo(config)
    assert (saved / "config.json").exists()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    with pytest.raises(ValueError, match=r"DPOConfig\.data"):
        run_dpo(_config(tmp_path, model=str(tmp_path / "base")))


def test_pairs_from_real_rollouts_score_the_sampled_tokens(tmp_path):
    """From a rollout to pairs to the trainer: the reference log-prob of each completion is the
    sum of the sampler's own log-probs for those ids (the exact ids are used, not re-rendered)."""
    from rlenv.rollout import SamplingParams, episodes, rollout
    from rlenv.rollout.transformers import TransformersPolicy

    model, tokenizer = tiny_model_and_tokenizer()
    policy = TransformersPolicy(model, tokenizer, device="cpu")
    trajectories = rollout(
        policy,
        episodes("tests/CountA-v0", n_tasks=3, group_size=6),
        params=SamplingParams(max_new_tokens=8, seed=0),
    )
    pairs = preference_pairs(trajectories)
    assert pairs and all(p.chosen_token_ids is not None for p in pairs)
    sampled = {}
    for trajectory in trajectories:
        turn = trajectory.turns[0]
        sampled[tuple(turn.completion_token_ids)] = sum(turn.completion_logprobs)
    trainer = DPOTrainer(_config(tmp_path), model, tokenizer, pairs=pairs)
    for pair, (chosen, rejected) in zip(pairs, trainer.reference_logps.tolist(), strict=True):
        assert chosen == pytest.approx(sampled[tuple(pair.chosen_token_ids)], abs=1e-4)
        assert rejected == pytest.approx(sampled[tuple(pair.rejected_token_ids)], abs=1e-4)
        assert pair.chosen_reward > pair.rejected_reward


def test_train_dpo_cli_pairs_collected_rollouts_and_trains(tmp_path, capsys):
    """collect --keep all -> train-dpo -> a model directory, from the command line."""
    from rlenv.cli import main
    from rlenv.testing import tiny_chat_model

    model, tokenizer = tiny_chat_model()
    saved = tmp_path / "tiny"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    rollouts = tmp_path / "rollouts.jsonl"
    assert main(["collect", "tests/CountA-v0", "--model", str(saved), "-n", "4", "--samples", "4",
                 "--keep", "all", "--max-new-tokens", "6", "--out", str(rollouts)]) == 0  # fmt: skip
    out = tmp_path / "dpo"
    code = main(["train-dpo", str(rollouts), "--model", str(saved), "--steps", "2",
                 "--out", str(out), "--pairs-out", str(tmp_path / "pairs.jsonl"),
                 "--set", "progress=false", "--set", "precision=\"fp32\""])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "preference pairs from" in printed and "model:" in printed
    assert (out / "model" / "config.json").exists() and (tmp_path / "pairs.jsonl").exists()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [row["step"] for row in rows] == [1, 2]
    assert main(["train-dpo", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["train-dpo", str(rollouts), "--set", "beta=-1"]) == 2
