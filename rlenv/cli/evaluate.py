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
    _add_resume_arguments(evaluate)
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
    _add_resume_arguments(collect)
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


def _add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true",
        help="finish the run in --out (killed or stopped): play only the episodes it lacks, "
        "with the seeds an unbroken run gives them; the settings must be the same",
    )  # fmt: skip
    again.add_argument("--force", action="store_true", help="overwrite an existing --out")


def _episode_log(args: argparse.Namespace, path: Path, specs: list[Any], **extra: Any) -> Any:
    """The run's crash-safe trajectories file (:class:`rlenv.episode_log.EpisodeLog`), with
    the settings a ``--resume`` must repeat; opened before any model loads."""
    from rlenv.episode_log import EpisodeLog

    settings = {
        "command": args.command,
        "env_id": args.env_id,
        "env_kwargs": env_kwargs(args),
        "model": args.model,
        "tasks": args.tasks,
        "samples": args.samples,
        "seed": args.seed,
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "backend": args.backend,
        **extra,
    }
    log = EpisodeLog(path, settings, specs, resume=args.resume, force=args.force)
    for note in log.notes:
        print(note, file=sys.stderr)
    if args.resume and log.played:
        print(f"resuming: {log.played} of {len(specs)} episodes already played, "
              f"{len(log.remaining)} to go", file=sys.stderr)  # fmt: skip
    return log


def _play(log: Any, args: argparse.Namespace, *, keep: Any, on_episode: Any) -> None:
    """Play the log's remaining episodes with ``--model`` and record each as it ends."""
    from rlenv.rollout import rollout

    remaining = log.remaining
    if not remaining:
        return

    def record(trajectory: Any) -> None:
        log.record(trajectory, keep=keep(trajectory))
        on_episode(trajectory)

    rollout(
        _policy(args),
        [spec for _, spec in remaining],
        params=_sampling_params(args),
        max_batch_size=args.batch_size,
        on_episode=record,
        positions=[position for position, _ in remaining],
    )


def _interrupted(log: Any) -> None:
    log.close()
    print(f"\nstopped: {log.played} of {len(log.specs)} episodes are in {log.path}; "
          "add --resume to the same command to finish", file=sys.stderr)  # fmt: skip


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

    specs = _episode_specs(args, args.samples)
    out = Path(args.out)
    log = _episode_log(args, out / "trajectories.jsonl", specs)
    _print_provenance(args)
    done: list[float] = []

    def progress(trajectory) -> None:
        done.append(trajectory.reward)
        mean = sum(done) / len(done)
        print(f"\r{log.played}/{len(specs)} episodes, mean reward of this run's {mean:.3f}",
              end="", file=sys.stderr)  # fmt: skip

    try:
        _play(log, args, keep=lambda _: True, on_episode=progress)
    except BaseException:
        _interrupted(log)
        raise
    print(file=sys.stderr)
    trajectories = log.finish()
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
    from rlenv.evaluation import passed
    from rlenv.train.collect import demonstrations

    if args.gold and args.base_url:
        raise CLIError("--base-url serves --model; --gold needs no model")
    samples = 1 if args.gold else args.samples  # gold play is deterministic: one per task
    specs = _episode_specs(args, samples)
    out = Path(args.out)
    log = _episode_log(args, out, specs, keep=args.keep, gold=args.gold)
    done: list[bool] = []

    def keep(trajectory) -> bool:
        return args.keep == "all" or passed(trajectory)

    def progress(trajectory) -> None:
        done.append(passed(trajectory))
        print(f"\r{log.played}/{len(specs)} episodes, {sum(done)} passed in this run", end="",
              file=sys.stderr)  # fmt: skip

    try:
        if args.gold:
            demonstrations(
                [spec for _, spec in log.remaining],
                on_episode=lambda t: (log.record(t, keep=keep(t)), progress(t)),
            )
        else:
            _play(log, args, keep=keep, on_episode=progress)
    except BaseException:
        _interrupted(log)
        raise
    print(file=sys.stderr)
    kept = log.finish()
    coverage: dict[tuple[str, str | None], list[int]] = {}
    for env_id, task, was_kept in log.played_tasks():
        row = coverage.setdefault((env_id, task), [0, 0])
        row[0] += was_kept
        row[1] += 1
    print(f"kept {len(kept)} of {log.played} episodes ({args.keep})")
    covered = sum(kept_count > 0 for kept_count, _ in coverage.values())
    print(f"tasks with a kept episode: {covered} of {len(coverage)}")
    rows = [[str(task), f"{n}/{total}"] for (_, task), (n, total) in coverage.items()]
    for line in format_table(["task", "kept"], rows):
        print(f"  {line}")
    print(f"trajectories: {out}")
    return EXIT_OK
