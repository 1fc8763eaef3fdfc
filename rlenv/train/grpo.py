"""The bundled GRPO trainer: an environment and a model in, a better model out, on one machine.

One step: sample ``prompts_per_step`` tasks × ``group_size`` completions with the rollout engine
(every sample of a task shares its seed; the env's verifier gives the reward), turn the rewards
into group advantages, build training sequences from the exact sampled token ids
(:meth:`~rlenv.rollout.Trajectory.token_sequence`: model tokens masked in, prompt and env
tokens out), and take ``updates_per_batch`` clipped-surrogate optimizer steps. The pieces are
the small functions of :mod:`rlenv.train.algorithm`. Episodes with a malformed tool call follow
``config.parse_error`` (:data:`~rlenv.train.config.ParseErrorPolicy`): kept, masked out as
unscored ones are, or re-scored.

The file reads in the order of a step: :meth:`GRPOTrainer.batch` (sample, reward, advantages,
tensors), :meth:`GRPOTrainer.update` (pi_old, pi_ref, the mu optimizer steps) and
:meth:`GRPOTrainer.loss` (each term next to its equation), then the step's metrics. The loop
around a step (the guarded optimizer step, the schedule, checkpoints, metrics files, progress)
is the shared :class:`~rlenv.train._runtime.Trainer`'s.

Trained weights stay fp32; forward passes run under bf16 autocast on CUDA and on CPUs with native
bf16 (``precision="auto"``), else in fp32. Under bf16 the frozen weights are stored in bf16: the
reference model (``beta > 0``, full fine-tuning) and the LoRA base, which with its adapters
disabled is the reference under LoRA (no copy).

On several processes (``torchrun``, :mod:`rlenv.train.distributed`) each rank samples its own
block of the step's groups with the full parameters gathered, computes their advantages (a group
never straddles ranks) and trains on them; the loss's normalisers count every rank's tokens, so
the sharded update is the one-process update of the whole batch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlenv.errors import RLEnvError
from rlenv.pool import EnvPool
from rlenv.rollout import SamplingParams, Trajectory, episodes, rollout
from rlenv.rollout.trajectory import TokenSequence
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
    truncated_importance_weights,
)
from rlenv.train.config import GRPOConfig, held_out_env_kwargs
from rlenv.train.distributed import gathered, run_sharded

__all__ = [
    "GRPOTrainer",
    "SampledBatch",
    "TrainBatch",
    "build_batch",
    "parse_errors",
    "sample_rewards",
]

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
            penalty = overlong_penalty(longest, config.max_new_tokens, config.overlong_buffer)
            if config.max_episode_tokens is not None:  # the episode's budget, all turns together
                total = sum(len(t.completion_token_ids or []) for t in trajectory.turns)
                budget = config.max_episode_tokens
                penalty = min(penalty, overlong_penalty(total, budget, config.overlong_buffer))
            reward += penalty
        rewards.append(reward)
    return parse_error_rewards(
        rewards,
        [parse_errors(t) > 0 for t in trajectories],
        config.parse_error,
        reward=config.parse_error_reward,
    )


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
    An episode with no turns (its served env failed at reset, so it is unscored) gets one
    padding token with a mask of 0: nothing to learn from, and no share of the normaliser.
    """
    empty = TokenSequence(token_ids=[pad_id], mask=[0], logprobs=[0.0], prompt_length=1)
    sequences = [t.token_sequence() if t.turns else empty for t in trajectories]
    played = [s.prompt_length for s, t in zip(sequences, trajectories, strict=True) if t.turns]
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
    first = max(0, min(played, default=1) - 1)
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


@dataclass
class SampledBatch:
    """One step's data: the sampled episodes, the rewards the advantages saw, and the training
    tensors (:class:`TrainBatch`)."""

    trajectories: list[Trajectory]
    rewards: list[float | None]
    informative: list[bool]
    """Per episode: its group's rewards were not all equal (a non-zero advantage)."""
    cut: list[bool]
    """Per episode: a turn stopped at ``max_new_tokens``."""
    tensors: TrainBatch | None
    """None in the merged batch of several ranks (its metrics need no tensors)."""
    sampling: dict[str, Any]
    """Generation and rollout seconds, dynamic sampling's counts."""


@dataclass
class _Part:
    """A micro-batch, with what its loss needs from the whole batch."""

    rows: TrainBatch
    old_logprobs: torch.Tensor | None
    """log pi_old: the log-probs before this batch's first update (None when mu = 1)."""
    ref_logprobs: torch.Tensor | None
    """log pi_ref: the frozen reference's (None when beta = 0)."""
    total_tokens: int
    """The batch's model tokens: the loss's normaliser (rows left out included)."""
    total_sequences: int
    trained_tokens: int
    """The model tokens of the rows trained on: the metrics' normaliser."""
    diagnostics: bool = False
    """Also measure entropy and the sampler/trainer log-prob mismatch (the first update)."""


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

    One step, in the order of the methods below: :meth:`batch` samples the groups, scores them
    and turns rewards into advantages; :meth:`update` takes ``updates_per_batch`` optimizer
    steps on them, each the sum of :meth:`loss` over the micro-batches. The loop around it
    (guarded optimizer step, schedule, checkpoints, metrics) is :class:`~rlenv.train._runtime.
    Trainer`'s.

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
    progress_keys = (("reward_mean", "reward"), ("time_step", "s_step"))

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
        if config.prompts_per_step % self.dist.world_size:
            raise ValueError(
                f"prompts_per_step={config.prompts_per_step} does not split into "
                f"{self.dist.world_size} processes' equal shares of whole groups: make it a "
                f"multiple of {self.dist.world_size}"
            )
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
            self.reference = frozen_copy(model, torch.bfloat16 if self.autocast else None)
        self.policy = self._sampler(model, tokenizer)
        own_forward = config.generation_backend in ("loop", "hf")
        self.correct_sampler = config.sampler_correction == "tis" or (
            config.sampler_correction == "auto" and not own_forward
        )
        """Whether the loss applies truncated importance sampling by the sampler's log-probs
        (the sampler is not the trainer's own forward pass)."""
        self.pad_id = tokenizer.pad_token_id
        # Envs are made once and reused by every step's rollouts (and evaluation's).
        self.env_pool = EnvPool()
        self.total_steps = config.steps
        self._setup_optimizer()

    def _sampler(self, model: Any, tokenizer: Any) -> Any:
        """The policy that samples the rollouts, by ``generation_backend``: the trained model
        itself through :class:`~rlenv.rollout.transformers.TransformersPolicy` (``loop``,
        ``hf``, ``hf-batch``), or a colocated vLLM engine loaded from ``config.model``
        (:class:`~rlenv.rollout.vllm.VLLMPolicy`), which sleeps while the trainer trains and
        gets the new weights after each step (:meth:`_sync_sampler`)."""
        config = self.config
        if config.generation_backend != "vllm":
            return TransformersPolicy(
                model,
                tokenizer,
                device=self.device,
                batch_size=config.generation_batch_size,
                name=config.model,
                cast_bf16=False,
                decoder=config.generation_backend,
            )
        if self.dist.enabled:
            raise RLEnvError(
                "generation_backend='vllm' is not supported on several processes yet: use "
                "'hf-batch' under torchrun, or vllm on one GPU"
            )
        from rlenv.models import model_source
        from rlenv.rollout.vllm import VLLMPolicy

        return VLLMPolicy(
            model_source(config.model),
            tokenizer,
            gpu_memory_utilization=config.vllm_gpu_memory_utilization,
            enable_lora=config.lora_rank > 0,
            max_lora_rank=max(config.lora_rank, 1),
        )

    def _sync_sampler(self) -> None:
        """A sampler with its own copy of the weights (vLLM) gets the trained ones: the whole
        state dict under full fine-tuning, the saved adapter under LoRA."""
        load = getattr(self.policy, "load_weights", None)
        if load is None:
            return
        if self.config.lora_rank > 0:
            folder = self.out / "sampler-adapter"
            self.model.save_pretrained(folder)
            self.policy.use_lora(folder)
        else:
            load(self.model.state_dict().items())

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._sync_sampler()  # a resumed run samples with the checkpoint's weights

    @contextlib.contextmanager
    def _generating(self) -> Iterator[None]:
        """A generation phase: on several processes the full weights are gathered for it; a
        colocated vLLM engine is put to sleep after it, so that training has the GPU."""
        with gathered(self.model):
            yield
        sleep = getattr(self.policy, "sleep", None)
        if sleep is not None:
            sleep()

    def _models_to_shard(self) -> list[Any]:
        return [self.model] + ([self.reference] if self.reference is not None else [])

    # ------------------------------------------------------------------------ one step

    def batch(self, step: int) -> SampledBatch:
        """Sample, score, and compute advantages for step ``step`` (the trainer's current
        step: the tasks' seeds follow from it)."""
        config = self.config
        # 1. G = group_size completions of each of the step's tasks, all of a task with its
        #    seed (with dynamic sampling, groups whose rewards are all equal are re-drawn)
        trajectories, sampling = self._sample_groups()
        # 2. r_i: the verifier's reward (None: could not judge), plus DAPO's overlong penalty
        #    under truncation="penalty"; episodes with a parse error follow config.parse_error
        rewards = sample_rewards(trajectories, config)
        # 3. A_i = (r_i - mean(r_group)) / (std(r_group) + eps)   [GRPO, Shao et al. 2024]
        #    A_i = r_i - mean(r_group) with scale_rewards=False    [Dr. GRPO, Liu et al. 2025]
        advantages, informative = group_advantages(
            rewards,
            [(t.seed, t.task_id) for t in trajectories],
            scale=config.scale_rewards,
            epsilon=config.advantage_epsilon,
        )
        # 4. the exact sampled token ids; the loss mask m_i,t is 1 on the model's tokens only,
        #    and 0 on whole episodes that are unscored or cut under overlong filtering
        cut = [t.hit_token_limit for t in trajectories]  # max_new_tokens or max_episode_tokens
        trainable = [
            reward is not None and not (config.truncation == "mask" and was_cut)
            for reward, was_cut in zip(rewards, cut, strict=True)
        ]
        tensors = build_batch(trajectories, advantages, trainable, self.pad_id)
        return SampledBatch(trajectories, rewards, informative, cut, tensors, sampling)

    def update(self, batch: SampledBatch) -> dict[str, Any]:
        """Train on the step's tensors (:meth:`_update`); its metrics and seconds."""
        started = time.perf_counter()
        metrics = self._update(batch.tensors)
        self._sync_sampler()
        metrics["time_train"] = time.perf_counter() - started
        return metrics

    def _update(self, batch: TrainBatch) -> dict[str, Any]:
        """``updates_per_batch`` (mu) guarded optimizer steps on ``batch``, each over all its
        micro-batches against the same pi_old. Returns the loss metrics, averaged over the
        updates taken."""
        config = self.config
        self.model.train()
        batch = batch.to(self.device)
        rows = batch.mask.sum(-1) > 0
        if config.beta == 0 and config.skip_zero_advantage:
            # A row with advantage 0 has loss 0 and gradient 0 at any ratio (and no KL term
            # when beta = 0): forwarding it would change nothing but the clock.
            rows &= batch.advantages != 0
        trained = batch.select(rows.nonzero().flatten().tolist())
        micro = list(trained.split(config.micro_batch_size)) if len(trained) else []
        # The normalisers count the whole batch, rows left out above included, on every rank.
        total_tokens, total_sequences, trained_tokens, trained_rows = (
            int(count)
            for count in self.dist.sum(
                [
                    float(batch.mask.sum()),
                    float((batch.mask.sum(-1) > 0).sum()),
                    float(trained.mask.sum()) if len(trained) else 0.0,
                    float(len(trained)),
                ]
            )
        )
        if self.dist.enabled:  # as many passes on every rank: placeholders train on nothing
            micro += [_placeholder(batch)] * (self.dist.max(len(micro)) - len(micro))
        old = references = None
        with torch.no_grad(), self._autocast_context():
            if config.updates_per_batch > 1:  # pi_old: fixed for all mu updates
                old = [self._logprobs(rows)[0].detach() for rows in micro]
            if config.beta > 0:
                references = [self._reference_logprobs(rows) for rows in micro]
        parts = [
            _Part(
                rows=rows,
                old_logprobs=old[index] if old is not None else None,
                ref_logprobs=references[index] if references is not None else None,
                total_tokens=total_tokens,
                total_sequences=total_sequences,
                trained_tokens=trained_tokens,
            )
            for index, rows in enumerate(micro)
        ]
        steps = [
            self.optimizer_step(
                [dataclasses.replace(part, diagnostics=update == 0) for part in parts], self.loss
            )
            for update in range(config.updates_per_batch)
        ]
        taken = [step for step in steps if step.skipped is None]
        metrics: dict[str, Any] = {
            key: _mean([step.sums.get(key, 0.0) for step in taken]) if taken else None
            for key in ("loss", "kl", "clip_low", "clip_high", "tis_capped")
        }
        for key in ("entropy", "logprob_mismatch"):  # over the rows trained on, first update
            metrics[key] = steps[0].sums.get(key) if steps[0].skipped is None else None
        metrics["grad_norm"] = _mean([step.grad_norm for step in taken]) if taken else None
        metrics["trained_tokens"] = trained_tokens
        metrics["trained_sequences"] = trained_rows
        metrics["loss_tokens"] = total_tokens
        if references is None:
            metrics["kl"] = None
        if not self.correct_sampler:
            metrics["tis_capped"] = None
        metrics["skipped"] = (
            "; ".join(f"update {i}: {step.skipped}" for i, step in enumerate(steps) if step.skipped)
            or None
        )
        return metrics

    def loss(self, part: _Part) -> tuple[torch.Tensor, dict[str, float]]:
        """One micro-batch's share of the GRPO loss (the clipped surrogate, a KL penalty, and
        the aggregation over tokens), with its share of the metrics."""
        config = self.config
        rows, mask = part.rows, part.rows.mask
        # log pi_theta(o_t | q, o_<t) of each sampled token, at the sampling temperature
        with self._autocast_context():
            logprobs, entropy = self._logprobs(rows, entropy=part.diagnostics)
        # rho_t = pi_theta / pi_old: pi_old is the policy before this batch's updates; with
        # mu = 1 it is pi_theta itself (detached), so rho = 1 and the gradient is A grad log pi
        old = part.old_logprobs if part.old_logprobs is not None else logprobs.detach()
        # L_t = -min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i)
        #       [PPO, Schulman et al. 2017; clip-higher eps_high > eps_low: DAPO, Yu et al. 2025]
        per_token, clip = clipped_surrogate(
            logprobs,
            old,
            rows.advantages,
            mask,
            epsilon_low=config.epsilon_low,
            epsilon_high=config.epsilon_high,
        )
        share = float(mask.sum()) / max(1, part.trained_tokens)
        metrics = {"clip_low": clip.low * share, "clip_high": clip.high * share}
        if self.correct_sampler:
            # L_t *= min(pi_old / pi_sampler, C): the tokens were drawn by another sampler
            # (vLLM, paged kernels), so each is reweighted to the trainer's policy, capped
            #   [TIS, Yao et al. 2025]
            weights, capped = truncated_importance_weights(
                old, rows.sampler_logprobs, mask, config.tis_cap
            )
            per_token = per_token * weights
            metrics["tis_capped"] = capped * share
        if part.ref_logprobs is not None:
            # L_t += beta * KL_t, KL_t = pi_ref/pi_theta - log(pi_ref/pi_theta) - 1 (the k3
            # estimator: unbiased, >= 0)   [GRPO, Shao et al. 2024; Schulman 2020]
            kl = kl_k3(logprobs, part.ref_logprobs) * mask
            per_token = per_token + config.beta * kl
            metrics["kl"] = kl.sum().item() / max(1, part.total_tokens)
        # L = sum_{i,t} m_i,t L_t / N, N over the whole batch so accumulation changes nothing:
        #   "token": N = the batch's model tokens                                [DAPO]
        #   "sequence": each sequence's mean over its tokens, / the sequences    [GRPO]
        #   "constant": N = configured sequences x token budget, fixed           [Dr. GRPO]
        loss = aggregate(
            per_token,
            mask,
            config.loss_aggregation,
            total_tokens=part.total_tokens,
            total_sequences=part.total_sequences,
            constant=config.prompts_per_step
            * config.group_size
            * (config.max_episode_tokens or config.max_new_tokens),
        )
        if part.diagnostics:
            normaliser = max(1, part.trained_tokens)
            metrics["entropy"] = float((entropy * mask).sum()) / normaliser
            metrics["logprob_mismatch"] = (
                float(((logprobs.detach() - rows.sampler_logprobs).abs() * mask).sum()) / normaliser
            )
        return loss, metrics

    # ------------------------------------------------------------------------ metrics

    def batch_metrics(self, batch: SampledBatch) -> dict[str, Any]:
        """Rewards, lengths and timings of the step's episodes (every rank's)."""
        if self.dist.enabled:
            batch = _merged(self.dist.gather(dataclasses.replace(batch, tensors=None)))
        trajectories, sampling = batch.trajectories, batch.sampling
        scored = [r for r in batch.rewards if r is not None]
        raw = [t.reward for t in trajectories if t.scored]
        malformed = [parse_errors(t) for t in trajectories]
        lengths = [sum(len(x.completion_token_ids or []) for x in t.turns) for t in trajectories]
        return {
            "reward_mean": _mean(scored),
            "reward_std": _std(scored),
            "accuracy": _mean([float(r >= 1.0 - 1e-9) for r in raw]),
            "unscored": sum(not t.scored for t in trajectories),
            "frac_parse_error": _mean([float(n > 0) for n in malformed]),
            "parse_errors": sum(malformed),
            "frac_zero_std": 1.0 - _mean([float(i) for i in batch.informative]),
            "completion_length_mean": _mean(lengths),
            "completion_length_max": max(lengths),
            "frac_truncated": _mean([float(c) for c in batch.cut]),
            "tokens_per_second": sum(lengths) / max(sampling["generate_seconds"], 1e-9),
            "time_generate": sampling["generate_seconds"],
            "time_score": sampling["rollout_seconds"] - sampling["generate_seconds"],
            **_dynamic_sampling_metrics(sampling),
        }

    def scheduled_evaluation(self, step: int) -> dict[str, Any]:
        """:meth:`evaluate` before training, every ``eval_every`` steps and at the end."""
        config = self.config
        due = step in (0, config.steps) or (config.eval_every and step % config.eval_every == 0)
        return self.evaluate() if config.eval_tasks and due else {}

    def evaluate(self, tasks: int | None = None) -> dict[str, float]:
        """Held-out accuracy (env seeds 0..tasks-1, never used for training; the ``"test"``
        split when training uses ``split="train"``): sampled at the training temperature and,
        with ``eval_greedy``, greedy."""
        config = self.config
        n = tasks if tasks is not None else config.eval_tasks
        specs = episodes(config.env_id, n_tasks=n, seed=0, **held_out_env_kwargs(config.env_kwargs))
        specs = self.dist.share(specs)  # on several processes, each rank plays its share
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
                max_episode_tokens=config.max_episode_tokens,
            )
            with self._generating(), self._generation_context():
                trajectories = (
                    rollout(
                        self.policy,
                        specs,
                        params=params,
                        max_batch_size=config.generation_batch_size,
                        pool=self.env_pool,
                    )
                    if specs
                    else []
                )
            solved = sum(float(t.scored and t.reward >= 1.0 - 1e-9) for t in trajectories)
            solved, played = self.dist.sum([solved, float(len(trajectories))])
            results[f"{name}_accuracy"] = solved / played if played else 0.0
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
        self.model.eval()
        # on several processes, this rank's block of each round's tasks
        share = self.dist.block(config.prompts_per_step)
        with self._generating():
            trajectories, seen, dropped = self._sampling_rounds(timed, share, kept)
        if not kept:  # every group was uninformative: train on the last round (advantages 0)
            kept = [
                trajectories[s : s + config.group_size]
                for s in range(0, len(trajectories), config.group_size)
            ]
        kept = kept[: len(share)]
        info: dict[str, Any] = {
            "generate_seconds": timed.seconds,
            "rollout_seconds": time.perf_counter() - started,
        }
        if config.dynamic_sampling:
            info["dynamic_groups_dropped"] = dropped
            info["dynamic_groups_sampled"] = seen
        return [t for group in kept for t in group], info

    def _sampling_rounds(
        self, timed: _TimedPolicy, share: range, kept: list[list[Trajectory]]
    ) -> tuple[list[Trajectory], int, int]:
        """Sample rounds of this rank's tasks into ``kept`` until it holds ``len(share)``
        groups (one round without dynamic sampling). Returns the last round's episodes, and
        how many groups were sampled and dropped."""
        config = self.config
        seen = dropped = 0
        trajectories: list[Trajectory] = []
        for round_ in range(config.max_sampling_rounds if config.dynamic_sampling else 1):
            first_seed = (
                TRAIN_SEED_BASE
                + config.seed * 100_000_000
                + (self.step * config.max_sampling_rounds + round_) * config.prompts_per_step
                + share.start
            )
            specs = episodes(
                config.env_id,
                n_tasks=len(share),
                group_size=config.group_size,
                seed=first_seed,
                **config.env_kwargs,
            )
            params = SamplingParams(
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=first_seed,
                max_episode_tokens=config.max_episode_tokens,
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
            if len(kept) >= len(share):
                break
        return trajectories, seen, dropped

    def _logprobs(
        self, part: TrainBatch, entropy: bool = False, model: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        model = model if model is not None else self.model
        config = self.config
        if (
            config.share_prompt_prefix
            and not config.gradient_checkpointing  # no key/value cache under checkpointing
            and not self.dist.enabled  # every rank must take the same passes
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
        return run_sharded(  # on several processes, one pass of the root FSDP unit
            model,
            token_logprobs,
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


def _dynamic_sampling_metrics(sampling: dict[str, Any]) -> dict[str, Any]:
    if "dynamic_groups_sampled" not in sampling:
        return {}
    seen, dropped = sampling["dynamic_groups_sampled"], sampling["dynamic_groups_dropped"]
    return {"dynamic_dropped_fraction": dropped / max(1, seen), "dynamic_groups_sampled": seen}


def _placeholder(batch: TrainBatch) -> TrainBatch:
    """A row of ``batch`` with nothing to learn (mask 0, advantage 0): a pass that moves no
    parameter, for a rank with fewer micro-batches than the others."""
    row = batch.select([0])
    return dataclasses.replace(
        row, mask=torch.zeros_like(row.mask), advantages=torch.zeros_like(row.advantages)
    )


def _merged(batches: Sequence[SampledBatch]) -> SampledBatch:
    """The ranks' sampled batches as one (for the step's metrics): episodes in rank order, the
    slowest rank's seconds, the summed counts of dynamic sampling."""
    sampling: dict[str, Any] = {
        key: max(b.sampling[key] for b in batches)
        for key in ("generate_seconds", "rollout_seconds")
    }
    for key in ("dynamic_groups_sampled", "dynamic_groups_dropped"):
        if key in batches[0].sampling:
            sampling[key] = sum(b.sampling[key] for b in batches)
    return SampledBatch(
        trajectories=[t for b in batches for t in b.trajectories],
        rewards=[r for b in batches for r in b.rewards],
        informative=[i for b in batches for i in b.informative],
        cut=[c for b in batches for c in b.cut],
        tensors=None,
        sampling=sampling,
    )


def frozen_copy(model: Any, dtype: torch.dtype | None = None) -> Any:
    """A frozen copy of ``model`` in eval mode, its parameters in ``dtype`` (``None``: as
    they are; buffers such as rotary frequencies keep theirs). Under bf16 the reference is
    computed in bf16 by autocast anyway, so it is stored in bf16 (2 bytes a parameter, not
    4), and each parameter is copied straight to bf16: no fp32 copy of the model is made."""
    memo: dict[int, Any] = {}
    if dtype is not None:
        for parameter in model.parameters():  # tied parameters stay tied: one entry each
            if parameter.is_floating_point():
                memo[id(parameter)] = torch.nn.Parameter(
                    parameter.detach().to(dtype, copy=True), requires_grad=False
                )
    return copy.deepcopy(model, memo).eval().requires_grad_(False)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
