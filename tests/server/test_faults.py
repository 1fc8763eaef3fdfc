"""Sessions that survive faults: each fault injected against a real server on loopback.

A hung step (deadline, abandoned workers and their bound), a retried step after a dropped
connection (answered once), a full server (429 + Retry-After, the client's bounded backoff), a
restarted server and an expired session (a clear "episode lost, reset", never a silent new
episode). SIGTERM's drain is in ``test_drain.py``, 1,000 random drops in ``test_drop_load.py``,
a lost episode in the rollout engine in ``test_lost_episodes.py``.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import closing

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fault_envs import FAULTY, DroppingProxy, Faulty, register, unregister
from server_helpers import Client

from rlenv import EpisodeFinishedError
from rlenv.remote import (
    EpisodeLostError,
    RemoteEnv,
    RetryPolicy,
    ServerBusyError,
    SessionNotFoundError,
)
from rlenv.server import INSTANCE_HEADER, REPLAY_HEADER, ServerLimits, serve_in_thread

FAST = RetryPolicy(attempts=20, backoff=0.01, max_backoff=0.05, budget=5.0)


@pytest.fixture(scope="module", autouse=True)
def faulty_env():
    register()
    yield
    unregister()


@pytest.fixture(autouse=True)
def released():
    Faulty.release.clear()
    yield
    Faulty.release.set()  # let any hung thread of the test return


def _timed(function, *args):
    start = time.monotonic()
    result = function(*args)
    return time.monotonic() - start, result


def _raw(client: Client, method: str, path: str, body=None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one request."""
    payload = None if body is None else json.dumps(body).encode()
    client.connection.request(method, path, payload, {"Content-Type": "application/json"})
    response = client.connection.getresponse()
    return response.status, json.loads(response.read()), dict(response.getheaders())


def _open(client: Client, seed: int = 0) -> str:
    session = client.session(FAULTY)
    assert client.call("POST", f"/sessions/{session}/reset", {"seed": seed})[0] == 200
    return session


# ------------------------------------------------------------------ a hung or crashed step


def test_a_hung_step_is_cut_at_the_deadline_without_delaying_other_sessions():
    limits = ServerLimits(step_timeout=0.5, threads=4)
    with serve_in_thread([FAULTY], limits=limits) as url:
        hung = RemoteEnv(url, FAULTY, retry_policy=FAST)
        hung.reset(seed=0)
        answer = {}

        def step_hung():
            answer["seconds"], answer["step"] = _timed(hung.step, "hang")

        thread = threading.Thread(target=step_hung)
        thread.start()
        time.sleep(0.05)
        latencies = []
        with RemoteEnv(url, FAULTY) as other:  # others step while one hangs
            other.reset(seed=1)
            while thread.is_alive():
                seconds, result = _timed(other.step, "hi")
                latencies.append(seconds)
                if result[3]:  # max_turns (1,000) within the deadline: a fast server
                    other.reset(seed=1)
        thread.join()
        # not held up until the deadline (0.5 s), however loaded the machine running the test
        assert len(latencies) > 10 and max(latencies) < 0.5, latencies
        observation, reward, terminated, truncated, info = answer["step"]
        assert 0.5 <= answer["seconds"] < 3.0
        assert (reward, terminated, truncated) == (0.0, False, True)
        assert info["error"] == "StepTimeout"
        assert not info["verdict"].scored  # never a plain 0 a trainer would learn from
        assert "0.5 s deadline" in info["verdict"].error and "reset" in info["verdict"].error
        with pytest.raises(EpisodeFinishedError, match=r"deadline.*reset first"):
            hung.step("again")
        hung.reset(seed=0)  # a new env replaces the abandoned one
        assert hung.step("hi")[4]["verdict"].scored
        with closing(Client(url)) as client:  # one hung thread, counted until it returns
            status, health = client.call("GET", "/health")
            assert (status, health["status"], health["hung_calls"]) == (200, "ok", 1)
            Faulty.release.set()
            deadline = time.monotonic() + 5
            while "hung_calls" in client.call("GET", "/health")[1]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        hung.close()


def test_hung_workers_are_bounded_then_the_server_refuses_with_503():
    limits = ServerLimits(step_timeout=0.2, max_abandoned=2, threads=4)
    with serve_in_thread([FAULTY], limits=limits) as url, closing(Client(url)) as client:
        healthy = _open(client)
        for _ in range(2):
            session = _open(client)
            status, body = client.call("POST", f"/sessions/{session}/step", {"action": "hang"})
            assert (status, body["info"]["error"]) == (200, "StepTimeout")
        status, body, headers = _raw(client, "POST", f"/sessions/{healthy}/step", {"action": "hi"})
        assert (status, body["error"], headers["retry-after"]) == (503, "ServerDegraded", "5")
        assert "restart" in body["detail"]
        status, health = client.call("GET", "/health")
        assert (status, health["status"], health["hung_calls"]) == (503, "degraded", 2)
        Faulty.release.set()  # the hung steps return: the server takes work again
        deadline = time.monotonic() + 5
        while client.call("GET", "/health")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status, body = client.call("POST", f"/sessions/{healthy}/step", {"action": "hi"})
        assert (status, body["reward"]) == (200, 1.0)


def test_a_hung_reset_is_a_504_and_the_next_reset_makes_a_new_env():
    limits = ServerLimits(step_timeout=0.3)
    with serve_in_thread([FAULTY], limits=limits) as url, closing(Client(url)) as client:
        session = _open(client)
        hang = {"options": {"task": {"id": "hang", "prompt": "x"}}}
        status, body = client.call("POST", f"/sessions/{session}/reset", hang)
        assert (status, body["error"]) == (504, "EnvTimeout")
        assert "0.3 s deadline" in body["detail"] and "reset" in body["detail"]
        status, body = client.call("POST", f"/sessions/{session}/step", {"action": "hi"})
        assert (status, body["error"]) == (409, "EpisodeFinishedError")
        assert client.call("POST", f"/sessions/{session}/reset", {"seed": 0})[0] == 200
        assert client.call("POST", f"/sessions/{session}/step", {"action": "hi"})[0] == 200


# ------------------------------------------------------------------ retries: answered once


def test_a_retried_step_id_is_answered_once_and_a_late_duplicate_refused():
    with serve_in_thread([FAULTY]) as url, closing(Client(url)) as client:
        session = _open(client)
        before = Faulty.steps
        first = client.call("POST", f"/sessions/{session}/step", {"action": "a", "step_id": 1})
        status, body, headers = _raw(
            client, "POST", f"/sessions/{session}/step", {"action": "a", "step_id": 1}
        )
        assert headers[REPLAY_HEADER] == "1" and (status, body) == first
        assert Faulty.steps == before + 1  # stepped once
        status, body = client.call(
            "POST", f"/sessions/{session}/step", {"action": "a", "step_id": 0}
        )
        assert (status, body["error"]) == (409, "StaleStep")
        status, body = client.call("POST", f"/sessions/{session}/reset", {"step_id": 1})
        assert (status, body["error"]) == (409, "StaleStep")  # id 1 was a step
        assert (
            client.call("POST", f"/sessions/{session}/step", {"action": "b", "step_id": 2})[1][
                "info"
            ]["turn"]
            == 2
        )
        assert Faulty.steps == before + 2


@pytest.mark.parametrize("kind", ["before", "after", "cut"])
def test_remote_env_retries_a_dropped_step_without_stepping_twice(kind):
    with serve_in_thread([FAULTY]) as url:
        host, port = url.removeprefix("http://").split(":")
        proxy = DroppingProxy((host, int(port)))
        env = RemoteEnv(proxy.url, FAULTY, retry_policy=FAST)
        env.reset(seed=0)
        before = Faulty.steps
        proxy.p[kind], proxy.limit = 1.0, 1  # the next chunk of that direction is dropped
        observation, reward, _, _, info = env.step("one")
        assert proxy.drops[kind] == 1
        assert (reward, info["turn"]) == (1.0, 1)
        assert Faulty.steps == before + 1  # answered once: a replay, or the first try
        assert observation[-1]["content"] == "turn 1"
        assert [m["content"] for m in observation].count("one") == 1
        assert env.step("two")[4]["turn"] == 2
        env.close()
        proxy.close()


# ------------------------------------------------------------------ capacity


def test_a_full_server_answers_429_with_retry_after_and_the_client_backs_off():
    limits = ServerLimits(max_sessions=1)
    with serve_in_thread([FAULTY], limits=limits) as url, closing(Client(url)) as client:
        first = RemoteEnv(url, FAULTY)
        status, body, headers = _raw(client, "POST", "/sessions", {"env_id": FAULTY})
        assert (status, body["error"], headers["retry-after"]) == (429, "TooManySessions", "1")
        # Within its bound, the client waits for a free place...
        threading.Timer(0.3, first.close).start()
        seconds, second = _timed(
            lambda: RemoteEnv(url, FAULTY, retry_policy=RetryPolicy(budget=5.0))
        )
        assert 0.3 < seconds < 3.0
        second.reset(seed=0)
        # ...and past it, says so.
        bound = RetryPolicy(attempts=3, budget=1.5)
        start = time.monotonic()
        with pytest.raises(ServerBusyError) as error:
            RemoteEnv(url, FAULTY, retry_policy=bound)
        assert time.monotonic() - start < 2.5
        assert error.value.status == 429 and "TooManySessions" in str(error.value)
        assert "still so after 2 tries" in str(error.value)  # 1 s + 1 s > 1.5 s
        second.close()


def test_env_calls_past_the_waiting_bound_get_429_server_busy():
    limits = ServerLimits(threads=1, max_waiting=0)
    with serve_in_thread([FAULTY], limits=limits) as url, closing(Client(url)) as client:
        busy, waiting = _open(client, 0), _open(client, 1)
        step = threading.Thread(
            target=lambda: Client(url).call(
                "POST", f"/sessions/{busy}/step", {"action": "sleep 0.6"}
            )
        )
        step.start()
        time.sleep(0.2)
        status, body, headers = _raw(client, "POST", f"/sessions/{waiting}/step", {"action": "x"})
        assert (status, body["error"], headers["retry-after"]) == (429, "ServerBusy", "1")
        step.join()
        with RemoteEnv(url, FAULTY) as env:  # backs off and gets through once it is free
            env.reset(seed=0)
            assert env.step("hi")[1] == 1.0


# ------------------------------------------------------------------ restart and expiry


def test_a_restarted_server_gives_episode_lost_never_a_silent_new_episode():
    with serve_in_thread([FAULTY]) as url:
        port = int(url.rsplit(":", 1)[1])
        env = RemoteEnv(url, FAULTY, retry_policy=FAST)
        env.reset(seed=0)
        env.step("hi")
        old_session = env.session_id
        with closing(Client(url)) as client:
            old_instance = _instance(client)
    with serve_in_thread([FAULTY], port=port) as url, closing(Client(url)) as client:
        assert _instance(client) != old_instance
        status, body = client.call("POST", f"/sessions/{old_session}/step", {"action": "x"})
        assert (status, body["error"]) == (404, "SessionNotFound")  # never a 200
        with pytest.raises(EpisodeLostError, match=r"restarted.*call reset\(\)") as lost:
            env.step("hi")
        assert isinstance(lost.value, SessionNotFoundError)
        assert lost.value.error == "ServerRestarted"
        with pytest.raises(EpisodeLostError, match="reset"):
            env.step("hi")  # still lost: only reset() goes on
        env.reset(seed=0)  # a new session on the new server
        assert env.session_id != old_session
        assert env.step("hi")[4]["turn"] == 1
        env.close()


def _instance(client: Client) -> str:
    return _raw(client, "GET", "/health")[2][INSTANCE_HEADER]


def test_an_expired_session_says_reset_and_reset_reopens_it():
    with serve_in_thread([FAULTY], limits=ServerLimits(session_ttl=0.2)) as url:
        env = RemoteEnv(url, FAULTY)
        env.reset(seed=0)
        time.sleep(0.5)
        with pytest.raises(SessionNotFoundError, match=r"expired.*call reset\(\)"):
            env.step("hi")
        old = env.session_id
        env.reset(seed=0)
        assert env.session_id != old and env.step("hi")[1] == 1.0
        env.close()


def test_retry_policy_backoff_numbers():
    policy = RetryPolicy(backoff=0.1, max_backoff=1.0)
    for attempt, full in ((0, 0.1), (1, 0.2), (3, 0.8), (4, 1.0), (30, 1.0)):
        assert full / 2 <= policy.delay(attempt) <= full  # jitter: half to all of it
    assert policy.delay(0, retry_after=3.0) == 3.0  # the server's Retry-After, at least
    with pytest.raises(ValueError, match="attempts >= 1"):
        RetryPolicy(attempts=0)
