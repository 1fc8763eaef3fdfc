"""Seven post-training paths on one environment, same sample budget, same held-out split.

SmolLM2-135M-Instruct on the demo's arithmetic environment (``rlenv.train.demo.DEMO_CONFIG``),
on the CPU. Training only ever sees the ``split="train"`` side of the env's content split, and
every path is scored on the ``split="test"`` side: problems no path trained on (one-digit
arithmetic has ~200 distinct problems, so held-out seeds alone would mostly repeat them). Every
path may draw ``--budget`` completions from the model it is training:

- **base**: no training;
- **SFT (rejection sampling)**: ``budget`` samples of the base model (tasks × 8), the ones the
  verifier passed become SFT data (``rlenv collect`` + ``rlenv train-sft``);
- **DPO (verifier pairs)**: the same samples, paired passed-vs-failed per task
  (``rlenv.train.dpo.preference_pairs``), DPO from the base model;
- **GRPO**: ``budget / 32`` GRPO steps of 4 tasks × 8 samples from the base model (the demo's
  settings);
- **SFT → GRPO**: half the budget collected and used for SFT, the other half for GRPO steps
  from the SFT model;
- **SFT (demonstrations)**: no samples at all; SFT on the env's own ``gold_action()`` replies
  for the same tasks the rejection-sampling path sampled (``rlenv collect --gold``);
- **SFT (demonstrations) → GRPO**: SFT on the gold replies of the tasks of half the budget,
  then the other half as GRPO steps.

Each result is accuracy on the held-out split, sampled at T = 1 and greedy, plus the path's
wall-clock time. Writes a Markdown table, ``results.json`` and a bar chart::

    python benchmarks/post_training_paths.py [--budget 1280] [--eval-tasks 100] [--seeds 0,1,2] \\
        [--out /tmp/rlenv-paths] [--plot docs/img/post_training_paths.png] \\
        [--curves docs/img/post_training_curves.png] \\
        [--env-kwargs '{"require_boxed": true}'] [--paths base,grpo,...] \\
        [--sft-set epochs=1] [--grpo-set temperature=1.3]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from rlenv.models import load_model
from rlenv.rollout import SamplingParams, episodes, rollout, write_trajectories
from rlenv.rollout.transformers import TransformersPolicy
from rlenv.train.collect import collect, demonstrations
from rlenv.train.config import held_out_env_kwargs
from rlenv.train.demo import DEMO_CONFIG
from rlenv.train.dpo import DPOConfig, DPOTrainer, load_pairs
from rlenv.train.grpo import TRAIN_SEED_BASE, GRPOTrainer
from rlenv.train.sft import SFTConfig, SFTTrainer

GROUP = 8
ENV_ID, ENV_KWARGS = DEMO_CONFIG.env_id, {**DEMO_CONFIG.env_kwargs, "split": "train"}
DATA_SEED = TRAIN_SEED_BASE + 50_000_000  # SFT/DPO data: training seeds GRPO does not use
SFT_SET: list[str] = []  # --sft-set KEY=VALUE: changes to every SFT run's settings
GRPO_SET: list[str] = []  # --grpo-set KEY=VALUE: changes to every GRPO run's settings
PATHS = {
    "base": "base",
    "sft": "SFT (rejection sampling)",
    "dpo": "DPO (verifier pairs)",
    "grpo": "GRPO",
    "sft-grpo": "SFT → GRPO",
    "demo-sft": "SFT (demonstrations)",
    "demo-sft-grpo": "SFT (demonstrations) → GRPO",
}


def held_out(model: Any, tokenizer: Any, tasks: int) -> dict[str, float]:
    """Accuracy on the held-out split (seeds 0..tasks-1 of ``split="test"``), sampled (T = 1)
    and greedy, as the GRPO trainer evaluates."""
    policy = TransformersPolicy(model, tokenizer, device="cpu", batch_size=64, cast_bf16=False)
    specs = episodes(ENV_ID, n_tasks=tasks, seed=0, **held_out_env_kwargs(ENV_KWARGS))
    results = {}
    for name, temperature in (("sampled", 1.0), ("greedy", 0.0)):
        params = SamplingParams(
            max_new_tokens=DEMO_CONFIG.max_new_tokens, temperature=temperature, seed=7919
        )
        trajectories = rollout(policy, specs, params=params, max_batch_size=64)
        results[name] = sum(t.scored and t.reward >= 1.0 for t in trajectories) / len(trajectories)
    model.train()
    return results


def sample(model: Any, tokenizer: Any, n_samples: int, path: Path, seed: int) -> tuple[int, int]:
    """``n_samples`` completions (tasks × 8) of ``model`` on training seeds, all written to
    ``path``; returns (passed, total)."""
    policy = TransformersPolicy(model, tokenizer, device="cpu", batch_size=64, cast_bf16=False)
    specs = episodes(
        ENV_ID, n_tasks=max(1, n_samples // GROUP), group_size=GROUP, seed=DATA_SEED,
        **ENV_KWARGS,
    )  # fmt: skip
    params = SamplingParams(
        max_new_tokens=DEMO_CONFIG.max_new_tokens, temperature=1.0, seed=1 + seed
    )
    result = collect(policy, specs, keep="all", params=params, max_batch_size=64)
    write_trajectories(result.sampled, path)
    passed = sum(t.scored and t.reward >= 1.0 for t in result.sampled)
    return passed, len(result.sampled)


def gold(n_samples: int, path: Path) -> int:
    """The gold replies of the tasks ``sample`` would sample (one per task, no model), written
    to ``path``; returns how many."""
    specs = episodes(ENV_ID, n_tasks=max(1, n_samples // GROUP), seed=DATA_SEED, **ENV_KWARGS)
    result = demonstrations(specs)
    write_trajectories(result.kept, path)
    return len(result.kept)


def tidy(out: Path) -> None:
    """Remove a finished run's saved model (0.5 GB; the benchmark keeps the model in memory),
    keeping its metrics and config. No run writes its 1.6 GB checkpoint
    (``final_checkpoint=False``): seven paths times the seeds would fill a small disk."""
    shutil.rmtree(out / "model", ignore_errors=True)


def sft(model: Any, tokenizer: Any, data: Path, out: Path, seed: int) -> Any:
    passed = out / "passed.jsonl"
    rows = [json.loads(line) for line in data.open()]
    kept = [row for row in rows if row["reward"] >= 1.0]
    if not kept:  # nothing passed: nothing to imitate
        return model
    passed.parent.mkdir(parents=True, exist_ok=True)
    passed.write_text("".join(json.dumps(row) + "\n" for row in kept))
    config = SFTConfig(
        data=[str(passed)], out=str(out), epochs=2, batch_size=8, micro_batch_size=8,
        learning_rate=1e-5, plots=False, progress=False, device="cpu", seed=seed,
        final_checkpoint=False,
    ).with_overrides(SFT_SET)  # fmt: skip
    trainer = SFTTrainer(config, model, tokenizer)
    trainer.train()
    tidy(out)
    return trainer.model


def dpo(model: Any, tokenizer: Any, data: Path, out: Path, seed: int) -> tuple[Any, int]:
    pairs = load_pairs(data)
    if not pairs:  # no task had both a passed and a failed sample
        return model, 0
    config = DPOConfig(
        data=str(data), out=str(out), epochs=1, batch_size=8, micro_batch_size=4, beta=0.1,
        learning_rate=5e-6, plots=False, progress=False, device="cpu", seed=seed,
        final_checkpoint=False,
    )  # fmt: skip
    trainer = DPOTrainer(config, model, tokenizer, pairs=pairs)
    trainer.train()
    tidy(out)
    return trainer.model, len(pairs)


def grpo(model: Any, tokenizer: Any, steps: int, out: Path, seed: int) -> Any:
    config = DEMO_CONFIG.model_copy(
        update=dict(out=str(out), steps=steps, eval_tasks=0, plots=False, progress=False,
                    device="cpu", env_kwargs=ENV_KWARGS, seed=seed, final_checkpoint=False)
    ).with_overrides(GRPO_SET)  # fmt: skip
    trainer = GRPOTrainer(config, model, tokenizer)
    trainer.train()
    tidy(out)
    return trainer.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=1280, help="completions per path")
    parser.add_argument("--eval-tasks", type=int, default=100)
    parser.add_argument(
        "--seeds", default="0", help="comma-separated training and sampling seeds (0); "
        "with several, the table gives the mean and the range",
    )  # fmt: skip
    parser.add_argument("--out", default="/tmp/rlenv-paths")
    parser.add_argument("--plot", help="write a bar chart of the results to this PNG")
    parser.add_argument(
        "--curves", help="write the GRPO paths' training accuracy per completion to this PNG"
    )
    parser.add_argument(
        "--env-kwargs", default="{}", metavar="JSON",
        help='changes to the demo env\'s kwargs, e.g. \'{"require_boxed": true}\'',
    )  # fmt: skip
    parser.add_argument(
        "--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}"
    )
    for stage in ("sft", "grpo"):
        parser.add_argument(
            f"--{stage}-set", action="append", default=[], metavar="KEY=VALUE",
            help=f"change a setting of every {stage.upper()} run (repeatable), e.g. "
            + ("epochs=1" if stage == "sft" else "temperature=1.3"),
        )  # fmt: skip
    args = parser.parse_args()
    SFT_SET.extend(args.sft_set)
    GRPO_SET.extend(args.grpo_set)
    try:  # a bad setting fails now, not after an hour of other paths
        SFTConfig(data=["-"]).with_overrides(SFT_SET)
        DEMO_CONFIG.with_overrides(GRPO_SET)
    except ValueError as error:
        parser.error(f"bad --sft-set/--grpo-set: {error}")
    chosen = [name.strip() for name in args.paths.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s) {unknown}; choose from {list(PATHS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    ENV_KWARGS.update(json.loads(args.env_kwargs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base, tokenizer = load_model("smollm2-135m")
    stages = (("SFT", SFT_SET), ("GRPO", GRPO_SET))
    changes = "".join(f"; {stage} {' '.join(sets)}" for stage, sets in stages if sets)
    print(
        f"SmolLM2-135M-Instruct, CPU, {ENV_ID} {json.dumps(ENV_KWARGS)}; budget {args.budget} "
        f"completions per path; held-out: {args.eval_tasks} tasks of the test split; "
        f"seeds {seeds}{changes}",
        flush=True,
    )
    runs = [run_paths(chosen, seed, args, base, tokenizer, out / f"seed-{seed}") for seed in seeds]
    results = {
        name: {
            "sampled": [run[name]["sampled"] for run in runs],
            "greedy": [run[name]["greedy"] for run in runs],
            "minutes": sum(run[name]["minutes"] for run in runs) / len(runs),
            "note": " / ".join(dict.fromkeys(run[name]["note"] for run in runs)),
        }
        for name in runs[0]
    }
    for name, row in results.items():
        if "after_sft" in runs[0][name]:
            row["after_sft"] = {
                key: [run[name]["after_sft"][key] for run in runs] for key in ("sampled", "greedy")
            }
            mean = {key: sum(v) / len(v) for key, v in row["after_sft"].items()}
            row["note"] += (
                f"; after the SFT half: {mean['sampled']:.0%} sampled, {mean['greedy']:.0%} greedy"
            )

    def cell(values: list[float]) -> str:
        mean = sum(values) / len(values)
        if len(values) == 1:
            return f"{mean:.0%}"
        return f"{mean:.0%} ({min(values):.0%}–{max(values):.0%})"

    table = [
        "| path | held-out sampled (T = 1) | held-out greedy | minutes | note |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {cell(r['sampled'])} | {cell(r['greedy'])} | {r['minutes']:.1f} | "
            f"{r['note']} |"
            for name, r in results.items()
        ),
    ]
    print("\n" + "\n".join(table))
    (out / "results.json").write_text(
        json.dumps({"env_kwargs": ENV_KWARGS, "budget": args.budget, "seeds": seeds,
                    "eval_tasks": args.eval_tasks, "sft_set": SFT_SET, "grpo_set": GRPO_SET,
                    "results": results}, indent=2)
    )  # fmt: skip
    if args.plot:
        plot(results, args.plot)
    if args.curves:
        curves(out, seeds, args.budget, args.curves)


def run_paths(
    chosen: list[str], seed: int, args: argparse.Namespace, base: Any, tokenizer: Any, out: Path
) -> dict[str, dict[str, Any]]:
    """Every chosen path from ``base`` with one seed: held-out scores, minutes and a note."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    per_step = DEMO_CONFIG.prompts_per_step * DEMO_CONFIG.group_size
    steps, half_steps = max(1, args.budget // per_step), max(1, args.budget // 2 // per_step)
    results: dict[str, dict[str, Any]] = {}

    def record(key: str, model: Any, started: float, note: str = "") -> None:
        name = PATHS[key]
        scores = held_out(model, tokenizer, args.eval_tasks)
        results[name] = {**scores, "minutes": (time.perf_counter() - started) / 60, "note": note}
        print(f"seed {seed}  {name:<30} sampled {scores['sampled']:.0%}  "
              f"greedy {scores['greedy']:.0%}  {results[name]['minutes']:.1f} min  {note}",
              flush=True)  # fmt: skip

    after_sft: dict[str, dict[str, float]] = {}

    def midway(key: str, model: Any) -> float:
        """Score a hybrid between its SFT and GRPO halves; returns the seconds it took (not
        charged to the path)."""
        started = time.perf_counter()
        after_sft[PATHS[key]] = held_out(model, tokenizer, args.eval_tasks)
        return time.perf_counter() - started

    samples, sampled_in = out / "samples.jsonl", 0.0
    if {"sft", "dpo"} & set(chosen):  # both read the same samples; each is charged for them
        started = time.perf_counter()
        passed, total = sample(base, tokenizer, args.budget, samples, seed)
        sampled_in = time.perf_counter() - started
    for key in chosen:
        started = time.perf_counter()
        if key == "base":
            record(key, base, started)
        elif key == "sft":
            model = sft(copy.deepcopy(base), tokenizer, samples, out / "sft", seed)
            record(key, model, started - sampled_in, f"{passed} of {total} samples passed")
        elif key == "dpo":
            model, pairs = dpo(copy.deepcopy(base), tokenizer, samples, out / "dpo", seed)
            record(key, model, started - sampled_in, f"{pairs} pairs")
        elif key == "grpo":
            model = grpo(copy.deepcopy(base), tokenizer, steps, out / "grpo", seed)
            record(key, model, started, f"{steps} steps")
        elif key == "sft-grpo":
            half = out / "half.jsonl"
            passed_half, total_half = sample(base, tokenizer, args.budget // 2, half, seed)
            model = sft(copy.deepcopy(base), tokenizer, half, out / "sft-half", seed)
            started += midway(key, model)
            model = grpo(model, tokenizer, half_steps, out / "sft-grpo", seed)
            note = f"{passed_half} of {total_half} passed, then {half_steps} GRPO steps"
            record(key, model, started, note)
        elif key == "demo-sft":
            demos = gold(args.budget, out / "gold.jsonl")
            model = sft(copy.deepcopy(base), tokenizer, out / "gold.jsonl", out / "demo-sft", seed)
            record(key, model, started, f"{demos} gold replies, no samples")
        elif key == "demo-sft-grpo":
            demos = gold(args.budget // 2, out / "gold-half.jsonl")
            model = sft(copy.deepcopy(base), tokenizer, out / "gold-half.jsonl",
                        out / "demo-sft-half", seed)  # fmt: skip
            started += midway(key, model)
            model = grpo(model, tokenizer, half_steps, out / "demo-sft-grpo", seed)
            record(key, model, started, f"{demos} gold replies, then {half_steps} GRPO steps")
    for name, scores in after_sft.items():
        results[name]["after_sft"] = scores
    return results


def plot(results: dict[str, dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    names = list(results)
    figure, axes = pyplot.subplots(figsize=(10, 3.8), dpi=100)
    width = 0.38
    for offset, key in ((-width / 2, "sampled"), (width / 2, "greedy")):
        values = [results[n][key] for n in names]
        means = [sum(v) / len(v) for v in values]
        spread = [[m - min(v) for m, v in zip(means, values, strict=True)],
                  [max(v) - m for m, v in zip(means, values, strict=True)]]  # fmt: skip
        several = any(len(v) > 1 for v in values)
        axes.bar([i + offset for i in range(len(names))], means, width,
                 yerr=spread if several else None, capsize=3, label=f"held-out {key}")  # fmt: skip
    labels = [name.replace(" (", "\n(").replace(" → ", "\n→ ") for name in names]
    axes.set_xticks(range(len(names)), labels, fontsize=7)
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    print(f"plot: {path}")


def curves(out: Path, seeds: list[int], budget: int, path: str, window: int = 5) -> None:
    """Training accuracy of the GRPO steps of each GRPO path against the completions the path
    has used (the hybrids start at ``budget / 2``, the half spent on SFT data), averaged over
    seeds and smoothed over ``window`` steps: does warm-starting reach higher reward sooner?"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    per_step = DEMO_CONFIG.prompts_per_step * DEMO_CONFIG.group_size
    figure, axes = pyplot.subplots(figsize=(7, 3.6), dpi=100)
    for folder, key, start in (("grpo", "grpo", 0), ("sft-grpo", "sft-grpo", budget // 2),
                               ("demo-sft-grpo", "demo-sft-grpo", budget // 2)):  # fmt: skip
        runs = []
        for seed in seeds:
            metrics = out / f"seed-{seed}" / folder / "metrics.jsonl"
            if metrics.exists():
                runs.append([json.loads(line)["accuracy"] for line in metrics.open()])
        if not runs:
            continue
        steps = min(len(run) for run in runs)
        mean = [sum(run[i] for run in runs) / len(runs) for i in range(steps)]
        smooth = [
            sum(mean[max(0, i - window + 1) : i + 1]) / len(mean[max(0, i - window + 1) : i + 1])
            for i in range(steps)
        ]
        x = [start + (i + 1) * per_step for i in range(steps)]
        axes.plot(x, smooth, marker="." if steps < 5 else None, label=PATHS[key])
    axes.set_xlabel("completions used (SFT data counted for the hybrids)")
    axes.set_ylabel(f"training accuracy ({window}-step mean)")
    axes.set_xlim(0, budget)
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    print(f"curves: {path}")


if __name__ == "__main__":
    main()
