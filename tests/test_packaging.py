"""The installed layout matches the repository: rlenv, rlenv.envs and rlenv.adapters."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _declared():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config["packages"], config["package-dir"]


def test_every_package_folder_is_declared():
    packages, package_dir = _declared()
    found = set()
    for name, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *relative)))
    assert found == set(packages), (
        f"add to pyproject [tool.setuptools] packages: {found - set(packages)}"
    )


def test_envs_and_adapters_import_as_rlenv_subpackages():
    for name in ("rlenv.envs", "rlenv.envs.games", "rlenv.envs.math", "rlenv.adapters"):
        module = importlib.import_module(name)
        assert Path(module.__file__).is_relative_to(ROOT)
    assert importlib.util.find_spec("envs") is None or "site-packages" not in str(
        importlib.util.find_spec("envs").origin
    )


def test_core_dependencies_are_only_the_light_ones():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]
    }
    assert names == {"gymnasium", "pydantic", "sympy", "jsonschema"}
    assert project["requires-python"] == ">=3.10"
