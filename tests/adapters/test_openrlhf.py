"""rlenv.adapters.openrlhf: the dataset, reward_func, and the multi-turn agent.

The agent tests run OpenRLHF's real ``MultiTurnAgentExecutor`` and ``SingleTurnAgentExecutor``
(``openrlhf.utils.agent`` imports on a CPU with ``pip install --no-deps openrlhf aiohttp
pylatexenc``); the vLLM engine is a fake that samples token ids from a tiny random model.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from adapter_envs import HOSTILE, SayTwice, binary_search_ids  # noqa: E402

import rlenv  # noqa: E402
from rlenv import Turn, Verdict  # noqa: E402
from rlenv.adapters import openrlhf as adapter  # noqa: E402
from rlenv.adapters.openrlhf import export_jsonl, reward_func  # noqa: E402
from rlenv.rollout.chat_tokens import ChatTokens  # noqa: E402
from rlenv.testing import tiny_chat_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return tiny_chat_model()


# ---------------------------------------------------------------------------------- dataset


def test_the_jsonl_carries_prompts_and_task_labels(tmp_path):
    path = tmp_path / "train.jsonl"
    export_jsonl("rlenv/Arithmetic-v0", path, n_tasks=3, seed=4, difficulty=1)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    for index, row in enumerate(rows):
        observation, info = env.reset(seed=4 + index)
        assert row["prompt"] == observation
        assert json.loads(row["label"]) == {"env_id": "rlenv/Arithmetic-v0",
                                            "env_kwargs": {"difficulty": 1},
                                            "task_id": info["task_id"]}  # fmt: skip
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("json", data_files=str(path))["train"]  # how OpenRLHF reads it
    assert loaded[2]["label"] == rows[2]["label"]


# ---------------------------------------------------------------------------------- reward


def _query(tokenizer, row, response: str):
    prompt = ChatTokens(tokenizer).prompt_text(row["prompt"])
    return prompt + response + "<|im_end|>", prompt


def test_reward_func_equals_the_envs_reward_on_right_and_wrong_answers(tiny):
    _, tokenizer = tiny
    rows = adapter.build_rows("rlenv/Arithmetic-v0", 3, difficulty=2)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=2)
    queries, prompts, labels, expected = [], [], [], []
    for seed, row in enumerate(rows):
        env.reset(seed=seed)
        for text in (env.gold_action(), "\\boxed{-1234567}", "no idea"):
            env.reset(seed=seed)
            expected.append(env.step(text)[1])
            query, prompt = _query(tokenizer, row, text)
            queries.append(query), prompts.append(prompt), labels.append(row["label"])
    result = reward_func(queries, prompts, labels)
    assert result["rewards"].tolist() == expected
    assert result["scores"].tolist() == expected
    assert expected[0::3] == [1.0, 1.0, 1.0]
    assert result["extra_logs"]["scored"].tolist() == [1.0] * 9


@pytest.mark.parametrize("junk", HOSTILE, ids=lambda j: repr(j)[:20])
def test_reward_func_gives_hostile_junk_zero_and_never_raises(tiny, junk):
    _, tokenizer = tiny
    row = adapter.build_rows("rlenv/Arithmetic-v0", 1, difficulty=1)[0]
    query, prompt = _query(tokenizer, row, junk)
    assert reward_func([query], [prompt], [row["label"]])["rewards"].tolist() == [0.0]


def test_reward_func_marks_what_it_cannot_score(tiny):
    _, tokenizer = tiny
    crash = adapter.build_rows("adaptertest/Crashing-v0", 1)[0]
    twice = adapter.build_rows("adaptertest/SayTwice-v0", 1)[0]
    cases = [
        (*_query(tokenizer, crash, "ok"), crash["label"]),  # scored: 1.0
        (*_query(tokenizer, crash, "boom"), crash["label"]),  # the verifier failed
        (*_query(tokenizer, twice, "ok"), twice["label"]),  # multi-turn: use the agent
    ]
    result = reward_func(*map(list, zip(*cases, strict=True)))
    assert result["rewards"].tolist() == [1.0, 0.0, 0.0]
    assert result["extra_logs"]["scored"].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="task tag"):
        reward_func(["q"], ["q"], ["not a tag"])


def test_a_query_that_does_not_start_with_its_prompt_fails_loudly(tiny):
    """Was a silent, unscored 0 for every sample: a tokenizer that does not round-trip the
    prompt, or a prompt cut by OpenRLHF, must be seen, not trained on."""
    _, tokenizer = tiny
    row = adapter.build_rows("adaptertest/Crashing-v0", 1)[0]
    query, prompt = _query(tokenizer, row, "ok")
    normalised = query.replace("\n", " ", 1)  # what a tokenizer that normalises whitespace gives
    with pytest.raises(adapter.PromptMismatchError, match="round-trip") as caught:
        reward_func([normalised], [prompt], [row["label"]])
    assert "--data.max_len" in str(caught.value) and "differ at character" in str(caught.value)
    cut = prompt[10:]  # a prompt cut from the left
    with pytest.raises(adapter.PromptMismatchError):
        reward_func([cut + "ok"], [prompt], [row["label"]])
    with pytest.raises(adapter.PromptMismatchError, match="as text"):
        reward_func([None], [prompt], [row["label"]])


# ---------------------------------------------------------------------------------- agent

try:
    from openrlhf.utils import agent
except ImportError:  # the reward tests above still run
    agent = None
needs_openrlhf = pytest.mark.skipif(agent is None, reason="openrlhf.utils.agent not importable")


class TinyModelEngine:
    """Stands in for OpenRLHF's vLLM actor: ``generate(prompt_token_ids, sampling_params)``
    returns a vLLM-like ``RequestOutput`` sampled from a tiny model (ASCII tokens only, so the
    text renders back to the same characters)."""

    def __init__(self, model, tokenizer, max_tokens: int = 6) -> None:
        self.model, self.tokenizer, self.max_tokens = model, tokenizer, max_tokens
        self.calls: list[list[int]] = []
        self.outputs: list[list[int]] = []
        eos = tokenizer.eos_token_id
        self.banned = [
            [i] for i in range(len(tokenizer))
            if i != eos and not _plain_ascii(tokenizer.decode([i]))
        ]  # fmt: skip

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.calls.append(list(prompt_token_ids))
        torch.manual_seed(len(self.calls))
        output = self.model.generate(
            input_ids=torch.tensor([prompt_token_ids]),
            attention_mask=torch.ones(1, len(prompt_token_ids)),
            max_new_tokens=min(self.max_tokens, sampling_params.max_tokens),
            do_sample=True, top_k=None, top_p=None, bad_words_ids=self.banned,
            eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
            return_dict_in_generate=True, output_logits=True,
        )  # fmt: skip
        ids = output.sequences[0, len(prompt_token_ids) :].tolist()
        logprobs = torch.log_softmax(torch.stack(output.logits, 1)[0].float(), -1)
        self.outputs.append(ids)
        return _request_output(
            self.tokenizer, ids, [float(logprobs[i, t]) for i, t in enumerate(ids)]
        )


class BinarySearchEngine:
    """A scripted policy for GuessNumber: reads the hints in its prompt and bisects."""

    def __init__(self, tokenizer, low: int, high: int) -> None:
        self.tokenizer, self.low, self.high = tokenizer, low, high
        self.outputs: list[list[int]] = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        text = self.tokenizer.decode(prompt_token_ids)
        ids = binary_search_ids(self.tokenizer, text, self.low, self.high)
        self.outputs.append(ids)
        return _request_output(self.tokenizer, ids, [-0.5] * len(ids))


def _request_output(tokenizer, ids, logprobs):
    stopped = bool(ids) and ids[-1] == tokenizer.eos_token_id
    completion = SimpleNamespace(
        token_ids=ids,
        text=tokenizer.decode(ids, skip_special_tokens=True),
        finish_reason="stop" if stopped else "length",
        logprobs=[{t: SimpleNamespace(logprob=lp)} for t, lp in zip(ids, logprobs, strict=True)],
    )
    return SimpleNamespace(outputs=[completion])


def _plain_ascii(text: str) -> bool:
    return bool(text) and text.isascii() and text.isprintable()


def _execute(executor, engine, tokenizer, row, max_length: int = 1024):
    params = SimpleNamespace(max_tokens=None, logprobs=0)
    prompt = tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=False
    )
    return asyncio.run(
        executor.execute(prompt, row["label"], params, max_length, tokenizer, engine)
    )


def _replay(row, texts):
    task = json.loads(row["label"])
    env = rlenv.make(task["env_id"], **task["env_kwargs"])
    env.reset(options={"task_id": task["task_id"]})
    total = 0.0
    for text in texts:
        observation, reward, terminated, truncated, _ = env.step(text)
        total += reward
    assert terminated or truncated
    return total, observation


@needs_openrlhf
def test_the_agent_file_loads_the_way_openrlhf_loads_it(tmp_path):
    path = tmp_path / "agent_func.py"
    path.write_text("from rlenv.adapters.openrlhf import AgentExecutor\n")
    spec = importlib.util.spec_from_file_location("agent_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert issubclass(module.AgentExecutor, agent.AgentExecutorBase)
    executor = module.AgentExecutor()
    assert isinstance(executor, agent.MultiTurnAgentExecutor)
    assert issubclass(executor.agent_instance_cls, agent.AgentInstanceBase)
    assert adapter.USING_OPENRLHF


@needs_openrlhf
def test_a_prompt_openrlhf_would_cut_from_the_left_is_refused_with_the_numbers(tiny):
    """OpenRLHF's loop keeps the last max_length - max_tokens tokens of a long opening prompt
    (system prompt and tool schemas lost) with only a warning; the agent refuses it."""
    model, tokenizer = tiny
    row = adapter.build_rows("rlenv/GuessNumber-v0", 1, seed=2, high=8, max_turns=4)[0]
    length = len(ChatTokens(tokenizer).prompt_ids(row["prompt"]))
    engine = TinyModelEngine(model, tokenizer)
    with pytest.raises(ValueError, match=r"--data\.max_len") as caught:
        _execute(adapter.AgentExecutor(), engine, tokenizer, row, max_length=length)
    assert f"is {length} tokens" in str(caught.value) and engine.calls == []
    result = _execute(adapter.AgentExecutor(), engine, tokenizer, row, max_length=length + 64)
    assert result["action_ranges"]  # just enough room: it plays


@needs_openrlhf
def test_multi_turn_episodes_keep_exact_ids_and_mask_env_tokens(tiny):
    model, tokenizer = tiny
    engine = TinyModelEngine(model, tokenizer)
    row = adapter.build_rows("rlenv/GuessNumber-v0", 1, seed=2, high=8, max_turns=4)[0]
    result = _execute(adapter.AgentExecutor(), engine, tokenizer, row)

    tokens, ranges = result["observation_tokens"], result["action_ranges"]
    assert len(ranges) == len(engine.outputs) == 4
    # actions are exactly the generated ids; each generation was fed the exact ids so far
    assert [tokens[s:e] for s, e in ranges] == engine.outputs
    assert [tokens[:s] for s, _ in ranges] == engine.calls
    opening = ChatTokens(tokenizer).prompt_ids(row["prompt"])
    assert tokens[: ranges[0][0]] == opening
    # the env tokens between actions are what the chat template adds
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in engine.outputs]
    reward, conversation = _replay(row, texts)
    _assert_renders(tokenizer, tokens, conversation)
    assert tokens[ranges[-1][1] :] == []  # nothing after the last action
    # log-probs: the sampled ones on actions, 0 elsewhere; the reward is the env's
    logprobs = result["rollout_log_probs"]
    assert len(logprobs) == len(tokens)
    in_action = {i for s, e in ranges for i in range(s, e)}
    assert all(lp == 0.0 for i, lp in enumerate(logprobs) if i not in in_action)
    assert all(lp < 0.0 for i, lp in enumerate(logprobs) if i in in_action)
    assert result["reward"] == reward and result["scores"] == reward
    assert result["extra_logs"] == {"scored": 1.0, "env_reward": reward, "turns": 4.0}


@needs_openrlhf
def test_the_episode_reward_is_the_envs_when_the_number_is_found(tiny):
    _, tokenizer = tiny
    seed = next(s for s in range(50) if _secret(s) != 4)  # 4 is the first guess
    row = adapter.build_rows("rlenv/GuessNumber-v0", 1, seed=seed, high=8)[0]
    engine = BinarySearchEngine(tokenizer, 1, 8)
    result = _execute(adapter.AgentExecutor(), engine, tokenizer, row)
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in engine.outputs]
    reward, conversation = _replay(row, texts)
    assert 2 <= len(engine.outputs) <= 3
    assert result["reward"] == reward == 1.0
    assert conversation[-1]["content"].startswith("Correct!")
    _assert_renders(
        tokenizer, result["observation_tokens"], conversation
    )  # turns ended by the model


def _secret(seed: int) -> int:
    env = rlenv.make("rlenv/GuessNumber-v0", high=8)
    env.reset(seed=seed)
    return env.task.answer


@needs_openrlhf
def test_an_unscored_turn_makes_the_episode_zero(tiny):
    _, tokenizer = tiny

    class Says:
        def __init__(self, *texts):
            self.texts = list(texts)

        async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
            ids = tokenizer(self.texts.pop(0), add_special_tokens=False)["input_ids"]
            return _request_output(
                tokenizer, [*ids, tokenizer.eos_token_id], [-1.0] * (len(ids) + 1)
            )

    class PaysThenFails(SayTwice):
        def respond(self, message):
            if self.turn == 2:
                return Turn.end(Verdict(reward=0.0, scored=False, error="sandbox down"))
            return super().respond(message)

    rlenv.register("adaptertest/PaysThenFails-v0", PaysThenFails)
    try:
        row = adapter.build_rows("adaptertest/PaysThenFails-v0", 1)[0]
        result = _execute(adapter.AgentExecutor(), Says("a", "ok"), tokenizer, row)
        # 0.25 was paid for turn 1; the unscored turn 2 takes the episode back to 0.0
        assert result["reward"] == 0.0 and result["scores"] == 0.0
        assert result["extra_logs"] == {"scored": 0.0, "env_reward": 0.25, "turns": 2.0}
    finally:
        rlenv.unregister("adaptertest/PaysThenFails-v0")
    crash = adapter.build_rows("adaptertest/Crashing-v0", 1)[0]
    result = _execute(adapter.AgentExecutor(), Says("boom"), tokenizer, crash)
    assert result["reward"] == 0.0 and result["extra_logs"]["scored"] == 0.0
    result = _execute(adapter.AgentExecutor(), Says("ok"), tokenizer, crash)
    assert result["reward"] == 1.0 and result["extra_logs"]["scored"] == 1.0
    twice = adapter.build_rows("adaptertest/SayTwice-v0", 1)[0]
    result = _execute(adapter.AgentExecutor(), Says("x", "ok"), tokenizer, twice)
    assert result["reward"] == 1.25  # 0.25 for the first turn, 1.0 for the second


def test_the_instance_refuses_to_run_outside_its_executor():
    with pytest.raises(RuntimeError, match="AgentExecutor"):
        adapter.RLEnvAgentInstance()


@needs_openrlhf
def test_the_single_turn_executor_scores_with_reward_func(tiny, tmp_path):
    model, tokenizer = tiny
    path = tmp_path / "reward.py"
    path.write_text("from rlenv.adapters.openrlhf import reward_func\n")
    executor = agent.SingleTurnAgentExecutor(str(path))  # OpenRLHF's --remote_rm_url file.py

    class Answers:
        def __init__(self, text):
            self.ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            self.ids.append(tokenizer.eos_token_id)

        async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
            return _request_output(tokenizer, self.ids, [-1.0] * len(self.ids))

    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    row = adapter.build_rows("rlenv/Arithmetic-v0", 1, difficulty=1)[0]
    env.reset(seed=0)
    for answer, expected in ((env.gold_action(), 1.0), ("\\boxed{x}", 0.0)):
        result = _execute(executor, Answers(answer), tokenizer, row)
        assert result["reward"].tolist() == [expected]
        assert result["extra_logs"]["scored"].tolist() == [1.0]


def _assert_renders(tokenizer, ids, conversation):
    """The ids decode to the chat template's rendering of the conversation up to the model's
    last turn (what the env says after it is never fed to the model)."""
    last = max(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    rendered = tokenizer.apply_chat_template(conversation[: last + 1], tokenize=False)
    decoded = tokenizer.decode(ids)
    assert rendered.startswith(decoded)
    assert rendered[len(decoded) :] in ("\n", "<|im_end|>\n")  # last turn ended or cut off


@needs_openrlhf
def test_the_flags_the_docstring_names_are_openrlhfs_own():
    """The docstring showed the old flat flags (--remote_rm_url...), which 0.11 rejects."""
    import openrlhf  # its CLI module imports ray: read its source instead

    source = (Path(openrlhf.__file__).parent / "cli" / "train_ppo_ray.py").read_text()
    declared = set(re.findall(r'add_argument\(\s*"(--[\w.]+)"', source))
    current = adapter.__doc__.split("releases before 0.10")[0]  # the old names, said as such
    named = set(re.findall(r"(--[a-z][\w.-]+)", current + adapter.__doc__.split("...)")[-1]))
    named.discard("--no-deps")  # pip's
    assert named and named <= declared, named - declared
