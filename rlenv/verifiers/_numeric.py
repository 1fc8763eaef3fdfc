"""High-precision numeric comparison of parsed answers (mpmath, in-process, bounded).

Two expressions are compared by evaluating both at the same deterministic points (one point
when there are no variables) in a private mpmath context — at 50 significant digits, then at
100 to confirm an apparent equality: rounding noise shrinks with precision, a real difference
(``pi`` against ``pi + 10^{-60}``) does not. Every step checks the caller's deadline, and powers,
exponentials and factorials whose size would explode are refused (:class:`Inconclusive`), so no
input can make this slow.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from mpmath.ctx_mp import MPContext

from rlenv.verifiers._mathparse import Node, symbols

__all__ = ["Incomparable", "Inconclusive", "TooLarge", "equal", "proportional"]


class Inconclusive(Exception):
    """The values could not be computed (undefined everywhere, or too large to compute)."""


class Incomparable(Inconclusive):
    """Not comparable as numbers at all: sympy would be no better, so the answer is "different"."""


class TooLarge(Incomparable):
    """A value is too large to compute (a tower of powers, a huge factorial)."""


class _Undefined(Exception):
    """Undefined at this point (division by zero, a pole): try other points."""


_LOW = MPContext()
_LOW.dps = 50
_HIGH = MPContext()
_HIGH.dps = 100
_POINTS = 3
_MAX_LOG2_MAGNITUDE = 1e12  # |values| up to 2^(10^12): mpmath handles them; beyond, refuse


def _points(names: set[str]) -> list[dict[str, float]]:
    if not names:
        return [{}]
    points = []
    for k in range(_POINTS):
        point = {}
        for name in sorted(names):
            rng = random.Random(zlib.crc32(name.encode()) * 7919 + k)
            # Negative values too, or sqrt(x^2) would pass for x.
            point[name] = rng.uniform(0.21, 1.87) * (-1 if k == 1 else 1)
        points.append(point)
    return points


class _Evaluator:
    def __init__(
        self, ctx: MPContext, point: dict[str, Any], percent: str, tick: Callable[[], None]
    ):
        self.ctx = ctx
        self.point = {name: ctx.mpf(value) for name, value in point.items()}
        self.percent = percent
        self.tick = tick

    def value(self, node: Node) -> Any:
        self.tick()
        ctx = self.ctx
        kind = node[0]
        if kind == "num":
            fraction: Fraction = node[1]
            return ctx.mpf(fraction.numerator) / fraction.denominator
        if kind == "const":
            return {"pi": ctx.pi, "e": ctx.e, "i": ctx.j, "oo": ctx.inf}[node[1]]
        if kind == "sym":
            return self.point[node[1]]
        if kind == "neg":
            return -self.value(node[1])
        if kind == "add":
            total = ctx.mpf(0)
            for child in node[1]:
                total += self.value(child)
            return total
        if kind == "mul":
            product = ctx.mpf(1)
            for child in node[1]:
                product *= self.value(child)
                self.check_size(product)
            return product
        if kind == "div":
            numerator, denominator = self.value(node[1]), self.value(node[2])
            if denominator == 0:
                raise _Undefined
            return numerator / denominator
        if kind == "pct":
            inner = self.value(node[1])
            return inner / 100 if self.percent == "fraction" else inner
        if kind == "pow":
            return self.power(self.value(node[1]), self.value(node[2]))
        if kind == "func":
            return self.function(
                node[1], [self.value(arg) if arg is not None else None for arg in node[2]], node
            )
        raise Incomparable(f"{kind} is not a number")

    def check_size(self, value: Any) -> None:
        if (
            value != 0
            and self.ctx.isfinite(value)
            and abs(self.ctx.log(abs(value), 2)) > _MAX_LOG2_MAGNITUDE
        ):
            raise TooLarge("value too large")

    def power(self, base: Any, exponent: Any) -> Any:
        ctx = self.ctx
        if base == 0:
            if ctx.re(exponent) <= 0:
                raise _Undefined
            return ctx.mpf(0)
        magnitude = abs(exponent) * abs(ctx.log(abs(base), 2))
        if magnitude > _MAX_LOG2_MAGNITUDE:
            raise TooLarge("power too large")
        if ctx.im(base) == 0 and ctx.re(base) < 0 and ctx.im(exponent) == 0:
            # (-8)^(1/3) = -2 and (x^2-2)^(5/3) real, as in real analysis (odd denominators)
            for q in (3, 5, 7, 9, 11):
                p = exponent * q
                if abs(p - ctx.nint(p)) < ctx.mpf(10) ** (-ctx.dps + 5):
                    sign = -1 if int(ctx.nint(p)) % 2 else 1
                    return sign * ctx.power(-base, exponent)
        return ctx.power(base, exponent)

    def function(self, name: str, args: list[Any], node: Node) -> Any:
        ctx = self.ctx
        x = args[0]
        if name == "sqrt":
            return ctx.sqrt(x)
        if name == "root":
            n = args[1]
            if ctx.im(x) == 0 and x < 0 and n == int(n) and int(n) % 2 == 1:
                return -ctx.root(-x, int(n))  # the real odd root of a negative number
            return self.power(x, 1 / n)
        if name in ("sin", "cos", "tan", "sinh", "cosh", "tanh"):
            if abs(ctx.im(x)) > 1e4 or abs(ctx.re(x)) > 1e12:
                raise TooLarge("argument too large")
            return getattr(ctx, name)(x)
        if name in ("cot", "sec", "csc"):
            base = {"cot": ctx.tan, "sec": ctx.cos, "csc": ctx.sin}[name](x)
            if base == 0:
                raise _Undefined
            return 1 / base
        if name in ("arcsin", "arccos", "arctan"):
            return getattr(ctx, "a" + name[3:])(x)
        if name in ("log", "ln", "log10"):
            if x == 0:
                raise _Undefined
            value = ctx.log(x)
            if name == "log10":
                return value / ctx.log(10)
            if name == "log" and len(args) > 1 and args[1] is not None:
                denominator = ctx.log(args[1])
                if denominator == 0:
                    raise _Undefined
                return value / denominator
            return value
        if name == "exp":
            if abs(ctx.re(x)) > _MAX_LOG2_MAGNITUDE / 2:
                raise TooLarge("exp too large")
            return ctx.exp(x)
        if name == "abs":
            return abs(x)
        if name in ("floor", "ceil"):
            return getattr(ctx, name)(ctx.re(x))
        if name == "factorial":
            if ctx.im(x) != 0 or abs(x) > 1e6:
                raise TooLarge("factorial too large")
            if x < 0 and x == int(x):
                raise _Undefined
            return ctx.factorial(x)
        if name == "binom":
            n, k = args
            if abs(n) > 1e6 or abs(k) > 1e6:
                raise TooLarge("binomial too large")
            return ctx.binomial(n, k)
        raise Inconclusive(f"cannot evaluate {name}")


def _values(
    node: Node, ctx: MPContext, points: list[dict[str, float]], percent: str, tick
) -> list[Any]:
    values = []
    for point in points:
        try:
            value = _Evaluator(ctx, point, percent, tick).value(node)
        except (_Undefined, ZeroDivisionError, ValueError):
            value = None
        if value is not None and ctx.isnan(value):
            value = None
        values.append(value)
    return values


def _close(ctx: MPContext, a: Any, b: Any, tolerance: float) -> bool:
    if ctx.isinf(a) or ctx.isinf(b):
        return a == b
    scale = max(abs(a), abs(b))
    return abs(a - b) <= tolerance * scale


def equal(
    gold: Node, pred: Node, *, rel_tol: float | None, percent: str, tick: Callable[[], None]
) -> bool:
    """Whether the two expressions have the same value(s). ``rel_tol`` None means exact.

    Raises :class:`Inconclusive` when they cannot be compared numerically.
    """
    points = _points(symbols(gold) | symbols(pred))
    low_g = _values(gold, _LOW, points, percent, tick)
    low_p = _values(pred, _LOW, points, percent, tick)
    if any((low_g[k] is None) != (low_p[k] is None) for k in range(len(points))):
        return False  # defined at different points: different functions
    usable = [k for k in range(len(points)) if low_g[k] is not None]
    if not usable:
        raise Inconclusive("undefined at every point")
    if rel_tol is not None:
        return all(_close(_LOW, low_g[k], low_p[k], rel_tol) for k in usable)
    if not all(_close(_LOW, low_g[k], low_p[k], 1e-40) for k in usable):
        return False
    high_g = _values(gold, _HIGH, points, percent, tick)
    high_p = _values(pred, _HIGH, points, percent, tick)
    for k in usable:
        if high_g[k] is None or high_p[k] is None:
            raise Inconclusive("undefined at higher precision")
        if (
            not _close(_HIGH, high_g[k], high_p[k], 1e-85)
            and abs(high_g[k] - high_p[k]) > _HIGH.mpf(10) ** -90
        ):
            return False
    return True


def proportional(
    gold: Node, pred: Node, *, sign: str, percent: str, tick: Callable[[], None]
) -> bool:
    """Whether ``pred = c · gold`` for one constant ``c != 0`` (``c > 0`` if sign='positive').

    Decides if two equations (``gold``/``pred`` are ``lhs - rhs``) or inequalities describe the
    same relation.
    """
    names = symbols(gold) | symbols(pred)
    points = _points(names) if names else [{}]
    if names:  # more points: a ratio must be the same everywhere
        points += [
            {name: value + 0.731 * (k + 1) for name, value in p.items()}
            for k, p in enumerate(points)
        ]
    g = _values(gold, _LOW, points, percent, tick)
    p = _values(pred, _LOW, points, percent, tick)
    ratios = []
    for a, b in zip(g, p, strict=False):
        if a is None or b is None:
            continue
        a_zero, b_zero = abs(a) < 1e-40, abs(b) < 1e-40
        if a_zero and b_zero:
            continue
        if a_zero != b_zero:
            return False
        ratios.append(b / a)
    if not ratios:
        # Both sides vanish wherever defined: identities (like 3 = 3) only match each other.
        return all(value is not None for value in g + p)
    first = ratios[0]
    if abs(_LOW.im(first)) > 1e-30 * abs(first):
        return False
    if sign == "positive" and _LOW.re(first) <= 0:
        return False
    return all(abs(r - first) <= 1e-30 * abs(first) for r in ratios[1:])
