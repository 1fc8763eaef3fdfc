"""Reading the answer a model committed to out of what it wrote.

A response is a whole model turn (reasoning, intermediate results, then an answer) or just an
answer. :func:`read_answer` finds the answer, by these rules, first that applies:

1. **Reasoning never answers.** Only the text after the last ``</think>`` counts (an unclosed
   ``<think>`` is no answer), and of a GPT-OSS Harmony transcript only the ``final`` channel
   (an ``analysis`` channel with no ``final`` one is no answer). Text whose LaTeX was escaped
   twice (``\\\\frac`` from a JSON string) is read with single backslashes. A new chat turn
   the model started (``<|im_start|>``...), end tokens, GSM8K's ``<<48/2=24>>`` calculator
   annotations and "I hope it is correct." are not part of the answer.
2. **Boxes.** The last ``\\boxed{...}`` / ``\\fbox{...}`` (unless "the final answer is X" is
   stated after it: an intermediate box, then the answer); boxes written one after another at the
   end (``\\boxed{1}, \\boxed{2}``, joined only by commas, "and", "or" or spaces) are one answer,
   the list of their contents. A last box never closed (a truncated response) is no answer:
   nothing earlier is used instead.
3. **Fallbacks** (``fallbacks``, in this order; each phrase rule takes the last match):

   - ``"bare_answer"``: a short text that is an answer on its own (``3/4``, ``x = 5``,
     ``\\{1, 2\\}``);
   - ``"final_answer"``: "the final answer is X", "the answer is X", "Final Answer: X",
     "**Answer:** X";
   - ``"answer_colon"``: "Answer: X" on its own line;
   - ``"display_math"``: the last ``\\[...\\]`` or ``$$...$$`` block (it may span lines), when it
     ends the text (at most a few words after it);
   - ``"last_sentence"``: what the last sentence states ("The value of \\(x\\) is 45."): after
     its last "is"/"are"/"="/":", else its last inline math or bold, else its only number;
   - ``"bold"``: the last ``**X**``;
   - ``"last_number"``: the last number in the text.

What a rule found is cleaned: markdown emphasis, math delimiters, a trailing full stop,
"is"/"=" left over from the phrase. Nothing here evaluates anything; every regex runs on a
bounded tail of the text, so hostile input costs linear time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from rlenv.verifiers._completion import final_text, resolve_fallbacks
from rlenv.verifiers._mathparse import _NUMBER_WORDS

__all__ = ["DEFAULT_FALLBACKS", "has_prose", "last_box", "read_answer", "read_choice"]

DEFAULT_FALLBACKS: tuple[str, ...] = (
    "bare_answer",
    "final_answer",
    "answer_colon",
    "display_math",
    "last_sentence",
    "bold",
    "last_number",
)

MAX_BOX_CHARS = 2000
_TAIL = 20_000  # an answer is stated at the end; regexes only read this much

_FINAL_ANSWER = re.compile(
    r"(?:final\s+answer(?:\s*(?:\*\*|__)?\s*(?:is|:|：|=))?|answer\s+(?:is|was)|answer\s*[:=]"
    r"|答案[是为]?\s*[:：]?)"
    r"\s*(?:\*\*|__)?\s*(?::\s*)?(.{1,300}?)(?:\n|\.(?=\s|$)|$)",
    re.IGNORECASE,
)
_ANSWER_COLON = re.compile(
    r"(?:^|\n)[ \t#>*_-]*(?:answer|A)\s*(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*(.{1,300}?)\s*(?=\n|$)",
    re.IGNORECASE,
)
_DISPLAY = re.compile(r"\\\[(.{1,2000}?)\\\]|\$\$(.{1,2000}?)\$\$", re.DOTALL)
_INLINE = re.compile(r"\\\((.{1,1000}?)\\\)|(?<![\\$])\$([^$\n]{1,1000}?)\$(?!\$)")
_BOLD = re.compile(r"\*\*([^*\n]{1,300}?)\*\*")
# The last number, not one inside a word or an exponent, and not one a scale word or a power
# follows ("2 million", "10^6"); a percent sign stays with it ("100%").
_LAST_NUMBER = re.compile(
    r"(?<![\w^.])-?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?:\s?\\?%)?"
    r"(?![\d,/]|\.\d|\s*(?:\^|\\times|\*\*|(?i:hundred|thousand|million|billion|trillion)\b))"
)
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)|\n")
_BETWEEN_BOXES = re.compile(
    r"^(?:\s|,|;|\.|\$|\\[()]|\\quad|\\qquad|\\text\{[^{}\d]{0,40}\}|and|or)*$"
)
_DOUBLE_ESCAPED = re.compile(r"\\\\(?:boxed|frac|dfrac|sqrt|text|pi|cdot|times|left|right)")
_SINGLE_COMMAND = re.compile(r"(?<!\\)\\(?:boxed|frac|dfrac|sqrt|text|pi|cdot|times|left|right)")
_HARMONY_FINAL = "<|channel|>final<|message|>"
# What follows an answer without being part of it: a new chat turn the model started, end
# tokens, GSM8K calculator annotations, the MATH few-shot sign-off.
_NEXT_TURN = re.compile(r"<\|im_start\|>|<\|start_header_id\|>|<\|user\|>|\nHuman:|\nUser:")
_END_TOKENS = re.compile(
    r"(?:<\|)?im_end\|>|<\|eot_id\|>|<\|endoftext\|>|</s>|<\|end\|>|<\|return\|>"
)
_LEADING_TURN = re.compile(r"^\s*(?:<\|im_start\|>\s*(?:assistant\b)?\s*)+")
_ANNOTATION = re.compile(r"<<[^<>\n]{0,200}>>")
# A fenced program (with its language named; an output block stays) at the end of a response:
# code is not a statement of the answer, and a response that ends in code never stated one.
_CODE_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n.{0,20000}?(?:\n```|\Z)", re.DOTALL)
_SIGN_OFF = re.compile(r"\s*I hope it is correct\.?\s*$", re.IGNORECASE)
# Prose: a word of three letters or more (not a LaTeX command, not inside \text{}) that is
# not a function name or a joining word.
_PROSE_WORD = re.compile(r"(?<![\\a-zA-Z{])[a-zA-Z]{3,}(?![a-zA-Z])")
_TEXT_GROUP = re.compile(
    r"\\(?:text|textnormal|textrm|textbf|mbox|mathrm|mathbf|operatorname)\s*\{[^{}]*\}"
)
_MATH_WORDS = frozenset(
    {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "infty", "inf", "infinity",
     "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "and", "cosec", "frac", "cdot"}
)  # fmt: skip


def has_prose(text: str) -> bool:
    """Whether ``text`` holds words of prose (outside ``\\text{}``), not only mathematics."""
    outside = _TEXT_GROUP.sub(" ", text)
    return any(m.group().lower() not in _MATH_WORDS for m in _PROSE_WORD.finditer(outside))


def _reasoning_removed(text: object) -> str | None:
    """The part of a response that may hold its answer (rule 1), or ``None``."""
    if not isinstance(text, str):
        return None
    if _HARMONY_FINAL in text:
        text = text.rsplit(_HARMONY_FINAL, 1)[1]
        for end in ("<|return|>", "<|end|>"):
            text = text.split(end, 1)[0]
    elif "<|channel|>analysis" in text:
        return None
    remaining = final_text(text)
    if remaining is None:
        return None
    # Each pattern runs only when the text holds a substring every match of it contains.
    if (
        "\\\\" in remaining
        and _DOUBLE_ESCAPED.search(remaining)
        and not _SINGLE_COMMAND.search(remaining)
    ):
        remaining = remaining.replace("\\\\", "\\")
    if "<|im_start|>" in remaining:
        remaining = _LEADING_TURN.sub("", remaining)
    if "<|" in remaining or "\nHuman:" in remaining or "\nUser:" in remaining:
        next_turn = _NEXT_TURN.search(remaining)
        if next_turn:
            remaining = remaining[: next_turn.start()]
    if "|>" in remaining or "</s>" in remaining:
        remaining = _END_TOKENS.sub("", remaining)
    if "<<" in remaining:
        remaining = _ANNOTATION.sub("", remaining)
    if "```" in remaining:
        remaining = _CODE_BLOCK.sub("\n", remaining)  # code is not a statement of the answer
    return _SIGN_OFF.sub("", remaining)


def _boxes(text: str) -> list[tuple[int, int, str | None]]:
    """``(start, end, content)`` of every box, in order; ``content`` is None for a box never
    closed (``end`` is then the text's length)."""
    found = []
    position = 0
    while len(found) < 1000:
        box, fbox = text.find("\\boxed", position), text.find("\\fbox", position)
        if box < 0 and fbox < 0:
            break
        if fbox < 0 or 0 <= box < fbox:  # the earlier of the two (they never start together)
            start, position = box, box + 6
        else:
            start, position = fbox, fbox + 5
        if position < len(text) and text[position] == " ":
            match = re.match(r" ([^\s$]{1,100})", text[position:])
            if match:
                found.append((start, position + match.end(), match.group(1)))
                position += match.end()
            continue
        if position >= len(text) or text[position] != "{":
            continue
        depth, end = 0, None
        for index in range(position, min(len(text), position + MAX_BOX_CHARS + 2)):
            char = text[index]
            if char == "{" and text[index - 1] != "\\":
                depth += 1
            elif char == "}" and text[index - 1] != "\\":
                depth -= 1
                if depth == 0:
                    end = index
                    break
        if end is None:
            found.append((start, len(text), None))
            break
        found.append((start, end + 1, text[position + 1 : end].strip()))
        position = end + 1
    return found


def last_box(text: str) -> str | None:
    """The answer the boxes give (rule 2): the last box, or the list of the boxes written one
    after another at the end; ``None`` when there is no box or the last one is never closed."""
    return _box_answer(text, _boxes(text))


def _box_answer(text: str, boxes: list[tuple[int, int, str | None]]) -> str | None:
    """:func:`last_box` on the boxes :func:`_boxes` found in ``text``."""
    if not boxes or boxes[-1][2] is None:
        return None
    run = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if box[2] is None or not _BETWEEN_BOXES.match(text[box[1] : run[0][0]]):
            break
        run.insert(0, box)
    contents = [content for _, _, content in run if content is not None]
    if len(contents) == 1:
        return contents[0]
    return ", ".join(contents)


def _clean(answer: str) -> str:
    """A found answer without markdown, delimiters, the phrase's leftovers, a full stop."""
    answer = answer.strip()
    for _ in range(3):
        before = answer
        answer = answer.strip("*_ \t")
        answer = re.sub(r"^(?:is|=|:|of|####)\s*(?=\S)", "", answer, flags=re.IGNORECASE)
        for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if answer.startswith(opener) and answer.endswith(closer) and len(answer) > 2:
                answer = answer[len(opener) : len(answer) - len(closer)].strip()
        if answer.endswith(".") and not answer.endswith(".."):  # a full stop, not "..."
            answer = answer[:-1].rstrip()
        if answer == before:
            break
    return answer


@lru_cache(maxsize=8)
def _box_reading(text: str) -> tuple[tuple[str | None, str] | None, str | None]:
    """What the boxes of ``text`` decide (rules 1 and 2), or ``None`` when they leave it to the
    fallbacks; and the answer region (:func:`_reasoning_removed`).

    A pure function of the text, so the few latest are kept: a format gate and the answer check
    behind it read the same completion one after the other, and the second read is a look-up.
    """
    body = _reasoning_removed(text)
    if body is None:
        return (None, "no answer after the reasoning"), None
    boxes = _boxes(body)
    boxed = _box_answer(body, boxes)
    if boxed is not None:
        stated = _stated_after(body[boxes[-1][1] :])
        return ((stated, "final_answer") if stated else (boxed, "box")), body
    if boxes:
        return (None, "the last box is never closed"), body
    return None, body


def read_answer(
    text: object,
    *,
    fallbacks: Sequence[str] | bool = True,
    is_answer: object = None,
) -> tuple[str | None, str]:
    """The answer ``text`` commits to, and the rule that found it (or why there is none).

    ``is_answer`` (a callable taking a string) says whether a short text is an answer on its
    own (the ``"bare_answer"`` rule); without it, that rule is skipped. ``fallbacks``: ``True`` for
    :data:`DEFAULT_FALLBACKS`, ``False`` for boxes (and bare answers) only, or a sequence.
    """
    chosen = resolve_fallbacks(fallbacks, DEFAULT_FALLBACKS)
    if not isinstance(text, str):
        return None, "not text"
    decided, body = _box_reading(text)
    if decided is not None or body is None:  # body is None only with a decision
        return decided or (None, "no answer after the reasoning")
    tail = body[-_TAIL:]
    for fallback in chosen:
        if fallback == "bare_answer":
            stripped = _clean(body)
            found = stripped if 0 < len(stripped) <= 300 and callable(is_answer) else None
            if found and is_answer(found):  # type: ignore[operator]
                return found, fallback
            continue
        found = _FALLBACKS[fallback](tail)
        if found:
            return found, fallback
    return None, "no final answer found"


# "18 dollars per day", "5 apples in all": a number followed by prose (not a scale word).
_NUMBER_THEN_PROSE = re.compile(
    r"^\\?\$?\s*(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s+"
    r"(?!(?i:hundred|thousand|million|billion|trillion|percent|times|or|and|to)\b)[a-zA-Z]"
)
_NUMBER_WORD_THEN_PROSE = re.compile(
    rf"^({'|'.join(_NUMBER_WORDS)})\s+(?!(?i:hundred|thousand|million|billion|times|or|and)\b)"
    r"[a-zA-Z]",
    re.IGNORECASE,
)
_COPULA = re.compile(r"\s(?:is|are|was|equals|be|of)\s+|\s=\s*|:\s+", re.IGNORECASE)
_NUMBER = re.compile(
    r"(?<![\w^.])-?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?![\w.])"
    r"(?!\s*(?:\^|(?i:hundred|thousand|million|billion|trillion)\b))"
)


def _phrase(text: str) -> str | None:
    """What a phrase rule captured, cleaned, down to its answer: "The final answer is X" inside
    "Final Answer: ..." is X; a number followed by prose is that number; prose ending in
    "is X" is X (see :func:`_from_prose`)."""
    found = _clean(text)
    for _ in range(3):  # "Final Answer: The final answer is $X$"
        inner = list(_FINAL_ANSWER.finditer(found))
        if not inner:
            break
        found = _clean(inner[-1].group(1))
    leading = _NUMBER_THEN_PROSE.match(found)
    if leading and not re.search(r"[=<>\\^]", found):
        return leading.group(1)
    if has_prose(found):
        return _from_prose(found) or found or None
    return found or None


def _from_prose(sentence: str) -> str | None:
    """The answer a sentence of prose states: what follows its last "is"/"are"/"="/":" (when
    that is mathematics), else its last inline math or bold, else its only number."""
    parts = _COPULA.split(sentence)
    if len(parts) > 1:
        stated = _clean(parts[-1])
        leading = _NUMBER_THEN_PROSE.match(stated)
        if leading:
            return leading.group(1)
        if stated and not has_prose(stated):
            return stated
    for pattern in (_INLINE, _BOLD):
        matches = list(pattern.finditer(sentence))
        if matches:
            last = matches[-1]
            found = _clean(next(group for group in last.groups() if group is not None))
            if found and not has_prose(found) and not re.fullmatch(r"[A-Za-z]", found):
                return found
    opening = _NUMBER_THEN_PROSE.match(sentence.strip())
    if opening:  # "5 cars drove through the jam in the first 15 minutes.": its subject
        return opening.group(1)
    word = _NUMBER_WORD_THEN_PROSE.match(sentence.strip())
    if word:  # "Three trucks will be needed."
        return _NUMBER_WORDS[word.group(1).lower()]
    if "=" in sentence or _INLINE.search(sentence):  # "6x = 7x ... by 6": not a statement
        return None
    numbers = _NUMBER.findall(sentence)
    return numbers[0].rstrip(",") if len(numbers) == 1 else None


def _stated_after(after: str) -> str | None:
    """A "final answer is X" stated after the last box (an intermediate box, then the answer)."""
    matches = list(_FINAL_ANSWER.finditer(after[-_TAIL:]))
    stated = _phrase(matches[-1].group(1)) if matches else None
    if stated and stated.count("{") == stated.count("}"):  # a stray brace: the box stands
        return stated
    return None


def _final_answer(tail: str) -> str | None:
    matches = list(_FINAL_ANSWER.finditer(tail))
    return _phrase(matches[-1].group(1)) if matches else None


def _answer_colon(tail: str) -> str | None:
    matches = list(_ANSWER_COLON.finditer(tail))
    return _phrase(matches[-1].group(1)) if matches else None


def _last_paragraph(tail: str) -> str:
    paragraphs = [p for p in _PARAGRAPH.split(tail) if p.strip()]
    return paragraphs[-1] if paragraphs else ""


def _display_math(tail: str) -> str | None:
    """The last display block, if the last paragraph holds one (``We get \\[ 42 \\]``)."""
    paragraph = _last_paragraph(tail)
    displays = list(_DISPLAY.finditer(paragraph))
    rest = paragraph[displays[-1].end() :] if displays else ""
    if displays and len(rest.strip()) <= 40 and not re.search(r"\d", rest):  # it ends the text
        last = displays[-1]
        return _clean(last.group(1) or last.group(2) or "") or None
    return None


def _last_sentence(tail: str) -> str | None:
    """What the last sentence states: "The value of \\( x \\) is 45." → 45."""
    sentences = [s for s in _SENTENCE.split(_last_paragraph(tail)) if s.strip()]
    return _from_prose(sentences[-1]) if sentences else None


def _bold(tail: str) -> str | None:
    matches = _BOLD.findall(tail)
    return _phrase(matches[-1]) if matches else None


def _last_number(tail: str) -> str | None:
    matches = _LAST_NUMBER.findall(tail)
    return matches[-1].rstrip(",") if matches else None


_FALLBACKS = {
    "final_answer": _final_answer,
    "answer_colon": _answer_colon,
    "display_math": _display_math,
    "last_sentence": _last_sentence,
    "bold": _bold,
    "last_number": _last_number,
}

_CHOICES = (
    re.compile(r"\\boxed\{\s*\(?\s*([A-J])\s*\)?\s*(?:[.:)]\s*[^{}]{0,300})?\}"),
    re.compile(r"答案[是为：:]?\s*[（(]?\s*([A-J])"),
    re.compile(
        r"(?i:answer|option|choice)\s*(?i:is|:)?\s*(?:\*\*)?\s*(?i:option\s*)?"
        r"\(?\s*([A-J])\s*\)?(?![A-Za-z])"
    ),
    re.compile(r"\(\s*([A-J])\s*\)"),
    re.compile(r"(?:^|\n)\s*\**\s*([A-J])\s*\**\s*[.)]?\s*$"),
    re.compile(r"\*\*\s*\(?([A-J])\)?\s*\*\*"),
    re.compile(r"^\s*\(?([A-J])[.):]\s"),  # "A. Because ..." opens with its choice
)


def read_choice(text: object) -> str | None:
    """The multiple-choice letter (A–J) a response commits to, or ``None``: a boxed letter,
    then "the answer is (D)" / "option D", then the last "(D)", then a letter alone on the
    last line, then a bold letter. Only for a gold that is a choice letter."""
    body = _reasoning_removed(text)
    if body is None:
        return None
    tail = body[-_TAIL:]
    for pattern in _CHOICES:
        matches = pattern.findall(tail)
        if matches:
            return matches[-1].upper()
    return None
