"""rlenv's ToolEnvs on TRL's environment_factory path: schemas, reset, tool calls and rewards
against rlenv's own step loop, refusals, and TRL's real GRPOTrainer for two steps on a CPU."""

from __future__ import annotations

import json
import random
import re
from typing import Literal

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
pytest.importorskip("datasets")

from test_trl import _args  # noqa: E402

import rlenv  # noqa: E402
from rlenv import GeneratedTasks, Task, Verdict  # noqa: E402
from rlenv.adapters.trl import TASK_KEY, build_dataset, reward_function  # noqa: E402
from rlenv.adapters.trl_environment import (  # noqa: E402
    EnvironmentFactoryError,
    TRLEnvironment,
    environment_factory,
    environment_reward,
    trl_tool_schemas,
)
from rlenv.handles import TaskTagError  # noqa: E402
from rlenv.tools import ToolEnv, tool  # noqa: E402


@tool(hidden=["state"])
def pick(
    color: Literal["red", "blue"],
    sizes: list[int],
    note: str | None = None,
    count: int = 1,
    state: dict | None = None,
) -> str:
    """Pick items of a color.

    Args:
        color: Which color.
        sizes: The sizes
            wanted, smallest first.
        note: Anything to add.
        count: How many.
    """
    state["picked"].append(color)
    return f"picked {count} {color}"


class Picker(ToolEnv):
    """A test ToolEnv: typed arguments (enum, array, nullable), a hidden state, a grade that
    pays 1 for 'red' picked and answered 'ok', and crashes on the answer 'boom'."""

    max_turns = 3

    def load_tools(self):
        return [pick]

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt=f"Pick red. {rng.randint(0, 9)}", answer=""))

    def new_state(self, task):
        return {"picked": []}

    def grade(self, answer):
        if answer == "boom":
            raise RuntimeError("grader down")
        return Verdict(reward=float(answer == "ok" and self.state["picked"] == ["red"]))


@pytest.fixture(autouse=True, scope="module")
def picker_env():
    rlenv.register("trlenvtest/Picker-v0", Picker)
    yield
    rlenv.unregister("trlenvtest/Picker-v0")


def _row(env_id, seed=0, **kwargs):
    return build_dataset(env_id, n_tasks=1, seed=seed, **kwargs)[0]


def _play_rlenv(env_id, kwargs, task_id, actions):
    """rlenv's own loop: step each action text; the transcript in TRL's message form."""
    env = rlenv.make(env_id, **kwargs)
    observation, _ = env.reset(options={"task_id": task_id})
    opening, total, done = len(observation), 0.0, False
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
        if done:
            break
    transcript = []
    for message in observation[opening:]:
        message = {k: v for k, v in message.items() if k != "tool_call_id"}
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {"type": "function", "function": dict(call["function"])}
                for call in message["tool_calls"]
            ]
        transcript.append(message)
    return total, info["verdict"], transcript, done


def _play_adapter(env_id, kwargs, row, transcript):
    """TRL's loop: reset with the row, call the methods of each assistant turn, score."""
    environment = environment_factory(env_id, **kwargs)()
    assert environment.reset(**row) is None
    completion, results = [], []
    for message in transcript:
        if message["role"] == "assistant":
            completion.append(message)
            for call in message.get("tool_calls") or []:
                function = call["function"]
                result = getattr(environment, function["name"])(**function["arguments"])
                results.append(result)
                completion.append({"role": "tool", "name": function["name"], "content": result})
        elif message["role"] == "user":  # an env's error note: not part of TRL's transcript
            continue
    reward = environment_reward()
    values = reward(prompts=[row["prompt"]], completions=[completion], environments=[environment])
    return values[0], reward.verdicts[0], results, environment


def _gold_actions(env_id, kwargs, task_id):
    env = rlenv.make(env_id, **kwargs)
    env.reset(options={"task_id": task_id})
    actions, done = [], False
    while not done:
        action = env.gold_action()
        actions.append(action)
        _, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    return actions


def _tool_texts(transcript):
    return [m["content"] for m in transcript if m["role"] == "tool"]


# ---------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize(
    "env_id, kwargs",
    [("rlenv/Calculator-v0", {}), ("rlenv/Bank-v0", {}), ("trlenvtest/Picker-v0", {})],
)
def test_the_schemas_trl_builds_are_the_envs(env_id, kwargs):
    environment = environment_factory(env_id, **kwargs)()
    built = {schema["function"]["name"]: schema["function"] for schema in
             trl_tool_schemas(environment)}  # fmt: skip
    # what TRL's _tokenize_prompts renders: get_json_schema of the bound methods
    from transformers.utils import get_json_schema

    assert built == {
        name: get_json_schema(getattr(environment, name))["function"] for name in built
    }
    own = {schema["function"]["name"]: schema["function"] for schema in environment.env.tools}
    assert sorted(built) == sorted(own)
    for name, function in own.items():
        mine = built[name]
        assert mine["description"] == function["description"]
        params, mine_params = function["parameters"], mine["parameters"]
        assert sorted(mine_params.get("required", [])) == sorted(params.get("required", []))
        assert set(mine_params["properties"]) == set(params["properties"])
        for argument, schema in params["properties"].items():
            theirs = mine_params["properties"][argument]
            assert theirs["description"] == schema.get("description", argument)
            if "type" in schema:
                assert theirs["type"] == schema["type"], (name, argument)
            if "enum" in schema:
                assert theirs["enum"] == schema["enum"]
            if "items" in schema:
                assert theirs["items"] == schema["items"]
    assert "state" not in json.dumps(built)  # hidden arguments stay hidden


def test_typed_and_nullable_arguments_keep_their_types():
    environment = environment_factory("trlenvtest/Picker-v0")()
    (schema,) = trl_tool_schemas(environment)
    properties = schema["function"]["parameters"]["properties"]
    assert properties["color"] == {"type": "string", "enum": ["red", "blue"],
                                   "description": "Which color."}  # fmt: skip
    assert properties["sizes"] == {"type": "array", "items": {"type": "integer"},
                                   "description": "The sizes wanted, smallest first."}  # fmt: skip
    assert properties["note"] == {"type": "string", "nullable": True,
                                  "description": "Anything to add."}  # fmt: skip
    assert schema["function"]["parameters"]["required"] == ["color", "sizes"]


def test_trl_sees_only_the_tools_as_methods():
    import inspect

    environment = environment_factory("rlenv/Calculator-v0")()
    public = [name for name, _ in inspect.getmembers(type(environment), inspect.isfunction)
              if not name.startswith("_")]  # fmt: skip
    assert sorted(public) == ["calculate", "convert", "reset"]  # no get_reward: see the docs


# ---------------------------------------------------------------------------------- reset


def test_reset_poses_the_tagged_task():
    row = _row("rlenv/Calculator-v0", seed=4, difficulty=1)
    environment = environment_factory("rlenv/Calculator-v0", difficulty=1)()
    assert environment.reset(**row) is None  # the prompt already holds the opening messages
    assert environment.env.task.id == row["task_id"]
    opening = [dict(m) for m in environment.env.messages]
    prompt = [{k: v for k, v in m.items() if k != TASK_KEY and v is not None}
              for m in row["prompt"]]  # fmt: skip
    assert opening == prompt
    other = _row("rlenv/Calculator-v0", seed=5, difficulty=1)
    environment.reset(**other)  # TRL reuses pooled instances: each reset is a new episode
    assert environment.env.task.id == other["task_id"] and environment.env.trace == []


def test_reset_refuses_rows_of_another_task_source():
    environment = environment_factory("rlenv/Calculator-v0", difficulty=1)()
    with pytest.raises(TaskTagError, match="build_dataset"):
        environment.reset(prompt=[{"role": "user", "content": "no tag"}])
    with pytest.raises(EnvironmentFactoryError, match="same env id and kwargs"):
        environment.reset(**_row("rlenv/Calculator-v0", difficulty=2))


# ---------------------------------------------------------------------------------- tools


def test_a_tool_call_runs_the_real_tool_on_its_episodes_state():
    factory = environment_factory("trlenvtest/Picker-v0")
    first, second = factory(), factory()
    first.reset(**_row("trlenvtest/Picker-v0", seed=0))
    second.reset(**_row("trlenvtest/Picker-v0", seed=1))
    assert first.pick(color="red", sizes=[1]) == "picked 1 red"
    assert first.env.state == {"picked": ["red"]} and second.env.state == {"picked": []}
    assert [outcome.name for outcome in first.env.trace] == ["pick"]
    # a bad call is the model's mistake: an error for the model, recorded, nothing raised
    assert first.pick(color="green", sizes=[1]).startswith("Error: invalid arguments")
    assert first.pick(sizes=[1]).startswith("Error: invalid arguments")
    assert first.pick(color="red", sizes=[1], shoe=3).startswith("Error: invalid arguments")
    assert [outcome.ok for outcome in first.env.trace] == [True, False, False, False]
    assert first.env.state == {"picked": ["red"]}


def test_a_call_before_reset_is_an_error():
    environment = environment_factory("trlenvtest/Picker-v0")()
    with pytest.raises(RuntimeError, match="reset"):
        environment.pick(color="red", sizes=[1])


# ---------------------------------------------------------------------------------- rewards


@pytest.mark.parametrize("seed", [0, 1])
def test_calculator_rewards_equal_rlenvs_own_loop(seed):
    kwargs = {"difficulty": 1}
    row = _row("rlenv/Calculator-v0", seed=seed, **kwargs)
    gold = _gold_actions("rlenv/Calculator-v0", kwargs, row["task_id"])
    wrong = [gold[0], "The answer is \\boxed{12}."]
    for actions, expected in ((gold, 1.0), (wrong, 0.0)):
        total, verdict, transcript, done = _play_rlenv("rlenv/Calculator-v0", kwargs,
                                                       row["task_id"], actions)  # fmt: skip
        assert done and total == expected
        value, mine, results, _ = _play_adapter("rlenv/Calculator-v0", kwargs, row, transcript)
        assert value == total and mine.reward == verdict.reward
        assert results == _tool_texts(transcript)


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_bank_rewards_equal_rlenvs_own_loop(seed):
    row = _row("rlenv/Bank-v0", seed=seed)
    gold = _gold_actions("rlenv/Bank-v0", {}, row["task_id"])
    total, verdict, transcript, _ = _play_rlenv("rlenv/Bank-v0", {}, row["task_id"], gold)
    assert total == 1.0
    value, mine, results, environment = _play_adapter("rlenv/Bank-v0", {}, row, transcript)
    assert value == 1.0 and mine.reason == verdict.reason
    assert results == _tool_texts(transcript)
    # skipping the state-changing calls: the finish tool alone, graded 0 by both
    finish = [gold[-1]]
    total, verdict, transcript, _ = _play_rlenv("rlenv/Bank-v0", {}, row["task_id"], finish)
    value, mine, _, _ = _play_adapter("rlenv/Bank-v0", {}, row, transcript)
    assert (value, mine.reward, mine.reason) == (total, verdict.reward, verdict.reason)
    assert total == 0.0


def test_parallel_calls_in_one_turn_equal_rlenvs_own_loop():
    row = _row("rlenv/Bank-v0", seed=3)
    gold = _gold_actions("rlenv/Bank-v0", {}, row["task_id"])
    merged = ["\n".join(gold[:3]), *gold[3:]]  # three calls in the first turn
    total, verdict, transcript, _ = _play_rlenv("rlenv/Bank-v0", {}, row["task_id"], merged)
    value, mine, results, _ = _play_adapter("rlenv/Bank-v0", {}, row, transcript)
    assert (value, mine.reason) == (total, verdict.reason) == (1.0, verdict.reason)
    assert len(results) == len(gold)


def test_the_final_answer_reaches_the_grader():
    row = _row("trlenvtest/Picker-v0")
    call = '<tool_call>{"name": "pick", "arguments": {"color": "red", "sizes": [2]}}</tool_call>'
    for answer, expected in (("ok", 1.0), ("not ok", 0.0)):
        total, _, transcript, _ = _play_rlenv("trlenvtest/Picker-v0", {}, row["task_id"],
                                              [call, answer])  # fmt: skip
        value, mine, _, environment = _play_adapter("trlenvtest/Picker-v0", {}, row, transcript)
        assert value == total == expected
        assert environment.reward == expected and environment.verdict is mine


def test_more_turns_than_max_turns_are_truncated_as_rlenv_does():
    row = _row("trlenvtest/Picker-v0")
    call = '<tool_call>{"name": "pick", "arguments": {"color": "blue", "sizes": [2]}}</tool_call>'
    red = call.replace("blue", "red")
    # three turns allowed: rlenv truncates before the answer; a naive adapter would pay 1
    actions = [call, red, red, "ok"]
    total, _, transcript, done = _play_rlenv("trlenvtest/Picker-v0", {}, row["task_id"], actions)
    assert done and total == 0.0 and len([m for m in transcript if m["role"] == "assistant"]) == 3
    trl_transcript = [*transcript, {"role": "assistant", "content": "ok"}]  # TRL went on
    value, mine, _, _ = _play_adapter("trlenvtest/Picker-v0", {}, row, trl_transcript)
    assert value == 0.0 and "max_turns" in mine.reason


def test_an_episode_trl_cut_on_a_tool_call_ends_with_what_it_earned():
    row = _row("trlenvtest/Picker-v0")
    message = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "pick",
                                          "arguments": {"color": "red", "sizes": [1]}}}]}  # fmt: skip
    value, verdict, _, _ = _play_adapter("trlenvtest/Picker-v0", {}, row, [message])
    assert value == 0.0 and verdict.scored and "TRL ended the episode" in verdict.reason


def test_an_unscored_verdict_is_none():
    row = _row("trlenvtest/Picker-v0")
    call = '<tool_call>{"name": "pick", "arguments": {"color": "red", "sizes": [2]}}</tool_call>'
    total, verdict, transcript, _ = _play_rlenv("trlenvtest/Picker-v0", {}, row["task_id"],
                                                [call, "boom"])  # fmt: skip
    assert verdict.scored is False
    value, mine, _, environment = _play_adapter("trlenvtest/Picker-v0", {}, row, transcript)
    assert value is None and mine.scored is False and environment.reward is None


def test_the_reward_function_needs_rlenvs_environments():
    reward = environment_reward()
    with pytest.raises(EnvironmentFactoryError, match="environment_factory"):
        reward(prompts=[[]], completions=[[]])
    with pytest.raises(EnvironmentFactoryError, match="rlenv environments"):
        reward(prompts=[[]], completions=[[]], environments=[object()])
    assert reward.__name__ == "rlenv_reward"


def test_hostile_final_answers_score_without_raising():
    from adapter_envs import HOSTILE

    row = _row("rlenv/Calculator-v0", difficulty=1)
    for text in HOSTILE:
        value, verdict, _, _ = _play_adapter(
            "rlenv/Calculator-v0", {"difficulty": 1}, row, [{"role": "assistant", "content": text}]
        )
        assert value == 0.0, (text[:40], verdict)


# ---------------------------------------------------------------------------------- which envs


def test_single_turn_envs_map_exactly():
    dataset = build_dataset("rlenv/Arithmetic-v0", n_tasks=2, difficulty=1)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    env.reset(options={"task_id": dataset[0]["task_id"]})
    right = env.gold_action()
    factory = environment_factory("rlenv/Arithmetic-v0", difficulty=1)
    prompts, completions, environments = [], [], []
    for row, text in ((dataset[0], right), (dataset[0], "\\boxed{x}"), (dataset[1], "")):
        environment = factory()
        environment.reset(**row)
        prompts.append(row["prompt"])
        completions.append([{"role": "assistant", "content": text}])
        environments.append(environment)
    assert trl_tool_schemas(environments[0]) == []
    values = environment_reward()(prompts=prompts, completions=completions,
                                  environments=environments)  # fmt: skip
    assert values == reward_function()(prompts=prompts, completions=completions) == [1.0, 0.0, 0.0]


def test_multi_turn_text_envs_are_refused_naming_the_alternative():
    with pytest.raises(EnvironmentFactoryError, match="RolloutFunction"):
        environment_factory("adaptertest/SayTwice-v0")
    with pytest.raises(EnvironmentFactoryError, match="RolloutFunction") as refused:
        environment_factory("rlenv/Retail-v0")
    assert "respond" in str(refused.value)
    bfcl = environment_factory("rlenv/BFCL-Simple-v0")()  # its tools come with each task
    with pytest.raises(EnvironmentFactoryError, match="reward_function"):
        bfcl.reset(**_row("rlenv/BFCL-Simple-v0"))  # tools graded, never run: TRL would run them


# ---------------------------------------------------------------------------------- TRL e2e


def _tool_chat_tokenizer(corpus: str):
    """A byte-level BPE tokenizer with Qwen2.5's chat template (from TRL, which then knows how
    to parse its tool calls)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from trl.chat_template_utils import qwen2_5_chat_template

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    special = ["<pad>", "<|im_start|>", "<|im_end|>"]
    tools = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
    raw.train_from_iterator([corpus] * 5, trainers.BpeTrainer(
        vocab_size=1500, special_tokens=special + tools,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<pad>",
        chat_template=qwen2_5_chat_template,
    )  # fmt: skip


def _scripted_model(tokenizer, seed: int = 0):
    """A tiny random Llama whose last-position logits get +50 on a scripted next token: a
    ``calculate`` call for the task's product, then, once a tool response is in its context,
    ``\\boxed{}`` of that response (or of the response + 1, at random: rewards vary). It can
    only answer right if the tool's result reached it."""
    import torch
    import transformers

    header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    response, response_end = (tokenizer.convert_tokens_to_ids(t)
                              for t in ("<tool_response>", "</tool_response>"))  # fmt: skip
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    coin = random.Random(seed)

    def encode(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]

    def targets(ids):
        if response not in ids:
            a, b = re.search(r"What is (\d+) × (\d+)\?", tokenizer.decode(ids)).groups()
            call = json.dumps({"name": "calculate", "arguments": {"expression": f"{a} * {b}"}})
            return [encode(f"<tool_call>\n{call}\n</tool_call>")]
        start = len(ids) - 1 - ids[::-1].index(response)
        result = int(tokenizer.decode(ids[start + 1 : ids.index(response_end, start)]).strip())
        return [encode(f"\\boxed{{{result}}}"), encode(f"\\boxed{{{result + 1}}}")]

    class Scripted(transformers.LlamaForCausalLM):
        def forward(self, input_ids=None, **kwargs):
            out = super().forward(input_ids=input_ids, **kwargs)
            if input_ids is None:
                return out
            rows = input_ids.tolist()
            if input_ids.shape[1] > 1:  # a new prompt (generation) or a whole sequence
                self._context = rows
            else:  # generation with the KV cache: one new token per row
                self._context = [ctx + row for ctx, row in zip(self._context, rows, strict=True)]
            bias = torch.zeros_like(out.logits[:, -1])
            for index, ids in enumerate(self._context):
                ids = [token for token in ids if token != pad]
                starts = [i + len(header) for i in range(len(ids))
                          if ids[i : i + len(header)] == header]  # fmt: skip
                made = ids[starts[-1] :] if starts else []
                options = {goal[len(made)] for goal in targets(ids)
                           if goal[: len(made)] == made and len(goal) > len(made)}  # fmt: skip
                bias[index, coin.choice(sorted(options)) if options else eos] = 50.0
            out.logits[:, -1] = out.logits[:, -1] + bias
            return out

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
    )  # fmt: skip
    return Scripted(config)


def test_trl_grpo_trains_with_the_environment_factory(tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    env_id, kwargs = "rlenv/Calculator-v0", {"difficulty": 1}
    dataset = build_dataset(env_id, n_tasks=8, **kwargs)
    factory = environment_factory(env_id, **kwargs)
    probe = factory()
    corpus = (
        "".join(
            _tool_chat_tokenizer("x").apply_chat_template(
                row["prompt"],
                tools=[probe.calculate, probe.convert],
                tokenize=False,
                add_generation_prompt=True,
            )
            for row in dataset
        )
        + ' <tool_call>\n{"name": "calculate", "arguments": {"expression": "1 * 2"}}\n</tool_call>'
    )
    tokenizer = _tool_chat_tokenizer(corpus)
    model = _scripted_model(tokenizer)
    reward = environment_reward()
    batches = []

    def recorded(prompts, completions, environments, **columns):
        values = reward(prompts=prompts, completions=completions, environments=environments,
                        **columns)  # fmt: skip
        # TRL pools the instances and resets them each batch: keep what they held now
        seen = [(env.handle, env.reward, env.env.task.metadata["expression"]) for env in
                environments]  # fmt: skip
        assert all(isinstance(env, TRLEnvironment) for env in environments)
        batches.append((values, completions, seen))
        return values

    recorded.__name__ = "rlenv_reward"
    args = _args(tmp_path, max_completion_length=96, max_tool_calling_iterations=3)
    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=recorded, args=args, train_dataset=dataset,
        processing_class=tokenizer, environment_factory=factory,
    )  # fmt: skip
    trainer.train()

    logged = [row for row in trainer.state.log_history if "reward" in row]
    assert len(logged) == 2 and len(batches) == 2
    for row, (values, completions, environments) in zip(logged, batches, strict=True):
        assert row["reward"] == pytest.approx(sum(values) / len(values))
        assert row["tools/call_frequency"] > 0
        for value, completion, (handle, env_reward, expression) in zip(
            values, completions, environments, strict=True
        ):
            assert value == env_reward
            # the tool's result is in the completion TRL built, and it is the real product
            tool = next(m for m in completion if m["role"] == "tool")
            a, b = (int(n) for n in re.fullmatch(r"(\d+) \* (\d+)", expression).groups())
            assert tool["content"] == str(a * b)
            # the reward is rlenv's own loop on the same calls and answer
            env = rlenv.make(env_id, **kwargs)
            env.reset(options={"task_id": handle.task_id})
            total = 0.0
            for message in completion:
                if message["role"] == "assistant":
                    step = {"role": "assistant", "content": message.get("content") or ""}
                    if message.get("tool_calls"):
                        step["tool_calls"] = message["tool_calls"]
                    _, reward_step, *_ = env.step(step)
                    total += reward_step
            assert value == total
    values = [v for values, _, _ in batches for v in values]
    assert set(values) == {0.0, 1.0}  # right answers read from the tool result, and wrong ones
