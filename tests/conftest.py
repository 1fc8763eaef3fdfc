"""Shared fixtures. ``tests/`` is on ``sys.path`` (pytest's rootdir conftest), so test modules
import the sample environments with ``from sample_envs import ...``."""

from __future__ import annotations

import pytest
from sample_envs import Countdown, EchoWord

import rlenv


@pytest.fixture
def echo_env() -> EchoWord:
    return EchoWord()


@pytest.fixture
def countdown_env() -> Countdown:
    return Countdown()


for _id, _cls in (("rlenvtest/EchoWord-v0", EchoWord), ("rlenvtest/Countdown-v0", Countdown)):
    rlenv.register(_id, _cls)
