"""The ``rlenv`` command: list, inspect, play, check and scaffold environments; evaluate and
train models on them; serve them.

::

    rlenv list [--namespace NS]                registered environments
    rlenv info ID [--seed N] [-k key=value]    spec, parameters and a sample task
    rlenv play ID [--seed N] [-k key=value]    type the assistant's turns yourself
    rlenv check ID [ID ...] | --all            the conformance suite, with a readable report
    rlenv new NAME [--multi-turn | --tools]    scaffold an environment package
    rlenv tour                                 a scripted tour of the bundled environments
    rlenv demo                                 GRPO makes SmolLM2 better at arithmetic (CPU)
    rlenv eval ID --model M                    evaluate a model; rlenv view FILE re-renders
    rlenv view A.jsonl [B.jsonl]               a report; two runs side by side
    rlenv train ID --model M [--config F]      train a model with the bundled GRPO trainer
    rlenv collect ID --model M [--samples K]   rejection sampling: keep episodes that passed
    rlenv collect ID --gold                    demonstrations: play env.gold_action()
    rlenv train-sft DATA [DATA ...] --model M  supervised fine-tuning on kept trajectories
    rlenv train-dpo DATA --model M             DPO on verifier-built preference pairs
    rlenv serve ID [ID ...] [--port P]         serve environments over HTTP (rlenv[server])

One module per command group (``envs``, ``interactive`` (play), ``evaluate``, ``train``,
``serve``), each
declaring its flags beside its handlers; what they share (``-k``, output) is in ``_common``.
:func:`main` returns the exit code: 0 on success, 1 when a check (or a scaffold) failed, 2 for
a usage error (unknown environment id, bad argument); such errors print one line, never a
traceback. Only argparse and the core are imported at start, so the command starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import rlenv
from rlenv.cli import envs, evaluate, interactive, serve, train
from rlenv.cli._common import EXIT_USAGE, CLIError
from rlenv.cli.interactive import play
from rlenv.errors import RLEnvError
from rlenv.params import parse_assignments

__all__ = ["CLIError", "build_parser", "main", "parse_kwargs", "play"]

_GROUPS = (envs, interactive, evaluate, train, serve)


def parse_kwargs(pairs: Sequence[str]) -> dict:
    """``-k`` pairs as keyword arguments (see :func:`rlenv.params.parse_assignments`)."""
    return parse_assignments(pairs, flag="-k")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rlenv`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="rlenv",
        description="Reinforcement-learning environments for language models.",
    )
    parser.add_argument("--version", action="version", version=f"rlenv {rlenv.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(commands)
    return parser


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
        return 0
