"""Tests of trainers/core.py: hand-worked examples (arithmetic in the comments), naive Python
loops, and edge cases (all-equal groups, empty rows, padding with garbage values)."""

from __future__ import annotations

import math

import pytest
import torch
from numeric import close

from trainers.core import (
    IMPORTANCE_RATIOS,
    REWARD_SCALES,
    GlobalBatch,
    approx_kl,
    clip_fractions,
    clipped_surrogate_loss,
    group_advantages,
    masked_mean,
    masked_sum,
    masked_var,
    policy_loss,
    reinforce_loss,
    sample_std_from_sums,
    sequence_ratio,
    token_ratio,
)

T = torch.tensor
SQRT3 = math.sqrt(3.0)

# --------------------------------------------------------------------------- masked statistics


def test_masked_sum_mean_var_hand():
    x = T([[1.0, 2.0, 3.0], [4.0, 100.0, -7.0]])
    mask = T([[1, 1, 1], [1, 0, 0]])
    close(masked_sum(x, mask), 10.0)  # 1 + 2 + 3 + 4
    close(masked_sum(x, mask, dim=-1), [6.0, 4.0])
    close(masked_mean(x, mask), 2.5)  # 10 / 4
    close(masked_mean(x, mask, dim=-1), [2.0, 4.0])
    # deviations from 2.5: -1.5 -0.5 0.5 1.5 -> squares sum 5; sample var 5 / 3, population 5 / 4
    close(masked_var(x, mask), 5.0 / 3.0)
    close(masked_var(x, mask, unbiased=False), 1.25)


def test_masked_mean_of_empty_rows_and_batches_is_zero_not_nan():
    x = T([[float("nan"), 1.0], [2.0, 3.0]])
    mask = T([[0, 0], [1, 1]], dtype=torch.bool)
    close(masked_mean(x.nan_to_num(), mask, dim=-1), [0.0, 2.5])
    close(masked_mean(T([[5.0, 6.0]]), T([[0.0, 0.0]])), 0.0)
    close(masked_var(T([[5.0, 6.0]]), T([[1.0, 0.0]])), 0.0)  # a single token has no spread


# --------------------------------------------------------------------------- GRPO advantages


def test_group_advantages_hand_group_scaling():
    # group 1 [1, 0, 0]: mean 1/3; sample var ((2/3)^2 + 2 (1/3)^2) / 2 = 1/3, std 1/sqrt 3
    #   -> (2/3) sqrt 3 = 1.154701, -(1/3) sqrt 3 = -0.577350
    # group 2 [0.5, 0.5, 0.5]: all equal -> 0
    rewards = T([1.0, 0.0, 0.0, 0.5, 0.5, 0.5])
    close(group_advantages(rewards, 3, "group", eps=0.0),
          [2 / 3 * SQRT3, -1 / 3 * SQRT3, -1 / 3 * SQRT3, 0.0, 0.0, 0.0])
    # default eps 1e-4: (2/3) / (0.577350 + 0.0001) = 1.154501
    close(group_advantages(rewards, 3)[0], (2 / 3) / (1 / SQRT3 + 1e-4))


def test_group_advantages_hand_group_of_two():
    # [2, 4]: mean 3, sample std sqrt((1 + 1) / 1) = sqrt 2 -> -+ 1/sqrt 2 (population std would give -+1)
    close(group_advantages(T([2.0, 4.0, 1.0, 0.0]), 2, eps=0.0),
          [-1 / math.sqrt(2), 1 / math.sqrt(2), 1 / math.sqrt(2), -1 / math.sqrt(2)])


def test_group_advantages_hand_batch_scaling():
    # all six rewards [1, 0, 0, .5, .5, .5]: mean 2.5 / 6 = 5/12, deviations 7/12, -5/12, -5/12,
    # 1/12 x3; squares (49 + 25 + 25 + 3) / 144 = 102/144; sample var 102/144/5 = 0.141667,
    # std 0.376386; group 1 is centred by ITS mean 1/3: 2/3 / 0.376386 = 1.771230
    rewards = T([1.0, 0.0, 0.0, 0.5, 0.5, 0.5])
    s = math.sqrt(102 / 144 / 5)
    close(group_advantages(rewards, 3, "batch", eps=0.0), [2 / 3 / s, -1 / 3 / s, -1 / 3 / s, 0.0, 0.0, 0.0])


def test_batch_scaling_of_one_ranks_share_uses_the_whole_batchs_std():
    # the batch above split over 2 ranks: each all-reduces n = 6, sum 2.5, sum of squares
    # 1 + 3 * .25 = 1.75 -> var (1.75 - 2.5^2 / 6) / 5 = 0.141667, the std of the whole batch
    s = math.sqrt(102 / 144 / 5)
    close(sample_std_from_sums(6, 2.5, 1.75), s)
    first_group = group_advantages(T([1.0, 0.0, 0.0]), 3, "batch", eps=0.0, batch_std=s)
    close(first_group, [2 / 3 / s, -1 / 3 / s, -1 / 3 / s])  # as in the whole batch, not its own std
    # the other scalings ignore it: a group's own std, or none
    close(group_advantages(T([1.0, 0.0, 0.0]), 3, "group", eps=0.0, batch_std=s),
          group_advantages(T([1.0, 0.0, 0.0]), 3, "group", eps=0.0))
    close(group_advantages(T([1.0, 0.0, 0.0]), 3, "none", batch_std=s), [2 / 3, -1 / 3, -1 / 3])


def test_group_advantages_hand_no_scaling():
    close(group_advantages(T([1.0, 0.0, 0.0, 3.0, 1.0, 2.0]), 3, "none"),
          [2 / 3, -1 / 3, -1 / 3, 1.0, -1.0, 0.0])


@pytest.mark.parametrize("scale", sorted(REWARD_SCALES))
@pytest.mark.parametrize("value", [0.1, 1 / 3, 7.3, -2.2, 0.0, 1e-8])
def test_all_equal_group_gets_exactly_zero(scale, value):
    # float rounding makes mean([0.1] * 3) != 0.1; the advantage must still be exactly 0
    rewards = T([value] * 3 + [1.0, 0.0, 0.5])
    adv = group_advantages(rewards, 3, scale)
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert adv[3] > 0 > adv[4]


@pytest.mark.parametrize("scale", sorted(REWARD_SCALES))
def test_group_advantages_match_naive_loop(scale):
    g = torch.Generator().manual_seed(2)
    group_size, n_groups, eps = 4, 3, 1e-4
    rewards = torch.randint(0, 3, (n_groups * group_size,), generator=g).double() / 2
    flat = rewards.tolist()

    def std(xs):
        m = sum(xs) / len(xs)
        return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))

    expected = []
    for k in range(n_groups):
        grp = flat[k * group_size:(k + 1) * group_size]
        mean = sum(grp) / group_size
        div = {"group": std(grp) + eps, "batch": std(flat) + eps, "none": 1.0}[scale]
        expected += [0.0 if max(grp) == min(grp) else (r - mean) / div for r in grp]
    torch.testing.assert_close(group_advantages(rewards, group_size, scale, eps), T(expected, dtype=torch.float64))


def test_group_advantages_group_of_one_is_zero_and_errors_name_the_problem():
    assert group_advantages(T([3.0, 5.0]), 1).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(T([1.0, 2.0, 3.0]), 4)
    with pytest.raises(ValueError, match=r"valid choices: \['batch', 'group', 'none'\]"):
        group_advantages(T([1.0, 2.0]), 2, "std")


# --------------------------------------------------------------------------- ratios


def test_token_and_sequence_ratio_hand():
    logp = T([[-1.0, -2.0, 50.0], [-1.0, -1.0, -1.0]])
    old = T([[-1.2, -2.4, -50.0], [-1.1, -1.1, -0.5]])
    mask = T([[1, 1, 0], [1, 1, 1]])
    # token: exp(0.2), exp(0.4), padding -> 1 (its log-ratio 100 would be e^100)
    close(token_ratio(logp, old, mask),
          [[math.exp(0.2), math.exp(0.4), 1.0], [math.exp(0.1), math.exp(0.1), math.exp(-0.5)]])
    # sequence: row 1 mean(0.2, 0.4) = 0.3 -> e^0.3 = 1.349859; row 2 mean(.1, .1, -.5) = -0.1 -> 0.904837
    close(sequence_ratio(logp, old, mask), [[math.exp(0.3)] * 3, [math.exp(-0.1)] * 3])
    empty = T([[0, 0, 0], [1, 1, 1]])
    close(sequence_ratio(logp, old, empty)[0], [1.0, 1.0, 1.0])
    assert set(IMPORTANCE_RATIOS) == {"token", "sequence"}


def test_ratios_ignore_infinite_log_probs_on_padding():
    logp = T([[-1.0, float("-inf")]])
    old = T([[-1.0, -3.0]])
    mask = T([[1, 0]])
    for fn in IMPORTANCE_RATIOS.values():
        assert torch.isfinite(fn(logp, old, mask)).all()


def test_gspo_gradient_is_the_papers():
    # GSPO: grad = -(1/B) s_i A_i (1/|y_i|) grad log pi(y_i,t) for each valid token (unclipped)
    logp = T([[-1.0, -2.0, -3.0], [-0.5, -0.7, -0.9]], requires_grad=True)
    old = T([[-1.1, -2.1, -3.0], [-0.4, -0.7, -0.8]])
    mask = T([[1, 1, 0], [1, 1, 1]])
    adv = T([1.5, -0.5])
    loss = policy_loss(logp, old, adv, mask, ratio_fn=sequence_ratio, clip_eps_low=10.0, clip_eps_high=10.0)
    (grad,) = torch.autograd.grad(loss, logp)
    s = [math.exp(0.1), math.exp(-0.2 / 3)]  # row 1: mean(.1, .1); row 2: mean(-.1, 0, -.1)
    expected = [[-s[0] * 1.5 / 2 / 2] * 2 + [0.0], [s[1] * 0.5 / 3 / 2] * 3]
    close(grad, expected)
    # with GSPO's tiny clip range the positive-advantage sequence (s > 1 + 4e-4) is clipped: no gradient
    loss = policy_loss(logp, old, adv, mask, ratio_fn=sequence_ratio, clip_eps_low=3e-4, clip_eps_high=4e-4)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad[0].abs().sum() == 0


# --------------------------------------------------------------------------- clipped surrogate


# (ratio, advantage, eps_low, eps_high, delta, expected per-token loss); worked by hand:
# loss = -min(min(r, delta) * A, clip(r, 1 - lo, 1 + hi) * A)
SURROGATE_TABLE = [
    (1.0, 1.0, 0.2, 0.2, None, -1.0),
    (0.5, 1.0, 0.2, 0.2, None, -0.5),    # min(0.5, 0.8) = 0.5; clipped-in-both would give -0.8
    (1.5, 1.0, 0.2, 0.2, None, -1.2),    # min(1.5, 1.2) = 1.2
    (1.5, 1.0, 0.2, 0.28, None, -1.28),  # clip-higher: min(1.5, 1.28)
    (1.1, 1.0, 0.2, 0.28, None, -1.1),   # inside the band
    (0.5, -1.0, 0.2, 0.2, None, 0.8),    # min(-0.5, -0.8) = -0.8
    (0.9, -1.0, 0.2, 0.2, None, 0.9),    # min(-0.9, -0.9)
    (1.5, -1.0, 0.2, 0.2, None, 1.5),    # min(-1.5, -1.2) = -1.5; clipped-in-both would give 1.2
    (3.0, -2.0, 0.2, 0.2, None, 6.0),    # min(-6, -2.4) = -6: unbounded without delta
    (3.0, -2.0, 0.2, 0.2, 1.4, 2.8),     # delta: min(min(3, 1.4) * -2, 1.2 * -2) = min(-2.8, -2.4)
    (1.5, -1.0, 0.2, 0.28, 1.4, 1.4),    # min(-1.4, -1.28) = -1.4
    (1.5, 1.0, 0.2, 0.28, 1.4, -1.28),   # A > 0: delta irrelevant, min(1.4, 1.28)
    (0.5, 0.0, 0.2, 0.2, 1.4, 0.0),
]


@pytest.mark.parametrize("ratio,adv,lo,hi,delta,expected", SURROGATE_TABLE)
def test_clipped_surrogate_table(ratio, adv, lo, hi, delta, expected):
    close(clipped_surrogate_loss(T([[ratio]]), T([[adv]]), lo, hi, delta), [[expected]])


def test_clipped_surrogate_matches_naive_loop_and_broadcasts_sequence_advantages():
    g = torch.Generator().manual_seed(3)
    ratio = torch.rand(4, 5, generator=g) * 2
    adv = torch.randn(4, generator=g)
    ours = clipped_surrogate_loss(ratio, adv, 0.2, 0.28, 1.6)
    for i in range(4):
        for t in range(5):
            r, a = ratio[i, t].item(), adv[i].item()
            want = -min(min(r, 1.6) * a, max(0.8, min(1.28, r)) * a)
            assert ours[i, t].item() == pytest.approx(want, abs=1e-6)
    close(ours, clipped_surrogate_loss(ratio, adv.unsqueeze(-1).expand(4, 5), 0.2, 0.28, 1.6))


def test_clipped_tokens_get_no_gradient():
    logp = torch.zeros(1, 4, requires_grad=True)
    old = T([[0.0, -math.log(1.5), math.log(2.0), 0.0]])  # ratios 1, 1.5, 0.5, 1
    ratio = token_ratio(logp, old, torch.ones(1, 4))
    loss = clipped_surrogate_loss(ratio, T([1.0]), 0.2, 0.2).sum()
    (grad,) = torch.autograd.grad(loss, logp)
    # d(-r A)/d logp = -r A where unclipped; 0 for the ratio 1.5 > 1.2 with A > 0
    close(grad, [[-1.0, 0.0, -0.5, -1.0]])


# --------------------------------------------------------------------------- KL


def test_approx_kl():
    logp, old = T([[0.0, math.log(2.0)]]), T([[0.0, 0.0]])
    # token 2: r = 2: (r - 1) - ln r = 1 - 0.693147 = 0.306853; mean with token 1 (0) -> 0.153426
    close(approx_kl(logp, old, T([[1, 1]])), (1 - math.log(2.0)) / 2)
    close(approx_kl(logp, old, T([[1, 0]])), 0.0)


# --------------------------------------------------------------------------- full policy loss


def test_policy_loss_hand_with_kl():
    logp = T([[-1.0, -1.0]], requires_grad=True)
    old = T([[-1.0, -1.0 - math.log(1.5)]])  # ratios 1, 1.5
    ref = T([[-1.0, -2.0]])
    # surrogate with A = 1, eps .2: -1, -min(1.5, 1.2) = -1.2
    # k3: d = ref - logp = 0, -1 -> 0, e^-1 + 1 - 1 = 0.367879; beta .1 -> 0, 0.0367879
    # grpo: mean(-1, -1.2 + 0.0367879) = -1.0816060
    loss = policy_loss(logp, old, T([1.0]), T([[1, 1]]), ref_logp=ref, beta=0.1)
    close(loss, (-1.0 - 1.2 + 0.1 * math.exp(-1.0)) / 2)
    # the gradient of the KL term flows through logp: d k3 / d logp = 1 - e^(ref - logp)
    (grad,) = torch.autograd.grad(loss, logp)
    close(grad, [[(-1.0 + 0.1 * 0.0) / 2, (0.0 + 0.1 * (1 - math.exp(-1.0))) / 2]])
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, old, T([1.0]), T([[1, 1]]), beta=0.1)


def test_on_policy_loss_gradient_is_policy_gradient():
    # old = logp.detach(): ratio 1, gradient of grpo loss = -A_i / |y_i| / B on valid tokens
    logp = T([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]], requires_grad=True)
    mask = T([[1, 1, 0], [1, 1, 1]])
    loss = policy_loss(logp, logp.detach(), T([2.0, -1.0]), mask)
    close(loss, -(2.0 - 1.0) / 2)
    (grad,) = torch.autograd.grad(loss, logp)
    close(grad, [[-2.0 / 2 / 2, -2.0 / 2 / 2, 0.0], [1.0 / 3 / 2] * 3])


def test_reinforce_loss_hand():
    logp = T([[-1.0, -2.0, -3.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    mask = T([[1, 1, 0], [1, 1, 1]])
    w = T([1.0, -1.0], requires_grad=True)
    # log pi(y_1) = -3, log pi(y_2) = -1.5: loss = -(1 * -3 + -1 * -1.5) / 2 = 0.75
    loss = reinforce_loss(logp, w, mask)
    close(loss, 0.75)
    grad_logp, grad_w = torch.autograd.grad(loss, [logp, w], allow_unused=True)
    close(grad_logp, [[-0.5, -0.5, 0.0], [0.5, 0.5, 0.5]])  # -w_i / B on every valid token
    assert grad_w is None  # the weights are detached
    # as one of two minibatches of a 4-row step: half of it
    close(reinforce_loss(logp, w, mask, GlobalBatch(rows=4, tokens=10)), 0.375)


def test_reinforce_with_group_advantages_naive():
    rewards = T([1.0, 0.0, 0.0, 1.0])
    w = group_advantages(rewards, 2, eps=0.0)  # [1/sqrt2, -1/sqrt2, -1/sqrt2, 1/sqrt2]
    logp = -torch.arange(1.0, 9.0).reshape(4, 2) / 10
    mask = torch.ones(4, 2)
    expected = -sum(w[i].item() * logp[i].sum().item() for i in range(4)) / 4
    close(reinforce_loss(logp, w, mask), expected)


# --------------------------------------------------------------------------- statistics


def test_clip_fractions_hand():
    ratio = T([[0.7, 1.0, 1.3], [0.7, 1.0, 1.3]])
    adv = T([1.0, -1.0])
    # row 1 (A > 0): 1.3 > 1.2 is clipped high; row 2 (A < 0): 0.7 < 0.8 is clipped low
    stats = clip_fractions(ratio, adv, torch.ones(2, 3))
    close([stats["low"], stats["high"], stats["region"]], [1 / 6, 1 / 6, 2 / 6])
    stats = clip_fractions(ratio, adv, T([[1, 1, 0], [1, 1, 1]]))
    close([stats["low"], stats["high"], stats["region"]], [1 / 5, 0.0, 1 / 5])
    stats = clip_fractions(ratio, adv, torch.ones(2, 3), clip_eps_low=0.35, clip_eps_high=0.35)
    close(stats["region"], 0.0)
