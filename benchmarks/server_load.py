"""Load test of ``rlenv serve`` on loopback: throughput, latency, malformed input, client overhead.

Starts ``rlenv serve rlenv/Arithmetic-v0`` in its own process on 127.0.0.1 (a free port), then:

1. **load**: ``--clients`` concurrent clients (threads, spread over ``--client-processes``
   processes, each with its own keep-alive ``http.client`` connection and session) loop
   reset + step for ``--seconds``. Reported: step requests/s (and all requests/s), p50/p99
   step latency, errors (any non-2xx or exception), lost sessions (a 404 for a session that
   was open). Goal: >= 1,000 step requests/s with 64 clients, p99 < 100 ms, zero errors.
2. **malformed**: ``--malformed`` requests (bad JSON, unknown sessions, declared and streamed
   bodies over the limit, wrong types, deep nesting, wrong methods), from 16 threads; every
   one must get a 4xx, and afterwards ``/health`` must be ok and an episode must still play.
3. **overhead**: one client, one episode after another: ``RemoteEnv`` against ``rlenv.make``
   in-process, per episode (reset + step) and per HTTP request.

``--mode long`` instead measures long episodes over the wire: one ``RemoteEnv`` plays a
``--turns``-turn episode of an echo env (a short reply per turn) with the whole conversation in
every answer (``delta=False``, as before) and with only the new messages (``delta=True``),
interleaved over ``--rounds`` rounds; reported per mode: answer bytes per step and steps/s at
turn 10 (turns 1-20) and at the last turn (its last 20 turns), medians, and the in-process env's
steps/s over the same windows for reference.

``--mode openenv`` instead measures ``rlenv serve`` against OpenEnv's own app (openenv-core's
``create_app`` through ``rlenv.adapters.openenv``) serving the same env, both up at once, with
``--peer-clients`` clients (16 and 64), ``--rounds`` rounds of ``--seconds`` each taking turns
first: steps/s, p50/p99 step latency, server and client CPU per episode. Each is driven by its
own protocol: keep-alive HTTP with ``http.client`` (as ``RemoteEnv``) and OpenEnv's ``/ws``
WebSocket with ``websockets``' sync client.

Every request goes to 127.0.0.1 only, and every loop is bounded in time or count. Usage::

    python benchmarks/server_load.py [--seconds 60] [--clients 64] [--client-processes 1]
    python benchmarks/server_load.py --mode long [--turns 1000] [--rounds 3]
    python benchmarks/server_load.py --mode openenv [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rlenv
from rlenv.remote import RemoteEnv

ENV_ID = "rlenv/Arithmetic-v0"
ANSWER = "The answer is \\boxed{42}."
MAX_BODY = 2 * 1024 * 1024  # the server's default limit


# ------------------------------------------------------------------------------ the server


def start_server(
    threads: int, echo: bool = False, openenv: bool = False
) -> tuple[subprocess.Popen, str]:
    """``rlenv serve`` in a child process (``echo``: this file's echo env, served the same
    way after registering it); returns it and its base URL."""
    command = [
        sys.executable, "-m", "rlenv.cli", "serve", ENV_ID, "--port", "0",
        "--max-sessions", "4096", "--threads", str(threads),
    ]  # fmt: skip
    if echo:
        command = [sys.executable, __file__, "--serve-echo", "--threads", str(threads)]
    if openenv:
        command = [sys.executable, __file__, "--serve-openenv"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    line = server.stdout.readline().decode()
    if "serving" not in line:
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    url = line.split(" at ", 1)[1].split()[0]
    return server, url


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def call(
    connection: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> tuple[int, dict]:
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    return response.status, (json.loads(data) if data else {})


# ------------------------------------------------------------------------------ 1. load


def client_loop(url: str, deadline: float, offset: int, out: dict) -> None:
    """One client: a session, then reset + step until ``deadline``."""
    connection = http.client.HTTPConnection(*host_port(url), timeout=30)
    latencies, errors, lost = [], Counter(), 0
    resets = steps = 0
    try:
        status, body = call(connection, "POST", "/sessions", {"env_id": ENV_ID})
        if status != 200:
            errors[f"create {status}"] += 1
            return
        path = f"/sessions/{body['session_id']}"
        seed = offset
        while time.perf_counter() < deadline:
            status, body = call(connection, "POST", path + "/reset", {"seed": seed})
            resets += 1
            if status != 200:
                errors[f"reset {status}"] += 1
                lost += status == 404
                break
            start = time.perf_counter()
            status, body = call(connection, "POST", path + "/step", {"action": ANSWER})
            latencies.append(time.perf_counter() - start)
            steps += 1
            if status != 200 or "reward" not in body:
                errors[f"step {status}"] += 1
                lost += status == 404
                break
            seed += 1
        status, _ = call(connection, "DELETE", path)
        if status != 200:
            errors[f"delete {status}"] += 1
    except Exception as error:
        errors[f"{type(error).__name__}"] += 1
    finally:
        connection.close()
        out.setdefault("latencies", []).extend(latencies)
        out.setdefault("errors", Counter()).update(errors)
        out["lost"] = out.get("lost", 0) + lost
        out["resets"] = out.get("resets", 0) + resets
        out["steps"] = out.get("steps", 0) + steps


def openenv_client_loop(url: str, deadline: float, offset: int, out: dict) -> None:
    """One OpenEnv client: a ``/ws`` session (OpenEnv's episodes live on its WebSocket), then
    reset + step messages until ``deadline``; measured as :func:`client_loop` measures."""
    from websockets.sync.client import connect

    latencies, errors = [], Counter()
    resets = steps = 0
    try:
        with connect(url.replace("http://", "ws://") + "/ws", max_size=None) as ws:
            seed = offset
            while time.perf_counter() < deadline:
                ws.send(json.dumps({"type": "reset", "data": {"seed": seed}}))
                answer = json.loads(ws.recv())
                resets += 1
                if answer.get("type") != "observation":
                    errors["reset " + str(answer.get("type"))] += 1
                    break
                start = time.perf_counter()
                ws.send(json.dumps({"type": "step", "data": {"text": ANSWER}}))
                answer = json.loads(ws.recv())
                latencies.append(time.perf_counter() - start)
                steps += 1
                if answer.get("type") != "observation" or "reward" not in answer["data"]:
                    errors["step " + str(answer.get("type"))] += 1
                    break
                seed += 1
            ws.send(json.dumps({"type": "close"}))
    except Exception as error:
        errors[f"{type(error).__name__}"] += 1
    finally:
        out.setdefault("latencies", []).extend(latencies)
        out.setdefault("errors", Counter()).update(errors)
        out["resets"] = out.get("resets", 0) + resets
        out["steps"] = out.get("steps", 0) + steps


LOOPS = {"rlenv": client_loop, "openenv": openenv_client_loop}


def client_process(
    url: str, clients: int, start_at: float, seconds: float, first: int, queue, kind="rlenv"
):
    """``clients`` client threads in this process, starting at wall-clock ``start_at``; puts
    their merged results on ``queue``."""
    time.sleep(max(0.0, start_at - time.time()))
    deadline = time.perf_counter() + seconds
    results = [{} for _ in range(clients)]
    loop = LOOPS[kind]
    threads = [
        threading.Thread(target=loop, args=(url, deadline, (first + i) * 10**6, out))
        for i, out in enumerate(results)
    ]
    for thread in threads:
        thread.start()
    cpu = time.process_time()
    for thread in threads:
        thread.join()
    merged = _merge(results)
    merged["client_cpu"] = time.process_time() - cpu  # this process's clients, all threads
    queue.put(merged)


def _merge(results: list[dict]) -> dict:
    merged: dict = {
        "latencies": [], "errors": Counter(), "lost": 0, "resets": 0, "steps": 0, "client_cpu": 0.0
    }  # fmt: skip
    for result in results:
        merged["latencies"].extend(result.get("latencies", []))
        merged["errors"].update(result.get("errors", Counter()))
        for key in ("lost", "resets", "steps", "client_cpu"):
            merged[key] += result.get(key, 0)
    return merged


def load(url: str, clients: int, processes: int, seconds: float, kind: str = "rlenv") -> dict:
    """Run the clients in ``processes`` processes (so the client side is not one GIL)."""
    start_at = time.time() + 1.0  # every process starts its clients at the same moment
    queue = multiprocessing.Queue()
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    workers, first = [], 0
    for share in shares:
        worker = multiprocessing.Process(
            target=client_process, args=(url, share, start_at, seconds, first, queue, kind)
        )
        worker.start()
        workers.append(worker)
        first += share
    results = [queue.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    merged = _merge(results)
    merged["seconds"] = seconds
    return merged


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ------------------------------------------------------------------------------ 2. malformed


def _bad_requests(session_path: str) -> list[tuple[str, str, bytes | None, dict]]:
    """(kind, method, path, body, headers) variants; each must get a 4xx."""
    json_headers = {"Content-Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    return [
        ("bad json", "POST", "/sessions", b"{not json", json_headers),
        ("bad json", "POST", session_path + "/step", b'{"action": "x"', json_headers),
        ("bad json", "POST", "/verify", b"\xff\xfe\x00garbage", json_headers),
        ("unknown session", "POST", "/sessions/nope/step", b'{"action": "x"}', json_headers),
        ("unknown session", "POST", "/sessions/" + "A" * 32 + "/reset", b"{}", json_headers),
        ("unknown session", "DELETE", "/sessions/does-not-exist", None, {}),
        ("wrong types", "POST", session_path + "/step", b'{"action": 5}', json_headers),
        ("wrong types", "POST", session_path + "/step", b'{"action": ["x"]}', json_headers),
        ("wrong types", "POST", session_path + "/reset", b'{"seed": "zero"}', json_headers),
        ("wrong types", "POST", session_path + "/reset", b'{"seed": -1}', json_headers),
        ("wrong types", "POST", "/sessions", b'{"env_id": 3}', json_headers),
        ("wrong types", "POST", "/sessions", b"[]", json_headers),
        ("wrong types", "POST", "/sessions", b"null", json_headers),
        ("wrong types", "POST", "/verify", b'{"env_id": "rlenv/Arithmetic-v0"}', json_headers),
        ("wrong types", "POST", session_path + "/step", deep, json_headers),
        ("not served", "POST", "/sessions", b'{"env_id": "rlenv/Bank-v0"}', json_headers),
        ("wrong method", "GET", session_path + "/step", None, {}),
        ("no route", "GET", "/../../etc/passwd", None, {}),
    ]


def _declared_huge(url: str) -> int:
    """Headers announcing 100 MB, a little body, then read the answer (413 expected)."""
    connection = http.client.HTTPConnection(*host_port(url), timeout=30)
    try:
        connection.putrequest("POST", "/sessions")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(100 * 1024 * 1024))
        connection.endheaders(b'{"env_id": "' + b"x" * 1000)
        return connection.getresponse().status
    finally:
        connection.close()


def _streamed_huge(url: str, session_path: str) -> int:
    """A chunked body (no Content-Length) just over the limit (413 expected)."""
    chunk = b"x" * 65536
    total = MAX_BODY + len(chunk)
    connection = http.client.HTTPConnection(*host_port(url), timeout=30)
    try:
        body = (chunk for _ in range(total // len(chunk)))
        # The server may answer and close before the last chunk: then read its answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(
                "POST", session_path + "/step", body=body, encode_chunked=True,
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
        return connection.getresponse().status
    finally:
        connection.close()


def malformed(url: str, total: int) -> Counter:
    """``total`` malformed requests from 16 threads; returns status counts by kind."""
    setup = http.client.HTTPConnection(*host_port(url), timeout=30)
    _, body = call(setup, "POST", "/sessions", {"env_id": ENV_ID})
    session_path = f"/sessions/{body['session_id']}"
    call(setup, "POST", session_path + "/reset", {"seed": 0})
    variants = _bad_requests(session_path)
    # Bodies over the limit are 1 in 8, and the costly streamed ones 1 in 80.
    plan = []
    for index in range(total):
        if index % 80 == 7:
            plan.append(("huge body, streamed", None))
        elif index % 8 == 3:
            plan.append(("huge body, declared", None))
        else:
            variant = variants[index % len(variants)]
            plan.append((variant[0], variant))
    local = threading.local()
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def send(item) -> None:
        kind, variant = item
        try:
            if kind == "huge body, declared":
                status = _declared_huge(url)
            elif kind == "huge body, streamed":
                status = _streamed_huge(url, session_path)
            else:
                if not hasattr(local, "connection"):
                    local.connection = http.client.HTTPConnection(*host_port(url), timeout=30)
                _, method, path, payload, headers = variant
                local.connection.request(method, path, body=payload, headers=headers)
                response = local.connection.getresponse()
                response.read()
                status = response.status
            outcome = f"{status}"
        except Exception as error:
            outcome = f"{type(error).__name__}"
            local.__dict__.pop("connection", None)
        with lock:
            outcomes[(kind, outcome)] += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, plan))
    setup.close()
    return outcomes


def still_healthy(url: str) -> bool:
    connection = http.client.HTTPConnection(*host_port(url), timeout=30)
    status, body = call(connection, "GET", "/health")
    ok = status == 200 and body.get("status") == "ok"
    env = RemoteEnv(url, ENV_ID)
    env.reset(seed=0)
    ok = ok and env.step(_gold(0))[1] == 1.0
    env.close()
    connection.close()
    return ok


def _gold(seed: int) -> str:
    env = rlenv.make(ENV_ID)
    env.reset(seed=seed)
    return env.gold_action()


# ------------------------------------------------------------------------------ 3. overhead


def overhead(url: str, episodes: int, rounds: int = 5) -> tuple[float, float]:
    """Median µs per episode (reset + step) with RemoteEnv and with the env in-process."""
    remote, local = RemoteEnv(url, ENV_ID), rlenv.make(ENV_ID)

    def run(env) -> float:
        start = time.perf_counter()
        for seed in range(episodes):
            env.reset(seed=seed)
            env.step(ANSWER)
        return (time.perf_counter() - start) / episodes * 1e6

    run(remote), run(local)  # warm-up
    remote_us = statistics.median(run(remote) for _ in range(rounds))
    local_us = statistics.median(run(local) for _ in range(rounds))
    remote.close()
    return remote_us, local_us


# ------------------------------------------------------------------------------ 4. long episodes

ECHO_ID = "bench/Echo-v0"
WINDOW = 20  # steps per measured window


def _echo_class():
    from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict

    class Echo(TextEnv):
        """A reply of a few words per turn, up to 10,000 turns: only the conversation grows."""

        max_turns = 10_000

        def load_tasks(self) -> GeneratedTasks:
            return GeneratedTasks(lambda rng: Task(prompt=f"Count from {rng.randint(1, 9)}."))

        def respond(self, message) -> Turn:
            return Turn.reply(f"Heard you at turn {self.turn}.", verdict=Verdict(reward=0.0))

    return Echo


def serve_echo(threads: int) -> None:
    from rlenv.server import ServerLimits, serve

    rlenv.register(ECHO_ID, _echo_class())

    def ready(url: str) -> None:
        print(f"rlenv: serving {ECHO_ID} at {url}", flush=True)

    serve([ECHO_ID], port=0, limits=ServerLimits(threads=threads), on_ready=ready)


def _episode(env, turns: int) -> list[float]:
    """Seconds per step of one ``turns``-turn episode."""
    env.reset(seed=0)
    times = []
    for turn in range(turns):
        start = time.perf_counter()
        env.step(f"Number {turn}: the next one, please.")
        times.append(time.perf_counter() - start)
    return times


def _sized(env: RemoteEnv, sizes: list[int]) -> RemoteEnv:
    """Record each answer's body size (its Content-Length) of ``env``'s connection."""
    connection = env._client.connection
    getresponse = connection.getresponse

    def sized():
        response = getresponse()
        sizes.append(int(response.getheader("content-length") or 0))
        return response

    connection.getresponse = sized
    return env


def long_episodes(url: str, turns: int, rounds: int) -> dict:
    """Full vs delta answers over ``turns``-turn episodes, interleaved; medians per window."""
    rlenv.register(ECHO_ID, _echo_class())
    windows = {"turn 10": slice(0, WINDOW), f"turn {turns}": slice(turns - WINDOW, turns)}
    samples: dict = {}
    local = rlenv.make(ECHO_ID)
    for _ in range(rounds):
        for mode in ("full", "delta", "in-process"):
            sizes: list[int] = []
            if mode == "in-process":
                times = _episode(local, turns)
            else:
                env = _sized(RemoteEnv(url, ECHO_ID, delta=mode == "delta"), sizes)
                assert env._delta == (mode == "delta")
                times = _episode(env, turns)
                env.close()
                sizes = sizes[1:]  # the reset's answer
            for name, window in windows.items():
                entry = samples.setdefault(mode, {}).setdefault(name, {"s": [], "bytes": []})
                entry["s"].append(statistics.median(times[window]))
                if sizes:
                    entry["bytes"].append(statistics.median(sizes[window]))
            if mode != "in-process":
                samples[mode].setdefault("episode_bytes", []).append(sum(sizes))
    report: dict = {"turns": turns, "rounds": rounds}
    for mode, entries in samples.items():
        out = report[mode] = {}
        for name in windows:
            step_s = statistics.median(entries[name]["s"])
            out[name] = {"steps_per_s": 1 / step_s}
            if entries[name]["bytes"]:
                out[name]["bytes_per_step"] = statistics.median(entries[name]["bytes"])
        if "episode_bytes" in entries:
            out["episode_bytes"] = statistics.median(entries["episode_bytes"])
    return report


def print_long(report: dict) -> None:
    turns = report["turns"]
    print(
        f"\n4. long episodes: one client, {turns}-turn episodes of {ECHO_ID}, "
        f"{report['rounds']} interleaved rounds (medians over {WINDOW}-step windows)"
    )
    print(f"   {'':<12}{'bytes/step':>12}{'':>12}{'steps/s':>10}{'':>10}{'episode MB':>12}")
    print(f"   {'':<12}{'turn 10':>12}{f'turn {turns}':>12}{'turn 10':>10}{f'turn {turns}':>10}")
    for mode in ("full", "delta", "in-process"):
        row = report[mode]
        first, last = row["turn 10"], row[f"turn {turns}"]
        size = (
            f"{first['bytes_per_step']:>12,.0f}{last['bytes_per_step']:>12,.0f}"
            if "bytes_per_step" in first
            else f"{'-':>12}{'-':>12}"
        )
        total = f"{row['episode_bytes'] / 1e6:>12.2f}" if "episode_bytes" in row else ""
        print(
            f"   {mode:<12}{size}{first['steps_per_s']:>10,.0f}{last['steps_per_s']:>10,.0f}{total}"
        )


def main_long(args) -> int:
    server, url = start_server(args.threads, echo=True)
    try:
        print(f"server: {url} (one process), {os.cpu_count()} CPUs")
        report = long_episodes(url, args.turns, args.rounds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print_long(report)
    if args.json:
        args.json.write_text(json.dumps({"long": report}, indent=2) + "\n")
    delta, full = report["delta"], report["full"]
    last = f"turn {args.turns}"
    # Delta's answers must not grow with the conversation (the digits of the turn number may).
    flat = delta[last]["bytes_per_step"] < 1.2 * delta["turn 10"]["bytes_per_step"]
    return 0 if flat and delta[last]["bytes_per_step"] < full[last]["bytes_per_step"] else 1


# ------------------------------------------------------------------------------ 5. vs OpenEnv


def serve_openenv() -> None:
    """OpenEnv's own app (openenv-core's ``create_app``, WebSocket sessions) serving the same
    env through ``rlenv.adapters.openenv``, on uvicorn with this server's settings."""
    import uvicorn

    from rlenv.adapters.openenv import create_app
    from rlenv.server import _base_url, _bind

    app = create_app(ENV_ID, max_concurrent_envs=4096)
    sock = _bind("127.0.0.1", 0)
    print(f"openenv: serving {ENV_ID} at {_base_url(*sock.getsockname()[:2])}", flush=True)
    config = uvicorn.Config(app, access_log=False, log_level="warning", timeout_keep_alive=65)
    uvicorn.Server(config).run(sockets=[sock])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def versus_openenv(args) -> dict:
    """Both servers up at once; for each client count, rounds alternate which goes first."""
    import openenv

    servers = {"rlenv": start_server(args.threads), "openenv": start_server(0, openenv=True)}
    version = getattr(openenv, "__version__", None)
    if version is None:
        from importlib.metadata import version as _version

        version = _version("openenv-core")
    report: dict = {
        "openenv_core": version, "rlenv": rlenv.__version__, "seconds": args.seconds,
        "rlenv_threads": args.threads,
        "client_processes": args.client_processes,
    }  # fmt: skip
    try:
        for kind, (_, url) in servers.items():  # warm-up
            load(url, 4, 1, 1.0, kind)
        for clients in args.peer_clients:
            runs: dict = {kind: [] for kind in servers}
            for round_ in range(args.rounds):
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for kind in order:
                    process, url = servers[kind]
                    cpu = _cpu_seconds(process.pid)
                    result = load(url, clients, args.client_processes, args.seconds, kind)
                    cpu = _cpu_seconds(process.pid) - cpu
                    runs[kind].append(
                        {
                            "steps_per_s": result["steps"] / result["seconds"],
                            "p50_ms": percentile(result["latencies"], 0.50) * 1e3,
                            "p99_ms": percentile(result["latencies"], 0.99) * 1e3,
                            "server_cpu_ms_per_episode": cpu * 1e3 / max(result["steps"], 1),
                            "client_cpu_ms_per_episode": result["client_cpu"]
                            * 1e3
                            / max(result["steps"], 1),
                            "errors": sum(result["errors"].values()),
                        }
                    )
            report[str(clients)] = {
                kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]} | {"runs": rs}
                for kind, rs in runs.items()
            }
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
    return report


def print_versus(report: dict, clients: list[int], rounds: int) -> None:
    print(
        f"\n5. rlenv serve vs OpenEnv (openenv-core {report['openenv_core']}), {ENV_ID} on both, "
        f"{report['seconds']:g} s x {rounds} interleaved rounds, medians"
    )
    print(
        f"   rlenv ({report['rlenv_threads']} env threads): HTTP keep-alive (http.client), "
        f"OpenEnv: its /ws WebSocket (websockets); clients in {report['client_processes']} "
        "processes"
    )
    header = f"   {'clients':<9}{'server':<9}{'steps/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    print(header + f"{'CPU ms/episode: server':>24}{'clients':>9}{'errors':>8}")
    for count in clients:
        for kind, row in report[str(count)].items():
            print(
                f"   {count:<9}{kind:<9}{row['steps_per_s']:>9,.0f}{row['p50_ms']:>9.1f}"
                f"{row['p99_ms']:>9.1f}{row['server_cpu_ms_per_episode']:>24.3f}"
                f"{row['client_cpu_ms_per_episode']:>9.3f}"
                f"{row['errors']:>8.0f}"
            )
        rl, oe = report[str(count)]["rlenv"], report[str(count)]["openenv"]
        print(
            f"   {'':<9}rlenv/OpenEnv: steps/s x{rl['steps_per_s'] / oe['steps_per_s']:.2f}, "
            f"p99 x{rl['p99_ms'] / oe['p99_ms']:.2f}"
        )


def main_versus(args) -> int:
    report = versus_openenv(args)
    print_versus(report, args.peer_clients, args.rounds)
    if args.json:
        args.json.write_text(json.dumps({"versus_openenv": report}, indent=2) + "\n")
    ahead = all(
        report[str(c)]["rlenv"]["steps_per_s"] > report[str(c)]["openenv"]["steps_per_s"]
        and report[str(c)]["rlenv"]["p99_ms"] < report[str(c)]["openenv"]["p99_ms"]
        for c in args.peer_clients
    )
    return 0 if ahead else 1


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (60)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument(
        "--client-processes", type=int, default=None,
        help="processes the clients run in (load: 1; openenv: 4, so that neither server's "
        "tail latency is the clients' own GIL)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None,
        help="server env threads (rlenv serve's default: 8 per CPU, at most 32)",
    )  # fmt: skip
    parser.add_argument("--malformed", type=int, default=10_000, help="malformed requests")
    parser.add_argument("--episodes", type=int, default=2000, help="overhead episodes (2000)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--mode", choices=("load", "long", "openenv"), default="load",
        help="load: load, malformed, overhead (default); long: long episodes, full vs delta; "
        "openenv: rlenv serve vs an OpenEnv server",
    )  # fmt: skip
    parser.add_argument(
        "--peer-clients", type=int, nargs="+", default=[16, 64],
        help="openenv: client counts (16 64)",
    )  # fmt: skip
    parser.add_argument("--serve-openenv", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--turns", type=int, default=1000, help="long: turns per episode (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="long: interleaved rounds (3)")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is None:  # rlenv serve's own default, stated in the report
        from rlenv.server import default_threads

        args.threads = default_threads()
    if args.serve_echo:
        serve_echo(args.threads)
        return 0
    if args.serve_openenv:
        serve_openenv()
        return 0
    if args.mode == "long":
        return main_long(args)
    if args.mode == "openenv":
        args.client_processes = args.client_processes or 4
        return main_versus(args)
    args.client_processes = args.client_processes or 1

    server, url = start_server(args.threads)
    report: dict = {"url": url, "cpus": os.cpu_count()}
    try:
        print(f"server: {url} (one process, {args.threads} env threads), {os.cpu_count()} CPUs")

        result = load(url, args.clients, args.client_processes, args.seconds)
        steps_per_s = result["steps"] / result["seconds"]
        all_per_s = (result["steps"] + result["resets"]) / result["seconds"]
        p50 = percentile(result["latencies"], 0.50) * 1e3
        p99 = percentile(result["latencies"], 0.99) * 1e3
        errors = sum(result["errors"].values())
        print(
            f"\n1. load: {args.clients} clients in {args.client_processes} process(es), "
            f"{args.seconds:g} s, reset + step on {ENV_ID}"
        )
        print(f"   step requests/s   {steps_per_s:,.0f}   (all requests/s {all_per_s:,.0f})")
        print(f"   step latency      p50 {p50:.1f} ms   p99 {p99:.1f} ms")
        print(f"   errors            {errors} {dict(result['errors']) or ''}")
        print(f"   lost sessions     {result['lost']}")
        load_ok = steps_per_s >= 1000 and p99 < 100 and errors == 0 and result["lost"] == 0
        print(
            f"   goal (>= 1,000 steps/s, p99 < 100 ms, no errors): {'met' if load_ok else 'MISSED'}"
        )
        report["load"] = {
            "clients": args.clients, "client_processes": args.client_processes,
            "seconds": args.seconds, "step_requests_per_s": steps_per_s,
            "requests_per_s": all_per_s, "p50_ms": p50, "p99_ms": p99,
            "errors": errors, "lost_sessions": result["lost"],
        }  # fmt: skip

        start = time.perf_counter()
        outcomes = malformed(url, args.malformed)
        elapsed = time.perf_counter() - start
        healthy = still_healthy(url)
        all_4xx = all(outcome.isdigit() and 400 <= int(outcome) < 500 for _, outcome in outcomes)
        print(f"\n2. malformed: {sum(outcomes.values())} requests in {elapsed:.1f} s")
        by_kind: dict[str, Counter] = {}
        for (kind, outcome), count in sorted(outcomes.items()):
            by_kind.setdefault(kind, Counter())[outcome] += count
        for kind, counts in by_kind.items():
            print(f"   {kind:<22}{dict(counts)}")
        print(f"   all 4xx: {all_4xx}   /health ok and an episode plays afterwards: {healthy}")
        report["malformed"] = {
            "requests": sum(outcomes.values()), "all_4xx": all_4xx, "healthy_after": healthy,
            "by_kind": {kind: dict(counts) for kind, counts in by_kind.items()},
        }  # fmt: skip

        remote_us, local_us = overhead(url, args.episodes)
        print(f"\n3. overhead: one client, {args.episodes} episodes one after another (medians)")
        print("   per episode = reset + step (two HTTP round trips for RemoteEnv)")
        print(f"   in-process   {local_us:8.1f} µs per episode")
        print(f"   RemoteEnv    {remote_us:8.1f} µs per episode")
        print(f"   overhead     {(remote_us - local_us) / 2:8.1f} µs per request")
        report["overhead"] = {"remote_us_per_episode": remote_us, "local_us_per_episode": local_us}
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ok = load_ok and all_4xx and healthy
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
