"""The parse-error policy: what episodes with a malformed tool call do to GRPO's loss and to DPO's
pairs (``parse_error`` = keep / mask / zero), checked on the batch the trainer builds."""

from __future__ import annotations

import json
import math
import statistics

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import tiny_model_and_tokenizer  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from rlenv import GeneratedTasks, Task, Verdict, register, unregister  # noqa: E402
from rlenv.cli import main  # noqa: E402
from rlenv.evaluation import outcome_reason  # noqa: E402
from rlenv.rollout import Completion, Policy, Trajectory, TurnRecord  # noqa: E402
from rlenv.tools import ToolEnv, tool  # noqa: E402
from rlenv.train import GRPOConfig, GRPOTrainer  # noqa: E402
from rlenv.train.algorithm import parse_error_rewards  # noqa: E402
from rlenv.train.dpo import DPOConfig, preference_pairs  # noqa: E402
from rlenv.train.grpo import parse_errors, sample_rewards  # noqa: E402

ENV_ID = "tests/SubmitSeven-v0"


@tool
def submit(answer: int) -> str:
    """Submit the answer.

    Args:
        answer: The number.
    """
    return "right" if answer == 7 else "wrong"


class SubmitSeven(ToolEnv):
    """Call submit(7) within two turns: reward 1; any other answer: 0."""

    finish_tool = "submit"
    max_turns = 2

    def load_tools(self):
        return [submit]

    def load_tasks(self):
        return GeneratedTasks(lambda rng: Task(prompt="Say a or b. Submit 7.", answer=7))

    def grade(self, answer):
        return float(bool(self.trace) and self.trace[-1].content == "right")


@pytest.fixture(scope="module", autouse=True)
def submit_env():
    register(ENV_ID, SubmitSeven)
    yield
    unregister(ENV_ID)


def _call(label: int, answer: int) -> str:
    body = json.dumps({"name": "submit", "arguments": {"answer": answer}})
    return f"[{label}] <tool_call>\n{body}\n</tool_call>"


def _broken(label: int) -> str:
    return f'[{label}] <tool_call>\n{{"name": "submit", "arguments": {{"answer": }}\n</tool_call>'


# The four samples of one task, turn by turn:
SCRIPT = {
    0: [_call(0, 7)],  # right at once: reward 1, well formed
    1: [_broken(1), _call(1, 7)],  # malformed, then right: reward 1, one parse error
    2: [_call(2, 3)],  # wrong answer: reward 0, well formed
    3: [_broken(3), _broken(3)],  # malformed twice: truncated, reward 0, stop "parse error"
}
RAW_REWARDS = [1.0, 1.0, 0.0, 0.0]
MALFORMED = [False, True, False, True]


class ScriptedTokenPolicy(Policy):
    """Plays SCRIPT with exact, prefix-extending token ids (as a token-faithful engine does), so
    the GRPO trainer builds its batch from them. A sample is known by the ``[label]`` its first
    turn wrote; on the first turn, by its place in the batch."""

    name = "scripted-tokens"
    supports_prefixes = True

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, conversations, tools, params, prefixes=None):
        completions = []
        for index, (conversation, prefix) in enumerate(zip(conversations, prefixes, strict=True)):
            said = [m["content"] for m in conversation if m["role"] == "assistant"]
            label = int(said[0][1]) if said else index
            text = SCRIPT[label][len(said)]
            if prefix is None:
                prompt = self._ids(conversation[-1]["content"])
            else:
                prompt = prefix + self._ids(conversation[-1]["content"])
            generated = self._ids(text)
            completions.append(
                Completion(
                    text=text,
                    prompt_token_ids=prompt,
                    completion_token_ids=generated,
                    logprobs=[0.0] * len(generated),
                    finish_reason="stop",
                )
            )
        return completions


def _advantages(rewards):
    """GRPO's group advantage computed by hand: (r - mean) / (sample std + 1e-4) over the
    rewards that are not None; None gets 0."""
    values = [r for r in rewards if r is not None]
    mean, std = statistics.mean(values), statistics.stdev(values)
    return [0.0 if r is None else (r - mean) / (std + 1e-4) for r in rewards]


def _step(tmp_path, **settings):
    """One GRPO step on SCRIPT; returns the batch handed to the update, its metrics and the
    trajectories sampled."""
    model, tokenizer = tiny_model_and_tokenizer()
    config = GRPOConfig(
        env_id=ENV_ID, out=str(tmp_path / "run"), steps=1, prompts_per_step=1, group_size=4,
        max_new_tokens=64, eval_tasks=0, progress=False, plots=False, precision="fp32",
        device="cpu", truncation="none", warmup_steps=0, share_prompt_prefix=False, **settings,
    )  # fmt: skip
    trainer = GRPOTrainer(config, model, tokenizer)
    trainer.policy = ScriptedTokenPolicy(tokenizer)
    seen: dict = {}
    update, sample = trainer._update, trainer._sample_groups

    def keep_batch(batch):
        seen["batch"] = batch
        return update(batch)

    def keep_trajectories():
        trajectories, info = sample()
        seen["trajectories"] = trajectories
        return trajectories, info

    trainer._update, trainer._sample_groups = keep_batch, keep_trajectories
    metrics = trainer.train_step()
    return seen["batch"], metrics, seen["trajectories"]


# ------------------------------------------------------------------------------ the rule itself


def test_parse_error_rewards_on_hand_values():
    rewards = [1.0, 1.0, 0.0, None, 0.5]
    flags = [False, True, True, True, False]
    assert parse_error_rewards(rewards, flags, "keep") == rewards
    assert parse_error_rewards(rewards, flags, "mask") == [1.0, None, None, None, 0.5]
    assert parse_error_rewards(rewards, flags, "zero") == [1.0, 0.0, 0.0, None, 0.5]
    assert parse_error_rewards(rewards, flags, "zero", reward=-1) == [1.0, -1.0, -1.0, None, 0.5]
    with pytest.raises(ValueError, match="'keep', 'mask' or 'zero'"):
        parse_error_rewards(rewards, flags, "drop")
    with pytest.raises(ValueError, match="same length"):
        parse_error_rewards(rewards, flags[:2], "mask")


# ------------------------------------------------------------------------- GRPO, end to end


def test_the_scripted_episodes_are_what_the_policies_are_tested_on(tmp_path):
    _, metrics, trajectories = _step(tmp_path)
    assert [t.reward for t in trajectories] == RAW_REWARDS
    assert [parse_errors(t) > 0 for t in trajectories] == MALFORMED
    assert [parse_errors(t) for t in trajectories] == [0, 1, 0, 2]
    last = trajectories[3]
    assert last.truncated and last.final_verdict.error.startswith("parse error: tool call 1:")
    assert outcome_reason(last) == "parse error"
    assert metrics["frac_parse_error"] == 0.5 and metrics["parse_errors"] == 3
    assert metrics["unscored"] == 0


def test_keep_changes_nothing(tmp_path):
    batch, _, trajectories = _step(tmp_path, parse_error="keep")
    assert batch.advantages.tolist() == pytest.approx(_advantages(RAW_REWARDS), abs=1e-6)
    assert batch.advantages[1] > 0  # the malformed-then-right sample is rewarded like sample 0
    for row, trajectory in enumerate(trajectories):
        generated = sum(len(turn.completion_token_ids) for turn in trajectory.turns)
        assert batch.mask[row].sum().item() == generated


def test_mask_gives_malformed_episodes_no_weight_and_no_place_in_the_baseline(tmp_path):
    batch, metrics, trajectories = _step(tmp_path, parse_error="mask")
    # masked episodes are out of the group's mean and std: the baseline is samples 0 and 2
    expected = _advantages([1.0, None, 0.0, None])
    assert batch.advantages.tolist() == pytest.approx(expected, abs=1e-6)
    assert expected[0] == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-4))  # by hand
    for row, trajectory in enumerate(trajectories):
        generated = sum(len(turn.completion_token_ids) for turn in trajectory.turns)
        weight = batch.mask[row].sum().item()
        assert weight == (0 if MALFORMED[row] else generated), row
    # the loss's normaliser counts only the well-formed episodes' tokens
    kept = [t for t, bad in zip(trajectories, MALFORMED, strict=True) if not bad]
    assert metrics["loss_tokens"] == sum(len(x.completion_token_ids) for t in kept for x in t.turns)
    assert metrics["trained_sequences"] == 2
    assert metrics["reward_mean"] == 0.5  # over the rewards the advantages saw


def test_zero_sets_the_reward_and_the_advantage_pushes_away(tmp_path):
    batch, _, _ = _step(tmp_path, parse_error="zero")
    expected = _advantages([1.0, 0.0, 0.0, 0.0])
    assert batch.advantages.tolist() == pytest.approx(expected, abs=1e-6)
    assert batch.advantages[1] < 0 < batch.advantages[0]  # recovered, but malformed: pushed down
    assert all(batch.mask[row].sum() > 0 for row in range(4))  # every episode is trained on


def test_zero_with_a_penalty_reward(tmp_path):
    batch, metrics, _ = _step(tmp_path, parse_error="zero", parse_error_reward=-1.0)
    expected = _advantages([1.0, -1.0, 0.0, -1.0])
    assert batch.advantages.tolist() == pytest.approx(expected, abs=1e-6)
    assert batch.advantages[3] < 0 < batch.advantages[2]  # below the wrong-but-formed answer
    assert metrics["accuracy"] == 0.5  # accuracy stays the environment's own


def test_sample_rewards_leave_an_unscored_episode_unscored_under_every_policy():
    def episode(scored: bool, malformed: int) -> Trajectory:
        verdict = Verdict(reward=1.0, scored=scored, parse_errors=malformed)
        turn = TurnRecord(reward=1.0, verdict=verdict, completion="x")
        return Trajectory(env_id=ENV_ID, task_id="t", seed=0, messages=[], turns=[turn],
                          reward=1.0, terminated=True, truncated=False)  # fmt: skip

    batch = [episode(False, 1), episode(True, 1), episode(True, 0)]
    for policy, malformed_reward in (("keep", 1.0), ("mask", None), ("zero", 0.0)):
        config = GRPOConfig(parse_error=policy)
        assert sample_rewards(batch, config) == [None, malformed_reward, 1.0]


# ------------------------------------------------------------------------------ config and CLI


def test_the_default_is_keep_and_a_bad_value_names_the_choices():
    assert GRPOConfig().parse_error == "keep" and GRPOConfig().parse_error_reward == 0.0
    with pytest.raises(ValidationError, match="'keep', 'mask' or 'zero'"):
        GRPOConfig(parse_error="drop")
    with pytest.raises(ValueError, match="'keep', 'mask' or 'zero'"):
        GRPOConfig().with_overrides(["parse_error=drop"])
    with pytest.raises(ValidationError, match="parse_error_reward"):
        GRPOConfig(parse_error_reward=float("nan"))
    assert GRPOConfig().with_overrides(["parse_error=mask"]).parse_error == "mask"
    with pytest.raises(ValidationError, match="'keep', 'mask' or 'zero'"):
        DPOConfig(parse_error="Mask")


def test_the_cli_flag_reaches_the_config(monkeypatch, capsys):
    import rlenv.cli.train as cli
    import rlenv.train.dpo as dpo
    import rlenv.train.grpo as grpo

    made = []

    class Stub:
        def __init__(self, config, *args, **kwargs):
            self.pairs = []
            made.append(config)

    monkeypatch.setattr(grpo, "GRPOTrainer", Stub)
    monkeypatch.setattr(dpo, "DPOTrainer", Stub)
    monkeypatch.setattr(cli, "_run", lambda trainer, args, **kwargs: 0)
    assert main(["train", ENV_ID, "--parse-error", "mask"]) == 0
    assert made[-1].parse_error == "mask"
    # the flag wins over --set, as --steps does
    assert main(["train", ENV_ID, "--set", "parse_error=keep", "--parse-error", "zero",
                 "--set", "parse_error_reward=-0.5"]) == 0  # fmt: skip
    assert (made[-1].parse_error, made[-1].parse_error_reward) == ("zero", -0.5)
    assert main(["train", ENV_ID]) == 0 and made[-1].parse_error == "keep"
    assert main(["train", ENV_ID, "--parse-error", "drop"]) == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'drop'" in error and all(c in error for c in ("keep", "mask", "zero"))
    assert main(["train", ENV_ID, "--set", "parse_error=drop"]) == 2
    error = capsys.readouterr().err
    assert "bad training settings" in error and "'keep', 'mask' or 'zero'" in error


def test_the_dpo_cli_flag_reaches_its_config(monkeypatch, tmp_path):
    import rlenv.cli.train as cli
    import rlenv.train.dpo as dpo

    made = []

    class Stub:
        def __init__(self, config, *args, **kwargs):
            self.pairs = []
            made.append(config)

    data = tmp_path / "rollouts.jsonl"
    data.write_text("")
    monkeypatch.setattr(dpo, "DPOTrainer", Stub)
    monkeypatch.setattr(cli, "_run", lambda trainer, args, **kwargs: 0)
    assert main(["train-dpo", str(data), "--parse-error", "mask"]) == 0
    assert made[-1].parse_error == "mask"


# ------------------------------------------------------------------------------------- DPO


def _single_turn(reward: float, malformed: int, text: str) -> Trajectory:
    verdict = Verdict(reward=reward, parse_errors=malformed)
    turn = TurnRecord(reward=reward, verdict=verdict, completion=text)
    return Trajectory(
        env_id=ENV_ID, task_id="t", seed=0, turns=[turn], reward=reward, terminated=True,
        truncated=False, messages=[{"role": "user", "content": "q"},
                                   {"role": "assistant", "content": text}],
    )  # fmt: skip


def test_dpo_pairs_follow_the_policy():
    group = [
        _single_turn(1.0, 0, "right"),
        _single_turn(1.0, 1, "right, but a malformed call too"),
        _single_turn(0.0, 0, "wrong"),
    ]

    def pairs(**settings):
        return [(p.chosen, p.rejected, p.rejected_reward)
                for p in preference_pairs(group, **settings)]  # fmt: skip

    # keep: both top samples are chosen candidates; one wrong sample to pair with
    assert pairs() == [("right", "wrong", 0.0)]
    assert pairs(parse_error="mask") == [("right", "wrong", 0.0)]
    # zero: the malformed one is now a rejected candidate, worst first among equals by order
    assert pairs(parse_error="zero") == [("right", "right, but a malformed call too", 0.0)]
    assert pairs(parse_error="zero", parse_error_reward=-1.0) == [
        ("right", "right, but a malformed call too", -1.0)
    ]
    # mask: a malformed sample is never chosen, even at the top
    top_malformed = [_single_turn(1.0, 1, "malformed"), _single_turn(0.0, 0, "wrong")]
    assert preference_pairs(top_malformed, parse_error="mask") == []
    assert len(preference_pairs(top_malformed)) == 1
