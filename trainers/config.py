"""The trainers' config: `RunConfig` (the fields every trainer has), the command line of a
trainer (`trainer_main`) and the one seed derivation (`derive_seed`).

A trainer's config is one dataclass (`GRPOConfig`, `PPOConfig`, both `RunConfig`s): each field's
docstring becomes its `--help` text, `--field-name value` sets it and `--config file.yaml` loads
a YAML mapping of fields (flags win). The command line is `evals.config_cli`'s, the one the
evaluation has too; `cfg.validate()` raises `ConfigError` naming the field and the rule before
any work starts.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass, field

import torch

from evals.config_cli import ConfigError, parse_config, require, require_choice, user_errors
from models.backends import BACKENDS
from models.distributed import launched_world_size
from trainers.core import objective_k
from trainers.core_offpolicy import OFF_POLICY_CORRECTIONS

# Each random stream of a run gets its own seed from the run seed and a counter (the data
# position, the epoch, the step): distinct prime multipliers keep two streams, or two runs with
# neighbouring seeds, from drawing the same numbers.
SEED_STREAMS = {"sampling": 1_000_003, "task_order": 100_003, "minibatch_order": 7919, "rank_rng": 10_007}


def derive_seed(seed: int, stream: str, counter: int) -> int:
    """The seed of `stream` (see SEED_STREAMS) at `counter`; below 2**31, which vLLM requires."""
    return (seed * SEED_STREAMS[stream] + counter) % 2**31


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
    """options passed to the environment, as JSON, e.g. '{"digits": 3}' (`envs.env_help(name)` lists them)"""
    verifier_url: str = ""
    """URL[,URL...] of `python -m verifiers serve` servers that judge each step's samples (a failed server's
    share is retried on another; a sample none can judge is an `error` verdict); empty: verify in-process"""
    steps: int = 1000
    """optimizer steps (each on one generation batch; inner_epochs > 1 takes more updates per batch)"""
    max_minutes: float = 7.0
    """safety cap: stop training after this many minutes even if `steps` are not done (0 = no limit);
    the run's result depends on the step count, not on the machine's speed, unless this cap is hit"""
    prompts_per_step: int = 32
    """prompts drawn per step, over all processes (under torchrun each draws prompts_per_step / world size)"""
    group_size: int = 8
    """completions sampled per prompt (G in the paper)"""
    max_new_tokens: int | None = None
    """longest completion (a multi-turn env: model turn), in tokens; null = the env's default (8 unless it sets one)"""
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
    objective: str = "pass@1"
    """pass@1 (each completion's own reward) | pass@K, K < group_size: optimise the chance that one of K
    samples passes (PKPO, Walder & Karkhanis 2025): keeps exploring prompts the model rarely solves
    and stops sharpening those it mostly solves; binary rewards and reward_mode=outcome (docs/training.md)"""
    max_verifier_failure_rate: float = 0.05
    """stop the run (after a checkpoint) when more than this share of the samples of the last
    verifier_failure_window steps got a verifier fault instead of a judgement (1 = never stop);
    faulted samples never enter the loss either way"""
    verifier_failure_window: int = 10
    """steps over which max_verifier_failure_rate is measured (fewer at the start of a run)"""
    step_verifier: str = "arithmetic_steps"
    """registered step verifier for reward_mode process/both"""
    minibatch_size: int = 0
    """completions per forward/backward pass on each process (gradient accumulation); 0 = its whole batch"""
    mask_truncated: bool = False
    """exclude completions cut by max_new_tokens from the loss (DAPO overlong filtering)"""
    generation_backend: str = "auto"
    """vllm | hf | auto (vllm on a CUDA machine with vLLM installed, else hf: see models.backends.resolve_backend)"""
    rollout: str = "sync"
    """sync | async: sync samples and verifies each step's batch between updates; async runs a rollout worker
    process with its own copy of the sampler that samples and verifies the next batches while the trainer
    updates (docs/async.md)"""
    max_staleness: int = 1
    """with rollout=async: batch t + N is sampled with the weights of version t (the policy after t optimizer
    steps), so a batch is trained on N steps after the policy that sampled it; 0 overlaps nothing"""
    off_policy_correction: str = "auto"
    """auto | none | tis | decoupled: per-token importance weights pi_old / pi_behaviour on the surrogate; tis
    truncates them at tis_cap (Yao et al. 2025), decoupled is AReaL's decoupled PPO (the clip against the trainer's
    policy before the update, the exact weight outside it, tokens above decoupled_cap dropped); none trusts the
    batch as if the current policy had sampled it (trainers/core_offpolicy.py); auto is tis where rows are stale
    (rollout=async with max_staleness >= 1) and none otherwise (docs/async.md: why)"""
    tis_cap: float = 2.0
    """with off_policy_correction=tis: the largest importance weight (larger ones are truncated to it)"""
    decoupled_cap: float | None = 5.0
    """with off_policy_correction=decoupled: tokens whose importance weight exceeds it leave the loss
    (AReaL's behav_imp_weight_cap); null keeps every weight"""
    parallelism: str = "ddp"
    """with several processes (torchrun): ddp (each holds the model, gradients averaged) | fsdp (FSDP2
    shards parameters, gradients and optimizer state; for models that do not fit one device)"""
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
    eval_difficulty: int | str | None = None
    """evaluate at this difficulty level of the environment (an int, or max for its hardest level;
    envs/difficulty.py); null = the environment's options as given"""
    curriculum: str = "none"
    """none | adaptive: draw training prompts at the environment's difficulty levels, the level raised or
    lowered from the pass rates to keep them in curriculum_band (trainers/curriculum.py; arithmetic,
    calculator and reasoning_gym have levels)"""
    curriculum_band: list[float] = field(default_factory=lambda: [0.2, 0.8])
    """[low, high]: the pass rates the adaptive curriculum keeps the batches in; it steps the difficulty
    down when the window's pass rate is below low"""
    curriculum_target: float | None = None
    """the adaptive curriculum steps the difficulty up when the window's pass rate is above this (inside
    the band; null = the band's middle): it seeks the hardest mix whose rate stays in the band"""
    curriculum_window: int = 128
    """groups (prompts) whose pass rates the curriculum reads before each decision, at one position"""
    curriculum_step: float = 0.25
    """how far one decision moves the difficulty, in levels (1/n: between two levels the prompts mix them)"""
    curriculum_start: float = 0.0
    """the difficulty the curriculum starts at (a level, or between two)"""
    tensorboard: bool = False
    """also write TensorBoard scalars to output_dir/tb"""
    log_every: int = 10
    """print a progress line every N steps"""
    verbose: bool = False
    """show vLLM's INFO logging (engine start-up, every weight reload); off, only its warnings"""

    def correction(self) -> str:
        """The off-policy correction the run applies: `off_policy_correction`, with `auto` settled.

        Why `auto` is tis on stale rows: with no correction, a token the last updates made
        rarer is still sampled at the older policy's rate, and its log-likelihood gradient does
        not shrink with its probability, so stale negative samples are pushed down too hard and
        their mass spreads over the other tokens (entropy rises). At staleness 1 that cost the
        `make train` run 0.095 pass@1 and calculator 0.16, while tis learned as sync did
        (docs/async.md). Fresh rows (sync, staleness 0) keep `none`: no log-probs to compute,
        and the loss stays bit for bit the sync one."""
        if self.off_policy_correction != "auto":
            return self.off_policy_correction
        return "tis" if self.rollout == "async" and self.max_staleness > 0 else "none"

    def correction_cap(self) -> float | None:
        """The cap of the correction applied (tis_cap, decoupled_cap; none: None)."""
        return {"tis": self.tis_cap, "decoupled": self.decoupled_cap}.get(self.correction())

    def env_kwargs(self) -> dict:
        """The environment's options, `verifier_url` included when the trainer option sets it."""
        return {**self.env_options, **({"verifier_url": self.verifier_url} if self.verifier_url else {})}

    def validate(self) -> None:
        """Fail before any work, naming the field and the rule."""
        for name in ("steps", "prompts_per_step", "group_size", "max_new_tokens"):
            require(getattr(self, name) is None and name == "max_new_tokens" or getattr(self, name) >= 1, name,
                    f"must be >= 1, got {getattr(self, name)}")
        require(self.group_size >= 2, "group_size", "must be >= 2: a group of one has no relative advantage")
        require(self.temperature > 0, "temperature", "must be > 0 for sampling-based RL")
        require(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        require(self.learning_rate > 0, "learning_rate", "must be > 0")
        require_choice(self.reward_mode, ["outcome", "process", "both"], "reward_mode")
        try:
            k = objective_k(self.objective)
        except ValueError as exc:
            raise ConfigError(f"objective: {exc}") from None
        require(k < self.group_size, "objective",
                f"pass@{k} needs K < group_size, got K = {k} and group_size = {self.group_size}: at K = group_size "
                "every sample of a group with a pass gets the same reward and the group carries no signal")
        require(k == 1 or self.reward_mode == "outcome", "objective",
                f"pass@{k} transforms outcome rewards; reward_mode={self.reward_mode!r} needs objective pass@1")
        require(0 <= self.max_verifier_failure_rate <= 1, "max_verifier_failure_rate", "must be in [0, 1]")
        require(self.verifier_failure_window >= 1, "verifier_failure_window", "must be >= 1")
        require_choice(self.generation_backend, BACKENDS, "generation_backend")
        world = launched_world_size()
        require(self.prompts_per_step % world == 0, "prompts_per_step",
                f"must divide by the {world} processes (each draws an equal share), got {self.prompts_per_step}")
        require_choice(self.parallelism, ["ddp", "fsdp"], "parallelism")
        require_choice(self.rollout, ["sync", "async"], "rollout")
        require(self.max_staleness >= 0, "max_staleness", f"must be >= 0, got {self.max_staleness}")
        # A worker has no process group: its curriculum would see its own rank's verdicts only.
        require(not (self.rollout == "async" and self.curriculum != "none" and world > 1), "curriculum",
                "with rollout=async runs on one process only (each rank's worker would move its own difficulty)")
        require_choice(self.off_policy_correction, ["auto", *OFF_POLICY_CORRECTIONS], "off_policy_correction")
        require(self.tis_cap > 0, "tis_cap", f"must be > 0, got {self.tis_cap}")
        require(self.decoupled_cap is None or self.decoupled_cap > 0, "decoupled_cap", "must be > 0 or null")
        batch = self.prompts_per_step // world * self.group_size
        mb = self.minibatch_size or batch
        per = "prompts_per_step * group_size" + (f" / {world} processes" if world > 1 else "")
        require(0 < mb <= batch and batch % mb == 0, "minibatch_size",
                f"must divide {per} = {batch}, got {self.minibatch_size}")
        require(self.lora_rank >= 0, "lora_rank", "must be >= 0")
        require(not self.bf16 or torch.cuda.is_available(), "bf16", "needs a CUDA device")
        require(self.eval_samples >= 0, "eval_samples", "must be >= 0")
        require(self.eval_tasks >= 0, "eval_tasks", "must be >= 0")
        require(self.max_minutes >= 0, "max_minutes", "must be >= 0")
        require(self.torch_threads >= 0, "torch_threads", "must be >= 0 (0 = automatic)")
        self._validate_curriculum()
        require(not (self.verifier_url and "verifier_url" in self.env_options), "verifier_url",
                "is given twice: as a trainer option and in env_options")


    def _validate_curriculum(self) -> None:
        require(self.eval_difficulty is None or self.eval_difficulty == "max" or (
            isinstance(self.eval_difficulty, int) and not isinstance(self.eval_difficulty, bool)
            and self.eval_difficulty >= 0), "eval_difficulty", f"must be null, max or a level >= 0, got "
                f"{self.eval_difficulty!r}")
        require_choice(self.curriculum, ["none", "adaptive"], "curriculum")
        band = self.curriculum_band
        require(isinstance(band, list) and len(band) == 2 and all(isinstance(x, (int, float)) for x in band)
                and 0 <= band[0] < band[1] <= 1, "curriculum_band", f"must be [low, high] with 0 <= low < high <= 1, "
                f"got {band!r}")
        target = self.curriculum_target
        require(target is None or (isinstance(target, (int, float)) and not isinstance(target, bool)
                                   and band[0] <= target <= band[1]), "curriculum_target",
                f"must be null or a pass rate inside curriculum_band {band!r}, got {target!r}")
        require(self.curriculum_window >= 1, "curriculum_window", "must be >= 1")
        n = round(1 / self.curriculum_step) if self.curriculum_step > 0 else 0
        require(0 < self.curriculum_step <= 1 and abs(n * self.curriculum_step - 1) < 1e-9, "curriculum_step",
                f"must be 1/n for a whole n (1, 0.5, 0.25, ...), got {self.curriculum_step}")
        require(self.curriculum_start >= 0 and abs(self.curriculum_start * n - round(self.curriculum_start * n))
                < 1e-9, "curriculum_start", f"must be >= 0 and a multiple of curriculum_step, got "
                f"{self.curriculum_start}")


def trainer_main(cls: type, train, argv: list[str] | None, prog: str, description: str) -> int:
    """The body of a trainer's `main`: parse and validate the config (exit 2 naming the field on
    a bad value, before any work), then train (bad input found later, `user_errors`, also exits 2
    with one line; a rollout worker that fails or dies, 1 with one line; a run a safety rule
    stopped, `RunStopped`, exits 3 with one line)."""
    from models import distributed
    from trainers.fault_guard import RunStopped
    from trainers.rollout_worker import RolloutWorkerError

    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main is not None and main.name.startswith("trainers."):
        # A `python -m trainers...` process, everything imported: later full collections skip it
        # (trainers/__init__.py). Not when a caller's process runs `main`: its heap is its own.
        gc.freeze()
    try:
        cfg = parse_config(cls, argv, prog, description)
        train(cfg)
    except (*user_errors(), RolloutWorkerError) as exc:
        # Every rank that sees the error says so, naming itself; torchrun then ends the others.
        where = f"rank {distributed.rank()}: " if distributed.launched() else ""
        print(f"error: {where}{exc}", file=sys.stderr)
        return 1 if isinstance(exc, RolloutWorkerError) else 2   # a failure, not bad input
    except RunStopped as exc:  # a safety rule, after a checkpoint: every rank stops at the same step
        if distributed.is_main():
            print(f"error: {exc}", file=sys.stderr)
        distributed.close()
        return 3
    distributed.close()
    return 0
