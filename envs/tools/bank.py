"""``rlenv/Bank-v0``: a stateful bank back office, served through tools over several turns.

Each episode gets its own in-memory database — customers, accounts with balances in integer
cents, cards and a transaction log — and a customer request in plain English ("Move half of
Ana Silva's savings into her checking account"). The model looks things up and changes them
with nine tools, then calls ``done(summary)``. Some requests must be refused (not enough money,
a frozen account): the right outcome is then an unchanged database.

Every task is built from its id alone: the initial database comes from a ``random.Random``
seeded by the task's number, and the expected final database is computed by replaying the
task's gold plan on a fresh copy with the real tools. The grade compares final databases
(:func:`rlenv.verifiers.trace.state_diff`) and checks the calls the request cannot be done
without (:func:`rlenv.verifiers.trace.match_calls`).
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from rlenv import Task, TaskList, Verdict
from rlenv.envs.tools._world import FIRST_NAMES, LAST_NAMES, call_key, replay, usd
from rlenv.tools import ParsedCall, Toolbox, ToolEnv, get_parser, tool
from rlenv.verifiers.trace import ExpectedCall, TracePolicy, match_calls, state_diff

__all__ = [
    "AccountNotOpenError",
    "Bank",
    "BankError",
    "InsufficientFundsError",
    "InvalidRequestError",
    "UnknownIdError",
    "bank_tasks",
    "snapshot",
]

MAX_AMOUNT_CENTS = 10**12
MAX_REASON_CHARS = 1500
MUTATING_TOOLS = frozenset({"transfer", "deposit", "withdraw", "freeze_card", "close_account"})


# --- Errors: raised by the tools, shown to the model as "Error: 'tool' raised ...: message" ---


class BankError(ValueError):
    """A request the bank refuses; nothing was changed."""


class UnknownIdError(BankError):
    """No customer, account or card has that id."""


class InsufficientFundsError(BankError):
    """The account holds less than the amount asked for."""


class AccountNotOpenError(BankError):
    """The account is frozen or closed, so no money can move in or out of it."""


class InvalidRequestError(BankError):
    """The request makes no sense (a non-positive amount, a card already frozen...)."""


# --- The database ------------------------------------------------------------------------------
#
# {"customers": {id: {"id", "name"}},
#  "accounts": {id: {"id", "customer_id", "type": "checking"|"savings",
#                    "balance_cents", "status": "open"|"frozen"|"closed"}},
#  "cards": {id: {"id", "account_id", "last4", "status": "active"|"frozen"}},
#  "transactions": [{"id", "account_id", "kind", "amount_cents", "counterparty", "memo"}],
#  "next_transaction": int}


def _customer(state: dict, customer_id: str) -> dict:
    found = state["customers"].get(customer_id)
    if found is None:
        raise UnknownIdError(
            f"no customer with id {customer_id!r}; look customers up with find_customer"
        )
    return found


def _account(state: dict, account_id: str) -> dict:
    found = state["accounts"].get(account_id)
    if found is None:
        raise UnknownIdError(
            f"no account with id {account_id!r}; list a customer's accounts with list_accounts"
        )
    return found


def _open_account(state: dict, account_id: str) -> dict:
    account = _account(state, account_id)
    if account["status"] != "open":
        raise AccountNotOpenError(
            f"account {account_id} is {account['status']}; no money can move in or out of it"
        )
    return account


def _amount(amount_cents: int | float) -> int:
    if isinstance(amount_cents, float):
        if not amount_cents.is_integer():
            raise InvalidRequestError(f"amount_cents must be a whole number, got {amount_cents}")
        amount_cents = int(amount_cents)
    if amount_cents <= 0:
        raise InvalidRequestError(f"amount_cents must be positive, got {amount_cents}")
    if amount_cents > MAX_AMOUNT_CENTS:
        raise InvalidRequestError(f"amount_cents must be at most {MAX_AMOUNT_CENTS}")
    return amount_cents


def _funds(account: dict, amount: int) -> None:
    if account["balance_cents"] < amount:
        raise InsufficientFundsError(
            f"account {account['id']} holds {account['balance_cents']} cents, "
            f"less than the {amount} cents asked for"
        )


def _record(state: dict, account_id: str, kind: str, amount: int, counterparty: str, memo: str):
    state["next_transaction"] += 1
    transaction_id = f"TX-{state['next_transaction']}"
    state["transactions"].append(
        {
            "id": transaction_id,
            "account_id": account_id,
            "kind": kind,
            "amount_cents": amount,
            "counterparty": counterparty,
            "memo": memo[:200],
        }
    )
    return transaction_id


# --- The tools ---------------------------------------------------------------------------------


@tool(hidden=["state"])
def find_customer(name: str, state: dict) -> list[dict]:
    """Find customers by name (case-insensitive; every word given must start a word of the name).

    Args:
        name: A full or partial name, e.g. "Ana Silva" or "silva".
    """
    words = name.lower().split()
    if not words:
        raise InvalidRequestError("give at least one word of the customer's name")
    matches = [
        {"customer_id": customer["id"], "name": customer["name"]}
        for customer in state["customers"].values()
        if all(
            any(part.startswith(word) for part in customer["name"].lower().split())
            for word in words
        )
    ]
    if not matches:
        raise UnknownIdError(f"no customer matches {name!r}; try one word of the name")
    return matches


@tool(hidden=["state"])
def list_accounts(customer_id: str, state: dict) -> list[dict]:
    """List a customer's accounts (id, type, status) and the cards attached to each.

    Balances are not shown here: use get_balance.

    Args:
        customer_id: The customer's id, from find_customer (e.g. "C-101").
    """
    _customer(state, customer_id)
    return [
        {
            "account_id": account["id"],
            "type": account["type"],
            "status": account["status"],
            "cards": [
                {"card_id": card["id"], "last4": card["last4"], "status": card["status"]}
                for card in state["cards"].values()
                if card["account_id"] == account["id"]
            ],
        }
        for account in state["accounts"].values()
        if account["customer_id"] == customer_id
    ]


@tool(hidden=["state"])
def get_balance(account_id: str, state: dict) -> dict:
    """The current balance of an account, in cents, and its status.

    Args:
        account_id: The account's id, from list_accounts (e.g. "ACC-2001").
    """
    account = _account(state, account_id)
    return {
        "account_id": account_id,
        "balance_cents": account["balance_cents"],
        "status": account["status"],
    }


@tool(hidden=["state"])
def list_transactions(account_id: str, state: dict, limit: int = 10) -> list[dict]:
    """An account's most recent transactions, newest first.

    Args:
        account_id: The account's id.
        limit: How many transactions to show, 1 to 50.
    """
    _account(state, account_id)
    if not 1 <= limit <= 50:
        raise InvalidRequestError(f"limit must be between 1 and 50, got {limit}")
    entries = [entry for entry in state["transactions"] if entry["account_id"] == account_id]
    return [
        {key: value for key, value in entry.items() if key != "account_id"}
        for entry in reversed(entries[-limit:])
    ]


@tool(hidden=["state"])
def transfer(
    from_account: str, to_account: str, amount_cents: int, state: dict, memo: str = ""
) -> dict:
    """Move money between two accounts (of the same or different customers).

    Args:
        from_account: The id of the account the money leaves.
        to_account: The id of the account the money goes to.
        amount_cents: The amount in cents: $12.34 is 1234.
        memo: A note stored with the transaction.
    """
    amount = _amount(amount_cents)
    if from_account == to_account:
        raise InvalidRequestError("from_account and to_account are the same account")
    source, target = _open_account(state, from_account), _open_account(state, to_account)
    _funds(source, amount)
    source["balance_cents"] -= amount
    target["balance_cents"] += amount
    transaction_id = _record(state, from_account, "transfer_out", amount, to_account, memo)
    _record(state, to_account, "transfer_in", amount, from_account, memo)
    return {
        "transaction_id": transaction_id,
        "from_balance_cents": source["balance_cents"],
        "to_balance_cents": target["balance_cents"],
    }


@tool(hidden=["state"])
def deposit(account_id: str, amount_cents: int, state: dict, memo: str = "") -> dict:
    """Put money into an account (cash, a cheque or a refund).

    Args:
        account_id: The account's id.
        amount_cents: The amount in cents: $12.34 is 1234.
        memo: A note stored with the transaction.
    """
    amount = _amount(amount_cents)
    account = _open_account(state, account_id)
    account["balance_cents"] += amount
    transaction_id = _record(state, account_id, "deposit", amount, "", memo)
    return {"transaction_id": transaction_id, "balance_cents": account["balance_cents"]}


@tool(hidden=["state"])
def withdraw(account_id: str, amount_cents: int, state: dict, memo: str = "") -> dict:
    """Take cash out of an account.

    Args:
        account_id: The account's id.
        amount_cents: The amount in cents: $12.34 is 1234.
        memo: A note stored with the transaction.
    """
    amount = _amount(amount_cents)
    account = _open_account(state, account_id)
    _funds(account, amount)
    account["balance_cents"] -= amount
    transaction_id = _record(state, account_id, "withdrawal", amount, "", memo)
    return {"transaction_id": transaction_id, "balance_cents": account["balance_cents"]}


@tool(hidden=["state"])
def freeze_card(card_id: str, state: dict) -> dict:
    """Freeze a card (lost or stolen) so it can no longer be used.

    Args:
        card_id: The card's id, from list_accounts (e.g. "CARD-3001"), not its last four digits.
    """
    card = state["cards"].get(card_id)
    if card is None:
        raise UnknownIdError(
            f"no card with id {card_id!r}; list_accounts shows each card's id and last4"
        )
    if card["status"] == "frozen":
        raise InvalidRequestError(f"card {card_id} is already frozen")
    card["status"] = "frozen"
    return {"card_id": card_id, "status": "frozen"}


@tool(hidden=["state"])
def close_account(account_id: str, state: dict) -> dict:
    """Close an account for good. Its balance must be zero (move the money out first).

    Args:
        account_id: The account's id.
    """
    account = _open_account(state, account_id)
    if account["balance_cents"] != 0:
        raise InvalidRequestError(
            f"account {account_id} still holds {account['balance_cents']} cents; "
            "move the money out before closing it"
        )
    account["status"] = "closed"
    return {"account_id": account_id, "status": "closed"}


@tool
def done(summary: str) -> str:
    """Finish: call this once the request is handled, or when it cannot or should not be done.

    Args:
        summary: What you did, or why you did nothing, in a sentence or two for the customer.
    """
    return "ok"


TOOLS = [
    find_customer,
    list_accounts,
    get_balance,
    list_transactions,
    transfer,
    deposit,
    withdraw,
    freeze_card,
    close_account,
    done,
]
_TOOLBOX = Toolbox(TOOLS)


def snapshot(state: dict) -> dict[str, Any]:
    """The part of a database the grade compares: balances and statuses, card statuses, and the
    transaction log as a multiset (ids, memos and order left out, so the same operations in
    another order or with other memos count as the same outcome)."""
    log = Counter(
        " ".join(
            str(part)
            for part in (entry["account_id"], entry["kind"], entry["amount_cents"])
            + ((entry["counterparty"],) if entry["counterparty"] else ())
        )
        for entry in state["transactions"]
    )
    return {
        "accounts": {
            account_id: {"balance_cents": account["balance_cents"], "status": account["status"]}
            for account_id, account in state["accounts"].items()
        },
        "cards": {card_id: card["status"] for card_id, card in state["cards"].items()},
        "transactions": dict(sorted(log.items())),
    }


# --- Tasks -------------------------------------------------------------------------------------

_MERCHANTS = ["Corner Coffee", "GreenGrocer", "CityRail", "BookNook", "FitClub",
              "PetPlace", "Cinema 9", "HomeHardware"]  # fmt: skip
_MEMOS = ["rent share", "concert tickets", "dinner", "birthday gift", "car repair", "loan back"]


class _World:
    """Builds one task's initial database from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.state: dict[str, Any] = {
            "customers": {},
            "accounts": {},
            "cards": {},
            "transactions": [],
            "next_transaction": 5000,
        }
        self._ids = {"C": 100, "ACC": 2000, "CARD": 3000}
        names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
        chosen = rng.sample(names, 5)
        # a namesake: another customer who shares a first name with the first one
        first = chosen[0].split()[0]
        namesake = rng.choice([n for n in names if n.startswith(first + " ") and n not in chosen])
        for name in [*chosen, namesake]:
            self.customer(name)

    def _next(self, prefix: str) -> str:
        self._ids[prefix] += 1
        return f"{prefix}-{self._ids[prefix]}"

    def customer(self, name: str) -> str:
        customer_id = self._next("C")
        self.state["customers"][customer_id] = {"id": customer_id, "name": name}
        checking = self.account(customer_id, "checking", self.rng.randint(20_000, 500_000))
        self.card(checking)
        for _ in range(self.rng.randint(1, 3)):
            merchant = self.rng.choice(_MERCHANTS)
            self.history(checking, merchant, self.rng.randint(300, 12_000))
        if self.rng.random() < 0.7:
            self.account(customer_id, "savings", self.rng.randint(50_000, 2_000_000))
        return customer_id

    def account(self, customer_id: str, kind: str, balance: int, status: str = "open") -> str:
        account_id = self._next("ACC")
        self.state["accounts"][account_id] = {
            "id": account_id,
            "customer_id": customer_id,
            "type": kind,
            "balance_cents": balance,
            "status": status,
        }
        return account_id

    def card(self, account_id: str, status: str = "active") -> str:
        card_id = self._next("CARD")
        taken = {card["last4"] for card in self.state["cards"].values()}
        last4 = f"{self.rng.randrange(10_000):04d}"
        while last4 in taken:
            last4 = f"{self.rng.randrange(10_000):04d}"
        self.state["cards"][card_id] = {
            "id": card_id,
            "account_id": account_id,
            "last4": last4,
            "status": status,
        }
        return card_id

    def history(self, account_id: str, merchant: str, amount: int) -> None:
        _record(self.state, account_id, "card_payment", amount, merchant, "")
        self.state["accounts"][account_id]["balance_cents"] -= amount

    def subject(self) -> tuple[str, str, str]:
        """(customer id, full name, first name) of the customer the request is about: the one
        with a namesake, so looking up the first name alone is ambiguous."""
        customer_id = "C-101"
        name = self.state["customers"][customer_id]["name"]
        return customer_id, name, name.split()[0]

    def other(self) -> tuple[str, str, str]:
        customer_id = self.rng.choice(["C-102", "C-103", "C-104", "C-105"])
        name = self.state["customers"][customer_id]["name"]
        return customer_id, name, name.split()[0]

    def accounts_of(self, customer_id: str, kind: str) -> list[str]:
        return [
            account["id"]
            for account in self.state["accounts"].values()
            if account["customer_id"] == customer_id and account["type"] == kind
        ]

    def ensure(self, customer_id: str, kind: str, balance: int | None = None) -> str:
        """The customer's open account of this kind (created if missing), with this balance."""
        found = self.accounts_of(customer_id, kind)
        account_id = found[0] if found else self.account(customer_id, kind, 0)
        account = self.state["accounts"][account_id]
        if balance is not None:
            account["balance_cents"] = balance
        elif account["balance_cents"] < 10_000:
            account["balance_cents"] += self.rng.randint(50_000, 300_000)
        return account_id

    def set(self, account_id: str, **fields: Any) -> None:
        self.state["accounts"][account_id].update(fields)

    def balance(self, account_id: str) -> int:
        return self.state["accounts"][account_id]["balance_cents"]


def _call(name: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _need(name: str, /, **arguments: Any) -> dict[str, Any]:
    """A required call: each argument with its one acceptable value."""
    return {"name": name, "arguments": {key: [value] for key, value in arguments.items()}}


def _half_savings(world: _World, n: int) -> tuple[str, list, list, str]:
    cid, name, first = world.subject()
    savings = world.ensure(cid, "savings", 2 * world.rng.randint(20_000, 900_000))
    checking = world.ensure(cid, "checking")
    half = world.balance(savings) // 2
    phrasing = [
        f"Please move half of {name}'s savings into {first}'s checking account.",
        f"{name} would like half of the money in their savings account moved to checking.",
    ][n % 2]
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("get_balance", account_id=savings),
        _call("transfer", from_account=savings, to_account=checking, amount_cents=half),
    ]
    required = [_need("transfer", from_account=savings, to_account=checking, amount_cents=half)]
    return phrasing, plan, required, f"Moved {usd(half)} from savings to checking."


def _stolen_card(world: _World, n: int) -> tuple[str, list, list, str]:
    cid, name, first = world.subject()
    checking = world.ensure(cid, "checking", world.rng.randint(150_000, 600_000))
    savings = world.ensure(cid, "savings")
    card = world.card(savings if n % 2 else checking)
    last4 = world.state["cards"][card]["last4"]
    amount = world.rng.randint(20, 900) * 100 + world.rng.choice([0, 50, 99])
    request = (
        f"{name} reports that the card ending in {last4} was stolen. Freeze that card, and "
        f"move {usd(amount)} from {first}'s checking account into savings for safekeeping."
    )
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("freeze_card", card_id=card),
        _call("get_balance", account_id=checking),
        _call("transfer", from_account=checking, to_account=savings, amount_cents=amount),
    ]
    required = [
        _need("freeze_card", card_id=card),
        _need("transfer", from_account=checking, to_account=savings, amount_cents=amount),
    ]
    return request, plan, required, f"Froze card {last4}; moved {usd(amount)} to savings."


def _pay_customer(world: _World, n: int) -> tuple[str, list, list, str]:
    cid, name, first = world.subject()
    other_id, other_name, other_first = world.other()
    source = world.ensure(cid, "checking", world.rng.randint(100_000, 400_000))
    target = world.ensure(other_id, "checking")
    amount = world.rng.randint(1_000, 90_000)
    memo = world.rng.choice(_MEMOS)
    request = (
        f'{name} wants to send {usd(amount)} to {other_name} for "{memo}": from {first}\'s '
        f"checking account into {other_first}'s checking account."
    )
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("find_customer", name=other_name),
        _call("list_accounts", customer_id=other_id),
        _call("get_balance", account_id=source),
        _call("transfer", from_account=source, to_account=target, amount_cents=amount, memo=memo),
    ]
    required = [_need("transfer", from_account=source, to_account=target, amount_cents=amount)]
    return request, plan, required, f"Sent {usd(amount)} to {other_name}."


def _conditional_transfer(world: _World, n: int) -> tuple[str, list, list, str]:
    """Odd n: the money is not there, so nothing may change."""
    cid, name, first = world.subject()
    other_id, other_name, _ = world.other()
    balance = world.rng.randint(5_000, 80_000)
    source = world.ensure(cid, "checking", balance)
    target = world.ensure(other_id, "checking")
    enough = n % 2 == 0
    amount = (
        balance - world.rng.randint(1, 4_000) if enough else balance + world.rng.randint(1, 50_000)
    )
    request = (
        f"{name} asks to transfer {usd(amount)} from {first}'s checking account to "
        f"{other_name}'s checking account. Only do it if the money is there; if it is not, "
        "move nothing and tell me."
    )
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("get_balance", account_id=source),
    ]
    if not enough:
        required = [_need("get_balance", account_id=source)]
        summary = f"Not done: checking holds {usd(balance)}, less than {usd(amount)}."
        return request, plan, required, summary
    plan += [
        _call("find_customer", name=other_name),
        _call("list_accounts", customer_id=other_id),
        _call("transfer", from_account=source, to_account=target, amount_cents=amount),
    ]
    required = [_need("transfer", from_account=source, to_account=target, amount_cents=amount)]
    return request, plan, required, f"Transferred {usd(amount)} to {other_name}."


def _cash_withdrawal(world: _World, n: int) -> tuple[str, list, list, str]:
    """Odd n: the account is frozen, so nothing may change."""
    cid, name, first = world.subject()
    kind = "savings" if n % 4 < 2 else "checking"
    account = world.ensure(cid, kind, world.rng.randint(60_000, 900_000))
    frozen = n % 2 == 1
    if frozen:
        world.set(account, status="frozen")
    amount = world.rng.randint(20, 500) * 100
    request = f"{name} wants to withdraw {usd(amount)} in cash from {first}'s {kind} account."
    plan = [_call("find_customer", name=name), _call("list_accounts", customer_id=cid)]
    if frozen:
        required = [_need("list_accounts", customer_id=cid)]
        return request, plan, required, f"Not done: the {kind} account is frozen."
    plan += [
        _call("get_balance", account_id=account),
        _call("withdraw", account_id=account, amount_cents=amount),
    ]
    required = [_need("withdraw", account_id=account, amount_cents=amount)]
    return request, plan, required, f"Withdrew {usd(amount)} in cash."


def _close_savings(world: _World, n: int) -> tuple[str, list, list, str]:
    cid, name, first = world.subject()
    savings = world.ensure(cid, "savings", world.rng.randint(1, 400_000))
    checking = world.ensure(cid, "checking")
    left = world.balance(savings)
    request = [
        f"{name} wants to close {first}'s savings account. Move whatever is left in it to "
        f"{first}'s checking account first.",
        f"Close {name}'s savings account; any remaining balance should go to checking.",
    ][n % 2]
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("get_balance", account_id=savings),
        _call("transfer", from_account=savings, to_account=checking, amount_cents=left),
        _call("close_account", account_id=savings),
    ]
    required = [
        _need("transfer", from_account=savings, to_account=checking, amount_cents=left),
        _need("close_account", account_id=savings),
    ]
    return request, plan, required, f"Moved {usd(left)} to checking and closed savings."


def _refund_duplicate(world: _World, n: int) -> tuple[str, list, list, str]:
    cid, name, first = world.subject()
    checking = world.ensure(cid, "checking", world.rng.randint(100_000, 400_000))
    merchant = world.rng.choice(_MERCHANTS)
    charge = world.rng.randint(400, 25_000)
    world.history(checking, merchant, charge)
    world.history(checking, merchant, charge)
    other = world.rng.choice([m for m in _MERCHANTS if m != merchant])
    world.history(checking, other, world.rng.randint(300, 9_000))
    request = (
        f"{name} says {merchant} charged {first}'s checking account twice for the same "
        "purchase. Refund one of the two charges by depositing its amount back into checking."
    )
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("list_transactions", account_id=checking),
        _call("deposit", account_id=checking, amount_cents=charge, memo=f"refund {merchant}"),
    ]
    required = [_need("deposit", account_id=checking, amount_cents=charge)]
    return request, plan, required, f"Refunded {usd(charge)} from {merchant}."


def _lost_wallet(world: _World, n: int) -> tuple[str, list, list, str]:
    cid, name, first = world.subject()
    checking = world.ensure(cid, "checking")
    savings = world.ensure(cid, "savings")
    world.card(savings)
    if n % 2:
        world.card(checking, status="frozen")
    if n >= 2:
        world.card(checking)
    active = [
        card["id"]
        for card in world.state["cards"].values()
        if world.state["accounts"][card["account_id"]]["customer_id"] == cid
        and card["status"] == "active"
    ]
    request = f"{name} lost {first}'s wallet. Freeze every card {first} has that is still active."
    plan = [_call("find_customer", name=name), _call("list_accounts", customer_id=cid)]
    plan += [_call("freeze_card", card_id=card) for card in active]
    required = [_need("freeze_card", card_id=card) for card in active]
    return request, plan, required, f"Froze {len(active)} cards."


def _top_up(world: _World, n: int) -> tuple[str, list, list, str]:
    """n == 4: checking already holds more than the target, so nothing may change."""
    cid, name, first = world.subject()
    target = world.rng.randint(10, 60) * 10_000
    has = target + world.rng.randint(1, 50_000) if n == 4 else target - world.rng.randint(1, 9_000)
    checking = world.ensure(cid, "checking", has)
    savings = world.ensure(cid, "savings", world.rng.randint(100_000, 900_000))
    request = (
        f"Top up {name}'s checking account to exactly {usd(target)}, using money from "
        f"{first}'s savings. If checking already holds that much, leave everything as it is."
    )
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("get_balance", account_id=checking),
    ]
    if n == 4:
        required = [_need("get_balance", account_id=checking)]
        return request, plan, required, f"Nothing to do: checking holds {usd(has)}."
    plan += [
        _call("get_balance", account_id=savings),
        _call("transfer", from_account=savings, to_account=checking, amount_cents=target - has),
    ]
    required = [
        _need("transfer", from_account=savings, to_account=checking, amount_cents=target - has)
    ]
    return request, plan, required, f"Moved {usd(target - has)} from savings."


def _split_cheque(world: _World, n: int) -> tuple[str, list, list, str]:
    cid, name, first = world.subject()
    checking = world.ensure(cid, "checking")
    savings = world.ensure(cid, "savings")
    percent = world.rng.choice([10, 20, 25, 40, 50])
    cheque = world.rng.randint(50, 5_000) * 100
    share = cheque * percent // 100
    request = (
        f"{name} brought in a cheque for {usd(cheque)}. Deposit it into {first}'s checking "
        f"account, then move {percent}% of the cheque's amount into {first}'s savings."
    )
    plan = [
        _call("find_customer", name=name),
        _call("list_accounts", customer_id=cid),
        _call("deposit", account_id=checking, amount_cents=cheque, memo="cheque"),
        _call("transfer", from_account=checking, to_account=savings, amount_cents=share),
    ]
    required = [
        _need("deposit", account_id=checking, amount_cents=cheque),
        _need("transfer", from_account=checking, to_account=savings, amount_cents=share),
    ]
    return request, plan, required, f"Deposited {usd(cheque)}; saved {usd(share)}."


_KINDS: list[tuple[str, Callable[[_World, int], tuple[str, list, list, str]], int]] = [
    ("half-savings", _half_savings, 5),
    ("stolen-card", _stolen_card, 4),
    ("pay-customer", _pay_customer, 4),
    ("conditional-transfer", _conditional_transfer, 6),
    ("cash-withdrawal", _cash_withdrawal, 6),
    ("close-savings", _close_savings, 4),
    ("refund-duplicate", _refund_duplicate, 4),
    ("lost-wallet", _lost_wallet, 4),
    ("top-up", _top_up, 5),
    ("split-cheque", _split_cheque, 4),
]


def bank_tasks() -> TaskList:
    """The fixed task set: each kind's tasks are numbered ``{kind}-{n}``, and each one's database
    is built from a ``random.Random`` seeded by its position, so it is the same on every run."""
    tasks = []
    for kind_index, (kind, build, count) in enumerate(_KINDS):
        for n in range(count):
            world = _World(random.Random(1_000 * (kind_index + 1) + n))
            request, plan, required, summary = build(world, n)
            initial = world.state
            changes = [call for call in plan if call["name"] in MUTATING_TOOLS]
            tasks.append(
                Task(
                    id=f"{kind}-{n}",
                    prompt=request,
                    metadata={
                        "kind": kind,
                        "initial_state": initial,
                        "gold_calls": plan,
                        "gold_summary": summary,
                        "expected_state": snapshot(replay(_TOOLBOX, initial, plan)),
                        "required_calls": required,
                        "refuse": not changes,
                    },
                )
            )
    return TaskList(tasks)


# --- The environment ---------------------------------------------------------------------------


class Bank(ToolEnv):
    """A bank assistant handling one customer request with tools, over several turns.

    Reward 1.0 when all of these hold, else 0:

    - ``state``: the final database equals the one the gold plan leaves (balances, account
      and card statuses, and the transaction log compared as a multiset);
    - ``required_calls``: every call the request cannot be done without was made successfully
      (the transfer with the right accounts and amount; for a request that must be refused,
      the lookup that shows why), extra read-only lookups allowed;
    - ``no_extra_changes``: no successful state-changing call outside the gold plan (memos
      aside), even one whose effect was undone later.

    The verdict's ``reason`` names what differs, what is missing and what was extra.
    """

    max_turns = 12
    finish_tool = "done"
    system_prompt = (
        "You are a bank back-office assistant. You handle one customer request using the bank's "
        "tools, then call done with a short summary for the customer.\n"
        "To call a tool, write "
        '<tool_call>{"name": "TOOL_NAME", "arguments": {...}}</tool_call>; '
        "its result comes back in the next message. You may call several tools in one turn.\n"
        "Rules: look customers up by their full name with find_customer and their accounts with "
        "list_accounts; never guess ids. Amounts are integer cents ($12.34 is 1234). Check the "
        "source account's balance with get_balance before moving money out of it. Do exactly "
        "what was asked and nothing more. If a request cannot be done (not enough money, a "
        "frozen or closed account), change nothing and explain why in done's summary."
    )

    def load_tools(self):
        return TOOLS

    def load_tasks(self) -> TaskList:
        return bank_tasks()

    def new_state(self, task: Task) -> dict:
        return copy.deepcopy(task.metadata["initial_state"])

    def grade(self, answer: str | None) -> Verdict:
        meta = self.task.metadata
        differences = state_diff(snapshot(self.state), meta["expected_state"])
        made = [ParsedCall(o.name, dict(o.arguments)) for o in self.trace if o.ok]
        required = [ExpectedCall(c["name"], c["arguments"]) for c in meta["required_calls"]]
        calls = match_calls(
            required,
            [_without_memo(call) for call in made if call.name != self.finish_tool],
            schemas={
                schema["function"]["name"]: schema["function"]["parameters"]
                for schema in self.tools
            },
            policy=TracePolicy(ordered=False, allow_extra=True, strings="exact"),
        )
        extra = _extra_changes(made, meta["gold_calls"])
        components = {
            "state": float(not differences),
            "required_calls": float(calls.passed),
            "no_extra_changes": float(not extra),
        }
        passed = all(components.values())
        sections = [
            ("the final state differs from the plan's", differences),
            ("required calls", [] if calls.passed else calls.reasons),
            ("state-changing calls not in the plan", [_show(call) for call in extra]),
        ]
        summary = ". ".join(f"{title}: {'; '.join(lines)}" for title, lines in sections if lines)
        if len(summary) > MAX_REASON_CHARS:
            count = sum(len(lines) for _, lines in sections)
            summary = summary[: MAX_REASON_CHARS - 30] + f"... ({count} problems in all)"
        return Verdict(
            reward=1.0 if passed else 0.0,
            reason=summary or "the request was handled exactly as planned",
            parsed={"answer": answer, "calls": [_show(call) for call in made]},
            components=components,
            error=None if passed else summary,
        )

    def gold_action(self) -> str:
        """The gold plan's next call (one per turn), then ``done``."""
        made = Counter(call_key(o.name, o.arguments) for o in self.trace if o.ok)
        for step in self.task.metadata["gold_calls"]:
            key = call_key(step["name"], step["arguments"])
            if made[key] == 0:  # the first gold call not made yet (in any order)
                call = ParsedCall(step["name"], step["arguments"])
                break
            made[key] -= 1
        else:
            call = ParsedCall("done", {"summary": self.task.metadata["gold_summary"]})
        return get_parser(self.parser).render([call])


def _without_memo(call: ParsedCall) -> ParsedCall:
    """Memos are free text: any memo, or none, is fine."""
    return ParsedCall(call.name, {k: v for k, v in call.arguments.items() if k != "memo"})


def _extra_changes(made: list[ParsedCall], gold: list[dict]) -> list[ParsedCall]:
    """Successful state-changing calls beyond the gold plan's (a multiset difference)."""
    allowed = Counter(call_key(c["name"], c["arguments"], ignore=("memo",)) for c in gold)
    extra = []
    for call in made:
        if call.name not in MUTATING_TOOLS:
            continue
        key = call_key(call.name, call.arguments, ignore=("memo",))
        if allowed[key] > 0:
            allowed[key] -= 1
        else:
            extra.append(call)
    return extra


def _show(call: ParsedCall) -> str:
    arguments = ", ".join(f"{key}={value!r}" for key, value in call.arguments.items())
    return f"{call.name}({arguments})"[:300]
