from __future__ import annotations

import logging

import pytest
from sample_envs import Countdown, EchoWord

import rlenv
from rlenv import (
    EpisodeFinishedError,
    InvalidActionError,
    ResetNeededError,
    Task,
    TextEnv,
    Turn,
    Verdict,
)
from rlenv.chat import copy_messages
from rlenv.errors import TaskFormatError, TaskNotFoundError


def test_single_turn_episode(echo_env):
    obs, info = echo_env.reset(seed=0)
    assert obs == info["new_messages"] and obs[0]["role"] == "user"
    assert info["tools"] == [] and info["task_id"].startswith("seed-")
    word = echo_env.task.answer
    obs2, reward, terminated, truncated, info = echo_env.step(f"  {word}\n")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert isinstance(reward, float)
    assert info["verdict"] == Verdict(reward=1.0, parsed=word)
    assert info["new_messages"] == [{"role": "assistant", "content": f"  {word}\n"}]
    assert obs2 == obs + info["new_messages"] and info["turn"] == 1


def test_wrong_answer_scores_zero_and_ends(echo_env):
    echo_env.reset(seed=0)
    _, reward, terminated, truncated, info = echo_env.step("wrong")
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert not info["verdict"].passed


def test_same_seed_same_task_and_unseeded_resets_continue_the_stream(echo_env):
    first = [echo_env.reset(seed=7)[0] for _ in range(2)]
    assert first[0] == first[1]
    a = [echo_env.reset()[0] for _ in range(3)]
    echo_env.reset(seed=7)
    b = [echo_env.reset()[0] for _ in range(3)]
    assert a == b and len({str(x) for x in a}) > 1


def test_task_selection_by_id_and_by_task(echo_env):
    _, info = echo_env.reset(seed=3)
    obs_by_id, info_by_id = echo_env.reset(options={"task_id": info["task_id"]})
    assert info_by_id["task_id"] == info["task_id"]
    given = Task(id="mine", prompt="Repeat the word zzz.", answer="zzz")
    obs, info = echo_env.reset(options={"task": given})
    assert info["task_id"] == "mine" and echo_env.step("zzz")[1] == 1.0
    echo_env.reset(options={"task": {"prompt": "Repeat q.", "answer": "q"}})
    assert echo_env.task.answer == "q"
    with pytest.raises(TaskNotFoundError):
        echo_env.reset(options={"task_id": "nope"})
    with pytest.raises(ValueError, match="unknown reset option"):
        echo_env.reset(options={"taskid": "typo"})
    with pytest.raises(TaskFormatError):
        echo_env.reset(options={"task": {"prompt": 3}})


def test_fixed_dataset_via_tasks_argument_iterates_in_order(tmp_path):
    env = EchoWord(tasks=[{"prompt": "say a", "answer": "a"}, {"prompt": "say b", "answer": "b"}])
    answers = []
    for task in env.task_source:
        env.reset(options={"task_id": task.id})
        answers.append(env.step(task.answer)[1])
    assert answers == [1.0, 1.0]


def test_multi_turn_loop_and_env_replies(countdown_env):
    env = countdown_env
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("3")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["new_messages"] == [
        {"role": "assistant", "content": "3"},
        {"role": "user", "content": "Next."},
    ]
    env.step("2")
    obs, reward, terminated, truncated, info = env.step("1")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert len(obs) == 1 + 2 * 3 - 1  # no reply after the last, finishing turn
    assert env.turn == 3


def test_max_turns_truncates(countdown_env):
    env = countdown_env
    env.reset(seed=0)
    results = [env.step("wrong") for _ in range(env.max_turns)]
    assert [r[3] for r in results] == [False] * 5 + [True]
    assert not any(r[2] for r in results)
    with pytest.raises(EpisodeFinishedError, match=r"call env\.reset"):
        env.step("3")


def test_max_turns_argument_overrides_class_default():
    assert Countdown(max_turns=2).max_turns == 2
    with pytest.raises(ValueError):
        Countdown(max_turns=0)


def test_stepping_before_reset_and_after_end_raise_clear_errors(echo_env):
    with pytest.raises(ResetNeededError, match="before reset"):
        echo_env.step("x")
    with pytest.raises(ResetNeededError):
        _ = echo_env.task
    echo_env.reset(seed=0)
    echo_env.step("x")
    with pytest.raises(EpisodeFinishedError):
        echo_env.step("x")
    echo_env.reset(seed=0)
    assert echo_env.step("x")[2] is True


@pytest.mark.parametrize("action", [42, None, b"bytes", ["list"], {"role": "user", "content": "x"}])
def test_non_text_actions_are_caller_errors(echo_env, action):
    echo_env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        echo_env.step(action)


def test_assistant_dict_actions_are_accepted_and_copied(echo_env):
    echo_env.reset(seed=0)
    action = {"role": "assistant", "content": echo_env.task.answer, "tool_calls": []}
    obs, reward, *_ = echo_env.step(action)
    assert reward == 1.0
    action["content"] = "mutated"
    assert obs[-1]["content"] == echo_env.task.answer
    assert echo_env.messages[-1]["content"] == echo_env.task.answer


@pytest.mark.parametrize(
    "junk",
    ["", "\x00\x01", "\ud800 lone surrogate", "{" * 10_000, "<tool_call>{", "🙂" * 1000],
)
def test_junk_text_never_raises(echo_env, countdown_env, junk):
    for env in (echo_env, countdown_env):
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(junk)
        assert reward == 0.0 and obs in env.observation_space
        obs[-1]["content"].encode("utf-8")  # surrogates were replaced: always encodable


def test_overlong_action_is_cut_and_truncates_with_zero_reward():
    env = EchoWord(max_action_chars=100)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.task.answer + " " * 200)
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert len(obs[-1]["content"]) == 100
    assert "too long" in info["verdict"].error


class _CrashingVerifier(EchoWord):
    def verify(self, task, completion):
        raise RuntimeError("boom")


def test_a_verifier_crash_gives_an_unscored_zero_not_an_exception(caplog):
    env = _CrashingVerifier()
    env.reset(seed=0)
    with caplog.at_level(logging.WARNING, logger="rlenv"):
        _, reward, terminated, _, info = env.step("anything")
    assert reward == 0.0 and terminated
    assert info["verdict"].scored is False and "boom" in info["verdict"].error
    assert "verify raised" in caplog.text


class _NaNVerifier(EchoWord):
    def verify(self, task, completion):
        return float("nan")


def test_a_non_finite_verifier_reward_is_unscored():
    env = _NaNVerifier()
    env.reset(seed=0)
    _, reward, *_, info = env.step("x")
    assert reward == 0.0 and info["verdict"].scored is False


def test_verify_may_return_bool_or_float():
    class BoolEnv(EchoWord):
        def verify(self, task, completion):
            return completion == task.answer

    env = BoolEnv()
    env.reset(seed=0)
    assert env.step(env.task.answer)[1] == 1.0


def test_an_env_without_tasks_or_verify_says_what_to_override():
    with pytest.raises(NotImplementedError, match="load_tasks"):
        TextEnv()
    env = TextEnv(tasks=[{"prompt": "x"}])
    env.reset(seed=0)
    with pytest.raises(NotImplementedError, match="verify"):
        env.step("x")


def test_system_prompt_is_prepended():
    env = EchoWord(system_prompt="Be terse.")
    obs, _ = env.reset(seed=0)
    assert obs[0] == {"role": "system", "content": "Be terse."} and obs[1]["role"] == "user"


def test_observations_cannot_change_the_env_history(echo_env):
    obs, info = echo_env.reset(seed=0)
    prompt = obs[0]["content"]
    for message in (obs[0], info["new_messages"][0]):
        with pytest.raises(TypeError, match=r"read-only.*dict\(message\)"):
            message["content"] = "tampered"
        with pytest.raises(TypeError, match="read-only"):
            message.update(content="tampered")
    obs.append({"role": "user", "content": "injected"})  # the list is the caller's own
    editable = dict(obs[0])
    editable["content"] = "tampered"
    assert echo_env.messages[0]["content"] == prompt and len(echo_env.messages) == 1
    obs2, *_ = echo_env.step("x")
    assert obs2[0]["content"] == prompt and [m["role"] for m in obs2] == ["user", "assistant"]
    assert obs2[0] == {"role": "user", "content": prompt}  # still compares as a plain dict


def test_nested_message_parts_are_read_only_and_copies_are_plain():
    import copy
    import json
    import pickle

    env = EchoWord()
    env.reset(seed=0)
    parts = {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}
    obs, *_ = env.step(parts)
    with pytest.raises(TypeError, match="read-only"):
        obs[-1]["content"].append({"type": "text", "text": "more"})
    with pytest.raises(TypeError, match="read-only"):
        obs[-1]["content"][0]["text"] = "changed"
    assert json.loads(json.dumps(obs[-1])) == parts
    for copied in (copy.deepcopy(obs[-1]), pickle.loads(pickle.dumps(obs[-1]))):
        assert copied == parts and type(copied) is type(obs[-1])  # still read-only
    editable = copy_messages(obs)[-1]
    editable["content"][0]["text"] = "changed"  # copy_messages gives ordinary dicts
    assert env.messages[-1]["content"][0]["text"] == "hi"


def test_render_modes(capsys):
    env = EchoWord(render_mode="ansi")
    env.reset(seed=0)
    env.step("hello")
    text = env.render()
    assert "[user]" in text and "[assistant]\nhello" in text
    human = EchoWord(render_mode="human")
    human.reset(seed=0)
    human.step("hello")
    assert "[assistant]\nhello" in capsys.readouterr().out
    with pytest.raises(ValueError):
        EchoWord(render_mode="rgb_array")


def test_gold_action_default_uses_the_answer(echo_env):
    echo_env.reset(seed=1)
    assert echo_env.gold_action() == echo_env.task.answer
    assert echo_env.step(echo_env.gold_action())[1] == 1.0


def test_make_returns_the_textenv_with_kwargs():
    env = rlenv.make("rlenv/GuessNumber-v0", max_turns=7, low=1, high=50)
    assert isinstance(env, TextEnv) and env.max_turns == 7 and env.high == 50


class _RespondReturnsNone(Countdown):
    def respond(self, message):
        super().respond(message)  # forgot the return


class _RespondRaises(Countdown):
    def respond(self, message):
        raise KeyError("board")


class _RespondNaN(Countdown):
    def respond(self, message):
        return Turn(reward=float("nan"))


@pytest.mark.parametrize(
    ("env_class", "says"),
    [
        (_RespondReturnsNone, "returned NoneType None, not a Turn"),
        (_RespondRaises, "KeyError: 'board'"),
        (_RespondNaN, "non-finite reward: nan"),
    ],
)
def test_a_broken_respond_truncates_unscored_and_names_the_fix(env_class, says, caplog):
    env = env_class()
    obs, _ = env.reset(seed=0)
    with caplog.at_level(logging.WARNING, logger="rlenv"):
        obs2, reward, terminated, truncated, info = env.step("3")
    assert (reward, terminated, truncated) == (0.0, False, True)
    verdict = info["verdict"]
    assert verdict.scored is False and says in verdict.error
    assert "respond() must return Turn.reply(...) or Turn.end(...)" in verdict.error
    # the model's turn is recorded once, and nothing half-done remains: reset is required
    assert obs2 == [*obs, {"role": "assistant", "content": "3"}] and env.turn == 1
    assert info["new_messages"] == [{"role": "assistant", "content": "3"}]
    with pytest.raises(EpisodeFinishedError, match="reset"):
        env.step("4")
    env.reset(seed=0)  # and a reset recovers
    assert env.turn == 0 and "step failed" in caplog.text


def test_an_over_long_action_pays_the_envs_lowest_reward():
    """min_reward (0 by default) is what flooding an env pays: an env whose losses pay -1 sets
    it, so truncating by a huge action is never better than losing."""
    from rlenv import GeneratedTasks, Task, TextEnv, Verdict

    class Losing(TextEnv):
        min_reward = -1.0
        max_action_chars = 10

        def load_tasks(self):
            return GeneratedTasks(lambda rng: Task(prompt="play", answer=""))

        def verify(self, task, completion):
            return Verdict(reward=-1.0)

    env = Losing()
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("x" * 11)
    assert (reward, terminated, truncated) == (-1.0, False, True)
    plain = Losing(max_action_chars=10)
    plain.min_reward = 0.0
    plain.reset(seed=0)
    assert plain.step("x" * 11)[1] == 0.0
