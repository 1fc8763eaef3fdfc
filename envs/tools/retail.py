"""``rlenv/Retail-v0``: an online shop's service desk, a simulated customer with a hidden goal.

The tau-bench setting (Yao et al. 2024, "tau-bench: A Benchmark for Tool-Agent-User Interaction
in Real-World Domains", arXiv:2406.12045; github.com/sierra-research/tau-bench, retail domain),
rebuilt on rlenv's own parts: its rules are facts we follow, none of its code or data is used.
The model is the shop's agent. It reads and changes a database (customers, payment methods,
products with option variants, orders) through 15 tools, and talks to a customer played by a
user simulator (:class:`rlenv.tools.dialogue.UserSimEnv`: scripted by default, a model in real
use) who wants something the agent must find out: cancel an order, return or exchange items,
change an address, know a price, or something the agent may not do. Only the customer ends the
conversation (``###STOP###``), or the agent by handing over to a human
(``transfer_to_human_agents``).

**Dual control.** Changing anything needs a verified customer: the agent finds them (by email,
or by name and zip code), sends a code to their phone (``send_verification_code``), and the
customer, who alone can read their phone, tells it back (``verify_user``). Three wrong codes
lock the account for the episode.

**Reward** (tau-bench's, ``tau_bench/envs/base.py``, ``calculate_reward``): 1.0 when the final
database equals the one the task's gold actions leave, and every required output (a refund
total, a price) appears in something the agent told the customer (lower case, commas
removed); else 0, with what differs in the verdict. Two changes from tau-bench close ways to
earn a reward for nothing: a hand-off to a human is recorded in the database (in tau-bench it
changes nothing, so handing every conversation over passed every task that needs no change),
and every task whose gold changes nothing has a required output the agent can only know by
looking it up (a total, a price), so a silent agent earns nothing.

Every task is built from its id alone: the database from a ``random.Random`` seeded by the
task's position, the expected final database by replaying the gold calls on a copy with the
real tools. The 45 tasks come in 11 kinds; each has a gold agent (:meth:`Retail.gold_action`)
that the scripted customer follows to the end.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from rlenv import Task, TaskList, Verdict
from rlenv.envs.tools._world import FIRST_NAMES, LAST_NAMES, call_key, replay, usd
from rlenv.tools import ParsedCall, Toolbox, get_parser, tool
from rlenv.tools.dialogue import UserGoal, UserSimEnv, outputs_said
from rlenv.verifiers.trace import state_diff

__all__ = ["RETAIL_POLICY", "TOOLS", "Retail", "RetailError", "retail_tasks", "snapshot"]

MAX_REASON_CHARS = 1500
MAX_CODE_ATTEMPTS = 3
CANCEL_REASONS = ("no longer needed", "ordered by mistake")


class RetailError(ValueError):
    """A request the shop refuses; nothing was changed."""


# --- The catalogue: fixed for every task (availability varies by task) --------------------------

_PRODUCTS: list[tuple[str, dict[str, list[str]]]] = [
    ("T-Shirt", {"color": ["black", "white", "blue", "red"], "size": ["S", "M", "L", "XL"]}),
    ("Water Bottle", {"capacity": ["500ml", "750ml", "1000ml"], "material": ["steel", "glass"]}),
    ("Desk Lamp", {"color": ["black", "white", "silver"], "power": ["battery", "USB", "mains"]}),
    ("Running Shoes", {"size": ["8", "9", "10", "11"], "color": ["black", "grey", "red"]}),
    ("Backpack", {"color": ["navy", "black", "green"], "size": ["small", "medium", "large"]}),
    ("Mechanical Keyboard", {"switch": ["linear", "tactile", "clicky"], "layout": ["full", "tkl"]}),
    ("Coffee Maker", {"capacity": ["4 cups", "8 cups", "12 cups"], "color": ["black", "steel"]}),
    ("Headphones", {"type": ["over-ear", "on-ear", "in-ear"], "color": ["black", "white"]}),
    ("Yoga Mat", {"thickness": ["4mm", "6mm", "8mm"], "color": ["purple", "green", "blue"]}),
    ("Electric Kettle", {"capacity": ["1L", "1.5L", "2L"], "material": ["glass", "steel"]}),
]


def _catalogue() -> dict[str, dict]:
    rng = random.Random(20240612)  # the catalogue's ids and prices: the same in every task
    products = {}
    for name, options in _PRODUCTS:
        product_id = str(rng.randrange(10**9, 10**10))
        base = rng.randint(15, 250) * 100
        items = {}
        for values in itertools.product(*options.values()):
            item_id = str(rng.randrange(10**9, 10**10))
            price = base + rng.randint(-500, 1500) + rng.randint(0, 99)
            items[item_id] = {
                "item_id": item_id,
                "options": dict(zip(options, values, strict=True)),
                "price_cents": price,
                "available": True,
            }
        products[product_id] = {"product_id": product_id, "name": name, "items": items}
    return products


_CATALOGUE = _catalogue()


# --- Lookups that raise RetailError ------------------------------------------------------------


def _user(state: dict, user_id: str) -> dict:
    found = state["users"].get(user_id)
    if found is None:
        raise RetailError(
            f"no user with id {user_id!r}; find it with find_user_id_by_email or "
            "find_user_id_by_name_zip"
        )
    return found


def _identified(state: dict, user_id: str) -> dict:
    user = _user(state, user_id)
    if user_id not in state["_session"]["identified"]:
        raise RetailError(
            f"user {user_id} has not been identified in this conversation: find them by "
            "email or by name and zip code first"
        )
    return user


def _verified(state: dict, user_id: str) -> dict:
    user = _identified(state, user_id)
    if user_id not in state["_session"]["verified"]:
        raise RetailError(
            f"user {user_id} is not verified: send_verification_code, then verify_user with "
            "the code the customer reads from their phone"
        )
    return user


def _order(state: dict, order_id: str, *, verified: bool = False) -> dict:
    order = state["orders"].get(order_id)
    if order is None:
        raise RetailError(f"no order {order_id!r}; order ids look like '#W1234567'")
    if order["user_id"] not in state["_session"]["identified"]:
        raise RetailError(
            f"order {order_id} does not belong to a customer identified in this conversation"
        )
    if verified:
        _verified(state, order["user_id"])
    return order


def _status(order: dict, *allowed: str) -> None:
    if order["status"] not in allowed:
        raise RetailError(
            f"order {order['order_id']} is {order['status']!r}; this needs an order that is "
            + " or ".join(repr(a) for a in allowed)
        )


def _payment(user: dict, payment_method_id: str) -> dict:
    method = user["payment_methods"].get(payment_method_id)
    if method is None:
        raise RetailError(
            f"user {user['user_id']} has no payment method {payment_method_id!r}; "
            "get_user_details lists theirs"
        )
    return method


def _swap(state: dict, order: dict, item_ids: list[str], new_item_ids: list[str]) -> int:
    """Check a list of item changes; returns the price difference (new minus old) in cents."""
    if not item_ids:
        raise RetailError("item_ids is empty: list the item ids to change")
    if len(item_ids) != len(new_item_ids):
        raise RetailError(
            f"item_ids has {len(item_ids)} entries and new_item_ids {len(new_item_ids)}: "
            "give one new item per item"
        )
    held = Counter(item["item_id"] for item in order["items"])
    asked = Counter(item_ids)
    for item_id, count in asked.items():
        if held[item_id] < count:
            raise RetailError(f"order {order['order_id']} has no (more) item {item_id!r}")
    difference = 0
    for old_id, new_id in zip(item_ids, new_item_ids, strict=True):
        old = next(item for item in order["items"] if item["item_id"] == old_id)
        product = state["products"][old["product_id"]]
        new = product["items"].get(new_id)
        if new is None:
            raise RetailError(
                f"item {new_id!r} is not a variant of {product['name']} (product "
                f"{product['product_id']}); an item can only change to another option of "
                "the same product"
            )
        if new_id == old_id:
            raise RetailError(f"new item {new_id} is the same as the old one")
        if not new["available"]:
            raise RetailError(f"item {new_id} ({_options(new['options'])}) is out of stock")
        difference += new["price_cents"] - old["price_cents"]
    return difference


def _settle(method: dict, difference: int) -> None:
    """A price difference paid by (positive) or refunded to (negative) ``method``."""
    if method["kind"] == "gift_card":
        if difference > method["balance_cents"]:
            raise RetailError(
                f"gift card {method['id']} holds {method['balance_cents']} cents, less than "
                f"the {difference} cents to pay"
            )
        method["balance_cents"] -= difference


def _options(options: dict[str, str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in options.items())


def _address(street: str, city: str, state: str, zip: str) -> dict:
    fields = {"street": street, "city": city, "state": state, "zip": zip}
    for name, value in fields.items():
        if not value.strip():
            raise RetailError(f"{name} is empty")
        if len(value) > 100:
            raise RetailError(f"{name} is longer than 100 characters")
    return {name: value.strip() for name, value in fields.items()}


# --- The tools ---------------------------------------------------------------------------------


@tool(hidden=["state"])
def find_user_id_by_email(email: str, state: dict) -> str:
    """Find a customer's user id by their email address.

    Args:
        email: The email address, e.g. "ana.silva@example.com".
    """
    wanted = email.strip().lower()
    for user in state["users"].values():
        if user["email"] == wanted:
            state["_session"]["identified"].append(user["user_id"])
            return user["user_id"]
    raise RetailError(f"no user has the email {email!r}")


@tool(hidden=["state"])
def find_user_id_by_name_zip(first_name: str, last_name: str, zip: str, state: dict) -> str:
    """Find a customer's user id by their first name, last name and zip code.

    Args:
        first_name: The first name, e.g. "Ana".
        last_name: The last name, e.g. "Silva".
        zip: The zip code of their default address, e.g. "02139".
    """
    key = (first_name.strip().lower(), last_name.strip().lower(), zip.strip())
    for user in state["users"].values():
        if (user["first_name"].lower(), user["last_name"].lower(), user["address"]["zip"]) == key:
            state["_session"]["identified"].append(user["user_id"])
            return user["user_id"]
    raise RetailError("no user has that first name, last name and zip code")


@tool(hidden=["state"])
def send_verification_code(user_id: str, state: dict) -> str:
    """Text a one-time verification code to the customer's phone. Only the customer can read
    it: ask them for it, then call verify_user.

    Args:
        user_id: The user id, from find_user_id_by_email or find_user_id_by_name_zip.
    """
    user = _identified(state, user_id)
    code = state["_codes"][user_id]
    state["_phones"][user_id].append(f"Your ShopCo verification code is {code}.")
    return f"A verification code was texted to the phone ending {user['phone'][-4:]}."


@tool(hidden=["state"])
def verify_user(user_id: str, code: str, state: dict) -> str:
    """Verify the customer with the code they read from their phone. Needed before any change
    to their orders or profile. Three wrong codes lock verification for this conversation.

    Args:
        user_id: The user id.
        code: The code the customer read out.
    """
    _identified(state, user_id)
    session = state["_session"]
    if session["attempts"].get(user_id, 0) >= MAX_CODE_ATTEMPTS:
        raise RetailError("too many wrong codes: verification is locked; transfer to a human")
    if not state["_phones"][user_id]:
        raise RetailError("no code was sent yet: call send_verification_code first")
    if code.strip() != state["_codes"][user_id]:
        session["attempts"][user_id] = session["attempts"].get(user_id, 0) + 1
        raise RetailError("wrong code")
    if user_id not in session["verified"]:
        session["verified"].append(user_id)
    return f"user {user_id} is verified"


@tool(hidden=["state"])
def get_user_details(user_id: str, state: dict) -> dict:
    """A customer's profile: name, email, default address, payment methods and order ids.

    Args:
        user_id: The user id.
    """
    user = _identified(state, user_id)
    return {
        "user_id": user_id,
        "name": f"{user['first_name']} {user['last_name']}",
        "email": user["email"],
        "address": user["address"],
        "payment_methods": list(user["payment_methods"].values()),
        "orders": list(user["orders"]),
    }


@tool(hidden=["state"])
def get_order_details(order_id: str, state: dict) -> dict:
    """An order's status, items (with item and product ids, options and prices), shipping
    address, payments and total.

    Args:
        order_id: The order id, e.g. "#W1234567".
    """
    order = _order(state, order_id)
    return {**order, "total_cents": sum(item["price_cents"] for item in order["items"])}


@tool(hidden=["state"])
def list_product_types(state: dict) -> dict[str, str]:
    """Every product type the shop sells, as {name: product_id}."""
    return {product["name"]: pid for pid, product in state["products"].items()}


@tool(hidden=["state"])
def get_product_details(product_id: str, state: dict) -> dict:
    """A product's variants: each item's id, options, price and availability.

    Args:
        product_id: The product id, from list_product_types or an order's items.
    """
    product = state["products"].get(product_id)
    if product is None:
        raise RetailError(f"no product {product_id!r}; list_product_types lists them")
    return product


@tool(hidden=["state"])
def cancel_pending_order(order_id: str, reason: str, state: dict) -> dict:
    """Cancel a pending order; what was paid is refunded to the payment methods used (a gift
    card at once). Only after the customer confirmed.

    Args:
        order_id: The order id.
        reason: "no longer needed" or "ordered by mistake".
    """
    order = _order(state, order_id, verified=True)
    _status(order, "pending")
    if reason not in CANCEL_REASONS:
        raise RetailError(f"reason must be one of {list(CANCEL_REASONS)}, got {reason!r}")
    user = state["users"][order["user_id"]]
    for payment in [p for p in order["payments"] if p["kind"] == "payment"]:
        method = user["payment_methods"][payment["payment_method_id"]]
        if method["kind"] == "gift_card":
            method["balance_cents"] += payment["amount_cents"]
        order["payments"].append({**payment, "kind": "refund"})
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    return {"order_id": order_id, "status": "cancelled"}


@tool(hidden=["state"])
def modify_pending_order_address(
    order_id: str, street: str, city: str, state_code: str, zip: str, state: dict
) -> dict:
    """Change the shipping address of a pending order. Only after the customer confirmed.

    Args:
        order_id: The order id.
        street: Street and number.
        city: City.
        state_code: Two-letter state code, e.g. "MA".
        zip: Zip code.
    """
    order = _order(state, order_id, verified=True)
    _status(order, "pending")
    order["address"] = _address(street, city, state_code, zip)
    return {"order_id": order_id, "address": order["address"]}


@tool(hidden=["state"])
def modify_pending_order_items(
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
    state: dict,
) -> dict:
    """Change items of a pending order to other options of the same products, all in one call
    (it can be done once per order). The price difference is paid by, or refunded to,
    ``payment_method_id`` (a gift card must cover it). Only after the customer confirmed.

    Args:
        order_id: The order id.
        item_ids: The item ids to change, from get_order_details.
        new_item_ids: The new item ids, one per item, in the same order.
        payment_method_id: The payment method for the price difference, e.g. "gift_card_1234567".
    """
    order = _order(state, order_id, verified=True)
    _status(order, "pending")
    user = state["users"][order["user_id"]]
    method = _payment(user, payment_method_id)
    difference = _swap(state, order, item_ids, new_item_ids)
    _settle(method, difference)
    for old_id, new_id in zip(item_ids, new_item_ids, strict=True):
        line = next(item for item in order["items"] if item["item_id"] == old_id)
        new = state["products"][line["product_id"]]["items"][new_id]
        line.update(item_id=new_id, options=dict(new["options"]), price_cents=new["price_cents"])
    if difference:
        kind = "payment" if difference > 0 else "refund"
        order["payments"].append(
            {"kind": kind, "payment_method_id": payment_method_id, "amount_cents": abs(difference)}
        )
    order["status"] = "pending (items modified)"
    return {"order_id": order_id, "status": order["status"], "price_difference_cents": difference}


@tool(hidden=["state"])
def return_delivered_order_items(
    order_id: str, item_ids: list[str], payment_method_id: str, state: dict
) -> dict:
    """Request the return of items of a delivered order; the refund goes to the original
    payment method or to one of the customer's gift cards. Only after the customer confirmed.

    Args:
        order_id: The order id.
        item_ids: The item ids to return, from get_order_details.
        payment_method_id: Where the refund goes.
    """
    order = _order(state, order_id, verified=True)
    _status(order, "delivered")
    user = state["users"][order["user_id"]]
    method = _payment(user, payment_method_id)
    original = {p["payment_method_id"] for p in order["payments"] if p["kind"] == "payment"}
    if payment_method_id not in original and method["kind"] != "gift_card":
        raise RetailError(
            "a refund goes to the order's original payment method or to a gift card, "
            f"not to {payment_method_id}"
        )
    if not item_ids:
        raise RetailError("item_ids is empty: list the item ids to return")
    held = Counter(item["item_id"] for item in order["items"])
    for item_id, count in Counter(item_ids).items():
        if held[item_id] < count:
            raise RetailError(f"order {order_id} has no (more) item {item_id!r}")
    refund = 0
    for item_id in item_ids:
        refund += next(i["price_cents"] for i in order["items"] if i["item_id"] == item_id)
    order["status"] = "return requested"
    order["return"] = {
        "item_ids": sorted(item_ids),
        "payment_method_id": payment_method_id,
        "refund_cents": refund,
    }
    return {"order_id": order_id, "status": order["status"], "refund_cents": refund}


@tool(hidden=["state"])
def exchange_delivered_order_items(
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
    state: dict,
) -> dict:
    """Exchange items of a delivered order for other options of the same products, all in one
    call. The price difference is paid by, or refunded to, ``payment_method_id`` (a gift card
    must cover it). Only after the customer confirmed.

    Args:
        order_id: The order id.
        item_ids: The item ids to exchange.
        new_item_ids: The new item ids, one per item, in the same order.
        payment_method_id: The payment method for the price difference.
    """
    order = _order(state, order_id, verified=True)
    _status(order, "delivered")
    user = state["users"][order["user_id"]]
    method = _payment(user, payment_method_id)
    difference = _swap(state, order, item_ids, new_item_ids)
    _settle(method, difference)
    order["status"] = "exchange requested"
    order["exchange"] = {
        "item_ids": list(item_ids),
        "new_item_ids": list(new_item_ids),
        "payment_method_id": payment_method_id,
        "price_difference_cents": difference,
    }
    return {"order_id": order_id, "status": order["status"], "price_difference_cents": difference}


@tool(hidden=["state"])
def modify_user_address(
    user_id: str, street: str, city: str, state_code: str, zip: str, state: dict
) -> dict:
    """Change a customer's default address. Only after the customer confirmed.

    Args:
        user_id: The user id.
        street: Street and number.
        city: City.
        state_code: Two-letter state code.
        zip: Zip code.
    """
    user = _verified(state, user_id)
    user["address"] = _address(street, city, state_code, zip)
    return {"user_id": user_id, "address": user["address"]}


@tool(hidden=["state"])
def transfer_to_human_agents(summary: str, state: dict) -> str:
    """Hand the customer over to a human agent, ending this conversation: only when the request
    cannot be handled with these tools.

    Args:
        summary: The customer's issue, for the human agent.
    """
    state["transfers"] += 1
    return "Transfer successful."


TOOLS = [
    find_user_id_by_email,
    find_user_id_by_name_zip,
    send_verification_code,
    verify_user,
    get_user_details,
    get_order_details,
    list_product_types,
    get_product_details,
    cancel_pending_order,
    modify_pending_order_address,
    modify_pending_order_items,
    return_delivered_order_items,
    exchange_delivered_order_items,
    modify_user_address,
    transfer_to_human_agents,
]
_TOOLBOX = Toolbox(TOOLS)


def snapshot(state: dict) -> dict[str, Any]:
    """The part of the database the grade compares: users, orders, products and hand-offs.
    The conversation's session (who was identified, verified), the codes and the customer's
    phone are left out."""
    return {key: value for key, value in state.items() if not key.startswith("_")}


# --- The policy the agent is given -------------------------------------------------------------

RETAIL_POLICY = """You are ShopCo's customer service agent. You help one customer per \
conversation, using the shop's tools.

To call a tool, write <tool_call>{"name": "TOOL_NAME", "arguments": {...}}</tool_call>; its \
result comes back in the next message. A message without a tool call is sent to the customer. \
Do not call tools and talk to the customer in the same message.

Rules:
- First identify the customer: by email (find_user_id_by_email), or by first name, last name \
and zip code (find_user_id_by_name_zip). Before changing anything, verify them: \
send_verification_code, ask them for the code, then verify_user.
- Only help the customer you verified: refuse requests about anyone else's orders.
- You can cancel or change pending orders (address, or items to other options of the same \
product), return or exchange items of delivered orders, change the customer's default \
address, and look up orders, products and prices.
- Before any change, tell the customer exactly what you will do (order, items, amounts, \
payment method) and ask them to confirm; act only after they say yes.
- A cancellation needs a reason: "no longer needed" or "ordered by mistake".
- Refunds of returns go to the original payment method or to a gift card. Price differences \
are paid by, or refunded to, a payment method the customer chooses; a gift card must cover \
the amount.
- Amounts in the tools are integer cents; tell the customer dollars ($12.34).
- Never make up information. If a request cannot be handled with your tools, transfer the \
customer to a human agent (transfer_to_human_agents).
- When a request is handled, ask whether there is anything else. The customer ends the \
conversation."""


# --- Tasks -------------------------------------------------------------------------------------

_PLACES = [("Boston", "MA", "02139"), ("Austin", "TX", "78701"), ("Denver", "CO", "80202"),
           ("Seattle", "WA", "98101"), ("Chicago", "IL", "60601"), ("Portland", "OR", "97201"),
           ("Madison", "WI", "53703"), ("Raleigh", "NC", "27601")]  # fmt: skip
_STREETS = ["Maple Street", "Oak Avenue", "Pine Road", "Cedar Lane", "Elm Court", "Birch Way",
            "Willow Drive", "Harbor Road"]  # fmt: skip


def _plain(cents: int) -> str:
    """An amount as a required output: dollars and cents, no sign or commas ("1093.34")."""
    return f"{cents // 100}.{cents % 100:02d}"


class _World:
    """Builds one task's initial database from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.state: dict[str, Any] = {
            "users": {},
            "orders": {},
            "products": copy.deepcopy(_CATALOGUE),
            "transfers": 0,
            "_session": {"identified": [], "verified": [], "attempts": {}},
            "_codes": {},
            "_phones": {},
        }
        for product in self.state["products"].values():
            for item in product["items"].values():
                item["available"] = rng.random() < 0.75
        names = rng.sample([(f, la) for f in FIRST_NAMES for la in LAST_NAMES], 5)
        self.users = [self.user(first, last) for first, last in names]

    def _id(self, digits: int = 7) -> str:
        return str(self.rng.randrange(10 ** (digits - 1), 10**digits))

    def address(self) -> dict:
        city, state, zip_code = self.rng.choice(_PLACES)
        street = f"{self.rng.randint(1, 999)} {self.rng.choice(_STREETS)}"
        return {"street": street, "city": city, "state": state, "zip": zip_code}

    def user(self, first: str, last: str) -> str:
        user_id = f"{first.lower()}_{last.lower()}_{self._id(4)}"
        methods = {}
        for kind in ["credit_card", "gift_card", "paypal"][: self.rng.randint(1, 3)]:
            method_id = f"{kind}_{self._id()}"
            method: dict[str, Any] = {"id": method_id, "kind": kind}
            if kind == "credit_card":
                method["last4"] = self._id(4)
            if kind == "gift_card":
                method["balance_cents"] = self.rng.randint(0, 300) * 100
            methods[method_id] = method
        self.state["users"][user_id] = {
            "user_id": user_id,
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}{self.rng.randint(1, 99)}@example.com",
            "phone": f"+1-555-{self._id(3)}-{self._id(4)}",
            "address": self.address(),
            "payment_methods": methods,
            "orders": [],
        }
        self.state["_codes"][user_id] = self._id(6)
        self.state["_phones"][user_id] = []
        for _ in range(self.rng.randint(1, 2)):
            self.order(user_id, self.rng.choice(["processed", "delivered", "cancelled"]))
        return user_id

    def method(self, user_id: str, kind: str) -> str:
        """The user's payment method of ``kind``, added when missing."""
        methods = self.state["users"][user_id]["payment_methods"]
        found = next((m for m in methods if methods[m]["kind"] == kind), None)
        if found is not None:
            return found
        method_id = f"{kind}_{self._id()}"
        methods[method_id] = {"id": method_id, "kind": kind}
        if kind == "credit_card":
            methods[method_id]["last4"] = self._id(4)
        if kind == "gift_card":
            methods[method_id]["balance_cents"] = self.rng.randint(50, 300) * 100
        return method_id

    def order(self, user_id: str, status: str, n_items: int = 0, paid_with: str = "") -> str:
        order_id = f"#W{self._id()}"
        while order_id in self.state["orders"]:
            order_id = f"#W{self._id()}"
        products = self.rng.sample(list(self.state["products"].values()), n_items or 2)
        items = []
        for product in products:
            item = self.rng.choice(list(product["items"].values()))
            items.append(
                {
                    "item_id": item["item_id"],
                    "product_id": product["product_id"],
                    "name": product["name"],
                    "options": dict(item["options"]),
                    "price_cents": item["price_cents"],
                }
            )
        user = self.state["users"][user_id]
        method = paid_with or self.rng.choice(list(user["payment_methods"]))
        total = sum(item["price_cents"] for item in items)
        self.state["orders"][order_id] = {
            "order_id": order_id,
            "user_id": user_id,
            "status": status,
            "items": items,
            "address": dict(user["address"]),
            "payments": [{"kind": "payment", "payment_method_id": method, "amount_cents": total}],
            "cancel_reason": None,
            "return": None,
            "exchange": None,
        }
        user["orders"].append(order_id)
        return order_id

    def variant(self, line: dict) -> str:
        """Another available option of an order line's product (made available if none is)."""
        product = self.state["products"][line["product_id"]]
        others = [i for i in product["items"] if i != line["item_id"]]
        available = [i for i in others if product["items"][i]["available"]]
        choice = self.rng.choice(available or others)
        product["items"][choice]["available"] = True
        return choice

    def total(self, order_id: str) -> int:
        return sum(item["price_cents"] for item in self.state["orders"][order_id]["items"])


class _Script:
    """A task under construction: the customer's goal and the gold agent's steps."""

    def __init__(self, world: _World, user_id: str, n: int) -> None:
        self.world, self.user_id = world, user_id
        self.user = world.state["users"][user_id]
        self.steps: list[dict] = []  # {"say": text} or {"name": tool, "arguments": {...}}
        self.facts: list[tuple[tuple[str, ...], str]] = []
        self.outputs: list[str] = []
        self.requests: list[str] = []
        self.by_email = n % 2 == 0

    def say(self, text: str) -> None:
        self.steps.append({"say": text})

    def call(self, name: str, **arguments: Any) -> None:
        self.steps.append({"name": name, "arguments": arguments})

    def who(self) -> str:
        user = self.user
        how = (
            f"your email is {user['email']}"
            if self.by_email
            else f"you live in zip code {user['address']['zip']}"
        )
        return f"You are {user['first_name']} {user['last_name']}; {how}."

    def authenticate(self) -> None:
        user = self.user
        if self.by_email:
            self.facts.append((("email",), f"My email is {user['email']}."))
            self.say(
                "I'd be glad to help. First I need to find your account: what is the email "
                "address on it?"
            )
            self.call("find_user_id_by_email", email=user["email"])
        else:
            self.facts.append(
                (
                    ("your name", "zip"),
                    f"I'm {user['first_name']} {user['last_name']}, zip code "
                    f"{user['address']['zip']}.",
                )
            )
            self.say(
                "I'd be glad to help. First I need to find your account: what are your first "
                "and last name and your zip code?"
            )
            self.call(
                "find_user_id_by_name_zip",
                first_name=user["first_name"],
                last_name=user["last_name"],
                zip=user["address"]["zip"],
            )
        self.call("send_verification_code", user_id=self.user_id)
        self.say("I have texted a verification code to your phone. Please read me the code.")
        code = self.world.state["_codes"][self.user_id]
        self.call("verify_user", user_id=self.user_id, code=code)

    def method_words(self, method_id: str) -> str:
        method = self.user["payment_methods"][method_id]
        if method["kind"] == "credit_card":
            return f"credit card ending {method['last4']}"
        return "gift card" if method["kind"] == "gift_card" else "PayPal account"

    def anything_else(self, text: str) -> None:
        self.say(f"{text} Is there anything else I can help you with?")


def _lines(order: dict, item_ids: list[str]) -> str:
    lines = [next(i for i in order["items"] if i["item_id"] == item_id) for item_id in item_ids]
    return " and ".join(f"the {i['name']} ({_options(i['options'])})" for i in lines)


# Each builder sets up the world for task n and fills in the script; it returns the goal's
# instruction and opening message.


def _cancel(s: _Script, n: int) -> tuple[str, str]:
    kind = "gift_card" if n % 2 == 0 else "credit_card"
    method = s.world.method(s.user_id, kind)
    order_id = s.world.order(s.user_id, "pending", n_items=1 + n % 3, paid_with=method)
    order = s.world.state["orders"][order_id]
    reason = CANCEL_REASONS[(n // 2) % 2]
    total = s.world.total(order_id)
    s.facts += [
        (("order number", "which order"), f"It's order {order_id}."),
        (("reason for",), f"The reason: {reason}."),
    ]
    s.authenticate()
    s.say(
        "Which order would you like to cancel (the order number), and what is the reason for "
        "cancelling: 'no longer needed' or 'ordered by mistake'?"
    )
    s.call("get_order_details", order_id=order_id)
    s.say(
        f"Order {order_id} ({_lines(order, [i['item_id'] for i in order['items']])}) is pending; "
        f"I will cancel it as '{reason}', and {usd(total)} will go back to your "
        f"{s.method_words(method)}. Shall I proceed (yes/no)?"
    )
    s.call("cancel_pending_order", order_id=order_id, reason=reason)
    s.anything_else(f"Order {order_id} is cancelled; {usd(total)} will be refunded.")
    instruction = (
        f"{s.who()} You want to cancel your pending order {order_id} because it was "
        f"{'not needed any more' if reason == 'no longer needed' else 'ordered by mistake'} "
        f"(the reason is '{reason}')."
    )
    return instruction, "Hi, I'd like to cancel one of my orders."


def _cancel_refused(s: _Script, n: int) -> tuple[str, str]:
    status = "delivered" if n % 2 == 0 else "processed"
    order_id = s.world.order(s.user_id, status, n_items=2)
    total = s.world.total(order_id)
    s.facts += [
        (("order number", "which order"), f"Order {order_id}."),
        (("reason for",), "I just don't need it any more."),
    ]
    s.requests.append(f"Then how much did I pay for order {order_id} in total?")
    s.outputs.append(_plain(total))
    s.authenticate()
    s.say(
        "Which order would you like to cancel (the order number), and what is the reason for "
        "cancelling?"
    )
    s.call("get_order_details", order_id=order_id)
    s.anything_else(
        f"I'm sorry: order {order_id} is already {status}, and only pending orders can be "
        "cancelled."
    )
    s.anything_else(f"Order {order_id} came to {usd(total)} in total.")
    instruction = (
        f"{s.who()} You want to cancel order {order_id} (you no longer need it). If that is not "
        "possible, you want to know how much you paid for it in total."
    )
    return instruction, "Hello, I need to cancel an order please."


def _new_address(s: _Script) -> dict:
    address = s.world.address()
    while address == s.user["address"]:
        address = s.world.address()
    return address


def _address_words(address: dict) -> str:
    return f"{address['street']}, {address['city']}, {address['state']} {address['zip']}"


def _address_arguments(address: dict) -> dict:
    return {
        "street": address["street"],
        "city": address["city"],
        "state_code": address["state"],
        "zip": address["zip"],
    }


def _order_address(s: _Script, n: int) -> tuple[str, str]:
    order_id = s.world.order(s.user_id, "pending", n_items=1 + n % 2)
    address = _new_address(s)
    s.facts += [
        (("order number", "which order"), f"It's order {order_id}."),
        (("new shipping address",), f"Please ship it to {_address_words(address)}."),
    ]
    s.authenticate()
    s.say("Which order is it (the order number), and what is the new shipping address?")
    s.call("get_order_details", order_id=order_id)
    s.say(
        f"Order {order_id} is pending. I will ship it to {_address_words(address)} instead. "
        "Shall I proceed (yes/no)?"
    )
    s.call("modify_pending_order_address", order_id=order_id, **_address_arguments(address))
    s.anything_else(f"Order {order_id} will now ship to {_address_words(address)}.")
    instruction = (
        f"{s.who()} You moved: your pending order {order_id} should be shipped to "
        f"{_address_words(address)}."
    )
    return instruction, "Hi! I need to change where one of my orders is being shipped."


def _default_address(s: _Script, n: int) -> tuple[str, str]:
    address = _new_address(s)
    s.facts.append((("new default address",), f"It's {_address_words(address)}."))
    s.authenticate()
    s.say("What is your new default address?")
    s.say(
        f"I will change your default address to {_address_words(address)}. Shall I proceed "
        "(yes/no)?"
    )
    s.call("modify_user_address", user_id=s.user_id, **_address_arguments(address))
    s.anything_else(f"Your default address is now {_address_words(address)}.")
    instruction = (
        f"{s.who()} You moved to {_address_words(address)} and want it as the default address "
        "of your account."
    )
    return instruction, "Hi, I'd like to update the address on my account."


def _return(s: _Script, n: int) -> tuple[str, str]:
    order_id = s.world.order(s.user_id, "delivered", n_items=2 + n % 2)
    order = s.world.state["orders"][order_id]
    returned = [line["item_id"] for line in order["items"][: 1 + n % 2]]
    original = order["payments"][0]["payment_method_id"]
    to_gift = n % 2 == 1
    method = s.world.method(s.user_id, "gift_card") if to_gift else original
    refund = sum(line["price_cents"] for line in order["items"] if line["item_id"] in returned)
    s.facts += [
        (("order number", "which order"), f"Order {order_id}."),
        (("which item",), f"I want to return {_lines(order, returned)}."),
        (("refund go",), f"Please refund it to my {s.method_words(method)}."),
    ]
    s.outputs.append(_plain(refund))
    s.authenticate()
    s.say(
        "Which order is it (the order number), which items would you like to return, and where "
        "should the refund go: the original payment method or a gift card?"
    )
    s.call("get_order_details", order_id=order_id)
    s.say(
        f"I will request the return of {_lines(order, returned)} from order {order_id}; "
        f"{usd(refund)} will be refunded to your {s.method_words(method)}. Shall I proceed "
        "(yes/no)?"
    )
    s.call(
        "return_delivered_order_items",
        order_id=order_id,
        item_ids=returned,
        payment_method_id=method,
    )
    s.anything_else(
        f"The return is requested: you will receive {usd(refund)} once the items arrive. "
        "An email explains how to send them."
    )
    instruction = (
        f"{s.who()} You received order {order_id} and want to return {_lines(order, returned)}, "
        f"with the refund to your {s.method_words(method)}. You want to know the refund amount."
    )
    return instruction, "Hi, I want to return some items I received."


def _change_items(s: _Script, n: int, status: str) -> tuple[str, str]:
    order_id = s.world.order(s.user_id, status, n_items=2)
    order = s.world.state["orders"][order_id]
    line = order["items"][n % 2]
    new_id = s.world.variant(line)
    product = s.world.state["products"][line["product_id"]]
    new = product["items"][new_id]
    difference = new["price_cents"] - line["price_cents"]
    kind = ["credit_card", "gift_card", "paypal"][n % 3]
    method = s.world.method(s.user_id, kind)
    gift = s.user["payment_methods"][method]
    if kind == "gift_card" and gift["balance_cents"] < difference:
        gift["balance_cents"] = difference + s.world.rng.randint(0, 50) * 100
    verb = "exchange" if status == "delivered" else "change"
    s.facts += [
        (("order number", "which order"), f"Order {order_id}."),
        (("which item",), f"The {line['name']} ({_options(line['options'])})."),
        (("which option",), f"I'd like it with {_options(new['options'])} instead."),
        (("price difference",), f"Use my {s.method_words(method)} for any difference."),
    ]
    s.authenticate()
    s.say(
        f"Which order is it (the order number), which item would you like to {verb}, and which "
        "option would you like instead? Also, which payment method should pay or receive any "
        "price difference?"
    )
    s.call("get_order_details", order_id=order_id)
    s.call("get_product_details", product_id=line["product_id"])
    owed = (
        f"you pay {usd(difference)} more"
        if difference > 0
        else f"you get {usd(-difference)} back"
        if difference < 0
        else "the price is the same"
    )
    s.say(
        f"I will {verb} the {line['name']} ({_options(line['options'])}) of order {order_id} for "
        f"the one with {_options(new['options'])}: {owed}, with your {s.method_words(method)}. "
        "Shall I proceed (yes/no)?"
    )
    tool_name = (
        "exchange_delivered_order_items" if status == "delivered" else "modify_pending_order_items"
    )
    s.call(
        tool_name,
        order_id=order_id,
        item_ids=[line["item_id"]],
        new_item_ids=[new_id],
        payment_method_id=method,
    )
    s.anything_else(
        "Done: the exchange is requested." if verb == "exchange" else "Done: the item is changed."
    )
    instruction = (
        f"{s.who()} In order {order_id} ({status}), you want the {line['name']} "
        f"({_options(line['options'])}) with {_options(new['options'])} instead, paying or "
        f"receiving any difference with your {s.method_words(method)}."
    )
    opening = (
        "Hi, I'd like to exchange an item I received for another option."
        if verb == "exchange"
        else "Hello, I want to change an item in an order I haven't received yet."
    )
    return instruction, opening


def _exchange(s: _Script, n: int) -> tuple[str, str]:
    return _change_items(s, n, "delivered")


def _modify_items(s: _Script, n: int) -> tuple[str, str]:
    return _change_items(s, n, "pending")


def _price(s: _Script, n: int) -> tuple[str, str]:
    products = s.world.state["products"]
    product_id = s.world.rng.choice(list(products))
    product = products[product_id]
    available = [i for i in product["items"].values() if i["available"]]
    if not available:
        first = next(iter(product["items"].values()))
        first["available"] = True
        available = [first]
    cheapest = min(available, key=lambda item: (item["price_cents"], item["item_id"]))
    s.outputs.append(_plain(cheapest["price_cents"]))
    s.call("list_product_types")
    s.call("get_product_details", product_id=product_id)
    s.anything_else(
        f"The cheapest {product['name']} in stock is the one with {_options(cheapest['options'])}, "
        f"at {usd(cheapest['price_cents'])}."
    )
    instruction = (
        f"{s.who()} You want to know the price of the cheapest {product['name']} in stock, and "
        "which option it is. You do not want to buy anything yet."
    )
    return instruction, f"Hi! What's the cheapest {product['name']} you have in stock right now?"


def _two_requests(s: _Script, n: int) -> tuple[str, str]:
    instruction, opening = _cancel(s, n)
    address = _new_address(s)
    s.requests.append("Yes, I'd also like to update the default address on my account.")
    s.facts.append((("new default address",), f"It's {_address_words(address)}."))
    s.say("Of course. What is your new default address?")
    s.say(
        f"I will change your default address to {_address_words(address)}. Shall I proceed "
        "(yes/no)?"
    )
    s.call("modify_user_address", user_id=s.user_id, **_address_arguments(address))
    s.anything_else(f"Your default address is now {_address_words(address)}.")
    instruction += f" You also moved to {_address_words(address)}: make it your default address."
    return instruction, opening


def _other_user(s: _Script, n: int) -> tuple[str, str]:
    other_id = next(u for u in s.world.users if u != s.user_id)
    other = s.world.state["users"][other_id]
    foreign = s.world.order(other_id, "pending", n_items=1)
    own = s.world.order(s.user_id, "delivered", n_items=2)
    total = s.world.total(own)
    s.facts += [
        (("order number", "which order"), f"It's order {foreign}; it's my partner's order."),
        (("reason for",), "No longer needed."),
    ]
    s.requests.append(f"Fine. Then what was the total of my own order {own}?")
    s.outputs.append(_plain(total))
    s.authenticate()
    s.say(
        "Which order would you like to cancel (the order number), and what is the reason for "
        "cancelling?"
    )
    s.call("get_user_details", user_id=s.user_id)
    s.anything_else(
        f"Order {foreign} is not on your account, so I can't change it: I can only help with "
        "your own orders. Your partner would need to contact us."
    )
    s.call("get_order_details", order_id=own)
    s.anything_else(f"Your order {own} came to {usd(total)} in total.")
    instruction = (
        f"{s.who()} You want to cancel order {foreign}, which your partner "
        f"{other['first_name']} {other['last_name']} placed (they no longer need it). If the "
        f"agent refuses, you ask for the total of your own order {own} instead."
    )
    return instruction, "Hi, I'd like to cancel an order for my partner."


def _transfer(s: _Script, n: int) -> tuple[str, str]:
    wishes = [
        "change the email address on my account",
        "close my account for good",
        "file a complaint about a delivery driver",
    ]
    wish = wishes[n % len(wishes)]
    s.authenticate()
    s.call(
        "transfer_to_human_agents",
        summary=f"Verified customer {s.user_id} wants to {wish}; no tool for it.",
    )
    instruction = f"{s.who()} You want to {wish}."
    return instruction, f"Hello, I want to {wish}."


_KINDS: list[tuple[str, Callable[[_Script, int], tuple[str, str]], int]] = [
    ("cancel", _cancel, 5),
    ("cancel-refused", _cancel_refused, 4),
    ("order-address", _order_address, 4),
    ("default-address", _default_address, 4),
    ("return", _return, 5),
    ("exchange", _exchange, 5),
    ("modify-items", _modify_items, 4),
    ("price", _price, 4),
    ("two-requests", _two_requests, 4),
    ("other-user", _other_user, 3),
    ("transfer", _transfer, 3),
]


def retail_tasks() -> TaskList:
    """The fixed task set: ``{kind}-{n}``, each world built from a ``random.Random`` seeded by
    the task's position, so it is the same on every run and in every process."""
    tasks = []
    for kind_index, (kind, build, count) in enumerate(_KINDS):
        for n in range(count):
            world = _World(random.Random(7_000 + 100 * kind_index + n))
            script = _Script(world, world.rng.choice(world.users), n)
            instruction, opening = build(script, n)
            initial = copy.deepcopy(world.state)
            calls = [step for step in script.steps if "say" not in step]
            expected = snapshot(replay(_TOOLBOX, initial, calls))
            changes = expected != snapshot(initial)
            if not changes and not script.outputs:
                raise RuntimeError(f"{kind}-{n}: a task that changes nothing needs an output")
            goal = UserGoal(
                instruction=instruction,
                opening=opening,
                facts=tuple(script.facts),
                requests=tuple(script.requests),
            )
            tasks.append(
                Task(
                    id=f"{kind}-{n}",
                    prompt=opening,
                    metadata={
                        "kind": kind,
                        "user_id": script.user_id,
                        "user_goal": goal.to_dict(),
                        "initial_state": initial,
                        "gold_steps": script.steps,
                        "expected_state": expected,
                        "outputs": script.outputs,
                    },
                )
            )
    return TaskList(tasks)


# --- The environment ---------------------------------------------------------------------------


class Retail(UserSimEnv):
    """ShopCo's service desk: a customer with a hidden goal, 15 tools, tau-bench's reward.

    Reward 1.0 when both hold, else 0 (``components`` says which failed):

    - ``state``: the final database (users, payment methods, orders, products, hand-offs)
      equals the one the gold calls leave; the verdict names each difference;
    - ``outputs``: every required output (a refund total, a price, as "123.45") appears in a
      message the agent sent the customer, lower-cased with commas removed.

    Args (besides :class:`~rlenv.tools.dialogue.UserSimEnv`'s ``user``, ``user_seed``,
    ``user_temperature``, ``max_user_turns``, and ``ToolEnv``'s): none of its own.
    """

    max_turns = 30
    finish_tool = "transfer_to_human_agents"
    system_prompt = RETAIL_POLICY

    def load_tools(self):
        return TOOLS

    def load_tasks(self) -> TaskList:
        return retail_tasks()

    def new_state(self, task: Task) -> dict:
        self._customer = task.metadata["user_id"]
        return copy.deepcopy(task.metadata["initial_state"])

    def user_device(self) -> list[str]:
        """The texts on the customer's phone (the agent's verification codes land here)."""
        if not isinstance(self.state, dict):
            return []
        return list(self.state["_phones"].get(self._customer, []))

    def grade(self, answer: str | None) -> Verdict:
        meta = self.task.metadata
        differences = state_diff(snapshot(self.state), meta["expected_state"])
        said = outputs_said(meta["outputs"], self.said)
        missing = [output for output, found in said.items() if not found]
        components = {"state": float(not differences), "outputs": float(not missing)}
        passed = all(components.values())
        sections = [
            ("the final database differs from the gold's", differences),
            ("outputs never told the customer", [repr(output) for output in missing]),
        ]
        summary = ". ".join(f"{title}: {'; '.join(lines)}" for title, lines in sections if lines)
        if len(summary) > MAX_REASON_CHARS:
            count = sum(len(lines) for _, lines in sections)
            summary = summary[: MAX_REASON_CHARS - 30] + f"... ({count} problems in all)"
        return Verdict(
            reward=1.0 if passed else 0.0,
            reason=summary or "the customer's goal was met as the gold meets it",
            parsed={"said": self.said[-5:], "outputs": said},
            components=components,
            error=None if passed else summary,
        )

    def gold_action(self) -> str:
        """The gold agent's next step: the first gold call not made yet (in any order), or the
        next message to the customer; after the steps, the last message again."""
        made = Counter(call_key(o.name, o.arguments) for o in self.trace if o.ok)
        spoken = len(self.said)
        steps = self.task.metadata["gold_steps"]
        for step in steps:
            if "say" in step:
                if spoken == 0:
                    return step["say"]
                spoken -= 1
                continue
            key = call_key(step["name"], step["arguments"])
            if made[key] == 0:
                return get_parser(self.parser).render([ParsedCall(step["name"], step["arguments"])])
            made[key] -= 1
        return next((step["say"] for step in reversed(steps) if "say" in step), "Goodbye.")
