"""``rlenv serve``: a real process that serves, answers and shuts down on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from rlenv.cli import main


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "rlenv.cli", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert "rlenv: serving" in line, (line, process.stderr.read() if process.poll() else "")
    return process, line.split(" at ", 1)[1].split()[0]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_then_shuts_down_gracefully(stop):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    process, url = _serve("rlenv/Arithmetic-v0", "rlenv/GuessNumber-v0", "--max-sessions", "3")
    try:
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            assert json.load(response) == {"status": "ok", "sessions": 0, "max_sessions": 3}
        with urllib.request.urlopen(url + "/envs", timeout=10) as response:
            assert json.load(response)["env_ids"] == ["rlenv/Arithmetic-v0", "rlenv/GuessNumber-v0"]
    finally:
        process.send_signal(stop)
        process.wait(timeout=20)
    stderr = process.stderr.read()
    assert "Application shutdown complete" in stderr
    assert "Traceback" not in stderr


def test_serve_without_fastapi_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    monkeypatch.delitem(sys.modules, "rlenv.server", raising=False)
    assert main(["serve", "rlenv/Arithmetic-v0"]) == 2
    assert "pip install 'rlenv[server]'" in capsys.readouterr().err


def test_serve_refuses_unknown_ids_and_bad_limits(capsys):
    pytest.importorskip("fastapi")
    assert main(["serve", "rlenv/Nope-v0"]) == 2
    assert "no text environment is registered" in capsys.readouterr().err
    assert main(["serve", "rlenv/Arithmetic-v0", "--max-sessions", "0"]) == 2
    assert "max_sessions" in capsys.readouterr().err
    assert main(["serve"]) == 2  # at least one id
