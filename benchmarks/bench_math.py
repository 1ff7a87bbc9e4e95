"""Throughput and agreement of the `math` verifier against math-verify (HuggingFace).

Three tables, each run by both sides as whole processes over the same rows (written to a
temporary JSONL), alternating, several repetitions:

* ours: the default-option rows of tests/math_cases.py;
* realistic endings: tests/math_realistic.py, model-style completions and near misses for
  hedges, checks after the answer, cut-off text, infinity signs, number bases, trig of degrees,
  labels, sets in words and multiple choice, written before the rules they exercise (each
  row's prompt, and its sample's finish_reason in `Task.meta`, which math-verify cannot use);
* math-verify's: the literal (gold, prediction, expected) rows of math-verify 0.9.0's own test
  suite, read with `ast` from its sdist at run time (never copied here): the parametrised
  tests whose arguments include gold, pred and expected (or result), default options only,
  one row per (gold, prediction). `--sdist PATH` names the sdist (or its unpacked folder);
  otherwise it is fetched once with `pip download` into a cache folder. Without it, that
  table is skipped and the output says so.

Sides:
* ours: `python -m verifiers score --verifier math --input cases.jsonl --output out.jsonl`;
* math-verify: a tiny script run with the same Python that calls `verify(parse(gold),
  parse(completion))` per line (on our table the gold wrapped in `$...$`, as its README does
  for LaTeX golds; on its own table the gold as its tests pass it).

Wall times include interpreter start, imports and (ours) worker start-up: what a user
waits for. Agreement is reported case by case against each table's expectations, with the
reason for every difference (EXPLAINED, REALISTIC_EXPLAINED, MV_TABLE_POLICY below).

    python benchmarks/bench_math.py [--reps 5] [--sdist math_verify-0.9.0.tar.gz] [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]

MATH_VERIFY_SCRIPT = r'''
import json, sys
from math_verify import parse, verify
wrap = sys.argv[3] == "wrap"
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    row = json.loads(line)
    gold = str(row["task"]["answer"])
    if wrap and "$" not in gold and "\\boxed" not in gold:
        gold = "$" + gold + "$"
    try:
        ok = bool(verify(parse(gold), parse(row["completion"])))
    except Exception as exc:  # a benchmark harness: any failure is a "no"
        ok = False
    out.append(ok)
json.dump(out, open(sys.argv[2], "w"))
'''
MV_VERSION = "0.9.0"
MV_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "verirl" / "bench_math"

# Why the two checkers disagree on a case, keyed by (gold, completion) so that inserting
# cases into the table does not shift them; read off each case and both checkers' parses.
NO_TAG = "math-verify has no <answer> rule: "
UNI_MINUS = "unicode minus (U+2212): nothing extracted"
EXPLAINED = {
    ("42", r"First guess \boxed{40}, but correcting: \boxed{42}"):
        "math-verify joins nearby boxes into the set {40, 42}; here the last box wins",
    ("42", r"\fbox{42}"): "`\\fbox{42}`: nothing extracted",
    ("42", r"\boxed {42}"): "`\\boxed {42}` (space before the brace): nothing extracted",
    ("5", "#### 5\nsome trailing text 7"): "`#### 5` is no marker for math-verify: it takes the later 7",
    ("5", "<think>2+2 is 4, plus 1</think><answer>5</answer>"): NO_TAG + "takes 1 from the reasoning",
    ("5", "<think>maybe 5</think><answer>6</answer>"):
        NO_TAG + "takes 5 from the reasoning, not the tagged 6 (false positive)",
    ("5", r"<think>\boxed{3}</think> <answer>5</answer>"): NO_TAG + "takes the box in the reasoning (3)",
    ("5", "<ANSWER>5</ANSWER>"): NO_TAG + "nothing extracted",
    ("5", "<answer>5"): NO_TAG + "nothing extracted from an unclosed tag",
    ("x+1", "x+1"): "a bare expression (no `$`, no box) is not extracted",
    ("1000", r"\boxed{1\,000}"): "thin-space thousands `1\\,000` read as 1·0",
    ("1000", r"\boxed{1 000}"): "space thousands `1 000` read as 1·0",
    ("3.5", r"\boxed{3,5}"): "decimal comma `3,5` read as the set {3, 5}",
    ("0.25", r"\boxed{0,25}"): "decimal comma `0,25` read as the set {0, 25}",
    ("5", r"\boxed{5 dollars}"): "`5 dollars` read as 5 times the symbols of 'dollars'",
    ("10", r"\boxed{10 m/s}"): "the unit `m/s` read as symbols: 10·m/s",
    ("5", r"\boxed{5m}"): "judgement call: math-verify strips `m` as metres; the table keeps 5m as 5·m, "
                           "the common algebra reading",
    ("5", r"\boxed{5.}"): "the trailing period is not stripped: nothing parsed",
    ("5", "`5`"): "markdown code `` `5` ``: nothing extracted",
    ("-3", "The answer is \u22123."): UNI_MINUS,
    ("-3", "\u22123"): UNI_MINUS,
    ("-7", "The temperature dropped to \u22127 degrees."): UNI_MINUS,
    ("-7", "x = \u22127."): UNI_MINUS,
    ("\\sqrt{2}", "\\boxed{\u221a2}"): "unicode `√2` not parsed",
    ("\\infty", "\\boxed{\u221e}"): "unicode `∞` not parsed",
    ("2\\frac{1}{2}", "2 1/2"): "plain `2 1/2` read as 2·1/2 = 1, not the mixed number 5/2",
    ("1500", r"\boxed{1.5e3}"): "`1.5e3` read as 1.5·e·3, not scientific notation",
    ("6.02\\times10^{23}", r"\boxed{6.02e23}"): "`6.02e23` read as 6.02·e·23, not scientific notation",
    ("\\sqrt{2}", r"\boxed{1.41421}"): "tolerance policy: math-verify rounds both sides to 6 decimals "
                                      "(1.41421 has 5); the table accepts 6 significant digits for an irrational gold",
    ("\\pi", r"\boxed{3.14159}"): "tolerance policy, as above: 3.14159 has 5 decimals",
    ("i", r"\boxed{\sqrt{-1}}"): "`i` stays a plain symbol for math-verify here, so sqrt(-1) != i",
    ("\\emptyset", r"\boxed{\varnothing}"): "`\\varnothing` not known (parsed as symbols)",
    ("[2, \\infty)", r"\boxed{x \geq 2}"): "an inequality is not compared with an interval gold "
                                            "(allow_set_relation_comp is off by default)",
    ("(1,2)", r"\boxed{1 < x < 2}"): "as above: `1 < x < 2` against the interval (1, 2)",
    ("x = 3", r"\boxed{2x = 6}"): "the equivalent equation 2x = 6 is not recognised",
    ("1, 2", "The solutions are 1 and 2, so the answer is 1, 2."): "reads only 1 from 'the answer is 1, 2'",
    ("\\frac{1}{2004!}", r"\boxed{\frac{1}{2006!}}"): "1/2004! and 1/2006! agree at its precision: false positive",
    ("(1,2)", r"\boxed{\{1,2\}}"): "the set {1, 2} accepted for the pair/interval (1, 2): false positive",
    ("5", "Answer:5"): "`Answer:5` (no space): nothing extracted",
    ("3", r"\boxed{2} is wrong; \boxed{3}"): "joins the two nearby boxes into {2, 3}; the last box (3) is the answer",
    ("5", r"\boxed{\text{5 apples}}"): "the unit inside `\\text{}` is kept: the symbol '5apples'",
}

# The realistic table: what math-verify does with each class (keyed by the case group; a
# (gold, completion) key overrides it for one row). Read off both checkers' parses.
REALISTIC_EXPLAINED = {
    "hedge": "math-verify takes the last number of a hedge (`either 3 or 4`: 4) and of alternatives "
             "(`x = 2 or x = 3`: 3)",
    ("10", r"The answer is 10, or equivalently $2 \cdot 5$."):
        "ours takes the last number after the marker (5 of `10, or equivalently 2·5`), a miss; "
        "math-verify takes the math span, 2·5 = 10",
    "check": "math-verify takes the last number or equation of the verification (`Check: 3(7) - 4 = 17`: 17), "
             "not the value stated before it",
    "cut": "math-verify takes the last number of a completion cut off mid-sentence or inside a computation "
           "(`9 × 2`: 2); it has no finish_reason input",
    "base": "math-verify drops the base subscript: `1011_2` and `1011_3` are both 1011",
    "trig": "math-verify reads `\\sin 60^\\circ` as the sine of 60 radians (`\\sin 45°`: 45)",
    "label": "math-verify keeps the label or the words: `f(t) = t^2` is an equation, `x \\in \\mathbb{R}` "
             "(the last span) the answer, `\\text{The answer is } 42` a product of symbols",
    "set": "math-verify reads `\\text{all real numbers}`, `\\varnothing` and `\\text{No solution}` as symbols",
    "choice": "math-verify has no multiple-choice rule: `\\text{(C) }12` is c·12, 'the correct option is "
              "**(D)**' gives nothing, and no value is mapped to its letter",
}

# math-verify's table: why we differ from its expectation. Keyed by (gold, prediction).
MV_TABLE_POLICY = {
    ("$9$", "Answer $ \n 9 \n $"): "policy: math across newlines is still math; its test expects no "
                                    "extraction (math-verify itself extracts 9 and fails its own test)",
    ("$9$", "Answer \\( \n 9 \n \\)"): "policy, as above, for `\\( ... \\)`",
    ("$x \\in [-2,7]$", r"$-2 \\le x \\le 7$"): "policy: an interval gold accepts the inequality that "
        "describes it (its default `allow_set_relation_comp=False` refuses; the other direction it accepts)",
    ("$1 - \\frac{1}{\\mathrm{e}}$", "$1 + \\frac{1}{\\mathrm{e}}$"): "policy: 1 - 1/e and 1 + 1/e differ; "
        "its test expects a pass (math-verify reads `\\mathrm{e}` as a symbol and lets it go)",
}


class Row(NamedTuple):
    id: str
    gold: str
    completion: str
    expected: bool
    prompt: str = "p"
    meta: dict = {}


def _tests_module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_cases() -> list[Row]:
    return [Row(c.id, str(c.gold), c.completion, c.expected) for c in _tests_module("math_cases").DEFAULT_CASES]


def load_realistic() -> list[Row]:
    """tests/math_realistic.py: its prompts, and each sample's finish_reason in `Task.meta`."""
    return [Row(c.id, c.gold, c.completion, c.expected, c.prompt,
                {"finish_reason": c.finish_reason} if c.finish_reason else {})
            for c in _tests_module("math_realistic").CASES]


def find_sdist(given: Path | None) -> Path | None:
    """The sdist (or unpacked folder) named, else the cached one, else fetched with pip."""
    if given is not None:
        return given if given.exists() else None
    cached = MV_CACHE / f"math_verify-{MV_VERSION}.tar.gz"
    if not cached.exists():
        MV_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", f"math-verify=={MV_VERSION}", "--no-deps",
                        "--no-binary", ":all:", "-d", str(MV_CACHE), "-q"], capture_output=True)
    return cached if cached.exists() else None


def _test_sources(sdist: Path) -> list[tuple[str, str]]:
    if sdist.is_dir():
        return [(f.name, f.read_text(encoding="utf-8")) for f in sorted(sdist.glob("**/tests/test_*.py"))]
    with tarfile.open(sdist) as tar:
        names = sorted(m.name for m in tar.getmembers() if re.search(r"/tests/test_[^/]*\.py$", m.name))
        return [(Path(n).name, tar.extractfile(n).read().decode("utf-8")) for n in names]


def _parametrised_rows(source: str):
    """(test name, line, {argument: value}) of every literal row of a parametrised test."""
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize" and len(dec.args) > 1):
                continue
            names = [n.strip() for n in ast.literal_eval(dec.args[0]).split(",")]
            for elt in getattr(dec.args[1], "elts", []):
                try:
                    values = ast.literal_eval(elt)
                except ValueError:          # an f-string or a call: not a literal row
                    continue
                yield fn.name, elt.lineno, dict(zip(names, values))


def load_mv_table(sdist: Path) -> list[Row]:
    """math-verify's own (gold, prediction, expected) rows, default options, deduplicated."""
    defaults = {"precision": 6, "allow_set_relation_comp": False, "strict": True}
    rows: dict[tuple[str, str], Row] = {}
    for filename, source in _test_sources(sdist):
        for _test, line, args in _parametrised_rows(source):
            expected = args.get("expected", args.get("result"))
            extra = {k: v for k, v in args.items() if k not in ("gold", "pred", "expected", "result")}
            if "gold" not in args or "pred" not in args or expected is None or \
                    any(defaults.get(k, object()) != v for k, v in extra.items()):
                continue
            key = (str(args["gold"]), str(args["pred"]))
            rows.setdefault(key, Row(f"{filename}:{line}", key[0], key[1], bool(expected)))
    return list(rows.values())


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every descendant it waited for: our
    SymPy workers included). CPU time is the steadier figure on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def agreement(cases: list[Row], ours: list[bool], theirs: list[bool], explained: dict) -> dict:
    rows = []
    for case, a, b in zip(cases, ours, theirs):
        if a != b or a != case.expected:
            rows.append({"id": case.id, "gold": case.gold[-80:], "completion": case.completion[-80:],
                         "expected": case.expected, "ours": a, "math_verify": b,
                         "why": explained.get((case.gold, case.completion))
                         or explained.get(case.id.rsplit("-", 1)[0], "(unexplained)")})
    count = lambda f: sum(1 for c, a, b in zip(cases, ours, theirs) if f(c.expected, a, b))  # noqa: E731
    return {"cases": len(cases), "agree": count(lambda e, a, b: a == b),
            "ours_correct": count(lambda e, a, b: a == e), "math_verify_correct": count(lambda e, a, b: b == e),
            "disagreements": rows}


def run_table(name: str, cases: list[Row], wrap: bool, reps: int, explained: dict) -> dict:
    """Both sides over `cases`, alternating, `reps` times each; medians and agreement."""
    with tempfile.TemporaryDirectory(prefix="bench_math_") as tmp:
        tmp = Path(tmp)
        cases_path, script = tmp / "cases.jsonl", tmp / "math_verify_side.py"
        cases_path.write_text("".join(json.dumps({"completion": c.completion, "task": {
            "id": c.id, "prompt": c.prompt, "answer": c.gold, "meta": c.meta}}) + "\n" for c in cases))
        script.write_text(MATH_VERIFY_SCRIPT)
        ours_cmd = [sys.executable, "-m", "verifiers", "score", "--verifier", "math",
                    "--input", str(cases_path), "--output", str(tmp / "ours.jsonl")]
        theirs_cmd = [sys.executable, str(script), str(cases_path), str(tmp / "theirs.json"),
                      "wrap" if wrap else "asis"]
        walls, cpus = {"ours": [], "theirs": []}, {"ours": [], "theirs": []}
        runs: dict[str, list[list[bool]]] = {"ours": [], "theirs": []}
        load_before = os.getloadavg()[0]
        for rep in range(reps):
            sides = [("ours", ours_cmd), ("theirs", theirs_cmd)]
            for side, cmd in sides if rep % 2 == 0 else sides[::-1]:
                wall, cpu = timed(cmd)
                walls[side].append(wall)
                cpus[side].append(cpu)
            runs["ours"].append([json.loads(line)["passed"] for line in (tmp / "ours.jsonl").read_text().splitlines()])
            runs["theirs"].append(json.loads((tmp / "theirs.json").read_text()))
    # A check that overruns its deadline on a loaded machine fails in that repetition only:
    # each side's decision is its majority over the repetitions, and rows that varied are listed.
    ours, theirs = (_majority(runs[side]) for side in ("ours", "theirs"))
    varied = [c.id for i, c in enumerate(cases) if len({run[i] for run in runs["ours"]}) > 1]
    med = statistics.median
    return {"table": name, "reps": reps, "ours_s": walls["ours"], "math_verify_s": walls["theirs"],
            "ours_cpu_s": cpus["ours"], "math_verify_cpu_s": cpus["theirs"],
            "ratio": med(walls["ours"]) / med(walls["theirs"]), "cpu_ratio": med(cpus["ours"]) / med(cpus["theirs"]),
            "load_before": load_before, "load_after": os.getloadavg()[0], "ours_varied": varied,
            "agreement": agreement(cases, ours, theirs, explained)}


def _majority(runs: list[list[bool]]) -> list[bool]:
    return [sum(row) * 2 > len(row) for row in zip(*runs)]


def markdown(result: dict) -> str:
    o, m, a = result["ours_s"], result["math_verify_s"], result["agreement"]
    med = statistics.median
    lines = [
        f"### {result['table']}\n",
        f"{a['cases']} cases, {result['reps']} alternating repetitions, whole processes "
        f"(interpreter, imports, workers included); load average {result['load_before']:.1f} before, "
        f"{result['load_after']:.1f} after, on {os.cpu_count()} CPUs\n",
        "| checker | median wall s | min wall s | max wall s | median CPU s | cases/s (median wall) "
        "| correct vs table |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| verirl `math` (CLI) | {med(o):.2f} | {min(o):.2f} | {max(o):.2f} | {med(result['ours_cpu_s']):.2f} | "
        f"{a['cases'] / med(o):.0f} | {a['ours_correct']}/{a['cases']} ({100 * a['ours_correct'] / a['cases']:.1f}%) |",
        f"| math-verify {MV_VERSION} | {med(m):.2f} | {min(m):.2f} | {max(m):.2f} "
        f"| {med(result['math_verify_cpu_s']):.2f} | "
        f"{a['cases'] / med(m):.0f} | {a['math_verify_correct']}/{a['cases']} |",
        "",
        f"ratio ours / math-verify: **{result['ratio']:.2f}** median wall (target <= 0.5), "
        f"{result['cpu_ratio']:.2f} median CPU; same decision on {a['agree']}/{a['cases']} cases"
        + (f"; ours varied across repetitions on {', '.join(result['ours_varied'])} (deadline overruns under load)."
           if result["ours_varied"] else "."),
        "",
        "| case | gold | expected | ours | math-verify | why |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in a["disagreements"]:
        gold = r["gold"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['id']} | `{gold}` | {r['expected']} | {r['ours']} | {r['math_verify']} | {r['why']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions of each side")
    parser.add_argument("--sdist", type=Path, help=f"math-verify {MV_VERSION} sdist (.tar.gz) or its unpacked folder")
    parser.add_argument("--json", type=Path, help="also write the figures and disagreements here")
    args = parser.parse_args(argv)
    results = [run_table("verirl's table (tests/math_cases.py)", load_cases(), True, args.reps, EXPLAINED),
               run_table("realistic endings (tests/math_realistic.py)", load_realistic(), True, args.reps,
                         REALISTIC_EXPLAINED)]
    print(markdown(results[0]) + "\n\n" + markdown(results[1]) + "\n")
    sdist = find_sdist(args.sdist)
    if sdist is None:
        print(f"math-verify's own table: SKIPPED, no sdist ({args.sdist or 'pip download into ' + str(MV_CACHE)} "
              f"failed); pass --sdist math_verify-{MV_VERSION}.tar.gz")
    else:
        results.append(run_table(f"math-verify {MV_VERSION}'s own test table ({sdist.name})", load_mv_table(sdist),
                                 False, args.reps, MV_TABLE_POLICY))
        print(markdown(results[2]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
