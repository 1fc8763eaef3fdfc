"""``rlenv eval``, ``view`` and ``collect``: models on environments, reports, kept episodes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rlenv.cli._common import (
    EXIT_OK,
    CLIError,
    add_env_id,
    add_env_kwargs,
    check_env_kwargs,
    env_kwargs,
    format_table,
)


def register(commands: Any) -> None:
    evaluate = commands.add_parser("eval", help="evaluate a model on an environment")
    add_env_id(evaluate)
    evaluate.add_argument(
        "--model", required=True, help="smollm2-135m, a local path, or a model name"
    )
    _add_sampling_arguments(evaluate, temperature=0.0, samples=1)
    evaluate.add_argument("--out", default="rlenv-eval", help="output directory (rlenv-eval)")
    add_env_kwargs(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)

    view = commands.add_parser(
        "view", help="summarise saved trajectories and write a report (two files: side by side)"
    )
    view.add_argument(
        "paths", nargs="+", metavar="FILE", help="trajectories .jsonl (two: before and after)"
    )
    view.add_argument("--out", help="the HTML report (default: next to the first file)")
    view.set_defaults(handler=_cmd_view)

    collect = commands.add_parser(
        "collect", help="rejection sampling: sample episodes, keep those a verifier passed"
    )
    add_env_id(collect)
    source = collect.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="smollm2-135m, a local path, or a model name")
    source.add_argument(
        "--gold", action="store_true",
        help="no model: play each task with env.gold_action() (demonstrations for SFT)",
    )  # fmt: skip
    _add_sampling_arguments(collect, temperature=1.0, samples=4)
    collect.add_argument(
        "--keep", choices=["passed", "all"], default="passed", help="which episodes (passed)"
    )
    collect.add_argument(
        "--out", default="rlenv-collect.jsonl", help="trajectories file (rlenv-collect.jsonl)"
    )
    add_env_kwargs(collect)
    collect.set_defaults(handler=_cmd_collect)


def _add_sampling_arguments(
    parser: argparse.ArgumentParser, *, temperature: float, samples: int
) -> None:
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint serving --model")
    parser.add_argument("-n", "--tasks", type=int, default=20, help="tasks (20)")
    parser.add_argument(
        "--samples", type=int, default=samples, help=f"samples per task, k ({samples})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first task (0)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument(
        "--temperature", type=float, default=temperature, help=f"0 = greedy ({temperature:g})"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--backend", choices=["loop", "hf", "hf-batch", "vllm"], default="loop",
        help="what generates with a local --model: rlenv's decoding loop (default), "
        "model.generate, transformers' continuous batching, or a vLLM engine (GPU machines)",
    )  # fmt: skip


def _policy(args: argparse.Namespace) -> Any:
    """``--model`` served at ``--base-url``, or loaded locally by ``--backend``."""
    if args.base_url:
        if args.backend != "loop":
            raise CLIError("--backend picks what generates with a local model; --base-url's "
                           "server does the generating: drop one of them")  # fmt: skip
        from rlenv.rollout import OpenAIPolicy

        return OpenAIPolicy(args.base_url, args.model)
    if args.backend == "vllm":
        import transformers

        from rlenv.models import model_source
        from rlenv.rollout.vllm import VLLMPolicy, import_vllm

        import_vllm()  # before loading anything: without vLLM, say so at once
        source = model_source(args.model)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        return VLLMPolicy(source, tokenizer, name=args.model)
    from rlenv.models import load_model
    from rlenv.rollout.transformers import TransformersPolicy

    model, tokenizer = load_model(args.model)
    return TransformersPolicy(
        model, tokenizer, batch_size=args.batch_size, name=args.model, decoder=args.backend
    )


def _sampling_params(args: argparse.Namespace) -> Any:
    from rlenv.rollout import SamplingParams

    return SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
    )


def _episode_specs(args: argparse.Namespace, samples: int) -> list[Any]:
    """The episodes to run, after every check that needs no model (id, ``-k``, counts)."""
    from rlenv.rollout import episodes

    kwargs = env_kwargs(args)
    check_env_kwargs(args.env_id, kwargs)
    if args.tasks < 1 or args.samples < 1:
        raise CLIError("--tasks and --samples must be at least 1")
    return episodes(args.env_id, n_tasks=args.tasks, group_size=samples, seed=args.seed, **kwargs)


def _print_provenance(args: argparse.Namespace) -> None:
    """What data the environment poses (a dataset's source, revision, or a sample), when it
    says: ``env.provenance`` after its tasks are loaded."""
    import json

    import rlenv

    env = rlenv.make(args.env_id, **env_kwargs(args))
    try:
        provenance = getattr(env.unwrapped, "provenance", None)
        if provenance:
            print(f"provenance: {json.dumps(provenance, default=str)}")
            if provenance.get("warning"):
                print(f"WARNING: {provenance['warning']}", file=sys.stderr)
    finally:
        env.close()


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlenv.evaluation import html_report, render_table, summarize
    from rlenv.rollout import rollout, write_trajectories

    specs = _episode_specs(args, args.samples)
    _print_provenance(args)
    policy = _policy(args)
    done: list[float] = []

    def progress(trajectory) -> None:
        done.append(trajectory.reward)
        mean = sum(done) / len(done)
        print(
            f"\r{len(done)}/{len(specs)} episodes, mean reward {mean:.3f}", end="", file=sys.stderr
        )

    trajectories = rollout(
        policy,
        specs,
        params=_sampling_params(args),
        max_batch_size=args.batch_size,
        on_episode=progress,
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


def _write_plots(summary: Any, trajectories: Any, out: Path) -> None:
    from rlenv.plots import MissingPlotting, eval_plots

    try:
        paths = eval_plots(summary, trajectories, out)
    except MissingPlotting as error:
        print(f"no PNG plots: {error}", file=sys.stderr)
        return
    print("plots: " + ", ".join(str(path) for path in paths))


def _cmd_view(args: argparse.Namespace) -> int:
    from rlenv.evaluation import render_table, summarize
    from rlenv.report import default_report_path, html_report_compare, load_runs

    runs = load_runs(args.paths)  # a missing, empty or metrics file: one clear line
    report = html_report_compare(runs, args.out or default_report_path(args.paths))
    summaries = [summarize(trajectories) for _, trajectories in runs]
    for (label, _), summary in zip(runs, summaries, strict=True):
        if len(runs) > 1:
            print(f"== {label}")
        print(render_table(summary))
    print(f"report: {report}")
    if len(runs) == 1:
        _write_plots(summaries[0], runs[0][1], Path(report).parent)
    return EXIT_OK


def _cmd_collect(args: argparse.Namespace) -> int:
    from rlenv.rollout import write_trajectories
    from rlenv.train.collect import collect, demonstrations

    if args.gold and args.base_url:
        raise CLIError("--base-url serves --model; --gold needs no model")
    samples = 1 if args.gold else args.samples  # gold play is deterministic: one per task
    specs = _episode_specs(args, samples)
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
        result = collect(
            _policy(args),
            specs,
            keep=args.keep,
            params=_sampling_params(args),
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
    for line in format_table(["task", "kept"], rows):
        print(f"  {line}")
    print(f"trajectories: {out}")
    return EXIT_OK
