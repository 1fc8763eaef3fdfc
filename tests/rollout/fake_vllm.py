"""A stand-in for the part of vLLM's API that ``rlenv.rollout.vllm`` calls, for CPU tests.

vLLM needs CUDA, so tests install this module as ``vllm`` (:func:`install`). It follows vLLM
0.34.0: the same names at the same import paths, the same signatures (checked against the
real source by ``test_vllm_api.py``), and the behaviour VLLMPolicy relies on, each with the
file it copies:

- sampling (``vllm/v1/worker/gpu/sample/sampler.py``): temperature (0 = greedy, logits
  unscaled), then top-p masking, one draw per token from a generator seeded with the request's
  ``seed``; the returned log-probs follow the engine's ``logprobs_mode`` — ``raw_logprobs``
  (vLLM's default) before the temperature, ``processed_logprobs`` after it and after top-p;
- stops (``vllm/v1/core/sched/utils.py`` ``check_stop``, ``SamplingParams.
  update_from_generation_config``): on ``stop_token_ids``, and unless ``ignore_eos`` on the
  model's EOS and its generation config's EOS ids; the stop token stays in ``token_ids``;
  ``detokenize=False`` leaves ``text`` empty;
- sleep mode (``vllm/v1/engine/core.py``, ``vllm/v1/executor/abstract.py``): ``sleep`` needs
  ``enable_sleep_mode``, releases ``weights`` and ``kv_cache``; ``wake_up(tags)`` brings back
  those tags (None: all); the engine schedules nothing until fully awake (here: ``generate``
  raises rather than hanging), and weights cannot be loaded into released memory;
- ``reset_prefix_cache`` is recorded (this fake has no KV cache to reset);
- ``collective_rpc("reload_weights", kwargs=...)`` calls the worker's ``reload_weights``
  (``vllm/v1/worker/gpu_worker.py``), which loads checkpoint-named tensors into the model;
- LoRA (``vllm/lora/request.py``): ``lora_request`` needs ``enable_lora``; adapters are cached
  by ``lora_int_id`` (a known id is not read again unless ``load_inplace``).

The model behind it is a Hugging Face causal LM (``rlenv.testing.tiny_chat_model``), registered
under a name with :func:`register_model`, so outputs are real tokens and log-probs. Every call
is recorded in ``LLM.calls``.
"""

from __future__ import annotations

import copy
import sys
import types
from dataclasses import dataclass
from typing import Any, TypedDict

import torch

VERSION = "0.34.0"

LOGPROBS_MODES = ("raw_logits", "raw_logprobs", "processed_logits", "processed_logprobs")

ENGINE_ARGS = frozenset(
    {
        "enable_sleep_mode",
        "enable_prefix_caching",
        "enable_lora",
        "max_lora_rank",
        "logprobs_mode",
        "max_model_len",
    }
)
"""The ``EngineArgs`` fields this fake accepts through ``LLM(**kwargs)``."""

SLEEP_TAGS = frozenset(("weights", "kv_cache"))

_MODELS: dict[str, tuple[Any, Any, list[int]]] = {}


def register_model(name: str, model: Any, tokenizer: Any, generation_eos: list[int] = ()) -> None:
    """Make ``LLM(model=name)`` load ``model`` (a copy). ``generation_eos``: the EOS ids of the
    model's ``generation_config``, which vLLM adds to every request's stops (unless
    ``ignore_eos``)."""
    _MODELS[name] = (model, tokenizer, list(generation_eos))


# -- vllm.sampling_params / vllm.inputs / vllm.lora.request / vllm.outputs / vllm.logprobs --


@dataclass(kw_only=True)
class SamplingParams:
    """``vllm.SamplingParams``: the fields VLLMPolicy sets, with vLLM's defaults."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True


class TokensPrompt(TypedDict):
    """``vllm.TokensPrompt``."""

    prompt_token_ids: list[int]


@dataclass
class LoRARequest:
    """``vllm.lora.request.LoRARequest``."""

    lora_name: str
    lora_int_id: int
    lora_path: str = ""
    load_inplace: bool = False

    def __post_init__(self) -> None:
        if self.lora_int_id < 1:
            raise ValueError(f"id must be > 0, got {self.lora_int_id}")
        assert self.lora_path, "lora_path cannot be empty"


@dataclass
class Logprob:
    """``vllm.logprobs.Logprob``."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    """``vllm.outputs.CompletionOutput``."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class RequestOutput:
    """``vllm.outputs.RequestOutput``."""

    def __init__(
        self,
        request_id: str,
        prompt: str | None,
        prompt_token_ids: list[int] | None,
        prompt_logprobs: Any,
        outputs: list[CompletionOutput],
        finished: bool,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.prompt_logprobs = prompt_logprobs
        self.outputs = outputs
        self.finished = finished


# -- the worker and the engine ---------------------------------------------------------------


class Worker:
    """``vllm.v1.worker.gpu_worker.Worker``: the methods ``collective_rpc`` reaches."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def reload_weights(
        self,
        weights_iterator: Any = None,
        weights_path: str | None = None,
        is_checkpoint_format: bool = True,
    ) -> None:
        assert weights_iterator is not None and is_checkpoint_format
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in weights_iterator:
                if name not in parameters:
                    raise ValueError(f"no parameter named {name!r} in the model")
                parameters[name].copy_(tensor)


@dataclass
class _ModelConfig:
    model: str


class LLM:
    """``vllm.LLM``, generating with a registered Hugging Face model."""

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float | None = None,
        enforce_eager: bool = False,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got unexpected keyword arguments {unknown}")
        self.init_kwargs = {
            "model": model, "dtype": dtype, "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization, **kwargs,
        }  # fmt: skip
        self.logprobs_mode = kwargs.get("logprobs_mode", "raw_logprobs")
        assert self.logprobs_mode in LOGPROBS_MODES
        self.enable_sleep_mode = kwargs.get("enable_sleep_mode", False)
        self.enable_lora = kwargs.get("enable_lora", False)
        source, self.tokenizer, self.generation_eos = _MODELS[model]
        self.model = copy.deepcopy(source).eval()
        self.model_config = _ModelConfig(model=model)
        self.worker = Worker(self.model)
        self.sleeping_tags: set[str] = set()
        self.adapters: dict[int, Any] = {}
        self.calls: list[tuple[Any, ...]] = []

    def generate(
        self,
        prompts: Any,
        sampling_params: Any = None,
        *,
        use_tqdm: bool = True,
        lora_request: LoRARequest | None = None,
    ) -> list[RequestOutput]:
        self.calls.append(("generate", prompts, sampling_params, lora_request))
        if self.sleeping_tags:
            raise RuntimeError(f"generate while {sorted(self.sleeping_tags)} sleep: would hang")
        if not isinstance(sampling_params, list):
            sampling_params = [sampling_params] * len(prompts)
        assert len(sampling_params) == len(prompts)
        model = self._model_for(lora_request)
        return [
            self._one(str(i), prompt["prompt_token_ids"], params, model)
            for i, (prompt, params) in enumerate(zip(prompts, sampling_params, strict=True))
        ]

    def sleep(self, level: int = 1) -> None:
        self.calls.append(("sleep", level))
        if not self.enable_sleep_mode:
            raise ValueError("Sleep mode is not enabled (enable_sleep_mode=True)")
        self.sleeping_tags |= SLEEP_TAGS

    def wake_up(self, tags: list[str] | None = None) -> bool:
        self.calls.append(("wake_up", tags))
        for tag in tags or []:
            assert tag in SLEEP_TAGS | {"scheduling"}, tag
        self.sleeping_tags -= set(tags) if tags is not None else SLEEP_TAGS
        return not self.sleeping_tags

    def collective_rpc(
        self,
        method: Any,
        timeout: float | None = None,
        args: tuple = (),
        kwargs: dict[str, Any] | None = None,
    ) -> list[Any]:
        self.calls.append(("collective_rpc", method))
        if "weights" in self.sleeping_tags:
            raise RuntimeError("weights are released (asleep): wake_up(tags=['weights']) first")
        return [getattr(self.worker, method)(*args, **(kwargs or {}))]

    def reset_prefix_cache(
        self, reset_running_requests: bool = False, reset_connector: bool = False
    ) -> bool:
        self.calls.append(("reset_prefix_cache",))
        return True

    # -- internals --

    def _model_for(self, lora: LoRARequest | None) -> Any:
        if lora is None:
            return self.model
        if not self.enable_lora:
            raise ValueError("LoRA is not enabled (enable_lora=True)")
        if lora.lora_int_id not in self.adapters or lora.load_inplace:
            from peft import PeftModel

            self.adapters[lora.lora_int_id] = PeftModel.from_pretrained(
                copy.deepcopy(self.model), lora.lora_path
            ).eval()
        return self.adapters[lora.lora_int_id]

    def _one(
        self, request_id: str, prompt: list[int], params: SamplingParams, model: Any
    ) -> RequestOutput:
        assert params.n == 1
        generator = None
        if params.seed is not None:
            generator = torch.Generator().manual_seed(params.seed)
        stops = set(params.stop_token_ids or [])
        if not params.ignore_eos:
            stops |= {self.tokenizer.eos_token_id, *self.generation_eos}
        ids, tokens, logprobs = list(prompt), [], []
        finish, stop_reason = "length", None
        with torch.no_grad():
            for _ in range(params.max_tokens):
                logits = model(torch.tensor([ids])).logits[0, -1].float()
                processed = logits / params.temperature if params.temperature > 0 else logits
                processed = _top_p(processed, params.top_p)
                if params.temperature > 0:
                    probabilities = torch.softmax(processed, -1)
                    token = int(torch.multinomial(probabilities, 1, generator=generator))
                else:
                    token = int(processed.argmax())
                scores = processed if self.logprobs_mode.startswith("processed") else logits
                if self.logprobs_mode.endswith("logprobs"):
                    scores = torch.log_softmax(scores, -1)
                tokens.append(token)
                ids.append(token)
                logprobs.append({token: Logprob(float(scores[token]), rank=None)})
                if token in stops:
                    finish = "stop"
                    stop_reason = token if token in (params.stop_token_ids or []) else None
                    break
        text = self.tokenizer.decode(tokens) if params.detokenize else ""
        output = CompletionOutput(
            index=0,
            text=text,
            token_ids=tokens,
            cumulative_logprob=None,
            logprobs=logprobs if params.logprobs is not None else None,
            finish_reason=finish,
            stop_reason=stop_reason,
        )
        return RequestOutput(request_id, None, list(prompt), None, [output], True)


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """vLLM's ``apply_top_k_top_p_pytorch`` for top-p alone."""
    if top_p >= 1.0:
        return logits
    ordered, order = logits.sort(descending=False)
    cumulative = ordered.softmax(-1).cumsum(-1)
    mask = cumulative <= 1 - top_p
    mask[-1] = False
    ordered = ordered.masked_fill(mask, -float("inf"))
    return torch.empty_like(logits).scatter(-1, order, ordered)


def install(monkeypatch: Any) -> types.ModuleType:
    """Put this module in ``sys.modules`` as ``vllm`` (and ``vllm.lora.request``) for a test."""
    package = types.ModuleType("vllm")
    package.__version__ = VERSION
    package.LLM = LLM
    package.SamplingParams = SamplingParams
    package.TokensPrompt = TokensPrompt
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    lora.request = request
    package.lora = lora
    for name, module in (("vllm", package), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    return package
