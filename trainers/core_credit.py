"""The RL math of credit token by token, pure tensor functions as in `trainers/core.py` (its
masked statistics are used here): generalised advantage estimation and the clipped value loss
of PPO with the whitening of its advantages, and step rewards laid on the tokens that end each
step (process supervision: `process_advantages` for GRPO, `place_token_rewards` for PPO).

Shapes: `B` completions, `T` completion tokens; `mask` (B, T) is 1 on the tokens a loss may
touch. Step rewards are ragged: completion i has its own list of step scores and of the
completion-token index at which each step ends.

Sources: GAE, Schulman et al. 2016; the value clip, the PPO implementations of OpenAI's
baselines and TRL; process supervision, DeepSeekMath (Shao et al. 2024) §4.1.3.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from trainers.core import masked_mean, masked_var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """`(x - mean) / sqrt(var + eps)` over masked tokens (B, T); masked-out entries become 0.
    `shift_mean=False` adds the mean back (scales only), as PPO implementations do for rewards."""
    mean = masked_mean(x, mask)
    whitened = (x - mean) * torch.rsqrt(masked_var(x, mask) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(dtype=x.dtype, device=x.device)


def last_token_index(mask: Tensor) -> Tensor:
    """(B,) index of the last set token of each row of `mask` (B, T); -1 for an empty row."""
    m = mask.bool()
    t = m.shape[-1]
    last = t - 1 - m.flip(-1).to(torch.uint8).argmax(-1)
    return torch.where(m.any(-1), last, torch.full_like(last, -1))


# --------------------------------------------------------------------------- PPO: GAE and the value loss


@torch.no_grad()
def gae_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
                   lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation; returns (advantages, returns), both (B, T).

    `rewards`, `values` (B, T) per token. Unmasked tokens are skipped (their reward and value
    ignored), so right padding ends the episode: the value after the last set token is 0.
    A_t = delta_t + gamma * lam * A_{t+1}, delta_t = r_t + gamma * V_{t+1} - V_t;
    returns = A + V. Both are 0 on padding and detached (they are targets). Vectorised over B,
    a backward loop over T.
    """
    m = mask.bool()
    advantages = torch.zeros_like(values)
    next_value = values.new_zeros(values.shape[0])
    next_adv = values.new_zeros(values.shape[0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        next_value = torch.where(m[:, t], values[:, t], next_value)
        next_adv = torch.where(m[:, t], adv, next_adv)
        advantages[:, t] = torch.where(m[:, t], adv, torch.zeros_like(adv))
    return advantages, (advantages + values) * mask.to(values)


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, cliprange_value: float = 0.2) -> Tensor:
    """Per-token PPO value loss (B, T): `0.5 * max((V - R)^2, (clip(V, V_old +- eps) - R)^2)`.
    The max keeps the update pessimistic: a value that moved more than `cliprange_value` from the
    rollout's gets no credit for it. Not aggregated; use `masked_mean`."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    return 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2)


@torch.no_grad()
def value_clip_fraction(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                        cliprange_value: float = 0.2) -> Tensor:
    """Fraction of masked tokens where the clipped value term is the larger one (a scalar)."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    return masked_mean(((clipped - returns) ** 2 > (values - returns) ** 2).to(values.dtype), mask)


# --------------------------------------------------------------------------- process supervision


def _flatten_steps(step_rewards: Sequence, step_ends: Sequence, shape: tuple[int, int],
                   device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Ragged per-completion steps -> flat (rows, ends, rewards), validated against (B, T)."""
    b, t = shape
    if len(step_rewards) != b or len(step_ends) != b:
        raise ValueError(f"need step rewards and step ends for each of the {b} completions, "
                         f"got {len(step_rewards)} and {len(step_ends)}")
    rewards = [torch.as_tensor(r, dtype=torch.float32, device=device).reshape(-1) for r in step_rewards]
    ends = [torch.as_tensor(e, dtype=torch.long, device=device).reshape(-1) for e in step_ends]
    for i, (r, e) in enumerate(zip(rewards, ends)):
        if r.numel() != e.numel():
            raise ValueError(f"completion {i}: {r.numel()} step rewards but {e.numel()} step ends")
        if e.numel() and (e.min() < 0 or e.max() >= t):
            raise ValueError(f"completion {i}: step ends {e.tolist()} outside [0, {t})")
    none = torch.zeros(0, dtype=torch.long, device=device)
    rows = torch.cat([none] + [torch.full((e.numel(),), i, dtype=torch.long, device=device)
                               for i, e in enumerate(ends)])
    return rows, torch.cat([none] + ends), torch.cat([none.float()] + rewards)


def process_advantages(step_rewards: Sequence, step_ends: Sequence, mask: Tensor, group_size: int,
                       eps: float = 1e-4) -> Tensor:
    """GRPO with process supervision (DeepSeekMath §4.1.3): token advantages (B, T).

    `step_rewards[i]`, `step_ends[i]`: 1-D (ragged) rewards of completion i's steps and the
    completion-token index (0-based, < T) at which each step ends. All step rewards of a group
    (contiguous `group_size` completions) are normalised together, `(r - mean) / (std + eps)`
    with the sample std as in `group_advantages` (exactly 0 if all equal); a token's advantage is
    the sum of the normalised rewards of the steps ending at or after it. Tokens after the last
    step end, and padding, get 0.
    """
    b, t = mask.shape
    if group_size < 1 or b % group_size:
        raise ValueError(f"{b} completions do not split into groups of {group_size}")
    rows, ends, rewards = _flatten_steps(step_rewards, step_ends, (b, t), mask.device)
    group = rows // group_size
    n_groups = b // group_size
    count = torch.zeros(n_groups, device=mask.device).index_add_(0, group, torch.ones_like(rewards))
    mean = torch.zeros(n_groups, device=mask.device).index_add_(0, group, rewards) / count.clamp(min=1)
    centered = rewards - mean[group]
    sq = torch.zeros(n_groups, device=mask.device).index_add_(0, group, centered**2)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    lo = torch.full((n_groups,), float("inf"), device=mask.device).scatter_reduce(0, group, rewards, "amin")
    hi = torch.full((n_groups,), float("-inf"), device=mask.device).scatter_reduce(0, group, rewards, "amax")
    normed = torch.where((lo == hi)[group], torch.zeros_like(centered), centered / (std[group] + eps))
    placed = torch.zeros(b, t, device=mask.device).index_put_((rows, ends), normed, accumulate=True)
    return placed.flip(-1).cumsum(-1).flip(-1) * mask.to(placed)


def place_token_rewards(mask: Tensor, outcome_rewards: Tensor | None = None, step_rewards: Sequence | None = None,
                        step_ends: Sequence | None = None) -> Tensor:
    """Token rewards (B, T) for PPO: each step's reward at its step-end token (`step_rewards`,
    `step_ends` ragged as in `process_advantages`) plus `outcome_rewards` (B,) at the last set
    token of each row. Rewards landing on one token add up; an empty row gets none. Add the
    KL penalty `-kl_coef * kl_k1(old_logp, ref_logp) * mask` to these before `gae_advantages`."""
    b, t = mask.shape
    placed = torch.zeros(b, t, device=mask.device)
    if step_rewards is not None or step_ends is not None:
        if step_rewards is None or step_ends is None:
            raise ValueError("step_rewards and step_ends go together")
        rows, ends, rewards = _flatten_steps(step_rewards, step_ends, (b, t), mask.device)
        placed.index_put_((rows, ends), rewards, accumulate=True)
    if outcome_rewards is not None:
        last = last_token_index(mask)
        has = last >= 0
        placed[has.nonzero().squeeze(-1), last[has]] += outcome_rewards.to(placed)[has]
    return placed
