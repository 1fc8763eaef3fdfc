"""What every ``rlenv`` command shares: errors and exit codes, ``-k``, output helpers."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

import rlenv
from rlenv.chat import render_messages
from rlenv.env import TextEnv
from rlenv.errors import RLEnvError
from rlenv.params import parse_assignments
from rlenv.verdict import Verdict

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CLIError(RLEnvError):
    """A mistake on the command line (a bad ``-k``, a missing argument); exit code 2."""


# ------------------------------------------------------------------------------ arguments


def add_env_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env_id", metavar="ID", help="environment id, e.g. rlenv/Arithmetic-v0")


def add_env_kwargs(parser: argparse.ArgumentParser) -> None:
    """``-k KEY=VALUE``: the one declaration of the environment-argument flag."""
    parser.add_argument(
        "-k",
        "--kwarg",
        dest="kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment argument (repeatable); VALUE is JSON or a Python literal "
        "(3, true/True, false/False, none/None, [1, 2]), else text",
    )
    parser.add_argument(  # sugar for -k verifier=NAME: ID dataset:FILE --verifier exact
        "--verifier",
        dest="kwargs",
        action="append",
        type=lambda name: f"verifier={name}",
        metavar="NAME",
        help="a dataset environment's verifier (math, code, exact, regex, choice); "
        "the same as -k verifier=NAME",
    )


def env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``-k`` pairs as keyword arguments; checked against the env when it is made."""
    return parse_assignments(args.kwargs, flag="-k")


def check_env_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> None:
    """Fail before any model loads: an unknown id, a misspelt or mistyped ``-k``."""
    from rlenv.params import check_env_kwargs as check

    env_spec = rlenv.spec(env_id)
    if kwargs:
        check(env_id, rlenv.registry.env_creator(env_spec), kwargs)


def make_env(env_id: str, kwargs: Mapping[str, Any]) -> TextEnv:
    """``rlenv.make(env_id, **kwargs)``, with a constructor's complaint turned into a CLIError."""
    try:
        return rlenv.make(env_id, **kwargs)
    except RLEnvError:
        raise
    except (TypeError, ValueError) as error:
        raise CLIError(f"could not make {env_id} with {dict(kwargs)}: {error}") from None


# ------------------------------------------------------------------------------ output

_COLORS = {"system": "35", "user": "36", "assistant": "32", "tool": "33", "dim": "2", "bold": "1"}


class Output:
    """Writes to a stream, with ANSI colors only when the stream is a terminal."""

    def __init__(self, stream: TextIO, color: bool | None = None) -> None:
        self.stream = stream
        if color is None:
            color = isatty(stream) and "NO_COLOR" not in os.environ
        self.color = color

    def style(self, text: str, name: str) -> str:
        if not self.color or name not in _COLORS:
            return text
        return f"\033[{_COLORS[name]}m{text}\033[0m"

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def messages(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Each message as ``[role]`` and its text (see ``rlenv.chat.render_messages``)."""
        for message in messages:
            header, _, body = render_messages([message]).partition("\n")
            self.line(self.style(header, str(message.get("role"))))
            if body:
                self.line(body)


def isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_verdict(verdict: Verdict) -> str:
    parts = [
        f"reward={verdict.reward}",
        f"reason={verdict.reason!r}",
        f"error={verdict.error!r}",
        f"parsed={verdict.parsed!r}",
    ]
    if verdict.components:
        parts.append(f"components={verdict.components}")
    if not verdict.scored:
        parts.append("scored=False")
    return "verdict: " + "  ".join(parts)


def format_step(reward: float, terminated: bool, truncated: bool) -> str:
    return f"reward {reward}   terminated {terminated}   truncated {truncated}"


def turns(env: TextEnv) -> str:
    return f"{env.turn} turn" + ("" if env.turn == 1 else "s")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def env_warnings(*, show: bool = False) -> Iterator[list[logging.LogRecord]]:
    """Collect the warnings rlenv logs while environment code runs (a crashing verifier or
    ``respond`` logs one, with its traceback, per step) instead of letting Python print each
    traceback; ``show=True`` lets them through as well."""
    logger = logging.getLogger("rlenv")
    collect, propagate = _Collect(), logger.propagate
    logger.addHandler(collect)
    if not show:
        logger.propagate = False
    try:
        yield collect.records
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate
