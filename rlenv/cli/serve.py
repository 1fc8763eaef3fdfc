"""``rlenv serve``: environments over HTTP (needs ``pip install 'rlenv[server]'``)."""

from __future__ import annotations

import argparse
from typing import Any

import rlenv
from rlenv.cli._common import EXIT_OK, CLIError


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve environments over HTTP (needs pip install 'rlenv[server]')"
    )
    serve.add_argument("env_ids", nargs="+", metavar="ID", help="environment ids to serve")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (8000)")
    serve.add_argument(
        "--max-sessions", type=int, default=1024, metavar="N", help="open sessions at most (1024)"
    )
    serve.add_argument(
        "--session-ttl", type=float, default=600.0, metavar="S",
        help="seconds before an idle session is closed (600)",
    )  # fmt: skip
    serve.add_argument(
        "--max-body-bytes", type=int, default=2 * 1024 * 1024, metavar="B",
        help="largest request body (2 MiB)",
    )  # fmt: skip
    serve.add_argument(
        "--threads", type=int, default=None,
        help="threads running environment code (8 per CPU, at most 32; more for envs that "
        "wait on sandboxes or remote calls)",
    )  # fmt: skip
    serve.add_argument(
        "--no-client-kwargs", action="store_true",
        help="refuse constructor arguments from clients (registered defaults only)",
    )  # fmt: skip
    serve.add_argument(
        "--step-timeout", type=float, default=120.0, metavar="S",
        help="seconds one env call (reset, step...) may run; a step past it ends its episode "
        "unscored and its env is abandoned; 0: none (120)",
    )  # fmt: skip
    serve.add_argument(
        "--max-abandoned", type=int, default=8, metavar="N",
        help="hung env calls tolerated before env calls get 503 (8)",
    )  # fmt: skip
    serve.add_argument(
        "--max-waiting", type=int, default=1024, metavar="N",
        help="env calls waiting for a thread; one more gets 429 (1024)",
    )  # fmt: skip
    serve.add_argument(
        "--drain-timeout", type=float, default=30.0, metavar="S",
        help="on SIGTERM, seconds for requests in flight to finish, new ones get 503 (30)",
    )  # fmt: skip
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        from rlenv.server import ServerLimits, serve
    except ImportError as error:
        raise CLIError(
            f"rlenv serve needs FastAPI and uvicorn ({error}); pip install 'rlenv[server]'"
        ) from None
    for env_id in args.env_ids:
        rlenv.spec(env_id)  # an unknown id fails here, with suggestions
    try:
        limits = ServerLimits(
            max_sessions=args.max_sessions,
            session_ttl=args.session_ttl,
            max_body_bytes=args.max_body_bytes,
            **({} if args.threads is None else {"threads": args.threads}),
            client_kwargs=not args.no_client_kwargs,
            step_timeout=args.step_timeout or None,
            max_abandoned=args.max_abandoned,
            max_waiting=args.max_waiting,
            drain_timeout=args.drain_timeout,
        )
    except ValidationError as error:
        raise CLIError(f"bad server settings: {error}") from None

    def ready(url: str) -> None:
        served = ", ".join(args.env_ids)
        print(f"rlenv: serving {served} at {url} (API docs: {url}/docs)", flush=True)

    try:
        serve(
            args.env_ids,
            host=args.host,
            port=args.port,
            limits=limits,
            access_log=args.access_log,
            on_ready=ready,
        )
    except OSError as error:  # the port is taken, the address is not ours
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {error}") from None
    return EXIT_OK
