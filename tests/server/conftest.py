"""A real server (uvicorn on 127.0.0.1, a free port, a background thread) for the tests."""

from __future__ import annotations

import pytest
from server_helpers import SERVED, Client


@pytest.fixture(scope="session")
def server_url():
    from rlenv.server import serve_in_thread

    with serve_in_thread(SERVED) as url:
        yield url


@pytest.fixture
def client(server_url):
    client = Client(server_url)
    yield client
    client.close()
