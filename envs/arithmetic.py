"""`arithmetic`: generated integer and fraction arithmetic, the default environment of the suite.

Offline and deterministic given `seed` (problems from `data.arithmetic_problems`). The
defaults are the calibrated demo of the embedded GRPO run: two two-digit operands with `+` and `-`,
prompts in the `bare` style, exactly `12+34=`, and the expected completion just the answer,
`46`. Bare prompts and answers use only the characters of `alphabet` (`0123456789+-*/=`,
plus `()` with `multi_step` and `\\n` between few-shot examples), so a character-level
tokenizer covers them. The `instruct` style asks in words for the answer in `\\boxed{}`, for
real LLMs (and, with `multi_step`, for one `expression = value` step per line, the shape the
`arithmetic_steps` process verifier checks).

Splits: `test` holds `test_size` distinct problems (300 by default) and `train` holds
`train_size` distinct ones (5,000 by default), or an endless stream of random problems when
`train_size=None`. Which split a problem belongs to depends on its printed expression only
(a hash, `test_fraction` of the problem space goes to test), so the splits never share a
problem, whatever the seed. A split of a small problem space (one digit, few operators) may
hold fewer problems than asked.

Difficulty (`envs.difficulty`): `difficulty=k` climbs the first k steps of `ladder` from the
options as given, each step raising one option: `digits` or `operands` by one, an operator
(`*`, `/`) added, `fractions` or `multi_step` switched on. The default ladder alternates
operands and digits, so from the defaults level 1 is `12+34-56`, level 2 `123+456-789`, level 3
four three-digit operands and level 4 four four-digit ones; bare prompts keep to the
characters of `alphabet` at every level (`multi_step` adds the parentheses). Level 0 is the
options as given, with today's task ids; level k's ids read `arithmetic/levelK/<split>/<i>`.
A problem's split is a hash of its printed expression whatever the level, so no test problem
of any level is a train problem of another.

Answers are exact: integers (`-22`), fractions reduced as `a/b`. Correctness is the `math`
verifier; the format part (weight `format_weight`, 0 by default) checks that a bare completion
is only a number, or that an instruct completion has a `\\boxed{}`.
"""

from __future__ import annotations

from typing import Any, Iterator

from data.arithmetic_problems import ArithmeticSpec, Problem, problems
from envs.base import EnvError, Environment, option, register_env
from envs.difficulty import add_to, climb, difficulty_option, level_task_id, raise_int, resolve_level, switch_on
from verifiers import Task, Verifier, get_verifier

BARE_ALPHABET = "0123456789+-*/="
STYLES = ("bare", "instruct")
SPEC_OPTIONS = ("digits", "operands", "operators", "fractions", "multi_step")
LADDER_STEPS = {"digits": raise_int("digits", 9), "operands": raise_int("operands", 16),
                "*": add_to("operators", "*"), "/": add_to("operators", "/"),
                "fractions": switch_on("fractions"), "multi_step": switch_on("multi_step")}


@register_env("arithmetic")
class ArithmeticEnv(Environment):
    """Generated integer/fraction arithmetic (offline, the default; `12+34=` -> `46`)."""

    alphabet = BARE_ALPHABET

    digits: int = option(2, "digits of each integer operand")
    operands: int = option(2, "operands per problem")
    operators: str = option("+-", "operators to draw from, a string of '+-*/'")
    fractions: bool = option(False, "fraction operands and inexact division (answers 'a/b')")
    multi_step: bool = option(False, "random parenthesised expression trees; instruct asks for one step per line")
    style: str = option("bare", "'bare' (prompt '12+34=', answer '46') or 'instruct' (words, \\boxed{})")
    train_size: int | None = option(5000, "distinct train problems; None = an endless stream")
    test_size: int = option(300, "distinct test problems")
    test_fraction: float = option(0.1, "share of the problem space reserved for the test split")
    audit: bool = option(False, "also score with math-verify and record agreement in info['audit']")
    difficulty: Any = difficulty_option()
    ladder: list = option(["operands", "digits", "operands", "digits"],
                          f"difficulty levels above 0, each a step up from the one below: {sorted(LADDER_STEPS)}")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.style not in STYLES:
            raise EnvError(f"option style={self.style!r} is not one of {list(STYLES)}")
        self.level = resolve_level(self.difficulty, len(self.ladder) + 1 if isinstance(self.ladder, list) else 1)
        given = {name: getattr(self, name) for name in SPEC_OPTIONS}
        try:
            ArithmeticSpec(**given)
            ArithmeticSpec(**climb(given, self.ladder, len(self.ladder), LADDER_STEPS))  # every level is valid
            self.spec = ArithmeticSpec(**climb(given, self.ladder, self.level or 0, LADDER_STEPS))
        except ValueError as exc:
            raise EnvError(str(exc)) from None
        if not 0.0 < self.test_fraction < 1.0:
            raise EnvError(f"option test_fraction must be in (0, 1), got {self.test_fraction!r}")
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if not (value is None and key == "train_size") and not (isinstance(value, int) and value > 0):
                raise EnvError(f"option {key} must be a positive int{' or None' if key == 'train_size' else ''}, "
                               f"got {value!r}")
        if self.style == "bare":  # demonstrations read "12+34=46\n56-7=49\n" + prompt
            self.separator, self.demo_separator = "\n", ""
        self.alphabet = BARE_ALPHABET + ("()" if self.spec.multi_step else "") + ("\n" if self.few_shot else "")

    @property
    def difficulty_levels(self) -> int:
        return len(self.ladder) + 1

    def load_tasks(self, split: str) -> list[Task] | Iterator[Task]:
        size = self.test_size if split == "test" else self.train_size
        stream = (self._task(split, i, p) for i, p in
                  enumerate(problems(self.spec, split, self.seed, self.test_fraction, size)))
        return stream if size is None else list(stream)

    def _task(self, split: str, index: int, problem: Problem) -> Task:
        level = self.level or None  # level 0 is the options as given: today's ids
        return Task(id=level_task_id("arithmetic", level, split, index), prompt=self.prompt(problem.expression),
                    answer=problem.answer, meta={"expression": problem.expression, "steps": list(problem.steps)})

    def prompt(self, expression: str) -> str:
        if self.style == "bare":
            return expression + "="
        spaced = "".join(f" {c} " if c in "+-*/" else c for c in expression)
        ask = f"Compute {spaced}."
        if self.spec.multi_step:
            ask += " Work it out one step per line, each written as `expression = value`."
        shape = "an integer or a reduced fraction a/b" if self.spec.fractions else "an integer"
        return f"{ask} Give the final answer, {shape}, in \\boxed{{}}."

    def demonstration(self, task: Task) -> str:
        if self.style == "bare":
            return task.answer
        steps = "\n".join(s.replace("=", " = ") for s in task.meta["steps"])
        return f"{steps}\nThe answer is \\boxed{{{task.answer}}}."

    def format_options(self) -> dict:
        if self.style == "bare":
            return {"pattern": r"-?\d+(?:/\d+)?", "fullmatch": True}
        return super().format_options()

    def correctness_verifier(self) -> Verifier:
        return get_verifier("math", audit=self.audit)
