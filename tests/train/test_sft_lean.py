"""SFT's loss on the chunked log-probs (issue 18, point 2): the same loss and gradients as the
full-vocabulary cross-entropy it replaced, and a loss-time peak that grows with the vocabulary
by what one chunk's working tensors grow by, not by the batch's logits."""

from __future__ import annotations

import functools
import types

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402
from test_lean_logprobs import _PeakBytes, _tiny_lm  # noqa: E402

import rlenv.train.algorithm as algorithm  # noqa: E402
from rlenv.train.sft import SFTConfig, SFTExample, SFTTrainer, build_batch  # noqa: E402


def _old_loss(model, part) -> torch.Tensor:
    """The reference: SFT's loss before this change, full-vocabulary logits and
    ``F.cross_entropy``, verbatim."""
    rows = part.rows
    logits = model(input_ids=rows.input_ids, attention_mask=rows.attention_mask).logits[:, :-1]
    per_token = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), rows.input_ids[:, 1:].reshape(-1),
        reduction="none",
    ).view_as(rows.mask)  # fmt: skip
    return (per_token * rows.mask).sum() / max(1, part.tokens)


def _examples(vocab: int, lengths, prompts, *, seed: int = 1) -> list[SFTExample]:
    """Random ids; the first ``prompts[i]`` tokens are prompt (mask 0), then assistant tokens
    with an environment turn of up to 5 tokens (mask 0) in the middle."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for length, prompt in zip(lengths, prompts, strict=True):
        ids = torch.randint(1, vocab, (length,), generator=generator).tolist()
        mask = [0] * prompt + [1] * (length - prompt)
        middle = (prompt + length) // 2
        end = min(middle + 5, length - 1)  # the last token stays an assistant one
        mask[middle:end] = [0] * (end - middle)
        examples.append(SFTExample(token_ids=ids, mask=mask))
    return examples


def _trainer(
    tmp_path, model, examples, micro_batch_size: int, precision: str = "fp32"
) -> SFTTrainer:
    config = SFTConfig(
        out=str(tmp_path / f"sft{micro_batch_size}"), device="cpu", precision=precision,
        progress=False, plots=False, batch_size=len(examples), micro_batch_size=micro_batch_size,
    )  # fmt: skip
    tokenizer = types.SimpleNamespace(pad_token_id=0)  # the loss needs only the pad id
    return SFTTrainer(config, model, tokenizer, examples=examples)


def _chunked(monkeypatch, chunk: int) -> None:
    """Make the trainer's token_logprobs use chunks of ``chunk`` target positions."""
    monkeypatch.setattr(
        algorithm, "token_logprobs", functools.partial(algorithm.token_logprobs, chunk_tokens=chunk)
    )


def _accumulated(trainer: SFTTrainer, loss_fn) -> tuple[float, torch.Tensor]:
    """The batch's loss and gradient summed over its micro-batches, as one step does."""
    trainer.model.zero_grad(set_to_none=True)
    total = 0.0
    for part in trainer.microbatches(trainer.batch(0)):
        loss = loss_fn(part)
        loss.backward()
        total += loss.item()
    gradient = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
    return total, gradient


@pytest.mark.parametrize("chunk", [None, 7])
def test_sft_loss_and_gradients_equal_the_full_vocabulary_cross_entropy(
    tmp_path, monkeypatch, chunk
):
    """fp32, a 50k vocabulary, 4 right-padded sequences with prompts of different lengths and an
    environment turn masked out, micro-batches of 1, 2 and 4 (one normaliser): the loss (near
    log(50k) = 10.8) to 1e-6 relative and the gradient of every parameter to 5e-6 of the old
    formula's, with the default chunk (one chunk here) and with chunks of 7 positions."""
    if chunk is not None:
        _chunked(monkeypatch, chunk)
    vocab = 50_000
    model = _tiny_lm(vocab, layers=2)
    examples = _examples(vocab, lengths=(40, 33, 26, 19), prompts=(12, 3, 20, 7))
    expected = None
    for micro in (4, 2, 1):
        trainer = _trainer(tmp_path, model, examples, micro)
        new_loss, new_grad = _accumulated(trainer, lambda part, t=trainer: t.loss(part)[0])
        old_loss, old_grad = _accumulated(trainer, lambda part: _old_loss(model, part))
        assert new_loss == pytest.approx(old_loss, rel=1e-6)
        assert torch.allclose(new_grad, old_grad, atol=5e-6, rtol=1e-6)
        assert new_grad.norm() > 0.1
        if expected is None:
            expected = (old_loss, old_grad)
        else:  # accumulation: any micro-batch size gives the batch's token mean
            assert new_loss == pytest.approx(expected[0], rel=1e-6)
            assert torch.allclose(new_grad, expected[1], atol=5e-6, rtol=1e-6)
    assert 9.0 < expected[0] < 13.0
    tokens = sum(sum(e.mask[1:]) for e in examples)
    assert int(build_batch(examples, 0, 4096).mask.sum()) == tokens > 50


def test_under_bf16_autocast_the_loss_equals_the_old_one_and_gradients_within_bf16(tmp_path):
    """``precision="bf16"``: both losses run the model under the trainer's autocast and take
    the log-probs in fp32 from the same bf16 logits (one chunk here), so the loss is bitwise
    equal and the gradients equal to 1e-4 relative (measured: 2e-9); the same model run in fp32
    instead differs by 5e-6 in the loss and 3e-3 in the gradient, which this would catch."""
    vocab = 20_000
    model = _tiny_lm(vocab)
    examples = _examples(vocab, lengths=(30, 24), prompts=(6, 10))
    trainer = _trainer(tmp_path, model, examples, 2, precision="bf16")
    assert trainer.autocast

    def old(part):
        with trainer._autocast_context():
            return _old_loss(model, part)

    new_loss, new_grad = _accumulated(trainer, lambda part: trainer.loss(part)[0])
    old_loss, old_grad = _accumulated(trainer, old)
    assert new_loss == old_loss
    assert (new_grad - old_grad).norm() < 1e-4 * old_grad.norm()


def _sft_loss_peak(tmp_path, vocab: int, *, old: bool) -> int:
    """Peak tensor bytes of one micro-batch's loss, forward and backward (2 sequences of 96
    and 80 tokens, prompts of 8 and 20); the vocabulary-sized weights frozen, as in
    test_lean_logprobs, so their (same-sized) gradients do not blur the figure."""
    model = _tiny_lm(vocab)
    examples = _examples(vocab, lengths=(96, 80), prompts=(8, 20))
    trainer = _trainer(tmp_path, model, examples, 2)
    model.lm_head.weight.requires_grad_(False)
    model.model.embed_tokens.weight.requires_grad_(False)
    (part,) = list(trainer.microbatches(trainer.batch(0)))
    with _PeakBytes() as meter:
        loss = _old_loss(model, part) if old else trainer.loss(part)[0]
        loss.backward()
    return meter.peak


def test_sft_loss_peak_memory_grows_with_the_vocabulary_by_a_chunk_not_the_batch(
    tmp_path, monkeypatch
):
    """Chunks of 16 positions, 168 target positions, vocabularies of 50k and 100k. The old
    loss holds several [rows, length, vocabulary] tensors (logits, their fp32 copy, the
    log-softmax, their gradients); the new one a few chunks' logits (16 x V x 4 bytes), so
    doubling the vocabulary adds a few chunks, and it stays far below one full-logits tensor."""
    chunk = 16
    _chunked(monkeypatch, chunk)
    peaks = {
        (name, vocab): _sft_loss_peak(tmp_path, vocab, old=name == "old")
        for vocab in (50_000, 100_000)
        for name in ("old", "new")
    }
    print({key: f"{value / 2**20:.1f} MiB" for key, value in peaks.items()})

    def one_chunk(vocab: int) -> int:
        return chunk * vocab * 4

    def full_logits(vocab: int) -> int:
        return 2 * 95 * vocab * 4  # [rows, length - 1, vocab] in fp32

    for vocab in (50_000, 100_000):
        assert peaks["new", vocab] < 5 * one_chunk(vocab) < full_logits(vocab)
        assert peaks["old", vocab] > 3 * full_logits(vocab)
    growth = peaks["new", 100_000] - peaks["new", 50_000]
    assert growth < 5 * (one_chunk(100_000) - one_chunk(50_000))
    assert peaks["old", 100_000] - peaks["old", 50_000] > 3 * (
        full_logits(100_000) - full_logits(50_000)
    )
