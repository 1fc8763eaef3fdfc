"""What rlenv's bridges cost per episode, over calling the bridged package directly.

Runs side by side in one process, interleaved over several rounds (medians reported, as
ratios to the direct loop):

- **reasoning-gym** (``envs/reasoning_gym.py``, ``reasoning_gym/<name>-v0``): ``direct`` is
  ``reasoning_gym.create_dataset(name, seed=N, size=1)[0]``, then ``extract_answer`` and the
  dataset's ``score_answer`` on the gold answer ``<answer>{entry['answer']}</answer>``;
  ``rlenv`` is ``env.reset(options={"task_id": f"seed-{N}"})`` + ``env.step(env.gold_action())``.
  Both loops pose the same tasks in a round, and every round takes fresh seeds: the bridge
  caches the last 64 entries it built (an ``lru_cache`` per seed), and a cache hit would skip
  the generator the direct loop runs every time. Every gold answer must score 1.0 in both.
- **TextArena** (``envs/textarena.py``, ``textarena/GuessTheNumber-v0``): ``direct`` is
  ``textarena.make("GuessTheNumber-v0")`` (TextArena's default wrappers, as its README plays
  a game), ``reset(num_players=1, seed=s)``, then the fixed moves :data:`MOVES` through
  ``step``/``get_observation`` until the game ends, and ``close``; ``rlenv`` plays the same
  moves through ``env.reset``/``env.step``. ``s`` is the TextArena seed the rlenv reset chose
  (read from ``env.task.answer``), so both play the same games; their rewards must agree.
- **Retail** (``rlenv/Retail-v0``, built on ``rlenv.tools.dialogue``): no direct peer runs here
  (tau-bench is not installed), so only absolute figures: the gold agent's episodes against
  the scripted user, every task, µs per ``env.step`` (the gold action is computed outside the
  timed call) and per episode (reset + steps).

Overhead is ``rlenv - direct`` per episode. The package's own work (a reasoning-gym generator,
a TextArena game) is in both columns, so the ratio says how much of an episode is the bridge.
Usage::

    python benchmarks/bridges.py [--episodes 100] [--rounds 5] [--datasets chain_sum,...]
                                 [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import statistics
import time
from collections.abc import Callable

import rlenv

DATASETS = ("chain_sum", "basic_arithmetic", "letter_counting", "spell_backward", "leg_counting")
GAME = "GuessTheNumber-v0"
GAME_ID = "textarena/GuessTheNumber-v0"
# The same guesses in both loops, played until the game ends (a hit, or its 10 turns).
MOVES = ("[10]", "[5]", "[15]", "[3]", "[8]", "[13]", "[18]", "[1]", "[20]", "[7]", "[12]")

_seeds = itertools.count(10_000)  # fresh reasoning-gym seeds: no episode reuses one


# ---------------------------------------------------------------------------- reasoning-gym


def rg_direct(name: str, seeds: list[int]) -> tuple[float, float]:
    """Seconds for the episodes, and the total score."""
    import reasoning_gym
    from reasoning_gym.utils import extract_answer

    total = 0.0
    start = time.perf_counter()
    for seed in seeds:
        dataset = reasoning_gym.create_dataset(name, seed=seed, size=1)
        entry = dataset[0]
        answer = extract_answer(f"<answer>{entry['answer']}</answer>")
        total += dataset.score_answer(answer, entry)
    return time.perf_counter() - start, total


def rg_rlenv(env, seeds: list[int]) -> tuple[float, float]:
    total = 0.0
    start = time.perf_counter()
    for seed in seeds:
        env.reset(options={"task_id": f"seed-{seed}"})
        _, reward, *_ = env.step(env.gold_action())
        total += reward
    return time.perf_counter() - start, total


# ---------------------------------------------------------------------------- TextArena


def ta_direct(game_seeds: list[int]) -> tuple[float, float]:
    import textarena

    total = 0.0
    start = time.perf_counter()
    for seed in game_seeds:
        game = textarena.make(GAME)
        game.reset(num_players=1, seed=seed)
        game.get_observation()
        for move in MOVES:
            done, _ = game.step(move)
            if done:
                break
            game.get_observation()
        rewards, _ = game.close()
        total += rewards[0]
    return time.perf_counter() - start, total


def ta_rlenv(env, seeds: list[int]) -> tuple[float, float]:
    total = 0.0
    start = time.perf_counter()
    for seed in seeds:
        env.reset(seed=seed)
        for move in MOVES:
            _, reward, terminated, truncated, _ = env.step(move)
            if terminated or truncated:
                total += reward
                break
    return time.perf_counter() - start, total


# ---------------------------------------------------------------------------- Retail


def retail_round(env, task_ids: list[str]) -> tuple[list[float], list[float]]:
    """µs of every step and of every episode (reset + steps) of the gold agent."""
    steps, episodes = [], []
    for task_id in task_ids:
        start = time.perf_counter()
        env.reset(options={"task_id": task_id})
        elapsed = time.perf_counter() - start
        done = False
        while not done:
            action = env.gold_action()
            start = time.perf_counter()
            _, reward, terminated, truncated, _ = env.step(action)
            took = time.perf_counter() - start
            steps.append(took * 1e6)
            elapsed += took
            done = terminated or truncated
        if reward != 1.0:
            raise RuntimeError(f"Retail's gold agent scored {reward} on {task_id}")
        episodes.append(elapsed * 1e6)
    return steps, episodes


# ---------------------------------------------------------------------------- main


def interleave(
    runners: dict[str, Callable[[int], tuple[float, float]]], rounds: int, episodes: int
) -> dict[str, float]:
    """Median µs per episode of each runner; ``runner(round)`` returns (seconds, total reward).
    Round 0 is the warm-up and is not counted. The runners must agree on the total reward."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds + 1):
        totals = {}
        for name, runner in runners.items():
            seconds, totals[name] = runner(round_)
            if round_:
                samples[name].append(seconds / episodes * 1e6)
        if len(set(totals.values())) != 1:
            raise RuntimeError(f"the loops disagree on the total reward: {totals}")
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="per round and row (100)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (5), after a warm-up")
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="reasoning-gym datasets, comma-separated"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 episodes, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.rounds = 5, 1
    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    episodes = args.episodes

    rows: list[tuple[str, str, float | None, float]] = []
    for name in datasets:
        env = rlenv.make(f"reasoning_gym/{name}-v0")
        seeds_of = {}

        def round_seeds(round_: int, seeds_of=seeds_of) -> list[int]:
            if round_ not in seeds_of:  # fresh seeds per round, shared by both loops
                seeds_of[round_] = [next(_seeds) for _ in range(episodes)]
            return seeds_of[round_]

        with contextlib.redirect_stdout(io.StringIO()):  # some generators print
            median = interleave(
                {
                    "direct": lambda r, name=name, of=round_seeds: rg_direct(name, of(r)),
                    "rlenv": lambda r, env=env, of=round_seeds: rg_rlenv(env, of(r)),
                },
                args.rounds,
                episodes,
            )
        rows.append(("reasoning-gym", name, median["direct"], median["rlenv"]))

    env = rlenv.make(GAME_ID)
    seeds = list(range(episodes))
    game_seeds, moves = [], 0
    for seed in seeds:  # the TextArena seed each rlenv reset draws, for the direct loop
        env.reset(seed=seed)
        game_seeds.append(env.task.answer["textarena_seed"])
        for move in MOVES:  # and how many moves the games take
            moves += 1
            _, _, terminated, truncated, _ = env.step(move)
            if terminated or truncated:
                break
    median = interleave(
        {"direct": lambda r: ta_direct(game_seeds), "rlenv": lambda r: ta_rlenv(env, seeds)},
        args.rounds,
        episodes,
    )
    rows.append(("textarena", GAME, median["direct"], median["rlenv"]))
    moves_per_episode = moves / episodes
    move_overhead = (median["rlenv"] - median["direct"]) / moves_per_episode

    from rlenv.envs.tools.retail import retail_tasks

    env = rlenv.make("rlenv/Retail-v0")
    task_ids = [task.id for task in retail_tasks()]
    if args.quick:
        task_ids = task_ids[:: len(task_ids) // 5][:5]
    retail_round(env, task_ids)  # warm-up
    per_round = [retail_round(env, task_ids) for _ in range(args.rounds)]
    step_us = statistics.median(statistics.median(steps) for steps, _ in per_round)
    episode_us = statistics.median(statistics.median(eps) for _, eps in per_round)
    steps_per_episode = len(per_round[0][0]) / len(task_ids)
    rows.append(("dialogue", "Retail-v0", None, episode_us))

    print(
        f"{episodes} episodes x {args.rounds} rounds per row, after a warm-up round "
        "(median µs per episode)"
    )
    header = f"{'bridge':<15}{'dataset/game':<20}{'direct µs':>11}{'rlenv µs':>11}"
    print(f"{header}{'ratio':>9}{'overhead µs':>13}")
    for bridge, name, direct, wrapped in rows:
        if direct is None:
            print(f"{bridge:<15}{name:<20}{'-':>11}{wrapped:>11.0f}{'-':>9}{'-':>13}")
        else:
            ratio, overhead = wrapped / direct, wrapped - direct
            print(
                f"{bridge:<15}{name:<20}{direct:>11.0f}{wrapped:>11.0f}"
                f"{ratio:>8.2f}x{overhead:>13.0f}"
            )
    print(
        f"\n{GAME}: {moves_per_episode:.1f} moves per episode on average, so "
        f"{move_overhead:.0f} µs of overhead per move (the reset's share included)"
    )
    print(
        f"Retail-v0 (absolute, no direct peer): the gold agent against the scripted user, "
        f"{len(task_ids)} tasks, {steps_per_episode:.1f} steps per episode: "
        f"{step_us:.0f} µs per step (median), {episode_us:.0f} µs per episode (median)"
    )


if __name__ == "__main__":
    main()
