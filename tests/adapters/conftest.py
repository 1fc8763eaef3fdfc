"""Registers the shared adapter test environments for the whole session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from adapter_envs import register_all, unregister_all


@pytest.fixture(scope="session", autouse=True)
def adapter_envs():
    register_all()
    yield
    unregister_all()
