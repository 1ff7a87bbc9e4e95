"""Every reasoning-gym generator through the `reasoning_gym` environment and its confined verifier.

    python benchmarks/rgym_sweep.py [--tasks 20] [--only countdown,sudoku] [--markdown table.md] [--json PATH]

For each generator the installed reasoning-gym offers: the first `--tasks` tasks of the
environment's test split (default options, `instruct` style), and three completions each:

* gold: `env.demonstration(task)` (the gold answer in `<answer>` tags) -- must pass;
* empty: `<answer></answer>` -- must fail;
* wrong: the gold answer perturbed (`perturb`: its first half, with its first number x made
  2x + 1) -- must fail.

All go through one `reasoning_gym` verifier (sandboxed scorers). Each score is also computed by
calling the generator's `score_answer` in this process, and the table counts the agreements
(confinement must not change a score). Prints a markdown table (the one in
benchmarks/README.md) and exits 1 when a gold answer fails or an empty or wrong one passes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.reasoning_gym_items import FLAWED_SCORERS  # noqa: E402
from envs import get_env  # noqa: E402
from verifiers import get_verifier  # noqa: E402
from verifiers.reasoning_gym import entry_of, extract_answer  # noqa: E402

NOT_OFFLINE: dict[str, str] = {}  # generator -> why it cannot run offline (none in reasoning-gym 0.1.25)


def perturb(gold: str) -> str:
    """A wrong answer made from `gold`: its first half (when it has 4 characters or more), with
    its first number `x` made `2x + 1` (else its first letter moved on by one, else a `!` added).

    Why both: several generators accept more than one answer, tolerances or clamps (rush_hour
    slides a car only as far as it can go, so a longer slide still solves; numeric scorers accept
    1e-4 off, and coin_flip any prefix of the digits), but no prefix of a shortest solution
    solves the puzzle, and 2x + 1 is far from x.

    >>> perturb("94*4 - 61"), perturb("A+2 B-1"), perturb("0.375"), perturb("7"), perturb("no"), perturb("!?")
    ('189*4', 'A+5', '1.', '15', 'oo', '!?!')
    """
    text = gold.strip()
    if len(text) >= 4:
        text = text[: len(text) // 2]
    number = re.search(r"\d+(?:\.\d*)?", text)
    if number:
        value = number.group()
        new = str(2 * int(value) + 1) if value.isdigit() else \
            f"{2 * float(value) + 1:g}" + ("." if value.endswith(".") else "")
        return text[:number.start()] + new + text[number.end():]
    for i, ch in enumerate(text):
        if ch.isascii() and ch.isalpha():
            base = ord("a") if ch.islower() else ord("A")
            return text[:i] + chr(base + (ord(ch) - base + 1) % 26) + text[i + 1:]
    return text + "!"


@dataclass
class Row:
    generator: str
    tasks: int = 0
    gold_passed: int = 0
    empty_failed: int = 0
    wrong_failed: int = 0
    agree: int = 0          # confined score == in-process score, over 3 x tasks
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Gold passes, empty fails, and wrong fails unless reasoning-gym's scorer is known not to tell."""
        wrong_ok = self.wrong_failed == self.tasks or self.generator in FLAWED_SCORERS
        return self.tasks > 0 and self.gold_passed == self.empty_failed == self.tasks and wrong_ok


def sweep_one(name: str, tasks: int, verifier) -> Row:
    row = Row(name)
    env = get_env("reasoning_gym", dataset=name, size=1, test_size=tasks)
    chosen = env.tasks("test")
    golds = [env.demonstration(t) for t in chosen]
    wrongs = [f"<answer>{perturb(extract_answer(g))}</answer>" for g in golds]
    completions = golds + ["<answer></answer>"] * len(chosen) + wrongs
    start = time.perf_counter()
    verdicts = verifier.verify_batch(completions, chosen * 3)
    row.seconds = time.perf_counter() - start
    n = row.tasks = len(chosen)
    row.gold_passed = sum(v.passed for v in verdicts[:n])
    row.empty_failed = sum(not v.passed for v in verdicts[n:2 * n])
    row.wrong_failed = sum(not v.passed for v in verdicts[2 * n:])
    row.agree = sum(_agrees(v, c, t) for v, c, t in zip(verdicts, completions, chosen * 3))
    statuses = sorted({v.info["status"] for v in verdicts} - {"passed", "failed"})
    if statuses:
        row.notes.append("statuses: " + ", ".join(statuses))
    if name in FLAWED_SCORERS:
        row.notes.append(f"reasoning-gym's scorer: {FLAWED_SCORERS[name]}")
    return row


@functools.lru_cache(maxsize=None)
def _scorer(name: str, config: str):
    from reasoning_gym.factory import DATASETS

    dataset_cls, config_cls = DATASETS[name]
    return dataset_cls(config=config_cls(**json.loads(config)))


def _agrees(verdict, completion: str, task) -> bool:
    """Whether the confined score equals `score_answer` called here (its prints silenced)."""
    scorer = _scorer(task.meta["dataset"], json.dumps(task.meta["config"], sort_keys=True))
    with contextlib.redirect_stdout(io.StringIO()):
        expected = scorer.score_answer(extract_answer(completion), entry_of(task))
    return verdict.info.get("score") == expected


def markdown(rows: list[Row]) -> str:
    lines = ["| generator | tasks | gold passes | empty fails | wrong fails | same score in process | s | notes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r.generator} | {r.tasks} | {r.gold_passed} | {r.empty_failed} | {r.wrong_failed} | "
                     f"{r.agree}/{3 * r.tasks} | {r.seconds:.2f} | {'; '.join(r.notes)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from data.reasoning_gym_items import generator_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--only", default="", help="comma-separated generators (default: all installed)")
    parser.add_argument("--markdown", default="", help="also write the table to this file")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    args = parser.parse_args(argv)
    names = [n for n in (args.only.split(",") if args.only else generator_names()) if n not in NOT_OFFLINE]
    rows = []
    with get_verifier("reasoning_gym", extract="tags") as verifier:
        for name in names:
            rows.append(sweep_one(name, args.tasks, verifier))
            verdict = "ok" if rows[-1].ok else "FAILED"
            print(f"{name}: {verdict} ({rows[-1].seconds:.1f} s)", file=sys.stderr, flush=True)
    table = markdown(rows)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps([{**asdict(r), "ok": r.ok} for r in rows], indent=1) + "\n")
    bad = [r.generator for r in rows if not r.ok]
    print(f"{len(rows) - len(bad)}/{len(rows)} generators: gold passes, empty and wrong fail"
          + (f"; failing: {', '.join(bad)}" if bad else ""), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
