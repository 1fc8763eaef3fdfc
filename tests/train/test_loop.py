"""The one training loop (rlenv.train._runtime.Trainer) under GRPO, SFT and DPO: skipped
non-finite steps, gradient accumulation, learning-rate schedules, resuming, the saved model."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import tiny_model_and_tokenizer  # noqa: E402

from rlenv.train import GRPOConfig, GRPOTrainer  # noqa: E402
from rlenv.train._runtime import ConfigChangedOnResume, config_changes, lr_factor  # noqa: E402
from rlenv.train.dpo import DPOConfig, DPOTrainer, PreferencePair  # noqa: E402
from rlenv.train.sft import SFTConfig, SFTTrainer, chat_example  # noqa: E402

PROMPT = [{"role": "user", "content": "Say a or b."}]
COMMON = dict(device="cpu", precision="fp32", progress=False, plots=False, learning_rate=1e-3)


def _sft(tmp_path, **settings) -> SFTTrainer:
    model, tokenizer = tiny_model_and_tokenizer()
    examples = [
        chat_example(tokenizer, [*PROMPT, {"role": "assistant", "content": "a" * (i + 1)}])
        for i in range(4)
    ]
    config = SFTConfig(**{**COMMON, "out": str(tmp_path / "sft"), "steps": 2, "batch_size": 4,
                          "micro_batch_size": 2, "warmup_steps": 0, **settings})  # fmt: skip
    return SFTTrainer(config, model, tokenizer, examples=examples)


def _dpo(tmp_path, **settings) -> DPOTrainer:
    model, tokenizer = tiny_model_and_tokenizer()
    render = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(render, add_special_tokens=False)["input_ids"]

    def ids(text: str) -> list[int]:
        return tokenizer(text + "<|im_end|>", add_special_tokens=False)["input_ids"]

    pairs = [
        PreferencePair(prompt=PROMPT, chosen="a" * (i + 1), rejected="b" * (i + 1),
                       prompt_token_ids=prompt_ids, chosen_token_ids=ids("a" * (i + 1)),
                       rejected_token_ids=ids("b" * (i + 1)))
        for i in range(4)
    ]  # fmt: skip
    config = DPOConfig(**{**COMMON, "out": str(tmp_path / "dpo"), "steps": 2, "batch_size": 4,
                          "micro_batch_size": 2, "beta": 0.5, **settings})  # fmt: skip
    return DPOTrainer(config, model, tokenizer, pairs=pairs)


def _grpo(tmp_path, **settings) -> GRPOTrainer:
    model, tokenizer = tiny_model_and_tokenizer()
    config = GRPOConfig(**{
        **COMMON, "out": str(tmp_path / "grpo"), "env_id": "tests/CountA-v0", "steps": 2,
        "prompts_per_step": 2, "group_size": 4, "max_new_tokens": 8, "warmup_steps": 0,
        "eval_tasks": 0, "truncation": "none", "skip_zero_advantage": False, **settings,
    })  # fmt: skip
    return GRPOTrainer(config, model, tokenizer)


TRAINERS = {"grpo": _grpo, "sft": _sft, "dpo": _dpo}


def _parameters(trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def _rows(trainer) -> list[dict]:
    return [json.loads(line) for line in (trainer.out / "metrics.jsonl").open()]


# ------------------------------------------------------------------------ non-finite steps


def _poison_forever(kind: str, trainer, monkeypatch) -> None:
    """Every step's loss is NaN, by means that exist before and after the shared loop."""
    if kind == "sft":
        with torch.no_grad():
            trainer.model.lm_head.weight[0, 0] = float("nan")
    elif kind == "dpo":
        trainer.reference_logps[:] = float("nan")
    else:
        import rlenv.train.grpo as grpo

        real = grpo.aggregate
        monkeypatch.setattr(grpo, "aggregate", lambda *a, **k: real(*a, **k) * float("nan"))


@pytest.mark.parametrize("kind", TRAINERS)
def test_a_run_of_skipped_steps_with_the_progress_bar_on_does_not_crash(kind, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    """SFT and DPO used to format the loss of a skipped step (None) for the progress bar."""
    pytest.importorskip("tqdm")
    trainer = TRAINERS[kind](tmp_path, progress=True)
    _poison_forever(kind, trainer, monkeypatch)
    before = _parameters(trainer)
    history = trainer.train()
    assert len(history) == 2 and all("non-finite loss" in row["skipped"] for row in history)
    assert all(row["loss"] is None and row["grad_norm"] is None for row in history)
    assert [row["skipped"] for row in _rows(trainer)] == [row["skipped"] for row in history]
    if kind == "sft":  # the poisoned weight itself is NaN; every other weight is untouched
        before, after = before[:-1], _parameters(trainer)[:-1]
    else:
        after = _parameters(trainer)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("what", ["loss", "gradient"])
@pytest.mark.parametrize("kind", TRAINERS)
def test_a_non_finite_step_is_skipped_and_recorded_and_the_next_one_trains(kind, what,
                                                                          tmp_path):  # fmt: skip
    trainer = TRAINERS[kind](tmp_path, warmup_steps=3)
    poisoned = {"on": True}
    if what == "loss":
        real_loss = trainer.loss

        def loss(part):
            value, metrics = real_loss(part)
            return (value * float("nan") if poisoned["on"] else value), metrics

        trainer.loss = loss
        reason = "non-finite loss"
    else:
        weight = next(p for p in trainer.model.parameters() if p.requires_grad)
        weight.register_hook(lambda g: g * float("inf") if poisoned["on"] else g)
        reason = "non-finite gradient norm"
    start = _parameters(trainer)
    first = trainer.train_step()
    assert reason in first["skipped"]
    assert first["loss"] is None and first["grad_norm"] is None
    assert all(torch.equal(a, b) for a, b in zip(start, _parameters(trainer), strict=True))
    assert not trainer.optimizer.state  # AdamW's moments never saw the bad gradient
    assert all(p.grad is None for p in trainer.model.parameters())
    poisoned["on"] = False
    second = trainer.train_step()
    # the skipped step still counted: the schedule moved on to step 2's warm-up rate
    assert (first["lr"], second["lr"]) == pytest.approx((1e-3 / 4, 2e-3 / 4))
    assert second["skipped"] is None and math.isfinite(second["loss"])
    assert second["grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(start, _parameters(trainer), strict=True))


# ---------------------------------------------------------------------------- accumulation


@pytest.mark.parametrize("kind", TRAINERS)
def test_accumulation_gives_the_update_of_one_big_batch(kind, tmp_path):
    """The gradient the optimizer steps on (compared before AdamW, which divides a near-zero
    gradient by its own size and so magnifies rounding)."""
    results = []
    for micro in (1, 4):
        trainer = TRAINERS[kind](tmp_path / str(micro), micro_batch_size=micro, steps=1)
        gradients = []
        real_step = trainer.optimizer.step

        def step(*args, trainer=trainer, real_step=real_step, gradients=gradients, **kwargs):
            gradients.extend(p.grad.clone() for p in trainer.model.parameters())
            return real_step(*args, **kwargs)

        trainer.optimizer.step = step
        results.append((trainer.train_step(), gradients))
    (small, small_grads), (big, big_grads) = results
    assert small["loss"] == pytest.approx(big["loss"], rel=1e-5, abs=1e-7)
    assert small["grad_norm"] == pytest.approx(big["grad_norm"], rel=1e-4)
    assert small["grad_norm"] > 0 and len(small_grads) == len(big_grads) > 0
    for a, b in zip(small_grads, big_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


# -------------------------------------------------------------------------------- schedules


def test_learning_rate_factors_on_hand_computed_values():
    warm = dict(total=10, warmup=2, min_ratio=0.1)
    for schedule in ("constant", "linear", "cosine"):  # the same warm-up for every schedule
        assert lr_factor(0, schedule=schedule, **warm) == pytest.approx(1 / 3)
        assert lr_factor(1, schedule=schedule, **warm) == pytest.approx(2 / 3)
        assert lr_factor(2, schedule=schedule, **warm) == 1.0
    assert lr_factor(9, schedule="constant", **warm) == 1.0
    # linear: 0.1 + 0.9 * (1 - p), p = (step - 2) / 8
    assert lr_factor(6, schedule="linear", **warm) == pytest.approx(0.55)
    assert lr_factor(9, schedule="linear", **warm) == pytest.approx(0.1 + 0.9 / 8)
    # cosine: 0.1 + 0.9 * (1 + cos(pi p)) / 2; halfway it equals the linear one
    assert lr_factor(6, schedule="cosine", **warm) == pytest.approx(0.55)
    assert lr_factor(9, schedule="cosine", **warm) == pytest.approx(0.134254, abs=1e-6)
    assert lr_factor(10, schedule="cosine", **warm) == pytest.approx(0.1)  # the end
    assert lr_factor(4, total=4, schedule="linear") == 0.0  # min_ratio 0 by default
    # the warm-up the trainers always had: (step + 1) / (warmup + 1), then constant
    assert [lr_factor(s, total=5, warmup=3) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor(5, total=10, schedule="step")


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_each_step_trains_at_its_scheduled_rate(schedule, tmp_path):
    trainer = _sft(tmp_path, steps=6, warmup_steps=2, lr_schedule=schedule, min_lr_ratio=0.1)
    used = []
    real_step = trainer.optimizer.step

    def step(*args, **kwargs):
        used.append(trainer.optimizer.param_groups[0]["lr"])
        return real_step(*args, **kwargs)

    trainer.optimizer.step = step
    history = trainer.train()
    expected = [
        1e-3 * lr_factor(s, total=6, warmup=2, schedule=schedule, min_ratio=0.1) for s in range(6)
    ]
    assert used == pytest.approx(expected) and [row["lr"] for row in history] == used
    assert used[2] == pytest.approx(1e-3) and used[-1] < 0.35e-3  # decaying towards 1e-4


# ---------------------------------------------------------------------------------- resuming


def test_a_resumed_run_refuses_changed_settings_and_names_them(tmp_path):
    original = _sft(tmp_path, steps=3, warmup_steps=1)
    original.train_step()
    checkpoint = original.save_checkpoint(tmp_path / "step1.pt")
    expected = original.train_step()

    changed = _sft(tmp_path, steps=3, warmup_steps=1, learning_rate=5e-4, weight_decay=0.1)
    untouched = _parameters(changed)
    with pytest.raises(ConfigChangedOnResume) as error:
        changed.load_checkpoint(checkpoint)
    message = str(error.value)
    assert "learning_rate (0.001 -> 0.0005)" in message and "weight_decay (0.0 -> 0.1)" in message
    assert "force=True" in message and "--force-resume" in message
    assert set(error.value.changed) == {"learning_rate", "weight_decay"}
    assert isinstance(error.value, ValueError)
    assert changed.step == 0  # nothing was loaded
    assert all(torch.equal(a, b) for a, b in zip(untouched, _parameters(changed), strict=True))

    # steps, output, logging and how the batch is split may change: same next step
    same = _sft(tmp_path / "elsewhere", steps=5, warmup_steps=1, micro_batch_size=1,
                progress=True, save_every=2)  # fmt: skip
    same.load_checkpoint(checkpoint)
    again = same.train_step()
    assert again["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert again["lr"] == expected["lr"]

    # force: resumed with the new settings, which apply from the next step
    forced = _sft(tmp_path, steps=3, warmup_steps=1, learning_rate=5e-4, weight_decay=0.1)
    forced.load_checkpoint(checkpoint, force=True)
    assert forced.step == 1
    assert forced.optimizer.param_groups[0]["weight_decay"] == 0.1
    assert forced.train_step()["lr"] == 5e-4  # warm-up over: the new rate


def test_settings_a_checkpoint_predates_count_as_their_defaults():
    config = SFTConfig(data=["x.jsonl"], learning_rate=1e-3)
    saved = config.model_dump()
    del saved["lr_schedule"], saved["min_lr_ratio"]  # written before these settings existed
    saved["a_setting_since_removed"] = 1
    assert config_changes(saved, config) == {}
    assert config_changes(saved, config.model_copy(update={"lr_schedule": "cosine"})) == {
        "lr_schedule": ("constant", "cosine")
    }
    assert config_changes(saved, config.model_copy(update={"steps": 9, "out": "x"})) == {}


# ------------------------------------------------------------------------ what a run leaves


@pytest.mark.parametrize("kind", TRAINERS)
def test_every_trainer_saves_its_model_at_the_end_unless_told_not_to(kind, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    trainer = TRAINERS[kind](tmp_path, steps=1, plots=True)
    saves = []
    real = type(trainer.model).save_pretrained
    monkeypatch.setattr(type(trainer.model), "save_pretrained",
                        lambda model, path, **k: saves.append(path) or real(model, path, **k))  # fmt: skip
    trainer.train()
    assert (trainer.out / "model" / "config.json").exists()
    assert (trainer.out / "checkpoint.pt").exists() and (trainer.out / "config.json").exists()
    assert trainer.save_model() == trainer.out / "model" and len(saves) == 1  # not twice
    assert [row["step"] for row in _rows(trainer)] == [1]
    pytest.importorskip("matplotlib")
    assert (trainer.out / "curves.png").exists()

    bare = TRAINERS[kind](tmp_path / "bare", steps=1, final_model=False, final_checkpoint=False)
    bare.train()
    assert not (bare.out / "model").exists() and not (bare.out / "checkpoint.pt").exists()
