"""One GRPO update from a fixed rollout, on however many processes launched this script
(`python tests/distributed_update.py MODEL OUT` or `torchrun --nproc_per_node 2 ...`).

Every rank samples the same global rollout (same model, seed and batch), fixes its rewards to a
pattern with signal in every group, keeps its contiguous share of the groups and takes one
update through the trainer's own `update_policy`; rank 0 writes the full parameters and the
logged metrics after it, per configuration, to OUT (torch.save). tests/trainers/test_distributed.py
compares the file of 2 processes with `one_update` called in its own process.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from models import distributed  # noqa: E402
from trainers import parallel  # noqa: E402
from trainers.grpo import GRPOConfig, judged_groups, make_loss_fn, update_policy  # noqa: E402
from trainers.lifecycle import start_run  # noqa: E402
from trainers.parallel import DataParallel  # noqa: E402
from trainers.policy import Policy  # noqa: E402
from trainers.rollout import RolloutSource  # noqa: E402
from trainers.task_stream import TaskStream  # noqa: E402

PROMPTS, GROUP = 4, 4
# Loss aggregations and advantage scalings whose global batch needs collectives (dapo's token
# count, the batch std), with and without gradient accumulation over minibatches.
CONFIGS = {
    "grpo": dict(loss_type="grpo"),
    "dapo_batch_std": dict(loss_type="dapo", scale_rewards="batch", minibatch_size=4),
    "grpo_two_epochs": dict(loss_type="grpo", inner_epochs=2, minibatch_size=4),
    # Verifier faults: rows left out of the loss, so the ranks count different rows and tokens
    # (group 2, on rank 1, keeps one judged row and is dropped); bnpo counts its minibatches' rows.
    "bnpo_faults": dict(loss_type="bnpo", scale_rewards="batch", minibatch_size=4),
    "pass2_faults": dict(loss_type="grpo", objective="pass@2"),
}
FAULTED = {"bnpo_faults": [1, 6, 9, 10, 11], "pass2_faults": [1, 6, 13]}


def one_update(model: str, out_dir: Path, parallelism: str, name: str, overrides: dict) -> dict:
    cfg = GRPOConfig(model=model, warm_start=False, env="arithmetic", prompts_per_step=PROMPTS, group_size=GROUP,
                     max_new_tokens=6, eval_samples=0, generation_backend="hf", parallelism=parallelism,
                     output_dir=str(out_dir / f"{parallelism}-{name}"), learning_rate=0.1, **overrides)
    cfg.validate()
    dp = DataParallel.join(cfg.parallelism)
    env = start_run(cfg)
    policy = Policy.load(cfg, dp)
    # SGD, so parameters move by lr x gradient: AdamW's first step, lr * g / (|g| + eps), turns
    # the float rounding of gradients near zero into differences up to lr (the gradients, also
    # compared, match either way).
    policy.optimizer = torch.optim.SGD(policy.trainable_parameters(), lr=cfg.learning_rate)
    stream = TaskStream.of(env, cfg.seed)
    rollouts = RolloutSource(cfg, env, policy.sampler, policy.tokenizer, stream)
    batch = rollouts.make(stream.take(PROMPTS), position=0)  # the same global rollout on every rank
    binary = cfg.objective != "pass@1"   # pass@K takes 0/1 rewards
    batch.rewards = torch.tensor([float((i * 5) % 3 == 0) + (0.0 if binary else 0.25 * (i % 2))
                                  for i in range(len(batch))])
    batch.keep_only(torch.tensor([i not in FAULTED.get(name, []) for i in range(len(batch))]))
    lo, hi = distributed.rank_share_bounds(PROMPTS)
    mine = judged_groups(cfg, batch.select(list(range(lo * GROUP, hi * GROUP))))
    metrics = update_policy(cfg, policy, dp, mine, make_loss_fn(cfg), step=1)
    state = parallel.full_state_dict(policy.model) if distributed.active() else policy.model.state_dict()
    grads = {n: p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
             for n, p in policy.model.named_parameters() if p.grad is not None}
    return {"params": {k: v.detach().cpu().clone() for k, v in state.items()},
            "grads": {k: v.detach().cpu().clone() for k, v in grads.items()}, "grad_norm": metrics.get("grad_norm")}


def main() -> None:
    model, out = sys.argv[1], Path(sys.argv[2])
    strategies = sys.argv[3].split(",") if len(sys.argv) > 3 else ["ddp"]
    results = {(s, name): one_update(model, out.parent, s, name, kw) for s in strategies
               for name, kw in CONFIGS.items()}
    if distributed.is_main():
        torch.save(results, out)
    distributed.close()


if __name__ == "__main__":
    main()
