"""rlenv.adapters.verl: verl's parquet schema, compute_score, and the multi-turn agent loop.

The parquet and compute_score tests run everywhere. The rest run against the real verl (0.9.1):
rows read by verl's ``RLHFDataset``, batched by its ``collate_fn`` into a ``DataProto``, played
by verl's own ``AgentLoopWorker.generate_sequences`` (which looks ``rlenv_agent`` up in verl's
registry, instantiates the loop with Hydra and pads and stacks the outputs into a batch), and
scored by verl's ``NaiveRewardManager`` with the function verl's ``get_custom_reward_fn`` loads.
verl's agent-loop module needs Ray, Hydra, TensorDict and a transformers older than rlenv's, so
these run in ``.venv-verl`` (``make test-verl``) and skip in rlenv's own environment. Only the
generation server is a fake (no GPU, no vLLM): an object with ``LLMServerClient.generate``'s
signature returning verl's ``TokenOutput``, sampling ids from a tiny random model.
"""

from __future__ import annotations

import asyncio
import json

import pytest

pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")

from adapter_envs import HOSTILE as HOSTILE_TEXTS  # noqa: E402

import rlenv  # noqa: E402
from rlenv.adapters import verl as adapter  # noqa: E402
from rlenv.adapters.verl import (  # noqa: E402
    AGENT_NAME,
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


# ---------------------------------------------------------------------------------- verl itself


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import numpy as np  # noqa: E402
from adapter_envs import binary_search_ids  # noqa: E402

from rlenv.rollout.chat_tokens import ChatTokens  # noqa: E402
from rlenv.testing import tiny_chat_model  # noqa: E402

VERL_VERSION = "0.9.1"  # the version .venv-verl pins (Makefile VERL_VERSION) and the docs name
try:
    import verl
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop import agent_loop as verl_loop
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.protocol import DataProto
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
    from verl.workers.rollout.replica import TokenOutput

    from rlenv.adapters.verl import RLEnvAgentLoop
except ImportError as error:
    VERL_MISSING = (
        f"verl is not importable here ({error!r}); `make test-verl` runs these tests against "
        f"the real verl {VERL_VERSION} in .venv-verl"
    )
else:
    VERL_MISSING = ""

needs_verl = pytest.mark.skipif(bool(VERL_MISSING), reason=VERL_MISSING)


@pytest.mark.skipif(not VERL_MISSING, reason="verl is importable here")
def test_without_verl_the_agent_loop_is_an_import_error_that_says_how():
    with pytest.raises(ImportError, match="make test-verl"):
        adapter.RLEnvAgentLoop  # noqa: B018


# The generation server: the one thing not verl's (no GPU, no vLLM). Same signature as verl
# 0.9.1's LLMServerClient.generate, and verl's own TokenOutput back.


class TinyModelServer:
    """Samples ids from a tiny model, token in, token out. Special tokens other than the
    end-of-turn token, and tokens that are not whole ASCII text, are never sampled, so the
    model's text renders back to the same characters."""

    def __init__(self, model, tokenizer, max_tokens: int = 6) -> None:
        self.model, self.tokenizer, self.max_tokens = model, tokenizer, max_tokens
        self.calls: list[tuple[str, list[int], dict]] = []
        self.outputs: list[list[int]] = []
        eos = tokenizer.eos_token_id
        self.banned = [
            [i] for i in range(len(tokenizer))
            if i != eos and not _plain_ascii(tokenizer.decode([i]))
        ]  # fmt: skip

    async def generate(
        self, request_id, *, prompt_ids, sampling_params, image_data=None, video_data=None,
        audio_data=None, mm_processor_kwargs=None, **kwargs,
    ):  # fmt: skip
        self.calls.append((request_id, list(prompt_ids), dict(sampling_params)))
        torch.manual_seed(len(self.calls))
        temperature = sampling_params["temperature"]
        output = self.model.generate(
            input_ids=torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids)),
            max_new_tokens=min(self.max_tokens, sampling_params["max_tokens"]),
            do_sample=True, temperature=temperature, top_k=None, top_p=None,
            eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
            bad_words_ids=self.banned, return_dict_in_generate=True, output_logits=True,
        )  # fmt: skip
        ids = output.sequences[0, len(prompt_ids) :].tolist()
        logits = torch.stack(output.logits, dim=1)[0].float() / temperature
        logprobs = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
        self.outputs.append(ids)
        return TokenOutput(token_ids=ids, log_probs=logprobs.tolist(), stop_reason="completed")


class BinarySearchServer:
    """A scripted policy for GuessNumber: reads the hints in its prompt and bisects. With
    ``abort_on`` (a 1-based turn), that turn comes back cut off after ``abort_after`` ids with
    ``stop_reason="aborted"``, as verl's vLLM server returns a request aborted mid-flight."""

    def __init__(self, tokenizer, low: int, high: int, abort_on=None, abort_after=2) -> None:
        self.tokenizer, self.low, self.high = tokenizer, low, high
        self.abort_on, self.abort_after = abort_on, abort_after
        self.calls: list[list[int]] = []
        self.outputs: list[list[int]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.calls.append(list(prompt_ids))
        ids = binary_search_ids(self.tokenizer, self.tokenizer.decode(prompt_ids), self.low,
                                self.high)  # fmt: skip
        stop_reason = "completed"
        if len(self.calls) == self.abort_on:
            ids, stop_reason = ids[: self.abort_after], "aborted"
        self.outputs.append(ids)
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason=stop_reason)


class Says:
    """Answers every turn with ``text`` (and the end-of-turn token), no log-probs."""

    def __init__(self, tokenizer, text: str) -> None:
        self.ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        self.ids.append(tokenizer.eos_token_id)
        self.calls: list[list[int]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.calls.append(list(prompt_ids))
        return TokenOutput(token_ids=self.ids, stop_reason="completed")


def _plain_ascii(text: str) -> bool:
    return bool(text) and text.isascii() and text.isprintable()


# verl's side: the trainer config's fields the worker and the loop read, verl's dataset, and
# verl's AgentLoopWorker (made without its Ray actor and HF model config, which need a model
# path; every attribute generate_sequences reads is set as its __init__ would).


def _config(prompt_length=512, response_length=512, template_kwargs=None):
    rollout = {
        "prompt_length": prompt_length, "response_length": response_length,
        "temperature": 1.0, "top_p": 1.0, "top_k": -1, "calculate_log_probs": True,
        "val_kwargs": {"temperature": 0, "top_p": 1.0, "top_k": -1},
        "agent": {"default_agent_loop": "single_turn_agent"},
    }  # fmt: skip
    data = {
        "prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": True,
        "filter_overlong_prompts_workers": 1, "apply_chat_template_kwargs": template_kwargs or {},
    }  # fmt: skip
    return OmegaConf.create({"actor_rollout_ref": {"rollout": rollout}, "data": data})


def _worker(server, tokenizer, config):
    worker = verl_loop.AgentLoopWorker.__new__(verl_loop.AgentLoopWorker)
    worker.config, worker.llm_client = config, server
    worker.rollout_config = config.actor_rollout_ref.rollout
    worker.tokenizer, worker.processor, worker.hf_model_type = tokenizer, None, None
    worker.dataset_cls, worker.tools, worker.mm_processor_kwargs = RLHFDataset, [], {}
    worker.reward_loop_worker_handles = None  # the loop's reward_score is used as is
    worker.distillation_enabled = False
    return worker


def _generate(tmp_path, server, tokenizer, config, env_id, n=1, seed=0, **env_kwargs):
    """Rows of ``env_id`` through verl: parquet, RLHFDataset, collate_fn, DataProto, then
    AgentLoopWorker.generate_sequences. Returns the output DataProto."""
    path = tmp_path / "rows.parquet"
    export_parquet(env_id, path, n_tasks=n, seed=seed, agent_name=AGENT_NAME, **env_kwargs)
    dataset = RLHFDataset(str(path), tokenizer, config.data)
    batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
    batch.meta_info["validate"] = False
    return asyncio.run(_worker(server, tokenizer, config).generate_sequences(batch))


@pytest.fixture
def raw(monkeypatch):
    """The loop's own AgentLoopOutputs, before verl pads them (one-row batches)."""
    outputs = []
    run = RLEnvAgentLoop.run

    async def recording(self, sampling_params, **kwargs):
        output = await run(self, sampling_params, **kwargs)
        outputs.append(output.model_copy(deep=True))
        return output

    monkeypatch.setattr(RLEnvAgentLoop, "run", recording)
    return outputs


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


def _secret(seed: int) -> int:
    env = rlenv.make("rlenv/GuessNumber-v0", high=8)
    env.reset(seed=seed)
    return env.task.answer


def _assert_batch_matches(out, output, row_index=0):
    """verl's padded batch row holds the loop's output: prompt left-padded, response
    right-padded, reward on the last response token."""
    prompt, response = output.prompt_ids, output.response_ids
    assert out.batch["prompts"][row_index, -len(prompt) :].tolist() == prompt
    assert out.batch["responses"][row_index, : len(response)].tolist() == response
    mask = out.batch["response_mask"][row_index].tolist()
    assert mask == output.response_mask + [0] * (len(mask) - len(response))
    scores = out.batch["rm_scores"][row_index]
    assert scores.sum().item() == pytest.approx(output.reward_score)
    if response and output.reward_score:
        assert scores[len(response) - 1].item() == pytest.approx(output.reward_score)


@needs_verl
def test_it_is_verls_registry_and_base_class():
    assert verl.__version__ == VERL_VERSION
    assert verl_loop._agent_loop_registry[AGENT_NAME] == {
        "_target_": "rlenv.adapters.verl.RLEnvAgentLoop"
    }
    assert issubclass(RLEnvAgentLoop, verl_loop.AgentLoopBase)
    assert adapter.AgentLoopOutput is verl_loop.AgentLoopOutput


@needs_verl
def test_agent_loop_on_guess_number_masks_env_replies_and_keeps_exact_ids(tmp_path, raw):
    model, tokenizer = tiny_chat_model()
    server = TinyModelServer(model, tokenizer)
    row = _row("rlenv/GuessNumber-v0", 2, high=8, max_turns=4)
    out = _generate(tmp_path, server, tokenizer, _config(), "rlenv/GuessNumber-v0", seed=2,
                    high=8, max_turns=4)  # fmt: skip
    (output,) = raw

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
    # token in, token out: each generation was fed the exact ids so far, with verl's sampling
    # parameters (AgentLoopWorker.generate_sequences builds them from the rollout config)
    whole = output.prompt_ids + output.response_ids
    for (request_id, fed, params), (start, _) in zip(server.calls, model_runs, strict=True):
        assert fed == whole[: len(output.prompt_ids) + start]
        assert request_id == server.calls[0][0]
        assert {k: params[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty",
                                       "logprobs")} == {"temperature": 1.0, "top_p": 1.0,
                "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}  # fmt: skip
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
    pairs = list(zip(output.response_logprobs, output.response_mask, strict=True))
    assert all(lp == 0.0 for lp, m in pairs if m == 0)
    assert all(lp < 0.0 for lp, m in pairs if m == 1)
    assert output.reward_score == reward
    assert output.num_turns == 1 + turns + (turns - 1)  # prompt, model turns, env replies
    info = output.extra_fields["reward_extra_info"]
    assert info["scored"] is True and info["truncated"] is True
    assert output.extra_fields["turn_scores"] == [0.0] * turns
    # and verl's batch holds exactly that
    assert out.batch["prompts"].shape == (1, 512) and out.batch["responses"].shape == (1, 512)
    _assert_batch_matches(out, output)
    logged = out.batch["rollout_log_probs"][0, : len(output.response_ids)]
    assert logged.tolist() == pytest.approx(output.response_logprobs)
    assert out.non_tensor_batch["scored"].tolist() == [True]
    assert out.non_tensor_batch["__num_turns__"].tolist() == [output.num_turns]
    assert "reward_extra_keys" in out.meta_info


@needs_verl
def test_agent_loop_reward_is_the_envs_episode_reward_when_the_number_is_found(tmp_path, raw):
    _, tokenizer = tiny_chat_model()
    seed = next(s for s in range(50) if _secret(s) != 4)  # 4 is the first guess
    row = _row("rlenv/GuessNumber-v0", seed, high=8)
    server = BinarySearchServer(tokenizer, 1, 8)
    out = _generate(tmp_path, server, tokenizer, _config(), "rlenv/GuessNumber-v0", seed=seed,
                    high=8)  # fmt: skip
    (output,) = raw
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in server.outputs]
    reward, conversation = _replay(row, texts)
    assert 2 <= len(server.outputs) <= 3
    assert output.reward_score == reward == 1.0
    assert conversation[-1]["content"].startswith("Correct!")
    runs = _segments(output.response_mask)
    assert [value for value, _, _ in runs] == [1, 0] * (len(server.outputs) - 1) + [1]
    assert output.extra_fields["reward_extra_info"]["terminated"] is True
    _assert_renders(tokenizer, output.prompt_ids + output.response_ids, conversation)
    _assert_batch_matches(out, output)
    assert out.batch["rm_scores"].sum().item() == 1.0


@needs_verl
def test_agent_loop_stops_at_the_response_length(tmp_path, raw):
    model, tokenizer = tiny_chat_model()
    server = TinyModelServer(model, tokenizer, max_tokens=6)
    out = _generate(tmp_path, server, tokenizer, _config(response_length=10),
                    "rlenv/GuessNumber-v0", high=8)  # fmt: skip
    (output,) = raw
    assert len(output.response_ids) == len(output.response_mask) <= 10
    assert server.calls[0][2]["max_tokens"] == 10
    assert all(params["max_tokens"] <= 10 for _, _, params in server.calls)
    assert "response_length" in output.extra_fields["reward_extra_info"]["reason"]
    assert out.batch["responses"].shape == (1, 10)
    _assert_batch_matches(out, output)


@needs_verl
def test_agent_loop_scores_an_unscored_episode_zero_and_says_so(tmp_path, raw):
    _, tokenizer = tiny_chat_model()
    out = _generate(tmp_path, Says(tokenizer, "boom"), tokenizer, _config(),
                    "adaptertest/Crashing-v0")  # fmt: skip
    assert raw[0].reward_score == 0.0
    assert raw[0].response_logprobs is None  # the server sent none
    assert out.non_tensor_batch["scored"].tolist() == [False]
    assert out.batch["rm_scores"].sum().item() == 0.0
    assert "rollout_log_probs" not in set(out.batch.keys())
    out = _generate(tmp_path, Says(tokenizer, "ok"), tokenizer, _config(),
                    "adaptertest/Crashing-v0")  # fmt: skip
    assert raw[1].reward_score == 1.0
    assert raw[1].response_mask == [1] * len(raw[1].response_ids)
    assert out.batch["rm_scores"].sum().item() == 1.0


@needs_verl
def test_a_prompt_over_rollout_prompt_length_is_cut_as_verl_cuts_it(tmp_path, raw):
    """verl pads every prompt to rollout.prompt_length and stacks the batch with torch.cat: a
    longer one (an env's tools rendered by the loop, which verl's dataset filter never sees)
    broke the batch. Like verl's own loops, the loop keeps the last prompt_length tokens."""
    _, tokenizer = tiny_chat_model()
    rows = adapter.build_rows("rlenv/Arithmetic-v0", 3, 0, difficulty=3)
    chat = ChatTokens(tokenizer)
    full = [chat.prompt_ids(row["prompt"]) for row in rows]
    limit = min(len(ids) for ids in full) - 5
    server = Says(tokenizer, "\\boxed{1}")
    out = _generate(tmp_path, server, tokenizer, _config(prompt_length=limit, response_length=16),
                    "rlenv/Arithmetic-v0", n=3, difficulty=3)  # fmt: skip
    assert out.batch["prompts"].shape == (3, limit)
    assert out.batch["input_ids"].shape == (3, limit + 16)
    assert sorted(server.calls) == sorted(ids[-limit:] for ids in full)  # what the model saw
    assert sorted(out.non_tensor_batch["prompt_truncated"].tolist()) == sorted(
        len(ids) - limit for ids in full
    )
    assert all(len(output.prompt_ids) == limit for output in raw)


@needs_verl
def test_an_aborted_generation_ends_the_episode_unscored_without_stepping_the_env(tmp_path, raw):
    _, tokenizer = tiny_chat_model()
    seed = next(s for s in range(50) if _secret(s) not in (4, 2, 6))  # not found in 2 turns
    server = BinarySearchServer(tokenizer, 1, 8, abort_on=2, abort_after=2)
    out = _generate(tmp_path, server, tokenizer, _config(), "rlenv/GuessNumber-v0", seed=seed,
                    high=8)  # fmt: skip
    (output,) = raw
    assert len(server.calls) == 2
    assert len(output.extra_fields["turn_scores"]) == 1  # the cut-off turn was not played
    info = output.extra_fields["reward_extra_info"]
    assert info["aborted"] is True and info["scored"] is False
    assert "aborted" in info["reason"]
    assert output.reward_score == 0.0
    assert output.response_ids[-2:] == server.outputs[1] and output.response_mask[-2:] == [1, 1]
    assert output.num_turns == 4  # prompt, turn 1, env reply, the cut-off turn
    assert out.non_tensor_batch["aborted"].tolist() == [True]
    assert out.batch["rm_scores"].sum().item() == 0.0
    _assert_batch_matches(out, output)


@needs_verl
def test_an_abort_before_any_token_gives_an_empty_unscored_response(tmp_path, raw):
    _, tokenizer = tiny_chat_model()
    server = BinarySearchServer(tokenizer, 1, 8, abort_on=1, abort_after=0)
    out = _generate(tmp_path, server, tokenizer, _config(), "rlenv/GuessNumber-v0", high=8)
    (output,) = raw
    assert output.response_ids == [] and output.extra_fields["turn_scores"] == []
    assert output.reward_score == 0.0 and output.num_turns == 2
    assert out.batch["response_mask"].sum().item() == 0
    assert out.non_tensor_batch["scored"].tolist() == [False]


_THINKING_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}"
)  # Qwen3's switch, on the tiny ChatML template


@needs_verl
def test_apply_chat_template_kwargs_from_the_data_config_reach_the_template(tmp_path, raw):
    _, tokenizer = tiny_chat_model()
    tokenizer.chat_template = _THINKING_CHATML
    seed = next(s for s in range(50) if _secret(s) != 4)
    row = _row("rlenv/GuessNumber-v0", seed, high=8)
    server = BinarySearchServer(tokenizer, 1, 8)
    config = _config(template_kwargs={"enable_thinking": False})  # data.apply_chat_template_kwargs
    _generate(tmp_path, server, tokenizer, config, "rlenv/GuessNumber-v0", seed=seed, high=8)
    (output,) = raw
    opening = tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=False, enable_thinking=False
    )
    assert opening.endswith("<think>\n\n</think>\n\n")
    assert output.prompt_ids == tokenizer(opening, add_special_tokens=False)["input_ids"]
    think = tokenizer("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"]
    assert len(server.calls) >= 2
    assert all(fed[-len(think) :] == think for fed in server.calls)  # every turn's prompt


# ---------------------------------------------------------------------------------- verl's reward


def _reward_item(tokenizer, row, text):
    """One scored sample as verl's reward loop gets it: the batch's tensors and the row's
    non-tensor fields."""
    prompt = tokenizer(row["prompt"][0]["content"], add_special_tokens=False)["input_ids"]
    response = tokenizer(text, add_special_tokens=False)["input_ids"] + [0, 0]  # padded
    mask = [1] * (len(prompt) + len(response) - 2) + [0, 0]
    fields = {key: np.array([row[key]], dtype=object)
              for key in ("data_source", "reward_model", "extra_info")}  # fmt: skip
    return DataProto.from_single_dict({
        "prompts": torch.tensor([prompt]), "responses": torch.tensor([response]),
        "attention_mask": torch.tensor([mask]), **fields,
    })  # fmt: skip


@needs_verl
def test_compute_score_through_verls_reward_manager(tmp_path):
    reward_file = tmp_path / "rlenv_reward.py"  # as docs/adapters/verl.md tells users
    reward_file.write_text("from rlenv.adapters.verl import compute_score\n")
    config = OmegaConf.create(
        {"reward": {"custom_reward_function": {"path": str(reward_file), "name": "compute_score"}}}
    )
    _, tokenizer = tiny_chat_model()
    row = _row("rlenv/Arithmetic-v0", 1, difficulty=1)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    env.reset(seed=1)
    cases = [(env.gold_action(), 1.0), ("\\boxed{123456789}", 0.0), ("<|im_end|>", 0.0)]

    async def score_all():
        manager = NaiveRewardManager(config, tokenizer, get_custom_reward_fn(config))
        return [await manager.run_single(_reward_item(tokenizer, row, t)) for t, _ in cases]

    for result, (_, expected) in zip(asyncio.run(score_all()), cases, strict=True):
        assert result["reward_score"] == expected
        info = result["reward_extra_info"]
        assert info["score"] == expected and info["scored"] is True
        assert set(info) == {"score", "scored", "reason", "error"}


def _assert_renders(tokenizer, ids, conversation):
    """The ids decode to the chat template's rendering of the conversation up to the model's
    last turn (what the env says after it is never fed to the model)."""
    last = max(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    rendered = tokenizer.apply_chat_template(conversation[: last + 1], tokenize=False)
    decoded = tokenizer.decode(ids)
    assert rendered.startswith(decoded)
    assert rendered[len(decoded) :] in ("\n", "<|im_end|>\n")  # last turn ended or cut off
