"""rlenv.tools.mcp against real MCP servers (the ``mcp`` SDK): tools_from_mcp / MCPToolEnv over
stdio and streamable HTTP on a subprocess (tests/tools/mcp_demo_server.py), and rlenv's Bank-v0
served with ``python -m rlenv.tools.mcp`` and driven by the SDK's own client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp import types as mcp_types

import rlenv
from rlenv import Task, TaskList, Verdict
from rlenv.tools.mcp import (
    SERVER_LOST,
    MCPConnectError,
    MCPConnection,
    MCPToolEnv,
    MCPToolError,
    result_text,
    tools_from_mcp,
)

DEMO = str(Path(__file__).with_name("mcp_demo_server.py"))
STDIO = [sys.executable, DEMO]
REPO = str(Path(__file__).resolve().parents[2])


def call(name: str, **arguments) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {json.dumps(arguments)}}}</tool_call>'


class Adder(MCPToolEnv):
    """What a user writes: tasks and grading here, tools from the server."""

    server = STDIO
    call_timeout = 2.0  # quick calls must answer within it on a loaded CI machine
    max_turns = 6

    def load_tasks(self):
        return TaskList([Task(id="sum", prompt="What is 2 + 3? Use the add tool.", answer="5")])

    def grade(self, answer):
        return Verdict(reward=float((answer or "").strip() == self.task.answer))


@pytest.fixture(scope="module")
def stdio_env():
    with open(os.devnull, "w") as quiet:  # the server's tracebacks are expected here
        env = Adder(server_stderr=quiet)
        yield env
        env.close()


def test_schemas_come_from_the_server(stdio_env):
    listed = {tool.name: tool for tool in stdio_env.connection.tools}
    assert set(listed) == {"add", "increment", "slow", "fail", "crash", "picture"}
    by_name = {schema["function"]["name"]: schema["function"] for schema in stdio_env.tools}
    assert by_name["add"]["description"] == "Add two integers."
    assert by_name["add"]["parameters"] == listed["add"].input_schema
    assert by_name["add"]["parameters"]["required"] == ["a", "b"]


def test_a_solved_episode_over_stdio(stdio_env):
    observation, info = stdio_env.reset(seed=0)
    assert [t["function"]["name"] for t in info["tools"]][:2] == ["add", "increment"]
    observation, reward, terminated, _, info = stdio_env.step(call("add", a=2, b=3))
    assert not terminated
    assert observation[-1] == {
        "role": "tool",
        "tool_call_id": observation[-1]["tool_call_id"],
        "name": "add",
        "content": "5",
    }
    _, reward, terminated, _, info = stdio_env.step("5")
    assert terminated and reward == 1.0 and info["verdict"].scored


def test_wrong_answer_scores_zero(stdio_env):
    stdio_env.reset(seed=0)
    _, reward, terminated, _, info = stdio_env.step("6")
    assert terminated and reward == 0.0 and info["verdict"].scored


def test_errors_and_timeouts_are_tool_messages_and_the_episode_goes_on(stdio_env):
    stdio_env.reset(seed=0)
    observation, _, terminated, _, _ = stdio_env.step(call("fail", message="no such thing"))
    assert not terminated
    assert observation[-1]["content"] == (
        "Error: 'fail' raised MCPToolError: Error executing tool fail: no such thing"
    )
    # invalid arguments are refused before anything reaches the server
    observation, *_ = stdio_env.step(call("add", a="two"))
    assert observation[-1]["content"].startswith("Error: invalid arguments for 'add'")
    observation, *_ = stdio_env.step(call("nope"))
    assert "unknown tool 'nope'" in observation[-1]["content"]
    started = time.monotonic()
    observation, _, terminated, _, _ = stdio_env.step(call("slow", seconds=30))
    elapsed = time.monotonic() - started
    assert not terminated and 1.9 <= elapsed < 15, elapsed  # bounded, not the 30 s asked
    assert observation[-1]["content"] == (
        "Error: 'slow' raised MCPCallTimeoutError: no answer within 2 s"
    )
    # the session survived the timeout: the server still answers, with its memory intact
    first = int(stdio_env.step(call("increment"))[0][-1]["content"])
    _, _, terminated, _, _ = stdio_env.step(call("increment"))
    assert not terminated
    assert stdio_env.trace[-1].content == str(first + 1)
    assert not stdio_env.trace[-3].ok  # the timed-out call is recorded as failed


def test_non_text_content_is_described(stdio_env):
    stdio_env.reset(seed=0)
    observation, *_ = stdio_env.step(call("picture"))
    assert observation[-1]["content"] == "a red pixel\n[image: image/png, 8 bytes]"


def test_a_crashed_server_ends_the_episode_unscored_and_reset_reconnects(stdio_env):
    stdio_env.reset(seed=0)
    stdio_env.step(call("increment"))
    observation, reward, terminated, truncated, info = stdio_env.step(call("crash"))
    assert terminated and not truncated and reward == 0.0
    verdict = info["verdict"]
    assert not verdict.scored and verdict.error.startswith(SERVER_LOST)
    assert "MCPServerLostError" in observation[-1]["content"]
    assert observation[-1]["role"] == "tool"  # the model's call still gets its answer
    # a fresh session: a new server process, whose counter starts again at 1
    stdio_env.reset(seed=0)
    observation, *_ = stdio_env.step(call("increment"))
    assert observation[-1]["content"] == "1"
    _, reward, terminated, _, info = stdio_env.step("5")
    assert terminated and reward == 1.0 and info["verdict"].scored


def test_check_env_passes(stdio_env):
    from rlenv.testing import check_env

    check_env(stdio_env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, seconds: float) -> None:
    """Until a server listens on ``port`` (or ``seconds`` pass: the connection then fails)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)


def test_streamable_http_tools_and_a_killed_server():
    port = free_port()
    server = subprocess.Popen(
        [*STDIO, "streamable-http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 15)
        # 3 s: long enough for a loaded CI machine to answer the quick calls (0.5 s was not)
        env = Adder(server=f"http://127.0.0.1:{port}/mcp", call_timeout=3)
        try:
            env.reset(seed=0)
            observation, *_ = env.step(call("add", a=40, b=2))
            assert observation[-1]["content"] == "42"
            observation, _, terminated, _, _ = env.step(call("slow", seconds=30))
            assert not terminated and "MCPCallTimeoutError" in observation[-1]["content"]
            observation, *_ = env.step(call("fail", message="boom"))
            assert observation[-1]["content"].endswith("boom")
            server.kill()
            server.wait(timeout=10)
            observation, _, terminated, _, info = env.step(call("add", a=1, b=1))
            assert terminated and not info["verdict"].scored
            assert "MCPServerLostError" in observation[-1]["content"]
            with pytest.raises(MCPConnectError):  # nobody listens any more
                env.reset(seed=0)
        finally:
            env.close()
    finally:
        server.kill()
        server.wait(timeout=10)


def test_connection_errors_are_clear():
    with pytest.raises(MCPConnectError, match="could not connect"):
        MCPConnection(["/nonexistent/mcp-server"], connect_timeout=5)
    with pytest.raises(MCPConnectError):  # a process that is not an MCP server
        MCPConnection([sys.executable, "-c", "print('hello')"], connect_timeout=5)
    with pytest.raises(ValueError, match="give a URL"):
        MCPConnection("my_server.py")
    with pytest.raises(ValueError, match="needs an MCP server"):
        MCPToolEnv(tasks=TaskList([Task(id="x", prompt="p")]))


def test_closed_connection_refuses_calls():
    connection = MCPConnection(STDIO, connect_timeout=10)
    tools = {tool.name: tool for tool in tools_from_mcp(connection, timeout=5)}
    assert tools["add"](a=1, b=2) == "3"
    connection.close()
    assert not connection._thread.is_alive()
    with pytest.raises(ConnectionError):
        tools["add"](a=1, b=2)
    connection.close()  # twice is fine


def test_result_text_describes_every_block():
    result = mcp_types.CallToolResult(
        content=[
            mcp_types.TextContent(text="one"),
            mcp_types.AudioContent(data="AAAA", mime_type="audio/wav"),
            mcp_types.ResourceLink(uri="file:///a.txt", name="a"),
            mcp_types.EmbeddedResource(
                resource=mcp_types.TextResourceContents(uri="file:///b.txt", text="bee")
            ),
            mcp_types.EmbeddedResource(
                resource=mcp_types.BlobResourceContents(
                    uri="file:///c.bin", mime_type="application/octet-stream", blob="AAA="
                )
            ),
        ]
    )
    assert result_text(result).splitlines() == [
        "one",
        "[audio: audio/wav, 3 bytes]",
        "[resource link: file:///a.txt (a)]",
        "bee",
        "[resource: file:///c.bin, application/octet-stream, 2 bytes]",
    ]
    structured = mcp_types.CallToolResult(content=[], structured_content={"x": 1})
    assert result_text(structured) == '{"x": 1}'


# --- rlenv as an MCP server -----------------------------------------------------------------


def bank_session(task_id: str):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlenv.tools.mcp", "rlenv/Bank-v0", "--task-id", task_id],
        cwd=REPO,
    )
    return params


def test_bank_served_over_stdio_to_the_sdk_client():
    env = rlenv.make("rlenv/Bank-v0")
    _, info = env.reset(seed=0)
    task_id = env.task.id
    account = next(a for a in env.state["accounts"].values() if a["status"] == "open")

    async def drive():
        got = {}
        async with (
            stdio_client(bank_session(task_id)) as (read, write),
            ClientSession(read, write) as session,
        ):

            async def resource(uri):
                return json.loads((await session.read_resource(uri)).contents[0].text)

            got["initialized"] = await session.initialize()
            got["listed"] = await session.list_tools()
            got["before"] = await resource("rlenv://state")
            got["task"] = await resource("rlenv://task")
            got["deposit"] = await session.call_tool(
                "deposit", {"account_id": account["id"], "amount_cents": 1234}
            )
            got["after"] = await resource("rlenv://state")
            got["bad"] = await session.call_tool(
                "withdraw", {"account_id": "ACC-0000", "amount_cents": 5}
            )
            got["invalid"] = await session.call_tool("deposit", {"account_id": account["id"]})
            got["hidden"] = await session.call_tool(
                "get_balance", {"account_id": account["id"], "state": {}}
            )
            got["unknown"] = await session.call_tool("rm_rf", {})
        return got

    got = asyncio.run(drive())
    initialized, listed, before, task = (
        got[k] for k in ("initialized", "listed", "before", "task")
    )
    deposit, after, bad = got["deposit"], got["after"], got["bad"]
    invalid, hidden, unknown = got["invalid"], got["hidden"], got["unknown"]
    served = [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.input_schema,
            },
        }
        for tool in listed.tools
    ]
    assert served == info["tools"]
    assert all("state" not in tool.input_schema["properties"] for tool in listed.tools)
    assert task["task_id"] == task_id and task["env_id"] == "rlenv/Bank-v0"
    assert env.task.prompt[-1]["content"] in initialized.instructions
    assert task["messages"][-1]["content"] == env.task.prompt[-1]["content"]
    assert before == env.state  # the same task's world
    assert not deposit.is_error
    assert after["accounts"][account["id"]]["balance_cents"] == account["balance_cents"] + 1234
    assert bad.is_error and "UnknownIdError" in bad.content[0].text
    assert invalid.is_error and "invalid arguments for 'deposit'" in invalid.content[0].text
    assert hidden.is_error and "state" in hidden.content[0].text  # no reaching the hidden argument
    assert unknown.is_error and "unknown tool 'rm_rf'" in unknown.content[0].text


def test_serving_refuses_envs_without_tools():
    from rlenv.tools.mcp import build_server

    with pytest.raises(TypeError, match="not a ToolEnv"):
        build_server("rlenv/Arithmetic-v0")


def test_round_trip_rlenv_served_over_http_is_an_mcp_tool_env():
    """Both directions at once: Calculator-v0 served over streamable HTTP by
    ``python -m rlenv.tools.mcp``, read back by MCPToolEnv with the same schemas."""
    env = rlenv.make("rlenv/Calculator-v0")
    _, info = env.reset(seed=0)
    port = free_port()
    server = subprocess.Popen(
        [
            *[sys.executable, "-m", "rlenv.tools.mcp", "rlenv/Calculator-v0", "--seed", "0"],
            *["--transport", "streamable-http", "--port", str(port)],
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 20)
        connection = MCPConnection(f"http://127.0.0.1:{port}/mcp", connect_timeout=10)
        with connection:
            tools = tools_from_mcp(connection, timeout=5)
            assert [tool.schema() for tool in tools] == info["tools"]
            calculate = tools[0]
            assert (
                calculate(expression="6 * 7")
                == env.toolbox.run(
                    "calculate", {"expression": "6 * 7"}, hidden=env.hidden_arguments()
                ).content
            )
            with pytest.raises(MCPToolError, match="raised"):
                calculate(expression="1 / 0")
    finally:
        server.kill()
        server.wait(timeout=10)
