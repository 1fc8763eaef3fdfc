"""``rlenv play``: type the assistant's turns yourself (the environment author's debugger)."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from rlenv.cli._common import (
    EXIT_OK,
    Output,
    add_env_id,
    add_env_kwargs,
    env_kwargs,
    env_warnings,
    format_step,
    format_verdict,
    isatty,
    make_env,
    turns,
)
from rlenv.env import Action, TextEnv

__all__ = ["play"]


def register(commands: Any) -> None:
    play_ = commands.add_parser(
        "play",
        help="type the assistant's turns yourself (the env author's debugger)",
        description=_PLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_env_id(play_)
    play_.add_argument("--seed", type=int, default=0, help="seed of the first task (0)")
    add_env_kwargs(play_)
    play_.set_defaults(handler=_cmd_play)


_PLAY_HELP = """\
You type the assistant's turns; each line is one turn (end a line with \\ to continue the
turn on the next line). After each turn you see the environment's reply, the reward,
terminated/truncated and the verdict. When an episode ends, the next starts with the next seed.

commands:
  /gold      submit env.gold_action()
  /reset     start a new episode (next seed)
  /messages  show the whole conversation
  /tools     show info["tools"] as JSON
  /help      show this help
  /quit      exit (end of input exits too)
"""

_COMMAND = re.compile(r"/[a-z]+")


class _Quit(Exception):
    pass


class _PlaySession:
    """One ``rlenv play`` run: reads turns and commands, steps the env, prints what happens."""

    def __init__(self, env: TextEnv, seed: int, stdin: TextIO, out: Output) -> None:
        self.env = env
        self.seed = seed
        self.stdin = stdin
        self.out = out
        # input() gives line editing, but only reads sys.stdin.
        self.interactive = stdin is sys.stdin and isatty(stdin) and isatty(out.stream)
        self.episode = 0
        self.total = 0.0
        self.tools: list[Any] = []
        self.commands: dict[str, Callable[[], None]] = {
            "/gold": self._gold,
            "/reset": self._reset,
            "/messages": lambda: self.out.messages(self.env.messages),
            "/tools": lambda: self.out.line(json.dumps(self.tools, indent=2)),
            "/help": lambda: self.out.line(_PLAY_HELP),
            "/quit": self._quit,
        }

    def run(self) -> int:
        self._start_episode()
        while True:
            text = self._read_turn()
            if text is None:  # end of input
                return EXIT_OK
            if not text.strip():
                continue
            if _COMMAND.fullmatch(text.strip()):
                try:
                    self._command(text.strip())
                except _Quit:
                    return EXIT_OK
            else:
                self._step(text)

    def _read_turn(self) -> str | None:
        """One turn of input: a line, joined with the next while it ends with a backslash."""
        lines: list[str] = []
        while True:
            line = self._read_line("... " if lines else "you> ")
            if line is None:  # end of input: a turn still being continued is sent, not lost
                return "\n".join(lines) if lines else None
            if line.endswith("\\"):
                lines.append(line[:-1])
                continue
            lines.append(line)
            return "\n".join(lines)

    def _read_line(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return input(prompt)  # uncolored: readline miscounts escape codes
            except EOFError:
                self.out.line()
                return None
        line = self.stdin.readline()
        return line.rstrip("\r\n") if line else None

    def _command(self, name: str) -> None:
        command = self.commands.get(name)
        if command is None:
            self.out.line(f"unknown command {name}; commands: {', '.join(self.commands)}")
            return
        command()

    def _start_episode(self) -> None:
        self.episode += 1
        self.total = 0.0
        observation, info = self.env.reset(seed=self.seed)
        self.tools = info["tools"]
        title = f"--- episode {self.episode}: seed {self.seed}, task {info['task_id']} ---"
        self.out.line(self.out.style(title, "bold"))
        self.out.messages(observation)
        if self.episode == 1:
            self.out.line(self.out.style("(type your reply; /help for commands)", "dim"))

    def _step(self, action: Action, *, typed: bool = True) -> None:
        try:
            with env_warnings() as records:
                _, reward, terminated, truncated, info = self.env.step(action)
        except Exception:  # an environment bug: show it to its author and carry on
            self.out.line("the environment raised an exception:")
            self.out.line(traceback.format_exc().rstrip())
            self._next_episode()
            return
        for record in records:  # step() caught a hook's exception: show its author where
            self.out.line(f"the environment raised an exception: {record.getMessage()}")
            if record.exc_info:
                self.out.line("".join(traceback.format_exception(*record.exc_info)).rstrip())
        self.tools = info["tools"]
        new_messages = info["new_messages"]
        # A person at a terminal just saw what they typed; piped input was never shown.
        self.out.messages(new_messages[1:] if typed and self.interactive else new_messages)
        self.total += reward
        self.out.line(self.out.style(format_step(reward, terminated, truncated), "dim"))
        self.out.line(self.out.style(format_verdict(info["verdict"]), "dim"))
        if terminated or truncated:
            ending = "terminated" if terminated else "truncated"
            summary = f"episode over ({ending}): total reward {self.total} in {turns(self.env)}"
            self.out.line(self.out.style(summary, "bold"))
            self._next_episode()
        else:
            self.out.line()

    def _next_episode(self) -> None:
        self.seed += 1
        self.out.line()
        self._start_episode()

    def _gold(self) -> None:
        action = self.env.gold_action()
        if action is None:
            self.out.line("no gold action is known here (env.gold_action() returned None)")
            return
        self._step(action, typed=False)

    def _reset(self) -> None:
        self._next_episode()

    def _quit(self) -> None:
        raise _Quit


def play(
    env: TextEnv,
    *,
    seed: int = 0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    color: bool | None = None,
) -> int:
    """Play ``env`` by hand: read the assistant's turns from ``stdin``, print to ``stdout``.

    One line is one turn; a line ending with a backslash continues on the next line. Commands:
    ``/gold``, ``/reset``, ``/messages``, ``/tools``, ``/help``, ``/quit``. The first episode
    uses ``seed``; each later one the next seed. Returns the exit code (0) at ``/quit`` or
    end of input. ``color`` defaults to whether ``stdout`` is a terminal.
    """
    out = Output(stdout if stdout is not None else sys.stdout, color)
    session = _PlaySession(env, seed, stdin if stdin is not None else sys.stdin, out)
    return session.run()


def _cmd_play(args: argparse.Namespace) -> int:
    env = make_env(args.env_id, env_kwargs(args))
    if isatty(sys.stdin):
        with contextlib.suppress(ImportError):  # line editing and history for input()
            import readline  # noqa: F401
    try:
        return play(env, seed=args.seed)
    finally:
        env.close()
