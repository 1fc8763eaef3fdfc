"""Bundled trainers (``pip install 'rlenv[train]'``): GRPO on the rollout engine, and SFT
(:mod:`rlenv.train.sft`) on the episodes :mod:`rlenv.train.collect` kept.

``GRPOConfig`` is importable without torch; the trainer itself imports torch and transformers
when first used::

    from rlenv.train import GRPOConfig, GRPOTrainer

    trainer = GRPOTrainer(GRPOConfig(env_id="rlenv/Arithmetic-v0", steps=60))
    trainer.train()
"""

from __future__ import annotations

from typing import Any

from rlenv.train.config import GRPOConfig

__all__ = ["GRPOConfig", "GRPOTrainer", "SFTConfig", "SFTTrainer"]


def __getattr__(name: str) -> Any:
    if name == "GRPOTrainer":
        from rlenv.train.grpo import GRPOTrainer

        return GRPOTrainer
    if name in ("SFTConfig", "SFTTrainer"):
        from rlenv.train import sft

        return getattr(sft, name)
    raise AttributeError(f"module 'rlenv.train' has no attribute {name!r}")
