"""rlenv environments in TRL's real GRPOTrainer, on a CPU with a tiny random model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
pytest.importorskip("datasets")

import rlenv  # noqa: E402
from rlenv import TaskHandle  # noqa: E402
from rlenv.adapters.trl import (  # noqa: E402
    TASK_KEY,
    RolloutFunction,
    build_dataset,
    episode_reward,
    reward_function,
    task_of,
)
from rlenv.testing import tiny_chat_model  # noqa: E402


def _args(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, per_device_train_batch_size=4,
        num_generations=4, max_completion_length=8, max_steps=2, logging_steps=1,
        learning_rate=1e-3, report_to=[], save_strategy="no", seed=0, disable_tqdm=True,
    )  # fmt: skip
    settings.update(overrides)
    return trl.GRPOConfig(**settings)


def test_the_dataset_carries_each_task_in_its_prompt():
    dataset = build_dataset("rlenv/Arithmetic-v0", n_tasks=3, seed=5, difficulty=1)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    observation, info = env.reset(seed=6)
    assert len(dataset) == 3 and dataset[1]["task_id"] == info["task_id"]
    task = task_of(dataset[1]["prompt"])
    assert task == TaskHandle(env_id="rlenv/Arithmetic-v0", env_kwargs={"difficulty": 1},
                              task_id=info["task_id"])  # fmt: skip
    assert json.loads(dataset[1]["prompt"][0][TASK_KEY]) == {
        "env_id": "rlenv/Arithmetic-v0",
        "env_kwargs": {"difficulty": 1},
        "task_id": info["task_id"],
    }  # the tag format the verl and OpenRLHF rows carry too
    assert dataset[1]["prompt"][-1]["content"] == observation[-1]["content"]
    with pytest.raises(ValueError, match=TASK_KEY):
        task_of([{"role": "user", "content": "no task"}])


def test_the_reward_function_scores_with_the_env_and_keeps_unscored_out():
    dataset = build_dataset("rlenv/Arithmetic-v0", n_tasks=2, difficulty=1)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    env.reset(seed=0)
    right = env.gold_action()
    reward = reward_function()
    prompts = [dataset[0]["prompt"], dataset[0]["prompt"], dataset[1]["prompt"]]
    completions = [[{"role": "assistant", "content": text}] for text in (right, "\\boxed{x}", "")]
    assert reward(prompts=prompts, completions=completions) == [1.0, 0.0, 0.0]
    assert [v.scored for v in reward.verdicts] == [True, True, True]
    assert reward.__name__ == "rlenv_reward"


def test_the_reward_function_leaves_out_what_it_cannot_judge():
    reward = reward_function()
    crash = build_dataset("adaptertest/Crashing-v0", n_tasks=1)[0]["prompt"]
    twice = build_dataset("adaptertest/SayTwice-v0", n_tasks=1)[0]["prompt"]
    prompts = [crash, crash, twice]
    completions = [[{"role": "assistant", "content": text}] for text in ("ok", "boom", "ok")]
    # the verifier crashed; a multi-turn env's first turn did not end the episode
    assert reward(prompts=prompts, completions=completions) == [1.0, None, None]
    assert "multi-turn" in reward.verdicts[2].reason


def test_trl_grpo_trains_on_env_rewards(tmp_path):
    model, tokenizer = tiny_chat_model()
    dataset = build_dataset("adaptertest/CountA-v0", n_tasks=8)
    reward = reward_function()
    seen: list[list[float]] = []

    def recorded(prompts, completions, **kwargs):
        values = reward(prompts=prompts, completions=completions, **kwargs)
        seen.append(values)
        return values

    recorded.__name__ = "rlenv_reward"
    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=recorded, args=_args(tmp_path), train_dataset=dataset,
        processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    logged = [row for row in trainer.state.log_history if "reward" in row]
    assert len(logged) == 2 and len(seen) == 2
    for row, values in zip(logged, seen, strict=True):
        assert row["reward"] == pytest.approx(sum(values) / len(values))
    # the rewards were the env's verdicts on the completions TRL generated
    assert all(v.parsed is not None for v in reward.verdicts)
    assert any(value > 0 for values in seen for value in values)


def test_trl_grpo_trains_multi_turn_episodes_with_env_tokens_masked(tmp_path):
    model, tokenizer = tiny_chat_model()
    dataset = build_dataset("adaptertest/SayMore-v0", n_tasks=8)
    rollout_func = RolloutFunction(max_new_tokens=6)
    outputs = []

    def spy(prompts, trainer):
        output = rollout_func(prompts, trainer)
        outputs.append((len(prompts), output))
        return output

    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=episode_reward, args=_args(tmp_path), train_dataset=dataset,
        processing_class=tokenizer, rollout_func=spy,
    )  # fmt: skip
    trainer.train()
    assert rollout_func.calls == 2
    assert [count for count, _ in outputs] == [4, 4]  # TRL 1.16 hands over repeated prompts
    assert all(len(output["completion_ids"]) == 4 for _, output in outputs)
    say_more = tokenizer("Say more.", add_special_tokens=False)["input_ids"]
    for _, output in outputs:
        for ids, mask, logprobs in zip(output["completion_ids"], output["env_mask"],
                                       output["logprobs"], strict=True):  # fmt: skip
            assert len(ids) == len(mask) == len(logprobs)
            assert 0 in mask and 1 in mask  # model turns and the env's reply
            env_tokens = [t for t, m in zip(ids, mask, strict=True) if m == 0]
            assert all(t in env_tokens for t in say_more)  # the env's words are masked out
    logged = [row for row in trainer.state.log_history if "reward" in row]
    rewards = [r for _, output in outputs for r in output["rlenv_reward"]]
    assert len(logged) == 2
    assert sum(row["reward"] for row in logged) == pytest.approx(
        sum(rewards) / len(rewards) * 2, rel=1e-5
    )
    json.dumps(outputs[0][1])  # plain data
