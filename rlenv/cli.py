"""The ``rlenv`` command: list, inspect, play, check and scaffold environments.

::

    rlenv list [--namespace NS]                registered environments
    rlenv info ID [--seed N] [-k key=value]    spec, docs and a sample task
    rlenv play ID [--seed N] [-k key=value]    type the assistant's turns yourself
    rlenv check ID [ID ...] | --all            the conformance suite, with a readable report
    rlenv new NAME [--dir DIR] [--multi-turn]  scaffold an environment package
    rlenv tour                                 a scripted tour of the bundled environments
    rlenv demo                                 GRPO makes SmolLM2 better at arithmetic (CPU)
    rlenv eval ID --model M                    evaluate a model; rlenv view FILE re-renders
    rlenv train ID --model M [--config F]      train a model with the bundled GRPO trainer
    rlenv collect ID --model M [--samples K]   rejection sampling: keep episodes that passed
    rlenv collect ID --gold                    demonstrations: play env.gold_action()
    rlenv train-sft DATA [DATA ...] --model M  supervised fine-tuning on kept trajectories
    rlenv train-dpo DATA --model M             DPO on verifier-built preference pairs
    rlenv serve ID [ID ...] [--port P]         serve environments over HTTP (rlenv[server])

:func:`main` returns the exit code: 0 on success, 1 when a check (or a scaffold) failed, 2 for
a usage error (unknown environment id, bad argument); such errors print one line, never a
traceback. Only argparse and the core are used, so the command starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from gymnasium.envs.registration import EnvSpec, load_env_creator

import rlenv
from rlenv.chat import Message, message_text, render_messages
from rlenv.env import Action, TextEnv
from rlenv.errors import RLEnvError
from rlenv.verdict import Verdict

__all__ = ["CLIError", "binary_search_guess", "build_parser", "main", "parse_kwargs", "play"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CLIError(RLEnvError):
    """A mistake on the command line (a bad ``-k``, a missing argument); exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rlenv`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or an argparse usage error
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except RLEnvError as error:  # the caller's mistake: one clear line, no traceback
        print(f"rlenv: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rlenv demo | head`: the reader left; stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (Python flushes stdout at exit)
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rlenv`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="rlenv",
        description="Reinforcement-learning environments for language models.",
    )
    parser.add_argument("--version", action="version", version=f"rlenv {rlenv.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    list_ = commands.add_parser("list", help="list registered environments")
    list_.add_argument("--namespace", help="only ids in this namespace (e.g. rlenv)")
    list_.set_defaults(handler=_cmd_list)

    info = commands.add_parser("info", help="an environment's spec, docs and a sample task")
    _add_env_arguments(info)
    info.set_defaults(handler=_cmd_info)

    play_ = commands.add_parser(
        "play",
        help="type the assistant's turns yourself (the env author's debugger)",
        description=_PLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_env_arguments(play_)
    play_.set_defaults(handler=_cmd_play)

    check = commands.add_parser("check", help="run the conformance suite (rlenv.testing)")
    check.add_argument("env_ids", nargs="*", metavar="ID", help="environment ids to check")
    check.add_argument("--all", action="store_true", help="check every registered environment")
    check.add_argument(
        "--no-cross-process",
        action="store_true",
        help="skip the determinism check in a fresh Python process",
    )
    check.add_argument(
        "--actions", type=int, default=200, metavar="N", help="hostile actions to step (200)"
    )
    check.set_defaults(handler=_cmd_check)

    new = commands.add_parser("new", help="scaffold an environment package")
    new.add_argument("name", help="package name: lowercase letters, digits, '_' or '-'")
    new.add_argument("--dir", default=".", help="where to create NAME/ (default: .)")
    new.add_argument(
        "--multi-turn", action="store_true", help="a multi-turn environment (respond/Turn)"
    )
    new.set_defaults(handler=_cmd_new)

    tour = commands.add_parser("tour", help="list the environments and play scripted episodes")
    tour.set_defaults(handler=_cmd_tour)

    demo = commands.add_parser(
        "demo", help="evaluate SmolLM2, train it with GRPO on arithmetic (CPU), evaluate again"
    )
    demo.add_argument("--steps", type=int, help="GRPO steps (default: the demo's 40)")
    demo.add_argument("--out", default="rlenv-demo", help="output directory (rlenv-demo)")
    demo.set_defaults(handler=_cmd_demo)

    train = commands.add_parser("train", help="train a model on an environment with GRPO")
    train.add_argument("env_id", metavar="ID", help="environment id, e.g. rlenv/Arithmetic-v0")
    train.add_argument("--config", help="a TOML file of GRPOConfig settings")
    _add_training_arguments(train, "GRPOConfig", "rlenv-train", example="learning_rate=1e-5")
    train.add_argument(
        "-k", "--kwarg", action="append", default=[], metavar="KEY=VALUE",
        help="environment argument (repeatable)",
    )  # fmt: skip
    train.set_defaults(handler=_cmd_train)

    sft = commands.add_parser(
        "train-sft", help="supervised fine-tuning on trajectories or chat transcripts (JSONL)"
    )
    sft.add_argument("data", nargs="+", metavar="DATA", help="JSONL files (rlenv collect, chat)")
    _add_training_arguments(
        sft, "SFTConfig", "rlenv-sft", example="learning_rate=1e-5", epochs=float
    )
    sft.set_defaults(handler=_cmd_train_sft)

    dpo = commands.add_parser(
        "train-dpo", help="DPO on preference pairs built from verified rollouts (JSONL)"
    )
    dpo.add_argument(
        "data", metavar="DATA",
        help="JSONL of trajectories (rlenv collect --keep all; paired here), pairs or TRL records",
    )  # fmt: skip
    _add_training_arguments(
        dpo, "DPOConfig", "rlenv-dpo", example="beta=0.1", epochs=int, resume=False
    )
    dpo.add_argument("--pairs-out", help="also write the pairs in TRL's DPO format (JSONL)")
    dpo.set_defaults(handler=_cmd_train_dpo)

    collect = commands.add_parser(
        "collect", help="rejection sampling: sample episodes, keep those a verifier passed"
    )
    collect.add_argument("env_id", metavar="ID", help="environment id, e.g. rlenv/Arithmetic-v0")
    source = collect.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="smollm2-135m, a local path, or a model name")
    source.add_argument(
        "--gold", action="store_true",
        help="no model: play each task with env.gold_action() (demonstrations for SFT)",
    )  # fmt: skip
    collect.add_argument("--base-url", help="an OpenAI-compatible endpoint serving --model")
    collect.add_argument("-n", "--tasks", type=int, default=20, help="tasks (20)")
    collect.add_argument("--samples", type=int, default=4, help="samples per task, K (4)")
    collect.add_argument("--seed", type=int, default=0, help="seed of the first task (0)")
    collect.add_argument(
        "--keep", choices=["passed", "all"], default="passed", help="which episodes (passed)"
    )
    collect.add_argument("--max-new-tokens", type=int, default=256)
    collect.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (1.0)")
    collect.add_argument("--batch-size", type=int, default=16)
    collect.add_argument(
        "--out", default="rlenv-collect.jsonl", help="trajectories file (rlenv-collect.jsonl)"
    )
    collect.add_argument(
        "-k", "--kwarg", action="append", default=[], metavar="KEY=VALUE",
        help="environment argument (repeatable)",
    )  # fmt: skip
    collect.set_defaults(handler=_cmd_collect)

    evaluate = commands.add_parser("eval", help="evaluate a model on an environment")
    evaluate.add_argument("env_id", metavar="ID", help="environment id, e.g. rlenv/Arithmetic-v0")
    evaluate.add_argument(
        "--model", required=True, help="smollm2-135m, a local path, or a model name"
    )
    evaluate.add_argument("--base-url", help="an OpenAI-compatible endpoint serving --model")
    evaluate.add_argument("-n", "--tasks", type=int, default=20, help="tasks (20)")
    evaluate.add_argument("--samples", type=int, default=1, help="samples per task, k (1)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the first task (0)")
    evaluate.add_argument("--max-new-tokens", type=int, default=256)
    evaluate.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (0)")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--out", default="rlenv-eval", help="output directory (rlenv-eval)")
    evaluate.add_argument(
        "-k", "--kwarg", action="append", default=[], metavar="KEY=VALUE",
        help="environment argument (repeatable)",
    )  # fmt: skip
    evaluate.set_defaults(handler=_cmd_eval)

    view = commands.add_parser("view", help="summarise saved trajectories and write a report")
    view.add_argument("path", help="a trajectories .jsonl file")
    view.add_argument("--out", help="the HTML report (default: next to the file)")
    view.set_defaults(handler=_cmd_view)

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
        "--threads", type=int, default=32, help="threads running environment code (32)"
    )
    serve.add_argument(
        "--no-client-kwargs", action="store_true",
        help="refuse constructor arguments from clients (registered defaults only)",
    )  # fmt: skip
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_cmd_serve)
    return parser


def _add_training_arguments(
    parser: argparse.ArgumentParser,
    config_name: str,
    out_default: str,
    *,
    example: str,
    epochs: type | None = None,
    resume: bool = True,
) -> None:
    """The options every ``rlenv train*`` command shares: --model, --set, --steps (and
    --epochs, exclusive with it), --out and --resume."""
    parser.add_argument("--model", help="smollm2-135m (default), a local path, or a cached id")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
        help=f"override one {config_name} setting, e.g. --set {example} (repeatable)",
    )  # fmt: skip
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps")
    if epochs is not None:
        length.add_argument("--epochs", type=epochs, help="passes over the data (1)")
    parser.add_argument("--out", help=f"output directory ({out_default})")
    if resume:
        parser.add_argument("--resume", metavar="CHECKPOINT", help="a checkpoint.pt to resume from")


def _training_config(config: Any, args: argparse.Namespace, *fixed: str) -> Any:
    """``config`` with ``fixed`` assignments, then ``--set``, then the --model/--steps/--epochs/
    --out flags applied (later wins); a bad setting is a usage error."""
    from pydantic import ValidationError

    settings = [*fixed, *args.settings]
    for name in ("model", "out"):
        if getattr(args, name, None):
            settings.append(f"{name}={json.dumps(getattr(args, name))}")
    for name in ("steps", "epochs"):
        if getattr(args, name, None) is not None:
            settings.append(f"{name}={getattr(args, name)}")
    try:
        return config.with_overrides(settings)
    except (ValueError, ValidationError) as error:
        raise CLIError(f"bad training settings: {error}") from None


def _add_env_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env_id", metavar="ID", help="environment id, e.g. rlenv/Arithmetic-v0")
    parser.add_argument("--seed", type=int, default=0, help="seed of the (first) task (0)")
    parser.add_argument(
        "-k",
        dest="kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument; VALUE is read as JSON when it can be (repeatable)",
    )


def parse_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``["digits=3", "name=abc"]`` into ``{"digits": 3, "name": "abc"}``.

    Values are parsed as JSON when they can be (``3``, ``false``, ``[1, 2]``, ``"quoted"``) and
    kept as strings otherwise. Raises :class:`CLIError` for a pair without ``=`` or a bad key.
    """
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CLIError(f"-k expects KEY=VALUE with a Python identifier as KEY, got {pair!r}")
        try:
            kwargs[key] = json.loads(text)
        except json.JSONDecodeError:
            kwargs[key] = text
    return kwargs


def _make_env(env_id: str, kwargs: Mapping[str, Any]) -> TextEnv:
    """``rlenv.make(env_id, **kwargs)``, with a constructor's complaint turned into a CLIError."""
    rlenv.spec(env_id)  # an unknown id raises UnknownEnvError, with suggestions
    try:
        return rlenv.make(env_id, **kwargs)
    except RLEnvError:
        raise
    except (TypeError, ValueError) as error:
        raise CLIError(f"could not make {env_id} with {dict(kwargs)}: {error}") from None


# ------------------------------------------------------------------------------ output


_COLORS = {"system": "35", "user": "36", "assistant": "32", "tool": "33", "dim": "2", "bold": "1"}


class _Output:
    """Writes to a stream, with ANSI colors only when the stream is a terminal."""

    def __init__(self, stream: TextIO, color: bool | None = None) -> None:
        self.stream = stream
        if color is None:
            color = _isatty(stream) and "NO_COLOR" not in os.environ
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


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _format_verdict(verdict: Verdict) -> str:
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


def _turns(env: TextEnv) -> str:
    return f"{env.turn} turn" + ("" if env.turn == 1 else "s")


def _format_step(reward: float, terminated: bool, truncated: bool) -> str:
    return f"reward {reward}   terminated {terminated}   truncated {truncated}"


# ------------------------------------------------------------------------------ list, info


def _entry_point_name(entry_point: Any) -> str:
    if isinstance(entry_point, str):
        return entry_point
    module = getattr(entry_point, "__module__", "?")
    return f"{module}:{getattr(entry_point, '__qualname__', repr(entry_point))}"


def _env_creator(env_spec: EnvSpec) -> Callable[..., Any]:
    """The class (or factory) a spec makes, imported but not instantiated."""
    entry_point = env_spec.entry_point
    return load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point


def _docstring(creator: Any) -> str:
    """The creator's own docstring (a class does not inherit ``TextEnv``'s), cleaned up."""
    doc = getattr(creator, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _summary_row(env_id: str) -> tuple[str, str, str]:
    env_spec = rlenv.spec(env_id)
    try:
        creator = _env_creator(env_spec)
    except Exception as error:  # a broken plugin must not hide every other environment
        return env_id, "?", f"(cannot be imported: {type(error).__name__}: {error})"
    max_turns = (env_spec.kwargs or {}).get("max_turns", getattr(creator, "max_turns", "?"))
    first_line = _docstring(creator).split("\n", 1)[0].replace("``", "`")
    return env_id, str(max_turns), first_line


def _print_env_table(out: _Output, namespace: str | None = None) -> int:
    env_ids = rlenv.list_envs(namespace)
    if not env_ids:
        where = f" in namespace {namespace!r}" if namespace else ""
        out.line(f"no environments registered{where}")
        return 0
    rows = [_summary_row(env_id) for env_id in env_ids]
    lines = _format_table(("id", "max_turns", "description"), rows)
    limit = shutil.get_terminal_size().columns if _isatty(out.stream) else None
    out.line(out.style(lines[0], "bold"))
    for line in lines[1:]:
        out.line(line if limit is None or len(line) <= limit else line[: limit - 3] + "...")
    return len(env_ids)


def _cmd_list(args: argparse.Namespace) -> int:
    _print_env_table(_Output(sys.stdout), args.namespace)
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    kwargs = parse_kwargs(args.kwargs)
    env_spec = rlenv.spec(args.env_id)
    env = _make_env(args.env_id, kwargs)
    out = _Output(sys.stdout)
    fields = [
        ("entry point", _entry_point_name(env_spec.entry_point)),
        ("kwargs", json.dumps({**(env_spec.kwargs or {}), **kwargs}, default=repr)),
        ("max_turns", str(env.max_turns)),
        ("max_reward", str(env.max_reward)),
        ("tools", str(len(env.tools))),
    ]
    out.line(out.style(args.env_id, "bold"))
    for line in _format_table(("", ""), fields)[1:]:
        out.line("  " + line)
    doc = _docstring(type(env))
    if doc:
        out.line()
        out.line(doc)
    _print_sample_task(out, env, args.seed)
    env.close()
    return EXIT_OK


def _print_sample_task(out: _Output, env: TextEnv, seed: int) -> None:
    observation, info = env.reset(seed=seed)
    out.line()
    out.line(out.style(f"sample task (seed {seed}): id {info['task_id']}", "bold"))
    out.messages(observation)
    out.line()
    out.line(f"reference answer: {env.task.answer!r}")
    gold = env.gold_action()
    if gold is not None:
        out.line(f"gold action: {gold if isinstance(gold, str) else json.dumps(gold)}")


# ------------------------------------------------------------------------------ check, new


def _cmd_check(args: argparse.Namespace) -> int:
    if args.all == bool(args.env_ids):
        raise CLIError("give environment ids to check, or --all (not both)")
    if args.actions < 0:
        raise CLIError(f"--actions must be at least 0, got {args.actions}")
    env_ids = rlenv.list_envs() if args.all else list(args.env_ids)
    for env_id in env_ids:
        rlenv.spec(env_id)  # a typo fails fast, before any check runs
    failed = [
        env_id
        for env_id in env_ids
        if not _check_one(env_id, cross_process=not args.no_cross_process, actions=args.actions)
    ]
    if len(env_ids) > 1:
        print(f"checked {len(env_ids)} environments: {len(env_ids) - len(failed)} passed", end="")
        print(f", {len(failed)} failed: {', '.join(failed)}" if failed else "")
    return EXIT_FAILED if failed else EXIT_OK


def _check_one(env_id: str, *, cross_process: bool, actions: int) -> bool:
    from rlenv.testing import check_env

    try:
        report = check_env(
            env_id, raise_on_failure=False, cross_process=cross_process, n_actions=actions
        )
    except Exception as error:  # the environment cannot even be made
        print(f"conformance of {env_id}:\n  FAIL  make: {type(error).__name__}: {error}")
        print(f"{env_id}: FAILED (it could not be made)\n")
        return False
    print(f"{report}\n")
    return report.passed


def _cmd_new(args: argparse.Namespace) -> int:
    from rlenv.scaffold import InvalidNameError, ScaffoldError, env_id_for, scaffold

    try:
        package = scaffold(args.name, Path(args.dir), multi_turn=args.multi_turn)
    except InvalidNameError:
        raise
    except ScaffoldError as error:
        print(f"rlenv: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    env_id = env_id_for(args.name)
    print(f"created {package}/")
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(package)}")
    print("\nnext steps:")
    print(f"  cd {package}")
    print("  pip install -e .")
    print(f"  rlenv check {env_id}")
    print(f"  rlenv play {env_id}")
    print("  python -m pytest tests")
    return EXIT_OK


# ------------------------------------------------------------------------------ play


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

    def __init__(self, env: TextEnv, seed: int, stdin: TextIO, out: _Output) -> None:
        self.env = env
        self.seed = seed
        self.stdin = stdin
        self.out = out
        # input() gives line editing, but only reads sys.stdin.
        self.interactive = stdin is sys.stdin and _isatty(stdin) and _isatty(out.stream)
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
            if line is None:
                return None
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
            _, reward, terminated, truncated, info = self.env.step(action)
        except Exception:  # an environment bug: show it to its author and carry on
            self.out.line("the environment raised an exception:")
            self.out.line(traceback.format_exc().rstrip())
            self._next_episode()
            return
        self.tools = info["tools"]
        new_messages = info["new_messages"]
        # A person at a terminal just saw what they typed; piped input was never shown.
        self.out.messages(new_messages[1:] if typed and self.interactive else new_messages)
        self.total += reward
        self.out.line(self.out.style(_format_step(reward, terminated, truncated), "dim"))
        self.out.line(self.out.style(_format_verdict(info["verdict"]), "dim"))
        if terminated or truncated:
            ending = "terminated" if terminated else "truncated"
            summary = f"episode over ({ending}): total reward {self.total} in {_turns(self.env)}"
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
    out = _Output(stdout if stdout is not None else sys.stdout, color)
    session = _PlaySession(env, seed, stdin if stdin is not None else sys.stdin, out)
    return session.run()


def _cmd_play(args: argparse.Namespace) -> int:
    env = _make_env(args.env_id, parse_kwargs(args.kwargs))
    if _isatty(sys.stdin):
        with contextlib.suppress(ImportError):  # line editing and history for input()
            import readline  # noqa: F401
    try:
        return play(env, seed=args.seed)
    finally:
        env.close()


# ------------------------------------------------------------------------------ demo


_RANGE = re.compile(r"between (-?\d+) and (-?\d+)")
_INTEGER = re.compile(r"-?\d+")


def binary_search_guess(observation: Sequence[Mapping[str, Any]]) -> str:
    """A GuessNumber policy: the middle of the range the conversation has not ruled out.

    Reads the range from the opening ("between 1 and 100") and narrows it with each
    "Higher." / "Lower." reply to an earlier guess. A pure function of the observation.
    """
    texts = [message_text(message) for message in observation]
    found = next((match for text in texts if (match := _RANGE.search(text))), None)
    if found is None:
        return "50"
    low, high = int(found.group(1)), int(found.group(2))
    guess: int | None = None
    for message, text in zip(observation, texts, strict=True):
        if message.get("role") == "assistant":
            numbers = _INTEGER.findall(text)
            guess = int(numbers[-1]) if numbers else None
        elif guess is not None and text.startswith("Higher"):
            low = guess + 1
        elif guess is not None and text.startswith("Lower"):
            high = guess - 1
    return str((low + high) // 2)


def _play_scripted(
    out: _Output, env: TextEnv, seed: int, policy: Callable[[list[Message]], Action]
) -> float:
    """Play one episode with ``policy`` and print each turn; return the total reward."""
    observation, info = env.reset(seed=seed)
    out.messages(observation)
    total, verdict = 0.0, None
    while True:
        observation, reward, terminated, truncated, info = env.step(policy(observation))
        out.messages(info["new_messages"])
        out.line(out.style(_format_step(reward, terminated, truncated), "dim"))
        total += reward
        verdict = info["verdict"]
        if terminated or truncated:
            break
        out.line()
    out.line(out.style(f"final {_format_verdict(verdict)}", "bold"))
    out.line(out.style(f"total reward {total} in {_turns(env)}", "bold"))
    return total


def _cmd_tour(args: argparse.Namespace) -> int:
    out = _Output(sys.stdout)
    out.line(out.style("== registered environments (rlenv list)", "bold"))
    _print_env_table(out)

    out.line()
    out.line(out.style("== rlenv/GuessNumber-v0, seed 0, a binary-search policy", "bold"))
    guess_number = rlenv.make("rlenv/GuessNumber-v0")
    _play_scripted(out, guess_number, seed=0, policy=binary_search_guess)

    out.line()
    out.line(out.style("== rlenv/Arithmetic-v0, seed 0, submitting env.gold_action()", "bold"))
    arithmetic = rlenv.make("rlenv/Arithmetic-v0")
    _play_scripted(out, arithmetic, seed=0, policy=lambda _: arithmetic.gold_action())
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from rlenv.train.demo import run_demo

    overrides: dict[str, Any] = {"out": args.out}
    if args.steps is not None:
        overrides["steps"] = args.steps
    run_demo(**overrides)
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from rlenv.train.config import GRPOConfig

    rlenv.spec(args.env_id)  # an unknown id fails here, before any model loads
    try:
        config = GRPOConfig.from_toml(args.config) if args.config else GRPOConfig()
    except (OSError, ValueError, ValidationError) as error:
        raise CLIError(f"bad training settings: {error}") from None
    fixed = [f"env_id={json.dumps(args.env_id)}"]
    if args.kwarg:
        env_kwargs = {**config.env_kwargs, **parse_kwargs(args.kwarg)}
        fixed.append(f"env_kwargs={json.dumps(env_kwargs)}")
    config = _training_config(config, args, *fixed)
    from rlenv.train.grpo import GRPOTrainer

    trainer = GRPOTrainer(config)
    if args.resume:
        trainer.load_checkpoint(args.resume)
    trainer.train()
    model = trainer.save_model()
    print(f"metrics: {Path(config.out) / 'metrics.jsonl'}\nmodel: {model}")
    return EXIT_OK


def _cmd_train_sft(args: argparse.Namespace) -> int:

    from rlenv.train.sft import SFTConfig

    missing = [path for path in args.data if not Path(path).is_file()]
    if missing:
        raise CLIError(f"no such data file: {', '.join(missing)}")
    config = _training_config(SFTConfig(), args, f"data={json.dumps(args.data)}")
    from rlenv.train.sft import SFTTrainer

    try:
        trainer = SFTTrainer(config)
    except ValueError as error:  # unreadable data: the file and line are in the message
        raise CLIError(str(error)) from None
    if args.resume:
        trainer.load_checkpoint(args.resume)
    trainer.train()
    model = trainer.save_model()
    print(f"metrics: {Path(config.out) / 'metrics.jsonl'}\nmodel: {model}")
    return EXIT_OK


def _cmd_train_dpo(args: argparse.Namespace) -> int:

    from rlenv.train.dpo import DPOConfig

    if not Path(args.data).is_file():
        raise CLIError(f"no such data file: {args.data}")
    config = _training_config(DPOConfig(), args, f"data={json.dumps(args.data)}")
    from rlenv.train.dpo import DPOTrainer, write_dpo_jsonl

    try:
        trainer = DPOTrainer(config)
    except ValueError as error:  # unreadable data, or no pairs in it
        raise CLIError(str(error)) from None
    print(f"{len(trainer.pairs)} preference pairs from {args.data}")
    if args.pairs_out:
        write_dpo_jsonl(trainer.pairs, args.pairs_out)
        print(f"pairs (TRL's DPO format): {args.pairs_out}")
    trainer.train()  # saves model/ at the end
    print(f"metrics: {Path(config.out) / 'metrics.jsonl'}\nmodel: {trainer.out / 'model'}")
    return EXIT_OK


def _cmd_collect(args: argparse.Namespace) -> int:
    from rlenv.rollout import SamplingParams, episodes, write_trajectories
    from rlenv.train.collect import collect, demonstrations

    env_kwargs = parse_kwargs(args.kwarg)
    rlenv.spec(args.env_id)  # an unknown id fails here, before any model loads
    if args.tasks < 1 or args.samples < 1:
        raise CLIError("--tasks and --samples must be at least 1")
    if args.gold and args.base_url:
        raise CLIError("--base-url serves --model; --gold needs no model")
    samples = 1 if args.gold else args.samples  # gold play is deterministic: one per task
    specs = episodes(
        args.env_id, n_tasks=args.tasks, group_size=samples, seed=args.seed, **env_kwargs
    )
    done: list[bool] = []

    def progress(trajectory) -> None:
        from rlenv.evaluation import passed

        done.append(passed(trajectory))
        print(f"\r{len(done)}/{len(specs)} episodes, {sum(done)} passed", end="", file=sys.stderr)

    if args.gold:
        result = demonstrations(specs, on_episode=progress)
        if args.keep == "all":
            result.kept = list(result.sampled)
    else:
        params = SamplingParams(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
        )
        result = collect(
            _policy(args),
            specs,
            keep=args.keep,
            params=params,
            max_batch_size=args.batch_size,
            on_episode=progress,
        )
    print(file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_trajectories(result.kept, out)
    coverage = result.coverage()
    print(f"kept {len(result.kept)} of {len(result.sampled)} episodes ({args.keep})")
    print(f"tasks with a kept episode: {result.tasks_covered} of {len(coverage)}")
    rows = [[str(task), f"{kept}/{total}"] for _, task, kept, total in coverage]
    for line in _format_table(["task", "kept"], rows):
        print(f"  {line}")
    print(f"trajectories: {out}")
    return EXIT_OK


def _policy(args: argparse.Namespace) -> Any:
    """``--model`` served at ``--base-url``, or loaded locally (``rlenv eval``/``collect``)."""
    if args.base_url:
        from rlenv.rollout import OpenAIPolicy

        return OpenAIPolicy(args.base_url, args.model)
    from rlenv.models import load_model
    from rlenv.rollout.transformers import TransformersPolicy

    model, tokenizer = load_model(args.model)
    return TransformersPolicy(model, tokenizer, batch_size=args.batch_size, name=args.model)


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlenv.evaluation import html_report, render_table, summarize
    from rlenv.rollout import SamplingParams, episodes, rollout, write_trajectories

    env_kwargs = parse_kwargs(args.kwarg)
    rlenv.spec(args.env_id)  # an unknown id fails here, before any model loads
    policy = _policy(args)
    specs = episodes(
        args.env_id, n_tasks=args.tasks, group_size=args.samples, seed=args.seed, **env_kwargs
    )
    done: list[float] = []

    def progress(trajectory) -> None:
        done.append(trajectory.reward)
        mean = sum(done) / len(done)
        print(
            f"\r{len(done)}/{len(specs)} episodes, mean reward {mean:.3f}", end="", file=sys.stderr
        )

    params = SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
    )
    trajectories = rollout(
        policy, specs, params=params, max_batch_size=args.batch_size, on_episode=progress
    )
    print(file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_trajectories(trajectories, out / "trajectories.jsonl")
    summary = summarize(trajectories, k=args.samples)
    report = html_report(summary, trajectories, out / "report.html")
    print(render_table(summary))
    print(f"trajectories: {out / 'trajectories.jsonl'}\nreport: {report}")
    _write_plots(summary, trajectories, out)
    return EXIT_OK


def _write_plots(summary, trajectories, out: Path) -> None:
    from rlenv.plots import MissingPlotting, eval_plots

    try:
        paths = eval_plots(summary, trajectories, out)
    except MissingPlotting as error:
        print(f"no PNG plots: {error}", file=sys.stderr)
        return
    print("plots: " + ", ".join(str(path) for path in paths))


def _cmd_view(args: argparse.Namespace) -> int:
    from rlenv.evaluation import html_report, render_table, summarize
    from rlenv.rollout import read_trajectories

    path = Path(args.path)
    if not path.exists():
        raise CLIError(f"no such file: {path}")
    trajectories = list(read_trajectories(path))
    if not trajectories:
        raise CLIError(f"{path} holds no trajectories")
    summary = summarize(trajectories)
    report = html_report(summary, trajectories, args.out or path.with_suffix(".html"))
    print(render_table(summary))
    print(f"report: {report}")
    _write_plots(summary, trajectories, Path(report).parent)
    return EXIT_OK


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
            threads=args.threads,
            client_kwargs=not args.no_client_kwargs,
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


if __name__ == "__main__":
    raise SystemExit(main())
