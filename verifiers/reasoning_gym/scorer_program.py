"""The program that scores answers inside the sandbox: reasoning-gym's `score_answer`, behind a code gate.

The `reasoning_gym` verifier sends this file's text as an `io` program to a sandbox whose fork
server has reasoning-gym imported already (standard library and reasoning-gym only: nothing
of our package is visible there). It reads one JSON request on stdin,

    {"items": [{"dataset": name, "config": {...}, "entry": wire, "answer": str | null}, ...],
     "time_limit": CPU seconds per answer, "budget": CPU seconds after which no answer starts}

builds each generator's scorer once (`DATASETS[name]` with the task's config), and writes one
JSON line per answer on fd 3 (the result channel; the scorers' own prints go to stdout):
`{"i": k, "score": x}`, `{"i": k, "refused": why}` (the gate below), `{"i": k, "exc": name,
"msg": text}`, `{"i": k, "timeout": true}` or `{"i": k, "bad": what}`; then `{"stop": why}`
where it ended early. The process ends after any answer whose scoring did not return normally.

The gate: an audit hook (`sys.addaudithook`, which nothing can remove) sees every code object
before the interpreter runs it (`exec` events: `eval`, `exec`, `compile`d strings; and
functions built at run time). It lets through module code from files (the read-only installed
packages, imported lazily), `from sympy import *` (which SymPy's parser runs on every call),
code SymPy generates from its own templates (`CODEGEN`), and *inert* code: straight-line
expressions of constants, operators, containers and subscripts, whose only names are, inside
SymPy's `parse_expr`, SymPy's number and elementary-function constructors and one-letter
symbols the scorer bound (see `INERT_*`). Inert code reads no attribute, binds no name,
imports nothing, defines nothing and cannot loop, so scoring an answer runs only the
libraries' own code on values built from the answer; any string those libraries evaluate in
turn meets the same gate. A name inert code may not load (`oracle_answer`, or any word: the
Python scorers `eval` the answer in their own scope) behaves as undefined, a `NameError`,
which the scorer handles as it handles any answer it cannot read. Anything else -- a call of
`__import__`, an attribute, a lambda -- is refused before it runs: the hook raises `Refused`
(a BaseException, so `except Exception` in a scorer does not hide it) and records it, and the
answer's verdict is `error`. The gate also refuses pickle, ctypes, processes and sockets. So no
answer runs code of its own, and none can change how a later one is scored (the verifier also
starts a fresh process after any answer that did not end normally).
"""

from __future__ import annotations

import dis
import json
import os
import random
import resource
import signal
import sys

# Opcodes of straight-line expressions over constants (CPython 3.10-3.13 names): no attribute,
# store, import, function definition or backward jump.
INERT_OPS = frozenset({
    "RESUME", "NOP", "CACHE", "EXTENDED_ARG", "RETURN_VALUE", "RETURN_CONST", "POP_TOP", "COPY", "SWAP",
    "LOAD_CONST", "LOAD_NAME", "PUSH_NULL", "PRECALL", "CALL", "CALL_KW", "KW_NAMES", "CALL_FUNCTION",
    "CALL_FUNCTION_KW", "BINARY_OP", "UNARY_NEGATIVE", "UNARY_POSITIVE", "UNARY_INVERT", "UNARY_NOT",
    "CALL_INTRINSIC_1", "BUILD_LIST", "BUILD_TUPLE", "BUILD_SET", "BUILD_MAP", "BUILD_CONST_KEY_MAP",
    "BUILD_SLICE", "LIST_EXTEND", "LIST_TO_TUPLE", "SET_UPDATE", "DICT_UPDATE", "BINARY_SUBSCR", "BINARY_SLICE",
    "COMPARE_OP", "IS_OP", "CONTAINS_OP", "TO_BOOL", "JUMP_FORWARD", "POP_JUMP_FORWARD_IF_FALSE",
    "POP_JUMP_FORWARD_IF_TRUE", "JUMP_IF_FALSE_OR_POP", "JUMP_IF_TRUE_OR_POP",
})
# Names inert code may load inside SymPy's parser (which maps every other name to Symbol('name')):
# constructors of numbers and symbols, constants, and elementary functions. Each only builds an
# expression; a string argument is parsed again, through this gate.
INERT_SYMPY = frozenset({
    "Integer", "Float", "Rational", "Symbol", "Number", "Add", "Mul", "Pow", "Eq", "Abs", "sign", "sqrt", "root",
    "cbrt", "exp", "log", "ln", "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "acot", "atan2",
    "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "floor", "ceiling", "factorial", "binomial", "gamma",
    "Min", "Max", "pi", "E", "I", "oo", "zoo", "nan",
})
SYMPY_PARSER = "sympy.parsing.sympy_parser"
REFUSED_EVENTS = ("pickle.find_class", "ctypes.", "os.system", "os.exec", "os.spawn",
                  "os.posix_spawn", "os.fork", "os.forkpty", "subprocess.Popen", "pty.spawn", "socket.",
                  "sys.settrace", "sys.setprofile", "code.__new__")
RESULT_FD = 3


class Refused(BaseException):
    """The gate refused to run code (raised inside the scorer, recorded by the hook)."""


class OverTime(BaseException):
    """The answer's CPU time ran out (raised by the SIGXCPU handler, recorded in `Gate.overtime`)."""


def _snippet(source: str) -> tuple:
    code = compile(source, "<string>", "exec")
    return code.co_code, code.co_consts, code.co_names


KNOWN = frozenset({_snippet("from sympy import *")})  # what parse_expr runs before each parse
# Functions that generate and run code from their library's own templates, never from their input.
CODEGEN = frozenset({("sympy.polys.monomials", "_build")})  # monomial arithmetic for n generators


def check(code, names: frozenset) -> tuple[str, str] | None:
    """None when `code` is inert with names from `names`; ("undefined", name) when its only fault
    is loading another name (no call); else ("refused", why)."""
    if any(type(c) is type(code) for c in code.co_consts):
        return "refused", "it defines a function, lambda or comprehension"
    raw = code.co_code  # (opcode, argument) byte pairs; quicker to scan than dis.get_instructions
    used = {dis.opname[op] for op in raw[::2]}
    ops, extra = sorted(used - INERT_OPS), sorted(set(code.co_names) - names)
    if ops:
        return "refused", f"it uses {', '.join(ops)}" + (f" and names {', '.join(extra)}" if extra else "")
    if extra and any("CALL" in op for op in used):
        return "refused", f"it calls or names {', '.join(extra)}"
    return ("undefined", extra[0]) if extra else None


def review(code, frame) -> tuple[str, str] | None:
    """The gate's decision on `code`, about to run from `frame` (see `check`)."""
    filename = code.co_filename
    if filename.startswith("<frozen ") or (os.path.isabs(filename) and os.path.isfile(filename)):
        return None  # a module of the standard library or of the installed packages, imported now
    caller = frame.f_globals.get("__name__", "")
    if (code.co_code, code.co_consts, code.co_names) in KNOWN or (caller, frame.f_code.co_name) in CODEGEN:
        return None
    names = INERT_SYMPY | {n for n in code.co_names if len(n) == 1 and n.isascii() and n.isalpha()} \
        if caller == SYMPY_PARSER else frozenset()
    return check(code, names)


class Gate:
    """The audit hook (see the module docstring). A name inert code may not load behaves as
    undefined (`NameError`, as for any unknown word: the scorer's own handling applies; listed in
    `undefined`); everything else it refuses raises `Refused` (listed in `refusals`)."""

    def __init__(self):
        self.refusals: list[str] = []
        self.undefined: list[str] = []
        self.overtime = False

    def on_cpu_limit(self, signum, frame):
        self.overtime = True
        raise OverTime()

    def __call__(self, event: str, args: tuple) -> None:
        if event in ("exec", "function.__new__"):
            if type(args[0]).__name__ != "code":
                return
            decision = review(args[0], sys._getframe(1))
            if decision is None:
                return
            kind, why = decision
            if kind == "undefined":
                self.undefined.append(why)
                raise NameError(f"name {why!r} is not defined")
            self.refuse(f"code from the answer ({why})")
        elif event.startswith(REFUSED_EVENTS):
            self.refuse(f"the audit event {event}")

    def refuse(self, why: str):
        self.refusals.append(why)
        raise Refused(why)


def say(line: dict) -> None:
    data = (json.dumps(line) + "\n").encode()
    while data:
        data = data[os.write(RESULT_FD, data):]


def build_scorers(items: list, datasets: dict) -> dict:
    """(name, config) -> the generator's dataset object, or the exception that building raised."""
    scorers = {}
    for item in items:
        key = json.dumps([item["dataset"], item["config"]], sort_keys=True)
        if key not in scorers:
            try:
                dataset_cls, config_cls = datasets[item["dataset"]]
                scorers[key] = dataset_cls(config=config_cls(**item["config"]))
            except Exception as exc:  # noqa: BLE001 - reported for each of its answers
                scorers[key] = exc
    return scorers


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def score_one(scorer, item: dict, gate: Gate, limit: float) -> dict:
    """One answer: the scorer's float, or what went wrong. A Python-level loop ends at `limit`
    CPU seconds (SIGXCPU at the soft limit); C-level work runs to the request's hard limit."""
    random.seed(0)  # a scorer that draws from the global generator sees the same state every time
    gate.undefined.clear()
    soft = int(_cpu() + limit) + 1
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    try:
        score = scorer.score_answer(item["answer"], item["entry"])
    except BaseException as exc:  # noqa: BLE001 - the scorer's failure is this answer's verdict
        score = exc
    # Flags first: a scorer that catches everything (`except:`) has returned a float by now.
    if gate.refusals:
        return {"refused": gate.refusals[0]}
    if gate.overtime:
        return {"timeout": True}
    if isinstance(score, BaseException):
        return {"exc": type(score).__name__, "msg": str(score)[:500]}
    if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score or abs(score) == float("inf"):
        return {"bad": f"score_answer returned {type(score).__name__} {str(score)[:80]}"}
    return {"score": float(score), **({"undefined": gate.undefined[:5]} if gate.undefined else {})}


def main() -> None:
    request = json.loads(sys.stdin.read())
    import _sandbox_wire as wire  # loaded by the sandbox's fork server
    from reasoning_gym.factory import DATASETS

    items = request["items"]
    for item in items:
        item["entry"] = wire.decode(item["entry"])
    scorers = build_scorers(items, DATASETS)
    gate = Gate()
    signal.signal(signal.SIGXCPU, gate.on_cpu_limit)
    sys.addaudithook(gate)
    for i, item in enumerate(items):
        if i and _cpu() > request["budget"]:
            say({"stop": "budget"})
            return
        scorer = scorers[json.dumps([item["dataset"], item["config"]], sort_keys=True)]
        if isinstance(scorer, Exception):
            result = {"exc": type(scorer).__name__, "msg": f"building the scorer failed: {str(scorer)[:400]}",
                      "unbuildable": True}
        else:
            result = score_one(scorer, item, gate, request["time_limit"])
        say({"i": i, **result})
        if "score" not in result:
            say({"stop": "abnormal"})
            return


if __name__ == "__main__":
    main()
