"""rlenv's GRPO trainer against TRL's ``GRPOTrainer``, side by side in one run.

Same model (SmolLM2-135M-Instruct, from ``rlenv.models``), same environment reward (the demo's
arithmetic env, scored by its verifier), same prompts in the same order (the tasks rlenv's
trainer draws, handed to TRL as an unshuffled dataset), same settings: 16 completions per step
as 2 prompts × 8, at most 48 new tokens, temperature 1, learning rate, constant schedule,
AdamW betas (0.9, 0.99), gradient clipping 1.0, β = 0, μ = 1, token-level (DAPO) loss, clip
ε 0.2 / 0.28, group std scaling, truncated completions kept. Both on the CPU, both in the same
precision (``--precision``: fp32, or bf16 autocast for both; TRL's own default is bf16).

Reported: seconds per step of each (mean, and the median that ignores warm-up), the ratio, and
each trainer's reward per step. TRL is a benchmark-only dependency (``pip install trl``)::

    python benchmarks/grpo_vs_trl.py [--steps 8] [--precision fp32|bf16|both] [--plot out.png]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from rlenv import EnvPool, TaskHandle, score
from rlenv.models import load_model
from rlenv.pool import pose_tasks
from rlenv.train import GRPOConfig
from rlenv.train.demo import DEMO_CONFIG
from rlenv.train.grpo import TRAIN_SEED_BASE, GRPOTrainer

PROMPTS, GROUP, MAX_TOKENS, LR = 2, 8, 48, 1e-5


def ours(steps: int, precision: str, out: str) -> dict[str, Any]:
    model, tokenizer = load_model("smollm2-135m")
    config = DEMO_CONFIG.model_copy(
        update=dict(
            out=out, steps=steps, prompts_per_step=PROMPTS, group_size=GROUP,
            max_new_tokens=MAX_TOKENS, learning_rate=LR, warmup_steps=0, truncation="none",
            eval_tasks=0, plots=False, progress=False, precision=precision, device="cpu",
            adam_betas=(0.9, 0.99), epsilon_low=0.2, epsilon_high=0.28, scale_rewards=True,
            loss_aggregation="token", beta=0.0, updates_per_batch=1, micro_batch_size=16,
        )
    )  # fmt: skip
    config = GRPOConfig.model_validate(config.model_dump())
    trainer = GRPOTrainer(config, model, tokenizer)
    seconds, rewards = [], []
    for _ in range(steps):
        started = time.perf_counter()
        metrics = trainer.train_step()
        seconds.append(time.perf_counter() - started)
        rewards.append(metrics["reward_mean"])
    return {"seconds": seconds, "rewards": rewards}


def trl_run(steps: int, precision: str, out: str) -> dict[str, Any]:
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer as TRLTrainer

    kwargs = DEMO_CONFIG.env_kwargs
    pool = EnvPool()
    rows = []
    for step in range(steps):  # exactly the tasks rlenv's trainer draws at each step
        first = TRAIN_SEED_BASE + step * DEMO_CONFIG.max_sampling_rounds * PROMPTS
        for task in pose_tasks(pool, DEMO_CONFIG.env_id, kwargs, n_tasks=PROMPTS, seed=first):
            rows.append({"prompt": task.observation, "task_tag": task.handle.to_tag()})
    dataset = Dataset.from_list(rows)

    def env_reward(prompts, completions, task_tag, **_: Any) -> list[float]:
        return [
            score(pool, TaskHandle.from_tag(tag), completion[-1]["content"]).reward
            for completion, tag in zip(completions, task_tag, strict=True)
        ]

    model, tokenizer = load_model("smollm2-135m")
    args = TRLConfig(
        output_dir=out, use_cpu=True, bf16=precision == "bf16", fp16=False,
        per_device_train_batch_size=PROMPTS * GROUP, gradient_accumulation_steps=1,
        num_generations=GROUP, max_completion_length=MAX_TOKENS, temperature=1.0,
        learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, adam_beta1=0.9,
        adam_beta2=0.99, weight_decay=0.0, max_grad_norm=1.0, beta=0.0, num_iterations=1,
        loss_type="dapo", epsilon=0.2, epsilon_high=0.28, scale_rewards="group",
        mask_truncated_completions=False, shuffle_dataset=False, max_steps=steps,
        logging_steps=1, save_strategy="no", report_to=[], seed=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = TRLTrainer(
        model=model, reward_funcs=env_reward, args=args, train_dataset=dataset,
        processing_class=tokenizer,
    )  # fmt: skip
    marks: list[float] = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            marks.append(time.perf_counter())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            marks.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.train()
    seconds = [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)]
    rewards = [row["reward"] for row in trainer.state.log_history if "reward" in row]
    return {"seconds": seconds, "rewards": rewards}


def report(name: str, precision: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n== {name}, precision {precision}")
    print(f"{'trainer':<10}{'mean s/step':>12}{'median':>9}{'ratio':>8}   reward per step")
    base = statistics.median(results["trl"]["seconds"])
    for key in ("trl", "rlenv"):
        seconds = results[key]["seconds"]
        median = statistics.median(seconds)
        rewards = " ".join(f"{r:.2f}" for r in results[key]["rewards"])
        print(
            f"{key:<10}{statistics.mean(seconds):>12.1f}{median:>9.1f}{median / base:>7.2f}x"
            f"   {rewards}"
        )
    for key in ("trl", "rlenv"):
        rewards = results[key]["rewards"]
        print(f"{key} mean reward over the run: {statistics.mean(rewards):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--out", default="/tmp/rlenv-grpo-bench")
    parser.add_argument("--plot", help="write the reward curves (and s/step) to this PNG")
    args = parser.parse_args()
    print(
        f"SmolLM2-135M-Instruct, CPU, {torch.get_num_threads()} threads, {PROMPTS} prompts x "
        f"{GROUP} completions, <= {MAX_TOKENS} new tokens, lr {LR}, beta 0, mu 1, {args.steps} "
        "steps each"
    )
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    runs = {}
    for precision in precisions:
        results = {
            "trl": trl_run(args.steps, precision, f"{args.out}/trl-{precision}"),
            "rlenv": ours(args.steps, precision, f"{args.out}/rlenv-{precision}"),
        }
        report("TRL GRPOTrainer vs rlenv GRPOTrainer", precision, results)
        runs[precision] = results
    if args.plot:
        plot(runs, args.plot)


def plot(runs: dict[str, dict[str, dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    figure, grid = pyplot.subplots(len(runs), 2, figsize=(10, 3.2 * len(runs)), squeeze=False)
    for row, (precision, results) in enumerate(runs.items()):
        for name, result in results.items():
            steps = range(1, len(result["rewards"]) + 1)
            grid[row][0].plot(steps, result["rewards"], marker=".", label=name)
            grid[row][1].plot(range(1, len(result["seconds"]) + 1), result["seconds"],
                              marker=".", label=name)  # fmt: skip
        grid[row][0].set_title(f"reward per step ({precision})", fontsize=9)
        grid[row][1].set_title(f"seconds per step ({precision})", fontsize=9)
        for axes in grid[row]:
            axes.set_xlabel("step")
            axes.grid(alpha=0.3)
            axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
