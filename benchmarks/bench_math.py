"""Throughput and agreement of the `math` verifier against math-verify (HuggingFace).

Both sides run as whole processes over the same cases (the default-option rows of
tests/math_cases.py, written to a temporary JSONL), alternating, several repetitions:

* ours: `python -m verifiers score --verifier math --input cases.jsonl --output out.jsonl`;
* math-verify: a tiny script run with the same Python that reads the JSONL and calls
  `verify(parse(gold), parse(completion))` per line (the gold wrapped in `$...$`, as its
  README does for LaTeX golds).

Wall times include interpreter start, imports and (ours) worker start-up: what a user
waits for. Agreement is reported case by case against the table's expectations, with an
explanation for every case where the two disagree (EXPLAINED below).

    python benchmarks/bench_math.py [--reps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MATH_VERIFY_SCRIPT = r'''
import json, sys
from math_verify import parse, verify
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    row = json.loads(line)
    gold = str(row["task"]["answer"])
    if "$" not in gold and "\\boxed" not in gold:
        gold = "$" + gold + "$"
    try:
        ok = bool(verify(parse(gold), parse(row["completion"])))
    except Exception as exc:  # a benchmark harness: any failure is a "no"
        ok = False
    out.append(ok)
json.dump(out, open(sys.argv[2], "w"))
'''

# Why the two checkers disagree on a case (read off each case and both outputs).
NO_TAG = "math-verify has no <answer> rule: "
EXPLAINED = {
    "extract-002": "math-verify joins nearby boxes into the set {40, 42}; the last box wins here",
    "extract-005": "`\\fbox{42}`: nothing extracted",
    "extract-006": "`\\boxed {42}` (space before the brace): nothing extracted",
    "extract-017": "`#### 5` is no marker for math-verify: it takes the later 7",
    "extract-018": NO_TAG + "takes 1 from the reasoning",
    "extract-019": NO_TAG + "takes 5 from the reasoning, not the tagged 6 (false positive)",
    "extract-021": NO_TAG + "takes the box in the reasoning (3)",
    "extract-023": NO_TAG + "nothing extracted from `<ANSWER>5</ANSWER>`",
    "extract-024": NO_TAG + "nothing extracted from an unclosed `<answer>5`",
    "extract-040": "a bare expression `x+1` (no `$`, no box) is not extracted",
    "normalise-002": "thin-space thousands `1\\,000` read as 1·0",
    "normalise-004": "space thousands `1 000` read as 1·0",
    "normalise-007": "decimal comma `3,5` read as the set {3, 5}",
    "normalise-008": "decimal comma `0,25` read as the set {0, 25}",
    "normalise-012": "`5 dollars` read as 5 times the symbols of 'dollars'",
    "normalise-044": "`\\boxed{5.}`: the trailing period is not stripped, nothing parsed",
    "normalise-047": "markdown code `` `5` ``: nothing extracted",
    "normalise-049": "unicode minus (U+2212): nothing extracted",
    "normalise-050": "unicode minus (U+2212): nothing extracted",
    "normalise-054": "unicode `√2` not parsed",
    "normalise-070": "unicode `∞` not parsed",
    "number-031": "plain `2 1/2` read as 2·1/2 = 1, not the mixed number 5/2",
    "number-036": "`1.5e3` read as 1.5·e·3, not scientific notation",
    "number-040": "`6.02e23` read as 6.02·e·23, not scientific notation",
    "number-051": "tolerance policy: math-verify rounds both sides to 6 decimals (1.41421 has 5); "
                  "the table accepts 6 significant digits for an irrational gold",
    "number-054": "tolerance policy: as above, 3.14159 for pi has 5 decimals",
    "number-075": "`i` is a plain symbol for math-verify here, so sqrt(-1) != i",
    "container-027": "`\\varnothing` not known (parsed as symbols)",
    "container-031": "an inequality answer is not compared with an interval gold "
                     "(allow_set_relation_comp is off by default)",
    "container-033": "as above: `1 < x < 2` against the interval (1, 2)",
    "multiple-005": "reads only 1 from 'the answer is 1, 2'",
    "trap-002": "1/2004! and 1/2006! agree to its 15-digit precision: false positive",
    "trap-033": "the set {1, 2} accepted for the pair/interval (1, 2): false positive",
    "awkward-009": "`Answer:5` (no space): nothing extracted",
    "awkward-015": "unicode minus (U+2212): nothing extracted",
    "awkward-016": "unicode minus (U+2212): nothing extracted",
    "awkward-019": "joins the two nearby boxes into {2, 3}; the last box (3) is the answer",
}


def load_cases() -> list:
    spec = importlib.util.spec_from_file_location("math_cases", REPO / "tests" / "math_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DEFAULT_CASES


def run_ours(cases_path: Path, out_path: Path) -> tuple[float, list[bool]]:
    cmd = [sys.executable, "-m", "verifiers", "score", "--verifier", "math",
           "--input", str(cases_path), "--output", str(out_path)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    return elapsed, [json.loads(line)["passed"] for line in out_path.read_text().splitlines()]


def run_math_verify(script: Path, cases_path: Path, out_path: Path) -> tuple[float, list[bool]]:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script), str(cases_path), str(out_path)], cwd=REPO, check=True,
                   capture_output=True)
    elapsed = time.perf_counter() - start
    return elapsed, json.loads(out_path.read_text())


def agreement(cases: list, ours: list[bool], theirs: list[bool]) -> dict:
    rows = []
    for case, a, b in zip(cases, ours, theirs):
        if a != b or a != case.expected:
            rows.append({"id": case.id, "gold": str(case.gold), "completion": case.completion[-80:],
                         "expected": case.expected, "ours": a, "math_verify": b,
                         "why": EXPLAINED.get(case.id, "(unexplained)")})
    count = lambda f: sum(1 for c, a, b in zip(cases, ours, theirs) if f(c.expected, a, b))  # noqa: E731
    return {
        "cases": len(cases),
        "agree": count(lambda e, a, b: a == b),
        "ours_correct": count(lambda e, a, b: a == e),
        "math_verify_correct": count(lambda e, a, b: b == e),
        "disagreements": rows,
    }


def markdown(result: dict) -> str:
    o, m = result["ours_s"], result["math_verify_s"]
    a = result["agreement"]
    lines = [
        f"{a['cases']} cases, {result['reps']} alternating repetitions, whole processes "
        f"(interpreter, imports, workers included)\n",
        "| checker | median s | min s | max s | cases/s (median) | correct vs table |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| verirl `math` (CLI) | {statistics.median(o):.2f} | {min(o):.2f} | {max(o):.2f} | "
        f"{a['cases'] / statistics.median(o):.0f} | {a['ours_correct']}/{a['cases']} |",
        f"| math-verify 0.9 | {statistics.median(m):.2f} | {min(m):.2f} | {max(m):.2f} | "
        f"{a['cases'] / statistics.median(m):.0f} | {a['math_verify_correct']}/{a['cases']} |",
        "",
        f"ratio ours / math-verify (median wall): **{result['ratio']:.2f}** (target <= 1.0); "
        f"same decision on {a['agree']}/{a['cases']} cases.",
        "",
        "| case | gold | expected | ours | math-verify | why |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in a["disagreements"]:
        gold = r["gold"].replace("|", "\\|")
        lines.append(f"| {r['id']} | `{gold}` | {r['expected']} | {r['ours']} | {r['math_verify']} | {r['why']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions of each side")
    parser.add_argument("--json", type=Path, help="also write the figures and disagreements here")
    args = parser.parse_args(argv)
    cases = load_cases()
    with tempfile.TemporaryDirectory(prefix="bench_math_") as tmp:
        tmp = Path(tmp)
        cases_path, script = tmp / "cases.jsonl", tmp / "math_verify_side.py"
        cases_path.write_text("".join(json.dumps({"completion": c.completion, "task": {
            "id": c.id, "prompt": "p", "answer": c.gold}}) + "\n" for c in cases))
        script.write_text(MATH_VERIFY_SCRIPT)
        ours_s, theirs_s = [], []
        for rep in range(args.reps):
            sides = [("ours", lambda: run_ours(cases_path, tmp / "ours.jsonl")),
                     ("theirs", lambda: run_math_verify(script, cases_path, tmp / "theirs.json"))]
            for name, side in sides if rep % 2 == 0 else sides[::-1]:
                elapsed, decisions = side()
                (ours_s if name == "ours" else theirs_s).append(elapsed)
                if name == "ours":
                    ours = decisions
                else:
                    theirs = decisions
    result = {"reps": args.reps, "ours_s": ours_s, "math_verify_s": theirs_s,
              "ratio": statistics.median(ours_s) / statistics.median(theirs_s),
              "agreement": agreement(cases, ours, theirs)}
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
