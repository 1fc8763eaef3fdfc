"""The HTTP API of ``rlenv.server`` against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from server_helpers import Client, Closing, Slow

import rlenv
from rlenv.envs.games.guess_number import binary_search_guess
from rlenv.server import ServerLimits, create_app, serve_in_thread
from rlenv.spaces import HOSTILE_TEXTS


def _gold(env_id: str, seed: int) -> str:
    env = rlenv.make(env_id)
    env.reset(seed=seed)
    return env.gold_action()


def test_health_and_envs(client):
    assert (
        client.call("GET", "/health")
        == (
            200,
            {"status": "ok", "sessions": 0, "max_sessions": 1024},
        )
        or client.call("GET", "/health")[1]["status"] == "ok"
    )
    status, body = client.call("GET", "/envs")
    assert status == 200
    assert body["env_ids"][:2] == ["rlenv/Arithmetic-v0", "rlenv/GuessNumber-v0"]


def test_openapi_spec_documents_every_endpoint(client):
    status, spec = client.call("GET", "/openapi.json")
    assert status == 200
    assert set(spec["paths"]) >= {
        "/health",
        "/envs",
        "/sessions",
        "/sessions/{session_id}/reset",
        "/sessions/{session_id}/step",
        "/sessions/{session_id}",
        "/verify",
    }
    step = spec["paths"]["/sessions/{session_id}/step"]["post"]
    assert {"200", "404", "409", "413", "422"} <= set(step["responses"])
    assert "StepResponse" in json.dumps(step["responses"]["200"])


def test_arithmetic_session_lifecycle_matches_the_local_env(client):
    local = rlenv.make("rlenv/Arithmetic-v0")
    session = client.session()
    path = f"/sessions/{session}"

    status, body = client.call("POST", path + "/step", {"action": "12"})
    assert (status, body["error"]) == (409, "ResetNeededError")

    status, body = client.call("POST", path + "/reset", {"seed": 3})
    observation, info = local.reset(seed=3)
    assert status == 200
    assert body == {"observation": observation, "info": info}

    status, body = client.call("POST", path + "/step", {"action": local.gold_action()})
    observation, reward, terminated, truncated, info = local.step(local.gold_action())
    assert status == 200
    assert body["observation"] == observation
    assert (body["reward"], body["terminated"], body["truncated"]) == (1.0, True, False)
    assert body["info"]["verdict"] == info["verdict"].model_dump(mode="json")
    assert body["info"]["task_id"] == info["task_id"]

    status, body = client.call("POST", path + "/step", {"action": "12"})
    assert (status, body["error"]) == (409, "EpisodeFinishedError")

    # An empty body resets with no seed; a seed keeps meaning the same task.
    assert client.call("POST", path + "/reset")[0] == 200
    status, body = client.call("POST", path + "/reset", {"options": {"task_id": info["task_id"]}})
    assert body["observation"] == observation[:1]

    assert client.call("DELETE", path) == (200, {"session_id": session, "closed": True})
    status, body = client.call("POST", path + "/step", {"action": "12"})
    assert (status, body["error"]) == (404, "SessionNotFound")


def test_guess_number_is_played_to_the_end_over_http(client):
    session = client.session("rlenv/GuessNumber-v0")
    path = f"/sessions/{session}"
    status, body = client.call("POST", path + "/reset", {"seed": 7})
    observation, turns = body["observation"], 0
    while True:
        status, body = client.call(
            "POST", path + "/step", {"action": binary_search_guess(observation)}
        )
        assert status == 200
        observation, turns = body["observation"], turns + 1
        if body["terminated"] or body["truncated"]:
            break
        assert body["reward"] == 0.0 and body["info"]["new_messages"][-1]["role"] == "user"
    assert body["terminated"] and body["reward"] == 1.0
    assert body["info"]["turn"] == turns <= 7
    assert body["info"]["verdict"]["reason"].startswith("found in")


def test_an_assistant_message_dict_is_an_action(client):
    session = client.session()
    client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
    message = {"role": "assistant", "content": _gold("rlenv/Arithmetic-v0", 0)}
    status, body = client.call("POST", f"/sessions/{session}/step", {"action": message})
    assert (status, body["reward"]) == (200, 1.0)
    client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
    status, body = client.call(
        "POST", f"/sessions/{session}/step", {"action": {"role": "user", "content": "hi"}}
    )
    assert (status, body["error"]) == (422, "InvalidActionError")


@pytest.mark.parametrize("seed", [0, 5])
def test_verify_pays_what_a_step_pays(client, seed):
    env = rlenv.make("rlenv/Arithmetic-v0")
    rewards = []
    for completion in (_gold("rlenv/Arithmetic-v0", seed), "\\boxed{-1}"):
        env.reset(seed=seed)
        _, reward, terminated, truncated, info = env.step(completion)
        request = {"env_id": "rlenv/Arithmetic-v0", "seed": seed, "completion": completion}
        status, body = client.call("POST", "/verify", request)
        assert status == 200
        assert body["reward"] == reward
        assert body["verdict"] == info["verdict"].model_dump(mode="json")
        assert (body["terminated"], body["truncated"]) == (terminated, truncated)
        by_id = {
            "env_id": "rlenv/Arithmetic-v0",
            "task_id": info["task_id"],
            "completion": completion,
        }
        assert client.call("POST", "/verify", by_id)[1] == body
        rewards.append(body["reward"])
    assert rewards == [1.0, 0.0]  # a correct answer and a wrong one


def test_verify_sent_again_gets_the_same_answer(client):
    """/verify holds no state between requests, so a client that resends it after a dropped
    connection (no step_id) gets the same answer, whatever ran on the pooled envs between."""
    guess = {"env_id": "rlenv/GuessNumber-v0", "seed": 3, "completion": "50"}
    math = {"env_id": "rlenv/Arithmetic-v0", "seed": 2, "completion": "\\boxed{7}"}
    first = {
        "guess": client.call("POST", "/verify", guess),
        "math": client.call("POST", "/verify", math),
    }
    assert first["guess"][0] == first["math"][0] == 200
    for other_seed in range(4):  # other tasks on the same pooled envs in between
        client.call("POST", "/verify", {**guess, "seed": other_seed, "completion": "25"})
        client.call("POST", "/verify", {**math, "seed": other_seed})
    assert client.call("POST", "/verify", guess) == first["guess"]
    assert client.call("POST", "/verify", math) == first["math"]


def test_verify_with_kwargs_and_its_errors(client):
    request = {"env_id": "rlenv/Arithmetic-v0", "kwargs": {"difficulty": 1}, "seed": 1}
    status, body = client.call("POST", "/verify", {**request, "completion": "\\boxed{0}"})
    assert status == 200 and body["task_id"]
    assert (
        client.call("POST", "/verify", {"env_id": "rlenv/Arithmetic-v0", "completion": "1"})[0]
        == 422
    )
    both = {**request, "task_id": "seed-1", "completion": "1"}
    assert client.call("POST", "/verify", both)[0] == 422
    missing = {"env_id": "rlenv/Arithmetic-v0", "task_id": "no-such-task", "completion": "1"}
    status, body = client.call("POST", "/verify", missing)
    assert status in (400, 404), body


def test_unknown_sessions_are_404(client):
    for method, path, body in (
        ("POST", "/sessions/nope/step", {"action": "1"}),
        ("POST", "/sessions/nope/reset", {}),
        ("DELETE", "/sessions/nope", None),
    ):
        status, answer = client.call(method, path, body)
        assert (status, answer["error"]) == (404, "SessionNotFound")


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/sessions", b"{not json"),
        ("/sessions", b""),
        ("/sessions", b"[]"),
        ("/sessions", b"null"),
        ("/sessions", b'{"env_id": 3}'),
        ("/sessions", b'{"env_id": "rlenv/Arithmetic-v0", "kwargs": []}'),
        ("/sessions", b'{"env_id": "rlenv/Arithmetic-v0", "extra": 1}'),
        ("/sessions", b"\xff\xfe garbage"),
        ("/sessions", b"[" * 100_000 + b"]" * 100_000),
        ("STEP", b'{"action": 5}'),
        ("STEP", b'{"action": null}'),
        ("STEP", b'{"action": ["a"]}'),
        ("STEP", b"{}"),
        ("RESET", b'{"seed": "zero"}'),
        ("RESET", b'{"seed": -1}'),
        ("RESET", b'{"seed": 1.5}'),
        ("RESET", b'{"options": "task_id"}'),
        ("RESET", b'{"options": {"bogus": 1}}'),
        ("RESET", b'{"options": {"task_id": "no-such-task"}}'),
    ],
)
def test_bad_bodies_are_4xx_with_a_named_error(client, path, raw):
    session = client.session()
    path = {"STEP": f"/sessions/{session}/step", "RESET": f"/sessions/{session}/reset"}.get(
        path, path
    )
    if path.endswith("/step"):
        client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
    status, body = client.call("POST", path, raw=raw)
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and body["error"], body
    client.call("DELETE", f"/sessions/{session}")


def test_validation_errors_do_not_echo_the_body(client):
    status, body = client.call(
        "POST", "/sessions", raw=json.dumps({"env_id": ["x" * 100_000]}).encode()
    )
    assert status == 422
    assert len(json.dumps(body)) < 2000


def test_bodies_over_the_limit_are_413():
    with serve_in_thread(["rlenv/Arithmetic-v0"], limits=ServerLimits(max_body_bytes=65536)) as url:
        client = Client(url)
        session = client.session()
        client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
        action = {"action": "x" * 100_000}
        status, body = client.call("POST", f"/sessions/{session}/step", action)
        assert (status, body["error"]) == (413, "BodyTooLarge")

        # Streamed (chunked, no Content-Length): cut off once the limit is passed.
        connection = http.client.HTTPConnection(client.host, client.port, timeout=30)
        chunks = (b"x" * 8192 for _ in range(10))
        connection.request(
            "POST", f"/sessions/{session}/step", body=chunks, encode_chunked=True,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert connection.getresponse().status == 413
        connection.close()

        # The session is untouched and a normal step still works.
        status, body = client.call("POST", f"/sessions/{session}/step", {"action": "1"})
        assert status == 200 and body["terminated"]
        client.close()


def test_too_many_sessions_is_429_until_one_closes():
    with serve_in_thread(["rlenv/Arithmetic-v0"], limits=ServerLimits(max_sessions=2)) as url:
        client = Client(url)
        first, _second = client.session(), client.session()
        status, body = client.call("POST", "/sessions", {"env_id": "rlenv/Arithmetic-v0"})
        assert (status, body["error"]) == (429, "TooManySessions")
        assert "DELETE" in body["detail"]
        client.call("DELETE", f"/sessions/{first}")
        assert client.session()
        client.close()


def test_idle_sessions_expire_and_used_ones_do_not():
    ttl = 0.6
    with serve_in_thread(["rlenv/Arithmetic-v0"], limits=ServerLimits(session_ttl=ttl)) as url:
        client = Client(url)
        idle, used = client.session(), client.session()
        assert (
            client.call("POST", f"/sessions/{used}/reset", {"seed": 0})[1]["session_ttl"]
            if False
            else True
        )
        deadline = time.monotonic() + 2 * ttl
        while time.monotonic() < deadline:  # used every 0.1 s: never idle for the ttl
            assert client.call("POST", f"/sessions/{used}/reset", {"seed": 0})[0] == 200
            time.sleep(0.1)
        status, body = client.call("POST", f"/sessions/{idle}/reset", {"seed": 0})
        assert (status, body["error"]) == (404, "SessionNotFound")
        assert "expired" in body["detail"]
        deadline = time.monotonic() + 10  # the sweeper closes idle sessions unasked
        while client.call("GET", "/health")[1]["sessions"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.call("GET", "/health")[1]["sessions"] == 0
        client.close()


def test_env_ids_not_served_are_refused(client):
    status, body = client.call("POST", "/sessions", {"env_id": "rlenv/Bank-v0"})
    assert (status, body["error"]) == (404, "EnvNotServed")
    assert "rlenv/Arithmetic-v0" in body["detail"]
    status, body = client.call(
        "POST", "/verify", {"env_id": "nope/Nope-v0", "seed": 0, "completion": ""}
    )
    assert status == 404
    with pytest.raises(rlenv.UnknownEnvError):
        create_app(["rlenv/NoSuchEnv-v0"])


def test_constructor_arguments(client):
    status, body = client.call(
        "POST", "/sessions", {"env_id": "rlenv/Arithmetic-v0", "kwargs": {"tasks": "/etc/passwd"}}
    )
    assert (status, body["error"]) == (400, "KwargsNotAllowed")
    status, body = client.call(
        "POST", "/sessions", {"env_id": "rlenv/Arithmetic-v0", "kwargs": {"difficulty": 99}}
    )
    assert (status, body["error"]) == (400, "BadKwargs")
    status, body = client.call(
        "POST", "/sessions", {"env_id": "rlenv/Arithmetic-v0", "kwargs": {"no_such_arg": 1}}
    )
    assert (status, body["error"]) == (400, "BadKwargs")
    session = client.session("rlenv/GuessNumber-v0", max_turns=12)
    status, body = client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
    assert "12 guesses" in body["observation"][0]["content"]

    limits = ServerLimits(client_kwargs=False)
    with serve_in_thread(["rlenv/Arithmetic-v0"], limits=limits) as url:
        strict = Client(url)
        request = {"env_id": "rlenv/Arithmetic-v0", "kwargs": {"difficulty": 1}}
        assert strict.call("POST", "/sessions", request)[0] == 400
        assert strict.session()  # no kwargs: fine
        strict.close()


def test_hostile_actions_earn_zero_not_an_error(client):
    session = client.session()
    path = f"/sessions/{session}"
    for index, text in enumerate([*HOSTILE_TEXTS, "x" * 300_000, "\\boxed{" * 20_000]):
        client.call("POST", path + "/reset", {"seed": index})
        status, body = client.call("POST", path + "/step", {"action": text})
        assert status == 200, (text[:50], body)
        assert body["reward"] == 0.0
        assert body["terminated"] or body["truncated"]


def test_an_env_that_raises_gives_an_unscored_zero_and_needs_a_reset(client):
    session = client.session("rlenvtest/Crashy-v0")
    path = f"/sessions/{session}"
    client.call("POST", path + "/reset", {"seed": 0})
    status, body = client.call("POST", path + "/step", {"action": "hello"})
    assert status == 200
    assert body["info"]["verdict"]["parsed"] == "1/3"  # not JSON by itself: sent as its str
    status, body = client.call("POST", path + "/step", {"action": "boom"})
    assert status == 200
    assert (body["reward"], body["terminated"], body["truncated"]) == (0.0, False, True)
    assert body["info"]["verdict"]["scored"] is False
    assert "exploded" in body["info"]["verdict"]["error"]
    assert client.call("POST", path + "/step", {"action": "hi"})[0] == 409
    assert client.call("POST", path + "/reset", {"seed": 0})[0] == 200
    assert client.call("POST", path + "/step", {"action": "hi"})[0] == 200
    status, body = client.call(
        "POST", "/verify", {"env_id": "rlenvtest/Crashy-v0", "seed": 0, "completion": "boom"}
    )
    assert status == 200 and body["verdict"]["scored"] is False


def test_one_session_is_never_stepped_concurrently_but_sessions_run_in_parallel(server_url):
    Slow.overlaps = 0
    clients = [Client(server_url) for _ in range(8)]
    session = clients[0].session("rlenvtest/Slow-v0")
    clients[0].call("POST", f"/sessions/{session}/reset", {"seed": 0})

    def step(client: Client) -> int:
        return client.call("POST", f"/sessions/{session}/step", {"action": "go"})[0]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(step, clients)) == [200] * 8
    assert Slow.overlaps == 0

    sessions = [client.session("rlenvtest/Slow-v0") for client in clients]
    for client, sid in zip(clients, sessions, strict=True):
        client.call("POST", f"/sessions/{sid}/reset", {"seed": 0})

    def step_own(pair) -> int:
        client, sid = pair
        return client.call("POST", f"/sessions/{sid}/step", {"action": "go"})[0]

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(step_own, zip(clients, sessions, strict=True))) == [200] * 8
    assert time.perf_counter() - start < 8 * Slow.delay * 0.75  # overlapped, not one by one
    for client in clients:
        client.close()


def test_shutdown_closes_every_session_env():
    Closing.closed.clear()
    with serve_in_thread(["rlenvtest/Closing-v0"]) as url:
        client = Client(url)
        for _ in range(3):
            client.session("rlenvtest/Closing-v0")
        deleted = client.session("rlenvtest/Closing-v0")
        client.call("DELETE", f"/sessions/{deleted}")
        assert len(Closing.closed) == 1
        client.close()
    assert len(Closing.closed) == 4


def test_still_healthy_after_a_burst_of_malformed_requests(server_url):
    client = Client(server_url)
    session = client.session()
    client.call("POST", f"/sessions/{session}/reset", {"seed": 0})
    requests = [
        ("POST", "/sessions", b"{oops"),
        ("POST", f"/sessions/{session}/step", b'{"action": 1}'),
        ("POST", "/sessions/unknown/step", b'{"action": "1"}'),
        ("POST", "/verify", b'{"env_id": "rlenv/Arithmetic-v0"}'),
        ("GET", f"/sessions/{session}/step", None),
        ("POST", "/sessions", b'{"env_id": "rlenv/Bank-v0"}'),
    ]
    statuses: list[int] = []
    lock = threading.Lock()

    def burst(_: int) -> None:
        mine = Client(server_url)
        for index in range(50):
            method, path, raw = requests[index % len(requests)]
            status = mine.call(method, path, raw=raw)[0]
            with lock:
                statuses.append(status)
        mine.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(burst, range(8)))
    assert len(statuses) == 400
    assert all(400 <= status < 500 for status in statuses), sorted(set(statuses))
    assert client.call("GET", "/health")[1]["status"] == "ok"
    status, body = client.call(
        "POST", f"/sessions/{session}/step", {"action": _gold("rlenv/Arithmetic-v0", 0)}
    )
    assert (status, body["reward"]) == (200, 1.0)  # the session the junk aimed at is intact
    client.close()


def test_expired_sessions_close_their_env():
    Closing.closed.clear()
    with serve_in_thread(["rlenvtest/Closing-v0"], limits=ServerLimits(session_ttl=0.2)) as url:
        client = Client(url)
        client.session("rlenvtest/Closing-v0")
        deadline = time.monotonic() + 10
        while not Closing.closed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(Closing.closed) == 1
        assert client.call("GET", "/health")[1]["sessions"] == 0
        client.close()


def test_an_env_bug_outside_a_step_is_a_json_500_and_the_server_goes_on(client):
    session = client.session("rlenvtest/Crashy-v0")
    crash = {"options": {"task": {"id": "crash", "prompt": "x"}}}
    status, body = client.call("POST", f"/sessions/{session}/reset", crash)
    assert (status, body["error"]) == (500, "InternalError")
    assert "start() is broken" in body["detail"]
    assert client.call("POST", f"/sessions/{session}/reset", {"seed": 0})[0] == 200
    assert client.call("GET", "/health")[0] == 200


def test_error_messages_are_cut_short(client):
    kwargs = {"no_such_arg": "x" * 100_000}
    status, body = client.call(
        "POST", "/sessions", {"env_id": "rlenv/Arithmetic-v0", "kwargs": kwargs}
    )
    assert (status, body["error"]) == (400, "BadKwargs")
    assert len(body["detail"]) < 2100 and body["detail"].endswith("more chars]")


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", None]
)
def test_a_body_not_labelled_as_json_is_415_and_says_what_to_send(client, content_type):
    # `curl -d '{...}'` labels its body application/x-www-form-urlencoded
    body = json.dumps({"env_id": "rlenv/Arithmetic-v0"}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    status, answer = client.call("POST", "/sessions", raw=body, headers=headers)
    assert (status, answer["error"]) == (415, "UnsupportedMediaType"), answer
    assert "Content-Type: application/json" in answer["detail"]
    assert "--json" in answer["detail"]
    assert (content_type or "no Content-Type") in answer["detail"]
    status, answer = client.call("POST", "/verify", raw=b'{"env_id": "x"}', headers=headers)
    assert status == 415


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_bodies_labelled_as_json_are_read(client, content_type):
    body = json.dumps({"env_id": "rlenv/Arithmetic-v0"}).encode()
    status, answer = client.call(
        "POST", "/sessions", raw=body, headers={"Content-Type": content_type}
    )
    assert status == 200, answer
    client.call("DELETE", f"/sessions/{answer['session_id']}")
    status, answer = client.call(
        "POST", "/sessions", raw=b'{"env_id": 3}', headers={"Content-Type": content_type}
    )
    assert (status, answer["error"]) == (422, "ValidationError")  # still validated


def test_verify_leaves_an_unfinished_multi_turn_first_turn_unscored(client):
    request = {"env_id": "rlenvtest/Crashy-v0", "seed": 0, "completion": "hello"}
    status, body = client.call("POST", "/verify", request)
    assert status == 200
    assert (body["terminated"], body["truncated"]) == (False, False)
    assert body["verdict"]["scored"] is False
    assert "multi-turn" in body["verdict"]["reason"]


def test_verify_keeps_a_bounded_pool_and_closes_the_envs_it_evicts():
    Closing.closed.clear()
    app = create_app(["rlenvtest/Closing-v0"], ServerLimits(threads=1))
    pool = app.state.rlenv.pool
    with serve_in_thread(app) as url:
        client = Client(url)
        for index in range(5):  # five kwargs, five envs; two idle at most (2 x threads)
            request = {
                "env_id": "rlenvtest/Closing-v0",
                "kwargs": {"system_prompt": f"prompt {index}"},
                "seed": 0,
                "completion": "x",
            }
            status, body = client.call("POST", "/verify", request)
            assert status == 200 and body["reward"] == 1.0 and body["verdict"]["scored"]
        assert pool.idle == 2 and len(Closing.closed) == 3
        for _ in range(3):  # a warm env is reused: nothing made, nothing closed
            assert client.call("POST", "/verify", {**request, "seed": 1})[0] == 200
        assert pool.idle == 2 and len(Closing.closed) == 3
        client.close()
    assert pool.idle == 0 and len(Closing.closed) == 5  # shutdown closes the rest
