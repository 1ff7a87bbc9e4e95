"""The `math` verifier's rules for forms beyond plain values (verifiers.math.extract,
verifiers.math.labels and the relation, matrix and number rules): one parametrised table per
rule, each right form next to a hostile neighbour that must fail, and the reward audit."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest

import verifiers.math.extract as extract_module
import verifiers.math.pool as workers_module
import verifiers.math.verifier as math_module
from envs import get_env
from verifiers import CompositeVerifier, Task, VerifierError, get_verifier
from verifiers.math.ending import before_checks, ends_mid_sentence, unmarked_answer
from verifiers.math.extract import boxed_answer, extract_answer, extract_gold, last_boxed
from verifiers.math.fast import letter_and_value, prompt_choices
from verifiers.math.labels import align, strip_labels, text_rule
from verifiers.math.normalize import normalize
from verifiers.worker_process import WorkerTimeout

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0   # decisions, not speed: a loaded machine must not turn a check into a timeout


@pytest.fixture(scope="module")
def verifier():
    with get_verifier("math", timeout=TIMEOUT) as v:
        yield v


def _judge(verifier, gold, completion, task: dict | None = None):
    """`task` may give the prompt and the sample's finish_reason (`Task.meta`)."""
    task = task or {}
    meta = {"finish_reason": task["finish_reason"]} if "finish_reason" in task else {}
    return verifier.verify(completion, Task("t", task.get("prompt", "p"), gold, meta=meta))


def _check_table(verifier, gold, completion, expected, task=None):
    verdict = _judge(verifier, gold, completion, task)
    assert verdict.passed is expected, (gold, completion, task, verdict.info)
    assert verdict.info["reason"], verdict.info          # every verdict names its rule


SOLUTION = ("We want $f(n) = n$, so $n^2 + n - 2 = 0$, which factors as $(n - 1)(n + 2) = 0$; "
            "the solutions are $n = \\boxed{1,-2}.$")
FINAL = ("After Monday the value is $90$; after Tuesday $72$. Final Answer: The final answer is "
         "$28\\%$. I hope it is correct.")

GOLD_SOLUTIONS = [
    (SOLUTION, r"\boxed{-2, 1}", True),                        # the gold's box, any order
    (SOLUTION, r"\boxed{1}", False),                           # half of it
    (SOLUTION, r"\boxed{-2} \quad \text{and} \quad \boxed{1}", True),
    (FINAL, r"a total loss of $\boxed{28\%}$.", True),        # the gold's final-answer marker
    (FINAL, r"\boxed{72\%}", False),                           # a number from the gold's reasoning
    (r"\(\boxed{1}\) and \(\boxed{-2}\).", r"$\boxed{-2,1}$.", True),
    (r"\(\boxed{1}\) and \(\boxed{-2}\).", r"$\boxed{-2}$.", False),
    (r"\boxed{1} papers and \boxed{2} bins", r"\boxed{1,2}", True),
    (r"\boxed{1} papers and \boxed{2} bins", r"\boxed{1,3}", False),
]

JOINED_BOXES = [
    ("1, 2", r"\boxed{1}, \boxed{2}", True),
    ("1, 2", r"\boxed{1}\boxed{2}", True),
    ("\\{1,2,3\\}", r"\boxed{1} and \boxed{2} and \boxed{3}", True),
    ("\\{1,2,3\\}", r"\boxed{1} and \boxed{2} and \boxed{4}", False),
    ("(2, 2), (6, 2)", r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}", True),
    ("(2, 2), (6, 2)", r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(2, 6)}", False),   # a pair reversed
    ("(3, 3), (1, 1)", r"\boxed{(3, 3)} \text{ for part (a) and } \boxed{(1, 1)}", True),
    ("42", r"First guess \boxed{40}, but correcting: \boxed{42}", True),    # a correction: last box
    ("40, 42", r"First guess \boxed{40}, but correcting: \boxed{42}", False),
    ("3", r"\boxed{2} is wrong; \boxed{3}", True),
    ("2", r"\boxed{1} and \boxed{2}", False),                  # two answers are not the last one
    ("3", r"\boxed{3} \boxed{3}", True),                       # repeats collapse
    ("10455", r"$\boxed{255}$ so she has $10,455. Final Answer: The final answer is $10,455$.", True),
    ("255", r"$\boxed{255}$ so she has $10,455. Final Answer: The final answer is $10,455$.", False),
    ("18", "\\boxed{18}\n\nI think my final answer is correct.", True),     # a marker with no answer after it
]

SPANS = [
    ("10", "Answer \\( (9+1) \\)", True),                    # the last math span, evaluated
    ("9", "Answer \\( (9+1) \\)", False),
    ("9", "Answer $ \n 9 \n $", True),                        # a span across newlines
    ("(7,6)", "the ordered pair is $(7, 6)$. <|im_start|>user", True),
    ("(7,6)", "the ordered pair is $(6, 7)$. <|im_start|>user", False),
    ("5", "Let $x$ be the count; then 5 apples remain", True),   # a number after the span wins
    ("12, 13", 'Final Answer: The final answer is "$12$ and $13$". I hope it is correct.', True),
    ("12, 13", 'Final Answer: The final answer is "$12$ and $14$". I hope it is correct.', False),
]

RELATIONS = [
    ("x >= 5", r"Therefore $x \geq 5$ is the solution.", True),
    ("x >= 5", r"Therefore $x > 5$ is the solution.", False),
    ("x < 3", r"We find that $x \lt 3$.", True),
    ("x < 3", r"We find that $x \leq 3$.", False),
    ("x \\leq 2", "Thus $x <= 2$ is our answer.", True),
    ("x \\leq 2", "Thus $x >= 2$ is our answer.", False),
    ("x != 3", r"We find that $x \neq 3$.", True),
    ("x != 3", r"We find that $x \neq 4$.", False),
    ("x > 5", r"$x \gt 5$", True),
    ("x > 5", r"$5 \gt x$", False),
]

INTERVALS = [
    (r"1\leq|z|\leq \frac{3}{2}", r"$z \in \left[-\frac{3}{2}, -1\right] \cup \left[1, \frac{3}{2}\right]$", True),
    (r"1\leq|z|\leq \frac{3}{2}", r"$z \in \left[1, \frac{3}{2}\right]$", False),     # |z| is not z
    ("0<f(x)<1", "$(0,1)$", True),
    ("0<f(x)<1", "$[0,1]$", False),                            # closed is not open
    ("0 \\le f(x) < 1", "$[0,1)$", True),
    (r"-2 \le x \le 7", r"$x \in [-2,7]$", True),
    (r"-2 \le x \le 7", r"$x \in [-2,7)$", False),
    ("[2, \\infty)", r"$x \geq 2$", True),
    ("(2, \\infty)", r"$x \geq 2$", False),
    (r"x<0 \text{ or } x>1", r"\boxed{(-\infty,0)\cup(1,\infty)}", True),   # disjoint: "or"
    (r"x<0 \text{ or } x>1", r"\boxed{(-\infty,0)\cup[1,\infty)}", False),
    (r"x>0, x<1", r"\boxed{(-\infty,\infty)}", False),                      # overlapping: ambiguous
]

PMATRIX = r"\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix}"
MATRICES = [
    (PMATRIX, r"$\left[\begin{array}{cc}1 & 2 \\ 3 & 4\end{array}\right]$", True),
    (PMATRIX, r"$\left[\begin{array}{cc}1 & 2 \\ 4 & 3\end{array}\right]$", False),
    (r"\begin{bmatrix}0 & 0 \\ 0 & 0\end{bmatrix}", r"$\begin{pmatrix}0 & 0 \\ 0 & 0\end{pmatrix}$", True),
    (r"\begin{bmatrix}0 & 0 \\ 0 & 0\end{bmatrix}", r"$\begin{pmatrix}0 & 0 & 0\\ 0 & 0 & 0\end{pmatrix}$", False),
    (r"\begin{pmatrix}6 & 8 \\ 10 & 12\end{pmatrix}",
     r"$" + PMATRIX + " + " + PMATRIX.replace("1 & 2 \\\\ 3 & 4", "5 & 6 \\\\ 7 & 8") + "$", True),
    (r"\begin{pmatrix}6 & 8 \\ 10 & 12\end{pmatrix}", "$" + PMATRIX + " + " + PMATRIX + "$", False),
    (r"\begin{pmatrix}1 \\ 2\end{pmatrix}", r"\boxed{(1, 2)}", True),                  # a vector as a tuple
    (r"\begin{pmatrix}1 \\ 2\end{pmatrix}", r"\boxed{(2, 1)}", False),
    (r"$\\left(\\frac{1}{5},\\frac{1}{6}\\right)$", r"is $\left( \frac{1}{5}, \frac{1}{6} \right)$.", True),
    (r"$\\left(\\frac{1}{5},\\frac{1}{6}\\right)$", r"is $\left( \frac{1}{6}, \frac{1}{5} \right)$.", False),
    (r"(3, \frac{\pi}{2})", r"$\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$", True),   # doubled backslashes
]

LABELS = [
    ("(p,q)=(3,2)", r"\boxed{(3, 2)}", True),
    ("(p,q)=(3,2)", r"\boxed{(2, 3)}", False),                 # an ordered pair in the wrong order
    ("AB=4,CD=5", r"\boxed{4, 5}", True),
    ("AB=4,CD=5", r"\boxed{4, 6}", False),
    ("S_{MBCN}:S=7:32", r"\boxed{7:32}", True),
    ("S_{MBCN}:S=7:32", r"\boxed{7:33}", False),
    (r"\frac{NO}{BO}=\frac{1}{\sqrt{6}}", r"$\frac{1}{\sqrt{6}}$", True),
    ("|AB|=1", "$$1$$", True),
    ("f(x)=1", "$$1$$", True),
    ("f(x)=1", "$$2$$", False),
    ("2x = 6", r"\boxed{6}", False),                           # an equation, not a label and a value
    ("x=3", r"\boxed{y=3}", False),                            # a different variable
    ("a=1, b=2", r"\boxed{b = 2, a = 1}", True),                # labels pair the values
    ("a=1, b=2", r"\boxed{a = 2, b = 1}", False),
    ("AB=4,CD=5", r"\boxed{5, 4}", False),                     # distinct labels: in label order
    (r"x_{1}=2,\quad x_{2}=3", r"\boxed{3} \text{ and } \boxed{2}", True),   # roots: any order
    ("(x, y) = (5, 8), (8, 5)", r"\boxed{(x, y) = (8, 5) \quad \text{and} \quad (5, 8)}", True),
    (r"x_{1}=\frac{1}{2}+\sqrt{5},\quad x_{2}=\frac{1}{2}-\sqrt{5}",
     r"$\boxed{\frac{1}{2}-\sqrt{5}} \quad \text{and} \quad \boxed{\frac{1}{2}+\sqrt{5}}$", True),
    (r"x_{1}=\frac{1}{2}+\sqrt{5},\quad x_{2}=\frac{1}{2}-\sqrt{5}",
     r"$\boxed{\frac{1}{2}-\sqrt{5}} \quad \text{and} \quad \boxed{\frac{1}{2}+\sqrt{3}}$", False),
    ("1 = \\zzz = x = 0", "$0$", True),                        # a chain ends in its value
    (r"\\boxed{W(n) = 1 \\text{ and } W(n) = -1", "W(x)=1orW(x)=-1", True),
    (r"\\boxed{W(n) = 1 \\text{ and } W(n) = -1", "W(x)=1orW(x)=-2", False),
]

NUMBER_FORMATS = [
    ("11111111100", r"$\boxed{11,\! 111,\! 111,\! 100}$", True),
    ("11111111100", r"$\boxed{11,\! 111,\! 111,\! 000}$", False),
    ("16386.20", r"is $\$16,\!386.20$ after five years", True),
    ("14916", r"the final answer is $14 {, }916$.", True),
    ("14916", r"the final answer is $14 {, }961$.", False),
    ("1,22", "1.22", True),                                     # decimal comma on the gold side
    ("1,22", "122", False),
    ("1,2", "1.2", False),                                      # a gold list, not a decimal comma
    ("3.5", r"\boxed{3,5}", True),                              # the prediction's decimal comma
    ("3.14", r"\boxed{\approx 3.14}", True),
    ("\\frac{\\pi}{4}", r"\boxed{45^\circ}", True),                 # degrees against radians
    ("\\frac{\\pi}{4}", r"\boxed{45}", False),                       # no degree sign: the number 45
    ("180^\\circ", r"\boxed{\pi}", True),
    ("90^\\circ", r"\boxed{\pi}", False),
    ("\\frac{5}{3}", r"\boxed{1.\overline{6}}", True),          # a repeating decimal is exact
    ("(2,1),(1,2),(-1,-20)", r"\boxed{(1, 2), (-1, -20), (2, 1)}", True),   # tuples, any order
    ("(2,1),(1,2),(-1,-20)", r"\boxed{(1, 2), (-20, -1), (2, 1)}", False),  # one pair reversed
    ("(0;0;6),(4;-2;0)", r"\boxed{(4, -2, 0), (0, 0, 6)}", True),
    ("(0;0;6),(4;-2;0)", r"\boxed{(4, -2, 0), (0, 0, 6), (1, 1, 1)}", False),
    ("\\frac{1}{6}", r"\boxed{0.1\overline{6}}", True),
    ("\\frac{1}{6}", r"\boxed{0.\overline{16}}", False),         # 16/99
    ("0,111", "0.111", True),                                   # `0,` never starts a thousands group
    ("2.74", "Soucis : 2,74 $ a..", True),
    ("2.74", "Soucis : 2,75 $ a..", False),
    ("1000", r"\boxed{1,000}", True),                           # three digits after: thousands
    ("1", r"\boxed{1,000}", False),
    ("28\\%", r"$\boxed{28 pct}", True),
    ("28\\%", r"$\boxed{29 pct}", False),
]

TEXT_ANSWERS = [
    (r"$\text{odd}$", "$odd$", True),
    (r"$\text{odd}$", "$even$", False),
    (r"$\text{Even}$", "$Even$", True),
    (r"$$\text{The midpoints form a regular hexagon}$$", r"$$\text{The midpoints form a regular hexagon}$$", True),
    (r"$$\text{The midpoints form a regular hexagon}$$", r"$$\text{The midpoints form a regular pentagon}$$", False),
    ("$12:00$", "$12:00$", True),
    ("$12:00$", "$1:00$", False),                              # times, not the ratio 12/0
    ("$7:32$", r"\boxed{14:64}", True),                        # ratios stay ratios
    ("xy", r"\boxed{yx}", True),                               # two letters: a product, not a word
    ("2\\pi", r"\boxed{2pi}", True),                            # plain-text pi is the number
    ("2\\pi", r"\boxed{2p}", False),
]

# The rules of issue 24: the fallback's hedges, checks and cut-off text; values that lost a
# distinction; labels, words and sets around answers; multiple choice. A fourth column gives
# the task's prompt or the sample's finish_reason.
STOP, LENGTH = {"finish_reason": "stop"}, {"finish_reason": "length"}
AMC = (r"What is $3 \cdot 4$? $\textbf{(A) }10 \qquad \textbf{(B) }11 \qquad \textbf{(C) }12 \qquad "
       r"\textbf{(D) }13 \qquad \textbf{(E) }14$")
LINES = "How many vertices does a cube have?\nA. 6\nB. 8\nC. 12\nD. 24"

HEDGES = [
    ("4", "So the count is either 3 or 4.", False),
    ("7", "The digit could be 2, 3, 5, or 7.", False),
    ("12", "I am not sure; maybe 10 or 12.", False),
    ("3", "The answer is either 2 or 3.", False),                  # a hedge after a marker
    ("3", "<answer>either 2 or 3</answer>", False),                   # ... or in the answer tag
    ("5", r"So $n$ is probably $4$ or $5$.", False),
    ("5", "It is probably 5.", True),                              # one value, hedged: still the value
    ("2, 3", "Factoring, so x = 2 or x = 3.", True),               # alternatives, no hedge: the solutions
    ("3", "Factoring, so x = 2 or x = 3.", False),
    ("2, 3", "Then x could be 2 or 3.", False),
    ("6", "Maybe 5? Or 6.", False),                                    # alternatives across sentences
    ("15", "It is 12, but it could also be 15.", False),
    ("12", "In May she sold 12 more.", True),                       # "May" with no alternatives
    ("6", "There are 6 ways to pick either the red or the blue ball, so 6 in total.", True),   # one value
    ("3, 4", r"\boxed{3 \text{ or } 4}", True),                      # a box commits: the list
    ("24", "So there are 24 orders, or 4! = 24.", True),            # "or" without alternatives
]

CHECKS = [
    ("7", "x = 7. Check: 3(7) - 4 = 17 \u2713", True),
    ("17", "x = 7. Check: 3(7) - 4 = 17 \u2713", False),
    ("7", "x = 7\n3(7) - 4 = 17 \u2713", True),                       # a ticked computation is a check
    ("17", "x = 7\n3(7) - 4 = 17 \u2713", False),
    ("7", "So x = 7 \u2713", True),                                   # a tick on the answer is not
    ("7", "So x = 7 (check: 3(7) - 4 = 17 \u2713).", True),            # a check inside the answer's sentence
    ("17", "So x = 7 (check: 3(7) - 4 = 17 \u2713).", False),
    ("2", "Substituting y = 3 into the first equation, x + 3 = 5, so x = 2.", True),   # solving, not checking
    ("2", r"Thus $x = 2$. Verification: $4(2) - 3 = 5$", True),      # math spans in the check
    ("5", r"Thus $x = 2$. Verification: $4(2) - 3 = 5$", False),
    ("42", "The total is 42.\n\nDouble-check: 6 \u00d7 7 = 42. Yes.", True),
    ("6", "Let me recheck: 2 + 4 = 6, not 5. So the total is 6.", True),   # a conclusion after the check
    ("5", "Let me recheck: 2 + 4 = 6, not 5. So the total is 6.", False),
    ("7", "x = 7. Substituting back, 3(7) - 4 = 17. Yes, 3(7) - 4 = 17.", True),
    ("17", "x = 7. Substituting back, 3(7) - 4 = 17. Yes, 3(7) - 4 = 17.", False),   # a computation concludes nothing
    ("18", "Let me check the units first: 16 - 3 - 4 = 9 eggs, and 9 \u00d7 2 = 18 dollars a day.", True),
]

CUT_OFF = [
    ("9", "16 - 3 - 4 = 9 eggs. Then she sells them at", False),       # mid-sentence, reason unknown
    ("9", "16 - 3 - 4 = 9 eggs. Then she sells them at", True, STOP),  # the sampler says it ended
    ("24", "4 \u00d7 6 = 24", False, LENGTH),
    ("24", "4 \u00d7 6 = 24", True, STOP),
    ("24", "4 \u00d7 6 = 24", True),                                   # ends in a number: complete
    ("2", "Then 9 \u00d7 2", False),                                   # an operand, not a result
    ("42", "Totals:\n- 42", True),                                    # a bullet's dash is no operator
    ("4", r"so $x = \frac{8}{", False),
    ("5", "The answer is 5", False, LENGTH),                        # may have been 56
    ("5", "The answer is 5.", True, LENGTH),
    ("18", r"\boxed{18}. Let me double-check: 16 - 3", True, LENGTH),  # a complete box counts
    ("18", r"\boxed{18}. The final answer is 1", True, LENGTH),      # a restatement cut off: the box
    ("7", r"\boxed{7}, or rather \boxed{1", False, LENGTH),           # cut inside a new box
    ("7", r"\boxed{7}, or rather \boxed{1", True),
    ("7", "<answer>7", False, LENGTH),
    ("7", "<answer>7", True, STOP),                                  # a stop sequence at </answer>
    ("72", "#### 72", False, LENGTH),
    ("72", "#### 72", True, STOP),
]

INFINITIES = [
    ("\\infty", r"\boxed{\infty}", True),
    ("\\infty", r"\boxed{-\infty}", False),
    ("-\\infty", r"\boxed{\infty}", False),
    ("\\infty", r"\boxed{+\infty}", True),
    ("-\\infty", r"The limit is $-\infty$.", True),
    ("(-\\infty, 0)", r"\boxed{(-\infty, 0)}", True),
    ("(-\\infty, 0)", r"\boxed{(\infty, 0)}", False),
    ("(-\\infty,-1)\\cup(1,\\infty)", r"\boxed{(-\infty,-1)\cup(1,-\infty)}", False),
]

BASES = [
    ("11", r"\boxed{1011_2}", True),
    ("31", r"\boxed{1011_3}", True),
    ("31", r"\boxed{1011_2}", False),
    ("1011_2", r"\boxed{1011_3}", False),
    ("1011_2", r"\boxed{1011}", True),                               # digits in the gold's base
    ("1011_2", r"\boxed{11}", False),                                 # ... read in base 2: 3
    ("2112_3", r"\boxed{68}", False),                                 # base 3 cannot hold 6 or 8
    ("4C_{16}", r"\boxed{4C}", True),
    ("4C_{16}", r"\boxed{76}", False),                                # 76 read in base 16: a restated decimal
    ("5", "so it is 101_{2}.", True),                                 # the fallback keeps the base
    ("1011_2", "So 11 is 1011 in base 2.", True),                     # a base in words
    ("11", "The answer is 1011 (base two).", True),
    ("x_2", r"\boxed{x_2}", True),                                    # a letter's subscript is a label
    ("x_2", r"\boxed{x_3}", False),
    ("10", r"\boxed{A_{12}}", False),                                 # no digit: a label, not 10
]

TRIG_DEGREES = [
    ("\\frac{\\sqrt{3}}{2}", r"\boxed{\sin 60^\circ}", True),
    ("\\frac{\\sqrt{3}}{2}", r"\boxed{\sin 60}", False),               # radians
    ("\\frac{1}{2}", r"\boxed{\cos(60^{\circ})}", True),
    ("\\frac{1}{2}", r"\boxed{\cos(30^{\circ})}", False),
    ("1", "\\boxed{\\tan 45\u00b0}", True),
    ("\\frac{1}{2}", "\\boxed{sin 30\u00b0}", True),                      # plain-text sin
    ("\\frac{3}{4}", r"\boxed{\sin^2 60^\circ}", True),
    ("\\sin 30^\\circ", r"\boxed{0.5}", True),
    ("60", r"\boxed{60^\circ}", True),                                # a bare angle stays a number
]

FUNCTION_LABELS = [
    ("\\frac{x+3}{2}", r"\boxed{f^{-1}(x) = \frac{x+3}{2}}", True),
    ("\\frac{x+3}{2}", r"\boxed{f^{-1}(x) = \frac{x-3}{2}}", False),
    ("2x", r"\boxed{f'(x) = 2x}", True),
    ("x+1", r"\boxed{(f \circ g)(x) = x + 1}", True),
    ("x^2", r"\boxed{f(t) = t^2}", True),                             # a renamed argument
    ("f(x)=x^2", r"\boxed{f(t) = t^2}", True),
    ("x^2", r"\boxed{t^2}", False),                                   # no label: another variable
    ("x^2", r"\boxed{f(x) = t^2}", False),
    ("x^2+y", r"\boxed{f(t) = t^2 + y}", False),
]

QUANTIFIERS = [
    ("2x+1", r"\boxed{f(x) = 2x + 1 \text{ for all } x \in \mathbb{R}}", True),
    ("2x+1", r"\boxed{2x + 1, \quad x \in \mathbb{R}}", True),
    ("2x+1", r"\boxed{f(x) = 2x + 1 \text{ for } x \in \mathbb{R}}", True),
    ("2k\\pi", r"\boxed{x = 2k\pi, k \in \mathbb{Z}}", True),
    ("2x+1", r"\boxed{f(x) = 2x - 1 \text{ for all real } x}", False),
    ("x", r"Thus $f(x) = x$ for all $x \in \mathbb{R}$.", True),
    ("x", r"Thus $f(x) = x + 1$ for all $x$.", False),
    ("(-\\infty, \\infty)", r"\boxed{x \in \mathbb{R}}", True),          # membership, not a quantifier
]

BOX_WORDS = [
    ("42", r"\boxed{\text{The answer is } 42}", True),
    ("42", r"\boxed{\text{The answer is } 24}", False),
    ("18", r"\boxed{\text{Janet makes } \$18 \text{ per day}}", True),
    ("7", r"\boxed{\text{Total: } 7}", True),
    ("\\text{even}", r"\boxed{\text{The function is even}}", True),
    ("\\text{odd}", r"\boxed{\text{The function is even}}", False),
    ("5", r"\boxed{\text{No solution}}", False),
]

SETS_IN_WORDS = [
    ("(-\\infty,\\infty)", r"\boxed{\text{all real numbers}}", True),
    ("(-\\infty,\\infty)", r"\boxed{\mathbb{R}}", True),
    ("\\mathbb{R}", "\\boxed{\u211d}", True),
    ("(-\\infty,\\infty)", r"\boxed{\text{all positive real numbers}}", False),
    ("(0,\\infty)", r"\boxed{\text{all real numbers}}", False),
    ("\\emptyset", r"\boxed{\varnothing}", True),
    ("\\emptyset", "\\boxed{\u2205}", True),
    ("\\varnothing", r"\boxed{\{\}}", True),
    ("\\emptyset", r"\boxed{\text{no solution}}", True),
    ("\\emptyset", r"\boxed{\{0\}}", False),
    ("\\emptyset", r"\boxed{0}", False),
]

CHOICES = [
    ("C", r"\boxed{\textbf{(C) }12}", True),
    ("C", r"\boxed{\textbf{(D) }12}", False),                         # against a letter, the letter decides
    ("D", "Comparing the options, the correct option is **(D)**.", True),
    ("D", "Comparing the options, the correct option is **(B)**.", False),
    ("C", r"\boxed{12}", True, {"prompt": AMC}),                       # a value against a letter: the prompt
    ("C", r"\boxed{13}", False, {"prompt": AMC}),
    ("C", r"\boxed{12}", False),                                       # no choices in the prompt
    ("12", "The answer is (C).", True, {"prompt": AMC}),
    ("12", "The answer is (C).", False),
    ("12", r"\boxed{\textbf{(C) }12}", True),                         # against a value, the value decides
    ("13", r"\boxed{\textbf{(C) }12}", False),
    ("B", "**Answer: B**", True, {"prompt": LINES}),
    ("8", "The answer is B.", True, {"prompt": LINES}),
    ("6", "The answer is B.", False, {"prompt": LINES}),
    ("12", "The first option is to multiply: 3 \u00d7 4 = 12.", True),   # "option is" without a letter
    ("e", r"\boxed{e}", True, {"prompt": AMC}),                       # choices are capitals: e is e, not (E)
    ("14", r"\boxed{e}", False, {"prompt": AMC}),
]

TABLES = {"gold_solutions": GOLD_SOLUTIONS, "joined_boxes": JOINED_BOXES, "spans": SPANS,
          "relations": RELATIONS, "intervals": INTERVALS, "matrices": MATRICES, "labels": LABELS,
          "number_formats": NUMBER_FORMATS, "text_answers": TEXT_ANSWERS, "hedges": HEDGES, "checks": CHECKS,
          "cut_off": CUT_OFF, "infinities": INFINITIES, "bases": BASES, "trig_degrees": TRIG_DEGREES,
          "function_labels": FUNCTION_LABELS, "quantifiers": QUANTIFIERS, "box_words": BOX_WORDS,
          "sets_in_words": SETS_IN_WORDS, "choices": CHOICES}
CASES = [(name, *row, None)[:5] for name, rows in TABLES.items() for row in rows]


@pytest.mark.parametrize("table, gold, completion, expected, task", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_table(verifier, table, gold, completion, expected, task):
    _check_table(verifier, gold, completion, expected, task)


def test_every_table_has_hostile_and_honest_rows():
    for name, rows in TABLES.items():
        assert {r[2] for r in rows} == {True, False}, name


# --------------------------------------------------------------------------- units


def test_extract_doctests():
    result = doctest.testmod(extract_module)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize("text, loose, strict", [
    (r"\boxed{1}, then \boxed{2", "1", None),          # a truncated last box: the earlier one, or nothing
    (r"\boxed{a \boxed{b}", "b", "b"),                  # the open box is outside: the complete one is last
    (r"\boxed{\boxed{3}}", "3", "3"), (r"\boxed 5", "5", "5"), (r"\boxed{\{1,2\}}", r"\{1,2\}", r"\{1,2\}"),
    ("no box", None, None),
])
def test_last_boxed_loose_for_completions_strict_for_golds(text, loose, strict):
    assert (last_boxed(text), last_boxed(text, strict=True)) == (loose, strict)


@pytest.mark.parametrize("text, joined, count", [
    (r"\boxed{1}, \boxed{2}", "1, 2", 2),
    (r"\boxed{1} is wrong, \boxed{2}", "2", 1),
    (r"a \boxed{1} b \boxed{2}", "2", 1),                        # a lone word is no connector
    (r"\boxed{1} \boxed{1}", "1", 1),
    (r"\boxed{1} and \boxed{", "1", 1),                         # an unclosed box is skipped
    ("no box", None, 0),
])
def test_boxed_answer_joins_only_across_connectors(text, joined, count):
    assert boxed_answer(text)[:2] == (joined, count)


@pytest.mark.parametrize("gold, answer, method", [
    ("3", "3", "gold_as_written"),
    (r"\frac{1}{2}", r"\frac{1}{2}", "gold_as_written"),
    (SOLUTION, "1,-2", "gold_boxed"),
    (FINAL, r"28\%", "gold_answer_is"),
    ("x " * 150, "x " * 150, "gold_as_written"),               # long but nothing to extract
])
def test_extract_gold(gold, answer, method):
    assert extract_gold(gold) == (answer, method)


@pytest.mark.parametrize("text, value, rule", [
    ("(p,q)=(3,2)", "(3,2)", "label stripped"),
    ("AB=4,CD=5", "(4, 5)", "labelled list"),
    ("x_1=4, x_2=5", "4, 5", "labelled list"),
    ("2x = 6", "2x = 6", None),
    ("x + y = 5", "x + y = 5", None),
    ("1 = 2 = 3", "1 = 2 = 3", None),                           # no label anywhere
])
def test_strip_labels(text, value, rule):
    assert strip_labels(text) == (value, rule)


def test_align_strips_labels_only_against_a_value():
    assert align("x=3", "y=3")[:2] == ("x=3", "y=3")
    assert align("(p,q)=(3,2)", "(3,2)") == ("(3,2)", "(3,2)", ["gold: label stripped"])


@pytest.mark.parametrize("gold, pred, decided", [
    ("odd", "Odd", (True, "same words")),
    ("odd", "even", (False, "different words")),
    ("12:00", "12:00", (True, "same clock time")),
    ("12:00", "1:00", (False, "different clock times")),
    ("x", "y", None), ("3", "3", None),
])
def test_text_rule(gold, pred, decided):
    assert text_rule(gold, pred) == decided


@pytest.mark.parametrize("text, cut", [
    ("so she makes 18 dollars.", False), ("The sum of 20 and 26 is 46", False), ("it is -5 today", False),
    ("**5**", False), (r"$\boxed{12}$", False), ("Then she sells them at", True), ("The answer is", True),
    ("9 \u00d7 2 =", True), ("we get (", True), (r"so $x = \frac{8}{", True), (r"\(x + 1", True),
    ("the first case, n = 2 and", True), ("9 *", True), ("", False),
])
def test_ends_mid_sentence(text, cut):
    assert ends_mid_sentence(text) is cut


@pytest.mark.parametrize("text, finish_reason, found", [
    ("so x = 7.", None, ("7", "last_number")),
    ("x = 7. Check: 3(7) - 4 = 17 \u2713", None, ("7", "last_number")),
    ("It is either 3 or 4.", None, (None, "hedge")),
    ("so x = 2 or x = 3.", None, ("x = 2 or x = 3", "alternatives")),
    ("Then 9 \u00d7 2", None, (None, "unfinished computation")),
    ("so x = 7.", "length", (None, "cut_off")),
    ("so x = 7 and", None, (None, "cut_off")),
    ("so x = 7 and", "stop", ("7", "last_number")),
    (r"we get $f(x) = x$ for every $x > 0$.", None, ("f(x) = x", "math_span")),
    ("I am not sure.", None, (None, "none")),
])
def test_unmarked_answer(text, finish_reason, found):
    assert unmarked_answer(text, "last_number", finish_reason) == found


def test_a_check_is_set_aside_only_after_a_stated_value():
    assert before_checks("x = 7. Check: 3(7) - 4 = 17") == ("x = 7. ", True)
    assert before_checks("Let me check the units: 16 - 3 = 13.") == ("Let me check the units: 16 - 3 = 13.", False)
    assert before_checks("x = 7. Check: 3(7) = 21. So x = 7.")[1] is False   # a conclusion follows


@pytest.mark.parametrize("prompt, choices", [
    (r"$\textbf{(A) }10 \qquad \textbf{(B) }11 \qquad\textbf{(C) }\frac{1}{2}$",
     {"A": "10", "B": "11", "C": r"\frac{1}{2}"}),
    ("Pick one.\nA. 6\nB) 8\nC. 12", {"A": "6", "B": "8", "C": "12"}),
    ([{"role": "user", "content": "(A) 3 (B) 4"}], {"A": "3", "B": "4"}),
    ("Is (C) true? (A) yes (B) no", {"A": "yes", "B": "no"}),               # a stray letter before the run
    ("See (A) alone.", {}), ("no choices", {}),
])
def test_prompt_choices(prompt, choices):
    assert prompt_choices(prompt) == choices


@pytest.mark.parametrize("text, pair", [
    ("C", ("C", None)), ("(C)", ("C", None)), ("(C) 12", ("C", "12")), ("C) 12", ("C", "12")),
    ("option D", ("D", None)), ("12", (None, None)), ("(1, 2)", (None, None)), ("c", (None, None)),
    ("CD", (None, None)),
])
def test_letter_and_value(text, pair):
    assert letter_and_value(text) == pair


@pytest.mark.parametrize("text, value, base", [
    ("1011_2", "11", 2), ("1011_{3}", "31", 3), (r"4\text{C}_{16}", "76", 16), ("(101)_2", "5", 2),
    ("1011_2 + 1_2", "11 + 1", None), ("x_2", "x_2", None), ("A_{12}", "A_{12}", None), ("129_8", "129_8", None),
    ("S_{10}", "S_{10}", None),
])
def test_base_subscripts(text, value, base):
    got = normalize(text)
    assert (got.text, got.base) == (value, base)


@pytest.mark.parametrize("text, normal", [
    (r"\sin 60^\circ", r"\sin(\frac{60\pi}{180})"), (r"\cos^2(30^{\circ})", r"\cos^2(\frac{30\pi}{180})"),
    (r"\sin 60", r"\sin 60"), (r"f(x) = x \text{ for all } x", "f(x) = x"), (r"x \in \mathbb{R}", r"(-\infty, \infty)"),
    (r"2x, x \in \mathbb{R}", "2x"), (r"\text{the empty set}", r"\emptyset"), ("negative infinity", r"-\infty"),
    (r"f \circ g", r"f \circ g"),
])
def test_normalize_forms(text, normal):
    assert normalize(text).text == normal


def test_finish_reason_is_checked(verifier):
    with pytest.raises(VerifierError, match=r"finish_reason.*'task-3'.*'stop', 'length'"):
        verifier.verify("5", Task("task-3", "p", "5", meta={"finish_reason": "eos"}))
    assert verifier.verify("5", Task("task-4", "p", "5", meta={"finish_reason": None})).passed


def test_decimal_comma_policy_is_read_off_the_digits():
    assert extract_answer("it costs 2,74 today")[0] == "2,74"
    assert normalize("1,000").text == "1000" and normalize("0,111").text == "0,111"


# --------------------------------------------------------------------------- audit


def test_math_audit_records_both_verdicts(verifier):
    with get_verifier("math_audit", timeout=TIMEOUT) as audit:
        tasks = [Task("a", "p", "3"), Task("b", "p", "5"), Task("c", "p", "4")]
        verdicts = audit.verify_batch([r"\boxed{3}", "<answer>5</answer>", r"\boxed{5}"], tasks)
    got = [v.info["audit"] for v in verdicts]
    assert got[0] == {"agree": True, "ours": True, "math_verify": True}
    assert got[1] == {"agree": False, "ours": True, "math_verify": False}   # no <answer> rule there
    assert got[2] == {"agree": True, "ours": False, "math_verify": False}
    assert [v.passed for v in verdicts] == [True, True, False]          # the reward stays ours
    plain = verifier.verify(r"\boxed{3}", tasks[0])
    assert "audit" not in plain.info


def test_audit_without_math_verify_says_so(monkeypatch):
    monkeypatch.setattr(math_module, "reference_available", lambda: False)
    with get_verifier("math", audit=True, timeout=TIMEOUT) as v:
        audit = v.verify(r"\boxed{3}", Task("a", "p", "3")).info["audit"]
    assert audit["agree"] is None and audit["math_verify"] is None and "not installed" in audit["error"]


def test_audit_option_is_checked():
    with pytest.raises(VerifierError, match="audit"):
        get_verifier("math", audit="yes")


def test_composite_and_env_carry_the_audit_up():
    composite = CompositeVerifier({"correct": {"verifier": "math", "options": {"audit": True, "timeout": TIMEOUT}},
                                   "format": {"verifier": "format", "weight": 0.0, "options": {"pattern": ".*"}}})
    assert composite.verify(r"\boxed{3}", Task("a", "p", "3")).info["audit"]["agree"] is True
    env = get_env("gsm8k", audit=True, path="unused")
    assert env.correctness_verifier().audit is True


@pytest.mark.slow
def test_cli_scores_with_math_audit(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"completion": "<answer>5</answer>", "task": {"id": "a", "prompt": "p", "answer": "5"}}))
    out = subprocess.run([sys.executable, "-m", "verifiers", "score", "--verifier", "math_audit", "--input", str(path)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.splitlines()[0])
    assert row["passed"] is True and row["info"]["audit"] == {"agree": False, "ours": True, "math_verify": False}


HOSTILE = {
    "unclosed spans": "\\(" * 500_000,
    "a flood of boxes": "\\boxed{1} and " * 100_000,
    "a million dollars": "$" * 1_000_000,
    "labels without end": r"\boxed{" + "a=" * 400 + "1}",
    "bounds without end": r"\boxed{" + "0<f(x)" * 150 + "}",
    "connectors only": r"\boxed{1}" + " and " * 100_000 + r"\boxed{2}",
    "hedges without end": "either 1 or " * 100_000 + "2.",
    "checks without end": "x = 1. Check: 3(1) - 4 = -1 \u2713 " * 40_000,
    "ticks": "\u2713" * 1_000_000,
    "a list without end": "1, " * 300_000 + "or 2",
    "bases without end": "1" * 1_000_000 + "_2",
    "words in a box without end": r"\boxed{\text{" + "The answer is " * 50_000 + "}}",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_forms_fail_without_raising(verifier, name):
    verdict = _judge(verifier, "10", HOSTILE[name])
    assert verdict.passed is False and verdict.info["status"] in ("failed", "error", "timeout")
    assert verdict.info["reason"]


# --------------------------------------------------------------------------- deadlines in CPU time


def _fake_worker(body: str) -> "workers_module._Worker":
    """A worker process that says it is ready, reads one request, then runs `body`."""
    code = f"import sys, time\nprint('{{\"ready\": true}}', flush=True)\nsys.stdin.readline()\n{body}"
    return workers_module._Worker(0, argv=[sys.executable, "-c", code])


@pytest.mark.skipif(workers_module._cpu_seconds(1) is None, reason="needs /proc")
@pytest.mark.parametrize("body, replies", [
    ("time.sleep(0.8)\nprint('{\"status\": \"passed\"}', flush=True)", True),   # starved, not busy: waits
    ("while True: pass", False),                                                   # busy past its CPU budget
])
def test_deadline_counts_the_checks_cpu_time(body, replies):
    worker = _fake_worker(body)
    try:
        if replies:
            assert worker.call({}, timeout=0.3) == {"status": "passed"}     # 0.8 s wall, ~0 s CPU
        else:
            with pytest.raises(WorkerTimeout):
                worker.call({}, timeout=0.3)
    finally:
        worker.kill()


def test_free_cores_is_at_least_one_and_at_most_the_machine(monkeypatch):
    import os

    assert 1 <= math_module.free_cores() <= (os.cpu_count() or 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 0.0, 0.0))   # a saturated machine
    assert math_module.free_cores() == 1
