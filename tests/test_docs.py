"""The Python examples in the README and docs run as written (each file in one namespace), and
so do docs/server.md's curl examples, against a real server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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


_SHELL_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def _json_answers(text: str) -> list:
    """The JSON values curl printed one after another (its answers end without a newline)."""
    decoder, answers, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        value, index = decoder.raw_decode(text, index)
        answers.append(value)
    return answers


def test_the_server_docs_curl_examples_run_against_a_real_server():
    """docs/server.md's curl examples, run as written by bash, against a server this test starts
    on 127.0.0.1 (a free port stands in for localhost:8000) and stops when it ends."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed, and docs/server.md's shell examples are curl commands")
    help_text = subprocess.run([curl, "--help", "all"], capture_output=True, text=True).stdout
    if "--json" not in help_text:
        pytest.skip("this curl predates --json (curl 7.82), which the examples use")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from rlenv.server import serve_in_thread

    text = (ROOT / "docs" / "server.md").read_text()
    blocks = [block for block in _SHELL_BLOCK.findall(text) if "curl " in block]
    assert blocks, "docs/server.md has no curl examples"
    served = sorted(set(re.findall(r'"env_id": "([^"]+)"', "\n".join(blocks))))
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_PROXY": "*",  # loopback, never through a proxy
        "no_proxy": "*",
    }
    with serve_in_thread(served) as url:
        assert url.startswith("http://127.0.0.1:")
        for number, block in enumerate(blocks, start=1):
            assert "localhost:8000" in block
            script = "set -euo pipefail\n" + block.replace("localhost:8000", url[len("http://") :])
            result = subprocess.run(
                ["bash", "-c", script], capture_output=True, text=True, timeout=60, env=environment
            )
            where = f"docs/server.md, curl block {number}"
            assert result.returncode == 0, f"{where} failed: {result.stderr}{result.stdout}"
            answers = _json_answers(result.stdout)
            assert answers, f"{where} printed nothing"
            errors = [a for a in answers if isinstance(a, dict) and "error" in a]
            assert not errors, f"{where}: the server refused a request: {errors}"
            rewards = [a["reward"] for a in answers if isinstance(a, dict) and "reward" in a]
            assert rewards == [1.0] * len(rewards)  # the examples send the right answer
    assert rewards, "the curl examples should step or verify something"
