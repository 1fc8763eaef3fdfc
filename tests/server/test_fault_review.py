"""Faults found in a review of the served env's fault handling, each against a real server on
loopback: a hung env call that returns after its deadline must not touch the session that moved
on without it; a busy or degraded server still closes the envs of closed and expired sessions;
one step_id with another request is refused (409 StepIdReused), never answered with the first
request's answer; a RemoteEnv cannot be copied into a second client of its session; close()
behind a gateway whose server is gone ends quietly and disconnects."""

from __future__ import annotations

import copy
import http.server
import pickle
import threading
import time
from contextlib import closing

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from server_helpers import Client, Closing

import rlenv
from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict
from rlenv.remote import NO_RETRIES, RemoteEnv
from rlenv.server import ServerLimits, serve_in_thread

LATE = "rlenvtest/Late-v0"


class Late(TextEnv):
    """The action ``"hang"`` waits on :attr:`release` (10 s at most) and then raises out of
    ``step`` (as an env overriding ``step`` may); a task whose id is ``"hang"`` hangs the reset
    the same way (and then poses the task); anything else replies."""

    max_turns = 100
    release = threading.Event()

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt=f"Say {rng.randint(1, 9)}.", answer="x"))

    def start(self, task: Task) -> list:
        if task.id == "hang":
            Late.release.wait(10)
        return super().start(task)

    def step(self, action):
        if action == "hang":
            Late.release.wait(10)
            raise RuntimeError("came back broken")
        return super().step(action)

    def respond(self, message) -> Turn:
        return Turn.reply(f"turn {self.turn}", verdict=Verdict(reward=1.0))


@pytest.fixture(scope="module", autouse=True)
def late_env():
    rlenv.register(LATE, Late)
    yield
    rlenv.unregister(LATE)


@pytest.fixture(autouse=True)
def released():
    Late.release.clear()
    yield
    Late.release.set()


def _wait_until_no_hung_calls(client: Client) -> None:
    deadline = time.monotonic() + 5
    while client.call("GET", "/health")[1].get("hung_calls"):
        assert time.monotonic() < deadline, "the hung call never returned"
        time.sleep(0.02)


# ------------------------------------------------------------------ late results of hung calls


def test_a_hung_step_that_raises_after_its_deadline_does_not_end_the_next_episode():
    limits = ServerLimits(step_timeout=0.3)
    with serve_in_thread([LATE], limits=limits) as url, closing(Client(url)) as client:
        session = client.session(LATE)
        path = f"/sessions/{session}"
        assert client.call("POST", f"{path}/reset", {"seed": 0})[0] == 200
        status, body = client.call("POST", f"{path}/step", {"action": "hang"})
        assert (status, body["info"]["error"]) == (200, "StepTimeout")
        assert client.call("POST", f"{path}/reset", {"seed": 1})[0] == 200  # a new env
        Late.release.set()  # the abandoned step returns now, raising, on the old env
        _wait_until_no_hung_calls(client)
        status, body = client.call("POST", f"{path}/step", {"action": "hi"})
        assert status == 200, body  # the new episode goes on
        assert (body["reward"], body["info"]["turn"]) == (1.0, 1)


def test_a_hung_reset_that_returns_after_its_deadline_still_needs_a_reset():
    limits = ServerLimits(step_timeout=0.3)
    with serve_in_thread([LATE], limits=limits) as url, closing(Client(url)) as client:
        session = client.session(LATE)
        path = f"/sessions/{session}"
        hang = {"options": {"task": {"id": "hang", "prompt": "x"}}}
        status, body = client.call("POST", f"{path}/reset", hang)
        assert (status, body["error"]) == (504, "EnvTimeout")
        Late.release.set()  # the abandoned reset returns now, on the abandoned env
        _wait_until_no_hung_calls(client)
        status, body = client.call("POST", f"{path}/step", {"action": "hi"})
        # Not a step on the abandoned (and closed) env, whose reset was answered 504.
        assert (status, body["error"]) == (409, "EpisodeFinishedError"), body
        assert client.call("POST", f"{path}/reset", {"seed": 0})[0] == 200
        assert client.call("POST", f"{path}/step", {"action": "hi"})[0] == 200


# ------------------------------------------------------------------ closing envs under load


def test_envs_of_sessions_closed_or_expired_while_the_server_is_busy_are_still_closed():
    # One thread, no waiting room: while a step hangs, every other env call gets 429. A close
    # is no request to refuse: refused, the env (a sandbox, a subprocess) was never closed.
    Closing.closed.clear()
    limits = ServerLimits(threads=1, max_waiting=0, step_timeout=None, session_ttl=0.3)
    served = [LATE, "rlenvtest/Closing-v0"]
    with serve_in_thread(served, limits=limits) as url, closing(Client(url)) as client:
        deleted = client.session("rlenvtest/Closing-v0")
        expiring = client.session("rlenvtest/Closing-v0")
        busy = client.session(LATE)
        assert client.call("POST", f"/sessions/{busy}/reset", {"seed": 0})[0] == 200

        def hang() -> None:  # until it holds the thread (a reset below may hold it a moment)
            with closing(Client(url)) as other:
                while other.call("POST", f"/sessions/{busy}/step", {"action": "hang"})[0] == 429:
                    time.sleep(0.01)

        hung = threading.Thread(target=hang)
        hung.start()
        deadline = time.monotonic() + 5
        while (seen := client.call("POST", f"/sessions/{deleted}/reset", {"seed": 0}))[0] != 429:
            assert time.monotonic() < deadline, seen
            time.sleep(0.02)
        deleting = threading.Thread(
            target=lambda: Client(url).call("DELETE", f"/sessions/{deleted}")
        )
        deleting.start()
        time.sleep(0.6)  # `expiring` expires meanwhile
        Late.release.set()
        hung.join(5)
        deleting.join(5)
        deadline = time.monotonic() + 5
        while len(Closing.closed) < 2:
            assert time.monotonic() < deadline, f"closed {len(Closing.closed)} of 2 envs"
            time.sleep(0.02)
        assert client.call("POST", f"/sessions/{expiring}/reset", {})[0] == 404


# ------------------------------------------------------------------ one step_id, two requests


def test_a_step_id_sent_again_with_another_request_is_refused_not_answered_with_the_first():
    # Two clients on one session (a copied RemoteEnv, a client bug): the second's request is no
    # retry, and must not get the first one's task or reward as its own.
    with serve_in_thread([LATE]) as url, closing(Client(url)) as client:
        session = client.session(LATE)
        path = f"/sessions/{session}"
        first = client.call("POST", f"{path}/reset", {"seed": 1, "step_id": 0})
        assert first[0] == 200
        assert client.call("POST", f"{path}/reset", {"seed": 1, "step_id": 0}) == first  # a retry
        status, body = client.call("POST", f"{path}/reset", {"seed": 2, "step_id": 0})
        assert (status, body["error"]) == (409, "StepIdReused"), body
        answer = client.call("POST", f"{path}/step", {"action": "a", "step_id": 1, "since": 2})
        assert answer[0] == 200
        again = {"action": "a", "step_id": 1, "since": 2}
        assert client.call("POST", f"{path}/step", again) == answer  # a retry
        for other in ({"action": "b", "step_id": 1, "since": 2}, {"action": "a", "step_id": 1}):
            status, body = client.call("POST", f"{path}/step", other)
            assert (status, body["error"]) == (409, "StepIdReused"), body
        status, body = client.call("POST", f"{path}/step", {"action": "c", "step_id": 2})
        assert (status, body["info"]["turn"]) == (200, 2)  # stepped twice in all


def test_a_remote_env_cannot_be_copied_or_pickled_into_a_second_client_of_its_session(server_url):
    # A copy would share the session (and a shallow one the connection and the conversation):
    # its steps would be refused as StepIdReused or interleave with the original's episode.
    env = RemoteEnv(server_url, "rlenv/Arithmetic-v0", retry_policy=NO_RETRIES)
    env.reset(seed=0)
    for copier in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="RemoteEnv"):
            copier(env)
    assert env.step("1")[4]["turn"] == 1  # the original goes on
    env.close()


# ------------------------------------------------------------------ closing behind a gateway


class _Gateway(http.server.BaseHTTPRequestHandler):
    """A reverse proxy whose server behind it is down: 502 to everything."""

    def _bad_gateway(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b"<html>502 Bad Gateway</html>"
        self.send_response(502)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_DELETE = _bad_gateway

    def log_message(self, *args) -> None:
        pass


def test_close_behind_a_gateway_whose_server_is_gone_ends_quietly_and_disconnects(server_url):
    # A refused connection is "the server is gone, its session expires on its own"; a 502 from a
    # proxy in front says the same, and close() (a `with` block's exit) must not raise for it.
    gateway = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        env = RemoteEnv(server_url, "rlenv/Arithmetic-v0", retry_policy=NO_RETRIES)
        env.reset(seed=0)
        env._client.connection.close()
        env._client.connection.host, env._client.connection.port = gateway.server_address[:2]
        env.close()
        assert env._client.connection.sock is None  # disconnected
        env.close()  # twice is fine
    finally:
        gateway.shutdown()
        gateway.server_close()
