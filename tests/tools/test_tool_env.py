"""ToolEnv: the call → result loop, malformed calls, limits, finishing, and the transcript."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rlenv
from rlenv import Task, TaskList
from rlenv.testing import check_env
from rlenv.tools import ToolEnv, tool


@tool(hidden=["state"])
def deposit(account: str, amount: int, state: dict) -> str:
    """Add money to an account.

    Args:
        account: The account id.
        amount: Whole units to add.
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    state[account] = state.get(account, 0) + amount
    return f"{account} now has {state[account]}"


@tool(hidden=["state"])
def balance(account: str, state: dict) -> int:
    """The balance of an account.

    Args:
        account: The account id.
    """
    return state.get(account, 0)


@tool
def done(summary: str) -> str:
    """Finish the task.

    Args:
        summary: What was done.
    """
    return "ok"


class Piggy(ToolEnv):
    """Deposit the asked amount, then say the new balance."""

    finish_tool = "done"

    def load_tools(self):
        return [deposit, balance, done]

    def load_tasks(self):
        return TaskList([Task(id="t1", prompt="Deposit 5 into acc1.", answer=15)])

    def new_state(self, task):
        return {"acc1": 10}

    def grade(self, answer):
        ok = self.state == {"acc1": 15} and any(o.name == "deposit" and o.ok for o in self.trace)
        return rlenv.Verdict(reward=float(ok), reason="state checked")

    def gold_action(self):
        if not self.trace:
            return call("deposit", account="acc1", amount=5)
        return call("done", summary="deposited")


def call(name: str, **arguments) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.fixture
def env():
    environment = Piggy()
    environment.reset(seed=0)
    return environment


def test_schemas_are_offered_in_info():
    obs, info = Piggy().reset(seed=0)
    assert [t["function"]["name"] for t in info["tools"]] == ["deposit", "balance", "done"]
    assert "state" not in json.dumps(info["tools"])


def test_a_call_runs_against_fresh_state_and_the_transcript_is_standard(env):
    obs, reward, terminated, truncated, info = env.step(
        "Let me deposit.\n" + call("deposit", account="acc1", amount=5)
    )
    assert (reward, terminated, truncated) == (0.0, False, False)
    assistant, result = info["new_messages"]
    assert assistant["content"] == "Let me deposit."
    assert assistant["tool_calls"][0]["function"] == {
        "name": "deposit",
        "arguments": {"account": "acc1", "amount": 5},
    }
    assert result == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "name": "deposit",
        "content": "acc1 now has 15",
    }
    assert obs in env.observation_space
    env.reset(seed=0)
    assert env.state == {"acc1": 10}  # a fresh world each episode


def test_finish_tool_ends_and_grades_by_state(env):
    env.step(call("deposit", account="acc1", amount=5))
    _, reward, terminated, truncated, info = env.step(call("done", summary="x"))
    assert (reward, terminated, truncated) == (1.0, True, False)


def test_answering_without_a_call_ends_the_episode(env):
    _, reward, terminated, _, info = env.step("The balance is 15.")
    assert terminated and reward == 0.0  # the state was never changed


def test_parallel_calls_run_in_order(env):
    text = (
        call("deposit", account="acc1", amount=1)
        + call("deposit", account="acc1", amount=4)
        + call("balance", account="acc1")
    )
    _, _, _, _, info = env.step(text)
    assert [m["content"] for m in info["new_messages"][1:]] == [
        "acc1 now has 11",
        "acc1 now has 15",
        "15",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (call("withdraw", account="acc1", amount=5), "unknown tool 'withdraw'"),
        (call("deposit", account="acc1", amount="five"), "'five' is not of type 'integer'"),
        (call("deposit", account="acc1", amount=-3), "amount must be positive"),
        (call("deposit", account="acc1"), "'amount' is a required property"),
    ],
)
def test_bad_calls_come_back_as_tool_messages(env, text, expected):
    obs, reward, terminated, truncated, info = env.step(text)
    assert not terminated and expected in info["new_messages"][-1]["content"]
    assert env.trace[-1].ok is False and env.state == {"acc1": 10}


def test_broken_json_is_reported_to_the_model(env):
    obs, reward, terminated, truncated, info = env.step(
        '<tool_call>\n{"name": "deposit", "arguments": {"account": }\n</tool_call>'
    )
    assert not terminated and info["new_messages"][-1]["role"] == "user"
    assert "Tool call errors" in info["new_messages"][-1]["content"]


def test_calls_per_turn_are_limited():
    environment = Piggy(max_calls_per_turn=2)
    environment.reset(seed=0)
    text = "".join(call("balance", account="acc1") for _ in range(5))
    _, _, _, _, info = environment.step(text)
    assert [m["role"] for m in info["new_messages"]] == ["assistant", "tool", "tool", "user"]
    assert "3 were ignored" in info["new_messages"][-1]["content"]


def test_max_turns_truncates():
    environment = Piggy(max_turns=2)
    environment.reset(seed=0)
    environment.step(call("balance", account="acc1"))
    _, reward, terminated, truncated, _ = environment.step(call("balance", account="acc1"))
    assert (reward, terminated, truncated) == (0.0, False, True)


def test_openai_style_actions_with_parsed_tool_calls(env):
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "deposit", "arguments": '{"account": "acc1", "amount": 5}'},
            }
        ],
    }
    _, _, _, _, info = env.step(message)
    assert info["new_messages"][1]["tool_call_id"] == "c1" and env.state == {"acc1": 15}


def test_the_example_env_passes_the_conformance_suite():
    assert check_env(Piggy(), n_actions=80).passed


_FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    '{"name": "deposit", "arguments": {',
    '"amount": 5}}',
    '"account": "acc1"',
    "[TOOL_CALLS]",
    "<|python_tag|>",
    "{",
    "}",
    "[",
    "]",
    '"',
    ":",
    ",",
    "null",
    "1e999",
    "\\u0000",
    "done",
    "balance",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=20), max_size=25),
    st.sampled_from(["hermes", "auto", "mistral", "llama3_json", "json", "pythonic"]),
)
def test_fuzzed_tool_call_text_never_raises(pieces, parser):
    environment = Piggy(parser=parser)
    environment.reset(seed=0)
    obs, reward, terminated, truncated, info = environment.step("".join(pieces))
    assert obs in environment.observation_space and isinstance(reward, float)
    assert environment.state["acc1"] >= 10  # nothing but valid deposits can change it
