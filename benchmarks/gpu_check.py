"""The prepared GPU check (issue 19): one run on one GPU, everything measured at once.

On a GPU machine with no internet (``benchmarks/gpu_check.sh`` installs the carried wheels first)::

    python benchmarks/gpu_check.py --out OUT            # about 5 minutes on one H200
    python benchmarks/gpu_check.py --smoke --out OUT    # the CPU, tiny shapes: CI keeps it working

Models are randomly initialised with real shapes (``rlenv.train.memory.MODEL_SHAPES``:
Qwen2.5-0.5B and -1.5B), in bf16, with a word-level tokenizer of Qwen2.5's exact vocabulary size
(:func:`rlenv.testing.word_level_chat_tokenizer`): no weights travel, and every sampled id
decodes. Random weights decode almost always to the token limit, so every sequence is as long
as the settings allow. Measured, each section in its own ``try`` so one failure does not lose
the rest:

1. ``generation``: tokens per second of each generation backend (``loop``, ``hf``,
   ``hf-batch``) at ``--gen-batch`` sequences x ``--gen-tokens`` new tokens, per shape;
2. ``grpo``: seconds of one GRPO step split into generate / score / train (median of the steps
   after the first), peak GPU memory, on the 1.5B shape;
3. ``trl``: TRL's ``GRPOTrainer`` on the same model, reward and settings (no vLLM on either
   side), and the ratio of the two step times;
4. ``cuda_tests``: the tests marked ``cuda`` (``pytest -m cuda``), which skip on a CPU.

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` (a table per section).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlenv import GeneratedTasks, Task, TextEnv, Verdict, register
from rlenv.rollout import SamplingParams
from rlenv.rollout.transformers import TransformersPolicy
from rlenv.testing import word_level_chat_tokenizer
from rlenv.train import GRPOConfig
from rlenv.train.grpo import GRPOTrainer
from rlenv.train.memory import MODEL_SHAPES, ModelShape

BACKENDS = ("loop", "hf", "hf-batch")
CUDA_TEST_FILES = ("tests/test_cuda.py",)
"""Where the tests marked ``cuda`` live."""
PROMPT_WORDS = ("Write", "words", "with", "even", "numbers.", "Task")
ENV_ID = "gpucheck/EvenWords-v0"


class EvenWords(TextEnv):
    """Single turn: the reward is the share of the completion's ``wN`` words with an even N.
    A random model's rewards vary within each group, so every group trains."""

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(
            lambda rng: Task(prompt=f"Write words with even numbers. Task {rng.randint(0, 9)}")
        )

    def verify(self, task: Task, completion: str) -> Verdict:
        numbers = [int(w[1:]) for w in completion.split() if w[:1] == "w" and w[1:].isdigit()]
        if not numbers:
            return Verdict(reward=0.0)
        return Verdict(reward=sum(n % 2 == 0 for n in numbers) / len(numbers))


TINY = ModelShape(
    "tiny", "qwen2", hidden_size=64, num_layers=2, intermediate_size=128, vocab_size=2048,
    num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, qkv_bias=True,
)  # fmt: skip


def build(shape: ModelShape, device: str) -> tuple[Any, Any]:
    """A randomly initialised causal LM of ``shape`` in bf16 on ``device``, and the tokenizer."""
    import transformers

    tokenizer = word_level_chat_tokenizer(
        shape.vocab_size, words=(*PROMPT_WORDS, *(str(i) for i in range(10)))
    )
    config = shape.transformers_config()
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.bos_token_id = None
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return model.eval(), tokenizer


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def generation(shape: ModelShape, device: str, batch: int, tokens: int) -> list[dict[str, Any]]:
    """Tokens per second of each backend: ``batch`` distinct prompts, ``tokens`` new tokens,
    temperature 1, after one small warm-up call."""
    model, tokenizer = build(shape, device)
    conversations = [
        [{"role": "user", "content": f"Write words with even numbers. Task {i % 10}"}]
        for i in range(batch)
    ]
    rows = []
    for backend in BACKENDS:
        row: dict[str, Any] = {"shape": shape.name, "backend": backend, "batch": batch}
        try:
            policy = TransformersPolicy(
                model, tokenizer, device=device, batch_size=batch, decoder=backend
            )
            warm = SamplingParams(max_new_tokens=4, temperature=1.0, seed=1)
            policy.generate(conversations[:2], [[], []], warm)
            params = SamplingParams(max_new_tokens=tokens, temperature=1.0, seed=0)
            synchronize(device)
            started = time.perf_counter()
            completions = policy.generate(conversations, [[]] * batch, params)
            synchronize(device)
            seconds = time.perf_counter() - started
            generated = sum(len(c.completion_token_ids or []) for c in completions)
            row.update(seconds=seconds, tokens=generated, tokens_per_second=generated / seconds)
        except Exception as error:  # one backend failing must not lose the others
            row["error"] = f"{type(error).__name__}: {error}"
            row["traceback"] = traceback.format_exc(limit=6)
        rows.append(row)
    loop = next((r for r in rows if r["backend"] == "loop" and "tokens_per_second" in r), None)
    for row in rows:
        if loop and "tokens_per_second" in row:
            row["vs_loop"] = row["tokens_per_second"] / loop["tokens_per_second"]
    del model
    _free(device)
    return rows


GRPO_SETTINGS = dict(
    prompts_per_step=8, group_size=8, max_new_tokens=256, temperature=1.0, learning_rate=1e-6,
    warmup_steps=0, beta=0.0, updates_per_batch=1, loss_aggregation="token",
    epsilon_low=0.2, epsilon_high=0.28, scale_rewards=True, truncation="none",
    adam_betas=(0.9, 0.99), weight_decay=0.0, max_grad_norm=1.0,
)  # fmt: skip
"""The settings both trainers run with (TRL's names differ; see :func:`trl_steps`)."""


def grpo_steps(
    shape: ModelShape, device: str, steps: int, settings: dict[str, Any], out: Path
) -> dict[str, Any]:
    """rlenv's GRPO: seconds per step (median after the first) split into generate / score /
    train, and the peak GPU memory."""
    model, tokenizer = build(shape, device)
    config = GRPOConfig(
        env_id=ENV_ID, out=str(out / "grpo"), steps=steps, eval_tasks=0, progress=False,
        plots=False, final_model=False, final_checkpoint=False, device=device,
        precision="bf16", micro_batch_size=16, gradient_checkpointing=True,
        generation_batch_size=settings["prompts_per_step"] * settings["group_size"], **settings,
    )  # fmt: skip
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer = GRPOTrainer(config, model.float(), tokenizer)
    rows = []
    for _ in range(steps):
        started = time.perf_counter()
        metrics = trainer.train_step()
        synchronize(device)
        rows.append(
            {
                "seconds": time.perf_counter() - started,
                "generate": metrics["time_generate"],
                "score": metrics["time_score"],
                "train": metrics["time_train"],
                "reward_mean": metrics["reward_mean"],
                "tokens": metrics["completion_length_mean"],
            }
        )
    result = {"shape": shape.name, "steps": rows, **_medians(rows)}
    if device.startswith("cuda"):
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del trainer, model
    _free(device)
    return result


def trl_steps(
    shape: ModelShape, device: str, steps: int, settings: dict[str, Any], out: Path
) -> dict[str, Any]:
    """TRL's ``GRPOTrainer`` on the same model shape, reward and settings, bf16, no vLLM."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer as TRLTrainer

    model, tokenizer = build(shape, device)
    env = EvenWords()
    prompts = settings["prompts_per_step"]
    rows = [
        {"prompt": [{"role": "user", "content": f"Write words with even numbers. Task {i % 10}"}]}
        for i in range(prompts * steps)
    ]

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [env.verify(Task(prompt=""), c[-1]["content"]).reward for c in completions]

    args = TRLConfig(
        output_dir=str(out / "trl"), use_cpu=not device.startswith("cuda"), bf16=True,
        per_device_train_batch_size=prompts * settings["group_size"],
        gradient_accumulation_steps=1, num_generations=settings["group_size"],
        max_completion_length=settings["max_new_tokens"], temperature=settings["temperature"],
        learning_rate=settings["learning_rate"], lr_scheduler_type="constant", warmup_steps=0,
        adam_beta1=settings["adam_betas"][0], adam_beta2=settings["adam_betas"][1],
        weight_decay=0.0, max_grad_norm=1.0, beta=0.0, num_iterations=1, loss_type="dapo",
        epsilon=settings["epsilon_low"], epsilon_high=settings["epsilon_high"],
        scale_rewards="group", mask_truncated_completions=False, shuffle_dataset=False,
        max_steps=steps, logging_steps=1, save_strategy="no", report_to=[], seed=0,
        disable_tqdm=True, gradient_checkpointing=True, use_vllm=False,
    )  # fmt: skip
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            synchronize(device)
            marks.append(time.perf_counter())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            synchronize(device)
            marks.append(time.perf_counter())

    trainer = TRLTrainer(
        model=model.float(), reward_funcs=reward, args=args,
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
    )  # fmt: skip
    trainer.add_callback(Clock())
    trainer.train()
    seconds = [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)]
    del trainer, model
    _free(device)
    later = seconds[1:] or seconds
    return {"shape": shape.name, "seconds": seconds, "median_seconds": statistics.median(later)}


def cuda_tests(timeout: int) -> dict[str, Any]:
    """``pytest -m cuda`` over :data:`CUDA_TEST_FILES`; on a CPU they skip."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
               *CUDA_TEST_FILES, "--no-header", "-rs"]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return {
        "returncode": result.returncode,
        "summary": lines[-1] if lines else "",
        "seconds": time.perf_counter() - started,
        "tail": "\n".join(lines[-15:]),
    }


def _medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    later = rows[1:] or rows
    return {
        f"median_{key}": statistics.median(row[key] for row in later)
        for key in ("seconds", "generate", "score", "train")
    }


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def section(results: dict[str, Any], name: str, deadline: float, run: Callable[[], Any]) -> None:
    """Run one section into ``results[name]``: its value, or its error, or "skipped" when the
    time budget is spent."""
    if time.monotonic() > deadline:
        results[name] = {"skipped": "time budget spent"}
        return
    started = time.perf_counter()
    try:
        results[name] = run()
    except Exception as error:
        results[name] = {
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=8),
        }
    print(f"[gpu_check] {name}: {time.perf_counter() - started:.1f} s", flush=True)


def environment(device: str) -> dict[str, Any]:
    import transformers

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    with contextlib.suppress(ImportError):
        import trl

        info["trl"] = trl.__version__
    return info


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables, one per section."""
    env = results["environment"]
    lines = [f"# GPU check, {env['date']}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in env.items() if key != "date"]
    lines += ["", "## Generation", "",
              "| shape | backend | batch | tokens | s | tokens/s | vs loop |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in _rows(results.get("generation")):
        if "error" in row:
            lines.append(f"| {row['shape']} | {row['backend']} | {row['batch']} | error: "
                         f"{row['error'][:120]} | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {row['shape']} | {row['backend']} | {row['batch']} | {row['tokens']} | "
            f"{row['seconds']:.2f} | {row['tokens_per_second']:,.0f} | "
            f"{row.get('vs_loop', 1.0):.2f}x |"
        )
    grpo, trl = results.get("grpo", {}), results.get("trl", {})
    lines += ["", "## One GRPO step (median after the first)", ""]
    if "median_seconds" in grpo:
        lines += [
            "| trainer | s/step | generate | score | train | peak GiB |",
            "|---|---|---|---|---|---|",
            f"| rlenv | {grpo['median_seconds']:.2f} | {grpo['median_generate']:.2f} | "
            f"{grpo['median_score']:.2f} | {grpo['median_train']:.2f} | "
            f"{grpo.get('peak_gib', float('nan')):.1f} |",
        ]
        if "median_seconds" in trl:
            ratio = grpo["median_seconds"] / trl["median_seconds"]
            lines += [f"| TRL | {trl['median_seconds']:.2f} | | | | |", "",
                      f"rlenv / TRL: **{ratio:.2f}x**"]  # fmt: skip
        else:
            lines += ["", f"TRL: {_problem(trl)}"]
    else:
        lines.append(f"rlenv: {_problem(grpo)}")
    tests = results.get("cuda_tests", {})
    lines += [
        "",
        "## CUDA tests (`pytest -m cuda`)",
        "",
        f"{tests.get('summary') or _problem(tests)}",
    ]
    return "\n".join(lines) + "\n"


def _rows(value: Any) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else []


def _problem(value: dict[str, Any]) -> str:
    return value.get("error") or value.get("skipped") or "not run"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu-check", help="folder for gpu_check.json/.md")
    parser.add_argument("--smoke", action="store_true", help="the CPU, tiny shapes, seconds")
    parser.add_argument(
        "--budget", type=float, default=420.0, help="seconds before sections are skipped"
    )
    parser.add_argument("--gen-batch", type=int, default=256)
    parser.add_argument("--gen-tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps of each trainer")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    register(ENV_ID, EvenWords)
    if args.smoke:
        device, shapes, train_shape = "cpu", [TINY], TINY
        batch, tokens, steps = 4, 8, 2
        settings = {**GRPO_SETTINGS, "prompts_per_step": 2, "group_size": 4, "max_new_tokens": 8}
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run with --smoke on a CPU")
        device = "cuda"
        shapes = [MODEL_SHAPES["Qwen2.5-0.5B"], MODEL_SHAPES["Qwen2.5-1.5B"]]
        train_shape = MODEL_SHAPES["Qwen2.5-1.5B"]
        batch, tokens, steps, settings = args.gen_batch, args.gen_tokens, args.steps, GRPO_SETTINGS
    results: dict[str, Any] = {"environment": environment(device), "settings": settings}
    section(
        results, "generation", deadline,
        lambda: [row for shape in shapes for row in generation(shape, device, batch, tokens)],
    )  # fmt: skip
    section(
        results, "grpo", deadline, lambda: grpo_steps(train_shape, device, steps, settings, out)
    )
    section(results, "trl", deadline, lambda: trl_steps(train_shape, device, steps, settings, out))
    remaining = max(30, int(deadline - time.monotonic()) + 60)
    section(results, "cuda_tests", deadline + 60, lambda: cuda_tests(remaining))
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(results))
    print(markdown(results))
    failed = [
        name for name, value in results.items() if isinstance(value, dict) and "error" in value
    ]
    failed += [
        f"generation/{r['backend']}" for r in _rows(results.get("generation")) if "error" in r
    ]
    if failed:
        print(f"[gpu_check] sections with errors: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
