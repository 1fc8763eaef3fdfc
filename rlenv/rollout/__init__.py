"""Rollouts: policies, the batched rollout engine, and trajectory records.

>>> from rlenv.rollout import ScriptedPolicy, episodes, rollout
>>> specs = episodes("rlenv/GuessNumber-v0", n_tasks=2)
>>> trajectories = rollout(ScriptedPolicy(answers=["50"]), specs)
>>> len(trajectories)
2

The same engine serves evaluation and the trainers, so an eval score and a training reward mean
the same thing.
"""

from rlenv.rollout.collector import EpisodeSpec, episodes, rollout
from rlenv.rollout.openai import OpenAIPolicy, PolicyError
from rlenv.rollout.policy import Completion, Policy, SamplingParams, ScriptedPolicy
from rlenv.rollout.trajectory import (
    NotTokenFaithful,
    TokenSequence,
    Trajectory,
    TurnRecord,
    read_trajectories,
    write_trajectories,
)

__all__ = [
    "Completion",
    "EpisodeSpec",
    "NotTokenFaithful",
    "OpenAIPolicy",
    "Policy",
    "PolicyError",
    "SamplingParams",
    "ScriptedPolicy",
    "TokenSequence",
    "Trajectory",
    "TurnRecord",
    "episodes",
    "read_trajectories",
    "rollout",
    "write_trajectories",
]
