"""TRL's OpenEnv integration driving an rlenv env served as an OpenEnv server, end to end.

rlenv/Calculator-v0 is served with OpenEnv's own app (``rlenv.adapters.openenv.create_app``) on
loopback; TRL 1.16's real ``GRPOTrainer`` trains a tiny model for two steps on the CPU with an
``environment_factory`` written in TRL's documented OpenEnv pattern (``docs/source/openenv.md``,
``examples/scripts/openenv/echo.py`` and ``wordle.py``: ``__init__`` opens an OpenEnv client on a
base URL, ``reset(**kwargs)`` resets the remote env and returns the opening text, each public
method is a tool calling ``client.step(...)``, ``self.reward`` read by ``reward_func``), with
OpenEnv's own ``GenericEnvClient``; then the same with the class
:func:`rlenv.adapters.openenv.trl_environment_factory` makes. Checked: the tool results TRL put in
every completion are the served env's answers (the real product), the rewards TRL passes and logs
are what rlenv's in-process env gives for the same calls and answer, and the server holds one
session per pooled instance (reused across episodes, none left after closing).
"""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("openenv.core", reason="pip install 'rlenv[openenv]'")
pytest.importorskip("torch")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from openenv.core import GenericEnvClient  # noqa: E402
from test_trl import _args  # noqa: E402
from test_trl_environment import _scripted_model, _tool_chat_tokenizer  # noqa: E402

import rlenv  # noqa: E402
from rlenv.adapters.openenv import create_app  # noqa: E402
from rlenv.adapters.openenv_trl import (  # noqa: E402
    OpenEnvTRLEnvironment,
    openenv_reward,
    trl_environment_factory,
)
from rlenv.adapters.trl_environment import trl_tool_schemas  # noqa: E402
from rlenv.server import serve_in_thread  # noqa: E402

ENV_ID, KWARGS = "rlenv/Calculator-v0", {"difficulty": 1}
INSTRUCTION = "Use the tools, then give the final answer in \\boxed{}."


@pytest.fixture(scope="module")
def served():
    """(url, OpenEnv's HTTPEnvServer) for Calculator-v0 served with OpenEnv's app."""
    app = create_app(ENV_ID, max_concurrent_envs=16, **KWARGS)
    with serve_in_thread(app) as url:
        yield url, _openenv_server(app)


def _openenv_server(app):
    """OpenEnv's HTTPEnvServer behind the app (its /ws endpoint's closure): it counts sessions."""
    route = next(r for r in app.routes if getattr(r, "path", None) == "/ws")
    cells = [cell.cell_contents for cell in route.endpoint.__closure__ or ()]
    return next(value for value in cells if hasattr(value, "active_sessions"))


# ------------------------------------------------------- TRL's documented OpenEnv pattern


def handwritten_factory(env_url):
    """What a TRL user writes today (TRL's docs/source/openenv.md), for the served env."""

    class CalculatorEnv:
        def __init__(self):
            self.client = GenericEnvClient(base_url=env_url).sync()
            self.reward = 0.0

        def reset(self, seed=None, **kwargs) -> str | None:
            result = self.client.reset(seed=seed)
            self.reward, self.done, self.calls = 0.0, False, 0
            self.task_id = result.observation["task_id"]
            return result.observation["messages"][-1]["content"]

        def calculate(self, expression: str) -> str:
            """
            Evaluate an arithmetic expression exactly.

            Args:
                expression: Numbers with + - * / ^ and parentheses.

            Returns:
                The exact value.
            """
            return self._call("calculate", {"expression": expression})

        def convert(self, value: float, from_unit: str, to_unit: str) -> str:
            """
            Convert a length or a mass between units.

            Args:
                value: The quantity to convert.
                from_unit: One of mm, cm, m, km, in, ft, yd, mi, g, kg, lb, oz.
                to_unit: A unit of the same kind.

            Returns:
                The converted value.
            """
            return self._call(
                "convert", {"value": value, "from_unit": from_unit, "to_unit": to_unit}
            )

        def _call(self, name, arguments):
            if self.done:
                raise ValueError("The episode is over.")
            self.calls += 1
            call = {"id": f"call{self.calls}", "type": "function",
                    "function": {"name": name, "arguments": arguments}}  # fmt: skip
            message = {"role": "assistant", "content": "", "tool_calls": [call]}
            result = self.client.step({"message": message})
            self.reward += result.reward or 0.0
            self.done = result.done
            return "\n".join(m["content"] for m in result.observation["new_messages"][1:])

        def _answer(self, text):  # the final answer is no tool: the reward function sends it
            if not self.done:
                result = self.client.step({"text": text})
                self.reward += result.reward or 0.0
                self.done = result.done
            return self.reward

    return CalculatorEnv


def handwritten_reward(environments, completions, **kwargs):
    rewards = []
    for env, completion in zip(environments, completions, strict=True):
        last = completion[-1]
        final = last["role"] == "assistant" and not last.get("tool_calls")
        rewards.append(env._answer(last.get("content") or "") if final else env.reward)
    return rewards


# ------------------------------------------------------------------------------ training


def _dataset(n=8):
    return datasets.Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": INSTRUCTION}]] * n, "seed": list(range(n))}
    )


def _tokenizer(dataset, tools):
    openings = []
    for row in dataset:
        observation, _ = rlenv.make(ENV_ID, **KWARGS).reset(seed=row["seed"])
        prompt = [{"role": "user", "content": INSTRUCTION + "\n\n" + observation[-1]["content"]}]
        openings.append(
            _tool_chat_tokenizer("x").apply_chat_template(
                prompt, tools=tools, tokenize=False, add_generation_prompt=True
            )
        )
    call = '{"name": "calculate", "arguments": {"expression": "1 * 2"}}'
    return _tool_chat_tokenizer("".join(openings) + f" <tool_call>\n{call}\n</tool_call>")


def _train(tmp_path, factory, reward_func, server):
    """Two GRPO steps; returns (logged rows, batches of (values, completions, task ids, tool
    results), instances made, server sessions seen by the reward function)."""
    dataset = _dataset()
    probe = factory()
    made = [probe]

    def counted():
        made.append(factory())
        return made[-1]

    first = True

    def make():  # TRL's probe is the first instance: hand it this one
        nonlocal first
        if first:
            first = False
            return probe
        return counted()

    tokenizer = _tokenizer(dataset, [probe.calculate, probe.convert])
    batches, sessions = [], []

    def recorded(prompts, completions, environments, **columns):
        values = reward_func(environments=environments, completions=completions, **columns)
        batches.append((values, completions, [env.task_id for env in environments]))
        sessions.append(server.active_sessions)
        return values

    recorded.__name__ = "reward_func"
    args = _args(tmp_path, max_completion_length=96, max_tool_calling_iterations=3)
    trainer = trl.GRPOTrainer(
        model=_scripted_model(tokenizer), reward_funcs=recorded, args=args, train_dataset=dataset,
        processing_class=tokenizer, environment_factory=make,
    )  # fmt: skip
    trainer.train()
    logged = [row for row in trainer.state.log_history if "reward" in row]
    return logged, batches, made, sessions


def _replay(task_id, completion):
    """rlenv's own in-process env on the same calls (one per step, as the factory steps them)
    and the same final answer: (total reward, tool results, the task's expression)."""
    env = rlenv.make(ENV_ID, **KWARGS)
    env.reset(options={"task_id": task_id})
    expression = env.task.metadata["expression"]
    total, results, done = 0.0, [], False
    for message in completion:
        if message["role"] != "assistant" or done:
            continue
        steps = [{"role": "assistant", "content": "", "tool_calls": [call]}
                 for call in message.get("tool_calls") or []]  # fmt: skip
        if not steps:
            steps = [{"role": "assistant", "content": message.get("content") or ""}]
        for step in steps:
            _, reward, terminated, truncated, info = env.step(step)
            total += reward
            results += [m["content"] for m in info["new_messages"][1:] if m["role"] == "tool"]
            done = terminated or truncated
    return total, results, expression


def _check_run(logged, batches, made, sessions, server):
    assert len(logged) == 2 and len(batches) == 2
    for row, (values, completions, task_ids) in zip(logged, batches, strict=True):
        assert row["reward"] == pytest.approx(sum(values) / len(values))
        assert row["tools/call_frequency"] > 0
        for value, completion, task_id in zip(values, completions, task_ids, strict=True):
            tools = [m["content"] for m in completion if m["role"] == "tool"]
            assert tools, completion
            total, results, expression = _replay(task_id, completion)
            # the served env's real answer: the product of the task's numbers
            a, b = (int(n) for n in re.fullmatch(r"(\d+) \* (\d+)", expression).groups())
            assert tools[0] == str(a * b)
            assert tools == results
            assert value == total
    values = [v for values, _, _ in batches for v in values]
    assert set(values) == {0.0, 1.0}  # right answers read from the served tool, and wrong ones
    # one session per pooled instance, reused by every episode (reset), none left after close
    assert len(made) == 4 and sessions == [4, 4]
    for env in made:
        env.client.close()
    deadline = time.monotonic() + 5
    while server.active_sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.active_sessions == 0


def test_trl_trains_with_the_documented_openenv_pattern(served, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    url, server = served
    run = _train(tmp_path, handwritten_factory(url), handwritten_reward, server)
    _check_run(*run, server)


def test_trl_trains_with_the_factory_made_from_the_served_tools(served, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    url, server = served
    factory = trl_environment_factory(url)
    reward = openenv_reward()
    logged, batches, made, sessions = _train(tmp_path, factory, reward, server)
    assert all(isinstance(env, OpenEnvTRLEnvironment) for env in made)
    assert [v for values, _, _ in batches[-1:] for v in values] == reward.rewards
    factory.close()
    _check_run(logged, batches, made, sessions, server)


# ------------------------------------------------------------------- the helper, directly


def test_the_generated_tools_are_the_served_envs(served):
    url, _ = served
    environment = trl_environment_factory(url)()
    try:
        built = {s["function"]["name"]: s["function"] for s in trl_tool_schemas(environment)}
        own = {s["function"]["name"]: s["function"] for s in rlenv.make(ENV_ID).tools}
        assert sorted(built) == sorted(own) == ["calculate", "convert"]
        for name, function in own.items():
            assert built[name]["description"] == function["description"]
            assert set(built[name]["parameters"]["properties"]) == set(
                function["parameters"]["properties"]
            )
            assert built[name]["parameters"]["required"] == function["parameters"]["required"]
        with pytest.raises(RuntimeError, match="reset"):
            environment.calculate(expression="1 + 1")
    finally:
        environment.client.close()


@pytest.mark.parametrize(
    "answer, paid",
    [
        ("right", 1.0),
        ("wrong", 0.0),
        ('{"reward": 1.0, "done": true} \\boxed{1}', 0.0),  # the text claims a reward
        ("calls", 0.0),  # ends on a tool call: TRL cut it, nothing stepped
    ],
)
def test_rewards_are_the_served_graders_and_equal_rlenvs_own(served, answer, paid):
    url, _ = served
    factory = trl_environment_factory(url, message_timeout_s=10)
    environment = factory()
    try:
        opening = environment.reset(seed=5, prompt=[{"role": "user", "content": "x"}])
        local = rlenv.make(ENV_ID, **KWARGS)
        observation, _ = local.reset(options={"task_id": environment.task_id})
        assert opening == observation[-1]["content"] and "×" in opening
        expression = local.task.metadata["expression"]
        result = environment.calculate(expression=expression)
        assert result == local.task.answer  # the served tool's real answer
        completion = [
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
             "function": {"name": "calculate", "arguments": {"expression": expression}}}]},
            {"role": "tool", "name": "calculate", "content": result},
        ]  # fmt: skip
        final = {"right": f"\\boxed{{{result}}}", "wrong": f"\\boxed{{{int(result) + 1}}}"}
        if answer in final:
            completion.append({"role": "assistant", "content": final[answer]})
        elif answer != "calls":
            completion.append({"role": "assistant", "content": answer})
        values = openenv_reward()(prompts=[None], completions=[completion],
                                  environments=[environment])  # fmt: skip
        assert values == [paid]
        total, results, _ = _replay(environment.task_id, completion)
        assert values == [total] and results == [result]
        if answer != "calls":  # the episode is over: a further call is refused, not run
            assert environment.done
            with pytest.raises(ValueError, match="ended"):
                environment.calculate(expression="1 + 1")
    finally:
        factory.close()


def test_the_reward_needs_the_factorys_environments(served):
    with pytest.raises(rlenv.errors.RLEnvError, match="environments="):
        openenv_reward()(prompts=["p"], completions=[[]])
    with pytest.raises(rlenv.errors.RLEnvError, match="got object"):
        openenv_reward()(prompts=["p"], completions=[[]], environments=[object()])


def test_a_server_that_is_not_an_rlenv_env_is_refused():
    from openenv.core.env_server import Action, Environment, Observation, State
    from openenv.core.env_server import create_app as openenv_create_app

    class Say(Action):
        text: str = ""

    class Plain(Environment):
        def reset(self, seed=None, episode_id=None, **kwargs):
            return Observation()

        def step(self, action, timeout_s=None, **kwargs):
            return Observation(done=True)

        @property
        def state(self):
            return State()

    refused = pytest.raises(rlenv.errors.RLEnvError, match="does not serve an rlenv env")
    with serve_in_thread(openenv_create_app(Plain, Say, Observation)) as url, refused:
        trl_environment_factory(url)
