"""Adversarial review of rlenv.tools.mcp against real misbehaving MCP servers (the ``mcp`` SDK's
low-level Server in tests/tools/mcp_odd_server.py, a subprocess over stdio): each test pins a
fault found in review."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from rlenv import Task, TaskList
from rlenv.tools.mcp import MCPConnectError, MCPConnection, MCPToolEnv

ODD = str(Path(__file__).with_name("mcp_odd_server.py"))


def _server(mode: str, tmp_path: Path) -> tuple[list[str], Path]:
    pidfile = tmp_path / f"{mode}.pid"
    return [sys.executable, ODD, mode, str(pidfile)], pidfile


def _running(pidfile: Path, wait_s: float = 3.0) -> bool:
    """Whether the server process that wrote ``pidfile`` is still running (after a grace)."""
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split()[2] == "Z":
            return False  # exited; only not reaped yet
        time.sleep(0.1)
    return True


def test_a_server_stuck_in_tools_list_is_ended_at_the_connect_timeout(tmp_path):
    """A server that never answers tools/list: the connect timeout raised only after another
    10 s (the session task waited on a `stop` it never reached) and left the server running."""
    command, pidfile = _server("slowlist", tmp_path)
    started = time.monotonic()
    with open(os.devnull, "w") as quiet, pytest.raises(MCPConnectError, match="within 2"):
        MCPConnection(command, connect_timeout=2, stderr=quiet)
    assert time.monotonic() - started < 6
    assert not _running(pidfile)


class OddTools(MCPToolEnv):
    def load_tasks(self):
        return TaskList([Task(id="t", prompt="Call the tool.", answer="3")])


def test_a_refused_tool_schema_does_not_leak_the_server(tmp_path):
    """MCPToolEnv opened the session in load_tools, then refused the server's invalid
    inputSchema: the constructor raised with the server process (and the loop thread) left
    running, with nothing to close them."""
    command, pidfile = _server("badschema", tmp_path)
    with open(os.devnull, "w") as quiet, pytest.raises(ValueError, match="invalid inputSchema"):
        OddTools(server=command, connect_timeout=10, server_stderr=quiet)
    assert not _running(pidfile)


DEMO = str(Path(__file__).with_name("mcp_demo_server.py"))


class HttpAdder(MCPToolEnv):
    call_timeout = 3.0

    def load_tasks(self):
        return TaskList([Task(id="sum", prompt="What is 2 + 3? Use the add tool.", answer="5")])


def test_an_http_server_gone_between_episodes_leaves_them_unscored_not_a_crash():
    """An HTTP MCP server that is down when the rollout engine (rlenv eval, the trainers) makes
    or reconnects an env: MCPConnectError was not a ServiceError, so the whole rollout raised
    instead of recording those episodes unscored (as the OpenEnv bridge and RemoteEnv do)."""
    import rlenv
    from rlenv.errors import ServiceError
    from rlenv.rollout import ScriptedPolicy
    from rlenv.rollout.collector import episodes, rollout

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    server = subprocess.Popen(
        [sys.executable, DEMO, "streamable-http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env_id = "mcp-review/HttpAdder-v0"
    rlenv.register(env_id, HttpAdder, kwargs={"server": url, "connect_timeout": 5})
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        specs = episodes(env_id, n_tasks=2, seed=0)
        env = HttpAdder(server=url, connect_timeout=5)
        try:
            env.reset(seed=0)
            server.kill()
            server.wait(timeout=10)
            call = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
            _, _, terminated, _, info = env.step(call)
            assert terminated and not info["verdict"].scored  # lost mid-episode: unscored
            with pytest.raises(ServiceError):  # the reset that reconnects: a service failure
                env.reset(seed=0)
        finally:
            env.close()
        with pytest.raises(ServiceError):  # making one while it is down, too
            HttpAdder(server=url, connect_timeout=5)
        trajectories = rollout(ScriptedPolicy(answers=["5"]), specs, env_workers=1)
        assert [t.scored for t in trajectories] == [False, False]
        assert {t.stop_reason for t in trajectories} == {"reset_failed"}
    finally:
        rlenv.unregister(env_id)
        server.kill()
        server.wait(timeout=10)


def test_a_failed_connection_stops_its_loop_thread():
    """MCPConnection started its event-loop thread, then the connection failed: the thread ran
    on for as long as the raised error (which holds the half-made object) was kept, e.g. in
    the rollout engine's list of reset failures."""
    import threading

    def loops():
        return sum(t.name == "rlenv-mcp-client" for t in threading.enumerate())

    before = loops()
    with pytest.raises(MCPConnectError) as caught:
        MCPConnection(["/nonexistent/mcp-server"], connect_timeout=5)
    assert caught.value is not None and loops() == before
