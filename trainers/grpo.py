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
- `objective="pass@K"` replaces each group's advantages with those of the unbiased pass@K
  gradient (PKPO, Walder & Karkhanis 2025; `core.pass_at_k_advantages`).
- Rows whose verdict is a verifier fault are left out of the loss, the group baselines and the
  counts; a group left with fewer judged rows than its estimate needs (2; K + 1 for pass@K) is
  dropped; the run stops when faults pass `max_verifier_failure_rate` (`trainers.fault_guard`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from models import distributed
from trainers import core, core_credit, core_logits, core_offpolicy, parallel
from trainers import rollout as ro
from trainers.checkpoint import Checkpoints
from trainers.clock import RunClock
from trainers.config import RunConfig, derive_seed, require, require_choice, trainer_main
from trainers.curriculum import training_stream
from trainers.evaluator import Evaluator
from trainers.fault_guard import FaultGuard
from trainers.lifecycle import finish_run, start_run
from trainers.metrics_log import MetricsLog
from trainers.parallel import DataParallel
from trainers.policy import Policy
from trainers.rollout import RolloutSource


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
        require(not (self.dynamic_sampling and self.parallelism == "fsdp" and distributed.launched()),
                "dynamic_sampling", "cannot be combined with parallelism=fsdp on several processes: ranks would "
                "keep different numbers of groups, and FSDP needs every rank to run the same forward passes "
                "(use parallelism=ddp)")


def grpo_advantages(cfg: GRPOConfig, batch: ro.Rollout, batch_std: float | None = None) -> torch.Tensor:
    """(B,) outcome advantages of the objective, or (B, T) when step rewards take part, 0 on
    rows left out of the loss; `batch_std`: the std of the global batch's judged rewards
    (scale_rewards=batch on several processes)."""
    outcome = ro.outcome_advantages(cfg.objective, batch, cfg.group_size, cfg.scale_rewards, batch_std)
    if cfg.reward_mode == "outcome":
        return outcome
    process = core_credit.process_advantages(batch.step_rewards, batch.step_ends, batch.completion_mask,
                                             cfg.group_size)
    return process if cfg.reward_mode == "process" else process + outcome.unsqueeze(-1)


def make_loss_fn(cfg: GRPOConfig):
    """The per-minibatch loss, chosen once: (logp, old_logp, ref_logp, advantages, mask, step
    batch, rows that count, behaviour log-probs or None) -> this minibatch's share of the step's
    loss (`core.aggregate_loss`), with the off-policy correction's weights (`core_offpolicy`)."""
    weigh = core_offpolicy.correction(cfg.correction(), cfg.correction_cap())
    if cfg.loss_type == "reinforce":
        return lambda logp, old_logp, ref_logp, adv, mask, batch, rows, behaviour: core.reinforce_loss(
            core_offpolicy.weighted(logp, weigh(old_logp, behaviour, mask)), adv, mask, batch)
    kw = dict(ratio_fn=core.IMPORTANCE_RATIOS[cfg.importance_level], loss_agg_mode=cfg.loss_type,
              clip_eps_low=cfg.clip_eps_low, clip_eps_high=cfg.clip_eps_high, delta=cfg.delta, beta=cfg.beta,
              max_new_tokens=cfg.max_new_tokens)
    return lambda logp, old_logp, ref_logp, adv, mask, batch, rows, behaviour: core.policy_loss(
        logp, old_logp, adv, mask, ref_logp=ref_logp, batch=batch, row_mask=rows,
        weights=weigh(old_logp, behaviour, mask), **kw)


def train(cfg: GRPOConfig) -> dict:
    """Run GRPO; returns the final report (pass@k before/after, comparison, summary)."""
    dp = DataParallel.join(cfg.parallelism, bf16=cfg.bf16)             # the process group (1 process: no-ops)
    env = start_run(cfg)                                                # seeds, output folder, environment
    policy = Policy.load(cfg, dp)                                       # model, optimizer, reference, sampler
    rollouts = RolloutSource(cfg, env, policy.sampler, policy.tokenizer, training_stream(cfg, env))
    feed = ro.rollout_feed(cfg, env, policy, dp, rollouts, draw_batch)  # batches: drawn here, or by a worker (async)
    clock = RunClock(cfg.steps, cfg.max_minutes, dp)                    # step counter, time cap, Ctrl-C
    log = MetricsLog(Path(cfg.output_dir), dp, log_every=cfg.log_every, tensorboard=cfg.tensorboard,
                     guard=FaultGuard.of(cfg, env))                     # + hacking telemetry, the fault stop rule
    checkpoints = Checkpoints(Path(cfg.output_dir), cfg, {"policy": (policy.model, policy.optimizer)},
                              feed, clock, log)
    if cfg.resume:
        checkpoints.resume()                                            # every part above, in place
    policy.sync_weights()                                               # the sampler starts from these weights
    evaluator = Evaluator(cfg, env, policy.sampler, log)
    loss_fn = make_loss_fn(cfg)
    with feed.running(clock.step):                                      # async: the rollout worker, from here on
        evaluator.evaluate("before")
        with clock.interruptible(checkpoints.save):
            while clock.next_step():
                batch = feed.next_batch(clock.step)                   # generate + verify (+ dynamic sampling)
                metrics = update_policy(cfg, policy, dp, batch, loss_fn, clock.step)   # advantages + inner epochs
                metrics.update(feed.publish(clock.step, batch))       # the sampler (or worker) gets the new policy
                log.record(clock.step, clock.elapsed(), metrics)
                checkpoints.save_if_due()
                evaluator.evaluate_if_due(clock.step)
        return finish_run("grpo", policy, checkpoints, evaluator, clock, log)   # final model, evaluation, report


def judged_groups(cfg: GRPOConfig, batch: ro.Rollout) -> ro.Rollout:
    """`batch` without the groups left with too few judged rows for the objective's estimate
    (2 for pass@1, K + 1 for pass@K): their rows are left out of the loss, in place."""
    batch.keep_only(core.kept_rows(batch.judged, cfg.group_size, core.objective_k(cfg.objective) + 1))
    return batch


def draw_batch(cfg: GRPOConfig, rollouts: RolloutSource, dp: DataParallel) -> ro.Rollout:
    """One generation batch. With dynamic sampling (DAPO) groups without signal (advantages all
    0: rewards all equal, or past what pass@K rewards) are dropped and more prompts drawn, at
    most `dynamic_sampling_max_draws` rounds; the batch may then hold fewer than prompts_per_step
    groups, and is never padded with signal-free groups. The verifier faults of every draw count."""
    G = cfg.group_size
    batch = rollouts.draw(cfg.prompts_per_step)  # this rank's share; prompts_per_step divides by the world size
    if not cfg.dynamic_sampling:
        return judged_groups(cfg, batch)
    kept, draws, timings, faults = [], 0, batch.timings, batch.faults
    while True:
        draws += 1
        if batch is not None:
            judged_groups(cfg, batch)
            signal = grpo_outcome_signal(cfg, batch).nonzero().squeeze(-1).tolist()
            kept.append(batch.select([g * G + j for g in signal for j in range(G)]))
        # The quota is global: every rank counts the groups kept on all ranks, so all draw alike.
        mine = sum(len(b) for b in kept) // G
        n_kept = int(dp.all_reduce([mine])[0])
        if n_kept >= cfg.prompts_per_step or draws >= cfg.dynamic_sampling_max_draws:
            break
        batch = rollouts.draw(cfg.prompts_per_step - n_kept)
        if batch is not None:
            timings = {k: timings[k] + batch.timings[k] for k in timings}
            faults = ro.merge_tallies(faults, batch.faults)
    # Keep prompts_per_step groups in all: ranks in order, each up to what the ones before it left.
    before = sum(dp.all_gather(mine)[:dp.rank])
    quota = max(0, min(mine, cfg.prompts_per_step - before)) * G
    rows = [(b, i) for b in kept for i in range(len(b))][:quota]
    if not rows:
        merged = kept[0].select([])  # the first draw always gives each rank a share
    else:
        merged = judged_groups(cfg, rollouts.collate([b.tasks[i] for b, i in rows], [b.samples[i] for b, i in rows],
                                                     [b.verdicts[i] for b, i in rows]))
    merged.timings, merged.faults = {**timings, "draws": draws}, faults
    return merged


def grpo_outcome_signal(cfg: GRPOConfig, batch: ro.Rollout) -> torch.Tensor:
    """(G,) bool: the groups whose outcome advantages are not all 0 (any scaling gives the same)."""
    return (ro.outcome_advantages(cfg.objective, batch, cfg.group_size).reshape(-1, cfg.group_size) != 0).any(1)


def update_policy(cfg: GRPOConfig, policy: Policy, dp: DataParallel, batch: ro.Rollout, loss_fn,
                  step: int) -> dict:
    """`inner_epochs` optimizer steps on one rollout, accumulating gradients over minibatches."""
    t0 = time.perf_counter()
    stats = ro.rollout_stats(batch, cfg.group_size)
    # The step's batch on all ranks (rows, loss tokens, reward std): what each minibatch's loss
    # is its share of (`core.aggregate_loss`); one collective, none on one process.
    whole = dp.global_batch(batch.completion_mask, batch.rewards, batch.judged)
    if whole.rows == 0:  # dynamic sampling found no group with signal on any rank
        return {**stats, "loss": 0.0, "update_s": 0.0}
    advantages = grpo_advantages(cfg, batch, whole.reward_std)
    mb_size = min(cfg.minibatch_size or len(batch), len(batch))
    ref_logp = policy.ref_logprobs(batch) if len(batch) else None
    # Why no extra forward: in one pass over one minibatch old log-probs are the current ones, detached.
    old_logp = None if cfg.inner_epochs == 1 and mb_size == len(batch) else old_logprobs(policy, batch, mb_size)
    # Why a seed per step: the minibatch order of a resumed run repeats the uninterrupted one's.
    shuffle = torch.Generator().manual_seed(derive_seed(cfg.seed, "minibatch_order", step))
    logs: dict[str, list[float]] = {"loss": [], "entropy": [], "clip_low": [], "clip_high": [], "kl": []}
    gaps = []
    behaviour = batch.gen_logprobs   # the sampler's log-probs: the behaviour policy of the off-policy correction
    policy.model.train()
    for epoch in range(cfg.inner_epochs):
        policy.optimizer.zero_grad(set_to_none=True)
        epoch_loss = 0.0
        # A rank with no rows this step (dynamic sampling) still averages gradients below.
        parts = ro.minibatches(len(batch), mb_size, shuffle if cfg.inner_epochs > 1 else None) if len(batch) else []
        for rows in parts:
            mb = batch.select(rows)
            with policy.autocast():
                logp, entropy = policy.logprobs(mb, with_entropy=True)
            idx = torch.tensor(rows)
            old = logp.detach() if old_logp is None else old_logp[idx]
            ref = None if ref_logp is None else ref_logp[idx]
            adv = advantages[idx].to(logp.device)
            mask = mb.completion_mask.to(logp.device)
            behav = None if behaviour is None else behaviour[idx]
            loss = loss_fn(logp, old, ref, adv, mask, whole, mb.judged, behav)   # this minibatch's share of the loss
            loss.backward()                                                      # gradients add up over minibatches
            epoch_loss += float(loss.detach())
            for key, value in grpo_minibatch_stats(cfg, logp, old, ref, adv, mask, entropy).items():
                logs[key].append(value)
            if epoch == 0 and behav is not None:
                gaps.append(ro.logprob_gaps(batch, rows, logp, mask))
                for key, value in core_offpolicy.off_policy_stats(old, behav, mask, cfg.correction_cap()).items():
                    logs.setdefault(key, []).append(float(value))
        dp.reduce_gradients(policy.model)   # ddp: averaged over ranks, once per optimizer step
        if cfg.max_grad_norm:
            stats["grad_norm"] = parallel.grad_norm(torch.nn.utils.clip_grad_norm_(policy.model.parameters(),
                                                                                   cfg.max_grad_norm))
        policy.optimizer.step()
        logs["loss"].append(epoch_loss)
    stats.update(ro.summarise(logs))
    if gaps and (gap := torch.cat(gaps)).numel():
        stats.update(logprob_gap_mean=float(gap.mean()), logprob_gap_max=float(gap.max()))
    stats["update_s"] = time.perf_counter() - t0
    return stats


@torch.no_grad()
def old_logprobs(policy: Policy, batch: ro.Rollout, mb_size: int) -> torch.Tensor:
    """Log-probs (B, T) of the policy that generated the batch, before any update."""
    return torch.cat([policy.logprobs(batch.select(rows))[0] for rows in ro.minibatches(len(batch), mb_size)])


def grpo_minibatch_stats(cfg: GRPOConfig, logp, old, ref, adv, mask, entropy) -> dict[str, float]:
    """A minibatch's entropy, clip fractions and KL to the reference (averaged per step)."""
    with torch.no_grad():
        ratio = core.IMPORTANCE_RATIOS[cfg.importance_level](logp, old, mask)
        clip = core.clip_fractions(ratio, adv, mask, cfg.clip_eps_low, cfg.clip_eps_high)
        stats = {"entropy": float(core.masked_mean(entropy, mask)), "clip_low": float(clip["low"]),
                 "clip_high": float(clip["high"])}
        if ref is not None:
            stats["kl"] = float(core.masked_mean(core_logits.masked_kl(core_logits.kl_k3, logp, ref, mask), mask))
    return stats


def main(argv: list[str] | None = None) -> int:
    return trainer_main(GRPOConfig, train, argv, "python -m trainers.grpo", __doc__.split("\n\n")[1])


if __name__ == "__main__":
    sys.exit(main())
