"""What the SDK costs per step, over calling the verifier directly.

Runs side by side in one process, interleaved over several rounds (medians reported):

- ``direct``: what a hand-written loop must do anyway: build the task from a seeded RNG and
  call the verifier on the answer;
- ``rlenv``: the same task and verifier as a ``TextEnv``: ``env.reset(seed=i)`` + ``env.step``;
- ``gymnasium.make``: the same env made by Gymnasium, with its checker and order wrappers.

The SDK's overhead is ``rlenv - direct`` per episode (one reset and one step). The goal is
under 50 µs.

A second table measures a long multi-turn episode (a minimal env answering every turn with a
200-character "tool output"): the median time of one step near turn 10 and near turn 3,000.
A step must not copy the conversation's messages: before observations shared read-only
messages, it deep-copied them twice per step (8 µs at turn 10, 1,017 µs at turn 3,000, measured
with this script on the earlier code). What remains grows with the conversation is the new
observation list itself (6,000 references at turn 3,000, about 13 µs on these machines), which
a fresh list per observation needs. Usage::

    python benchmarks/env_overhead.py [--episodes 5000] [--rounds 7] [--turns 3000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import gymnasium

import rlenv
from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict


def make_task(rng: random.Random) -> Task:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return Task(prompt=f"What is {a} + {b}?", answer=str(a + b))


def verify(task: Task, completion: str) -> Verdict:
    answer = completion.strip()
    return Verdict(reward=float(answer == task.answer), parsed=answer)


class TrivialAddition(TextEnv):
    """The benchmark's trivial single-turn env: the verifier is a string comparison."""

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(make_task)

    def verify(self, task: Task, completion: str) -> Verdict:
        return verify(task, completion)


rlenv.register("bench/TrivialAddition-v0", TrivialAddition)


class LongChat(TextEnv):
    """A minimal multi-turn env: every model turn gets the same tool-output-sized reply."""

    max_turns = 100_000

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt="Talk to me."))

    def respond(self, message) -> Turn:
        return Turn.reply("x" * 200)


def step_times(turns: int, window: int = 20) -> tuple[float, float]:
    """Median µs of one step over turns 1..window and over the last ``window`` turns."""
    env = LongChat()
    env.reset(seed=0)
    times = []
    for _ in range(turns):
        start = time.perf_counter()
        env.step("call the tool again")
        times.append(time.perf_counter() - start)
    early = statistics.median(times[:window]) * 1e6
    late = statistics.median(times[-window:]) * 1e6
    return early, late


ANSWER = "42"


def run_direct(episodes: int) -> float:
    start = time.perf_counter()
    for seed in range(episodes):
        task = make_task(random.Random(seed))
        _messages = list(task.prompt)
        verify(task, ANSWER)
    return time.perf_counter() - start


def run_env(env, episodes: int) -> float:
    start = time.perf_counter()
    for seed in range(episodes):
        env.reset(seed=seed)
        env.step(ANSWER)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--turns", type=int, default=3000, help="long-episode length (3000)")
    args = parser.parse_args()

    env = rlenv.make("bench/TrivialAddition-v0")
    wrapped = gymnasium.make("bench/TrivialAddition-v0")
    runners = {
        "direct": lambda: run_direct(args.episodes),
        "rlenv": lambda: run_env(env, args.episodes),
        "gymnasium.make": lambda: run_env(wrapped, args.episodes),
    }
    for runner in runners.values():  # warm-up
        runner()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, runner in runners.items():
            samples[name].append(runner() / args.episodes * 1e6)

    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{args.episodes} episodes x {args.rounds} rounds (median µs per episode = reset + step)")
    print(f"{'loop':<16}{'µs/episode':>12}{'episodes/s':>14}{'ratio to direct':>18}")
    for name, micros in median.items():
        ratio = micros / median["direct"]
        print(f"{name:<16}{micros:>12.1f}{1e6 / micros:>14,.0f}{ratio:>17.2f}x")
    overhead = median["rlenv"] - median["direct"]
    verdict = "within" if overhead < 50 else "OVER"
    print(f"SDK overhead: {overhead:.1f} µs per step ({verdict} the 50 µs goal)")

    long = [step_times(args.turns) for _ in range(max(3, args.rounds // 2))]
    early = statistics.median(e for e, _ in long)
    late = statistics.median(late for _, late in long)
    ratio = late / early
    print(f"\nlong episode ({args.turns} turns, median µs per step)")
    print(f"{'near turn 10':<16}{early:>12.1f}")
    print(f"{f'near turn {args.turns}':<16}{late:>12.1f}")
    print(f"ratio late/early: {ratio:.2f}x (was 126x when every step deep-copied the history)")


if __name__ == "__main__":
    main()
