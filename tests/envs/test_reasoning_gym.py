"""The reasoning-gym bridge (rlenv/envs/reasoning_gym.py): every registered dataset's gold answer
earns 1 on more seeds (check_env runs on each id in tests/test_conformance.py), wrong and hostile
answers earn no reward they did not earn, and kwargs are checked against the dataset's config."""

from __future__ import annotations

import pytest

pytest.importorskip("reasoning_gym")

import rlenv
from rlenv.envs.reasoning_gym import DATASETS, EXCLUDED, HASH_DEPENDENT, env_id, register_all
from rlenv.errors import EnvArgumentError

register_all()  # what rlenv.envs does on import; a no-op when it already has
ALL = sorted(DATASETS)
# Generating one task takes 0.2-2.4 s here (arc_agi loads its data for each; futoshiki and
# knight_swap search): one more seed for those keeps each case under ~10 s.
SLOW = {"arc_agi", "figlet_font", "futoshiki", "knight_swap"}
# futoshiki's default 9x9 boards take up to 7 s each to generate: smaller ones, same code.
SMALL = {"futoshiki": {"max_board_size": 6}}


def test_every_installed_dataset_is_registered_or_excluded_with_a_reason():
    from reasoning_gym.factory import DATASETS as installed

    assert set(DATASETS) | set(EXCLUDED) == set(installed)
    assert not set(DATASETS) & set(EXCLUDED)
    assert rlenv.list_envs("reasoning_gym") == sorted(env_id(name) for name in DATASETS)
    assert len(DATASETS) == 98 and len(installed) == 106


# The full check_env of every id (default config) runs in tests/test_conformance.py.
@pytest.mark.parametrize("dataset", ALL)
def test_gold_and_wrong(dataset):
    env = rlenv.make(env_id(dataset), **SMALL.get(dataset, {}))
    for seed in (1,) if dataset in SLOW else (1, 2):
        env.reset(seed=seed)
        gold = env.gold_action()
        _, reward, terminated, _, info = env.step(gold)
        assert (reward, terminated) == (1.0, True), (gold, info["verdict"])
        env.reset(seed=seed)
        _, reward, _, _, info = env.step("<answer>zzz not it</answer>")
        assert reward < 1.0, info["verdict"]


def _reward(env, seed, action):
    env.reset(seed=seed)
    _, reward, _, _, info = env.step(action)
    return reward, info["verdict"]


@pytest.mark.parametrize("dataset", ALL)
def test_hostile_answers_earn_nothing(dataset):
    env = rlenv.make(env_id(dataset), **SMALL.get(dataset, {}))
    env.reset(seed=3)
    gold, prompt = env.gold_action(), env.task.prompt[-1]["content"]
    answer = str(env.task.answer)
    wrong = "<answer>zzz not it</answer>"
    hostile = {
        "empty": "",
        "empty tag": "<answer></answer>",
        "no tag": answer,  # the right answer, not in the format reasoning-gym asks for
        "prompt echoed": f"<answer>{prompt}</answer>",
        "huge": "<answer>" + (answer + " ") * (10_001 // (len(answer) + 1) + 1) + "</answer>",
        "gold then wrong": gold + wrong,  # the last tag counts (reasoning_gym.utils.extract_answer)
    }
    for name, action in hostile.items():
        reward, verdict = _reward(env, 3, action)
        # reasoning-gym's partial credit pays a little for some wrong answers (0.152 at most
        # for an echoed prompt, rotate_matrix); never full reward
        assert reward < 0.2, (name, verdict)
        if name in ("empty", "no tag", "huge"):
            assert reward == 0.0, (name, verdict)
    reward, _ = _reward(env, 3, wrong + gold)  # the right answer last still earns it
    assert reward == 1.0


def test_hash_seed_dependent_datasets_are_registered_nondeterministic():
    """Their generators draw from sets of strings: only PYTHONHASHSEED makes them repeat in
    another process (rlenv check's cross-process check found them)."""
    import gymnasium

    for name in DATASETS:
        spec = gymnasium.spec(env_id(name))
        assert spec.nondeterministic == (name in HASH_DEPENDENT), name
    assert set(HASH_DEPENDENT) <= set(DATASETS)


def test_generators_that_print_leave_stdout_alone(capsys):
    env = rlenv.make(env_id("bf"))  # its compiler prints a '.' per program
    env.reset(seed=11)
    assert capsys.readouterr().out == ""


def test_kwargs_are_the_config_validated():
    env = rlenv.make("reasoning_gym/chain_sum-v0", min_terms=5, max_terms=5)
    env.reset(seed=0)
    assert (
        env.task.prompt[-1]["content"].count("+") + env.task.prompt[-1]["content"].count("-") >= 4
    )
    with pytest.raises(EnvArgumentError, match=r"'min_term'.*Did you mean 'min_terms'"):
        rlenv.make("reasoning_gym/chain_sum-v0", min_term=3)
    with pytest.raises(EnvArgumentError, match="expects int"):
        rlenv.make("reasoning_gym/chain_sum-v0", min_terms="3")
    with pytest.raises(EnvArgumentError, match="min_terms must be positive"):
        rlenv.make("reasoning_gym/chain_sum-v0", min_terms=0)
    with pytest.raises(EnvArgumentError, match="has no parameter 'seed'"):
        rlenv.make("reasoning_gym/chain_sum-v0", seed=1)  # the seed comes from reset()


def test_seeding_is_reasoning_gyms_own():
    import reasoning_gym

    env = rlenv.make("reasoning_gym/gcd-v0", max_value=50)
    _, info = env.reset(seed=7)
    first = env.task
    env.reset(seed=8)
    env.reset(seed=7)
    assert env.task == first  # same seed, same task
    seed = int(info["task_id"].removeprefix("seed-"))
    entry = reasoning_gym.create_dataset("gcd", max_value=50, seed=seed, size=1)[0]
    assert (first.prompt[-1]["content"], first.answer) == (entry["question"], entry["answer"])
    env.reset(options={"task_id": info["task_id"]})
    assert env.task == first


def test_a_failing_scorer_is_unscored_not_zero():
    env = rlenv.make("reasoning_gym/chain_sum-v0")

    def broken(answer, entry):
        raise RuntimeError("scorer bug")

    env._scorer = broken
    reward, verdict = _reward(env, 0, env.gold_action() if env.reset(seed=0) else "")
    assert (reward, verdict.scored) == (0.0, False)
    assert "scorer bug" in verdict.error
    env._scorer = lambda answer, entry: 1.5
    reward, verdict = _reward(env, 0, "<answer>1</answer>")
    assert (reward, verdict.scored) == (0.0, False)
    assert "not a score in [0, 1]" in verdict.error


def test_the_system_prompt_is_reasoning_gyms_and_can_be_replaced():
    from reasoning_gym.utils import SYSTEM_PROMPTS

    observation, _ = rlenv.make("reasoning_gym/lcm-v0").reset(seed=0)
    assert observation[0] == {"role": "system", "content": SYSTEM_PROMPTS["default"]}
    observation, _ = rlenv.make("reasoning_gym/lcm-v0", system_prompt="Be brief.").reset(seed=0)
    assert observation[0]["content"] == "Be brief."


def test_partial_credit_off_pays_only_full_marks():
    env = rlenv.make("reasoning_gym/rotate_matrix-v0", partial_credit=False)
    env.reset(seed=3)
    prompt = env.task.prompt[-1]["content"]
    reward, verdict = _reward(env, 3, f"<answer>{prompt}</answer>")
    assert reward == 0.0 and 0 < verdict.components["reasoning_gym"] < 1
    env.reset(seed=3)
    assert _reward(env, 3, env.gold_action())[0] == 1.0
    env_partial = rlenv.make("reasoning_gym/rotate_matrix-v0")
    assert 0 < _reward(env_partial, 3, f"<answer>{prompt}</answer>")[0] < 0.2


def test_without_reasoning_gym_nothing_is_registered_and_make_says_how(monkeypatch):
    import importlib.util
    import sys

    import rlenv.envs.reasoning_gym as bridge

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert bridge.register_all() == 0
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # import reasoning_gym fails
    with pytest.raises(ImportError, match=r"pip install 'rlenv\[reasoning-gym\]'"):
        bridge.ReasoningGymEnv("chain_sum")
