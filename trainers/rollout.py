"""Rollouts shared by the GRPO and PPO trainers: prompts -> completions -> verdicts -> tensors.

Layout of a batch of B sequences: prompts left-padded to width P, completions right-padded
to width T, so the completion of every row starts at column P and `logits[:, P-1:P-1+T]`
score it (`trainers/forward.py` runs those forwards).

A multi-turn environment's rows are episodes (`models.episodes`): the "completion" is
everything after the first prompt, the model's turns and the observations between them, and
`completion_mask` is the episode's action mask, 0 at observation tokens. Every loss term,
ratio, KL, entropy, value target and token count goes through that mask, so observations are
context only; truncation masking, group advantages and dynamic sampling see one row per
episode.

A row whose verdict is the verifier's own failure (`Verdict.verifier_fault`: a sandbox that
could not start, no server that answered, a checker that crashed) was never judged: `valid` is
False there, its completion mask is all 0 and its reward 0, so it adds nothing to any loss,
baseline, std, row or token count (`trainers/core.py`), and the step's statistics are those of
the judged rows. `faults` counts such verdicts over every draw of the step, for
`verifier_failure_rate` and the run's stop rule (`trainers.fault_guard`).

`RolloutSource` is where a step's batch comes from: it draws prompts from the data stream
(`trainers.task_stream`), samples and verifies this rank's share of them, and collates the
tensors. It keeps batch production apart from the update: the loops only ask it for batches.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from envs.multiturn import MultiTurnEnvironment, episode_verdicts
from evals.config_cli import ConfigError
from models import distributed
from models.episodes import episode_stats, sample_env
from models.sampler import Sample, Sampler
from trainers import core, telemetry
from trainers.config import RunConfig, derive_seed
from verifiers import Task, Verdict


@dataclass
class Rollout:
    """One generation batch: B = prompts * group_size rows, contiguous groups."""

    tasks: list[Task]
    samples: list[Sample]
    verdicts: list[Verdict]
    rewards: Tensor                 # (B,)
    input_ids: Tensor               # (B, P + T)
    attention_mask: Tensor          # (B, P + T)
    completion_mask: Tensor         # (B, T) 1 on completion tokens that enter the loss
    prompt_width: int               # P
    truncated: Tensor               # (B,) bool, finished by max_new_tokens
    gen_logprobs: Tensor | None     # (B, T) generator's log-probs of the sampled tokens, if any
    timings: dict = field(default_factory=dict)
    step_rewards: list[list[float]] | None = None  # per completion, with reward_mode process/both
    step_ends: list[list[int]] | None = None        # completion-token index where each step ends
    versions: Tensor | None = None                  # (B,) long: the policy version that sampled each row
    valid: Tensor | None = None     # (B,) bool: judged rows that enter the loss (None: all)
    faults: dict = field(default_factory=dict)      # `fault_tally` of every verdict drawn for this batch
    stream_stats: dict = field(default_factory=dict)  # the data stream's `stats()` (a curriculum's difficulty)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def judged(self) -> Tensor:
        """(B,) bool: the rows that enter the loss (`valid`, or all)."""
        return torch.ones(len(self), dtype=torch.bool) if self.valid is None else self.valid

    def keep_only(self, keep: Tensor) -> None:
        """Leave the rows outside `keep` (B,) bool out of the loss, in place: not valid, no
        completion tokens, reward 0 and no step rewards (so no group statistic sees them)."""
        drop = ~keep.bool()
        self.valid = self.judged & ~drop
        self.completion_mask[drop] = 0
        self.rewards = torch.where(drop, torch.zeros_like(self.rewards), self.rewards)
        for ragged in (self.step_rewards, self.step_ends):
            for i in drop.nonzero().flatten().tolist() if ragged is not None else []:
                ragged[i] = []

    def select(self, rows: list[int]) -> "Rollout":
        """The rows `rows`, in that order, with every field (tensors, lists and step rewards)."""
        idx = torch.tensor(rows, dtype=torch.long)

        def pick(value):
            if value is None or isinstance(value, int):
                return value                                  # prompt_width and absent fields
            if isinstance(value, dict):
                return dict(value)                            # timings, faults, stream stats: the whole batch's
            return value[idx] if isinstance(value, Tensor) else [value[i] for i in rows]

        return Rollout(**{f.name: pick(getattr(self, f.name)) for f in dataclasses.fields(self)})


def generate_and_verify(sampler: Sampler, env, tasks: list[Task], group_size: int, *, temperature: float, top_p: float,
                        max_new_tokens: int, seed: int | None) -> tuple[list[Task], list[Sample], list[Verdict], dict]:
    """Sample `group_size` completions per task (episodes, for a multi-turn env, with
    `max_new_tokens` per model turn) and score them with the env's verifier (an episode whole)."""
    t0 = time.perf_counter()
    # Tool time is inside the episode loop: generation_s counts it, as the wall time of a rollout.
    groups = sample_env(sampler, env, tasks, group_size, temperature=temperature, top_p=top_p,
                        max_new_tokens=max_new_tokens, seed=seed)
    t1 = time.perf_counter()
    rows = [(task, s) for task, group in zip(tasks, groups) for s in group]
    row_tasks, samples = [t for t, _ in rows], [s for _, s in rows]
    if isinstance(env, MultiTurnEnvironment):
        verdicts = episode_verdicts(env, [s.episode for s in samples], row_tasks)
    else:
        # the verifier learns which completions the token limit cut (no answer read into cut-off text)
        verdicts = env.verifier.verify_batch([s.text for s in samples],
                                             [t.sampled(s.finish_reason) for t, s in zip(row_tasks, samples)])
    t2 = time.perf_counter()
    return row_tasks, samples, verdicts, {"generation_s": t1 - t0, "verification_s": t2 - t1}


def collate(tasks: list[Task], samples: list[Sample], verdicts: list[Verdict], pad_id: int,
            mask_truncated: bool, timings: dict | None = None) -> Rollout:
    """Pad prompts on the left and completions on the right into one tensor batch."""
    P = max(len(s.prompt_token_ids) for s in samples)
    T = max(max(len(s.token_ids) for s in samples), 1)
    B = len(samples)
    input_ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, P + T), dtype=torch.long)
    completion_mask = torch.zeros((B, T))
    gen_lp = torch.zeros((B, T)) if all(s.logprobs is not None for s in samples) else None
    for i, s in enumerate(samples):
        p, c = s.prompt_token_ids, s.token_ids
        input_ids[i, P - len(p):P] = torch.tensor(p)
        input_ids[i, P:P + len(c)] = torch.tensor(c, dtype=torch.long)
        attention[i, P - len(p):P + len(c)] = 1
        # An episode's observation tokens are context: 0 here keeps them out of every loss term.
        completion_mask[i, :len(c)] = 1 if s.action_mask is None else torch.tensor(s.action_mask, dtype=torch.float)
        if gen_lp is not None:
            gen_lp[i, :len(c)] = torch.tensor(s.logprobs)
    truncated = torch.tensor([s.finish_reason == "length" for s in samples])
    if mask_truncated:
        # DAPO's overlong filtering: a truncated completion teaches nothing about its answer.
        completion_mask[truncated] = 0
    rewards = torch.tensor([v.reward for v in verdicts], dtype=torch.float32)
    batch = Rollout(tasks, samples, verdicts, rewards, input_ids, attention, completion_mask, P, truncated, gen_lp,
                    dict(timings or {}), faults=fault_tally(verdicts))
    batch.keep_only(torch.tensor([not v.verifier_fault for v in verdicts], dtype=torch.bool))
    return batch


def fault_tally(verdicts: list[Verdict]) -> dict:
    """How many verdicts there were and how many were verifier faults, with the first fault's
    part (`fault_part` of a composite), status and error: what the stop rule's line names."""
    faults = [v for v in verdicts if v.verifier_fault]
    tally = {"samples": len(verdicts), "faulted": len(faults)}
    if faults:
        info = faults[0].info
        tally["first"] = {"verifier": info.get("fault_part"), "status": info.get("status"),
                          "error": str(info.get("error", ""))[:300]}
    return tally


def merge_tallies(a: dict, b: dict) -> dict:
    """Two `fault_tally`s as one (the draws of a dynamic-sampling step)."""
    return {"samples": a.get("samples", 0) + b.get("samples", 0), "faulted": a.get("faulted", 0) + b.get("faulted", 0),
            **({"first": a.get("first") or b.get("first")} if a.get("first") or b.get("first") else {})}


def char_to_token_ends(tokenizer, token_ids: list[int], char_ends: list[int]) -> list[int]:
    """Completion-token index at which each character offset (exclusive end of a step) is
    reached when the tokens are decoded one by one; offsets past the text map to the last token."""
    lengths = [len(tokenizer.decode(token_ids[: i + 1], skip_special_tokens=True)) for i in range(len(token_ids))]
    return [next((i for i, n in enumerate(lengths) if n >= end), max(len(lengths) - 1, 0)) for end in char_ends]


def add_step_rewards(batch: Rollout, step_verifier, tokenizer) -> None:
    """Score each completion's steps (`info["steps"]` of a step verifier: character offsets and
    scores) and store them on the batch as ragged per-step rewards and step-end token indices;
    a row left out of the loss gets none."""
    verdicts = step_verifier.verify_batch([s.text for s in batch.samples], batch.tasks)
    batch.step_rewards = [[float(st["score"]) for st in v.info.get("steps", [])] for v in verdicts]
    batch.step_ends = [char_to_token_ends(tokenizer, s.token_ids, [st["end"] for st in v.info.get("steps", [])])
                       for s, v in zip(batch.samples, verdicts)]
    batch.keep_only(batch.judged)


class RolloutSource:
    """Batches of `group_size` completions per prompt, sampled by `sampler` from `env`'s prompts
    as the `stream` hands them out, verified by the environment's verifier, collated with the
    tokenizer's pad id, and with per-step rewards when `reward_mode` uses a step verifier."""

    def __init__(self, cfg: RunConfig, env, sampler: Sampler, tokenizer, stream, *, rank: int | None = None,
                 world: int | None = None):
        self.cfg, self.env, self.sampler, self.tokenizer, self.stream = cfg, env, sampler, tokenizer, stream
        # A rollout worker is outside the process group: it is told its rank and the world size.
        self.rank, self.world = rank, world
        self.step_verifier = None
        if cfg.reward_mode != "outcome":
            from verifiers import get_verifier

            self.step_verifier = get_verifier(cfg.step_verifier)

    def draw(self, k: int) -> Rollout | None:
        """Draw k prompts from the stream (every rank draws the same ones), and sample, verify
        and collate this rank's contiguous share of them; None when the share is empty."""
        start = self.stream.position
        tasks = self.stream.take(k)
        lo, hi = distributed.rank_share_bounds(k, self.rank, self.world)
        # The sampling seed follows the data position (the end of this rank's share), so a
        # resumed run samples what the uninterrupted one did, and ranks sample apart.
        batch = self.make(tasks[lo:hi], start + hi) if hi > lo else None
        # Every rank, after every draw: a curriculum sums the pass rates over ranks (a collective).
        self.stream.observe([] if batch is None else batch.verdicts)
        return batch

    def make(self, tasks: list[Task], position: int | None = None) -> Rollout:
        """Sample `group_size` completions of each task, verify them and collate the batch;
        `position`, the data position that seeds the sampling (default: the stream's)."""
        cfg = self.cfg
        seed = derive_seed(cfg.seed, "sampling", self.stream.position if position is None else position)
        tasks, samples, verdicts, timings = generate_and_verify(
            self.sampler, self.env, tasks, cfg.group_size, temperature=cfg.temperature, top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens, seed=seed)
        return self.collate(tasks, samples, verdicts, timings)

    def collate(self, tasks: list[Task], samples: list[Sample], verdicts: list[Verdict],
                timings: dict | None = None) -> Rollout:
        """Tensors of a batch, with step rewards when the run uses them."""
        batch = collate(tasks, samples, verdicts, self.tokenizer.pad_token_id, self.cfg.mask_truncated, timings)
        batch.stream_stats = self.stream.stats()
        if self.step_verifier is not None:
            add_step_rewards(batch, self.step_verifier, self.tokenizer)
        return batch


def outcome_advantages(objective: str, batch: Rollout, group_size: int, scale_rewards: str = "none",
                       batch_std: float | None = None) -> Tensor:
    """(B,) the objective's outcome advantages of a batch's judged rows (`core.advantage_fn`);
    rewards the objective cannot take (pass@K needs 0 or 1) are a `ConfigError` naming it."""
    try:
        return core.advantage_fn(objective)(batch.rewards, group_size, scale_rewards, batch_std=batch_std,
                                            valid=batch.judged)
    except ValueError as exc:
        raise ConfigError(f"objective: {exc}") from None


def minibatches(n: int, size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """Row indices split into shuffled minibatches of `size` (the last may be smaller)."""
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    return [order[i:i + size] for i in range(0, n, size)]


def logprob_gaps(batch: Rollout, rows: list[int], trainer_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|generator - trainer| log-probs of a minibatch's sampled tokens (flat): a broken weight
    sync shows here first. Valid in the first inner epoch, before any optimizer step."""
    gen = batch.gen_logprobs[torch.tensor(rows)].to(trainer_logp.device)
    return (gen - trainer_logp.detach()).abs()[mask.bool()].float().cpu()


def rollout_stats(batch: Rollout, group_size: int) -> dict:
    """A step's statistics of its judged rows (rewards, pass rate, lengths, telemetry), with
    `verifier_failure_rate` over every verdict drawn for it."""
    judged = batch.judged
    rows = judged.nonzero().flatten().tolist()
    samples = [batch.samples[i] for i in rows]
    # Lengths count the model's tokens only: an episode's observations are not its output.
    lengths = [len(s.token_ids) if s.action_mask is None else sum(s.action_mask) for s in samples]
    rewards = batch.rewards[judged]
    n = max(len(rows), 1)
    tally = batch.faults or fault_tally(batch.verdicts)
    stats = {"reward_mean": float(rewards.mean()) if rows else 0.0,
             "reward_std": float(rewards.std()) if len(rows) > 1 else 0.0,
             "pass_rate": sum(batch.verdicts[i].passed for i in rows) / n, "completion_len_mean": sum(lengths) / n,
             "completion_len_max": max(lengths, default=0),
             "truncated_frac": float(batch.truncated[judged].float().mean()) if rows else 0.0,
             "groups": len(batch) // group_size,
             "verifier_failure_rate": tally["faulted"] / max(tally["samples"], 1), "verifier_faults": tally["faulted"],
             "verifier_verdicts": tally["samples"],
             **batch.timings, **batch.stream_stats}
    if tally.get("first"):
        stats["verifier_fault"] = tally["first"]
    gen = batch.timings.get("generation_s", 0.0)
    stats["tokens_per_s"] = sum(lengths) / gen if gen else 0.0
    stats.update(episode_stats(samples))
    stats.update(telemetry.batch_telemetry(batch, group_size, lengths))
    audits = [a for a in (_audit(batch.verdicts[i]) for i in rows) if a is not None]
    if audits:  # a verifier run with `audit` checks its verdicts a second way; how often they disagree
        stats["audit_disagreement_rate"] = sum(not a["agree"] for a in audits) / len(audits)
    return stats


def _audit(verdict: Verdict) -> dict | None:
    """The verdict's `info["audit"]` (with an `agree` flag), or that of a composite's part."""
    infos = [verdict.info, *(p.get("info", {}) for p in verdict.info.get("parts", {}).values())]
    return next((i["audit"] for i in infos if isinstance(i.get("audit"), dict) and "agree" in i["audit"]), None)


class SyncRollouts:
    """The loop's feed under `--rollout sync`: each step's batch is drawn in this process between
    updates (`draw(cfg, rollouts, dp)`, GRPO's dynamic sampling, or `rollouts.draw`), and after
    the update the sampler gets the new weights. `trainers.async_rollout.AsyncRollouts` is the
    same four calls with a worker process behind them; both are the data stream `Checkpoints`
    saves. The stream observes each draw's verdicts where it draws (`RolloutSource.draw`)."""

    def __init__(self, cfg: RunConfig, policy, dp, rollouts: RolloutSource, draw=None):
        self.cfg, self.policy, self.dp, self.rollouts, self.draw = cfg, policy, dp, rollouts, draw

    def state_dict(self) -> dict:
        return self.rollouts.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rollouts.stream.load_state_dict(state)

    @contextmanager
    def running(self, version: int):
        """Nothing runs beside the loop in sync mode."""
        yield self

    def next_batch(self, step: int) -> Rollout:
        """Step `step`'s batch, sampled now by the current policy (version step - 1)."""
        cfg = self.cfg
        batch = self.draw(cfg, self.rollouts, self.dp) if self.draw else self.rollouts.draw(cfg.prompts_per_step)
        batch.versions = torch.full((len(batch),), step - 1, dtype=torch.long)
        return batch

    def publish(self, step: int, batch: Rollout) -> dict:
        """The sampler samples the new policy (version `step`)."""
        return {"sync_s": self.policy.sync_weights()}


def rollout_feed(cfg: RunConfig, env, policy, dp, rollouts: RolloutSource, draw=None):
    """The loop's source of batches, as `cfg.rollout` says: `SyncRollouts`, or `AsyncRollouts`
    with a worker process (`trainers.async_rollout`)."""
    if cfg.rollout == "async":
        from trainers.async_rollout import AsyncRollouts

        return AsyncRollouts(cfg, env, policy, dp, rollouts, draw)
    return SyncRollouts(cfg, policy, dp, rollouts, draw)


def summarise(logs: dict[str, list[float]]) -> dict[str, float]:
    """A step's minibatch statistics as one value each: the maximum of `*_max`, else the mean."""
    return {k: (max(v) if k.endswith("_max") else sum(v) / len(v)) for k, v in logs.items() if v}
