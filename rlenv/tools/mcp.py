"""MCP both ways: tools from any MCP server in a :class:`~rlenv.tools.ToolEnv`, and any
``ToolEnv``'s tools served as an MCP server.

Needs the ``mcp`` SDK 2.x: ``pip install 'rlenv[mcp]'``. See ``docs/mcp.md``.

**Client side** (:class:`MCPToolEnv`, :class:`MCPConnection`, :func:`tools_from_mcp`). One
:class:`MCPConnection` per env instance holds one MCP session (a server subprocess over stdio,
or a streamable-HTTP endpoint) on a background event-loop thread owned by the connection;
rlenv's synchronous ``step`` hands each call to that loop and waits for it, at most
``call_timeout`` seconds. Tool schemas are read from the server's ``tools/list``; arguments are
checked against them (``jsonschema``) before anything is sent. What the model sees:

- a result: its text blocks joined by newlines (non-text blocks described:
  ``[image: image/png, 8 bytes]``; only ``structuredContent``: its JSON);
- ``isError`` from the server: ``Error: 'tool' raised MCPToolError: <the server's text>``;
- no answer within ``call_timeout``: ``Error: 'tool' raised MCPCallTimeoutError: ...``; the
  session stays open and the episode goes on (the server may still finish the call);
- the server gone (its process exited, the connection dropped): the call's tool message says so
  (``MCPServerLostError``) and the episode **ends unscored** (``Verdict.scored=False``), since the
  world the model was acting on is lost and no reward would mean anything. The next ``reset``
  opens a fresh session (a new process for stdio).

**Server side** (:func:`build_server`, :func:`serve`, ``python -m rlenv.tools.mcp ENV_ID``). An
env's task is posed once (``task_id`` or ``seed``); its tools are listed with the env's own
schemas (hidden arguments such as ``state`` stay hidden and are filled by the env); each call
runs through the env's :class:`~rlenv.tools.Toolbox` on the episode's state and is appended to
its trace; a refused call comes back with ``isError`` and the env's message. The task and the
state are also MCP resources: ``rlenv://task`` and ``rlenv://state`` (JSON).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import json
import os
import re
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from rlenv.chat import AssistantMessage
from rlenv.env import Turn
from rlenv.errors import RLEnvError, ServiceError
from rlenv.tools.core import Tool, _render
from rlenv.tools.env import ToolEnv
from rlenv.verdict import Verdict

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server

__all__ = [
    "MCPCallTimeoutError",
    "MCPConnectError",
    "MCPConnection",
    "MCPServerLostError",
    "MCPServerUnreachableError",
    "MCPToolEnv",
    "MCPToolError",
    "build_server",
    "result_text",
    "serve",
    "tools_from_mcp",
]

_INSTALL = "pip install 'rlenv[mcp]'"
SERVER_LOST = "mcp server lost"
"""The verdict ``error`` prefix of an episode ended because its MCP server went away."""


# --- Errors ------------------------------------------------------------------------------------


class MCPConnectError(RLEnvError, ConnectionError):
    """The MCP server could not be started or reached, or did not finish the handshake in time.
    Check the command (or URL) by running it yourself; its stderr is passed through."""


class MCPServerUnreachableError(MCPConnectError, ServiceError):
    """A streamable-HTTP MCP server could not be reached or did not finish the handshake (at
    construction, or at the ``reset`` that reconnects after a lost session): a failure of the
    service, so the rollout engine records the episode unscored and goes on
    (:class:`~rlenv.errors.ServiceError`). A stdio command that fails stays a plain
    :class:`MCPConnectError` (a wrong command is the caller's to fix)."""


class MCPServerLostError(RLEnvError, ConnectionError):
    """The MCP server went away during the session (its process exited, the connection
    dropped). The episode cannot go on; ``reset()`` opens a fresh session."""


class MCPCallTimeoutError(RLEnvError, TimeoutError):
    """A tool call got no answer within the call timeout. The session stays open."""


class MCPToolError(RLEnvError, RuntimeError):
    """The server answered the call with ``isError`` (or a JSON-RPC error): the message is the
    server's text, shown to the model."""


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as missing:
        raise ImportError(f"rlenv.tools.mcp needs the MCP SDK: {_INSTALL}") from missing


# --- Client: one session on a background event loop -------------------------------------------


def _server_spec(server: Any) -> tuple[str, Any]:
    """``("http", url)`` or ``("stdio", StdioServerParameters)`` from what the user gave."""
    from mcp import StdioServerParameters

    if isinstance(server, StdioServerParameters):
        return "stdio", server
    if isinstance(server, str) and re.match(r"^https?://", server):
        return "http", server
    if isinstance(server, str):
        raise ValueError(
            f"MCP server {server!r}: give a URL (http://host:port/mcp) for streamable HTTP, or "
            "a command as a list of strings (['python', 'server.py']) for stdio"
        )
    if isinstance(server, Sequence) and server and all(isinstance(p, str) for p in server):
        return "stdio", StdioServerParameters(command=server[0], args=list(server[1:]))
    raise TypeError(
        "server must be a URL string, a command (list of strings) or "
        f"mcp.StdioServerParameters, not {type(server).__name__}"
    )


class MCPConnection:
    """One MCP client session, driven from synchronous code.

    The session lives on an event loop in a daemon thread owned by this object (anyio's cancel
    scopes must be entered and left by one task, so one long-lived task holds the transport and
    the session; each call is a task of its own on that loop). Thread-safe: calls from several
    threads interleave on the one session. :meth:`close` (also at interpreter exit) ends the
    session and, for stdio, the server process.

    Args:
        server: a URL (``http://127.0.0.1:8000/mcp``: streamable HTTP), a command as a list of
            strings, or ``mcp.StdioServerParameters`` (stdio).
        connect_timeout: Seconds allowed for starting the server and the handshake.
        stderr: Where a stdio server's stderr goes (a file with a descriptor; default
            ``sys.stderr``, else ``sys.__stderr__`` where ``sys.stderr`` has none).
    """

    def __init__(
        self, server: Any, *, connect_timeout: float = 30.0, stderr: TextIO | None = None
    ) -> None:
        _require_mcp()
        self.kind, self.server = _server_spec(server)
        self.connect_timeout = connect_timeout
        self._stderr = stderr
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="rlenv-mcp-client", daemon=True
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _stop_loop, self._loop, self._thread)
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._main: concurrent.futures.Future | None = None
        self._task: asyncio.Task | None = None
        self.lost: str | None = None
        """Why the session ended, when the server went away (None while it is up)."""
        self.tools: list[Any] = []
        """The server's ``mcp.types.Tool`` list, read at connection."""
        try:
            self.open()
        except BaseException:
            self.close()  # the loop thread too: the raised error keeps this object alive
            raise

    def open(self) -> None:
        """Open the session (start the server for stdio), handshake, and list the tools."""
        if self._finalizer is None or not self._finalizer.alive:
            raise RuntimeError("this MCPConnection is closed")
        self._close_session()
        self.lost = None
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._stop = asyncio.Event()
        self._main = asyncio.run_coroutine_threadsafe(self._run(ready, self._stop), self._loop)
        try:
            self.tools = ready.result(timeout=self.connect_timeout)
        except concurrent.futures.TimeoutError:
            # the session task is stuck in the handshake or tools/list, not waiting on `stop`:
            # cancel it, so that its transport ends the server process (shielded) before this
            # returns, instead of a 10 s wait that leaves the process running
            self._loop.call_soon_threadsafe(self._cancel_run)
            self._close_session()
            raise self._connect_error(
                f"the MCP server {self.describe()} did not finish the handshake within "
                f"{self.connect_timeout} s"
            ) from None
        except Exception as error:
            self._close_session()
            raise self._connect_error(
                f"could not connect to the MCP server {self.describe()}: {_explain(error)}"
            ) from error

    @property
    def _connect_error(self) -> type[MCPConnectError]:
        return MCPServerUnreachableError if self.kind == "http" else MCPConnectError

    def describe(self) -> str:
        if self.kind == "http":
            return self.server
        return " ".join([self.server.command, *self.server.args])

    async def _run(self, ready: concurrent.futures.Future, stop: asyncio.Event) -> None:
        from mcp import ClientSession, stdio_client
        from mcp.client.streamable_http import streamable_http_client

        self._task = asyncio.current_task()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.kind == "http":
                    transport = streamable_http_client(self.server)
                else:
                    transport = stdio_client(self.server, errlog=_real_file(self._stderr))
                read, write = await stack.enter_async_context(transport)
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                tools = await _list_all_tools(session)
                self._session = session
                ready.set_result(tools)
                await stop.wait()
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error if isinstance(error, Exception) else RuntimeError(error))
            elif not stop.is_set():
                self.lost = self.lost or _explain(error)
            if not isinstance(error, Exception):
                raise
        finally:
            self._session = None
            if not stop.is_set() and ready.done() and self.lost is None:
                self.lost = "the MCP session ended"

    def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> Any:
        """Call a tool; return its ``mcp.types.CallToolResult`` (``is_error`` included).

        Raises :class:`MCPCallTimeoutError` (no answer within ``timeout``),
        :class:`MCPServerLostError` (the server is gone; :attr:`lost` says why) or
        :class:`MCPToolError` (the server answered with a JSON-RPC error)."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        session = self._session
        if self.lost is not None or session is None:
            raise MCPServerLostError(self.lost or "the MCP session is closed")
        future = asyncio.run_coroutine_threadsafe(
            session.call_tool(name, arguments, read_timeout_seconds=timeout), self._loop
        )
        try:
            # the SDK enforces `timeout`; the margin only guards against a wedged loop
            return future.result(timeout=timeout + 5.0)
        except (concurrent.futures.TimeoutError, TimeoutError):
            future.cancel()
            raise MCPCallTimeoutError(f"no answer within {timeout:g} s") from None
        except MCPError as error:
            if error.code == REQUEST_TIMEOUT:
                raise MCPCallTimeoutError(f"no answer within {timeout:g} s") from None
            if error.code == CONNECTION_CLOSED:
                self.lost = (
                    f"the server closed the connection ({error.message}); "
                    "its process may have exited"
                )
                raise MCPServerLostError(self.lost) from None
            raise MCPToolError(f"the server answered error {error.code}: {error.message}") from None
        except Exception as error:
            if self.lost is not None or (self._main is not None and self._main.done()):
                self.lost = self.lost or _explain(error)
                raise MCPServerLostError(self.lost) from None
            if self.kind == "http" and _is_transport_error(error):
                self.lost = _explain(error)
                raise MCPServerLostError(self.lost) from None
            raise MCPToolError(_explain(error)) from None

    def _cancel_run(self) -> None:
        # on the loop thread, after the session task's first step (both were queued in order)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _close_session(self) -> None:
        stop, main = self._stop, self._main
        self._stop = self._main = None
        if stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(stop.set)
        if main is not None:
            with contextlib.suppress(Exception):
                main.result(timeout=10)
        self._session = None

    def close(self) -> None:
        """End the session (and a stdio server's process) and stop the loop thread."""
        if self._finalizer.alive:
            self._close_session()
            self._finalizer()

    def __enter__(self) -> MCPConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _real_file(stream: TextIO | None) -> TextIO:
    """A stream with a file descriptor for the server's stderr: notebooks' and pytest's
    ``sys.stderr`` have none, and a subprocess cannot write into them."""
    for candidate in (stream, sys.stderr, sys.__stderr__):
        try:
            if candidate is not None:
                candidate.fileno()
                return candidate
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            continue
    return open(os.devnull, "w")  # kept open: the server may outlive this call


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()


async def _list_all_tools(session: Any) -> list[Any]:
    from mcp.types import PaginatedRequestParams

    tools, cursor = [], None
    while True:
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        listed = await session.list_tools(params=params)
        tools.extend(listed.tools)
        cursor = listed.next_cursor
        if not cursor:
            return tools


def _explain(error: BaseException) -> str:
    """One line naming the innermost causes of ``error`` (anyio wraps them in groups)."""
    inner = getattr(error, "exceptions", None)  # an (anyio) exception group
    if isinstance(inner, (list, tuple)) and inner:
        return "; ".join(_explain(each) for each in inner)
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _is_transport_error(error: BaseException) -> bool:
    names = {klass.__name__ for klass in type(error).__mro__}
    return bool(names & {"ConnectError", "TransportError", "RemoteProtocolError", "OSError"})


# --- Client: MCP tools as rlenv tools ----------------------------------------------------------


def result_text(result: Any) -> str:
    """The text a model sees for a ``CallToolResult``: text blocks joined by newlines, other
    blocks described in brackets, ``structuredContent`` as JSON when there is nothing else."""
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.mime_type}, {_base64_bytes(block.data)} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri} ({block.name})]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if text is not None:
                parts.append(text)
            else:
                size = _base64_bytes(getattr(resource, "blob", ""))
                parts.append(f"[resource: {resource.uri}, {resource.mime_type}, {size} bytes]")
        else:
            parts.append(f"[{kind} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)


def _base64_bytes(data: str) -> int:
    return max(0, len(data) * 3 // 4 - data[-2:].count("="))


_OPENAI_NAME = re.compile(r"[^A-Za-z0-9_-]")


def tools_from_mcp(connection: MCPConnection, *, timeout: float = 30.0) -> list[Tool]:
    """The connection's tools as rlenv :class:`~rlenv.tools.Tool` objects.

    Each schema is the server's ``inputSchema`` (checked to be a valid JSON Schema); a name
    OpenAI's format refuses (characters other than letters, digits, ``_`` and ``-``, or over 64
    characters) is rewritten with ``_`` and calls still go out under the server's name. Calling
    a tool forwards it to the server with ``timeout`` and returns :func:`result_text`; failures
    raise the ``MCP*Error`` exceptions, which the :class:`~rlenv.tools.Toolbox` turns into a
    message for the model."""
    import jsonschema

    tools: list[Tool] = []
    seen: dict[str, str] = {}
    for listed in connection.tools:
        name = _OPENAI_NAME.sub("_", listed.name)[:64]
        if name in seen:
            raise ValueError(
                f"MCP tools {seen[name]!r} and {listed.name!r} both map to the name {name!r}"
            )
        seen[name] = listed.name
        parameters = copy.deepcopy(listed.input_schema or {})
        parameters.setdefault("type", "object")
        parameters.setdefault("properties", {})
        try:
            jsonschema.Draft202012Validator.check_schema(parameters)
        except jsonschema.SchemaError as bad:
            raise ValueError(
                f"MCP tool {listed.name!r} has an invalid inputSchema: {bad.message}"
            ) from None
        tools.append(
            Tool(
                name=name,
                description=listed.description or "",
                parameters=parameters,
                function=_forwarder(connection, listed.name, timeout),
            )
        )
    return tools


def _forwarder(connection: MCPConnection, name: str, timeout: float) -> Callable[..., str]:
    def call(**arguments: Any) -> str:
        result = connection.call(name, arguments, timeout=timeout)
        text = result_text(result)
        if result.is_error:
            raise MCPToolError(text or "the tool reported an error without a message")
        return text

    call.__name__ = name
    return call


class MCPToolEnv(ToolEnv):
    """A :class:`~rlenv.tools.ToolEnv` whose tools come from an MCP server.

    Tasks and grading are yours, as in any ``ToolEnv``: subclass it, set ``server`` (or pass
    ``server=``), and override ``load_tasks`` and ``grade`` (or ``verify``)::

        class Adder(MCPToolEnv):
            server = ["python", "my_server.py"]          # stdio; or "http://127.0.0.1:8000/mcp"
            call_timeout = 10.0

            def load_tasks(self):
                return TaskList([Task(id="1", prompt="What is 2+3? Use the add tool.", answer="5")])

    Class attributes (constructor arguments override them): ``server``; ``call_timeout`` (30 s)
    per tool call; ``connect_timeout`` (30 s) for the server to start and handshake. One
    session per env instance, opened in the constructor (the schemas are needed there) and
    closed by :meth:`close`. A server that goes away ends the episode unscored (see the module
    docstring); the next :meth:`reset` reconnects.
    """

    server: Any = None
    call_timeout: float = 30.0
    connect_timeout: float = 30.0

    def __init__(
        self,
        tasks: Any = None,
        *,
        server: Any = None,
        call_timeout: float | None = None,
        connect_timeout: float | None = None,
        server_stderr: TextIO | None = None,
        **kwargs: Any,
    ) -> None:
        if server is not None:
            self.server = server
        if call_timeout is not None:
            self.call_timeout = call_timeout
        if connect_timeout is not None:
            self.connect_timeout = connect_timeout
        if self.server is None:
            raise ValueError(
                f"{type(self).__name__} needs an MCP server: set the class attribute `server` or "
                "pass server= (a URL, a command list, or mcp.StdioServerParameters)"
            )
        self._server_stderr = server_stderr
        self.connection: MCPConnection | None = None
        try:
            super().__init__(tasks, **kwargs)
        except BaseException:
            # a refused schema or setting must not leave the server process and its thread
            if self.connection is not None:
                self.connection.close()
            raise

    def load_tools(self) -> list[Tool]:
        self.connection = MCPConnection(
            self.server, connect_timeout=self.connect_timeout, stderr=self._server_stderr
        )
        return tools_from_mcp(self.connection, timeout=self.call_timeout)

    def start(self, task: Any) -> Any:
        if self.connection is not None and self.connection.lost is not None:
            self.connection.open()  # a fresh session (a new process for stdio); same tools
        return super().start(task)

    def respond(self, message: AssistantMessage) -> Turn:
        turn = super().respond(message)
        lost = self.connection.lost if self.connection is not None else None
        if lost is None:
            return turn
        verdict = Verdict(
            reward=0.0,
            reason="the MCP server went away during the episode; not scored",
            error=f"{SERVER_LOST}: {lost}",
            scored=False,
        )
        return Turn(messages=turn.messages, done=True, verdict=verdict)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        super().close()


# --- Server: an rlenv ToolEnv as an MCP server -------------------------------------------------


def build_server(
    env: ToolEnv | str,
    *,
    task_id: str | None = None,
    seed: int | None = None,
    name: str | None = None,
    **make_kwargs: Any,
) -> Server:
    """An MCP server (the SDK's low-level ``Server``) for one episode of a ``ToolEnv``.

    The env (an instance, or an id for :func:`rlenv.make` with ``make_kwargs``) is reset on
    ``task_id`` (or ``seed``). Tools: the schemas the env poses for the task (``info["tools"]``),
    so hidden arguments stay hidden. Calls: through the env's toolbox with the env's hidden
    arguments (its ``state``), one at a time, each appended to ``env.trace``; a refused call
    (unknown tool, bad arguments, an error raised inside) answers ``isError`` with the env's
    message. Resources: ``rlenv://task`` (env id, task id, the conversation so far) and
    ``rlenv://state`` (the episode's state as JSON). Instructions: the task's messages."""
    _require_mcp()
    import anyio
    from mcp import types
    from mcp.server.lowlevel import Server

    import rlenv

    if isinstance(env, str):
        env = rlenv.make(env, **make_kwargs)
    elif make_kwargs:
        raise TypeError("make_kwargs apply only when env is an id")
    if not isinstance(env, ToolEnv):
        raise TypeError(f"{type(env).__name__} is not a ToolEnv: it has no tools to serve")
    options = {"task_id": task_id} if task_id is not None else None
    observation, info = env.reset(seed=seed, options=options)
    schemas = info.get("tools") or env.tools
    env_id = env.spec.id if env.spec is not None else type(env).__name__
    lock = threading.Lock()

    def run(tool_name: str, arguments: dict[str, Any]) -> Any:
        with lock:
            outcome = env.toolbox.run(tool_name, arguments, hidden=env.hidden_arguments())
            env.trace.append(outcome)
            return outcome

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=schema["function"]["name"],
                    description=schema["function"].get("description") or None,
                    input_schema=schema["function"]["parameters"],
                )
                for schema in schemas
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        offered = {schema["function"]["name"] for schema in schemas}
        if params.name not in offered:
            known = ", ".join(sorted(offered)) or "none"
            text = f"Error: unknown tool {params.name!r}; the available tools are: {known}"
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
        outcome = await anyio.to_thread.run_sync(run, params.name, dict(params.arguments or {}))
        return types.CallToolResult(
            content=[types.TextContent(text=outcome.content)], is_error=not outcome.ok
        )

    resources = {
        "rlenv://task": lambda: {
            "env_id": env_id,
            "task_id": env.task.id if env.task is not None else None,
            "messages": observation,
        },
        "rlenv://state": lambda: env.state,
    }

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource(uri=uri, name=uri.split("://")[1], mime_type="application/json")
                for uri in resources
            ]
        )

    async def read_resource(ctx: Any, params: Any) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri not in resources:
            from mcp import MCPError
            from mcp.types import INVALID_PARAMS

            raise MCPError(INVALID_PARAMS, f"unknown resource {uri!r}; known: {sorted(resources)}")
        with lock:
            text = _render(resources[uri]())
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )

    instructions = "\n\n".join(
        f"{message['role']}: {message.get('content') or ''}" for message in observation
    )
    return Server(
        name or f"rlenv {env_id}",
        instructions=instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


def serve(
    env: ToolEnv | str,
    *,
    task_id: str | None = None,
    seed: int | None = None,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    **make_kwargs: Any,
) -> None:
    """Serve one episode of a ``ToolEnv`` as an MCP server until the client goes (stdio) or the
    process is stopped (streamable HTTP at ``http://host:port/mcp``). See :func:`build_server`."""
    server = build_server(env, task_id=task_id, seed=seed, **make_kwargs)
    if transport == "stdio":
        import anyio
        from mcp.server.stdio import stdio_server

        async def main() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(main)
    elif transport == "streamable-http":
        import uvicorn

        app = server.streamable_http_app(host=host)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    else:
        raise ValueError(f"transport must be 'stdio' or 'streamable-http', not {transport!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlenv.tools.mcp ENV_ID [--task-id ID] [--seed N] [--transport ...]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rlenv.tools.mcp",
        description="Serve one episode of an rlenv ToolEnv's tools as an MCP server.",
    )
    parser.add_argument("env_id", help="a registered ToolEnv id, e.g. rlenv/Bank-v0")
    parser.add_argument("--task-id", help="the task to pose (default: from --seed)")
    parser.add_argument("--seed", type=int, help="the reset seed when no --task-id is given")
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="streamable-http only")
    parser.add_argument("--port", type=int, default=8000, help="streamable-http only")
    args = parser.parse_args(argv)
    serve(
        args.env_id,
        task_id=args.task_id,
        seed=args.seed,
        transport=args.transport,
        host=args.host,
        port=args.port,
    )


if __name__ == "__main__":
    main()
