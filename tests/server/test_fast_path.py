"""The fast path of resets and steps (``rlenv.server._Edge``) answers exactly as FastAPI's routes
do: every body, good or bad, gets the same status, error and answer both ways."""

from __future__ import annotations

import contextlib
import json
from contextlib import closing

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from server_helpers import Client

from rlenv.server import REPLAY_HEADER, ServerLimits, create_app, serve_in_thread

BODIES = [
    b"",
    b"{}",
    b"null",
    b"[]",
    b"5",
    b'"x"',
    b"{not json",
    b"\xff\xfe garbage",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"seed": 3}',
    b'{"seed": 3, "step_id": 0}',
    b'{"seed": "zero"}',
    b'{"seed": -1}',
    b'{"seed": 1.5}',
    b'{"seed": true}',
    b'{"options": "task_id"}',
    b'{"options": {"bogus": 1}}',
    b'{"options": {"task_id": "no-such-task"}}',
    b'{"action": "The answer is \\\\boxed{4}."}',
    b'{"action": "\\ud800 lone surrogate"}',
    b'{"action": {"role": "assistant", "content": "hi"}}',
    b'{"action": {"role": "user", "content": "hi"}}',
    b'{"action": 5}',
    b'{"action": null}',
    b'{"action": ["a"]}',
    b'{"action": "a", "extra": 1}',
    b'{"action": "a", "since": -1}',
    b'{"action": "a", "since": 1, "step_id": 4}',
    b'{"action": "a", "step_id": "four"}',
]


@pytest.fixture(scope="module")
def servers():
    """The same app twice: fast path on (the default) and off (FastAPI's routes)."""
    slow_app = create_app(["rlenv/Arithmetic-v0"], ServerLimits(max_body_bytes=1_000_000))
    slow_app.state.rlenv.fast_path = False
    fast_app = create_app(["rlenv/Arithmetic-v0"], ServerLimits(max_body_bytes=1_000_000))
    with serve_in_thread(fast_app) as fast, serve_in_thread(slow_app) as slow:
        yield fast, slow


def _answer(client: Client, path: str, raw: bytes, headers: dict | None = None):
    client.connection.request("POST", path, raw, headers or {"Content-Type": "application/json"})
    response = client.connection.getresponse()
    data = response.read()
    body = json.loads(data) if data else None
    if isinstance(body, dict):
        for key in ("observation", "info"):  # a task's wording is the same; ids are not
            body.pop(key, None)
    return response.status, body, response.getheader(REPLAY_HEADER)


def _play(url: str, verb: str, raw: bytes, headers: dict | None = None):
    with closing(Client(url)) as client:
        session = client.session()
        if verb == "step":
            client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
        first = _answer(client, f"/sessions/{session}/{verb}", raw, headers)
        again = _answer(client, f"/sessions/{session}/{verb}", raw, headers)
        unknown = _answer(client, f"/sessions/no-such-session/{verb}", raw, headers)
    return first, again, unknown


@pytest.mark.parametrize("verb", ["reset", "step"])
@pytest.mark.parametrize("raw", BODIES, ids=lambda raw: raw[:40].decode("latin-1"))
def test_every_body_gets_the_same_answer_both_ways(servers, verb, raw):
    fast, slow = servers
    assert _play(fast, verb, raw) == _play(slow, verb, raw)


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "application/x+json"},
        {"Content-Type": "text/plain"},
        {},
    ],
)
def test_content_types_are_treated_alike(servers, headers):
    fast, slow = servers
    raw = b'{"seed": 1}'
    assert _play(fast, "reset", raw, headers) == _play(slow, "reset", raw, headers)


def test_a_streamed_body_over_the_limit_is_413_both_ways(servers):
    # (A body declared too large is refused before either path: test_server_api.py.)
    raw = json.dumps({"action": "x" * 1_100_000}).encode()
    for url in servers:
        with closing(Client(url)) as client:
            session = client.session()
            client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                client.connection.request(
                    "POST",
                    f"/sessions/{session}/step",
                    body=(raw[i : i + 65536] for i in range(0, len(raw), 65536)),
                    encode_chunked=True,
                    headers={"Content-Type": "application/json"},
                )
            response = client.connection.getresponse()
            assert (response.status, json.loads(response.read())) == (
                413,
                {"error": "BodyTooLarge", "detail": "request body over 1000000 bytes"},
            )


def test_the_fast_path_plays_an_episode_with_replays(servers):
    fast, _ = servers
    with closing(Client(fast)) as client:
        session = client.session()
        status, body = client.call("POST", f"/sessions/{session}/reset", {"seed": 0, "step_id": 0})
        assert status == 200 and body["observation"][0]["role"] == "user"
        request = {"action": "\\boxed{0}", "step_id": 1}
        first = _answer(client, f"/sessions/{session}/step", json.dumps(request).encode())
        again = _answer(client, f"/sessions/{session}/step", json.dumps(request).encode())
        assert first[0] == again[0] == 200 and first[1] == again[1]
        assert (first[2], again[2]) == (None, "1")
