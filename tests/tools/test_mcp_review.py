"""Adversarial review of rlenv.tools.mcp against real misbehaving MCP servers (the ``mcp`` SDK's
low-level Server in tests/tools/mcp_odd_server.py, a subprocess over stdio): each test pins a
fault found in review."""

from __future__ import annotations

import os
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
