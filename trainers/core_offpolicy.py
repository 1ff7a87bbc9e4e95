"""Off-policy correction for rollouts sampled by an older policy, as pure tensor functions.

The conventions of `trainers/core.py`: tensors in, tensors out, `(B, T)` shapes, `mask` 1 on the
tokens that enter the loss. Three policies score a batch's sampled tokens:

- pi_behav, the behaviour policy: the weights that sampled the batch (`Rollout.gen_logprobs`,
  reported by the sampler; under `--rollout async` the version `max_staleness` steps back);
- pi_old, the trainer's policy before this update (PPO's "old" policy, which the clip is taken
  against; AReaL calls it the proximal policy, pi_prox);
- pi_theta, the policy being optimised.

A correction is a per-token weight `w` (B, T), detached, that multiplies the clipped surrogate
of `core.policy_loss` (never its KL term): the gradient estimates the objective on pi_old's
tokens from samples of pi_behav. The importance weight is `pi_old / pi_behav`; the variants differ
in what they do where it is large, which is where a few tokens would dominate the gradient:

- `none`: no weight. The batch is treated as if pi_old had sampled it (biased by staleness).
- `tis`: truncated importance sampling, `min(w, cap)` (Yao et al. 2025, "Your efficient RL
  framework secretly brings you off-policy RL training"; verl's `tis_imp_ratio_cap`): a token
  whose weight is large still counts, at most `cap` times; bounded variance, a small bias.
- `decoupled`: AReaL's decoupled PPO objective (Fu et al. 2025, after Hilton et al. 2021): the
  clip is taken against pi_old (the proximal policy) and the exact weight stands outside it;
  a token whose weight exceeds `cap` is dropped (weight 0) rather than truncated, as AReaL's
  `behav_imp_weight_cap` does; `cap=None` keeps every weight (unbiased).

When the behaviour policy is pi_old itself (staleness 0, and a sampler that agrees with the
trainer to the last bit) every weight is exp(0) = 1 exactly, and each variant gives today's loss
bit for bit (tests/trainers/test_core_offpolicy.py).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from trainers.core import kl_k3, masked_mean


@torch.no_grad()
def importance_weights(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor) -> Tensor:
    """pi_old / pi_behav = exp(old_logp - behaviour_logp) per token (B, T), detached; exactly 1
    where `mask` is not set (the log-ratio is zeroed first, so padding cannot overflow)."""
    log_ratio = torch.where(mask.bool(), old_logp - behaviour_logp.to(old_logp), torch.zeros_like(old_logp))
    return torch.exp(log_ratio)


def no_correction(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor, cap: float | None) -> Tensor | None:
    """`none`: no weight (the loss is the on-policy one)."""
    return None


def tis_weights(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor, cap: float | None) -> Tensor:
    """`tis`: min(pi_old / pi_behav, cap) per token (B, T); `cap` None truncates nothing."""
    w = importance_weights(old_logp, behaviour_logp, mask)
    return w if cap is None else torch.clamp(w, max=cap)


def decoupled_weights(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor, cap: float | None) -> Tensor:
    """`decoupled`: pi_prox / pi_behav per token (B, T) with pi_prox = pi_old, 0 where it exceeds
    `cap` (the token leaves the loss); `cap` None drops nothing."""
    w = importance_weights(old_logp, behaviour_logp, mask)
    return w if cap is None else torch.where(w <= cap, w, torch.zeros_like(w))


def weighted(logp: Tensor, weights: Tensor | None) -> Tensor:
    """`logp` (B, T) with each token's log-prob times its detached weight: REINFORCE's loss
    (`core.reinforce_loss`) on these is the corrected one (weights None: `logp` itself)."""
    return logp if weights is None else logp * weights.detach().to(logp)


OFF_POLICY_CORRECTIONS: dict[str, Callable[[Tensor, Tensor, Tensor, float | None], Tensor | None]] = {
    "none": no_correction,
    "tis": tis_weights,
    "decoupled": decoupled_weights,
}


def correction(name: str, cap: float | None) -> Callable[[Tensor, Tensor | None, Tensor], Tensor | None]:
    """The variant `name` with its cap, chosen once: `(old_logp, behaviour_logp or None, mask)
    -> weights (B, T) or None`. Rows without behaviour log-probs (a sampler that reports none)
    get no weight."""
    if name not in OFF_POLICY_CORRECTIONS:
        raise ValueError(f"unknown off-policy correction {name!r}; valid choices: {sorted(OFF_POLICY_CORRECTIONS)}")
    weigh = OFF_POLICY_CORRECTIONS[name]
    return lambda old, behaviour, mask: None if behaviour is None else weigh(old, behaviour, mask, cap)


@torch.no_grad()
def off_policy_stats(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor, cap: float | None) -> dict[str, Tensor]:
    """Scalars over the masked tokens: the importance weight pi_old / pi_behav before any cap
    (`is_weight_mean`, `is_weight_max`), the fraction of tokens above `cap` (truncated by `tis`,
    dropped by `decoupled`; 0 with no cap), and `mismatch_kl`, the k3 estimate of KL(pi_behav ||
    pi_old) on the sampled tokens (samples of pi_behav): staleness and sampler numerics together."""
    m = mask.bool()
    w = importance_weights(old_logp, behaviour_logp, mask)
    stats = {"is_weight_mean": masked_mean(w, mask),
             "is_weight_max": w[m].max() if m.any() else w.new_zeros(()),
             "is_weight_capped_frac": masked_mean((w > cap).to(w.dtype), mask) if cap is not None else w.new_zeros(()),
             "mismatch_kl": masked_mean(kl_k3(torch.where(m, behaviour_logp.to(old_logp), old_logp), old_logp), mask)}
    return stats
