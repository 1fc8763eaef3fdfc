"""Verifier-built DPO: preference pairs from groups of rollouts, and a small DPO trainer.

A group of rollouts of one task (same env id, task id and seed) holds samples the verifier
passed and samples it failed. :func:`preference_pairs` turns each group into (chosen, rejected)
pairs; :func:`to_trl_records` / :func:`write_dpo_jsonl` export them in TRL's conversational DPO
format; :class:`DPOTrainer` trains on them here with the DPO loss (:func:`dpo_loss`), using the
exact token ids the sampler produced whenever the trajectory kept them.

DPO: Rafailov et al. 2023, "Direct Preference Optimization", https://arxiv.org/abs/2305.18290;
conservative label smoothing: Mitchell 2023, "A note on DPO with noisy preferences".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from rlenv.chat import Message
from rlenv.rollout.trajectory import Trajectory, read_trajectories
from rlenv.train._runtime import Trainer
from rlenv.train.algorithm import parse_error_rewards, token_logprobs
from rlenv.train.config import ParseErrorPolicy, TrainConfig
from rlenv.train.distributed import run_sharded

__all__ = [
    "DPOConfig",
    "DPOLoss",
    "DPOTrainer",
    "PreferencePair",
    "dpo_loss",
    "load_pairs",
    "preference_pairs",
    "run_dpo",
    "to_trl_records",
    "write_dpo_jsonl",
    "write_pairs",
]


# --------------------------------------------------------------------------- preference pairs


class PreferencePair(BaseModel):
    """One prompt, a completion the verifier preferred and one it did not.

    ``*_token_ids`` are the exact ids of the trajectory's (only) model turn: the prompt the
    model was fed and what it generated. They are ``None`` when the trajectory did not keep ids
    (an API policy) or when the two samples were fed different prompt ids; the trainer then
    re-renders the text with the tokenizer's chat template.
    """

    model_config = ConfigDict(extra="forbid")

    env_id: str = ""
    task_id: str | None = None
    seed: int | None = None
    prompt: list[Message] = Field(description="The conversation before the model's turn.")
    chosen: str = Field(description="The preferred assistant completion (raw text).")
    rejected: str = Field(description="The dispreferred assistant completion (raw text).")
    chosen_reward: float = 0.0
    rejected_reward: float = 0.0
    prompt_token_ids: list[int] | None = None
    chosen_token_ids: list[int] | None = None
    rejected_token_ids: list[int] | None = None


def preference_pairs(
    trajectories: Iterable[Trajectory],
    *,
    margin: float = 0.0,
    min_chosen_reward: float | None = None,
    top_tolerance: float = 1e-9,
    parse_error: ParseErrorPolicy = "keep",
    parse_error_reward: float = 0.0,
) -> list[PreferencePair]:
    """Preference pairs from groups of single-turn rollouts of the same task.

    Groups: trajectories with the same ``(env_id, task_id, seed)``, in order of first
    appearance. In each group, only scored single-turn trajectories count (an unscored sample
    carries no verdict; in a multi-turn episode the reward belongs to the whole episode, not to
    one completion, so those are left out). *Chosen* candidates are the samples at the group's
    top reward (within ``top_tolerance``), and only when that top is at least
    ``min_chosen_reward`` (e.g. 1.0: only a sample the verifier passed is ever chosen; default:
    any top); *rejected* candidates are those whose reward is lower than the top by at least
    ``margin`` (and by more than ``top_tolerance``: ties never make a pair).

    Pairing rule: chosen candidates in input order, rejected candidates from the lowest
    reward up (then input order), paired one-to-one with :func:`zip`; each sample is used at
    most once, so a group gives ``min(#chosen, #rejected)`` pairs. One-to-one keeps pairs
    independent (no single completion dominates a task's gradient, the batch statistics stay
    per-pair), and worst-first puts the clearest contrasts first. Deterministic: the same
    trajectories in the same order give the same pairs.

    A sample with a malformed tool call (``parse_errors`` in its verdict) follows
    ``parse_error``, as in GRPO (:func:`~rlenv.train.algorithm.parse_error_rewards`):
    ``"keep"`` ranks it by its reward; ``"mask"`` leaves it out of its group (never chosen nor
    rejected); ``"zero"`` ranks it at ``parse_error_reward``, so it is rejected against any
    better sample.
    """
    from rlenv.train.grpo import parse_errors

    if margin < 0:
        raise ValueError("margin must be >= 0")
    groups: dict[tuple[str, str | None, int | None], list[Trajectory]] = {}
    for trajectory in trajectories:
        key = (trajectory.env_id, trajectory.task_id, trajectory.seed)
        groups.setdefault(key, []).append(trajectory)
    pairs: list[PreferencePair] = []
    for (env_id, task_id, seed), members in groups.items():
        rewards = parse_error_rewards(
            [t.reward if t.scored else None for t in members],
            [parse_errors(t) > 0 for t in members],
            parse_error,
            reward=parse_error_reward,
        )
        reward = {
            id(t): value
            for t, value in zip(members, rewards, strict=True)
            if value is not None and len(t.turns) == 1 and math.isfinite(value)
        }
        usable = [t for t in members if id(t) in reward]
        if len(usable) < 2:
            continue
        top = max(reward.values())
        if min_chosen_reward is not None and top < min_chosen_reward:
            continue
        chosen = [t for t in usable if reward[id(t)] >= top - top_tolerance]
        gap = [top - reward[id(t)] for t in usable]
        rejected = [
            t for t, g in zip(usable, gap, strict=True) if g > top_tolerance and g >= margin
        ]
        order = {id(t): index for index, t in enumerate(usable)}
        rejected.sort(key=lambda t: (reward[id(t)], order[id(t)]))
        for good, bad in zip(chosen, rejected, strict=False):
            pairs.append(_pair(env_id, task_id, seed, good, bad, reward[id(good)], reward[id(bad)]))
    return pairs


def _pair(
    env_id: str,
    task_id: str | None,
    seed: int | None,
    good: Trajectory,
    bad: Trajectory,
    good_reward: float,
    bad_reward: float,
) -> PreferencePair:
    good_turn, bad_turn = good.turns[0], bad.turns[0]
    prompt_ids = good_turn.prompt_token_ids
    exact = (
        prompt_ids is not None
        and prompt_ids == bad_turn.prompt_token_ids
        and good_turn.completion_token_ids is not None
        and bad_turn.completion_token_ids is not None
    )
    return PreferencePair(
        env_id=env_id,
        task_id=task_id,
        seed=seed,
        prompt=_prompt_messages(good),
        chosen=good_turn.completion,
        rejected=bad_turn.completion,
        chosen_reward=good_reward,
        rejected_reward=bad_reward,
        prompt_token_ids=list(prompt_ids) if exact else None,
        chosen_token_ids=list(good_turn.completion_token_ids) if exact else None,
        rejected_token_ids=list(bad_turn.completion_token_ids) if exact else None,
    )


def _prompt_messages(trajectory: Trajectory) -> list[Message]:
    """The messages before the first assistant message (the opening the model answered)."""
    for index, message in enumerate(trajectory.messages):
        if message["role"] == "assistant":
            return list(trajectory.messages[:index])
    return list(trajectory.messages)


def to_trl_records(pairs: Iterable[PreferencePair]) -> list[dict[str, Any]]:
    """TRL's conversational preference format (``trl.DPOTrainer``): ``prompt`` a list of
    messages, ``chosen`` and ``rejected`` each a one-message list with the assistant reply."""
    return [
        {
            "prompt": [dict(message) for message in pair.prompt],
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
        for pair in pairs
    ]


def write_dpo_jsonl(pairs: Iterable[PreferencePair], path: str | Path) -> int:
    """Write :func:`to_trl_records` as JSONL (``datasets.load_dataset("json", ...)`` reads
    it); returns how many records were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for record in to_trl_records(pairs):
            handle.write(json.dumps(record) + "\n")
            count += 1
    return count


def write_pairs(pairs: Iterable[PreferencePair], path: str | Path) -> int:
    """Write the pairs themselves as JSONL, token ids and rewards included (what
    :func:`load_pairs` and ``DPOConfig.data`` read back losslessly); returns the count."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(pair.model_dump_json() + "\n")
            count += 1
    return count


def load_pairs(
    path: str | Path,
    *,
    margin: float = 0.0,
    min_chosen_reward: float | None = None,
    parse_error: ParseErrorPolicy = "keep",
    parse_error_reward: float = 0.0,
) -> list[PreferencePair]:
    """Pairs from a JSONL file of trajectories (paired with :func:`preference_pairs`; the
    settings apply to them), of :class:`PreferencePair` records, or of TRL conversational
    records (text only)."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        first = next((json.loads(line) for line in handle if line.strip()), None)
    if first is None:
        return []
    if "turns" in first:
        return preference_pairs(
            read_trajectories(path),
            margin=margin,
            min_chosen_reward=min_chosen_reward,
            parse_error=parse_error,
            parse_error_reward=parse_error_reward,
        )
    pairs = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            try:
                if isinstance(record.get("chosen"), list):  # TRL conversational
                    record = {
                        "prompt": record["prompt"],
                        "chosen": record["chosen"][-1]["content"],
                        "rejected": record["rejected"][-1]["content"],
                    }
                pairs.append(PreferencePair.model_validate(record))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: not a preference pair: {error}") from None
    return pairs


# ----------------------------------------------------------------------------------- the loss


@dataclass
class DPOLoss:
    """Per-pair results of :func:`dpo_loss` (all shape ``[pairs]``)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    """The implicit reward ``beta * (logp_chosen - ref_logp_chosen)`` (detached)."""
    rejected_rewards: torch.Tensor
    accuracy: torch.Tensor
    """1.0 where the chosen implicit reward is above the rejected one, else 0.0."""


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> DPOLoss:
    """The DPO sigmoid loss per pair, with conservative label smoothing ``eps``:

    ``h = (pi_c - ref_c) - (pi_r - ref_r)``,
    ``loss = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)``.

    Inputs are sequence log-probabilities: sums over the completion's (model) tokens only.
    With the policy equal to the reference, ``h = 0`` and the loss is ``log 2``.
    """
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    logits = beta * (chosen - rejected)
    losses = -(1 - label_smoothing) * torch.nn.functional.logsigmoid(
        logits
    ) - label_smoothing * torch.nn.functional.logsigmoid(-logits)
    chosen_rewards = (beta * chosen).detach()
    rejected_rewards = (beta * rejected).detach()
    return DPOLoss(
        losses=losses,
        chosen_rewards=chosen_rewards,
        rejected_rewards=rejected_rewards,
        accuracy=(chosen_rewards > rejected_rewards).float(),
    )


# ---------------------------------------------------------------------------------- the config


class DPOConfig(TrainConfig):
    """The settings of a DPO run on verifier-built preference pairs (the shared ones are
    :class:`~rlenv.train.config.TrainConfig`'s)."""

    data: str = Field(
        "", description="JSONL of trajectories (paired here), PreferencePairs or TRL records."
    )
    out: str = Field("rlenv-dpo", description="Folder for metrics, plots and checkpoints.")
    margin: float = Field(0.0, ge=0, description="Least reward gap for a pair (trajectories).")
    min_chosen_reward: float | None = Field(
        None, description="Only groups whose top reward reaches this give pairs (trajectories)."
    )
    parse_error: ParseErrorPolicy = Field(
        "keep",
        description="Samples with a malformed tool call (trajectories): 'keep' ranks them by "
        "their reward; 'mask' leaves them out of pairing; 'zero' ranks them at "
        "parse_error_reward (rejected against any better sample). See GRPOConfig.parse_error.",
    )
    parse_error_reward: float = Field(
        0.0, allow_inf_nan=False, description="'zero': the reward a malformed sample ranks at."
    )

    steps: int | None = Field(
        None, ge=1, description="Optimizer steps; default: epochs × batches per epoch."
    )
    epochs: int = Field(1, ge=1, description="Passes over the pairs when steps is not set.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step.")
    micro_batch_size: int = Field(4, ge=1, description="Pairs per forward/backward.")

    beta: float = Field(0.1, gt=0, description="DPO temperature on the implicit reward.")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="Conservative DPO: assumed preference-flip rate."
    )

    learning_rate: float = Field(5e-7, gt=0)


# --------------------------------------------------------------------------------- the trainer


@dataclass
class _Sequences:
    """Right-padded rows: pair i's chosen at row 2i, its rejected at row 2i + 1. ``mask`` is
    shifted (position t is token t + 1) and 1 only on completion tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask: torch.Tensor
    first: int


@dataclass
class _Pairs:
    """A micro-batch of pair indices, with the batch's pair count (the loss's normaliser)."""

    indices: list[int]
    batch_pairs: int


class DPOTrainer(Trainer):
    """Trains ``model`` with DPO on preference pairs.

    Args:
        config: The run's settings.
        model: A ``transformers`` causal LM; default: ``rlenv.models.load_model(config.model)``.
        tokenizer: Its tokenizer (with a chat template, for pairs without token ids).
        pairs: The pairs; default: :func:`load_pairs` of ``config.data``.
        log: Called with each step's metrics (besides ``metrics.jsonl``).

    The reference is the initial model: its sequence log-probs are computed once per pair
    here, before any update, so no second model stays in memory.
    """

    name = "DPO"
    curve_keys = ("loss", "reward_accuracy", "margin", "chosen_reward", "rejected_reward",
                  "grad_norm", "lr", "time_step")  # fmt: skip
    loss_metrics = ("loss", "reward_accuracy", "chosen_reward", "rejected_reward", "margin")
    progress_keys = (("loss", "loss"), ("reward_accuracy", "acc"))

    def __init__(
        self,
        config: DPOConfig,
        model: Any = None,
        tokenizer: Any = None,
        *,
        pairs: Sequence[PreferencePair] | None = None,
        log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(config, log=log)
        self.config: DPOConfig = config
        if pairs is None:
            if not config.data:
                raise ValueError("set DPOConfig.data to a JSONL of trajectories or pairs")
            pairs = load_pairs(
                config.data,
                margin=config.margin,
                min_chosen_reward=config.min_chosen_reward,
                parse_error=config.parse_error,
                parse_error_reward=config.parse_error_reward,
            )
        self.pairs = list(pairs)  # before the model: a bad data file fails fast
        if not self.pairs:
            raise ValueError(
                "no preference pairs: the data has no group with a passed and a "
                "failed scored sample (check the data path and margin)"
            )
        self.model, self.tokenizer = self._load(model, tokenizer)
        self._tokens = [self._pair_tokens(pair) for pair in self.pairs]
        self.steps_per_epoch = math.ceil(len(self.pairs) / config.batch_size)
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self._setup_optimizer()
        self.reference_logps = self._reference_logps()

    # ------------------------------------------------------------------------ one step

    def batch_indices(self, step: int) -> list[int]:
        """The pairs of ``step``: a fresh permutation each epoch, seeded by (seed, epoch), so
        the order depends only on the step and a resumed run sees the same batches."""
        epoch, position = divmod(step, self.steps_per_epoch)
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.pairs), generator=generator).tolist()
        size = self.config.batch_size
        return order[position * size : (position + 1) * size]

    def batch(self, step: int) -> list[int]:
        return self.batch_indices(step)

    def microbatches(self, batch: list[int]) -> Iterator[_Pairs]:
        size = self.config.micro_batch_size
        for start in range(0, len(batch), size):
            yield _Pairs(batch[start : start + size], len(batch))

    def loss(self, part: _Pairs) -> tuple[torch.Tensor, dict[str, float]]:
        """:func:`dpo_loss` of the part's pairs, summed and divided by the batch's pair count;
        the implicit rewards, their margin and the reward accuracy likewise."""
        config = self.config
        with self._autocast_context():
            chosen, rejected = self._sequence_logps(part.indices)
        reference = self.reference_logps[part.indices].to(self.device)
        result = dpo_loss(
            chosen,
            rejected,
            reference[:, 0],
            reference[:, 1],
            beta=config.beta,
            label_smoothing=config.label_smoothing,
        )
        n = part.batch_pairs
        return result.losses.sum() / n, {
            "reward_accuracy": result.accuracy.sum().item() / n,
            "chosen_reward": result.chosen_rewards.sum().item() / n,
            "rejected_reward": result.rejected_rewards.sum().item() / n,
            "margin": (result.chosen_rewards - result.rejected_rewards).sum().item() / n,
        }

    def batch_metrics(self, batch: list[int]) -> dict[str, Any]:
        return {"pairs": len(batch)}

    # ------------------------------------------------------------------------ persistence

    def _extra_state(self) -> dict[str, Any]:
        return {"reference_logps": self.reference_logps}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.reference_logps = state["reference_logps"].cpu()

    # ------------------------------------------------------------------------ internals

    def _pair_tokens(self, pair: PreferencePair) -> tuple[list[int], list[int], list[int]]:
        """(prompt ids, chosen ids, rejected ids): the sampled ids, else the chat template's."""
        if (
            pair.prompt_token_ids is not None
            and pair.chosen_token_ids is not None
            and pair.rejected_token_ids is not None
        ):
            return pair.prompt_token_ids, pair.chosen_token_ids, pair.rejected_token_ids
        render = self.tokenizer.apply_chat_template
        prompt_text = render(list(pair.prompt), add_generation_prompt=True, tokenize=False)
        encode = self.tokenizer
        prompt = encode(prompt_text, add_special_tokens=False)["input_ids"]
        completions = []
        for text in (pair.chosen, pair.rejected):
            full_text = render(
                [*pair.prompt, {"role": "assistant", "content": text}], tokenize=False
            )
            if full_text.startswith(prompt_text):
                completion_text = full_text[len(prompt_text) :]
            else:  # a template that rewrites the prompt: the reply and end-of-turn token
                completion_text = text + (self.tokenizer.eos_token or "")
            completions.append(encode(completion_text, add_special_tokens=False)["input_ids"])
        return prompt, completions[0], completions[1]

    def _batch(self, indices: Sequence[int]) -> _Sequences:
        rows = []
        for index in indices:
            prompt, chosen, rejected = self._tokens[index]
            rows += [(prompt, chosen), (prompt, rejected)]
        width = max(len(p) + len(c) for p, c in rows)
        pad_id = self.tokenizer.pad_token_id
        pad_id = pad_id if pad_id is not None else self.tokenizer.eos_token_id or 0
        ids, attention, mask = [], [], []
        for prompt, completion in rows:
            length = len(prompt) + len(completion)
            pad = width - length
            ids.append(list(prompt) + list(completion) + [pad_id] * pad)
            attention.append([1] * length + [0] * pad)
            # shift: position t predicts token t + 1; only the completion's tokens count
            mask.append([0] * (len(prompt) - 1) + [1] * len(completion) + [0] * pad)
        first = max(0, min(len(p) for p, _ in rows) - 1)
        return _Sequences(
            input_ids=torch.tensor(ids, dtype=torch.long, device=self.device),
            attention_mask=torch.tensor(attention, dtype=torch.long, device=self.device),
            mask=torch.tensor(mask, dtype=torch.float32, device=self.device),
            first=first,
        )

    def _sequence_logps(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed completion log-probs of each pair's chosen and rejected sequences."""
        batch = self._batch(indices)
        logprobs, _ = run_sharded(  # on several processes, one pass of the root unit
            self.model, token_logprobs, batch.input_ids, batch.attention_mask, first=batch.first
        )
        sums = (logprobs * batch.mask).sum(-1)
        return sums[0::2], sums[1::2]

    @torch.no_grad()
    def _reference_logps(self) -> torch.Tensor:
        """``[pairs, 2]`` (chosen, rejected) sequence log-probs of the initial model."""
        self.model.eval()
        parts = []
        indices = list(range(len(self.pairs)))
        for start in range(0, len(indices), self.config.micro_batch_size):
            with self._autocast_context():
                chosen, rejected = self._sequence_logps(
                    indices[start : start + self.config.micro_batch_size]
                )
            parts.append(torch.stack([chosen, rejected], dim=-1).float().cpu())
        return torch.cat(parts)


def run_dpo(config: DPOConfig) -> Path:
    """Train with ``config`` (the CLI's entry point); returns the saved model's folder."""
    trainer = DPOTrainer(config)
    trainer.train()
    return trainer.save_model()  # written by train() unless final_model is off
