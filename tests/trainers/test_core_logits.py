"""Tests of trainers/core_logits.py: log-probs and entropy against torch's own, the KL estimators
by hand and in expectation."""

from __future__ import annotations

import math

import pytest
import torch
from numeric import close

from trainers.core_logits import KL_ESTIMATORS, entropy_from_logits, kl_k1, kl_k2, kl_k3, token_logprobs

T = torch.tensor
SQRT3 = math.sqrt(3.0)


def test_token_logprobs_hand():
    # logits [0, ln 3]: softmax [1/4, 3/4]
    logits = T([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    close(token_logprobs(logits, T([[0, 1]])), [[math.log(0.25), math.log(0.75)]])
    # temperature 2: logits [0, ln 3 / 2] -> softmax [1/(1+sqrt 3), sqrt 3/(1+sqrt 3)]
    close(token_logprobs(logits, T([[0, 1]]), temperature=2.0),
          [[-math.log(1 + SQRT3), math.log(SQRT3 / (1 + SQRT3))]])


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 1024])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_matches_log_softmax_gather_with_grad(chunk_size, temperature):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g, requires_grad=True)
    tokens = torch.randint(0, 11, (3, 5), generator=g)
    ours = token_logprobs(logits, tokens, temperature, chunk_size)
    ref = torch.log_softmax(logits / temperature, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    close(ours, ref)
    (g1,) = torch.autograd.grad(ours.sum(), logits)
    (g2,) = torch.autograd.grad(ref.sum(), logits)
    close(g1, g2)


def test_entropy_hand_and_reference():
    # p = [1/4, 3/4]: H = 0.25 ln 4 + 0.75 ln(4/3) = 0.346574 + 0.215762 = 0.562335
    logits = T([[[0.0, math.log(3.0)], [5.0, 5.0]]])
    close(entropy_from_logits(logits), [[0.562335, math.log(2.0)]])
    close(entropy_from_logits(logits, mask=T([[1, 0]])), [[0.562335, 0.0]])
    close(entropy_from_logits(torch.zeros(1, 1, 7)), [[math.log(7.0)]])
    close(entropy_from_logits(T([[[0.0, -1e4, -1e4]]])), [[0.0]], atol=1e-6)  # one certain token
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 13, generator=g) * 3
    ref = torch.distributions.Categorical(logits=logits).entropy()
    close(entropy_from_logits(logits, chunk_size=2), ref)


def test_kl_estimators_hand():
    logp, ref = T([-1.0, -2.0, -1.0]), T([-2.0, -1.0, -1.0])
    close(kl_k1(logp, ref), [1.0, -1.0, 0.0])
    close(kl_k2(logp, ref), [0.5, 0.5, 0.0])
    # k3: d = ref - logp = -1, 1, 0 -> e^-1 + 1 - 1 = 0.367879, e - 1 - 1 = 0.718282, 0
    close(kl_k3(logp, ref), [math.exp(-1.0), math.e - 2.0, 0.0])
    assert set(KL_ESTIMATORS) == {"k1", "k2", "k3"}


def test_k3_is_nonnegative_and_unbiased():
    # categorical pi, ref: E_pi[k1] = E_pi[k3] = KL(pi || ref) exactly (sum over the support)
    g = torch.Generator().manual_seed(4)
    logpi = torch.log_softmax(torch.randn(6, generator=g), -1)
    logref = torch.log_softmax(torch.randn(6, generator=g), -1)
    kl = (logpi.exp() * (logpi - logref)).sum()
    close((logpi.exp() * kl_k3(logpi, logref)).sum(), kl)
    close((logpi.exp() * kl_k1(logpi, logref)).sum(), kl)
    assert (kl_k3(torch.randn(100, generator=g), torch.randn(100, generator=g)) >= 0).all()
