"""The shortcuts ``TextEnv.reset``/``step`` take on the common path (issue 22's per-episode
overhead) keep every guarantee of the long path: overridden hooks are still called (on the
class or on the instance), broken hooks still end the episode unscored, observations stay
read-only copies, and seeding still follows Gymnasium."""

from __future__ import annotations

import math

import pytest
from gymnasium.utils import seeding

from rlenv import Task, TaskList, TextEnv, Turn, Verdict
from rlenv.chat import FrozenDict, FrozenList, freeze_json

TASKS = [Task(prompt=f"What is {n} + 1?", answer=str(n + 1)) for n in range(20)]


class Adder(TextEnv):
    def load_tasks(self) -> TaskList:
        return TaskList(TASKS)

    def verify(self, task: Task, completion: str) -> Verdict:
        return Verdict(reward=float(completion.strip() == task.answer), parsed=completion)


def test_the_default_path_scores_and_ends_the_episode() -> None:
    env = Adder()
    env.reset(seed=1)
    observation, reward, terminated, truncated, info = env.step(env.task.answer)
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert type(reward) is float
    assert info["verdict"].parsed == env.task.answer and info["verdict"].scored
    assert info["new_messages"] == [{"role": "assistant", "content": env.task.answer}]
    assert info["tools"] == [] and info["turn"] == 1
    env.reset(seed=1)
    assert env.step("wrong")[1] == 0.0


def test_observation_messages_are_read_only_copies() -> None:
    env = Adder()
    observation, info = env.reset(seed=0)
    assert all(type(message) is FrozenDict for message in observation)
    with pytest.raises(TypeError):
        observation[0]["content"] = "changed"
    observation.append({"role": "user", "content": "injected"})  # the list is the caller's
    info["tools"].append({"type": "function"})  # so is info["tools"]
    observation, _, _, _, info = env.step("1")
    assert [m["role"] for m in observation] == ["user", "assistant"]
    assert type(observation[-1]) is FrozenDict and info["new_messages"][0] is observation[-1]
    with pytest.raises(TypeError):
        observation[-1]["content"] = "a better answer"
    assert env.reset(seed=0)[1]["tools"] == []


def test_a_text_subclass_action_is_recorded_as_plain_text() -> None:
    class Text(str):
        pass

    env = Adder()
    env.reset(seed=3)
    observation, reward, *_ = env.step(Text(env.task.answer))
    assert reward == 1.0 and observation[-1]["content"] == env.task.answer


def test_an_overridden_score_is_called_and_checked() -> None:
    class Scored(Adder):
        def score(self, completion: str) -> Verdict:
            return Verdict(reward=0.25, reason="custom score")

    env = Scored()
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("anything")
    assert reward == 0.25 and terminated and info["verdict"].reason == "custom score"

    class Infinite(Adder):
        def score(self, completion: str) -> Verdict:
            return Verdict(reward=math.inf)

    env = Infinite()
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("anything")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert not info["verdict"].scored and "non-finite" in info["verdict"].error


def test_hooks_set_on_the_instance_are_called() -> None:
    env = Adder()
    env.respond = lambda message: Turn.end(Verdict(reward=0.5, reason="instance respond"))
    env.reset(seed=0)
    _, reward, _, _, info = env.step("anything")
    assert reward == 0.5 and info["verdict"].reason == "instance respond"

    env = Adder()
    env.interpret = lambda message: {"role": "assistant", "content": "interpreted"}
    env.reset(seed=0)
    observation, *_ = env.step("anything")
    assert observation[-1] == {"role": "assistant", "content": "interpreted"}
    assert type(observation[-1]) is FrozenDict


@pytest.mark.parametrize(
    ("returned", "fragment"), [(math.nan, "non-finite"), ("1.0", "must return a Verdict")]
)
def test_a_broken_verifier_still_gives_an_unscored_zero(returned, fragment) -> None:
    class Broken(Adder):
        def verify(self, task: Task, completion: str):
            return returned

    env = Broken()
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(env.task.answer)
    assert reward == 0.0 and terminated and not info["verdict"].scored
    assert fragment in info["verdict"].error


def test_reset_without_a_seed_goes_on_with_the_generator_and_a_seed_reseeds_it() -> None:
    env = Adder()
    env.reset(seed=7)
    first = [env.reset()[1]["task_id"] for _ in range(10)]
    assert len(set(first)) > 1  # reset() draws on, it does not reseed
    env.reset(seed=7)
    assert [env.reset()[1]["task_id"] for _ in range(10)] == first
    env.reset(seed=5)
    expected, _ = seeding.np_random(5)
    expected.integers(0, len(TASKS))  # the draw reset(seed=5) made
    assert env.np_random.integers(0, 2**62) == expected.integers(0, 2**62)


def test_freeze_json_copies_flat_dicts_and_freezes_nested_ones() -> None:
    flat = {"role": "user", "content": "hi", "name": None}
    frozen = freeze_json(flat)
    flat["content"] = "changed"
    assert type(frozen) is FrozenDict and frozen["content"] == "hi"
    nested = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    frozen = freeze_json(nested)
    assert type(frozen["content"]) is FrozenList and type(frozen["content"][0]) is FrozenDict
    nested["content"][0]["text"] = "changed"
    assert frozen["content"][0]["text"] == "hi"
    assert freeze_json(frozen) is frozen
    inner = freeze_json([1, 2])
    assert freeze_json({"a": inner})["a"] is inner  # already frozen parts are shared
