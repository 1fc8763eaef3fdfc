"""Every vLLM class, method and keyword that ``rlenv.rollout.vllm`` (and the fake engine its
tests use, ``fake_vllm.py``) calls exists in vLLM's source with that signature.

vLLM needs CUDA and pins its own torch, so it is never installed or imported here: ``make
vllm-src`` downloads its wheel and unpacks the ``.py`` files into ``.vllm-src/``, and this test
reads them with ``ast``. Two checks: the calls written in ``rlenv/rollout/vllm.py`` itself (so a
keyword misspelt there fails even if the fake has the same typo), and the fake's signatures
(so the behaviour tested against the fake is that of the real API).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(os.environ.get("RLENV_VLLM_SRC", ROOT / ".vllm-src"))
VLLM = SOURCE / "vllm"

pytestmark = pytest.mark.skipif(
    not (VLLM / "entrypoints" / "llm.py").is_file(),
    reason=f"vLLM's source is not unpacked in {SOURCE}: run `make vllm-src` (downloads the "
    "vLLM wheel, ~240 MB, keeps its .py files)",
)

torch = pytest.importorskip("torch")  # fake_vllm needs torch

import fake_vllm  # noqa: E402

from rlenv.rollout import vllm as policy_module  # noqa: E402

# -- reading vLLM's source ------------------------------------------------------------------


@functools.cache
def module(dotted: str) -> ast.Module:
    """The parsed source of ``vllm.x.y`` (a module or a package's ``__init__``)."""
    path = SOURCE.joinpath(*dotted.split("."))
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return ast.parse(file.read_text(), str(file))


def find_class(dotted: str, name: str) -> ast.ClassDef:
    """Class ``name`` as ``from <dotted> import <name>`` finds it (following re-exports)."""
    return locate(dotted, name)[1]


def cls_module(dotted: str, name: str) -> str:
    """The module that defines the class ``from <dotted> import <name>`` finds."""
    return locate(dotted, name)[0]


def locate(dotted: str, name: str) -> tuple[str, ast.ClassDef]:
    tree = module(dotted)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return dotted, node
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
            target = node.module or ""
            if node.level:  # relative to this module's package
                package = dotted
                if not SOURCE.joinpath(*dotted.split(".")).is_dir():
                    package = dotted.rpartition(".")[0]
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                target = ".".join([*parts, *([node.module] if node.module else [])])
            return locate(target, name)
    raise AssertionError(f"no class {name} in {dotted}")


def find_method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"{cls.name} has no method {name}")


def parameters(function: ast.FunctionDef) -> tuple[list[str], set[str], set[str], bool]:
    """(positional names without self, keyword-only names, required names, takes **kwargs)."""
    args = function.args
    positional = [a.arg for a in args.posonlyargs + args.args][1:]  # drop self
    keyword_only = {a.arg for a in args.kwonlyargs}
    defaults = len(args.defaults)
    required = set(positional[: len(positional) - defaults] if defaults else positional)
    required |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None}
    return positional, keyword_only, required, args.kwarg is not None


def fields(cls: ast.ClassDef) -> dict[str, ast.expr | None]:
    """A dataclass-like class's annotated fields and their defaults (None: required)."""
    return {
        node.target.id: node.value
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def is_typed_dict(cls: ast.ClassDef, dotted: str) -> bool:
    """Whether ``cls`` (defined in or imported by ``dotted``) derives from ``TypedDict``."""
    for base in cls.bases:
        name = ast.unparse(base)
        if name.endswith("TypedDict") or (
            name.isidentifier() and is_typed_dict(find_class(dotted, name), dotted)
        ):
            return True
    return False


def required_fields(cls: ast.ClassDef, dotted: str) -> set[str]:
    """The fields a caller must give: those without a default (a dataclass or msgspec struct),
    or not ``NotRequired[...]`` (a TypedDict, where nothing has a default)."""
    typed_dict = is_typed_dict(cls, dotted)
    return {
        node.target.id
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        and (not ast.unparse(node.annotation).startswith("NotRequired[") if typed_dict
             else node.value is None)
    }  # fmt: skip


def engine_args() -> set[str]:
    return set(fields(find_class("vllm.engine.arg_utils", "EngineArgs")))


def llm() -> ast.ClassDef:
    return find_class("vllm", "LLM")


# -- the module's own calls -----------------------------------------------------------------


def policy_calls() -> dict[str, list[ast.Call]]:
    """Calls in rlenv/rollout/vllm.py, by the callee's source text."""
    tree = ast.parse(Path(policy_module.__file__).read_text())
    calls: dict[str, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls.setdefault(ast.unparse(node.func), []).append(node)
    return calls


def test_the_checked_version_is_the_unpacked_one():
    metadata = next(SOURCE.glob("vllm-*.dist-info/METADATA")).read_text()
    version = next(
        line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Version: ")
    )
    assert version == policy_module.VLLM_CHECKED_VERSION == fake_vllm.VERSION, (
        f"{SOURCE} holds vLLM {version}; rlenv.rollout.vllm was checked against "
        f"{policy_module.VLLM_CHECKED_VERSION}: check the API again and update both"
    )
    assert f"vLLM {version}" in policy_module.__doc__


def test_the_imported_names_exist_where_the_module_imports_them():
    tree = ast.parse(Path(policy_module.__file__).read_text())
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vllm"
        for alias in node.names
    ]
    assert sorted(imported) == [
        ("vllm", "LLM"), ("vllm", "SamplingParams"), ("vllm", "TokensPrompt"),
        ("vllm.lora.request", "LoRARequest"),
    ]  # fmt: skip
    exports = next(
        node.value
        for node in module("vllm").body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "MODULE_ATTRS"
    )
    lazy = ast.literal_eval(exports)  # vllm/__init__.py resolves these names on first access
    for dotted, name in imported:
        if dotted == "vllm":
            where, attribute = lazy[name].split(":")
            assert attribute == name
            find_class("vllm" + where, name)
        else:
            find_class(dotted, name)


def test_every_call_the_module_makes_exists_with_those_keywords():
    calls = policy_calls()
    # LLM(...): LLM.__init__'s parameters, or EngineArgs fields through its **kwargs
    init = find_method(llm(), "__init__")
    positional, keyword_only, _, takes_kwargs = parameters(init)
    assert takes_kwargs and any(  # LLM.__init__ hands **kwargs to EngineArgs
        isinstance(node, ast.Call) and ast.unparse(node.func) == "EngineArgs"
        and any(k.arg is None for k in node.keywords)
        for node in ast.walk(init)
    )  # fmt: skip
    accepted = set(positional) | keyword_only | engine_args()
    (build,) = calls["llm_class"]
    used = {k.arg for k in build.keywords if k.arg is not None}
    assert used <= accepted, used - accepted
    assert {"enable_sleep_mode", "enable_prefix_caching", "enable_lora", "logprobs_mode"} <= used

    # self.llm.<method>(...): LLM's methods
    methods = {
        name.split(".")[-1]: found for name, found in calls.items() if name.startswith("self.llm.")
    }
    assert set(methods) == {"generate", "sleep", "wake_up", "collective_rpc", "reset_prefix_cache"}
    for name, found in methods.items():
        positional, keyword_only, required, _ = parameters(find_method(llm(), name))
        for call in found:
            keywords = {k.arg for k in call.keywords}
            assert len(call.args) <= len(positional), (name, ast.unparse(call))
            assert keywords <= set(positional[len(call.args) :]) | keyword_only, (name, keywords)
            assert required <= set(positional[: len(call.args)]) | keywords, (name, required)

    # collective_rpc("reload_weights", kwargs={...}) reaches the GPU worker's method
    (rpc,) = methods["collective_rpc"]
    assert ast.literal_eval(rpc.args[0]) == "reload_weights"
    passed = next(k.value for k in rpc.keywords if k.arg == "kwargs")
    worker = find_method(find_class("vllm.v1.worker.gpu_worker", "Worker"), "reload_weights")
    positional, keyword_only, _, _ = parameters(worker)
    assert {ast.literal_eval(key) for key in passed.keys} <= set(positional) | keyword_only

    # the value types: SamplingParams, TokensPrompt, LoRARequest fields
    for callee, dotted, name in (
        ("self._sampling_params", "vllm", "SamplingParams"),
        ("self._tokens_prompt", "vllm", "TokensPrompt"),
        ("self._lora_request", "vllm.lora.request", "LoRARequest"),
    ):
        cls = find_class(dotted, name)
        known = fields(cls)
        for call in calls[callee]:
            used = {k.arg for k in call.keywords}
            assert used <= set(known), (name, used - set(known))
            must = required_fields(cls, cls_module(dotted, name))
            assert must <= used, (name, must - used)


def test_the_logprobs_mode_and_the_sleep_tags_are_vllms():
    mode = next(
        node.value
        for node in module("vllm.config.model").body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "LogprobsMode"
    )
    literal = tuple(ast.literal_eval(element) for element in mode.slice.elts)
    assert "processed_logprobs" in literal and literal == fake_vllm.LOGPROBS_MODES
    config = fields(find_class("vllm.config.model", "ModelConfig"))
    assert ast.literal_eval(config["logprobs_mode"]) == "raw_logprobs"  # why we set it
    tags = next(
        node.value
        for node in module("vllm.v1.executor.abstract").body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "SLEEP_TAGS"
    )
    assert set(ast.literal_eval(tags.args[0])) == fake_vllm.SLEEP_TAGS
    assert set(policy_module._SLEEP_TAGS) == fake_vllm.SLEEP_TAGS
    # the switch that keeps the engine in this process, so weights pass by reference
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" in (VLLM / "envs.py").read_text()
    uniproc = find_class("vllm.v1.executor.uniproc_executor", "UniProcExecutor")
    assert "run_method(self.driver_worker" in ast.unparse(find_method(uniproc, "collective_rpc"))


# -- the fake's signatures ------------------------------------------------------------------


def assert_same_signature(fake, real: ast.FunctionDef, label: str) -> None:
    """Every parameter of the fake exists in the real function with the same kind, and every
    parameter the real one requires is in the fake."""
    positional, keyword_only, required, _ = parameters(real)
    signature = inspect.signature(fake)
    names = [p for p in signature.parameters.values() if p.name != "self"]
    for parameter in names:
        if parameter.kind is parameter.VAR_KEYWORD:
            continue
        if parameter.kind is parameter.KEYWORD_ONLY:
            assert parameter.name in keyword_only | set(positional), (label, parameter.name)
        else:
            index = [p.name for p in names].index(parameter.name)
            assert positional[index] == parameter.name, (label, parameter.name)
    assert required <= {p.name for p in names}, (label, required)


@pytest.mark.parametrize(
    ("fake", "dotted", "cls", "method"),
    [
        (fake_vllm.LLM.__init__, "vllm", "LLM", "__init__"),
        (fake_vllm.LLM.generate, "vllm", "LLM", "generate"),
        (fake_vllm.LLM.sleep, "vllm", "LLM", "sleep"),
        (fake_vllm.LLM.wake_up, "vllm", "LLM", "wake_up"),
        (fake_vllm.LLM.collective_rpc, "vllm", "LLM", "collective_rpc"),
        (fake_vllm.LLM.reset_prefix_cache, "vllm", "LLM", "reset_prefix_cache"),
        (fake_vllm.Worker.reload_weights, "vllm.v1.worker.gpu_worker", "Worker", "reload_weights"),
        (fake_vllm.RequestOutput.__init__, "vllm.outputs", "RequestOutput", "__init__"),
    ],
)
def test_the_fakes_methods_have_vllms_signatures(fake, dotted, cls, method):
    assert_same_signature(fake, find_method(find_class(dotted, cls), method), f"{cls}.{method}")


def test_the_fakes_engine_arguments_are_vllms():
    assert engine_args() >= fake_vllm.ENGINE_ARGS


@pytest.mark.parametrize(
    ("fake", "dotted", "name"),
    [
        (fake_vllm.SamplingParams, "vllm", "SamplingParams"),
        (fake_vllm.TokensPrompt, "vllm", "TokensPrompt"),
        (fake_vllm.LoRARequest, "vllm.lora.request", "LoRARequest"),
        (fake_vllm.Logprob, "vllm.logprobs", "Logprob"),
        (fake_vllm.CompletionOutput, "vllm.outputs", "CompletionOutput"),
    ],
)
def test_the_fakes_value_types_have_vllms_fields_and_defaults(fake, dotted, name):
    cls = find_class(dotted, name)
    real = fields(cls)
    mine = fake.__annotations__
    assert set(mine) <= set(real), set(mine) - set(real)
    must = required_fields(cls, cls_module(dotted, name))
    assert must <= set(mine), f"{name}: the fake lacks {must - set(mine)}"
    for field, default in real.items():
        if field not in mine:
            continue
        declared = getattr(fake, "__dataclass_fields__", {}).get(field)
        if default is None or declared is None or declared.default is dataclasses.MISSING:
            continue
        try:
            expected = ast.literal_eval(default)
        except ValueError:
            continue  # a computed default (msgspec.field(...)) is not compared
        assert declared.default == expected, (name, field, declared.default, expected)
