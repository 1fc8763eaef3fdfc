"""A lost episode in the rollout engine: unscored, never a reward of 0, and the batch goes on.

Against a real server on loopback: one episode's step hangs past the server's deadline (the
server answers it unscored), another loses its session between turns (``RemoteEnv`` raises
``EpisodeLostError``, which ``rlenv.rollout.rollout`` records as an unscored last turn).
"""

from __future__ import annotations

from contextlib import closing

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
