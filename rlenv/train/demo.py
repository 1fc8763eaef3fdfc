"""The README's main job: GRPO makes SmolLM2-135M-Instruct better at arithmetic, on a CPU.

``rlenv demo`` (``make demo``) evaluates SmolLM2-135M-Instruct on 100 held-out one-digit
additions and subtractions (sampled at temperature 1 and greedy), trains it with GRPO for a
fixed number of steps, evaluates again, prints before/after and writes the curves to
``rlenv-demo/curves.png``. Offline; under 10 minutes on a 2-core CPU (measured: sampled
accuracy 16% -> 66%, greedy 73% -> 81%, 6.5 minutes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rlenv.train.config import GRPOConfig

__all__ = ["DEMO_CONFIG", "run_demo"]

DEMO_CONFIG = GRPOConfig(
    env_id="rlenv/Arithmetic-v0",
    env_kwargs={
        "difficulty": 1,
        "require_boxed": False,
        "prompt_template": "{expression}",
        "system_prompt": "You are a calculator. Reply with only the result in \\boxed{}.",
        # One-digit arithmetic poses only ~200 distinct problems, so seeds alone do not hold
        # any out: train on one side of the content split, evaluate on the other.
        "split": "train",
    },
    model="smollm2-135m",
    out="rlenv-demo",
    steps=40,
    prompts_per_step=4,
    group_size=8,
    # A calculator's answer is a few tokens; one cut at 32 has failed the format, so its
    # reward of 0 is information (not the noise that overlong filtering guards against).
    max_new_tokens=32,
    truncation="none",
    learning_rate=1e-5,
    warmup_steps=3,
    eval_tasks=100,
    eval_every=10,
)


def run_demo(config: GRPOConfig | None = None, **overrides: Any) -> dict[str, Any]:
    """Train with ``config`` (default :data:`DEMO_CONFIG`; fields replaced by ``overrides``),
    print before/after, return ``{"before": ..., "after": ..., "seconds": ...}``."""
    from rlenv.train.grpo import GRPOTrainer

    config = (config if config is not None else DEMO_CONFIG).model_copy(update=overrides)
    config = GRPOConfig.model_validate(config.model_dump())  # validate the overrides too
    out = Path(config.out)
    if (out / "metrics.jsonl").exists():
        (out / "metrics.jsonl").unlink()  # a fresh run, not an append to an old one
    started = time.perf_counter()
    print(
        f"GRPO demo: {config.model} on {config.env_id} {json.dumps(config.env_kwargs)}\n"
        f"{config.steps} steps x {config.prompts_per_step} tasks x {config.group_size} samples, "
        f"held-out evaluation on {config.eval_tasks} tasks "
        + (
            "(the test split: problems never trained on)"
            if config.env_kwargs.get("split") == "train"
            else "(seeds never trained on)"
        ),
        flush=True,
    )
    trainer = GRPOTrainer(config)
    print(f"device {trainer.device}, bf16 autocast {trainer.autocast}", flush=True)
    evaluations: list[dict[str, Any]] = []

    def log(metrics: dict[str, Any]) -> None:
        if "eval_sampled_accuracy" in metrics:
            evaluations.append(metrics)

    trainer._log = log
    trainer.train()
    seconds = time.perf_counter() - started
    before, after = evaluations[0], evaluations[-1]
    print("\nheld-out accuracy        before    after")
    for key, label in (("eval_sampled_accuracy", "sampled (T=1)"), ("eval_greedy_accuracy",
                                                                    "greedy")):  # fmt: skip
        if key in before:
            print(f"  {label:<20}{before[key]:>10.1%}{after[key]:>9.1%}")
    print(f"\n{seconds / 60:.1f} min; metrics {out / 'metrics.jsonl'}, curves {out / 'curves.png'}")
    return {"before": before, "after": after, "seconds": seconds}
