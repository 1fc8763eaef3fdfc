"""Training on several processes: PyTorch's own FSDP2 (``fully_shard``), launched by ``torchrun``.

``torchrun --nproc_per_node=N -m rlenv train ...`` (or ``train-sft``, ``train-dpo``) starts N
processes; each finds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its environment, and
:meth:`Distributed.from_environment` joins them in a process group (NCCL on CUDA, gloo on the
CPU). Nothing here schedules anything: ``torchrun`` starts the processes, ``torch.distributed``
moves the tensors, and FSDP2 shards the parameters, gradients and optimizer state.

How the trainers use it (:class:`~rlenv.train._runtime.Trainer`):

- :func:`shard_model`: every decoder layer is its own FSDP unit, then the whole model (the
  embeddings, the final norm and the output layer are the root unit's), each with a bf16
  :class:`~torch.distributed.fsdp.MixedPrecisionPolicy` under bf16 (fp32 master weights and
  gradient reduction). Log-probs run through one registered root method
  (:func:`run_sharded`), so the chunked output layer of
  :func:`~rlenv.train.algorithm.token_logprobs` gathers the root's parameters once per
  forward, however many chunks a rank's sequences need;
- every rank takes the same number of forward and backward passes (a rank with fewer
  micro-batches runs placeholders that contribute exactly 0), since each pass is a collective;
- the loss is ``sum over the rank's tokens / the global normaliser``, times the number of
  processes, because FSDP averages the gradients: the ranks' gradients then sum to the
  gradient of the whole batch's loss, as on one process;
- :func:`gathered` holds the full parameters for generation (one all-gather per unit, then no
  collective while a rank decodes as many tokens as its episodes need);
- checkpoints are ``torch.distributed.checkpoint`` (DCP) folders, each rank writing its shards.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from rlenv.errors import RLEnvError

__all__ = [
    "Distributed",
    "decoder_layers",
    "full_state_dict",
    "gathered",
    "run_sharded",
    "shard_model",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes; one process when ``world_size`` is 1
    (every collective is then the identity, and nothing imports ``torch.distributed``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, plots and writes the files every rank shares."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: str | None = None) -> Distributed:
        """Join the process group ``torchrun`` set up (``WORLD_SIZE`` > 1), or one process.

        The backend is NCCL when the device is CUDA, gloo on the CPU. A process group already
        initialised by the caller is used as it is."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
            dist.init_process_group(
                "nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=30)
            )
        return cls(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )

    def device(self, configured: str | None) -> str:
        """The device this rank computes on: ``cuda:LOCAL_RANK`` when the run is on CUDA and has
        several processes (each process drives one GPU, whatever index ``configured``
        names), else ``configured`` (default: CUDA if available)."""
        device = configured or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.enabled and device.startswith("cuda"):
            torch.cuda.set_device(self.local_rank)
            return f"cuda:{self.local_rank}"
        return device

    # ------------------------------------------------------------------------ collectives

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: every ``world_size``-th, from its rank."""
        return list(items[self.rank :: self.world_size])

    def block(self, count: int) -> range:
        """This rank's contiguous block of ``count`` things (``count`` divisible by the
        number of processes)."""
        size = count // self.world_size
        return range(self.rank * size, (self.rank + 1) * size)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over the ranks (float64)."""
        if not self.enabled:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def max(self, value: int) -> int:
        """The largest ``value`` of the ranks."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.long, device=self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on some rank."""
        return bool(self.max(int(flag)))

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        if not self.enabled:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group once every rank is done (a process that exits while
        another still talks to it can abort the other)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def _collective_device(self) -> str:
        import torch.distributed as dist

        return f"cuda:{self.local_rank}" if dist.get_backend() == "nccl" else "cpu"


# ---------------------------------------------------------------------------------- sharding


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The repeated blocks of a ``transformers`` model (the classes it names in
    ``_no_split_modules``, as ``accelerate``'s FSDP wrapping reads them), under a ``peft``
    wrapper too."""
    language_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(language_model, "_no_split_modules", None) or ())
    return [module for module in model.modules() if type(module).__name__ in names]


def shard_model(model: Any, *, bf16: bool, device_type: str = "cpu") -> Any:
    """Shard ``model`` over every process with FSDP2, in place: each decoder layer, then the
    root (embeddings, final norm, output layer). Under ``bf16``, parameters are gathered and
    computed in bf16 while the sharded parameters (the optimizer's) and the gradient reduction
    stay fp32. Registers :func:`run_sharded`'s root method. Returns ``model``."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    layers = decoder_layers(model)
    if not layers:
        raise RLEnvError(
            f"cannot shard {type(model).__name__}: it names no decoder layer class in "
            "_no_split_modules (a transformers causal LM does); train it on one process"
        )
    import torch.distributed as dist

    mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    _register_root_method(model)
    return model


def _call_inside(self: Any, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(self, *args, **kwargs)


def _register_root_method(model: Any) -> None:
    from torch.distributed.fsdp import register_fsdp_forward_method

    model.rlenv_run = types.MethodType(_call_inside, model)
    register_fsdp_forward_method(model, "rlenv_run")


def run_sharded(model: Any, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(model, *args, **kwargs)`` as one forward pass of ``model``'s root FSDP unit:
    its parameters are gathered before and (in training) reduced after, once, whatever
    ``function`` calls inside (the decoder, then the output layer chunk by chunk). On a model
    :func:`shard_model` did not shard, a plain call."""
    method = getattr(model, "rlenv_run", None)
    if method is None:
        return function(model, *args, **kwargs)
    return method(function, *args, **kwargs)


def _units(model: Any) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [module for module in model.modules() if isinstance(module, FSDPModule)]


@contextlib.contextmanager
def gathered(model: Any) -> Iterator[None]:
    """Hold ``model``'s full parameters (in the mixed-precision dtype) while inside: one
    all-gather per unit on entry, none while decoding, whose number of forward passes differs
    between ranks, and the shards back on exit. A model that is not sharded: nothing."""
    units = _units(model) if getattr(model, "rlenv_run", None) is not None else []
    if not units:
        yield
        return
    model.set_reshard_after_forward(False)
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
        for unit in units:
            if unit is not model:  # the root keeps its parameters from forward to backward
                unit.set_reshard_after_forward(True, recurse=False)


def full_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The whole model's parameters and buffers on the CPU, gathered from the shards (a
    collective: every rank calls it); on rank 0 only, empty elsewhere."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
