"""A stand-in for verl's agent-loop classes, used when verl is not installed.

verl's ``verl.experimental.agent_loop`` imports Ray, Hydra, OmegaConf, TensorDict and its whole
trainer at import time, so it cannot be imported on a machine without that stack (rlenv's CI
has none of it). These classes copy the parts of verl 0.9.1's interface that an agent loop
touches — names, fields, defaults and signatures, from ``verl/experimental/agent_loop/
agent_loop.py`` and ``verl/workers/rollout/replica.py`` — so :mod:`rlenv.adapters.verl` can be
written and tested against them. With verl installed, the adapter subclasses the real classes
instead and none of this is used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel

__all__ = [
    "AgentLoopBase",
    "AgentLoopMetrics",
    "AgentLoopOutput",
    "DictConfigWrap",
    "TokenOutput",
    "register",
]


class AgentLoopMetrics(BaseModel):
    """Agent loop performance metrics."""

    generate_sequences: float = 0.0
    tool_calls: float = 0.0
    compute_score: float = 0.0
    num_preempted: int = -1  # -1 means not available


class AgentLoopOutput(BaseModel):
    """Agent loop output (verl's fields; multimodal and MoE fields kept for completeness)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None = None
    routed_experts: Any | None = None
    multi_modal_data: dict[str, Any] | None = None
    reward_score: float | None = None
    num_turns: int = 0
    metrics: AgentLoopMetrics
    extra_fields: dict[str, Any] = {}
    mm_processor_kwargs: dict[str, Any] | None = None
    mm_processor_output: list[dict[str, Any]] | None = None


class TokenOutput(BaseModel):
    """What ``server_manager.generate`` returns."""

    token_ids: list[int]
    log_probs: list[float] | None = None
    routed_experts: Any | None = None
    stop_reason: str | None = None
    num_preempted: int | None = None
    extra_fields: dict[str, Any] = {}


class DictConfigWrap:
    """Wrapper for DictConfig to avoid hydra.utils.instantiate recursive resolve."""

    def __init__(self, config: Any) -> None:
        self.config = config


class AgentLoopBase(ABC):
    """verl's agent-loop base: the worker instantiates one per sample with these arguments (and
    ``tools=``), then awaits ``run``. The real ``__init__`` also builds a Continuous Token
    builder and grabs the event loop, which an rlenv loop does not use."""

    def __init__(
        self,
        trainer_config: DictConfigWrap,
        server_manager: Any,
        tokenizer: Any,
        processor: Any,
        dataset_cls: type | None,
        data_config: DictConfigWrap,
        hf_model_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.config = trainer_config.config
        self.rollout_config = self.config.actor_rollout_ref.rollout
        self.server_manager = server_manager
        self.tokenizer = tokenizer
        self.processor = processor
        self.dataset_cls = dataset_cls
        self.data_config = data_config.config
        self.apply_chat_template_kwargs = self.data_config.get("apply_chat_template_kwargs", {})

    @abstractmethod
    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Run the agent loop; ``kwargs`` are the dataset row's fields."""
        raise NotImplementedError


_agent_loop_registry: dict[str, dict[str, str]] = {}
"""agent_name -> the Hydra config that instantiates the loop, as in verl."""


def register(agent_name: str) -> Any:
    """Register an agent-loop class under ``agent_name`` (rows select it with ``agent_name``)."""

    def decorator(subclass: type[AgentLoopBase]) -> type[AgentLoopBase]:
        fqdn = f"{subclass.__module__}.{subclass.__qualname__}"
        _agent_loop_registry[agent_name] = {"_target_": fqdn}
        return subclass

    return decorator
