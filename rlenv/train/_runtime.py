"""What every bundled trainer shares: device and precision, the optimiser, checkpoints with
exact resume, metrics, plots, the progress bar and saving the model.

GRPO, SFT and DPO each subclass :class:`Trainer` and add their data and their loss.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rlenv.errors import RLEnvError
from rlenv.train.config import TrainConfig

__all__ = ["Trainer", "cpu_has_native_bf16", "progress_bar", "seed_everything", "use_bf16"]


def use_bf16(precision: str, device: str) -> bool:
    """Whether forward passes run under bf16 autocast for ``precision`` on ``device``."""
    if precision != "auto":
        return precision == "bf16"
    if device.startswith("cuda"):
        return True
    return cpu_has_native_bf16()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16), where bf16 autocast is
    2-3x faster than fp32; elsewhere it is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(total: int, done: int, *, enabled: bool, desc: str) -> Any:
    """A tqdm bar, or None when disabled or tqdm is missing."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=done, desc=desc, unit="step", dynamic_ncols=True)


class Trainer:
    """The shared half of a trainer. Subclasses set ``model`` and ``tokenizer``, call
    :meth:`_setup_optimizer`, and name their curves in ``curve_keys``."""

    name = "train"
    curve_keys: Sequence[str] = ("loss", "grad_norm", "lr", "time_step")

    def __init__(
        self, config: TrainConfig, *, log: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.config = config
        self.out = Path(config.out)
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.autocast = use_bf16(config.precision, self.device)
        seed_everything(config.seed)
        self.step = 0
        self._log = log
        self.model: Any = None
        self.tokenizer: Any = None

    def _load(self, model: Any, tokenizer: Any) -> tuple[Any, Any]:
        """``(model, tokenizer)`` as given, or ``load_model(config.model)``; the model in fp32
        on the trainer's device (wrapped with LoRA adapters when ``lora_rank > 0``), the
        tokenizer with a pad token."""
        if model is None:
            from rlenv.models import load_model

            model, tokenizer = load_model(self.config.model)
        if tokenizer is None:
            raise ValueError("give the tokenizer with the model")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = model.to(self.device).float()
        if self.config.lora_rank > 0:
            model = with_lora(model, self.config.lora_rank, self.config.lora_alpha)
        return model, tokenizer

    def _setup_optimizer(self) -> None:
        """Fused AdamW (several times faster than the per-tensor loop on the CPU) over the
        trainable parameters, with a linear warm-up to a constant learning rate."""
        config = self.config
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=config.learning_rate,
            betas=config.adam_betas,
            weight_decay=config.weight_decay,
            fused=True,
        )
        warmup = config.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / (warmup + 1)) if warmup else 1.0
        )

    # ------------------------------------------------------------------------ checkpoints

    def _extra_state(self) -> dict[str, Any]:
        """What a subclass adds to its checkpoint."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restores :meth:`_extra_state`."""

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Everything needed to resume exactly: weights, optimizer, scheduler, step, RNGs.
        Written to a temporary file and renamed, so a crash never leaves half a checkpoint."""
        path = Path(path) if path is not None else self.out / "checkpoint.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "python": random.getstate(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            "config": self.config.model_dump(),
            **self._extra_state(),
        }
        temporary = path.with_suffix(".tmp")
        torch.save(state, temporary)
        temporary.replace(path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Resume from :meth:`save_checkpoint`'s file: the next step is the one the original
        run would have taken."""
        state = torch.load(Path(path), map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        random.setstate(state["rng"]["python"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._load_extra_state(state)

    def save_model(self, path: str | Path | None = None) -> Path:
        """The model and tokenizer in Hugging Face format (``rlenv eval --model PATH`` and
        ``rlenv train ID --model PATH`` load it); LoRA adapters are merged first."""
        path = Path(path) if path is not None else self.out / "model"
        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path

    def _finish(self, *, save_model: bool = False) -> None:
        """The end of a run: the final checkpoint (unless ``final_checkpoint`` is off), the
        Hugging Face model when asked, and the curves (when ``plots`` is on)."""
        if self.config.final_checkpoint:
            self.save_checkpoint()
        if save_model:
            self.save_model()
        if self.config.plots:
            self.plot()

    # ------------------------------------------------------------------------ logging

    def plot(self) -> Path | None:
        """``curves.png``: one panel per ``curve_keys`` entry found in ``metrics.jsonl``."""
        from rlenv.plots import MissingPlotting, line_plots

        rows = [json.loads(line) for line in (self.out / "metrics.jsonl").open()]
        series = {
            key: [(row["step"], row[key]) for row in rows if row.get(key) is not None]
            for key in self.curve_keys
        }
        try:
            return line_plots(series, self.out / "curves.png", title=self.plot_title())
        except (MissingPlotting, ValueError):  # no matplotlib, or nothing logged yet
            return None

    def plot_title(self) -> str:
        return self.name

    def _record(self, metrics: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")
        if self._log is not None:
            self._log(metrics)

    def _autocast_context(self) -> Any:
        if self.autocast:
            return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _progress(self, total: int) -> Any:
        return progress_bar(total, self.step, enabled=self.config.progress, desc=self.name)


def with_lora(model: Any, rank: int, alpha: int) -> Any:
    """``model`` with LoRA adapters on every linear layer, only the adapters trainable. The
    adapters start at zero, so the wrapped model computes what the base model does."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise RLEnvError("lora_rank > 0 needs peft: pip install 'rlenv[lora]'") from None
    lora = LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)
