"""Long episodes over the wire: a step's ``since`` gets only the new messages back, and
``RemoteEnv`` rebuilds an observation equal to the in-process one, under dropped answers too."""

from __future__ import annotations

import json
import random
from contextlib import closing

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fault_envs import FAULTY, DroppingProxy, Faulty, register, unregister
from server_helpers import Client

import rlenv
from rlenv.remote import RemoteEnv, RetryPolicy, _Client
from rlenv.server import REPLAY_HEADER, serve_in_thread

FAST = RetryPolicy(attempts=30, backoff=0.005, max_backoff=0.02, budget=10.0)


@pytest.fixture(scope="module", autouse=True)
def faulty_env():
    register()
    Faulty.release.set()
    yield
    unregister()


@pytest.fixture(scope="module")
def url(faulty_env):
    with serve_in_thread([FAULTY]) as base:
        yield base


def _same_steps(remote: RemoteEnv, turns: int, seed: int = 0) -> None:
    """Step ``remote`` and an in-process env alike; every result must be equal."""
    local = rlenv.make(FAULTY)
    assert remote.reset(seed=seed)[0] == local.reset(seed=seed)[0]
    rng = random.Random(seed)
    for turn in range(1, turns + 1):
        action = (
            f"move {rng.randint(0, 10**6)}" if turn % 7 else {"role": "assistant", "content": "x"}
        )
        got, want = remote.step(action), local.step(action)
        assert got[0] == want[0], f"turn {turn}"
        assert [type(m) for m in got[0]] == [type(m) for m in want[0]]  # read-only, alike
        assert got[1:4] == want[1:4]
        assert got[4]["turn"] == want[4]["turn"] == turn
        assert got[4]["new_messages"] == want[4]["new_messages"]
        assert got[4]["verdict"] == want[4]["verdict"]
    assert remote.messages == local.messages
    assert len(local.messages) == 1 + 2 * turns  # the prompt, then action + reply per turn


def test_a_long_episode_in_delta_mode_equals_the_in_process_one(url):
    with closing(RemoteEnv(url, FAULTY)) as env:
        assert env._delta  # the default, as the server offers it
        _same_steps(env, 400)


def test_delta_answers_stay_small_while_full_ones_grow(url):
    with closing(Client(url)) as client:
        session = client.session(FAULTY)
        path = f"/sessions/{session}"
        assert client.call("POST", path + "/reset", {"seed": 0})[0] == 200
        held, sizes = 1, {}
        for turn in range(1, 201):
            status, body = client.call("POST", path + "/step", {"action": "a", "since": held})
            assert status == 200 and body["observation_from"] == held
            assert [m["content"] for m in body["observation"]] == ["a", f"turn {turn}"]
            held += 2
            sizes[turn] = len(json.dumps(body))
        assert sizes[200] < sizes[1] + 20  # O(1) per step (digits of the turn number grow)
        status, full = client.call("POST", path + "/step", {"action": "a"})  # no since
        assert "observation_from" not in full and len(full["observation"]) == held + 2
        assert len(json.dumps(full)) > 20 * sizes[200]


def test_a_since_that_is_not_a_prefix_gets_the_whole_conversation(url):
    with closing(Client(url)) as client:
        path = f"/sessions/{client.session(FAULTY)}"
        client.call("POST", path + "/reset", {"seed": 0})
        body = client.call("POST", path + "/step", {"action": "a", "since": 5})[1]  # more than sent
        assert body["observation_from"] == 0 and len(body["observation"]) == 3
        body = client.call("POST", path + "/step", {"action": "b", "since": 1})[
            1
        ]  # fewer: still a prefix
        assert body["observation_from"] == 1 and len(body["observation"]) == 4
        assert client.call("POST", path + "/step", {"action": "c", "since": -1})[0] == 422


def test_a_replayed_delta_answer_is_the_first_one_byte_for_byte(url):
    with closing(Client(url)) as client:
        path = f"/sessions/{client.session(FAULTY)}"
        client.call("POST", path + "/reset", {"seed": 0, "step_id": 0})
        request = {"action": "a", "since": 1, "step_id": 1}
        answers = []
        for _ in range(2):
            client.connection.request(
                "POST", path + "/step", json.dumps(request), {"Content-Type": "application/json"}
            )
            response = client.connection.getresponse()
            answers.append((response.read(), response.getheader(REPLAY_HEADER)))
        assert answers[0][0] == answers[1][0] and answers[1][1] == "1"
        assert json.loads(answers[0][0])["observation_from"] == 1


@pytest.mark.parametrize("kind", ["before", "after", "cut"])
def test_a_dropped_delta_answer_is_replayed_without_doubling_messages(url, kind):
    host, port = url.removeprefix("http://").split(":")
    proxy = DroppingProxy((host, int(port)))
    try:
        with closing(RemoteEnv(proxy.url, FAULTY, retry_policy=FAST)) as env:
            local = rlenv.make(FAULTY)
            env.reset(seed=3), local.reset(seed=3)
            env.step("one"), local.step("one")
            before = Faulty.steps
            proxy.p[kind], proxy.limit = 1.0, 1  # the next chunk that way is dropped
            got, want = env.step("two"), local.step("two")
            assert proxy.drops[kind] == 1
            assert Faulty.steps == before + 2  # the remote step once, the local one once
            assert got[0] == want[0] and [m["content"] for m in got[0]].count("two") == 1
            assert env.step("three")[0] == local.step("three")[0]
    finally:
        proxy.close()


def test_a_long_delta_episode_under_random_drops_equals_the_in_process_one(url):
    host, port = url.removeprefix("http://").split(":")
    proxy = DroppingProxy((host, int(port)), before=0.03, after=0.03, cut=0.03, seed=7)
    try:
        with closing(RemoteEnv(proxy.url, FAULTY, retry_policy=FAST)) as env:
            before = Faulty.steps
            _same_steps(env, 150, seed=11)
            assert Faulty.steps == before + 2 * 150  # each remote step once (+ the local ones)
        assert proxy.drops["after"] >= 3 and proxy.drops["cut"] >= 3
    finally:
        proxy.close()


def test_servers_without_delta_get_whole_conversation_requests(url, monkeypatch):
    sent = []
    original = _Client.request

    def request(self, method, path, body=None, **kwargs):
        sent.append(body)
        answer = original(self, method, path, body, **kwargs)
        if path == "/sessions":  # as a server before delta answers
            answer.pop("delta")
        return answer

    monkeypatch.setattr(_Client, "request", request)
    with closing(RemoteEnv(url, FAULTY)) as env:
        assert not env._delta
        _same_steps(env, 20)
    with closing(RemoteEnv(url, FAULTY, delta=False)) as env:
        _same_steps(env, 5)
    assert not any(body and "since" in body for body in sent)


def test_an_answer_that_does_not_fit_the_clients_conversation_loses_the_episode(url, monkeypatch):
    from rlenv.remote import EpisodeLostError

    with closing(RemoteEnv(url, FAULTY)) as env:
        env.reset(seed=0)
        original = _Client.request

        def request(self, method, path, body=None, **kwargs):
            answer = original(self, method, path, body, **kwargs)
            answer["observation_from"] = 99
            return answer

        monkeypatch.setattr(_Client, "request", request)
        with pytest.raises(EpisodeLostError, match="does not fit"):
            env.step("a")
        monkeypatch.undo()
        with pytest.raises(EpisodeLostError):
            env.step("b")
        assert env.reset(seed=0)[0][0]["role"] == "user"
