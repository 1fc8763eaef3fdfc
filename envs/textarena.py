"""``textarena/*``: TextArena's games as multi-turn rlenv environments.

TextArena (https://github.com/LeonGuertler/TextArena; Guertler et al., "TextArena", 2025,
arXiv:2504.11442) is a collection of text games with a small API of its own
(``textarena/core.py``): ``env.reset(num_players, seed)``, ``env.get_observation() ->
(player_id, [(from_id, text, ObservationType), ...])`` (the messages the player to move has not
seen yet), ``env.step(action) -> (done, info)`` and ``env.close() -> (rewards, game_info)``.
:class:`TextArenaGame` plays one of them behind :class:`~rlenv.TextEnv`:

- the game's observations become user messages (``[GAME] ...`` lines, as TextArena's own
  ``LLMObservationWrapper`` writes them, but only the new ones each turn: the conversation
  already holds the rest); the model's own moves, which TextArena echoes back, are left out;
- the model's message is the move. TextArena's ``ActionFormattingWrapper`` (part of each game's
  default wrappers) puts a move without brackets inside ``[...]``; the bridge does the same;
- TextArena's reward is the episode's reward, paid on the turn the game ends
  (``terminated=True``), with ``game_info["reason"]`` as the verdict's reason. TextArena's
  rewards are 1 for a win, -1 for a loss in two-player games (0 for a draw), and in
  single-player games a game-specific score in [-1, 1] (often the share of the puzzle solved);
- an invalid move is what TextArena makes of it (``textarena/state.py``): with the default
  ``error_allowance=1``, the first one gets a warning message and the move does not count
  (reward 0, ``verdict.error`` names it), a second one in a row ends the game with the reward
  TextArena gives for it;
- a move that makes TextArena itself raise (e.g. a 5,000-digit number, which ``int()``
  refuses) ends the game as a lost invalid move: reward -1, TextArena's lowest, so that no text
  earns more by crashing the game than by playing it.

TextArena seeds Python's *global* ``random`` module in ``reset`` and draws from it during the
game; the bridge gives each game its own generator state and swaps it in around every call into
TextArena, so a game is a function of its seed and the caller's ``random`` state is untouched.

Two-player games need an ``opponent``: an rlenv :class:`~rlenv.rollout.Policy`, a function of
the opponent's conversation returning its move, or ``"first-listed"``, a scripted player that
plays the first move of the last move list the game showed it (the default of the registered
two-player games, which list the legal moves). The model plays ``player`` (0: moves first).

Which games are registered, and why the others are not, is in ``docs/environments/textarena.md``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import random
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict
from rlenv.chat import AssistantMessage, Message, message_text
from rlenv.errors import RLEnvError
from rlenv.registry import missing_namespace, register

__all__ = [
    "LEFT_OUT",
    "SINGLE_PLAYER_GAMES",
    "TWO_PLAYER_GAMES",
    "MissingTextArenaError",
    "TextArenaGame",
    "first_listed_move",
    "register_textarena",
    "rlenv_id",
]

INSTALL = "pip install 'rlenv[textarena]'  (or: pip install textarena)"

# TextArena's single-player game ids (textarena 0.7.4, ``textarena/envs/__init__.py``) that run
# offline, reproduce from a seed and pass rlenv's check_env. The games left out, and why, are
# listed in docs/environments/textarena.md (and checked by tests/envs/test_textarena.py).
SINGLE_PLAYER_GAMES: tuple[str, ...] = (
    "2048-v0-ultra-easy",
    "2048-v0-mega-easy",
    "2048-v0-super-easy",
    "2048-v0-very-easy",
    "2048-v0-easy",
    "2048-v0",
    "2048-v0-hard",
    "2048-v0-very-hard",
    "2048-v0-extreme",
    "2048-v0-3x3",
    "2048-v0-5x5",
    "2048-v0-6x6",
    "2048-v0-8x8",
    "2048-v0-10x10",
    "Bandit-v0",
    "Bandit-v0-hard",
    "Blackjack-v0",
    "Blackjack-v0-long",
    "Crosswords-v0",
    "Crosswords-v0-hardcore",
    "FifteenPuzzle-v0",
    "FrozenLake-v0",
    "FrozenLake-v0-random",
    "FrozenLake-v0-hardcore",
    "GuessTheNumber-v0",
    "GuessTheNumber-v0-hardcore",
    "LightsOut-v0",
    "LogicPuzzle-v0",
    "LogicPuzzle-v0-hard",
    "Mastermind-v0",
    "Mastermind-v0-hard",
    "Mastermind-v0-extreme",
    "Minesweeper-v0",
    "Minesweeper-v0-small",
    "Minesweeper-v0-medium",
    "Minesweeper-v0-hard",
    "PegJump-v0",
    "Secretary-v0",
    "Secretary-v0-long",
    "Set-v0",
    "Sudoku-v0-very-easy",
    "Sudoku-v0-easy",
    "Sudoku-v0",
    "Sudoku-v0-medium",
    "ThreeCardMonte-v0",
    "TowerOfHanoi-v0",
    "TowerOfHanoi-v0-medium",
    "TowerOfHanoi-v0-hard",
    "TowerOfHanoi-v0-hardcore",
    "TowerOfHanoi-v0-extreme",
)

# The other single-player games of textarena 0.7.4, and why they are not registered.
_NLTK = "reset downloads NLTK's word lists (network)"
_LLM_HOST = "the game master is an LLM on OpenRouter (network, API key)"
_STRING_REWARD = "an invalid move ends the game with a string reward (textarena 0.7.4 bug)"
LEFT_OUT: dict[str, str] = {
    **dict.fromkeys(("Hangman-v0", "Hangman-v0-hardcore"), _NLTK),
    **dict.fromkeys(
        ("Wordle-v0", "Wordle-v0-hardcore", "Wordle-v0-long", "Wordle-v0-long-hardcore"), _NLTK
    ),
    **dict.fromkeys(("WordLadder-v0", "WordLadder-v0-medium", "WordLadder-v0-hard"), _NLTK),
    **dict.fromkeys(("WordSearch-v0", "WordSearch-v0-hardcore"), _NLTK),
    **dict.fromkeys(
        ("GuessWho-v0", "TwentyQuestions-v0", "TwentyQuestions-v0-hardcore"), _LLM_HOST
    ),
    "Klondike-v0": "its module does not import (SyntaxError in textarena 0.7.4)",
    **dict.fromkeys(("Countdown-v0", "Cryptarithm-v0", "Slitherlink-v0"), _STRING_REWARD),
    "RushHour-v0": "reset can search for minutes for some seeds (_is_solvable)",
    **dict.fromkeys(("Sokoban-v0", "Sokoban-v0-medium"), "slow reset (room generation by search)"),
    "Sudoku-v0-hard": "slow reset (a unique 20-clue grid by search: up to 24 s)",
}

# Two-player games registered against the scripted "first-listed" opponent: games whose board
# message lists the legal moves, so that opponent always has one.
TWO_PLAYER_GAMES: tuple[str, ...] = ("TicTacToe-v0",)

_ID = re.compile(r"^(?P<name>.+?)-v(?P<version>\d+)(?:-(?P<variant>[\w-]+))?$")


def rlenv_id(textarena_id: str) -> str:
    """The rlenv id of a TextArena game id: ``Sudoku-v0-easy`` -> ``textarena/Sudoku-easy-v0``.

    rlenv ids end in the version (``namespace/Name-vN``), TextArena's put a difficulty variant
    after it; the variant moves before the version. ``2048`` becomes ``Game2048`` (a name must
    start with a letter; ``Game2048Env`` is TextArena's class).
    """
    match = _ID.match(textarena_id)
    if match is None:
        raise ValueError(f"not a TextArena game id: {textarena_id!r}")
    name = match["name"]
    if name[0].isdigit():
        name = f"Game{name}"
    variant = f"-{match['variant']}" if match["variant"] else ""
    return f"textarena/{name}{variant}-v{match['version']}"


def register_textarena() -> None:
    """Register every game of :data:`SINGLE_PLAYER_GAMES` and :data:`TWO_PLAYER_GAMES`.

    Registers nothing when textarena is not installed (so ``rlenv check --all`` passes without
    it), and imports nothing from it: that is found with ``importlib.util.find_spec``.
    """
    if importlib.util.find_spec("textarena") is None:
        missing_namespace(
            "textarena", "textarena is not installed (pip install 'rlenv[textarena]')"
        )
        return
    for game in SINGLE_PLAYER_GAMES:
        register(rlenv_id(game), "rlenv.envs.textarena:TextArenaGame", kwargs={"game": game})
    for game in TWO_PLAYER_GAMES:
        register(
            rlenv_id(game),
            "rlenv.envs.textarena:TextArenaGame",
            kwargs={"game": game, "opponent": "first-listed"},
        )


class MissingTextArenaError(RLEnvError, ImportError):
    """The ``textarena`` package is not installed; the message says what to install."""


def _textarena() -> Any:
    try:
        import textarena
    except ImportError as error:
        raise MissingTextArenaError(
            f"TextArena games need the textarena package: {INSTALL} ({error})"
        ) from None
    return textarena


# ---------------------------------------------------------------------------------- opponents

OpponentLike = Any  # a rlenv Policy, a callable(conversation) -> str, or "first-listed"

_MOVE_LIST = re.compile(r"(?:Available|Valid) [Mm]oves:([^\n]*)")
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,40}\]")


def first_listed_move(conversation: Sequence[Message]) -> str:
    """A scripted player: the first move of the last move list the game showed
    (``Available Moves: '[0]', '[1]'`` in TicTacToe, ``Valid moves: [e2e4], ...`` in Chess).
    With no list, ``[0]``. A pure function of the conversation."""
    for message in reversed(conversation):
        if message.get("role") != "user":
            continue
        lists = _MOVE_LIST.findall(message_text(message))
        for moves in reversed(lists):
            found = _BRACKETED.search(moves)
            if found:
                return found.group(0)
    return "[0]"


def _as_mover(opponent: OpponentLike) -> Callable[[list[Message]], str]:
    """A function ``conversation -> move text`` for an opponent given in any accepted form."""
    if opponent == "first-listed":
        return first_listed_move
    from rlenv.rollout.policy import as_text_function

    try:
        return as_text_function(opponent)
    except ValueError:
        raise ValueError(
            f"opponent must be a rlenv Policy, a function of the conversation, or "
            f"'first-listed'; got {opponent!r:.80}"
        ) from None


# ---------------------------------------------------------------------------------- the bridge


# TextArena draws from the global ``random`` module and prints to stdout, both process-wide: one
# game at a time runs TextArena code, so envs stepped from several threads stay reproducible.
_TEXTARENA_LOCK = threading.RLock()


class _Match:
    """One TextArena game in progress: the game, its own ``random`` state, the opponent's
    conversation. Copied whole by ``copy.deepcopy`` (the gold search plays ahead on copies)."""

    def __init__(self, game: Any, random_state: Any, player: int) -> None:
        self.game = game
        self.random_state = random_state
        self.player = player
        self.opponent_conversation: list[Message] = []

    @contextmanager
    def own_random(self) -> Iterator[None]:
        """Run TextArena code on this game's generator, leaving the caller's as it was (and
        with its ``print`` calls, e.g. LogicPuzzle's score line, kept off the caller's stdout)."""
        with _TEXTARENA_LOCK:
            outside = random.getstate()
            random.setstate(self.random_state)
            try:
                with _quiet():
                    yield
            finally:
                self.random_state = random.getstate()
                random.setstate(outside)


class TextArenaGame(TextEnv):
    """The TextArena game the id names (github.com/LeonGuertler/TextArena), TextArena's reward.

    The game's messages are user turns, the model's replies its moves. Reward: TextArena's
    own, paid when the game ends (1 for a win). See the module docstring
    and docs/environments/textarena.md for the mapping of invalid moves and turn limits.
    """

    max_turns = 1000  # a safety net: every registered game ends by its own rules first
    min_reward = -1.0  # TextArena's loss: an over-long action must not pay better than losing

    def __init__(
        self,
        *,
        game: str,
        opponent: OpponentLike | None = None,
        player: int = 0,
        **kwargs: Any,
    ) -> None:
        """Create the environment.

        Args:
            game: The TextArena game id (``"Sudoku-v0-easy"``; see ``textarena.envs``).
            opponent: For two-player games: a rlenv ``Policy``, a function of the opponent's
                conversation (chat messages) returning its move, or ``"first-listed"``.
            player: Which player the model is (0 moves first).
            **kwargs: Passed on to :class:`~rlenv.TextEnv` (``max_turns``, ``split``...).
        """
        textarena = _textarena()
        from textarena.envs.registration import ENV_REGISTRY

        if game not in ENV_REGISTRY:
            raise ValueError(f"unknown TextArena game {game!r}: see textarena.envs.registration")
        self.game_id = game
        spec = ENV_REGISTRY[game]
        # The default wrappers' action formatting (brackets), without their observation wrapper:
        # the conversation itself keeps the history that wrapper would repeat every turn.
        self._action_wrappers = [
            wrapper
            for wrapper in spec.default_wrappers or ()
            if issubclass(wrapper, textarena.ActionWrapper)
        ]
        self.num_players = 1 if opponent is None else 2
        if player not in range(self.num_players):
            raise ValueError(f"player must be in 0..{self.num_players - 1}, got {player}")
        self.player = player
        self.opponent = opponent
        self._move_for_opponent = _as_mover(opponent) if opponent is not None else None
        self._prepared: tuple[int, _Match, str] | None = None
        self._match: _Match | None = None
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ tasks

    def load_tasks(self) -> GeneratedTasks:
        def make_task(rng: random.Random) -> Task:
            seed = rng.randrange(2**31)
            match, opening = self._new_match(seed)
            self._prepared = (seed, match, opening)
            # The seed stands for the hidden state (a Mastermind code, a mine field): the
            # split by content must tell apart games whose openings look the same.
            return Task(
                prompt=opening,
                answer={"textarena_seed": seed},
                metadata={"game": self.game_id, "player": self.player},
            )

        return GeneratedTasks(make_task)

    def start(self, task: Task) -> list[Message]:
        seed = _seed_of(task)
        if self._prepared is not None and self._prepared[0] == seed:
            self._match = self._prepared[1]
        else:
            self._match, _ = self._new_match(seed)
        self._prepared = None
        return super().start(task)

    def _new_match(self, seed: int) -> tuple[_Match, str]:
        """A fresh game for ``seed``, played up to the model's first move, and its opening."""
        textarena = _textarena()
        with _TEXTARENA_LOCK:
            outside = random.getstate()
            try:
                random.seed(seed)
                with _quiet():
                    game = textarena.make(f"{self.game_id}-raw")
                    for wrapper in self._action_wrappers:
                        game = wrapper(game)
                    try:
                        game.reset(num_players=self.num_players, seed=seed)
                    except AssertionError as error:  # TextArena checks the number of players so
                        raise ValueError(
                            f"TextArena game {self.game_id!r} refused {self.num_players} "
                            f"player(s) ({error}); a two-player game needs opponent=..."
                        ) from None
                match = _Match(game, random.getstate(), self.player)
            finally:
                random.setstate(outside)
        with match.own_random():
            self._play_opponent(match)
            _, observation = match.game.get_observation()
        return match, self._render(match, observation) or "[GAME] Your move."

    # ------------------------------------------------------------------ turns

    def respond(self, message: AssistantMessage) -> Turn:
        return self._step(self._match, message_text(message))

    def _step(self, match: _Match, action: str) -> Turn:
        state = match.game.state
        with match.own_random():
            try:
                done, _ = match.game.step(action)
            except Exception as error:
                return _crashed(error)
            warned = not done and getattr(state, "error_count", 0) > 0
            if not done and not warned:
                try:
                    self._play_opponent(match)
                except _OpponentCrashed as crash:
                    raise crash.error from None  # not the model's fault: rlenv truncates, unscored
                done = bool(state.done)
            _, observation = match.game.get_observation()
            text = self._render(match, observation)
            if done:
                return self._finish(match, text)
        if warned:
            return Turn.reply(
                text or "[GAME] Invalid move.",
                verdict=Verdict(
                    reward=0.0,
                    parsed=action[:200],
                    error="invalid move: TextArena warned; another one in a row ends the game",
                ),
            )
        return Turn.reply(text or "[GAME] Your move.", verdict=Verdict(reward=0.0))

    def _finish(self, match: _Match, text: str) -> Turn:
        rewards, game_info = match.game.close()
        info = (game_info or {}).get(self.player, {})
        reason = str(info.get("reason", ""))
        raw = (rewards or {}).get(self.player)
        try:
            reward = float(raw)
        except (TypeError, ValueError):
            reward = -1.0
            reason = f"TextArena gave a non-numeric reward {raw!r:.80}; counted as a loss"
        invalid = bool(info.get("invalid_move"))
        verdict = Verdict(
            reward=reward,
            reason=reason,
            error=f"invalid move: {reason}" if invalid else None,
        )
        closing = f"{text}\n[GAME] Game over. {reason}".strip()
        return Turn.end(verdict, messages=[{"role": "user", "content": closing}])

    def _play_opponent(self, match: _Match) -> None:
        """Let the opponent move until it is the model's turn or the game is over."""
        state = match.game.state
        while not state.done and state.current_player_id != self.player:
            _, observation = match.game.get_observation()
            match.opponent_conversation.append(
                {"role": "user", "content": self._render(match, observation, for_opponent=True)}
            )
            try:
                move = self._move_for_opponent(list(match.opponent_conversation))
            except Exception as error:
                raise _OpponentCrashed(error) from error
            match.opponent_conversation.append({"role": "assistant", "content": str(move)})
            match.game.step(str(move))

    def _render(self, match: _Match, observation: Any, *, for_opponent: bool = False) -> str:
        """TextArena's messages as one text, each line ``[sender] message``."""
        me = 1 - self.player if for_opponent else self.player
        textarena = _textarena()
        roles = getattr(match.game.state, "role_mapping", {}) or {}
        lines = []
        for sender, text, kind in observation or ():
            if sender == me and kind == textarena.ObservationType.PLAYER_ACTION:
                continue  # the player's own move, already in its conversation
            name = "GAME" if sender == textarena.GAME_ID else roles.get(sender, f"Player {sender}")
            lines.append(f"[{name}] {text}")
        return "\n".join(lines).strip()

    # ------------------------------------------------------------------ gold

    def gold_action(self) -> str | None:
        """A move known to win from here, for the games whose winning move can be read from the
        game state (the hidden number or code, the solved grid, the optimal Hanoi move), and for
        TicTacToe against the scripted opponent (a search over copies of the game)."""
        if self._match is None or self.done:
            return None
        play = _GOLD.get(self.game_id.split("-v")[0])
        if play is None:
            return None
        try:
            return play(self, self._match)
        except Exception:  # a gold helper must never break an episode
            return None


class _OpponentCrashed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _crashed(error: Exception) -> Turn:
    detail = f"{type(error).__name__}: {str(error)[:200]}"
    return Turn.end(
        Verdict(
            reward=-1.0,
            reason="the move made TextArena raise; counted as a lost invalid move",
            error=f"invalid move: TextArena raised {detail}",
        ),
        messages=[{"role": "user", "content": "[GAME] Invalid move. Game over."}],
    )


def _quiet() -> contextlib.redirect_stdout[io.StringIO]:
    return contextlib.redirect_stdout(io.StringIO())


def _seed_of(task: Task) -> int:
    answer = task.answer
    if isinstance(answer, dict) and isinstance(answer.get("textarena_seed"), int):
        return answer["textarena_seed"]
    digest = hashlib.blake2b(str(task.id).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 2**31


# ---------------------------------------------------------------------------------- gold moves


def _unwrapped(game: Any) -> Any:
    while hasattr(game, "env"):
        game = game.env
    return game


def _gold_guess_number(env: TextArenaGame, match: _Match) -> str:
    return f"[{_unwrapped(match.game).game_number}]"


def _gold_mastermind(env: TextArenaGame, match: _Match) -> str:
    code = match.game.state.game_state["secret_code"]
    return "[" + " ".join(str(number) for number in code) + "]"


def _gold_sudoku(env: TextArenaGame, match: _Match) -> str | None:
    board = match.game.state.game_state["board"]
    solution = _unwrapped(match.game).full_grid
    for row in range(9):
        for col in range(9):
            if board[row][col] == 0:
                return f"[{row + 1} {col + 1} {solution[row][col]}]"
    return None


def _hanoi_move(towers: dict[str, list[int]], disk: int, target: str) -> tuple[str, str] | None:
    """The next move of the shortest way to put disks 1..disk on ``target`` (disks elsewhere
    stay), from any legal position: the largest disk goes to the target once the smaller ones
    are all on the third peg."""
    if disk == 0:
        return None
    source = next(peg for peg, disks in towers.items() if disk in disks)
    if source == target:
        return _hanoi_move(towers, disk - 1, target)
    spare = ({"A", "B", "C"} - {source, target}).pop()
    return _hanoi_move(towers, disk - 1, spare) or (source, target)


def _gold_hanoi(env: TextArenaGame, match: _Match) -> str | None:
    towers = match.game.state.game_state["towers"]
    move = _hanoi_move(towers, sum(len(disks) for disks in towers.values()), "C")
    return None if move is None else f"[{move[0]} {move[1]}]"


def _gold_by_search(env: TextArenaGame, match: _Match) -> str | None:
    """The first listed move from which the model can force a win against the (deterministic)
    opponent, found by playing ahead on copies of the match. Small games only (TicTacToe)."""
    opening = env.messages[-1] if env.messages else {}
    return _winning_move(env, match, message_text(opening), depth=9)


def _winning_move(env: TextArenaGame, match: _Match, shown: str, depth: int) -> str | None:
    if depth == 0:
        return None
    lists = _MOVE_LIST.findall(shown)
    moves = _BRACKETED.findall(lists[-1]) if lists else []
    for move in moves:
        trial = copy.deepcopy(match)
        turn = env._step(trial, move)
        if turn.done:
            if turn.verdict is not None and turn.verdict.reward == 1.0:
                return move
            continue
        if turn.verdict is not None and turn.verdict.error:
            continue
        if _winning_move(env, trial, message_text(turn.messages[-1]), depth - 1) is not None:
            return move
    return None


_GOLD: dict[str, Callable[[TextArenaGame, _Match], str | None]] = {
    "GuessTheNumber": _gold_guess_number,
    "Mastermind": _gold_mastermind,
    "Sudoku": _gold_sudoku,
    "TowerOfHanoi": _gold_hanoi,
    "TicTacToe": _gold_by_search,
}
