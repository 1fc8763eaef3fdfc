"""Bank-v0: gold plans earn 1.0, wrong plans earn 0 with the difference named, tools refuse
clearly, and every episode starts from its own fresh, deterministic database."""

from __future__ import annotations

import json

import pytest

import rlenv
from rlenv.envs.tools.bank import TOOLS, Bank, bank_tasks, snapshot
from rlenv.tools import ParsedCall, Toolbox, get_parser

TASKS = bank_tasks()


def hermes(name: str, /, **arguments) -> str:
    return get_parser("hermes").render([ParsedCall(name, arguments)])


def play(env: Bank, actions: list[str]):
    """Step each action; return the last step's reward and verdict."""
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return reward, info["verdict"]
    raise AssertionError("the episode did not end")


def play_gold(env: Bank):
    """Play gold actions, each computed after the previous step, until the episode ends."""
    for _ in range(env.max_turns):
        _, reward, terminated, truncated, info = env.step(env.gold_action())
        if terminated or truncated:
            return reward, info["verdict"]
    raise AssertionError("the gold plan did not end the episode")


def gold_calls(env: Bank) -> list[dict]:
    return env.task.metadata["gold_calls"]


def calls_as_actions(calls: list[dict]) -> list[str]:
    return [hermes(call["name"], **call["arguments"]) for call in calls]


def finish(summary: str = "done") -> str:
    return hermes("done", summary=summary)


@pytest.fixture(scope="module")
def env() -> Bank:
    return rlenv.make("rlenv/Bank-v0").unwrapped


def test_the_task_set_is_large_varied_and_includes_refusals():
    assert len(TASKS) >= 40
    kinds = {task.metadata["kind"] for task in TASKS}
    assert len(kinds) >= 8
    refusals = [task for task in TASKS if task.metadata["refuse"]]
    assert len(refusals) >= 5
    for task in refusals:  # refusing means the database must not change
        assert task.metadata["expected_state"] == snapshot(task.metadata["initial_state"])
    tool_names = {tool.name for tool in TOOLS}
    assert 6 <= len(tool_names) <= 10 and "done" in tool_names


@pytest.mark.parametrize("task_id", [task.id for task in TASKS])
def test_every_gold_plan_earns_full_reward(env, task_id):
    env.reset(options={"task_id": task_id})
    reward, verdict = play_gold(env)
    assert reward == 1.0, verdict
    assert verdict.components == {"state": 1.0, "required_calls": 1.0, "no_extra_changes": 1.0}


def test_gold_action_follows_the_trace(env):
    env.reset(options={"task_id": "half-savings-0"})
    first = env.gold_action()
    assert json.loads(first.split("\n")[1])["name"] == "find_customer"
    env.step("Let me think first.\n" + hermes("get_balance", account_id="ACC-9999"))
    assert env.gold_action() == first  # a failed detour does not advance the plan
    env.step(first)
    assert env.gold_action() != first


def _wrong_amount_plan(calls):
    changed = [dict(call, arguments=dict(call["arguments"])) for call in calls]
    for call in changed:
        if call["name"] == "transfer":
            call["arguments"]["amount_cents"] += 1
    return changed


def test_a_wrong_amount_earns_zero_and_names_the_balances(env):
    env.reset(options={"task_id": "half-savings-0"})
    reward, verdict = play(env, [*calls_as_actions(_wrong_amount_plan(gold_calls(env))), finish()])
    assert reward == 0.0
    assert verdict.components["state"] == 0.0 and verdict.components["required_calls"] == 0.0
    assert "balance_cents" in verdict.reason and "transfer" in verdict.reason
    assert verdict.error == verdict.reason and len(verdict.reason) <= 1500


def test_the_wrong_account_earns_zero(env):
    env.reset(options={"task_id": "pay-customer-0"})
    calls = gold_calls(env)
    pay = next(call for call in calls if call["name"] == "transfer")
    wrong_target = next(
        account_id
        for account_id in env.state["accounts"]
        if account_id not in (pay["arguments"]["from_account"], pay["arguments"]["to_account"])
        and env.state["accounts"][account_id]["status"] == "open"
    )
    wrong = dict(pay, arguments={**pay["arguments"], "to_account": wrong_target})
    actions = calls_as_actions([call for call in calls if call is not pay] + [wrong])
    reward, verdict = play(env, [*actions, finish()])
    assert reward == 0.0
    assert wrong_target in verdict.reason and pay["arguments"]["to_account"] in verdict.reason


def test_an_extra_transfer_is_destructive_even_when_undone(env):
    env.reset(options={"task_id": "split-cheque-0"})
    calls = gold_calls(env)
    pay = next(call for call in calls if call["name"] == "transfer")
    there = hermes("transfer", **{**pay["arguments"], "amount_cents": 100})
    back = hermes(
        "transfer",
        from_account=pay["arguments"]["to_account"],
        to_account=pay["arguments"]["from_account"],
        amount_cents=100,
    )
    reward, verdict = play(env, [*calls_as_actions(calls), there, back, finish()])
    assert reward == 0.0  # balances match again, but the log and the plan do not
    assert verdict.components["no_extra_changes"] == 0.0
    assert "state-changing calls not in the plan: transfer(" in verdict.reason
    assert "transactions" in verdict.reason


def test_finishing_early_earns_zero_and_names_the_missing_calls(env):
    env.reset(options={"task_id": "close-savings-0"})
    lookups = [
        call for call in gold_calls(env) if call["name"] in ("find_customer", "list_accounts")
    ]
    reward, verdict = play(env, [*calls_as_actions(lookups), finish("all done")])
    assert reward == 0.0
    assert verdict.components == {"state": 0.0, "required_calls": 0.0, "no_extra_changes": 1.0}
    assert "close_account" in verdict.reason and "closed" in verdict.reason


def test_refusing_when_it_should_act_earns_zero(env):
    env.reset(options={"task_id": "conditional-transfer-0"})  # the money is there
    checks = [call for call in gold_calls(env) if call["name"] != "transfer"]
    reward, verdict = play(env, [*calls_as_actions(checks), finish("Not enough money.")])
    assert reward == 0.0 and verdict.components["state"] == 0.0


def test_a_refusal_is_rewarded_only_when_nothing_changed(env):
    env.reset(options={"task_id": "conditional-transfer-1"})  # the money is not there
    assert env.task.metadata["refuse"]
    reward, verdict = play_gold(env)
    assert reward == 1.0, verdict
    # Attempting the transfer anyway fails inside the tool and changes nothing: still fine.
    env.reset(options={"task_id": "conditional-transfer-1"})
    source = env.task.metadata["required_calls"][0]["arguments"]["account_id"][0]
    attempt = hermes("transfer", from_account=source, to_account="ACC-2002", amount_cents=10**9)
    reward, verdict = play(env, [*calls_as_actions(gold_calls(env)), attempt, finish("no")])
    assert reward == 1.0, verdict
    # Moving part of the money instead of refusing is a state change.
    env.reset(options={"task_id": "conditional-transfer-1"})
    partial = hermes("transfer", from_account=source, to_account="ACC-2002", amount_cents=100)
    reward, verdict = play(env, [*calls_as_actions(gold_calls(env)), partial, finish("some")])
    assert reward == 0.0 and verdict.components["state"] == 0.0
    # Refusing without looking at the balance misses the required check.
    env.reset(options={"task_id": "conditional-transfer-1"})
    reward, verdict = play(env, [finish("Not enough money.")])
    assert reward == 0.0 and verdict.components == {
        "state": 1.0,
        "required_calls": 0.0,
        "no_extra_changes": 1.0,
    }
    assert "get_balance" in verdict.reason


def test_a_plain_text_answer_ends_the_episode_and_is_graded(env):
    env.reset(options={"task_id": "cash-withdrawal-1"})  # a frozen account: refuse
    actions = calls_as_actions(gold_calls(env))
    _, reward, terminated, _, info = env.step(actions[0])
    env.step(actions[1])
    _, reward, terminated, _, info = env.step("The savings account is frozen, sorry.")
    assert terminated and reward == 1.0, info["verdict"]


def test_same_operations_in_another_order_with_other_memos_pass(env):
    env.reset(options={"task_id": "stolen-card-0"})
    calls = gold_calls(env)
    reordered = [calls[0], calls[1], calls[4], calls[3], calls[2]]
    reordered = [
        dict(call, arguments={**call["arguments"], "memo": "for safety"})
        if call["name"] == "transfer"
        else call
        for call in reordered
    ]
    reward, verdict = play(env, [*calls_as_actions(reordered), finish()])
    assert reward == 1.0, verdict


def test_tools_refuse_with_clear_messages(env):
    env.reset(options={"task_id": "cash-withdrawal-1"})
    box, hidden = Toolbox(TOOLS), {"state": env.state}
    unknown = box.run("get_balance", {"account_id": "ACC-0"}, hidden=hidden)
    assert not unknown.ok and "UnknownIdError: no account with id 'ACC-0'" in unknown.content
    nobody = box.run("list_accounts", {"customer_id": "C-999"}, hidden=hidden)
    assert "no customer with id 'C-999'" in nobody.content
    card = box.run("freeze_card", {"card_id": "1234"}, hidden=hidden)
    assert "no card with id '1234'" in card.content and "last4" in card.content
    accounts = [a for a in env.state["accounts"].values() if a["status"] == "open"]
    poor, other = accounts[0], accounts[1]
    too_much = poor["balance_cents"] + 1
    broke = box.run(
        "transfer",
        {"from_account": poor["id"], "to_account": other["id"], "amount_cents": too_much},
        hidden=hidden,
    )
    assert "InsufficientFundsError" in broke.content and str(too_much) in broke.content
    frozen = next(a for a in env.state["accounts"].values() if a["status"] == "frozen")
    cold = box.run("withdraw", {"account_id": frozen["id"], "amount_cents": 100}, hidden=hidden)
    assert "AccountNotOpenError" in cold.content and "frozen" in cold.content
    negative = box.run("deposit", {"account_id": poor["id"], "amount_cents": -5}, hidden=hidden)
    assert "must be positive" in negative.content
    closing = box.run("close_account", {"account_id": poor["id"]}, hidden=hidden)
    assert "move the money out" in closing.content
    nameless = box.run("find_customer", {"name": "Zzyzx"}, hidden=hidden)
    assert "no customer matches" in nameless.content
    assert env.state == env.task.metadata["initial_state"]  # failed calls changed nothing


def test_find_customer_matches_words_and_namesakes_are_told_apart(env):
    env.reset(options={"task_id": "half-savings-0"})
    box, hidden = Toolbox(TOOLS), {"state": env.state}
    name = env.state["customers"]["C-101"]["name"]
    first = name.split()[0]
    both = json.loads(box.run("find_customer", {"name": first.lower()}, hidden=hidden).content)
    assert len(both) >= 2  # the subject has a namesake
    one = json.loads(box.run("find_customer", {"name": name}, hidden=hidden).content)
    assert one == [{"customer_id": "C-101", "name": name}]


def test_each_reset_gives_a_fresh_database(env):
    env.reset(options={"task_id": "split-cheque-0"})
    play_gold(env)
    assert env.state != env.task.metadata["initial_state"]
    env.reset(options={"task_id": "split-cheque-0"})
    assert env.state == env.task.metadata["initial_state"] and env.trace == []
    assert env.state is not env.task.metadata["initial_state"]


def test_tasks_are_deterministic():
    again = bank_tasks()
    assert [task.model_dump() for task in again] == [task.model_dump() for task in TASKS]
    first, second = Bank(), Bank()
    first.reset(options={"task_id": "lost-wallet-3"})
    second.reset(options={"task_id": "lost-wallet-3"})
    assert first.state == second.state


def test_the_system_prompt_and_tools_are_offered():
    obs, info = rlenv.make("rlenv/Bank-v0").reset(seed=0)
    assert obs[0]["role"] == "system" and "<tool_call>" in obs[0]["content"]
    assert [tool["function"]["name"] for tool in info["tools"]] == [t.name for t in TOOLS]
    assert "state" not in json.dumps(info["tools"])
