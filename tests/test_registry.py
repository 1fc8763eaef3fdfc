from __future__ import annotations

import re

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


def test_override_replaces_a_user_registration_on_purpose():
    class First(EchoWord):
        pass

    class Second(EchoWord):
        pass

    rlenv.register("rlenvtest/Iterate-v0", First)
    with pytest.raises(RegistrationError, match="override=True"):
        rlenv.register("rlenvtest/Iterate-v0", Second)
    rlenv.register("rlenvtest/Iterate-v0", Second, override=True)
    assert type(rlenv.make("rlenvtest/Iterate-v0")) is Second
    with pytest.raises(RegistrationError):  # the bundled namespace stays as shipped
        rlenv.register("rlenv/Arithmetic-v0", Second, override=True)
    rlenv.unregister("rlenvtest/Iterate-v0")


def test_a_class_redefined_in_main_replaces_its_registration():
    """A notebook cell run twice defines a new class of the same name in __main__."""
    namespaces = [{"__name__": "__main__", "EchoWord": EchoWord} for _ in range(2)]
    source = "class Notebook(EchoWord):\n    pass\n"
    for namespace in namespaces:
        exec(source, namespace)
        rlenv.register("rlenvtest/Notebook-v0", namespace["Notebook"])
    assert type(rlenv.make("rlenvtest/Notebook-v0")) is namespaces[1]["Notebook"]
    other = {"__name__": "__main__", "EchoWord": EchoWord}
    exec("class Other(EchoWord):\n    pass\n", other)
    with pytest.raises(RegistrationError):  # another class is not a redefinition
        rlenv.register("rlenvtest/Notebook-v0", other["Other"])
    rlenv.unregister("rlenvtest/Notebook-v0")


def _broken_plugin(monkeypatch, name: str, error: Exception) -> None:
    class BrokenEntryPoint:
        value = f"{name}:register"

        def load(self):
            raise error

    BrokenEntryPoint.name = name
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "plugin_errors", {})
    monkeypatch.setattr(
        registry.importlib.metadata,
        "entry_points",
        lambda group: [BrokenEntryPoint()] if group == "rlenv.envs" else [],
    )


def test_an_unknown_id_of_a_failed_plugin_names_the_failure(monkeypatch):
    _broken_plugin(monkeypatch, "my_envs", ModuleNotFoundError("No module named 'numpyy'"))
    with pytest.warns(RuntimeWarning), pytest.raises(UnknownEnvError) as caught:
        rlenv.make("my_envs/Reverse-v0")
    message = str(caught.value)
    assert "The plugin 'my_envs', which may provide it, failed to load" in message
    assert "No module named 'numpyy'" in message and "shadows" not in message
    with pytest.raises(UnknownEnvError) as other:  # another namespace: not blamed on it
        rlenv.make("other/Reverse-v0")
    assert "my_envs" not in str(other.value)


def test_a_folder_shadowing_a_plugin_package_is_named(monkeypatch, tmp_path):
    (tmp_path / "shadowed_envs" / "src").mkdir(parents=True)  # a project folder, no __init__
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    _broken_plugin(
        monkeypatch,
        "shadowed_envs",
        AttributeError("module 'shadowed_envs' has no attribute 'register'"),
    )
    with pytest.warns(RuntimeWarning), pytest.raises(UnknownEnvError) as caught:
        rlenv.spec("shadowed_envs/Reverse-v0")
    message = str(caught.value)
    assert "has no attribute 'register'" in message
    assert "The folder shadowed_envs/ shadows the installed package 'shadowed_envs'" in message
    assert "src/ layout" in message


def test_gymnasium_module_prefix_reaches_a_plugin_that_registers_on_import(tmp_path, monkeypatch):
    (tmp_path / "prefix_plugin.py").write_text(
        "import rlenv\n"
        "from rlenv import GeneratedTasks, Task, TextEnv\n\n\n"
        "class Say(TextEnv):\n"
        "    def load_tasks(self):\n"
        "        return GeneratedTasks(lambda rng: Task(prompt='Say hi.', answer='hi'))\n\n"
        "    def verify(self, task, completion):\n"
        "        return completion.strip() == task.answer\n\n\n"
        "def register():\n"
        "    rlenv.register('prefixplugin/Say-v0', Say)\n\n\n"
        "register()  # on import, so gymnasium.make('prefix_plugin:...') finds it\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "prefixplugin/Say-v0" not in gymnasium.registry
    env = gymnasium.make("prefix_plugin:prefixplugin/Say-v0")
    env.reset(seed=0)
    assert env.step("hi")[1] == 1.0
    vector = gymnasium.make_vec(
        "prefix_plugin:prefixplugin/Say-v0", num_envs=2, vectorization_mode="sync"
    )
    vector.reset(seed=0)
    import prefix_plugin

    prefix_plugin.register()  # idempotent
    rlenv.unregister("prefixplugin/Say-v0")


def test_misspelt_and_mistyped_kwargs_are_refused_by_make():
    with pytest.raises(rlenv.errors.EnvArgumentError) as caught:
        rlenv.make("rlenv/Arithmetic-v0", dificulty=2)
    message = str(caught.value)
    assert "has no parameter 'dificulty'. Did you mean 'difficulty'?" in message
    assert "max_turns" in message and "require_boxed" in message  # the base class's too
    assert isinstance(caught.value, TypeError)
    with pytest.raises(TypeError, match=r"'require_boxed' expects bool, got str 'False'"):
        rlenv.make("rlenv/Arithmetic-v0", require_boxed="False")
    with pytest.raises(TypeError, match=r"'difficulty' expects int, got bool"):
        rlenv.make("rlenv/Arithmetic-v0", difficulty=True)
    # values that keep their meaning pass: an int for a float, None for an optional
    env = rlenv.make("rlenv/Arithmetic-v0", require_boxed=False, digits=None, format_weight=0)
    assert env.max_turns == 1


def test_env_parameters_follow_kwargs_up_the_class_chain():
    parameters = registry.env_parameters("rlenv/GuessNumber-v0")
    assert {"low", "high", "max_turns", "system_prompt", "split"} <= set(parameters)
    assert registry.env_parameters.__module__ == "rlenv.registry"


def test_an_id_in_a_bridge_namespace_whose_package_is_missing_says_what_to_install(monkeypatch):
    """reasoning-gym and TextArena register nothing without their packages; an id in their
    namespace then names the install, not only "no text environment is registered"."""
    import importlib.util

    from rlenv.envs import reasoning_gym, textarena

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("reasoning_gym", "textarena") else real(name, *a),
    )
    monkeypatch.setattr(registry, "_missing_namespaces", {})
    assert reasoning_gym.register_all() == 0
    textarena.register_textarena()
    for env_id, extra in (
        ("reasoning_gym/no_such_dataset-v0", "rlenv[reasoning-gym]"),
        ("textarena/NoSuchGame-v0", "rlenv[textarena]"),
    ):
        with pytest.raises(UnknownEnvError, match=re.escape(extra)):
            rlenv.spec(env_id)
    with pytest.raises(UnknownEnvError) as error:
        rlenv.spec("nobody/Nothing-v0")
    assert "pip install" not in str(error.value)
