"""`synthetic_code`: "write `f(x)` that returns 3*x+1" — a code task small enough for a tiny model.

Offline: the functions are integer polynomials (`data.functions`; degree 1 and coefficients
in [-9, 9] by default: 276 train / 66 test functions, split by a hash of the function so
the splits never share one). Each task is a `call` test for the sandboxed `code` verifier:
`f` is called on seven fixed inputs and the return values are compared in the parent process.

`spec` says how the function is described: `formula` states it (`f(x) = 3*x+1`), `examples`
shows its values at 0, 1, 2 (and 3 for quadratics) and the model has to infer it.
Styles: `bare` (default) ends the prompt inside the function, `...def f(x):\\n    return `,
so the completion is just an expression such as `3*x+1` (prompt + completion is the
program; `alphabet` lists the characters used); `instruct` asks for the function in a
fenced block, the whole program.
"""

from __future__ import annotations

from data.functions import INPUTS, Function, functions
from envs.base import EnvError, Environment, option, register_env
from envs.program import ProgramVerifier
from verifiers import Task, Verifier

STYLES = ("bare", "instruct")
SPECS = ("formula", "examples")
BARE_TEMPLATE = "# {description}\ndef f(x):\n    return "


@register_env("synthetic_code")
class SyntheticCodeEnv(Environment):
    """Write f(x) for a small integer polynomial (offline; `call` tests in the sandbox)."""

    alphabet = "".join(sorted(set(BARE_TEMPLATE.replace("{description}", "") + "f(x)=,-+*0123456789 ")))
    stop = ("\n",)

    degree: int = option(1, "degree of the polynomials (1: 3*x+1, 2: x*x-2*x+5)")
    max_coef: int = option(9, "coefficients lie in [-max_coef, max_coef]")
    spec: str = option("formula", "'formula' (state f) or 'examples' (show values, infer f)")
    style: str = option("bare", "'bare' (complete `return `) or 'instruct' (fenced function)")
    train_size: int | None = option(None, "at most this many train functions (None: all)")
    test_size: int | None = option(None, "at most this many test functions (None: all)")
    test_fraction: float = option(0.2, "share of the functions reserved for the test split")
    code_options: dict = option({}, "options of the `code` verifier (limits)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, choices in (("style", STYLES), ("spec", SPECS)):
            if getattr(self, key) not in choices:
                raise EnvError(f"option {key}={getattr(self, key)!r} is not one of {list(choices)}")
        if self.degree not in (1, 2, 3):
            raise EnvError(f"option degree must be 1, 2 or 3, got {self.degree!r}")
        if isinstance(self.max_coef, bool) or not isinstance(self.max_coef, int) or not 1 <= self.max_coef <= 99:
            raise EnvError(f"option max_coef must be an int in 1..99, got {self.max_coef!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise EnvError(f"option test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if self.style == "bare":
            self.demo_separator = ""
        else:
            self.stop = ()

    def load_tasks(self, split: str) -> list[Task]:
        size = self.test_size if split == "test" else self.train_size
        chosen = functions(split, self.degree, self.max_coef, self.seed, self.test_fraction, size)
        return [self._task(split, i, f) for i, f in enumerate(chosen)]

    def describe(self, fn: Function) -> str:
        if self.spec == "formula":
            return f"f(x) = {fn.expression}"
        return ", ".join(f"f({x}) = {fn(x)}" for x in range(self.degree + 2))

    def _task(self, split: str, index: int, fn: Function) -> Task:
        if self.style == "bare":
            prompt = BARE_TEMPLATE.format(description=self.describe(fn))
        else:
            what = f"returns {fn.expression}" if self.spec == "formula" else \
                f"computes an integer polynomial of degree {self.degree} in x with {self.describe(fn)}"
            prompt = f"Write a Python function `f(x)` that {what}. Reply with the function in a ```python code block."
        tests = {"kind": "call", "entry_point": "f", "cases": [{"args": [x], "expected": fn(x)} for x in INPUTS]}
        return Task(id=f"synthetic_code/{split}/{index}", prompt=prompt, answer=fn.expression, tests=tests,
                    meta={"code_prompt": prompt if self.style == "bare" else ""})

    def demonstration(self, task: Task) -> str:
        if self.style == "bare":
            return task.answer
        return f"```python\ndef f(x):\n    return {task.answer}\n```"

    def format_options(self) -> dict:
        if self.style == "bare":
            return {"pattern": r"[-+*x0-9 ()]+", "fullmatch": True}
        return {"pattern": r"```(?:python|py)?\n.*?```", "fullmatch": False}

    def correctness_verifier(self) -> Verifier:
        return ProgramVerifier("continue" if self.style == "bare" else "program", self.code_options)
