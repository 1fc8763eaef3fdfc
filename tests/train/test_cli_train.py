"""`rlenv train` and `rlenv demo` from the command line, on a tiny saved model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import tiny_model_and_tokenizer

from rlenv.cli import main


@pytest.fixture
def saved_model(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    path = tmp_path / "tiny"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_train_runs_from_a_toml_config_with_overrides(tmp_path, saved_model, capsys):
    config = tmp_path / "grpo.toml"
    config.write_text(
        "steps = 1\nprompts_per_step = 2\ngroup_size = 4\nmax_new_tokens = 6\n"
        'eval_tasks = 3\nprogress = false\nprecision = "fp32"\ndevice = "cpu"\n'
    )
    out = tmp_path / "run"
    code = main(["train", "tests/CountA-v0", "--model", saved_model, "--config", str(config),
                 "--set", "learning_rate=1e-3", "--steps", "2", "--out", str(out)])  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [row["step"] for row in rows] == [0, 1, 2]
    assert "eval_greedy_accuracy" in rows[-1]
    saved = json.loads((out / "config.json").read_text())
    assert saved["learning_rate"] == 1e-3 and saved["steps"] == 2
    assert (out / "checkpoint.pt").exists() and (out / "model" / "config.json").exists()
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "model:" in capsys.readouterr().out

    # resuming a finished run trains nothing more and keeps the step count
    resume = ["train", "tests/CountA-v0", "--model", saved_model, "--config", str(config),
              "--steps", "2", "--out", str(out), "--resume", str(out / "checkpoint.pt")]  # fmt: skip
    assert main([*resume, "--set", "learning_rate=1e-3"]) == 0
    # with another learning rate it is refused, naming the setting and the way out
    assert main(resume) == 2
    error = capsys.readouterr().err
    assert "learning_rate (0.001 -> 2e-05)" in error and "--force-resume" in error
    assert main([*resume, "--force-resume"]) == 0


def test_train_refuses_bad_settings_and_unknown_envs(capsys, tmp_path):
    assert main(["train", "rlenv/Nope-v0"]) == 2
    assert "no text environment" in capsys.readouterr().err
    assert main(["train", "rlenv/Arithmetic-v0", "--set", "loss_aggregation=mean"]) == 2
    assert "bad training settings" in capsys.readouterr().err
    assert main(["train", "rlenv/Arithmetic-v0", "--set", "nonsense"]) == 2


def test_demo_evaluates_trains_and_reports_before_and_after(tmp_path, saved_model, monkeypatch,
                                                            capsys):  # fmt: skip
    """The demo's code path on a tiny model (the real demo takes 10 minutes with SmolLM2)."""
    from rlenv.train import demo

    tiny = demo.DEMO_CONFIG.model_copy(
        update=dict(
            env_id="tests/CountA-v0", env_kwargs={}, model=saved_model, prompts_per_step=2,
            group_size=4, max_new_tokens=6, eval_tasks=4, eval_every=1, precision="fp32",
            device="cpu", progress=False,
        )
    )  # fmt: skip
    monkeypatch.setattr(demo, "DEMO_CONFIG", tiny)
    assert main(["demo", "--steps", "2", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "before    after" in out and "sampled (T=1)" in out and "greedy" in out
    rows = [json.loads(line) for line in (tmp_path / "demo" / "metrics.jsonl").open()]
    assert [row["step"] for row in rows] == [0, 1, 2]
    assert (tmp_path / "demo" / "curves.png").exists()
