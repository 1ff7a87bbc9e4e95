"""How a training run starts and ends, the same for GRPO and PPO.

`start_run(cfg)` is what a run does before it loads a model: torch's threads and the seeds,
the output folder, and the environment, whose verifier starts its workers (SymPy, sandboxes)
in the background while the model loads rather than inside step one. It also settles the
config's last open value (`max_new_tokens`: the environment's default when not given) and
writes `config.yaml` beside the results. A fresh run clears what an earlier run left in the
folder (checkpoints, metrics.jsonl, the before evaluation); `resume=true` keeps them.

`finish_run(...)` is what it does after the last step: the final checkpoint, the trained model
in `output_dir/final/`, the after-evaluation and the report (`Evaluator.finish`), and the
sampler shut down.
"""

from __future__ import annotations

import random
import shutil
import threading
from pathlib import Path

import torch

from envs.multiturn import MultiTurnEnvironment
from evals.config_cli import dump_yaml
from models import distributed
from models.loading import is_tiny
from trainers.checkpoint import Checkpoints
from trainers.clock import RunClock
from trainers.config import RunConfig, require
from trainers.evaluator import Evaluator
from trainers.metrics_log import MetricsLog
from trainers.policy import Policy


def start_run(cfg: RunConfig):
    """Threads, seeds, the output folder and `config.yaml`; returns the environment."""
    import envs

    threads = cfg.torch_threads or (1 if is_tiny(cfg.model) and not torch.cuda.is_available() else 0)
    if threads:
        torch.set_num_threads(threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    if distributed.is_main():
        _prepare_output_dir(out, cfg.resume)
    distributed.barrier()
    env = envs.get_env(cfg.env, **cfg.env_kwargs())
    if cfg.max_new_tokens is None:  # the env's own default (a tool call needs more room than an answer)
        cfg.max_new_tokens = getattr(env, "default_max_new_tokens", None) or 8
    # Step verifiers score one completion's text; an episode interleaves observations with it.
    require(cfg.reward_mode == "outcome" or not isinstance(env, MultiTurnEnvironment), "reward_mode",
            f"must be 'outcome' for the multi-turn environment {cfg.env!r}: per-step rewards "
            f"({cfg.reward_mode!r}) score single completions, not episodes")
    threading.Thread(target=_warm_up, args=(env.verifier,), daemon=True).start()
    if distributed.is_main():
        (out / "config.yaml").write_text(dump_yaml(cfg))
    return env


def finish_run(algorithm: str, policy: Policy, checkpoints: Checkpoints, evaluator: Evaluator, clock: RunClock,
               log: MetricsLog) -> dict:
    """Save the last step and the trained model, evaluate it, write the report; the report."""
    checkpoints.save()                                           # resumable, like every checkpoint
    final_model = policy.save_pretrained(Path(evaluator.cfg.output_dir) / "final")
    report = evaluator.finish(algorithm, clock, log.history, final_model, policy.source)
    policy.close()                                               # vLLM's engine, before the process group
    return report


def _prepare_output_dir(out: Path, resume: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        for old in [*out.glob("checkpoint-*"), out / "metrics.jsonl", out / "eval_before"]:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def _warm_up(verifier) -> None:
    """Start a verifier's workers in the background. A failure (no bubblewrap, say) is left to
    the first `verify_batch`, which raises it again on the main thread, where the CLI turns it
    into one `error:` line; here it would only print a thread's traceback."""
    try:
        verifier.warm_up()
    except Exception:  # noqa: BLE001 - reported by the first verify_batch, see above
        pass
