"""GRPO: `python -m trainers.grpo` (see `--help`).

With no arguments it trains the project's tiny character-level model on the offline
`arithmetic` environment on a laptop CPU in a few minutes and ends by printing pass@1 before
and after, with a paired confidence interval.

Algorithm (DeepSeekMath, Shao et al. 2024, §4): for each step draw `prompts_per_step` prompts,
sample `group_size` completions each, score them with the environment's verifier, use the
group-normalised rewards as every token's advantage, and take `inner_epochs` optimizer steps
on the clipped surrogate (gradient accumulation over minibatches).

Departures from the paper, all opt-in except the first:
- beta = 0 by default (no reference model is loaded), as in DAPO and Dr. GRPO: with verifiable
  rewards the KL term mostly slows learning.
- `clip_eps_high` (DAPO clip-higher), `delta` (INTELLECT-2 cap), `loss_type` (bnpo, dr_grpo,
  dapo, reinforce), `importance_level="sequence"` (GSPO), `scale_rewards` (Dr. GRPO's "none"),
  `dynamic_sampling` and `mask_truncated` (DAPO).
- `reward_mode="process"` uses per-step rewards (DeepSeekMath §4.1.3) from a step verifier.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

from trainers import core
from trainers import rollout as ro
from trainers.config import require, require_choice, run_cli
from trainers.run import RunConfig, RunContext


@dataclass
class GRPOConfig(RunConfig):
    """GRPO's fields; the run fields (model, env, sampling, evaluation, ...) come from RunConfig."""

    beta: float = 0.0
    """KL coefficient to the reference policy (k3 estimator); 0 loads no reference model"""
    clip_eps_low: float = 0.2
    """lower clip bound: ratio >= 1 - clip_eps_low"""
    clip_eps_high: float = 0.2
    """upper clip bound: ratio <= 1 + clip_eps_high (0.28 is DAPO's clip-higher)"""
    delta: float | None = None
    """cap on the unclipped ratio (INTELLECT-2), must exceed 1 + clip_eps_high; null = off"""
    loss_type: str = "grpo"
    """grpo | bnpo | dr_grpo | dapo | reinforce (see trainers/core.py)"""
    importance_level: str = "token"
    """token (PPO/GRPO ratios) | sequence (GSPO)"""
    scale_rewards: str = "group"
    """group | batch | none: what the advantages are divided by"""
    inner_epochs: int = 1
    """optimizer steps per generation batch (mu in the GRPO paper)"""
    dynamic_sampling: bool = False
    """drop groups whose rewards are all equal and draw more prompts (DAPO)"""
    dynamic_sampling_max_draws: int = 4
    """with dynamic_sampling: at most this many generation rounds per step"""
    output_dir: str = "runs/grpo"
    """where checkpoints, metrics.jsonl, report.json and plots go"""

    def validate(self) -> None:
        """Fail before any work, naming the field and the rule."""
        super().validate()
        require(self.inner_epochs >= 1, "inner_epochs", f"must be >= 1, got {self.inner_epochs}")
        require(self.beta >= 0, "beta", "must be >= 0")
        require(0 <= self.clip_eps_low < 1, "clip_eps_low", "must be in [0, 1)")
        require(self.clip_eps_high >= 0, "clip_eps_high", "must be >= 0")
        require(self.delta is None or self.delta > 1 + self.clip_eps_high, "delta",
                f"must exceed 1 + clip_eps_high = {1 + self.clip_eps_high}")
        require_choice(self.loss_type, [*core.LOSS_AGGREGATIONS, "reinforce"], "loss_type")
        require_choice(self.importance_level, list(core.IMPORTANCE_RATIOS), "importance_level")
        require_choice(self.scale_rewards, list(core.REWARD_SCALES), "scale_rewards")
        require(self.loss_type != "reinforce" or (self.inner_epochs == 1 and self.beta == 0), "loss_type",
                "reinforce is on-policy without KL: needs inner_epochs = 1 and beta = 0")
        require(self.dynamic_sampling_max_draws >= 1, "dynamic_sampling_max_draws", "must be >= 1")


def grpo_advantages(cfg: GRPOConfig, batch) -> torch.Tensor:
    """(B,) outcome advantages, or (B, T) when step rewards take part."""
    outcome = core.group_advantages(batch.rewards, cfg.group_size, cfg.scale_rewards)
    if cfg.reward_mode == "outcome":
        return outcome
    process = core.process_advantages(batch.step_rewards, batch.step_ends, batch.completion_mask, cfg.group_size)
    return process if cfg.reward_mode == "process" else process + outcome.unsqueeze(-1)


def make_loss_fn(cfg: GRPOConfig):
    """The per-minibatch loss, chosen once: (logp, old_logp, ref_logp, advantages, mask, n_tokens) -> scalar."""
    if cfg.loss_type == "reinforce":
        return lambda logp, old_logp, ref_logp, adv, mask, n_tokens: core.reinforce_loss(logp, adv, mask)
    kw = dict(ratio_fn=core.IMPORTANCE_RATIOS[cfg.importance_level], aggregate=core.LOSS_AGGREGATIONS[cfg.loss_type],
              clip_eps_low=cfg.clip_eps_low, clip_eps_high=cfg.clip_eps_high, delta=cfg.delta, beta=cfg.beta,
              max_new_tokens=cfg.max_new_tokens)
    return lambda logp, old_logp, ref_logp, adv, mask, n_tokens: core.policy_loss(
        logp, old_logp, adv, mask, ref_logp=ref_logp, num_global_tokens=n_tokens, **kw)


def train(cfg: GRPOConfig) -> dict:
    """Run GRPO; returns the final report (pass@k before/after, comparison, summary)."""
    ctx = RunContext.create(cfg, algorithm="grpo")
    loss_fn = make_loss_fn(cfg)
    before = ctx.evaluate("before")
    with ctx.checkpoint_on_interrupt():
        while ctx.next_step():
            batch = ctx.rollout()                                   # generate + verify
            metrics = update_policy(ctx, batch, loss_fn)            # advantages + inner epochs
            ctx.end_step(metrics)                                   # sync, log, checkpoint, eval
    return ctx.finish(before)


def update_policy(ctx: RunContext, batch: ro.Rollout, loss_fn) -> dict:
    """`inner_epochs` optimizer steps on one rollout, accumulating gradients over minibatches."""
    cfg, model = ctx.cfg, ctx.model
    t0 = time.perf_counter()
    stats = ro.rollout_stats(batch, cfg.group_size)
    if len(batch) == 0:  # dynamic sampling found no group with signal
        return {**stats, "loss": 0.0, "update_s": 0.0}
    advantages = grpo_advantages(cfg, batch)
    mb_size = min(cfg.minibatch_size or len(batch), len(batch))
    n_tokens = float(batch.completion_mask.sum())
    ref_logp = ctx.ref_logprobs(batch)
    # On-policy with a single pass, old log-probs equal the current ones (ratio 1): no extra forward.
    old_logp = None if cfg.inner_epochs == 1 and mb_size == len(batch) else old_logprobs(ctx, batch, mb_size)
    shuffle = torch.Generator().manual_seed(cfg.seed * 7919 + ctx.step)
    logs: dict[str, list[float]] = {"loss": [], "entropy": [], "clip_low": [], "clip_high": [], "kl": []}
    gaps = []
    model.train()
    for epoch in range(cfg.inner_epochs):
        ctx.optimizer.zero_grad(set_to_none=True)
        parts = ro.minibatches(len(batch), mb_size, shuffle if cfg.inner_epochs > 1 else None)
        for rows in parts:
            mb = batch.select(rows)
            with ctx.autocast():
                logp, entropy = ro.completion_logprobs(model, mb, cfg.temperature, with_entropy=True,
                                                       share_prompts=cfg.share_prompts)
            idx = torch.tensor(rows)
            old = logp.detach() if old_logp is None else old_logp[idx]
            ref = None if ref_logp is None else ref_logp[idx]
            adv = advantages[idx].to(logp.device)
            mask = mb.completion_mask.to(logp.device)
            loss = loss_fn(logp, old, ref, adv, mask, n_tokens)
            # dapo is already normalised by the global token count; the others are means per minibatch.
            (loss if cfg.loss_type == "dapo" else loss * len(rows) / len(batch)).backward()
            _record(logs, loss, logp, old, ref, adv, mask, entropy, cfg)
            if epoch == 0 and batch.gen_logprobs is not None:
                gaps.append(ro.logprob_gaps(batch, rows, logp, mask))
        if cfg.max_grad_norm:
            stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
        ctx.optimizer.step()
    stats.update({k: sum(v) / len(v) for k, v in logs.items() if v})
    if gaps and (gap := torch.cat(gaps)).numel():
        stats.update(logprob_gap_mean=float(gap.mean()), logprob_gap_max=float(gap.max()))
    stats["update_s"] = time.perf_counter() - t0
    return stats


@torch.no_grad()
def old_logprobs(ctx: RunContext, batch: ro.Rollout, mb_size: int) -> torch.Tensor:
    """Log-probs (B, T) of the policy that generated the batch, before any update."""
    parts = [ro.completion_logprobs(ctx.model, batch.select(rows), ctx.cfg.temperature,
                                    share_prompts=ctx.cfg.share_prompts)[0]
             for rows in ro.minibatches(len(batch), mb_size)]
    return torch.cat(parts)


def _record(logs, loss, logp, old, ref, adv, mask, entropy, cfg) -> None:
    with torch.no_grad():
        ratio = core.IMPORTANCE_RATIOS[cfg.importance_level](logp, old, mask)
        clip = core.clip_fractions(ratio, adv, mask, cfg.clip_eps_low, cfg.clip_eps_high)
        logs["loss"].append(float(loss))
        logs["entropy"].append(float(core.masked_mean(entropy, mask)))
        logs["clip_low"].append(float(clip["low"]))
        logs["clip_high"].append(float(clip["high"]))
        if ref is not None:
            logs["kl"].append(float(core.masked_mean(core.kl_k3(logp, ref), mask)))


def main(argv: list[str] | None = None) -> int:
    return run_cli(GRPOConfig, train, argv, "python -m trainers.grpo", __doc__.split("\n\n")[1])


if __name__ == "__main__":
    sys.exit(main())

