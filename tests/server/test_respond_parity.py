"""A respond() that raises: in-process and over HTTP, the same truncated, unscored step."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import rlenv
from rlenv import EpisodeFinishedError
from rlenv.remote import RemoteEnv

CRASHY = "rlenvtest/Crashy-v0"  # its respond() raises on "boom" (tests/server/server_helpers.py)


def _crash(env) -> tuple:
    observation, _ = env.reset(seed=3)
    observation, reward, terminated, truncated, info = env.step("boom")
    verdict = info["verdict"]
    scored = verdict.scored if hasattr(verdict, "scored") else verdict["scored"]
    error = verdict.error if hasattr(verdict, "error") else verdict["error"]
    with pytest.raises(EpisodeFinishedError):
        env.step("again")
    return [dict(m) for m in observation], reward, terminated, truncated, scored, error


def test_a_raising_respond_truncates_alike_in_process_and_over_http(server_url):
    local = _crash(rlenv.make(CRASHY))
    with RemoteEnv(server_url, CRASHY) as remote:
        served = _crash(remote)
    assert local == served  # the server relays the env's own verdict
    assert local[1:5] == (0.0, False, True, False)
    assert local[0][-1] == {"role": "assistant", "content": "boom"}
    for error in (local[5], served[5]):
        assert "RuntimeError: the environment exploded" in error
    assert "respond() must return Turn.reply(...) or Turn.end(...)" in local[5]
