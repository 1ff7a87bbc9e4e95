"""The frame GRPO and PPO share: set-up, sampling a batch, weight sync, logging, checkpoints and
the before/after evaluation. The loops themselves live in `trainers/grpo.py` and
`trainers/ppo.py`; checkpoints in `trainers/checkpoint.py`, forward passes in
`trainers/forward.py`, the figure in `trainers/plots.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import shutil
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from envs.multiturn import MultiTurnEnvironment
from models import distributed
from models.loading import ModelRef, is_tiny, resolve_model
from models.sampling import make_generator, resolve_backend
from trainers import checkpoint, parallel
from trainers import rollout as ro
from trainers.config import RunConfig, derive_seed, require
from verifiers.options import dump_yaml
from trainers.forward import completion_logprobs
from trainers.plots import plot_rewards

# An environment may generate an endless train stream; the trainer cycles over its first
# TRAIN_TASKS_CAP tasks, which keeps the data position (and so resuming) exact.
TRAIN_TASKS_CAP = 100_000


def _kl_to_reference(cfg) -> bool:
    """Whether the trainer penalises KL to a reference policy (GRPO's beta, PPO's kl_coef)."""
    return getattr(cfg, "beta", 0) > 0 or getattr(cfg, "kl_coef", 0) > 0


def adamw(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW fused into one kernel where torch has one (CPU and CUDA), as transformers' default
    `adamw_torch_fused` (so TRL's) is: on the tiny model a step drops from 1.8 to 0.4 ms."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda") or None)


def _warm_up(verifier) -> None:
    """Start a verifier's workers in the background. A failure (no bubblewrap, say) is left to
    the first `verify_batch`, which raises it again on the main thread, where the CLI turns it
    into one `error:` line; here it would only print a thread's traceback."""
    try:
        verifier.warm_up()
    except Exception:  # noqa: BLE001 - reported by the first verify_batch, see above
        pass


def log(*args) -> None:
    """A progress line on stderr, from rank 0 only (every rank would print the same)."""
    if distributed.is_main():
        print(*args, file=sys.stderr, flush=True)


class RunContext:
    """Everything a training loop touches, built from its config in `create`."""

    # Set in __init__
    cfg: RunConfig
    algorithm: str
    out: Path                       # output_dir
    step: int                       # optimizer steps done
    start: float                    # perf_counter at start (moved back by a resumed run's elapsed time)
    history: list[dict]             # the metrics logged so far, one dict per step
    evaluations: dict[str, Any]     # eval tag (before, stepN, after) -> its pass@k report
    extra_state: dict               # name -> (module, optimizer) checkpointed with the run (`add_state`)
    resumed_from: Path | None       # the checkpoint this run continues, if any
    comm: parallel.CommTimer        # seconds spent in collectives this step
    world: int                      # processes in the run (1 without torchrun)
    # Set in create
    env: Any                        # the environment (tasks, prompts, verifier)
    model_ref: ModelRef             # the model as the user named it, and its loadable path
    device: torch.device
    tokenizer: Any
    model: Any                      # the policy being trained (a peft model with lora_rank; sharded with fsdp)
    gen_model: Any                  # what the hf generator samples: `model`, or its full copy under fsdp
    ref_model: Any                  # frozen copy for KL (None without KL or with LoRA: adapters off)
    optimizer: torch.optim.Optimizer
    stream: ro.TaskStream           # the train split, in shuffled passes
    step_verifier: Any              # step verifier for reward_mode process/both, else None
    generator: Any                  # models.sampling generator (HFGenerator or VLLMGenerator)
    tb: Any                         # TensorBoard writer or None

    def __init__(self, cfg: RunConfig, algorithm: str):
        self.cfg, self.algorithm = cfg, algorithm
        self.out = Path(cfg.output_dir)
        self.step, self.start = 0, time.perf_counter()
        self.history, self.evaluations = [], {}
        self.extra_state, self.resumed_from = {}, None
        self.comm, self.world = parallel.CommTimer(), distributed.world_size()

    # ------------------------------------------------------------------ set-up
    @classmethod
    def create(cls, cfg: RunConfig, algorithm: str) -> "RunContext":
        import envs

        distributed.init()  # a no-op without torchrun; every rank runs the same code below
        run = cls(cfg, algorithm)
        threads = cfg.torch_threads or (1 if is_tiny(cfg.model) and not torch.cuda.is_available() else 0)
        if threads:
            torch.set_num_threads(threads)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if distributed.is_main():
            run._prepare_output_dir()
        distributed.barrier()
        run.env = envs.get_env(cfg.env, **cfg.env_kwargs())
        if cfg.max_new_tokens is None:  # the env's own default (a tool call needs more room than an answer)
            cfg.max_new_tokens = getattr(run.env, "default_max_new_tokens", None) or 8
        # Step verifiers score one completion's text; an episode interleaves observations with it.
        require(cfg.reward_mode == "outcome" or not isinstance(run.env, MultiTurnEnvironment), "reward_mode",
                f"must be 'outcome' for the multi-turn environment {cfg.env!r}: per-step rewards "
                f"({cfg.reward_mode!r}) score single completions, not episodes")
        # Verifier workers (SymPy, sandboxes) start while the model loads, not inside step one.
        threading.Thread(target=_warm_up, args=(run.env.verifier,), daemon=True).start()
        with distributed.main_first():  # rank 0 builds the tiny model's warm start; the others read its cache
            run.model_ref = resolve_model(cfg.model, warm_start=cfg.warm_start, log=log, env=cfg.env)
        run.device = distributed.device()
        run._load_model()
        run.optimizer = adamw([p for p in run.model.parameters() if p.requires_grad], cfg.learning_rate,
                              cfg.weight_decay, run.device)
        # One global stream on every rank: each takes the same prompts and keeps its own share.
        run.stream = ro.TaskStream(envs.take(run.env.tasks("train"), TRAIN_TASKS_CAP), cfg.seed)
        run.step_verifier = run._step_verifier()
        if cfg.resume:
            run._resume()
        backend = resolve_backend(cfg.generation_backend)
        # The hf generator samples from the trainer's own module (no sync needed); vLLM loads the
        # path and gets the new weights pushed after every optimizer step.
        run.generator = make_generator(run.model_ref.path if backend == "vllm" else run.gen_model, backend,
                                       tokenizer=run.tokenizer, dtype="bfloat16" if cfg.bf16 else "float32",
                                       seed=cfg.seed, verbose=cfg.verbose)
        run.sync_weights()
        run.tb = run._tensorboard()
        if distributed.is_main():
            (run.out / "config.yaml").write_text(dump_yaml(cfg))
        return run

    def _load_model(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg, path = self.cfg, self.model_ref.path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        fsdp = self.world > 1 and cfg.parallelism == "fsdp"
        # Under fsdp the master weights stay float32 and FSDP's mixed precision computes in bf16.
        dtype = torch.bfloat16 if cfg.bf16 and not fsdp else torch.float32
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device)
        parallel.broadcast_parameters(model)
        self.ref_model = None
        if _kl_to_reference(cfg) and cfg.lora_rank == 0:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        if cfg.lora_rank:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.model = self.gen_model = model
        if fsdp:
            # Generation reads a full copy, refilled after each update (sync_weights): a
            # sharded model would need every rank to run the same decoding steps.
            self.gen_model = copy.deepcopy(model).requires_grad_(False)
            parallel.shard(model, bf16=cfg.bf16)
            if self.ref_model is not None:
                parallel.shard(self.ref_model, bf16=cfg.bf16)

    def _prepare_output_dir(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.cfg.resume:
            for old in [*self.out.glob("checkpoint-*"), self.out / "metrics.jsonl", self.out / "eval_before"]:
                shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)

    def _step_verifier(self):
        if self.cfg.reward_mode == "outcome":
            return None
        from verifiers import get_verifier

        return get_verifier(self.cfg.step_verifier)

    def _tensorboard(self):
        if not self.cfg.tensorboard or not distributed.is_main():
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tb"))

    @property
    def model_path(self) -> str:
        return self.model_ref.path

    # ------------------------------------------------------------------ sampling
    def sample(self, k: int) -> ro.Rollout | None:
        """Draw k prompts from the global stream (every rank draws the same ones), and sample,
        verify and collate this rank's contiguous share of them; None when the share is empty."""
        start = self.stream.position
        tasks = self.stream.take(k)
        lo, hi = distributed.shard_bounds(k)
        # The sampling seed follows the data position (the end of this rank's share), so a
        # resumed run samples what the uninterrupted one did, and ranks sample apart.
        return self.generate(tasks[lo:hi], start + hi) if hi > lo else None

    def generate(self, tasks, position: int | None = None) -> ro.Rollout:
        """Sample `group_size` completions of each task, verify them and collate the batch;
        `position`, the data position that seeds the sampling (default: the stream's)."""
        cfg = self.cfg
        seed = derive_seed(cfg.seed, "sampling", self.stream.position if position is None else position)
        tasks, samples, verdicts, timings = ro.generate_and_verify(
            self.generator, self.env, tasks, cfg.group_size, temperature=cfg.temperature, top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens, seed=seed)
        return self.collate(tasks, samples, verdicts, timings)

    def collate(self, tasks, samples, verdicts, timings: dict | None = None) -> ro.Rollout:
        """Tensors of a batch, with step rewards when the run uses them."""
        batch = ro.collate(tasks, samples, verdicts, self.tokenizer.pad_token_id, self.cfg.mask_truncated, timings)
        if self.step_verifier is not None:
            ro.add_step_rewards(batch, self.step_verifier, self.tokenizer)
        return batch

    def ref_logprobs(self, batch: ro.Rollout) -> torch.Tensor | None:
        """Reference-policy log-probs (B, T), or None when beta (or kl_coef) is 0."""
        if not _kl_to_reference(self.cfg):
            return None
        with torch.no_grad():
            if self.ref_model is not None:
                return completion_logprobs(self.ref_model, batch, self.cfg.temperature,
                                           share_prompts=self.cfg.share_prompts)[0]
            with self.model.disable_adapter():
                return completion_logprobs(self.model, batch, self.cfg.temperature,
                                           share_prompts=self.cfg.share_prompts)[0]

    # ------------------------------------------------------------------ weights
    def _named_weights(self):
        """Checkpoint-named full weights (LoRA merged in) for the generator."""
        model = self.gen_model
        if not self.cfg.lora_rank:
            return list(model.state_dict().items())
        model.merge_adapter()
        try:
            return [(k.replace("base_model.model.", "", 1).replace(".base_layer", ""), v.detach().clone())
                    for k, v in model.state_dict().items() if "lora_" not in k]
        finally:
            model.unmerge_adapter()

    def sync_weights(self) -> float:
        """Push the policy's weights into a generator that keeps its own copy (vLLM), after
        gathering the full parameters into the generation copy under fsdp; seconds taken."""
        t0 = time.perf_counter()
        if self.gen_model is not self.model:
            with self.comm:
                full = parallel.full_state_dict(self.model)
            self.gen_model.load_state_dict(full)
            del full
        if self.generator.needs_sync:
            self.generator.load_weights(self._named_weights())
        return time.perf_counter() - t0

    def distribute(self, module) -> None:
        """Make a trained module (PPO's critic) data parallel as the policy is: on several
        processes, rank 0's weights everywhere (ddp) or sharded (fsdp)."""
        if self.world > 1 and self.cfg.parallelism == "fsdp":
            parallel.shard(module, bf16=self.cfg.bf16)
        else:
            parallel.broadcast_parameters(module)

    def reduce_gradients(self, *modules) -> None:
        """ddp on several processes: average the trainable gradients of the policy (and
        `modules`) over ranks, once per optimizer step; fsdp reduces its own in backward."""
        if self.world > 1 and self.cfg.parallelism == "ddp":
            with self.comm:
                parallel.average_gradients([p for m in (self.model, *modules) for p in m.parameters()
                                            if p.requires_grad])

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cfg.bf16 else nullcontext()

    # ------------------------------------------------------------------ the loop's frame
    def next_step(self) -> bool:
        """Advance the step counter; False once `steps` are done or `max_minutes` is up."""
        if self.step >= self.cfg.steps or self.time_is_up():
            return False
        self.step += 1
        return True

    def log_step(self, metrics: dict) -> None:
        """Reduce the step's metrics over ranks; rank 0 appends them to metrics.jsonl (and
        TensorBoard) and prints a progress line every log_every."""
        if self.world > 1:
            with self.comm:
                metrics = parallel.reduce_metrics(distributed.all_gather_objects(metrics))
            metrics["comm_s"] = self.comm.take()
        metrics = {"step": self.step, "elapsed_s": round(time.perf_counter() - self.start, 3),
                   "world_size": self.world, **metrics}
        self.history.append(metrics)
        if not distributed.is_main():
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, self.step)
        if self.step % self.cfg.log_every == 0 or self.step == 1:
            log(f"step {self.step:4d}  reward {metrics['reward_mean']:.3f}  pass {metrics['pass_rate']:.3f}  "
                f"loss {metrics['loss']:+.4f}  gen {metrics['generation_s']:.2f}s  upd {metrics['update_s']:.2f}s")

    def checkpoint_if_due(self) -> None:
        if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
            self.save_checkpoint()

    def evaluate_if_due(self) -> None:
        if self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
            self.evaluate(f"step{self.step}")

    @contextmanager
    def checkpoint_on_interrupt(self):
        """Ctrl-C saves a checkpoint and exits with 130; `--resume true` continues from it.
        With several processes the ranks stop at different points, so none can save together:
        resume from the last periodic checkpoint (`checkpoint_every`)."""
        try:
            yield
        except KeyboardInterrupt:
            if self.world > 1:
                log("interrupted: with several processes no checkpoint is saved on Ctrl-C; "
                    "--resume true continues from the last periodic one")
            else:
                log(f"interrupted: saved {self.save_checkpoint()}; continue with --resume true")
            raise SystemExit(130) from None

    def time_is_up(self) -> bool:
        limit = self.cfg.max_minutes
        up = bool(limit) and time.perf_counter() - self.start > 60 * limit
        if self.world > 1 and limit:  # all ranks stop at the same step, or some would wait forever
            up = distributed.all_reduce([float(up)], "max")[0] > 0
        if up and distributed.is_main():
            log(f"max_minutes={limit} reached: stopping at step {self.step} of {self.cfg.steps}")
        return up

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        return checkpoint.save(self.out, self.cfg, self.step, {"policy": (self.model, self.optimizer),
                                                                **self.extra_state},
                               self.stream.position, time.perf_counter() - self.start)

    def add_state(self, name: str, module, optimizer) -> None:
        """Checkpoint `module` and its `optimizer` with the run, as `name`; after a resume they
        are restored right here, so call this before training starts."""
        self.extra_state[name] = (module, optimizer)
        if self.resumed_from is not None:
            checkpoint.restore(self.resumed_from, {name: (module, optimizer)})

    def _resume(self) -> None:
        resumed = checkpoint.load_latest(self.out, {"policy": (self.model, self.optimizer)}, self.cfg.seed)
        self.step, self.stream.position = resumed.step, resumed.data_position
        self.start -= resumed.elapsed_s
        self.resumed_from = resumed.path
        self.history = checkpoint.trim_metrics(self.out / "metrics.jsonl", self.step)
        if resumed.world_size != self.world:
            log(f"resuming a {resumed.world_size}-process checkpoint on {self.world}: parameters and optimizer "
                f"state are resharded, the data position kept; the random draws differ (not bit-exact)")
        log(f"resumed from {resumed.path} at step {self.step}")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, tag: str) -> dict | None:
        """pass@k of the current policy on the env's test split (`output_dir/eval_TAG/`); the
        "before" report is reused on resume, since the policy it measured has not changed."""
        from evals.pass_at_k import evaluate
        from evals.report import load_report

        cfg = self.cfg
        if not cfg.eval_samples:
            return None
        out = self.out / f"eval_{tag}"
        if tag == "before" and (out / "report.json").exists():
            self.evaluations[tag] = load_report(out / "report.json")
            return self.evaluations[tag]
        if distributed.is_main():
            shutil.rmtree(out, ignore_errors=True)
        distributed.barrier()
        t0 = time.perf_counter()
        # seed + 1: the evaluation's samples are drawn apart from training's (seeded by the run seed).
        report = evaluate(self.generator, self.env, n=cfg.eval_samples, model=f"{cfg.model}@{tag}",
                          temperature=cfg.eval_temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                          seed=cfg.seed + 1, limit=cfg.eval_tasks or None, output_dir=str(out),
                          batch_size=max(1, 256 // cfg.eval_samples), env_options=cfg.env_options)
        episodes = report.get("episodes")
        tools = f", {episodes['tool_calls_mean']:.2f} tool calls/episode" if episodes else ""
        log(f"eval {tag}: pass@1 {report['metrics']['pass@k']['1']['value']:.3f} "
            f"({time.perf_counter() - t0:.1f}s, {len(report['tasks'])} tasks x {cfg.eval_samples}{tools})")
        self.evaluations[tag] = report
        return report

    def finish(self, before: dict | None) -> dict:
        """Final checkpoint, model, after-evaluation, reward figure, comparison and report.json."""
        from evals.pass_at_k import compare

        self.save_checkpoint()
        final = self.save_final_model()
        after = self.evaluate("after")  # every rank samples its share of the tasks
        summary = {"algorithm": self.algorithm, "config": self.config_dict(), "steps": self.step,
                   "train_seconds": round(time.perf_counter() - self.start, 1), "final_model": str(final),
                   "backend": self.generator.backend, "world_size": self.world,
                   "last_metrics": self.history[-1] if self.history else None}
        report = {"summary": summary, "before": before, "after": after, "comparison": None}
        if before is not None and after is not None:
            report["comparison"] = compare(before, after)
        if distributed.is_main():
            self._write_report(report)
        self.generator.close()
        distributed.barrier()
        return report

    def _write_report(self, report: dict) -> None:
        """Rank 0's output: the reward figure, the comparison table and report.json."""
        from evals.report import format_comparison_table

        plot_rewards(self.history, self.evaluations, self.out / "rewards.png",
                     f"{self.algorithm} on {self.cfg.env}, model {self.model_ref.label}")
        if report["comparison"] is not None:
            print(format_comparison_table(report["comparison"]))
        (self.out / "report.json").write_text(json.dumps(report, indent=1, default=str))
        log(f"wrote {self.out / 'report.json'}")

    def save_final_model(self) -> Path:
        """Rank 0 saves the trained model (under fsdp its full copy, refilled after the last update)."""
        path = self.out / "final"
        if distributed.is_main():
            self.gen_model.save_pretrained(path)
            self.tokenizer.save_pretrained(path)
        return path

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.cfg)
