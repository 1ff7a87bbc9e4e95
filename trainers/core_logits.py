"""Per-token quantities of the policy, pure tensor functions beside `trainers/core.py`: log-probs
and entropy from a forward's logits, and the KL estimators (`KL_ESTIMATORS`: k1, k2, k3) between
two policies' log-probs.

Log-probs and entropy work in chunks of rows, so no (B, T, V) log-softmax is ever
materialised: a vocabulary of 150k tokens times a batch's tokens would not fit beside the
model. Shapes: `B` sequences, `T` completion tokens, `V` vocabulary; `mask` (B, T) as in core.

Source of the KL estimators: Schulman, "Approximating KL divergence" (2020).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0, chunk_size: int = 1024) -> Tensor:
    """log pi(token_t | ...) (B, T) from `logits` (B, T, V) and `tokens` (B, T), differentiable.

    Computed as `logit[token] - logsumexp(logits)` over chunks of `chunk_size` rows, so no
    (B, T, V) log-softmax is materialised, only one chunk's temporaries (under autograd with
    `temperature != 1` the scaled logits are kept for backward, one (B, T, V) copy). `temperature`
    must be the sampling temperature, or the ratios to the sampler's log-probs are off.
    """
    flat = logits.reshape(-1, logits.shape[-1])
    idx = tokens.reshape(-1, 1).long()
    out = []
    for start in range(0, flat.shape[0], chunk_size):
        z = flat[start : start + chunk_size]
        if temperature != 1.0:
            z = z / temperature
        out.append(z.gather(-1, idx[start : start + chunk_size]).squeeze(-1) - torch.logsumexp(z, -1))
    return torch.cat(out).reshape(tokens.shape) if out else flat.new_zeros(tokens.shape)


def entropy_from_logits(logits: Tensor, mask: Tensor | None = None, chunk_size: int = 1024) -> Tensor:
    """Entropy H(pi_t) = logsumexp(z) - sum_v softmax(z)_v z_v per token (B, T), from logits
    (B, T, V), chunked over rows like `token_logprobs`. With `mask`, padding entries are 0;
    `masked_mean(entropy_from_logits(logits, mask), mask)` is the logged mean. Wrap the call in
    `torch.no_grad()` when it is only a statistic."""
    flat = logits.reshape(-1, logits.shape[-1])
    out = []
    for start in range(0, flat.shape[0], chunk_size):
        z = flat[start : start + chunk_size]
        out.append(torch.logsumexp(z, -1) - (torch.softmax(z, -1) * z).sum(-1))
    ent = torch.cat(out).reshape(logits.shape[:-1]) if out else flat.new_zeros(logits.shape[:-1])
    return ent if mask is None else ent * mask.to(dtype=ent.dtype, device=ent.device)


# --------------------------------------------------------------------------- KL estimators


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = logp - ref_logp per token (B, T): unbiased for KL(pi || ref) on samples of pi, but
    signed and noisy; PPO's per-token reward penalty `-kl_coef * k1` (on the rollout log-probs)."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k2 = (logp - ref_logp)^2 / 2 per token (B, T): biased, low variance, >= 0."""
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = exp(ref - logp) - (ref - logp) - 1 per token (B, T): unbiased for KL(pi || ref) on
    samples of pi and always >= 0 (GRPO's KL term, DeepSeekMath eq. 4)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def masked_kl(kl_fn: Callable[[Tensor, Tensor], Tensor], logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """`kl_fn` per token (B, T), 0 where `mask` is not set. The log-probs there are replaced
    before the estimator runs: a token the loss never scores (an episode's observation, whose
    log-prob under an untrained policy can be -100 or lower) would make k3's exp overflow to inf,
    and inf * 0 is NaN in both the masked sum and its gradient. Set entries are unchanged."""
    m = mask.bool()
    return kl_fn(torch.where(m, logp, torch.zeros_like(logp)), torch.where(m, ref_logp, torch.zeros_like(ref_logp)))
