"""The Python examples in the README and docs run as written (each file in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _policy(observation):
    """Stands in for `my_model` in the examples: always guesses 50."""
    return "50"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_python_examples_run(path, capsys):
    blocks = _BLOCK.findall(path.read_text())
    assert blocks or path.name != "README.md", f"{path.name} has no python examples"
    namespace = {"__name__": f"docs_{path.stem}", "my_model": _policy}
    for number, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"{path.name}[block {number}]", "exec"), namespace)
        except Exception as error:
            pytest.fail(
                f"{path.name}, python block {number} failed: {type(error).__name__}: {error}"
            )


def test_readme_starts_with_exactly_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:2] == ["    make demo", "    make test"]
    assert lines[2] == ""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_example_env_is_under_30_lines():
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in _BLOCK.findall(readme) if "class ReverseWord" in b)
    assert len(block.strip().splitlines()) < 30


def test_every_file_the_contributing_guide_names_exists():
    """Documents and repository paths it names (it once sent readers to a STYLE.md that was
    not in the repo); bare module names such as Gymnasium's ``core.py`` are not paths here."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    named = set(re.findall(r"`([\w./-]+\.md)`", text)) | set(re.findall(r"\]\(([\w./-]+)\)", text))
    named |= {path for path in re.findall(r"`([\w.-]+/[\w./-]+)`", text) if "." in path}
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"CONTRIBUTING.md names files that are not in the repo: {missing}"
