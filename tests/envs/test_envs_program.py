"""envs/program.py: code extraction from completions and HumanEval-style program assembly."""

from __future__ import annotations

import doctest

import pytest

import envs.program
from envs.program import ProgramVerifier, assemble, defines, extract_code
from verifiers import Task, VerifierError

PROMPT = 'from typing import List\n\n\ndef helper(x):\n    return x\n\n\ndef f(xs: List[int]) -> int:\n    """Sum."""\n'


def test_doctests():
    assert doctest.testmod(envs.program).failed == 0


@pytest.mark.parametrize("completion, code", [
    ("```python\ndef f(x):\n    return 1\n```", "def f(x):\n    return 1\n"),
    ("```\nprint(1)\n```", "print(1)\n"),
    ("```py\nx = 1\n```\ntrailing prose", "x = 1\n"),
    ("```Python3\nx = 2\n```", "x = 2\n"),
    ("```python title=sol.py\nx = 3\n```", "x = 3\n"),
    ("Plan:\n```python\nimport os\n```\nThen:\n```python\ndef f(x):\n    return 2\n```", "def f(x):\n    return 2\n"),
    ("```python\nimport os\n```\n```python\nimport sys\n```", "import os\n"),         # none defines f: first
    ("```bash\nls\n```\n```python\ndef g(): 0\n```", "def g(): 0\n"),                  # python preferred
    ("```bash\nls -l\n```", "ls -l\n"),                                                  # only a foreign block
    ("```python\ndef f(x):\n    return 3", "def f(x):\n    return 3"),                  # unclosed fence
    ("    return sum(xs)\n", "    return sum(xs)\n"),                                   # raw continuation
    ("", ""),
    ("no code at all", "no code at all"),
])
def test_extract_code(completion, code):
    assert extract_code(completion, "f") == code


@pytest.mark.parametrize("code, expected", [
    ("def f(x): pass", True), ("async def f(x): pass", True), ("x = 1\ndef f (x):\n  pass", True),
    ("    def f(x): pass", False), ("def fx(x): pass", False), ("f = lambda x: x", False), ("# def f(x)", False),
])
def test_defines(code, expected):
    assert defines(code, "f") is expected


def test_assemble_continues_a_body():
    program = assemble(PROMPT, "    return sum(xs)\n", "f")
    assert program == PROMPT + "    return sum(xs)\n"
    assert compile(program, "<p>", "exec")


def test_assemble_redefinition_keeps_the_prompt_imports_and_helpers():
    code = "def f(xs):\n    return helper(sum(xs))\n"
    program = assemble(PROMPT, code, "f")
    assert program.startswith("from typing import List") and program.endswith(code)
    namespace: dict = {}
    exec(compile(program, "<p>", "exec"), namespace)  # our own code: the stub is replaced
    assert namespace["f"]([1, 2, 3]) == 6


def test_assemble_program_mode_is_the_code_alone():
    assert assemble(PROMPT, "def f(xs): return 0\n", "f", mode="program") == "def f(xs): return 0\n"


def test_program_verifier_builds_the_program_from_the_task():
    task = Task(id="t", prompt="Write f, please.", tests={"kind": "assert", "code": "", "entry_point": "f"},
                meta={"code_prompt": PROMPT})
    completion = "Here:\n```python\ndef f(xs):\n    return 0\n```"
    assert ProgramVerifier("continue").program(completion, task) == assemble(PROMPT, "def f(xs):\n    return 0\n", "f")
    assert ProgramVerifier("program").program(completion, task) == "def f(xs):\n    return 0\n"


def test_program_verifier_rejects_unknown_modes():
    with pytest.raises(VerifierError, match="continue"):
        ProgramVerifier("concat")
