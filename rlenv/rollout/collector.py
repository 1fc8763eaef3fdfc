"""The rollout engine: many episodes at once, one batched policy call per round.

Every active episode's next turn goes into one ``policy.generate`` call. Episodes finish at
different times (multi-turn ones take more turns), and the batch keeps filling from the queue,
so the model always sees as many conversations as ``max_batch_size`` allows. Environment steps of
a round run concurrently in a thread pool, so one slow verifier (a code sandbox, a tool) does not
hold up the others. ``group_size`` samples of a task share its seed — what GRPO needs. Each call
samples with its own seed, derived from ``SamplingParams.seed``, and each conversation of a call
carries its episode's own seed (``SamplingParams.seeds``) for backends that send one request per
conversation; an episode's total tokens can be capped with ``SamplingParams.max_episode_tokens``.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from rlenv.chat import copy_messages
from rlenv.errors import ServiceError
from rlenv.handles import TaskHandle, task_seeds
from rlenv.pool import EnvPool
from rlenv.remote import EpisodeLostError
from rlenv.rollout.policy import Completion, Policy, SamplingParams, call_seed, episode_seed
from rlenv.rollout.trajectory import StopReason, Trajectory, TurnRecord
from rlenv.verdict import Verdict

__all__ = ["EpisodeSpec", "episodes", "rollout"]


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: which env, which task (by seed or id), which sample of the group."""

    env_id: str
    seed: int | None = None
    task_id: str | None = None
    group: int = 0
    env_kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def for_task(cls, handle: TaskHandle, group: int = 0) -> EpisodeSpec:
        """The episode that poses ``handle``'s task (sample ``group`` of its group)."""
        return cls(
            handle.env_id,
            task_id=handle.task_id,
            group=group,
            env_kwargs=tuple(sorted(handle.env_kwargs.items())),
        )


def episodes(
    env_id: str,
    *,
    n_tasks: int,
    group_size: int = 1,
    seed: int = 0,
    task_ids: Sequence[str] | None = None,
    **env_kwargs: Any,
) -> list[EpisodeSpec]:
    """``n_tasks`` tasks × ``group_size`` samples. Task ``i`` uses seed ``seed + i``
    (:func:`~rlenv.handles.task_seeds`, the rule every adapter's export follows too) or
    ``task_ids[i]``; the samples of a task are adjacent and share it."""
    if n_tasks < 1 or group_size < 1:
        raise ValueError("n_tasks and group_size must be positive")
    kwargs = tuple(sorted(env_kwargs.items()))
    if task_ids is not None:
        if len(task_ids) < n_tasks:
            raise ValueError(f"n_tasks={n_tasks} but only {len(task_ids)} task_ids were given")
        starts = [{"task_id": task_id} for task_id in task_ids[:n_tasks]]
    else:
        starts = [{"seed": task_seed} for task_seed in task_seeds(n_tasks, seed)]
    return [
        EpisodeSpec(env_id, group=sample, env_kwargs=kwargs, **start)
        for start in starts
        for sample in range(group_size)
    ]


@dataclass
class _Live:
    index: int
    spec: EpisodeSpec
    env: Any
    observation: list[Any]
    info: dict[str, Any]
    opening: list[Any]
    turns: list[TurnRecord] = field(default_factory=list)
    reward: float = 0.0
    token_prefix: list[int] | None = None  # exact ids so far (prompt + completion of last turn)
    generated: int = 0  # tokens the model generated so far (counted under max_episode_tokens)
    position: int = 0  # the episode's position in the whole run: its seeds derive from it


def rollout(
    policy: Policy,
    specs: Sequence[EpisodeSpec],
    *,
    params: SamplingParams | None = None,
    max_batch_size: int = 32,
    env_workers: int = 8,
    on_episode: Callable[[Trajectory], None] | None = None,
    pool: EnvPool | None = None,
    positions: Sequence[int] | None = None,
) -> list[Trajectory]:
    """Run every episode of ``specs`` with ``policy``; trajectories come back in ``specs`` order.

    Args:
        policy: Any :class:`~rlenv.rollout.Policy`. When its ``supports_prefixes`` is True,
            each call also gets every conversation's exact token ids so far (``prefixes=``),
            so multi-turn episodes stay token-faithful.
        specs: The episodes (see :func:`episodes`).
        params: Sampling settings. Each ``generate`` call gets its own seed, derived from
            ``params.seed`` and the call's number (:func:`~rlenv.rollout.policy.call_seed`):
            the turns and waves of a rollout never repeat their noise, and the same seed
            reproduces the whole rollout. Each conversation of a call also gets its episode's
            seed for that turn (``SamplingParams.seeds``, see
            :func:`~rlenv.rollout.policy.episode_seed`), which backends that send one request
            per conversation use (OpenAIPolicy), so the samples of a group differ. With
            ``params.max_episode_tokens``, each turn gets ``min(max_new_tokens, tokens left)``
            (episodes with different limits go in separate calls) and an episode whose budget
            runs out is truncated, with ``stop_reason="max_episode_tokens"``; the budget counts
            each completion's token ids (or its ``usage.completion_tokens``).
        max_batch_size: The most conversations in one ``generate`` call.
        env_workers: Threads stepping environments concurrently.
        on_episode: Called with each trajectory as soon as its episode ends (progress bars).
        pool: Where envs come from and go back to (an :class:`~rlenv.pool.EnvPool`); pass one
            to reuse envs across calls (a trainer's steps). By default a pool of this call's
            own, whose envs are closed when it returns.
        positions: Each spec's position in the whole run, which its episode seeds derive from
            (default ``0, 1, ...``). A resumed run (``rlenv eval --resume``) passes the
            positions of the episodes it still has to play, so they sample with the seeds an
            unbroken run would have given them.
    """
    params = params or SamplingParams()
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be positive")
    budget = params.max_episode_tokens
    if budget is not None and budget < 1:
        raise ValueError(f"max_episode_tokens must be positive or None, got {budget}")
    calls = 0  # generate calls so far: each gets its own seed
    prefixes_wanted = _checked(policy).supports_prefixes
    own_pool = pool is None
    envs = EnvPool() if pool is None else pool
    if positions is not None and len(positions) != len(specs):
        raise ValueError(f"{len(positions)} positions for {len(specs)} specs")
    pending = deque(enumerate(specs))
    active: list[_Live] = []
    results: list[Trajectory | None] = [None] * len(specs)

    def start(index: int, spec: EpisodeSpec) -> _Live | None:
        """The episode, reset; or None when a served env's server failed it (lost, busy,
        unreachable) twice, on the pooled env and then on a fresh one: then its trajectory,
        unscored, is recorded. Any other error (the caller's, a bug) is raised."""
        options = {"task_id": spec.task_id} if spec.task_id is not None else None
        failures: list[ServiceError] = []
        while len(failures) < _RESET_TRIES:
            try:
                env = envs.acquire(spec.env_id, spec.env_kwargs)  # a fresh one connects anew
            except ServiceError as error:
                failures.append(error)
                continue
            try:
                observation, info = env.reset(seed=spec.seed, options=options)
            except ServiceError as error:
                envs.discard(env)  # its session or connection is of no more use
                failures.append(error)
                continue
            except BaseException:
                envs.discard(env)
                raise
            live = _Live(index, spec, env, observation, info, copy_messages(observation))
            live.position = index if positions is None else positions[index]
            return live
        trajectory = _reset_failed(spec, policy, failures)
        results[index] = trajectory
        if on_episode is not None:
            on_episode(trajectory)
        return None

    try:
        with ThreadPoolExecutor(max_workers=max(1, env_workers)) as threads:
            while pending or active:
                while pending and len(active) < max_batch_size:
                    live = start(*pending.popleft())
                    if live is not None:
                        active.append(live)
                if not active:  # every episode left failed to start
                    break
                # one call per turn limit (one call unless max_episode_tokens binds)
                limits = [_turn_limit(params, live) for live in active]
                completions: list[Completion] = [None] * len(active)  # type: ignore[list-item]
                for limit in sorted(set(limits), reverse=True):
                    rows = [i for i, row_limit in enumerate(limits) if row_limit == limit]
                    batch = [active[i] for i in rows]
                    call_params = replace(
                        params,
                        max_new_tokens=limit,
                        seed=call_seed(params.seed, calls),
                        seeds=_episode_seeds(params.seed, batch),
                    )
                    calls += 1
                    for i, completion in zip(
                        rows, _generate(policy, batch, call_params, prefixes_wanted), strict=True
                    ):
                        completions[i] = completion
                outcomes = list(threads.map(_step, active, completions))
                still_active = []
                for live, (completion, result) in zip(active, outcomes, strict=True):
                    observation, reward, terminated, truncated, info = result
                    live.turns.append(
                        TurnRecord(
                            reward=reward,
                            verdict=info["verdict"],
                            completion=completion.text,
                            prompt_token_ids=completion.prompt_token_ids,
                            completion_token_ids=completion.completion_token_ids,
                            completion_logprobs=completion.logprobs,
                            finish_reason=completion.finish_reason,
                        )
                    )
                    live.reward += reward
                    live.observation, live.info = observation, info
                    if completion.prompt_token_ids is not None and completion.completion_token_ids:
                        live.token_prefix = (
                            completion.prompt_token_ids + completion.completion_token_ids
                        )
                    stop_reason = "terminated" if terminated else "truncated" if truncated else None
                    if budget is not None:
                        live.generated += _generated_tokens(completion, policy)
                        if stop_reason is None and live.generated >= budget:
                            truncated, stop_reason = True, "max_episode_tokens"
                    if stop_reason is not None:
                        trajectory = _finish(live, policy, terminated, truncated, stop_reason)
                        results[live.index] = trajectory
                        envs.release(live.env)
                        if on_episode is not None:
                            on_episode(trajectory)
                    else:
                        still_active.append(live)
                active = still_active
    except BaseException:
        for live in active:  # stopped mid-episode: their state is not to be reused
            with contextlib.suppress(ValueError):  # already released
                envs.discard(live.env)
        raise
    finally:
        if own_pool:
            envs.close()
    return [trajectory for trajectory in results if trajectory is not None]


_RESET_TRIES = 2
"""Resets tried per episode when a served env's server fails them (:class:`ServiceError`):
the pooled env, then a fresh one (a restarted server takes a new session). Each try already
retries within the env's own bound (``RemoteEnv``'s ``RetryPolicy``)."""


def _reset_failed(spec: EpisodeSpec, policy: Policy, failures: list[ServiceError]) -> Trajectory:
    """An episode whose served env could not start it: no turns, truncated and unscored
    (``stop_reason="reset_failed"``), so trainers leave it out of its group."""
    last = failures[-1]
    return Trajectory(
        env_id=spec.env_id,
        task_id=spec.task_id,
        seed=spec.seed,
        group=spec.group,
        messages=[],
        turns=[],
        reward=0.0,
        terminated=False,
        truncated=True,
        stop_reason="reset_failed",
        error=f"reset failed {len(failures)} times: {type(last).__name__}: {last}",
        policy=policy.name,
    )


def _checked(policy: Policy) -> Policy:
    if not isinstance(policy, Policy):
        missing = [name for name in ("name", "supports_prefixes", "generate")
                   if not hasattr(policy, name)]  # fmt: skip
        raise TypeError(
            f"{type(policy).__name__} is not a Policy: it lacks {', '.join(missing)}. Give it "
            "`name`, `supports_prefixes` (False unless generate() takes prefixes=, see "
            "rlenv.rollout.Policy) and `generate`, or subclass rlenv.rollout.Policy"
        )
    return policy


def _episode_seeds(seed: int | None, batch: list[_Live]) -> tuple[int, ...] | None:
    """Each conversation's own seed (``SamplingParams.seeds``): its episode's position in the
    specs and its turn number, so that the samples of a group, which send identical
    conversations, never share a seed with a backend that seeds each request."""
    if seed is None:
        return None
    return tuple(episode_seed(seed, live.position, len(live.turns)) for live in batch)


def _turn_limit(params: SamplingParams, live: _Live) -> int:
    """``max_new_tokens``, or fewer when the episode's ``max_episode_tokens`` is nearly spent."""
    if params.max_episode_tokens is None:
        return params.max_new_tokens
    return min(params.max_new_tokens, params.max_episode_tokens - live.generated)


def _generate(
    policy: Policy, batch: list[_Live], params: SamplingParams, prefixes_wanted: bool
) -> list[Completion]:
    """One ``generate`` call for ``batch``'s next turns."""
    conversations = [live.observation for live in batch]
    tools = [live.info["tools"] for live in batch]
    if prefixes_wanted:  # token in, token out
        prefixes = [live.token_prefix for live in batch]
        completions = policy.generate(conversations, tools, params, prefixes=prefixes)
    else:
        completions = policy.generate(conversations, tools, params)
    if len(completions) != len(batch):
        raise RuntimeError(
            f"{policy.name} returned {len(completions)} completions for {len(batch)} conversations"
        )
    return completions


def _generated_tokens(completion: Completion, policy: Policy) -> int:
    """How many tokens ``completion`` holds: its token ids, else the server's usage count."""
    if completion.completion_token_ids is not None:
        return len(completion.completion_token_ids)
    usage = completion.extra.get("usage") or {}
    if isinstance(usage.get("completion_tokens"), int):
        return usage["completion_tokens"]
    raise ValueError(
        f"max_episode_tokens needs each turn's token count, but {policy.name} returned a "
        "completion with neither completion_token_ids nor usage.completion_tokens: use a "
        "policy that reports them (TransformersPolicy, an OpenAI-compatible server) or leave "
        "max_episode_tokens unset"
    )


def _step(live: _Live, completion: Completion) -> tuple[Completion, tuple]:
    try:
        return completion, live.env.step(completion.action)
    except ServiceError as error:
        # A served env lost the episode (session expired, server restarted, unreachable or
        # busy past the client's retries): the episode ends truncated and unscored, so
        # trainers leave it out of its group instead of learning a 0, and the batch goes on.
        lost = error if isinstance(error, EpisodeLostError) else f"{type(error).__name__}: {error}"
        verdict = Verdict(reward=0.0, scored=False, error=f"episode lost: {lost}")
        info = {**live.info, "verdict": verdict, "error": type(error).__name__}
        return completion, (live.observation, 0.0, False, True, info)


def _finish(
    live: _Live, policy: Policy, terminated: bool, truncated: bool, stop_reason: StopReason
) -> Trajectory:
    return Trajectory(
        env_id=live.spec.env_id,
        task_id=live.info.get("task_id"),
        seed=live.spec.seed,
        group=live.spec.group,
        messages=live.observation,
        tools=live.info.get("tools", []),
        turns=live.turns,
        reward=live.reward,
        terminated=terminated,
        truncated=truncated,
        stop_reason=stop_reason,
        policy=policy.name,
    )
