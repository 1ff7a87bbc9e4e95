"""trainers/core_credit.py: GAE, value loss, process supervision (hand-worked and naive loops), and
the purity of the three core modules."""

from __future__ import annotations

import math

import pytest
import torch
from numeric import close

from trainers import core, core_credit, core_logits
from trainers.core import group_advantages, masked_mean, masked_var, policy_loss, sequence_ratio
from trainers.core_credit import (
    clipped_value_loss,
    gae_advantages,
    last_token_index,
    masked_whiten,
    place_token_rewards,
    process_advantages,
    value_clip_fraction,
)
from trainers.core_logits import entropy_from_logits, token_logprobs

T = torch.tensor


def test_masked_whiten():
    x = T([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = T([[1, 1, 1], [1, 0, 0]])
    w = masked_whiten(x, mask)
    # mean 2.5, sample var 5/3: (x - 2.5) / sqrt(5/3)
    s = math.sqrt(5.0 / 3.0)
    close(w, [[-1.5 / s, -0.5 / s, 0.5 / s], [1.5 / s, 0.0, 0.0]], atol=1e-4)
    close(masked_mean(w, mask), 0.0)
    close(masked_var(w, mask), 1.0, atol=1e-4)
    close(masked_whiten(x, mask, shift_mean=False), [[-1.5 / s + 2.5, -0.5 / s + 2.5, 0.5 / s + 2.5],
                                                     [1.5 / s + 2.5, 0.0, 0.0]], atol=1e-4)


@pytest.mark.parametrize("mask,expected", [
    ([[1, 1, 0, 0]], [1]),      # right padding
    ([[0, 0, 1, 1]], [3]),      # left padding
    ([[1, 0, 1, 0]], [2]),      # a hole
    ([[0, 0, 0, 0]], [-1]),     # empty
    ([[1, 1, 1, 1]], [3]),
])
def test_last_token_index(mask, expected):
    assert last_token_index(T(mask)).tolist() == expected


# --------------------------------------------------------------------------- GAE


def test_gae_hand():
    # row 1, gamma .9, lam .5 (gamma lam = .45), V = .5 .6 .7, r = 0 0 1:
    #   t2: delta = 1 + 0 - .7 = .3                 A2 = .3
    #   t1: delta = 0 + .9 * .7 - .6 = .03          A1 = .03 + .45 * .3 = .165
    #   t0: delta = 0 + .9 * .6 - .5 = .04          A0 = .04 + .45 * .165 = .11425
    # row 2, right-padded after 2 tokens (reward 5 and value 9 on padding are ignored):
    #   t1: delta = 1 + 0 - .2 = .8                 A1 = .8
    #   t0: delta = 0 + .9 * .2 - .5 = -.32         A0 = -.32 + .45 * .8 = .04
    rewards = T([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = T([[0.5, 0.6, 0.7], [0.5, 0.2, 9.0]])
    mask = T([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.5)
    close(adv, [[0.11425, 0.165, 0.3], [0.04, 0.8, 0.0]])
    close(ret, [[0.61425, 0.765, 1.0], [0.54, 1.0, 0.0]])


def _naive_gae(rewards, values, mask, gamma, lam):
    adv = torch.zeros_like(values)
    for i in range(values.shape[0]):
        idx = mask[i].nonzero().squeeze(-1).tolist()
        last, next_v = 0.0, 0.0
        for t in reversed(idx):
            delta = rewards[i, t].item() + gamma * next_v - values[i, t].item()
            last = delta + gamma * lam * last
            adv[i, t] = last
            next_v = values[i, t].item()
    return adv


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (0.5, 0.0), (1.0, 1.0)])
@pytest.mark.parametrize("right_padded", [True, False])
def test_gae_matches_naive_loop(gamma, lam, right_padded):
    g = torch.Generator().manual_seed(6)
    rewards, values = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    if right_padded:
        mask = (torch.arange(7) < T([7, 3, 1, 0, 5]).unsqueeze(-1)).float()
    else:  # holes (e.g. tool output tokens) are skipped
        mask = (torch.rand(5, 7, generator=g) > 0.3).float()
    adv, ret = gae_advantages(rewards, values, mask, gamma, lam)
    close(adv, _naive_gae(rewards, values, mask, gamma, lam))
    close(ret, (adv + values) * mask)


def test_gae_with_gamma_lam_one_is_monte_carlo():
    rewards = T([[0.0, 0.5, 1.0, 0.0]])
    values = T([[0.2, 0.3, 0.4, 7.0]])
    adv, ret = gae_advantages(rewards, values, T([[1, 1, 1, 0]]), 1.0, 1.0)
    close(ret, [[1.5, 1.5, 1.0, 0.0]])  # returns = sum of the rewards from t on
    close(adv, [[1.3, 1.2, 0.6, 0.0]])


# --------------------------------------------------------------------------- value loss


def test_clipped_value_loss_hand():
    values, old, returns = T([[1.0, 0.0, 1.9]]), T([[0.5, 0.5, 1.0]]), T([[2.0, 1.0, 2.0]])
    # tok 1: clip 1.0 to [.3, .7] = .7: max((1 - 2)^2, (.7 - 2)^2) = max(1, 1.69) -> .845
    # tok 2: clip 0.0 to [.3, .7] = .3: max((0 - 1)^2, (.3 - 1)^2) = max(1, .49)  -> .5
    # tok 3: clip 1.9 to [.8, 1.2] = 1.2: max(.01, .64)                            -> .32
    close(clipped_value_loss(values, old, returns, 0.2), [[0.845, 0.5, 0.32]])
    close(value_clip_fraction(values, old, returns, torch.ones(1, 3), 0.2), 2 / 3)
    close(value_clip_fraction(values, old, returns, T([[0, 1, 0]]), 0.2), 0.0)


# --------------------------------------------------------------------------- process supervision


def test_process_advantages_hand():
    # group 1: A has steps ending at tokens 1, 3 with rewards 1, 1; B at 1, 2, 4 with 1, 0, 1.
    # all five step rewards: mean .8, deviations .2 x4 and -.8, sample var .8 / 4 = .2,
    # std .447214 -> reward 1 -> .2 / .447214 = .447214, reward 0 -> -.8 / .447214 = -1.788854
    # A: t0 .894 (both steps end >= 0), t1 .894, t2 .447, t3 .447, t4 padding 0
    # B: t0 .447 - 1.789 + .447 = -.894, t1 -.894, t2 -1.789 + .447 = -1.342, t3 .447, t4 .447
    # group 2: every step reward .5 -> all 0
    a, b = 0.2 / math.sqrt(0.2), -0.8 / math.sqrt(0.2)
    mask = T([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    adv = process_advantages([[1.0, 1.0], [1.0, 0.0, 1.0], [0.5], [0.5, 0.5]],
                             [[1, 3], [1, 2, 4], [4], [0, 2]], mask, group_size=2, eps=0.0)
    close(adv, [[2 * a, 2 * a, a, a, 0.0],
                [2 * a + b, 2 * a + b, a + b, a, a],
                [0.0] * 5, [0.0] * 5])
    assert adv[2:].abs().sum().item() == 0.0


def test_process_wrong_intermediate_step_lowers_its_tokens():
    # two completions with the same steps (tokens 0-1, 2-3, 4-5); B's second step is wrong
    mask = torch.ones(2, 6)
    adv = process_advantages([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]], [[1, 3, 5], [1, 3, 5]], mask, group_size=2)
    assert (adv[1, :4] < adv[0, :4]).all()  # the wrong step's tokens (2, 3) and those before it
    close(adv[1, 4:], adv[0, 4:])  # the steps after the error are credited alike


def test_process_advantages_ragged_edge_cases():
    mask = torch.ones(2, 4)
    # a completion without steps gets 0; a single step in the whole group normalises to 0
    assert process_advantages([[], [1.0]], [[], [3]], mask, 2).abs().sum().item() == 0.0
    # tokens after the last step end get 0
    adv = process_advantages([[1.0], [0.0]], [[1], [1]], mask, 2)
    assert adv[:, 2:].abs().sum().item() == 0.0 and adv[0, 0] > 0 > adv[1, 0]
    with pytest.raises(ValueError, match="outside"):
        process_advantages([[1.0], [0.0]], [[1], [4]], mask, 2)
    with pytest.raises(ValueError, match="2 step rewards but 1 step ends"):
        process_advantages([[1.0, 1.0], [0.0]], [[1], [1]], mask, 2)
    with pytest.raises(ValueError, match="groups of 3"):
        process_advantages([[1.0], [0.0]], [[1], [1]], mask, 3)


def test_process_advantages_match_naive_loop():
    g = torch.Generator().manual_seed(7)
    t, group_size = 8, 3
    ends = [sorted(torch.randperm(t, generator=g)[: k].tolist()) for k in (2, 3, 1, 4, 2, 3)]
    rewards = [torch.randint(0, 2, (len(e),), generator=g).float().tolist() for e in ends]
    mask = torch.ones(6, t)
    ours = process_advantages(rewards, ends, mask, group_size, eps=1e-4)
    for k in range(2):
        flat = [r for i in range(k * 3, k * 3 + 3) for r in rewards[i]]
        mean = sum(flat) / len(flat)
        std = math.sqrt(sum((r - mean) ** 2 for r in flat) / (len(flat) - 1))
        for i in range(k * 3, k * 3 + 3):
            for tok in range(t):
                want = sum(0.0 if max(flat) == min(flat) else (r - mean) / (std + 1e-4)
                           for r, e in zip(rewards[i], ends[i]) if e >= tok)
                assert ours[i, tok].item() == pytest.approx(want, abs=1e-5)


def test_place_token_rewards_hand():
    mask = T([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    placed = place_token_rewards(mask, outcome_rewards=T([1.0, 2.0, 3.0]),
                                 step_rewards=[[0.1, 0.2], [0.5], []], step_ends=[[0, 2], [3], []])
    # row 1: step rewards at tokens 0 and 2, outcome 1 at the last token 2 (0.2 + 1)
    # row 2: step 0.5 and outcome 2 both at token 3; row 3 is empty: nothing placed
    close(placed, [[0.1, 0.0, 1.2, 0.0], [0.0, 0.0, 0.0, 2.5], [0.0] * 4])
    close(place_token_rewards(mask, outcome_rewards=T([1.0, 2.0, 3.0])),
          [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0], [0.0] * 4])
    with pytest.raises(ValueError, match="go together"):
        place_token_rewards(mask, step_rewards=[[1.0], [], []])


def test_placed_rewards_through_gae_credit_each_step():
    # gamma = lam = 1, V = 0: a token's advantage is the sum of the rewards placed at or after it,
    # the same rule as process_advantages (which only normalises the step rewards first)
    mask = torch.ones(1, 4)
    placed = place_token_rewards(mask, T([1.0]), [[0.5, -0.25]], [[0, 2]])
    adv, _ = gae_advantages(placed, torch.zeros(1, 4), mask, 1.0, 1.0)
    close(adv, [[1.25, 0.75, 0.75, 1.0]])


@pytest.mark.parametrize("module", [core, core_credit, core_logits])
def test_module_is_pure(module):
    src = open(module.__file__).read()
    for word in ("print(", "import logging", "open(", "import os", "distributed"):
        assert word not in src


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_functions_run_on_cuda_like_on_cpu():
    g = torch.Generator().manual_seed(8)
    logits, tokens = torch.randn(2, 4, 9, generator=g), torch.randint(0, 9, (2, 4), generator=g)
    mask = T([[1, 1, 1, 0], [1, 1, 1, 1]])
    rewards, values = torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    steps, ends = [[1.0, 0.0], [1.0]], [[0, 2], [3]]
    calls = [
        lambda d: token_logprobs(logits.to(d), tokens.to(d), 0.7, chunk_size=3),
        lambda d: entropy_from_logits(logits.to(d), mask.to(d), chunk_size=3),
        lambda d: group_advantages(T([1.0, 0.0, 0.5, 0.5]).to(d), 2),
        lambda d: gae_advantages(rewards.to(d), values.to(d), mask.to(d), 0.99, 0.95)[0],
        lambda d: process_advantages(steps, ends, mask.to(d), 2),
        lambda d: place_token_rewards(mask.to(d), T([1.0, 2.0]), steps, ends),
        lambda d: last_token_index(mask.to(d)),
        lambda d: policy_loss(rewards.to(d), values.to(d), T([1.0, -1.0]).to(d), mask.to(d),
                              ratio_fn=sequence_ratio, ref_logp=values.to(d), beta=0.1),
    ]
    for call in calls:
        torch.testing.assert_close(call("cuda").cpu(), call("cpu"))
