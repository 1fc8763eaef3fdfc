"""Trainer settings, typed and documented, saved with each run.

``TrainConfig`` holds what every bundled trainer shares (model, output folder, seed, optimiser,
precision, checkpoints, plots) and how a config is read: from TOML (``from_toml``) and from
``key=value`` strings (``with_overrides``, the CLI's ``--set``). ``GRPOConfig`` adds GRPO's
settings; ``rlenv.train.sft.SFTConfig`` and ``rlenv.train.dpo.DPOConfig`` add theirs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Self

__all__ = ["GRPOConfig", "ParseErrorPolicy", "TrainConfig"]

ParseErrorPolicy = Literal["keep", "mask", "zero"]
"""What a trainer does with an episode in which a tool call could not be parsed (a turn whose
verdict has ``parse_errors > 0``, see :class:`~rlenv.tools.ToolEnv`):

- ``"keep"``: nothing special; the episode's reward is whatever the environment gave.
- ``"mask"``: the episode is left out, as an unscored one is: no loss on its tokens, and not in
  its group's baseline. For a parser gap in your stack (the model writes a valid format your
  parser does not read): the model should not learn that its correct-but-unread calls are bad.
- ``"zero"``: the episode's reward becomes ``parse_error_reward`` (0), in its group's baseline,
  so the advantage pushes away from malformed calls: for teaching the model the format.
"""

_PARSE_ERROR_HELP = (
    "Episodes with a malformed tool call (a verdict with parse_errors > 0): 'keep' (default) "
    "changes nothing; 'mask' leaves them out of the loss and of their group's baseline (a "
    "parser gap must not teach the model its calls are bad); 'zero' sets their reward to "
    "parse_error_reward (teach the format). See docs/training.md."
)


class TrainConfig(BaseModel):
    """Settings every bundled trainer shares. Subclasses change defaults by redeclaring."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field("smollm2-135m", description="A name rlenv.models.load_model resolves.")
    out: str = Field("rlenv-train", description="Folder for metrics, plots and checkpoints.")
    seed: int = Field(0, description="Seeds data order, sampling and initialisation.")
    learning_rate: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = Field(
        0, ge=0, description="Linear warm-up over this many steps, then lr_schedule."
    )
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant",
        description="After warm-up: 'constant', or a 'linear' or 'cosine' decay to "
        "min_lr_ratio x learning_rate at the end of the run.",
    )
    min_lr_ratio: float = Field(
        0.0, ge=0, le=1, description="Where 'linear' and 'cosine' end, as a share of the rate."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Weights stay fp32; 'bf16' runs forward passes under bf16 autocast. 'auto': "
        "bf16 on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16), else fp32.",
    )
    device: str | None = Field(None, description="'cuda', 'cpu'; default: CUDA if available.")
    lora_rank: int = Field(
        0, ge=0, description="> 0 trains LoRA adapters on every linear layer (needs peft)."
    )
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling: adapters add alpha/rank x BA.")
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0: at the end).")
    final_checkpoint: bool = Field(
        True,
        description="Write checkpoint.pt when training ends, for --resume. It holds the "
        "optimizer state too: about 12 bytes a parameter, 1.6 GB for a 135M model.",
    )
    final_model: bool = Field(
        True, description="Save the model in Hugging Face format to out/model when training ends."
    )
    plots: bool = Field(True, description="Write PNG curves at the end (needs matplotlib).")
    progress: bool = Field(True, description="Show a progress bar.")

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Self:
        """Read a TOML file (top-level keys are fields; tables for dict fields)."""
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
        data.update(overrides)
        return cls.model_validate(data)

    def with_overrides(self, assignments: list[str]) -> Self:
        """Apply ``key=value`` strings, read as the CLI's ``-k`` reads them
        (:func:`rlenv.params.parse_assignments`: JSON or a Python literal, else text); an
        unknown key names the close match."""
        import difflib

        from rlenv.params import parse_assignments

        data = self.model_dump()
        fields = list(type(self).model_fields)
        for key, value in parse_assignments(assignments, flag="--set").items():
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown setting {key!r}{hint}")
            data[key] = value
        return type(self).model_validate(data)


def held_out_env_kwargs(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The env kwargs of held-out evaluation: ``split="train"`` becomes ``split="test"``, so
    evaluation poses only problems training never sees. Anything else is kept as given (then
    held-out means other seeds, which may pose the same problem on a small task space)."""
    if env_kwargs.get("split") == "train":
        return {**env_kwargs, "split": "test"}
    return dict(env_kwargs)


class GRPOConfig(TrainConfig):
    """The settings of a GRPO run. Defaults follow current practice (DAPO-style token-level
    loss, clip-higher, no KL, std scaling on as in TRL) and suit a small model on a CPU.

    ``parse_error`` (:data:`ParseErrorPolicy`) says what an episode with a malformed tool call
    does to the loss. ``"mask"`` exists for parser gaps: when your stack cannot read a format
    the model writes correctly, those episodes' low rewards would teach the model its correct
    format is bad, so they are left out (no loss on their tokens, not in their group's mean and
    std: handled exactly as unscored episodes). ``"zero"`` exists to teach the format: their
    reward becomes ``parse_error_reward`` even when the model recovered, so the group's
    advantage pushes away from malformed calls. The default, ``"keep"``, changes nothing: the
    environment already shows the model its error and pays what the episode earned, and
    silently dropping or re-scoring data is a choice a run should make on purpose.
    """

    # ---- what to train on
    env_id: str = Field("rlenv/Arithmetic-v0", description="The registered environment.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for rlenv.make; with split='train', the held-out "
        "evaluation uses split='test' (problems never trained on).",
    )

    # ---- sampling
    steps: int = Field(60, ge=1, description="Optimizer steps (one batch of groups each).")
    prompts_per_step: int = Field(2, ge=1, description="Tasks per step.")
    group_size: int = Field(8, ge=1, description="Completions per task, all with its seed.")
    max_new_tokens: int = Field(48, ge=1, description="Per model turn.")
    max_episode_tokens: int | None = Field(
        None,
        ge=1,
        description="The most tokens generated over a whole multi-turn episode; each turn gets "
        "min(max_new_tokens, what is left), and an episode that runs out is truncated and "
        "treated as a cut completion (see truncation). None: no episode budget.",
    )
    temperature: float = Field(
        1.0, gt=0, description="Sampling temperature, also used for the training log-probs."
    )
    top_p: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Must stay 1.0: the loss's log-probs are of the full distribution, so "
        "nucleus sampling would be off-policy (lower temperature instead; evaluation "
        "through rlenv.rollout may use top_p).",
    )
    generation_batch_size: int = Field(64, ge=1, description="Most conversations per generate.")
    generation_backend: Literal["loop", "hf", "hf-batch", "vllm"] = Field(
        "loop",
        description="What samples the rollouts: 'loop' (rlenv's decoding loop, the CPU "
        "default), 'hf' (model.generate), 'hf-batch' (transformers' continuous batching, "
        "paged KV cache), 'vllm' (a colocated vLLM engine; GPU machines).",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="generation_backend='vllm': the share of GPU memory the engine takes for "
        "its weights and KV cache (vLLM's gpu_memory_utilization); it sleeps while training.",
    )
    sampler_correction: Literal["auto", "tis", "off"] = Field(
        "auto",
        description="Truncated importance sampling (TIS) by the sampler's log-probs: each "
        "token's loss is weighted by min(pi_old / pi_sampler, tis_cap). 'auto': on when the "
        "sampler is not the trainer's own forward pass ('hf-batch', 'vllm'), off for 'loop' and "
        "'hf'; 'tis': always; 'off': never.",
    )
    tis_cap: float = Field(
        2.0, ge=1.0, description="The largest importance weight TIS gives a token (C)."
    )

    # ---- advantages
    scale_rewards: bool = Field(
        True, description="Divide by the group std (GRPO, TRL); False is Dr. GRPO."
    )
    advantage_epsilon: float = Field(1e-4, gt=0, description="Added to the group std.")
    dynamic_sampling: bool = Field(
        False,
        description="DAPO: drop groups whose rewards are all equal and sample more tasks "
        "(up to max_sampling_rounds) until prompts_per_step informative groups are found.",
    )
    max_sampling_rounds: int = Field(3, ge=1)

    # ---- loss
    epsilon_low: float = Field(0.2, ge=0, description="Lower clip bound: ratio >= 1 - eps_low.")
    epsilon_high: float = Field(0.28, ge=0, description="Upper bound 1 + eps_high (clip-higher).")
    updates_per_batch: int = Field(
        1, ge=1, description="mu: optimizer updates on each batch, against the old log-probs."
    )
    loss_aggregation: Literal["token", "sequence", "constant"] = Field(
        "token",
        description="'token': sum over the batch's model tokens / their count (DAPO); "
        "'sequence': mean per sequence, then over sequences (original GRPO); 'constant': sum / "
        "(prompts_per_step × group_size × (max_episode_tokens or max_new_tokens)), fixed by the "
        "config, whatever is masked (Dr. GRPO).",
    )
    beta: float = Field(0.0, ge=0, description="KL coefficient to a frozen reference (k3).")
    truncation: Literal["mask", "penalty", "none"] = Field(
        "mask",
        description="Completions cut at max_new_tokens: 'mask' leaves them out of the loss "
        "(overlong filtering); 'penalty' adds DAPO's soft length penalty to their reward.",
    )
    overlong_buffer: int = Field(
        16, ge=1, description="'penalty': tokens before the limit where it ramps to -1."
    )
    parse_error: ParseErrorPolicy = Field("keep", description=_PARSE_ERROR_HELP)
    parse_error_reward: float = Field(
        0.0,
        allow_inf_nan=False,
        description="'zero': the reward of an episode with a parse error (replaces the "
        "environment's, length penalty included).",
    )

    # ---- optimisation
    warmup_steps: int = Field(3, ge=0, description="Linear warm-up, then lr_schedule.")
    micro_batch_size: int = Field(
        16, ge=1, description="Sequences per forward/backward (gradient accumulation)."
    )

    gradient_checkpointing: bool = False
    skip_zero_advantage: bool = Field(
        True,
        description="With beta = 0, leave rows whose advantage is 0 (all-equal groups) out of "
        "the forward/backward pass: their gradient is exactly 0 (exact; metrics such as "
        "entropy are then over the rows trained on).",
    )
    share_prompt_prefix: bool = Field(
        True,
        description="Run each group's shared prompt once in the training forward/backward "
        "instead of once per sample (exact; not with gradient_checkpointing).",
    )

    # ---- evaluation, logging, checkpoints
    eval_every: int = Field(
        0, ge=0, description="Held-out evaluation every N steps (0: at the start and end only)."
    )
    eval_tasks: int = Field(
        100,
        ge=0,
        description="Held-out tasks: seeds 0..N-1 (training uses seeds >= 1e6), of split='test' "
        "when training uses split='train'.",
    )
    eval_greedy: bool = Field(True, description="Also evaluate greedily (temperature 0).")

    @model_validator(mode="after")
    def _check(self) -> GRPOConfig:
        if self.top_p < 1.0:
            raise ValueError(
                f"top_p={self.top_p}: GRPO's loss uses log-probs of the full distribution, so "
                "sampling from the top-p nucleus would train off-policy (a biased gradient). "
                "Set top_p=1.0 and lower temperature to sample more conservatively; evaluation "
                "may still sample with top_p (SamplingParams(top_p=...) in rlenv.rollout)"
            )
        if self.dynamic_sampling and self.group_size < 2:
            raise ValueError("dynamic_sampling needs group_size >= 2")
        if self.truncation == "penalty" and self.overlong_buffer > self.max_new_tokens:
            raise ValueError("overlong_buffer must not exceed max_new_tokens")
        return self
