"""``rlenv new``: a scaffolded package installs, is discovered through its entry point, and
passes ``rlenv check`` and its own tests, as generated; bad names and overwrites are refused.

Each package is scaffolded and installed once per module (``pip install --target``, no network),
then driven in fresh processes whose ``PYTHONPATH`` holds the install target.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import rlenv
from rlenv.cli import main
from rlenv.scaffold import (
    InvalidNameError,
    TargetExistsError,
    class_name,
    env_id_for,
    module_name,
    scaffold,
)

RUFF = Path(sys.executable).parent / "ruff"


@dataclass
class InstalledPackage:
    name: str
    package: Path
    site: Path
    workdir: Path

    @property
    def env_id(self) -> str:
        return env_id_for(self.name)

    def python(self, *args: str) -> subprocess.CompletedProcess:
        """Run Python in a fresh process that sees the installed package (and nothing else)."""
        pythonpath = os.pathsep.join(filter(None, [str(self.site), os.environ.get("PYTHONPATH")]))
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.workdir,  # not the package folder: imports must come from the install
            env={**os.environ, "PYTHONPATH": pythonpath},
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture(
    scope="module",
    params=[("word-games", False), ("hidden_word", True)],
    ids=["single-turn", "multi-turn"],
)
def installed(request, tmp_path_factory) -> InstalledPackage:
    name, multi_turn = request.param
    root = tmp_path_factory.mktemp("scaffold")
    package = scaffold(name, root / "projects", multi_turn=multi_turn)
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    pip += ["--no-deps", "--no-build-isolation", "--no-index", "--target", str(site)]
    result = subprocess.run([*pip, str(package)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    workdir = root / "work"
    workdir.mkdir()
    return InstalledPackage(name, package, site, workdir)


# ------------------------------------------------------------------ the contribution path


def test_the_installed_package_is_discovered_through_its_entry_point(installed):
    assert installed.env_id not in rlenv.list_envs()  # this process has not installed it
    result = installed.python("-c", "import rlenv; print(rlenv.list_envs())")
    assert result.returncode == 0, result.stderr
    assert repr(installed.env_id) in result.stdout
    assert "rlenv/Arithmetic-v0" in result.stdout


def test_rlenv_check_passes_on_the_generated_env(installed):
    result = installed.python("-m", "rlenv.cli", "check", installed.env_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{installed.env_id}: passed" in result.stdout
    assert "PASS  cross-process determinism" in result.stdout
    assert "PASS  gold answer" in result.stdout


def test_the_generated_tests_pass(installed):
    tests = installed.package / "tests"
    result = installed.python("-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" not in result.stdout  # the suite is more than the conformance test
    assert " passed" in result.stdout and "failed" not in result.stdout


# ------------------------------------------------------------------------------ what is generated


def test_generated_layout_and_entry_point(tmp_path):
    tomllib = pytest.importorskip("tomllib")
    package = scaffold("word-games", tmp_path)
    assert package == tmp_path / "word-games"
    files = {str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()}
    assert files == {
        "pyproject.toml",
        "README.md",
        "word_games/__init__.py",
        "word_games/env.py",
        "tests/test_env.py",
    }
    pyproject = tomllib.loads((package / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"][0].startswith("rlenv")
    assert pyproject["project"]["entry-points"]["rlenv.envs"] == {
        "word-games": "word_games:register"
    }
    init = (package / "word_games" / "__init__.py").read_text()
    assert 'ENV_ID = "word_games/WordGames-v0"' in init
    assert 'rlenv.register(ENV_ID, "word_games.env:WordGames")' in init
    env_py = (package / "word_games" / "env.py").read_text()
    assert "class WordGames(rlenv.TextEnv):" in env_py and "def verify(" in env_py
    readme = (package / "README.md").read_text()
    for command in ("pip install -e .", "rlenv check word_games/WordGames-v0", "pytest"):
        assert command in readme


def test_multi_turn_env_overrides_respond(tmp_path):
    env_py = (
        scaffold("hidden_word", tmp_path, multi_turn=True) / "hidden_word" / "env.py"
    ).read_text()
    assert "def respond(" in env_py and "def verify(" not in env_py
    assert "rlenv.Turn.reply(" in env_py and "rlenv.Turn.end(" in env_py


@pytest.mark.parametrize("multi_turn", [False, True])
def test_generated_code_is_lint_clean_and_formatted(tmp_path, multi_turn):
    if not RUFF.exists():
        pytest.skip("ruff is not installed next to this Python")
    package = scaffold("my_envs", tmp_path, multi_turn=multi_turn)
    rules = "E,F,W,I,UP,B,SIM,RUF"
    lint = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--select", rules, str(package)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(
        [str(RUFF), "format", "--check", "--no-cache", str(package)], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout


def test_names():
    assert module_name("word-games") == "word_games"
    assert class_name("word-games") == "WordGames"
    assert class_name("my_envs2") == "MyEnvs2"
    assert env_id_for("hidden_word") == "hidden_word/HiddenWord-v0"


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "name",
    ["", "MyEnvs", "1envs", "_envs", "my envs", "my.envs", "a/b", "café", "class", "json", "rlenv"],
)
def test_invalid_names_are_rejected(tmp_path, capsys, name):
    with pytest.raises(InvalidNameError):
        scaffold(name, tmp_path)
    assert main(["new", name, "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("rlenv: error: ")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_non_empty_directory(tmp_path, capsys):
    existing = tmp_path / "my_envs"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(TargetExistsError, match="already exists and is not empty"):
        scaffold("my_envs", tmp_path)
    assert main(["new", "my_envs", "--dir", str(tmp_path)]) == 1
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert (existing / "keep.txt").read_text() == "mine"

    (tmp_path / "a_file").write_text("")
    with pytest.raises(TargetExistsError):
        scaffold("a_file", tmp_path)


def test_new_fills_an_empty_directory_and_prints_next_steps(tmp_path, capsys):
    (tmp_path / "my_envs").mkdir()
    assert main(["new", "my_envs", "--dir", str(tmp_path), "--multi-turn"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "my_envs" / "my_envs" / "env.py").is_file()
    assert "pip install -e ." in out and "rlenv check my_envs/MyEnvs-v0" in out
