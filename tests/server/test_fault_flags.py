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
