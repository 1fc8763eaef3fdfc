"""rlenv.adapters.verl: verl's parquet schema, compute_score, and the multi-turn agent loop.

verl's agent-loop module needs Ray, Hydra and verl's trainer, so without verl installed the loop
runs on the adapter's stand-in base classes (a copy of verl 0.9.1's interface); the generation
server is a fake that samples token ids from a tiny random model, token in, token out.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")

from adapter_envs import HOSTILE as HOSTILE_TEXTS  # noqa: E402

import rlenv  # noqa: E402
from rlenv.adapters import verl as adapter  # noqa: E402
from rlenv.adapters.verl import (  # noqa: E402
    AGENT_NAME,
    RLEnvAgentLoop,
    compute_score,
    export_parquet,
)

VERL_COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}


# ---------------------------------------------------------------------------------- parquet


def test_the_parquet_has_verls_columns_and_round_trips(tmp_path):
    path = tmp_path / "train.parquet"
    written = export_parquet("rlenv/Arithmetic-v0", path, n_tasks=4, seed=3, difficulty=1)
    table = pq.read_table(path)
    assert set(table.column_names) == VERL_COLUMNS
    assert table.num_rows == 4
    frame = pd.read_parquet(path)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    for index, row in frame.iterrows():
        observation, info = env.reset(seed=3 + index)
        assert row["data_source"] == "rlenv/Arithmetic-v0"
        assert row["ability"] == "math"
        assert [dict(m) for m in row["prompt"]] == observation
        assert row["reward_model"]["style"] == "rule"
        tag = json.loads(row["reward_model"]["ground_truth"])
        assert tag == {"env_id": "rlenv/Arithmetic-v0", "env_kwargs": {"difficulty": 1},
                       "task_id": info["task_id"]}  # fmt: skip
        extra = row["extra_info"]
        assert extra["index"] == index and extra["seed"] == 3 + index
        assert extra["task_id"] == info["task_id"]
        assert json.loads(extra["env_kwargs"]) == {"difficulty": 1}
    assert list(written["data_source"]) == list(frame["data_source"])


def test_agent_rows_carry_agent_name_and_load_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "agent.parquet"
    export_parquet("rlenv/GuessNumber-v0", path, n_tasks=2, agent_name=AGENT_NAME, high=8)
    loaded = datasets.load_dataset("parquet", data_files=str(path))["train"]  # how verl reads it
    assert set(loaded.column_names) == VERL_COLUMNS | {"agent_name"}
    assert loaded[0]["agent_name"] == "rlenv_agent"
    assert loaded[0]["ability"] == "games"
    assert loaded[1]["extra_info"]["index"] == 1


def test_a_prompt_verl_cannot_hold_is_refused():
    with pytest.raises(ValueError, match="role and text content"):
        adapter._prompt_message({"role": "user", "content": [{"type": "text"}]}, "x/Y-v0")


# ---------------------------------------------------------------------------------- reward


def _row(env_id: str, seed: int = 0, **env_kwargs):
    return adapter.build_rows(env_id, 1, seed, **env_kwargs)[0]


def _score(row, text):
    return compute_score(
        row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"]
    )


def test_compute_score_equals_the_envs_reward_on_right_and_wrong_answers():
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=2)
    for seed in range(4):
        row = _row("rlenv/Arithmetic-v0", seed, difficulty=2)
        env.reset(seed=seed)
        right = env.gold_action()
        for text in (right, "\\boxed{123456789}", "I do not know"):
            env.reset(seed=seed)
            _, reward, _, _, info = env.step(text)
            result = _score(row, text)
            assert result["score"] == reward
            assert result["scored"] is True
            assert result["reason"] == info["verdict"].reason
        assert _score(row, right)["score"] == 1.0


HOSTILE = [*HOSTILE_TEXTS, None, 12345]  # verl may hand over a non-string


@pytest.mark.parametrize("junk", HOSTILE, ids=lambda j: repr(j)[:20])
def test_compute_score_gives_hostile_junk_zero_and_never_raises(junk):
    row = _row("rlenv/Arithmetic-v0", 1, difficulty=1)
    result = _score(row, junk)
    assert result["score"] == 0.0
    assert set(result) == {"score", "scored", "reason", "error"}
    assert all(isinstance(result[key], str) for key in ("reason", "error"))


def test_an_unscored_verdict_is_zero_with_scored_false_not_a_silent_zero():
    row = _row("adaptertest/Crashing-v0")
    assert _score(row, "ok") == {"score": 1.0, "scored": True, "reason": "", "error": ""}
    result = _score(row, "boom")
    assert result["score"] == 0.0 and result["scored"] is False
    assert "verifier failed" in result["error"]


def test_compute_score_marks_a_multi_turn_env_unscored():
    result = _score(_row("adaptertest/SayTwice-v0"), "ok")
    assert result["scored"] is False and result["score"] == 0.0
    assert AGENT_NAME in result["reason"]


def test_a_bad_ground_truth_is_a_data_error():
    with pytest.raises(ValueError, match="task tag"):
        compute_score("rlenv/Arithmetic-v0", "1", "42")


# ---------------------------------------------------------------------------------- agent loop


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from adapter_envs import binary_search_ids  # noqa: E402

from rlenv.testing import tiny_chat_model  # noqa: E402

if adapter.USING_VERL:  # pragma: no cover - exercised where verl is installed
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, _agent_loop_registry
    from verl.workers.rollout.replica import TokenOutput
else:
    from rlenv.adapters._verl_standin import DictConfigWrap, TokenOutput, _agent_loop_registry


class TinyModelServer:
    """Stands in for verl's ``server_manager``: samples ids from a tiny model, token in/out.

    Special tokens other than the end-of-turn token, and tokens that are not whole ASCII text,
    are never sampled, so the model's text renders back to the same characters."""

    def __init__(self, model, tokenizer, max_tokens: int = 6) -> None:
        self.model, self.tokenizer, self.max_tokens = model, tokenizer, max_tokens
        self.calls: list[tuple[str, list[int], dict]] = []
        self.outputs: list[list[int]] = []
        eos = tokenizer.eos_token_id
        self.banned = [
            [i] for i in range(len(tokenizer))
            if i != eos and not _plain_ascii(tokenizer.decode([i]))
        ]  # fmt: skip

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.calls.append((request_id, list(prompt_ids), dict(sampling_params)))
        torch.manual_seed(len(self.calls))
        temperature = sampling_params.get("temperature", 1.0)
        output = self.model.generate(
            input_ids=torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids)),
            max_new_tokens=min(self.max_tokens, sampling_params.get("max_tokens", 10**6)),
            do_sample=True, temperature=temperature, top_k=None, top_p=None,
            eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
            bad_words_ids=self.banned, return_dict_in_generate=True, output_logits=True,
        )  # fmt: skip
        ids = output.sequences[0, len(prompt_ids) :].tolist()
        logits = torch.stack(output.logits, dim=1)[0].float() / temperature
        logprobs = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
        self.outputs.append(ids)
        return TokenOutput(token_ids=ids, log_probs=logprobs.tolist())


class BinarySearchServer:
    """A scripted policy for GuessNumber: reads the hints in its prompt and bisects."""

    def __init__(self, tokenizer, low: int, high: int) -> None:
        self.tokenizer, self.low, self.high = tokenizer, low, high
        self.outputs: list[list[int]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        text = self.tokenizer.decode(prompt_ids)
        ids = binary_search_ids(self.tokenizer, text, self.low, self.high)
        self.outputs.append(ids)
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids))


def _plain_ascii(text: str) -> bool:
    return bool(text) and text.isascii() and text.isprintable()


def _loop(server, tokenizer, response_length: int = 512) -> RLEnvAgentLoop:
    rollout = SimpleNamespace(response_length=response_length, prompt_length=512)
    config = SimpleNamespace(actor_rollout_ref=SimpleNamespace(rollout=rollout))
    return RLEnvAgentLoop(
        trainer_config=DictConfigWrap(config), server_manager=server, tokenizer=tokenizer,
        processor=None, dataset_cls=None, data_config=DictConfigWrap({}),
    )  # fmt: skip


def _run(loop: RLEnvAgentLoop, row) -> object:
    fields = {key: value for key, value in row.items() if key != "prompt"}
    fields["raw_prompt"] = row["prompt"]
    return asyncio.run(loop.run({"temperature": 1.0, "top_p": 1.0, "logprobs": True}, **fields))


def _segments(mask):
    """Runs of equal mask values: [(value, start, end), ...]."""
    runs, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            runs.append((mask[start], start, i))
            start = i
    return runs


def _replay(row, turns_text):
    """The env's own episode for these model turns: (total reward, final conversation)."""
    task = json.loads(row["reward_model"]["ground_truth"])
    env = rlenv.make(task["env_id"], **task["env_kwargs"])
    env.reset(options={"task_id": task["task_id"]})
    total, observation = 0.0, None
    for text in turns_text:
        observation, reward, terminated, truncated, _ = env.step(text)
        total += reward
    assert terminated or truncated
    return total, observation


def test_the_loop_is_registered_under_its_agent_name():
    assert _agent_loop_registry[AGENT_NAME] == {"_target_": "rlenv.adapters.verl.RLEnvAgentLoop"}


def test_agent_loop_on_guess_number_masks_env_replies_and_keeps_exact_ids():
    model, tokenizer = tiny_chat_model()
    server = TinyModelServer(model, tokenizer)
    row = _row("rlenv/GuessNumber-v0", 2, high=8, max_turns=4)
    output = _run(_loop(server, tokenizer), row)

    turns = len(server.outputs)
    assert turns == 4  # a random model does not find the number: every turn is played
    # the opening prompt is the chat template's rendering, tokenised once
    opening = tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=False
    )
    assert output.prompt_ids == tokenizer(opening, add_special_tokens=False)["input_ids"]
    # model turns are exactly the generated ids (mask 1), env replies in between (mask 0)
    runs = _segments(output.response_mask)
    model_runs = [(s, e) for value, s, e in runs if value == 1]
    assert [value for value, _, _ in runs] == [1, 0] * (turns - 1) + [1]
    assert [output.response_ids[s:e] for s, e in model_runs] == server.outputs
    # token in, token out: each generation was fed the exact ids so far
    whole = output.prompt_ids + output.response_ids
    for (request_id, fed, params), (start, _) in zip(server.calls, model_runs, strict=True):
        assert fed == whole[: len(output.prompt_ids) + start]
        assert request_id == server.calls[0][0]
        assert params["temperature"] == 1.0
    # the env tokens are what the template adds: the whole sequence renders the conversation
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in server.outputs]
    reward, conversation = _replay(row, texts)
    _assert_renders(tokenizer, whole, conversation)
    for value, start, end in runs:
        if value == 0:  # env tokens re-tokenise to themselves
            segment = output.response_ids[start:end]
            assert (
                tokenizer(tokenizer.decode(segment), add_special_tokens=False)["input_ids"]
                == segment
            )
    # log-probs for model tokens, 0 for env tokens; reward is the env's episode reward
    assert len(output.response_logprobs) == len(output.response_ids)
    assert all(
        lp == 0.0
        for lp, m in zip(output.response_logprobs, output.response_mask, strict=True)
        if m == 0
    )
    assert all(
        lp < 0.0
        for lp, m in zip(output.response_logprobs, output.response_mask, strict=True)
        if m == 1
    )
    assert output.reward_score == reward
    assert output.num_turns == 1 + turns + (turns - 1)  # prompt, model turns, env replies
    info = output.extra_fields["reward_extra_info"]
    assert info["scored"] is True and info["truncated"] is True
    assert output.extra_fields["turn_scores"] == [0.0] * turns


def test_agent_loop_reward_is_the_envs_episode_reward_when_the_number_is_found():
    _, tokenizer = tiny_chat_model()
    seed = next(s for s in range(50) if _secret(s) != 4)  # 4 is the first guess
    row = _row("rlenv/GuessNumber-v0", seed, high=8)
    server = BinarySearchServer(tokenizer, 1, 8)
    output = _run(_loop(server, tokenizer), row)
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in server.outputs]
    reward, conversation = _replay(row, texts)
    assert 2 <= len(server.outputs) <= 3
    assert output.reward_score == reward == 1.0
    assert conversation[-1]["content"].startswith("Correct!")
    runs = _segments(output.response_mask)
    assert [value for value, _, _ in runs] == [1, 0] * (len(server.outputs) - 1) + [1]
    assert output.extra_fields["reward_extra_info"]["terminated"] is True
    _assert_renders(
        tokenizer, output.prompt_ids + output.response_ids, conversation
    )  # turns ended by the model


def _secret(seed: int) -> int:
    env = rlenv.make("rlenv/GuessNumber-v0", high=8)
    env.reset(seed=seed)
    return env.task.answer


def test_agent_loop_stops_at_the_response_length():
    model, tokenizer = tiny_chat_model()
    server = TinyModelServer(model, tokenizer, max_tokens=6)
    row = _row("rlenv/GuessNumber-v0", 0, high=8)
    output = _run(_loop(server, tokenizer, response_length=10), row)
    assert len(output.response_ids) == len(output.response_mask) <= 10
    assert server.calls[0][2]["max_tokens"] == 10
    assert all(params["max_tokens"] <= 10 for _, _, params in server.calls)
    assert "response_length" in output.extra_fields["reward_extra_info"]["reason"]


def test_agent_loop_scores_an_unscored_episode_zero_and_says_so():
    _, tokenizer = tiny_chat_model()

    class Says:
        def __init__(self, text):
            self.ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [
                tokenizer.eos_token_id
            ]

        async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
            return TokenOutput(token_ids=self.ids)

    row = _row("adaptertest/Crashing-v0")
    output = _run(_loop(Says("boom"), tokenizer), row)
    assert output.reward_score == 0.0
    assert output.extra_fields["reward_extra_info"]["scored"] is False
    assert output.response_logprobs is None  # the server sent none
    output = _run(_loop(Says("ok"), tokenizer), row)
    assert output.reward_score == 1.0 and output.response_mask == [1] * len(output.response_ids)


def _assert_renders(tokenizer, ids, conversation):
    """The ids decode to the chat template's rendering of the conversation up to the model's
    last turn (what the env says after it is never fed to the model)."""
    last = max(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    rendered = tokenizer.apply_chat_template(conversation[: last + 1], tokenize=False)
    decoded = tokenizer.decode(ids)
    assert rendered.startswith(decoded)
    assert rendered[len(decoded) :] in ("\n", "<|im_end|>\n")  # last turn ended or cut off
