"""Tools from code: schemas from hints and docstrings, validated execution that never crashes."""

from __future__ import annotations

import asyncio
import enum
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel

from rlenv.tools import Toolbox, tool


@tool
def transfer(
    source: str,
    target: str,
    amount: float,
    currency: Literal["USD", "EUR"] = "USD",
    memo: str | None = None,
) -> str:
    """Move money between two accounts.

    Args:
        source: The account to take the money from.
        target (str): The account to credit; it must
            already exist.
        amount: How much to move.

    Returns:
        A receipt.
    """
    return f"moved {amount} {currency} from {source} to {target}"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@tool
def paint(wall: int, color: Color, coats: list[int]) -> dict:
    """Paint a wall.

    Parameters
    ----------
    wall : int
        Which wall.
    color : Color
        The paint.

    Returns
    -------
    dict
    """
    return {"wall": wall, "color": color, "coats": coats}


class Order(BaseModel):
    sku: str
    quantity: int = 1


@tool(hidden=["state"], name="place_order", description="Order an item.")
async def order(item: Order, state: dict) -> str:
    await asyncio.sleep(0)
    state.setdefault("orders", []).append(item.sku)
    return f"ordered {item.quantity} x {item.sku}"


def test_schema_from_hints_and_google_docstring():
    schema = transfer.schema()
    assert schema["type"] == "function"
    function = schema["function"]
    assert (
        function["name"] == "transfer"
        and function["description"] == "Move money between two accounts."
    )
    parameters = function["parameters"]
    jsonschema.Draft202012Validator.check_schema(parameters)
    assert parameters["required"] == ["source", "target", "amount"]
    assert parameters["additionalProperties"] is False
    props = parameters["properties"]
    assert props["amount"] == {"type": "number", "description": "How much to move."}
    assert props["target"]["description"] == "The account to credit; it must already exist."
    assert props["currency"]["enum"] == ["USD", "EUR"] and props["currency"]["default"] == "USD"
    assert "title" not in str(schema)


def test_numpy_docstring_enums_and_lists():
    props = paint.schema()["function"]["parameters"]["properties"]
    assert props["wall"]["description"] == "Which wall."
    assert props["color"]["description"] == "The paint."
    assert props["coats"] == {"type": "array", "items": {"type": "integer"}}
    assert "red" in str(paint.schema())


def test_hidden_arguments_models_and_async():
    parameters = order.schema()["function"]["parameters"]
    assert set(parameters["properties"]) == {"item"} and order.name == "place_order"
    state: dict = {}
    outcome = Toolbox([order]).run(
        "place_order", {"item": {"sku": "A1", "quantity": 2}}, hidden={"state": state}
    )
    assert outcome.ok and outcome.content == "ordered 2 x A1" and state == {"orders": ["A1"]}


def test_async_tools_run_inside_a_running_event_loop():
    async def main():
        return Toolbox([order]).run("place_order", {"item": {"sku": "B"}}, hidden={"state": {}})

    assert asyncio.run(main()).ok


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("nope", {}, "unknown tool 'nope'; the available tools are: paint, transfer"),
        (
            "transfer",
            {"source": "a", "target": "b", "amount": "5"},
            "argument 'amount': '5' is not of type 'number'",
        ),
        ("transfer", {"source": "a", "amount": 5}, "'target' is a required property"),
        ("transfer", {"source": "a", "target": "b", "amount": 5, "x": 1}, "('x' was unexpected)"),
        (
            "transfer",
            {"source": "a", "target": "b", "amount": 5, "currency": "GBP"},
            "'GBP' is not one of ['USD', 'EUR']",
        ),
        ("paint", {"wall": 1, "color": "green", "coats": []}, "'green' is not one of"),
        (
            "paint",
            {"wall": 1.5, "color": "red", "coats": []},
            "argument 'wall': 1.5 is not of type 'integer'",
        ),
        ("paint", {"wall": 1, "color": "red", "coats": ["x"]}, "argument 'coats/0'"),
    ],
)
def test_bad_calls_become_readable_errors(name, arguments, expected):
    outcome = Toolbox([transfer, paint]).run(name, arguments)
    assert not outcome.ok and expected in outcome.content and outcome.content.startswith("Error:")


def test_exceptions_inside_tools_are_reported_not_raised():
    @tool
    def explode(depth: int) -> int:
        """Fail."""
        raise ZeroDivisionError("no")

    outcome = Toolbox([explode]).run("explode", {"depth": 1})
    assert not outcome.ok and "'explode' raised ZeroDivisionError: no" in outcome.content


def test_results_are_bounded_and_rendered_as_json():
    @tool
    def big() -> str:
        """Big."""
        return "x" * 100_000

    @tool
    def data() -> dict:
        """Data."""
        return {"a": [1, 2.5, None]}

    box = Toolbox([big, data])
    assert len(box.run("big", {}).content) < 20_100
    assert box.run("data", {}).content == '{"a": [1, 2.5, null]}'


def test_bad_tool_definitions_fail_at_definition_time():
    with pytest.raises(TypeError, match="needs a type hint"):

        @tool
        def untyped(x):
            """No hints."""

    with pytest.raises(ValueError, match="must match"):
        tool(lambda: 1, name="bad name!")
    with pytest.raises(ValueError, match="two tools are named"):
        Toolbox([transfer, transfer])
