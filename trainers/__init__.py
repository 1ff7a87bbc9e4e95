"""verirl trainers: `python -m trainers.grpo` and `python -m trainers.ppo`.

A run is a few named parts, which `train(cfg)` in each loop builds and calls in order:
- `trainers.parallel.DataParallel`: the process group, gradient averaging, timed collectives;
- `trainers.lifecycle`: `start_run` (threads, seeds, output folder, environment), `finish_run`;
- `trainers.policy.Policy`: the model, its optimizer, the reference, the sampler, weight sync;
- `trainers.rollout.RolloutSource` over `trainers.task_stream.TaskStream`: verified batches;
- `trainers.clock.RunClock`: the step counter, the time cap, Ctrl-C;
- `trainers.metrics_log.MetricsLog`: metrics.jsonl, TensorBoard, progress lines;
- `trainers.checkpoint.Checkpoints`: sharded checkpoints of all of the above, exact resume;
- `trainers.evaluator.Evaluator`: pass@k before, during and after training, and the report.

The math is pure: `trainers.core` (advantages, ratios, losses and their aggregation) and
`trainers.core_credit` (GAE, the value loss, step rewards on tokens). `trainers.forward` runs
the forward passes that score completion tokens, `trainers.critic` is PPO's value model,
`trainers.config` holds the fields every trainer has, `trainers.plots` draws `rewards.png`.

Trainers sample through `models` and evaluate through `evals`; nothing below imports them.
"""

import gc as _gc
import sys as _sys

# Run as a command (`python -m trainers.grpo`, and each torchrun rank), a trainer imports torch
# and transformers: about a million objects that live as long as the process, which Python's
# cyclic collector walked at each full pass while the rest loaded, a fifth of a start's CPU
# (1.1 of 5.3 s). Frozen, the collector skips them: here after torch, and again once everything
# is loaded (trainers.config.trainer_main, the rollout worker's main). Frozen objects are only
# never collected as cycles, and these live to the end anyway. Imported as a library: untouched.
if _sys.argv[:1] == ["-m"]:
    import torch  # noqa: E402, F401

    _gc.freeze()
