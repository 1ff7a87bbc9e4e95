"""The off-policy corrections (`trainers.core_offpolicy`) against numbers worked by hand, a
naive loop, and the exact reduction to today's loss when the behaviour policy is pi_old."""

from __future__ import annotations

import math

import pytest
import torch

from trainers import core
from trainers.core_offpolicy import (
    OFF_POLICY_CORRECTIONS,
    correction,
    decoupled_weights,
    importance_weights,
    off_policy_stats,
    tis_weights,
    weighted,
)

# One completion of 2 tokens and a padding column. pi_old = 0.5, 0.2; pi_behav = 0.25, 0.4 (the
# padding column holds garbage): weights pi_old / pi_behav = 2.0, 0.5, and 1 on padding.
OLD = torch.log(torch.tensor([[0.5, 0.2, 1e-30]]))
BEHAV = torch.log(torch.tensor([[0.25, 0.4, 0.9]]))
MASK = torch.tensor([[1.0, 1.0, 0.0]])


def test_importance_weights_by_hand():
    assert importance_weights(OLD, BEHAV, MASK)[0].tolist() == pytest.approx([2.0, 0.5, 1.0])


@pytest.mark.parametrize("fn, cap, expected", [
    (tis_weights, 1.5, [1.5, 0.5, 1.0]),          # 2.0 truncated to the cap
    (tis_weights, None, [2.0, 0.5, 1.0]),
    (decoupled_weights, 1.5, [0.0, 0.5, 1.0]),    # 2.0 > cap: the token leaves the loss
    (decoupled_weights, 5.0, [2.0, 0.5, 1.0]),
    (decoupled_weights, None, [2.0, 0.5, 1.0]),
])
def test_weights_by_hand(fn, cap, expected):
    assert fn(OLD, BEHAV, MASK, cap)[0].tolist() == pytest.approx(expected)


def test_weights_match_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    old, behav = -torch.rand(4, 6, generator=g) * 3, -torch.rand(4, 6, generator=g) * 3
    mask = (torch.rand(4, 6, generator=g) > 0.3).float()
    for name, cap in (("tis", 1.7), ("decoupled", 1.7)):
        got = correction(name, cap)(old, behav, mask)
        for i in range(4):
            for t in range(6):
                w = math.exp(old[i, t] - behav[i, t]) if mask[i, t] else 1.0
                want = min(w, cap) if name == "tis" else (w if w <= cap else 0.0)
                assert got[i, t].item() == pytest.approx(want, rel=1e-6), (name, i, t)


def test_stats_by_hand():
    stats = off_policy_stats(OLD, BEHAV, MASK, cap=1.5)
    # k3 of KL(behav || old) per token: d = log(old/behav); exp(d) - d - 1:
    # log 2: 2 - 0.693147 - 1 = 0.306853; log 0.5: 0.5 + 0.693147 - 1 = 0.193147; mean 0.25.
    assert {k: float(v) for k, v in stats.items()} == pytest.approx(
        {"is_weight_mean": 1.25, "is_weight_max": 2.0, "is_weight_capped_frac": 0.5, "mismatch_kl": 0.25})
    assert float(off_policy_stats(OLD, BEHAV, MASK, cap=None)["is_weight_capped_frac"]) == 0.0


def test_weighted_policy_loss_and_gradient_by_hand():
    # On-policy ratio 1 and A = 1: each token's surrogate is -1, weighted -w; grpo averages the
    # 2 tokens: tis (cap 1.5) -(1.5 + 0.5) / 2 = -1.0, decoupled (cap 1.5) -(0 + 0.5) / 2 = -0.25.
    # d/dlogp_t of -w_t * exp(logp_t - old_t) / 2 at ratio 1 is -w_t / 2.
    for name, loss_value, grad in (("tis", -1.0, [-0.75, -0.25, 0.0]), ("decoupled", -0.25, [0.0, -0.25, 0.0]),
                                   ("none", -1.0, [-0.5, -0.5, 0.0])):
        logp = OLD.clone().requires_grad_(True)
        weights = correction(name, 1.5)(OLD, BEHAV, MASK)
        loss = core.policy_loss(logp, OLD, torch.tensor([1.0]), MASK, weights=weights)
        loss.backward()
        assert float(loss.detach()) == pytest.approx(loss_value), name
        assert logp.grad[0].tolist() == pytest.approx(grad), name


def test_the_clip_acts_inside_the_weight():
    # Token 1's ratio to pi_old is 1.5, clipped at 1.2 for A = 1: -min(1.5, 1.2) * 1.5 (tis) = -1.8;
    # token 2, ratio 1: -1 * 0.5 = -0.5; mean over the 2 tokens -1.15. The clipped token has no gradient.
    logp = (OLD + torch.tensor([[math.log(1.5), 0.0, 0.0]])).requires_grad_(True)
    loss = core.policy_loss(logp, OLD, torch.tensor([1.0]), MASK, weights=tis_weights(OLD, BEHAV, MASK, 1.5))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-1.15)
    assert logp.grad[0].tolist() == pytest.approx([0.0, -0.25, 0.0])


def test_the_kl_term_is_not_weighted():
    # beta * k3(pi || ref) is added after the weight: with logp = ref it is 0 and changes nothing;
    # with ref = log 0.25 on token 1 (d = log 0.5, k3 = 0.193147), beta 1 adds 0.193147 / 2 unweighted.
    ref = OLD.clone()
    ref[0, 0] = math.log(0.25)
    w = decoupled_weights(OLD, BEHAV, MASK, 1.5)   # token 1 dropped from the surrogate, not from the KL
    loss = core.policy_loss(OLD, OLD, torch.tensor([1.0]), MASK, weights=w, ref_logp=ref, beta=1.0)
    assert float(loss) == pytest.approx(-0.25 + 0.193147 / 2, abs=1e-6)


@pytest.mark.parametrize("agg", sorted(core.LOSS_AGGREGATIONS))
@pytest.mark.parametrize("name", sorted(OFF_POLICY_CORRECTIONS))
def test_staleness_zero_gives_todays_loss_exactly(agg, name):
    """Behaviour log-probs equal to pi_old: every weight is exp(0) = 1, so the loss and its
    gradient are today's bit for bit, for every aggregation and the sequence ratio too."""
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(6, 5, generator=g) * 2
    logp0 = old + 0.3 * torch.randn(6, 5, generator=g)
    mask = (torch.rand(6, 5, generator=g) > 0.2).float()
    adv = torch.randn(6, generator=g)
    for ratio_fn in core.IMPORTANCE_RATIOS.values():
        kw = dict(ratio_fn=ratio_fn, loss_agg_mode=agg, max_new_tokens=5, clip_eps_high=0.28, delta=2.0)
        plain = logp0.clone().requires_grad_(True)
        today = core.policy_loss(plain, old, adv, mask, **kw)
        today.backward()
        corrected = logp0.clone().requires_grad_(True)
        loss = core.policy_loss(corrected, old, adv, mask, weights=correction(name, 2.0)(old, old.clone(), mask), **kw)
        loss.backward()
        assert torch.equal(loss, today) and torch.equal(corrected.grad, plain.grad)
    plain = logp0.clone().requires_grad_(True)
    corrected = logp0.clone().requires_grad_(True)
    today = core.reinforce_loss(plain, adv, mask)
    loss = core.reinforce_loss(weighted(corrected, correction(name, 2.0)(old, old.clone(), mask)), adv, mask)
    today.backward()
    loss.backward()
    assert torch.equal(loss, today) and torch.equal(corrected.grad, plain.grad)


def test_reinforce_weights_each_tokens_log_prob():
    # -(1/B) * A * sum_t w_t logp_t with B = 1, A = 2: -2 * (2.0 * log 0.5 + 0.5 * log 0.2) = 4.38203
    loss = core.reinforce_loss(weighted(OLD, importance_weights(OLD, BEHAV, MASK)), torch.tensor([2.0]), MASK)
    assert float(loss) == pytest.approx(-2 * (2.0 * math.log(0.5) + 0.5 * math.log(0.2)))


def test_no_behaviour_log_probs_means_no_weight_and_unknown_names_are_refused():
    assert correction("tis", 2.0)(OLD, None, MASK) is None
    assert correction("none", None)(OLD, BEHAV, MASK) is None
    with pytest.raises(ValueError, match="unknown off-policy correction 'is'.*decoupled"):
        correction("is", 2.0)


@pytest.mark.parametrize("rollout, staleness, chosen, applied, cap", [
    ("sync", 1, "auto", "none", None),      # fresh rows: nothing to correct, no log-probs to compute
    ("async", 0, "auto", "none", None),     # staleness 0 stays the sync run bit for bit
    ("async", 1, "auto", "tis", 2.0),       # stale rows: truncated importance weights
    ("async", 2, "decoupled", "decoupled", 5.0),
    ("sync", 0, "tis", "tis", 2.0),         # an explicit choice holds in either mode (a vLLM sampler's mismatch)
    ("async", 3, "none", "none", None),
])
def test_auto_corrects_stale_rows_with_tis_and_leaves_fresh_ones_alone(rollout, staleness, chosen, applied, cap):
    from trainers.grpo import GRPOConfig

    cfg = GRPOConfig(rollout=rollout, max_staleness=staleness, off_policy_correction=chosen)
    cfg.validate()
    assert (cfg.correction(), cfg.correction_cap()) == (applied, cap)
    assert GRPOConfig().off_policy_correction == "auto"
