"""Paired before/after comparison of two pass@k reports: per-k differences of pass@k and
pass^k with paired bootstrap intervals (the same task resamples for both) and an exact sign
test (`evals.stats.paired_compare`). Reports that did not measure the same thing (another
environment, options, verifier, split or task set) are refused, naming every difference."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from evals import stats
from evals.report import ReportError, differences, load_report

COMPARISON_FORMAT = "verirl.pass_at_k.comparison/1"


def check_comparable(before: dict, after: dict) -> None:
    """Raise ReportError naming every way in which two reports did not measure the same thing."""
    mb, ma = before["manifest"], after["manifest"]
    problems = []
    for label, key in (("environment", "env"), ("split", "split"), ("verifier", "verifier")):
        diff = differences(mb[key], ma[key], key)
        if diff:
            problems.append(f"{label} differs ({', '.join(diff[:5])}{', ...' if len(diff) > 5 else ''})")
    only_b = sorted(set(before["tasks"]) - set(after["tasks"]))
    only_a = sorted(set(after["tasks"]) - set(before["tasks"]))
    if only_b or only_a:
        sides = [f"{len(ids)} only in {side}, e.g. {ids[:3]}" for side, ids in (("before", only_b), ("after", only_a))
                 if ids]
        problems.append(f"task sets differ ({'; '.join(sides)})")
    elif mb["dataset_hash"] != ma["dataset_hash"]:
        problems.append("task contents differ (dataset hashes "
                        f"{mb['dataset_hash'][:12]} vs {ma['dataset_hash'][:12]}) under the same task ids")
    if problems:
        raise ReportError("cannot compare these reports: " + "; ".join(problems))


def _side(report: dict) -> dict:
    return {k: report["manifest"][k] for k in ("model", "run_key", "sampling", "completions", "finished")}


def compare(before: dict | str | Path, after: dict | str | Path, *, ks: Iterable[int] | None = None,
            confidence: float | None = None, n_bootstrap: int | None = None, seed: int = 0) -> dict:
    """Paired before/after comparison of two reports (dicts or report.json paths) on the same
    tasks: per-k differences of pass@k and pass^k, paired bootstrap intervals (the same task
    resamples for both) and the exact sign test of `evals.stats.paired_difference`."""
    before = load_report(before) if isinstance(before, (str, Path)) else before
    after = load_report(after) if isinstance(after, (str, Path)) else after
    check_comparable(before, after)
    ids = sorted(before["tasks"])
    counts = [([r["tasks"][t]["n"] for t in ids], [r["tasks"][t]["c"] for t in ids]) for r in (before, after)]
    ks = sorted(set(ks) if ks is not None else set(before["ks"]) & set(after["ks"]))
    confidence = confidence or before["confidence"]
    n_bootstrap = n_bootstrap or before["n_bootstrap"]
    metrics = {m: stats.paired_compare(ids, counts[0], counts[1], ks, metric=m, confidence=confidence,
                                       n_bootstrap=n_bootstrap, seed=seed) for m in stats.METRICS}
    return {"format": COMPARISON_FORMAT, "env": before["manifest"]["env"], "split": before["manifest"]["split"],
            "num_tasks": len(ids), "ks": ks, "confidence": confidence, "n_bootstrap": n_bootstrap,
            "bootstrap_seed": seed, "before": _side(before), "after": _side(after), "metrics": metrics,
            "exact_test": "two-sided exact sign test on per-task estimates (McNemar's exact test when n = 1)"}
