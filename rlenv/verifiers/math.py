"""The math verifier: extract a final answer, decide if it equals the reference.

:func:`grade` is the one entry point (every math environment, :class:`MathVerifier` and
:func:`is_equivalent` go through it): the gold as datasets write it, the response as the model
wrote it (a whole response or a bare answer).

>>> grade("42", "First 6 * 7 = 42.\\n\\n**Final Answer:** 42").reward
1.0
>>> extract_answer("... so the total is \\\\boxed{\\\\frac{3}{4}}.")
'\\\\frac{3}{4}'
>>> is_equivalent("\\\\frac{3}{4}", "0.75")
True
>>> is_equivalent("3", "\\\\boxed{1, 2, 3}")  # listing candidates never earns the reward
False

How equivalence is decided, cheapest first (see ``docs/verifiers/math.md`` for every policy):

1. **Normal form.** Delimiters, ``\\boxed``, ``\\text{}``, ``\\left``/``\\right``, spacing,
   thousands separators, units and currency are removed; equal normal forms are equal.
2. **Parse** both sides with rlenv's own bounded parser (:mod:`rlenv.verifiers._mathparse`:
   no ``eval``, bounded length, tokens and depth) into a tree; parsed golds are cached.
3. **Structure.** Tuples compare in order, sets and bare lists of answers as multisets,
   intervals with their open/closed ends, equations and inequalities up to rearrangement,
   ``x = 5`` as ``5``, ``±`` as a pair of values, matrices entry by entry, words as words.
4. **Exact rationals.** Numbers, fractions and percentages compare exactly with Python's
   ``Fraction`` (no floating point, no sympy): the fast path for most answers.
5. **Numbers and expressions.** Anything else is evaluated with mpmath at 50 and 100 significant
   digits at several deterministic points (for variables): values that differ are different;
   values that agree to ~90 digits are equal. A relative tolerance (default 1e-4) applies only
   when a side is *written* as a decimal.
6. **sympy**, in a worker process that a timeout can kill, when numerics are inconclusive (or
   always, with ``MathPolicy(symbolic_check="sympy")``).

Every call is bounded by ``timeout`` (default 0.5 s) from any thread: steps 1–5 check a deadline
cooperatively and cost microseconds to milliseconds; step 6 runs in a killable process.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlenv.verdict import Verdict
from rlenv.verifiers._answer import (
    _TEXT_GROUP,
    DEFAULT_FALLBACKS,
    has_prose,
    last_box,
    read_answer,
    read_choice,
)
from rlenv.verifiers._mathparse import (
    _TRAILING_UNITS,
    MAX_ANSWER_CHARS,
    MathParseError,
    Node,
    children,
    normalize,
    parse,
    symbols,
)

__all__ = [
    "DEFAULT_FALLBACKS",
    "MathComparison",
    "MathPolicy",
    "MathVerifier",
    "compare",
    "exact_value",
    "extract_answer",
    "grade",
    "is_equivalent",
]

DEFAULT_TIMEOUT = 0.5
logger = logging.getLogger("rlenv")

# ----------------------------------------------------------------------------- extraction


def extract_answer(text: str, *, fallbacks: Sequence[str] | bool = True) -> str | None:
    """The final answer a completion commits to, or ``None``.

    The rules, first that applies (each documented in :mod:`rlenv.verifiers._answer` and
    ``docs/verifiers/math.md``): reasoning (``<think>``, GPT-OSS's analysis channel) never
    answers; the last ``\\boxed{}``/``\\fbox{}`` (boxes written one after another at the end
    give the list of their contents; a last box never closed gives ``None``); then the
    ``fallbacks`` in order (``True``: :data:`DEFAULT_FALLBACKS`; ``False`` or ``()``: boxes
    only): ``"bare_answer"`` (a short text that is mathematics on its own),
    ``"final_answer"`` ("the final answer is X"), ``"answer_colon"`` ("Answer: X"),
    ``"display_math"`` (the last ``\\[...\\]``, else inline math), ``"bold"`` (the last
    ``**X**``) and ``"last_number"``.
    """
    return read_answer(text, fallbacks=fallbacks, is_answer=_is_bare_answer)[0]


def _is_bare_answer(text: str, *, words: bool = False) -> bool:
    """Whether ``text`` is an answer on its own: one line without prose (a word of three
    letters or more, outside ``\\text{}``, that is not a function name) that the parser reads,
    or that it cannot read but is short (``12:00``: the comparison then decides by normal form).
    A gold given in words (``words``) takes a short text as its answer."""
    if "\n" in text.strip():
        return False
    if words:
        return len(text.split()) <= 6
    if has_prose(normalize(_TEXT_GROUP.sub(" ", text))):  # units, "percent" are not prose
        return False
    try:
        node = parse(normalize(text))
    except MathParseError:
        return len(text) <= 60
    return node[0] != "text"


# ----------------------------------------------------------------------------- policy


class MathPolicy(BaseModel):
    """The choices an equivalence check makes where graders disagree (all documented in
    ``docs/verifiers/math.md``). The defaults are rlenv's; :meth:`strict` and :meth:`lenient`
    are the two ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    percent: Literal["strip", "fraction", "either"] = Field(
        default="strip",
        description="'strip': 50% equals 50. 'fraction': 50% equals 0.5. 'either': both.",
    )
    rel_tol: float = Field(
        default=1e-4,
        ge=0,
        description="Relative tolerance, used only when a side is written as a decimal.",
    )
    require_number: bool = Field(
        default=True,
        description="When the gold is a plain number (integer, decimal, fraction), unevaluated "
        "arithmetic on numbers does not answer it: '2+3' or '12 \\times 7 + 1' do not answer "
        "5 or 85 (powers, roots and functions such as '10^6' or '\\log_2 8' do).",
    )
    reduced_fractions: bool = Field(
        default=False, description="Require fractions in lowest terms: '2/4' does not equal 1/2."
    )
    mixed_numbers: bool = Field(
        default=True, description="Read '2\\frac{1}{2}' as 2 + 1/2 (else as 2 × 1/2)."
    )
    assignments: bool = Field(default=True, description="Accept 'x = 5' for 5 (and 5 for 'x = 5').")
    decimal_comma: bool = Field(
        default=False,
        description="Read '3,5' as 3.5 (European notation). Off: a comma with 1-2 digits after "
        "it separates a list ('3,5' is two answers); with 3 digits it groups thousands.",
    )
    units: Literal["strip", "match"] = Field(
        default="strip",
        description="'strip': trailing unit words are ignored ('5 cm' answers 5). 'match': when "
        "both name a unit, it must be the same ('5 km' does not answer '5 cm').",
    )
    symbolic_check: Literal["numeric", "sympy"] = Field(
        default="numeric",
        description="'numeric': high-precision evaluation decides, sympy only when it is "
        "inconclusive. 'sympy': numeric equality is also confirmed by sympy.",
    )

    @classmethod
    def strict(cls) -> MathPolicy:
        """No tolerance beyond 1e-6, fractions in lowest terms, no '2\\frac12' mixed numbers."""
        return cls(rel_tol=1e-6, reduced_fractions=True, mixed_numbers=False)

    @classmethod
    def lenient(cls) -> MathPolicy:
        """50% equals 50 and 0.5, answers may be unevaluated expressions, 1% tolerance."""
        return cls(percent="either", rel_tol=1e-2, require_number=False)


_DEFAULT_POLICY = MathPolicy()


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class MathComparison:
    """The outcome of :func:`compare`: the verdict and why."""

    equivalent: bool
    reason: str
    gold: str | None = None
    pred: str | None = None
    timed_out: bool = False


class _Timeout(Exception):
    pass


class _Inconclusive(Exception):
    """Numeric evaluation could not decide (undefined everywhere, overflow)."""


def compare(
    gold: str,
    pred: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    policy: MathPolicy | None = None,
) -> MathComparison:
    """Decide whether ``pred`` answers ``gold``, with the reason. Never raises on any input."""
    policy = policy or _DEFAULT_POLICY
    if not isinstance(gold, str) or not isinstance(pred, str):
        return MathComparison(False, "gold and prediction must be strings")
    if not pred.strip():
        return MathComparison(False, "empty answer", gold=gold, pred=pred)
    if len(pred) > 4 * MAX_ANSWER_CHARS:
        return MathComparison(False, f"answer over {4 * MAX_ANSWER_CHARS} characters", gold=gold)
    gold_stripped, pred_stripped = gold.strip(), pred.strip()
    if _PLAIN_INTEGER.fullmatch(gold_stripped) and _PLAIN_INTEGER.fullmatch(pred_stripped):
        # The commonest case (GSM8K-style answers): no normalisation, no parsing.
        same = int(gold_stripped) == int(pred_stripped)
        return MathComparison(same, "equal" if same else "different", gold_stripped, pred_stripped)
    deadline = time.monotonic() + timeout
    if policy.decimal_comma:
        gold, pred = _DECIMAL_COMMA.sub(r"\1.\2", gold), _DECIMAL_COMMA.sub(r"\1.\2", pred)
    if policy.units == "match" and None is not _unit_of(gold) != _unit_of(pred) is not None:
        return MathComparison(False, "different unit", gold, pred)
    gold_norm = _normalize_cached(gold)
    pred_norm = gold_norm if pred == gold else normalize(pred)  # an answer written as the gold
    if "=" not in gold_norm:  # f(x) = 2x + 1 answers 2x + 1: the name is a label
        pred_norm = _FUNCTION_LABEL.sub("", pred_norm, count=1).strip() or pred_norm
    if gold_norm == pred_norm and gold_norm:
        return MathComparison(True, "same normal form", gold_norm, pred_norm)
    if "=" in gold_norm and "=" not in pred_norm:  # |AB| = 1, V_1:V_2 = 11:21, AB = 4, CD = 5
        values = _labelled_values(gold_norm)
        if values is not None:
            labelled = compare(values, pred_norm, timeout=timeout, policy=policy)
            if labelled.equivalent:
                return labelled
    try:
        gold_tree = _parse_cached(gold_norm, policy.mixed_numbers)
    except MathParseError as error:
        return MathComparison(False, f"gold not understood ({error})", gold_norm, pred_norm)
    try:
        pred_tree = parse(pred_norm, mixed_numbers=policy.mixed_numbers)
    except MathParseError as error:
        # \\lim_{x \\to 0} \\frac{\\sin x}{x} = 1: a result labelled by what the parser cannot read
        split = _last_top_level_equals(pred_norm)
        if split is not None and "=" not in gold_norm:
            return compare(gold, pred_norm[split + 1 :].strip(), timeout=timeout, policy=policy)
        return MathComparison(False, f"answer not understood ({error})", gold_norm, pred_norm)
    if pred_tree[0] == "text" and "=" not in gold_norm:  # V_{3 inch} = 675: a worded label
        split = _last_top_level_equals(pred_norm)
        if split is not None:
            return compare(gold, pred_norm[split + 1 :].strip(), timeout=timeout, policy=policy)
    comparator = _Comparator(policy, deadline)
    try:
        equal, reason = comparator.answers(gold_tree, pred_tree)
    except _Timeout:
        return MathComparison(False, "timed out", gold_norm, pred_norm, timed_out=True)
    except (RecursionError, MemoryError, OverflowError) as error:
        return MathComparison(False, f"too large to compare ({type(error).__name__})")
    except Exception as error:  # a comparison bug must never raise on model output
        logger.warning("math comparison failed on %r vs %r", gold[:200], pred[:200], exc_info=True)
        return MathComparison(False, f"could not compare ({type(error).__name__})", gold, pred)
    return MathComparison(equal, reason, gold_norm, pred_norm)


_DECIMAL_COMMA = re.compile(r"(?<![\d,])(-?\d+),(\d{1,2})(?![\d,])")


_SUBSCRIPT = re.compile(r"_\{[^{}]*\}|_\w")
_LABEL = re.compile(r"[A-Za-z\\{}|:()\s'^]+")


def _last_top_level_equals(text: str) -> int | None:
    """The index of the last ``=`` outside brackets (``\\sum_{i=1}^n i = ...``), or None."""
    depth, found = 0, None
    for index, char in enumerate(text):
        depth += (char in "({[") - (char in ")}]")
        if char == "=" and depth == 0:
            found = index
    return found if found is not None and text[found + 1 :].strip() else None


def _labelled_values(gold: str) -> str | None:
    """The values of a gold written as named results: ``AB = 4, CD = 5`` → ``4, 5``,
    ``\\frac{NO}{BO} = \\frac{1}{\\sqrt6}`` → its right side; ``None`` unless every part is
    ``name = value`` with a name of letters only (no digits outside subscripts)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(gold):
        depth += (char in "({[") - (char in ")}]")
        if char in ",;" and depth == 0:
            parts.append(gold[start:index])
            start = index + 1
    parts.append(gold[start:])
    values = []
    for part in parts:
        name, sign, value = part.partition("=")
        name = _SUBSCRIPT.sub("", name).strip()
        if not sign or "=" in value or not name or not _LABEL.fullmatch(name):
            return None
        values.append(value.strip())
    if not all(values):
        return None
    return values[0] if len(values) == 1 else f"({', '.join(values)})"  # named: in order


def _unit_of(text: str) -> str | None:
    """The unit word an answer ends with (``"5 cm"`` → ``"cm"``), lowercased, or ``None``."""
    plain = re.sub(r"\\(?:text|textrm|mathrm|mbox)\s*\{([^{}]*)\}", r" \1 ", text)
    match = _TRAILING_UNITS.search(plain.strip())
    return " ".join(match.group().lower().replace(".", " ").split()) if match else None


def is_equivalent(
    gold: str,
    pred: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    policy: MathPolicy | None = None,
) -> bool:
    """Whether ``pred`` answers reference ``gold``: :func:`grade`'s verdict as a bool.

    ``pred`` may be a bare answer or a whole response (the same reading as :func:`grade`, so
    the two never disagree); ``gold`` is plain text or LaTeX, with or without ``$`` delimiters
    or ``\\boxed{}``. Asymmetric where policies are (``x = 5`` may answer ``5``; a gold that is a
    plain number needs a plain-number answer). Deterministic, never raises, and returns within
    ``timeout`` seconds (``False`` if it cannot decide in time), from any thread.
    """
    return grade(gold, pred, timeout=timeout, policy=policy).reward == 1.0


_GSM8K_MARK = "####"
_UNESCAPE = re.compile(r"(?<!\\)\\\\(?=[a-zA-Z]{2,})")
_FUNCTION_LABEL = re.compile(r"^\s*[A-Za-z](?:_\{?\w{1,5}\}?)?\s*\(\s*[^()=]{0,30}\)\s*=(?!=)")


def grade(
    gold: Any,
    response: Any,
    *,
    policy: MathPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    fallbacks: Sequence[str] | bool = True,
    question: Any = None,
) -> Verdict:
    """Decide whether ``response`` gives the answer ``gold``: the one entry point every math
    environment, :class:`MathVerifier` and :func:`is_equivalent` use.

    Args:
        gold: The reference as datasets write it: bare (``3/4``), in ``$...$``, in
            ``\\boxed{}``, a GSM8K solution ending ``#### 72``, or a number.
        response: What the model wrote: a whole response (reasoning, then an answer) or a bare
            answer. The answer is read as :func:`extract_answer` reads it; for a gold that is a
            multiple-choice letter, "I think it's (D)" answers ``D``.
        policy: The choices graders disagree on (:class:`MathPolicy`).
        timeout: Seconds for the comparison (from any thread).
        fallbacks: Which extraction rules may find an unboxed answer (``False``: boxes only).
        question: What was asked (text, the prompt's messages, or the ``Task``): an answer that
            only restates part of it scores 0.

    Returns:
        A :class:`~rlenv.Verdict`: reward 1.0 or 0.0, the answer read (``parsed``), and the
        reason. A gold that cannot be read gives an unscored verdict (``scored=False``): the
        response was not judged. Never raises on any response.
    """
    policy = policy or _DEFAULT_POLICY
    question_text = _question_text(question)
    gold_text = _gold_answer(gold)
    if gold_text is None:
        return Verdict(
            reward=0.0, scored=False, error=f"the gold answer is unreadable: {gold!r:.80}"
        )
    try:
        gold_tree: Node = _parse_cached(_normalize_cached(gold_text), policy.mixed_numbers)
    except MathParseError:
        gold_tree = ("unparsed",)  # the comparison can still match its normal form
    if gold_tree[0] == "choice":
        letter = _bare_choice(response) or read_choice(response)
        if letter is None:
            return Verdict(reward=0.0, error="no choice letter found", reason="no answer")
        right = letter == gold_tree[1]
        return Verdict(
            reward=float(right), parsed=letter, reason="correct" if right else "wrong: other choice"
        )
    words = gold_tree[0] == "text"
    answer, how = read_answer(
        response,
        fallbacks=fallbacks,
        is_answer=lambda text: _is_bare_answer(text, words=words),
    )
    if answer is None:
        return Verdict(reward=0.0, error=how, reason="no answer")
    if question_text is not None and _restates(answer, gold_text, question_text):
        return Verdict(
            reward=0.0, parsed=answer, error="the answer restates the question", reason="wrong"
        )
    result = compare(gold_text, answer, timeout=timeout, policy=policy)
    return Verdict(
        reward=1.0 if result.equivalent else 0.0,
        parsed=answer,
        reason="correct" if result.equivalent else f"wrong: {result.reason}",
        error="verification timed out" if result.timed_out else None,
    )


def _bare_choice(response: Any) -> str | None:
    """The letter of a response that is just a choice (``B``, ``(B)``, ``\\textbf{B}``)."""
    if not isinstance(response, str) or len(response) > 40:
        return None
    try:
        node = parse(normalize(response.strip().strip("*").strip()))
    except MathParseError:
        return None
    return _choice_letter(node)


def _gold_answer(gold: Any) -> str | None:
    """The answer part of a gold as datasets write it, or ``None`` when there is none."""
    if isinstance(gold, bool) or gold is None:
        return None
    if isinstance(gold, (int, float, Fraction)):
        return str(gold)
    if not isinstance(gold, str):
        return None
    text = gold.strip()
    if _GSM8K_MARK in text:
        text = text.rsplit(_GSM8K_MARK, 1)[1].strip()
    if len(text) > 16 * MAX_ANSWER_CHARS:
        return None
    text = _UNESCAPE.sub(r"\\", text)  # \\frac from a JSON-escaped dataset
    if "\\boxed" in text or "\\fbox" in text:  # a solution that boxes its answer
        boxed = last_box(text)  # boxes written one after another are one list, as in answers
        if boxed:
            return boxed
    if len(text) > 200 or "\n" in text or has_prose(text):  # a solution, "So the answer is B"
        answer, _ = read_answer(text, is_answer=_is_bare_answer)
        return answer or text
    return text or None


@lru_cache(maxsize=8192)
def _normalize_cached(gold: str) -> str:
    return normalize(gold)


@lru_cache(maxsize=8192)
def _parse_cached(text: str, mixed_numbers: bool) -> Node:
    return parse(text, mixed_numbers=mixed_numbers)


_EQUAL = (True, "equal")
_PLAIN_INTEGER = re.compile(r"-?\d{1,400}")


class _Comparator:
    """Structural comparison of two parsed answers under a policy, with a deadline."""

    def __init__(self, policy: MathPolicy, deadline: float) -> None:
        self.policy = policy
        self.deadline = deadline

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Timeout

    # --- top level: answers
    def answers(self, gold: Node, pred: Node) -> tuple[bool, str]:
        if gold[0] == "choice":
            letter = _choice_letter(pred)
            return (letter == gold[1], "choice letter") if letter else (False, "not a choice")
        if gold[0] == "text" or pred[0] == "text":
            if gold[0] == pred[0] == "text":
                return (gold[1] == pred[1], "text")
            return False, "text versus mathematics"
        if (
            _assigns_to(gold) is not None
            and _assigns_to(gold) == _assigns_to(pred)
            and (len(pred[2]) > 2 and len(gold[2]) == 2)
        ):
            # x = 11 against x = 5 + 6 = 11: a true chain's last side is its value (a chain
            # with a false step, x = 5 + 5 + 1 = 7 = 11, states nothing)
            value = self.labelled_value(pred)
            if value is None:
                return False, "a chain of equalities with a false step"
            gold, pred = gold[2][-1], value
        gold, pred = self.drop_assignments(gold, pred)
        if gold is None or pred is None:
            return False, "an equation is not an answer here"
        if self.policy.require_number and _is_plain_number(gold) and _is_arithmetic(pred):
            return False, "the reference is a number; the answer is unevaluated arithmetic"
        if self.policy.reduced_fractions and _is_unreduced_fraction(pred):
            return False, "fraction not in lowest terms"
        modes = ("strip", "fraction") if self.policy.percent == "either" else (self.policy.percent,)
        for mode in modes:
            if self.equal(gold, pred, mode):
                return _EQUAL
        return False, "different"

    def drop_assignments(self, gold: Node, pred: Node) -> tuple[Node | None, Node | None]:
        """``x = 5`` against ``5``: compare the values (both ways, element-wise in lists)."""
        if not self.policy.assignments:
            return gold, pred
        gold_rel, pred_rel = _has_relation(gold), _has_relation(pred)
        if gold_rel and not pred_rel:
            gold = _strip_assignment(gold)
        elif pred_rel and not gold_rel:
            union = _as_union(pred)  # x < 1 or x > 2
            pred = self.labelled_value(pred) or (union if union is not pred else None)
            pred = pred or _strip_assignment(union)
        return gold, pred

    def labelled_value(self, node: Node) -> Node | None:
        """The value a chain of ``=`` ends with, when every other side labels it: what the
        value is of (``x = 6 \\cdot 7 = 42``, ``(x+y)^2 = 81``) or a constant expression equal to
        it (``\\sqrt{4} = 2``, ``\\binom{5}{2} = 10``, ``1200 + 34 = 1234``). A false statement
        (``3 = 4``) or a value with a variable in it (``x = x``) labels nothing: ``None``."""
        if node[0] != "rel" or set(node[1]) != {"="}:
            return None
        *labels, value = node[2]
        if symbols(value) or not labels:
            return None
        for side in labels:
            # a side with a variable names what the value is of ((x+y)^2 = 81); a constant
            # side must equal the value (3 = 4 states nothing)
            if not symbols(side) and not self.equal_values(side, value, "strip"):
                return None
        return value

    # --- recursive equality
    def equal(self, gold: Node, pred: Node, mode: str) -> bool:
        self.tick()
        if gold[0] == "matrix" and pred[0] != "matrix":  # a matrix expression to evaluate
            pred = _matrix_value(pred) or pred
        kind_g, kind_p = gold[0], pred[0]
        if "matrix" in (kind_g, kind_p) and kind_g != kind_p:  # a vector written as a tuple
            vector_g, vector_p = _as_vector(gold), _as_vector(pred)
            if vector_g is None or vector_p is None or len(vector_g) != len(vector_p):
                return False
            return all(self.equal(g, p, mode) for g, p in zip(vector_g, vector_p, strict=True))
        if kind_g in ("seq", "pm", "union") or kind_p in ("seq", "pm", "union"):
            return self.equal_collections(gold, pred, mode)
        if kind_g == "matrix" or kind_p == "matrix":
            if (
                kind_g != kind_p
                or len(gold[1]) != len(pred[1])
                or len(gold[1][0]) != len(pred[1][0])
            ):
                return False
            return all(
                self.equal(g, p, mode)
                for row_g, row_p in zip(gold[1], pred[1], strict=False)
                for g, p in zip(row_g, row_p, strict=False)
            )
        if kind_g == "rel" or kind_p == "rel":
            if kind_g != kind_p:
                return False
            return self.equal_relations(gold, pred, mode)
        if kind_g in ("text", "choice") or kind_p in ("text", "choice"):
            return gold == pred
        return self.equal_values(gold, pred, mode)

    def equal_collections(self, gold: Node, pred: Node, mode: str) -> bool:
        gold, pred = _as_union(gold), _as_union(pred)
        gold, pred = _interval_from_relation(gold), _interval_from_relation(pred)
        if gold[0] == "union" or pred[0] == "union":
            g_items = gold[1] if gold[0] == "union" else (gold,)
            p_items = pred[1] if pred[0] == "union" else (pred,)
            return self.match_unordered(g_items, p_items, mode)
        gold, pred = _interval_from_relation(gold), _interval_from_relation(pred)
        g_open, g_close, g_items = _collection(gold)
        p_open, p_close, p_items = _collection(pred)
        if _collection_kind(g_open, g_close) in ("set", "list"):
            g_items = _expand_pm(g_items)
        if _collection_kind(p_open, p_close) in ("set", "list"):
            p_items = _expand_pm(p_items)
        if g_items is None or p_items is None or len(g_items) != len(p_items):
            return False
        g_kind, p_kind = _collection_kind(g_open, g_close), _collection_kind(p_open, p_close)
        if "set" in (g_kind, p_kind):
            if not {g_kind, p_kind} <= {"set", "list"}:
                return False
            return self.match_unordered(g_items, p_items, mode)
        if g_kind == "list" and p_kind == "list":
            return self.match_unordered(g_items, p_items, mode)
        brackets_match = (g_open, g_close) == (p_open, p_close) or (
            "list" in (g_kind, p_kind) and ("tuple" in (g_kind, p_kind))
        )
        if not brackets_match:
            return False
        return all(self.equal(g, p, mode) for g, p in zip(g_items, p_items, strict=False))

    def match_unordered(self, gold: Sequence[Node], pred: Sequence[Node], mode: str) -> bool:
        """A perfect matching between the two multisets (augmenting paths; n ≤ 64)."""
        if len(gold) != len(pred) or len(gold) > 64:
            return False
        matrix = [[self.equal(g, p, mode) for p in pred] for g in gold]
        owner: list[int | None] = [None] * len(pred)

        def augment(row: int, seen: list[bool]) -> bool:
            for column, ok in enumerate(matrix[row]):
                if ok and not seen[column]:
                    seen[column] = True
                    if owner[column] is None or augment(owner[column], seen):
                        owner[column] = row
                        return True
            return False

        return all(augment(row, [False] * len(pred)) for row in range(len(gold)))

    def equal_relations(self, gold: Node, pred: Node, mode: str) -> bool:
        g_interval, p_interval = _interval_from_relation(gold), _interval_from_relation(pred)
        if g_interval is not gold and p_interval is not pred:
            return self.equal_collections(g_interval, p_interval, mode)
        g_ops, g_args = gold[1], gold[2]
        p_ops, p_args = pred[1], pred[2]
        if len(g_ops) != 1 or len(p_ops) != 1:
            if (g_ops, len(g_args)) == (p_ops, len(p_args)):
                pairs = zip(g_args, p_args, strict=True)
                return all(self.equal_values(g, p, mode) for g, p in pairs)
            return False
        g_form, p_form = _relation_form(g_ops[0], *g_args), _relation_form(p_ops[0], *p_args)
        if g_form[0] != p_form[0]:
            return False
        sign = "any" if g_form[0] in ("=", "!=") else "positive"
        return self.proportional(g_form[1], p_form[1], sign, mode)

    # --- values
    def equal_values(self, gold: Node, pred: Node, mode: str) -> bool:
        if gold == pred:
            return True
        decimal = _has_decimal(gold) or _has_decimal(pred)
        exact_g, exact_p = _rational(gold, mode), _rational(pred, mode)
        if exact_g is not None and exact_p is not None:
            close = _close_rational(exact_g, exact_p, self.policy.rel_tol if decimal else 0.0)
            places = _written_places(gold), _written_places(pred)
            if close and None not in places:
                # Two written decimals must also round to each other: a relative tolerance
                # alone takes 16386.16 for 16386.17 (a cent off is 6e-7 of the value).
                coarser = min(places)  # type: ignore[type-var]
                return abs(exact_g - exact_p) <= Fraction(1, 2 * 10**coarser)
            return close
        if _has_infinity(gold) or _has_infinity(pred):
            return _infinity_sign(gold) == _infinity_sign(pred) is not None
        return self.numeric_equal(gold, pred, decimal, mode)

    def numeric_equal(self, gold: Node, pred: Node, decimal: bool, mode: str) -> bool:
        from rlenv.verifiers import _numeric

        try:
            verdict = _numeric.equal(
                gold, pred, rel_tol=self.policy.rel_tol if decimal else None,
                percent=mode, tick=self.tick,
            )  # fmt: skip
        except _numeric.Incomparable:
            return False  # too large, or not a number: sympy would be no better
        except _numeric.Inconclusive:
            verdict = None
        if verdict is False:
            return False
        if verdict is True and (self.policy.symbolic_check == "numeric" or decimal):
            return True
        return self.sympy_equal(gold, pred, mode, fallback=verdict)

    def proportional(self, gold: Node, pred: Node, sign: str, mode: str) -> bool:
        from rlenv.verifiers import _numeric

        try:
            return _numeric.proportional(gold, pred, sign=sign, percent=mode, tick=self.tick)
        except _numeric.Inconclusive:
            return False

    def sympy_equal(self, gold: Node, pred: Node, mode: str, *, fallback: bool | None) -> bool:
        from rlenv.verifiers import _symbolic

        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        result = _symbolic.equal(gold, pred, percent=mode, timeout=remaining)
        if result is None:  # sympy could not decide in time either
            if time.monotonic() > self.deadline:
                raise _Timeout
            return bool(fallback)
        return result


# ----------------------------------------------------------------------------- tree helpers


_MAX_MATRIX_CELLS = 400


def _matrix_value(node: Node) -> Node | None:
    """A sum, difference, product or scalar multiple of matrices as one matrix whose entries
    are (unevaluated) expressions; ``None`` when ``node`` is not such an expression or the
    shapes do not fit."""
    kind = node[0]
    if kind == "matrix":
        return node
    if kind == "neg":
        inner = _matrix_value(node[1])
        return _matrix_map(inner, lambda cell: ("neg", cell)) if inner else None
    if kind == "add":
        terms = [_matrix_value(term) for term in node[1]]
        if any(term is None for term in terms):
            return None
        shape = {(len(t[1]), len(t[1][0])) for t in terms}  # type: ignore[index]
        if len(shape) != 1:
            return None
        rows, columns = shape.pop()
        return (
            "matrix",
            tuple(
                tuple(("add", tuple(t[1][r][c] for t in terms)) for c in range(columns))  # type: ignore[index]
                for r in range(rows)
            ),
        )
    if kind == "mul":
        result: Node | None = None
        scalars: list[Node] = []
        for factor in node[1]:
            matrix = _matrix_value(factor) if factor[0] in ("matrix", "add", "neg", "mul") else None
            if matrix is None:
                if symbols(factor) or factor[0] in ("seq", "rel", "union", "text", "choice"):
                    return None
                scalars.append(factor)
            elif result is None:
                result = matrix
            else:
                result = _matrix_product(result, matrix)
                if result is None:
                    return None
        if result is None:
            return None
        for scalar in scalars:
            result = _matrix_map(result, lambda cell, k=scalar: ("mul", (k, cell)))
        return result
    return None


def _matrix_map(matrix: Node, function: Any) -> Node:
    return ("matrix", tuple(tuple(function(cell) for cell in row) for row in matrix[1]))


def _matrix_product(left: Node, right: Node) -> Node | None:
    a, b = left[1], right[1]
    if len(a[0]) != len(b) or len(a) * len(b[0]) * len(b) > _MAX_MATRIX_CELLS:
        return None
    return (
        "matrix",
        tuple(
            tuple(
                ("add", tuple(("mul", (a[r][k], b[k][c])) for k in range(len(b))))
                for c in range(len(b[0]))
            )
            for r in range(len(a))
        ),
    )


def _as_vector(node: Node) -> tuple[Node, ...] | None:
    """The entries of a one-row or one-column matrix, or of a tuple ``(a, b, ...)``."""
    if node[0] == "matrix":
        rows = node[1]
        if len(rows) == 1:
            return rows[0]
        if all(len(row) == 1 for row in rows):
            return tuple(row[0] for row in rows)
        return None
    if node[0] == "seq" and (node[1], node[2]) == ("(", ")"):
        return node[3]
    return None


def _choice_letter(node: Node) -> str | None:
    if node[0] == "choice":
        return node[1]
    if node[0] == "sym" and len(node[1]) == 1 and node[1].isalpha():
        return node[1].upper()
    if node[0] == "const" and node[1] in ("e", "i"):
        return node[1].upper()
    return None


def _assigns_to(node: Node) -> str | None:
    """The variable a chain of ``=`` opens with (``x = 5 + 6 = 11`` → ``x``), else None."""
    if node[0] == "rel" and set(node[1]) == {"="} and node[2][0][0] == "sym":
        return node[2][0][1]
    return None


def _has_relation(node: Node) -> bool:
    if node[0] == "rel":
        return True
    if node[0] == "seq" and node[1] == "":
        return any(item[0] == "rel" for item in node[3])
    return False


def _strip_assignment(node: Node) -> Node | None:
    """``x = 5`` → 5 (a single variable on one side); lists element-wise; else None."""
    if node[0] == "seq":
        named = _named_values(node[3])
        if named is not None:  # "y = -1, x = 2" is the point (x, y) = (2, -1)
            return ("seq", "", "", tuple(value for _, value in sorted(named)))
        items = tuple(_strip_assignment(item) if item[0] == "rel" else item for item in node[3])
        if any(item is None for item in items):
            return None
        if _assigns_one_variable(node[3]):  # "x = 2, x = -1" is a solution set, not a point
            return ("seq", "{", "}", items)
        return (*node[:3], items)
    if node[0] != "rel":
        return node
    ops, args = node[1], node[2]
    if ops != ("=",):
        return _interval_from_relation(node) if _interval_from_relation(node) is not node else None
    left, right = args
    if _is_variables(left) and not _is_variables(right):
        return right
    if _is_variables(right) and not _is_variables(left):
        return left
    return None


def _named_values(items: tuple[Node, ...]) -> list[tuple[str, Node]] | None:
    """``x = 2, y = -1`` as ``[("x", 2), ("y", -1)]`` when every item assigns a different
    variable; else None."""
    named = []
    for item in items:
        if item[0] != "rel" or item[1] != ("=",) or item[2][0][0] != "sym":
            return None
        named.append((item[2][0][1], item[2][1]))
    names = [name for name, _ in named]
    return named if len(set(names)) == len(names) > 1 else None


def _assigns_one_variable(items: tuple[Node, ...]) -> bool:
    names = {
        item[2][0][1] if item[2][0][0] == "sym" else None
        for item in items
        if item[0] == "rel" and item[1] == ("=",)
    }
    return len(names) == 1 and None not in names and all(item[0] == "rel" for item in items)


def _is_variables(node: Node) -> bool:
    """``x``, or a tuple of variables ``(x, y)``: the left side of an assignment."""
    if node[0] == "sym":
        return True
    return node[0] == "seq" and node[1] == "(" and all(item[0] == "sym" for item in node[3])


def _interval_from_relation(node: Node) -> Node:
    """``x > 2`` → ``(2, oo)``; ``1 < x <= 3`` → ``(1, 3]``; ``|x - 1| <= 2`` → ``[-1, 3]`` and
    ``|x| > 2`` → ``(-oo, -2) ∪ (2, oo)``; anything else unchanged."""
    if node[0] != "rel":
        return node
    ops, args = node[1], node[2]
    absolute = _absolute_interval(ops, args)
    if absolute is not None:
        return absolute
    if len(ops) == 1 and ops[0] in ("<", "<=", ">", ">="):
        left, right = args
        if left[0] == "sym" and not symbols(right):
            symbol_side, op, bound = "left", ops[0], right
        elif right[0] == "sym" and not symbols(left):
            symbol_side, op, bound = "right", _flip(ops[0]), left
        else:
            return node
        del symbol_side
        closed = op in ("<=", ">=")
        if op in ("<", "<="):
            return ("seq", "(", "]" if closed else ")", (("neg", ("const", "oo")), bound))
        return ("seq", "[" if closed else "(", ")", (bound, ("const", "oo")))
    if len(ops) == 2 and args[1][0] == "sym" and not symbols(args[0]) and not symbols(args[2]):
        if all(op in ("<", "<=") for op in ops):
            low, high = args[0], args[2]
            first, second = ops
        elif all(op in (">", ">=") for op in ops):
            low, high = args[2], args[0]
            first, second = ops[1], ops[0]
        else:
            return node
        return (
            "seq",
            "[" if first in ("<=", ">=") else "(",
            "]" if second in ("<=", ">=") else ")",
            (low, high),
        )
    return node


def _absolute_interval(ops: tuple[str, ...], args: tuple[Node, ...]) -> Node | None:
    """``|x - c| op r`` (``r`` and ``c`` constants) as the set of ``x`` it describes."""
    if len(ops) != 1 or ops[0] not in ("<", "<=", ">", ">="):
        return None
    left, right = args
    op = ops[0]
    if right[0] == "func" and right[1] == "abs" and left[0] != "func":
        left, right, op = right, left, _flip(op)
    if left[0] != "func" or left[1] != "abs" or symbols(right):
        return None
    inner = left[2][0]
    center: Node
    if inner[0] == "sym":
        center = ("num", Fraction(0), False)
    elif inner[0] == "add" and len(inner[1]) == 2 and inner[1][0][0] == "sym":
        other = inner[1][1]
        if symbols(other):
            return None
        center = other[1] if other[0] == "neg" else ("neg", other)
    else:
        return None
    low = ("add", (center, ("neg", right)))
    high = ("add", (center, right))
    if op in ("<", "<="):
        bracket = ("[", "]") if op == "<=" else ("(", ")")
        return ("seq", bracket[0], bracket[1], (low, high))
    closed = op == ">="
    return (
        "union",
        (
            ("seq", "(", "]" if closed else ")", (("neg", ("const", "oo")), low)),
            ("seq", "[" if closed else "(", ")", (high, ("const", "oo"))),
        ),
    )


def _as_union(node: Node) -> Node:
    """A union, or what stands for one: ``x < 1 or x > 2`` (a bare list of relations that are
    all intervals of one variable), and finite sets joined by ∪ merged into one set."""
    if node[0] == "seq" and node[1] == "" and node[3] and all(i[0] == "rel" for i in node[3]):
        names = {frozenset(symbols(item)) for item in node[3]}
        intervals = tuple(_interval_from_relation(item) for item in node[3])
        if len(names) == 1 and all(i[0] in ("seq", "union") for i in intervals):
            flat: list[Node] = []
            for interval in intervals:
                flat.extend(interval[1] if interval[0] == "union" else (interval,))
            return ("union", tuple(flat))
    if node[0] == "union" and all(i[0] == "seq" and i[1] == "{" for i in node[1]):
        members: list[Node] = []
        for item in node[1]:
            members.extend(member for member in item[3] if member not in members)
        return ("seq", "{", "}", tuple(members))
    return node


def _flip(op: str) -> str:
    return {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)


def _relation_form(op: str, left: Node, right: Node) -> tuple[str, Node]:
    """``a op b`` as ``(kind, f)``: '=' → f = a - b; '>' → f = a - b > 0; '<' flipped; etc."""
    difference = ("add", (left, ("neg", right)))
    reversed_difference = ("add", (right, ("neg", left)))
    if op in ("<", "<="):
        return (">" if op == "<" else ">=", reversed_difference)
    return (op, difference)


def _collection(node: Node) -> tuple[str, str, tuple[Node, ...] | None]:
    if node[0] == "seq":
        return node[1], node[2], node[3]
    if node[0] == "pm":
        center, spread = node[1], node[2]
        return "{", "}", (("add", (center, spread)), ("add", (center, ("neg", spread))))
    return "", "", (node,)


def _expand_pm(items: tuple[Node, ...] | None) -> tuple[Node, ...] | None:
    """``\\{1 \\pm \\sqrt5, -2\\}`` holds three values."""
    if items is None or not any(item[0] == "pm" for item in items):
        return items
    expanded: list[Node] = []
    for item in items:
        expanded.extend(_collection(item)[2] if item[0] == "pm" else (item,))
    return tuple(expanded)


def _collection_kind(opener: str, closer: str) -> str:
    if opener == "{":
        return "set"
    if opener == "":
        return "list"
    if (opener, closer) == ("(", ")"):
        return "tuple"
    return "interval"


def _written_places(node: Node) -> int | None:
    """The decimal places of a number written as a decimal (``-12.75`` → 2), else ``None``.
    Trailing zeros are not counted (``2.50`` → 1): the value cannot tell them apart."""
    if node[0] in ("neg", "pct"):
        return _written_places(node[1])
    if node[0] != "num" or not node[2]:
        return None
    value = node[1]
    for places in range(60):
        if (value * 10**places).denominator == 1:
            return places
    return None


def _has_decimal(node: Node) -> bool:
    if node[0] == "num":
        return node[2]
    return any(_has_decimal(child) for child in children(node))


def _has_infinity(node: Node) -> bool:
    return node == ("const", "oo") or any(_has_infinity(child) for child in children(node))


def _infinity_sign(node: Node) -> int | None:
    if node == ("const", "oo"):
        return 1
    if node[0] == "neg":
        inner = _infinity_sign(node[1])
        return -inner if inner else None
    return None


def _is_plain_number(node: Node) -> bool:
    """A number as one writes a final answer: ``-3``, ``2.5``, ``3/4``, ``2\\frac12``, ``5%``,
    ``1.5 \\times 10^{3}``."""
    kind = node[0]
    if kind == "num":
        return True
    if kind in ("neg", "pct"):
        return _is_plain_number(node[1])
    if kind == "div":
        return _integer_literal(node[1]) and _integer_literal(node[2])
    if kind == "add" and len(node[1]) == 2:  # a mixed number
        whole, fraction = node[1]
        return whole[0] == "num" and fraction[0] == "div" and _is_plain_number(fraction)
    if kind == "mul" and len(node[1]) == 2:  # scientific notation
        mantissa, power = node[1]
        return (
            mantissa[0] == "num"
            and power[0] == "pow"
            and power[1] == ("num", Fraction(10), False)
            and (power[2][0] == "num" or (power[2][0] == "neg" and power[2][1][0] == "num"))
        )
    return False


def _integer_literal(node: Node) -> bool:
    """``7`` or ``-7``, written without a decimal point."""
    if node[0] == "neg":
        node = node[1]
    return node[0] == "num" and not node[2] and node[1].denominator == 1


_ARITHMETIC = frozenset({"add", "mul", "div"})
_NUMERIC_NODES = frozenset({"num", "neg", "add", "mul", "div", "pct", "pow"})


def _is_arithmetic(node: Node) -> bool:
    """Numbers combined with + - × ÷ (``2+3``, ``10/2 + 0``), other than a plain number form."""
    if _is_plain_number(node):
        return False

    def numbers_only(part: Node) -> bool:
        return part[0] in _NUMERIC_NODES and all(numbers_only(c) for c in children(part))

    def has_arithmetic(part: Node) -> bool:
        return part[0] in _ARITHMETIC or any(has_arithmetic(c) for c in children(part))

    return numbers_only(node) and has_arithmetic(node)


def _is_unreduced_fraction(node: Node) -> bool:
    """A fraction of integers not in lowest terms: a common factor (``6/4``, ``-14/2``,
    ``\\frac{-14}{2}``) or a negative denominator (``3/-4``). The sign may sit on the whole
    fraction or on either integer."""
    if node[0] == "neg":
        return _is_unreduced_fraction(node[1])
    if node[0] != "div":
        return False
    numerator, denominator = node[1], node[2]
    if numerator[0] == "neg":
        numerator = numerator[1]
    negative_denominator = denominator[0] == "neg"
    if negative_denominator:
        denominator = denominator[1]
    if numerator[0] == "num" and denominator[0] == "num":
        top, bottom = numerator[1], denominator[1]
        if top.denominator == 1 and bottom.denominator == 1 and bottom != 0:
            from math import gcd

            return gcd(int(top), int(bottom)) != 1 or bottom < 0 or negative_denominator
    return False


_MAX_EXACT_BITS = 20_000


def _rational(node: Node, percent: str) -> Fraction | None:
    """The exact value of a tree of numbers and + - × ÷ and small integer powers, or None."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "neg":
        value = _rational(node[1], percent)
        return None if value is None else -value
    if kind == "pct":
        value = _rational(node[1], percent)
        if value is None:
            return None
        return value / 100 if percent == "fraction" else value
    if kind in ("add", "mul"):
        total = Fraction(0) if kind == "add" else Fraction(1)
        for child in node[1]:
            value = _rational(child, percent)
            if value is None:
                return None
            total = total + value if kind == "add" else total * value
            if _bits(total) > _MAX_EXACT_BITS:
                return None
        return total
    if kind == "div":
        numerator, denominator = _rational(node[1], percent), _rational(node[2], percent)
        if numerator is None or not denominator:
            return None
        return numerator / denominator
    if kind == "pow":
        base, exponent = _rational(node[1], percent), _rational(node[2], percent)
        if base is None or exponent is None or exponent.denominator != 1:
            return None
        if base == 0 and exponent < 0:
            return None
        if abs(exponent) * max(_bits(base), 1) > _MAX_EXACT_BITS:
            return None
        return base ** int(exponent)
    return None


def _bits(value: Fraction) -> int:
    return value.numerator.bit_length() + value.denominator.bit_length()


def _close_rational(a: Fraction, b: Fraction, rel_tol: float) -> bool:
    if a == b:
        return True
    if rel_tol <= 0:
        return False
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def exact_value(expression: str) -> Fraction:
    """The exact value of arithmetic on numbers, read by the verifier's own bounded parser.

    ``expression`` is plain text or LaTeX: numbers (integers, decimals, ``\\frac``), ``+ - × ÷
    * /``, parentheses and integer powers (``^``, ``**``); a percentage counts as its number
    (``50%`` is 50). Nothing is evaluated as code and nothing goes through floats:

    >>> exact_value("(48213 * 9377 - 123) / 7")
    Fraction(452093178, 7)
    >>> exact_value("\\\\frac{1}{3} + 1/6")
    Fraction(1, 2)

    Raises:
        ValueError: ``expression`` cannot be read ("cannot read the expression: ..."), or it is
            not arithmetic on numbers: a variable, a function such as ``\\sqrt``, a fractional
            power, a division by zero, or a value too large to keep exact.
    """
    try:
        tree = parse(normalize(expression))
    except MathParseError as error:
        raise ValueError(f"cannot read the expression: {error}") from None
    value = _rational(tree, "strip")
    if value is None:
        raise ValueError(
            "not exact arithmetic on numbers: use + - * / ^ (integer powers) and parentheses; "
            "no variables or functions, no division by zero, nothing too large to keep exact"
        )
    return value


# ----------------------------------------------------------------------------- verifier


class MathVerifier:
    """Scores a completion against a reference answer: extraction, then equivalence.

    Usable in any environment::

        verifier = MathVerifier()
        verdict = verifier(completion, task.answer)   # a rlenv.Verdict

    Args:
        policy: The equivalence policy (:class:`MathPolicy`).
        fallbacks: Extraction fallbacks (see :func:`extract_answer`); ``False``: boxed only.
        timeout: Seconds per equivalence check.
        question: When given to :meth:`__call__`, an answer that merely restates part of the
            question (and is not the gold) scores 0.
    """

    def __init__(
        self,
        *,
        policy: MathPolicy | None = None,
        fallbacks: Sequence[str] | bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.policy = policy or _DEFAULT_POLICY
        self.fallbacks = fallbacks
        self.timeout = timeout

    def __call__(self, completion: str, gold: Any, *, question: Any = None) -> Verdict:
        """Score ``completion`` against ``gold`` with :func:`grade` (this verifier's policy,
        fallbacks and timeout).

        ``question`` (optional) is what was asked, in any form an environment holds it: the
        text, the prompt's chat messages (``task.prompt``), or the :class:`~rlenv.Task`
        itself. Anything else raises ``TypeError`` here, at the call (never on model output).
        """
        return grade(
            gold,
            completion,
            policy=self.policy,
            timeout=self.timeout,
            fallbacks=self.fallbacks,
            question=question,
        )


def _question_text(question: Any) -> str | None:
    """The text of a question given as text, chat messages or a Task (``None`` stays None)."""
    if question is None or isinstance(question, str):
        return question
    from rlenv.chat import message_text
    from rlenv.tasks import Task

    if isinstance(question, Task):
        question = question.prompt
    if isinstance(question, (list, tuple)) and all(
        isinstance(message, Mapping) for message in question
    ):
        return "\n".join(message_text(m) for m in question if m.get("role") != "assistant")
    raise TypeError(
        f"question must be the question's text, its chat messages (task.prompt) or the Task, "
        f"not {type(question).__name__}: in an environment, pass question=task.prompt"
    )


_SQUASH = re.compile(r"[\s${}]|\\[,;!: ]|\\left|\\right")


def _restates(answer: str, gold: str, question: str) -> bool:
    squashed_answer = _SQUASH.sub("", answer)
    if len(squashed_answer) < 3:
        return False
    return squashed_answer in _SQUASH.sub("", question) and squashed_answer != _SQUASH.sub("", gold)
