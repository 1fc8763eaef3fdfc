"""``import rlenv`` is light and has no side effects; seeds mean the same thing in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_PROBE = """
import json, logging, sys, threading
root_handlers = list(logging.getLogger().handlers)
threads = threading.active_count()
import rlenv
env = rlenv.make("rlenv/GuessNumber-v0")
heavy = sorted(m for m in ("torch", "transformers", "sympy", "trl") if m in sys.modules)
print(json.dumps({
    "heavy": heavy,
    "threads_added": threading.active_count() - threads,
    "root_handlers_changed": list(logging.getLogger().handlers) != root_handlers,
    "rlenv_handlers": len(logging.getLogger("rlenv").handlers),
}))
"""


def _run(code: str, *args: str, hashseed: str = "0") -> str:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


def test_import_is_light_and_side_effect_free():
    facts = json.loads(_run(_PROBE))
    assert facts == {
        "heavy": [],
        "threads_added": 0,
        "root_handlers_changed": False,
        "rlenv_handlers": 0,
    }


_FIRST_OBS = """
import json, sys, rlenv
env = rlenv.make(sys.argv[1])
print(json.dumps([[env.reset(seed=s)[0], env.task.model_dump(mode="json")] for s in range(5)]))
"""


def test_same_seed_same_first_observation_across_processes():
    for env_id in ("rlenv/GuessNumber-v0", "rlenv/Arithmetic-v0"):
        outputs = {_run(_FIRST_OBS, env_id, hashseed=seed) for seed in ("1", "2", "random")}
        assert len(outputs) == 1, env_id
        assert len(set(map(json.dumps, json.loads(outputs.pop())))) == 5  # seeds differ
