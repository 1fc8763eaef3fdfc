"""Adversarial review of the OpenEnv bridge (adapters/openenv.py), against the real openenv-core
server and client: each test pins a fault found in review."""

from __future__ import annotations

import pytest

pytest.importorskip("openenv.core", reason="pip install 'rlenv[openenv]'")

from openenv.core import GenericEnvClient

from rlenv.adapters.openenv import OpenEnvTextEnv, create_app
from rlenv.server import serve_in_thread

ARITH = "rlenv/Arithmetic-v0"


@pytest.fixture(scope="module")
def arith_url():
    with serve_in_thread(create_app(ARITH, max_concurrent_envs=4)) as url:
        yield url


def test_a_bad_message_after_the_end_is_not_a_live_episode(arith_url):
    """A dict that is not an assistant message, sent after the episode ended, was answered as a
    refusal with done=False (the client was told the finished episode goes on); it must be the
    same 'call reset()' error a text action gets, and so before reset."""
    with GenericEnvClient(base_url=arith_url, message_timeout_s=10).sync() as client:
        with pytest.raises(RuntimeError, match=r"reset\(\).*EXECUTION_ERROR"):
            client.step({"message": {"role": "user", "content": "2"}})
        client.reset(seed=0)
        assert client.step({"text": "0"}).done
        for action in ({"message": {"role": "user", "content": "2"}}, {"text": "0"}):
            with pytest.raises(RuntimeError, match=r"reset\(\).*EXECUTION_ERROR"):
                client.step(action)
        # during an episode the refusal stands: reward 0, the reason, the episode goes on
        client.reset(seed=0)
        result = client.step({"message": {"role": "user", "content": "2"}})
        assert result.reward == 0.0 and not result.done
        assert "not an assistant message" in result.observation["verdict"]["error"]


def test_a_refused_setting_does_not_leak_the_servers_session():
    """OpenEnvTextEnv opened its WebSocket session (reading the served limits) before
    TextEnv.__init__ checked the settings: a refused one (max_turns=0) left the session open,
    holding one of the server's max_concurrent_envs (here the only one) for good."""
    with serve_in_thread(create_app(ARITH, max_concurrent_envs=1)) as url:
        with pytest.raises(ValueError, match="max_turns"):
            OpenEnvTextEnv(url, max_turns=0)
        env = OpenEnvTextEnv(url, connect_timeout_s=5, message_timeout_s=5)
        try:
            assert env.rlenv_served and env.max_turns == 1
            _, info = env.reset(seed=0)
            assert info["task_id"].startswith("openenv-seed-")
        finally:
            env.close()


def _call(name, arguments):
    call = {
        "id": "call001_0",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    return {"message": {"role": "assistant", "content": "", "tool_calls": [call]}}


def test_a_tool_call_with_malformed_arguments_over_openenv_is_scored_zero():
    """A tool env served over OpenEnv, sent an assistant message (the OpenAI wire form a
    vLLM/TRL client sends) whose call's arguments are not JSON: ToolEnv ran the message's raw
    tool_calls and json.loads raised in respond, so the model's mistake ended the episode as an
    *environment failure* (truncated, unscored: left out of training). It is a parse error:
    reward 0, scored, the reason shown, the episode goes on; no call runs."""
    app = create_app("rlenv/Calculator-v0", max_concurrent_envs=2)
    with serve_in_thread(app) as url, GenericEnvClient(base_url=url).sync() as client:
        for arguments in ('{"expression": "6*', "[1, 2]", '{"expression": "6*7"} trailing'):
            client.reset(seed=0)
            result = client.step(_call("calculate", arguments))
            verdict = result.observation["verdict"]
            assert result.reward == 0.0 and not result.done, (arguments, verdict)
            assert verdict["scored"] and "parse error" in verdict["error"], verdict
            assert not result.observation["truncated"]
            new = result.observation["new_messages"]
            assert "tool_calls" not in new[0] and [m["role"] for m in new] == [
                "assistant",
                "user",
            ]
            assert "function.arguments" in new[1]["content"]
        # a well-formed call in the same wire form still runs
        client.reset(seed=0)
        result = client.step(_call("calculate", '{"expression": "6*7"}'))
        assert result.observation["new_messages"][1] == {
            "role": "tool",
            "tool_call_id": "call001_0",
            "name": "calculate",
            "content": "42",
        }
