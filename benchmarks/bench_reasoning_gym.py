"""The cost of confining reasoning-gym's scorers: the `reasoning_gym` verifier against `score_answer` in process.

    python benchmarks/bench_reasoning_gym.py [--answers 1000] [--reps 5] [--singles 40] [--json PATH]

The answers: the gold answers of the first `--answers` tasks of the `reasoning_gym` environment's
train split on countdown (default options; countdown's scorer parses each answer with SymPy).
In one process, alternating, `--reps` times each:

* reference: `score_answer(answer, entry)` of the generator, called in a loop in this process;
* ours: `verify_batch` of one `reasoning_gym` verifier (`extract="whole"`), its sandboxes
  started beforehand (as a trainer's `warm_up` does).

Then a batch of one, `--singles` times alternating: `verify` of one answer against one
`score_answer` call. Reports medians (wall time) and the ratio ours / reference for the 1000,
and the median and 90th percentile of the extra milliseconds for one answer, as JSON and as
a line for benchmarks/README.md. The claims: ratio <= 3, extra for one answer <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs import get_env  # noqa: E402
from verifiers import get_verifier  # noqa: E402
from verifiers.reasoning_gym import entry_of  # noqa: E402


def in_process(scorer, answers: list[str], entries: list[dict]) -> list[float]:
    return [scorer.score_answer(a, e) for a, e in zip(answers, entries)]


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--singles", type=int, default=40)
    parser.add_argument("--json", default="", help="also write the result to this file")
    args = parser.parse_args(argv)

    from reasoning_gym.factory import DATASETS

    env = get_env("reasoning_gym", dataset="countdown", size=args.answers, test_size=100)
    tasks = env.tasks("train")
    answers = [t.answer for t in tasks]
    entries = [entry_of(t) for t in tasks]
    dataset_cls, config_cls = DATASETS["countdown"]
    scorer = dataset_cls(config=config_cls(**tasks[0].meta["config"]))
    verifier = get_verifier("reasoning_gym", extract="whole")
    verifier.warm_up()
    ours, ref = [], []
    for _ in range(args.reps):
        t_ref, expected = timed(in_process, scorer, answers, entries)
        t_ours, verdicts = timed(verifier.verify_batch, answers, tasks)
        if [v.reward for v in verdicts] != expected:
            print("error: the confined scores differ from the in-process ones", file=sys.stderr)
            return 1
        ref.append(t_ref)
        ours.append(t_ours)
    extra = []
    for i in range(args.singles):
        t_one, _ = timed(verifier.verify, answers[i], tasks[i])
        t_ref_one, _ = timed(scorer.score_answer, answers[i], entries[i])
        extra.append((t_one - t_ref_one) * 1000)
    verifier.close()
    extra.sort()
    result = {
        "answers": len(tasks), "reps": args.reps, "workers": verifier.scorers.pool_size, "cpus": os.cpu_count(),
        "reference_s": statistics.median(ref), "ours_s": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(ref),
        "ratio_per_rep": [o / r for o, r in zip(ours, ref)],
        "single_extra_ms_p50": statistics.median(extra), "single_extra_ms_p90": extra[int(0.9 * (len(extra) - 1))],
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"| {len(tasks)} countdown answers | {result['ours_s']:.3f} s | {result['reference_s']:.3f} s | "
          f"**{result['ratio']:.2f}** ({min(result['ratio_per_rep']):.2f}-{max(result['ratio_per_rep']):.2f}) | "
          f"+{result['single_extra_ms_p50']:.1f} / +{result['single_extra_ms_p90']:.1f} ms | "
          f"{result['load_average'][0]:.1f} |")
    return 0 if result["ratio"] <= 3 and result["single_extra_ms_p50"] <= 50 else 1


if __name__ == "__main__":
    sys.exit(main())
