"""Vectorised use through Gymnasium's own ``make_vec``."""

from __future__ import annotations

import gymnasium
from gymnasium.vector import AutoresetMode


def test_make_vec_sync_batches_conversations_and_autoresets():
    envs = gymnasium.make_vec("rlenv/Arithmetic-v0", num_envs=3, vectorization_mode="sync")
    observations, infos = envs.reset(seed=10)
    assert isinstance(observations, tuple) and len(observations) == 3
    assert all(obs[0]["role"] == "user" for obs in observations)
    assert len({obs[0]["content"] for obs in observations}) == 3  # seeds 10, 11, 12

    answers = [env.unwrapped.gold_action() for env in envs.envs]
    actions = (answers[0], "wrong", answers[2])
    observations, rewards, terminated, truncated, infos = envs.step(actions)
    assert list(rewards) == [1.0, 0.0, 1.0]
    assert list(terminated) == [True, True, True] and not truncated.any()
    assert [v.reward for v in infos["verdict"]] == [1.0, 0.0, 1.0]

    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    observations, rewards, terminated, *_ = envs.step(("ignored",) * 3)  # the autoreset step
    assert list(rewards) == [0.0, 0.0, 0.0] and not terminated.any()
    assert all(len(obs) == 1 for obs in observations)
    envs.close()


def test_make_vec_multi_turn():
    envs = gymnasium.make_vec("rlenv/GuessNumber-v0", num_envs=2, vectorization_mode="sync")
    envs.reset(seed=0)
    observations, rewards, terminated, truncated, infos = envs.step(("50", "50"))
    assert all(obs[-1]["role"] == "user" for obs in observations)
    assert all(len(obs) == 3 for obs in observations)
    envs.close()
