"""rlenv side by side with its peers. Section 1: what one in-process episode costs.

A single-turn math episode (pose a problem, take one answer, score it) with the right answer,
in rlenv and in each peer's own environment API, timed in the same run: interleaved rounds
(every runner once per round, in turn), each episode timed on its own. The figure is the
median episode over all rounds, in µs: on a shared machine the scheduler hands the core to
other work in 4 ms slices, which land on single episodes and which the median leaves out
(a round's mean is reported next to it, interruptions included). The garbage collector is off
while a runner runs, as in ``timeit``, and collects between runs. Every runner checks that each
episode earned reward 1 (a runner that scores wrong is reported as broken, not as fast).

Two processes, one command. rlenv, reasoning-gym and OpenEnv run in this process (rlenv's
virtual environment). GEM and skyrl-gym run in a child process under ``--peers-python``
(default ``.venv-peers/bin/python``; ``make peers`` creates it with the peers pinned), which
this script starts once with ``--peer-child`` and drives over a pipe with one JSON line per
round ("run runner X for N episodes" -> each episode's time, the rewards). Only one side runs
at a time (the parent waits on the pipe), so the two never compete for a core. ``--baseline
DIR`` adds an earlier rlenv the same way (``DIR/rlenv``, e.g. from ``git archive``), as
"baseline ..." rows: before and after a change in one run.

What one episode is, for each runner (all with an answer the env accepts):

- ``rlenv Trivial, reset()``: a ``TextEnv`` whose tasks are generated (``GeneratedTasks``:
  ``random.Random(seed)`` draws ``a + b``, a ``Task`` is built) and whose ``verify`` is a string
  comparison returning a ``Verdict``; ``env.reset()`` then ``env.step("<sum>")``. What rlenv does
  in that: draws the task seed from the env's numpy generator, builds the task (pydantic),
  freezes the opening messages read-only, builds ``info`` (task id, new messages, tools);
  in the step: checks the episode state, checks the action (type, length, UTF-8), records
  the assistant message read-only, calls ``verify`` behind a guard (a raising verifier gives an
  unscored 0), checks the reward is a finite float, builds the ``Verdict`` and ``info``
  (verdict, new messages, turn, task id, tools) and a fresh observation list.
- ``rlenv Trivial, reset(seed=i)``: the same, reseeding the env's generator every episode (the
  Gymnasium contract: the same seed poses the same task in every process).
- ``rlenv TaskList, reset()``: a fixed list of 1,000 such problems (``TaskList``, as a dataset
  env is), same verifier: no task is built per episode, as in skyrl-gym and GEM.
- ``rlenv task given, reset(options)``: the same env, the task chosen by the caller and passed
  as ``env.reset(options={"task": task})``, as a trainer's data loader hands skyrl-gym its
  problem: no draw from the env's generator.
- ``rlenv Arithmetic-v0, reset()``: the bundled ``rlenv/Arithmetic-v0`` at difficulty 1 with
  its real scorer (``\\boxed{}`` gate, then the exact math verifier, whose integer answers take
  the ``Fraction`` fast path, no sympy), answered ``\\boxed{<value>}``.
- ``reasoning-gym <name>``: ``dataset[i]`` (reasoning-gym generates item ``i`` on access from
  ``random.Random(seed + i)``) then ``dataset.score_answer(entry["answer"], entry)``; no messages,
  no episode state, a float back. The dataset is created once, outside the timing.
- ``OpenEnv echo``: the echo environment ``openenv init`` writes (openenv-core's own template),
  ``env.reset()`` then ``env.step(EchoAction(message="hello"))``: pydantic models for the
  action and the observations; its reward is the message length x 0.1 (no grading).
- ``skyrl-gym gsm8k``: ``skyrl_gym.make("gsm8k", extras={"reward_spec": ...})`` (SkyRL makes one
  env per trajectory: the task is given at construction), ``env.init(prompt)`` then
  ``env.step("... #### <answer>")``: a regex and a string comparison; no message is recorded.
- ``GEM MathEnv``: ``gem.envs.math_env.MathEnv`` on an in-memory ``datasets.Dataset`` of the
  same 1,000 problems with ``use_mp=False`` (its process pool off: ``_local_step``, a 1 s
  ``signal`` alarm around its grader), ``env.reset()`` then ``env.step("\\boxed{<answer>}")``:
  its grader normalises the answer, tries sympy and then math-verify.

Usage::

    make bench-peers   # creates .venv-peers (GEM, skyrl-gym, the math graders) and runs this
    .venv/bin/python benchmarks/peers.py [--episodes 500] [--rounds 21] [--only rlenv,skyrl]
    .venv/bin/python benchmarks/peers.py --profile --only TaskList   # cProfile rlenv's runners
    # before/after: an earlier commit's package next to the working tree's
    mkdir -p /tmp/before && git archive COMMIT rlenv envs | tar -x -C /tmp/before \
        && mv /tmp/before/envs /tmp/before/rlenv/envs
    .venv/bin/python benchmarks/peers.py --baseline /tmp/before
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"

REFERENCE = "rlenv TaskList, reset()"  # the ratio column divides by this row

# A runner: run(episodes) -> (each episode's nanoseconds, total reward). Built once, untimed.
Runner = Callable[[int], tuple[list[int], float]]


def loop(episode: Callable[[int], float]) -> Runner:
    """A runner timing each ``episode(index) -> reward`` on its own. Every runner pays the same
    loop and clock (about 0.1 µs), and one episode's time is what it cost: the scheduler's
    4 ms time slices, taken by other work on a shared machine, land on single episodes (which
    the median of episodes leaves out) instead of on whole rounds."""

    def run(count: int) -> tuple[list[int], float]:
        clock = time.perf_counter_ns
        times = [0] * count
        total = 0.0
        for index in range(count):
            start = clock()
            total += episode(index)
            times[index] = clock() - start
        return times, total

    return run


def problems(count: int = 1000) -> list[tuple[str, str]]:
    """The same seeded ``a + b`` problems for every dataset-backed runner."""
    rng = random.Random(2026)
    out = []
    for _ in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        out.append((f"What is {a} + {b}?", str(a + b)))
    return out


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# ----------------------------------------------------------------------------- rlenv's side


def rlenv_runners() -> dict[str, tuple[str, Runner]]:
    import rlenv
    from rlenv import GeneratedTasks, Task, TextEnv, Verdict

    def make_task(rng: random.Random) -> Task:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return Task(prompt=f"What is {a} + {b}?", answer=str(a + b))

    class Trivial(TextEnv):
        def load_tasks(self):
            return GeneratedTasks(make_task)

        def verify(self, task: Task, completion: str) -> Verdict:
            answer = completion.strip()
            return Verdict(reward=float(answer == task.answer), parsed=answer)

    tasks = [Task(prompt=prompt, answer=answer) for prompt, answer in problems()]

    def episodes(env, answer_of: Callable[[Any], str], seeded: bool) -> Runner:
        def episode(index: int) -> float:
            env.reset(seed=index) if seeded else env.reset()
            return env.step(answer_of(env.task))[1]

        return loop(episode)

    def given(env, answer_of: Callable[[Any], str]) -> Runner:
        def episode(index: int) -> float:
            env.reset(options={"task": tasks[index % len(tasks)]})
            return env.step(answer_of(env.task))[1]

        return loop(episode)

    plain = Trivial()
    plain.reset(seed=0)
    listed = Trivial(tasks=tasks)
    listed.reset(seed=0)
    arithmetic = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    arithmetic.reset(seed=0)
    answer = lambda task: task.answer  # noqa: E731
    boxed = lambda task: f"\\boxed{{{task.answer}}}"  # noqa: E731
    return {
        "rlenv Trivial, reset()": ("rlenv", episodes(plain, answer, seeded=False)),
        "rlenv Trivial, reset(seed=i)": ("rlenv", episodes(plain, answer, seeded=True)),
        "rlenv TaskList, reset()": ("rlenv", episodes(listed, answer, seeded=False)),
        "rlenv task given, reset(options)": ("rlenv", given(listed, answer)),
        "rlenv Arithmetic-v0, reset()": ("rlenv", episodes(arithmetic, boxed, seeded=False)),
    }


def reasoning_gym_runners() -> dict[str, tuple[str, Runner]]:
    try:
        import reasoning_gym
    except ImportError:
        return {}
    runners = {}
    for name in ("chain_sum", "basic_arithmetic"):
        dataset = reasoning_gym.create_dataset(name, size=100_000, seed=0)

        def episode(index: int, dataset=dataset) -> float:
            entry = dataset[index]
            return dataset.score_answer(entry["answer"], entry)

        runners[f"reasoning-gym {name}"] = ("reasoning_gym", loop(episode))
    return runners


def openenv_runners(workdir: Path) -> dict[str, tuple[str, Runner]]:
    try:
        from openenv.cli.commands.init import (
            _copy_template_directory,
            _create_template_replacements,
        )
    except ImportError:
        return {}
    _copy_template_directory(
        "openenv.cli.templates",
        "openenv_env",
        workdir / "echo_env",
        _create_template_replacements("echo_env"),
        "echo_env",
    )
    sys.path.insert(0, str(workdir))
    models = importlib.import_module("echo_env.models")
    server = importlib.import_module("echo_env.server.echo_env_environment")
    env = server.EchoEnvironment()
    action_type = models.EchoAction
    message = "hello"

    def episode(index: int) -> float:
        env.reset()
        observation = env.step(action_type(message=message))
        # the echo env pays 0.1 per character: normalised to 1 for the check
        return observation.reward / (0.1 * len(message))

    return {"OpenEnv echo": ("openenv-core", loop(episode))}


# ----------------------------------------------------------------------------- the peers' side


def child_runners() -> dict[str, tuple[str, Runner]]:
    """Built in the child, under the peers' interpreter."""
    runners: dict[str, tuple[str, Runner]] = {}
    data = problems()
    try:
        import skyrl_gym
    except ImportError:
        skyrl_gym = None
    if skyrl_gym is not None:

        def skyrl_episode(index: int) -> float:
            prompt, answer = data[index % len(data)]
            env = skyrl_gym.make(
                "gsm8k", extras={"reward_spec": {"method": "rule", "ground_truth": answer}}
            )
            env.init([{"role": "user", "content": prompt}])
            return env.step(f"The sum is {answer}.\n#### {answer}")["reward"]

        runners["skyrl-gym gsm8k"] = ("skyrl-gym", loop(skyrl_episode))
    try:
        import logging

        from datasets import Dataset
        from gem.envs.math_env import MathEnv

        logging.disable(logging.CRITICAL)  # GEM configures the root logger on import
    except ImportError:
        MathEnv = None
    if MathEnv is not None:
        dataset = Dataset.from_list([{"problem": p, "answer": a} for p, a in data])
        env = MathEnv(dataset=dataset, use_mp=False)

        def gem_episode(index: int) -> float:
            env.reset()
            return env.step(f"\\boxed{{{env.answer}}}")[1]

        runners["GEM MathEnv"] = ("gem-llm", loop(gem_episode))
    return runners


def timed(run: Runner, count: int) -> tuple[list[int], float]:
    """``run(count)`` with the garbage collector off, as ``timeit`` does: a full collection
    scans every object of the process (here: three SDKs' modules), and its milliseconds land on
    whichever runner happens to trigger it. Garbage is collected between runs, untimed."""
    gc.collect()
    gc.disable()
    try:
        return run(count)
    finally:
        gc.enable()


def child_main(side: str) -> None:
    if side == "peers":
        runners = child_runners()
    else:  # an earlier rlenv (``--baseline``), found first on PYTHONPATH
        runners = {
            name.replace("rlenv", "baseline", 1): entry for name, entry in rlenv_runners().items()
        }
    print(
        json.dumps({name: [package, version(package)] for name, (package, _) in runners.items()}),
        flush=True,
    )
    for line in sys.stdin:
        request = json.loads(line)
        times, total = timed(runners[request["name"]][1], request["episodes"])
        print(json.dumps({"times": times, "total": total}), flush=True)


class Child:
    """The peers' process: a runner per name, one JSON line per call."""

    def __init__(self, python: str, side: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [python, __file__, "--peer-child", side],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        # name -> [package, version]
        self.versions: dict[str, list[str]] = json.loads(self.process.stdout.readline())

    def runner(self, name: str) -> Runner:
        def run(count: int) -> tuple[float, float]:
            self.process.stdin.write(json.dumps({"name": name, "episodes": count}) + "\n")
            self.process.stdin.flush()
            reply = json.loads(self.process.stdout.readline())
            return reply["times"], reply["total"]

        return run

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


# ----------------------------------------------------------------------------- main


def profile(only: str) -> None:
    """Where an rlenv episode's time goes: cProfile, functions by their own time."""
    import cProfile
    import pstats

    for name, (_, run) in rlenv_runners().items():
        if only and not any(part in name for part in only.split(",")):
            continue
        run(2000)
        profiler = cProfile.Profile()
        profiler.runcall(run, 20_000)
        print(f"\n== {name}: 20,000 episodes under cProfile (which inflates call-heavy code)")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=500, help="episodes per round (500)")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (21)")
    parser.add_argument("--gem-episodes", type=int, default=20, help="GEM is slow (20)")
    parser.add_argument("--peers-python", default=str(DEFAULT_PEERS_PYTHON))
    parser.add_argument(
        "--only", default="", help="only runners whose name contains one of these (a,b,...)"
    )
    parser.add_argument("--json", help="write the medians and versions here")
    parser.add_argument(
        "--baseline",
        help="a copy of an earlier rlenv package's parent folder (e.g. from `git archive`), "
        "timed side by side as 'baseline ...' rows in a child process",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile rlenv's runners (20,000 episodes each) instead of the comparison",
    )
    parser.add_argument("--peer-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_child:
        child_main(args.peer_child)
        return

    if args.profile:
        profile(args.only)
        return

    import rlenv

    versions = {"rlenv": version("rlenv"), "python": sys.version.split()[0]}
    runners: dict[str, tuple[str, Runner]] = {}
    child = baseline = None
    remote: set[str] = set()  # runners in a child process, which times them itself
    with tempfile.TemporaryDirectory() as workdir:
        runners.update(rlenv_runners())
        if args.baseline:
            env = {**os.environ, "PYTHONPATH": str(Path(args.baseline).resolve())}
            baseline = Child(sys.executable, "rlenv", env)
            for name in baseline.versions:
                runners[name] = ("rlenv", baseline.runner(name))
                remote.add(name)
        runners.update(reasoning_gym_runners())
        runners.update(openenv_runners(Path(workdir)))
        if os.path.exists(args.peers_python):
            child = Child(args.peers_python, "peers")
            for name, (package, _) in child.versions.items():
                runners[name] = (package, child.runner(name))
                remote.add(name)
        else:
            print(f"({args.peers_python} not found: GEM and skyrl-gym left out; make peers)")
        for name, (package, _) in runners.items():
            if package not in versions:
                in_child = child is not None and name in child.versions
                versions[package] = child.versions[name][1] if in_child else version(package)
        wanted = args.only.split(",")
        runners = {name: entry for name, entry in runners.items() if any(w in name for w in wanted)}

        def count_for(name: str) -> int:
            return args.gem_episodes if name.startswith("GEM") else args.episodes

        for name, (_, run) in runners.items():  # warm-up
            run(min(200, count_for(name)))
        episodes: dict[str, list[float]] = {name: [] for name in runners}  # µs, every episode
        rounds: dict[str, list[float]] = {name: [] for name in runners}  # µs, each round's mean
        broken: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, (_, run) in runners.items():
                count = count_for(name)
                times, total = run(count) if name in remote else timed(run, count)
                if abs(total - count) > 1e-6:
                    broken[name] = total / count
                episodes[name].extend(t / 1000 for t in times)
                rounds[name].append(sum(times) / count / 1000)
        for process in (child, baseline):
            if process is not None:
                process.close()
    del rlenv

    median = {name: statistics.median(values) for name, values in episodes.items()}
    round_median = {name: statistics.median(values) for name, values in rounds.items()}
    print(
        f"In-process single-turn math episode (reset + one right answer): {args.rounds} "
        f"interleaved rounds of {args.episodes} episodes ({args.gem_episodes} for GEM)"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        "µs/episode: the median episode of all rounds; round mean: the median over rounds of "
        "each round's mean (other work on the machine included)"
    )
    reference = median.get(REFERENCE)
    print(f"{'runner':<34}{'µs/episode':>11}{'round mean':>12}{'/ rlenv TaskList':>18}")
    for name, micros in median.items():
        ratio = f"{micros / reference:.2f}x" if reference else ""
        flag = f"  BROKEN: mean reward {broken[name]:.3f}" if name in broken else ""
        print(f"{name:<34}{micros:>11.1f}{round_median[name]:>12.1f}{ratio:>18}{flag}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"versions": versions, "median_us": median, "round_mean_us": round_median},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
