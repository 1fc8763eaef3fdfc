"""A lost episode in the rollout engine: unscored, never a reward of 0, and the batch goes on.

Against a real server on loopback: one episode's step hangs past the server's deadline (the
server answers it unscored), another loses its session between turns (``RemoteEnv`` raises
``EpisodeLostError``, which ``rlenv.rollout.rollout`` records as an unscored last turn).
"""

from __future__ import annotations

import time
from contextlib import ExitStack, closing

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fault_envs import FAULTY, Faulty, register, unregister
from server_helpers import Client

from rlenv.pool import EnvPool
from rlenv.remote import RemoteEnv, RetryPolicy
from rlenv.rollout import ScriptedPolicy, episodes, rollout
from rlenv.server import ServerLimits, serve_in_thread

FAST = RetryPolicy(attempts=20, backoff=0.01, max_backoff=0.05, budget=5.0)


@pytest.fixture(scope="module", autouse=True)
def faulty_env():
    register()
    Faulty.release.clear()
    yield
    Faulty.release.set()
    unregister()


def test_a_lost_episode_is_unscored_in_the_rollout_and_the_batch_goes_on():
    limits = ServerLimits(step_timeout=0.3)
    with serve_in_thread([FAULTY], limits=limits) as url, closing(Client(url)) as client:
        made: list[RemoteEnv] = []

        def make(env_id, **kwargs):
            made.append(RemoteEnv(url, env_id, retry_policy=FAST, max_turns=2, **kwargs))
            return made[-1]

        calls = 0

        def respond(conversation):  # one episode at a time (max_batch_size=1)
            nonlocal calls
            calls += 1
            if calls == 5:  # episode 2's second turn: its session is lost meanwhile
                client.call("DELETE", f"/sessions/{made[-1].session_id}")
            return "hang" if calls == 1 else "hi"  # episode 0's first turn hangs

        with EnvPool(make=make) as pool:
            trajectories = rollout(
                ScriptedPolicy(respond), episodes(FAULTY, n_tasks=3), pool=pool, max_batch_size=1
            )
        assert len(trajectories) == 3
        hung, fine, lost = trajectories
        assert not hung.scored and hung.truncated and hung.reward == 0.0
        assert "deadline" in hung.final_verdict.error
        assert fine.scored and fine.reward == 2.0 and len(fine.turns) == 2
        assert not lost.scored and lost.truncated and len(lost.turns) == 2
        assert lost.final_verdict.error.startswith("episode lost")
        assert "SessionNotFound" in lost.final_verdict.error
        assert lost.turns[-1].reward == 0.0 and lost.reward == 1.0


def test_a_server_gone_mid_episode_ends_it_unscored_and_the_batch_goes_on():
    """The server goes away between an episode's turns: ``RemoteEnv``'s retries run out and the
    episode is lost; it ends unscored, and the next episode, whose pooled env still points at
    the dead server, is reset on a fresh env from the pool (a server that is up)."""
    short = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, budget=0.5)
    with serve_in_thread([FAULTY]) as up, ExitStack() as doomed_stack:
        urls = iter([doomed_stack.enter_context(serve_in_thread([FAULTY])), up])

        def make(env_id, **kwargs):
            return RemoteEnv(next(urls), env_id, retry_policy=short, max_turns=2, **kwargs)

        calls = 0

        def respond(conversation):  # one episode at a time (max_batch_size=1)
            nonlocal calls
            calls += 1
            if calls == 2:  # before episode 0's second turn, its server goes away
                doomed_stack.close()
            return "hi"

        with EnvPool(make=make) as pool:
            gone, fine = rollout(
                ScriptedPolicy(respond), episodes(FAULTY, n_tasks=2), pool=pool, max_batch_size=1
            )
    assert not gone.scored and gone.truncated and len(gone.turns) == 2
    assert gone.final_verdict.error.startswith("episode lost")
    assert "ConnectionRefusedError" in gone.final_verdict.error
    assert gone.reward == 1.0 and gone.turns[-1].reward == 0.0  # the first turn's reward stays
    assert fine.scored and fine.reward == 2.0 and len(fine.turns) == 2


def test_a_server_busy_past_the_clients_retries_ends_the_episode_unscored():
    """A step that gets 429 ``ServerBusy`` past ``RemoteEnv``'s retry budget (a lost episode to
    ``RemoteEnv``): the episode ends unscored instead of crashing the rollout."""
    import threading

    short = RetryPolicy(attempts=50, backoff=0.01, max_backoff=0.02, budget=0.4)
    limits = ServerLimits(threads=1, max_waiting=0, step_timeout=2.0)
    with serve_in_thread([FAULTY], limits=limits) as url:
        blocker = Client(url)
        session = blocker.call("POST", "/sessions", {"env_id": FAULTY})[1]["session_id"]
        blocker.call("POST", f"/sessions/{session}/reset", {})
        hold = threading.Thread(
            target=blocker.call, args=("POST", f"/sessions/{session}/step", {"action": "hang"})
        )

        def respond(conversation):
            hold.start()  # another client's hung step takes the server's only env thread
            time.sleep(0.3)
            return "hi"

        def make(env_id, **kwargs):
            return RemoteEnv(url, env_id, retry_policy=short, **kwargs)

        with EnvPool(make=make) as pool:
            (busy,) = rollout(ScriptedPolicy(respond), episodes(FAULTY, n_tasks=1), pool=pool)
        hold.join(timeout=10)
        blocker.close()
    assert not busy.scored and busy.truncated and len(busy.turns) == 1
    assert busy.final_verdict.error.startswith("episode lost")
    assert (
        "429 ServerBusy" in busy.final_verdict.error and "RetryPolicy" in busy.final_verdict.error
    )
