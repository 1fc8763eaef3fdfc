"""``RemoteEnv`` behaves like the local env it stands for, and fails loudly."""

from __future__ import annotations

import time

import gymnasium
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import rlenv
from rlenv import EpisodeFinishedError, InvalidActionError, ResetNeededError, Task, Verdict
from rlenv.envs.games.guess_number import binary_search_guess
from rlenv.errors import TaskNotFoundError
from rlenv.remote import (
    EpisodeLostError,
    RemoteEnv,
    RemoteEnvError,
    RetryPolicy,
    SessionNotFoundError,
)
from rlenv.server import ServerLimits, create_app, serve_in_thread
from rlenv.spaces import ActionSpace


def _play(env, seed: int, policy) -> list:
    """Every return value of one episode."""
    observation, info = env.reset(seed=seed)
    returns = [(observation, info)]
    while True:
        step = env.step(policy(env, observation))
        returns.append(step)
        if step[2] or step[3]:
            return returns


@pytest.mark.parametrize("env_id", ["rlenv/Arithmetic-v0", "rlenv/GuessNumber-v0"])
def test_same_observations_rewards_and_infos_as_in_process(server_url, env_id):
    local = rlenv.make(env_id)
    with RemoteEnv(server_url, env_id) as remote:
        for seed in range(4):
            if env_id == "rlenv/GuessNumber-v0":
                policy = lambda env, observation: binary_search_guess(observation)  # noqa: E731
                assert _play(remote, seed, policy) == _play(local, seed, policy)
                continue
            local.reset(seed=seed)
            action = local.gold_action() if seed % 2 == 0 else "\\boxed{0.5}"
            expected = [local.reset(seed=seed), local.step(action)]
            got = [remote.reset(seed=seed), remote.step(action)]
            assert got == expected
            assert isinstance(got[1][4]["verdict"], Verdict)
            assert got[1][1] == (1.0 if seed % 2 == 0 else 0.0)


def test_attributes_spaces_and_render(server_url):
    local = rlenv.make("rlenv/GuessNumber-v0", max_turns=12)
    remote = RemoteEnv(server_url, "rlenv/GuessNumber-v0", max_turns=12, render_mode="ansi")
    assert (remote.max_turns, remote.max_reward) == (12, 1.0)
    assert remote.action_space == local.action_space == ActionSpace(200_000)
    observation, _ = remote.reset(seed=1)
    assert remote.observation_space.contains(observation)
    assert remote.action_space.contains("50")
    remote.step("50")
    local.reset(seed=1)
    local.step("50")
    local.render_mode = "ansi"
    assert remote.render() == local.render()
    assert remote.messages == local.messages
    assert "GuessNumber" in repr(remote)
    remote.close()
    remote.close()  # twice is fine


def test_gymnasium_env_checker_passes(server_url):
    from gymnasium.utils.env_checker import check_env

    with RemoteEnv(server_url, "rlenv/Arithmetic-v0") as env:
        check_env(env, skip_render_check=True)
    assert isinstance(env, gymnasium.Env)


def test_caller_mistakes_raise_the_local_exceptions(server_url):
    env = RemoteEnv(server_url, "rlenv/Arithmetic-v0")
    with pytest.raises(ResetNeededError, match="reset"):
        env.step("1")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step({"role": "user", "content": "1"})
    with pytest.raises(InvalidActionError):
        env.step(42)
    env.step("1")
    with pytest.raises(EpisodeFinishedError):
        env.step("1")
    with pytest.raises(TaskNotFoundError):
        env.reset(options={"task_id": "no-such-task"})
    env.close()
    with pytest.raises(RemoteEnvError, match="closed"):
        env.reset(seed=0)


def test_reset_options_carry_a_task(server_url):
    with RemoteEnv(server_url, "rlenv/Arithmetic-v0") as env:
        task = Task(id="mine", prompt="Compute $2 + 2$.", answer="4")
        observation, info = env.reset(options={"task": task})
        assert observation == [{"role": "user", "content": "Compute $2 + 2$."}]
        assert info["task_id"] == "mine"
        assert env.step("\\boxed{4}")[1] == 1.0


def test_server_refusals_are_remote_env_errors(server_url):
    with pytest.raises(RemoteEnvError) as caught:
        RemoteEnv(server_url, "rlenv/Bank-v0")
    assert (caught.value.status, caught.value.error) == (404, "EnvNotServed")
    with pytest.raises(RemoteEnvError, match="BadKwargs"):
        RemoteEnv(server_url, "rlenv/Arithmetic-v0", difficulty=99)
    with RemoteEnv(server_url, "rlenvtest/Crashy-v0") as env, pytest.raises(RemoteEnvError) as bug:
        env.reset(options={"task": Task(id="crash", prompt="x")})
    assert (bug.value.status, bug.value.error) == (500, "InternalError")
    with pytest.raises(ValueError, match="http://host:port"):
        RemoteEnv("localhost:8000", "rlenv/Arithmetic-v0")


def test_an_unreachable_server_is_a_clear_error():
    brief = RetryPolicy(attempts=3, backoff=0.01)  # retried, briefly (test_faults.py: more)
    with serve_in_thread(["rlenv/Arithmetic-v0"]) as url:
        env = RemoteEnv(url, "rlenv/Arithmetic-v0", timeout=5, retry_policy=brief)
        env.reset(seed=0)
    with pytest.raises(EpisodeLostError, match=r"failed.*call reset\(\)"):
        env.step("1")
    env.close()  # the server is gone: nothing to end, no error
    with pytest.raises(RemoteEnvError, match="Connection"):
        RemoteEnv(url, "rlenv/Arithmetic-v0", timeout=5, retry_policy=brief)


def test_an_expired_session_raises_session_not_found():
    limits = ServerLimits(session_ttl=0.2)
    with serve_in_thread(["rlenv/Arithmetic-v0"], limits=limits) as url:
        env = RemoteEnv(url, "rlenv/Arithmetic-v0")
        env.reset(seed=0)
        time.sleep(0.5)
        with pytest.raises(SessionNotFoundError, match="expired"):
            env.step("1")
        env.close()


def test_a_connection_the_server_closed_while_idle_is_reopened():
    with serve_in_thread(["rlenv/Arithmetic-v0"], keep_alive=1) as url:
        env = RemoteEnv(url, "rlenv/Arithmetic-v0")
        env.reset(seed=0)
        first = env._client.connection.sock
        time.sleep(1.6)  # the server drops the idle keep-alive connection
        assert env.step("1")[2]
        assert env._client.connection.sock is not first  # a new one, transparently
        env.close()


def test_a_base_url_with_a_path_prefix():
    from fastapi import FastAPI

    behind_a_proxy = FastAPI()
    behind_a_proxy.mount("/envs", create_app(["rlenv/Arithmetic-v0"]))
    with (
        serve_in_thread(behind_a_proxy) as url,
        RemoteEnv(url + "/envs/", "rlenv/Arithmetic-v0") as env,
    ):
        env.reset(seed=0)
        assert env.step("\\boxed{2623}")[1] == 1.0
