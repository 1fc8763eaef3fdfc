"""The HTML report (rlenv.report): loading a run, escaping hostile text, the size of a large
report, and the page itself in headless Chromium, driven over the DevTools protocol.

The browser tests need Chromium (Debian's ``chromium``; ``scripts/install-system-deps.sh``
installs it, ``RLENV_CHROMIUM`` names another binary) and the ``websockets`` package (in the dev
extra); they are skipped, saying so, where either is missing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import urllib.request
import zlib
from pathlib import Path

import pytest

from rlenv.errors import RLEnvError
from rlenv.evaluation import outcome_reason, passed, summarize
from rlenv.report import (
    RunFileError,
    default_report_path,
    html_report,
    html_report_compare,
    load_run,
    load_runs,
    run_labels,
)
from rlenv.rollout import ScriptedPolicy, episodes, rollout, write_trajectories
from rlenv.rollout.trajectory import Trajectory, TurnRecord
from rlenv.train.collect import demonstrations
from rlenv.verdict import Verdict

try:
    from websockets.sync.client import connect as _ws_connect
except ImportError:  # pragma: no cover - the dev extra installs it
    _ws_connect = None

HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
SYSTEM = "You are a careful calculator. Put your final answer in \\boxed{}."


def _episode(
    task: int,
    reward: float,
    *,
    answer: str = "\\boxed{4}",
    reason: str = "correct",
    error: str | None = None,
    parsed: object = "4",
    scored: bool = True,
    group: int = 0,
    env_id: str = "rlenv/Arithmetic-v0",
    task_id: str | None = None,
) -> Trajectory:
    """A one-turn episode built by hand (fast, and any text can be put anywhere)."""
    return Trajectory(
        env_id=env_id,
        task_id=f"task-{task}" if task_id is None else task_id,
        seed=task,
        group=group,
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Compute {task} + {task}. Answer in \\boxed{{}}."},
            {"role": "assistant", "content": answer},
        ],
        turns=[
            TurnRecord(
                reward=reward,
                verdict=Verdict(
                    reward=reward, reason=reason, error=error, parsed=parsed, scored=scored
                ),
                completion=answer,
                finish_reason="stop",
            )
        ],
        reward=reward,
        terminated=True,
        truncated=False,
        policy="scripted",
    )


def _right_on_every_third(conversation):
    """Arithmetic answers: right on every third call, else wrong or unparseable."""
    _right_on_every_third.calls = getattr(_right_on_every_third, "calls", 0) + 1
    a, op, b = conversation[-1]["content"].split("$")[1].split()
    value = {"+": int(a) + int(b), "-": int(a) - int(b), "\\times": int(a) * int(b)}[op]
    return [f"\\boxed{{{value}}}", f"\\boxed{{{value + 1}}}", "I am not sure."][
        _right_on_every_third.calls % 3
    ]


def _mixed_run() -> list[Trajectory]:
    """Real rollouts of three kinds: one-turn (groups of 3), tool calls (gold Calculator play),
    multi-turn with feedback (ArithmeticRetry), plus an unscored and a hostile episode."""
    trajectories = rollout(
        ScriptedPolicy(_right_on_every_third),
        episodes("rlenv/Arithmetic-v0", n_tasks=4, group_size=3, seed=1),
    )
    trajectories += demonstrations(episodes("rlenv/Calculator-v0", n_tasks=2, seed=1)).sampled
    trajectories += rollout(
        ScriptedPolicy(answers=["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"]),
        episodes("rlenv/ArithmeticRetry-v0", n_tasks=1, seed=1),
    )
    trajectories.append(_episode(90, 0.0, reason="verifier crashed", scored=False))
    trajectories.append(_episode(91, 0.0, answer=HOSTILE, reason="wrong", parsed=HOSTILE))
    return trajectories


# ----------------------------------------------------------------------------- loading


def _metrics_file(path: Path) -> Path:
    """What rlenv.train's trainers append to metrics.jsonl: one flat object per step."""
    rows = [
        {"step": 0, "eval_sampled_accuracy": 0.25, "eval_greedy_accuracy": 0.3},
        {
            "step": 1,
            "reward_mean": 0.5,
            "reward_std": 0.1,
            "loss": 0.02,
            "kl": None,
            "skipped": None,
            "time_step": 3.2,
        },
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_load_run_refuses_a_metrics_file_and_says_what_to_open(tmp_path):
    path = _metrics_file(tmp_path / "metrics.jsonl")
    with pytest.raises(RunFileError) as caught:
        load_run(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is a metrics file (training metrics, one line per step)")
    assert "curves.png" in message and "trajectories.jsonl" in message
    assert isinstance(caught.value, RLEnvError) and isinstance(caught.value, ValueError)


def test_load_run_reads_trajectories_and_names_what_else_is_wrong(tmp_path):
    trajectories = [_episode(1, 1.0), _episode(2, 0.0, reason="wrong")]
    write_trajectories(trajectories, tmp_path / "trajectories.jsonl")
    assert load_run(tmp_path / "trajectories.jsonl") == trajectories

    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "tasks.jsonl").write_text('{"prompt": "2+2?", "answer": "4"}\n')
    (tmp_path / "broken.jsonl").write_text(trajectories[0].to_json() + "\n{not json\n")
    cases = {
        "missing.jsonl": "no such file",
        "empty.jsonl": "holds no trajectories",
        "tasks.jsonl": "does not hold trajectories: its first record has answer, prompt",
        "broken.jsonl": "broken.jsonl:2: not a trajectory",
    }
    for name, expected in cases.items():
        with pytest.raises(RunFileError, match=re.escape(expected)):
            load_run(tmp_path / name)


def test_run_labels_and_report_paths_tell_runs_apart(tmp_path):
    assert run_labels(["a.jsonl", "b.jsonl"]) == ["a.jsonl", "b.jsonl"]
    assert run_labels(["before/trajectories.jsonl", "after/trajectories.jsonl"]) == [
        "before",
        "after",
    ]
    assert run_labels(["runs/a/out.jsonl", "runs/b/out.jsonl"]) == ["a", "b"]
    assert run_labels(["x/a.jsonl", "x/a.jsonl"])[0] != run_labels(["x/a.jsonl", "x/a.jsonl"])[1]
    assert default_report_path(["x/a.jsonl"]) == Path("x/a.html")
    assert default_report_path(["x/a.jsonl", "y/b.jsonl"]) == Path("x/compare.html")
    for name in ("before", "after"):
        (tmp_path / name).mkdir()
        write_trajectories([_episode(1, 1.0)], tmp_path / name / "trajectories.jsonl")
    runs = load_runs(
        [tmp_path / "before/trajectories.jsonl", tmp_path / "after/trajectories.jsonl"]
    )
    assert [label for label, _ in runs] == ["before", "after"]


# ----------------------------------------------------------------------------- the file


def _page_data(path: Path) -> dict:
    text = path.read_text()
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text)
    assert found, "the report's data block is missing"
    return json.loads(found.group(1))


def test_report_file_is_self_contained_and_hostile_text_cannot_close_its_script(tmp_path):
    trajectories = [
        *_mixed_run(),
        _episode(92, 0.0, task_id=HOSTILE, reason=HOSTILE, error=HOSTILE, env_id="x/<b>-v0"),
    ]
    path = html_report(summarize(trajectories), trajectories, tmp_path / "report.html")
    text = path.read_text()
    assert text.count("<script") == 2 and text.count("</script>") == 2  # data + the page's own
    assert "pwned" in text and "<img" not in text and "window.pwned=1</script>" not in text
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1" in text  # the failure reason, escaped
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", text), "an external resource"
    assert "@import" not in text and "url(" not in text
    data = _page_data(path)  # the JSON block holds the hostile text intact
    assert HOSTILE in data["strings"] and len(data["episodes"]) == len(trajectories)


def test_report_histogram_has_labelled_axes_and_tasks_carry_their_prompt(tmp_path):
    trajectories = _mixed_run()
    path = html_report(summarize(trajectories), trajectories, tmp_path / "report.html")
    svg = re.search(r"<svg class=\"hist\".*?</svg>", path.read_text(), re.S).group(0)
    assert ">episode reward</text>" in svg and ">episodes</text>" in svg
    data = _page_data(path)
    prompts = [data["strings"][task["p"]] for task in data["tasks"]]
    assert len(prompts) == summarize(trajectories).tasks
    assert all(prompt.strip() for prompt in prompts)
    assert "Compute" in prompts[0] and "\\boxed{}" in prompts[0]


def test_compare_report_matches_tasks_across_runs(tmp_path):
    before = [_episode(1, 0.0, reason="wrong"), _episode(2, 1.0), _episode(3, 1.0)]
    after = [_episode(1, 1.0), _episode(2, 0.0, reason="wrong"), _episode(4, 1.0)]
    path = html_report_compare([("before", before), ("after", after)], tmp_path / "c.html")
    data = _page_data(path)
    runs = {task["id"]: task["runs"] for task in data["tasks"]}
    assert runs == {
        "task-1": [[1, 0, 0.0], [1, 1, 1.0]],
        "task-2": [[1, 1, 1.0], [1, 0, 0.0]],
        "task-3": [[1, 1, 1.0], None],
        "task-4": [None, [1, 1, 1.0]],
    }
    assert data["runs"] == ["before", "after"]
    text = path.read_text()
    assert text.count('<svg class="hist"') == 2 and "<th>change</th>" in text


def _large_run(count: int) -> list[Trajectory]:
    """``count`` episodes: tasks of four samples with realistic, distinct completions."""
    trajectories = []
    for index in range(count):
        right = index % 3 == 0
        answer = (
            f"Let me work it out step by step. {index // 4} + {index // 4} is "
            f"{2 * (index // 4) + (0 if right else 1)}, so the answer is "
            f"\\boxed{{{2 * (index // 4) + (0 if right else 1)}}}. (sample {index})"
        )
        trajectories.append(
            _episode(
                index // 4,
                1.0 if right else 0.0,
                answer=answer,
                reason="correct" if right else "wrong",
                group=index % 4,
            )
        )
    return trajectories


def test_report_of_10000_episodes_stays_small_and_cuts_huge_messages(tmp_path):
    trajectories = _large_run(10_000)
    trajectories[5] = _episode(1, 0.0, answer="x" * 3_000_000, reason="too long")
    started = time.perf_counter()
    path = html_report(summarize(trajectories), trajectories, tmp_path / "report.html")
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    print(f"10,000 episodes: {size / 1e6:.2f} MB written in {seconds:.2f} s")  # measured only
    # ~170 characters of distinct text per episode; the page stores each text once, so it
    # stays under 0.6 kB per episode plus the first 20,000 characters of the huge message.
    assert size < 10_000 * 600 + 20_000 + 50_000
    data = _page_data(path)
    assert ["x" * 20_000, 2_980_000] in data["strings"]


def test_report_text_budget_keeps_every_episode_but_not_every_conversation(tmp_path):
    trajectories = _large_run(40)
    path = html_report(
        summarize(trajectories), trajectories, tmp_path / "r.html", max_text_chars=2_000
    )
    data = _page_data(path)
    kept = [episode["m"] is not None for episode in data["episodes"]]
    assert len(kept) == 40 and kept[0] and not kept[-1]
    assert all(episode["v"] for episode in data["episodes"])  # verdicts are always there
    assert "listed without their conversation" in path.read_text()


# ----------------------------------------------------------------------------- in Chromium


def _find_chromium() -> str | None:
    for name in (
        os.environ.get("RLENV_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ):
        found = name and shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or _ws_connect is None,
    reason="no Chromium found (Debian: apt-get install chromium, which "
    "scripts/install-system-deps.sh does; or set RLENV_CHROMIUM to a binary)"
    if CHROMIUM is None
    else "the websockets package is missing (pip install -e '.[dev]')",
)
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]


class _Page:
    """One browser tab over the DevTools protocol: calls, and the events that arrive meanwhile
    (console messages, uncaught exceptions, dialogs)."""

    def __init__(self, port: int) -> None:
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new", method="PUT")
        with no_proxy.open(request, timeout=30) as response:
            target = json.load(response)
        self.port, self.target = port, target["id"]
        options = {"max_size": None, "open_timeout": 30}
        self.stack = contextlib.ExitStack()
        try:
            connection = _ws_connect(target["webSocketDebuggerUrl"], proxy=None, **options)
        except TypeError:  # websockets < 15 has no proxy support to turn off
            connection = _ws_connect(target["webSocketDebuggerUrl"], **options)
        self.socket = self.stack.enter_context(connection)
        self.counter = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params) -> dict:
        self.counter += 1
        self.socket.send(json.dumps({"id": self.counter, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.counter:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path: Path, width: int = 1280, height: int = 900) -> float:
        """Load ``path`` and wait for the page's script to finish; returns the seconds taken."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        started = time.perf_counter()
        self.call("Page.navigate", url=path.resolve().as_uri())
        deadline = time.monotonic() + 60
        while not self.evaluate("document.body && document.body.dataset.ready === '1'"):
            assert time.monotonic() < deadline, f"the report never got ready: {self.errors()}"
            assert not self.errors(), self.errors()
            time.sleep(0.05)
        return time.perf_counter() - started

    def wait_for(self, expression: str, timeout: float = 30) -> None:
        """Until ``expression`` is true (an opened episode is drawn on its ``toggle`` event,
        which the browser fires a moment after the click)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"!!({expression})"):
            assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
            time.sleep(0.02)

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors, failed loads and dialogs seen so far."""
        self.call("Runtime.evaluate", expression="0")  # collect what is already queued
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url')}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
        return found

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first element matching ``selector``."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    def choose(self, select_id: str, value: str) -> None:
        """Pick an option of a ``<select>`` as a person would (value, then a change event)."""
        self.evaluate(
            f"(() => {{ const s = document.getElementById({json.dumps(select_id)});"
            f" s.value = {json.dumps(value)};"
            " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def visible_episodes(self) -> list[dict]:
        return self.evaluate(
            "[...document.querySelectorAll('#episodes details.ep')]"
            ".filter((d) => d.offsetParent !== null)"
            ".map((d) => ({id: d.id, reason: d.dataset.reason, outcome: d.dataset.outcome}))"
        )

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 6000),
                "scale": 1,
            }
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return path

    def close(self) -> None:
        self.stack.close()
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(f"http://127.0.0.1:{self.port}/json/close/{self.target}", timeout=10):
            pass


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A headless Chromium for this module, with a fresh profile; yields its DevTools port."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    try:
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None:
                pytest.fail(f"Chromium exited with code {process.returncode} at start")
            if time.monotonic() > deadline:
                pytest.fail("Chromium did not open its DevTools port within 60 s")
            time.sleep(0.05)
        yield int(port_file.read_text().split()[0])
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def page(chromium):
    tab = _Page(chromium)
    yield tab
    tab.close()


def _png_colours(data: bytes, limit: int = 50) -> int:
    """How many distinct pixels (up to ``limit``) an 8-bit RGB(A) PNG holds, decoded with zlib
    alone (no imaging library needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour_type = header[:4]
    assert depth == 8 and colour_type in (2, 6), f"unexpected PNG format {depth}/{colour_type}"
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    previous, seen = bytearray(stride), set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                a, b, c = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[i] = (
                    line[i] + (left if a <= b and a <= c else up if b <= c else corner)
                ) & 0xFF
        previous = line
        if row % 8 == 0:  # every eighth row is plenty to tell a page from a blank
            seen.update(bytes(line[i : i + channels]) for i in range(0, stride, channels * 4))
            if len(seen) >= limit:
                break
    return len(seen)


@needs_chromium
def test_report_in_chromium_loads_filters_and_draws(page, tmp_path):
    trajectories = _mixed_run()
    path = html_report(summarize(trajectories), trajectories, tmp_path / "report.html")
    page.open(path)
    assert page.errors() == []
    assert len(page.visible_episodes()) == len(trajectories)

    page.choose("f-outcome", "passed")
    shown = page.visible_episodes()
    assert len(shown) == sum(passed(t) for t in trajectories) > 0
    assert {episode["outcome"] for episode in shown} == {"passed"}

    # The failures table's "show" button for the commonest reason: a real click.
    failed = [outcome_reason(t) for t in trajectories if not passed(t)]
    commonest = max(set(failed), key=failed.count)
    reasons = page.evaluate(
        "JSON.parse(document.getElementById('report-data').textContent).reasons"
    )
    index = reasons.index(commonest)
    page.click(f"button.show-reason[data-reason='{index}']")
    shown = page.visible_episodes()
    assert len(shown) == failed.count(commonest) > 1
    assert {episode["reason"] for episode in shown} == {str(index)}
    assert page.evaluate("document.getElementById('f-reason').value") == str(index)

    # An example link opens its episode, drawn on demand, with each turn's verdict.
    page.click("#failures a[data-ep]")
    page.wait_for("document.querySelector('details.ep[open] .body')")
    opened = page.evaluate("[...document.querySelectorAll('details.ep[open]')].map(d => d.id)")
    assert len(opened) == 1
    body = page.evaluate(f"document.getElementById('{opened[0]}').innerText")
    assert "turn 1 verdict" in body and "reason:" in body and "USER" in body.upper()

    page.click("#f-clear")
    assert len(page.visible_episodes()) == len(trajectories)
    assert _png_colours(page.screenshot(tmp_path / "report.png").read_bytes()) > 10
    assert page.errors() == []


@needs_chromium
def test_episode_transcripts_show_tool_calls_and_every_turn(page, tmp_path):
    trajectories = _mixed_run()
    path = html_report(summarize(trajectories), trajectories, tmp_path / "report.html")
    page.open(path)
    for env_id, needle in (("rlenv/Calculator-v0", "→ calculate("), ("rlenv/ArithmeticRetry-v0",
                                                                       "turn 3 verdict")):  # fmt: skip
        index = next(i for i, t in enumerate(trajectories) if t.env_id == env_id)
        page.click(f"#ep-{index} > summary")
        page.wait_for(f"document.querySelector('#ep-{index} .body')")
        text = page.evaluate(f"document.getElementById('ep-{index}').innerText")
        assert needle in text, text
    unscored = len(trajectories) - 2
    page.click(f"#ep-{unscored} > summary")
    page.wait_for(f"document.querySelector('#ep-{unscored} .body')")
    assert "not scored" in page.evaluate(f"document.getElementById('ep-{unscored}').innerText")
    assert page.errors() == []


@needs_chromium
def test_hostile_model_output_renders_as_text_in_chromium(page, tmp_path):
    trajectories = [
        *_mixed_run(),
        _episode(92, 0.0, task_id=HOSTILE, reason=HOSTILE, error=HOSTILE, parsed=HOSTILE),
    ]
    trajectories[-1].messages.append(
        {"role": "tool", "content": HOSTILE, "name": HOSTILE, "tool_call_id": HOSTILE}
    )
    path = html_report(summarize(trajectories), trajectories, tmp_path / "report.html")
    page.open(path)
    page.evaluate("document.querySelectorAll('details.ep').forEach((d) => { d.open = true; })")
    page.wait_for(f"document.querySelectorAll('details.ep .body').length === {len(trajectories)}")
    assert page.evaluate("document.querySelectorAll('details.ep .body').length") == len(
        trajectories
    )
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("document.scripts.length") == 2
    texts = page.evaluate("[...document.querySelectorAll('pre')].map((p) => p.textContent)")
    assert HOSTILE in texts
    assert HOSTILE in page.evaluate("document.getElementById('failures').textContent")
    assert page.errors() == []


@needs_chromium
def test_compare_report_in_chromium_counts_changed_tasks(page, tmp_path):
    before = [_episode(t, 1.0 if t % 2 else 0.0, reason="correct" if t % 2 else "wrong")
              for t in range(10)]  # fmt: skip
    after = [_episode(t, 1.0 if t < 7 else 0.0, reason="correct" if t < 7 else "wrong")
             for t in range(10)]  # fmt: skip
    # before passes 1,3,5,7,9; after passes 0..6: improved 0,2,4,6; regressed 7,9
    path = html_report_compare([("before", before), ("after", after)], tmp_path / "c.html")
    page.open(path)
    assert page.errors() == []
    counts = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#changes span[id]')]"
        ".map((s) => [s.id, s.querySelector('b').textContent]))"
    )
    assert counts == {
        "count-improved": "4",
        "count-regressed": "2",
        "count-same": "4",
        "count-partial": "0",
    }
    page.choose("f-change", "regressed")
    rows = page.evaluate(
        "[...document.querySelectorAll('#tasks-body tr')].map((r) => [r.className, r.innerText])"
    )
    assert [row[0] for row in rows] == ["down", "down"] and "task-7" in rows[0][1] + rows[1][1]
    page.choose("f-run", "1")
    assert len(page.visible_episodes()) == 10
    assert _png_colours(page.screenshot(tmp_path / "compare.png").read_bytes()) > 10
    assert page.errors() == []


@needs_chromium
def test_10000_episode_report_opens_in_chromium(page, tmp_path):
    trajectories = _large_run(10_000)
    path = html_report(summarize(trajectories), trajectories, tmp_path / "big.html")
    seconds = page.open(path)
    print(f"10,000-episode report ready in Chromium in {seconds:.2f} s")  # measured only
    assert len(page.visible_episodes()) == 200  # drawn a page at a time
    assert "of 10,000 matching episodes" in page.evaluate(
        "document.getElementById('ep-status').textContent"
    )
    page.choose("f-outcome", "passed")
    assert "of 3,334 matching" in page.evaluate("document.getElementById('ep-status').textContent")
    page.click("#ep-more")
    assert len(page.visible_episodes()) == 400
    assert page.errors() == []
