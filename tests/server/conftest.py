"""A real server (uvicorn on 127.0.0.1, a free port, a background thread) for the tests."""

from __future__ import annotations

import pytest
from server_helpers import SERVED, TEST_ENVS, Client

import rlenv


@pytest.fixture(scope="module", autouse=True)
def test_envs():
    """The misbehaving test envs, registered only while this folder's tests run (other tests
    parametrize over ``rlenv.list_envs()``)."""
    for env_id, cls in TEST_ENVS.items():
        rlenv.register(env_id, cls)
    yield
    for env_id in TEST_ENVS:
        rlenv.unregister(env_id)


@pytest.fixture(scope="module")
def server_url(test_envs):
    from rlenv.server import serve_in_thread

    with serve_in_thread(SERVED) as url:
        yield url


@pytest.fixture
def client(server_url):
    client = Client(server_url)
    yield client
    client.close()
