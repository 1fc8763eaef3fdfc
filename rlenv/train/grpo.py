"""The bundled GRPO trainer: an environment and a model in, a better model out, on one machine.

One step: sample ``prompts_per_step`` tasks × ``group_size`` completions with the rollout engine
(every sample of a task shares its seed; the env's verifier gives the reward), turn the rewards
into group advantages, build training sequences from the exact sampled token ids
(:meth:`~rlenv.rollout.Trajectory.token_sequence`: model tokens masked in, prompt and env
tokens out), and take ``updates_per_batch`` clipped-surrogate optimizer steps. The pieces are
the small functions of :mod:`rlenv.train.algorithm`. Episodes with a malformed tool call follow
``config.parse_error`` (:data:`~rlenv.train.config.ParseErrorPolicy`): kept, masked out as
unscored ones are, or re-scored.

Weights stay fp32; forward passes run under bf16 autocast on CUDA and on CPUs with native bf16
(``precision="auto"``), else in fp32.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlenv.pool import EnvPool
from rlenv.rollout import SamplingParams, Trajectory, episodes, rollout
from rlenv.rollout.transformers import TransformersPolicy
from rlenv.train._runtime import Trainer
from rlenv.train.algorithm import (
    aggregate,
    clipped_surrogate,
    group_advantages,
    kl_k3,
    overlong_penalty,
    parse_error_rewards,
    shared_prefix_logprobs,
    token_logprobs,
)
from rlenv.train.config import GRPOConfig, held_out_env_kwargs

__all__ = ["GRPOTrainer", "TrainBatch", "build_batch", "parse_errors", "sample_rewards"]

TRAIN_SEED_BASE = 1_000_000
"""Training tasks use env seeds from here on; held-out evaluation uses seeds 0..eval_tasks-1
(and the ``"test"`` split when training uses ``split="train"``)."""


# --------------------------------------------------------------------------- rewards, batches


def parse_errors(trajectory: Trajectory) -> int:
    """The tool calls of an episode its environment could not parse (the turns' verdicts'
    ``parse_errors``; :class:`~rlenv.tools.ToolEnv` counts them)."""
    return sum(turn.verdict.parse_errors for turn in trajectory.turns)


def sample_rewards(trajectories: Sequence[Trajectory], config: GRPOConfig) -> list[float | None]:
    """Each episode's reward for the advantage: ``None`` when a verifier could not score it,
    plus DAPO's overlong penalty on cut completions when ``truncation == "penalty"``; then
    episodes with a parse error follow ``config.parse_error`` (:func:`parse_error_rewards`:
    ``"mask"`` makes them ``None``, left out of the loss; ``"zero"`` gives them
    ``parse_error_reward``)."""
    rewards: list[float | None] = []
    for trajectory in trajectories:
        if not trajectory.scored:
            rewards.append(None)
            continue
        reward = trajectory.reward
        if config.truncation == "penalty":
            longest = max((len(t.completion_token_ids or []) for t in trajectory.turns), default=0)
            reward += overlong_penalty(longest, config.max_new_tokens, config.overlong_buffer)
        rewards.append(reward)
    return parse_error_rewards(
        rewards,
        [parse_errors(t) > 0 for t in trajectories],
        config.parse_error,
        reward=config.parse_error_reward,
    )


def _cut(trajectory: Trajectory) -> bool:
    return any(turn.finish_reason == "length" for turn in trajectory.turns)


@dataclass
class TrainBatch:
    """Right-padded training sequences. ``mask`` marks model-generated target tokens (shifted:
    position t is token t + 1), so prompt, environment and padding tokens never count."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask: torch.Tensor
    sampler_logprobs: torch.Tensor
    advantages: torch.Tensor
    first: int
    """The first position whose target can be a model token (min prompt length - 1)."""
    prefix_lengths: list[int]
    """Each row's opening prompt length (shared by the samples of a group)."""

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def split(self, size: int) -> Iterator[TrainBatch]:
        for start in range(0, len(self), size):
            part = slice(start, start + size)
            yield TrainBatch(
                self.input_ids[part],
                self.attention_mask[part],
                self.mask[part],
                self.sampler_logprobs[part],
                self.advantages[part],
                self.first,
                self.prefix_lengths[part],
            )

    def select(self, rows: list[int]) -> TrainBatch:
        index = torch.tensor(rows, dtype=torch.long, device=self.input_ids.device)
        return TrainBatch(
            self.input_ids[index],
            self.attention_mask[index],
            self.mask[index],
            self.sampler_logprobs[index],
            self.advantages[index],
            self.first,
            [self.prefix_lengths[row] for row in rows],
        )

    def to(self, device: str) -> TrainBatch:
        return TrainBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.mask.to(device),
            self.sampler_logprobs.to(device),
            self.advantages.to(device),
            self.first,
            self.prefix_lengths,
        )


def build_batch(
    trajectories: Sequence[Trajectory],
    advantages: Sequence[float],
    trainable: Sequence[bool],
    pad_id: int,
) -> TrainBatch:
    """Training tensors from the exact sampled ids of each episode. ``trainable[i]`` False
    (unscored, a cut completion under overlong filtering, a parse error under
    ``parse_error="mask"``) gives the sequence a mask of 0: no loss, no share of the normaliser.
    """
    sequences = [trajectory.token_sequence() for trajectory in trajectories]
    width = max(len(s.token_ids) for s in sequences)
    ids, attention, mask, logprobs = [], [], [], []
    for sequence, keep in zip(sequences, trainable, strict=True):
        pad = width - len(sequence.token_ids)
        ids.append(sequence.token_ids + [pad_id] * pad)
        attention.append([1] * len(sequence.token_ids) + [0] * pad)
        # shift: position t predicts token t + 1
        targets = sequence.mask[1:] + [0] * pad
        mask.append([m if keep else 0 for m in targets])
        logprobs.append(sequence.logprobs[1:] + [0.0] * pad)
    first = max(0, min(s.prompt_length for s in sequences) - 1)
    return TrainBatch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        attention_mask=torch.tensor(attention, dtype=torch.long),
        mask=torch.tensor(mask, dtype=torch.float32),
        sampler_logprobs=torch.tensor(logprobs, dtype=torch.float32),
        advantages=torch.tensor(list(advantages), dtype=torch.float32),
        first=first,
        prefix_lengths=[s.prompt_length for s in sequences],
    )


# ------------------------------------------------------------------------------------ trainer


class _TimedPolicy:
    """Counts the seconds a policy spends generating (the rest of a rollout is env time)."""

    def __init__(self, policy: TransformersPolicy, context: Callable[[], Any]) -> None:
        self.policy = policy
        self.name = policy.name
        self.supports_prefixes = True
        self.seconds = 0.0
        self._context = context

    def generate(self, conversations, tools, params, prefixes=None):
        started = time.perf_counter()
        with self._context():
            completions = self.policy.generate(conversations, tools, params, prefixes=prefixes)
        self.seconds += time.perf_counter() - started
        return completions


class GRPOTrainer(Trainer):
    """Trains ``model`` on ``config.env_id`` with GRPO.

    Args:
        config: The run's settings (:class:`~rlenv.train.GRPOConfig`).
        model: A ``transformers`` causal LM; default: ``rlenv.models.load_model(config.model)``.
        tokenizer: Its tokenizer (with a chat template).
        log: Called with each step's metrics (besides ``metrics.jsonl``).
    """

    name = "GRPO"
    curve_keys = (
        "reward_mean", "accuracy", "eval_sampled_accuracy", "eval_greedy_accuracy",
        "entropy", "frac_zero_std", "clip_low", "clip_high", "kl", "grad_norm",
        "completion_length_mean", "time_step",
    )  # fmt: skip

    def __init__(
        self,
        config: GRPOConfig,
        model: Any = None,
        tokenizer: Any = None,
        *,
        log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(config, log=log)
        self.config: GRPOConfig = config
        model, tokenizer = self._load(model, tokenizer)
        if config.gradient_checkpointing:
            # the new name in transformers 5.x, the old one before
            enable = getattr(model, "activation_checkpointing_enable", None)
            (enable or model.gradient_checkpointing_enable)()
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()
        self.model = model
        self.tokenizer = tokenizer
        self.reference = None
        if config.beta > 0 and config.lora_rank == 0:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
        self.policy = TransformersPolicy(
            model,
            tokenizer,
            device=self.device,
            batch_size=config.generation_batch_size,
            name=config.model,
            cast_bf16=False,
        )
        self.pad_id = tokenizer.pad_token_id
        # Envs are made once and reused by every step's rollouts (and evaluation's).
        self.env_pool = EnvPool()
        self._setup_optimizer()

    # ------------------------------------------------------------------------ public API

    def train(self) -> list[dict[str, Any]]:
        """Run from the current step to ``config.steps``: held-out evaluation at the start
        (unless resuming), every ``eval_every`` steps and at the end; metrics to
        ``metrics.jsonl``; checkpoints; PNG curves. Returns every step's metrics."""
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
        history = []
        if self.step == 0 and config.eval_tasks:
            self._record({"step": 0, **self.evaluate()})
        bar = self._progress(config.steps)
        while self.step < config.steps:
            metrics = self.train_step()
            history.append(metrics)
            evaluate = config.eval_every and self.step % config.eval_every == 0
            if config.eval_tasks and (evaluate or self.step == config.steps):
                metrics.update(self.evaluate())
            self._record(metrics)
            if config.save_every and self.step % config.save_every == 0:
                self.save_checkpoint()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['reward_mean']:.3f}",
                    s_step=f"{metrics['time_step']:.1f}",
                    refresh=False,
                )
        if bar is not None:
            bar.close()
        self._finish()
        return history

    def train_step(self) -> dict[str, Any]:
        """One GRPO step: sample, score, update. Returns its metrics."""
        config = self.config
        started = time.perf_counter()
        trajectories, sampling = self._sample_groups()
        rewards = sample_rewards(trajectories, config)
        groups = [(t.seed, t.task_id) for t in trajectories]
        advantages, informative = group_advantages(
            rewards, groups, scale=config.scale_rewards, epsilon=config.advantage_epsilon
        )
        cut = [_cut(t) for t in trajectories]
        trainable = [
            reward is not None and not (config.truncation == "mask" and was_cut)
            for reward, was_cut in zip(rewards, cut, strict=True)
        ]
        batch = build_batch(trajectories, advantages, trainable, self.pad_id)
        train_started = time.perf_counter()
        update = self._update(batch)
        finished = time.perf_counter()
        self.step += 1

        scored = [r for r in rewards if r is not None]
        raw = [t.reward for t in trajectories if t.scored]
        malformed = [parse_errors(t) for t in trajectories]
        lengths = [sum(len(x.completion_token_ids or []) for x in t.turns) for t in trajectories]
        metrics = {
            "step": self.step,
            "reward_mean": _mean(scored),
            "reward_std": _std(scored),
            "accuracy": _mean([float(r >= 1.0 - 1e-9) for r in raw]),
            "unscored": sum(not t.scored for t in trajectories),
            "frac_parse_error": _mean([float(n > 0) for n in malformed]),
            "parse_errors": sum(malformed),
            "frac_zero_std": 1.0 - _mean([float(i) for i in informative]),
            "completion_length_mean": _mean(lengths),
            "completion_length_max": max(lengths),
            "frac_truncated": _mean([float(c) for c in cut]),
            "tokens_per_second": sum(lengths) / max(sampling["generate_seconds"], 1e-9),
            "time_generate": sampling["generate_seconds"],
            "time_score": sampling["rollout_seconds"] - sampling["generate_seconds"],
            "time_train": finished - train_started,
            "time_step": finished - started,
            "lr": self.scheduler.get_last_lr()[0],
            **{k: v for k, v in sampling.items() if k.startswith("dynamic")},
            **update,
        }
        return metrics

    def evaluate(self, tasks: int | None = None) -> dict[str, float]:
        """Held-out accuracy (env seeds 0..tasks-1, never used for training; the ``"test"``
        split when training uses ``split="train"``): sampled at the training temperature and,
        with ``eval_greedy``, greedy."""
        config = self.config
        n = tasks if tasks is not None else config.eval_tasks
        specs = episodes(config.env_id, n_tasks=n, seed=0, **held_out_env_kwargs(config.env_kwargs))
        modes = {"eval_sampled": config.temperature}
        if config.eval_greedy:
            modes["eval_greedy"] = 0.0
        results = {}
        self.model.eval()
        for name, temperature in modes.items():
            params = SamplingParams(
                max_new_tokens=config.max_new_tokens,
                temperature=temperature,
                top_p=config.top_p,
                seed=config.seed + 7919,
            )
            with self._generation_context():
                trajectories = rollout(
                    self.policy,
                    specs,
                    params=params,
                    max_batch_size=config.generation_batch_size,
                    pool=self.env_pool,
                )
            results[f"{name}_accuracy"] = _mean(
                [float(t.scored and t.reward >= 1.0 - 1e-9) for t in trajectories]
            )
        return results

    # ------------------------------------------------------------------------ internals

    def _generation_context(self):
        return self._autocast_context()

    def plot_title(self) -> str:
        return self.config.env_id

    def _sample_groups(self) -> tuple[list[Trajectory], dict[str, Any]]:
        """``prompts_per_step`` groups; with dynamic sampling, groups whose rewards are all equal
        are dropped and new tasks sampled (up to ``max_sampling_rounds`` rounds)."""
        config = self.config
        timed = _TimedPolicy(self.policy, self._generation_context)
        started = time.perf_counter()
        kept: list[list[Trajectory]] = []
        seen = dropped = 0
        self.model.eval()
        for round_ in range(config.max_sampling_rounds if config.dynamic_sampling else 1):
            first_seed = (
                TRAIN_SEED_BASE
                + config.seed * 100_000_000
                + (self.step * config.max_sampling_rounds + round_) * config.prompts_per_step
            )
            specs = episodes(
                config.env_id,
                n_tasks=config.prompts_per_step,
                group_size=config.group_size,
                seed=first_seed,
                **config.env_kwargs,
            )
            params = SamplingParams(
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=first_seed,
            )
            trajectories = rollout(
                timed,
                specs,
                params=params,
                max_batch_size=config.generation_batch_size,
                pool=self.env_pool,
            )
            for start in range(0, len(trajectories), config.group_size):
                group = trajectories[start : start + config.group_size]
                seen += 1
                if config.dynamic_sampling:  # the rewards the advantages will see
                    rewards = {r for r in sample_rewards(group, config) if r is not None}
                    if len(rewards) < 2:
                        dropped += 1
                        continue
                kept.append(group)
            if len(kept) >= config.prompts_per_step:
                break
        if not kept:  # every group was uninformative: train on the last round (advantages 0)
            kept = [
                trajectories[s : s + config.group_size]
                for s in range(0, len(trajectories), config.group_size)
            ]
        kept = kept[: config.prompts_per_step]
        info: dict[str, Any] = {
            "generate_seconds": timed.seconds,
            "rollout_seconds": time.perf_counter() - started,
        }
        if config.dynamic_sampling:
            info["dynamic_dropped_fraction"] = dropped / max(1, seen)
            info["dynamic_groups_sampled"] = seen
        return [t for group in kept for t in group], info

    def _update(self, batch: TrainBatch) -> dict[str, Any]:
        config = self.config
        model = self.model
        model.train()
        batch = batch.to(self.device)
        # The normalisers count the whole batch, rows left out below included.
        total_tokens = int(batch.mask.sum())
        total_sequences = int((batch.mask.sum(-1) > 0).sum())
        rows = batch.mask.sum(-1) > 0
        if config.beta == 0 and config.skip_zero_advantage:
            # A row with advantage 0 has loss 0 and gradient 0 at any ratio (and no KL term
            # when beta = 0): forwarding it would change nothing but the clock.
            rows &= batch.advantages != 0
        trained = batch.select(rows.nonzero().flatten().tolist())
        parts = list(trained.split(config.micro_batch_size)) if len(trained) else []
        trained_tokens = int(trained.mask.sum()) if len(trained) else 0
        forward = self._autocast_context
        old: list[torch.Tensor] | None = None
        if config.updates_per_batch > 1:  # the old policy's log-probs, fixed for all updates
            with torch.no_grad(), forward():
                old = [self._logprobs(part)[0].detach() for part in parts]
        references: list[torch.Tensor] | None = None
        if config.beta > 0:
            with torch.no_grad(), forward():
                references = [self._reference_logprobs(part) for part in parts]

        sums: dict[str, float] = {
            "loss": 0.0, "entropy": 0.0, "kl": 0.0, "clip_low": 0.0, "clip_high": 0.0,
            "logprob_mismatch": 0.0,
        }  # fmt: skip
        grad_norms, skipped = [], []
        for update in range(config.updates_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            finite = True
            for index, part in enumerate(parts):
                with forward():
                    logprobs, entropy = self._logprobs(part, entropy=update == 0)
                previous = old[index] if old is not None else logprobs.detach()
                per_token, clip = clipped_surrogate(
                    logprobs,
                    previous,
                    part.advantages,
                    part.mask,
                    epsilon_low=config.epsilon_low,
                    epsilon_high=config.epsilon_high,
                )
                if references is not None:
                    kl = kl_k3(logprobs, references[index]) * part.mask
                    per_token = per_token + config.beta * kl
                    sums["kl"] += kl.sum().item() / max(1, total_tokens) / config.updates_per_batch
                loss = aggregate(
                    per_token,
                    part.mask,
                    config.loss_aggregation,
                    total_tokens=total_tokens,
                    total_sequences=total_sequences,
                    max_tokens=config.max_new_tokens,
                )
                if not torch.isfinite(loss):
                    finite = False
                    break
                loss.backward()
                share = float(part.mask.sum()) / max(1, trained_tokens) / config.updates_per_batch
                sums["loss"] += loss.item() / config.updates_per_batch
                sums["clip_low"] += clip.low * share
                sums["clip_high"] += clip.high * share
                if update == 0:  # over the rows trained on
                    masked = part.mask
                    sums["entropy"] += float((entropy * masked).sum()) / max(1, trained_tokens)
                    sums["logprob_mismatch"] += float(
                        ((logprobs.detach() - part.sampler_logprobs).abs() * masked).sum()
                    ) / max(1, trained_tokens)
            if not finite:
                self.optimizer.zero_grad(set_to_none=True)
                skipped.append(f"update {update}: non-finite loss")
                continue
            for parameter in model.parameters():  # rows left out: a zero gradient, as computed
                if parameter.requires_grad and parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
            norm = torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], config.max_grad_norm
            )
            if not torch.isfinite(norm):
                self.optimizer.zero_grad(set_to_none=True)
                skipped.append(f"update {update}: non-finite gradient norm")
                continue
            grad_norms.append(float(norm))
            self.optimizer.step()
        with warnings.catch_warnings():  # a step whose updates were all skipped still counts
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        metrics: dict[str, Any] = dict(sums)
        metrics["grad_norm"] = _mean(grad_norms) if grad_norms else None
        if not trained_tokens:  # nothing was forwarded: no entropy to report, not an entropy of 0
            metrics["entropy"] = metrics["logprob_mismatch"] = None
        metrics["trained_tokens"] = trained_tokens
        metrics["trained_sequences"] = len(trained)
        metrics["loss_tokens"] = total_tokens
        metrics["skipped"] = "; ".join(skipped) or None
        if references is None:
            metrics["kl"] = None
        return metrics

    def _logprobs(
        self, part: TrainBatch, entropy: bool = False, model: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        model = model if model is not None else self.model
        config = self.config
        if (
            config.share_prompt_prefix
            and not config.gradient_checkpointing  # no key/value cache under checkpointing
            and min(part.prefix_lengths) >= 2
        ):
            return shared_prefix_logprobs(
                model,
                part.input_ids,
                part.attention_mask,
                part.prefix_lengths,
                temperature=config.temperature,
                entropy=entropy,
            )
        return token_logprobs(
            model,
            part.input_ids,
            part.attention_mask,
            temperature=self.config.temperature,
            first=part.first,
            entropy=entropy,
        )

    def _reference_logprobs(self, part: TrainBatch) -> torch.Tensor:
        if self.reference is not None:
            return self._logprobs(part, model=self.reference)[0]
        with self.model.disable_adapter():  # LoRA: the base model is the reference
            return self._logprobs(part)[0]


# ------------------------------------------------------------------------------------ helpers


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
