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
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rlenv.rollout.transformers import cache_argument
from rlenv.train.config import ParseErrorPolicy

__all__ = [
    "ClipStats",
    "aggregate",
    "clipped_surrogate",
    "group_advantages",
    "kl_k3",
    "overlong_penalty",
    "parse_error_rewards",
    "shared_prefix_logprobs",
    "token_logprobs",
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


def token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    first: int = 0,
    entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities of each next token at ``temperature`` (logits / T, as sampled), shape
    ``[batch, length - 1]``; positions before ``first`` (all prompt) are returned as 0.

    Only the last ``length - first`` positions go through the output layer when the model
    supports ``logits_to_keep`` (a vocabulary-sized projection skipped for every prompt token).
    With ``entropy=True`` also returns the entropy of each position's distribution (no grad).
    """
    batch, length = input_ids.shape
    first = max(0, min(first, length - 1))
    keep = length - first  # logits for positions first .. length-1
    if _accepts_logits_to_keep(model):
        logits = model(
            input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep
        ).logits
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, first:]
    logits = logits[:, :-1].float() / temperature  # predicts tokens first+1 .. length-1
    targets = input_ids[:, first + 1 :]
    normaliser = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - normaliser
    pad = torch.zeros(batch, first, dtype=picked.dtype, device=picked.device)
    result = torch.cat([pad, picked], dim=1)
    if not entropy:
        return result, None
    with torch.no_grad():
        probabilities = torch.softmax(logits, dim=-1)
        per_position = normaliser - (probabilities * logits).sum(-1)
        entropies = torch.cat([pad, per_position], dim=1)
    return result, entropies


def shared_prefix_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prefix_lengths: Sequence[int],
    *,
    temperature: float = 1.0,
    entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`token_logprobs` computed once per distinct prompt instead of once per sample.

    The ``group_size`` samples of a GRPO group share their opening prompt token for token, so
    its forward (and backward) pass is the same for all of them. Here each distinct prefix
    (``input_ids[i, :prefix_lengths[i] - 1]``, the prompt minus its last token) runs once,
    its key/value cache is indexed out to every row that shares it (indexing is
    differentiable: the prefix gets the sum of its rows' gradients, as in the plain pass),
    and only the rest of each row runs per sample. The result equals :func:`token_logprobs`
    up to floating-point rounding; positions before ``min(prefix_lengths) - 1`` are 0.

    Needs a decoder-only model with a key/value cache and ``position_ids`` (Llama, Qwen,
    Mistral, ... in ``transformers``); rows are right-padded, as :func:`build_batch` makes them.
    """
    batch, length = input_ids.shape
    if len(prefix_lengths) != batch or min(prefix_lengths) < 2:
        raise ValueError("need one prefix length >= 2 per row")
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
    cache_name = cache_argument(model)
    out = model(
        input_ids=prefix_ids,
        attention_mask=prefix_mask,
        position_ids=prefix_positions,
        use_cache=True,
        logits_to_keep=1,
    )
    cache = getattr(out, "cache", None) or out.past_key_values
    selection = torch.tensor(row_prefix, device=device)
    cache.batch_select_indices(selection)
    # each row's suffix: from its prompt's last token to its end, right-padded
    lengths = attention_mask.sum(-1).tolist()
    suffix_width = max(int(n) - c for n, c in zip(lengths, cached, strict=True))
    suffix_ids = torch.zeros(batch, suffix_width, dtype=torch.long, device=device)
    suffix_mask = torch.zeros(batch, suffix_width, dtype=torch.long, device=device)
    for row, (total, size) in enumerate(zip(lengths, cached, strict=True)):
        count = int(total) - size
        suffix_ids[row, :count] = input_ids[row, size : int(total)]
        suffix_mask[row, :count] = 1
    positions = torch.tensor(cached, device=device).unsqueeze(-1) + torch.arange(
        suffix_width, device=device
    )
    out = model(
        input_ids=suffix_ids,
        attention_mask=torch.cat([prefix_mask[selection], suffix_mask], dim=-1),
        position_ids=positions,
        use_cache=True,
        **{cache_name: cache},
    )
    logits = out.logits.float() / temperature  # suffix j predicts token cached[row] + j + 1
    normaliser = torch.logsumexp(logits, dim=-1)
    # targets: the next token of each suffix position (padding positions are masked later)
    targets = torch.zeros_like(suffix_ids)
    targets[:, :-1] = suffix_ids[:, 1:]
    for row, size in enumerate(cached):
        if size + suffix_width < length:
            targets[row, -1] = input_ids[row, size + suffix_width]
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - normaliser
    entropies = None
    if entropy:
        with torch.no_grad():
            per_position = normaliser - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    # scatter back into the [batch, length - 1] layout of token_logprobs
    result = torch.zeros(batch, length - 1, dtype=picked.dtype, device=device)
    spread = torch.zeros(batch, length - 1, dtype=picked.dtype, device=device) if entropy else None
    for row, size in enumerate(cached):
        span = min(suffix_width, length - 1 - size)
        result[row, size : size + span] = picked[row, :span]
        if spread is not None:
            spread[row, size : size + span] = per_position[row, :span]
    if entropy:
        entropies = spread
    return result, entropies


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
    max_tokens: int,
) -> torch.Tensor:
    """Sum a micro-batch's per-token losses into its share of the batch loss.

    The normaliser is global — the whole batch's token or sequence count, given by the caller —
    so splitting a batch into micro-batches (gradient accumulation) gives the same gradient as
    one big batch:

    - ``"token"`` (DAPO): ``sum(loss) / total_tokens`` — every model token weighs the same;
    - ``"sequence"`` (original GRPO): each sequence's mean over its tokens, summed, divided by
      ``total_sequences`` — a long answer's tokens weigh less (the length bias);
    - ``"constant"`` (Dr. GRPO): ``sum(loss) / (total_sequences * max_tokens)``.
    """
    mask = mask.to(per_token.dtype)
    if kind == "token":
        return (per_token * mask).sum() / max(1, total_tokens)
    if kind == "sequence":
        lengths = mask.sum(-1)
        means = (per_token * mask).sum(-1) / lengths.clamp(min=1.0)
        return means.sum() / max(1, total_sequences)
    if kind == "constant":
        return (per_token * mask).sum() / max(1, total_sequences * max_tokens)
    raise ValueError(f"unknown aggregation {kind!r}")
