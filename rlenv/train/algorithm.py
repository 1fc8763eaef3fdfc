"""The GRPO algorithm, one small function per idea, each unit-tested on hand-computed values.

Nothing here knows about environments, models' names or files: rewards and token tensors in,
advantages and losses out. :mod:`rlenv.train.grpo` wires them to the rollout engine.

Conventions: ``mask`` is 1 on tokens the model generated (the only ones that enter the loss,
ratios, entropy and KL) and 0 on prompt, environment and padding tokens. Token tensors are
``[batch, length]``; position ``t`` holds the log-probability of token ``t + 1`` given ``..t``.
"""

from __future__ import annotations

import inspect
import math
import warnings
import weakref
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils.checkpoint import checkpoint

from rlenv.rollout.transformers import cache_argument
from rlenv.train.config import ParseErrorPolicy

__all__ = [
    "LOGPROB_CHUNK_TOKENS",
    "ClipStats",
    "aggregate",
    "clipped_surrogate",
    "group_advantages",
    "kl_k3",
    "overlong_penalty",
    "parse_error_rewards",
    "shared_prefix_logprobs",
    "token_logprobs",
    "truncated_importance_weights",
]

Aggregation = Literal["token", "sequence", "constant"]


def group_advantages(
    rewards: Sequence[float | None],
    groups: Sequence[Hashable],
    *,
    scale: bool = True,
    epsilon: float = 1e-4,
) -> tuple[list[float], list[bool]]:
    """GRPO advantages: each reward minus its group's mean, divided by the group's std when
    ``scale`` (``std + epsilon``; Dr. GRPO sets ``scale=False``).

    ``None`` is a reward the verifier could not give (an error, a timeout): it is left out of
    its group's mean and std and gets advantage 0 — never counted as a 0 reward. A group with
    fewer than two scored samples, or whose scored rewards are all equal, carries no signal:
    every advantage in it is 0.

    Returns the advantages and, per sample, whether its group was informative (std > 0).
    The std is the sample standard deviation (n - 1), as TRL uses.
    """
    if len(rewards) != len(groups):
        raise ValueError("rewards and groups must have the same length")
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    advantages = [0.0] * len(rewards)
    informative = [False] * len(rewards)
    for indices in members.values():
        scored = [i for i in indices if rewards[i] is not None and math.isfinite(rewards[i])]
        if len(scored) < 2:
            continue
        values = [float(rewards[i]) for i in scored]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        if std == 0.0:
            continue
        for i, value in zip(scored, values, strict=True):
            advantages[i] = (value - mean) / (std + epsilon) if scale else value - mean
        for i in indices:
            informative[i] = True
    return advantages, informative


def parse_error_rewards(
    rewards: Sequence[float | None],
    parse_errors: Sequence[bool],
    policy: ParseErrorPolicy,
    *,
    reward: float = 0.0,
) -> list[float | None]:
    """The rewards :func:`group_advantages` sees once episodes with a malformed tool call
    (``parse_errors[i]``) are handled by ``policy``:

    - ``"keep"``: unchanged;
    - ``"mask"``: ``None``, as an unscored reward: out of the group's mean and std, advantage 0
      (and the trainer masks the episode's tokens out of the loss);
    - ``"zero"``: ``reward`` (0.0 by default), kept in the group's baseline, so the advantage
      of a malformed episode is below that of its well-formed siblings.

    An unscored reward (``None``) stays ``None`` under every policy: the verifier could not
    judge the episode, and that rule comes first.
    """
    if len(rewards) != len(parse_errors):
        raise ValueError("rewards and parse_errors must have the same length")
    if policy not in ("keep", "mask", "zero"):
        raise ValueError(f"parse_error must be 'keep', 'mask' or 'zero', got {policy!r}")
    if policy == "keep":
        return list(rewards)
    replacement = None if policy == "mask" else float(reward)
    return [
        value if value is None or not failed else replacement
        for value, failed in zip(rewards, parse_errors, strict=True)
    ]


def overlong_penalty(length: int, max_tokens: int, buffer: int) -> float:
    """DAPO's soft overlong penalty: 0 up to ``max_tokens - buffer`` generated tokens, then a
    linear ramp down to -1 at ``max_tokens``."""
    if buffer <= 0 or buffer > max_tokens:
        raise ValueError("need 0 < buffer <= max_tokens")
    start = max_tokens - buffer
    if length <= start:
        return 0.0
    return max(-1.0, (start - length) / buffer)


def truncated_importance_weights(
    trainer_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    cap: float,
) -> tuple[torch.Tensor, float]:
    """Truncated importance sampling (TIS) weights for tokens drawn by a sampler that is not the
    trainer's forward pass (vLLM, paged bf16 kernels): ``w_t = min(pi_trainer(o_t) /
    pi_sampler(o_t), cap)``, no gradient; 1 where ``mask`` is 0.

    The policy gradient is an expectation over the trainer's policy, but the tokens were drawn
    from the sampler's, which differs by its kernels and precision; weighting each token by the
    ratio corrects the expectation, and capping it at ``cap`` bounds the variance a rare token
    would bring. Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL
    Training" (https://fengyao.notion.site/off-policy-rl), use ``cap`` = 2 by default.

    Returns the weights and the share of masked tokens whose ratio was capped.
    """
    ratio = torch.exp((trainer_logprobs.detach() - sampler_logprobs).clamp(max=math.log(cap) + 1))
    capped = (ratio > cap) & (mask > 0)
    weights = torch.where(mask > 0, ratio.clamp(max=cap), torch.ones_like(ratio))
    tokens = float(mask.sum())
    return weights, (float(capped.sum()) / tokens if tokens else 0.0)


LOGPROB_CHUNK_TOKENS = 1024
"""How many target positions' vocabulary-sized logits :func:`token_logprobs` and
:func:`shared_prefix_logprobs` hold at once (``chunk_tokens``). A chunk's peak, measured on the
CPU (``tests/train/test_lean_logprobs.py``'s tensor-bytes meter), is 8 bytes a logit in fp32
and 10 under bf16 autocast, 16 and 14 with the entropy: at a 152k vocabulary, 1.2 to 2.5 GB
for 1,024 positions, where 16 x 1,024 unchunked positions held about 20 bytes x 2.5e9 logits,
50 GB. A ``[1024, hidden] x [hidden, vocabulary]`` product is still large enough to run the
output layer at full speed, and a micro-batch of at most 1,024 target tokens (the CPU demo's)
runs as one chunk, with nothing recomputed."""


def token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    first: int = 0,
    entropy: bool = False,
    chunk_tokens: int = LOGPROB_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities of each next token at ``temperature`` (logits / T, as sampled), shape
    ``[batch, length - 1]``; positions before ``first`` (all prompt) and positions whose next
    token is padding (``attention_mask`` 0) are returned as 0.

    Memory: the output layer runs on the model's last hidden states ``chunk_tokens`` target
    positions at a time (:func:`_head_logprobs`), and each chunk's logits are recomputed in the
    backward pass rather than kept, so no ``[batch, length, vocabulary]`` tensor exists — values
    and gradients equal the full-logits computation up to float rounding. Prompt positions
    never go through the output layer. Models whose logits are not ``lm_head(base(...))``
    (a logit cap or scale), and ``chunk_tokens=0``, take the full-logits path (only the last
    ``length - first`` positions through the output layer when the model accepts
    ``logits_to_keep``).

    With ``entropy=True`` also returns the entropy of each position's distribution (no grad).
    """
    batch, length = input_ids.shape
    first = max(0, min(first, length - 1))
    # target t + 1 of position t must be a real token, and t >= first
    targets = attention_mask[:, 1:] != 0
    targets[:, :first] = False
    rows, columns = targets.nonzero(as_tuple=True)
    split = _split_output_layer(model, input_ids) if chunk_tokens > 0 else None
    if split is not None:
        base, head = split
        output = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = _last_hidden_state(output)
        picked, spread = _head_logprobs(
            head,
            hidden[rows, columns],
            input_ids[rows, columns + 1],
            temperature=temperature,
            entropy=entropy,
            chunk_tokens=chunk_tokens,
        )
    else:
        keep = length - first  # logits for positions first .. length-1
        if _accepts_logits_to_keep(model):
            logits = model(
                input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep
            ).logits
        else:
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, first:]
        logits = logits[:, :-1]  # position first + j predicts token first + j + 1
        picked, spread = _logits_logprobs(
            logits[rows, columns - first],
            input_ids[rows, columns + 1],
            temperature=temperature,
            entropy=entropy,
        )
    return _place(picked, spread, rows, columns, batch, length - 1)


def shared_prefix_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prefix_lengths: Sequence[int],
    *,
    temperature: float = 1.0,
    entropy: bool = False,
    chunk_tokens: int = LOGPROB_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`token_logprobs` computed once per distinct prompt instead of once per sample.

    The ``group_size`` samples of a GRPO group share their opening prompt token for token, so
    its forward (and backward) pass is the same for all of them. Here each distinct prefix
    (``input_ids[i, :prefix_lengths[i] - 1]``, the prompt minus its last token) runs once,
    its key/value cache is indexed out to every row that shares it (indexing is
    differentiable: the prefix gets the sum of its rows' gradients, as in the plain pass),
    and only the rest of each row runs per sample. The result equals :func:`token_logprobs`
    up to floating-point rounding; positions before ``prefix_lengths[i] - 1`` and positions
    whose next token is padding are 0. The output layer runs in chunks of ``chunk_tokens``
    target positions, as in :func:`token_logprobs`.

    Needs a decoder-only model with a key/value cache and ``position_ids`` (Llama, Qwen,
    Mistral, ... in ``transformers``); rows are right-padded, as :func:`build_batch` makes them.
    """
    batch, length = input_ids.shape
    if len(prefix_lengths) != batch or min(prefix_lengths) < 2:
        raise ValueError("need one prefix length >= 2 per row")
    split = _split_output_layer(model, input_ids) if chunk_tokens > 0 else None
    runner = split[0] if split is not None else model  # the decoder alone: no logits at all
    cached = [p - 1 for p in prefix_lengths]  # the prompt's last token runs with the suffix
    keys: dict[tuple[int, ...], int] = {}
    row_prefix = []
    for row, size in enumerate(cached):
        key = tuple(input_ids[row, :size].tolist())
        row_prefix.append(keys.setdefault(key, len(keys)))
    prefixes = list(keys)
    width = max(len(p) for p in prefixes)
    device = input_ids.device
    # distinct prefixes, left-padded, with explicit positions
    prefix_ids = torch.zeros(len(prefixes), width, dtype=torch.long, device=device)
    prefix_mask = torch.zeros(len(prefixes), width, dtype=torch.long, device=device)
    for index, prefix in enumerate(prefixes):
        prefix_ids[index, width - len(prefix) :] = torch.tensor(prefix, device=device)
        prefix_mask[index, width - len(prefix) :] = 1
    prefix_positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
    cache_name = cache_argument(runner)
    out = runner(
        input_ids=prefix_ids,
        attention_mask=prefix_mask,
        position_ids=prefix_positions,
        use_cache=True,
        **({} if split is not None else {"logits_to_keep": 1}),
    )
    cache = getattr(out, "cache", None) or out.past_key_values
    selection = torch.tensor(row_prefix, device=device)
    cache.batch_select_indices(selection)
    # each row's suffix: from its prompt's last token to its end, right-padded
    lengths = [int(n) for n in attention_mask.sum(-1).tolist()]
    counts = [total - size for total, size in zip(lengths, cached, strict=True)]
    suffix_width = max(counts)
    suffix_ids = torch.zeros(batch, suffix_width, dtype=torch.long, device=device)
    suffix_mask = torch.zeros(batch, suffix_width, dtype=torch.long, device=device)
    for row, (size, count) in enumerate(zip(cached, counts, strict=True)):
        suffix_ids[row, :count] = input_ids[row, size : size + count]
        suffix_mask[row, :count] = 1
    positions = torch.tensor(cached, device=device).unsqueeze(-1) + torch.arange(
        suffix_width, device=device
    )
    out = runner(
        input_ids=suffix_ids,
        attention_mask=torch.cat([prefix_mask[selection], suffix_mask], dim=-1),
        position_ids=positions,
        use_cache=True,
        **{cache_name: cache},
    )
    # suffix position j of a row predicts its token j + 1: a real one for j < count - 1
    targets = suffix_mask != 0
    targets[:, :-1] &= suffix_mask[:, 1:] != 0
    targets[:, -1] = False
    rows, offsets = targets.nonzero(as_tuple=True)
    next_ids = suffix_ids[rows, offsets + 1]
    if split is not None:
        picked, spread = _head_logprobs(
            split[1],
            _last_hidden_state(out)[rows, offsets],
            next_ids,
            temperature=temperature,
            entropy=entropy,
            chunk_tokens=chunk_tokens,
        )
    else:
        picked, spread = _logits_logprobs(
            out.logits[rows, offsets], next_ids, temperature=temperature, entropy=entropy
        )
    columns = torch.tensor(cached, device=device)[rows] + offsets
    return _place(picked, spread, rows, columns, batch, length - 1)


def _logits_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float, entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log softmax(logits / T)[target]`` per row of ``[n, vocabulary]`` logits, in fp32, and
    each row's entropy (no grad) when asked (:class:`_TemperedLogprobs`)."""
    picked, spread = _TemperedLogprobs.apply(logits, targets, temperature, entropy)
    return picked, spread if entropy else None


class _TemperedLogprobs(torch.autograd.Function):
    """``log softmax(logits / T)[target]`` with a hand-written backward,
    ``d/d logits = g (onehot(target) - softmax(logits / T)) / T``, built in place in one fp32
    buffer: autograd's own (log-sum-exp, gather, division) keeps about twice as many
    vocabulary-sized tensors alive. Saves only the logits it was given and the normaliser."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, entropy):
        scaled = logits.float() / temperature
        normaliser = torch.logsumexp(scaled, dim=-1)
        picked = scaled.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - normaliser
        spread = torch.zeros_like(normaliser)
        if entropy:  # H = -sum p log p = log Z - sum p x, with x = logits / T
            spread = normaliser - (torch.softmax(scaled, dim=-1) * scaled).sum(-1)
        ctx.mark_non_differentiable(spread)
        ctx.save_for_backward(logits, normaliser, targets)
        ctx.temperature = temperature
        return picked, spread

    @staticmethod
    def backward(ctx, grad, _):
        logits, normaliser, targets = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        gradient = logits.float() / ctx.temperature
        gradient.sub_(normaliser.unsqueeze(-1)).exp_().mul_(-grad)  # -g softmax
        gradient.scatter_add_(-1, targets.unsqueeze(-1), grad)  # + g onehot
        gradient.div_(ctx.temperature)
        return gradient.to(logits.dtype), None, None, None


def _head_logprobs(
    head: Any,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float,
    entropy: bool,
    chunk_tokens: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`_logits_logprobs` of ``head(hidden)`` for ``[n, hidden]`` states, ``chunk_tokens``
    rows at a time. With more than one chunk and autograd on, each chunk runs under
    :func:`torch.utils.checkpoint.checkpoint`: its forward keeps only its inputs (a view of the
    hidden states), and its backward recomputes its logits, so at most one chunk's
    vocabulary-sized tensors are alive in either pass (the price: the output layer's forward
    runs twice). A single chunk runs plainly: it is already within the bound."""
    recompute = torch.is_grad_enabled() and hidden.shape[0] > chunk_tokens

    def chunk(states: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return _logits_logprobs(head(states), ids, temperature=temperature, entropy=entropy)

    picked, spreads = [], []
    for start in range(0, max(1, hidden.shape[0]), chunk_tokens):
        part = slice(start, start + chunk_tokens)
        if recompute:
            values, spread = checkpoint(chunk, hidden[part], targets[part], use_reentrant=False)
        else:
            values, spread = chunk(hidden[part], targets[part])
        picked.append(values)
        spreads.append(spread)
    if len(picked) == 1:
        return picked[0], spreads[0]
    return torch.cat(picked), torch.cat(spreads) if entropy else None


def _place(
    picked: torch.Tensor,
    spread: torch.Tensor | None,
    rows: torch.Tensor,
    columns: torch.Tensor,
    batch: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-target values back into the ``[batch, length - 1]`` layout, 0 elsewhere."""
    index = (rows, columns)
    result = picked.new_zeros(batch, width).index_put(index, picked)
    if spread is None:
        return result, None
    return result, spread.new_zeros(batch, width).index_put(index, spread)


def _last_hidden_state(output: Any) -> torch.Tensor:
    hidden = getattr(output, "last_hidden_state", None)
    return hidden if hidden is not None else output[0]


_SPLIT_CHECKED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _split_output_layer(model: Any, input_ids: torch.Tensor) -> tuple[Any, Any] | None:
    """``(decoder, output layer)`` of a ``transformers`` causal LM (under a ``peft`` wrapper
    too) whose logits are exactly ``output_layer(decoder(...).last_hidden_state)``, else None.

    Some architectures change the logits after the output layer (Gemma 2's soft cap, Cohere's
    and Granite's scales), so the split is checked once per model on a few of its tokens,
    against its own forward, before it is trusted; a model that fails runs the full-logits
    path, with a warning.
    """
    language_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    base = getattr(language_model, "base_model", None)
    output = getattr(language_model, "get_output_embeddings", None)
    head = output() if callable(output) else None
    if base is None or base is language_model or not isinstance(head, torch.nn.Module):
        return None
    trusted = _SPLIT_CHECKED.get(language_model)
    if trusted is None:
        trusted = _SPLIT_CHECKED[language_model] = _split_matches(model, base, head, input_ids)
        if not trusted:
            warnings.warn(
                f"{type(language_model).__name__}'s logits are not its output layer applied to "
                "its decoder's last hidden states (a logit cap or scale, or a wrapper the "
                "decoder cannot run without): its training log-probs use full-vocabulary "
                "logits, which take memory in batch x length x vocabulary",
                stacklevel=3,
            )
    return (base, head) if trusted else None


def _split_matches(model: Any, base: Any, head: Any, input_ids: torch.Tensor) -> bool:
    ids = input_ids[:1, :8]
    mask = torch.ones_like(ids)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()  # no dropout, so the two passes see the same function
    try:
        with torch.enable_grad():  # as in training: forward hooks may need it (8 tokens)
            full = model(input_ids=ids, attention_mask=mask).logits.float()
            split = head(_last_hidden_state(base(input_ids=ids, attention_mask=mask))).float()
    except Exception:  # an unusual model: keep to the path it is known to support
        return False
    finally:
        for module, training in modes:
            module.training = training
    # equal_nan: a model whose weights went non-finite (a diverged step, which the trainer skips)
    # still computes its logits as head(decoder): NaN in the same places is a match.
    same = torch.allclose(full, split, rtol=1e-4, atol=1e-4, equal_nan=True)
    return full.shape == split.shape and same


def _accepts_logits_to_keep(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class ClipStats:
    """How often the ratio was clipped, over model tokens: ``low`` (ratio < 1 - eps_low with a
    negative advantage) and ``high`` (ratio > 1 + eps_high with a positive one)."""

    low: float
    high: float

    @property
    def total(self) -> float:
        return self.low + self.high


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.28,
) -> tuple[torch.Tensor, ClipStats]:
    """The per-token PPO/GRPO loss ``-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`` with
    ``r = exp(logprobs - old_logprobs)``; ``advantages`` is one value per sequence.

    Tokens outside ``mask`` get loss 0 and never enter the ratio (their log-probs are replaced
    before the exponential, so a placeholder value cannot overflow into a NaN gradient).
    """
    mask = mask.to(logprobs.dtype)
    difference = torch.where(mask > 0, logprobs - old_logprobs, torch.zeros_like(logprobs))
    ratio = torch.exp(difference)
    advantage = advantages.to(logprobs.dtype).unsqueeze(-1)
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high) * advantage
    per_token = -torch.minimum(unclipped, clipped) * mask
    with torch.no_grad():
        tokens = mask.sum().clamp(min=1.0)
        low = ((ratio < 1.0 - epsilon_low) & (advantage < 0)).to(mask.dtype) * mask
        high = ((ratio > 1.0 + epsilon_high) & (advantage > 0)).to(mask.dtype) * mask
        stats = ClipStats(low=float(low.sum() / tokens), high=float(high.sum() / tokens))
    return per_token, stats


def kl_k3(logprobs: torch.Tensor, reference_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy ‖ reference) by the k3 estimator ``exp(d) - d - 1`` with
    ``d = ref - logprobs``: unbiased, always >= 0."""
    difference = reference_logprobs - logprobs
    return torch.exp(difference) - difference - 1.0


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    kind: Aggregation,
    *,
    total_tokens: int,
    total_sequences: int,
    constant: int,
) -> torch.Tensor:
    """Sum a micro-batch's per-token losses into its share of the batch loss.

    The normaliser is global — the whole batch's token or sequence count, given by the caller —
    so splitting a batch into micro-batches (gradient accumulation) gives the same gradient as
    one big batch:

    - ``"token"`` (DAPO): ``sum(loss) / total_tokens`` — every model token weighs the same;
    - ``"sequence"`` (original GRPO): each sequence's mean over its tokens, summed, divided by
      ``total_sequences`` — a long answer's tokens weigh less (the length bias);
    - ``"constant"`` (Dr. GRPO): ``sum(loss) / constant``, with ``constant`` fixed by the
      configuration, never counted from the batch: the configured sequences per step times a
      fixed token budget (``prompts_per_step x group_size x max_episode_tokens``, or
      ``max_new_tokens`` without an episode budget). Liu et al. 2025, "Understanding
      R1-Zero-Like Training: A Critical Perspective", replace GRPO's ``1 / |o_i|`` by one
      constant (their code divides each sequence's summed loss by the generation budget
      ``MAX_TOKENS``, then averages over the batch's sequences), so a token's gradient is
      ``-A_i grad log pi / constant`` whatever the lengths, and whatever other sequences are
      masked out (truncated, unscored): no count of them enters.
    """
    mask = mask.to(per_token.dtype)
    if kind == "token":
        return (per_token * mask).sum() / max(1, total_tokens)
    if kind == "sequence":
        lengths = mask.sum(-1)
        means = (per_token * mask).sum(-1) / lengths.clamp(min=1.0)
        return means.sum() / max(1, total_sequences)
    if kind == "constant":
        if constant < 1:
            raise ValueError(f"the Dr. GRPO constant must be >= 1, got {constant}")
        return (per_token * mask).sum() / constant
    raise ValueError(f"unknown aggregation {kind!r}")
