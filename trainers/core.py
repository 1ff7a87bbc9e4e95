"""The RL math of the GRPO and PPO trainers, as small pure tensor functions.

Tensors in, tensors out; no I/O, no logging, no config objects (the style of verl's
`core_algos.py`). Shapes: `B` sequences (completions), `T` completion tokens, `V` vocabulary.
`mask` is always `(B, T)`, bool or float, 1 on completion tokens, 0 on padding.

A variant is a function chosen once at start-up from a table, never an `if` inside a loss:
`REWARD_SCALES` (GRPO advantage scaling), `IMPORTANCE_RATIOS` (token ratio or GSPO sequence
ratio), `LOSS_AGGREGATIONS` (grpo, bnpo, dr_grpo, dapo), `KL_ESTIMATORS` (k1, k2, k3).

Loss scaling lives in one place, `aggregate_loss`: a minibatch's loss is its share of the
optimizer step's loss over all minibatches and data-parallel ranks (`GlobalBatch`: the step's
rows, tokens and the number of ranks), so the training loops call `backward()` on it as it is
and never see the world size. Per-token credit (GAE, the value loss, step rewards on tokens)
is in `trainers/core_credit.py`.

Sources: GRPO, DeepSeekMath (Shao et al. 2024) §4.1; clip-higher and token-level aggregation,
DAPO (Yu et al. 2025); Dr. GRPO (Liu et al. 2025); sequence ratios, GSPO (Zheng et al. 2025);
the `delta` cap, INTELLECT-2 (Prime Intellect 2025); KL estimators, Schulman, "Approximating
KL divergence" (2020); the global normaliser, verl's `agg_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

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


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """`(x - mean) / sqrt(var + eps)` over masked tokens (B, T); masked-out entries become 0.
    `shift_mean=False` adds the mean back (scales only), as PPO implementations do for rewards."""
    mean = masked_mean(x, mask)
    whitened = (x - mean) * torch.rsqrt(masked_var(x, mask) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * _as(mask, x)


def last_token_index(mask: Tensor) -> Tensor:
    """(B,) index of the last set token of each row of `mask` (B, T); -1 for an empty row."""
    m = mask.bool()
    t = m.shape[-1]
    last = t - 1 - m.flip(-1).to(torch.uint8).argmax(-1)
    return torch.where(m.any(-1), last, torch.full_like(last, -1))


# --------------------------------------------------------------------------- log-probs, entropy


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
    return ent if mask is None else ent * _as(mask, ent)


# --------------------------------------------------------------------------- GRPO advantages


def _sample_std(x: Tensor, dim: int | None = None) -> Tensor:
    """Sample (Bessel-corrected) std, 0 for a single element instead of NaN."""
    n = x.numel() if dim is None else x.shape[dim]
    mean = x.mean() if dim is None else x.mean(dim, keepdim=True)
    sq = ((x - mean) ** 2).sum() if dim is None else ((x - mean) ** 2).sum(dim, keepdim=True)
    return (sq / max(n - 1, 1)).sqrt()


# A reward scale: (grouped rewards (G, group_size), eps, batch std) -> advantages. `batch_std` is
# the std of the whole batch's rewards when the batch is split over processes, else None.


def _scale_group(grouped: Tensor, eps: float, batch_std: float | None = None) -> Tensor:
    return (grouped - grouped.mean(1, keepdim=True)) / (_sample_std(grouped, dim=1) + eps)


def _scale_batch(grouped: Tensor, eps: float, batch_std: float | None = None) -> Tensor:
    # Group mean, batch std ("Tricks or Traps", Liu et al. 2025): a group with a tiny std (one
    # success among many failures) no longer gets outsized advantages.
    std = _sample_std(grouped) if batch_std is None else batch_std
    return (grouped - grouped.mean(1, keepdim=True)) / (std + eps)


def _scale_none(grouped: Tensor, eps: float, batch_std: float | None = None) -> Tensor:
    # Dr. GRPO: dividing by the std over-weights groups that are nearly all right or all wrong.
    return grouped - grouped.mean(1, keepdim=True)


REWARD_SCALES: dict[str, Callable[[Tensor, float, float | None], Tensor]] = {
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


def group_advantages(rewards: Tensor, group_size: int, scale_rewards: str = "group", eps: float = 1e-4,
                     batch_std: float | None = None) -> Tensor:
    """GRPO outcome advantages (B,) from rewards (B,), B = n_groups * group_size, each group's
    completions contiguous: `(r - mean_group) / (std + eps)`.

    `scale_rewards`: "group" divides by the group's std, "batch" by the std of all B rewards
    (the mean stays per group), "none" does not divide (Dr. GRPO). The std is the SAMPLE std
    (Bessel, torch.std's default), as in TRL's GRPOTrainer, so advantages match TRL's and can be
    cross-checked against it; eps=1e-4 is TRL's too. A group whose rewards are all equal carries
    no signal and gets exactly 0 (with every scaling, despite float rounding of its mean).
    `batch_std`: the std of the whole batch's rewards when it is split over processes (the rows
    here are one rank's share; `GlobalBatch.reward_std`), which "batch" divides by; None: the
    std of `rewards`.
    """
    if group_size < 1 or rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of {group_size}")
    grouped = rewards.reshape(-1, group_size).to(torch.result_type(rewards, 1.0))
    advantages = _lookup(REWARD_SCALES, scale_rewards, "scale_rewards")(grouped, eps, batch_std)
    all_equal = (grouped == grouped[:, :1]).all(1, keepdim=True)
    return torch.where(all_equal, torch.zeros_like(advantages), advantages).reshape(-1)


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


# --------------------------------------------------------------------------- loss aggregation


@dataclass(frozen=True)
class GlobalBatch:
    """The batch of one optimizer step, over its gradient-accumulation minibatches and all
    data-parallel ranks: what a minibatch's loss is normalised by, so that the minibatches'
    gradients, summed and then averaged over ranks, are those of one loss over this batch."""

    rows: float                         # completions on all ranks
    tokens: float                       # loss tokens (mask set) on all ranks
    dp_size: int = 1                    # ranks whose gradients are averaged
    reward_std: float | None = None     # std of all ranks' rewards; None: one process holds them all

    @classmethod
    def of(cls, mask: Tensor) -> "GlobalBatch":
        """One process, one minibatch: the batch is `mask`'s own rows and tokens."""
        return cls(rows=float(mask.shape[0]), tokens=float(mask.sum()))


# A loss aggregation: (per-token loss (B, T), mask, the step's GlobalBatch, max_new_tokens) -> this
# minibatch's share of the step's loss, times dp_size (averaging gradients over ranks divides by it).


def _row_share(loss: Tensor, batch: GlobalBatch) -> float:
    """This minibatch's share of the step's rows, times dp_size."""
    return loss.shape[0] * batch.dp_size / batch.rows


def aggregate_grpo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None) -> Tensor:
    """Mean over each sequence's tokens, then mean over the step's sequences (an empty row
    counts 0). Tokens of long completions weigh less than those of short ones (DeepSeekMath eq. 3)."""
    return masked_mean(loss, mask, dim=-1).mean() * _row_share(loss, batch)


def aggregate_bnpo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None) -> Tensor:
    """Mean over the minibatch's tokens (every token of it equal), weighted by the minibatch's
    share of the step's rows: the normaliser is the minibatch's own, as in TRL's bnpo."""
    return masked_mean(loss, mask) * _row_share(loss, batch)


def aggregate_dr_grpo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None) -> Tensor:
    """Sum over all tokens / (the step's sequences * max_new_tokens): a constant normaliser, no
    length bias (Dr. GRPO)."""
    if max_new_tokens is None or max_new_tokens < 1:
        raise ValueError(f"dr_grpo aggregation needs max_new_tokens >= 1, got {max_new_tokens!r}")
    return masked_sum(loss, mask) / (loss.shape[0] * max_new_tokens) * _row_share(loss, batch)


def aggregate_dapo(loss: Tensor, mask: Tensor, batch: GlobalBatch, max_new_tokens: int | None = None) -> Tensor:
    """Sum over all tokens / the step's loss tokens on all ranks (token-level, DAPO; PPO's mean
    over an optimizer minibatch's tokens): every token of the step weighs the same."""
    return masked_sum(loss, mask) / max(batch.tokens, 1.0) * batch.dp_size


LOSS_AGGREGATIONS: dict[str, Callable[[Tensor, Tensor, GlobalBatch, int | None], Tensor]] = {
    "grpo": aggregate_grpo,
    "bnpo": aggregate_bnpo,
    "dr_grpo": aggregate_dr_grpo,
    "dapo": aggregate_dapo,
}


def aggregate_loss(loss: Tensor, mask: Tensor, loss_agg_mode: str, batch: GlobalBatch | None = None, *,
                   max_new_tokens: int | None = None) -> Tensor:
    """A minibatch's per-token loss (B, T) as its share of the optimizer step's loss, a scalar,
    with `LOSS_AGGREGATIONS[loss_agg_mode]`: the one place that knows the global normaliser
    (the step's rows or tokens on all ranks) and the data-parallel size. Call `backward()` on
    each minibatch's share; the summed gradients, averaged over ranks, are those of the whole
    step's loss. `batch` None: this minibatch is the whole step, on one process."""
    aggregate = _lookup(LOSS_AGGREGATIONS, loss_agg_mode, "loss aggregation")
    return aggregate(loss, mask, batch or GlobalBatch.of(mask), max_new_tokens)


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
                ratio_fn: Callable = token_ratio, loss_agg_mode: str = "grpo", batch: GlobalBatch | None = None,
                clip_eps_low: float = 0.2, clip_eps_high: float = 0.2, delta: float | None = None,
                ref_logp: Tensor | None = None, beta: float = 0.0, kl_fn: Callable = kl_k3,
                max_new_tokens: int | None = None) -> Tensor:
    """The GRPO/PPO policy loss, a scalar: clipped surrogate + beta * KL(pi || ref) per token
    (B, T), aggregated by `aggregate_loss` as this minibatch's share of the step (`batch`).
    On-policy (one update per rollout) pass `old_logp = logp.detach()`."""
    ratio = ratio_fn(logp, old_logp, mask)
    per_token = clipped_surrogate_loss(ratio, advantages, clip_eps_low, clip_eps_high, delta)
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs ref_logp")
        per_token = per_token + beta * masked_kl(kl_fn, logp, ref_logp, mask)
    return aggregate_loss(per_token, mask, loss_agg_mode, batch, max_new_tokens=max_new_tokens)


def reinforce_loss(logp: Tensor, advantages: Tensor, mask: Tensor, batch: GlobalBatch | None = None) -> Tensor:
    """Reward-weighted log-likelihood, a scalar: `-(1/B) sum_i w_i * log pi(y_i|x)` over the
    step's B sequences (this minibatch's share of it, as `aggregate_grpo`'s).

    `logp` (B, T) token log-probs; `log pi(y_i|x)` is their SUM over the completion's tokens
    (the true sequence log-likelihood, so the gradient is the REINFORCE estimator). `advantages`
    (B,) are the weights w_i, normally `group_advantages(rewards, group_size)`: rewards minus the
    group mean (a baseline) over the group's sample std + eps; detached here. No ratio, no
    clipping, no KL: on-policy only.
    """
    share = _row_share(logp, batch or GlobalBatch.of(mask))
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
