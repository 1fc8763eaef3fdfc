"""``VLLMPolicy``: a vLLM engine colocated in the trainer's process as a policy.

**Not run on a GPU here.** vLLM needs CUDA, and these machines have none. This backend was
tested against a fake engine (``tests/rollout/fake_vllm.py``) that follows vLLM's API and is
backed by a real (tiny) Hugging Face model, so its token ids and log-probs are real; and every
class, method and keyword it calls was checked against vLLM 0.34.0's source
(``tests/rollout/test_vllm_api.py``, which reads the source unpacked by ``make vllm-src``
without importing it). Install vLLM on a GPU machine with ``pip install vllm``.

What it does, and the vLLM 0.34.0 code each part relies on:

- **Token in, token out.** Prompts go to ``LLM.generate`` as ``TokensPrompt(prompt_token_ids=...)``
  (``vllm/inputs/llm.py``), rendered by the same functions as
  :class:`~rlenv.rollout.transformers.TransformersPolicy` (it is a
  :class:`~rlenv.rollout.chat_tokens.ChatTokens`: ``render_prompt_ids``; multi-turn
  prompts extend the exact ids so far with ``extend_prompt_ids``), so the two backends feed the
  model identical ids. The engine's prefix cache (``enable_prefix_caching=True``) then reuses the
  keys and values of every earlier turn instead of re-running the conversation.
- **Stops.** The engine stops on exactly rlenv's stop ids (``stop_token_ids``, the same set as
  the other backends) with ``ignore_eos=True``: without it vLLM also stops on the EOS ids of the
  model's ``generation_config`` (``SamplingParams.update_from_generation_config``), which the
  multi-turn continuation would not recognise as the end of a turn. The stop token is kept in
  the generated ids (``vllm/v1/core/sched/utils.py`` ``check_stop``).
- **Log-probs.** ``SamplingParams(logprobs=0)`` returns the sampled token's log-prob, and the
  engine is built with ``logprobs_mode="processed_logprobs"``: vLLM's default,
  ``"raw_logprobs"``, is ``log_softmax(logits)`` *before* the temperature, while the processed
  values are taken after the logits processors, the temperature, ``min_p`` and top-k/top-p
  (``vllm/v1/worker/gpu/sample/sampler.py``). With ``top_p=1`` (and no top-k, min-p or
  penalties, which rlenv never sets) that is ``log_softmax(logits / T)``, what a trainer
  recomputes and what :attr:`Completion.logprobs <rlenv.rollout.Completion.logprobs>` promises;
  greedy (``T=0``) leaves the logits unscaled, as the other backends do. With ``top_p < 1`` the
  values are renormalised over the nucleus, unlike the other backends' full-distribution
  log-probs: fine for evaluation, and the bundled GRPO trainer refuses ``top_p < 1`` anyway.
- **Seeds.** Every request gets its own seed (the rollout engine's per-episode
  :attr:`SamplingParams.seeds <rlenv.rollout.SamplingParams.seeds>`, else
  :func:`~rlenv.rollout.policy.row_seed`, as ``OpenAIPolicy``), so the samples of a GRPO
  group differ and a seeded run repeats (vLLM draws each request's noise from its seed and token
  position, ``vllm/v1/worker/gpu/sample/gumbel.py``; kernels are not batch-invariant, so a
  different batch can still change the last bits of the logits).
- **Sleep, wake and weights.** See :meth:`VLLMPolicy.sleep`, :meth:`VLLMPolicy.load_weights`,
  :meth:`VLLMPolicy.wake`. New weights reach the model through the worker's
  ``reload_weights(weights_iterator=..., is_checkpoint_format=True)``
  (``vllm/v1/worker/gpu_worker.py``), called by ``LLM.collective_rpc``
  (``vllm/entrypoints/llm.py``). That passes the tensors by reference only when the engine runs
  in this process, so an engine this class builds sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0``
  (``vllm/envs.py``; then ``UniProcExecutor.collective_rpc`` calls the worker directly,
  ``vllm/v1/executor/uniproc_executor.py``).
- **LoRA.** :meth:`VLLMPolicy.use_lora` points every later request at an adapter folder
  (``LoRARequest``, ``vllm/lora/request.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from rlenv.chat import Message
from rlenv.errors import RLEnvError
from rlenv.rollout.chat_tokens import ChatTokens
from rlenv.rollout.policy import Completion, Policy, SamplingParams, row_seed
from rlenv.rollout.transformers import generated_completion

__all__ = ["VLLM_CHECKED_VERSION", "MissingVLLM", "VLLMPolicy", "import_vllm"]

VLLM_CHECKED_VERSION = "0.34.0"
"""The vLLM release whose source ``tests/rollout/test_vllm_api.py`` checks this module against."""

_SLEEP_TAGS = ("weights", "kv_cache")
"""What ``LLM.sleep(level>=1)`` releases (``SLEEP_TAGS`` in ``vllm/v1/executor/abstract.py``)."""


class MissingVLLM(RLEnvError, ImportError):
    """vLLM is not installed. ``pip install vllm`` on a machine with a CUDA GPU (vLLM does not
    run on a CPU-only machine; use ``TransformersPolicy`` there)."""


def import_vllm() -> tuple[Any, Any, Any, Any]:
    """``(LLM, SamplingParams, TokensPrompt, LoRARequest)`` from vLLM, or :class:`MissingVLLM`."""
    try:
        from vllm import LLM, SamplingParams, TokensPrompt
        from vllm.lora.request import LoRARequest
    except ImportError as error:
        raise MissingVLLM(
            f"VLLMPolicy needs vLLM ({error}): pip install vllm, on a machine with a CUDA GPU. "
            "On a CPU use TransformersPolicy."
        ) from error
    return LLM, SamplingParams, TokensPrompt, LoRARequest


class VLLMPolicy(ChatTokens, Policy):
    """A vLLM engine in this process as a :class:`~rlenv.rollout.Policy`, for GPU trainers.

    **Not run on a GPU here**: tested against a fake engine that follows vLLM's API, checked
    against vLLM 0.34.0's source (see the module's docstring for what each part relies on).

    Args:
        model: A model path or Hugging Face name to build an engine from, or an engine already
            built (a ``vllm.LLM``, or a stand-in with its API). A built engine is used as it is:
            for :meth:`load_weights` it must run in this process
            (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), for :meth:`sleep` be built with
            ``enable_sleep_mode=True``, and its log-probs follow its ``logprobs_mode``
            (``"processed_logprobs"`` gives those rlenv promises).
        tokenizer: The model's Hugging Face tokenizer, with its chat template; prompts are
            rendered here, not by the engine.
        name: The policy's name in trajectories (default: ``model`` when it is a name).
        gpu_memory_utilization: The share of the GPU's memory the engine may take, weights and
            KV cache together. A colocated trainer needs the rest for its own weights,
            gradients and optimizer state, so the default is low.
        enable_lora: Build the engine with LoRA support, for :meth:`use_lora`.
        max_lora_rank: The largest LoRA rank the engine accepts (with ``enable_lora``).
        **engine_kwargs: More keywords for ``vllm.LLM`` (``max_model_len``, ``dtype``,
            ``enforce_eager``...).

    Building an engine sets ``enable_sleep_mode=True``, ``enable_prefix_caching=True``,
    ``logprobs_mode="processed_logprobs"``, and ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` in the
    environment unless it is set.

    A trainer alternates (see :meth:`sleep`)::

        policy.sleep()                             # free the GPU for training
        ...                                        # forward, backward, optimizer step
        policy.load_weights(model.state_dict().items())  # or policy.use_lora(saved_folder)
        trajectories = rollout(policy, specs)      # generate wakes what still sleeps
    """

    supports_prefixes = True
    """The rollout engine passes each conversation's exact token ids so far; the next prompt
    extends them (see :attr:`Policy.supports_prefixes <rlenv.rollout.Policy.supports_prefixes>`)."""

    def __init__(
        self,
        model: str | Any,
        tokenizer: Any,
        *,
        name: str | None = None,
        gpu_memory_utilization: float = 0.3,
        enable_lora: bool = False,
        max_lora_rank: int = 64,
        **engine_kwargs: Any,
    ) -> None:
        llm_class, self._sampling_params, self._tokens_prompt, self._lora_request = import_vllm()
        if isinstance(model, str):
            # Weights pass to the engine by reference only when it runs in this process.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            if enable_lora:
                engine_kwargs.setdefault("max_lora_rank", max_lora_rank)
            self.llm = llm_class(
                model=model,
                gpu_memory_utilization=gpu_memory_utilization,
                enable_sleep_mode=True,
                enable_prefix_caching=True,
                enable_lora=enable_lora,
                logprobs_mode="processed_logprobs",
                **engine_kwargs,
            )
            self.name = name or model
        else:
            self.llm = model
            config = getattr(model, "model_config", None)
            self.name = name or getattr(config, "model", None) or "vllm"
        ChatTokens.__init__(self, tokenizer)  # prompt ids, multi-turn extension, stop ids
        self._asleep: set[str] = set()
        self._lora: Any = None
        self._lora_ids = 0

    # -- generation -------------------------------------------------------------------------

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        tools: Sequence[Sequence[dict[str, Any]]],
        params: SamplingParams,
        prefixes: Sequence[Sequence[int] | None] | None = None,
    ) -> list[Completion]:
        """One ``LLM.generate`` call for the whole batch, one request per conversation, each
        with its own seed (``params.seeds[i]``, else ``row_seed(params.seed, i)``). Wakes the
        engine first if it sleeps.
        ``prefixes`` as in :class:`~rlenv.rollout.transformers.TransformersPolicy`."""
        self.wake()
        prefixes = prefixes or [None] * len(conversations)
        prompts = [
            self.prompt_ids(c, t) if prefix is None else self.continued_prompt_ids(c, t, prefix)
            for c, t, prefix in zip(conversations, tools, prefixes, strict=True)
        ]
        requests = [self._tokens_prompt(prompt_token_ids=prompt) for prompt in prompts]
        sampling = [self._request_params(params, index) for index in range(len(prompts))]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False, lora_request=self._lora)
        return [
            self._completion(prompt, output)
            for prompt, output in zip(prompts, outputs, strict=True)
        ]

    def _request_params(self, params: SamplingParams, index: int) -> Any:
        """vLLM's ``SamplingParams`` for request ``index`` of a call."""
        return self._sampling_params(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            seed=params.seeds[index] if params.seeds else row_seed(params.seed, index),
            logprobs=0,  # the sampled token's log-prob only
            stop_token_ids=list(self.stop_ids),
            ignore_eos=True,  # stop on rlenv's stop ids only (module docstring)
            detokenize=False,  # the text is decoded here, as the other backends do
        )

    def _completion(self, prompt: list[int], output: Any) -> Completion:
        """A :class:`Completion` from one ``RequestOutput``."""
        sample = output.outputs[0]
        ids = list(sample.token_ids)
        logprobs = [
            position[token].logprob for token, position in zip(ids, sample.logprobs, strict=True)
        ]
        return generated_completion(
            self.tokenizer, self.stop_ids, prompt, ids, logprobs,
            finish_reason=sample.finish_reason or "length",
        )  # fmt: skip

    # -- colocation with a trainer ----------------------------------------------------------

    def sleep(self, level: int = 1) -> None:
        """Release the engine's GPU memory for training (``LLM.sleep``).

        ``level=1`` moves the weights to CPU memory and drops the KV cache (and the prefix
        cache with it); ``level=2`` drops the weights too, keeping only what a weight update
        does not rewrite — use it when every wake follows :meth:`load_weights` with the whole
        model (full fine-tuning), never with :meth:`use_lora` alone, whose base weights must
        survive. Call it after the rollout, before the trainer's first forward pass. Does
        nothing if the engine already sleeps.
        """
        if self._asleep:
            return
        self.llm.sleep(level=level)
        self._asleep = set(_SLEEP_TAGS)

    def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Load new weights into the engine, after an optimizer step.

        ``weights``: ``(name, tensor)`` pairs with the Hugging Face checkpoint's names, as
        ``model.state_dict().items()`` of a plain ``transformers`` model gives them (for a LoRA
        model, save the adapter and call :meth:`use_lora` instead). Tensors may live on the
        GPU; vLLM copies them into its own (fused, possibly sharded) parameters. If the engine
        sleeps, only its weights wake (``LLM.wake_up(tags=["weights"])``) so that the KV cache
        stays released while they load; :meth:`wake` or the next :meth:`generate` wakes the
        rest. Calls the worker's ``reload_weights`` through ``LLM.collective_rpc``.

        On an engine that was awake, the prefix cache is reset too (``LLM.reset_prefix_cache``):
        its keys and values were computed with the old weights, and the next step's prompts
        (the same tasks, the same system prompt) would hit them. ``sleep`` already dropped it.
        """
        awake = not self._asleep
        if "weights" in self._asleep:
            self.llm.wake_up(tags=["weights"])
            self._asleep.discard("weights")
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": iter(weights), "is_checkpoint_format": True},
        )
        if awake:
            self.llm.reset_prefix_cache()

    def wake(self) -> None:
        """Wake whatever still sleeps (``LLM.wake_up``); the engine can generate again.
        :meth:`generate` calls it, so a trainer need not."""
        if not self._asleep:
            return
        if self._asleep == set(_SLEEP_TAGS):
            self.llm.wake_up()
        else:
            self.llm.wake_up(tags=sorted(self._asleep))
        self._asleep = set()

    @property
    def asleep(self) -> bool:
        """Whether some of the engine's GPU memory is released (after :meth:`sleep`)."""
        return bool(self._asleep)

    def use_lora(self, path: str | os.PathLike[str] | None) -> None:
        """Generate with the LoRA adapter saved in folder ``path`` (PEFT's
        ``save_pretrained``); None: the base model again. Needs ``enable_lora=True``.

        Each call is a new adapter to vLLM (a new ``lora_int_id``), so the engine reads the
        folder again even when the path is the same: call it after each optimizer step, once
        the adapter is saved. vLLM keeps the most recent adapters in its cache and evicts the
        rest (``max_loras``, ``max_cpu_loras``).
        """
        if path is None:
            self._lora = None
            return
        self._lora_ids += 1
        self._lora = self._lora_request(
            lora_name=f"rlenv-{self._lora_ids}",
            lora_int_id=self._lora_ids,
            lora_path=os.fspath(path),
        )
