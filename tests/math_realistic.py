"""A table of realistic completions for the classes of issue 24, for `benchmarks/bench_math.py`.

Model-style endings and their near misses: hedges that list alternatives, verifications after
the answer, completions cut off mid-sentence, the sign of infinity, number bases, trig of
degrees, labels and words around answers, sets in words, and multiple choice. The expectations
are the truth, decided by reading each row, not by running a checker; they were written before
the rules they exercise. It is an evaluation table, not a unit test: the benchmark reports how
many rows each checker gets right (`tests/verifiers/test_math_rules.py` holds the rule tables).

`finish_reason` is what a sampler reports ("stop", "length"; None: not known). It travels as
`Task.meta["finish_reason"]` (docs/verifiers.md); math-verify has no such input.
"""

from __future__ import annotations

from typing import NamedTuple


class RealisticCase(NamedTuple):
    id: str
    gold: str
    completion: str
    expected: bool
    prompt: str = "p"
    finish_reason: str | None = None


def _group(name: str, rows: list[tuple]) -> list[RealisticCase]:
    return [RealisticCase(f"{name}-{i:03d}", *row) for i, row in enumerate(rows)]


_EGGS = ("Janet's ducks lay 16 eggs per day. She eats 3 for breakfast and bakes muffins with 4, so "
         "16 - 3 - 4 = 9 eggs are left. She sells each egg for $2")
_EQ = "We solve 3x + 2 = 23: subtracting 2 gives 3x = 21, so x = 7."
_AMC = (r"What is the value of $3 \cdot 4$? $\textbf{(A) }10 \qquad \textbf{(B) }11 \qquad "
        r"\textbf{(C) }12 \qquad \textbf{(D) }13 \qquad \textbf{(E) }14$")
_LINES = "How many edges does a cube have?\nA. 6\nB. 8\nC. 12\nD. 24\nAnswer with the letter."

HEDGES = _group("hedge", [
    ("4", "Depending on whether we count the endpoint, the number of solutions is either 3 or 4.", False),
    ("7", "The digits that keep the number prime could be 2, 3, 5, or 7.", False),
    ("12", "I'm not sure whether the boxes may be empty, so the count might be 10 or 12.", False),
    ("5", r"So $n$ is probably $4$ or $5$.", False),
    ("3", "I think the answer is either 2 or 3.", False),
    ("6", "It could be 6, or it could be 8 if we also count the corners.", False),
    ("2, 3", "Factoring gives (x - 2)(x - 3) = 0, so x = 2 or x = 3.", True),
    ("3", "Factoring gives (x - 2)(x - 3) = 0, so x = 2 or x = 3.", False),
    ("24", "So there are 24 ways to arrange them, or 4! = 24.", True),
    ("10", r"The answer is 10, or equivalently $2 \cdot 5$.", True),
    ("18", _EGGS + ", so she makes 9 * 2 = 18 dollars every day.", True),
    ("8", "Counting again carefully, there are 8 of them.", True),
])

CHECKS = _group("check", [
    ("7", "3x - 4 = 17\n3x = 21\nx = 7\n\nCheck: 3(7) - 4 = 21 - 4 = 17 \u2713", True),
    ("17", "3x - 4 = 17\n3x = 21\nx = 7\n\nCheck: 3(7) - 4 = 21 - 4 = 17 \u2713", False),
    ("7", _EQ + " Check: 3(7) + 2 = 23 \u2713", True),
    ("23", _EQ + " Check: 3(7) + 2 = 23 \u2713", False),
    ("5", r"Solving, $x = 5$. Let's verify: $2(5) + 1 = 11$, which matches.", True),
    ("11", r"Solving, $x = 5$. Let's verify: $2(5) + 1 = 11$, which matches.", False),
    ("18", _EGGS + ", so she makes 9 \u00d7 2 = 18 dollars.\n\nDouble-check: 18 / 2 = 9 eggs \u2713", True),
    ("9", _EGGS + ", so she makes 9 \u00d7 2 = 18 dollars.\n\nDouble-check: 18 / 2 = 9 eggs \u2713", False),
    ("12", "Let the number be n, so n + 5 = 17 and n = 12. Let me verify by substituting back: 12 + 5 = 17 "
           "\u2713. So the number is 12.", True),
    ("17", "Let the number be n, so n + 5 = 17 and n = 12. Let me verify by substituting back: 12 + 5 = 17 "
           "\u2713. So the number is 12.", False),
    ("20", "So there are 20 students. To verify: 20 \u00d7 3 = 60 pencils, as given.", True),
    ("60", "So there are 20 students. To verify: 20 \u00d7 3 = 60 pencils, as given.", False),
    ("2", "Thus $x = 2$.\n\n**Verification:** $4(2) - 3 = 5$ \u2713", True),
    ("5", "Thus $x = 2$.\n\n**Verification:** $4(2) - 3 = 5$ \u2713", False),
    ("6", "I first got 5. Wait, let me recheck: 2 + 4 = 6, not 5. So the total should be 6.", True),
    ("42", "So the total is 42.\n\nLet me double-check: 6 \u00d7 7 = 42. Yes.", True),
    ("6", "So the total is 42.\n\nLet me double-check: 6 \u00d7 7 = 42. Yes.", False),
])

CUT_OFF = _group("cut", [
    ("18", _EGGS + ", so", False),
    ("2", _EGGS + ", so she makes 9 \u00d7 2", False),
    ("9", "We need the number of eggs left: 16 - 3 - 4 = 9. Then she sells them at", False),
    ("12", "The total is 3 \u00d7 4 = 12.\n\nNow for the second part we need the", False),
    ("4", r"Simplifying, we get $x = \frac{8}{", False),
    ("24", "Multiplying, 4 \u00d7 6 = 24", False, "p", "length"),
    ("24", "Multiplying, 4 \u00d7 6 = 24", True, "p", "stop"),
    ("5", "Adding them up, the answer is 5", False, "p", "length"),
    ("5", "Adding them up, the answer is 5.", True, "p", "length"),
    ("18", r"So she makes $\boxed{18}$ dollars. Let me double-check by recomputing the eggs: 16 - 3", True,
     "p", "length"),
    ("7", "<answer>7", False, "p", "length"),
    ("72", "She sold 48 + 24 = 72 clips.\n#### 72", True, "p", "stop"),
    ("18", _EGGS + ", so she makes 9 \u00d7 2 = 18 dollars.", True),
    ("40", "The train travels for 2 hours at 20 mph, so it covers 40 miles", True),
])

INFINITY = _group("infinity", [
    ("-\\infty", r"As $x$ decreases without bound, the limit is $\boxed{-\infty}$.", True),
    ("-\\infty", r"As $x$ decreases without bound, the limit is $\boxed{\infty}$.", False),
    ("\\infty", r"The partial sums grow without bound, so the sum is $\boxed{+\infty}$.", True),
    ("\\infty", r"The partial sums grow without bound, so the sum is $\boxed{-\infty}$.", False),
    ("(-\\infty,-1)\\cup(1,\\infty)", r"\boxed{(-\infty, -1) \cup (1, \infty)}", True),
    ("(-\\infty,-1)\\cup(1,\\infty)", r"\boxed{(-\infty, -1) \cup (1, -\infty)}", False),
])

BASES = _group("base", [
    ("1011_2", r"Since 11 = 8 + 2 + 1, it is $\boxed{1011_2}$.", True),
    ("1011_2", r"\boxed{1011_3}", False),
    ("1011_2", r"Since 11 = 8 + 2 + 1, the binary form is $\boxed{1011}$.", True),
    ("11", r"\boxed{1011_2}", True),
    ("31", r"$1011_3 = 27 + 0 + 3 + 1 = \boxed{31}$", True),
    ("31", r"\boxed{1011_2}", False),
    ("2112_3", r"\boxed{2112_3}", True),
    ("2112_3", r"In base 10 the number is $\boxed{68}$.", False),
    ("4C_{16}", r"\boxed{4C_{16}}", True),
    ("x_2", r"\boxed{x_3}", False),
])

TRIG_DEGREES = _group("trig", [
    ("\\frac{\\sqrt{3}}{2}", r"\boxed{\sin 60^\circ}", True),
    ("\\frac{\\sqrt{3}}{2}", r"\boxed{\sin 30^\circ}", False),
    ("\\frac{1}{2}", r"The answer is $\cos 60^{\circ}$.", True),
    ("\\sqrt{3}", r"\boxed{\tan(60^\circ)}", True),
    ("\\sqrt{3}", r"\boxed{\tan 60}", False),
    ("\\frac{\\sqrt{2}}{2}", "\\boxed{\\sin 45\u00b0}", True),
    ("1", r"\boxed{\sin^2 30^\circ + \cos^2 30^\circ}", True),
])

LABELS = _group("label", [
    ("\\frac{x+3}{2}", r"The inverse is $f^{-1}(x) = \frac{x+3}{2}$.", True),
    ("\\frac{x+3}{2}", r"\boxed{f^{-1}(x) = \frac{x-3}{2}}", False),
    ("2x+3", r"\boxed{g(x) = 2x + 3}", True),
    ("x^2", r"\boxed{f(t) = t^2}", True),
    ("x^2", r"\boxed{t^2}", False),
    ("2x+1", r"\boxed{f(x) = 2x + 1 \text{ for all } x \in \mathbb{R}}", True),
    ("2x+1", r"\boxed{f(x) = 2x - 1 \text{ for all real } x}", False),
    ("x", r"Therefore $f(x) = x$ for all $x \in \mathbb{R}$.", True),
    ("x", r"Therefore $f(x) = x + 1$ for all $x \in \mathbb{R}$.", False),
    ("42", r"\boxed{\text{The answer is } 42}", True),
    ("42", r"\boxed{\text{The answer is } 24}", False),
    ("18", r"\boxed{\text{Janet makes } \$18 \text{ per day}}", True),
    ("\\frac{1}{x}", r"\boxed{f'(x) = \frac{1}{x}}", True),
])

SETS = _group("set", [
    ("(-\\infty, \\infty)", r"The domain is $\boxed{\text{all real numbers}}$.", True),
    ("(-\\infty, \\infty)", r"\boxed{\mathbb{R}}", True),
    ("(-\\infty, \\infty)", r"\boxed{\text{all positive real numbers}}", False),
    ("\\mathbb{R}", r"\boxed{(-\infty, \infty)}", True),
    ("\\emptyset", r"No $x$ works, so the solution set is $\varnothing$.", True),
    ("\\emptyset", r"\boxed{\{0\}}", False),
    ("\\varnothing", "\\boxed{\u2205}", True),
    ("\\emptyset", r"\boxed{\text{No solution}}", True),
    ("(-\\infty,\\infty)", r"\boxed{\emptyset}", False),
])

CHOICES = _group("choice", [
    ("C", r"$3 \cdot 4 = 12$, so the answer is $\boxed{\textbf{(C) }12}$.", True, _AMC),
    ("C", r"$3 \cdot 4 = 13$, so the answer is $\boxed{\textbf{(D) }13}$.", False, _AMC),
    ("D", "After checking each option, the correct option is **(D)**.", True),
    ("D", "After checking each option, the correct option is **(B)**.", False),
    ("C", r"$3 \cdot 4 = \boxed{12}$", True, _AMC),
    ("C", r"$3 \cdot 4 = \boxed{13}$", False, _AMC),
    ("12", "Multiplying, we get 12, which is choice (C). The answer is (C).", True, _AMC),
    ("12", "The answer is (D).", False, _AMC),
    ("12", r"\boxed{(C)}", False),
    ("C", "A cube has 12 edges.\n\n**Answer: C**", True, _LINES),
    ("C", "A cube has 12 edges.\n\n**Answer: B**", False, _LINES),
    ("12", "A cube has 12 edges, so the answer is C.", True, _LINES),
])

PLAIN_ENDINGS = _group("plain", [
    ("18", "She has 9 eggs left and sells each for $2, so she makes 18 dollars.", True),
    ("18", "So she has 18 apples.", True),
    ("7", "Therefore x = 7.", True),
    ("3", "There are 3 red marbles left in the bag.", True),
    ("2", "There are 3 red marbles left in the bag.", False),
    ("0.25", "The probability is 1/4.", True),
])

CASES: list[RealisticCase] = [*HEDGES, *CHECKS, *CUT_OFF, *INFINITY, *BASES, *TRIG_DEGREES, *LABELS, *SETS,
                              *CHOICES, *PLAIN_ENDINGS]
