"""Retail-v0 and UserSimEnv: the gold agent passes every task with the scripted customer; doing
nothing, handing over, skipping verification, acting for another customer, or never telling the
customer what they asked earn 0; only the user ends the dialogue; model users are prompted from
their side, seeded, and their failures are not the agent's."""

from __future__ import annotations

import pytest

import rlenv
from rlenv.envs.tools.retail import Retail, retail_tasks, snapshot
from rlenv.rollout import ScriptedPolicy
from rlenv.tools import ParsedCall, get_parser
from rlenv.tools.dialogue import STOP, PolicyUser, ScriptedUser, UserGoal, outputs_said

TASKS = retail_tasks()
TASK_IDS = [task.id for task in TASKS]


def call(name: str, /, **arguments) -> str:
    return get_parser("hermes").render([ParsedCall(name, arguments)])


def run(env, actions):
    """Step each action until the episode ends; returns (reward, verdict, observation, info)."""
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return reward, info["verdict"], observation, info
    return None, None, observation, info


def play_gold(env):
    for _ in range(env.max_turns):
        observation, reward, terminated, truncated, info = env.step(env.gold_action())
        if terminated or truncated:
            return reward, info["verdict"], observation, terminated
    raise AssertionError("the gold agent did not finish")


@pytest.fixture()
def env() -> Retail:
    return rlenv.make("rlenv/Retail-v0").unwrapped


def test_the_task_set_has_at_least_40_tasks_in_11_kinds_and_is_deterministic():
    assert len(TASKS) >= 40 and len(set(TASK_IDS)) == len(TASKS)
    assert len({task.metadata["kind"] for task in TASKS}) == 11
    again = retail_tasks()
    assert [t.metadata for t in again] == [t.metadata for t in TASKS]


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_the_gold_agent_passes_every_task_and_the_user_ends_the_dialogue(env, task_id):
    env.reset(options={"task_id": task_id})
    reward, verdict, observation, terminated = play_gold(env)
    assert terminated and reward == 1.0, verdict.reason
    assert verdict.components == {"state": 1.0, "outputs": 1.0}
    if env.task.metadata["kind"] != "transfer":  # the hand-off ends it; otherwise the user does
        assert observation[-1]["role"] == "user" and STOP in observation[-1]["content"]


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_an_agent_that_only_chats_earns_nothing(env, task_id):
    """Every task changes the database or asks for something only a lookup tells: asking
    "anything else?" until the customer leaves never pays."""
    env.reset(options={"task_id": task_id})
    reward, verdict, _, _ = run(env, ["Sure! Is there anything else I can help you with?"] * 10)
    assert reward == 0.0 and verdict.scored
    assert verdict.components["state"] == 0.0 or verdict.components["outputs"] == 0.0


def test_handing_every_customer_over_earns_nothing_outside_the_hand_off_tasks(env):
    paid = set()
    for task_id in TASK_IDS:
        env.reset(options={"task_id": task_id})
        reward, verdict, _, _ = run(env, [call("transfer_to_human_agents", summary="help")])
        if reward:
            paid.add(env.task.metadata["kind"])
        else:
            assert "transfers: 1 != 0" in verdict.reason
    assert paid == {"transfer"}


def test_changes_need_a_verified_customer_and_three_wrong_codes_lock_it(env):
    env.reset(options={"task_id": "cancel-0"})
    meta = env.task.metadata
    user = meta["initial_state"]["users"][meta["user_id"]]
    order_id = next(s for s in meta["gold_steps"] if s.get("name") == "cancel_pending_order")[
        "arguments"
    ]["order_id"]
    env.step(call("cancel_pending_order", order_id=order_id, reason="ordered by mistake"))
    assert "does not belong to a customer identified" in env.trace[-1].content
    env.step(call("find_user_id_by_email", email=user["email"]))
    env.step(call("cancel_pending_order", order_id=order_id, reason="ordered by mistake"))
    assert "is not verified" in env.trace[-1].content
    env.step(call("send_verification_code", user_id=meta["user_id"]))
    for guess in ["000000", "123456", "999999"]:
        env.step(call("verify_user", user_id=meta["user_id"], code=guess))
        assert "wrong code" in env.trace[-1].content
    code = meta["initial_state"]["_codes"][meta["user_id"]]
    env.step(call("verify_user", user_id=meta["user_id"], code=code))
    assert "locked" in env.trace[-1].content  # even the right code, after three wrong ones
    assert snapshot(env.state) == snapshot(meta["initial_state"])


def test_the_agent_cannot_act_for_another_customer_whose_phone_it_cannot_read(env):
    """Dual control: identifying the partner is possible, verifying them is not (the code goes
    to the partner's phone, which the customer does not hold)."""
    env.reset(options={"task_id": "other-user-0"})
    meta = env.task.metadata
    state = meta["initial_state"]
    foreign = next(o for o in state["orders"].values() if o["user_id"] != meta["user_id"]
                   and o["status"] == "pending")  # fmt: skip
    partner = state["users"][foreign["user_id"]]
    env.step(call("find_user_id_by_email", email=partner["email"]))
    env.step(call("send_verification_code", user_id=partner["user_id"]))
    _, _, _, _, info = env.step("I texted a code. Please read me the verification code.")
    assert "haven't received any code" in info["new_messages"][-1]["content"]
    assert env.user_device() == []  # the customer's phone: nothing arrived there
    env.step(call("cancel_pending_order", order_id=foreign["order_id"], reason="no longer needed"))
    assert "is not verified" in env.trace[-1].content


def test_required_outputs_count_only_when_told_to_the_customer_outside_reasoning(env):
    env.reset(options={"task_id": "return-0"})
    steps = env.task.metadata["gold_steps"]
    (refund,) = env.task.metadata["outputs"]
    actions = []
    for step in steps:
        if "say" not in step:
            actions.append(call(step["name"], **step["arguments"]))
        elif refund.replace(".", "") in step["say"].replace(",", "").replace(".", ""):
            # the confirmation and the closing message, the amount only in the reasoning
            said = "Shall I proceed (yes/no)?" if "proceed" in step["say"] else "Anything else?"
            actions.append(f"<think>the refund is {refund}</think>{said}")
        else:
            actions.append(step["say"])
    reward, verdict, observation, _ = run(env, actions)
    assert reward == 0.0 and verdict.components == {"state": 1.0, "outputs": 0.0}
    assert f"{refund!r}" in verdict.reason
    assert all("<think>" not in text and refund not in text for text in env.said[-1:])


def test_outputs_said_follows_tau_bench_lower_case_and_commas_removed():
    assert outputs_said(["1093.34"], ["You get $1,093.34 back."]) == {"1093.34": True}
    assert outputs_said(["Blue"], ["the BLUE one"]) == {"Blue": True}
    assert outputs_said(["1093.34"], ["You get $1,093.35 back."]) == {"1093.34": False}


def test_a_wrong_refund_method_leaves_a_different_database(env):
    env.reset(options={"task_id": "return-1"})  # the refund goes to the gift card
    meta = env.task.metadata
    actions = []
    for step in meta["gold_steps"]:
        if step.get("name") == "return_delivered_order_items":
            order = meta["initial_state"]["orders"][step["arguments"]["order_id"]]
            original = order["payments"][0]["payment_method_id"]
            assert original != step["arguments"]["payment_method_id"]
            arguments = {**step["arguments"], "payment_method_id": original}
            actions.append(call(step["name"], **arguments))
        elif "say" in step:
            actions.append(step["say"])
        else:
            actions.append(call(step["name"], **step["arguments"]))
    reward, verdict, _, _ = run(env, actions)
    assert reward == 0.0 and verdict.components["state"] == 0.0
    assert "payment_method_id" in verdict.reason


def test_only_the_user_ends_the_dialogue(env):
    env.reset(options={"task_id": "cancel-1"})
    for text in ["###STOP###", "Goodbye! ###STOP###", "<tool_call>not json</tool_call>"]:
        _, _, terminated, truncated, info = env.step(text)
        assert not terminated and not truncated
    assert info["user_turns"] == 2  # the malformed call went to the tools, not the user


def test_the_scripted_user_answers_what_is_asked_and_reads_its_phone():
    goal = UserGoal(
        instruction="x",
        opening="I want a refund.",
        facts=((("email",), "a@b.c"), (("order number",), "#W1")),
        requests=("And my address?",),
    )
    phone: list[str] = []
    user = ScriptedUser()
    assert user.start(goal, lambda: list(phone)) == "I want a refund."
    assert user.reply("Your email and the order number?") == "a@b.c #W1"
    assert "haven't received" in user.reply("What is the verification code?")
    assert "zip" not in user.reply("Your zip code?")  # not mistaken for a verification code
    phone.append("Your code is 482913.")
    assert user.reply("Please read me the code.") == "The code on my phone is 482913."
    assert user.reply("Shall I proceed (yes/no)?") == "Yes, please go ahead."
    assert "I want a refund." in user.reply("Lorem ipsum")
    assert user.reply("Anything else?") == "And my address?"
    assert user.reply("Is there anything else?").endswith(STOP)


def test_a_model_user_sees_the_dialogue_from_its_side_with_its_goal_and_phone():
    seen = []

    def customer(conversation):
        seen.append(conversation)
        return "<think>hmm</think>My email is a@b.c."

    env = rlenv.make("rlenv/Retail-v0", user=customer).unwrapped
    observation, _ = env.reset(options={"task_id": "cancel-0"})
    assert observation[-1] == {"role": "user", "content": "My email is a@b.c."}
    first = seen[0]
    assert (
        first[0]["role"] == "system"
        and env.task.metadata["user_goal"]["instruction"] in (first[0]["content"])
    )
    assert first[1] == {"role": "user", "content": "Hi! How can I help you today?"}
    meta = env.task.metadata
    user = meta["initial_state"]["users"][meta["user_id"]]
    env.step(call("find_user_id_by_email", email=user["email"]))
    env.step(call("send_verification_code", user_id=meta["user_id"]))
    env.step("<think>plan</think>What is the code?")
    last = seen[-1]
    assert [m["role"] for m in last[1:]] == ["user", "assistant", "user"]
    code = meta["initial_state"]["_codes"][meta["user_id"]]
    assert last[-1]["content"].startswith("[On your phone, a new message:")
    assert code in last[-1]["content"] and last[-1]["content"].endswith("What is the code?")
    assert "plan" not in last[-1]["content"]  # the agent's reasoning never reaches the user


@pytest.mark.parametrize(
    "user, why",
    [(lambda conversation: None, "TypeError"), (lambda conversation: 1 / 0, "ZeroDivision")],
)
def test_a_failing_user_simulator_is_not_scored_against_the_agent(user, why):
    env = rlenv.make("rlenv/Retail-v0", user=user).unwrapped
    env.reset(options={"task_id": "cancel-0"})
    _, reward, terminated, _, info = env.step("Hello, how can I help?")
    assert terminated and reward == 0.0
    assert not info["verdict"].scored and why in info["verdict"].reason


def test_bad_user_arguments_are_refused_with_what_to_give():
    with pytest.raises(ValueError, match="rlenv Policy or a function"):
        rlenv.make("rlenv/Retail-v0", user=42)
    with pytest.raises(ValueError, match="max_user_turns"):
        rlenv.make("rlenv/Retail-v0", max_user_turns=0)


def test_out_of_user_turns_ends_with_reward_zero():
    env = rlenv.make("rlenv/Retail-v0", max_user_turns=2).unwrapped
    env.reset(options={"task_id": "cancel-0"})
    reward, verdict, _, _ = run(env, ["Hello?", "Hello?", "Hello?"])
    assert reward == 0.0 and verdict.error == "max_user_turns"


def test_a_policy_user_is_seeded_per_task_and_turn():
    policy = ScriptedPolicy(answers=["Hi, cancel my order please."])
    calls = []
    original = policy.generate

    def generate(conversations, tools, params):
        calls.append(params)
        return original(conversations, tools, params)

    policy.generate = generate
    env = rlenv.make("rlenv/Retail-v0", user=policy, user_seed=3).unwrapped
    for _ in range(2):
        env.reset(options={"task_id": "cancel-0"})
        env.step("Which order?")
    env.reset(options={"task_id": "cancel-1"})
    seeds = [params.seed for params in calls]
    assert seeds[0:2] == seeds[2:4] and seeds[0] != seeds[1]  # same task: same seeds, by turn
    assert seeds[4] != seeds[0]  # another task: another seed
    assert PolicyUser(policy).max_new_tokens == calls[0].max_new_tokens


def test_a_real_transformers_model_can_play_the_user():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from rlenv.rollout.transformers import TransformersPolicy
    from rlenv.testing import tiny_chat_model

    model, tokenizer = tiny_chat_model(0)
    policy = TransformersPolicy(model, tokenizer, device="cpu", name="tiny")
    replies = []
    for _ in range(2):
        env = rlenv.make("rlenv/Retail-v0", user=policy, user_seed=1).unwrapped
        observation, _ = env.reset(options={"task_id": "price-0"})
        _, _, terminated, truncated, info = env.step("Which product do you mean?")
        replies.append((observation[-1]["content"], info["new_messages"][-1]["content"]))
    assert replies[0] == replies[1]  # seeded: the same user, turn for turn
    assert all(isinstance(text, str) for text in replies[0])
