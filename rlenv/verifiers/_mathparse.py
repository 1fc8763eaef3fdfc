"""Answer strings (plain text or LaTeX) → a small, immutable syntax tree.

No ``eval``, no ``sympy.parse_expr`` (which calls ``eval``), no third-party LaTeX grammar: a
tokenizer and a recursive-descent parser that stop at fixed bounds on length, token count and
nesting depth, so a hostile answer costs microseconds to reject.

Nodes are tuples (hashable, so parsed answers can be cached):

==============================  =========================================================
``("num", Fraction, decimal)``  a number; ``decimal`` is True when written with a point or
                                in scientific notation (enables the numeric tolerance)
``("const", name)``             ``pi``, ``e``, ``i``, ``oo`` (infinity)
``("sym", name)``               a variable (``x``, ``x_1``, ``alpha``)
``("add", terms)``              a sum; subtraction is ``("neg", x)`` inside it
``("mul", factors)``            a product
``("div", a, b)``               a quotient (``a/b``, ``\\frac{a}{b}``)
``("pow", base, exponent)``
``("neg", x)``
``("func", name, args)``        ``sqrt``, ``root``, ``sin``..., ``log`` (args: x [, base]),
                                ``abs``, ``factorial``, ``binom``, ``floor``, ``ceil``
``("pct", x)``                  ``x%``
``("pm", a, b)``                ``a ± b``
``("rel", ops, operands)``      ``a < b``, chains ``a < x <= b``
``("seq", open, close, items)`` ``(1, 2)``, ``[1, 2)``, ``{1, 2}`` (braces: a set),
                                ``("", "", items)`` for a bare list ``1, 2``
``("union", items)``            ``A ∪ B``
``("matrix", rows)``
``("text", words)``             an answer in words (compared as normalised text)
``("choice", letter)``          a multiple-choice letter
==============================  =========================================================
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

__all__ = ["MAX_ANSWER_CHARS", "MathParseError", "children", "normalize", "parse", "symbols"]

Node = tuple[Any, ...]

MAX_ANSWER_CHARS = 2000
MAX_TOKENS = 1000
MAX_DEPTH = 60
MAX_DIGITS = 400


class MathParseError(ValueError):
    """The answer is not something the parser understands (or is over a bound)."""


# ---------------------------------------------------------------------------- normalisation

_UNIT_WORDS = (
    "square units|sq units|units|unit|square meters|square feet|square inches|square cm|"
    "cubic meters|cubic feet|cubic inches|cubic cm|"
    "meters|meter|metres|metre|centimeters|centimeter|millimeters|millimeter|kilometers|kilometer|"
    "cm\\^2|cm\\^3|m\\^2|m\\^3|cm|mm|km|"
    "inches|inch|feet|foot|ft|yards|yard|miles|mile|mph|kph|"
    "grams|gram|kilograms|kilogram|kg|mg|pounds|pound|lbs|lb|ounces|ounce|oz|tons|ton|"
    "liters|liter|litres|litre|ml|gallons|gallon|cups|cup|"
    "seconds|second|sec|minutes|minute|min|hours|hour|hrs|hr|days|day|weeks|week|"
    "months|month|years|year|"
    "dollars|dollar|cents|cent|usd|euros|euro|pounds sterling|"
    "degrees|degree|deg|radians|radian|rad|"
    "yuan|rmb|rupees|rupee|yen|won|"
    "people|persons|students|apples|marbles|items|points|percentage|percent|pct"
)
_TRAILING_UNITS = re.compile(
    rf"(?:(?<![a-zA-Z])\s*(?:{_UNIT_WORDS})\b(?:\s*\^\s*\{{?\d\}}?)?\.?)+\s*$", re.IGNORECASE
)
# A trailing \text{...} of plain words after a number is an annotation ("17 \text{ apples}"); text
# holding digits or symbols ("2 \text{ (or 3)}") is not, and stays to be judged.
_TRAILING_TEXT = re.compile(
    r"(?<=[\d}])\s*\\(?:text|textnormal|textrm|mbox|mathrm)\s*\{\s*[a-zA-Z][a-zA-Z .]*\}"
    r"(?:\s*\^\s*\{?\d\}?)?\s*$"
)
# 11,\!111 and 32,\,349: a LaTeX thin space after a thousands comma.
_COMMA_SPACE = re.compile(r"(?<=\d),\\[!,]\s*(?=\d{3}(?!\d))")
# 4 4/9 in plain text is a mixed number.
_PLAIN_MIXED = re.compile(r"(?<![\d./])(\d+) (\d+)/(\d+)(?![\d/.])")
_TEXT_WRAPPERS = re.compile(
    r"\\(?:text|textnormal|textbf|textit|textrm|mbox|mathrm|mathbf|mathit|mathsf|operatorname|emph)\s*\{"
)
_SPACING = re.compile(r"(?<!\\)\\[,!;: ]|\\quad|\\qquad|~")
_SIZING = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![a-zA-Z])"
)
_STYLE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle)(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![a-zA-Z])")
# 1,000 and 12,345,678 (not inside brackets, where "(1,100)" is a pair, not 1100).
_THOUSANDS = re.compile(r"(?<![\d.,(\[{])([1-9]\d{0,2})((?:,\d{3})+)(?!\d|\s*[)\]}])")
_SPACED_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3})((?: \d{3})+)(?![\d.])")
_SQRT_SIGN = re.compile(r"√\s*(\d+(?:\.\d+)?|[a-zA-Z])")
_FRAC_LIKE = re.compile(r"\\(?:dfrac|tfrac|cfrac)(?![a-zA-Z])")
_BINOM_LIKE = re.compile(r"\\(?:dbinom|tbinom)(?![a-zA-Z])")


def _unwrap_command(text: str, pattern: re.Pattern[str], keep: str = "{}") -> str:
    """Replace ``\\cmd{content}`` by ``content`` (balanced braces), for every match."""
    out, position = [], 0
    while True:
        match = pattern.search(text, position)
        if match is None:
            out.append(text[position:])
            return "".join(out)
        end = _matching_brace(text, match.end() - 1)
        if end is None:
            out.append(text[position:])
            return "".join(out)
        content = text[match.end() : end]
        out.append(text[position : match.start()])
        out.append(keep[0] + content + keep[1] if keep else content)
        position = end + 1


def _matching_brace(text: str, open_index: int) -> int | None:
    depth = 0
    for index in range(open_index, len(text)):
        char = text[index]
        if char == "{" and (index == 0 or text[index - 1] != "\\"):
            depth += 1
        elif char == "}" and (index == 0 or text[index - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return index
    return None


def _strip_outer_box(text: str) -> str:
    for command in ("\\boxed", "\\fbox"):
        if text.startswith(command + "{"):
            end = _matching_brace(text, len(command))
            if end == len(text) - 1:
                return text[len(command) + 1 : end].strip()
    return text


_MEMBERSHIP = re.compile(r"^\s*[a-zA-Z](?:_\{?\w+\}?)?\s*\\in(?![a-zA-Z])\s*")
_REPEATING = re.compile(r"(-?)(\d*)\.(\d*)\\overline\{(\d{1,20})\}")
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}


_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}  # fmt: skip
_COMPOUND_NUMBER = re.compile(
    r"(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
    r"(?:[- ](one|two|three|four|five|six|seven|eight|nine))?"
)


def _repeating_decimal(match: re.Match[str]) -> str:
    """``0.1\\overline{6}`` → ``\\frac{1}{6}`` (exact)."""
    sign, whole, fixed, repeat = match.groups()
    whole = whole or "0"
    numerator = int(whole + fixed + repeat) - int(whole + fixed)
    denominator = (10 ** len(repeat) - 1) * 10 ** len(fixed)
    return f"{sign}\\frac{{{numerator}}}{{{denominator}}}"


_APPROX = re.compile(r"\\approx|≈")
_LONE_NAME = re.compile(r"\s*[a-zA-Z](?:_\{?\w+\}?)?\s*")


def _without_approximation(text: str) -> str:
    """``\\frac{\\sqrt3}{3} \\approx 0.577`` is ``\\frac{\\sqrt3}{3}``: an approximation restates
    the value before it (``x \\approx 3.2``, with only a name before it, is 3.2)."""
    match = _APPROX.search(text)
    if match is None:
        return text
    before, after = text[: match.start()], text[match.end() :]
    if before.strip().strip("$") and not _LONE_NAME.fullmatch(before.strip("$ ")):
        return before
    return _without_approximation(after)


def normalize(text: str) -> str:
    """Canonical surface form: delimiters, wrappers, spacing, units and currency removed.

    Pure string work, linear in the input. Two answers with the same normal form are equal.
    """
    text = text.strip()
    text = text.replace("\\$", " ").replace("\\%", "%").replace("\u2212", "-")
    for currency in ("€", "£", "¥", "\\euro", "\\pounds"):
        text = text.replace(currency, " ")
    text = _without_approximation(text).replace("\\mathbb{R}", "(-\\infty, \\infty)")
    text = _COMMA_SPACE.sub(",", text)
    text = _TRAILING_TEXT.sub("", text)
    for delimiter in ("$$", "$", "\\(", "\\)", "\\[", "\\]"):
        text = text.replace(delimiter, " ")
    text = _TRAILING_TEXT.sub("", text.strip()).strip()  # again, now that "$" is gone
    text = _SQRT_SIGN.sub(r"\\sqrt{\1}", text).replace("√", "\\sqrt ")
    for _ in range(3):
        text = _strip_outer_box(text)
    text = _FRAC_LIKE.sub(r"\\frac", text)
    text = _BINOM_LIKE.sub(r"\\binom", text)
    text = _SIZING.sub("", text)
    text = _STYLE.sub("", text)
    text = _DEGREES.sub("", text)
    text = text.replace("{,}", ",")
    text = _SPACING.sub(" ", text)
    text = _unwrap_command(text, _TEXT_WRAPPERS, keep=" " * 2)
    text = text.replace("\\\\", " \\\\ ").replace("&", " & ")
    text = re.sub(r"\s+", " ", text).strip()
    text = _TRAILING_UNITS.sub("", text).strip()
    text = text.rstrip(";:, \\").strip()
    if text.endswith(".") and not text.endswith(".."):  # a full stop, not an ellipsis
        text = text[:-1].rstrip()
    text = _MEMBERSHIP.sub("", text)
    text = re.sub(r"(?<=\d)_\{(\d+)\}", r"_\1", text)  # 204_{5} is 204_5
    text = _REPEATING.sub(_repeating_decimal, text)
    text = _NUMBER_WORDS.get(text.lower(), text)
    compound = _COMPOUND_NUMBER.fullmatch(text.lower())
    if compound:  # forty-two
        text = str(
            _TENS[compound.group(1)]
            + int(_NUMBER_WORDS[compound.group(2)] if compound.group(2) else 0)
        )
    text = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    text = _PLAIN_MIXED.sub(r"\1\\frac{\2}{\3}", text)
    text = _SPACED_THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(" ", ""), text)
    return text


# ---------------------------------------------------------------------------- tokens

_FUNCTIONS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "log", "ln", "exp", "sqrt", "lg",
}  # fmt: skip
# Other names for the same functions, in other notations (cosec in British and Indian
# textbooks, tg/ctg in Russian and other European ones, arctg).
_FUNCTION_ALIASES = {"cosec": "csc", "tg": "tan", "ctg": "cot", "cotg": "cot", "arctg": "arctan"}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma",
    "Phi", "Psi", "Omega",
}  # fmt: skip
_RELATIONS = {
    "=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=", "≤": "<=", "≥": ">=",
    "≠": "!=", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "\\ge": ">=", "\\geq": ">=",
    "\\geqslant": ">=", "\\ne": "!=", "\\neq": "!=", "\\lt": "<", "\\gt": ">",
}  # fmt: skip
_SEPARATOR_WORDS = {"and", "or"}
_TOKEN = re.compile(
    r"""
    (?P<num>\d+\.?\d*(?:[eE][+-]?\d+(?![a-zA-Z]))?|\.\d+(?:[eE][+-]?\d+(?![a-zA-Z]))?)
    |(?P<cmd>\\\\|\\[a-zA-Z]+|\\[{}|%])
    |(?P<word>[a-zA-Z]+)
    |(?P<op><=|>=|!=|\*\*|[-+*/^_!=<>()\[\]{},;|%&≤≥≠±∞π·×÷∪])
    |(?P<space>\s+)
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise MathParseError(f"unexpected character {text[position]!r}")
        position = match.end()
        kind = match.lastgroup
        value = match.group()
        if kind == "space":
            continue
        if kind == "cmd" and value == "\\\\":
            kind = "op"
        tokens.append((kind, value))
        if len(tokens) > MAX_TOKENS:
            raise MathParseError("answer too long")
    return tokens


# ---------------------------------------------------------------------------- parser


def _number(text: str) -> Node:
    decimal = "." in text or "e" in text or "E" in text
    digits = sum(char.isdigit() for char in text)
    if digits > MAX_DIGITS:
        raise MathParseError("number too long")
    try:
        return ("num", Fraction(text.rstrip(".")), decimal)
    except (ValueError, ZeroDivisionError) as error:
        raise MathParseError(f"bad number {text!r}") from error


_ONE = ("num", Fraction(1), False)
_INFINITY = ("const", "oo")


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], *, mixed_numbers: bool) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.abs_depth = 0
        self.mixed_numbers = mixed_numbers

    # --- token helpers
    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.index += 1
        return token

    def at(self, *values: str) -> bool:
        return self.peek()[1] in values and self.peek()[0] != "end"

    def expect(self, value: str) -> None:
        if not self.at(value):
            raise MathParseError(f"expected {value!r}, found {self.peek()[1]!r}")
        self.index += 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise MathParseError("nested too deeply")

    # --- grammar
    def parse_answer(self) -> Node:
        node = self.parse_list(closers=())
        if self.peek()[0] != "end":
            raise MathParseError(f"unexpected {self.peek()[1]!r}")
        return node

    def parse_list(self, closers: tuple[str, ...]) -> Node:
        items = [self.parse_union()]
        separated = False
        while self.at(",", ";") or (
            self.peek()[0] == "word" and self.peek()[1].lower() in _SEPARATOR_WORDS
        ):
            self.take()
            separated = True
            if self.peek()[0] == "end" or self.at(*closers):
                break
            items.append(self.parse_union())
        if not separated:
            return items[0]
        return ("seq", "", "", tuple(items))

    def parse_union(self) -> Node:
        items = [self.parse_relation()]
        while self.at("\\cup", "∪"):
            self.take()
            items.append(self.parse_relation())
        return items[0] if len(items) == 1 else ("union", tuple(items))

    def parse_relation(self) -> Node:
        operands = [self.parse_pm()]
        ops = []
        while self.peek()[1] in _RELATIONS and self.peek()[0] in ("op", "cmd"):
            ops.append(_RELATIONS[self.take()[1]])
            operands.append(self.parse_pm())
        if not ops:
            return operands[0]
        return ("rel", tuple(ops), tuple(operands))

    def parse_pm(self) -> Node:
        if self.at("\\pm", "±", "\\mp"):
            self.take()
            return ("pm", ("num", Fraction(0), False), self.parse_sum())
        node = self.parse_sum()
        if self.at("\\pm", "±", "\\mp"):
            self.take()
            node = ("pm", node, self.parse_sum())
        return node

    def parse_sum(self) -> Node:
        terms = [self.parse_product()]
        while self.at("+", "-"):
            sign = self.take()[1]
            term = self.parse_product()
            terms.append(("neg", term) if sign == "-" else term)
        return terms[0] if len(terms) == 1 else ("add", tuple(terms))

    def parse_product(self) -> Node:
        node = self.parse_unary()
        while True:
            if self.at("*", "\\cdot", "\\times", "·", "×"):
                self.take()
                node = _mul(node, self.parse_unary())
            elif self.at("/", "\\div", "÷"):
                self.take()
                node = ("div", node, self.parse_unary())
            elif self.starts_atom():
                if self.peek()[0] == "num" and _last_factor(node)[0] == "num":
                    raise MathParseError("two numbers side by side")
                right = self.parse_power()
                if self.mixed_numbers and _is_mixed_number(node, right):
                    node = ("add", (node, right))
                elif self.mixed_numbers and node[0] == "neg" and _is_mixed_number(node[1], right):
                    node = ("neg", ("add", (node[1], right)))
                else:
                    node = _mul(node, right)
            else:
                return node

    def starts_atom(self) -> bool:
        kind, value = self.peek()
        if kind in ("num", "word"):
            return not (kind == "word" and value.lower() in _SEPARATOR_WORDS)
        if kind == "cmd":
            name = _FUNCTION_ALIASES.get(value[1:], value[1:])
            return value in _ATOM_COMMANDS or name in _FUNCTIONS or name in _GREEK
        if value == "|":
            return self.abs_depth == 0
        return value in ("(", "π", "∞")

    def parse_unary(self) -> Node:
        if self.at("-"):
            self.take()
            return ("neg", self.parse_unary())
        if self.at("+"):
            self.take()
            return self.parse_unary()
        return self.parse_power()

    def parse_power(self) -> Node:
        base = self.parse_postfix()
        if self.at("^", "**"):
            self.take()
            self.enter()
            exponent = self.parse_group_or_unary_atom()
            self.depth -= 1
            base = ("pow", base, exponent)
            while self.at("!"):
                self.take()
                base = ("func", "factorial", (base,))
        return base

    def parse_group_or_unary_atom(self) -> Node:
        """A superscript: a braced group, or a single (possibly signed) atom."""
        if self.at("{"):
            return self.parse_braced()
        if self.at("-"):
            self.take()
            return ("neg", self.parse_group_or_unary_atom())
        # 2^10 is 1024 (plain-text reading), not LaTeX's 2^1 0: models mean the former.
        return self.parse_postfix()

    def single_digit(self) -> Node:
        """One digit of a number token (LaTeX ``x^23`` is ``x^2 * 3``, ``\\frac12`` is 1/2)."""
        kind, value = self.peek()
        if len(value) == 1 or not value.isdigit():
            self.take()
            return _number(value)
        self.tokens[self.index] = (kind, value[1:])
        return _number(value[0])

    def parse_postfix(self) -> Node:
        node = self.parse_atom()
        while True:
            if self.at("!"):
                self.take()
                node = ("func", "factorial", (node,))
            elif self.at("%"):
                self.take()
                node = ("pct", node)
            elif self.at("_") and node[0] == "sym":
                self.take()
                node = ("sym", node[1] + "_" + _subscript_text(self.parse_subscript()))
            else:
                return node

    def parse_subscript(self) -> Node:
        if self.at("{"):
            return self.parse_braced()
        kind, value = self.take()
        if kind == "num":
            return _number(value)
        if kind == "word":
            return ("sym", value)
        raise MathParseError("bad subscript")

    def parse_braced(self) -> Node:
        self.expect("{")
        self.enter()
        if self.at("}"):
            raise MathParseError("empty group")
        node = self.parse_list(closers=("}",))
        self.expect("}")
        self.depth -= 1
        return node

    def parse_argument(self) -> Node:
        """A command argument: ``{...}`` or a single token (``\\frac12``, ``\\sqrt2``)."""
        if self.at("{"):
            return self.parse_braced()
        if self.peek()[0] == "num" and self.peek()[1].isdigit():
            return self.single_digit()
        return self.parse_atom()

    def parse_atom(self) -> Node:
        kind, value = self.peek()
        if kind == "end":
            raise MathParseError("unexpected end of answer")
        if kind == "num":
            self.take()
            return _number(value)
        if kind == "word":
            return self.parse_word()
        if kind == "cmd":
            return self.parse_command()
        if value == "(" or value == "[":
            return self.parse_bracketed()
        if value == "{":
            return self.parse_braced()
        if value == "|":
            self.take()
            return self.parse_abs("|")
        if value == "π":
            self.take()
            return ("const", "pi")
        if value == "∞":
            self.take()
            return _INFINITY
        raise MathParseError(f"unexpected {value!r}")

    def parse_word(self) -> Node:
        _, word = self.take()
        lowered = word.lower()
        lowered = _FUNCTION_ALIASES.get(lowered, lowered)
        if lowered in _FUNCTIONS:
            return self.parse_function(lowered)
        if lowered == "pi":
            return ("const", "pi")
        if lowered in ("inf", "infty", "infinity"):
            return _INFINITY
        if len(word) >= 3:
            raise _TextAnswer()
        # Two letters, or one: variables multiplied (xy) or a single variable.
        nodes = [_letter(char) for char in word]
        return nodes[0] if len(nodes) == 1 else ("mul", tuple(nodes))

    def parse_command(self) -> Node:
        _, command = self.take()
        name = command[1:]
        if command == "\\frac":
            self.enter()
            numerator = self.parse_argument()
            denominator = self.parse_argument()
            self.depth -= 1
            return ("div", numerator, denominator)
        if command == "\\sqrt":
            index = None
            if self.at("["):
                self.take()
                index = self.parse_sum()
                self.expect("]")
            argument = self.parse_argument()
            return (
                ("func", "root", (argument, index))
                if index is not None
                else ("func", "sqrt", (argument,))
            )
        if command == "\\binom":
            return ("func", "binom", (self.parse_argument(), self.parse_argument()))
        name = _FUNCTION_ALIASES.get(name, name)
        if name in _FUNCTIONS:
            return self.parse_function(name)
        if name == "pi":
            return ("const", "pi")
        if name in ("infty", "infin"):
            return _INFINITY
        if name in _GREEK:
            return ("sym", name.replace("var", ""))
        if command == "\\{":
            return self.parse_set()
        if command in ("\\lfloor", "\\lceil"):
            closer = "\\rfloor" if command == "\\lfloor" else "\\rceil"
            self.enter()
            inner = self.parse_sum()
            self.expect(closer)
            self.depth -= 1
            return ("func", "floor" if closer == "\\rfloor" else "ceil", (inner,))
        if command == "\\begin":
            return self.parse_matrix()
        if command in ("\\emptyset", "\\varnothing"):
            return ("seq", "{", "}", ())
        if command in ("\\|", "\\vert"):
            return self.parse_abs(command)
        raise MathParseError(f"unsupported command {command}")

    def parse_function(self, name: str) -> Node:
        name = {"lg": "log10"}.get(name, name)
        base = None
        power = None
        if name == "log" and self.at("_"):
            self.take()
            base = self.parse_argument()
        if self.at("^"):
            self.take()
            power = self.parse_group_or_unary_atom()
        self.enter()
        if self.at("("):
            argument = self.parse_bracketed()
        elif self.at("{"):
            argument = self.parse_braced()
        else:
            # \sin 2x: the argument is the following juxtaposed factors, without operators.
            argument = self.parse_power()
            while self.starts_atom() and not self.at("(") and not self.at_function():
                argument = _mul(argument, self.parse_power())
        self.depth -= 1
        if name == "sqrt":
            node: Node = ("func", "sqrt", (argument,))
        elif name == "log":
            node = ("func", "log", (argument, base) if base is not None else (argument,))
        else:
            node = ("func", name, (argument,))
        if power is not None:
            if power == ("neg", _ONE) and name in ("sin", "cos", "tan"):
                return ("func", "arc" + name, (argument,))
            node = ("pow", node, power)
        return node

    def at_function(self) -> bool:
        kind, value = self.peek()
        name = value[1:] if kind == "cmd" else value.lower() if kind == "word" else ""
        return _FUNCTION_ALIASES.get(name, name) in _FUNCTIONS

    def parse_bracketed(self) -> Node:
        opener = self.take()[1]
        self.enter()
        items = [self.parse_union()]
        while self.at(",", ";"):
            self.take()
            items.append(self.parse_union())
        if not self.at(")", "]"):
            raise MathParseError(f"unclosed {opener!r}")
        closer = self.take()[1]
        self.depth -= 1
        if len(items) == 1 and opener == "(" and closer == ")":
            return items[0]
        if len(items) == 1 and opener == "[" and closer == "]":
            return items[0]
        return ("seq", opener, closer, tuple(items))

    def parse_set(self) -> Node:
        self.enter()
        if self.at("\\}"):
            self.take()
            self.depth -= 1
            return ("seq", "{", "}", ())
        items = [self.parse_union()]
        while self.at(",", ";"):
            self.take()
            items.append(self.parse_union())
        self.expect("\\}")
        self.depth -= 1
        return ("seq", "{", "}", tuple(items))

    def parse_abs(self, opener: str) -> Node:
        """``|x|`` (the opener is already consumed)."""
        self.enter()
        self.abs_depth += 1
        inner = self.parse_sum()
        self.abs_depth -= 1
        self.expect(opener)
        self.depth -= 1
        return ("func", "abs", (inner,))

    def parse_matrix(self) -> Node:
        self.expect("{")
        _kind, environment = self.take()
        self.expect("}")
        if environment not in ("pmatrix", "bmatrix", "matrix", "smallmatrix", "vmatrix", "array"):
            raise MathParseError(f"unsupported environment {environment}")
        if environment == "array" and self.at("{"):  # the column specification, e.g. {cc}
            while not self.at("}") and self.peek()[0] != "end":
                self.take()
            self.expect("}")
        self.enter()
        rows: list[tuple[Node, ...]] = []
        row: list[Node] = []
        while True:
            if self.at("\\end"):
                self.take()
                self.expect("{")
                self.take()
                self.expect("}")
                break
            row.append(self.parse_sum())
            if self.at("&"):
                self.take()
            elif self.at("\\\\"):
                self.take()
                rows.append(tuple(row))
                row = []
                if self.at("\\end"):
                    continue
            elif not self.at("\\end"):
                raise MathParseError("bad matrix")
        if row:
            rows.append(tuple(row))
        self.depth -= 1
        if not rows or len({len(r) for r in rows}) != 1:
            raise MathParseError("ragged matrix")
        if environment == "vmatrix":
            if len(rows) == len(rows[0]) <= 4:
                return _determinant(tuple(rows))  # |a b; c d| is ad - bc
            return ("func", "det", (("matrix", tuple(rows)),))
        return ("matrix", tuple(rows))


_ATOM_COMMANDS = {
    "\\frac", "\\sqrt", "\\binom", "\\pi", "\\infty", "\\{", "\\lfloor", "\\lceil", "\\begin",
    "\\emptyset", "\\varnothing", "\\vert",
}  # fmt: skip


class _TextAnswer(Exception):
    """Raised inside the parser when the answer turns out to be words, not mathematics."""


def _determinant(rows: tuple[tuple[Node, ...], ...]) -> Node:
    """A square matrix's determinant as an expression (cofactor expansion; n ≤ 4)."""
    if len(rows) == 1:
        return rows[0][0]
    terms: list[Node] = []
    for column, entry in enumerate(rows[0]):
        minor = tuple(row[:column] + row[column + 1 :] for row in rows[1:])
        term = _mul(entry, _determinant(minor))
        terms.append(("neg", term) if column % 2 else term)
    return ("add", tuple(terms))


def _letter(char: str) -> Node:
    if char == "e":
        return ("const", "e")
    if char == "i":
        return ("const", "i")
    return ("sym", char)


def _mul(left: Node, right: Node) -> Node:
    factors = (left[1] if left[0] == "mul" else (left,)) + (
        right[1] if right[0] == "mul" else (right,)
    )
    return ("mul", factors)


def _is_mixed_number(left: Node, right: Node) -> bool:
    """``2\\frac{1}{2}``: a whole number followed by a proper fraction of whole numbers."""
    if left[0] != "num" or left[2] or left[1].denominator != 1 or left[1] < 0:
        return False
    if right[0] != "div" or right[1][0] != "num" or right[2][0] != "num":
        return False
    numerator, denominator = right[1], right[2]
    if (
        numerator[2]
        or denominator[2]
        or numerator[1].denominator != 1
        or denominator[1].denominator != 1
    ):
        return False
    return 0 <= numerator[1] < denominator[1]


def _last_factor(node: Node) -> Node:
    return node[1][-1] if node[0] == "mul" else node


def _subscript_text(node: Node) -> str:
    if node[0] == "num":
        return str(node[1])
    if node[0] == "sym":
        return node[1]
    if node[0] == "const":
        return node[1]
    if node[0] == "mul":
        return "".join(_subscript_text(factor) for factor in node[1])
    raise MathParseError("bad subscript")


_CHOICE = re.compile(r"^\(?\s*([A-J])\s*\)?$")
# Words, signed numbers and relation symbols: an answer in words keeps what it says about
# order and sign ("x > 3 for all x" is not "x < 3 for all x").
_WORDS = re.compile(r"[a-z]+|-?\d+(?:\.\d+)?|[<>=≤≥≠]+|\\(?:leq?|geq?|neq?|lt|gt)(?![a-z])")


def parse(text: str, *, mixed_numbers: bool = True) -> Node:
    """Parse a normalised answer (see :func:`normalize`) into a tree.

    Raises :class:`MathParseError` when it is not understood or is over a bound. Answers made
    of words come back as ``("text", words)``; a lone capital letter in A–J (optionally in
    parentheses) as ``("choice", letter)``.
    """
    if len(text) > MAX_ANSWER_CHARS:
        raise MathParseError(f"answer over {MAX_ANSWER_CHARS} characters")
    if not text:
        raise MathParseError("empty answer")
    choice = _CHOICE.match(text)
    if choice:
        return ("choice", choice.group(1))
    try:
        tokens = _tokenize(text)
        if not tokens:
            raise MathParseError("empty answer")
        return _Parser(tokens, mixed_numbers=mixed_numbers).parse_answer()
    except _TextAnswer:
        words = tuple(_WORDS.findall(text.lower()))
        if not words:
            raise MathParseError("no words") from None
        return ("text", words)
    except RecursionError:
        raise MathParseError("nested too deeply") from None


def children(node: Node) -> list[Node]:
    """The sub-trees of a node, for any node kind."""
    kind = node[0]
    if kind in ("add", "mul"):
        return list(node[1])
    if kind in ("div", "pow", "pm"):
        return [node[1], node[2]]
    if kind in ("neg", "pct"):
        return [node[1]]
    if kind == "func":
        return [arg for arg in node[2] if arg is not None]
    if kind == "rel":
        return list(node[2])
    if kind == "seq":
        return list(node[3])
    if kind == "union":
        return list(node[1])
    if kind == "matrix":
        return [cell for row in node[1] for cell in row]
    return []


def symbols(node: Node) -> set[str]:
    """The names of the variables in a tree."""
    if node[0] == "sym":
        return {node[1]}
    found: set[str] = set()
    for child in children(node):
        found |= symbols(child)
    return found
