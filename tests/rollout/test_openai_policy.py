"""OpenAIPolicy against a real HTTP server on loopback.

The server is a small in-test implementation of the chat-completions protocol (stdlib
``http.server``): enough to test requests, responses, tool calls, retries, timeouts and the
concurrency limit. It is not vLLM (which needs a GPU); the protocol is the same. The token-id
tests answer in the JSON shapes of vLLM's and SGLang's servers, read from their source (the
files and commits are named in ``rlenv/rollout/openai.py``'s docstring), and one serves a tiny
real model over ``/completions`` as vLLM does: token ids in, token ids and log-probs out, each
request sampled from a generator seeded with its own ``seed``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlenv.rollout import SamplingParams, episodes, rollout
from rlenv.rollout.openai import OpenAIPolicy, PolicyError, to_openai_messages
from rlenv.rollout.policy import row_seed


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_first = 0
        self.fail_status = 429
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.reply = lambda body: {"content": "echo: " + body["messages"][-1]["content"]}
        self.payload = None  # payload(path, body) -> the whole response, when set
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                    )
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    failing = server.fail_first > 0
                    server.fail_first -= failing
                time.sleep(server.delay)
                # Leave the count before answering: once the client reads the answer it may
                # send its next request, which must not overlap this one in the count.
                with server.lock:
                    server.in_flight -= 1
                if failing:
                    self.send_response(server.fail_status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                if server.payload is not None:
                    payload = server.payload(self.path, body)
                else:
                    message = {"role": "assistant", **server.reply(body)}
                    payload = {
                        "choices": [{"message": message, "finish_reason": "stop"}],
                        "usage": {"completion_tokens": 3},
                    }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


def test_requests_and_responses(server):
    policy = OpenAIPolicy(server.url, "tiny", api_key="secret", backoff=0.01)
    conversations = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "yo"}]]
    tools = [
        [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        [],
    ]
    completions = policy.generate(
        conversations, tools, SamplingParams(max_new_tokens=7, temperature=0.5, seed=3)
    )
    assert [c.text for c in completions] == ["echo: hi", "echo: yo"]
    assert completions[0].finish_reason == "stop" and completions[0].action == "echo: hi"
    first = next(r for r in server.requests if r["body"]["messages"][-1]["content"] == "hi")
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer secret"
    assert (
        first["body"]["max_tokens"] == 7
        and first["body"]["temperature"] == 0.5
        and first["body"]["seed"] == 3
    )
    assert first["body"]["tools"][0]["function"]["name"] == "f"
    second = next(r for r in server.requests if r["body"]["messages"][-1]["content"] == "yo")
    assert "tools" not in second["body"]


def test_tool_calls_come_back_as_a_parsed_message(server):
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    server.reply = lambda body: {"content": None, "tool_calls": [call]}
    completion = OpenAIPolicy(server.url, "tiny").generate(
        [[{"role": "user", "content": "go"}]], [[]], SamplingParams()
    )[0]
    assert completion.text == "" and completion.action["tool_calls"] == [call]


def test_arguments_are_sent_as_json_strings():
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
            ],
        }
    ]
    assert to_openai_messages(messages)[0]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == {"x": 1}  # not mutated


def test_rate_limits_and_server_errors_are_retried(server):
    server.fail_first = 2
    policy = OpenAIPolicy(server.url, "tiny", backoff=0.01)
    assert (
        policy.generate([[{"role": "user", "content": "a"}]], [[]], SamplingParams())[0].text
        == "echo: a"
    )
    assert len(server.requests) == 3
    server.fail_first, server.fail_status = 10, 503
    with pytest.raises(PolicyError, match="failed after 3 attempts: HTTP 503"):
        OpenAIPolicy(server.url, "tiny", backoff=0.01, max_retries=2).generate(
            [[{"role": "user", "content": "a"}]], [[]], SamplingParams()
        )


def test_client_errors_are_not_retried(server):
    server.fail_first, server.fail_status = 1, 400
    with pytest.raises(PolicyError, match="HTTP 400"):
        OpenAIPolicy(server.url, "tiny", backoff=0.01).generate(
            [[{"role": "user", "content": "a"}]], [[]], SamplingParams()
        )
    assert len(server.requests) == 1


def test_timeouts_and_unreachable_servers(server):
    server.delay = 0.5
    with pytest.raises(PolicyError, match="timed out"):
        OpenAIPolicy(server.url, "tiny", timeout=0.1, max_retries=1, backoff=0.01).generate(
            [[{"role": "user", "content": "a"}]], [[]], SamplingParams()
        )
    with pytest.raises(PolicyError):
        OpenAIPolicy("http://127.0.0.1:9/v1", "tiny", max_retries=0).generate(
            [[{"role": "user", "content": "a"}]], [[]], SamplingParams()
        )


def test_concurrency_is_limited(server):
    server.delay = 0.05
    policy = OpenAIPolicy(server.url, "tiny", max_concurrency=3)
    conversations = [[{"role": "user", "content": str(i)}] for i in range(9)]
    completions = policy.generate(conversations, [[]] * 9, SamplingParams())
    assert [c.text for c in completions] == [f"echo: {i}" for i in range(9)]  # order kept
    assert 1 < server.max_in_flight <= 3


def test_the_rollout_engine_runs_on_an_endpoint(server):
    server.reply = lambda body: {"content": "\\boxed{0}"}
    trajectories = rollout(
        OpenAIPolicy(server.url, "tiny"), episodes("rlenv/Arithmetic-v0", n_tasks=3)
    )
    assert len(trajectories) == 3 and all(t.policy == "openai:tiny" for t in trajectories)


# --- seeds: each sample of a group its own (issue 19) ---------------------------------------


def _seed_echo(body):
    """What vLLM's per-request seeding amounts to: the sample is a function of the seed."""
    return {"content": f"seed {body.get('seed')}"}


def test_the_samples_of_a_group_get_their_own_seeds_and_the_run_reproduces(server):
    """A group's samples send identical messages; with one seed for all of them a vLLM server
    returns K identical samples (the bug). Each episode now has its own seed, which depends on
    the run's seed, the episode and the turn only: not on how episodes were batched."""
    server.reply = _seed_echo
    specs = episodes("rlenv/Arithmetic-v0", n_tasks=3, group_size=4)
    params = SamplingParams(max_new_tokens=8, seed=0)

    def seeds(**kwargs):
        trajectories = rollout(OpenAIPolicy(server.url, "tiny"), specs, params=params, **kwargs)
        return [t.turns[0].completion for t in trajectories]

    first = seeds()
    groups = [first[i : i + 4] for i in range(0, 12, 4)]
    assert all(len(set(group)) == 4 for group in groups), groups
    assert len(set(first)) == 12
    assert seeds() == first  # the same run reproduces
    assert seeds(max_batch_size=5) == first  # whatever the batching
    params = SamplingParams(max_new_tokens=8, seed=1)
    assert not set(seeds()) & set(first)  # another run's seed, other samples


def test_identical_conversations_in_one_call_get_their_own_seeds(server):
    server.reply = _seed_echo
    conversation = [{"role": "user", "content": "same"}]
    completions = OpenAIPolicy(server.url, "tiny").generate(
        [conversation] * 4, [[]] * 4, SamplingParams(seed=3)
    )
    assert [c.text for c in completions] == [f"seed {row_seed(3, i)}" for i in range(4)]
    assert completions[0].text == "seed 3" and len({c.text for c in completions}) == 4
    unseeded = OpenAIPolicy(server.url, "tiny").generate(
        [conversation], [[]], SamplingParams(seed=None)
    )
    assert unseeded[0].text == "seed None"  # no seed field: the server's own noise
    with pytest.raises(ValueError, match="one per conversation"):
        OpenAIPolicy(server.url, "tiny").generate(
            [conversation] * 2, [[]] * 2, SamplingParams(seeds=(1,))
        )


def test_collect_with_samples_against_an_endpoint_sends_each_sample_its_own_seed(server, tmp_path):
    from rlenv.cli import main

    server.reply = _seed_echo
    out = tmp_path / "kept.jsonl"
    assert main(["collect", "rlenv/Arithmetic-v0", "--model", "tiny", "--base-url", server.url,
                 "-n", "2", "--samples", "3", "--keep", "all", "--out", str(out)]) == 0  # fmt: skip
    sent = [request["body"]["seed"] for request in server.requests]
    assert len(sent) == 6 and len(set(sent)) == 6


# --- token ids and log-probs, in vLLM's and SGLang's shapes ----------------------------------


def _vllm_chat(path, body):
    """vLLM's ChatCompletionResponse (vllm/entrypoints/openai/chat_completion/protocol.py):
    prompt_token_ids at the top level, token_ids in the choice (return_token_ids), log-prob
    tokens as "token_id:N" (return_tokens_as_token_ids)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ab", "reasoning": None},
                "logprobs": {
                    "content": [
                        {"token": f"token_id:{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
                        for i, lp in [(7, -0.5), (8, -1.25), (2, -0.125)]
                    ]
                },
                "finish_reason": "stop",
                "stop_reason": None,
                "token_ids": [7, 8, 2],
            }
        ],
        "usage": {"prompt_tokens": 3, "total_tokens": 6, "completion_tokens": 3},
        "prompt_logprobs": None,
        "prompt_token_ids": [1, 5, 6],
    }


def _sglang_chat(path, body):
    """SGLang's ChatCompletionResponse (python/sglang/srt/entrypoints/openai/protocol.py): both
    id lists in the choice (return_prompt_token_ids, return_token_ids), log-prob tokens as
    text with their bytes."""
    content = [
        {"token": token, "bytes": list(token.encode()), "logprob": lp, "top_logprobs": []}
        for token, lp in [("a", -0.5), ("b", -1.25), ("<|im_end|>", -0.125)]
    ]
    return {
        "id": "1",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ab", "reasoning_content": None},
                "logprobs": {"content": content},
                "finish_reason": "stop",
                "matched_stop": 2,
                "prompt_token_ids": [1, 5, 6],
                "token_ids": [7, 8, 2],
            }
        ],
        "usage": {"prompt_tokens": 3, "total_tokens": 6, "completion_tokens": 3},
    }


@pytest.mark.parametrize("shape", [_vllm_chat, _sglang_chat], ids=["vllm", "sglang"])
def test_token_ids_and_logprobs_from_a_chat_endpoint(server, shape):
    server.payload = shape
    completion = OpenAIPolicy(server.url, "tiny", token_ids=True).generate(
        [[{"role": "user", "content": "hi"}]], [[]], SamplingParams(temperature=1.0, seed=5)
    )[0]
    assert completion.text == "ab" and completion.finish_reason == "stop"
    assert completion.prompt_token_ids == [1, 5, 6]
    assert completion.completion_token_ids == [7, 8, 2]
    assert completion.logprobs == [-0.5, -1.25, -0.125]
    body = server.requests[0]["body"]
    assert body["logprobs"] is True and body["return_token_ids"] is True
    assert body["return_tokens_as_token_ids"] is True and body["return_prompt_token_ids"] is True
    # generation_config defaults would otherwise change the distribution sampled from
    assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (-1, 0.0, 1.0)
    assert body["seed"] == 5 and server.requests[0]["path"] == "/v1/chat/completions"


def test_an_older_vllm_without_token_ids_still_gives_them_through_its_logprob_tokens(server):
    def older(path, body):
        payload = _vllm_chat(path, body)
        del payload["choices"][0]["token_ids"]
        return payload

    server.payload = older
    completion = OpenAIPolicy(server.url, "tiny", token_ids=True).generate(
        [[{"role": "user", "content": "hi"}]], [[]], SamplingParams()
    )[0]
    assert completion.completion_token_ids == [7, 8, 2]


def test_a_server_without_token_ids_is_a_clear_error(server):
    # The plain OpenAI shape: no ids anywhere, log-prob tokens as text.
    server.reply = lambda body: {"content": "ab"}
    policy = OpenAIPolicy(server.url, "tiny", token_ids=True)
    with pytest.raises(PolicyError, match=r"no prompt token ids.*tokenizer="):
        policy.generate([[{"role": "user", "content": "hi"}]], [[]], SamplingParams())

    def no_completion_ids(path, body):
        payload = _sglang_chat(path, body)
        del payload["choices"][0]["token_ids"]
        return payload

    server.payload = no_completion_ids
    with pytest.raises(PolicyError, match="no completion token ids"):
        policy.generate([[{"role": "user", "content": "hi"}]], [[]], SamplingParams())

    def short_logprobs(path, body):
        payload = _vllm_chat(path, body)
        payload["choices"][0]["logprobs"]["content"].pop()
        return payload

    server.payload = short_logprobs
    with pytest.raises(PolicyError, match="2 log-probs for 3 generated token ids"):
        policy.generate([[{"role": "user", "content": "hi"}]], [[]], SamplingParams())
    # without token_ids=True nothing of this is asked for, and None stays None
    plain = OpenAIPolicy(server.url, "tiny").generate(
        [[{"role": "user", "content": "hi"}]], [[]], SamplingParams()
    )[0]
    assert plain.completion_token_ids is None and plain.logprobs is None
    assert "return_token_ids" not in server.requests[-1]["body"]
    assert "top_k" not in server.requests[-1]["body"]  # a hosted API would refuse it


# --- token in, token out: /completions with the policy's own prompt ids ----------------------


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("torch")
    from rlenv.rollout.transformers import TransformersPolicy
    from rlenv.testing import tiny_chat_model

    model, tokenizer = tiny_chat_model(0, corpus="Guess a number. Higher. Lower. user assistant")
    return TransformersPolicy(model, tokenizer, device="cpu", name="tiny")


def _serve_like_vllm(engine, lock):
    """vLLM's /v1/completions for a token prompt (vllm/entrypoints/openai/completion/), backed by
    a real tiny model: the request's ids are the prompt, generation stops at its
    ``stop_token_ids``, its ``seed`` seeds the request's own sampler, and the choice carries
    ``prompt_token_ids``, ``token_ids`` and one ``token_logprobs`` entry per id, with
    ``"token_id:N"`` tokens."""
    import torch

    def payload(path, body):
        assert path == "/v1/completions"
        assert sorted(body["stop_token_ids"]) == sorted(engine.stop_ids)
        prompt = body["prompt"]
        params = SamplingParams(
            max_new_tokens=body["max_tokens"], temperature=body["temperature"], top_p=body["top_p"]
        )
        generator = torch.Generator().manual_seed(body.get("seed") or 0)
        with lock:
            out = engine._decode([prompt], params, generator)[0]
        ids = out.completion_token_ids
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "text": out.text,
                    "logprobs": {
                        "text_offset": list(range(len(ids))),
                        "token_logprobs": out.logprobs,
                        "tokens": [f"token_id:{i}" for i in ids],
                        "top_logprobs": [
                            {f"token_id:{i}": lp} for i, lp in zip(ids, out.logprobs, strict=True)
                        ],
                    },
                    "finish_reason": out.finish_reason,
                    "stop_reason": ids[-1] if out.finish_reason == "stop" else None,
                    "token_ids": ids,
                    "prompt_logprobs": None,
                    "prompt_token_ids": prompt,
                }
            ],
            "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(ids)},
        }

    return payload


def test_token_in_token_out_equals_the_local_policy_over_a_multi_turn_episode(server, tiny):
    server.payload = _serve_like_vllm(tiny, threading.Lock())
    remote = OpenAIPolicy(server.url, "tiny", tokenizer=tiny.tokenizer)
    assert remote.supports_prefixes and remote.url.endswith("/v1/completions")
    specs = episodes("rlenv/GuessNumber-v0", n_tasks=2, max_turns=3, high=8)
    params = SamplingParams(max_new_tokens=5, temperature=0.0)
    served = rollout(remote, specs, params=params)
    local = rollout(tiny, specs, params=params)
    assert sum(len(t.turns) for t in served) > 2  # multi-turn episodes
    for ours, theirs in zip(served, local, strict=True):
        assert [t.completion for t in ours.turns] == [t.completion for t in theirs.turns]
        sequence = ours.token_sequence()  # one exact token sequence, as locally
        assert sequence.token_ids == theirs.token_sequence().token_ids
        assert sequence.logprobs == pytest.approx(theirs.token_sequence().logprobs, abs=1e-5)
    body = server.requests[0]["body"]
    assert body["logprobs"] == 0 and body["return_token_ids"] is True
    assert body["skip_special_tokens"] is False and isinstance(body["prompt"][0], int)


def test_token_in_token_out_samples_each_group_member_apart_and_reproduces(server, tiny):
    server.payload = _serve_like_vllm(tiny, threading.Lock())
    remote = OpenAIPolicy(server.url, "tiny", tokenizer=tiny.tokenizer)
    specs = episodes("rlenv/GuessNumber-v0", n_tasks=1, group_size=4, max_turns=3, high=8)
    params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=11)

    def sampled():
        return [t.token_sequence().token_ids for t in rollout(remote, specs, params=params)]

    first = sampled()
    assert len({tuple(ids) for ids in first}) == 4
    assert sampled() == first


def test_sglang_completions_shape(server, tiny):
    """SGLang's CompletionResponseChoice (python/sglang/srt/entrypoints/openai/protocol.py):
    token_ids and prompt_token_ids with return_token_ids, log-prob tokens as text."""
    tokenizer = tiny.tokenizer
    conversation = [{"role": "user", "content": "Guess a number."}]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    word = tokenizer("Higher", add_special_tokens=False)["input_ids"]

    def sglang(path, body):
        ids = [*word, end]
        return {
            "id": "1",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "text": "Higher",
                    "logprobs": {
                        "text_offset": [],
                        "token_logprobs": [-0.25] * len(ids),
                        "tokens": [tokenizer.decode([i]) for i in ids],
                        "top_logprobs": [],
                    },
                    "finish_reason": "stop",
                    "matched_stop": end,
                    "token_ids": ids,
                    "prompt_token_ids": body["prompt"],
                }
            ],
            "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": len(ids)},
            "metadata": {"weight_version": "default"},
        }

    server.payload = sglang
    completion = OpenAIPolicy(server.url, "tiny", tokenizer=tokenizer).generate(
        [conversation], [[]], SamplingParams()
    )[0]
    assert completion.prompt_token_ids == tiny.prompt_ids(conversation, [])
    assert completion.completion_token_ids == [*word, end]
    assert completion.text == "Higher" and completion.finish_reason == "stop"
    assert completion.logprobs == [-0.25] * (len(word) + 1)

    def other_prompt(path, body):
        payload = sglang(path, body)
        payload["choices"][0]["prompt_token_ids"] = body["prompt"][1:]
        return payload

    server.payload = other_prompt
    with pytest.raises(PolicyError, match="other prompt ids than were sent"):
        OpenAIPolicy(server.url, "tiny", tokenizer=tokenizer).generate(
            [conversation], [[]], SamplingParams()
        )
