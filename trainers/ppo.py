"""PPO: `python -m trainers.ppo` (see `--help`).

With no arguments it trains the project's tiny character-level model on the offline
`arithmetic` environment on a laptop CPU, like `python -m trainers.grpo`, and ends by printing
pass@1 before and after, with a paired confidence interval.

Algorithm (Schulman et al. 2017; for language models Ziegler et al. 2019 and Ouyang et al.
2022): for each step draw `prompts_per_step` prompts, sample `group_size` completions each,
score them with the environment's verifier and turn the scores into per-token rewards: the
verifier's reward at the last completion token (with `reward_mode` process or both, also each
step's score at the token that ends the step), minus `kl_coef` times a per-token estimate of
KL(pi || ref). A critic (`trainers/critic.py`) estimates V(s_t) at every token; GAE(gamma, lam)
turns rewards and values into advantages and returns; `ppo_epochs` passes over
`num_minibatches` shuffled minibatches minimise the clipped policy loss plus `vf_coef` times the
clipped value loss, with one optimizer step per minibatch.

Choices and departures:
- ppo_epochs = num_minibatches = 1 by default: one on-policy optimizer step per generation
  batch, like GRPO's inner_epochs = 1 (the clip then only acts with more). TRL's default is 4
  epochs; on the tiny model at the same wall time, 2 epochs x 2 minibatches raised pass@1 by
  only +0.06 and cut pass@8 from 0.82 to 0.59 (the policy collapsed onto wrong answers), while
  one step per batch gave +0.20 to +0.24 with pass@8 up; here a fresh batch is cheaper than
  another pass over an old one. With one pass the rollout's log-probs and values come from the
  training forward itself (no extra forward).
- The critic is a value head on the policy's trunk by default; `critic=separate` gives it a
  trunk of its own (InstructGPT, TRL), at the memory cost that GRPO avoids.
- gamma = 1: an episode is one completion and a discount would only favour short answers.
- kl_coef = 0 by default (no reference model is loaded), like GRPO's beta: with a verifiable
  reward there is no reward model to over-optimise.
- Losses are means over the tokens of each optimizer minibatch (token-level PPO as in TRL and
  OpenRLHF); rewards are used as they are, advantages are whitened over the batch.
- Group sampling (`group_size` > 1) is kept so that PPO and GRPO see the same batches; PPO
  itself does not use the groups, except for `objective="pass@K"`, whose outcome reward is each
  sample's leave-one-out-baselined share of its group's pass@K (`core.pass_at_k_advantages`
  without scaling: the advantages are whitened anyway).
- A row whose verdict is a verifier fault is left out of every loss, reward, value target and
  token count (its completion mask is 0); the critic, not the group, is PPO's baseline, so its
  group is kept (with pass@K: unless fewer than K + 1 judged rows remain). The run stops when
  faults pass `max_verifier_failure_rate` (`trainers.fault_guard`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from models import distributed
from models.distributed import launched_world_size
from trainers import core, core_credit, core_logits, core_offpolicy, parallel
from trainers import rollout as ro
from trainers.checkpoint import Checkpoints
from trainers.clock import RunClock
from trainers.config import RunConfig, derive_seed, require, require_choice, trainer_main
from trainers.critic import CRITICS, Critic, build_critic
from trainers.curriculum import training_stream
from trainers.evaluator import Evaluator
from trainers.fault_guard import FaultGuard
from trainers.lifecycle import finish_run, start_run
from trainers.metrics_log import MetricsLog
from trainers.parallel import DataParallel
from trainers.policy import Policy, adamw
from trainers.rollout import RolloutSource


@dataclass
class PPOConfig(RunConfig):
    """PPO's fields; the run fields (model, env, sampling, evaluation, ...) come from RunConfig."""

    kl_coef: float = 0.0
    """per-token KL penalty to the reference policy in the rewards; 0 loads no reference model"""
    kl_estimator: str = "k1"
    """k1 (log-ratio, the classic PPO-RLHF penalty) | k2 | k3 (always >= 0), see trainers/core.py"""
    gamma: float = 1.0
    """discount of GAE (1: an episode is one completion)"""
    lam: float = 0.95
    """GAE lambda: 1 gives Monte-Carlo returns (unbiased, noisier), 0 one-step TD (leans on the critic)"""
    cliprange: float = 0.2
    """policy clip: ratio in [1 - cliprange, 1 + cliprange]"""
    cliprange_value: float = 0.2
    """value clip: V may move at most this far from the rollout's value per update"""
    vf_coef: float = 0.1
    """weight of the value loss in the total loss"""
    ppo_epochs: int = 1
    """passes over each generation batch (1, like GRPO's inner_epochs: see the module docstring)"""
    num_minibatches: int = 1
    """optimizer steps per pass (the batch is split into this many shuffled minibatches)"""
    whiten_advantages: bool = True
    """normalise advantages to mean 0, std 1 over the batch's tokens"""
    critic: str = "head"
    """head (value head on the policy's trunk) | separate (a value model with its own trunk)"""
    critic_model: str | None = None
    """with critic=separate: checkpoint of the value model's trunk; null = the policy's starting weights"""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the critic's own parameters (the head, and a separate trunk)"""
    output_dir: str = "runs/ppo"
    """where checkpoints, metrics.jsonl, report.json and plots go"""

    def validate(self) -> None:
        """Fail before any work, naming the field and the rule."""
        super().validate()
        require(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        require_choice(self.kl_estimator, list(core_logits.KL_ESTIMATORS), "kl_estimator")
        require(0 <= self.gamma <= 1, "gamma", f"must be in [0, 1], got {self.gamma}")
        require(0 <= self.lam <= 1, "lam", f"must be in [0, 1], got {self.lam}")
        require(0 < self.cliprange < 1, "cliprange", "must be in (0, 1)")
        require(self.cliprange_value > 0, "cliprange_value", "must be > 0")
        require(self.vf_coef >= 0, "vf_coef", "must be >= 0")
        require(self.ppo_epochs >= 1, "ppo_epochs", f"must be >= 1, got {self.ppo_epochs}")
        world = launched_world_size()
        batch = self.prompts_per_step // world * self.group_size
        per = "prompts_per_step * group_size" + (f" / {world} processes" if world > 1 else "")
        require(self.num_minibatches >= 1 and batch % self.num_minibatches == 0, "num_minibatches",
                f"must divide {per} = {batch}, got {self.num_minibatches}")
        per_step = batch // self.num_minibatches
        require(not self.minibatch_size or per_step % self.minibatch_size == 0, "minibatch_size",
                f"must divide the optimizer minibatch of {per_step} completions, got {self.minibatch_size}")
        require_choice(self.critic, list(CRITICS), "critic")
        require(self.critic_model is None or self.critic == "separate", "critic_model",
                "is only used with critic=separate")
        require(self.critic_learning_rate > 0, "critic_learning_rate", "must be > 0")


# reward_mode -> (outcome reward at the last token, step scores at the step ends)
REWARD_PARTS = {"outcome": (True, False), "process": (False, True), "both": (True, True)}


def token_rewards(cfg: PPOConfig, batch: ro.Rollout, old_logp: torch.Tensor | None = None,
                  ref_logp: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token rewards (B, T): the verifier's reward at the last completion token and/or each
    step's score at the token that ends it (`reward_mode`), minus kl_coef * KL(old || ref)."""
    outcome, steps = REWARD_PARTS[cfg.reward_mode]
    mask = batch.completion_mask
    scores = batch.rewards if core.objective_k(cfg.objective) == 1 else ro.outcome_advantages(
        cfg.objective, batch, cfg.group_size)  # pass@K: each sample's baselined share of its group's pass@K
    rewards = core_credit.place_token_rewards(mask, scores if outcome else None,
                                              batch.step_rewards if steps else None,
                                              batch.step_ends if steps else None)
    if ref_logp is not None and cfg.kl_coef:
        kl = core_logits.masked_kl(core_logits.KL_ESTIMATORS[cfg.kl_estimator], old_logp, ref_logp, mask)
        rewards = rewards - cfg.kl_coef * kl
    return rewards


def ppo_advantages(cfg: PPOConfig, rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages (whitened if asked) and returns, both (B, T)."""
    advantages, returns = core_credit.gae_advantages(rewards, values, mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages:
        advantages = core_credit.masked_whiten(advantages, mask)
    return advantages, returns


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - V) / Var(returns) over masked tokens: 1 is a perfect critic, 0 no
    better than a constant, negative worse (the usual PPO diagnostic; not in core, logging only)."""
    var = core.masked_var(returns, mask)
    return float(1 - core.masked_var(returns - values, mask) / var) if var > 0 else 0.0


def train(cfg: PPOConfig) -> dict:
    """Run PPO; returns the final report (pass@k before/after, comparison, summary)."""
    dp = DataParallel.join(cfg.parallelism, bf16=cfg.bf16)             # the process group (1 process: no-ops)
    env = start_run(cfg)                                                # seeds, output folder, environment
    policy = Policy.load(cfg, dp)                                       # model, optimizer, reference, sampler
    critic, critic_optimizer = make_critic(cfg, policy, dp)             # value head (or model) and its optimizer
    rollouts = RolloutSource(cfg, env, policy.sampler, policy.tokenizer, training_stream(cfg, env))
    feed = ro.rollout_feed(cfg, env, policy, dp, rollouts)             # batches: drawn here, or by a worker (async)
    clock = RunClock(cfg.steps, cfg.max_minutes, dp)                    # step counter, time cap, Ctrl-C
    log = MetricsLog(Path(cfg.output_dir), dp, log_every=cfg.log_every, tensorboard=cfg.tensorboard,
                     guard=FaultGuard.of(cfg, env))                     # + hacking telemetry, the fault stop rule
    checkpoints = Checkpoints(Path(cfg.output_dir), cfg, {"policy": (policy.model, policy.optimizer),
                                                          "critic": (critic, critic_optimizer)},
                              feed, clock, log)
    if cfg.resume:
        checkpoints.resume()                                            # every part above, in place
    policy.sync_weights()                                               # the sampler starts from these weights
    evaluator = Evaluator(cfg, env, policy.sampler, log)
    with feed.running(clock.step):                                      # async: the rollout worker, from here on
        evaluator.evaluate("before")
        with clock.interruptible(checkpoints.save):
            while clock.next_step():
                batch = judged_groups(cfg, feed.next_batch(clock.step))   # generate + verify
                metrics = update(cfg, policy, critic, critic_optimizer, dp, batch, clock.step)   # GAE + ppo_epochs
                metrics.update(feed.publish(clock.step, batch))       # the sampler (or worker) gets the new policy
                log.record(clock.step, clock.elapsed(), metrics)
                checkpoints.save_if_due()
                evaluator.evaluate_if_due(clock.step)
        return finish_run("ppo", policy, checkpoints, evaluator, clock, log)   # final model, evaluation, report


def judged_groups(cfg: PPOConfig, batch: ro.Rollout) -> ro.Rollout:
    """With pass@K, `batch` without the groups left with K or fewer judged rows (no estimate);
    with pass@1 rows are judged one by one against the critic, and every group stays."""
    k = core.objective_k(cfg.objective)
    if k > 1:
        batch.keep_only(core.kept_rows(batch.judged, cfg.group_size, k + 1))
    return batch


def make_critic(cfg: PPOConfig, policy: Policy, dp: DataParallel) -> tuple[Critic, torch.optim.Optimizer]:
    """The critic, data parallel as the policy is, and its optimizer."""
    device = distributed.device()
    critic = build_critic(cfg.critic, policy.model, cfg.critic_model or policy.source.path, device=device,
                          seed=cfg.seed, dtype=torch.bfloat16 if cfg.bf16 else torch.float32,
                          gradient_checkpointing=cfg.gradient_checkpointing)
    critic.share_prompts = cfg.share_prompts
    dp.distribute(critic)  # replicated (ddp) or sharded (fsdp), as the policy
    return critic, adamw(critic.parameters(), cfg.critic_learning_rate, cfg.weight_decay, device)


def update(cfg: PPOConfig, policy: Policy, critic: Critic, critic_optimizer, dp: DataParallel, batch: ro.Rollout,
           step: int) -> dict:
    """Token rewards, GAE, then `ppo_epochs` x `num_minibatches` optimizer steps on one rollout."""
    t0 = time.perf_counter()
    stats = ro.rollout_stats(batch, cfg.group_size)
    mask = batch.completion_mask
    # One on-policy step on the whole batch: the rollout's log-probs and values are those of
    # the training forward itself (no extra forward pass, as GRPO with inner_epochs = 1).
    single_pass = cfg.ppo_epochs == cfg.num_minibatches == 1 and cfg.minibatch_size in (0, len(batch))
    forward = None
    if single_pass:
        critic.train()
        with policy.autocast():
            forward = critic(policy.model, batch, cfg.temperature, with_entropy=True)
        old_logp, old_values = forward[0].detach().float().cpu(), forward[2].detach().float().cpu()
    else:
        old_logp, old_values = score_rollout(cfg, policy, critic, batch)
    ref_logp = policy.ref_logprobs(batch)
    ref_logp = None if ref_logp is None else ref_logp.float().cpu()  # the targets live on the CPU
    rewards = token_rewards(cfg, batch, old_logp, ref_logp)
    advantages, returns = ppo_advantages(cfg, rewards, old_values, mask)
    targets = {"old_logp": old_logp, "old_values": old_values, "advantages": advantages, "returns": returns}
    # The off-policy correction weighs pi_old / pi_behaviour (the sampler's log-probs); both are
    # fixed for the batch, so one set of weights serves every epoch and minibatch.
    weights = core_offpolicy.correction(cfg.correction(), cfg.correction_cap())(
        old_logp, batch.gen_logprobs, mask)
    if weights is not None:
        targets["weights"] = weights
    # Why a seed per step: the minibatch order of a resumed run repeats the uninterrupted one's.
    shuffle = None if single_pass else torch.Generator().manual_seed(derive_seed(cfg.seed, "minibatch_order", step))
    logs: dict[str, list[float]] = {}
    critic.train()
    for _ in range(cfg.ppo_epochs):
        for rows in ro.minibatches(len(batch), len(batch) // cfg.num_minibatches, shuffle):
            optimizer_step(cfg, policy, critic, critic_optimizer, dp, batch, rows, targets, logs, forward)
    stats.update(ro.summarise(logs))
    stats.update(value_mean=float(core.masked_mean(old_values, mask)),
                 return_mean=float(core.masked_mean(returns, mask)),
                 explained_variance=explained_variance(old_values, returns, mask))
    if ref_logp is not None:
        stats["kl"] = float(core.masked_mean(core_logits.masked_kl(core_logits.kl_k3, old_logp, ref_logp, mask), mask))
    gap = None if batch.gen_logprobs is None else ro.logprob_gaps(batch, list(range(len(batch))), old_logp, mask)
    if gap is not None and gap.numel():  # generator vs trainer log-probs: a broken weight sync shows here
        stats.update(logprob_gap_mean=float(gap.mean()), logprob_gap_max=float(gap.max()))
        stats.update({k: float(v) for k, v in core_offpolicy.off_policy_stats(
            old_logp, batch.gen_logprobs, mask, cfg.correction_cap()).items()})
    stats["update_s"] = time.perf_counter() - t0
    return stats


@torch.no_grad()
def score_rollout(cfg: PPOConfig, policy: Policy, critic: Critic,
                  batch: ro.Rollout) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and values (B, T) of the policy and critic that produced the batch, before any update."""
    critic.eval()
    parts = []
    for rows in ro.minibatches(len(batch), cfg.minibatch_size or len(batch)):
        with policy.autocast():
            logp, _, values = critic(policy.model, batch.select(rows), cfg.temperature)
        parts.append((logp.float().cpu(), values.float().cpu()))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def optimizer_step(cfg: PPOConfig, policy: Policy, critic: Critic, critic_optimizer, dp: DataParallel,
                   batch: ro.Rollout, rows: list[int], targets: dict, logs: dict, forward: tuple | None = None) -> None:
    """One step of the policy and the critic on the minibatch `rows`, accumulating gradients over
    chunks of `minibatch_size`; each chunk's loss is its share of the minibatch's token mean on
    all ranks (`core.aggregate_loss`), so the chunks add up to the whole minibatch's.
    `forward`: the critic's outputs for the whole batch in order, already computed (single-pass
    updates)."""
    policy.optimizer.zero_grad(set_to_none=True)
    critic_optimizer.zero_grad(set_to_none=True)
    # PPO's losses are token means over the optimizer minibatch: its tokens on all ranks normalise them.
    idx = torch.tensor(rows)
    whole = dp.global_batch(batch.completion_mask[idx], valid=batch.judged[idx])
    step = {"loss": 0.0, "pg_loss": 0.0, "vf_loss": 0.0}
    chunk = cfg.minibatch_size or len(rows)
    for part in (rows[i:i + chunk] for i in range(0, len(rows), chunk)):
        mb, idx = batch.select(part), torch.tensor(part)
        if forward is None:
            with policy.autocast():
                logp, entropy, values = critic(policy.model, mb, cfg.temperature, with_entropy=True)
        else:
            logp, entropy, values = forward
        t = {k: v[idx].to(logp.device) for k, v in targets.items()}
        mask = mb.completion_mask.to(logp.device)
        pg_loss = core.policy_loss(logp, t["old_logp"], t["advantages"], mask, loss_agg_mode="dapo", batch=whole,
                                   clip_eps_low=cfg.cliprange, clip_eps_high=cfg.cliprange, weights=t.get("weights"))
        vf_per_token = core_credit.clipped_value_loss(values.float(), t["old_values"], t["returns"],
                                                      cfg.cliprange_value)
        vf_loss = core.aggregate_loss(vf_per_token, mask, "dapo", whole)
        loss = pg_loss + cfg.vf_coef * vf_loss
        loss.backward()   # gradients add up over the chunks (and are averaged over ranks below)
        for k, v in (("loss", loss), ("pg_loss", pg_loss), ("vf_loss", vf_loss)):
            step[k] += float(v.detach())
        for key, value in ppo_minibatch_stats(cfg, logp, t, values, entropy, mask).items():
            logs.setdefault(key, []).append(value)
    dp.reduce_gradients(policy.model, critic)   # ddp: averaged over ranks, once per optimizer step
    if cfg.max_grad_norm:
        step["grad_norm"] = parallel.grad_norm(torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(),
                                                                               cfg.max_grad_norm))
        step["critic_grad_norm"] = parallel.grad_norm(torch.nn.utils.clip_grad_norm_(critic.parameters(),
                                                                                      cfg.max_grad_norm))
    policy.optimizer.step()
    critic_optimizer.step()
    for k, v in step.items():
        logs.setdefault(k, []).append(v)


def ppo_minibatch_stats(cfg: PPOConfig, logp, t: dict, values, entropy, mask) -> dict[str, float]:
    """A minibatch's entropy, clip fractions, approximate KL and value-clip fraction (averaged per step)."""
    with torch.no_grad():
        ratio = core.token_ratio(logp, t["old_logp"], mask)
        clip = core.clip_fractions(ratio, t["advantages"], mask, cfg.cliprange, cfg.cliprange)
        row = {"entropy": core.masked_mean(entropy, mask), "clip_low": clip["low"], "clip_high": clip["high"],
               "approx_kl": core.approx_kl(logp, t["old_logp"], mask),
               "vf_clip_frac": core_credit.value_clip_fraction(values.float(), t["old_values"], t["returns"], mask,
                                                               cfg.cliprange_value)}
    return {k: float(v) for k, v in row.items()}


def main(argv: list[str] | None = None) -> int:
    return trainer_main(PPOConfig, train, argv, "python -m trainers.ppo", __doc__.split("\n\n")[1])


if __name__ == "__main__":
    sys.exit(main())
