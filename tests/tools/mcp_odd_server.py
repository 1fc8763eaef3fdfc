"""MCP servers that misbehave, on the real ``mcp`` SDK's low-level Server, for
tests/tools/test_mcp_review.py: ``python mcp_odd_server.py MODE PIDFILE`` writes its process
id to PIDFILE (so a test can tell whether the process outlived the client), then serves stdio.

Modes: ``slowlist`` (tools/list never answers), ``badschema`` (a tool whose inputSchema is not
a valid JSON Schema), ``ok`` (one tool with a dotted, spaced name and a ``$ref`` schema)."""

from __future__ import annotations

import os
import sys

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

MODE = sys.argv[1]


async def list_tools(ctx, params) -> types.ListToolsResult:
    if MODE == "slowlist":
        await anyio.sleep(60)
    if MODE == "badschema":
        schema = {"type": "object", "properties": {"x": {"type": "no-such-type"}}}
        return types.ListToolsResult(tools=[types.Tool(name="t", input_schema=schema)])
    schema = {
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/N"}},
        "required": ["n"],
        "$defs": {"N": {"type": "integer"}},
    }
    return types.ListToolsResult(tools=[types.Tool(name="my.tool name", input_schema=schema)])


async def call_tool(ctx, params) -> types.CallToolResult:
    text = f"{params.name} got {params.arguments}"
    return types.CallToolResult(content=[types.TextContent(text=text)])


async def main() -> None:
    with open(sys.argv[2], "w") as pidfile:
        pidfile.write(str(os.getpid()))
    server = Server("odd", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


anyio.run(main)
