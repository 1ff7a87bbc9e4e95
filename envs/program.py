"""From a model's completion to the program the `code` verifier runs (the environment's job).

The `code` verifier runs a *program* against `Task.tests`; a completion is not yet one.
Code environments turn it into one in two steps, each a pure function:

1. `extract_code` — the code inside markdown fences when there are any (the first
   python-or-unlabelled block that defines the entry point, else the first such block, else
   the first block of any language; an unclosed fence, as in a truncated generation, runs to
   the end), otherwise the raw completion unchanged (a base model continuing a prompt).
2. `assemble` — with `mode="continue"` (HumanEval), the task's prompt (imports, helper
   functions, the signature and docstring) comes first. If the extracted code defines the
   entry point itself, it follows the prompt as a full redefinition (the prompt's stub,
   which has a docstring for a body, is valid Python and is simply replaced); otherwise it
   is the body that continues the prompt, indentation kept. With `mode="program"` (MBPP,
   the synthetic task's instruct style) the extracted code is the whole program.

`ProgramVerifier` applies both and hands the program to the registered `code` verifier;
`info["program"]` shows what ran.
"""

from __future__ import annotations

import re

from verifiers import Task, Verdict, Verifier, get_verifier
from verifiers.base import VerifierError, check_batch

MODES = ("continue", "program")
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_LABELS = {"", "python", "py", "python3", "py3"}


def defines(code: str, name: str) -> bool:
    """Whether `code` defines the function `name` at top level.

    >>> defines("def f(x):\\n    return 1", "f"), defines("    def f(x): pass", "f"), defines("def ff(): 0", "f")
    (True, False, False)
    """
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def extract_code(completion: str, entry_point: str | None = None) -> str:
    """The code of a completion: from markdown fences when present, else the raw text.

    >>> extract_code("Sure:\\n```python\\ndef f(x):\\n    return x\\n```\\nDone.")
    'def f(x):\\n    return x\\n'
    >>> extract_code("    return x + 1\\n")
    '    return x + 1\\n'
    >>> extract_code("```python\\ndef f(x):\\n    return 2 * x")   # truncated: no closing fence
    'def f(x):\\n    return 2 * x'
    """
    blocks = _FENCE.findall(completion)
    if not blocks:
        return completion
    python = [body for lang, body in blocks if lang.lower() in _PYTHON_LABELS]
    if entry_point is not None:
        for body in python:
            if defines(body, entry_point):
                return body
    return python[0] if python else blocks[0][1]


def assemble(prompt: str, code: str, entry_point: str | None, mode: str = "continue") -> str:
    """The program to run for extracted `code` (see the module docstring).

    >>> print(assemble("def f(x):\\n    'Double.'\\n", "    return 2 * x\\n", "f"), end="")
    def f(x):
        'Double.'
        return 2 * x
    """
    if mode == "program":
        return code
    if entry_point is not None and defines(code, entry_point):
        return f"{prompt.rstrip()}\n\n\n{code}"
    return prompt + code


class ProgramVerifier(Verifier):
    """Extracts and assembles the program, then runs it through the `code` verifier."""

    name = "code"

    def __init__(self, mode: str = "continue", code_options: dict | None = None):
        if mode not in MODES:
            raise VerifierError(f"program mode {mode!r} is not one of {list(MODES)}")
        self.mode, self.code_options = mode, dict(code_options or {})
        # Built now (cheap: its sandbox pool starts on first use), so a bad option fails here and
        # run manifests record the limits in force, defaults included.
        self.code: Verifier = get_verifier("code", **self.code_options)

    def program(self, completion: str, task: Task) -> str:
        entry_point = (task.tests or {}).get("entry_point")
        prompt = task.meta.get("code_prompt", task.prompt if isinstance(task.prompt, str) else "")
        return assemble(prompt, extract_code(completion, entry_point), entry_point, self.mode)

    def verify(self, completion: str, task: Task) -> Verdict:
        return self._with_program(self.code.verify(program := self.program(completion, task), task), program)

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        check_batch(completions, tasks)
        programs = [self.program(c, t) for c, t in zip(completions, tasks)]
        return [self._with_program(v, p) for v, p in zip(self.code.verify_batch(programs, tasks), programs)]

    @staticmethod
    def _with_program(verdict: Verdict, program: str) -> Verdict:
        return Verdict(verdict.reward, verdict.passed, {**verdict.info, "program": program})

    def warm_up(self) -> None:
        self.code.warm_up()

    def close(self) -> None:
        self.code.close()
