"""rlenv environments in TRL's ``GRPOTrainer`` (TRL 1.x; ``pip install 'rlenv[trl]'``).

Single-turn environments need two pieces, a dataset and a reward function::

    from trl import GRPOConfig, GRPOTrainer
    from rlenv.adapters.trl import build_dataset, reward_function

    dataset = build_dataset("rlenv/Arithmetic-v0", n_tasks=512, difficulty=1)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_function(), train_dataset=dataset,
                          args=GRPOConfig(...), processing_class=tokenizer)

Multi-turn environments (games, tools, feedback loops) add a rollout function. rlenv's rollout
engine plays whole episodes with the model being trained. It hands TRL the exact token ids,
with ``env_mask`` marking which tokens the model generated, so environment and tool tokens
never enter TRL's loss::

    from rlenv.adapters.trl import RolloutFunction, episode_reward

    trainer = GRPOTrainer(model=model, reward_funcs=episode_reward, train_dataset=dataset,
                          rollout_func=RolloutFunction(max_new_tokens=64), ...)

What :class:`RolloutFunction` relies on in TRL 1.16 (``trl/trainer/grpo_trainer.py``):

- ``GRPOTrainer._generate`` calls ``rollout_func(prompts, trainer)`` with this rank's slice of
  the generation batch, already repeated by ``RepeatSampler`` (``num_generations`` in
  training, ``num_generations_eval`` in evaluation), and expects one sample per entry, in
  order. One entry is one episode; a group may straddle ranks (:func:`group_positions`).
- Generation: the model under TRL's ``unwrap_model_for_generation`` (ZeRO-3 shards gathered as
  TRL gathers them), or TRL's colocated vLLM engine (``trainer.vllm_generation.llm``) with
  ``use_vllm=True, vllm_mode="colocate"``. A vLLM server, tensor-parallel vLLM, FSDP and ZeRO-3
  without ``ds3_gather_for_generation`` are refused (:func:`check_trainer`): TRL's
  ``environment_factory`` (:mod:`rlenv.adapters.trl_environment`) runs episodes inside TRL's own
  generation loop and serves those setups.
- ``max_completion_length`` bounds the whole completion, environment tokens included
  (:func:`within_budget`); TRL's sampling parameters are passed through or refused
  (:func:`sampling_params`).

The environment-factory path is :mod:`rlenv.adapters.trl_environment`; ``docs/adapters/trl.md``
says when to use which.

Every prompt carries its task in an extra key of its first message, ``rlenv_task``: the task's
tag (:meth:`rlenv.TaskHandle.to_tag`, a JSON string with the env id, its kwargs and the task id,
the same tag the verl and OpenRLHF adapters write). Chat templates ignore the key, and the
reward and rollout functions read it back, so every completion is scored against the task that
produced it. A dataset column alone would not do this: TRL passes a rollout function only the
prompts. Scoring is :func:`rlenv.score` on an :class:`rlenv.EnvPool`; this module only
translates TRL's formats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from rlenv.chat import Message
from rlenv.errors import RLEnvError
from rlenv.handles import TaskHandle, TaskTagError
from rlenv.pool import EnvPool, pose_tasks, score

if TYPE_CHECKING:
    from rlenv.rollout import SamplingParams, Trajectory

__all__ = [
    "TASK_KEY",
    "EnvReward",
    "RolloutFunction",
    "UnsupportedTrainerSetup",
    "build_dataset",
    "check_trainer",
    "completion_budget",
    "episode_reward",
    "group_positions",
    "group_size",
    "reward_function",
    "sampling_params",
    "task_of",
    "trl_samples",
    "within_budget",
]

TASK_KEY = "rlenv_task"


def build_dataset(
    env_id: str,
    *,
    n_tasks: int,
    seed: int = 0,
    task_ids: Sequence[str] | None = None,
    **env_kwargs: Any,
) -> Any:
    """A conversational ``datasets.Dataset``: ``prompt`` (the env's opening messages, the task in
    ``prompt[0]["rlenv_task"]``), and ``env_id`` and ``task_id`` columns for inspection.

    Tasks are ``seed, seed + 1, ...`` (or ``task_ids``), the same tasks ``rlenv eval`` and the
    bundled trainer draw for those seeds (:func:`rlenv.pool.pose_tasks`).
    """
    from datasets import Dataset

    with EnvPool() as pool:
        posed = pose_tasks(pool, env_id, env_kwargs, n_tasks=n_tasks, seed=seed, task_ids=task_ids)
    rows = []
    for task in posed:
        prompt = [dict(message) for message in task.observation]
        prompt[0] = {**prompt[0], TASK_KEY: task.handle.to_tag()}
        rows.append({"prompt": prompt, "env_id": env_id, "task_id": task.handle.task_id})
    return Dataset.from_list(rows)


def task_of(prompt: Sequence[Message]) -> TaskHandle:
    """The task a :func:`build_dataset` prompt carries."""
    for message in prompt:
        tag = message.get(TASK_KEY)  # type: ignore[union-attr]
        if tag:
            return TaskHandle.from_tag(tag, field=f"the prompt's {TASK_KEY!r}")
    raise TaskTagError(
        f"this prompt carries no {TASK_KEY!r}: build the dataset with rlenv.adapters.trl."
        "build_dataset"
    )


def reward_function(workers: int = 4) -> EnvReward:
    """The reward function for single-turn environments: ``reward_funcs=reward_function()``."""
    return EnvReward(workers)


class EnvReward:
    """TRL reward function: scores each completion with its task's environment.

    Called by TRL as ``f(prompts=..., completions=..., completion_ids=..., **columns)``. Returns one
    float per completion, the env's reward for that completion as its first turn
    (:func:`rlenv.score`). A verdict nobody could give (``Verdict.scored=False``: the verifier
    crashed, or the env is multi-turn and the completion did not end the episode, for which
    use :class:`RolloutFunction`) becomes ``None``, which TRL leaves out, never a 0. Scoring
    runs in ``workers`` threads, which pays off for slow verifiers such as the code sandbox.
    ``verdicts`` keeps the latest batch's verdicts for logging and tests.
    """

    def __init__(self, workers: int = 4) -> None:
        self.__name__ = "rlenv_reward"  # TRL logs rewards under the function's name
        self.workers = max(1, workers)
        self._envs = EnvPool()
        self.verdicts: list[Any] = []

    def _score(self, prompt: Sequence[Message], completion: Any) -> Any:
        action = completion[-1] if isinstance(completion, list) else completion
        if isinstance(action, dict):  # Arrow fills the keys a message lacked with None
            action = {key: value for key, value in action.items() if value is not None}
        return score(self._envs, task_of(prompt), action)

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any
    ) -> list[float | None]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            self.verdicts = list(pool.map(self._score, prompts, completions))
        return [verdict.reward if verdict.scored else None for verdict in self.verdicts]


def episode_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[Any]:
    """The reward function to pair with :class:`RolloutFunction`: each episode's total env reward,
    which the rollout function passes along as the ``rlenv_reward`` field."""
    return list(kwargs["rlenv_reward"])


class UnsupportedTrainerSetup(RLEnvError, ValueError):
    """:class:`RolloutFunction` cannot generate token-faithful episodes in this TRL setup (a vLLM
    server, tensor-parallel vLLM, FSDP, ZeRO-3 without gathering, or a sampling parameter
    rlenv's engine cannot honour). The message names the setting and the way out, which for
    distributed generation is TRL's own loop through ``environment_factory``
    (:mod:`rlenv.adapters.trl_environment`)."""


_ENVIRONMENT_FACTORY = (
    "use TRL's environment_factory instead (rlenv.adapters.trl_environment), which runs "
    "episodes inside TRL's own generation loop, with its vLLM and distributed setup"
)

_TRL_DEFAULTS: dict[str, Any] = {"top_k": (0, None), "min_p": (0.0, None),
                                 "repetition_penalty": (1.0,)}  # fmt: skip
"""TRL's sampling parameters rlenv's own decoder does not implement, and the values that mean
"off" (``GRPOConfig``'s defaults: ``top_k=0``, ``min_p=None``, ``repetition_penalty=1.0``)."""


def completion_budget(trainer: Any) -> int | None:
    """TRL's ``max_completion_length`` (``trainer.max_completion_length``, set from
    ``GRPOConfig.max_completion_length`` in ``GRPOTrainer.__init__``), or None when unset."""
    budget = getattr(trainer, "max_completion_length", None)
    if budget is None:
        budget = getattr(trainer.args, "max_completion_length", None)
    return int(budget) if budget is not None else None


def group_size(trainer: Any) -> int:
    """How many consecutive entries of TRL's batch share a prompt: ``num_generations`` in
    training, ``num_generations_eval`` in evaluation. ``GRPOTrainer._generate`` picks the mode
    the same way (``"train" if self.model.training else "eval"``), and ``__init__`` sets
    ``num_generations_eval = args.num_generations_eval or num_generations``."""
    training = bool(getattr(trainer.model, "training", True))
    size = trainer.num_generations if training else trainer.num_generations_eval
    return int(size or 1)


def group_positions(trainer: Any, count: int) -> list[int]:
    """Each entry's position within its prompt's group, for a rank's slice of ``count`` entries.

    TRL's ``RepeatSampler`` (``GRPOTrainer._get_train_sampler`` / ``_get_eval_sampler``) repeats
    each prompt ``num_generations`` times in a row over the whole (all-ranks) generation batch,
    whose size is a multiple of the group size; every rank gets the next equal, contiguous
    slice of it (``_generate_and_score_completions`` takes the advantages back with
    ``slice(process_index * len(prompts), (process_index + 1) * len(prompts))``). Entry ``i``
    of rank ``r`` is therefore global entry ``r * count + i``, and a group may straddle ranks.
    """
    size = group_size(trainer)
    offset = int(getattr(trainer.accelerator, "process_index", 0)) * count
    return [(offset + index) % size for index in range(count)]


def sampling_params(trainer: Any, max_new_tokens: int, *, vllm: bool) -> SamplingParams:
    """rlenv's :class:`~rlenv.rollout.SamplingParams` from TRL's (``GRPOTrainer.__init__`` keeps
    ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repetition_penalty`` on the trainer and
    ``generation_kwargs`` in ``args``; its transformers path passes them all to ``generate``,
    its vLLM path to vLLM's ``SamplingParams``).

    Temperature and top-p go to every backend. Each turn is capped at
    ``min(max_new_tokens, max_completion_length)`` and the episode's generated tokens at
    ``max_completion_length`` (``max_episode_tokens``). With vLLM (``vllm=True``) top-k, min-p,
    the repetition penalty and ``generation_kwargs`` are sent to the engine too
    (``TRLColocatedVLLM``); rlenv's transformers decoder has none of them, so a
    non-default value raises :class:`UnsupportedTrainerSetup` rather than being dropped.
    """
    from rlenv.rollout import SamplingParams

    if not vllm:
        unsupported = [
            f"{name}={getattr(trainer, name)!r}"
            for name, off in _TRL_DEFAULTS.items()
            if getattr(trainer, name, off[0]) not in off
        ]
        if getattr(trainer.args, "generation_kwargs", None):
            unsupported.append(f"generation_kwargs={trainer.args.generation_kwargs!r}")
        if unsupported:
            raise UnsupportedTrainerSetup(
                f"RolloutFunction samples with rlenv's transformers decoder, which supports "
                f"temperature and top_p only; GRPOConfig sets {', '.join(unsupported)}. Leave "
                "them at their defaults, or set use_vllm=True with vllm_mode='colocate' (they "
                f"are passed to vLLM), or {_ENVIRONMENT_FACTORY}"
            )
    budget = completion_budget(trainer)
    return SamplingParams(
        max_new_tokens=max_new_tokens if budget is None else min(max_new_tokens, budget),
        temperature=float(trainer.temperature),
        top_p=float(trainer.top_p),
        max_episode_tokens=budget,
    )


def check_trainer(trainer: Any) -> None:
    """Raise :class:`UnsupportedTrainerSetup` when rlenv cannot play token-faithful episodes
    with this trainer's generation setup.

    - ``use_vllm`` with ``vllm_mode="server"``: TRL's ``VLLMClient`` exists on the main process
      only and ``VLLMGeneration.generate`` is a collective (``gather_object`` then
      ``broadcast_object_list``) that samples ``n=num_generations`` per unique prompt with one
      fixed ``max_tokens``, so it cannot be driven one turn at a time per episode.
    - ``use_vllm`` colocated with ``vllm_tensor_parallel_size > 1``: the ranks of a TP group
      must call ``LLM.generate`` together with the same prompts, and episodes end at
      different turns on different ranks.
    - FSDP (``trainer.is_fsdp_enabled``; ``accelerator.state.fsdp_plugin``): every forward pass
      all-gathers shards, so ranks whose episodes take different numbers of turns deadlock.
    - DeepSpeed ZeRO-3 with ``ds3_gather_for_generation=False``: the same, per layer. With the
      default (True) generation runs under TRL's ``unwrap_model_for_generation``, which gathers
      the whole model once (``deepspeed.zero.GatheredParameters``).
    """
    args = trainer.args
    if getattr(trainer, "use_vllm", False):
        mode = getattr(trainer, "vllm_mode", "colocate")
        if mode != "colocate":
            raise UnsupportedTrainerSetup(
                f"RolloutFunction cannot generate through vllm_mode={mode!r}: TRL's vLLM client "
                "lives on the main process only and samples whole completions for all ranks at "
                "once, not one episode turn at a time. Set vllm_mode='colocate', or "
                + _ENVIRONMENT_FACTORY
            )
        tensor_parallel = int(getattr(args, "vllm_tensor_parallel_size", 1) or 1)
        if tensor_parallel > 1:
            raise UnsupportedTrainerSetup(
                f"RolloutFunction cannot drive a colocated vLLM with vllm_tensor_parallel_size="
                f"{tensor_parallel}: the ranks of a tensor-parallel group must generate in "
                "lockstep, and episodes end at different turns. Set it to 1, or "
                + _ENVIRONMENT_FACTORY
            )
        return
    state = getattr(trainer.accelerator, "state", None)
    fsdp = getattr(trainer, "is_fsdp_enabled", False) or getattr(state, "fsdp_plugin", None)
    if fsdp:
        raise UnsupportedTrainerSetup(
            "RolloutFunction cannot generate with an FSDP-sharded model: every forward pass "
            "gathers shards across ranks, and episodes take different numbers of turns on "
            "different ranks. Set use_vllm=True with vllm_mode='colocate', or "
            + _ENVIRONMENT_FACTORY
        )
    plugin = getattr(state, "deepspeed_plugin", None)
    if getattr(plugin, "zero_stage", 0) == 3 and not getattr(
        args, "ds3_gather_for_generation", True
    ):
        raise UnsupportedTrainerSetup(
            "RolloutFunction cannot generate with DeepSpeed ZeRO-3 and "
            "ds3_gather_for_generation=False: every forward pass gathers shards across ranks, "
            "and episodes take different numbers of turns on different ranks. Set "
            "ds3_gather_for_generation=True (the default), or " + _ENVIRONMENT_FACTORY
        )


class RolloutFunction:
    """TRL ``rollout_func``: plays one episode per entry TRL hands it, with rlenv's engine.

    ``GRPOTrainer._generate`` calls it as ``rollout_func(prompts, trainer)`` with this rank's
    slice of the generation batch, already repeated by TRL's ``RepeatSampler`` (each prompt
    ``num_generations`` times in a row, ``num_generations_eval`` in evaluation; a group may
    straddle ranks), and reads back one sample per entry, in order. So entry ``i`` is one
    episode of its own prompt's task, sample :func:`group_positions` ``[i]`` of its group.

    Each episode becomes one TRL sample:

    - ``prompt_ids``: the opening prompt's tokens;
    - ``completion_ids``: everything after it, which is the model's turns interleaved with the
      environment's replies, exactly as the model saw them;
    - ``env_mask``: 1 on model tokens and 0 on environment and tool tokens (TRL folds it into
      its loss mask as ``tool_mask``);
    - ``logprobs``: the sampling log-probs, 0 on environment tokens, which the mask hides;
    - ``rlenv_reward``: the episode's total reward, read by :func:`episode_reward` (None when a
      verifier could not judge it).

    **Generation.** Without vLLM, the trained model generates under TRL's own
    ``unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
    gather_deepspeed3_params=args.ds3_gather_for_generation, generation_kwargs=...,
    gradient_checkpointing_kwargs=...)``, the context ``GRPOTrainer._generate_single_turn``
    uses (it gathers ZeRO-3 shards and turns gradient checkpointing off). With
    ``use_vllm=True, vllm_mode="colocate"`` it generates with the rank's own vLLM engine,
    ``trainer.vllm_generation.llm`` (whose weights TRL syncs before calling a rollout
    function), token in, token out, through :class:`~rlenv.rollout.vllm.VLLMPolicy`. Setups it
    cannot serve are refused on the first call with :class:`UnsupportedTrainerSetup`
    (:func:`check_trainer`).

    **Token budget.** TRL's ``max_completion_length`` bounds the whole completion, environment
    tokens included: each turn gets at most ``min(max_new_tokens, max_completion_length)``
    tokens, the episode's model tokens at most ``max_completion_length``
    (``SamplingParams.max_episode_tokens``), and an episode whose completion (with the
    environment's replies) would still exceed it is cut after its last whole turn that fits,
    marked ``stop_reason="max_episode_tokens"``, with the reward of the turns kept
    (:func:`within_budget`).

    **Sampling.** ``temperature`` and ``top_p`` always; ``top_k``, ``min_p``,
    ``repetition_penalty`` and ``generation_kwargs`` with vLLM, refused otherwise
    (:func:`sampling_params`).
    """

    def __init__(self, *, max_new_tokens: int = 256, max_batch_size: int = 64) -> None:
        self.max_new_tokens = max_new_tokens
        self.max_batch_size = max_batch_size
        self.calls = 0

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        from rlenv.rollout import EpisodeSpec, rollout

        self.calls += 1
        check_trainer(trainer)
        vllm = bool(getattr(trainer, "use_vllm", False))
        params = sampling_params(trainer, self.max_new_tokens, vllm=vllm)
        positions = group_positions(trainer, len(prompts))
        specs = [
            EpisodeSpec.for_task(task_of(prompt), group=position)
            for prompt, position in zip(prompts, positions, strict=True)
        ]
        with _generation_policy(trainer, self.max_batch_size, vllm=vllm) as policy:
            trajectories = rollout(policy, specs, params=params, max_batch_size=self.max_batch_size)
        if len(trajectories) != len(prompts):  # the engine returns one per spec, in order
            raise RuntimeError(f"{len(trajectories)} episodes for {len(prompts)} entries")
        return trl_samples(
            trajectories, completion_budget(trainer), lambda i: _prompt_ids(trainer, prompts[i])
        )


def within_budget(trajectory: Trajectory, budget: int | None) -> Trajectory:
    """``trajectory`` with at most ``budget`` completion tokens (model and environment tokens
    after the opening prompt), cut after its last whole turn that fits.

    A cut episode is ``truncated`` with ``stop_reason="max_episode_tokens"`` and the reward of
    the turns it keeps, as if the rollout engine's episode budget had stopped it there. The
    first turn always fits (it is at most ``min(max_new_tokens, budget)`` tokens)."""
    if budget is None:
        return trajectory
    sequence = trajectory.token_sequence()
    if len(sequence.token_ids) - sequence.prompt_length <= budget:
        return trajectory
    limit = sequence.prompt_length + budget
    kept = 1
    for number, turn in enumerate(trajectory.turns[1:], start=1):
        end = len(turn.prompt_token_ids or []) + len(turn.completion_token_ids or [])
        if end > limit:
            break
        kept = number + 1
    turns = trajectory.turns[:kept]
    return trajectory.model_copy(
        update={
            "turns": turns,
            "reward": sum(turn.reward for turn in turns),
            "terminated": False,
            "truncated": True,
            "stop_reason": "max_episode_tokens",
        }
    )


def trl_samples(
    trajectories: Sequence[Trajectory],
    budget: int | None,
    unplayed: Callable[[int], tuple[list[int], int]] | None = None,
) -> dict[str, list[Any]]:
    """TRL's ``rollout_func`` output (``prompt_ids``, ``completion_ids``, ``logprobs``, which
    ``GRPOTrainer._generate`` requires, plus ``env_mask`` and ``rlenv_reward``), one sample per
    trajectory, each within ``budget`` completion tokens (:func:`within_budget`).

    An episode with no turns (its served env failed at reset: ``stop_reason="reset_failed"``)
    has no tokens of its own; ``unplayed(i)`` gives entry ``i``'s prompt ids and an end token,
    and the sample is that prompt with the end token as its completion, masked out
    (``env_mask`` 0: no loss) and ``rlenv_reward`` None (left out of its group's baseline)."""
    output: dict[str, list[Any]] = {
        "prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [],
        "rlenv_reward": [],
    }  # fmt: skip
    for index, trajectory in enumerate(trajectories):
        if not trajectory.turns:
            if unplayed is None:
                raise ValueError(
                    f"episode {index} has no turns ({trajectory.stop_reason}: "
                    f"{trajectory.error}); pass unplayed= to give its prompt ids"
                )
            prompt_ids, end_id = unplayed(index)
            output["prompt_ids"].append(list(prompt_ids))
            output["completion_ids"].append([end_id])
            output["logprobs"].append([0.0])
            output["env_mask"].append([0])
            output["rlenv_reward"].append(None)
            continue
        trajectory = within_budget(trajectory, budget)
        sequence = trajectory.token_sequence()
        start = sequence.prompt_length
        output["prompt_ids"].append(sequence.token_ids[:start])
        output["completion_ids"].append(sequence.token_ids[start:])
        output["logprobs"].append(sequence.logprobs[start:])
        output["env_mask"].append(sequence.mask[start:])
        output["rlenv_reward"].append(trajectory.reward if trajectory.scored else None)
    return output


def _prompt_ids(trainer: Any, prompt: Any) -> tuple[list[int], int]:
    """An entry's prompt as TRL renders it (the chat template with the generation prompt, or
    the text), and the tokenizer's end token: the sample of an episode that never started."""
    from rlenv.rollout.transformers import render_prompt_ids

    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    if isinstance(prompt, str):
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    else:
        ids = render_prompt_ids(tokenizer, prompt)
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    return list(ids), int(end)


@contextlib.contextmanager
def _generation_policy(trainer: Any, batch_size: int, *, vllm: bool) -> Iterator[Any]:
    """The policy that generates with the trainer's model, inside the context TRL itself
    generates in (see :class:`RolloutFunction`)."""
    if vllm:
        with _colocated_engine(trainer.vllm_generation) as engine:
            yield _colocated_vllm_policy(engine, trainer)
        return
    import torch
    from trl.models import unwrap_model_for_generation

    from rlenv.rollout.transformers import TransformersPolicy

    args = trainer.args
    with (
        unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=getattr(args, "ds3_gather_for_generation", True),
            generation_kwargs=getattr(trainer, "generation_kwargs", None),
            gradient_checkpointing_kwargs=getattr(args, "gradient_checkpointing_kwargs", None),
        ) as model,
        torch.no_grad(),
    ):
        was_training = model.training
        try:
            yield TransformersPolicy(
                model,
                trainer.processing_class,
                device=str(next(model.parameters()).device),
                batch_size=batch_size,
                cast_bf16=False,
            )
        finally:
            model.train(was_training)


@contextlib.contextmanager
def _colocated_engine(generation: Any) -> Iterator[Any]:
    """TRL's colocated ``vllm.LLM`` (``VLLMGeneration.llm``), awake for the rollout and put back
    to sleep after it, as ``VLLMGeneration.generate`` does in sleep mode: weights pushed again if
    level-2 sleep discarded them (``sync_weights``), ``wake_up(tags=["kv_cache"])`` before,
    ``sleep(level=2)`` after."""
    engine = generation.llm
    sleeping = getattr(generation, "enable_sleep_mode", False)
    if sleeping:
        if getattr(generation, "_llm_weights_sleeping", False):
            generation.sync_weights()
        engine.wake_up(tags=["kv_cache"])
    try:
        yield engine
    finally:
        if sleeping:
            engine.sleep(level=2)
            generation._llm_weights_sleeping = True


_VLLM_OWNED = ("n", "max_tokens", "logprobs", "seed", "stop_token_ids", "ignore_eos", "detokenize")
"""vLLM request fields rlenv sets itself (one sample per request, the turn's token limit, the
sampled token's log-prob, per-episode seeds, its stop ids), which ``generation_kwargs`` may not
override."""


def _vllm_extras(trainer: Any) -> dict[str, Any]:
    """TRL's sampling settings beyond temperature and top-p, for vLLM's ``SamplingParams``."""
    extra: dict[str, Any] = {}
    for name, off in _TRL_DEFAULTS.items():
        value = getattr(trainer, name, off[0])
        if value not in off:
            extra[name] = value
    kwargs = dict(getattr(trainer.args, "generation_kwargs", None) or {})
    owned = sorted(set(kwargs) & set(_VLLM_OWNED))
    if owned:
        raise UnsupportedTrainerSetup(
            f"generation_kwargs sets {', '.join(owned)}, which RolloutFunction sets on every "
            "vLLM request itself (one sample per episode turn, the turn's token limit, "
            "per-episode seeds, the chat template's stop ids); remove them"
        )
    return {**extra, **kwargs}


def _colocated_vllm_class() -> type:
    from rlenv.rollout.vllm import VLLMPolicy

    class TRLColocatedVLLM(VLLMPolicy):
        """:class:`~rlenv.rollout.vllm.VLLMPolicy` on TRL's engine, each request built with
        TRL's top-k, min-p, repetition penalty and ``generation_kwargs`` too, as
        ``VLLMGeneration.generate`` builds them in colocate mode (values equal to "off" are
        left out, which vLLM reads the same)."""

        def __init__(self, engine: Any, trainer: Any) -> None:
            super().__init__(engine, trainer.processing_class, name="trl-vllm")
            self.trl_sampling = _vllm_extras(trainer)
            build = self._sampling_params
            self._sampling_params = lambda **fields: build(**fields, **self.trl_sampling)

    return TRLColocatedVLLM


def _colocated_vllm_policy(engine: Any, trainer: Any) -> Any:
    """The colocated-vLLM policy (vLLM is imported only when a trainer uses it)."""
    return _colocated_vllm_class()(engine, trainer)
