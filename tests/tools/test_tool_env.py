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
        (call("deposit", account="acc1", amount="five"), "'five' is not of type 'integer'"),
        (call("deposit", account="acc1", amount=-3), "amount must be positive"),
        (call("deposit", account="acc1"), "'amount' is a required property"),
    ],
)
def test_bad_calls_come_back_as_tool_messages(env, text, expected):
    obs, reward, terminated, truncated, info = env.step(text)
    assert not terminated and expected in info["new_messages"][-1]["content"]
    assert env.trace[-1].ok is False and env.state == {"acc1": 10}


def test_an_unknown_tool_is_reported_and_changes_nothing(env):
    """The parser, given the tools' schemas, refuses a call to a tool not offered: the model
    is told (with the closest name), nothing runs, and it is not a parse error (it is the
    model's mistake, which ``parse_error="mask"`` must not hide)."""
    _, reward, terminated, _, info = env.step(call("withdraw", account="acc1", amount=5))
    assert not terminated and reward == 0.0
    assert "unknown tool 'withdraw'" in info["new_messages"][-1]["content"]
    assert env.state == {"acc1": 10} and env.trace == []
    assert info["parse_errors"] == 0 and info["verdict"].parse_errors == 0
    assert info["verdict"].error is None
    assert info["call_errors"] and "unknown tool 'withdraw'" in info["call_errors"][0]


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


# ------------------------------------------------------------------ parse errors

_BROKEN = '<tool_call>\n{"name": "deposit", "arguments": {"account": }\n</tool_call>'


def test_a_malformed_call_is_recorded_and_the_model_may_retry(env):
    _, reward, terminated, truncated, info = env.step(_BROKEN)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert len(info["call_errors"]) == 1 and info["call_errors"][0].startswith("tool call 1:")
    assert info["parse_errors"] == 1 and env.parse_errors == 1
    verdict = info["verdict"]
    assert verdict.parse_errors == 1 and verdict.scored
    assert verdict.error.startswith("parse error: tool call 1:")
    assert info["call_errors"][0] in info["new_messages"][-1]["content"]  # shown to the model
    # the retry runs; the turn is clean, the episode's count stays
    _, _, _, _, info = env.step(call("deposit", account="acc1", amount=5))
    assert info["call_errors"] == [] and info["parse_errors"] == 1
    assert info["verdict"].parse_errors == 0 and info["verdict"].error is None
    _, reward, terminated, _, info = env.step(call("done", summary="ok"))
    assert (reward, terminated) == (1.0, True) and info["parse_errors"] == 1
    env.reset(seed=0)
    assert env.parse_errors == 0  # counted per episode


def test_well_formed_turns_report_no_parse_error(env):
    _, _, _, _, info = env.step(call("deposit", account="acc1", amount=5))
    assert (info["call_errors"], info["parse_errors"], info["verdict"].parse_errors) == ([], 0, 0)
    _, _, terminated, _, info = env.step("All done.")
    assert terminated and info["parse_errors"] == 0 and info["verdict"].parse_errors == 0


def test_a_bad_call_among_good_ones_is_counted_but_is_not_the_stop_reason(env):
    _, _, terminated, _, info = env.step(call("deposit", account="acc1", amount=5) + _BROKEN)
    assert not terminated and env.state == {"acc1": 15}  # the readable call ran
    verdict = info["verdict"]
    assert verdict.parse_errors == 1 and info["parse_errors"] == 1
    assert verdict.error is None  # a call ran: the turn was not only a parse error
    # a finishing call next to a malformed one: the grade stands and carries the count
    _, reward, terminated, _, info = env.step(call("done", summary="x") + _BROKEN)
    assert (reward, terminated) == (1.0, True)
    assert info["verdict"].parse_errors == 1 and info["parse_errors"] == 2


def test_an_episode_that_ends_on_a_parse_error_has_that_stop_reason():
    environment = Piggy(max_turns=2)
    environment.reset(seed=0)
    environment.step(call("balance", account="acc1"))
    _, reward, terminated, truncated, info = environment.step(_BROKEN)
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["verdict"].error.startswith("parse error:") and info["parse_errors"] == 1


def test_end_on_parse_error_ends_the_episode_at_the_first_one():
    environment = Piggy(end_on_parse_error=True)
    environment.reset(seed=0)
    _, reward, terminated, truncated, info = environment.step(_BROKEN + " and some text")
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert info["verdict"].error.startswith("parse error:") and info["verdict"].scored
    # a readable call that fails to run is a tool error, not a parse error: the episode goes on
    environment.reset(seed=0)
    _, _, terminated, _, info = environment.step(call("deposit", account="acc1", amount=-3))
    assert not terminated and info["parse_errors"] == 0
    assert environment.trace[-1].ok is False


def test_an_over_long_action_does_not_repeat_the_last_turns_errors():
    environment = Piggy(max_action_chars=200)
    environment.reset(seed=0)
    _, _, _, _, info = environment.step(_BROKEN)
    assert info["call_errors"]
    _, _, _, truncated, info = environment.step("x" * 300)
    assert truncated and info["call_errors"] == [] and info["parse_errors"] == 1


def test_eval_summaries_count_parse_error_as_a_stop_reason():
    from rlenv.evaluation import outcome_reason, render_table, summarize
    from rlenv.rollout import ScriptedPolicy, episodes, rollout

    rlenv.register("tests/PiggyParse-v0", Piggy, kwargs={"max_turns": 2}, override=True)
    try:
        answers = iter([_BROKEN, _BROKEN, call("deposit", account="acc1", amount=5),
                        call("done", summary="x")])  # fmt: skip
        policy = ScriptedPolicy(lambda conversation: next(answers))
        specs = episodes("tests/PiggyParse-v0", n_tasks=1, group_size=2)
        # one at a time, so the script's order is the episodes' order
        trajectories = rollout(policy, specs, max_batch_size=1)
    finally:
        rlenv.unregister("tests/PiggyParse-v0")
    failed, passed = trajectories
    assert outcome_reason(failed) == "parse error" and failed.truncated
    assert [turn.verdict.parse_errors for turn in failed.turns] == [1, 1]
    assert passed.reward == 1.0 and outcome_reason(passed) != "parse error"
    summary = summarize(trajectories)
    assert summary.failures == [("parse error", 1)]
    assert "parse error" in render_table(summary)
