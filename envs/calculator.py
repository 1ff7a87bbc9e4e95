"""`calculator`: arithmetic too hard to do in one's head, easy with the calculator tool.

Problems from `data.calculator_problems`: a 3-digit times 2-digit product, alone or with a
3-digit number added or subtracted (`482*67+315`). The model may call the `calculator` tool, in
plain text `<calc>482*67+315</calc>`, and reads `<result>32609</result>` before it answers.
The `bare` style (the built-in tiny model's) gives the prompt `482*67+315=` and expects the
answer alone after the last result:

    482*67+315=<calc>482*67+315</calc><result>32609</result>32609

The `instruct` style asks in words for the answer in `\\boxed{}` and suits chat models, whose
calls go through the tokenizer's tool template. The verifier is `math` on the model's last
turn (the answer after the last tool result); an episode that ends with a call unanswered
(`max_turns`, budget) fails.

Difficulty (`envs.difficulty`): `difficulty=k` climbs the first k steps of `ladder` from the
options as given: `big_digits` or `small_digits` raised by one, or a form added. The default
ladder alternates the multiplier and the large operands, so from the defaults level 1 is
`482*671+315`, level 2 `4821*671+3150`, up to level 4's five-digit by four-digit products.
Level 0 is the options as given, with today's ids; level k's ids read
`calculator/levelK/<split>/<i>`; a problem's split is a hash of its expression at every level.

`demonstration_episode(task)` plays the correct episode through the real episode loop (the
warm start's data: its segments say which characters are observations, to mask out of the
loss); `demonstration(task)` is its text after the prompt. `alphabet` holds every character
of bare prompts and demonstrations: the digits and `+-*=` of the problems and the letters
and `</>` of the tool syntax.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator

from data.calculator_problems import FORMS, calculator_problems
from envs.base import EnvError, option, register_env
from envs.difficulty import add_to, climb, difficulty_option, level_task_id, raise_int, resolve_level
from envs.multiturn import Context, Episode, run_episode
from envs.tool_env import ToolEnvironment
from envs.tools.syntax import RESULT_CLOSE, RESULT_OPEN
from verifiers import Task, Verifier, get_verifier

STYLES = ("bare", "instruct")
PROBLEM_OPTIONS = ("forms", "big_digits", "small_digits")
LADDER_STEPS = {"big_digits": raise_int("big_digits", 9), "small_digits": raise_int("small_digits", 9),
                **{form: add_to("forms", form) for form in FORMS}}


@register_env("calculator")
class CalculatorEnv(ToolEnvironment):
    """Large products and mixed arithmetic, solved with a calculator tool (multi-turn)."""

    tool_names = ("calculator",)
    # Per model turn: a call `<calc>482*67+315</calc>` is 24 characters (tokens for the tiny model).
    default_max_new_tokens: ClassVar[int] = 32

    forms: list = option(["mul", "mul_add", "mul_sub"], f"problem forms, among {sorted(FORMS)}")
    big_digits: int = option(3, "digits of the large operands")
    small_digits: int = option(2, "digits of the multiplier")
    style: str = option("bare", "'bare' (prompt '482*67=', answer alone) or 'instruct' (words, \\boxed{})")
    train_size: int | None = option(5000, "distinct train problems; None = an endless stream")
    test_size: int = option(200, "distinct test problems")
    test_fraction: float = option(0.1, "share of the problem space reserved for the test split")
    max_turns: int = option(3, "model turns per episode")
    difficulty: Any = difficulty_option()
    ladder: list = option(["small_digits", "big_digits", "small_digits", "big_digits"],
                          "difficulty levels above 0, each a step up from the one below: big_digits, small_digits "
                          "(raised by one) or a form (added)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.style not in STYLES:
            raise EnvError(f"option style={self.style!r} is not one of {list(STYLES)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise EnvError(f"option test_fraction must be in (0, 1), got {self.test_fraction!r}")
        for key, value in (("train_size", self.train_size), ("test_size", self.test_size)):
            if not (value is None and key == "train_size") and (isinstance(value, bool) or not isinstance(value, int)
                                                                 or value < 1):
                raise EnvError(f"option {key} must be a positive int, got {value!r}")
        self.level = resolve_level(self.difficulty, len(self.ladder) + 1 if isinstance(self.ladder, list) else 1)
        given = {name: getattr(self, name) for name in PROBLEM_OPTIONS}
        try:  # checks forms and digits now (of every level), not at the first draw
            for options in (given, climb(given, self.ladder, len(self.ladder), LADDER_STEPS)):
                next(calculator_problems("test", 0, 0.5, 1, tuple(options["forms"]), options["big_digits"],
                                         options["small_digits"]))
            self.problem_options = climb(given, self.ladder, self.level or 0, LADDER_STEPS)
        except (ValueError, TypeError) as exc:
            raise EnvError(str(exc)) from None
        operators = {c for f in self.problem_options["forms"] for c in FORMS[f][0] if c in "+-*"}
        syntax = "".join(f"<{t}></{t}>" for t in self.plain_syntax.tags) + RESULT_OPEN + RESULT_CLOSE
        self.alphabet = "".join(sorted(set("0123456789=-" + syntax) | operators)) + ("\n" if self.few_shot else "")
        if self.style == "bare":  # demonstrations read "12*34=<calc>..." per line
            self.separator, self.demo_separator = "\n", ""

    @property
    def difficulty_levels(self) -> int:
        return len(self.ladder) + 1

    def load_tasks(self, split: str) -> list[Task] | Iterator[Task]:
        size = self.test_size if split == "test" else self.train_size
        level, p = self.level or None, self.problem_options  # level 0 is the options as given: today's ids
        stream = (Task(id=level_task_id("calculator", level, split, i), prompt=self.prompt(x.expression),
                       answer=x.answer, meta={"expression": x.expression, "steps": list(x.steps)})
                  for i, x in enumerate(calculator_problems(split, self.seed, self.test_fraction, size,
                                                            tuple(p["forms"]), p["big_digits"], p["small_digits"])))
        return stream if size is None else list(stream)

    def prompt(self, expression: str) -> str:
        if self.style == "bare":
            return expression + "="
        spaced = "".join(f" {c} " if c in "+-*" else c for c in expression)
        return (f"Compute {spaced}. You may use the calculator tool. "
                "Give the final answer, an integer, in \\boxed{}.")

    def answer_text(self, answer: str) -> str:
        return answer if self.style == "bare" else f"The answer is \\boxed{{{answer}}}."

    def demonstration_episode(self, task: Task) -> Episode:
        """The correct plain-text episode, played through the episode loop: one call with
        the task's expression, then the answer."""
        tag = self.toolbox["calculator"].tag

        def policy(context: Context) -> str:
            if context.turn == 0:
                return f"<{tag}>{task.meta['expression']}</{tag}>"
            return self.answer_text(task.answer)

        return run_episode(self, task, policy)

    def demonstration(self, task: Task) -> str:
        return self.demonstration_episode(task).completion

    def format_options(self) -> dict:
        if self.style == "bare":
            return {"pattern": r"-?\d+", "fullmatch": True}
        return super().format_options()

    def correctness_verifier(self) -> Verifier:
        return get_verifier("math")
