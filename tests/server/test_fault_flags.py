"""``rlenv serve``'s fault flags reach ServerLimits (needs rlenv/cli/serve.py's flags)."""

from __future__ import annotations

import pytest

from rlenv.cli import main


def test_fault_flags_are_checked_and_passed_on(monkeypatch, capsys):
    pytest.importorskip("fastapi")
    import rlenv.server

    seen = {}
    monkeypatch.setattr(rlenv.server, "serve", lambda env_ids, **kw: seen.update(kw))
    argv = ["serve", "rlenv/Arithmetic-v0", "--step-timeout", "7", "--max-abandoned", "3"]
    assert main([*argv, "--max-waiting", "5", "--drain-timeout", "2"]) == 0
    limits = seen["limits"]
    assert (limits.step_timeout, limits.max_abandoned, limits.max_waiting) == (7.0, 3, 5)
    assert limits.drain_timeout == 2.0
    assert main(["serve", "rlenv/Arithmetic-v0", "--step-timeout", "0"]) == 0
    assert seen["limits"].step_timeout is None  # 0: no deadline
    assert main(["serve", "rlenv/Arithmetic-v0", "--max-abandoned", "0"]) == 2
    assert "max_abandoned" in capsys.readouterr().err


def test_env_threads_default_to_eight_per_cpu_at_most_32(monkeypatch):
    pytest.importorskip("fastapi")
    import os

    import rlenv.server
    from rlenv.server import ServerLimits, default_threads

    for cpus, threads in ((1, 8), (2, 16), (4, 32), (96, 32)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)))
        assert default_threads() == threads
        assert ServerLimits().threads == threads
    assert ServerLimits(threads=64).threads == 64  # more for envs that wait (sandboxes)

    seen = {}
    monkeypatch.setattr(rlenv.server, "serve", lambda env_ids, **kw: seen.update(kw))
    assert main(["serve", "rlenv/Arithmetic-v0"]) == 0
    assert seen["limits"].threads == 32  # no --threads: the default (96 CPUs patched above)
    assert main(["serve", "rlenv/Arithmetic-v0", "--threads", "3"]) == 0
    assert seen["limits"].threads == 3
    assert main(["serve", "rlenv/Arithmetic-v0", "--threads", "0"]) == 2
