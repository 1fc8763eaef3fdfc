"""The code sandbox: attacks on the verdict must score 0, and hostile code must not harm the host.

Every test runs in every isolation tier this machine can run. Host-safety tests assert the
host's state afterwards (processes, files, sockets), not just the score.
"""

from __future__ import annotations

import os
import platform
import socket
import stat
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from rlenv.verifiers.code import Sandbox, run_io, run_tests
from rlenv.verifiers.code.sandbox import RUN_UID_BASE, _tier_works

TIERS = [tier for tier in ("bubblewrap", "namespaces", "rlimits") if _tier_works(tier)]


RUN_UIDS = {str(uid) for uid in range(RUN_UID_BASE, RUN_UID_BASE + 4096)}
ROOT = os.geteuid() == 0


@pytest.fixture(scope="module", params=TIERS)
def sandbox(request):
    box = Sandbox(request.param, workers=1)
    yield box
    box.close()


def _nobody_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
            state = next((line for line in status.splitlines() if line.startswith("State:")), "")
            if uid_line.split()[1:2] and uid_line.split()[1] in RUN_UIDS and "zombie" not in state:
                found.append(int(entry.name))
    return found


def _wait_no_nobody(timeout: float = 3.0) -> list[str]:
    """The processes of the unprivileged user still alive after ``timeout`` (described)."""
    deadline = time.monotonic() + timeout
    while (left := _nobody_processes()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [_describe(pid) for pid in left]


def _describe(pid: int) -> str:
    try:
        status = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if ":\t" in line
        )
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80].decode()
        parent = (
            Path(f"/proc/{status['PPid']}/cmdline").read_bytes().replace(b"\0", b" ")[:80].decode()
        )
    except (OSError, KeyError):
        return f"{pid} (gone)"
    return f"{pid} ns={status.get('NSpid')} state={status.get('State')} cmd={cmdline!r} parent={parent!r}"


ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(10, 5) == 15"
CHECK_TESTS = textwrap.dedent(
    """
    def check(candidate):
        assert candidate(2, 3) == 5
        assert candidate(-1, 1) == 0
        assert candidate(0, 0) == 0
    """
)


def test_a_correct_solution_passes_and_a_wrong_one_fails(sandbox):
    good = run_tests("def add(a, b):\n    return a + b\n", ADD_TESTS, sandbox=sandbox)
    assert (good.passed, good.reward, good.status, good.tests_passed) == (True, 1.0, "passed", 3)
    assert good.tier == sandbox.tier
    half_right = "def add(a, b):\n    return a + b if a > 0 else 99\n"
    bad = run_tests(half_right, ADD_TESTS, sandbox=sandbox)
    assert (bad.passed, bad.reward, bad.status, bad.tests_passed) == (False, 0.0, "failed", 2)
    assert [outcome.passed for outcome in bad.outcomes] == [True, False, True]
    partial = run_tests(half_right, ADD_TESTS, partial=True, sandbox=sandbox)
    assert partial.reward == pytest.approx(2 / 3)


def test_check_style_tests_with_an_entry_point(sandbox):
    result = run_tests(
        "def plus(a, b):\n    return a + b\n", CHECK_TESTS, entry_point="plus", sandbox=sandbox
    )
    assert result.passed and result.tests_total == 3
    missing = run_tests(
        "def other(a, b):\n    return a + b\n", CHECK_TESTS, entry_point="plus", sandbox=sandbox
    )
    assert missing.reward == 0.0 and "plus" in missing.error


def test_syntax_errors_and_import_errors_are_errors(sandbox):
    result = run_tests("def add(a, b)\n    return a + b\n", ADD_TESTS, sandbox=sandbox)
    assert result.status == "error" and "SyntaxError" in result.error and result.reward == 0.0
    result = run_tests("import numpy_does_not_exist\n", ADD_TESTS, sandbox=sandbox)
    assert result.status == "error" and result.reward == 0.0


# --------------------------------------------------------------------------- forging attacks

ATTACKS = {
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "sys.exit(0) during a test": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "os._exit(0) during a test": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "raise SystemExit in a test": "def add(a, b):\n    raise SystemExit(0)\n",
    "raise KeyboardInterrupt in a test": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "fake success output": (
        "print('3 passed, 0 failed')\nprint('{\"passed\": true, \"reward\": 1.0}')\n"
        "def add(a, b):\n    print('PASSED')\n    return None\n"
    ),
    "object whose __eq__ is always True": (
        "class Yes:\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return Yes()\n"
    ),
    "int subclass whose __eq__ is always True": (
        "class Yes(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Yes(0)\n"
    ),
    "monkeypatched builtins and unittest": (
        "import builtins, unittest\nbuiltins.AssertionError = type('Never', (Exception,), {})\n"
        "unittest.TestCase.assertEqual = lambda *a, **k: None\n"
        "builtins.__dict__['assert'] = None\ndef add(a, b):\n    return 0\n"
    ),
    "searching memory and frames for the tests": (
        "import gc, sys\nfound = [o for o in gc.get_objects() if isinstance(o, str) and 'add(2, 3)' in o]\n"
        "frames = []\nf = sys._getframe()\nwhile f:\n    frames.append(f.f_code.co_filename)\n    f = f.f_back\n"
        "def add(a, b):\n    return len(found) * 1000 + len(frames) * 1000\n"
    ),
    "closing and redirecting stdout": "import os, sys\nos.close(1)\nsys.stdout = None\ndef add(a, b):\n    return 0\n",
    "forged reply frames on the channel": (
        "import json, os, struct\n"
        "for message in ({'op': 'loaded', 'ok': True, 'callables': ['add'], 'values': {}}, "
        "{'value': 6}, {'value': 1}, {'value': 16}):\n"
        "    body = json.dumps(message).encode()\n"
        "    os.write(3, struct.pack('>I', len(body)) + body)\n"
        "def add(a, b):\n    return -1\n"
    ),
    "garbage on the channel": "import os\nos.write(3, b'\\xff' * 64)\ndef add(a, b):\n    return a + b\n",
    "killing every process it can see": (
        "import os, signal\nfor pid in os.listdir('/proc'):\n    if pid.isdigit() and int(pid) != os.getpid():\n"
        "        try:\n            os.kill(int(pid), signal.SIGKILL)\n        except OSError:\n            pass\n"
        "def add(a, b):\n    return 0\n"
    ),
    "a process that reports later": (
        "import os, time, json, struct\n"
        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(0.3)\n"
        "    body = json.dumps({'value': 5}).encode()\n"
        "    os.write(3, struct.pack('>I', len(body)) + body)\n    os._exit(0)\n"
        "def add(a, b):\n    return 0\n"
    ),
    "deleting files it can reach": (
        "import os, shutil\nfor root in ('/tmp', os.getcwd()):\n    shutil.rmtree(root, ignore_errors=True)\n"
        "def add(a, b):\n    return 0\n"
    ),
}


@pytest.mark.parametrize("code", ATTACKS.values(), ids=ATTACKS.keys())
def test_attacks_on_the_verdict_score_zero(sandbox, code):
    result = run_tests(code, ADD_TESTS, sandbox=sandbox, timeout=5)
    assert result.reward == 0.0 and not result.passed, result
    assert result.tests_passed < 3


def test_the_parent_survives_and_the_sandbox_keeps_working(sandbox):
    run_tests(ATTACKS["killing every process it can see"], ADD_TESTS, sandbox=sandbox)
    assert run_tests("def add(a, b):\n    return a + b\n", ADD_TESTS, sandbox=sandbox).passed


def test_a_worker_that_died_while_idle_is_replaced(sandbox):
    """A worker can die after the pool checked it was alive (seen once in CI as a
    BrokenPipeError): the run goes to a fresh worker instead of failing."""
    assert run_tests("def add(a, b):\n    return a + b\n", ADD_TESTS, sandbox=sandbox).passed
    (idle,) = sandbox._idle
    os.killpg(idle.process.pid, 9)
    idle.process.wait()
    idle.control.settimeout(10.0)
    while idle.control.recv(4096):  # until the worker's end of the control socket is closed
        pass
    idle.alive = lambda: True  # the race: it looked alive when it was checked out
    idle.settle = lambda timeout=15.0: True
    assert run_tests("def add(a, b):\n    return a + b\n", ADD_TESTS, sandbox=sandbox).passed
    assert sandbox._idle and sandbox._idle[0] is not idle


# --------------------------------------------------------------------------- host safety


@pytest.mark.skipif(not ROOT, reason="needs root to run the code as an unprivileged user")
def test_no_process_survives_a_run_however_it_daemonises(sandbox):
    code = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
        "            while True:\n                time.sleep(1)\n        os._exit(0)\n"
        "def add(a, b):\n    return a + b\n"
    )
    result = run_tests(code, ADD_TESTS, sandbox=sandbox)
    assert result.passed  # the code is right; its daemons are not our business...
    assert _wait_no_nobody() == []  # ...but they must all be dead now


@pytest.mark.skipif(not ROOT, reason="process limits do not bind root")
def test_fork_bomb(sandbox):
    code = "import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n"
    started = time.monotonic()
    result = run_tests(code, ADD_TESTS, sandbox=sandbox, timeout=2)
    assert result.reward == 0.0 and time.monotonic() - started < 10
    assert _wait_no_nobody() == []


def test_memory_bomb(sandbox):
    code = "def add(a, b):\n    blocks = []\n    while True:\n        blocks.append(bytearray(50 * 1024 * 1024))\n"
    result = run_tests(code, ADD_TESTS, sandbox=sandbox, memory_mb=256, timeout=5)
    assert result.reward == 0.0
    assert "MemoryError" in " ".join(
        outcome.message for outcome in result.outcomes
    ) or result.status in (
        "timeout",
        "failed",
    )


def test_infinite_loop_ignoring_sigterm_times_out(sandbox):
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ndef add(a, b):\n    while True:\n        pass\n"
    started = time.monotonic()
    result = run_tests(code, ADD_TESTS, sandbox=sandbox, timeout=1.5)
    elapsed = time.monotonic() - started
    assert result.status == "timeout" and result.reward == 0.0
    assert elapsed < 1.5 + 3.0
    assert _wait_no_nobody() == [] or not ROOT


def test_a_gigabyte_of_output_is_bounded(sandbox):
    code = "import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * (1024 * 1024))\ndef add(a, b):\n    return a + b\n"
    result = run_io(code, [{"input": "", "output": "x"}], sandbox=sandbox, timeout=3)
    assert len(result.stdout) <= 64 * 1024 and result.reward == 0.0


def test_no_network(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    code = (
        "import socket\ndef reach(port):\n"
        "    try:\n        s = socket.socket()\n        s.settimeout(1)\n"
        "        s.connect(('127.0.0.1', port))\n        s.sendall(b'escaped')\n        return True\n"
        "    except OSError:\n        return False\n"
    )
    result = run_tests(code, f"assert reach({port}) is False", sandbox=sandbox)
    try:
        connection, _ = listener.accept()
        got = connection.recv(16)
    except (TimeoutError, OSError):
        got = b""
    finally:
        listener.close()
    assert result.passed and got == b""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="seccomp filter arch")
def test_sockets_other_than_unix_and_io_uring_are_refused(sandbox):
    code = (
        "import ctypes, errno, socket\ndef probe():\n    out = []\n"
        "    for family in (socket.AF_INET, socket.AF_INET6, socket.AF_PACKET, socket.AF_NETLINK):\n"
        "        try:\n            socket.socket(family, socket.SOCK_DGRAM).close()\n            out.append('open')\n"
        "        except OSError as error:\n            out.append(error.errno)\n"
        "    socket.socketpair()  # AF_UNIX still works\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    out.append(libc.syscall(425, 1, 0) == -1 and ctypes.get_errno())  # io_uring_setup\n"
        "    return out\n"
    )
    result = run_tests(code, "assert probe() == [1, 1, 1, 1, 1]", sandbox=sandbox)
    assert result.passed, result


def test_nothing_outside_the_work_dir_can_be_written(sandbox, tmp_path):
    os.chmod(tmp_path, 0o755)
    canary = tmp_path / "canary.txt"
    canary.write_text("alive")
    code = (
        "import os, shutil\ndef attack(path):\n    hits = 0\n"
        "    for action in (lambda: os.remove(path), lambda: open(path, 'w').write('pwned'),\n"
        "                   lambda: shutil.rmtree(os.path.dirname(path)),\n"
        "                   lambda: open(os.path.join(os.path.dirname(path), 'new'), 'w').write('x')):\n"
        "        try:\n            action()\n            hits += 1\n        except OSError:\n            pass\n"
        "    return hits\n"
    )
    result = run_tests(code, f"assert attack({str(canary)!r}) == 0", sandbox=sandbox)
    assert canary.read_text() == "alive" and sorted(p.name for p in tmp_path.iterdir()) == [
        "canary.txt"
    ]
    if ROOT:
        assert result.passed


def test_the_parents_environment_is_not_visible(sandbox, monkeypatch):
    monkeypatch.setenv("RLENV_TEST_SECRET", "hunter2-secret")
    fresh = Sandbox(sandbox.tier, workers=1)  # started after the secret was set
    code = (
        "import os\ndef leak():\n    text = repr(dict(os.environ))\n"
        "    for pid in os.listdir('/proc'):\n        try:\n"
        "            text += open(f'/proc/{pid}/environ', errors='replace').read()\n"
        "        except OSError:\n            pass\n    return text\n"
    )
    try:
        result = run_tests(code, "assert 'hunter2' not in leak()", sandbox=fresh)
    finally:
        fresh.close()
    assert result.passed, result


@pytest.mark.skipif(not ROOT, reason="an unprivileged user is needed to keep runs apart")
def test_no_state_carries_from_one_run_to_the_next(sandbox):
    marker = f"/tmp/rlenv-state-{uuid.uuid4().hex}.txt"
    writer = (
        "import os\nopen('state.txt', 'w').write('leak')\n"
        f"try:\n    open({marker!r}, 'w').write('leak')\nexcept OSError:\n    pass\n"
        "import builtins\nbuiltins.LEAKED = 1\ndef f():\n    return 0\n"
    )
    reader = (
        "import os, builtins\ndef seen():\n"
        "    return [os.path.exists('state.txt'), hasattr(builtins, 'LEAKED'),\n"
        f"            os.path.exists({marker!r})]\n"
    )
    try:
        run_tests(writer, "assert f() == 0", sandbox=sandbox)
        # The rlimits tier shares /tmp between runs (documented); the others never do.
        expected = "[False, False, False]" if sandbox.tier != "rlimits" else "[False, False, True]"
        result = run_tests(reader, f"assert seen() == {expected}", sandbox=sandbox)
        assert result.passed, result
        assert Path(marker).exists() == (sandbox.tier == "rlimits")  # the host's /tmp untouched
    finally:
        Path(marker).unlink(missing_ok=True)


def test_the_standard_library_is_importable(sandbox):
    code = "import shutil, json, xml.dom.minidom, email.parser\ndef f():\n    return 1\n"
    assert run_tests(code, "assert f() == 1", sandbox=sandbox).passed or sandbox.tier == "rlimits"
    common = "import shutil, json, heapq, itertools, datetime\ndef f():\n    return 1\n"
    assert run_tests(common, "assert f() == 1", sandbox=sandbox).passed


def test_stdin_is_empty_and_io_programs_work(sandbox):
    echo = "import sys\ndata = sys.stdin.read()\nprint(len(data))\n"
    assert run_io(echo, [{"input": "", "output": "0"}], sandbox=sandbox).passed
    double = "n = int(input())\nprint(n * 2)\n"
    result = run_io(
        double,
        [{"input": "21\n", "output": "42\n"}, {"input": "1", "output": "3"}],
        sandbox=sandbox,
    )
    assert (result.tests_passed, result.tests_total, result.passed) == (1, 2, False)
    exiting = "import sys\nprint(42)\nsys.exit(0)\n"
    assert run_io(exiting, [{"input": "", "output": "42"}], sandbox=sandbox).passed


def test_runs_are_recorded_with_their_tier(sandbox):
    result = run_tests("def add(a, b):\n    return a + b\n", ADD_TESTS, sandbox=sandbox)
    assert result.tier == sandbox.tier
    assert (result.warning is not None) == (sandbox.tier == "rlimits")


def test_the_strongest_available_tier_is_chosen_here():
    from rlenv.verifiers.code import detect_tier

    assert detect_tier() == TIERS[0]


def test_work_dirs_are_removed(sandbox):
    root = Path(sandbox._work_root)
    run_tests(
        "open('x', 'w').write('1')\ndef f():\n    return 1\n", "assert f() == 1", sandbox=sandbox
    )
    assert list(root.iterdir()) == []
    assert stat.S_IMODE(root.stat().st_mode) == 0o711
    assert tempfile.gettempdir() in str(root)
