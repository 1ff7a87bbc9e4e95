"""trainers/core.py's loss aggregation: a minibatch's loss as its share of the optimizer step's
loss over minibatches and data-parallel ranks (`aggregate_loss`, `GlobalBatch`), hand-worked
(arithmetic in the comments) and against one big batch."""

from __future__ import annotations

import pytest
import torch
from numeric import close

from trainers.core import LOSS_AGGREGATIONS, GlobalBatch, aggregate_loss, policy_loss

T = torch.tensor


LOSS = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = T([[1, 1, 0], [1, 1, 1]])


def test_aggregations_hand():
    # batch None: these 2 rows and 5 tokens are the whole step on one process
    close(aggregate_loss(LOSS, MASK, "grpo"), 3.25)  # (1.5 + 5) / 2
    close(aggregate_loss(LOSS, MASK, "bnpo"), 3.6)  # (1 + 2 + 4 + 5 + 6) / 5 = 18 / 5
    close(aggregate_loss(LOSS, MASK, "dr_grpo", max_new_tokens=4), 2.25)  # 18 / (2 * 4)
    close(aggregate_loss(LOSS, MASK, "dapo"), 3.6)  # 18 / 5
    assert set(LOSS_AGGREGATIONS) == {"grpo", "bnpo", "dr_grpo", "dapo"}
    assert GlobalBatch.of(MASK) == GlobalBatch(rows=2.0, tokens=5.0, dp_size=1)


def test_aggregations_are_shares_of_the_global_batch_hand():
    # the 2 rows are one minibatch of a step with 4 rows and 10 tokens, on 1 process
    step = GlobalBatch(rows=4, tokens=10)
    close(aggregate_loss(LOSS, MASK, "grpo", step), 1.625)  # (1.5 + 5) / 4
    close(aggregate_loss(LOSS, MASK, "bnpo", step), 1.8)  # 18 / 5, weighted by 2 of 4 rows
    close(aggregate_loss(LOSS, MASK, "dr_grpo", step, max_new_tokens=4), 1.125)  # 18 / (4 * 4)
    close(aggregate_loss(LOSS, MASK, "dapo", step), 1.8)  # 18 / 10
    # on 2 ranks each gradient is averaged (halved): every share is doubled to undo it
    for mode in LOSS_AGGREGATIONS:
        one = aggregate_loss(LOSS, MASK, mode, step, max_new_tokens=4)
        close(aggregate_loss(LOSS, MASK, mode, GlobalBatch(rows=4, tokens=10, dp_size=2), max_new_tokens=4), 2 * one)


def test_ranks_average_to_the_one_process_loss_hand():
    # rank 0 holds row 0 (2 tokens), rank 1 row 1 (3 tokens); the step: 2 rows, 5 tokens, 2 ranks
    step = GlobalBatch(rows=2, tokens=5, dp_size=2)
    ranks = [(LOSS[:1], MASK[:1]), (LOSS[1:], MASK[1:])]
    shares = {m: [aggregate_loss(x, mask, m, step, max_new_tokens=4).item() for x, mask in ranks]
              for m in LOSS_AGGREGATIONS}
    close(shares["grpo"], [1.5, 5.0])  # row means 1.5 and 5, each 1 of 2 rows x 2 ranks
    close(shares["dapo"], [1.2, 6.0])  # 3 / 5 x 2 and 15 / 5 x 2
    for mode in ("grpo", "dr_grpo", "dapo"):  # the ranks' average is the one-process loss
        close(sum(shares[mode]) / 2, aggregate_loss(LOSS, MASK, mode, max_new_tokens=4))
    # bnpo's normaliser is each minibatch's own tokens: the average of 1.5 and 5, not 18 / 5
    close(sum(shares["bnpo"]) / 2, 3.25)


def test_aggregations_with_empty_rows_and_batches():
    empty_row = T([[0, 0, 0], [1, 1, 1]])
    close(aggregate_loss(LOSS, empty_row, "grpo"), 2.5)  # (0 + 5) / 2: the empty row counts as 0
    close(aggregate_loss(LOSS, empty_row, "bnpo"), 5.0)
    nothing = torch.zeros(2, 3)
    for name in LOSS_AGGREGATIONS:
        value = aggregate_loss(LOSS, nothing, name, GlobalBatch(rows=2, tokens=0), max_new_tokens=3)
        assert value.item() == 0.0, name


def test_aggregations_need_their_normalizers():
    with pytest.raises(ValueError, match="max_new_tokens"):
        aggregate_loss(LOSS, MASK, "dr_grpo")
    with pytest.raises(ValueError, match=r"unknown loss aggregation 'token-mean'; valid choices: \['bnpo'"):
        aggregate_loss(LOSS, MASK, "token-mean")


def _grads(logp, old, adv, mask, mode, **kw):
    loss = policy_loss(logp, old, adv, mask, loss_agg_mode=mode, clip_eps_high=0.28, **kw)
    return torch.autograd.grad(loss, logp)[0]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(5)
    logp = (-torch.rand(4, 5, generator=g) * 3).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(4, 5, generator=g)
    adv = torch.randn(4, generator=g)
    mask = (torch.arange(5) < T([5, 2, 4, 1]).unsqueeze(-1)).float()  # 12 tokens, 7 + 5 per half
    return logp, old, adv, mask


def _split_grads_by_rows(logp, old, adv, mask, mode, k=2, **kw):
    total = torch.zeros_like(logp)
    for rows in torch.arange(logp.shape[0]).chunk(k):
        loss = policy_loss(logp[rows], old[rows], adv[rows], mask[rows], loss_agg_mode=mode,
                           clip_eps_high=0.28, **kw)
        total += torch.autograd.grad(loss, logp)[0]
    return total


@pytest.mark.parametrize("mode", ["grpo", "dr_grpo", "dapo"])
def test_gradient_accumulation_equals_one_big_batch(batch, mode):
    logp, old, adv, mask = batch
    full = _grads(logp, old, adv, mask, mode, max_new_tokens=5)
    # each minibatch only sees its own rows; the step's 4 rows and 12 tokens normalise both
    half = _split_grads_by_rows(logp, old, adv, mask, mode, batch=GlobalBatch(rows=4, tokens=12), max_new_tokens=5)
    close(half, full)
    assert full.abs().sum() > 0


def test_bnpo_accumulation_keeps_its_minibatch_normaliser(batch):
    logp, old, adv, mask = batch
    # minibatch token counts 7 and 5 differ from 12 / 2: bnpo's summed shares are not one big batch's
    step = GlobalBatch(rows=4, tokens=12)
    full = _grads(logp, old, adv, mask, "bnpo")
    assert not torch.allclose(_split_grads_by_rows(logp, old, adv, mask, "bnpo", batch=step), full)
