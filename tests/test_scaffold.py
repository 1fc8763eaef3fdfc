"""``rlenv new``: a scaffolded package installs, is discovered through its entry point, and
passes ``rlenv check`` and its own tests, as generated; bad names and overwrites are refused.

Each package is scaffolded and installed once per module (``pip install --target``, no network),
then driven in fresh processes whose ``PYTHONPATH`` holds the install target. The src layout is
checked the way a user meets it: ``pip install -e`` into a fresh virtual environment, then a
script run from the folder where ``rlenv new`` ran.
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


KINDS = {"single-turn": {}, "multi-turn": {"multi_turn": True}, "tools": {"tools": True}}


@pytest.fixture(
    scope="module",
    params=[("word-games", "single-turn"), ("hidden_word", "multi-turn"), ("tool_box", "tools")],
    ids=["single-turn", "multi-turn", "tools"],
)
def installed(request, tmp_path_factory) -> InstalledPackage:
    name, kind = request.param
    root = tmp_path_factory.mktemp("scaffold")
    package = scaffold(name, root / "projects", **KINDS[kind])
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


def test_gymnasium_reaches_the_package_with_its_module_prefix(installed):
    module = installed.name.replace("-", "_")
    code = (
        "import gymnasium\n"
        f"env = gymnasium.make({module + ':' + installed.env_id!r})\n"  # no rlenv call first
        "observation, info = env.reset(seed=0)\n"
        "print(env.spec.id, observation[-1]['role'])\n"
    )
    result = installed.python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [installed.env_id, "user"]


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
    assert "skipped" not in result.stdout


def _editable_venv(root: Path, package: Path) -> Path:
    """A fresh virtual environment that sees this one's packages (rlenv, pip, setuptools) and
    holds ``package`` installed in editable mode, as its README says; returns its python."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    paths = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ours = subprocess.run([sys.executable, "-c", paths], capture_output=True, text=True).stdout
    theirs = subprocess.run([str(python), "-c", paths], capture_output=True, text=True).stdout
    # addsitedir (not a bare path) so that this environment's own .pth files, rlenv's
    # editable install among them, are processed too.
    link = f"import site; site.addsitedir({ours.strip()!r})\n"
    (Path(theirs.strip()) / "_parent_env.pth").write_text(link)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    pip += ["--no-deps", "--no-build-isolation", "--no-index", "--editable", str(package)]
    result = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return python


def test_a_script_beside_the_project_imports_the_editable_install(tmp_path):
    # `rlenv new my_envs` makes the folder my_envs/, named like the package: from the folder
    # where `rlenv new` ran, Python must still import the installed package, not the folder.
    projects = tmp_path / "projects"
    package = scaffold("my_envs", projects, multi_turn=True)
    python = _editable_venv(tmp_path, package)
    script = projects / "make_it.py"
    script.write_text(
        "import my_envs\n"
        "import rlenv\n"
        "print(my_envs.__file__)\n"
        "env = rlenv.make(my_envs.ENV_ID)\n"
        "env.reset(seed=0)\n"
        "print(env.spec.id)\n"
    )
    result = subprocess.run(
        [str(python), script.name], cwd=projects, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    module_file, env_id = result.stdout.split()
    assert Path(module_file) == package / "src" / "my_envs" / "__init__.py"
    assert env_id == env_id_for("my_envs")


# ------------------------------------------------------------------------------ what is generated


def test_generated_layout_and_entry_point(tmp_path):
    tomllib = pytest.importorskip("tomllib")
    package = scaffold("word-games", tmp_path)
    assert package == tmp_path / "word-games"
    files = {str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()}
    assert files == {
        "pyproject.toml",
        "README.md",
        "src/word_games/__init__.py",
        "src/word_games/env.py",
        "tests/test_env.py",
    }
    pyproject = tomllib.loads((package / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"][0].startswith("rlenv")
    assert pyproject["project"]["entry-points"]["rlenv.envs"] == {
        "word-games": "word_games:register"
    }
    assert pyproject["tool"]["setuptools"]["packages"]["find"] == {"where": ["src"]}
    init = (package / "src" / "word_games" / "__init__.py").read_text()
    assert 'ENV_ID = "word_games/WordGames-v0"' in init
    assert 'rlenv.register(ENV_ID, "word_games.env:WordGames")' in init
    env_py = (package / "src" / "word_games" / "env.py").read_text()
    assert "class WordGames(rlenv.TextEnv):" in env_py and "def verify(" in env_py
    readme = (package / "README.md").read_text()
    for command in ("pip install -e .", "rlenv check word_games/WordGames-v0", "pytest"):
        assert command in readme
    assert "src/word_games/env.py" in readme


def test_multi_turn_env_overrides_respond(tmp_path):
    package = scaffold("hidden_word", tmp_path, multi_turn=True)
    env_py = (package / "src" / "hidden_word" / "env.py").read_text()
    assert "def respond(" in env_py and "def verify(" not in env_py
    assert "rlenv.Turn.reply(" in env_py and "rlenv.Turn.end(" in env_py


def test_tools_env_is_a_tool_env_with_a_multi_turn_gold_action(tmp_path):
    package = scaffold("tool_box", tmp_path, tools=True)
    env_py = (package / "src" / "tool_box" / "env.py").read_text()
    assert "class ToolBox(ToolEnv):" in env_py and "@tool(" in env_py
    assert "def gold_action(" in env_py and "self.trace" in env_py
    assert "match_calls(" in env_py and "def grade(" in env_py
    assert "tool-calling" in (package / "README.md").read_text()
    tests = (package / "tests" / "test_env.py").read_text()
    assert "check_env(ENV_ID)" in tests and '"skip"' in tests


def test_the_tools_env_plays_its_gold_episode_in_this_process(tmp_path, monkeypatch, request):
    package = scaffold("tool_box", tmp_path, tools=True)
    monkeypatch.syspath_prepend(str(package / "src"))
    request.addfinalizer(lambda: [sys.modules.pop(m, None) for m in ("tool_box", "tool_box.env")])
    from tool_box.env import ToolBox

    from rlenv.testing import check_env

    report = check_env(ToolBox(), cross_process=False)
    gold = next(result for result in report.results if result.name == "gold answer")
    assert gold.status == "pass", report
    env = ToolBox()
    env.reset(seed=3)
    rewards, done = [], False
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.gold_action())
        rewards.append(reward)
        done = terminated or truncated
    items = env.task.metadata["items"]
    assert rewards == [0.0] * len(items) + [1.0] and terminated
    assert [outcome.arguments["item"] for outcome in env.trace] == items


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generated_code_is_lint_clean_and_formatted(tmp_path, kind):
    if not RUFF.exists():
        pytest.skip("ruff is not installed next to this Python")
    package = scaffold("my_envs", tmp_path, **KINDS[kind])
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
    assert (tmp_path / "my_envs" / "src" / "my_envs" / "env.py").is_file()
    assert "pip install -e ." in out and "rlenv check my_envs/MyEnvs-v0" in out
