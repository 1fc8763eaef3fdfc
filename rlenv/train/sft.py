"""Supervised fine-tuning (SFT) on kept trajectories or chat transcripts: a warm start for GRPO.

Data, one JSON object per line, in any mix:

* trajectories (``rlenv collect``, ``rlenv eval``): trained on their exact sampled token ids
  (:meth:`~rlenv.rollout.Trajectory.token_sequence`), with the loss on the model's own tokens
  only — prompt, user, tool and environment tokens are masked out. A trajectory without token ids
  (an OpenAI endpoint produced it) is rendered from its messages like a chat transcript;
* chat transcripts ``{"messages": [...], "tools": [...]}``: rendered with the chat template the
  way the rollout engine renders a conversation (:func:`~rlenv.rollout.transformers.
  render_prompt_ids`, :func:`~rlenv.rollout.transformers.extend_prompt_ids`), the loss on the
  assistant turns' tokens only, their end-of-turn token included.

The loss is the mean cross-entropy over the batch's assistant tokens (token-level, one normaliser
across micro-batches), from the memory-lean chunked log-probs of
:func:`~rlenv.train.algorithm.token_logprobs` (no full-vocabulary logits). Weights stay fp32;
forward passes run under bf16 autocast where it is fast (``precision="auto"``), as in
:mod:`rlenv.train.grpo`.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from rlenv.chat import Message
from rlenv.rollout.trajectory import NotTokenFaithful, Trajectory
from rlenv.train._runtime import Trainer
from rlenv.train.config import TrainConfig

__all__ = ["SFTConfig", "SFTExample", "SFTTrainer", "chat_example", "load_examples"]

logger = logging.getLogger("rlenv")


class SFTConfig(TrainConfig):
    """The settings of an SFT run; the shared ones are
    :class:`~rlenv.train.config.TrainConfig`'s."""

    data: list[str] = Field(
        default_factory=list, description="JSONL files of trajectories or {'messages': [...]}."
    )
    out: str = Field("rlenv-sft", description="Folder for metrics, plots, checkpoint and model/.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data (when steps is unset).")
    steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs.")
    batch_size: int = Field(8, ge=1, description="Sequences per optimizer step.")
    micro_batch_size: int = Field(4, ge=1, description="Sequences per forward/backward.")
    max_length: int = Field(2048, ge=2, description="Longer sequences are cut to this.")
    learning_rate: float = Field(1e-5, gt=0)

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if self.micro_batch_size > self.batch_size:
            raise ValueError("micro_batch_size must not exceed batch_size")
        return self


# ----------------------------------------------------------------------------------- data


@dataclass
class SFTExample:
    """One training sequence: ``mask[i]`` is 1 where token i is an assistant token (a target of
    the loss) and 0 where the prompt, a user, a tool or the environment put it."""

    token_ids: list[int]
    mask: list[int]


def chat_example(
    tokenizer: Any, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()
) -> SFTExample:
    """A conversation as the rollout engine would have fed and sampled it: the opening prompt
    rendered with the generation prompt, each assistant turn's tokens (end-of-turn token
    included, mask 1), and the tokens the template adds between turns (mask 0), found with the
    same prefix-extension as multi-turn rollouts.

    A template whose assistant turn has no end marker, because the model stops on the token that
    opens the next message (GLM's ``<|observation|>``), gets that token in the turn: the model
    must learn to write it, as it does when sampled; the last turn of such a template gets the
    EOS token."""
    from rlenv.rollout.transformers import (
        TemplateNotPrefixPreserving,
        end_of_turn_markers,
        extend_prompt_ids,
        render_prompt_ids,
        stop_token_ids,
    )

    stops = stop_token_ids(tokenizer)
    markers = end_of_turn_markers(tokenizer)
    tools_arg = list(tools) or None
    ids: list[int] = []
    mask: list[int] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = list(messages[:index])
        if ids:
            prompt = extend_prompt_ids(tokenizer, stops, before, tools, ids)
        else:
            prompt = render_prompt_ids(tokenizer, before, tools)
        prompt_text = tokenizer.apply_chat_template(
            before, tools=tools_arg, add_generation_prompt=True, tokenize=False
        )
        full_text = tokenizer.apply_chat_template(
            [*before, message], tools=tools_arg, tokenize=False
        )
        if not full_text.startswith(prompt_text):
            raise TemplateNotPrefixPreserving(
                "the chat template renders an assistant turn differently from its generation "
                "prompt, so its tokens cannot be separated from the prompt's (a template whose "
                "generation prompt opens a reasoning block that the rendered turn lacks does "
                "this: give the assistant message its reasoning, or use a template that renders "
                "the turn as the model writes it)"
            )
        turn = _through_end_of_turn(full_text[len(prompt_text) :], markers)
        if not any(turn.endswith(marker) for marker in markers):
            if index + 1 < len(messages):
                turn += _opening_marker(
                    tokenizer, messages[: index + 2], full_text, tools_arg, markers
                )
            elif tokenizer.eos_token:  # the last turn: the model must still learn to stop
                turn += tokenizer.eos_token
        generated = tokenizer(turn, add_special_tokens=False)["input_ids"]
        mask += [0] * (len(prompt) - len(ids)) + [1] * len(generated)
        ids = prompt + generated
    if not ids:
        raise ValueError("the conversation has no assistant turn to train on")
    return SFTExample(token_ids=ids, mask=mask)


def _through_end_of_turn(text: str, markers: Sequence[str]) -> str:
    """The assistant's own text: up to and including the end-of-turn marker (the newline the
    template writes after it belongs to what follows, as in multi-turn rollouts)."""
    found = [(text.find(m), m) for m in markers if m in text]
    if not found:
        return text
    position, marker = min(found)
    return text[: position + len(marker)]


def _opening_marker(
    tokenizer: Any,
    messages: Sequence[Message],
    full_text: str,
    tools: list[dict[str, Any]] | None,
    markers: Sequence[str],
) -> str:
    """The stop token that opens the message after an assistant turn without an end marker
    (GLM's ``<|observation|>``), or ``""``."""
    following = tokenizer.apply_chat_template(list(messages), tools=tools, tokenize=False)
    if not following.startswith(full_text):
        return ""
    added = following[len(full_text) :]
    opening = [marker for marker in markers if added.startswith(marker)]
    return max(opening, key=len) if opening else ""


def load_examples(paths: Sequence[str | Path], tokenizer: Any) -> list[SFTExample]:
    """Read JSONL files of trajectories and ``{"messages": [...]}`` transcripts; errors name the
    file and line. Episodes that never started (their served env failed at reset:
    ``stop_reason="reset_failed"``, no turns, as ``rlenv collect --keep all`` may write them)
    hold nothing to learn and are skipped, with a warning that counts them."""
    examples = []
    unstarted = 0
    for path in paths:
        with Path(path).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if isinstance(record, dict) and record.get("stop_reason") == "reset_failed":
                        unstarted += 1
                        continue
                    examples.append(_example(record, tokenizer))
                except (json.JSONDecodeError, ValueError, KeyError, TypeError) as error:
                    raise ValueError(
                        f"{path}:{number}: cannot train on this line: {error}"
                    ) from None
    if unstarted:
        logger.warning(
            "skipped %d episode(s) that never started (their served env failed at reset)",
            unstarted,
        )
    if not examples:
        raise ValueError(f"no training examples in {', '.join(map(str, paths))}")
    return examples


def _example(record: dict[str, Any], tokenizer: Any) -> SFTExample:
    if "env_id" in record:  # a trajectory
        trajectory = Trajectory.model_validate(record)
        try:
            sequence = trajectory.token_sequence()
        except NotTokenFaithful:
            return chat_example(tokenizer, trajectory.messages, trajectory.tools)
        return SFTExample(token_ids=sequence.token_ids, mask=sequence.mask)
    return chat_example(tokenizer, record["messages"], record.get("tools") or ())


@dataclass
class SFTBatch:
    """Right-padded sequences; ``mask`` is shifted (position t scores token t + 1)."""

    input_ids: Any
    attention_mask: Any
    mask: Any


def build_batch(examples: Sequence[SFTExample], pad_id: int, max_length: int) -> SFTBatch:
    """Training tensors: ids cut to ``max_length``, padded right; padding is never a target."""
    import torch

    cut = [(e.token_ids[:max_length], e.mask[:max_length]) for e in examples]
    width = max(len(ids) for ids, _ in cut)
    ids, attention, mask = [], [], []
    for tokens, marks in cut:
        pad = width - len(tokens)
        ids.append(tokens + [pad_id] * pad)
        attention.append([1] * len(tokens) + [0] * pad)
        mask.append(marks[1:] + [0] * pad)
    return SFTBatch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        attention_mask=torch.tensor(attention, dtype=torch.long),
        mask=torch.tensor(mask, dtype=torch.float32),
    )


# ------------------------------------------------------------------------------------ trainer


@dataclass
class _Part:
    """A micro-batch of an SFT batch, with the batch's normaliser."""

    rows: SFTBatch
    tokens: int
    """The whole batch's assistant tokens."""


class SFTTrainer(Trainer):
    """Fine-tunes ``model`` on ``config.data`` (or ``examples``) with masked cross-entropy.

    One step: :meth:`batch` (the step's examples, a fixed shuffle per epoch), then one optimizer
    step on :meth:`loss` summed over the micro-batches; the loop around it is
    :class:`~rlenv.train._runtime.Trainer`'s.

    Args:
        config: The run's settings.
        model: A ``transformers`` causal LM; default: ``rlenv.models.load_model(config.model)``.
        tokenizer: Its tokenizer (with a chat template).
        examples: Training sequences; default: :func:`load_examples` of ``config.data``.
        log: Called with each step's metrics (besides ``metrics.jsonl``).
    """

    name = "SFT"
    curve_keys = ("loss", "grad_norm", "lr", "tokens", "time_step")

    def __init__(
        self,
        config: SFTConfig,
        model: Any = None,
        tokenizer: Any = None,
        *,
        examples: Sequence[SFTExample] | None = None,
        log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if examples is None and not config.data:
            raise ValueError("no training data: set data to JSONL files (or pass examples=)")
        super().__init__(config, log=log)
        self.config: SFTConfig = config
        self.model, self.tokenizer = self._load(model, tokenizer)
        self.examples = (
            list(examples) if examples is not None else load_examples(config.data, self.tokenizer)
        )
        if not self.examples:
            raise ValueError("no training examples")
        self.steps_per_epoch = math.ceil(len(self.examples) / config.batch_size)
        self.total_steps = config.steps or max(1, round(config.epochs * self.steps_per_epoch))
        self._setup_optimizer()

    # ------------------------------------------------------------------------ one step

    def batch_examples(self, step: int) -> list[SFTExample]:
        """The examples of optimizer step ``step`` (0-based): a fixed shuffle per epoch, seeded
        by ``seed`` and the epoch, so a resumed run sees the same batches."""
        size = self.config.batch_size
        epoch, index = divmod(step, self.steps_per_epoch)
        order = list(range(len(self.examples)))
        random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
        return [self.examples[i] for i in order[index * size : (index + 1) * size]]

    def batch(self, step: int) -> SFTBatch:
        return build_batch(
            self.batch_examples(step), self.tokenizer.pad_token_id, self.config.max_length
        )

    def microbatches(self, batch: SFTBatch) -> Iterator[_Part]:
        # One normaliser for the whole batch, so accumulation gives its token-level mean.
        tokens = int(batch.mask.sum())
        size = self.config.micro_batch_size
        for start in range(0, batch.input_ids.shape[0], size):
            part = slice(start, start + size)
            if not batch.mask[part].any():  # no assistant token: a zero gradient, not forwarded
                continue
            rows = SFTBatch(
                input_ids=batch.input_ids[part].to(self.device),
                attention_mask=batch.attention_mask[part].to(self.device),
                mask=batch.mask[part].to(self.device),
            )
            yield _Part(rows, tokens)

    def loss(self, part: _Part) -> tuple[Any, dict[str, float]]:
        """``L = -sum_t m_t log p(x_t+1 | x_<=t) / sum m``: the cross-entropy of each next
        token at the assistant tokens (``m`` = 1), the mean over the whole batch's.

        The log-probs are :func:`~rlenv.train.algorithm.token_logprobs`' (temperature 1): the
        output layer runs on the decoder's hidden states in checkpointed chunks, so no
        ``[batch, length, vocabulary]`` logits exist, and positions before the micro-batch's
        first assistant target and padded ones never reach it."""
        from rlenv.train.algorithm import token_logprobs
        from rlenv.train.distributed import run_sharded

        rows = part.rows
        # every column before the first assistant target of any row is prompt: skip it
        first = int(rows.mask.any(0).int().argmax())
        with self._autocast_context():
            logprobs, _ = run_sharded(  # on several processes, one pass of the root unit
                self.model, token_logprobs, rows.input_ids, rows.attention_mask, first=first
            )
        return -(logprobs.float() * rows.mask).sum() / max(1, part.tokens), {}

    def batch_metrics(self, batch: SFTBatch) -> dict[str, Any]:
        return {
            "epoch": self.step / self.steps_per_epoch,
            "tokens": int(batch.mask.sum()),
            "sequences": int(batch.input_ids.shape[0]),
        }
