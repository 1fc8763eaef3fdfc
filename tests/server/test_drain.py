"""SIGTERM drains a real ``rlenv serve`` process: the step in flight finishes, new requests get
503 ``ServerDraining`` with ``Retry-After``, then the server shuts down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fault_envs import FAULTY
from server_helpers import Client

HERE = Path(__file__).parent

# `rlenv serve` itself (rlenv.cli.main), in its own process, with the test env registered first.
SERVE = (
    "import sys; sys.path.insert(0, {here!r}); import fault_envs; fault_envs.register(); "
    "from rlenv.cli import main; sys.exit(main(['serve', {env!r}, '--port', '0']))"
)


def test_sigterm_lets_the_step_in_flight_finish_and_refuses_new_ones_with_503():
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(here=str(HERE), env=FAULTY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert "rlenv: serving" in line, process.stderr.read() if process.poll() else line
        url = line.split(" at ", 1)[1].split()[0]
        with closing(Client(url)) as slow, closing(Client(url)) as other:
            session, second = slow.session(FAULTY), other.session(FAULTY)
            for client, sid in ((slow, session), (other, second)):
                assert client.call("POST", f"/sessions/{sid}/reset", {"seed": 0})[0] == 200
            answer = {}
            thread = threading.Thread(
                target=lambda: answer.update(
                    result=slow.call("POST", f"/sessions/{session}/step", {"action": "sleep 1"})
                )
            )
            thread.start()
            time.sleep(0.3)  # the step is running
            os.kill(process.pid, signal.SIGTERM)
            time.sleep(0.2)
            other.connection.request(
                "POST",
                f"/sessions/{second}/step",
                json.dumps({"action": "hi"}).encode(),
                {"Content-Type": "application/json"},
            )
            response = other.connection.getresponse()
            body = json.loads(response.read())
            assert (response.status, body["error"]) == (503, "ServerDraining")
            assert response.getheader("retry-after") == "1"
            assert "shutting down" in body["detail"]
            assert other.call("GET", "/health") == (
                503,
                {"status": "draining", "sessions": 2, "max_sessions": 1024},
            )
            thread.join(timeout=10)
            status, result = answer["result"]
            assert (status, result["reward"], result["observation"][-1]["content"]) == (
                200,
                1.0,
                "turn 1",
            )
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    assert "Application shutdown complete" in stderr
    assert "Traceback" not in stderr
