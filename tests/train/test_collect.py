"""Rejection sampling (rlenv.train.collect) and `rlenv collect`."""

from __future__ import annotations

import pytest

import rlenv
from rlenv.chat import message_text
from rlenv.evaluation import passed
from rlenv.rollout import ScriptedPolicy, episodes, read_trajectories
from rlenv.train.collect import collect


def _gold_answers(n: int) -> dict[str, str]:
    """Each Arithmetic task's user prompt -> its gold action, for seeds 0..n-1."""
    env = rlenv.make("rlenv/Arithmetic-v0")
    answers = {}
    for seed in range(n):
        observation, _ = env.reset(seed=seed)
        answers[message_text(observation[-1])] = env.gold_action()
    return answers


def _half_right_policy(n: int) -> tuple[ScriptedPolicy, set[str]]:
    """Right on the tasks of even seeds, wrong on the others."""
    answers = _gold_answers(n)
    right = {prompt for index, prompt in enumerate(answers) if index % 2 == 0}

    def respond(conversation) -> str:
        prompt = message_text(conversation[-1])
        return answers[prompt] if prompt in right else "not a number"

    return ScriptedPolicy(respond), right


def test_collect_keeps_only_the_passed_episodes():
    policy, right = _half_right_policy(6)
    result = collect(policy, episodes("rlenv/Arithmetic-v0", n_tasks=6, group_size=2))
    assert len(result.sampled) == 12
    assert len(result.kept) == 6
    assert all(passed(t) for t in result.kept)
    assert {message_text(t.messages[-2]) for t in result.kept} == right
    coverage = result.coverage()
    assert [kept for _, _, kept, _ in coverage] == [2, 0, 2, 0, 2, 0]
    assert all(total == 2 for _, _, _, total in coverage)
    assert result.tasks_covered == 3

    everything = collect(
        policy, episodes("rlenv/Arithmetic-v0", n_tasks=6, group_size=2), keep="all"
    )
    assert len(everything.kept) == 12
    with pytest.raises(ValueError, match="keep"):
        collect(policy, [], keep="best")  # type: ignore[arg-type]


def test_collect_cli_writes_the_kept_trajectories(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from conftest import tiny_model_and_tokenizer

    from rlenv.cli import main

    model, tokenizer = tiny_model_and_tokenizer()
    path = tmp_path / "tiny"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    out = tmp_path / "kept.jsonl"
    code = main(["collect", "tests/CountA-v0", "--model", str(path), "-n", "3", "--samples", "2",
                 "--max-new-tokens", "4", "--keep", "all", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert (
        "kept 6 of 6 episodes (all)" in printed and "tasks with a kept episode: 3 of 3" in printed
    )
    kept = list(read_trajectories(out))
    assert len(kept) == 6
    assert all(t.token_sequence().mask for t in kept)  # exact ids, ready for train-sft

    assert main(["collect", "tests/CountA-v0", "--model", str(path), "-n", "2", "--samples", "1",
                 "--max-new-tokens", "4", "--out", str(out)]) == 0  # fmt: skip
    assert "of 2 episodes (passed)" in capsys.readouterr().out
    assert main(["collect", "rlenv/Nope-v0", "--model", str(path)]) == 2
