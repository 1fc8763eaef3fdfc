from __future__ import annotations

import gymnasium
import pytest
from sample_envs import EchoWord

import rlenv
from rlenv import registry
from rlenv.errors import RegistrationError, UnknownEnvError


def test_bundled_envs_are_listed_and_namespaced():
    ids = rlenv.list_envs(namespace="rlenv")
    assert {"rlenv/GuessNumber-v0", "rlenv/Arithmetic-v0"} <= set(ids)
    assert ids == sorted(ids)
    assert "rlenvtest/EchoWord-v0" not in ids


def test_gymnasium_make_and_rlenv_make_give_equivalent_envs():
    ours = rlenv.make("rlenv/GuessNumber-v0", high=30)
    theirs = gymnasium.make("rlenv/GuessNumber-v0", high=30)
    assert isinstance(ours, rlenv.TextEnv) and type(theirs.unwrapped) is type(ours)
    assert ours.spec.id == theirs.spec.id == "rlenv/GuessNumber-v0"
    for seed in range(5):
        assert ours.reset(seed=seed) == theirs.reset(seed=seed)
        assert ours.step("15")[:4] == theirs.step("15")[:4]


@pytest.mark.parametrize(
    "bad_id", ["NoNamespace-v0", "ns/NoVersion", "ns/Name-vx", "/Name-v0", "ns/Name-v0 ", 42]
)
def test_invalid_ids_are_rejected(bad_id):
    with pytest.raises(RegistrationError, match="namespace/Name-vN"):
        rlenv.register(bad_id, EchoWord)


def test_hyphenated_names_are_valid_ids():
    rlenv.register("rlenvtest/Two-Words-v3", EchoWord)
    assert rlenv.spec("rlenvtest/Two-Words-v3").version == 3
    assert gymnasium.spec("rlenvtest/Two-Words-v3").name == "Two-Words"
    rlenv.unregister("rlenvtest/Two-Words-v3")


def test_bad_entry_points_are_rejected():
    with pytest.raises(RegistrationError, match=r"package\.module:ClassName"):
        rlenv.register("rlenvtest/Bad-v0", "no_colon_here")
    with pytest.raises(RegistrationError):
        rlenv.register("rlenvtest/Bad-v0", 12)


def test_reregistering_is_idempotent_but_replacing_is_refused():
    rlenv.register("rlenvtest/Twice-v0", EchoWord)
    rlenv.register("rlenvtest/Twice-v0", EchoWord)
    with pytest.raises(RegistrationError, match="already registered"):
        rlenv.register("rlenvtest/Twice-v0", "somewhere.else:Env")


def test_unknown_id_suggests_close_matches():
    with pytest.raises(UnknownEnvError, match="Did you mean 'rlenv/GuessNumber-v0'"):
        rlenv.make("rlenv/GuesNumber-v0")
    with pytest.raises(gymnasium.error.Error):  # also catchable as Gymnasium's error
        rlenv.spec("nothing/Here-v0")


def test_make_refuses_envs_that_are_not_text_envs():
    rlenv.register("rlenvtest/CartPole-v0", "gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    with pytest.raises(RegistrationError, match=r"not a rlenv\.TextEnv"):
        rlenv.make("rlenvtest/CartPole-v0")


def test_broken_plugins_warn_and_are_skipped(monkeypatch):
    class FakeEntryPoint:
        name, value = "broken_plugin", "broken_plugin:register"

        def load(self):
            raise ImportError("no module named broken_plugin")

    class GoodEntryPoint:
        name, value = "good_plugin", "good:register"

        def load(self):
            return lambda: rlenv.register("goodplugin/Echo-v0", EchoWord)

    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "plugin_errors", {})
    monkeypatch.setattr(
        registry.importlib.metadata,
        "entry_points",
        lambda group: [FakeEntryPoint(), GoodEntryPoint()] if group == "rlenv.envs" else [],
    )
    with pytest.warns(RuntimeWarning, match="broken_plugin"):
        ids = rlenv.list_envs()
    assert "goodplugin/Echo-v0" in ids
    assert "ImportError" in registry.plugin_errors["broken_plugin"]
    rlenv.list_envs()  # loaded once: no second warning, no error


def test_unregister_removes_a_temporary_env():
    rlenv.register("rlenvtest/Temporary-v0", EchoWord)
    assert "rlenvtest/Temporary-v0" in rlenv.list_envs()
    rlenv.unregister("rlenvtest/Temporary-v0")
    assert "rlenvtest/Temporary-v0" not in rlenv.list_envs()
    assert "rlenvtest/Temporary-v0" not in gymnasium.registry
    rlenv.unregister("rlenvtest/Temporary-v0")  # a no-op the second time
