"""Rejection sampling (rlenv.train.collect) and `rlenv collect`."""

from __future__ import annotations

import pytest
from sample_envs import EchoWord

import rlenv
from rlenv.chat import message_text
from rlenv.evaluation import passed
from rlenv.rollout import ScriptedPolicy, episodes, read_trajectories
from rlenv.train.collect import GOLD_POLICY, collect, demonstrations


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
                 "--max-new-tokens", "4", "--out", str(out), "--force"]) == 0  # fmt: skip
    assert "of 2 episodes (passed)" in capsys.readouterr().out
    assert main(["collect", "rlenv/Nope-v0", "--model", str(path)]) == 2


class _NoGold(EchoWord):
    def gold_action(self) -> None:
        return None


class _WrongGold(EchoWord):
    def gold_action(self) -> str:
        return "not the word"


rlenv.register("rlenvtest/NoGold-v0", _NoGold)
rlenv.register("rlenvtest/WrongGold-v0", _WrongGold)


def test_demonstrations_play_the_gold_action_through_every_turn():
    arithmetic = demonstrations(episodes("rlenv/Arithmetic-v0", n_tasks=5, seed=3))
    assert len(arithmetic.kept) == len(arithmetic.sampled) == 5
    assert [t.seed for t in arithmetic.kept] == [3, 4, 5, 6, 7]
    answers = _gold_answers(8)
    for trajectory in arithmetic.kept:
        assert trajectory.policy == GOLD_POLICY and passed(trajectory)
        prompt, reply = trajectory.messages[-2:]
        assert reply["role"] == "assistant"
        assert message_text(reply) == answers[message_text(prompt)]
        assert trajectory.turns[0].completion_token_ids is None  # nothing was sampled

    countdown = demonstrations(episodes("rlenvtest/Countdown-v0", n_tasks=2))
    assert all(passed(t) for t in countdown.kept) and len(countdown.kept) == 2
    assert [turn.completion for turn in countdown.kept[0].turns] == ["3", "2", "1"]
    assert [m["role"] for m in countdown.kept[0].messages].count("assistant") == 3

    # the same seeds give the same demonstrations
    again = demonstrations(episodes("rlenv/Arithmetic-v0", n_tasks=5, seed=3))
    assert [t.to_json() for t in again.kept] == [t.to_json() for t in arithmetic.kept]


def test_demonstrations_drop_episodes_without_a_passing_gold_action():
    seen = []
    none = demonstrations(episodes("rlenvtest/NoGold-v0", n_tasks=3), on_episode=seen.append)
    assert len(none.sampled) == 3 and none.kept == [] and len(seen) == 3
    assert all(t.turns == [] and not t.terminated for t in none.sampled)
    wrong = demonstrations(episodes("rlenvtest/WrongGold-v0", n_tasks=3))
    assert len(wrong.sampled) == 3 and wrong.kept == []
    assert all(t.reward == 0.0 for t in wrong.sampled)


def test_collect_cli_gold_writes_demonstrations_sft_can_read(tmp_path, capsys):
    pytest.importorskip("transformers")
    from conftest import tiny_model_and_tokenizer

    from rlenv.cli import main
    from rlenv.train.sft import load_examples

    out = tmp_path / "gold.jsonl"
    code = main(["collect", "rlenv/Arithmetic-v0", "--gold", "-n", "4", "--samples", "3",
                 "-k", "difficulty=1", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "kept 4 of 4 episodes (passed)" in printed  # one per task: gold play is deterministic
    kept = list(read_trajectories(out))
    assert [t.seed for t in kept] == [0, 1, 2, 3] and all(passed(t) for t in kept)

    _, tokenizer = tiny_model_and_tokenizer()
    examples = load_examples([out], tokenizer)
    assert len(examples) == 4
    for example, trajectory in zip(examples, kept, strict=True):
        trained = tokenizer.decode(
            [i for i, m in zip(example.token_ids, example.mask, strict=True) if m]
        )
        assert trajectory.turns[0].completion in trained  # the loss is on the gold reply
        assert message_text(trajectory.messages[0]) not in trained  # not on the prompt

    assert main(["collect", "rlenv/Arithmetic-v0", "--gold", "--base-url", "http://x"]) == 2
    assert main(["collect", "rlenv/Arithmetic-v0"]) == 2  # --model or --gold
