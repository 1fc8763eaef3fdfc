"""What ``tests/train/test_distributed.py`` runs in each process of a ``torchrun`` launch (and
in the test's own process for the one-process side of a comparison).

    python distributed_worker.py cli ARGS...           the rlenv command line, with the
                                                        tests' environments registered
    python distributed_worker.py grpo-update MODEL OUT  two GRPO updates on fixed batches;
                                                        rank 0 writes OUT/result.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import CountA, SayMore  # noqa: E402

from rlenv import register  # noqa: E402


def register_test_envs() -> None:
    register("tests/CountA-v0", CountA)
    register("tests/SayMore-v0", SayMore)


def fixed_batch(seed: int, vocabulary: int, pad_id: int, zero_advantage_rows: int):
    """Four groups of two, rows of different lengths (so the ranks' token counts differ);
    in the last ``zero_advantage_rows`` rows of the first half the advantage is 0 (so with
    ``skip_zero_advantage`` the ranks have different numbers of micro-batches)."""
    from rlenv.train.grpo import TrainBatch

    generator = torch.Generator().manual_seed(seed)
    rows, width, prompt = 8, 14, 4
    ids = torch.randint(3, vocabulary, (rows, width), generator=generator)
    attention = torch.ones(rows, width, dtype=torch.long)
    lengths = [14, 11, 9, 14, 12, 8, 13, 10]
    for row, length in enumerate(lengths):
        ids[row, length:] = pad_id
        attention[row, length:] = 0
    mask = torch.zeros(rows, width - 1)
    for row, length in enumerate(lengths):
        mask[row, prompt - 1 : length - 1] = 1.0
    advantages = torch.randn(rows, generator=generator)
    advantages[4 - zero_advantage_rows : 4] = 0.0
    return TrainBatch(
        input_ids=ids,
        attention_mask=attention,
        mask=mask,
        sampler_logprobs=torch.full((rows, width - 1), -3.0),
        advantages=advantages,
        first=prompt - 1,
        prefix_lengths=[prompt] * rows,
    )


def grpo_update(model_path: str, out: str) -> None:
    """Two configurations, two updates each: (a) beta > 0 with mu = 2 (reference and pi_old
    passes), (b) beta = 0 skipping zero-advantage rows, rank 0 holding more of them (so it
    runs placeholder passes). Each rank trains on its contiguous half of every batch."""
    from rlenv.train import GRPOConfig
    from rlenv.train.grpo import GRPOTrainer

    results = {}
    settings = {
        "reference": {"beta": 0.04, "updates_per_batch": 2, "zero_rows": 0},
        "placeholders": {"beta": 0.0, "updates_per_batch": 1, "zero_rows": 3},
    }
    for name, setting in settings.items():
        config = GRPOConfig(
            env_id="tests/CountA-v0", model=model_path, out=f"{out}/{name}", steps=2,
            prompts_per_step=4, group_size=2, micro_batch_size=1, precision="fp32",
            beta=setting["beta"], updates_per_batch=setting["updates_per_batch"],
            learning_rate=1e-2, eval_tasks=0, progress=False, plots=False,
            skip_zero_advantage=True,
        )  # fmt: skip
        trainer = GRPOTrainer(config)
        vocabulary = trainer.model.get_output_embeddings().weight.shape[0]
        steps = []
        for step in range(2):
            batch = fixed_batch(step, vocabulary, trainer.pad_id, setting["zero_rows"])
            if trainer.dist.enabled:
                batch = batch.select(list(trainer.dist.block(len(batch))))
            metrics = trainer._update(batch)
            steps.append({key: metrics[key] for key in ("loss", "grad_norm", "kl")})
        if trainer.dist.enabled:
            from rlenv.train.distributed import full_state_dict

            weights = full_state_dict(trainer.model)
        else:
            weights = {
                key: value.detach().cpu() for key, value in trainer.model.state_dict().items()
            }
        results[name] = {"steps": steps, "weights": weights, "world_size": trainer.dist.world_size}
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save(results, Path(out) / "result.pt")


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    register_test_envs()
    mode, *rest = argv
    if mode == "cli":
        from rlenv.cli import main as rlenv_main

        return rlenv_main(rest)
    if mode == "grpo-update":
        grpo_update(*rest)
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    code = main(sys.argv[1:])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.exit(code)
