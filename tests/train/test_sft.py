"""The SFT trainer (rlenv.train.sft) and `rlenv train-sft`, on a tiny model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch
from conftest import frozen_base_weights, tiny_model_and_tokenizer

from rlenv.cli import main
from rlenv.models import load_model
from rlenv.rollout import SamplingParams, episodes, rollout, write_trajectories
from rlenv.rollout.transformers import TransformersPolicy
from rlenv.train.sft import SFTConfig, SFTTrainer, build_batch, chat_example, load_examples

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say a or b."},
    {"role": "assistant", "content": "aaaa"},
    {"role": "tool", "content": "bbbb"},
    {"role": "user", "content": "Say more."},
    {"role": "assistant", "content": "aaaa bbbb"},
]


def _config(tmp_path, **settings) -> SFTConfig:
    defaults = dict(out=str(tmp_path / "sft"), device="cpu", precision="fp32", progress=False,
                    plots=False, batch_size=4, micro_batch_size=2)  # fmt: skip
    return SFTConfig(**{**defaults, **settings})


def _trajectories(model, tokenizer, env_id: str = "tests/SayMore-v0", n: int = 3):
    policy = TransformersPolicy(model, tokenizer, device="cpu", name="tiny")
    params = SamplingParams(max_new_tokens=5, temperature=1.0, seed=0)
    return rollout(policy, episodes(env_id, n_tasks=n), params=params)


def test_episodes_that_never_started_are_skipped_with_a_warning(tmp_path, tiny, caplog):
    """``rlenv collect --keep all`` may write an episode whose served env failed at reset (no
    turns): nothing to learn, so it is skipped (counted in a warning), not an error that stops
    the whole file."""
    from types import SimpleNamespace

    from rlenv.remote import ServerUnreachableError
    from rlenv.rollout import EpisodeSpec
    from rlenv.rollout.collector import _reset_failed

    model, tokenizer = tiny
    played = _trajectories(model, tokenizer, n=2)
    gone = ServerUnreachableError("POST http://127.0.0.1:9/sessions failed: refused")
    lost = _reset_failed(EpisodeSpec("tests/SayMore-v0", seed=7), SimpleNamespace(name="p"), [gone])
    path = tmp_path / "all.jsonl"
    write_trajectories([played[0], lost, played[1]], path)
    with caplog.at_level("WARNING", logger="rlenv"):
        examples = load_examples([path], tokenizer)
    assert [e.token_ids for e in examples] == [t.token_sequence().token_ids for t in played]
    assert "skipped 1 episode(s) that never started" in caplog.text
    write_trajectories([lost], path)
    with pytest.raises(ValueError, match="no training examples"):
        load_examples([path], tokenizer)


def test_trajectory_examples_train_exactly_on_the_model_tokens(tmp_path, tiny):
    model, tokenizer = tiny
    trajectories = _trajectories(model, tokenizer)
    path = tmp_path / "kept.jsonl"
    write_trajectories(trajectories, path)
    examples = load_examples([path], tokenizer)
    batch = build_batch(examples, tokenizer.pad_token_id, max_length=4096)
    for row, (example, trajectory) in enumerate(zip(examples, trajectories, strict=True)):
        sequence = trajectory.token_sequence()
        assert example.token_ids == sequence.token_ids
        assert example.mask == sequence.mask
        n = len(sequence.token_ids)
        # the loss mask is shifted: position t scores token t + 1; padding never counts
        assert batch.mask[row, : n - 1].tolist() == [float(m) for m in sequence.mask[1:]]
        assert batch.mask[row, n - 1 :].sum() == 0
        assert 0 < sum(sequence.mask) < n  # multi-turn: env turns masked out


def test_chat_examples_mask_everything_but_assistant_turns(tiny):
    _, tokenizer = tiny
    example = chat_example(tokenizer, CHAT)
    trained = tokenizer.decode(
        [i for i, m in zip(example.token_ids, example.mask, strict=True) if m]
    )
    masked = tokenizer.decode(
        [i for i, m in zip(example.token_ids, example.mask, strict=True) if not m]
    )
    assert trained == "aaaa<|im_end|>aaaa bbbb<|im_end|>"
    assert "Be brief." in masked and "Say a or b." in masked and "Say more." in masked
    assert "bbbb" in masked  # the tool's message
    assert "aaaa" not in masked and masked.count("<|im_start|>assistant\n") == 2
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = [m for i, m in zip(example.token_ids, example.mask, strict=True) if i == end]
    assert ends == [0, 0, 1, 0, 0, 1]  # system, user, assistant, tool, user, assistant
    # the ids are what the chat template renders
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert tokenizer.decode(example.token_ids) == rendered.rstrip("\n")


def test_a_trajectory_without_token_ids_is_rendered_from_its_messages(tmp_path, tiny):
    model, tokenizer = tiny
    trajectory = _trajectories(model, tokenizer, "tests/CountA-v0", n=1)[0]
    for turn in trajectory.turns:  # as an OpenAI endpoint would have recorded it
        turn.prompt_token_ids = turn.completion_token_ids = turn.completion_logprobs = None
    path = tmp_path / "api.jsonl"
    write_trajectories([trajectory], path)
    (example,) = load_examples([path], tokenizer)
    assert example == chat_example(tokenizer, trajectory.messages)
    assert sum(example.mask) > 0


def test_bad_lines_name_the_file_and_line(tmp_path, tiny):
    _, tokenizer = tiny
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": CHAT}) + "\n" + json.dumps({"messages": CHAT[:2]}))
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_examples([path], tokenizer)


def test_sft_learns_a_tiny_dataset(tmp_path, tiny):
    model, tokenizer = tiny
    examples = [chat_example(tokenizer, CHAT[1:3]), chat_example(tokenizer, CHAT)]
    config = _config(tmp_path, steps=20, learning_rate=1e-2, batch_size=2, micro_batch_size=1)
    history = SFTTrainer(config, model, tokenizer, examples=examples).train()
    losses = [row["loss"] for row in history]
    assert losses[-1] < 0.3 * losses[0]
    assert all(row["tokens"] == sum(sum(e.mask[1:]) for e in examples) for row in history)
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").open()]
    assert [row["step"] for row in rows] == list(range(1, 21))
    assert {"loss", "tokens", "lr", "grad_norm", "time_step"} <= set(rows[0])


def test_lora_sft_trains_only_the_adapters_and_saves_a_merged_model(tmp_path):
    pytest.importorskip("peft")
    model, tokenizer = tiny_model_and_tokenizer()
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    examples = [chat_example(tokenizer, CHAT[1:3]), chat_example(tokenizer, CHAT)]
    config = _config(tmp_path, steps=20, learning_rate=1e-2, batch_size=2, micro_batch_size=1,
                     lora_rank=8)  # fmt: skip
    trainer = SFTTrainer(config, model, tokenizer, examples=examples)
    losses = [row["loss"] for row in trainer.train()]
    # the tiny model's frozen output layer (initialised at std 0.02) caps how far adapters
    # can move its logits, so the loss falls by a fraction of a nat, not by half
    assert losses[-1] < losses[0] - 0.3
    trained = dict(trainer.model.named_parameters())
    assert {n for n, p in trained.items() if p.requires_grad} == {
        n for n in trained if "lora_" in n
    }
    frozen = frozen_base_weights(trainer.model)
    assert all(torch.equal(frozen[name], value) for name, value in base.items())
    loaded, _ = load_model(str(trainer.save_model()))  # adapters merged: a plain model
    ids = torch.tensor([examples[1].token_ids])
    with torch.no_grad():
        assert torch.allclose(trainer.model.eval()(ids).logits, loaded(ids).logits, atol=1e-5)


def test_accumulation_gives_the_loss_of_one_big_batch(tmp_path):
    losses = []
    for micro in (1, 4):
        model, tokenizer = tiny_model_and_tokenizer()
        examples = [chat_example(tokenizer, CHAT[: 3 + i]) for i in range(4)]
        config = _config(tmp_path / str(micro), steps=1, micro_batch_size=micro)
        losses.append(SFTTrainer(config, model, tokenizer, examples=examples).train_step()["loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_resume_reproduces_the_next_step_exactly(tmp_path):
    def trainer():
        model, tokenizer = tiny_model_and_tokenizer()
        examples = [chat_example(tokenizer, CHAT[: 3 + i]) for i in range(4)]
        config = _config(tmp_path, steps=4, batch_size=3, micro_batch_size=2, warmup_steps=2,
                         learning_rate=1e-3)  # fmt: skip
        return SFTTrainer(config, model, tokenizer, examples=examples)

    first = trainer()
    first.train_step()
    first.train_step()
    checkpoint = first.save_checkpoint(tmp_path / "step2.pt")
    expected = first.train_step()

    resumed = trainer()
    resumed.load_checkpoint(checkpoint)
    assert resumed.step == 2
    assert resumed.train_step()["loss"] == expected["loss"]
    for a, b in zip(first.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_non_finite_loss_skips_the_step(tmp_path, tiny):
    model, tokenizer = tiny
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    config = _config(tmp_path, steps=1)
    before = model.model.embed_tokens.weight.clone()
    metrics = SFTTrainer(
        config, model, tokenizer, examples=[chat_example(tokenizer, CHAT)]
    ).train_step()
    assert metrics["skipped"] == "non-finite loss" and metrics["loss"] is None
    assert torch.equal(model.model.embed_tokens.weight, before)


def test_the_saved_model_loads_back_with_equal_logits(tmp_path, tiny):
    model, tokenizer = tiny
    config = _config(tmp_path, steps=1)
    trainer = SFTTrainer(config, model, tokenizer, examples=[chat_example(tokenizer, CHAT)])
    trainer.train()
    path = trainer.save_model()
    loaded, loaded_tokenizer = load_model(str(path))
    ids = torch.tensor([chat_example(tokenizer, CHAT).token_ids])
    with torch.no_grad():
        assert torch.allclose(trainer.model.eval()(ids).logits, loaded(ids).logits, atol=1e-6)
    assert loaded_tokenizer.chat_template == tokenizer.chat_template


def test_train_sft_cli_runs_end_to_end(tmp_path, capsys):
    model, tokenizer = tiny_model_and_tokenizer()
    base = tmp_path / "tiny"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": CHAT[: 3 + i]}) + "\n" for i in range(3)))
    kept = tmp_path / "kept.jsonl"
    assert main(["collect", "tests/CountA-v0", "--model", str(base), "-n", "2", "--samples", "2",
                 "--max-new-tokens", "4", "--keep", "all", "--out", str(kept)]) == 0  # fmt: skip
    out = tmp_path / "run"
    code = main(["train-sft", str(chat), str(kept), "--model", str(base), "--out", str(out),
                 "--steps", "2", "--set", "batch_size=4", "--set", "micro_batch_size=2",
                 "--set", "progress=false", "--set", 'device="cpu"', "--set",
                 'precision="fp32"'])  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [row["step"] for row in rows] == [1, 2]
    assert json.loads((out / "config.json").read_text())["data"] == [str(chat), str(kept)]
    assert (out / "checkpoint.pt").exists() and (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "model:" in capsys.readouterr().out
    trained = str(out / "model")
    # the SFT model is a warm start for evaluation and GRPO
    assert main(["eval", "tests/CountA-v0", "--model", trained, "-n", "2", "--max-new-tokens",
                 "4", "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    assert main(["train", "tests/CountA-v0", "--model", trained, "--steps", "1", "--out",
                 str(tmp_path / "grpo"), "--set", "prompts_per_step=1", "--set", "group_size=2",
                 "--set", "max_new_tokens=4", "--set", "eval_tasks=0", "--set", "progress=false",
                 "--set", 'device="cpu"', "--set", "plots=false",
                 "--set", "final_checkpoint=false"]) == 0  # fmt: skip
    # without the final checkpoint (1.6 GB for a 135M model) the metrics are still written
    assert (tmp_path / "grpo" / "metrics.jsonl").exists()
    assert not (tmp_path / "grpo" / "checkpoint.pt").exists()


def test_train_sft_cli_refuses_bad_input(tmp_path, capsys):
    assert main(["train-sft", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such data file" in capsys.readouterr().err
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": CHAT}) + "\n")
    assert main(["train-sft", str(data), "--set", "batch_size=0"]) == 2
    assert "bad training settings" in capsys.readouterr().err
    assert main(["train-sft", str(data), "--steps", "1", "--epochs", "1"]) == 2


def test_the_loss_is_the_mean_cross_entropy_of_the_assistant_tokens(tmp_path, tiny):
    model, tokenizer = tiny
    examples = [chat_example(tokenizer, CHAT), chat_example(tokenizer, CHAT[1:3])]
    ids = [torch.tensor(e.token_ids) for e in examples]
    with torch.no_grad():
        terms = []
        for tokens, example in zip(ids, examples, strict=True):
            logprobs = model(tokens[None]).logits[0, :-1].log_softmax(-1)
            picked = -logprobs.gather(-1, tokens[1:, None])[:, 0]
            terms += [x for x, m in zip(picked.tolist(), example.mask[1:], strict=True) if m]
    expected = sum(terms) / len(terms)
    config = _config(tmp_path, steps=1, batch_size=2, micro_batch_size=1)
    metrics = SFTTrainer(config, model, tokenizer, examples=examples).train_step()
    assert metrics["tokens"] == len(terms)
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)


def test_no_data_is_a_clear_error(tmp_path, tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="no training data"):
        SFTTrainer(_config(tmp_path), model, tokenizer)
