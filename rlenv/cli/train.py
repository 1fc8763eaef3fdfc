"""``rlenv train``, ``train-sft``, ``train-dpo`` and ``demo``: the bundled trainers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, get_args

from rlenv.cli._common import (
    EXIT_OK,
    CLIError,
    add_env_id,
    add_env_kwargs,
    check_env_kwargs,
    env_kwargs,
)


def register(commands: Any) -> None:
    train = commands.add_parser("train", help="train a model on an environment with GRPO")
    add_env_id(train)
    train.add_argument("--config", help="a TOML file of GRPOConfig settings")
    _add_training_arguments(train, "GRPOConfig", "rlenv-train", example="learning_rate=1e-5")
    _add_parse_error(train)
    add_env_kwargs(train)
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
    _add_parse_error(dpo)
    dpo.add_argument("--pairs-out", help="also write the pairs in TRL's DPO format (JSONL)")
    dpo.set_defaults(handler=_cmd_train_dpo)

    demo = commands.add_parser(
        "demo", help="evaluate SmolLM2, train it with GRPO on arithmetic (CPU), evaluate again"
    )
    demo.add_argument("--steps", type=int, help="GRPO steps (default: the demo's 40)")
    demo.add_argument("--out", default="rlenv-demo", help="output directory (rlenv-demo)")
    demo.set_defaults(handler=_cmd_demo)


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
        parser.add_argument(
            "--resume", metavar="CHECKPOINT",
            help="a checkpoint.pt to resume from (a run under torchrun: its checkpoint folder)",
        )  # fmt: skip
        parser.add_argument(
            "--force-resume", action="store_true",
            help="resume even though settings other than steps, output, logging and batch "
            "splitting changed (refused otherwise)",
        )  # fmt: skip


def _add_parse_error(parser: argparse.ArgumentParser) -> None:
    from rlenv.train.config import ParseErrorPolicy

    parser.add_argument(
        "--parse-error", choices=list(get_args(ParseErrorPolicy)), dest="parse_error",
        help="episodes with a malformed tool call: keep them (default), mask them out of the "
        "loss (a parser gap), or zero their reward (teach the format; --set "
        "parse_error_reward=R for another value)",
    )  # fmt: skip


def _training_config(config: Any, args: argparse.Namespace, **fixed: Any) -> Any:
    """``config`` with ``fixed`` settings, then ``--set``, then the --model/--steps/--epochs/
    --out/--parse-error flags applied (later wins); a bad setting is a usage error."""
    from pydantic import ValidationError

    settings = [f"{name}={json.dumps(value)}" for name, value in fixed.items()]
    settings += args.settings
    for name in ("model", "out", "steps", "epochs", "parse_error"):
        if getattr(args, name, None) is not None:
            settings.append(f"{name}={json.dumps(getattr(args, name))}")
    try:
        return config.with_overrides(settings)
    except (ValueError, ValidationError) as error:
        raise CLIError(f"bad training settings: {error}") from None


def _run(trainer: Any, args: argparse.Namespace, *, saves_model: bool = False) -> int:
    """Resume if asked, train, save the model (unless ``train()`` already does) and say where
    everything went."""
    if getattr(args, "resume", None):
        trainer.load_checkpoint(args.resume, force=args.force_resume)
    trainer.train()
    model = trainer.out / "model" if saves_model else trainer.save_model()
    if trainer.dist.is_main:  # under torchrun, every rank gets here
        print(f"metrics: {trainer.out / 'metrics.jsonl'}\nmodel: {model}")
    trainer.dist.close()
    return EXIT_OK


def _data_files(paths: list[str]) -> None:
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise CLIError(f"no such data file: {', '.join(missing)}")


def _cmd_train(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from rlenv.train.config import GRPOConfig

    try:
        config = GRPOConfig.from_toml(args.config) if args.config else GRPOConfig()
    except (OSError, ValueError, ValidationError) as error:
        raise CLIError(f"bad training settings: {error}") from None
    fixed: dict[str, Any] = {"env_id": args.env_id}
    if args.kwargs:
        fixed["env_kwargs"] = {**config.env_kwargs, **env_kwargs(args)}
    config = _training_config(config, args, **fixed)
    check_env_kwargs(config.env_id, config.env_kwargs)  # before any model loads
    from rlenv.train.grpo import GRPOTrainer

    return _run(GRPOTrainer(config), args)


def _cmd_train_sft(args: argparse.Namespace) -> int:
    from rlenv.train.sft import SFTConfig, SFTTrainer

    _data_files(args.data)
    config = _training_config(SFTConfig(), args, data=args.data)
    try:
        trainer = SFTTrainer(config)
    except ValueError as error:  # unreadable data: the file and line are in the message
        raise CLIError(str(error)) from None
    return _run(trainer, args)


def _cmd_train_dpo(args: argparse.Namespace) -> int:
    from rlenv.train.dpo import DPOConfig, DPOTrainer, write_dpo_jsonl

    _data_files([args.data])
    config = _training_config(DPOConfig(), args, data=args.data)
    try:
        trainer = DPOTrainer(config)
    except ValueError as error:  # unreadable data, or no pairs in it
        raise CLIError(str(error)) from None
    print(f"{len(trainer.pairs)} preference pairs from {args.data}")
    if args.pairs_out:
        write_dpo_jsonl(trainer.pairs, args.pairs_out)
        print(f"pairs (TRL's DPO format): {args.pairs_out}")
    return _run(trainer, args, saves_model=True)  # DPO's train() saves model/ itself


def _cmd_demo(args: argparse.Namespace) -> int:
    from rlenv.train.demo import run_demo

    overrides: dict[str, Any] = {"out": args.out}
    if args.steps is not None:
        overrides["steps"] = args.steps
    run_demo(**overrides)
    return EXIT_OK
