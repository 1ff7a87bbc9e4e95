"""Tests of trainers/core.py's objective and its masks: group advantages over judged rows only,
the groups kept, the row counts of every aggregation, and the pass@K estimator (hand-worked
values with the arithmetic in comments, a naive loop over subsets, a Monte Carlo check that
its gradient is unbiased, and pass@1 reducing to the usual advantage)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from numeric import close

from trainers.core import (
    LOSS_AGGREGATIONS,
    REWARD_SCALES,
    GlobalBatch,
    advantage_fn,
    aggregate_loss,
    group_advantages,
    kept_rows,
    objective_k,
    pass_at_k_advantages,
    pass_at_k_estimate,
    pass_at_k_shares,
)

T = torch.tensor


# --------------------------------------------------------------------------- judged rows only


def test_group_advantages_leave_unjudged_rows_out_of_mean_and_std():
    # group [1, 0, (5 unjudged), 0]: mean of 1, 0, 0 = 1/3; sample std = sqrt((4/9 + 1/9 + 1/9) / 2) = sqrt(1/3)
    adv = group_advantages(T([1.0, 0.0, 5.0, 0.0]), 4, eps=0.0, valid=T([True, True, False, True]))
    s = math.sqrt(1 / 3)
    close(adv, [(2 / 3) / s, -(1 / 3) / s, 0.0, -(1 / 3) / s])


@pytest.mark.parametrize("scale", sorted(REWARD_SCALES))
def test_an_unjudged_row_is_as_if_the_group_were_smaller(scale):
    g = torch.Generator().manual_seed(3)
    rewards = torch.rand(12, generator=g)
    valid = torch.ones(12, dtype=torch.bool)
    valid[[2, 7]] = False
    ours = group_advantages(rewards, 4, scale, valid=valid)
    # the same groups without the unjudged rows, one at a time (sizes 3, 3, 4)
    for rows in ([0, 1, 3], [4, 5, 6], [8, 9, 10, 11]):
        if scale == "batch":   # the batch std is of the judged rewards only
            batch = rewards[valid].std().item()
            expected = group_advantages(rewards[rows], len(rows), scale, batch_std=batch)
        else:
            expected = group_advantages(rewards[rows], len(rows), scale)
        close(ours[rows], expected)
    assert ours[[2, 7]].tolist() == [0.0, 0.0]


def test_a_group_with_one_judged_row_gets_nothing():
    adv = group_advantages(T([1.0, 0.0, 0.0, 1.0]), 2, valid=T([True, False, True, True]))
    assert adv[:2].tolist() == [0.0, 0.0] and adv[2] < 0 < adv[3]


@pytest.mark.parametrize("valid, min_valid, expected", [
    ([1, 1, 1, 1, 1, 1], 2, [1, 1, 1, 1, 1, 1]),
    ([1, 0, 0, 1, 1, 1], 2, [0, 0, 0, 1, 1, 1]),   # one judged row left: the group goes
    ([1, 1, 0, 1, 1, 1], 2, [1, 1, 0, 1, 1, 1]),
    ([1, 1, 0, 1, 1, 1], 3, [0, 0, 0, 1, 1, 1]),   # pass@2 needs 3
    ([0, 0, 0, 0, 0, 0], 2, [0, 0, 0, 0, 0, 0]),
])
def test_kept_rows(valid, min_valid, expected):
    assert kept_rows(T(valid, dtype=torch.bool), 3, min_valid).tolist() == [bool(x) for x in expected]


@pytest.mark.parametrize("mode", sorted(LOSS_AGGREGATIONS))
def test_an_unjudged_row_adds_nothing_to_any_aggregation(mode):
    g = torch.Generator().manual_seed(5)
    loss = torch.randn(4, 3, generator=g)
    mask = T([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=torch.float)
    rows = T([True, True, False, True])
    masked = mask.clone()
    masked[2] = 0            # what the trainers do to an unjudged row
    garbage = loss.clone()
    garbage[2] = 1e6         # its loss values are never read
    kept = [0, 1, 3]
    ours = aggregate_loss(garbage, masked, mode, GlobalBatch.of(masked, rows), max_new_tokens=3, row_mask=rows)
    alone = aggregate_loss(loss[kept], mask[kept], mode, max_new_tokens=3)
    close(ours, alone)


def test_bnpo_counts_the_judged_rows_of_its_minibatch():
    # the step: rows 0-3, row 1 unjudged; minibatch A = rows 0, 1 (one judged), B = rows 2, 3
    loss, mask = T([[2.0], [9.0], [4.0], [6.0]]), T([[1.0], [0.0], [1.0], [1.0]])
    rows = T([True, False, True, True])
    step = GlobalBatch.of(mask, rows)                     # 3 rows, 3 tokens
    a = aggregate_loss(loss[:2], mask[:2], "bnpo", step, row_mask=rows[:2])   # 2 * 1/3
    b = aggregate_loss(loss[2:], mask[2:], "bnpo", step, row_mask=rows[2:])   # 5 * 2/3
    close(a + b, 2 / 3 + 10 / 3)                            # = the mean over the 3 judged rows' tokens, 4
    close(aggregate_loss(loss, mask, "bnpo", step, row_mask=rows), 4.0)


# --------------------------------------------------------------------------- pass@K: hand-worked


@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 2, 0.5),          # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (4, 3, 2, 1.0),          # C(1,2) = 0: every pair holds a pass
    (8, 1, 4, 0.5),          # 1 - C(7,4)/C(8,4) = 1 - 35/70
    (8, 0, 4, 0.0),
    (5, 2, 0, 0.0),          # an empty subset never passes
    (5, 2, 1, 0.4),          # pass@1 = c/n
])
def test_pass_at_k_estimate_hand(n, c, k, expected):
    close(pass_at_k_estimate(T([float(n)]), T([float(c)]), k), [expected])


@pytest.mark.parametrize("passed, s, b", [
    # n = 4, k = 2. A pass: s = k/n = 1/2. A failure: s = 1/2 * rho(3, c, 1) = 1/2 * c/3.
    # Baseline b = 1/2 * rho(3, c_-i, 2): c_-i = 0 -> 0; 1 -> 1 - C(2,2)/C(3,2) = 2/3; 2 -> 1.
    ([1, 0, 0, 0], [1 / 2, 1 / 6, 1 / 6, 1 / 6], [0.0, 1 / 3, 1 / 3, 1 / 3]),
    ([1, 1, 0, 0], [1 / 2, 1 / 2, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 2, 1 / 2]),
    ([1, 1, 1, 0], [1 / 2] * 4, [1 / 2] * 4),           # 3 of 4: every pair passes, no signal
    ([0, 0, 0, 0], [0.0] * 4, [0.0] * 4),
])
def test_pass_at_k_shares_hand(passed, s, b):
    ours_s, ours_b = pass_at_k_shares(T([passed], dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool), 2)
    close(ours_s, [s])
    close(ours_b, [b])
    close((ours_s - ours_b).sum(), 0.0)   # the baseline centres every group


@pytest.mark.parametrize("n, k", [(4, 2), (5, 3), (6, 2), (8, 4), (7, 1)])
def test_pass_at_k_shares_match_a_naive_loop_over_subsets(n, k):
    g = torch.Generator().manual_seed(n * 10 + k)
    for _ in range(5):
        passed = torch.rand(n, generator=g) < 0.4
        subsets = list(itertools.combinations(range(n), k))
        # s_i: the subsets holding i whose best member passes, over all subsets
        s = [sum(i in sub and any(passed[j] for j in sub) for sub in subsets) / len(subsets) for i in range(n)]
        # b_i: k/n times the pass@k estimate over the size-k subsets of the others
        b = []
        for i in range(n):
            others = [j for j in range(n) if j != i]
            subs = list(itertools.combinations(others, k))
            b.append(k / n * sum(any(passed[j] for j in sub) for sub in subs) / len(subs))
        ours_s, ours_b = pass_at_k_shares(passed[None], torch.ones(1, n, dtype=torch.bool), k)
        close(ours_s, [s], atol=1e-12)
        close(ours_b, [b], atol=1e-12)


@pytest.mark.parametrize("c, w", [(0, 0.0), (1, 1.0), (2, 0.5), (3, 0.2), (4, 0.05), (5, 0.0), (7, 0.0), (8, 0.0)])
def test_pass_at_4_of_8_weighs_each_group_by_its_passes(c, w):
    # advantages = w * (r - c/8), w = C(8-c-1, 3) / C(6, 3): C(6,3) = 20, C(5,3) = 10, C(4,3) = 4, C(3,3) = 1
    rewards = T([1.0] * c + [0.0] * (8 - c))
    close(pass_at_k_advantages(rewards, 8, "none", k=4), w * (rewards - c / 8), atol=1e-12)


@pytest.mark.parametrize("scale", sorted(REWARD_SCALES))
def test_pass_at_1_is_the_usual_advantage(scale):
    g = torch.Generator().manual_seed(11)
    rewards = (torch.rand(48, generator=g) < 0.4).float()
    valid = torch.rand(48, generator=g) > 0.15
    for v in (None, valid):
        expected = group_advantages(rewards, 8, scale, valid=v)
        torch.testing.assert_close(pass_at_k_advantages(rewards, 8, scale, valid=v, k=1), expected, rtol=0, atol=1e-6)
    assert advantage_fn("pass@1") is group_advantages


def test_pass_at_k_scales_by_the_rewards_not_by_itself():
    # c = 2 of 4, k = 2: s - b = [1/6, 1/6, -1/6, -1/6], times (n-1)/k = 3/2 -> +-1/4 = (r - mean) / 2;
    # divided by the rewards' sample std sqrt(1/3), not by its own (which would give pass@1 back)
    rewards = T([1.0, 1.0, 0.0, 0.0])
    close(pass_at_k_advantages(rewards, 4, "group", eps=0.0, k=2), T([0.25, 0.25, -0.25, -0.25]) / math.sqrt(1 / 3))
    close(pass_at_k_advantages(rewards, 4, "group", eps=0.0, k=2),
          0.5 * group_advantages(rewards, 4, "group", eps=0.0))


def test_pass_at_k_masks_and_refusals():
    rewards = T([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    valid = T([True, True, False, False, True, True, True, True])
    adv = pass_at_k_advantages(rewards, 4, "none", valid=valid, k=2)
    assert adv[:4].tolist() == [0.0] * 4                                    # 2 judged rows: no pass@2 estimate
    close(adv[4:], pass_at_k_advantages(rewards[4:], 4, "none", k=2))      # untouched by the other group
    # a group with one unjudged row is the smaller group (c = 1 of 3 -> w = 1: r - 1/3)
    small = pass_at_k_advantages(T([1.0, 0.0, 9.0, 0.0]), 4, "none", valid=T([True, True, False, True]), k=2)
    close(small, [2 / 3, -1 / 3, 0.0, -1 / 3])
    with pytest.raises(ValueError, match=r"pass@2 objective needs binary rewards \(0 or 1\), got 0.5"):
        pass_at_k_advantages(T([1.0, 0.5, 0.0, 0.0]), 4, k=2)


@pytest.mark.parametrize("text, k", [("pass@1", 1), ("pass@4", 4), ("pass@16", 16)])
def test_objective_names(text, k):
    assert objective_k(text) == k


@pytest.mark.parametrize("text", ["pass@0", "pass@", "pass4", "maj@4", "pass@-1", "pass@two"])
def test_bad_objective_names_are_refused(text):
    with pytest.raises(ValueError, match=f"unknown objective {text!r}; expected pass@K"):
        objective_k(text)


# --------------------------------------------------------------------------- pass@K: unbiased


@pytest.mark.parametrize("k, p", [(4, 0.3), (2, 0.15), (3, 0.6)])
def test_pass_at_k_gradient_is_unbiased(k, p):
    """A Bernoulli policy with logit theta samples groups of n = 8: d/dtheta log pi(x) = x - p,
    so the estimate of d pass@k / d theta is (k/(n-1)) sum_i a_i (x_i - p) (a: our advantages,
    which carry (n-1)/k). Its mean over many groups must match k (1-p)^(k-1) p (1-p) within 4
    standard errors, with and without the baseline, and the baseline must cut the variance."""
    n, groups = 8, 50_000
    g = torch.Generator().manual_seed(k * 100 + int(p * 100))
    x = (torch.rand(groups, n, generator=g, dtype=torch.float64) < p).to(torch.float64)
    adv = pass_at_k_advantages(x.reshape(-1), n, "none", k=k).reshape(groups, n).to(torch.float64)
    score = x - p
    with_baseline = k / (n - 1) * (adv * score).sum(1)
    s, _ = pass_at_k_shares(x.bool(), torch.ones_like(x, dtype=torch.bool), k)
    without = (s * score).sum(1)
    truth = k * (1 - p) ** (k - 1) * p * (1 - p)
    for estimate in (with_baseline, without):
        se = estimate.std().item() / math.sqrt(groups)
        assert abs(estimate.mean().item() - truth) < 4 * se, (estimate.mean().item(), truth, se)
    assert with_baseline.var() < without.var()
