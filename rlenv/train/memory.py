"""How much GPU memory a training run needs, computed from the model's shape.

:func:`estimate_memory` adds up, per GPU, every large buffer of a GRPO/SFT/DPO step on a
decoder-only transformer (Llama and Qwen2 layouts):

- **model state**: the weights (fp32 master, plus a bf16 compute copy under mixed precision),
  fp32 gradients, AdamW's two fp32 moments, and a frozen reference model (a copy in the
  compute dtype, none when ``beta = 0``, or LoRA's disabled adapters, which cost nothing).
  Under LoRA the frozen base is stored in the compute dtype and only the adapters carry
  gradients and optimizer state. Under FSDP all of it is divided by the number of GPUs, and
  the units being all-gathered (the layer in flight, the prefetched one, and the root unit
  with the embeddings and the output layer) are added back unsharded;
- **activations** of one micro-batch: with gradient checkpointing, each layer's input hidden
  state plus one layer recomputed in full; without it, every layer in full
  (:func:`layer_activation_bytes`, checked against what autograd saves);
- **the loss-time logits**: the naive path holds ``[tokens x vocabulary]`` logits in the
  compute dtype and several fp32 tensors of that size (the upcast, the tempered logits, the
  softmax of the backward pass, the gradients): :data:`LOGIT_BYTES` a logit, measured; a
  chunked path holds one chunk of them;
- **generation's key/value cache**, in a separate phase (rollouts do not overlap the
  backward pass): the peak is the larger of the two phases. Under FSDP the trainer gathers
  the whole trained model in the compute dtype for generation
  (:func:`rlenv.train.distributed.gathered`), which that phase holds besides the shards.

Every term is a product of counts from :class:`ModelShape`. The parameter counts are exact
(tested against the model ``transformers`` builds on the ``meta`` device) and the per-layer
activations equal what autograd saves on the CPU (tested), as the logits' bytes were measured
there; FSDP's buffers and the allocator's overhead are a tally. Nothing here was measured on a
GPU.
:func:`render` prints the tables in ``docs/training.md``; ``python -m rlenv.train.memory``
regenerates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "GIB",
    "GPU_BYTES",
    "LOGIT_BYTES",
    "MODEL_SHAPES",
    "TABLE_SETTINGS",
    "TABLE_WORKLOAD",
    "USABLE_FRACTION",
    "MemoryEstimate",
    "ModelShape",
    "Setting",
    "Workload",
    "estimate_memory",
    "layer_activation_bytes",
    "memory_table",
    "meta_parameter_count",
    "parameter_table",
    "render",
]

GIB = 2**30
GPU_BYTES = 80 * GIB
"""An "80 GB" GPU (A100 80GB, H100 80GB): 80 GiB of device memory."""
LOGIT_BYTES = 20
"""Peak bytes per ``[position x vocabulary]`` logit of the loss's forward and backward pass on
the naive path (:func:`rlenv.train.algorithm.token_logprobs`: the output layer's logits, their
fp32 upcast divided by the temperature, log-sum-exp and gather, and the gradients back to the
output layer): the peak of live tensor bytes ``torch.profiler`` records on the CPU, 20.0 with
bf16 and with fp32 logits, with or without the entropy (tested in
``tests/train/test_memory.py``)."""
USABLE_FRACTION = 0.9
"""The share of a GPU a run may plan to use: the rest goes to the CUDA context, NCCL buffers,
the caching allocator's fragmentation and transient buffers this tally does not itemise."""

_FP32 = 4
_BF16 = 2
Precision = Literal["fp32", "bf16"]
Reference = Literal["none", "copy", "adapters"]


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Llama/Qwen2-style decoder that decide its memory.

    ``qkv_bias`` is Qwen2's bias on the query, key and value projections; ``head_dim``
    defaults to ``hidden_size / num_attention_heads``. ``published_parameters`` is the count
    the model card states, rounded as it states it, and ``source`` the card or config.json the
    numbers come from.
    """

    name: str
    family: Literal["llama", "qwen2"]
    hidden_size: int
    num_layers: int
    intermediate_size: int
    vocab_size: int
    num_attention_heads: int
    num_key_value_heads: int
    tie_word_embeddings: bool
    qkv_bias: bool = False
    head_dim: int | None = None
    published_parameters: str = ""
    source: str = ""

    @property
    def attention_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def query_size(self) -> int:
        """Width of the query projection's output (heads x head dim)."""
        return self.num_attention_heads * self.attention_head_dim

    @property
    def key_value_size(self) -> int:
        """Width of the key (and of the value) projection's output (grouped-query attention)."""
        return self.num_key_value_heads * self.attention_head_dim

    @property
    def layer_parameters(self) -> int:
        """Parameters of one decoder layer: attention, gated MLP, two RMSNorm weights."""
        hidden, query, key_value = self.hidden_size, self.query_size, self.key_value_size
        attention = hidden * query + 2 * hidden * key_value + query * hidden
        if self.qkv_bias:
            attention += query + 2 * key_value
        mlp = 3 * hidden * self.intermediate_size
        return attention + mlp + 2 * hidden

    @property
    def embedding_parameters(self) -> int:
        """The input embedding and the output layer (one matrix when tied)."""
        matrices = 1 if self.tie_word_embeddings else 2
        return matrices * self.vocab_size * self.hidden_size

    @property
    def root_parameters(self) -> int:
        """What FSDP's root unit holds once every layer is its own unit: embeddings, output
        layer and the final norm."""
        return self.embedding_parameters + self.hidden_size

    @property
    def parameters(self) -> int:
        """All parameters, a tied matrix counted once (as ``model.parameters()`` yields it)."""
        return self.num_layers * self.layer_parameters + self.root_parameters

    def lora_parameters(self, rank: int) -> int:
        """Adapter parameters of LoRA at ``rank`` on every linear layer of every decoder layer
        (peft's ``target_modules="all-linear"``, which leaves the output layer out): a linear
        map ``in -> out`` gains ``rank x (in + out)``."""
        hidden, query, key_value = self.hidden_size, self.query_size, self.key_value_size
        inter = self.intermediate_size
        per_layer = (
            (hidden + query)  # q_proj
            + 2 * (hidden + key_value)  # k_proj, v_proj
            + (query + hidden)  # o_proj
            + 2 * (hidden + inter)  # gate_proj, up_proj
            + (inter + hidden)  # down_proj
        )
        return rank * per_layer * self.num_layers

    def transformers_config(self) -> Any:
        """The ``transformers`` config of this shape (``Qwen2Config`` or ``LlamaConfig``)."""
        import transformers

        common = dict(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            tie_word_embeddings=self.tie_word_embeddings,
        )
        if self.family == "qwen2":
            if not self.qkv_bias or self.head_dim not in (None, self.attention_head_dim):
                raise ValueError("Qwen2's layout has a q/k/v bias and head_dim = hidden / heads")
            return transformers.Qwen2Config(**common)
        return transformers.LlamaConfig(
            **common, attention_bias=self.qkv_bias, head_dim=self.attention_head_dim
        )


def meta_parameter_count(config: Any) -> int:
    """Parameters of the causal LM ``transformers`` builds from ``config``, built on the
    ``meta`` device (no memory, no download): the count to check :attr:`ModelShape.parameters`
    against."""
    import torch
    import transformers

    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(parameter.numel() for parameter in model.parameters())


MODEL_SHAPES: dict[str, ModelShape] = {
    shape.name: shape
    for shape in (
        ModelShape(
            "SmolLM2-135M",
            "llama",
            hidden_size=576,
            num_layers=30,
            intermediate_size=1536,
            vocab_size=49152,
            num_attention_heads=9,
            num_key_value_heads=3,
            tie_word_embeddings=True,
            head_dim=64,
            published_parameters="135M",
            source="https://huggingface.co/HuggingFaceTB/SmolLM2-135M/blob/main/config.json",
        ),
        ModelShape(
            "Qwen2.5-0.5B",
            "qwen2",
            hidden_size=896,
            num_layers=24,
            intermediate_size=4864,
            vocab_size=151936,
            num_attention_heads=14,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            qkv_bias=True,
            published_parameters="0.49B (0.36B non-embedding)",
            source="https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json",
        ),
        ModelShape(
            "Qwen2.5-1.5B",
            "qwen2",
            hidden_size=1536,
            num_layers=28,
            intermediate_size=8960,
            vocab_size=151936,
            num_attention_heads=12,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            qkv_bias=True,
            published_parameters="1.54B (1.31B non-embedding)",
            source="https://huggingface.co/Qwen/Qwen2.5-1.5B/blob/main/config.json",
        ),
        ModelShape(
            "Qwen2.5-7B",
            "qwen2",
            hidden_size=3584,
            num_layers=28,
            intermediate_size=18944,
            vocab_size=152064,
            num_attention_heads=28,
            num_key_value_heads=4,
            tie_word_embeddings=False,
            qkv_bias=True,
            published_parameters="7.61B (6.53B non-embedding)",
            source="https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json",
        ),
        ModelShape(
            "Llama-3.1-8B",
            "llama",
            hidden_size=4096,
            num_layers=32,
            intermediate_size=14336,
            vocab_size=128256,
            num_attention_heads=32,
            num_key_value_heads=8,
            tie_word_embeddings=False,
            published_parameters="8B (8.03B on the Hub)",
            source="https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json",
        ),
    )
}
"""Published shapes, numbers from each model's config.json (``source``)."""


def layer_activation_bytes(shape: ModelShape, compute_bytes: int) -> int:
    """Bytes autograd saves per token for the backward pass of one decoder layer (Hugging
    Face's Llama/Qwen2 code with SDPA attention, flash or memory-efficient: no ``[L x L]``
    matrix), with the weights stored in the compute dtype.

    In the compute dtype: per RMSNorm, its output and the normalised value its weight
    multiplies (``2 x 2 H``); q and k after the rotary embedding and v (``q + 2 kv``); the
    attention output, which ``o_proj`` reads (``q``); the MLP's gate, up, ``silu(gate)`` and
    their product (``4 I``). In fp32: each RMSNorm's upcast input (``2 H``) and its per-token
    inverse RMS (2), and the attention's log-sum-exp per head. The rotary tables (``2 x
    head_dim`` a token) are shared by every layer and left out. The tally equals what
    ``saved_tensors_hooks`` records on a bf16 and an fp32 model on the CPU (tested).
    """
    hidden, query, key_value = shape.hidden_size, shape.query_size, shape.key_value_size
    in_compute = 4 * hidden + 2 * query + 2 * key_value + 4 * shape.intermediate_size
    in_fp32 = 2 * hidden + shape.num_attention_heads + 2
    return compute_bytes * in_compute + _FP32 * in_fp32


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU, term by term (see :func:`estimate_memory`).

    Model state persists across the step: ``weights`` (master copy, or the frozen LoRA base
    plus its adapters), ``compute_copy`` (bf16 copy of the trainable weights, mixed precision
    on one GPU), ``optimizer`` and ``reference``. ``gradients`` exist from the backward pass to
    the optimizer step. ``in_flight_parameters`` / ``in_flight_gradients`` are FSDP's unsharded
    units. ``activations`` and ``logits`` belong to the training phase, ``kv_cache`` and
    ``gathered_for_generation`` (FSDP: the whole model unsharded in the compute dtype) to
    generation.
    """

    parameters: int
    trainable_parameters: int
    gpus: int
    weights: int
    compute_copy: int
    gradients: int
    optimizer: int
    reference: int
    in_flight_parameters: int
    in_flight_gradients: int
    activations: int
    logits: int
    kv_cache: int
    gathered_for_generation: int = 0
    gpu_bytes: int = field(default=GPU_BYTES)

    @property
    def model_state(self) -> int:
        """Weights, copies, gradients, optimizer, reference and FSDP's units in flight."""
        return (
            self.weights
            + self.compute_copy
            + self.gradients
            + self.optimizer
            + self.reference
            + self.in_flight_parameters
            + self.in_flight_gradients
        )

    @property
    def bytes_per_parameter(self) -> float:
        """Model state on one GPU divided by the model's parameter count."""
        return self.model_state / self.parameters

    @property
    def training_peak(self) -> int:
        """The backward pass: model state, one micro-batch's activations, the loss's logits."""
        return self.model_state + self.activations + self.logits

    @property
    def generation_peak(self) -> int:
        """Rollouts: the persistent state (no gradients; under FSDP the whole model gathered
        instead of the units in flight) and the key/value cache."""
        persistent = self.model_state - self.gradients - self.in_flight_gradients
        if self.gathered_for_generation:
            persistent += self.gathered_for_generation - self.in_flight_parameters
        return persistent + self.kv_cache

    @property
    def peak(self) -> int:
        return max(self.training_peak, self.generation_peak)

    @property
    def fits(self) -> bool:
        """Whether :attr:`peak` is within :data:`USABLE_FRACTION` of the GPU's memory."""
        return self.peak <= USABLE_FRACTION * self.gpu_bytes


def estimate_memory(
    shape: ModelShape,
    *,
    precision: Precision = "bf16",
    lora_rank: int = 0,
    reference: Reference = "none",
    fsdp_world_size: int = 1,
    batch_tokens: int = 0,
    logprob_chunk_tokens: int | None = None,
    logprob_chunk_vocab: int | None = None,
    gradient_checkpointing: bool = True,
    kv_cache_tokens: int = 0,
    fsdp_prefetch_layers: int = 1,
    gpu_bytes: int = GPU_BYTES,
) -> MemoryEstimate:
    """Per-GPU memory of a training step of ``shape`` with AdamW.

    Args:
        precision: ``"fp32"``: weights, gradients and compute in fp32. ``"bf16"``: fp32 master
            weights, gradients and optimizer state, bf16 compute; frozen weights (the LoRA
            base, the reference) are stored in bf16. On one GPU the trainable weights also
            have a bf16 compute copy (2 bytes a parameter); under FSDP the bf16 copy exists only
            for the units being all-gathered (FSDP2's ``MixedPrecisionPolicy(param_dtype=bf16,
            reduce_dtype=fp32)``).
        lora_rank: > 0: LoRA adapters on every linear layer; the base is frozen, stored in the
            compute dtype, and has no gradients or optimizer state.
        reference: the KL reference model: ``"none"`` (``beta = 0``), ``"copy"`` (a frozen
            copy in the compute dtype, sharded like the policy under FSDP) or ``"adapters"``
            (LoRA with its adapters disabled: no extra memory).
        fsdp_world_size: GPUs the model state is sharded over (1: no FSDP).
        batch_tokens: tokens in one micro-batch's forward pass, prompt and completion; every
            position is counted in the logits too (an upper bound: prompt positions skip the
            output layer).
        logprob_chunk_tokens, logprob_chunk_vocab: the size of the logits block the loss holds
            at once, in positions and in vocabulary entries (``None``: all of them, the naive
            path). A chunked path must free or recompute each chunk's logits before the next
            (a custom backward or per-chunk checkpointing), or nothing is saved.
        gradient_checkpointing: keep each layer's input only and recompute the layer in the
            backward pass.
        kv_cache_tokens: tokens held in generation's key/value cache (sequences x length).
        fsdp_prefetch_layers: layers FSDP all-gathers ahead of the one computing (FSDP2's
            default prefetches one).
        gpu_bytes: the GPU's memory, for :attr:`MemoryEstimate.fits`.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if reference not in ("none", "copy", "adapters"):
        raise ValueError(f"reference must be 'none', 'copy' or 'adapters', got {reference!r}")
    if reference == "adapters" and lora_rank == 0:
        raise ValueError("reference='adapters' needs lora_rank > 0 (LoRA's disabled adapters)")
    if lora_rank < 0 or fsdp_world_size < 1 or batch_tokens < 0 or kv_cache_tokens < 0:
        raise ValueError("lora_rank, batch_tokens, kv_cache_tokens >= 0 and fsdp_world_size >= 1")
    compute = _BF16 if precision == "bf16" else _FP32
    gpus = fsdp_world_size
    total = shape.parameters

    if lora_rank:
        trainable = shape.lora_parameters(lora_rank)
        stored = total * compute + trainable * _FP32  # frozen base + fp32 adapters
    else:
        trainable = total
        stored = total * _FP32
    weights = stored // gpus
    gradients = trainable * _FP32 // gpus
    optimizer = 2 * trainable * _FP32 // gpus  # AdamW: exp_avg and exp_avg_sq
    reference_bytes = total * compute // gpus if reference == "copy" else 0
    compute_copy = 0
    in_flight_parameters = in_flight_gradients = gathered_for_generation = 0
    if gpus == 1:
        if precision == "bf16":
            compute_copy = trainable * _BF16
    else:
        # the root unit stays gathered from forward to backward; each layer is gathered
        # while it computes, with the next ones prefetched
        units = shape.root_parameters + (1 + fsdp_prefetch_layers) * shape.layer_parameters
        in_flight_parameters = units * compute
        if not lora_rank:  # unsharded gradients before the fp32 reduce-scatter
            in_flight_gradients = (shape.root_parameters + shape.layer_parameters) * _FP32
        gathered_for_generation = total * compute  # every unit unsharded while sampling

    per_layer = layer_activation_bytes(shape, compute)
    if gradient_checkpointing:
        activations = batch_tokens * (shape.num_layers * shape.hidden_size * compute + per_layer)
    else:
        activations = batch_tokens * shape.num_layers * per_layer
    activations += batch_tokens * (shape.hidden_size * compute + 2 * shape.hidden_size * _FP32)

    positions = min(batch_tokens, logprob_chunk_tokens or batch_tokens)
    vocabulary = min(shape.vocab_size, logprob_chunk_vocab or shape.vocab_size)
    logits = positions * vocabulary * LOGIT_BYTES

    kv_cache = kv_cache_tokens * 2 * shape.num_layers * shape.key_value_size * compute

    return MemoryEstimate(
        parameters=total,
        trainable_parameters=trainable,
        gpus=gpus,
        weights=weights,
        compute_copy=compute_copy,
        gradients=gradients,
        optimizer=optimizer,
        reference=reference_bytes,
        in_flight_parameters=in_flight_parameters,
        in_flight_gradients=in_flight_gradients,
        gathered_for_generation=gathered_for_generation,
        activations=activations,
        logits=logits,
        kv_cache=kv_cache,
        gpu_bytes=gpu_bytes,
    )


# ---- the table in docs/training.md


@dataclass(frozen=True)
class Workload:
    """What one GPU processes: a micro-batch of ``micro_batch`` sequences of ``prompt_tokens +
    completion_tokens`` in training, ``generation_batch`` of them in generation."""

    prompt_tokens: int = 512
    completion_tokens: int = 4096
    micro_batch: int = 4
    generation_batch: int = 64
    logprob_chunk_tokens: int = 1024

    @property
    def sequence_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Setting:
    """One row's settings in the table: :func:`estimate_memory`'s keywords and a label."""

    label: str
    precision: Precision = "bf16"
    lora_rank: int = 0
    reference: Reference = "none"
    gpus: int = 1
    chunked: bool = True


TABLE_WORKLOAD = Workload()
TABLE_SETTINGS: tuple[Setting, ...] = (
    Setting("fp32, fp32 reference copy, naive log-probs", "fp32", reference="copy", chunked=False),
    Setting("bf16 mixed, β = 0, naive log-probs", chunked=False),
    Setting("bf16 mixed, β = 0, chunked log-probs"),
    Setting("bf16 mixed, bf16 reference, chunked", reference="copy"),
    Setting("LoRA r = 64, bf16 base, reference = adapters off", lora_rank=64, reference="adapters"),
    Setting("FSDP, bf16 mixed, bf16 reference, chunked", reference="copy", gpus=8),
)  # fmt: skip
TABLE_MODELS = ("Qwen2.5-1.5B", "Qwen2.5-7B", "Llama-3.1-8B")


def _estimate(shape: ModelShape, setting: Setting, workload: Workload) -> MemoryEstimate:
    return estimate_memory(
        shape,
        precision=setting.precision,
        lora_rank=setting.lora_rank,
        reference=setting.reference,
        fsdp_world_size=setting.gpus,
        batch_tokens=workload.micro_batch * workload.sequence_tokens,
        logprob_chunk_tokens=workload.logprob_chunk_tokens if setting.chunked else None,
        gradient_checkpointing=True,
        kv_cache_tokens=workload.generation_batch * workload.sequence_tokens,
    )


def _gib(value: int) -> str:
    return f"{value / GIB:.1f}"


def memory_table(
    models: tuple[str, ...] = TABLE_MODELS,
    settings: tuple[Setting, ...] = TABLE_SETTINGS,
    workload: Workload = TABLE_WORKLOAD,
) -> str:
    """The Markdown table of ``docs/training.md``: per model and setting, the model state's
    bytes per parameter and GiB per GPU, the training and generation peaks, and whether the
    peak fits an 80 GB GPU."""
    usable = USABLE_FRACTION * GPU_BYTES / GIB
    lines = [
        "| model | setting | GPUs | bytes / param | model state | activations | logits | "
        "KV cache | peak (GiB / GPU) | fits 80 GB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in models:
        shape = MODEL_SHAPES[name]
        for setting in settings:
            estimate = _estimate(shape, setting, workload)
            phase = "train" if estimate.training_peak >= estimate.generation_peak else "generate"
            verdict = "yes" if estimate.fits else f"**no** (> {usable:.0f})"
            lines.append(
                f"| {name} | {setting.label} | {setting.gpus} | "
                f"{estimate.bytes_per_parameter:.2f} | {_gib(estimate.model_state)} | "
                f"{_gib(estimate.activations)} | {_gib(estimate.logits)} | "
                f"{_gib(estimate.kv_cache)} | {_gib(estimate.peak)} ({phase}) | {verdict} |"
            )
    return "\n".join(lines)


def parameter_table() -> str:
    """Each shape's parameter count computed here beside the count its model card states."""
    lines = ["| model | parameters (computed) | non-embedding | published |", "|---|---|---|---|"]
    for shape in MODEL_SHAPES.values():
        lines.append(
            f"| {shape.name} | {shape.parameters:,} | "
            f"{shape.parameters - shape.embedding_parameters:,} | {shape.published_parameters} |"
        )
    return "\n".join(lines)


def _workload_line(workload: Workload = TABLE_WORKLOAD) -> str:
    return (
        f"Workload per GPU: micro-batches of {workload.micro_batch} sequences x "
        f"({workload.prompt_tokens} prompt + {workload.completion_tokens} completion) tokens, "
        f"gradient checkpointing on, log-probs chunked by {workload.logprob_chunk_tokens} "
        f"positions where it says so, generation of {workload.generation_batch} such sequences "
        f"at once. Fits: peak <= {USABLE_FRACTION:.0%} of 80 GiB."
    )


def render() -> str:
    """The text ``docs/training.md`` shows between its ``memory-table`` markers: the workload,
    the memory table and the parameter counts."""
    return "\n\n".join((_workload_line(), memory_table(), parameter_table()))


def main() -> None:
    """Print :func:`render` (``python -m rlenv.train.memory``)."""
    print(render())


if __name__ == "__main__":
    main()
