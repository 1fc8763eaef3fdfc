"""The math verifier on whole model responses: extraction rules, notation, structures, and the
property that every entry point reads a pair the same way.

Cases here pin each documented rule (``rlenv/verifiers/_answer.py``); the accuracy figures come
from the public corpus (``tests/verifiers/data/public``, ``benchmarks/math_verifier.py``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.verifiers.math import MathVerifier, extract_answer, grade, is_equivalent

LONG_RESPONSE = """We need the number of apples after both trades.

First, Tom starts with $3 \\times 4 = 12$ apples. He gives away half:
\\[
12 \\div 2 = 6
\\]
Then he buys 9 more, so
\\[
6 + 9 = 15.
\\]
Checking: 15 - 9 = 6 and 6 \\times 2 = 12, consistent.

**Final Answer:** 15"""

READS = [
    # (response, the answer it commits to)
    (LONG_RESPONSE, "15"),
    ("Let me compute.\n\\[\n x = 6 \\cdot 7 = 42\n\\]", "x = 6 \\cdot 7 = 42"),
    ("The probability is \\( \\frac{1}{2} \\).", "\\frac{1}{2}"),
    ("Work: 3+4=7\nAnswer: 7", "7"),
    ("<think>maybe 8, or \\boxed{9}</think>The answer is **7**.", "7"),
    ("**Answer: 7**", "7"),
    ("So the total is $\\boxed{18}$.", "18"),
    ("The roots are \\boxed{1} and \\boxed{2}.", "1, 2"),
    ("First I thought \\boxed{3}. Checking again, the sum is \\boxed{4}.", "4"),
    ("\\\\boxed{\\\\frac{1}{2}}", "\\frac{1}{2}"),  # LaTeX escaped twice (a JSON string)
    ("<|channel|>analysis<|message|>try 5<|end|><|start|>assistant<|channel|>final<|message|>"
     "The answer is 6.<|return|>", "6"),
    ("3/4", "3/4"),
    ("x = 5", "x = 5"),
    ("It costs 2 million dollars in total.", None),  # not "2": a scale word follows
]  # fmt: skip


@pytest.mark.parametrize(("response", "answer"), READS)
def test_extraction_reads_the_committed_answer(response, answer):
    assert extract_answer(response) == answer


NOT_READ = [
    "<think>the answer is 5",  # never finished thinking
    "<|channel|>analysis<|message|>the answer is 5<|end|>",  # reasoning channel only
    "So the answer is \\boxed{5",  # the last box is never closed: no earlier fallback
    "",
]


@pytest.mark.parametrize("response", NOT_READ)
def test_no_answer_is_read_where_none_was_committed(response):
    assert extract_answer(response) is None
    verdict = MathVerifier()(response, "5")
    assert verdict.reward == 0.0 and verdict.reason == "no answer"


RIGHT = [
    ("15", LONG_RESPONSE),
    ("42", "We get\n\\[ 42 \\]"),
    ("D", "I think it's (D)"),
    ("B", "The answer is (B)."),
    ("(C)", "Answer: option C"),
    ("\\{1, 2\\}", "\\boxed{1} and \\boxed{2}"),
    ("[-2, 2]", "\\boxed{|x| \\le 2}"),
    ("(-1, 3)", "\\boxed{|x - 1| < 2}"),
    ("(-\\infty, -2) \\cup (2, \\infty)", "\\boxed{|x| > 2}"),
    ("(-\\infty, 1) \\cup (2, \\infty)", "\\boxed{x < 1 \\text{ or } x > 2}"),
    ("\\{1,2,3\\}", "\\boxed{\\{1,2\\} \\cup \\{3\\}}"),
    ("\\csc x", "\\boxed{\\operatorname{cosec} x}"),
    ("\\tan x", "\\boxed{\\tg x}"),
    ("2", "\\boxed{\\sqrt{4} = 2}"),
    ("10", "\\boxed{\\binom{5}{2} = 10}"),
    ("1234", "1200 + 34 = 1234"),
    ("2x+1", "\\boxed{f(x) = 2x + 1}"),
    # a GSM8K gold is a worked solution that ends with "#### answer"
    ("Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips. #### 72", "\\boxed{72}"),
    ("1000000", "\\boxed{1\\,000\\,000}"),
    ("\\frac{3}{4}", "\\boxed{\\dfrac34}"),
    ("x \\geq 3", "\\boxed{x >= 3}"),
    ("28\\%", "28 percent"),
]  # fmt: skip

WRONG = [
    ("x > 3", "\\boxed{x < 3}"),
    ("x \\geq 3", "\\boxed{x \\leq 3}"),
    ("x > 3 \\text{ for all } x", "x < 3 for all x"),
    ("3", "\\boxed{3 or 4}"),
    ("3", "\\boxed{3}, \\boxed{4}"),  # a candidate list is not an answer
    ("3", "\\boxed{3} or \\boxed{4}"),
    ("(1, 2, 3)", "\\boxed{(3, 2, 1)}"),  # an ordered tuple is not a set
    ("[-2, 2]", "\\boxed{|x| < 2}"),
    ("[-2, 2]", "\\boxed{|x| \\ge 2}"),
    ("2", "\\boxed{\\sqrt{4} = 3}"),
    ("4", "5 = 4"),
    ("3", "2x = 6"),
    ("D", "I think it's (C)"),
    ("2", "It is 2 million."),
    ("1, 2, 3", "1, 2, 3, ..."),
    ("5", "<think>\\boxed{5}</think> I am not sure."),
]  # fmt: skip


@pytest.mark.parametrize(("gold", "response"), RIGHT)
def test_right_answers_in_real_notation_score_1(gold, response):
    assert MathVerifier()(response, gold).reward == 1.0
    assert is_equivalent(gold, response)


@pytest.mark.parametrize(("gold", "response"), WRONG)
def test_near_misses_and_hacks_score_0(gold, response):
    assert MathVerifier()(response, gold).reward == 0.0
    assert not is_equivalent(gold, response)


GOLDS = ["3", "\\frac{1}{2}", "x > 3", "(1, 2)", "\\{1, 2\\}", "B", "2x+1", "\\text{yes}", "$5$"]
PIECES = [
    "3", "4", "-3", "\\frac12", "0.5", "x", ">", "<", "=", "(", ")", "\\{", "\\}", ",", " ", "or",
    "\\boxed{", "}", "$", "B", "(B)", "The answer is ", "Answer: ", "**", "\n", "\\[", "\\]",
    "<think>", "</think>", "2x+1", "yes", "f(x) = ", "\\sqrt{4} = 2",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    gold=st.sampled_from(GOLDS),
    response=st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
)
def test_every_entry_point_reads_a_pair_the_same_way(gold, response):
    verdict = grade(gold, response)
    assert MathVerifier()(response, gold) == verdict
    assert is_equivalent(gold, response) == (verdict.reward == 1.0)
    assert verdict.reward in (0.0, 1.0)


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("The answer is 18 dollars per day.", "18"),
        ("The answer is 5 apples in all.", "5"),
        ("The final answer is 1/2 of the pie.", "1/2"),
        ("The answer is 2 million dollars.", "2 million dollars"),  # a scale word: kept whole
        ("Answer: 3 or 4 ways", "3 or 4 ways"),  # candidates: kept whole, to be refused
    ],
)
def test_a_stated_number_followed_by_prose_is_that_number(response, answer):
    assert extract_answer(response) == answer


A = "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}"
B = "\\begin{pmatrix}0 & 1 \\\\ 1 & 0\\end{pmatrix}"


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("\\begin{pmatrix}1 & 3 \\\\ 4 & 4\\end{pmatrix}", f"{A} + {B}", True),
        ("\\begin{pmatrix}2 & 1 \\\\ 4 & 3\\end{pmatrix}", f"{A} {B}", True),  # AB
        ("\\begin{pmatrix}2 & 1 \\\\ 4 & 3\\end{pmatrix}", f"{B} {A}", False),  # BA != AB
        ("\\begin{pmatrix}2 & 4 \\\\ 6 & 8\\end{pmatrix}", f"2 {A}", True),
        ("\\begin{pmatrix}1 & 1 \\\\ 2 & 4\\end{pmatrix}", f"{A} - {B}", True),
        ("\\begin{pmatrix}1 & 2\\end{pmatrix}", f"{A} + {B}", False),  # shapes differ
    ],
)
def test_matrix_expressions_are_evaluated(gold, answer, equal):
    assert is_equivalent(gold, f"\\boxed{{{answer}}}") is equal


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("16387.20", "16386.20", False),  # a dollar off: relative error 6e-5
        ("16386.17", "16386.16", False),  # a cent off
        ("66.667", "66.668", False),
        ("-1,234.5", "-1234.6", False),
        ("3.14", "3.14", True),
        ("1.5", "1.50", True),
        ("\\frac{1}{3}", "0.3333", True),  # an exact gold against a rounded decimal
        ("\\pi", "3.1416", True),
    ],
)
def test_two_written_decimals_must_round_to_each_other(gold, answer, equal):
    assert is_equivalent(gold, answer) is equal


PROGRAM_THEN_ANSWER = """```python
def money_left():
    return 23 - 5 * 3

print(money_left())
```
```output
8
```
Olivia has $\\boxed{9}$ dollars left."""

ENDS_IN_CODE = """Let me try again.

```python
f = abs(x - p) + abs(x - 15)
print(Min(f, (x, p, 15)))
```
"""


def test_code_is_not_a_statement_of_the_answer():
    assert extract_answer(PROGRAM_THEN_ANSWER) == "9"  # the boxed answer, not the output
    assert extract_answer(ENDS_IN_CODE) is None  # never stated one: 15 in the code is not it


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("Final Answer: The final answer is $14{,}916$. I hope it is correct.", "14{,}916"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("I think I've confirmed it enough. The integer value of \\( x \\) is 45.", "45"),
        ("Therefore, the coordinates of point *P* are **(8, -2)**.", "(8, -2)"),
        ("... = $<<6*350=2100>>2,100\nThe difference is $100.\nA: 100", "100"),
        ("The answer is \\boxed{1}.<|im_end|><|im_start|>user\nNext: \\boxed{7}", "1"),
        ("$0.05 \\cdot 10200 = \\boxed{255}$ ... Final Answer: The final answer is $10,455$.",
         "10,455"),  # an intermediate box, then the stated final answer
        ("So after dividing both sides by 6, you will have: 6x = 7x.", "7x"),  # never "6"
        ("综上所述，最大值是 2。\n答案是 C", "C"),
    ],
)  # fmt: skip
def test_stated_answers_in_prose(response, answer):
    assert extract_answer(response) == answer


def test_a_gold_solution_is_read_for_its_boxed_answer():
    solution = "We have $a = 2$ and so $a^2 = 4$. Thus the answer is $\\boxed{4}$.\n"
    assert grade(solution, "4").reward == 1.0 and grade(solution, "2").reward == 0.0
    assert grade("\\boxed{1} no no no no \\boxed{2}", "2").reward == 1.0  # the last box
    assert grade("$\\boxed{2}, \\boxed{3}, \\boxed{5}$", "\\{2, 3, 5\\}").reward == 1.0


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("|AB| = 1", "1", True),
        ("V_{1}:V_{2} = 11:21", "11:21", True),
        ("AB = 4, CD = 5", "4, 5", True),
        ("\\frac{NO}{BO} = \\frac{1}{\\sqrt{6}}", "\\frac{\\sqrt6}{6}", True),
        ("f(x) = 1", "1", True),
        ("AB = 4, CD = 5", "5, 4", False),  # named values keep their order
        ("x + 1 = 5", "5", False),  # an equation is not a named result
        ("1", "\\lim_{x \\to 0} \\frac{\\sin x}{x} = 1", True),
        ("2", "\\lim_{x \\to 0} \\frac{\\sin x}{x} = 1", False),
    ],
)
def test_named_results_on_either_side(gold, answer, equal):
    assert is_equivalent(gold, answer) is equal


@pytest.mark.parametrize(
    ("gold", "response", "equal"),
    [
        ("42", "<|im_start|>Answer: \\boxed{42}<|im_end|>", True),
        ("42", "<|im_start|>Answer: \\boxed{42}im_end|>", True),  # a garbled end token
        ("42", "The answer is #### 42", True),
        ("42", "Answer: \\boxed{\\text{forty-two}}", True),
        ("E", "\\boxed{E: A polygenic risk score}", True),
        ("So the answer is B", "B", True),  # a gold stated in a sentence
        ("\\frac{\\sqrt{3}}{3} \\approx 0.577", "\\frac{\\sqrt{3}}{3}", True),
        ("\\frac{\\sqrt{3}}{3}", "\\frac{\\sqrt{3}}{3} \\approx 0.577", True),
        ("3.2", "x \\approx 3.2", True),
        ("5", "I add 5 and 0, which results in 5. This is the result of the sum.", True),
        (
            "\\frac{211}{243}",
            "so $\\boxed{\\frac{211}{243}}$.\nThe answer is \\frac{211}{243}}",
            True,
        ),
        ("41", "Answer: \\boxed{\\text{forty-two}}", False),
    ],
)
def test_more_real_response_forms(gold, response, equal):
    assert is_equivalent(gold, response) is equal


@pytest.mark.parametrize(
    ("gold", "response", "equal"),
    [
        ("3", "$\\begin{vmatrix} 2 & 1 \\\\ 1 & 2 \\end{vmatrix} = 3$", True),  # a determinant
        ("ad - bc", "\\boxed{\\begin{vmatrix} a & b \\\\ c & d \\end{vmatrix}}", True),
        ("4", "$\\begin{vmatrix} 2 & 1 \\\\ 1 & 2 \\end{vmatrix} = 4$", False),
        ("n(n+1)/2", "$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$", True),
        (
            "(\\begin{pmatrix}1&2\\\\3&4\\\\\\end{pmatrix})",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            True,
        ),
        ("210", "which gives the result $\\boxed{210}$. So the answer cannot be wrong.", True),
        (
            "100\\%",
            "we get $$\\frac{a}{b} \\geq 2.$$ Therefore, the error increases by 100%.",
            True,
        ),
    ],
)
def test_determinants_sums_trailing_row_separators_and_loose_phrases(gold, response, equal):
    assert is_equivalent(gold, response) is equal


HOSTILE_RESPONSES = [
    "\\[" * 10000, "\\(" * 10000, "$" * 20000, "**" * 10000, "\\boxed{}" * 10000,
    "the answer is " * 5000, "Final Answer: " * 5000, "{[(" * 100000, "\\\\frac" * 10000,
    " is " * 20000, "```python\n" * 5000, "答案是" * 10000, "\\approx " * 5000, "= " * 20000,
    "<|im_start|>" * 5000, "<<" * 10000 + ">>" * 10000, "x" * 1_000_000,
]  # fmt: skip


@pytest.mark.parametrize("response", HOSTILE_RESPONSES, ids=range(len(HOSTILE_RESPONSES)))
def test_hostile_responses_score_0_without_raising(response):
    verdict = grade("1", response)
    assert verdict.reward == 0.0 and verdict.scored


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("```output\n5\n```\n5 cars drove through the traffic jam in the first 15 minutes.", "5"),
        ("```output\n3.0\n```\nThree trucks will be needed to transport 80 flagstones.", "3"),
        ("It is worth \\$675:\n\\[ V_{3\\text{inch}} = \\$675 \\]", "V_{3\\text{inch}} = \\$675"),
    ],
)
def test_a_closing_sentence_that_opens_with_its_number(response, answer):
    assert extract_answer(response) == answer
    assert grade(answer.split("= ")[-1].replace("\\$", ""), response).reward == 1.0


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("x = 11", "x = 5 + 6 = 11", True),
        ("x = 11", "x = 5 + 5 + 1 = 7 = 11", False),  # a chain with a false step
        ("x = 11", "x = 2 + 10 = 12", False),
        ("x = 11", "y = 5 + 6 = 11", False),
    ],
)
def test_a_true_chain_of_equalities_answers_an_assignment(gold, answer, equal):
    assert is_equivalent(gold, answer) is equal
