"""envs/tools: the calculator's bounds, argument checks, the python tool under hostile
programs beside honest ones, and the plain-text tool-call syntax."""

from __future__ import annotations

import os

import pytest

from envs import get_env
from envs.multiturn import run_episodes
from envs.tools import Calculator, PlainSyntax, ToolCall, call_tool, get_tool, list_tools
from verifiers.code import sandbox as sandbox_mod

needs_bwrap = pytest.mark.skipif(sandbox_mod.bwrap_path() is None, reason="needs bubblewrap (bwrap)")
CALC = {"calculator": Calculator()}


def calc(expression: str) -> ToolCall:
    return call_tool(CALC, "calculator", {"expression": expression}, 1.0)


# --------------------------------------------------------------------------- calculator


@pytest.mark.parametrize("expression, output", [
    ("123*45", "5535"),
    ("482*67+315", "32609"),
    ("315-482*67", "-31979"),
    ("7/2", "7/2"),
    ("1.5*3", "9/2"),                  # decimals are exact: 1.5 is 3/2
    ("2^10", "1024"),                  # ^ is a power, as in the math verifier
    ("2**-2", "1/4"),
    ("12 × 3 ÷ 4", "9"),
    ("-(-(3))", "3"),
    ("(" * 60 + "1" + ")" * 60, "1"),   # as deep as the math verifier parses
    ("10**999", "1" + "0" * 999),       # 1,000 digits: the largest value shown
])
def test_calculator_values(expression, output):
    assert (calc(expression).status, calc(expression).output) == ("ok", output)


@pytest.mark.parametrize("expression, error", [
    ("1/0", "division by zero"),
    ("5/(3-3)", "division by zero"),
    ("0**-1", "power not checked"),
    ("9**9999", "power not checked"),            # refused before it is computed
    ("(10**999)**2", "power not checked"),
    ("10**999*10", "more than 1000 digits"),
    ("2**0.5", "power not checked"),            # not exact: refused, not approximated
    ("1e999", "too large"),                     # a float literal that overflows to inf
    ("(" * 61 + "1" + ")" * 61, "nested deeper than 60"),
    ("-" * 250 + "1", "longer than 200"),
    ("1+" * 150 + "1", "longer than 200"),
    ("", "empty expression"),
    ("12*", "not an arithmetic expression"),
    ("x+1", "not arithmetic"),
    ("__import__('os').system('id')", "not arithmetic"),
    ("(lambda: 1)()", "not arithmetic"),
    ("[1]*10**9", "not arithmetic"),
    ("'a'*10**9", "not arithmetic"),
    ("1 if 1 else 2", "not arithmetic"),
    ("3 > 2", "not arithmetic"),
    ("1j", "not arithmetic"),
])
def test_calculator_refuses_with_a_reason(expression, error):
    call = calc(expression)
    assert call.status == "error" and call.output.startswith("error: ") and error in call.output


def test_calculator_bounds_are_options():
    assert Calculator(max_chars=5).evaluate("2*3") == 6
    assert "longer than 5" in call_tool({"calculator": Calculator(max_chars=5)}, "calculator",
                                        {"expression": "2*3+45"}, 1.0).output
    assert "more than 3 digits" in call_tool({"calculator": Calculator(max_digits=3)}, "calculator",
                                             {"expression": "10**3"}, 1.0).output
    with pytest.raises(ValueError, match="max_chars"):
        Calculator(max_chars=5000)


@pytest.mark.parametrize("name, arguments, error", [
    ("abacus", {"expression": "1"}, "unknown tool 'abacus'"),
    ("calculator", "1+1", "must be an object"),
    ("calculator", {}, "missing ['expression']"),
    ("calculator", {"expression": "1", "mode": "x"}, "unexpected ['mode']"),
    ("calculator", {"expression": 12}, "must be strings"),
])
def test_malformed_calls_are_bad_calls(name, arguments, error):
    call = call_tool(CALC, name, arguments, 1.0)
    assert call.status == "bad_call" and error in call.output


def test_registry():
    assert {"calculator", "python"} <= set(list_tools())
    assert get_tool("calculator").schema()["function"]["parameters"]["required"] == ["expression"]
    with pytest.raises(ValueError, match="known tools: .*calculator"):
        get_tool("abacus")


def test_python_tool_without_bubblewrap_is_refused_at_set_up(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "bwrap_path", lambda: None)
    with pytest.raises(ValueError, match="tool_options: bubblewrap"):
        get_env("calculator", tools=["python"])


@needs_bwrap
def test_a_set_up_error_inside_a_tool_is_raised_not_shown(monkeypatch):
    python = get_tool("python")
    monkeypatch.setattr(sandbox_mod, "bwrap_path", lambda: None)   # the pool is built at the first call
    with pytest.raises(ValueError, match="bubblewrap"):
        call_tool({"python": python}, "python", {"code": "print(1)"}, 1.0)


# --------------------------------------------------------------------------- plain-text syntax


@pytest.mark.parametrize("text, calls", [
    ("<calc>1+2</calc>", [("calculator", {"expression": "1+2"}, None)]),
    ("a<calc>1</calc>b<python>print(1)\nprint(2)</python>", [("calculator", {"expression": "1"}, None),
                                                             ("python", {"code": "print(1)\nprint(2)"}, None)]),
    ("<calc>1<calc>2</calc>", [("calculator", {"expression": "1<calc>2"}, None)]),
    ("<calc>1+2", [("calculator", "<calc>1+2", "never closed")]),
    ("<calc>1</python>", [("calculator", "<calc>1</python>", "never closed")]),
    ("<calc>1</calc><calc>2", [("calculator", {"expression": "1"}, None), ("calculator", "<calc>2", "never closed")]),
    ("<CALC>1</CALC> <foo>1</foo> calc 1+2", []),
    ("", []),
])
def test_plain_syntax_parsing(text, calls):
    syntax = PlainSyntax({"calc": ("calculator", "expression"), "python": ("python", "code")})
    parsed = [(c.name, c.arguments, c.problem and "never closed" in c.problem and "never closed")
              for c in syntax.parse(text)]
    assert parsed == calls
    assert syntax.stop == ("</calc>", "</python>")


def test_plain_syntax_is_linear_on_long_hostile_text():
    syntax = PlainSyntax({"calc": ("calculator", "expression")})
    text = "<calc>" * 20_000 + "1"
    calls = syntax.parse(text)  # milliseconds; a lazy-regex scan would take minutes here
    assert len(calls) == 1 and calls[0].problem == "<calc> is never closed with </calc>"
    assert calls[0].arguments == text


# --------------------------------------------------------------------------- python, in the sandbox


@pytest.fixture(scope="module")
def python_env():
    env = get_env("calculator", tools=["python"], tool_timeout=1, tool_workers=2, test_size=12,
                  tool_options={"python": {"output_chars": 300, "workers": 2}})
    yield env
    env.close()


HERE = os.path.abspath(__file__)
PROGRAMS = [  # (program, status, what the output must contain, what it must not)
    ("print(6*7)", "ok", "42\n", None),
    (f"print(open({HERE!r}).read())", "ok", "FileNotFoundError", "PROGRAMS"),
    ("print(open('/etc/passwd').read())", "ok", "FileNotFoundError", "root:"),
    (f"import os; print(os.listdir({os.path.dirname(HERE)!r}))", "ok", "FileNotFoundError", "test_tools"),
    ("import os; print(os.listdir(os.path.expanduser('~')))", "ok", "[]", None),
    ("import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)", "ok", "OSError", None),
    ("import os\nwhile True:\n    os.fork()", "ok", "[exit code 1]", None),
    ("while True:\n    pass", "timeout", "time limit exceeded (1 s CPU)", None),
    ("print('x' * 10**7)", "ok", "characters cut ...]", "x" * 151),
    ("import sys; print('to stderr', file=sys.stderr); sys.exit(3)", "ok", "to stderr\n\n[exit code 3]", None),
    ("print(sum(range(10**6)))", "ok", "499999500000\n", None),
    ("def f(): f()\nf()", "ok", "RecursionError", None),
    ("x = 1 +", "ok", "SyntaxError", None),
]


@needs_bwrap
@pytest.mark.slow
def test_python_tool_hostile_programs_beside_honest_ones(python_env):
    """One batch of episodes, each calling `python` once then answering: every hostile
    program is contained and shown to the model as output; honest ones print their result."""
    tasks = python_env.tasks("test")[:len(PROGRAMS)]
    code = {t.id: program for t, (program, *_) in zip(tasks, PROGRAMS)}
    episodes = run_episodes(python_env, tasks, lambda cs: [
        f"<python>{code[c.task.id]}</python>" if c.turn == 0 else c.task.answer for c in cs])
    for episode, (program, status, shown, hidden) in zip(episodes, PROGRAMS):
        call = episode.tool_calls[0]
        assert call["status"] == status, (program, call)
        assert shown in call["output"], (program, call["output"])
        assert hidden is None or hidden not in call["output"], program
        assert len(call["output"]) < 500 and episode.end == "answer"
    assert all(v.passed for v in python_env.verify_episodes(episodes, tasks))
