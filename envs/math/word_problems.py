"""``rlenv/WordProblems-v0``: templated grade-school word problems with whole-number answers.

Ten templates (shopping, travel, reading, sharing, ages, areas, percentages, saving, recipes,
buses), each with three levels of more steps and bigger numbers. Every problem is built
backwards from its answer, so the answer is a positive whole number by construction (the
generator also checks it). Names and items come from fixed lists.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from math import gcd

from rlenv import GeneratedTasks, Task, TextEnv, Verdict

from ._common import BOX_INSTRUCTION, answer_scorer, boxed, check_format_options

# (name, subject pronoun, object pronoun)
PEOPLE = (
    ("Ava", "she", "her"),
    ("Liam", "he", "him"),
    ("Maya", "she", "her"),
    ("Noah", "he", "him"),
    ("Sofia", "she", "her"),
    ("Ethan", "he", "him"),
    ("Zara", "she", "her"),
    ("Omar", "he", "him"),
    ("Lena", "she", "her"),
    ("Kenji", "he", "him"),
)
# (singular, plural, lowest price, highest price) in dollars
GOODS = (
    ("notebook", "notebooks", 2, 6),
    ("pen", "pens", 1, 4),
    ("sandwich", "sandwiches", 4, 9),
    ("book", "books", 8, 20),
    ("concert ticket", "concert tickets", 15, 40),
    ("plant", "plants", 3, 12),
)
SHAREABLE = ("stickers", "marbles", "cookies", "cards", "apples", "beads")
VEHICLES = ("car", "train", "bus", "truck")
BIG_ITEMS = ("bike", "jacket", "lamp", "tablet", "guitar", "chair")

Problem = tuple[str, int]


def _units(count: int, unit: str) -> str:
    """``1 hour``, ``3 hours``."""
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _person(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(PEOPLE)


def _shopping(rng: random.Random, level: int) -> Problem:
    name, he, _ = _person(rng)
    first, second = rng.sample(GOODS, 2)
    n1, p1 = rng.randint(2, 4 + 2 * level), rng.randint(first[2], first[3])
    if level == 1:
        return (
            f"{name} buys {n1} {first[1]} at ${p1} each. How many dollars does {he} spend?",
            n1 * p1,
        )
    n2, p2 = rng.randint(2, 4 + 2 * level), rng.randint(second[2], second[3])
    spent = n1 * p1 + n2 * p2
    text = f"{name} buys {n1} {first[1]} at ${p1} each and {n2} {second[1]} at ${p2} each."
    if level == 2:
        return f"{text} How many dollars does {he} spend in total?", spent
    bill = rng.choice((20, 50, 100))
    count = spent // bill + 1
    paid = "a" if count == 1 else str(count)
    bills = "bill" if count == 1 else "bills"
    text += f" {he.capitalize()} pays with {paid} ${bill} {bills}."
    text += f" How many dollars of change does {he} get?"
    return text, count * bill - spent


def _travel(rng: random.Random, level: int) -> Problem:
    vehicle = rng.choice(VEHICLES)
    speed, hours = rng.randint(4, 12) * 5, rng.randint(2, 6)
    if level == 1:
        return (
            f"A {vehicle} travels at {speed} km per hour. How many kilometres does it travel "
            f"in {hours} hours?",
            speed * hours,
        )
    speed2, hours2 = rng.randint(4, 12) * 5, rng.randint(1, 4)
    travelled = speed * hours + speed2 * hours2
    legs = (
        f"travels at {speed} km per hour for {hours} hours, then at {speed2} km per hour "
        f"for {_units(hours2, 'hour')}"
    )
    if level == 2:
        return f"A {vehicle} {legs}. How many kilometres does it travel in total?", travelled
    remaining = rng.randint(2, 40) * 5
    return (
        f"A {vehicle} must cover {travelled + remaining} km. It {legs}. How many kilometres "
        "are left?",
        remaining,
    )


def _reading(rng: random.Random, level: int) -> Problem:
    name, he, him = _person(rng)
    per_day, days = rng.randint(3, 12) * 5, rng.randint(3, 12)
    if level == 1:
        return (
            f"{name} reads {per_day} pages a day. How many days does it take {him} to read a "
            f"{per_day * days}-page book?",
            days,
        )
    weekend = rng.randint(3, 12) * 5
    if level == 2:
        weeks = rng.randint(2, 5)
        return (
            f"{name} reads {per_day} pages a day on weekdays and {weekend} pages a day on "
            f"weekends. How many pages does {he} read in {weeks} weeks?",
            weeks * (5 * per_day + 2 * weekend),
        )
    already, first_days = rng.randint(2, 9) * 10, rng.randint(2, 5)
    total = already + per_day * first_days + weekend * days
    return (
        f"{name} has read {already} pages of a {total}-page book. {he.capitalize()} reads "
        f"{per_day} pages a day for the next {first_days} days, and after that {weekend} pages "
        f"a day. How many more days after those {first_days} does {he} need to finish the book?",
        days,
    )


def _sharing(rng: random.Random, level: int) -> Problem:
    name, he, _ = _person(rng)
    things = rng.choice(SHAREABLE)
    friends, each = rng.randint(2, 3 + 2 * level), rng.randint(2, 4 + 3 * level)
    if level == 1:
        return (
            f"{name} has {friends * each} {things} and shares them equally among {friends} "
            "friends. How many does each friend get?",
            each,
        )
    if level == 2:
        kept = rng.randint(1, 12)
        return (
            f"{name} has {friends * each + kept} {things}. {he.capitalize()} keeps {kept} and "
            f"shares the rest equally among {friends} friends. How many does each friend get?",
            each,
        )
    bags, per_bag = rng.randint(3, 9), rng.randint(6, 15)
    total = bags * per_bag
    kept = total % friends + friends * rng.randint(0, 2)
    if kept == 0 or kept >= total:
        kept = total % friends or friends
    each = (total - kept) // friends
    return (
        f"{name} buys {bags} bags of {things} with {per_bag} in each bag. {he.capitalize()} keeps "
        f"{kept} and shares the rest equally among {friends} friends. How many does each "
        "friend get?",
        each,
    )


def _ages(rng: random.Random, level: int) -> Problem:
    (older, _, _), (younger, _, _) = rng.sample(PEOPLE, 2)
    age, gap, later = rng.randint(4, 30), rng.randint(2, 25), rng.randint(2, 10)
    if level == 1:
        return (
            f"{older} is {gap} years older than {younger}. {younger} is {age} years old. "
            f"How old will {older} be in {later} years?",
            age + gap + later,
        )
    if level == 2:
        times = rng.randint(2, 4)
        age = rng.randint(3, 15)
        return (
            f"{older} is {times} times as old as {younger}, who is {age}. What will the sum of "
            f"their ages be in {later} years?",
            times * age + age + 2 * later,
        )
    total = (age + gap + later) + (age + later)
    return (
        f"{older} is {gap} years older than {younger}. In {later} years, the sum of their "
        f"ages will be {total}. How old is {younger} now?",
        age,
    )


def _area(rng: random.Random, level: int) -> Problem:
    length, width = rng.randint(4, 10 + 5 * level), rng.randint(3, 8 + 4 * level)
    if level == 1:
        return (
            f"A rectangular garden is {length} m long and {width} m wide. What is its area in "
            "square metres?",
            length * width,
        )
    cost = rng.randint(2, 15)
    if level == 2:
        return (
            f"A rectangular garden is {length} m long and {width} m wide. Fencing costs ${cost} "
            "per metre. How many dollars does it cost to fence all the way around the garden?",
            2 * (length + width) * cost,
        )
    rug_length, rug_width = rng.randint(1, length - 1), rng.randint(1, width - 1)
    return (
        f"A rectangular floor is {length} m by {width} m. A rug {rug_length} m by {rug_width} m "
        f"covers part of it. Tiles cost ${cost} per square metre. How many dollars does it cost "
        "to tile the part of the floor the rug does not cover?",
        (length * width - rug_length * rug_width) * cost,
    )


def _percent(rng: random.Random, level: int) -> Problem:
    item = rng.choice(BIG_ITEMS)
    if level < 3:
        rate = rng.choice((5, 10, 15, 20, 25, 30, 40, 50, 75))
        step = 100 // gcd(rate, 100)
        price = step * rng.randint(max(1, 20 // step), max(2, 400 // step))
        discount = price * rate // 100
        text = f"A {item} costs ${price}. It is on sale for {rate}% off."
        if level == 1:
            return f"{text} How many dollars is the discount?", discount
        return f"{text} What is the sale price in dollars?", price - discount
    rise, cut = rng.choice((10, 20, 25, 50)), rng.choice((10, 20, 25, 50))
    step = 10_000 // gcd((100 + rise) * (100 - cut), 10_000)
    price = step * rng.randint(1, max(1, 1000 // step))
    return (
        f"A {item} costs ${price}. Its price goes up by {rise}%, and then the new price is cut "
        f"by {cut}%. What is the final price in dollars?",
        price * (100 + rise) * (100 - cut) // 10_000,
    )


def _saving(rng: random.Random, level: int) -> Problem:
    name, he, him = _person(rng)
    item = rng.choice(BIG_ITEMS)
    saved, weeks = rng.randint(3, 25), rng.randint(3, 12)
    if level == 1:
        return (
            f"{name} saves ${saved} each week. How many weeks does it take {him} to save "
            f"${saved * weeks}?",
            weeks,
        )
    spent = rng.randint(2, 20)
    earns = saved + spent
    if level == 2:
        return (
            f"{name} earns ${earns} a week and spends ${spent} of it. How many weeks does it "
            f"take {him} to save ${saved * weeks}?",
            weeks,
        )
    has = rng.randint(5, 60)
    return (
        f"{name} has ${has} and wants a {item} that costs ${has + saved * weeks}. "
        f"{he.capitalize()} earns ${earns} a week and spends ${spent} of it. How many weeks "
        f"until {he} can buy the {item}?",
        weeks,
    )


def _recipe(rng: random.Random, level: int) -> Problem:
    flour, cookies, scale = rng.randint(2, 5), rng.randint(2, 4) * 6, rng.randint(2, 6)
    if level == 1:
        return (
            f"A recipe needs {flour} cups of flour for {cookies} cookies. How many cups of "
            f"flour are needed for {cookies * scale} cookies?",
            flour * scale,
        )
    sugar = rng.randint(1, 3)
    base = (
        f"A recipe needs {flour} cups of flour and {_units(sugar, 'cup')} of sugar for {cookies} "
        "cookies."
    )
    if level == 2:
        return (
            f"{base} How many cups of flour and sugar together are needed for "
            f"{cookies * scale} cookies?",
            (flour + sugar) * scale,
        )
    name, he, _ = _person(rng)
    needed = flour * scale
    has, bag = rng.randint(1, needed - 1), rng.randint(3, 8)
    return (
        f"{base} {name} wants to bake {cookies * scale} cookies and has {has} cups of flour. "
        f"Flour is sold in bags of {bag} cups. How many bags of flour must {he} buy, at the "
        "least?",
        -(-(needed - has) // bag),
    )


def _buses(rng: random.Random, level: int) -> Problem:
    students, seats = rng.randint(30, 60 + 60 * level), rng.choice((20, 25, 30, 40, 45))
    if level == 1:
        return (
            f"{students} students go on a trip. Each bus holds {seats} people. How many buses "
            "are needed?",
            -(-students // seats),
        )
    teachers = rng.randint(2, 8)
    buses = -(-(students + teachers) // seats)
    text = (
        f"{students} students and {teachers} teachers go on a trip. Each bus holds {seats} people."
    )
    if level == 2:
        return f"{text} How many buses are needed?", buses
    cost = rng.randint(8, 30) * 10
    return (
        f"{text} Each bus costs ${cost} to rent. How many dollars do the buses cost in total?",
        buses * cost,
    )


TEMPLATES: dict[str, Callable[[random.Random, int], Problem]] = {
    "shopping": _shopping,
    "travel": _travel,
    "reading": _reading,
    "sharing": _sharing,
    "ages": _ages,
    "area": _area,
    "percent": _percent,
    "saving": _saving,
    "recipe": _recipe,
    "buses": _buses,
}


class WordProblems(TextEnv):
    """Grade-school word problems (GSM8K-like, templated) with whole-number answers.

    Ten templates: shopping and change, travel distances, reading rates, sharing equally,
    ages, areas and costs, percentages, saving up, scaling recipes, and buses for a trip.
    Reward 1.0 when the answer equals the whole number (units and ``$`` are ignored: ``\\$42``
    and ``42 dollars`` answer 42), else 0.0. As in Arithmetic-v0 the reply must put it in
    ``\\boxed{}`` (``gate(boxed_format(), correct)``) unless ``require_boxed=False``, where
    ``format_weight`` can pay a bonus for the box.

    Difficulty levels (``difficulty=``): the number of steps and the size of the numbers.

    1. one step: "reads 15 pages a day; how many days for a 90-page book?";
    2. two steps: two purchases, two legs of a trip, keep some and share the rest (default);
    3. three or more steps: change from several bills, price up then down by percentages,
       working an age backwards from a future sum, rounding up bags to buy.

    Args:
        difficulty: 1 to 3, as above.
        templates: Restrict tasks to these templates (default: all ten; see ``TEMPLATES``).
        require_boxed: Whether an answer outside ``\\boxed{}`` scores 0 (default True).
        format_weight: With ``require_boxed=False``, the weight of the boxed-format bonus.
    """

    def __init__(
        self,
        *,
        difficulty: int = 2,
        templates: list[str] | None = None,
        require_boxed: bool = True,
        format_weight: float = 0.0,
        **kwargs,
    ) -> None:
        if difficulty not in (1, 2, 3):
            raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
        chosen = tuple(templates) if templates is not None else tuple(TEMPLATES)
        if not chosen or any(name not in TEMPLATES for name in chosen):
            raise ValueError(f"templates must be drawn from {sorted(TEMPLATES)}, got {templates!r}")
        check_format_options(require_boxed, format_weight)
        self.difficulty = difficulty
        self.templates = chosen
        self.require_boxed = require_boxed
        self.format_weight = format_weight
        self._scorer = answer_scorer(require_boxed=require_boxed, format_weight=format_weight)
        super().__init__(**kwargs)

    def load_tasks(self) -> GeneratedTasks:
        def make_task(rng: random.Random) -> Task:
            template = rng.choice(self.templates)
            text, answer = TEMPLATES[template](rng, self.difficulty)
            if not (isinstance(answer, int) and answer > 0):  # a template bug, never the model's
                raise AssertionError(f"template {template!r} gave answer {answer!r}: {text}")
            return Task(
                prompt=f"{text} Give the answer as a whole number. {BOX_INSTRUCTION}",
                answer=answer,
                metadata={"template": template, "difficulty": self.difficulty},
            )

        return GeneratedTasks(make_task)

    def verify(self, task: Task, completion: str) -> Verdict | float | bool:
        return self._scorer(completion, task)

    def gold_action(self) -> str:
        return boxed(self.task.answer)
