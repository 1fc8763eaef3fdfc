"""The tool-trace verifier: BFCL's call rules, optimal matching, policies, state diffs."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rlenv
from rlenv import Task, TaskList
from rlenv.tools import ParsedCall, ToolEnv, ToolOutcome, tool
from rlenv.verifiers.trace import (
    CallCheck,
    ExpectedCall,
    TracePolicy,
    TraceResult,
    check_call,
    match_calls,
    state_diff,
)

WEATHER = ExpectedCall(
    "get_weather", {"city": ["Paris", "Paris, France"], "unit": ["", "celsius", "fahrenheit"]}
)
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit", "kelvin"]},
    },
    "required": ["city"],
}
TYPED_SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "f": {"type": "float"},  # BFCL's name for number
        "flag": {"type": "boolean"},
        "ids": {"type": "array", "items": {"type": "integer"}},
        "point": {"type": "tuple", "items": {"type": "float"}},
        "options": {"type": "dict", "properties": {"depth": {"type": "integer"}}},
        "anything": {"type": "any"},
    },
}
TYPED = ExpectedCall(
    "f",
    {
        "n": ["", 3],
        "x": ["", 2.0],
        "f": ["", 0.5],
        "flag": ["", True],
        "ids": ["", [1, 2]],
        "point": ["", [1.0, 2.5]],
        "options": ["", {"depth": [2]}],
        "anything": ["", "x"],
    },
)


def call(name, **arguments):
    return ParsedCall(name, arguments)


def typed(**arguments):
    return check_call(TYPED, call("f", **arguments), schema=TYPED_SCHEMA)


# ----------------------------------------------------------------------------- ExpectedCall


def test_exact_wraps_each_value_and_keeps_dicts_literal():
    expected = ExpectedCall.exact("f", {"a": 1, "tags": ["x", "y"], "opts": {"k": [1, 2]}})
    assert expected.arguments == {"a": [1], "tags": [["x", "y"]], "opts": [{"k": [[1, 2]]}]}
    assert expected.required == ["a", "tags", "opts"]
    assert check_call(expected, call("f", a=1, tags=["x", "y"], opts={"k": [1, 2]})) == []
    assert check_call(expected, call("f", a=1, tags="x", opts={"k": [1, 2]})) == [
        "parameter 'tags': 'x' is not one of [['x', 'y']]"
    ]
    assert check_call(expected, call("f", a=1, tags=["x", "y"], opts={"k": 1})) == [
        "parameter 'opts': key 'k': 1 is not one of [[1, 2]]"
    ]


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("", {}, "non-empty str"),
        ("f", [("a", [1])], "must map each parameter"),
        ("f", {"a": 1}, "give a list of acceptable values"),
        ("f", {1: [1]}, "parameter names must be str"),
    ],
)
def test_expected_call_rejects_programmer_errors(name, arguments, message):
    with pytest.raises(TypeError, match=message):
        ExpectedCall(name, arguments)


def test_check_call_rejects_wrong_argument_types():
    with pytest.raises(TypeError, match="ExpectedCall"):
        check_call({"name": "f"}, call("f"))
    with pytest.raises(TypeError, match="ParsedCall, a ToolOutcome"):
        check_call(WEATHER, "get_weather")
    with pytest.raises(TypeError, match="ParsedCall, a ToolOutcome"):
        match_calls([WEATHER], [("get_weather", {"city": "Paris"})])
    with pytest.raises(TypeError, match="sequences"):
        match_calls(WEATHER, [call("get_weather", city="Paris")])
    for single in (call("get_weather"), {"name": "get_weather"}, _outcome("get_weather")):
        with pytest.raises(TypeError, match="wrap a single call"):
            match_calls([WEATHER], single)


# ----------------------------------------------------------------------------- what a call is


def _outcome(name, ok=True, **arguments):
    return ToolOutcome(name, arguments, content="done" if ok else "Error: no", ok=ok)


@pytest.mark.parametrize(
    "made",
    [
        call("get_weather", city="Paris"),
        _outcome("get_weather", city="Paris"),
        _outcome("get_weather", ok=False, city="Paris"),  # made, even if the tool then failed
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
    ],
    ids=["parsed", "outcome", "failed-outcome", "dict", "dict-json", "openai", "openai-object"],
)
def test_every_form_of_a_call_made_is_graded_alike(made):
    assert check_call(WEATHER, made) == []
    assert match_calls([WEATHER], [made]).passed


@pytest.mark.parametrize(
    ("made", "reason"),
    [
        ({"arguments": {"city": "Paris"}}, "wrong function: None instead of 'get_weather'"),
        ({"name": "get_weather", "arguments": '{"city": '}, "arguments must be a JSON object"),
        ({"name": "get_weather", "arguments": "[1]"}, "arguments must be a JSON object"),
        ({"name": "get_weather", "arguments": "[" * 100_000}, "arguments must be a JSON object"),
        ({"function": {"name": ["get_weather"]}}, "wrong function"),
        ({"name": "get_weather"}, "missing required parameter 'city'"),
    ],
)
def test_malformed_dicts_are_reasons_not_errors(made, reason):
    reasons = check_call(WEATHER, made)
    assert reasons and reason in reasons[0]
    assert not match_calls([WEATHER], [made]).passed


@tool(hidden=["state"])
def deposit(account: str, amount: int, state: dict) -> str:
    """Add money to an account.

    Args:
        account: The account id.
        amount: Whole units to add.
    """
    state[account] = state.get(account, 0) + amount
    return f"{account} now has {state[account]}"


DEPOSITS = (
    ExpectedCall.exact("deposit", {"account": "acc1", "amount": 5}),
    ExpectedCall.exact("deposit", {"account": "acc2", "amount": 7}),
)


class _Deposits(ToolEnv):
    """Deposit 5 into acc1, then 7 into acc2, in that order; graded on the trace alone."""

    max_turns = 4

    def load_tools(self):
        return [deposit]

    def load_tasks(self):
        return TaskList([Task(id="t", prompt="Deposit 5 into acc1, then 7 into acc2.")])

    def new_state(self, task):
        return {}

    def grade(self, answer):
        result = match_calls(DEPOSITS, self.trace, policy=TracePolicy(ordered=True))
        return rlenv.Verdict(reward=result.score, reason="; ".join(result.reasons) or "right calls")


def _deposit_call(account, amount):
    body = f'{{"name": "deposit", "arguments": {{"account": "{account}", "amount": {amount}}}}}'
    return f"<tool_call>{body}</tool_call>"


def test_a_tool_env_grades_its_own_trace():
    env = _Deposits()
    env.reset(seed=0)
    env.step(_deposit_call("acc1", 5))
    env.step(_deposit_call("acc2", 7))
    assert all(isinstance(outcome, ToolOutcome) for outcome in env.trace)
    _, reward, terminated, _, info = env.step("Done.")
    assert (reward, terminated) == (1.0, True) and info["verdict"].scored

    env.reset(seed=0)
    env.step(_deposit_call("acc2", 7))
    env.step(_deposit_call("acc1", 5))
    _, reward, terminated, _, info = env.step("Done.")
    assert (reward, terminated) == (0.0, True) and info["verdict"].scored
    assert "out of order" in info["verdict"].reason


# ----------------------------------------------------------------------------- check_call


def test_a_correct_call_passes():
    assert check_call(WEATHER, call("get_weather", city="Paris", unit="celsius")) == []
    assert check_call(WEATHER, call("get_weather", city="Paris, France")) == []
    assert check_call(WEATHER, call("get_weather", city="Paris"), schema=WEATHER_SCHEMA) == []


def test_wrong_function_is_the_only_reason():
    assert check_call(WEATHER, call("get_wether", city="Rome", bogus=1)) == [
        "wrong function: 'get_wether' instead of 'get_weather'"
    ]


def test_dotted_names_match_their_underscore_form():
    expected = ExpectedCall.exact("math.factorial", {"n": 5})
    assert check_call(expected, call("math_factorial", n=5)) == []
    assert check_call(expected, call("math.factorial", n=5)) == []
    assert (
        check_call(ExpectedCall.exact("math_factorial", {"n": 5}), call("math.factorial", n=5))
        == []
    )
    assert check_call(expected, call("mathfactorial", n=5)) == [
        "wrong function: 'mathfactorial' instead of 'math.factorial'"
    ]
    result = match_calls(
        [expected],
        [call("math_factorial", n=5.5)],
        schemas={"math_factorial": {"properties": {"n": {"type": "integer"}}}},
    )
    assert result.reasons == [
        "call 1 (math.factorial): parameter 'n': expected integer, got number 5.5",
        "extra call 1 (math_factorial): not expected",
    ]


def test_missing_required_parameter():
    assert check_call(WEATHER, call("get_weather", unit="celsius")) == [
        "missing required parameter 'city'"
    ]


def test_schema_required_is_enforced_too():
    expected = ExpectedCall("get_weather", {"city": ["", "Paris"]})
    assert check_call(expected, call("get_weather")) == []
    assert check_call(expected, call("get_weather"), schema=WEATHER_SCHEMA) == [
        "missing required parameter 'city'"
    ]


def test_optional_parameter_may_be_omitted():
    assert check_call(WEATHER, call("get_weather", city="Paris")) == []


def test_extra_parameters_outside_answer_or_schema():
    assert check_call(WEATHER, call("get_weather", city="Paris", days=3)) == [
        "unexpected parameter 'days'"
    ]
    assert check_call(
        WEATHER, call("get_weather", city="Paris", days=3), schema=WEATHER_SCHEMA
    ) == ["unknown parameter 'days' (not in the schema)"]
    narrow = ExpectedCall("get_weather", {"city": ["Paris"]})
    # in the schema but not in the expected answer: BFCL rejects it too
    assert check_call(
        narrow, call("get_weather", city="Paris", unit="celsius"), schema=WEATHER_SCHEMA
    ) == ["unexpected parameter 'unit'"]


def test_wrong_value_lists_the_acceptable_ones():
    assert check_call(WEATHER, call("get_weather", city="Paris", unit="kelvin")) == [
        "parameter 'unit': 'kelvin' is not one of ['celsius', 'fahrenheit']"
    ]


def test_every_mismatch_is_reported():
    reasons = check_call(WEATHER, call("get_weather", unit="kelvin", days=3))
    assert reasons == [
        "missing required parameter 'city'",
        "parameter 'unit': 'kelvin' is not one of ['celsius', 'fahrenheit']",
        "unexpected parameter 'days'",
    ]


def test_arguments_that_are_not_an_object():
    assert check_call(WEATHER, ParsedCall("get_weather", ["Paris"])) == [
        "arguments must be a JSON object, got array"
    ]


# ----------------------------------------------------------------------------- types


def test_types_that_pass():
    assert typed(n=3, x=2.0, f=0.5, flag=True, ids=[1, 2], point=[1.0, 2.5]) == []
    assert typed(options={"depth": 2}, anything="x") == []
    assert typed(point=(1.0, 2.5)) == []  # tuples arrive as lists, either is fine


def test_str_for_int_fails():
    assert typed(n="3") == ["parameter 'n': expected integer, got string '3'"]


def test_float_for_int_fails():
    assert typed(n=3.0) == ["parameter 'n': expected integer, got number 3.0"]


def test_int_for_float_is_accepted_unless_disabled():
    assert typed(x=2, f=0) == ["parameter 'f': 0 is not one of [0.5]"]
    assert typed(x=2) == []
    strict = TracePolicy(int_for_float=False)
    assert check_call(TYPED, call("f", x=2), schema=TYPED_SCHEMA, policy=strict) == [
        "parameter 'x': expected number, got integer 2"
    ]


def test_bool_is_never_an_int_or_a_number():
    assert typed(n=True) == ["parameter 'n': expected integer, got boolean True"]
    assert typed(x=False) == ["parameter 'x': expected number, got boolean False"]
    # nor without a schema: True == 1 in Python, not here
    assert check_call(ExpectedCall.exact("f", {"n": 1}), call("f", n=True)) == [
        "parameter 'n': True is not one of [1]"
    ]
    assert typed(flag=1) == ["parameter 'flag': expected boolean, got integer 1"]


def test_nested_types_are_checked_one_level():
    assert typed(ids=[1, "2"]) == ["parameter 'ids': item 1: expected integer, got string '2'"]
    assert typed(ids=[1, 2.0]) == ["parameter 'ids': item 1: expected integer, got number 2.0"]
    assert typed(point=[1, 2.5]) == []  # int for float inside arrays too (BFCL: top level only)
    assert typed(options={"depth": "2"}) == [
        "parameter 'options': key 'depth': expected integer, got string '2'"
    ]
    assert typed(ids="1,2") == ["parameter 'ids': expected array, got string '1,2'"]


def test_a_list_of_types_and_unknown_types():
    schema = {"properties": {"v": {"type": ["integer", "null"]}, "w": {"type": "uuid"}}}
    expected = ExpectedCall("f", {"v": ["", None, 1], "w": ["", "a"]})
    assert check_call(expected, call("f", v=None, w="a"), schema=schema) == []
    assert check_call(expected, call("f", v="1"), schema=schema) == [
        "parameter 'v': expected integer or null, got string '1'"
    ]


# ----------------------------------------------------------------------------- values


def test_numbers_compare_across_int_and_float_and_with_tolerance():
    expected = ExpectedCall.exact("f", {"x": 3})
    assert check_call(expected, call("f", x=3.0)) == []
    assert check_call(expected, call("f", x=3.0000001)) == [
        "parameter 'x': 3.0000001 is not one of [3]"
    ]
    assert (
        check_call(expected, call("f", x=3.0000001), policy=TracePolicy(float_tolerance=1e-6)) == []
    )
    assert check_call(expected, call("f", x=float("nan"))) == [
        "parameter 'x': nan is not one of [3]"
    ]
    assert check_call(expected, call("f", x=10**400), policy=TracePolicy(float_tolerance=0.1)) != []


@pytest.mark.parametrize(
    ("mode", "actual", "ok"),
    [
        ("bfcl", "new york", True),
        ("bfcl", "New-York", True),
        ("bfcl", "NEW_YORK.", True),
        ("bfcl", " New York ", True),
        ("bfcl", "NewYork", True),
        ("bfcl", "New York City", False),
        ("casefold", "new york", True),
        ("casefold", "  NEW YORK ", True),
        ("casefold", "New-York", False),
        ("casefold", "NewYork", False),
        ("exact", "New York", True),
        ("exact", "new york", False),
        ("exact", "New York ", False),
    ],
)
def test_string_normalisation(mode, actual, ok):
    expected = ExpectedCall.exact("f", {"city": "New York"})
    reasons = check_call(expected, call("f", city=actual), policy=TracePolicy(strings=mode))
    assert reasons == ([] if ok else [f"parameter 'city': {actual!r} is not one of ['New York']"])


def test_bfcl_mode_also_turns_single_quotes_into_double():
    expected = ExpectedCall.exact("f", {"q": 'say "hi"'})
    assert check_call(expected, call("f", q="say 'hi'")) == []


def test_list_valued_parameters_compare_element_wise_in_order():
    expected = ExpectedCall("f", {"xs": [[1, 2, "a b"], [2, 1, "ab"]]})
    assert check_call(expected, call("f", xs=[1.0, 2, "A-B"])) == []
    assert check_call(expected, call("f", xs=[2, 1, "ab"])) == []
    assert check_call(expected, call("f", xs=[1, 2])) == [
        "parameter 'xs': [1, 2] is not one of [[1, 2, 'a b'], [2, 1, 'ab']]"
    ]
    assert check_call(expected, call("f", xs=[2, 1, "ab", 4])) != []
    assert check_call(expected, call("f", xs=(1, 2, "ab"))) == []


def test_nested_dict_parameters_follow_the_possible_answer_form():
    expected = ExpectedCall(
        "book",
        {"guest": [{"name": ["Ann", "Anne"], "age": ["", 30], "tags": ["", ["vip"]]}]},
    )
    assert check_call(expected, call("book", guest={"name": "anne"})) == []
    assert (
        check_call(expected, call("book", guest={"name": "Ann", "age": 30.0, "tags": ["VIP"]}))
        == []
    )
    assert check_call(expected, call("book", guest={"name": "Bob"})) == [
        "parameter 'guest': key 'name': 'Bob' is not one of ['Ann', 'Anne']"
    ]
    assert check_call(expected, call("book", guest={"age": 30})) == [
        "parameter 'guest': missing key 'name'"
    ]
    assert check_call(expected, call("book", guest={"name": "Ann", "room": 1})) == [
        "parameter 'guest': unexpected key 'room'"
    ]
    assert check_call(expected, call("book", guest="Ann")) == [
        "parameter 'guest': 'Ann' is not an object"
    ]


def test_dicts_inside_lists_are_literal():
    expected = ExpectedCall.exact("f", {"rows": [{"a": 1, "b": "x y"}]})
    assert check_call(expected, call("f", rows=[{"b": "XY", "a": 1.0}])) == []
    assert check_call(expected, call("f", rows=[{"a": 1}])) != []
    assert check_call(expected, call("f", rows=[{"a": 1, "b": "xy", "c": 0}])) != []


def test_empty_string_marks_optional_but_is_also_a_value():
    expected = ExpectedCall("f", {"q": ["", "x"]})
    assert check_call(expected, call("f")) == []
    assert check_call(expected, call("f", q="")) == []


# ----------------------------------------------------------------------------- match_calls


def _weather(city, unit="celsius"):
    return ParsedCall("get_weather", {"city": city, "unit": unit})


PARIS = ExpectedCall.exact("get_weather", {"city": "Paris", "unit": "celsius"})
ROME = ExpectedCall.exact("get_weather", {"city": "Rome", "unit": "celsius"})


def test_result_shape():
    result = match_calls([PARIS], [_weather("Paris")])
    assert result == TraceResult(1.0, True, [CallCheck(0, 0, True, [])], [])


def test_swapped_parallel_calls_pass_unordered_and_fail_ordered():
    actual = [_weather("Rome"), _weather("Paris")]
    unordered = match_calls([PARIS, ROME], actual)
    assert unordered.passed and unordered.score == 1.0
    assert [(c.expected, c.actual) for c in unordered.checks] == [(0, 1), (1, 0)]
    ordered = match_calls([PARIS, ROME], actual, policy=TracePolicy(ordered=True))
    assert not ordered.passed and ordered.score == 0.0
    assert ordered.reasons == [
        "call 2 (get_weather): out of order: it matches actual call 1",
        "extra call 1 (get_weather): not expected",
    ]


def test_ordered_in_order_passes_and_reports_by_position():
    policy = TracePolicy(ordered=True)
    assert match_calls([PARIS, ROME], [_weather("Paris"), _weather("Rome")], policy=policy).passed
    result = match_calls(
        [PARIS, ROME], [_weather("Paris"), _weather("Rome", "kelvin")], policy=policy
    )
    assert result.reasons == [
        "call 2 (get_weather): parameter 'unit': 'kelvin' is not one of ['celsius']",
        "extra call 2 (get_weather): not expected",
    ]


def test_optimal_matching_succeeds_where_greedy_first_fit_fails():
    # The first expected call accepts either city; the second only Paris. Greedy first-fit
    # gives Paris to the first expected call and then finds nothing left for the second.
    flexible = ExpectedCall("get_weather", {"city": ["Paris", "Rome"], "unit": ["celsius"]})
    actual = [_weather("Paris"), _weather("Rome")]
    result = match_calls([flexible, PARIS], actual)
    assert result.passed, result.reasons
    assert [(c.expected, c.actual) for c in result.checks] == [(0, 1), (1, 0)]


def test_greedy_first_fit_really_fails_on_that_case():
    flexible = ExpectedCall("get_weather", {"city": ["Paris", "Rome"], "unit": ["celsius"]})
    actual = [_weather("Paris"), _weather("Rome")]
    used: set[int] = set()
    for expected in [flexible, PARIS]:
        fits = [j for j, a in enumerate(actual) if j not in used and not check_call(expected, a)]
        if not fits:
            break
        used.add(fits[0])
    assert len(used) == 1  # BFCL's algorithm rejects this valid trace


def test_wrong_value_in_unordered_match_names_the_closest_candidate():
    result = match_calls([PARIS, ROME], [_weather("Rome"), _weather("Paris", "kelvin")])
    assert not result.passed
    assert result.reasons == [
        "call 1 (get_weather) vs actual call 2: parameter 'unit': 'kelvin' is not one of ['celsius']",
        "extra call 2 (get_weather): not expected",
    ]


def test_wrong_function_in_match_calls():
    result = match_calls([PARIS], [ParsedCall("get_forecast", {"city": "Paris"})])
    assert result.reasons == [
        "call 1 (get_weather): missing: no call to 'get_weather'",
        "extra call 1 (get_forecast): not expected",
    ]
    assert result.checks == [
        CallCheck(0, None, False, ["call 1 (get_weather): missing: no call to 'get_weather'"]),
        CallCheck(None, 0, False, ["extra call 1 (get_forecast): not expected"]),
    ]


def test_duplicate_expected_call_needs_two_actual_calls():
    result = match_calls([PARIS, PARIS], [_weather("Paris")])
    assert result.reasons == [
        "call 2 (get_weather): missing: its matching call, actual call 1, is already matched to call 1"
    ]
    assert match_calls([PARIS, PARIS], [_weather("Paris"), _weather("Paris")]).passed


def test_allow_extra_and_allow_missing():
    extra = [_weather("Paris"), _weather("Oslo")]
    assert not match_calls([PARIS], extra).passed
    superset = match_calls([PARIS], extra, policy=TracePolicy(allow_extra=True))
    assert superset.passed and superset.score == 1.0
    assert superset.checks[1] == CallCheck(None, 1, True, [])

    assert not match_calls([PARIS, ROME], [_weather("Rome")]).passed
    subset = match_calls([PARIS, ROME], [_weather("Rome")], policy=TracePolicy(allow_missing=True))
    assert subset.passed and subset.checks[0] == CallCheck(0, None, True, [])
    # allow_missing does not excuse a wrong call
    assert not match_calls(
        [PARIS], [_weather("Oslo")], policy=TracePolicy(allow_missing=True)
    ).passed


def test_ordered_with_allow_extra_is_a_subsequence():
    policy = TracePolicy(ordered=True, allow_extra=True)
    actual = [_weather("Oslo"), _weather("Paris"), _weather("Oslo"), _weather("Rome")]
    assert match_calls([PARIS, ROME], actual, policy=policy).passed
    assert not match_calls([ROME, PARIS], actual, policy=policy).passed


def test_empty_traces():
    assert match_calls([], []).passed and match_calls([], []).score == 1.0
    relevance = match_calls([], [_weather("Paris")])  # irrelevance: no call is right
    assert not relevance.passed and relevance.reasons == [
        "extra call 1 (get_weather): not expected"
    ]
    silent = match_calls([PARIS], [])
    assert silent.reasons == ["call 1 (get_weather): missing: no calls were made"]
    partial = TracePolicy(partial=True)
    assert match_calls([], [], policy=partial).score == 1.0
    assert match_calls([], [_weather("Paris")], policy=partial).score == 0.0
    assert match_calls([PARIS], [], policy=partial).score == 0.0


def test_partial_scores_f1():
    partial = TracePolicy(partial=True)
    oslo = ExpectedCall.exact("get_weather", {"city": "Oslo", "unit": "celsius"})
    # 2 of 3 expected made, plus 1 wrong call: precision 2/3, recall 2/3
    result = match_calls(
        [PARIS, ROME, oslo], [_weather("Paris"), _weather("Rome"), _weather("Lima")], policy=partial
    )
    assert result.score == pytest.approx(2 / 3) and not result.passed
    # 1 of 2 expected, nothing wrong: precision 1, recall 1/2 -> F1 2/3
    assert match_calls([PARIS, ROME], [_weather("Paris")], policy=partial).score == pytest.approx(
        2 / 3
    )
    # 2 of 2 expected and 2 extras: precision 1/2, recall 1 -> F1 2/3
    actual = [_weather("Paris"), _weather("Rome"), _weather("Lima"), _weather("Oslo")]
    assert match_calls([PARIS, ROME], actual, policy=partial).score == pytest.approx(2 / 3)
    # allowed extras are not counted against precision
    lenient = TracePolicy(partial=True, allow_extra=True)
    assert match_calls([PARIS, ROME], actual, policy=lenient).score == 1.0
    # ordered partial: the largest in-order subset counts
    swapped = [_weather("Rome"), _weather("Paris")]
    ordered = TracePolicy(partial=True, ordered=True)
    assert match_calls([PARIS, ROME], swapped, policy=ordered).score == pytest.approx(0.5)
    assert match_calls([PARIS, ROME], swapped, policy=TracePolicy()).score == 1.0


def test_schemas_are_used_per_function():
    expected = [ExpectedCall.exact("add", {"a": 1, "b": 2})]
    schemas = {
        "add": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        }
    }
    assert match_calls(expected, [call("add", a=1, b=2)], schemas=schemas).passed
    result = match_calls(expected, [call("add", a=1, b=2.0)], schemas=schemas)
    assert result.reasons == [
        "call 1 (add): parameter 'b': expected integer, got number 2.0",
        "extra call 1 (add): not expected",
    ]
    assert match_calls(expected, [call("add", a=1, b=2.0)]).passed  # no schema: 2.0 == 2


# ----------------------------------------------------------------------------- state_diff


def test_state_diff_paths():
    expected = {
        "accounts": {"acc1": {"balance": 20, "owner": "ann"}, "acc-2": {"balance": 5}},
        "orders": {"o7": {"items": [1, 2]}},
        "log": [1, 2, 3],
    }
    actual = {
        "accounts": {"acc1": {"balance": 15, "owner": "ann"}, "acc-2": {"balance": 5.0}},
        "orders": {"o8": {}},
        "log": [1, 9],
        "extra": True,
    }
    assert state_diff(actual, expected) == [
        "state: unexpected key 'extra'",
        "state.accounts.acc1.balance: 15 != 20",
        "state.orders: missing key 'o7'",
        "state.orders: unexpected key 'o8'",
        "state.log: length 2 != 3",
        "state.log[1]: 9 != 2",
    ]
    assert state_diff(expected, expected) == []


def test_state_diff_scalars():
    assert state_diff(1.0, 1.0 + 1e-12) == []
    assert state_diff(1.0, 1.001) == ["state: 1.0 != 1.001"]
    assert state_diff(float("nan"), float("nan")) == []
    assert state_diff(True, 1) == ["state: True != 1"]
    assert state_diff("1", 1, path="db") == ["db: '1' != 1"]
    assert state_diff((1, 2), [1, 2]) == []
    assert state_diff({"a": [1]}, {"a": {"0": 1}}) == ["state.a: [1] != {'0': 1}"]
    assert state_diff({1: "x"}, {1: "y"}) == ["state[1]: 'x' != 'y'"]
    assert state_diff(None, None) == []
    assert state_diff(10**400, 10**400 + 1) == [
        "state: <integer of 1329 bits> != <integer of 1329 bits>"
    ]


def test_state_diff_survives_deep_nesting():
    deep: list = []
    for _ in range(2000):
        deep = [deep]
    assert state_diff(deep, deep) == [] or "too deep" in state_diff(deep, deep)[0]


# ----------------------------------------------------------------------------- robustness

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just("x" * 300_000),
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)
_NAMES = st.one_of(
    st.sampled_from(["get_weather", "get.weather", "add", "book", "f", ""]), st.text(max_size=10)
)


def _deep_list(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


_ARGUMENTS = st.one_of(
    st.dictionaries(
        st.sampled_from(["city", "unit", "n", "x", "ids", "options", "guest", "q", "zz"]),
        _JSON | st.just(_deep_list(3000)),
        max_size=6,
    ),
    st.dictionaries(st.text(max_size=5), _JSON, max_size=4),
    _JSON,  # not even an object
)
_ACTUAL = st.one_of(
    st.builds(ParsedCall, _NAMES, _ARGUMENTS, st.none() | st.text(max_size=4)),
    st.builds(ToolOutcome, _NAMES, _ARGUMENTS, st.text(max_size=4), st.booleans()),
    st.fixed_dictionaries({"name": _NAMES | _JSON, "arguments": _ARGUMENTS | st.text(max_size=8)}),
    st.fixed_dictionaries(
        {"id": _JSON, "function": st.dictionaries(st.sampled_from(["name", "arguments"]), _JSON)}
    ),
    st.dictionaries(st.text(max_size=8), _JSON, max_size=3),
)
_EXPECTED = [
    WEATHER,
    TYPED,
    ExpectedCall("book", {"guest": [{"name": ["Ann"], "age": ["", 30]}]}),
    ExpectedCall.exact("get.weather", {"city": "Paris", "ids": [1, [2, 3]]}),
]
_POLICIES = st.builds(
    TracePolicy,
    ordered=st.booleans(),
    allow_extra=st.booleans(),
    allow_missing=st.booleans(),
    partial=st.booleans(),
    strings=st.sampled_from(["bfcl", "casefold", "exact"]),
    int_for_float=st.booleans(),
    float_tolerance=st.sampled_from([0.0, 1e-6, 0.5]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actual=st.lists(_ACTUAL, max_size=5), policy=_POLICIES)
def test_model_input_never_raises(actual, policy):
    schemas = {"get_weather": WEATHER_SCHEMA, "f": TYPED_SCHEMA, "get_weather_": {}}
    for expected in _EXPECTED:
        for one in actual:
            reasons = check_call(expected, one, schema=schemas.get(expected.name), policy=policy)
            assert all(isinstance(reason, str) and len(reason) < 1000 for reason in reasons)
    result = match_calls(_EXPECTED, actual, schemas=schemas, policy=policy)
    assert 0.0 <= result.score <= 1.0 and math.isfinite(result.score)
    assert result.passed == (result.score == 1.0 and not result.reasons)
    assert len(result.checks) >= len(_EXPECTED)


@settings(max_examples=100, deadline=None)
@given(a=_JSON, b=_JSON)
def test_state_diff_never_raises(a, b):
    differences = state_diff(a, b)
    assert all(isinstance(line, str) for line in differences)
    assert state_diff(a, a) == []
