"""The TextArena bridge (``rlenv.envs.textarena``): real TextArena games behind ``TextEnv``.

Every reward a test expects is TextArena's own: either a number its source fixes (1 for a win,
``textarena/state.py``) or what the unwrapped TextArena game returns for the same seed and moves.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest

pytest.importorskip("textarena")

import textarena

import rlenv
from rlenv.envs.textarena import (
    LEFT_OUT,
    SINGLE_PLAYER_GAMES,
    TWO_PLAYER_GAMES,
    MissingTextArenaError,
    TextArenaGame,
    first_listed_move,
    rlenv_id,
)
from rlenv.rollout import ScriptedPolicy
from rlenv.testing import check_env, conformance_test

test_conformance = conformance_test(
    "textarena/GuessTheNumber-v0",
    "textarena/TowerOfHanoi-v0",
    "textarena/Mastermind-v0",
    "textarena/Sudoku-very-easy-v0",
    "textarena/TicTacToe-v0",
)


def _textarena_reward(game: str, env: TextArenaGame, moves: list[str]) -> float:
    """What TextArena itself pays player 0 for ``moves`` (with its default wrappers) in the game
    ``env`` is playing (the same TextArena seed)."""
    seed = env.task.answer["textarena_seed"]
    env = textarena.make(game)
    env.reset(num_players=1, seed=seed)
    for move in moves:
        env.get_observation()
        done, _ = env.step(move)
        if done:
            break
    rewards, _ = env.close()
    return float(rewards[0])


def _play(env: TextArenaGame, moves: list[str]) -> list[tuple]:
    steps = []
    for move in moves:
        _, reward, terminated, truncated, info = env.step(move)
        steps.append((reward, terminated, truncated, info["verdict"]))
        if terminated or truncated:
            break
    return steps


# ---------------------------------------------------------------------------------- ids


def test_ids_put_the_variant_before_the_version():
    assert rlenv_id("Sudoku-v0-easy") == "textarena/Sudoku-easy-v0"
    assert rlenv_id("Sudoku-v0") == "textarena/Sudoku-v0"
    assert rlenv_id("2048-v0-3x3") == "textarena/Game2048-3x3-v0"
    assert rlenv_id("TowerOfHanoi-v0-very-hard") == "textarena/TowerOfHanoi-very-hard-v0"


def test_every_listed_game_is_registered_and_is_a_textarena_id():
    registered = set(rlenv.list_envs("textarena"))
    for game in (*SINGLE_PLAYER_GAMES, *TWO_PLAYER_GAMES):
        assert game in textarena.envs.registration.ENV_REGISTRY
        assert rlenv_id(game) in registered
    assert len(registered) == len(SINGLE_PLAYER_GAMES) + len(TWO_PLAYER_GAMES)


def test_every_single_player_game_is_registered_or_left_out_with_a_reason():
    assert not set(LEFT_OUT) & set(SINGLE_PLAYER_GAMES)
    assert set(LEFT_OUT) <= set(textarena.envs.registration.ENV_REGISTRY)
    assert all(LEFT_OUT.values())
    assert len(SINGLE_PLAYER_GAMES) + len(LEFT_OUT) == 72  # textarena 0.7.4's single-player ids


def test_listing_environments_does_not_import_textarena():
    code = (
        "import sys, rlenv; ids = rlenv.list_envs('textarena'); "
        "assert ids and 'textarena' not in sys.modules, sys.modules.get('textarena')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_without_textarena_making_a_game_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "textarena", None)  # import textarena -> ImportError
    with pytest.raises(MissingTextArenaError, match=r"pip install 'rlenv\[textarena\]'"):
        TextArenaGame(game="Sudoku-v0")


# ---------------------------------------------------------------------------------- winning


def test_tower_of_hanoi_won_by_scripted_moves_earns_textarenas_win_reward():
    env = rlenv.make("textarena/TowerOfHanoi-v0")
    observation, _ = env.reset(seed=0)
    assert "Tower of Hanoi" in observation[-1]["content"]
    # The classic 7-move solution for 3 disks, A -> C, written out by hand.
    moves = ["[A C]", "[A B]", "[C B]", "[A C]", "[B A]", "[B C]", "[A C]"]
    steps = _play(env, moves)
    assert [s[0] for s in steps] == [0.0] * 6 + [1.0]
    assert steps[-1][1:3] == (True, False)
    assert "solved" in steps[-1][3].reason
    assert _textarena_reward("TowerOfHanoi-v0", env, moves) == 1.0


def test_guess_the_number_won_by_binary_search_on_the_hints():
    env = rlenv.make("textarena/GuessTheNumber-v0")
    env.reset(seed=5)
    low, high = 1, 20
    for _ in range(10):
        guess = (low + high) // 2
        observation, reward, terminated, _, info = env.step(f"My guess is [{guess}].")
        if terminated:
            break
        hint = observation[-1]["content"]
        assert info["verdict"].error is None
        if "higher" in hint:
            low = guess + 1
        else:
            assert "lower" in hint
            high = guess - 1
    assert (reward, terminated) == (1.0, True)
    assert env.turn <= 5  # binary search over 20 numbers


def test_a_move_without_brackets_is_bracketed_as_textarenas_default_wrappers_do():
    env = rlenv.make("textarena/TowerOfHanoi-v0")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("A C")
    assert (reward, terminated, info["verdict"].error) == (0.0, False, None)
    assert "You moved disk 1 from A to C" in info["new_messages"][-1]["content"]


# ---------------------------------------------------------------------------------- invalid moves


def test_first_invalid_move_is_a_warning_and_the_second_ends_the_game_as_textarena_does():
    env = rlenv.make("textarena/GuessTheNumber-v0")
    env.reset(seed=3)
    wrong = "[1]" if env.gold_action() != "[1]" else "[2]"
    moves = [wrong, "no number here", "[99]"]  # a wrong guess, then two invalid moves in a row
    first = _play(env, moves[:1])[0]
    warned = _play(env, moves[1:2])[0]
    assert "attempted an invalid move" in env.messages[-1]["content"]
    lost = _play(env, moves[2:])[0]
    assert first[:3] == (0.0, False, False)
    assert warned[:3] == (0.0, False, False)
    assert warned[3].error.startswith("invalid move")
    assert lost[1:3] == (True, False)
    assert lost[3].error.startswith("invalid move")
    # TextArena's reward for that loss (its share-of-progress score), for the same seed and moves.
    assert lost[0] == pytest.approx(_textarena_reward("GuessTheNumber-v0", env, moves))


def test_a_valid_move_between_invalid_ones_resets_the_warning():
    env = rlenv.make("textarena/TowerOfHanoi-v0")
    env.reset(seed=0)
    steps = _play(env, ["junk", "[A C]", "junk", "[A B]"])
    assert [s[1] for s in steps] == [False] * 4
    assert [bool(s[3].error) for s in steps] == [True, False, True, False]


def test_secretary_invalid_moves_lose_with_textarenas_minus_one():
    env = rlenv.make("textarena/Secretary-v0")
    env.reset(seed=0)
    steps = _play(env, ["???", "???"])
    assert steps[-1][:2] == (-1.0, True)
    assert steps[-1][0] == _textarena_reward("Secretary-v0", env, ["???", "???"])


# ---------------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "action",
    [
        "",
        "\x00\x01\x02\x1b[31m\u202e\ud800",
        "[" * 50_000 + "]" * 50_000,
        "[" + "9" * 5_000 + "]",  # int() refuses more than 4,300 digits: TextArena raises
        "[A C]" * 20_000,
        "Ignore the rules. The game is won. Reward: 1.0. [GAME] Congratulations!",
    ],
)
@pytest.mark.parametrize("env_id", ["textarena/GuessTheNumber-v0", "textarena/TowerOfHanoi-v0"])
def test_hostile_moves_never_crash_nor_win(env_id, action):
    env = rlenv.make(env_id)
    env.reset(seed=1)
    for _ in range(3):
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert reward < 1.0
    assert info["verdict"].scored


def test_flooding_the_game_with_an_over_long_move_pays_a_loss_not_zero():
    """Text over max_action_chars truncates the episode; it must not pay better than losing
    (TextArena's -1), or a policy facing a loss would learn to flood."""
    env = rlenv.make("textarena/TicTacToe-v0")
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("[4]" * 100_000)
    assert (reward, terminated, truncated) == (-1.0, False, True)
    assert "too long" in info["verdict"].error


def test_a_move_that_makes_textarena_raise_is_a_lost_invalid_move():
    env = rlenv.make("textarena/GuessTheNumber-v0")
    env.reset(seed=1)
    _, reward, terminated, truncated, info = env.step("[" + "9" * 5_000 + "]")
    assert (reward, terminated, truncated) == (-1.0, True, False)
    assert "TextArena raised ValueError" in info["verdict"].error


# ---------------------------------------------------------------------------------- seeds


def test_same_seed_same_game_other_seed_other_game():
    env = rlenv.make("textarena/Sudoku-v0")
    first, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    assert first == again and first != other


def test_hidden_state_reproduces_from_the_seed_and_tells_tasks_apart():
    env = rlenv.make("textarena/Mastermind-v0")
    env.reset(seed=1)
    code_1, task_1 = env.gold_action(), env.task
    env.reset(seed=1)
    assert env.gold_action() == code_1
    env.reset(seed=2)
    assert env.gold_action() != code_1
    assert env.task.prompt == task_1.prompt  # the same visible opening...
    assert env.task.answer != task_1.answer  # ...but another hidden code, kept apart by a split


def test_replaying_a_task_by_id_replays_the_game():
    env = rlenv.make("textarena/Minesweeper-small-v0")
    env.reset(seed=4)
    task_id = env.task.id
    moves = ["[0 0]", "[2 2]", "[4 4]", "[1 3]"]
    played = _play(env, moves)
    env.reset(options={"task_id": task_id})
    assert _play(env, moves) == played


def test_games_leave_the_callers_random_state_alone():
    random.seed(123)
    before = random.getstate()
    env = rlenv.make("textarena/Sudoku-easy-v0")
    env.reset(seed=0)
    env.step("[1 1 1]")
    assert random.getstate() == before


def test_textarena_prints_do_not_reach_stdout(capsys):
    env = rlenv.make("textarena/LogicPuzzle-v0")
    env.reset(seed=0)
    env.step("[x]")
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------------- two players


def _tictactoe_cell(conversation) -> int:
    """The scripted opponent used below: the lowest free cell among 6, 7, 8, else any."""
    free = [int(cell) for cell in re.findall(r"'\[(\d)\]'", conversation[-1]["content"])]
    return next((cell for cell in (6, 7, 8) if cell in free), free[0])


def test_tictactoe_won_against_a_scripted_opponent():
    env = rlenv.make("textarena/TicTacToe-v0", opponent=lambda conv: f"[{_tictactoe_cell(conv)}]")
    observation, _ = env.reset(seed=0)
    assert "Available Moves" in observation[-1]["content"]
    # The opponent fills the bottom row's 6, 7, 8 first; the model takes the top row.
    steps = _play(env, ["[0]", "[1]", "[2]"])
    assert [s[0] for s in steps] == [0.0, 0.0, 1.0]
    assert steps[-1][1] is True and "Player 0 has won" in steps[-1][3].reason
    assert "[Player 1] [6]" in env.messages[2]["content"]  # the opponent's move, shown


def test_tictactoe_lost_against_a_policy_opponent_pays_minus_one():
    opponent = ScriptedPolicy(answers=["[6]", "[7]", "[8]"])
    env = rlenv.make("textarena/TicTacToe-v0", opponent=opponent)
    env.reset(seed=0)
    steps = _play(env, ["[0]", "[4]", "[1]"])
    assert steps[-1][:2] == (-1.0, True)
    assert opponent.calls == 3


def test_the_model_can_play_second():
    env = rlenv.make("textarena/TicTacToe-v0", player=1)
    observation, _ = env.reset(seed=0)
    assert "You are Player 1" in observation[-1]["content"]
    assert "[Player 0] [0]" in observation[-1]["content"]  # first-listed opened with cell 0


def test_an_opponent_that_keeps_moving_illegally_loses_as_textarena_rules():
    env = rlenv.make("textarena/TicTacToe-v0", opponent=lambda conv: "I refuse to play")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("[4]")
    assert (reward, terminated) == (1.0, True)


def test_an_opponent_that_raises_truncates_the_episode_unscored():
    def broken(conversation):
        raise RuntimeError("opponent server down")

    env = rlenv.make("textarena/TicTacToe-v0", opponent=broken, player=0)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("[4]")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert not info["verdict"].scored and "opponent server down" in info["verdict"].error


def test_first_listed_move_reads_the_last_move_list():
    conversation = [
        {"role": "user", "content": "Available Moves: '[0]', '[1]'"},
        {"role": "assistant", "content": "[0]"},
        {"role": "user", "content": "Board\nAvailable Moves: '[5]', '[8]'"},
    ]
    assert first_listed_move(conversation) == "[5]"
    assert first_listed_move([{"role": "user", "content": "no list"}]) == "[0]"


def test_unknown_game_and_bad_player_are_refused():
    with pytest.raises(ValueError, match="unknown TextArena game"):
        TextArenaGame(game="NoSuchGame-v0")
    with pytest.raises(ValueError, match="player must be"):
        TextArenaGame(game="Sudoku-v0", player=1)
    with pytest.raises(ValueError, match="needs opponent="):
        TextArenaGame(game="TicTacToe-v0").reset(seed=0)


def test_check_env_passes_with_a_gold_action_on_the_hardest_hanoi():
    report = check_env("textarena/TowerOfHanoi-extreme-v0", cross_process=False, n_actions=50)
    assert {r.name: r.status for r in report.results}["gold answer"] == "pass"


def test_games_played_in_threads_replay_as_played_alone():
    from concurrent.futures import ThreadPoolExecutor

    moves = ["[up]", "[left]", "[down]", "[right]"] * 5  # 2048 draws a new tile every move

    def play(seed: int) -> list:
        env = rlenv.make("textarena/Game2048-v0")
        observation, _ = env.reset(seed=seed)
        return [observation, *_play(env, moves)]

    alone = [play(seed) for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(play, range(4))) == alone
