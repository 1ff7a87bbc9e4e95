"""`mbpp`: Mostly Basic Python Problems (Austin et al., 2021), the sanitized subset by default.

Loaded with `datasets` from `google-research-datasets/mbpp`, config `sanitized` (427
hand-verified problems: train 120 / validation 43 / test 257 / prompt 7); the `full` config
loads too. Offline, pass a local copy with `path` or `data_files` (see `data.hub`).

Each task is an `assert` test for the sandboxed `code` verifier: `code` holds the row's
`test_imports` and a `check(candidate)` whose body is the row's `test_list`, and
`entry_point` is the function those asserts call (the first called name the reference code
defines). The prompt is the problem statement plus the first `show_tests` asserts, which tell
the model the function's name and signature, as in the MBPP paper; the completion is a whole
program, in a fenced block or raw (see `envs.program`). The `code` verifier runs the asserts in
a judge process where the entry point is a proxy whose calls cross to the program as plain
data; asserts that pass objects of a class the solution defines, or call a second function
of it, cannot cross and end in `error` (docs/sandbox.md lists what to expect).
"""

from __future__ import annotations

import ast
import builtins
import textwrap

from data.hub import DataSourceError
from envs.base import EnvError, HubEnvironment, option, register_env
from envs.program import ProgramVerifier
from verifiers import Task, Verifier


def entry_point(tests: list[str], code: str = "") -> str | None:
    """The function the asserts test: the first called name that `code` defines, else the
    first called name that is not a builtin.

    >>> entry_point(["assert set(dedupe([4, 4])) == {4}"], "def dedupe(xs): ...")
    'dedupe'
    >>> entry_point(["assert math.isclose(area(1), 3.14159, rel_tol=1e-3)"])
    'area'
    """
    defined = {n.name for n in ast.walk(_parse(code)) if isinstance(n, ast.FunctionDef)}
    called = [n.func.id for t in tests for n in ast.walk(_parse(t))
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    for name in called:
        if name in defined:
            return name
    return next((n for n in called if not hasattr(builtins, n)), None)


def _parse(source: str) -> ast.AST:
    try:
        return ast.parse(source)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def check_code(tests: list[str], imports: list[str] | str = ()) -> str:
    """A HumanEval-style `check(candidate)` that runs the asserts (which call the function
    by name, so `candidate` itself is unused)."""
    imports = imports.splitlines() if isinstance(imports, str) else list(imports)
    body = "".join(textwrap.indent(t.strip(), "    ") + "\n" for t in tests) or "    pass\n"
    return "\n".join(imports) + "\n\n\ndef check(candidate):\n" + body


@register_env("mbpp")
class MBPPEnv(HubEnvironment):
    """Mostly Basic Python Problems (google-research-datasets/mbpp sanitized; assert tests)."""

    splits = ("train", "validation", "test", "prompt")
    fewshot_split = "prompt"
    columns = ("task_id", "code", "test_list")

    path: str = option("google-research-datasets/mbpp", "hub id, local folder (a clone), or one local data file")
    config: str | None = option("sanitized", "'sanitized' (427 problems) or 'full' (974)")
    show_tests: int = option(1, "asserts shown in the prompt (they name the function)")
    code_options: dict = option({}, "options of the `code` verifier (limits)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.show_tests, bool) or not isinstance(self.show_tests, int) or self.show_tests < 0:
            raise EnvError(f"option show_tests must be an int >= 0, got {self.show_tests!r}")

    def row_task(self, row: dict, split: str, index: int) -> Task:
        text = row.get("prompt") or row.get("text")  # sanitized has `prompt`, full has `text`
        imports = row.get("test_imports") or row.get("test_setup_code") or []
        name = entry_point(row["test_list"], row["code"])
        if not text or name is None:
            raise DataSourceError(f"mbpp {split} row {index} (task_id {row['task_id']}): "
                                  "no problem statement or no function called by test_list")
        shown = "\n".join(row["test_list"][:self.show_tests])
        prompt = text + (f"\nYour code should pass these tests:\n\n{shown}" if shown else "")
        tests = {"kind": "assert", "code": check_code(row["test_list"], imports), "entry_point": name}
        return Task(id=f"mbpp/{row['task_id']}", prompt=prompt, answer=row["code"], tests=tests,
                    meta={"problem": text})

    def demonstration(self, task: Task) -> str:
        return f"```python\n{task.answer}\n```"

    def format_options(self) -> dict:
        return {"pattern": r"```(?:python|py)?\n.*?```", "fullmatch": False}

    def correctness_verifier(self) -> Verifier:
        return ProgramVerifier("program", self.code_options)
