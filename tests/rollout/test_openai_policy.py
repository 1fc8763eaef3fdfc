"""OpenAIPolicy against a real HTTP server on loopback.

The server is a small in-test implementation of the chat-completions protocol (stdlib
``http.server``): enough to test requests, responses, tool calls, retries, timeouts and the
concurrency limit. It is not vLLM; the protocol is the same.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlenv.rollout import SamplingParams, episodes, rollout
from rlenv.rollout.openai import OpenAIPolicy, PolicyError, to_openai_messages


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
