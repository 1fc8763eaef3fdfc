"""A tiny MCP server (the real ``mcp`` SDK's MCPServer) for tests/tools/test_mcp.py.

Run as ``python tests/tools/mcp_demo_server.py [stdio | streamable-http PORT]``. Its tools cover
what a client must survive: a normal answer, a slow tool, a tool that raises, a tool that
kills the server process, non-text content, and a counter kept in the server's memory (so a
test can tell a live session from a restarted server).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent

server = MCPServer("rlenv-test-server")
_counter = {"value": 0}


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def increment() -> str:
    """Add one to a counter kept in the server's memory and return it."""
    _counter["value"] += 1
    return str(_counter["value"])


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def fail(message: str) -> str:
    """Fail with this message (ToolError: the SDK passes the message on to the client)."""
    raise ToolError(message)


@server.tool()
def crash() -> str:  # pragma: no cover - the process ends here
    """Kill the server process without answering."""
    os._exit(3)


@server.tool()
def picture() -> list:
    """Answer with a text block and an image block."""
    return [
        TextContent(type="text", text="a red pixel"),
        ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
    ]


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
