"""The training loop every bundled trainer shares, and what it needs: device and precision,
the optimiser and its learning-rate schedule, the guarded optimizer step, checkpoints with exact
resume, metrics, plots, the progress bar and saving the model; on one process or, launched
by ``torchrun``, on several through FSDP2 (:mod:`rlenv.train.distributed`).

GRPO, SFT and DPO each subclass :class:`Trainer` and supply their data (:meth:`Trainer.batch`)
and their loss (:meth:`Trainer.loss`); :meth:`Trainer.train` does the rest.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from rlenv.errors import RLEnvError
from rlenv.train.config import TrainConfig
from rlenv.train.distributed import Distributed, full_state_dict, shard_model

__all__ = [
    "ConfigChangedOnResume",
    "OptimizerStep",
    "Trainer",
    "config_changes",
    "cpu_has_native_bf16",
    "frozen_to_bf16",
    "lr_factor",
    "progress_bar",
    "seed_everything",
    "use_bf16",
]

logger = logging.getLogger("rlenv")


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


# ------------------------------------------------------------------------ learning-rate schedule


def lr_factor(
    step: int,
    *,
    total: int,
    warmup: int = 0,
    schedule: str = "constant",
    min_ratio: float = 0.0,
) -> float:
    """The learning rate of optimizer step ``step`` (0-based) as a fraction of the configured one.

    Warm-up: ``(step + 1) / (warmup + 1)`` for the first ``warmup`` steps (linear, and never 0:
    no step is wasted). Then, with ``p = (step - warmup) / (total - warmup)`` the share of the
    decay done (0 at the first step after warm-up, 1 at ``total``):

    - ``"constant"``: 1;
    - ``"linear"``: ``min_ratio + (1 - min_ratio) * (1 - p)``;
    - ``"cosine"``: ``min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2`` (Loshchilov &
      Hutter 2017, SGDR, without restarts).

    As in ``transformers``' ``get_{linear,cosine}_schedule_with_warmup``, the rate reaches
    ``min_ratio`` at step ``total``, one past the last step, so the last step still learns.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        decay = 1.0 - progress
    elif schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown lr_schedule {schedule!r}: 'constant', 'linear' or 'cosine'")
    return min_ratio + (1.0 - min_ratio) * decay


# ----------------------------------------------------------------------- resuming a changed run

RESUMABLE_SETTINGS = frozenset(
    {
        # how long, where to, and what is shown or saved
        "steps", "epochs", "out", "progress", "plots", "save_every", "final_checkpoint",
        "final_model", "eval_every", "eval_tasks", "eval_greedy",
        # where and in how many pieces the same computation runs
        "device", "micro_batch_size", "generation_batch_size", "gradient_checkpointing",
        "vllm_gpu_memory_utilization",
    }
)  # fmt: skip
"""Settings a resumed run may change without ``force``: none changes what is learnt. ``steps``
(or ``epochs``) under a decaying ``lr_schedule`` moves the schedule's end, so the decay
continues towards the new last step."""


class ConfigChangedOnResume(RLEnvError, ValueError):
    """A checkpoint was resumed with settings other than those it was trained with.

    ``changed`` maps each setting to ``(checkpoint's value, this run's value)``. Restore the
    settings, or resume with ``force=True`` to continue with the new ones on purpose.
    """

    def __init__(self, path: Path, changed: dict[str, tuple[Any, Any]]) -> None:
        self.changed = changed
        listed = ", ".join(f"{key} ({old!r} -> {new!r})" for key, (old, new) in changed.items())
        super().__init__(
            f"{path} was trained with other settings: {listed}. Resume with the checkpoint's "
            "settings, or on purpose with force (load_checkpoint(path, force=True); the CLI: "
            "--force-resume) to train on with the new ones"
        )


def config_changes(
    saved: Mapping[str, Any], config: TrainConfig, *, allowed: Iterable[str] = RESUMABLE_SETTINGS
) -> dict[str, tuple[Any, Any]]:
    """The settings of ``config`` that differ from ``saved`` (a checkpoint's ``config``), other
    than the ``allowed`` ones, as ``{name: (saved value, new value)}``. A setting the checkpoint
    predates counts as its default; one this config no longer has is ignored."""
    allowed = set(allowed)
    current = json.loads(config.model_dump_json())
    stored = json.loads(json.dumps(dict(saved), default=str))
    fields = type(config).model_fields
    changed = {}
    for key, value in current.items():
        if key in allowed:
            continue
        if key in stored:
            old = stored[key]
        else:
            old = json.loads(json.dumps(fields[key].get_default(call_default_factory=True)))
        if old != value:
            changed[key] = (old, value)
    return changed


# ---------------------------------------------------------------------------- the optimizer step


@dataclass
class OptimizerStep:
    """What one guarded optimizer step did (:meth:`Trainer.optimizer_step`)."""

    sums: dict[str, float] = field(default_factory=dict)
    """The micro-batches' metric shares, summed: the batch's values (``loss`` among them);
    empty when the step was skipped."""
    grad_norm: float | None = None
    """The gradient's norm before clipping; ``None`` when skipped."""
    skipped: str | None = None
    """Why no parameter moved ("non-finite loss", "non-finite gradient norm"), or ``None``."""

    def metrics(self, keys: Sequence[str]) -> dict[str, Any]:
        """``sums`` with every one of ``keys`` present: 0 where no micro-batch had anything to
        learn, ``None`` when skipped (a skipped step has no loss, not a loss of 0); then
        ``grad_norm`` and ``skipped``."""
        values: dict[str, Any] = {key: None if self.skipped else 0.0 for key in keys}
        values.update(self.sums)
        return {**values, "grad_norm": self.grad_norm, "skipped": self.skipped}


# ------------------------------------------------------------------------------------ the loop


class Trainer:
    """The loop every bundled trainer shares; an algorithm supplies its data and its loss.

    A subclass sets ``model``, ``tokenizer`` and ``total_steps``, calls
    :meth:`_setup_optimizer`, and implements:

    - :meth:`batch`: the data of one step;
    - :meth:`microbatches` and :meth:`loss`: the batch's parts for gradient accumulation, and
      each part's share of the batch's loss and metrics (or :meth:`update` itself, when a step
      is several optimizer steps, as GRPO's ``updates_per_batch``);
    - optionally :meth:`batch_metrics` (what the data says: rewards, tokens) and
      :meth:`scheduled_evaluation` (held-out evaluation).

    The runtime owns the rest: the loop (:meth:`train`, :meth:`train_step`), backward passes,
    gradient clipping, the guarded optimizer step (a non-finite loss or gradient norm skips it,
    and ``skipped`` says why), the learning-rate schedule, checkpoints with exact resume (and
    the check that a resumed run has the same settings), ``metrics.jsonl``, the progress bar,
    ``curves.png`` and ``model/``.
    """

    name = "train"
    curve_keys: Sequence[str] = ("loss", "grad_norm", "lr", "time_step")
    loss_metrics: Sequence[str] = ("loss",)
    """The metrics :meth:`loss` reports; ``None`` on a skipped step."""
    progress_keys: Sequence[tuple[str, str]] = (("loss", "loss"),)
    """(metric, label) pairs shown on the progress bar."""
    resumable_settings: ClassVar[frozenset[str]] = RESUMABLE_SETTINGS

    def __init__(
        self, config: TrainConfig, *, log: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.config = config
        self.out = Path(config.out)
        self.dist = Distributed.from_environment(config.device)
        """This process among the training processes (one, unless started by ``torchrun``)."""
        self.device = self.dist.device(config.device)
        self.autocast = use_bf16(config.precision, self.device)
        seed_everything(config.seed)
        self.step = 0
        self.total_steps = 0
        self._log = log
        self._model_saved_at: int | None = None
        self.model: Any = None
        self.tokenizer: Any = None

    # ------------------------------------------------------------------------ the algorithm

    def batch(self, step: int) -> Any:
        """The data of step ``step`` (0-based). It must depend only on the step, the seed and
        the model, so that a resumed run sees what the original run would have."""
        raise NotImplementedError

    def microbatches(self, batch: Any) -> Iterable[Any]:
        """``batch`` in parts of at most ``micro_batch_size`` (gradient accumulation)."""
        raise NotImplementedError

    def loss(self, part: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """One part's share of the batch's loss and of its :attr:`loss_metrics` (other than
        ``loss``): already divided by the whole batch's normaliser, so that the sum over the
        parts is the batch's value and accumulation changes nothing."""
        raise NotImplementedError

    def update(self, batch: Any) -> dict[str, Any]:
        """Train on ``batch``: one :meth:`optimizer_step` over its :meth:`microbatches` (on
        several processes, each rank takes every ``world_size``-th of them). Returns the loss
        metrics, ``grad_norm`` and ``skipped``."""
        self.model.train()
        parts = list(self.microbatches(batch))
        filler = parts[0] if parts else None
        step = self.optimizer_step(self.dist.share(parts), self.loss, filler=filler)
        return step.metrics(self.loss_metrics)

    def batch_metrics(self, batch: Any) -> dict[str, Any]:
        """What ``batch`` says besides the loss (rewards, token counts); called once the step
        is counted."""
        return {}

    def scheduled_evaluation(self, step: int) -> dict[str, Any]:
        """Metrics measured off the training data when due at ``step`` (0: before training, when
        not resuming; ``total_steps``: the end), else ``{}``. Default: none."""
        return {}

    # ------------------------------------------------------------------------ the loop

    def train(self) -> list[dict[str, Any]]:
        """Run from the current step (:meth:`load_checkpoint` first to resume) to
        ``total_steps``: each step's metrics to ``metrics.jsonl`` (and to ``log``), a checkpoint
        every ``save_every`` steps; at the end the final checkpoint (``final_checkpoint``), the
        model in Hugging Face format in ``model/`` (``final_model``) and ``curves.png``
        (``plots``). Returns every step's metrics."""
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(self.config.model_dump_json(indent=2) + "\n")
        if self.step == 0:
            baseline = self.scheduled_evaluation(0)
            if baseline:
                self._record({"step": 0, **baseline})
        history = []
        bar = self._progress(self.total_steps)
        while self.step < self.total_steps:
            metrics = self.train_step()
            metrics.update(self.scheduled_evaluation(self.step))
            self._record(metrics)
            history.append(metrics)
            if self.config.save_every and self.step % self.config.save_every == 0:
                self.save_checkpoint()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(self._postfix(metrics), refresh=False)
        if bar is not None:
            bar.close()
        self._finish()
        return history

    def train_step(self) -> dict[str, Any]:
        """One step: :meth:`batch`, :meth:`update`, then the learning-rate schedule advances (a
        skipped update still counts as a step). Returns the step's metrics, ``lr`` being the
        rate the step trained at; :meth:`train` records them."""
        started = time.perf_counter()
        lr = self.scheduler.get_last_lr()[0]
        batch = self.batch(self.step)
        update = self.update(batch)
        with warnings.catch_warnings():  # the scheduler warns when no optimizer step was taken
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        self.step += 1
        if update.get("skipped") and self.dist.is_main:
            logger.warning("%s step %d: no update (%s)", self.name, self.step, update["skipped"])
        return {
            "step": self.step,
            **self.batch_metrics(batch),
            **update,
            "lr": lr,
            "time_step": time.perf_counter() - started,
        }

    def optimizer_step(
        self,
        microbatches: Iterable[Any],
        loss: Callable[[Any], tuple[torch.Tensor, dict[str, float]]],
        *,
        filler: Any = None,
    ) -> OptimizerStep:
        """One guarded optimizer step with gradient accumulation.

        Each part's loss (``loss(part)``, see :meth:`loss`) is backpropagated as it comes, so
        one part's activations are in memory at a time. A trainable parameter no part reached
        gets a zero gradient, which is what the whole batch's computation gives it (AdamW's
        momentum and weight decay still apply; leaving out parts that cannot change the loss,
        as GRPO does with zero advantages, changes no update). The gradient is clipped to
        ``max_grad_norm`` and the optimizer steps, unless a loss or the gradient norm is not
        finite: then the gradients are dropped, no parameter or optimizer state moves, and
        ``skipped`` says why.

        On several processes ``microbatches`` are this rank's, and the losses are shares of the
        whole batch's (normalisers counted over every rank). Every rank takes as many forward
        and backward passes as the busiest one: the missing ones run ``filler`` (any part)
        with its loss times 0, which moves nothing. Each backward is scaled by the number of
        processes, since FSDP averages the ranks' gradients, and the metrics are summed over
        the ranks. A non-finite loss on one rank skips the step on all of them."""
        distributed = self.dist
        self.optimizer.zero_grad(set_to_none=True)
        parts: list[tuple[Any, bool]] = [(part, True) for part in microbatches]
        if distributed.enabled:
            missing = distributed.max(len(parts)) - len(parts)
            parts += [(filler, False)] * missing
        sums: dict[str, float] = {}
        finite = True
        for part, real in parts:
            value, metrics = loss(part)
            if not real:
                value = value * 0.0
            if not torch.isfinite(value):
                finite = False
                if not distributed.enabled:  # alone: nothing else waits for this backward
                    break
            (value * distributed.world_size if distributed.enabled else value).backward()
            if real:
                for key, share in {"loss": value.item(), **metrics}.items():
                    sums[key] = sums.get(key, 0.0) + share
        if distributed.enabled:
            finite = not distributed.any(not finite)
            sums = _summed(distributed.gather(sums))
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            return OptimizerStep(skipped="non-finite loss")
        for parameter in self._trainable:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        norm = torch.nn.utils.clip_grad_norm_(self._trainable, self.config.max_grad_norm)
        if hasattr(norm, "full_tensor"):  # sharded gradients: the norm of the whole gradient
            norm = norm.full_tensor()
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return OptimizerStep(skipped="non-finite gradient norm")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return OptimizerStep(sums=sums, grad_norm=float(norm))

    # ------------------------------------------------------------------------ set-up

    def _load(self, model: Any, tokenizer: Any) -> tuple[Any, Any]:
        """``(model, tokenizer)`` as given, or ``load_model(config.model)``; the model on the
        trainer's device with fp32 weights, wrapped with LoRA adapters when ``lora_rank > 0``;
        the tokenizer with a pad token.

        Under bf16 (:func:`use_bf16`) the frozen LoRA base is stored in bf16: autocast computes
        in bf16 anyway, so this halves its memory and spares the per-step cast, while the
        adapters (and so the gradients and AdamW state) stay fp32. Trained weights are fp32
        master weights under every precision."""
        if model is None:
            from rlenv.models import load_model

            model, tokenizer = load_model(self.config.model)
        if tokenizer is None:
            raise ValueError("give the tokenizer with the model")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = model.to(self.device).float()
        if self.config.lora_rank > 0 and self.dist.enabled:
            raise RLEnvError(
                "LoRA is not supported on several processes yet: train LoRA on one process "
                "(one GPU holds a 7B base in bf16), or set lora_rank=0 to fine-tune fully under "
                "FSDP"
            )
        if self.config.lora_rank > 0:
            model = with_lora(model, self.config.lora_rank, self.config.lora_alpha)
            if self.autocast:
                frozen_to_bf16(model)
        return model, tokenizer

    def _models_to_shard(self) -> list[Any]:
        """The models FSDP shards on several processes: the trained one, and any frozen one a
        subclass keeps (GRPO's reference)."""
        return [self.model]

    def _shard(self) -> None:
        """On several processes, shard :meth:`_models_to_shard` with FSDP2
        (:func:`~rlenv.train.distributed.shard_model`), bf16 mixed precision under bf16.

        Whether a model's logits are its output layer on its decoder's hidden states (the
        chunked log-probs' condition) is checked here, before sharding, on the whole model."""
        if not self.dist.enabled:
            return
        from rlenv.train.algorithm import _split_output_layer

        for model in self._models_to_shard():
            vocabulary = model.get_output_embeddings().weight.shape[0]
            sample = torch.arange(8, device=self.device).unsqueeze(0) % vocabulary
            _split_output_layer(model, sample)
            shard_model(model, bf16=self.autocast, device_type=self.device.split(":")[0])

    def _setup_optimizer(self) -> None:
        """Fused AdamW (several times faster than the per-tensor loop on the CPU) over the
        trainable parameters, with the learning-rate schedule of :func:`lr_factor` over
        ``total_steps``. On several processes the models are sharded first (:meth:`_shard`),
        so the optimizer holds this rank's shards only."""
        config = self.config
        self._shard()
        self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self._trainable,
            lr=config.learning_rate,
            betas=config.adam_betas,
            weight_decay=config.weight_decay,
            fused=True,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_factor(
                step,
                total=self.total_steps,
                warmup=config.warmup_steps,
                schedule=config.lr_schedule,
                min_ratio=config.min_lr_ratio,
            ),
        )

    def _autocast_context(self) -> Any:
        if self.autocast:
            return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------------ checkpoints

    def _extra_state(self) -> dict[str, Any]:
        """What a subclass adds to its checkpoint."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restores :meth:`_extra_state`."""

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Everything needed to resume exactly: weights, optimizer, scheduler, step, RNGs, and
        the settings (a resumed run must have the same, :meth:`load_checkpoint`). Written to a
        temporary file and renamed, so a crash never leaves half a checkpoint.

        One process: the file ``out/checkpoint.pt``. Several: the folder ``out/checkpoint/``
        (:meth:`_save_sharded`), every rank writing its own shards."""
        if self.dist.enabled:
            return self._save_sharded(Path(path) if path is not None else self.out / "checkpoint")
        path = Path(path) if path is not None else self.out / "checkpoint.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self._trainer_state(),
            "rng": _rng_state(),
        }
        temporary = path.with_suffix(".tmp")
        torch.save(state, temporary)
        temporary.replace(path)
        return path

    def _trainer_state(self) -> dict[str, Any]:
        """What a checkpoint holds besides weights, optimizer and RNGs."""
        return {
            "step": self.step,
            "scheduler": self.scheduler.state_dict(),
            "config": self.config.model_dump(),
            **self._extra_state(),
        }

    def _save_sharded(self, path: Path) -> Path:
        """A checkpoint folder of a run on several processes: the model and optimizer as a
        ``torch.distributed.checkpoint`` (DCP) in ``state/`` (each rank writes its shards, and
        a run on another number of processes can read them), ``trainer.pt`` (step, schedule,
        settings; rank 0) and ``rng_rank{R}.pt`` (each rank's random state). Written to
        ``PATH.tmp`` and renamed once every rank is done."""
        import shutil

        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        temporary = path.with_name(path.name + ".tmp")
        if self.dist.is_main:
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
        self.dist.barrier()
        state = {
            "model": get_model_state_dict(self.model),
            "optimizer": get_optimizer_state_dict(self.model, self.optimizer),
        }
        dcp.save(state, checkpoint_id=str(temporary / "state"))
        torch.save(_rng_state(), temporary / f"rng_rank{self.dist.rank}.pt")
        if self.dist.is_main:
            torch.save(
                {**self._trainer_state(), "world_size": self.dist.world_size},
                temporary / "trainer.pt",
            )
        self.dist.barrier()
        if self.dist.is_main:
            shutil.rmtree(path, ignore_errors=True)
            temporary.replace(path)
        self.dist.barrier()
        return path

    def load_checkpoint(self, path: str | Path, *, force: bool = False) -> None:
        """Resume from :meth:`save_checkpoint`'s file: the next step is the one the original
        run would have taken.

        The run's settings must be the checkpoint's, except :data:`RESUMABLE_SETTINGS` (steps,
        output, logging, evaluation, device and micro-batch sizes): otherwise
        :class:`ConfigChangedOnResume` names the changed ones, and nothing is loaded.
        ``force=True`` resumes anyway, with this run's settings."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        if path.is_dir() != self.dist.enabled:
            raise RLEnvError(
                f"{path} is a checkpoint of a run on "
                + ("several processes (a folder)" if path.is_dir() else "one process (a file)")
                + ": resume it "
                + ("with torchrun --nproc_per_node=N" if path.is_dir() else "on one process")
            )
        if self.dist.enabled:
            state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
            rng = torch.load(path / f"rng_rank{self.dist.rank}.pt", weights_only=False)
        else:
            state = torch.load(path, map_location=self.device, weights_only=False)
            rng = state["rng"]
        if not force and "config" in state:
            changed = config_changes(state["config"], self.config, allowed=self.resumable_settings)
            if changed:
                raise ConfigChangedOnResume(path, changed)
        if self.dist.enabled:
            self._load_sharded(path)
        else:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self._apply_optimizer_settings()
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self._load_extra_state(state)

    def _load_sharded(self, path: Path) -> None:
        """The model and optimizer shards of :meth:`_save_sharded`'s folder, resharded for this
        run's processes."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        state = {
            "model": get_model_state_dict(self.model),
            "optimizer": get_optimizer_state_dict(self.model, self.optimizer),
        }
        dcp.load(state, checkpoint_id=str(path / "state"))
        set_model_state_dict(self.model, state["model"])
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"])

    def _apply_optimizer_settings(self) -> None:
        """This run's learning rate, schedule, betas and weight decay on a loaded optimizer (a
        checkpoint's state carries its own): unchanged settings give the exact values the
        original run had; under ``force`` the new ones apply from the next step."""
        config = self.config
        factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group["initial_lr"] = config.learning_rate
            group["lr"] = config.learning_rate * factor
            group["betas"] = config.adam_betas
            group["weight_decay"] = config.weight_decay
        self.scheduler.base_lrs = [config.learning_rate] * len(self.optimizer.param_groups)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def save_model(self, path: str | Path | None = None) -> Path:
        """The model and tokenizer in Hugging Face format (``rlenv eval --model PATH`` and
        ``rlenv train ID --model PATH`` load it); LoRA adapters are merged first, in fp32. Default:
        ``out/model``, which :meth:`train` writes at the end; asking again for it at the same
        step does not write it twice."""
        if path is None and self._model_saved_at == self.step:
            return self.out / "model"
        target = Path(path) if path is not None else self.out / "model"
        if self.dist.enabled:
            self._save_sharded_model(target)
            if path is None:
                self._model_saved_at = self.step
            return target
        model = self.model
        if hasattr(model, "merge_and_unload"):  # merged in fp32: a bf16 base would round
            model = copy.deepcopy(model).float().merge_and_unload()  # small deltas away
        model.save_pretrained(target)
        self.tokenizer.save_pretrained(target)
        if path is None:
            self._model_saved_at = self.step
        return target

    def _save_sharded_model(self, target: Path) -> None:
        """:meth:`save_model` on several processes: the shards gathered on rank 0's CPU, which
        writes them with the model's own ``save_pretrained``."""
        weights = full_state_dict(self.model)  # every rank takes part
        if self.dist.is_main:
            self.model.save_pretrained(target, state_dict=weights)
            self.tokenizer.save_pretrained(target)
            _unwrapped_architectures(target)
        self.dist.barrier()

    def _finish(self) -> None:
        """The end of a run: the final checkpoint (``final_checkpoint``), ``model/``
        (``final_model``) and the curves (``plots``)."""
        if self.config.final_checkpoint:
            self.save_checkpoint()
        if self.config.final_model:
            self.save_model()
        if self.config.plots and self.dist.is_main:
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
        if not self.dist.is_main:  # every rank has the same metrics: rank 0 writes them
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")
        if self._log is not None:
            self._log(metrics)

    def _postfix(self, metrics: Mapping[str, Any]) -> dict[str, str]:
        """The progress bar's figures; a skipped step shows "skipped" where its loss would be."""
        shown = {}
        for key, label in self.progress_keys:
            value = metrics.get(key)
            if isinstance(value, float):
                shown[label] = f"{value:.3g}"
            elif value is None:
                shown[label] = "skipped" if metrics.get("skipped") else "-"
            else:
                shown[label] = str(value)
        return shown

    def _progress(self, total: int) -> Any:
        shown = self.config.progress and self.dist.is_main
        return progress_bar(total, self.step, enabled=shown, desc=self.name)


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _unwrapped_architectures(folder: Path) -> None:
    """``config.json`` names the model's class, which FSDP had renamed ``FSDP<Class>``: the
    saved model names its own."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    names = config.get("architectures") or []
    config["architectures"] = [name.removeprefix("FSDP") for name in names]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _summed(shares: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each key's sum over the ranks' metric shares."""
    total: dict[str, float] = {}
    for share in shares:
        for key, value in share.items():
            total[key] = total.get(key, 0.0) + value
    return total


def frozen_to_bf16(model: Any) -> Any:
    """Store ``model``'s frozen floating-point parameters in bf16, in place; trainable ones
    and buffers (rotary frequencies) keep their dtype. Returns ``model``."""
    for parameter in model.parameters():
        if not parameter.requires_grad and parameter.is_floating_point():
            parameter.data = parameter.data.to(torch.bfloat16)
    return model


def with_lora(model: Any, rank: int, alpha: int) -> Any:
    """``model`` with LoRA adapters on every linear layer, only the adapters trainable. The
    adapters start at zero, so the wrapped model computes what the base model does."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise RLEnvError("lora_rank > 0 needs peft: pip install 'rlenv[lora]'") from None
    lora = LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)
