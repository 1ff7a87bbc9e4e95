"""Hand-written (gold, completion, expected) cases for the `math` verifier.

The expectations are the truth, decided by reading each case, not by running a checker.
Imported by tests/verifiers/test_math.py and by benchmarks/bench_math.py (which compares against
math-verify on the cases with default options). Groups follow the rules of the verifier:
extraction, normalisation, numbers, symbolic, containers, equations, multiple answers,
traps (answers that look right and are not), awkward model outputs, and option-dependent
cases (the `options` column).
"""

from __future__ import annotations

from typing import NamedTuple


class MathCase(NamedTuple):
    id: str
    gold: str | int | float
    completion: str
    expected: bool
    options: dict


def _group(name: str, rows: list[tuple], **options) -> list[MathCase]:
    return [MathCase(f"{name}-{i:03d}", gold, completion, expected, dict(options))
            for i, (gold, completion, expected) in enumerate(rows)]


_LONG_COT = (
    "Let's think step by step. Janet has 16 eggs per day. She eats 3 for breakfast and bakes "
    "muffins with 4, so 16 - 3 - 4 = 9 eggs remain. She sells each for $2, so 9 * 2 = 18 dollars. "
    "Over 7 days that is 126, but the question asks per day. "
)

EXTRACTION = _group("extract", [
    ("42", r"So the total is \boxed{42}.", True),
    ("42", r"So the total is \boxed{41}.", False),
    ("42", r"First guess \boxed{40}, but correcting: \boxed{42}", True),      # last box wins
    ("40", r"First guess \boxed{40}, but correcting: \boxed{42}", False),
    ("42", r"The answer is $\boxed{42}$.", True),
    ("42", r"\fbox{42}", True),
    ("42", r"\boxed {42}", True),
    ("42", r"\boxed 42", True),
    (r"\frac{1}{2}", r"\boxed{\frac{1}{2}}", True),
    (r"\frac{1}{2}", r"\boxed{\boxed{\frac{1}{2}}}", True),                   # nested boxes
    (r"\{1,2\}", r"\boxed{\{1, 2\}}", True),                                   # escaped braces inside
    ("x^{2}", r"\boxed{x^{2}}", True),
    ("7", r"\boxed{7} and then the truncated \boxed{12", True),               # unclosed box skipped
    ("42", "Natalia sold 48/2 = 24 clips in May.\n#### 42", True),
    ("72", "She sold 48 + 24 = 72 clips.\n#### 72", True),
    ("72", "She sold 48 + 24 = 72 clips.\n#### 71", False),
    ("1000", "#### 1,000", True),
    ("5", "#### 5\nsome trailing text 7", True),
    ("5", "<think>2+2 is 4, plus 1</think><answer>5</answer>", True),
    ("5", "<think>maybe 5</think><answer>6</answer>", False),
    ("5", r"<answer>The answer is \boxed{5}</answer>", True),
    ("5", r"<think>\boxed{3}</think> <answer>5</answer>", True),              # the tag is the protocol
    ("5", "<answer> 5 </answer>", True),
    ("5", "<ANSWER>5</ANSWER>", True),
    ("5", "<answer>5", True),                                                 # missing closing tag
    ("18", _LONG_COT + "The answer is 18.", True),
    ("18", _LONG_COT + "The answer is 126.", False),
    ("18", _LONG_COT + "Final Answer: 18", True),
    ("18", _LONG_COT + "**Final Answer:** 18", True),
    ("18", _LONG_COT + "So the final answer is: 18 dollars.", True),
    ("3.5", "The answer is 3.5 hours.", True),
    ("18", _LONG_COT, False),                                  # the last number is 126
    ("126", _LONG_COT, True),
    ("46", "46", True),
    ("-22", "-22", True),
    ("3/4", "3/4", True),
    ("46", "  46\n", True),
    ("46", "The sum of 20 and 26 is 46", True),                               # last number
    ("46", "I am not sure.", False),                                          # nothing to extract
    ("46", "", False),
    ("x+1", "x+1", True),                                                     # bare expression
    (r"\frac{1}{2}", r"$\frac{1}{2}$", True),
    ("12", "We get 3 groups of 4, i.e. 12", True),
    ("12", "We get 3 groups of 4, i.e. 12.", True),
    ("0.5", "Probability is .5", True),
])

NORMALISATION = _group("normalise", [
    ("7425000", r"\boxed{7,425,000}", True),
    ("7,425,000", r"\boxed{7425000}", True),
    ("1000", r"\boxed{1\,000}", True),
    ("1000", r"\boxed{1{,}000}", True),
    ("1000", r"\boxed{1 000}", True),
    ("1000000", "The answer is 1,000,000.", True),
    ("1234.5", r"\boxed{1,234.5}", True),
    ("3.5", r"\boxed{3,5}", True),                                  # decimal comma, not 3 digits
    ("0.25", r"\boxed{0,25}", True),
    ("3125", r"\boxed{3,125}", True),                               # 3 digits: thousands
    ("3.125", r"\boxed{3,125}", False),
    ("5", r"\boxed{\$5}", True),
    ("5", r"\boxed{5 dollars}", True),
    ("5", "It costs $5.", True),
    ("12.50", r"\boxed{\$12.50}", True),
    ("12.5", "The total is $12.50.", True),
    ("20", "\u20ac20", True),
    ("3", r"\boxed{3 \text{ cm}}", True),
    ("3", r"\boxed{3\text{cm}^2}", True),
    ("3", r"\boxed{3\mbox{ meters}}", True),
    ("3", r"\boxed{3 \mathrm{kg}}", True),
    ("3", r"\boxed{\text{3}}", True),
    ("3", r"\boxed{\textbf{3}}", True),
    ("3", r"\boxed{3\ \text{units}}", True),
    ("3", "3 apples", True),
    ("5", r"\boxed{5cm}", True),
    ("5", r"\boxed{5 kg}", True),
    ("10", r"\boxed{10 m/s}", True),
    ("2", r"\boxed{2xy}", False),                                   # algebra, not a unit
    ("3", r"\boxed{3 x^2}", False),
    ("5", r"\boxed{5m}", False),                                    # 5m may be 5 times m
    ("A", r"\boxed{USA}", False),
    ("30", r"\boxed{30^\circ}", True),
    ("30", r"\boxed{30^{\circ}}", True),
    ("30", "30\u00b0", True),
    ("30^\\circ", r"\boxed{30}", True),
    ("30", r"\boxed{30 \text{ degrees}}", True),
    ("25\\%", r"\boxed{25\%}", True),
    ("25", r"\boxed{25\%}", True),
    ("25\\%", r"\boxed{25}", True),
    ("25\\%", r"\boxed{0.25}", True),
    ("25%", "25 percent", True),
    (r"\left(1, 2\right)", r"\boxed{(1,2)}", True),
    ("(1,2)", r"\boxed{\left( 1, 2 \right)}", True),
    ("[1,2]", r"\boxed{\left[1,2\right]}", True),
    (r"\frac{1}{2}", r"\boxed{\dfrac{1}{2}}", True),
    (r"\frac{1}{2}", r"\boxed{\tfrac{1}{2}}", True),
    (r"\frac{3}{4}", r"\boxed{\frac34}", True),
    (r"\frac{3}{4}", r"\boxed{\frac3{4}}", True),
    (r"\sqrt{2}", r"\boxed{\sqrt2}", True),
    ("5", r"The answer is 5.", True),
    ("5", r"\boxed{5.}", True),
    ("5", "**5**", True),
    ("5", "The answer is **5**.", True),
    ("5", "`5`", True),
    ("-3", "\\boxed{\u22123}", True),                                # unicode minus
    ("-3", "The answer is \u22123.", True),
    ("-3", "\u22123", True),
    ("3", "\\boxed{\u22123}", False),
    ("6", "2 \u00d7 3 = 6", True),
    (r"2\pi", "\\boxed{2\u03c0}", True),
    (r"\sqrt{2}", "\\boxed{\u221a2}", True),
    (r"\frac{1}{2}", r"\[\boxed{\frac{1}{2}}\]", True),
    (r"\frac{1}{2}", r"\(\frac{1}{2}\)", True),
    ("5", r"\boxed{\displaystyle 5}", True),
    ("5", r"\boxed{ 5 }", True),
    ("1.5", r"\boxed{1.50}", True),
    ("1.5", r"\boxed{1.500}", True),
    ("0.5", r"\boxed{.5}", True),
    ("10", r"\boxed{010}", True),
    ("\\text{Monday}", r"\boxed{\text{Monday}}", True),
    ("Monday", r"\boxed{monday}", True),
    ("Monday", r"\boxed{Tuesday}", False),
    ("\\text{(C)}", r"\boxed{(C)}", True),
    ("C", r"\boxed{\text{C}}", True),
    ("C", r"\boxed{D}", False),
    ("\\infty", r"\boxed{\infty}", True),
    ("\\infty", "\\boxed{\u221e}", True),
])

NUMBERS = _group("number", [
    ("3/4", "0.75", True),
    ("3/4", r"\boxed{\frac{3}{4}}", True),
    ("0.75", r"\boxed{\frac34}", True),
    ("0.75", r"\boxed{3/4}", True),
    ("0.75", r"\boxed{\frac{6}{8}}", True),
    ("0.75", r"\boxed{0.7500}", True),
    ("0.75", r"\boxed{0.76}", False),
    ("1/3", r"\boxed{\frac{2}{6}}", True),
    ("1/3", r"\boxed{0.333333}", True),                          # six significant digits
    ("1/3", r"\boxed{0.3333333333}", True),
    ("1/3", r"\boxed{0.33}", False),
    ("1/3", r"\boxed{0.3333}", False),
    ("2/3", r"\boxed{0.666667}", True),
    ("2/3", r"\boxed{0.666666}", False),                         # truncated: off by more than half a unit
    ("-22", r"\boxed{-22}", True),
    ("-22", r"\boxed{22}", False),
    ("-22", r"\boxed{-22.0}", True),
    ("46", r"\boxed{46.0}", True),
    ("46", r"\boxed{46.00001}", False),
    ("1000000", r"\boxed{1000001}", False),
    ("1000000", r"\boxed{1000000.5}", False),
    ("0", r"\boxed{0}", True),
    ("0", r"\boxed{-0}", True),
    ("0", r"\boxed{0.0}", True),
    ("0", r"\boxed{0.000001}", False),
    ("-\\frac{1}{2}", r"\boxed{\frac{-1}{2}}", True),
    ("-\\frac{1}{2}", r"\boxed{-0.5}", True),
    ("-\\frac{1}{2}", r"\boxed{0.5}", False),
    ("\\frac{1}{2}", r"\boxed{2^{-1}}", True),
    ("\\frac{5}{2}", r"\boxed{2\frac{1}{2}}", True),            # mixed number
    ("2\\frac{1}{2}", r"\boxed{2.5}", True),
    ("2\\frac{1}{2}", "2 1/2", True),
    ("2\\frac{1}{2}", r"\boxed{1}", False),
    ("-2\\frac{1}{2}", r"\boxed{-2.5}", True),
    ("1500", r"\boxed{1.5 \times 10^{3}}", True),
    ("1500", r"\boxed{1.5\cdot10^3}", True),
    ("1500", r"\boxed{1.5e3}", True),
    ("1500", r"\boxed{1.5E3}", True),
    ("0.0015", r"\boxed{1.5 \times 10^{-3}}", True),
    ("1.5\\times10^{-3}", r"\boxed{0.0015}", True),
    ("6.02\\times10^{23}", r"\boxed{6.02e23}", True),
    ("6.02\\times10^{23}", r"\boxed{6.02e22}", False),
    ("2^{10}", r"\boxed{1024}", True),
    ("1024", r"\boxed{2^{10}}", True),
    ("10!", r"\boxed{3628800}", True),
    ("\\binom{5}{2}", r"\boxed{10}", True),
    ("\\sqrt{2}", r"\boxed{\sqrt{2}}", True),
    ("\\sqrt{2}", r"\boxed{\frac{2}{\sqrt{2}}}", True),
    ("\\sqrt{8}", r"\boxed{2\sqrt{2}}", True),
    ("\\frac{\\sqrt{3}}{2}", r"\boxed{\frac{1}{2}\sqrt{3}}", True),
    ("\\frac{\\sqrt{3}}{3}", r"\boxed{\frac{1}{\sqrt{3}}}", True),
    ("\\sqrt{2}", r"\boxed{1.41421}", True),
    ("\\sqrt{2}", r"\boxed{1.4142}", False),
    ("\\sqrt{2}", r"\boxed{1.414213562}", True),
    ("\\pi", r"\boxed{3.14159}", True),
    ("\\pi", r"\boxed{3.14}", False),
    ("2\\pi", r"\boxed{2 \pi}", True),
    ("2\\pi", r"\boxed{\pi \cdot 2}", True),
    ("2\\pi", r"\boxed{6.283185}", True),
    ("\\frac{\\pi}{2}", r"\boxed{\pi/2}", True),
    ("\\frac{\\pi}{2}", r"\boxed{\frac{\pi}{3}}", False),
    ("e", r"\boxed{e}", True),
    ("e", r"\boxed{2.718282}", True),
    ("e^2", r"\boxed{e^{2}}", True),
    ("e^2", r"\boxed{\exp(2)}", True),
    ("\\ln 8", r"\boxed{3\ln 2}", True),
    ("\\log_2 8", r"\boxed{3}", True),
    ("\\sin(\\pi/6)", r"\boxed{\frac{1}{2}}", True),
    ("\\cos(\\pi/3)", r"\boxed{0.5}", True),
    ("\\tan(\\pi/4)", r"\boxed{1}", True),
    ("\\frac{1}{2004!}", r"\boxed{\frac{1}{2004!}}", True),
    ("3^{100}", r"\boxed{3^{100}}", True),
    ("3^{100}", r"\boxed{3^{101}}", False),
    ("2^{100}", r"\boxed{1267650600228229401496703205376}", True),
    ("2^{100}", r"\boxed{1267650600228229401496703205377}", False),
    ("i", r"\boxed{\sqrt{-1}}", True),
    ("3+2i", r"\boxed{2i+3}", True),
    ("3+2i", r"\boxed{3-2i}", False),
    ("\\frac{1+\\sqrt{5}}{2}", r"\boxed{\frac{\sqrt{5}+1}{2}}", True),
    ("\\frac{1+\\sqrt{5}}{2}", r"\boxed{1.618034}", True),
    ("\\frac{1+\\sqrt{5}}{2}", r"\boxed{\frac{1-\sqrt{5}}{2}}", False),
    ("\\sqrt{2}+\\sqrt{3}", r"\boxed{\sqrt{5+2\sqrt{6}}}", True),
    ("11", r"\boxed{11}", True),
    ("11", r"\boxed{1 1}", False),
    ("-5", r"\boxed{--5}", False),
])

SYMBOLIC = _group("symbolic", [
    ("x^2+2x+1", r"\boxed{(x+1)^2}", True),
    ("(x+1)^2", r"\boxed{x^2+2x+1}", True),
    ("x^2+2x+1", r"\boxed{(x-1)^2}", False),
    ("x^2-1", r"\boxed{(x-1)(x+1)}", True),
    ("x^2-1", r"\boxed{(x-1)(x+2)}", False),
    ("2x", r"\boxed{x+x}", True),
    ("2x", r"\boxed{2 x}", True),
    ("2x", r"\boxed{x^2}", False),
    ("\\frac{x}{2}", r"\boxed{0.5x}", True),
    ("\\frac{x^2-1}{x-1}", r"\boxed{x+1}", True),
    ("\\frac{1}{x}+\\frac{1}{y}", r"\boxed{\frac{x+y}{xy}}", True),
    ("\\sin^2 x + \\cos^2 x", r"\boxed{1}", True),
    ("\\sin(2x)", r"\boxed{2\sin x \cos x}", True),
    ("\\sin(2x)", r"\boxed{2\sin x}", False),
    ("e^{x}e^{y}", r"\boxed{e^{x+y}}", True),
    ("\\sqrt{x^2}", r"\boxed{x}", False),                       # |x|, not x
    ("a+b", r"\boxed{b+a}", True),
    ("a+b", r"\boxed{a+c}", False),
    ("3a", r"\boxed{3b}", False),
    ("x^3-3x^2+3x-1", r"\boxed{(x-1)^3}", True),
    ("x^3-3x^2+3x-1", r"\boxed{(x-1)^2(x+1)}", False),
    ("\\frac{n(n+1)}{2}", r"\boxed{\frac{n^2+n}{2}}", True),
    ("\\frac{n(n+1)}{2}", r"\boxed{\frac{n(n-1)}{2}}", False),
    ("2^{n+1}", r"\boxed{2 \cdot 2^n}", True),
    ("x^{10}", r"\boxed{x^{10}}", True),
    ("(x+1)^{10}", r"\boxed{(1+x)^{10}}", True),
    ("(x+1)^{10}", r"\boxed{x^{10}+1}", False),
    ("(x+1)^{20}", r"\boxed{(1+x)^{20}}", True),
    ("(2x+3)^{5}", r"\boxed{32x^5+240x^4+720x^3+1080x^2+810x+243}", True),     # large values at the points
    ("(2x+3)^{5}", r"\boxed{32x^5+240x^4+720x^3+1080x^2+810x+242}", False),
    ("\\sqrt{2}x^{12}", r"\boxed{x^{12}\sqrt{2}}", True),
    ("\\frac{1}{\\sqrt{x}}", r"\boxed{x^{-1/2}}", True),
    ("6\\sqrt{3}", r"\boxed{\sqrt{108}}", True),
    ("\\sqrt{12}", r"\boxed{2\sqrt{3}}", True),
    ("\\sqrt{12}", r"\boxed{3\sqrt{2}}", False),
])

CONTAINERS = _group("container", [
    ("\\{1,2\\}", r"\boxed{\{2,1\}}", True),
    ("\\{1,2\\}", r"\boxed{\{1,3\}}", False),
    ("\\{1,2\\}", r"\boxed{\{1,2,3\}}", False),
    ("\\{1,2,3\\}", r"\boxed{\{3, 2, 1\}}", True),
    ("\\{1,2\\}", r"\boxed{1, 2}", True),
    ("\\{1,2\\}", r"\boxed{2, 1}", True),
    ("\\{\\frac{1}{2}, 2\\}", r"\boxed{\{2, 0.5\}}", True),
    ("(1,2)", r"\boxed{(1,2)}", True),
    ("(1,2)", r"\boxed{(2,1)}", False),                          # ordered pair
    ("(3,-1)", r"\boxed{(3,-1)}", True),
    ("(3,-1)", r"\boxed{(-1,3)}", False),
    ("(1,2,3)", r"\boxed{(1,2,3)}", True),
    ("(1,2,3)", r"\boxed{(3,2,1)}", False),
    ("(1,2,3)", r"\boxed{(1,2)}", False),
    ("(\\frac{1}{2}, 3)", r"\boxed{(0.5, 3)}", True),
    ("[1,2]", r"\boxed{[1,2]}", True),
    ("[1,2]", r"\boxed{(1,2)}", False),
    ("[1,2)", r"\boxed{[1,2)}", True),
    ("[1,2)", r"\boxed{(1,2]}", False),
    ("(-\\infty, 3]", r"\boxed{(-\infty,3]}", True),
    ("(-\\infty, 3]", r"\boxed{(-\infty,3)}", False),
    ("(0,\\infty)", r"\boxed{(0, \infty)}", True),
    ("[0,\\frac{1}{2}]", r"\boxed{[0, 0.5]}", True),
    ("(1,2) \\cup (3,4)", r"\boxed{(3,4) \cup (1,2)}", True),
    ("(1,2) \\cup (3,4)", r"\boxed{(1,2) \cup (3,5)}", False),
    ("(-\\infty,1) \\cup (2,\\infty)", r"\boxed{(-\infty,1)\cup(2,\infty)}", True),
    ("\\emptyset", r"\boxed{\emptyset}", True),
    ("\\emptyset", r"\boxed{\varnothing}", True),
    ("x > 2", r"\boxed{(2, \infty)}", True),
    ("x \\ge 2", r"\boxed{[2, \infty)}", True),
    ("x > 2", r"\boxed{[2, \infty)}", False),
    ("[2, \\infty)", r"\boxed{x \geq 2}", True),
    ("1 < x < 2", r"\boxed{(1,2)}", True),
    ("(1,2)", r"\boxed{1 < x < 2}", True),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}", True),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", r"\boxed{\begin{pmatrix}2\\1\end{pmatrix}}", False),
])

EQUATIONS = _group("equation", [
    ("3", r"\boxed{x = 3}", True),
    ("3", r"\boxed{x=4}", False),
    ("x=3", r"\boxed{3}", True),
    ("x=3", r"\boxed{x=3}", True),
    ("x=3", r"\boxed{y=3}", False),                           # different variable
    ("x=3", r"\boxed{x = 1 + 2}", True),
    ("y=2x+1", r"\boxed{y = 1 + 2x}", True),
    ("y=2x+1", r"\boxed{2x - y + 1 = 0}", True),              # same line
    ("y=2x+1", r"\boxed{y - 2x = 1}", True),
    ("y=2x+1", r"\boxed{4x - 2y + 2 = 0}", True),
    ("y=2x+1", r"\boxed{y = 2x + 3}", False),                 # parallel line
    ("y=2x+1", r"\boxed{y = 3x + 1}", False),                 # another line through (0,1)
    ("2x+3y=6", r"\boxed{y = 2 - \frac{2}{3}x}", True),
    ("2x+3y=6", r"\boxed{3x+2y=6}", False),
    ("x^2+y^2=1", r"\boxed{y^2 + x^2 = 1}", True),
    ("x^2+y^2=1", r"\boxed{x^2+y^2=2}", False),
    ("k=5", r"\boxed{k = 5}", True),
    ("k=5", r"The value is $k=5$.", True),
    ("5", r"Thus $k = 5$.", True),
    ("f(x)=x^2", r"\boxed{f(x) = x^2}", True),
    ("x < 3", r"\boxed{3 > x}", True),
    ("x < 3", r"\boxed{x \le 3}", False),
    ("x \\leq 3", r"\boxed{x \le 3}", True),
    ("x = 1, x = 2", r"\boxed{x = 2 \text{ or } x = 1}", True),
    ("1, 2", r"\boxed{x = 1, x = 2}", True),
    ("\\pm 2", r"\boxed{2, -2}", True),
    ("x = \\pm 2", r"\boxed{x = -2, 2}", True),
    ("6", r"\boxed{x = 2 \cdot 3 = 6}", True),                 # a chain stands for its last value
    ("x=6", r"\boxed{x = 2 \cdot 3 = 6}", True),
    ("x=6", r"\boxed{x = 2 \cdot 3 = 7}", False),
    ("x = 3", r"\boxed{2x = 6}", True),                      # an equivalent equation
    ("x = 3", r"\boxed{x^2 = 9}", False),                    # not equivalent: x = -3 too
])

MULTIPLE = _group("multiple", [
    ("1, 2", r"\boxed{2, 1}", True),
    ("1, 2", r"\boxed{1, 2}", True),
    ("1, 2", r"\boxed{1}", False),
    ("1, 2", r"\boxed{1, 2, 3}", False),
    ("1, 2", r"\boxed{1 \text{ and } 2}", True),
    ("1, 2", "The solutions are 1 and 2, so the answer is 1, 2.", True),
    ("-3, 3", r"\boxed{3,-3}", True),
    ("-3, 3", r"\boxed{\pm 3}", True),
    ("2, 3", r"\boxed{3, 2}", True),
    ("2, 3", r"\boxed{2; 3}", True),
    ("2, 3", r"\boxed{2, 4}", False),
    ("\\frac{1}{2}, 2", r"\boxed{2, 0.5}", True),
    ("1, 1, 2", r"\boxed{1, 2}", True),                       # the gold is a set of solutions
    ("(1,2), (3,4)", r"\boxed{(3,4), (1,2)}", True),
    ("(1,2), (3,4)", r"\boxed{(1,2), (4,3)}", False),
])

TRAPS = _group("trap", [
    ("4", r"\boxed{4\sqrt{2}}", False),
    ("4\\sqrt{2}", r"\boxed{4}", False),
    ("\\frac{1}{2004!}", r"\boxed{\frac{1}{2006!}}", False),
    ("2004!", r"\boxed{2006!}", False),
    ("\\frac{2006!}{2004!}", r"\boxed{2006 \cdot 2005}", True),
    ("y=2x+1", r"\boxed{y=2x-1}", False),
    ("x=3", r"\boxed{y=3}", False),
    ("25\\%", r"\boxed{0.25\%}", False),
    ("25\\%", r"\boxed{2.5}", False),
    ("0.25", r"\boxed{25}", False),
    ("50", r"\boxed{0.5}", False),
    ("12", r"\boxed{12.5}", False),
    ("12", r"\boxed{120}", False),
    ("12", r"\boxed{1.2}", False),
    ("12", r"\boxed{21}", False),
    ("1", r"\boxed{-1}", False),
    ("1", r"\boxed{x}", False),
    ("x", r"\boxed{1}", False),
    ("2", r"\boxed{\sqrt{4}}", True),
    ("2", r"\boxed{\sqrt{2}}", False),
    ("\\sqrt{2}", r"\boxed{2}", False),
    ("\\frac{1}{3}", r"\boxed{3}", False),
    ("\\frac{1}{3}", r"\boxed{\frac{3}{1}}", False),
    ("\\frac{2}{3}", r"\boxed{\frac{3}{2}}", False),
    ("\\pi", r"\boxed{3}", False),
    ("\\pi", r"\boxed{\frac{22}{7}}", False),
    ("e", r"\boxed{2.7}", False),
    ("10", r"\boxed{10^{10}}", False),
    ("100", r"\boxed{10^2}", True),
    ("100", r"\boxed{10^3}", False),
    ("3", r"\boxed{3x}", False),
    ("3x", r"\boxed{3}", False),
    ("x^2", r"\boxed{2x}", False),
    ("(1,2)", r"\boxed{\{1,2\}}", False),
    ("\\{1,2\\}", r"\boxed{\{1,2,2,3\}}", False),
    ("[1,2]", r"\boxed{\{1,2\}}", False),
    ("7", r"\boxed{7 + 0.000001}", False),
    ("7", r"\boxed{7.000001}", False),
    ("1.5", r"\boxed{15}", False),
    ("-5", r"\boxed{5}", False),
    ("42", "The answer is not 42, it is 43. \\boxed{43}", False),
    ("42", "4242", False),
    ("42", r"\boxed{42^2}", False),
    ("42", r"\boxed{4.2 \times 10^{1}}", True),
    ("42", r"\boxed{4.2 \times 10^{2}}", False),
    ("1000", r"\boxed{1,000,001}", False),
    ("1,000", r"\boxed{1, 000}", False),                     # a list, not a thousand
    ("\\frac{1}{2}", r"\boxed{\frac{1}{2}x}", False),
    ("\\frac{1}{2}", r"\boxed{12}", False),
    ("6", r"\boxed{3!}", True),
    ("6", r"\boxed{4!}", False),
])

AWKWARD = _group("awkward", [
    ("18", _LONG_COT + r"Therefore she makes \boxed{18} dollars every day.", True),
    ("18", _LONG_COT + r"Therefore she makes \boxed{\$18} every day.", True),
    ("18", _LONG_COT + r"Therefore she makes $\boxed{18}$ dollars every day. Wait, 7 days: 126.", True),
    ("126", _LONG_COT + "So she makes 18 a day.", False),
    ("9", "16 - 3 - 4 = 9\n\nSo 9 eggs remain. Then 9 * 2 = 18.", False),
    ("18", "16 - 3 - 4 = 9\n\nSo 9 eggs remain. Then 9 * 2 = 18.", True),
    ("5", "Step 1: 2 + 3 = 5\nStep 2: check 5 - 3 = 2\n**Answer: 5**", True),
    ("5", "## Final Answer\n\nThe final answer is $\\boxed{5}$. I hope it is correct.", True),
    ("5", "The answer is: \\boxed{5}", True),
    ("5", "Answer:5", True),
    ("5", "answer = 5", True),
    ("5", "...and so on. The answer is 5. Let me double check: 2 + 3 = 5. Yes.", True),
    ("1/2", "So the probability is $\\frac{1}{2}$.", True),
    ("1/2", "So the probability is 1/2.", True),
    ("0.5", "So the probability is 50%.", True),
    ("-7", "The temperature dropped to \u22127 degrees.", True),
    ("-7", "x = \u22127.", True),
    ("3", "We have $x = 3$.", True),
    ("3", "\\boxed{3}\\boxed{3}", True),
    ("3", "\\boxed{2} is wrong; \\boxed{3}", True),
    ("2", "\\boxed{2} is wrong; \\boxed{3}", False),
    ("100", "The answer is 100 \u2014 exactly.", True),
    ("45", "Answer: **45** apples", True),
    ("8", "I think it's 8!", True),                          # prose: an exclamation mark
    ("8", "The answer is **8**!!", True),
    ("40320", r"\boxed{8!}", True),                          # maths: a factorial
    ("12", "$$\n\\boxed{12}\n$$", True),
    ("12", "\\[\n\\boxed{12}\n\\]", True),
    ("12", "The answer is\n12", True),
    ("0.3", "\\boxed{0.30}", True),
    ("2", "\\boxed{2} (approximately)", True),
    ("5", "Final Answer: The final answer is $5$. I hope it is correct.", True),
    ("1, 2", r"\boxed{1} and \boxed{2}", True),                 # one box per answer: joined into the list
    ("2", r"\boxed{1} and \boxed{2}", False),                   # ... which is not the single answer 2
    ("5", r"\boxed{\text{5 apples}}", True),
    ("5", r"\boxed{}", False),
    ("5", "The answer is $\\boxed{5}$ meters.", True),
    ("2", "x = 2\n\nWait, let me recheck... yes, $x=2$", True),
])

OPTIONS = [
    *_group("opt-reltol", [
        ("100", r"\boxed{100.5}", True),
        ("100", r"\boxed{101}", True),
        ("100", r"\boxed{102}", False),
        ("9.81", r"\boxed{9.8}", True),
        ("\\pi", r"\boxed{3.14}", True),
        ("\\pi", r"\boxed{3.2}", False),
    ], rel_tol=0.01),
    *_group("opt-exact", [
        ("1/3", r"\boxed{0.333333}", False),
        ("1/3", r"\boxed{1/3}", True),
        ("\\sqrt{2}", r"\boxed{1.41421}", False),
        ("0.75", r"\boxed{3/4}", True),
    ], sig_digits=0),
    *_group("opt-sig3", [
        ("1/3", r"\boxed{0.333}", True),
        ("\\pi", r"\boxed{3.14}", True),
        ("\\pi", r"\boxed{3.15}", False),
    ], sig_digits=3),
    *_group("opt-nofallback", [
        ("46", "The sum of 20 and 26 is 46", False),
        ("46", r"\boxed{46}", True),
        ("46", "46", True),
        ("46", "The answer is 46", True),
        ("46", "#### 46", True),
    ], fallback="none"),
]

CASES: list[MathCase] = [*EXTRACTION, *NORMALISATION, *NUMBERS, *SYMBOLIC, *CONTAINERS, *EQUATIONS,
                         *MULTIPLE, *TRAPS, *AWKWARD, *OPTIONS]
DEFAULT_CASES: list[MathCase] = [c for c in CASES if not c.options]
