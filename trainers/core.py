"""The RL math of the GRPO and PPO trainers, as small pure tensor functions.

Tensors in, tensors out; no I/O, no logging, no config objects (the style of verl's
`core_algos.py`). Shapes: `B` sequences (completions), `T` completion tokens, `V` vocabulary.
`mask` is always `(B, T)`, bool or float, 1 on completion tokens, 0 on padding.

A variant is a function chosen once at start-up from a table, never an `if` inside a loss:
`REWARD_SCALES` (GRPO advantage scaling), `IMPORTANCE_RATIOS` (token ratio or GSPO sequence
ratio), `LOSS_AGGREGATIONS` (grpo, bnpo, dr_grpo, dapo); the objective (`advantage_fn`: pass@1,
or pass@K). Rows a verifier did not judge (`valid`, `row_mask`) are left out of every baseline,
std, row count and token count.

Loss scaling lives in one place, `aggregate_loss`: a minibatch's loss is its share of the
optimizer step's loss over all minibatches and data-parallel ranks (`GlobalBatch`: the step's
rows, tokens and the number of ranks), so the training loops call `backward()` on it as it is
and never see the world size. Per-token credit (GAE, the value loss, step rewards on tokens)
is in `trainers/core_credit.py`; log-probs, entropy and the KL estimators in `core_logits.py`.

Sources: GRPO, DeepSeekMath (Shao et al. 2024) §4.1; clip-higher and token-level aggregation,
DAPO (Yu et al. 2025); Dr. GRPO (Liu et al. 2025); sequence ratios, GSPO (Zheng et al. 2025);
the `delta` cap, INTELLECT-2 (Prime Intellect 2025); pass@K, Walder & Karkhanis 2025; the
global normaliser, verl's `agg_loss`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from trainers.core_logits import kl_k3, masked_kl

# --------------------------------------------------------------------------- masked statistics


def _as(mask: Tensor, x: Tensor) -> Tensor:
    return mask.to(dtype=x.dtype, device=x.device)


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of `x` (B, T) over the tokens where `mask` is set; over `dim`, or over all."""
    m = _as(mask, x)
    return (x * m).sum() if dim is None else (x * m).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` (B, T) over masked tokens; over `dim` (per row for dim=-1) or over all.
    An empty row (or batch) gives 0, not NaN, so padding rows never poison a loss."""
    return masked_sum(x, mask, dim) / _as(mask, x).sum(dim=dim).clamp(min=1.0)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the masked entries of `x` (B, T), a scalar; Bessel-corrected by default
    (n / (n - 1)), and 0 when fewer than two tokens are set."""
    n = _as(mask, x).sum()
    centered = (x - masked_mean(x, mask)) * _as(mask, x)
    return (centered**2).sum() / (n - 1 if unbiased else n).clamp(min=1.0)


# --------------------------------------------------------------------------- GRPO advantages
#
# `valid` (B,) marks the rows a verifier judged; a verifier fault (`Verdict.verifier_fault`) is
# no judgement, so its row is left out of its group's mean, std and count, and gets advantage 0.


def _grouped(rewards: Tensor, group_size: int, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """Rewards (in a float dtype) and validity, both (G, group_size)."""
    if group_size < 1 or rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of {group_size}")
    if valid is not None and valid.shape != rewards.shape:
        raise ValueError(f"valid of shape {tuple(valid.shape)} does not match rewards of shape {tuple(rewards.shape)}")
    grouped = rewards.reshape(-1, group_size).to(torch.result_type(rewards, 1.0))
    ok = torch.ones_like(grouped, dtype=torch.bool) if valid is None else valid.reshape(-1, group_size).bool()
    return grouped, ok


def _valid_stats(grouped: Tensor, valid: Tensor, dim: int | None = 1) -> tuple[Tensor, Tensor, Tensor]:
    """(mean, sample std, count) of the valid entries per group (dim=1, kept) or over all (None);
    the std is Bessel-corrected and 0 below two entries, never NaN."""
    v = valid.to(grouped.dtype)
    total = (lambda x: x.sum()) if dim is None else (lambda x: x.sum(dim, keepdim=True))
    count = total(v)
    mean = total(grouped * v) / count.clamp(min=1)
    return mean, (total(((grouped - mean) * v) ** 2) / (count - 1).clamp(min=1)).sqrt(), count


# A reward scale: (grouped rewards (G, n), valid (G, n), the groups' std (G, 1), eps, the batch std
# when the batch is split over processes, else None) -> the divisor of the centred rewards.


def _scale_group(grouped: Tensor, valid: Tensor, std: Tensor, eps: float, batch_std: float | None) -> Tensor:
    return std + eps


def _scale_batch(grouped: Tensor, valid: Tensor, std: Tensor, eps: float, batch_std: float | None) -> Tensor:
    # Group mean, batch std ("Tricks or Traps", Liu et al. 2025): a group with a tiny std (one
    # success among many failures) no longer gets outsized advantages.
    return (_valid_stats(grouped, valid, None)[1] if batch_std is None else torch.tensor(batch_std)) + eps


def _scale_none(grouped: Tensor, valid: Tensor, std: Tensor, eps: float, batch_std: float | None) -> Tensor:
    # Dr. GRPO: dividing by the std over-weights groups that are nearly all right or all wrong.
    return torch.ones_like(std)


REWARD_SCALES: dict[str, Callable[[Tensor, Tensor, Tensor, float, float | None], Tensor]] = {
    "group": _scale_group,
    "batch": _scale_batch,
    "none": _scale_none,
}


def _lookup(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; valid choices: {sorted(table)}")
    return table[name]


def sample_std_from_sums(n: float, total: float, total_sq: float) -> float:
    """Sample (Bessel) std of n values from their sum and sum of squares: the batch std when
    the batch is split over processes that all-reduce these three numbers."""
    if n < 2:
        return 0.0
    return max((total_sq - total * total / n) / (n - 1), 0.0) ** 0.5


def kept_rows(valid: Tensor, group_size: int, min_valid: int = 2) -> Tensor:
    """(B,) bool: the judged rows (`valid` (B,)) of groups with at least `min_valid` of them; a
    group with fewer has no baseline to compare its rows with and is dropped whole."""
    grouped = valid.reshape(-1, group_size).bool()
    return (grouped & (grouped.sum(1, keepdim=True) >= min_valid)).reshape(-1)


def group_advantages(rewards: Tensor, group_size: int, scale_rewards: str = "group", eps: float = 1e-4,
                     batch_std: float | None = None, valid: Tensor | None = None) -> Tensor:
    """GRPO outcome advantages (B,) from rewards (B,), B = n_groups * group_size, each group's
    completions contiguous: `(r - mean_group) / (std + eps)`.

    `scale_rewards`: "group" divides by the group's std, "batch" by the std of all B rewards
    (the mean stays per group), "none" does not divide (Dr. GRPO). The std is the SAMPLE std
    (Bessel, torch.std's default), as in TRL's GRPOTrainer, so advantages match TRL's and can be
    cross-checked against it; eps=1e-4 is TRL's too. A group whose rewards are all equal carries
    no signal and gets exactly 0 (with every scaling, despite float rounding of its mean).
    `batch_std`: the std of the whole batch's rewards when it is split over processes (the rows
    here are one rank's share; `GlobalBatch.reward_std`), which "batch" divides by; None: the
    std of `rewards`. `valid` (B,) bool: the judged rows (None: all); the others are left out of
    every mean, std and count and get 0, as do groups with fewer than 2 of them.
    """
    grouped, ok = _grouped(rewards, group_size, valid)
    mean, std, count = _valid_stats(grouped, ok)
    advantages = (grouped - mean) / _lookup(REWARD_SCALES, scale_rewards, "scale_rewards")(grouped, ok, std, eps,
                                                                                           batch_std)
    inf = torch.full_like(grouped, float("inf"))
    flat = torch.where(ok, grouped, -inf).amax(1, keepdim=True) == torch.where(ok, grouped, inf).amin(1, keepdim=True)
    return torch.where(ok & ~flat & (count >= 2), advantages, torch.zeros_like(advantages)).reshape(-1)


# --------------------------------------------------------------------------- the pass@K objective
# Walder & Karkhanis 2025 ("Pass@k Policy Optimization"); Chen et al. 2025 ("Pass@k Training").
# docs/training.md derives what follows and why the scale comes from the rewards.


def pass_at_k_estimate(n: Tensor, c: Tensor, k: int) -> Tensor:
    """The unbiased pass@k rho(n, c, k) = 1 - C(n-c, k)/C(n, k) elementwise (float tensors,
    n >= k, 0 <= c <= n), as 1 - prod_{j<k} (n-c-j)/(n-j): exactly 1 when fewer than k samples
    fail (a factor is 0), and 0 for k = 0 (an empty subset never passes)."""
    miss = torch.ones_like(n)
    for j in range(k):
        miss = miss * (n - c - j).clamp(min=0) / (n - j).clamp(min=1)
    return 1.0 - miss


def pass_at_k_shares(passed: Tensor, valid: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(s, b), both (G, n), from binary `passed` among the `valid` (G, n) samples of each group
    (n valid, c passing): s_i, sample i's share of the size-k subsets whose best member passes,
    k/n if it passes, else (k/n) rho(n-1, c, k-1); and the leave-one-out baseline
    b_i = (k/n) rho(n-1, c_-i, k), the share of a sample that adds nothing to the others. b_i
    does not depend on sample i (the gradient stays unbiased) and sum_i (s_i - b_i) = 0 in every
    group (the mean of the leave-one-out estimates is rho(n, c, k)). Needs n > k."""
    v = valid.to(torch.float64)
    hit = passed.to(torch.float64) * v
    n, c = v.sum(1, keepdim=True), hit.sum(1, keepdim=True)
    share = k / n.clamp(min=1)
    s = share * torch.where(hit > 0, torch.ones_like(hit), pass_at_k_estimate(n - 1, c, k - 1))
    return s * v, share * pass_at_k_estimate(n - 1, c - hit, k) * v


def pass_at_k_advantages(rewards: Tensor, group_size: int, scale_rewards: str = "group", eps: float = 1e-4,
                         batch_std: float | None = None, valid: Tensor | None = None, *, k: int) -> Tensor:
    """Advantages (B,) of the pass@k objective for binary rewards (B,) (1 = pass): (n-1)/k (s - b)
    (`pass_at_k_shares`) over the group's scale of `group_advantages`, taken from the rewards.
    k = 1 gives `group_advantages` exactly; for k > 1 a group's advantages are w (r - mean),
    w = C(n-c-1, k-1)/C(n-2, k-1), 0 past n-k passes. Groups with k or fewer valid rows get 0."""
    grouped, ok = _grouped(rewards, group_size, valid)
    bad = ok & (grouped != 0) & (grouped != 1)
    if bad.any():
        raise ValueError(f"the pass@{k} objective needs binary rewards (0 or 1), got {grouped[bad][0].item():g}")
    s, b = pass_at_k_shares(grouped == 1, ok, k)
    n = ok.sum(1, keepdim=True)
    _, std, _ = _valid_stats(grouped, ok)
    divisor = _lookup(REWARD_SCALES, scale_rewards, "scale_rewards")(grouped, ok, std, eps, batch_std)
    advantages = ((n - 1) / k * (s - b)).to(grouped.dtype) / divisor
    return torch.where(ok & (n > k), advantages, torch.zeros_like(advantages)).reshape(-1)


def objective_k(objective: str) -> int:
    """K of an objective named `pass@K` (K >= 1); ValueError naming the text otherwise."""
    head, _, tail = str(objective).partition("@")
    if head != "pass" or not tail.isdigit() or int(tail) < 1:
        raise ValueError(f"unknown objective {objective!r}; expected pass@K with K >= 1 (pass@1: the usual reward)")
    return int(tail)


def advantage_fn(objective: str) -> Callable[..., Tensor]:
    """The outcome-advantage function of `objective`, chosen once: `group_advantages` for pass@1,
    else `pass_at_k_advantages` with its K; both (rewards, group_size, scale_rewards, eps,
    batch_std, valid)."""
    k = objective_k(objective)
    return group_advantages if k == 1 else functools.partial(pass_at_k_advantages, k=k)


# --------------------------------------------------------------------------- ratios and losses


def token_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """PPO/GRPO importance ratio pi/pi_old = exp(logp - old_logp) per token (B, T); exactly 1
    on padding (the log-ratio is zeroed there first, so garbage log-probs cannot overflow)."""
    return torch.exp(torch.where(mask.bool(), logp - old_logp, torch.zeros_like(logp)))


def sequence_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO ratio s_i = exp(mean over the completion's tokens of (logp - old_logp)), the
    length-normalised sequence likelihood ratio, broadcast to every token (B, T). The gradient
    flows through the mean, so d s_i / d logp_{i,t} = s_i / |y_i| as in the GSPO paper."""
    log_ratio = torch.where(mask.bool(), logp - old_logp, torch.zeros_like(logp))
    return torch.exp(masked_mean(log_ratio, mask, dim=-1)).unsqueeze(-1).expand_as(logp)


IMPORTANCE_RATIOS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "token": token_ratio,
    "sequence": sequence_ratio,
}


def _per_token(advantages: Tensor) -> Tensor:
    return advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages


def clipped_surrogate_loss(ratio: Tensor, advantages: Tensor, clip_eps_low: float = 0.2, clip_eps_high: float = 0.2,
                           delta: float | None = None) -> Tensor:
    """Per-token PPO loss (B, T): `-min(min(ratio, delta) * A, clip(ratio, 1-eps_low, 1+eps_high) * A)`.

    `ratio` (B, T); `advantages` (B, T), or (B,) for one advantage per sequence (GRPO). The
    UNCLIPPED ratio goes in the first term: the min makes the objective a pessimistic bound,
    so a ratio outside the band is clipped only when that would raise the objective.
    `clip_eps_high > clip_eps_low` is DAPO's clip-higher. `delta` (> 1 + clip_eps_high) caps
    the unclipped ratio (INTELLECT-2's two-sided clipping): for A < 0 the loss would otherwise
    grow without bound in the ratio. Not aggregated; mask with `LOSS_AGGREGATIONS`.
    """
    adv = _per_token(advantages)
    unclipped = ratio if delta is None else torch.clamp(ratio, max=delta)
    clipped = torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high)
    return -torch.min(unclipped * adv, clipped * adv)


# --------------------------------------------------------------------------- loss aggregation


@dataclass(frozen=True)
class GlobalBatch:
    """The batch of one optimizer step, over its gradient-accumulation minibatches and all
    data-parallel ranks: what a minibatch's loss is normalised by, so that the minibatches'
    gradients, summed and then averaged over ranks, are those of one loss over this batch."""

    rows: float                         # completions on all ranks (those left out of the loss not counted)
    tokens: float                       # loss tokens (mask set) on all ranks
    dp_size: int = 1                    # ranks whose gradients are averaged
    reward_std: float | None = None     # std of all ranks' rewards; None: one process holds them all

    @classmethod
    def of(cls, mask: Tensor, row_mask: Tensor | None = None) -> "GlobalBatch":
        """One process, one minibatch: the batch is `mask`'s own rows (those of `row_mask`) and tokens."""
        return cls(rows=_rows(mask, row_mask), tokens=float(mask.sum()))


# A loss aggregation: (per-token loss (B, T), mask, the step's GlobalBatch, max_new_tokens, this
# minibatch's counted rows) -> its share of the step's loss, times dp_size (averaging gradients
# over ranks divides by it). A row left out of the loss (a verifier fault: `row_mask` 0) has no
# tokens set, so it adds 0 to every sum; only the row counts must leave it out.


def _rows(mask: Tensor, row_mask: Tensor | None) -> float:
    return float(mask.shape[0]) if row_mask is None else float(row_mask.sum())


def _row_share(rows: float, batch: GlobalBatch) -> float:
    """`rows` of this minibatch as a share of the step's counted rows, times dp_size."""
    return rows * batch.dp_size / max(batch.rows, 1.0)


def aggregate_grpo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None,
                   rows: float | None = None) -> Tensor:
    """Mean over each sequence's tokens, then mean over the step's sequences (an empty row
    counts 0). Tokens of long completions weigh less than those of short ones (DeepSeekMath eq. 3)."""
    return masked_mean(loss, mask, dim=-1).mean() * _row_share(loss.shape[0], batch)  # left-out rows add 0


def aggregate_bnpo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None,
                   rows: float | None = None) -> Tensor:
    """Mean over the minibatch's tokens (every token of it equal), weighted by the minibatch's
    share of the step's rows: the normaliser is the minibatch's own, as in TRL's bnpo."""
    return masked_mean(loss, mask) * _row_share(loss.shape[0] if rows is None else rows, batch)


def aggregate_dr_grpo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None,
                      rows: float | None = None) -> Tensor:
    """Sum over all tokens / (the step's sequences * max_new_tokens): a constant normaliser, no
    length bias (Dr. GRPO)."""
    if max_new_tokens is None or max_new_tokens < 1:
        raise ValueError(f"dr_grpo aggregation needs max_new_tokens >= 1, got {max_new_tokens!r}")
    return masked_sum(loss, mask) / (loss.shape[0] * max_new_tokens) * _row_share(loss.shape[0], batch)


def aggregate_dapo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None,
                   rows: float | None = None) -> Tensor:
    """Sum over all tokens / the step's loss tokens on all ranks (token-level, DAPO; PPO's mean
    over an optimizer minibatch's tokens): every token of the step weighs the same."""
    return masked_sum(loss, mask) / max(batch.tokens, 1.0) * batch.dp_size


LOSS_AGGREGATIONS: dict[str, Callable[..., Tensor]] = {
    "grpo": aggregate_grpo,
    "bnpo": aggregate_bnpo,
    "dr_grpo": aggregate_dr_grpo,
    "dapo": aggregate_dapo,
}


def aggregate_loss(loss: Tensor, mask: Tensor, loss_agg_mode: str, batch: GlobalBatch | None = None, *,
                   max_new_tokens: int | None = None, row_mask: Tensor | None = None) -> Tensor:
    """A minibatch's per-token loss (B, T) as its share of the optimizer step's loss, a scalar,
    with `LOSS_AGGREGATIONS[loss_agg_mode]`: the one place that knows the global normaliser
    (the step's rows or tokens on all ranks) and the data-parallel size. Call `backward()` on
    each minibatch's share; the summed gradients, averaged over ranks, are those of the whole
    step's loss. `batch` None: this minibatch is the whole step, on one process. `row_mask` (B,):
    the rows that count (None: all); a row left out must have no tokens set in `mask`."""
    aggregate = _lookup(LOSS_AGGREGATIONS, loss_agg_mode, "loss aggregation")
    return aggregate(loss, mask, batch or GlobalBatch.of(mask, row_mask), max_new_tokens, _rows(mask, row_mask))


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
                ratio_fn: Callable = token_ratio, loss_agg_mode: str = "grpo", batch: GlobalBatch | None = None,
                clip_eps_low: float = 0.2, clip_eps_high: float = 0.2, delta: float | None = None,
                ref_logp: Tensor | None = None, beta: float = 0.0, kl_fn: Callable = kl_k3,
                max_new_tokens: int | None = None, row_mask: Tensor | None = None, weights=None) -> Tensor:
    """The GRPO/PPO policy loss, a scalar: clipped surrogate + beta * KL(pi || ref) per token
    (B, T), aggregated by `aggregate_loss` as this minibatch's share of the step (`batch`).
    On-policy pass `old_logp = logp.detach()`. `weights` (B, T) >= 0: `core_offpolicy`'s."""
    adv = advantages if weights is None else _per_token(advantages) * weights.detach().to(advantages)  # w * surrogate
    per_token = clipped_surrogate_loss(ratio_fn(logp, old_logp, mask), adv, clip_eps_low, clip_eps_high, delta)
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs ref_logp")
        per_token = per_token + beta * masked_kl(kl_fn, logp, ref_logp, mask)
    return aggregate_loss(per_token, mask, loss_agg_mode, batch, max_new_tokens=max_new_tokens, row_mask=row_mask)


def reinforce_loss(logp: Tensor, advantages: Tensor, mask: Tensor, batch: GlobalBatch | None = None) -> Tensor:
    """Reward-weighted log-likelihood, a scalar: `-(1/B) sum_i w_i * log pi(y_i|x)` over the
    step's B sequences (this minibatch's share of it, as `aggregate_grpo`'s). `logp` (B, T);
    `log pi(y_i|x)` is its SUM over the completion's tokens (the sequence log-likelihood, so the
    gradient is the REINFORCE estimator). `advantages` (B,): the weights w_i, normally
    `group_advantages` (a group-mean baseline), detached here. On-policy only: no ratio, no clip."""
    share = _row_share(logp.shape[0], batch or GlobalBatch.of(mask))
    return -(advantages.detach().to(logp.dtype) * masked_sum(logp, mask, dim=-1)).mean() * share


# --------------------------------------------------------------------------- statistics


@torch.no_grad()
def clip_fractions(ratio: Tensor, advantages: Tensor, mask: Tensor, clip_eps_low: float = 0.2,
                   clip_eps_high: float = 0.2) -> dict[str, Tensor]:
    """Fractions of masked tokens whose gradient the clip removes: "low" (ratio < 1 - eps_low
    and A < 0), "high" (ratio > 1 + eps_high and A > 0), "region" (either). Scalars."""
    adv = _per_token(advantages)
    low = ((ratio < 1.0 - clip_eps_low) & (adv < 0)).to(ratio.dtype)
    high = ((ratio > 1.0 + clip_eps_high) & (adv > 0)).to(ratio.dtype)
    return {"low": masked_mean(low, mask), "high": masked_mean(high, mask),
            "region": masked_mean(low + high, mask)}


@torch.no_grad()
def approx_kl(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """KL(pi_old || pi) estimated with k3 on the rollout tokens (sampled from pi_old):
    masked mean of (r - 1) - log r, r = pi/pi_old. A scalar, for logging and early stopping."""
    return masked_mean(kl_k3(old_logp, logp), mask)
