"""Five post-training paths on one environment, same sample budget, same held-out split.

SmolLM2-135M-Instruct on the demo's arithmetic environment (``rlenv.train.demo.DEMO_CONFIG``),
on the CPU. Every path may draw ``--budget`` completions from the model it is training:

- **base**: no training;
- **SFT (rejection sampling)**: ``budget`` samples of the base model (tasks × 8), the ones the
  verifier passed become SFT data (``rlenv collect`` + ``rlenv train-sft``);
- **DPO (verifier pairs)**: the same samples, paired passed-vs-failed per task
  (``rlenv.train.dpo.preference_pairs``), DPO from the base model;
- **GRPO**: ``budget / 32`` GRPO steps of 4 tasks × 8 samples from the base model (the demo's
  settings);
- **SFT → GRPO**: half the budget collected and used for SFT, the other half for GRPO steps
  from the SFT model.

Each result is held-out accuracy on env seeds 0..N-1 (never trained on), sampled at T = 1 and
greedy, plus the path's wall-clock time. Writes a Markdown table and a bar chart::

    python benchmarks/post_training_paths.py [--budget 1280] [--eval-tasks 100] \\
        [--out /tmp/rlenv-paths] [--plot docs/img/post_training_paths.png] \\
        [--env-kwargs '{"require_boxed": true}']
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch

from rlenv.models import load_model
from rlenv.rollout import SamplingParams, episodes, rollout, write_trajectories
from rlenv.rollout.transformers import TransformersPolicy
from rlenv.train.collect import collect
from rlenv.train.demo import DEMO_CONFIG
from rlenv.train.dpo import DPOConfig, DPOTrainer, load_pairs
from rlenv.train.grpo import TRAIN_SEED_BASE, GRPOTrainer
from rlenv.train.sft import SFTConfig, SFTTrainer

GROUP = 8
ENV_ID, ENV_KWARGS = DEMO_CONFIG.env_id, dict(DEMO_CONFIG.env_kwargs)


def held_out(model: Any, tokenizer: Any, tasks: int) -> dict[str, float]:
    """Accuracy on env seeds 0..tasks-1, sampled (T = 1) and greedy, as the GRPO trainer
    evaluates."""
    policy = TransformersPolicy(model, tokenizer, device="cpu", batch_size=64, cast_bf16=False)
    specs = episodes(ENV_ID, n_tasks=tasks, seed=0, **ENV_KWARGS)
    results = {}
    for name, temperature in (("sampled", 1.0), ("greedy", 0.0)):
        params = SamplingParams(
            max_new_tokens=DEMO_CONFIG.max_new_tokens, temperature=temperature, seed=7919
        )
        trajectories = rollout(policy, specs, params=params, max_batch_size=64)
        results[name] = sum(t.scored and t.reward >= 1.0 for t in trajectories) / len(trajectories)
    model.train()
    return results


def sample(model: Any, tokenizer: Any, n_samples: int, path: Path) -> tuple[int, int]:
    """``n_samples`` completions (tasks × 8) of ``model`` on training seeds, all written to
    ``path``; returns (passed, total)."""
    policy = TransformersPolicy(model, tokenizer, device="cpu", batch_size=64, cast_bf16=False)
    specs = episodes(
        ENV_ID, n_tasks=max(1, n_samples // GROUP), group_size=GROUP,
        seed=TRAIN_SEED_BASE + 50_000_000, **ENV_KWARGS,
    )  # fmt: skip
    params = SamplingParams(max_new_tokens=DEMO_CONFIG.max_new_tokens, temperature=1.0, seed=1)
    result = collect(policy, specs, keep="all", params=params, max_batch_size=64)
    write_trajectories(result.sampled, path)
    passed = sum(t.scored and t.reward >= 1.0 for t in result.sampled)
    return passed, len(result.sampled)


def sft(model: Any, tokenizer: Any, data: Path, out: Path) -> Any:
    passed = out / "passed.jsonl"
    rows = [json.loads(line) for line in data.open()]
    kept = [row for row in rows if row["reward"] >= 1.0]
    if not kept:  # nothing passed: nothing to imitate
        return model
    passed.parent.mkdir(parents=True, exist_ok=True)
    passed.write_text("".join(json.dumps(row) + "\n" for row in kept))
    config = SFTConfig(
        data=[str(passed)], out=str(out), epochs=2, batch_size=8, micro_batch_size=8,
        learning_rate=1e-5, plots=False, progress=False, device="cpu",
    )  # fmt: skip
    trainer = SFTTrainer(config, model, tokenizer)
    trainer.train()
    return trainer.model


def dpo(model: Any, tokenizer: Any, data: Path, out: Path) -> tuple[Any, int]:
    pairs = load_pairs(data)
    if not pairs:  # no task had both a passed and a failed sample
        return model, 0
    config = DPOConfig(
        data=str(data), out=str(out), epochs=1, batch_size=8, micro_batch_size=4, beta=0.1,
        learning_rate=5e-6, plots=False, progress=False, device="cpu",
    )  # fmt: skip
    trainer = DPOTrainer(config, model, tokenizer, pairs=pairs)
    trainer.train()
    return trainer.model, len(pairs)


def grpo(model: Any, tokenizer: Any, steps: int, out: Path) -> Any:
    config = DEMO_CONFIG.model_copy(
        update=dict(out=str(out), steps=steps, eval_tasks=0, plots=False, progress=False,
                    device="cpu", env_kwargs=ENV_KWARGS)
    )  # fmt: skip
    trainer = GRPOTrainer(config, model, tokenizer)
    trainer.train()
    return trainer.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=1280, help="completions per path")
    parser.add_argument("--eval-tasks", type=int, default=100)
    parser.add_argument("--out", default="/tmp/rlenv-paths")
    parser.add_argument("--plot", help="write a bar chart of the results to this PNG")
    parser.add_argument(
        "--env-kwargs", default="{}", metavar="JSON",
        help='changes to the demo env\'s kwargs, e.g. \'{"require_boxed": true}\'',
    )  # fmt: skip
    args = parser.parse_args()
    ENV_KWARGS.update(json.loads(args.env_kwargs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    base, tokenizer = load_model("smollm2-135m")
    per_step = DEMO_CONFIG.prompts_per_step * DEMO_CONFIG.group_size
    print(
        f"SmolLM2-135M-Instruct, CPU, {ENV_ID} {json.dumps(ENV_KWARGS)}; budget {args.budget} "
        f"completions per path; held-out: {args.eval_tasks} tasks",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}

    def record(name: str, model: Any, started: float, note: str = "") -> None:
        scores = held_out(model, tokenizer, args.eval_tasks)
        results[name] = {**scores, "minutes": (time.perf_counter() - started) / 60, "note": note}
        print(f"{name:<28} sampled {scores['sampled']:.0%}  greedy {scores['greedy']:.0%}  "
              f"{results[name]['minutes']:.1f} min  {note}", flush=True)  # fmt: skip

    started = time.perf_counter()
    record("base", base, started)

    started = time.perf_counter()
    samples = out / "samples.jsonl"
    passed, total = sample(base, tokenizer, args.budget, samples)
    sampling_minutes = (time.perf_counter() - started) / 60
    model = sft(copy.deepcopy(base), tokenizer, samples, out / "sft")
    record("SFT (rejection sampling)", model, started, f"{passed} of {total} samples passed")

    started = time.perf_counter() - sampling_minutes * 60  # the same samples, counted again
    model, pairs = dpo(copy.deepcopy(base), tokenizer, samples, out / "dpo")
    record("DPO (verifier pairs)", model, started, f"{pairs} pairs")

    started = time.perf_counter()
    steps = max(1, args.budget // per_step)
    model = grpo(copy.deepcopy(base), tokenizer, steps, out / "grpo")
    record("GRPO", model, started, f"{steps} steps")

    started = time.perf_counter()
    half = out / "half.jsonl"
    passed, total = sample(base, tokenizer, args.budget // 2, half)
    model = sft(copy.deepcopy(base), tokenizer, half, out / "sft-half")
    steps = max(1, args.budget // 2 // per_step)
    model = grpo(model, tokenizer, steps, out / "sft-grpo")
    record("SFT → GRPO", model, started, f"{passed}/{total} passed, then {steps} GRPO steps")

    table = [
        "| path | held-out sampled (T = 1) | held-out greedy | minutes | note |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['sampled']:.0%} | {r['greedy']:.0%} | {r['minutes']:.1f} | "
            f"{r['note']} |"
            for name, r in results.items()
        ),
    ]
    print("\n" + "\n".join(table))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, args.plot)


def plot(results: dict[str, dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    names = list(results)
    figure, axes = pyplot.subplots(figsize=(8, 3.6), dpi=100)
    width = 0.38
    for offset, key in ((-width / 2, "sampled"), (width / 2, "greedy")):
        axes.bar([i + offset for i in range(len(names))], [results[n][key] for n in names],
                 width, label=f"held-out {key}")  # fmt: skip
    axes.set_xticks(range(len(names)), names, fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
