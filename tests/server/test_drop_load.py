"""The goal's load test: no lost or doubled step under 1,000 randomly injected connection drops.

Eight ``RemoteEnv`` clients play episodes through a loopback proxy that drops connections at
random (requests never forwarded, answers never relayed after the server stepped, answers cut
in half) until 1,000 drops happened. Every answer must be the next turn of its episode (a
doubled step would skip a turn, a lost one repeat it), and the server must have stepped exactly
as many times as the clients asked. About 5-15 s on two busy cores.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fault_envs import FAULTY, DroppingProxy, Faulty, register, unregister

from rlenv.remote import RemoteEnv, RetryPolicy
from rlenv.server import serve_in_thread

DROPS = 1000
CLIENTS = 8
PATIENT = RetryPolicy(attempts=100, backoff=0.002, max_backoff=0.02, budget=20.0)


@pytest.fixture(scope="module", autouse=True)
def faulty_env():
    register()
    yield
    unregister()


def _play(url: str, proxy: DroppingProxy, seed: int, steps: list[int], errors: list) -> None:
    rng = random.Random(seed)
    try:
        with RemoteEnv(url, FAULTY, retry_policy=PATIENT) as env:
            deadline = time.monotonic() + 25
            while proxy.total < DROPS and time.monotonic() < deadline:
                observation, _ = env.reset(seed=rng.randrange(1000))
                opening = len(observation)
                for turn in range(1, rng.randint(2, 8)):
                    action = f"a{rng.randrange(10**6)}"
                    observation, reward, _, _, info = env.step(action)
                    steps[seed] += 1
                    # The next turn, once: a doubled step would be turn + 1, a lost one turn - 1.
                    assert (info["turn"], reward) == (turn, 1.0)
                    assert len(observation) == opening + 2 * turn
                    assert observation[-2]["content"] == action
                    assert observation[-1]["content"] == f"turn {turn}"
    except BaseException as error:
        errors.append(error)


def test_no_lost_or_doubled_step_under_1000_random_connection_drops():
    with serve_in_thread([FAULTY]) as url:
        host, port = url.removeprefix("http://").split(":")
        proxy = DroppingProxy((host, int(port)), before=0.05, after=0.08, cut=0.04, limit=DROPS)
        before = Faulty.steps
        steps = [0] * CLIENTS
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_play, args=(proxy.url, proxy, seed, steps, errors))
            for seed in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        proxy.close()
        assert not errors, errors[0]
        assert proxy.total == DROPS, proxy.drops
        assert min(proxy.drops.values()) > 100, proxy.drops  # every kind of drop, many times
        assert Faulty.steps - before == sum(steps)  # the server stepped once per client step
        print(f"{sum(steps)} steps, drops {proxy.drops}")
