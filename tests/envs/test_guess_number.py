from __future__ import annotations

import pytest

import rlenv


def _play_binary_search(env) -> tuple[float, int, list]:
    env.reset(seed=4)
    low, high = env.low, env.high
    while True:
        guess = (low + high) // 2
        _, reward, terminated, truncated, info = env.step(f"My guess is {guess}.")
        if terminated or truncated:
            return reward, env.turn, info
        if info["new_messages"][-1]["content"] == "Higher.":
            low = guess + 1
        else:
            high = guess - 1


def test_binary_search_always_earns_full_reward():
    env = rlenv.make("rlenv/GuessNumber-v0")
    for seed in range(20):
        env.reset(seed=seed)
        reward, turns, info = _play_binary_search(env)
        assert reward == 1.0 and turns <= 7 and info["verdict"].parsed == env.task.answer


def test_reward_decays_after_the_optimal_number_of_guesses():
    env = rlenv.make("rlenv/GuessNumber-v0")  # optimal 7 guesses, max 10
    env.reset(seed=0)
    secret = env.task.answer
    wrong = 1 if secret != 1 else 2
    for _ in range(8):
        env.step(str(wrong))
    _, reward, terminated, _, _ = env.step(str(secret))
    assert terminated and reward == pytest.approx((10 - 9 + 1) / (10 - 7 + 1))


def test_never_finding_it_truncates_with_zero():
    env = rlenv.make("rlenv/GuessNumber-v0", max_turns=7)
    env.reset(seed=0)
    wrong = 1 if env.task.answer != 1 else 2
    rewards = [env.step(str(wrong))[1:4] for _ in range(7)]
    assert rewards[-1] == (0.0, False, True) and all(r[0] == 0.0 for r in rewards)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("I don't know", "no whole number"),
        ("1" * 500, "no whole number"),  # a 500-digit run is not a guess, and int() is never hit
        ("1000", "out of range"),
        ("-5", "out of range"),
    ],
)
def test_malformed_guesses_get_a_hint_and_zero(reply, error):
    env = rlenv.make("rlenv/GuessNumber-v0")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(reply)
    assert reward == 0.0 and not terminated and not truncated
    assert error in info["verdict"].error and obs[-1]["role"] == "user"


def test_listing_every_number_does_not_win_the_game():
    env = rlenv.make("rlenv/GuessNumber-v0")
    env.reset(seed=0)
    secret = env.task.answer
    spam = " ".join(str(n) for n in range(1, 101) if n != secret) + " 0"
    _, reward, terminated, *_ = env.step(f"{secret} " + spam)
    assert reward == 0.0 and not terminated  # only the last number counts


def test_invalid_configuration_is_rejected():
    with pytest.raises(ValueError):
        rlenv.make("rlenv/GuessNumber-v0", low=5, high=5)
    with pytest.raises(ValueError, match="binary search needs"):
        rlenv.make("rlenv/GuessNumber-v0", high=1000, max_turns=5)
