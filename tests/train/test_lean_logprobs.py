"""Chunked training log-probs (issue 18, point 2) on tiny causal LMs with large vocabularies:
the same values, entropies and gradients as full-vocabulary logits, and loss-time memory that
does not grow with batch x length x vocabulary beyond one chunk."""

from __future__ import annotations

import warnings
import weakref

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

from rlenv.train.algorithm import shared_prefix_logprobs, token_logprobs  # noqa: E402

TEMPERATURE = 0.7


def _tiny_lm(vocab: int, *, layers: int = 1, seed: int = 0, **extra) -> torch.nn.Module:
    """A randomly initialised Llama (hidden 32) with a large vocabulary."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=None, eos_token_id=None, pad_token_id=0, **extra,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config)


def _batch(vocab: int, rows: int, length: int, *, seed: int = 1):
    """Right-padded ids: row r has ``length - 6 * r`` real tokens."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (rows, length), generator=generator)
    attention = torch.ones_like(ids)
    for row in range(rows):
        attention[row, length - 6 * row :] = 0
    return ids * attention, attention


def _full_logits_logprobs(model, ids, attention, first=0):
    """The oracle: log_softmax over every position's full-vocabulary logits, as the trainer
    computed it before chunking; returns the log-probs and the positions they count at."""
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float() / TEMPERATURE
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1).detach()
    targets = attention[:, 1:].bool()
    targets[:, :first] = False
    return picked * targets, entropy * targets, targets


def _gradients(model, loss) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_chunked_logprobs_equal_full_logits_in_values_entropy_and_gradients():
    """fp32, a 50k vocabulary, chunks of 7 positions (an uneven last one), right padding, a
    prompt skipped (first=5) and a temperature. Against an independent log_softmax: values and
    entropies (near log(50k) = 10.8) to 1e-6 relative, gradients w.r.t. every parameter (up to
    12) to 5e-6; against the unchunked path of the same code, tighter still."""
    vocab = 50_000
    model = _tiny_lm(vocab, layers=2)
    ids, attention = _batch(vocab, 3, 40)
    weights = torch.randn(3, 39, generator=torch.Generator().manual_seed(3))
    expected, expected_entropy, targets = _full_logits_logprobs(model, ids, attention, first=5)
    expected_grad = _gradients(model, (expected * weights).sum())
    results = []
    for chunk in (7, 10_000, 0):  # several chunks (checkpointed), one chunk, unchunked
        logprobs, entropy = token_logprobs(
            model, ids, attention, temperature=TEMPERATURE, first=5, entropy=True,
            chunk_tokens=chunk,
        )  # fmt: skip
        gradient = _gradients(model, (logprobs * weights).sum())
        assert torch.allclose(logprobs, expected, atol=1e-6, rtol=1e-6)
        assert torch.allclose(entropy, expected_entropy, atol=1e-6, rtol=1e-6)
        assert torch.allclose(gradient, expected_grad, atol=5e-6, rtol=1e-6)
        assert (logprobs[~targets] == 0).all()  # prompt and padded targets: 0
        results.append((logprobs, entropy, gradient))
    for chunked in results[:2]:
        for value, unchunked in zip(chunked, results[2], strict=True):
            assert torch.allclose(value, unchunked, atol=2e-6, rtol=1e-6)
    assert targets.sum() > 60


def test_the_shared_prefix_pass_is_chunked_and_equal_too():
    vocab = 50_000
    model = _tiny_lm(vocab, layers=2)
    ids, attention = _batch(vocab, 3, 30)
    ids[1, :9] = ids[0, :9]  # rows 0 and 1 share their prompt
    prefixes = [10, 10, 12]
    expected, expected_entropy, targets = _full_logits_logprobs(model, ids, attention)
    weights = targets.float()
    for row, prefix in enumerate(prefixes):
        weights[row, : prefix - 1] = 0.0
    expected_grad = _gradients(model, (expected * weights).sum())
    logprobs, entropy = shared_prefix_logprobs(
        model, ids, attention, prefixes, temperature=TEMPERATURE, entropy=True, chunk_tokens=5
    )
    gradient = _gradients(model, (logprobs * weights).sum())
    assert torch.allclose(logprobs * weights, expected * weights, atol=1e-6, rtol=1e-6)
    assert torch.allclose(entropy * weights, expected_entropy * weights, atol=1e-6, rtol=1e-6)
    assert torch.allclose(gradient, expected_grad, atol=5e-6, rtol=1e-6)
    assert (logprobs[weights == 0] == 0).all()  # prompts (cached prefixes) and padding


def test_chunks_recomputed_under_bf16_autocast_equal_the_unchunked_pass():
    """The backward pass recomputes each chunk's logits under the forward's autocast state:
    the values are bitwise equal, the gradients equal up to bf16 rounding (each chunk's
    output-layer gradient is rounded to bf16 before the chunks are summed, the unchunked
    product rounds once: a relative difference of about 2e-4 here; bf16's epsilon is 4e-3)."""
    vocab = 20_000
    model = _tiny_lm(vocab)
    ids, attention = _batch(vocab, 2, 24)
    results = []
    for chunk in (4, 0):  # 0: the full-logits path
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logprobs, _ = token_logprobs(model, ids, attention, chunk_tokens=chunk)
        results.append((logprobs, _gradients(model, logprobs.sum())))
    (chunked, chunked_grad), (full, full_grad) = results
    assert torch.equal(chunked, full)
    assert (chunked_grad - full_grad).norm() < 1e-3 * full_grad.norm()
    assert torch.allclose(chunked_grad, full_grad, atol=4e-3 * full_grad.abs().max().item())


def test_lora_adapters_and_their_disabled_base_get_the_same_chunked_logprobs():
    peft = pytest.importorskip("peft")
    vocab = 20_000
    model = peft.get_peft_model(
        _tiny_lm(vocab), peft.LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    )
    ids, attention = _batch(vocab, 2, 24)
    for disabled in (False, True):
        results = []
        for chunk in (5, 0):
            if disabled:
                with model.disable_adapter(), torch.no_grad():
                    results.append((token_logprobs(model, ids, attention, chunk_tokens=chunk)[0],))
                continue
            logprobs, _ = token_logprobs(model, ids, attention, chunk_tokens=chunk)
            results.append((logprobs, _gradients(model, logprobs.sum())))
        for chunked, full in zip(*results, strict=True):
            assert torch.allclose(chunked, full, atol=5e-6, rtol=1e-6)
    assert not torch.allclose(results[0][0], token_logprobs(model, ids, attention)[0])


def test_a_model_whose_logits_are_not_head_of_hidden_falls_back_with_a_warning():
    """Gemma 2 soft-caps its logits after the output layer: the split would be wrong."""
    config = transformers.Gemma2Config(
        vocab_size=5_000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, final_logit_softcapping=0.5,
        bos_token_id=None, eos_token_id=None, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.Gemma2ForCausalLM(config)
    ids, attention = _batch(5_000, 2, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logprobs, _ = token_logprobs(model, ids, attention, temperature=TEMPERATURE)
    assert any("Gemma2ForCausalLM's logits are not" in str(w.message) for w in caught)
    expected, _, _ = _full_logits_logprobs(model, ids, attention)
    assert torch.allclose(logprobs, expected, atol=1e-6, rtol=1e-6)


def test_non_finite_weights_do_not_make_the_split_look_wrong():
    """A diverged step (NaN in the output layer, which the trainer then skips) once made the
    split check fail, warn, and leave the model on the full-logits path for good."""
    model = _tiny_lm(1_000)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    ids, attention = _batch(1_000, 2, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        token_logprobs(model, ids, attention, temperature=TEMPERATURE)
    assert not any("logits are not" in str(w.message) for w in caught)


# ------------------------------------------------------------------------------- memory


class _PeakBytes(TorchDispatchMode):
    """The most bytes of tensor storage alive at once among the storages created while the
    mode is on: every ATen op's outputs are seen (forward, autograd's backward ops on this
    thread, checkpoint recomputation), each storage is counted once when it first appears and
    uncounted when it is freed (a weakref finalizer on the storage). Deterministic, exact for
    tensors, blind to a kernel's internal scratch buffers and to tensors made before the
    mode (the weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self._sizes:
                continue
            self._sizes[key] = size
            self.live += size
            weakref.finalize(storage, self._free, key)
        self.peak = max(self.peak, self.live)
        return out


def _loss_peak(model, vocab: int, length: int, chunk: int | None) -> int:
    """Peak bytes of ``log-probs.sum()``'s forward and backward: chunked by ``chunk``
    positions, or (None) the naive full-logits oracle, as the trainer computed it before."""
    ids, attention = _batch(vocab, 2, length)
    with _PeakBytes() as meter:
        if chunk is None:
            logprobs = _full_logits_logprobs(model, ids, attention, first=4)[0]
        else:
            logprobs, _ = token_logprobs(
                model, ids, attention, temperature=TEMPERATURE, first=4, chunk_tokens=chunk
            )
        logprobs.sum().backward()
    return meter.peak


def test_loss_time_peak_memory_is_flat_in_length_and_one_chunk_in_vocabulary():
    """What is measured (:class:`_PeakBytes`): the peak bytes of tensors alive at once during
    the forward and backward pass of ``token_logprobs(...).sum()`` — the decoder's activations
    and gradients, and every logits-sized tensor of either path. The vocabulary-sized weights
    are frozen, so their gradients (V x hidden, stored once by any path) do not blur it.

    2 rows; 64 or 128 tokens; 50k or 100k vocabulary; chunks of 16 positions. The naive path
    (full-vocabulary logits) grows with rows x length x vocabulary; the chunked one stays
    within a few chunks' logits (16 x V x 4 bytes each) plus the small hidden-state terms:
    doubling the length adds less than one chunk, doubling the vocabulary adds only what the
    chunk itself grew by, and no full [rows, length, vocabulary] tensor ever exists."""
    chunk = 16
    peaks = {}
    for vocab in (50_000, 100_000):
        model = _tiny_lm(vocab)
        model.lm_head.weight.requires_grad_(False)
        model.model.embed_tokens.weight.requires_grad_(False)
        for length in (64, 128):
            if (vocab, length) == (100_000, 128):
                continue
            for name, size in (("chunked", chunk), ("naive", None)):
                peaks[name, vocab, length] = _loss_peak(model, vocab, length, size)

    def one_chunk(vocab: int) -> int:
        return chunk * vocab * 4  # a chunk's fp32 logits

    def full_logits(vocab: int, length: int) -> int:
        return 2 * (length - 5) * vocab * 4  # the targets' fp32 logits, all at once

    base = peaks["chunked", 50_000, 64]
    assert base < 5 * one_chunk(50_000)
    assert peaks["chunked", 50_000, 128] - base < one_chunk(50_000)
    assert peaks["chunked", 100_000, 64] - base < 5 * (one_chunk(100_000) - one_chunk(50_000))
    assert peaks["chunked", 100_000, 64] < 5 * one_chunk(100_000)
    for key in (("chunked", 50_000, 128), ("chunked", 100_000, 64)):
        assert peaks[key] < full_logits(*key[1:])
    # the naive path holds several full-vocabulary tensors, and they double with either size
    naive = peaks["naive", 50_000, 64]
    assert naive > 3 * full_logits(50_000, 64) and naive > 5 * base
    assert peaks["naive", 50_000, 128] > 1.8 * naive
    assert peaks["naive", 100_000, 64] > 1.8 * naive
