"""The memory estimator: exact parameter counts, each term on hand-checked numbers, and the
docs' table kept equal to what the code prints."""

from __future__ import annotations

import re
from inspect import signature
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlenv.train.memory import (
    LOGIT_BYTES,
    MODEL_SHAPES,
    TABLE_SETTINGS,
    TABLE_WORKLOAD,
    ModelShape,
    estimate_memory,
    layer_activation_bytes,
    meta_parameter_count,
    render,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"

# hidden 8, 2 layers, MLP 16, vocabulary 32, 2 query heads and 1 key/value head of size 4
SMALL = ModelShape(
    "small", "llama", hidden_size=8, num_layers=2, intermediate_size=16, vocab_size=32,
    num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False,
)  # fmt: skip
# by hand: q 8x8, k and v 8x4 each, o 8x8, MLP 3x8x16, two norms of 8
SMALL_LAYER = 64 + 2 * 32 + 64 + 384 + 16  # 592
SMALL_ROOT = 2 * 32 * 8 + 8  # embedding, untied output layer, final norm: 520
SMALL_TOTAL = 2 * SMALL_LAYER + SMALL_ROOT  # 1704


def test_small_shape_counted_by_hand():
    assert (SMALL.layer_parameters, SMALL.root_parameters) == (SMALL_LAYER, SMALL_ROOT)
    assert SMALL.parameters == SMALL_TOTAL == 1704


@pytest.mark.parametrize(
    "shape",
    [
        SMALL,
        ModelShape("tied-qwen", "qwen2", hidden_size=16, num_layers=3, intermediate_size=40,
                   vocab_size=50, num_attention_heads=4, num_key_value_heads=2,
                   tie_word_embeddings=True, qkv_bias=True),
        ModelShape("head-dim", "llama", hidden_size=24, num_layers=2, intermediate_size=40,
                   vocab_size=50, num_attention_heads=3, num_key_value_heads=1,
                   tie_word_embeddings=True, head_dim=16),
        MODEL_SHAPES["Qwen2.5-1.5B"],  # tied, q/k/v bias
        MODEL_SHAPES["Llama-3.1-8B"],  # untied, grouped-query attention
    ],
    ids=lambda shape: shape.name,
)  # fmt: skip
def test_parameter_count_equals_the_model_transformers_builds(shape):
    pytest.importorskip("transformers")
    assert shape.parameters == meta_parameter_count(shape.transformers_config())


def test_counts_match_the_published_ones():
    """The model cards' figures, to the digits they give."""
    qwen_small, qwen_7b = MODEL_SHAPES["Qwen2.5-1.5B"], MODEL_SHAPES["Qwen2.5-7B"]
    assert round(qwen_small.parameters / 1e9, 2) == 1.54
    assert round((qwen_small.parameters - qwen_small.embedding_parameters) / 1e9, 2) == 1.31
    assert abs(qwen_7b.parameters / 1e9 - 7.61) < 0.01  # 7,615,616,512: the card says 7.61B
    assert round((qwen_7b.parameters - qwen_7b.embedding_parameters) / 1e9, 2) == 6.53
    assert round(MODEL_SHAPES["Llama-3.1-8B"].parameters / 1e9, 2) == 8.03
    assert round(MODEL_SHAPES["SmolLM2-135M"].parameters / 1e6) == 135


def test_smollm2_shape_is_the_shipped_models():
    """The SmolLM2 shape against the config.json rlenv's offline model ships with, and its
    weight file: 4 bytes a parameter plus a small safetensors header."""
    import json

    from rlenv.models import ALIASES, cache_dir

    folder = cache_dir() / "models" / ALIASES["smollm2-135m"]
    if not (folder / "config.json").exists():
        pytest.skip("the offline SmolLM2 model is not unpacked here")
    config = json.loads((folder / "config.json").read_text())
    shape = MODEL_SHAPES["SmolLM2-135M"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]) == (
        shape.hidden_size, shape.num_layers, shape.intermediate_size,
    )  # fmt: skip
    assert (config["vocab_size"], config["num_key_value_heads"]) == (
        shape.vocab_size, shape.num_key_value_heads,
    )  # fmt: skip
    header = (folder / "model.safetensors").stat().st_size - 4 * shape.parameters
    assert 0 < header < 100_000


def test_lora_parameters_equal_peft_all_linear():
    pytest.importorskip("peft")
    import peft
    import transformers

    transformers.set_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(SMALL.transformers_config())
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules="all-linear"))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert trainable == SMALL.lora_parameters(4)
    # by hand, per layer: q 8+8, k and v 8+4 each, o 8+8, gate and up 8+16 each, down 16+8
    assert SMALL.lora_parameters(4) == 4 * 2 * (16 + 24 + 16 + 48 + 24)


def test_full_fine_tuning_terms_on_one_gpu():
    bf16 = estimate_memory(SMALL, precision="bf16")
    assert (bf16.weights, bf16.compute_copy, bf16.gradients, bf16.optimizer) == (
        4 * 1704, 2 * 1704, 4 * 1704, 8 * 1704,
    )  # fmt: skip
    assert bf16.reference == bf16.in_flight_parameters == bf16.in_flight_gradients == 0
    assert bf16.bytes_per_parameter == 18
    assert estimate_memory(SMALL, reference="copy").reference == 2 * 1704  # bf16 copy
    fp32 = estimate_memory(SMALL, precision="fp32", reference="copy")
    assert fp32.compute_copy == 0 and fp32.reference == 4 * 1704
    assert fp32.bytes_per_parameter == 4 + 4 + 8 + 4


def test_lora_terms():
    adapters = SMALL.lora_parameters(4)
    lora = estimate_memory(SMALL, lora_rank=4, reference="adapters")
    assert lora.trainable_parameters == adapters
    assert lora.weights == 2 * 1704 + 4 * adapters  # bf16 base, fp32 adapters
    assert (lora.gradients, lora.optimizer, lora.compute_copy) == (
        4 * adapters, 8 * adapters, 2 * adapters,
    )  # fmt: skip
    assert lora.reference == 0
    with pytest.raises(ValueError, match="lora_rank"):
        estimate_memory(SMALL, reference="adapters")


def test_fsdp_divides_the_state_and_adds_the_units_in_flight():
    one = estimate_memory(SMALL, reference="copy")
    eight = estimate_memory(SMALL, reference="copy", fsdp_world_size=8)
    for term in ("weights", "gradients", "optimizer", "reference"):
        assert getattr(eight, term) == getattr(one, term) // 8
    assert eight.compute_copy == 0  # bf16 exists only for the gathered units
    # root unit + the layer computing + one prefetched, in bf16; root and one layer's fp32 grads
    assert eight.in_flight_parameters == (SMALL_ROOT + 2 * SMALL_LAYER) * 2
    assert eight.in_flight_gradients == (SMALL_ROOT + SMALL_LAYER) * 4
    # generation holds the whole model gathered in bf16 (not the units), and no gradients
    assert eight.gathered_for_generation == SMALL.parameters * 2
    assert eight.generation_peak == (
        eight.weights + eight.optimizer + eight.reference + SMALL.parameters * 2 + eight.kv_cache
    )
    big = MODEL_SHAPES["Qwen2.5-7B"]
    sharded = estimate_memory(big, fsdp_world_size=8)
    assert sharded.weights + sharded.gradients + sharded.optimizer == 16 * big.parameters // 8


def test_activations_and_kv_cache_by_hand():
    # per token and layer: bf16 4H + 2q + 2kv + 4I = 32+16+8+64; fp32 2H + heads + 2 = 20
    assert layer_activation_bytes(SMALL, 2) == 2 * 120 + 4 * 20 == 320
    final = 8 * 2 + 2 * 8 * 4  # final norm: its bf16 output and fp32 internals, a token
    checkpointed = estimate_memory(SMALL, batch_tokens=10)
    assert checkpointed.activations == 10 * (2 * 8 * 2 + 320) + 10 * final
    full = estimate_memory(SMALL, batch_tokens=10, gradient_checkpointing=False)
    assert full.activations == 10 * 2 * 320 + 10 * final
    # keys and values: 2 x layers x kv width x bf16, per cached token
    assert estimate_memory(SMALL, kv_cache_tokens=10).kv_cache == 10 * 2 * 2 * 4 * 2


def test_logits_naive_and_chunked():
    assert estimate_memory(SMALL, batch_tokens=10).logits == 10 * 32 * LOGIT_BYTES
    assert estimate_memory(SMALL, batch_tokens=10, logprob_chunk_tokens=4).logits == (
        4 * 32 * LOGIT_BYTES
    )


def _with_vocab(vocab: int) -> ModelShape:
    return ModelShape("v", "llama", hidden_size=64, num_layers=2, intermediate_size=128,
                      vocab_size=vocab, num_attention_heads=4, num_key_value_heads=2,
                      tie_word_embeddings=True)  # fmt: skip


def test_chunked_logits_flat_beyond_one_chunk():
    """Chunked over the vocabulary, the loss's term stops growing with the vocabulary once it
    exceeds one chunk; chunked over positions, it stops growing with the batch. The naive term
    grows with both."""
    vocabularies = [1_000, 4_096, 50_000, 150_000]
    chunked = [
        estimate_memory(_with_vocab(v), batch_tokens=2048, logprob_chunk_vocab=4096).logits
        for v in vocabularies
    ]
    naive = [estimate_memory(_with_vocab(v), batch_tokens=2048).logits for v in vocabularies]
    assert chunked[0] < chunked[1] == chunked[2] == chunked[3]
    assert naive[1] < naive[2] < naive[3]
    by_tokens = [
        estimate_memory(_with_vocab(50_000), batch_tokens=t, logprob_chunk_tokens=1024).logits
        for t in (512, 1024, 8192, 65536)
    ]
    assert by_tokens[0] < by_tokens[1] == by_tokens[2] == by_tokens[3]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_layer_activations_equal_what_autograd_saves(dtype):
    """Every tensor one decoder layer saves for its backward pass (parameters aside), counted
    by storage through saved_tensors_hooks, equals the tally (plus the rotary tables, which
    all layers share)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    shape = ModelShape("measured", "llama", hidden_size=64, num_layers=1, intermediate_size=176,
                       vocab_size=64, num_attention_heads=4, num_key_value_heads=2,
                       tie_word_embeddings=False)  # fmt: skip
    config = shape.transformers_config()
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype))
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    tokens = 128
    hidden = torch.randn(1, tokens, 64, dtype=model.dtype, requires_grad=True)
    positions = torch.arange(tokens)[None]
    rotary = model.model.rotary_emb(hidden, positions)
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.model.layers[0](hidden, attention_mask=None, position_embeddings=rotary,
                              position_ids=positions)  # fmt: skip
    compute = 2 if dtype == "bfloat16" else 4
    rotary_tables = 2 * shape.attention_head_dim * compute
    assert sum(saved.values()) == tokens * (layer_activation_bytes(shape, compute) + rotary_tables)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_logit_bytes_measured(dtype):
    """LOGIT_BYTES is the peak of live tensor bytes per logit over a forward and backward pass
    of the trainer's log-probs (fp32, the worst case; bf16 autocast takes 4 bytes less), as
    torch.profiler records every allocation on the CPU."""
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    from rlenv.train.algorithm import token_logprobs

    tokens, vocab = 128, 20_000

    class OutputLayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, 16, dtype=getattr(torch, dtype))
            self.head = torch.nn.Linear(16, vocab, bias=False, dtype=getattr(torch, dtype))

        def forward(self, input_ids, attention_mask):
            return SimpleNamespace(logits=self.head(self.embed(input_ids)))

    torch.manual_seed(0)
    model = OutputLayer()
    ids = torch.randint(0, vocab, (1, tokens + 1))
    mask = torch.ones_like(ids)

    # the naive path: the whole [positions x vocabulary] block at once
    naive = {"chunk_tokens": 0} if "chunk_tokens" in signature(token_logprobs).parameters else {}

    def step(length: int) -> None:
        logprobs, _ = token_logprobs(
            model, ids[:, :length], mask[:, :length], temperature=0.7, entropy=True, **naive
        )
        logprobs.sum().backward()

    step(4)  # the parameters' gradients exist before the measured step, as in training
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step(tokens + 1)
    changes = sorted(
        (event.start_ns(), event.nbytes())
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    measured = peak / (tokens * vocab)
    # fp32 is the worst case (20.0 measured; bf16 16.0): LOGIT_BYTES is that bound.
    expected = LOGIT_BYTES if dtype == "float32" else LOGIT_BYTES - 4
    assert abs(measured - expected) < 0.1, (
        f"the naive log-prob path now peaks at {measured:.2f} bytes a logit in {dtype}: update "
        "LOGIT_BYTES and the docs' table (python -m rlenv.train.memory)"
    )


def test_the_goals_claims():
    """What docs/training.md states: 7B full fine-tuning fits on 80 GB GPUs under FSDP over 8,
    not on one; 1.5B fits on one GPU with 4k-token completions."""
    by_label = {setting.label: setting for setting in TABLE_SETTINGS}
    from rlenv.train.memory import _estimate

    fsdp = by_label["FSDP, bf16 mixed, bf16 reference, chunked"]
    one_gpu = by_label["bf16 mixed, β = 0, chunked log-probs"]
    assert TABLE_WORKLOAD.completion_tokens == 4096 and fsdp.gpus == 8
    assert _estimate(MODEL_SHAPES["Qwen2.5-7B"], fsdp, TABLE_WORKLOAD).fits
    assert not _estimate(MODEL_SHAPES["Qwen2.5-7B"], one_gpu, TABLE_WORKLOAD).fits
    assert _estimate(MODEL_SHAPES["Qwen2.5-1.5B"], one_gpu, TABLE_WORKLOAD).fits


def test_docs_table_is_the_generators_output():
    text = DOCS.read_text()
    found = re.search(r"<!-- memory-table -->\n(.*?)\n<!-- /memory-table -->", text, re.S)
    assert found, "docs/training.md lost its memory-table markers"
    assert found.group(1).strip() == render().strip(), (
        "the memory table in docs/training.md is stale: run python -m rlenv.train.memory"
    )
