"""The run's held-out evaluations and its final report.

`Evaluator.evaluate(tag)` measures pass@k of the current policy on the environment's test
split with `evals.harness.evaluate` (every rank samples its share of the tasks) into
`output_dir/eval_TAG/` (its samples, and its `report.json`); with `eval_difficulty`, on the
test split at that difficulty level (`evaluation_env`): `before` training, every
`eval_every` steps (`stepN`) and `after`. The samples are seeded apart from training's (the run
seed + 1). A resumed run reuses its `before` report: the policy it measured is gone by then.

`Evaluator.finish` ends a run: the after-evaluation, the paired before/after comparison
(`evals.comparison.compare`), and on rank 0 the comparison table on stdout, `rewards.png`
(`trainers.plots`) and `report.json` with both reports and the run's summary.

Each evaluation after `before` also measures the held-out gap: the training pass rate since the
previous evaluation minus the held-out pass@1 (`MetricsLog.heldout_gap`, which warns when it
widens over two evaluations); the gaps go in the summary as `heldout_gaps`. An evaluation whose
verifier failed on more than `max_verifier_failure_rate` of its samples is refused
(`evals.harness`): the run ends with that one line rather than report a pass@k it did not measure.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from models import distributed
from models.loading import ModelRef
from trainers.clock import RunClock
from trainers.config import RunConfig
from trainers.metrics_log import MetricsLog, progress
from trainers.plots import plot_rewards


def evaluation_env(cfg: RunConfig, env):
    """The environment the run is evaluated on: `env`, or `env` at `eval_difficulty`."""
    from envs.difficulty import at_level

    return env if cfg.eval_difficulty is None else at_level(env, cfg.eval_difficulty)


class Evaluator:
    """pass@k reports of the policy that `sampler` samples, by tag (`evaluations`)."""

    def __init__(self, cfg: RunConfig, env, sampler, log: MetricsLog | None = None):
        self.cfg, self.env, self.sampler, self.log = cfg, evaluation_env(cfg, env), sampler, log
        self.out = Path(cfg.output_dir)
        self.evaluations: dict[str, dict | None] = {}
        self.gaps: list[dict] = []
        self._last_step = 0   # the step of the previous evaluation (the before-evaluation: 0)

    def evaluate(self, tag: str, step: int | None = None) -> dict | None:
        """pass@k of the current policy (None with `eval_samples=0`), kept as `evaluations[tag]`;
        after `step` training steps (None: before training), with its held-out gap."""
        from evals.harness import evaluate
        from evals.report import load_report, write_json

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
        report = evaluate(self.sampler, self.env, n=cfg.eval_samples, model=f"{cfg.model}@{tag}",
                          temperature=cfg.eval_temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                          seed=cfg.seed + 1, limit=cfg.eval_tasks or None, output_dir=str(out),
                          batch_size=max(1, 256 // cfg.eval_samples), env_options=cfg.env_options,
                          max_verifier_failure_rate=cfg.max_verifier_failure_rate)
        if distributed.is_main():  # what a resumed run reuses (the "before" policy is gone by then)
            write_json(report, out / "report.json")
        episodes = report.get("episodes")
        tools = f", {episodes['tool_calls_mean']:.2f} tool calls/episode" if episodes else ""
        pass1 = report["metrics"]["pass@k"]["1"]["value"]
        progress(f"eval {tag}: pass@1 {_fmt(pass1)} ({time.perf_counter() - t0:.1f}s, {len(report['tasks'])} tasks "
                 f"x {cfg.eval_samples}{tools}){self._gap(step, pass1)}")
        self.evaluations[tag] = report
        return report

    def _gap(self, step: int | None, pass1: float | None) -> str:
        """The held-out gap after `step` steps, kept in `gaps`, as a clause of the progress line."""
        if step is None or self.log is None or pass1 is None or step <= self._last_step:
            return ""
        gap = self.log.heldout_gap(step, pass1, since=self._last_step)
        self._last_step = step
        self.gaps.append(gap)
        return f", train pass rate {_fmt(gap['train_pass_rate'])}, held-out gap {gap['gap']:+.3f}"

    def evaluate_if_due(self, step: int) -> None:
        if self.cfg.eval_every and step % self.cfg.eval_every == 0:
            self.evaluate(f"step{step}", step)

    def finish(self, algorithm: str, clock: RunClock, history: list[dict], final_model: Path,
               source: ModelRef) -> dict:
        """The after-evaluation and the run's report: {summary, before, after, comparison}."""
        from evals.comparison import compare

        after = self.evaluate("after", clock.step)  # every rank samples its share of the tasks
        before = self.evaluations.get("before")
        summary = {"algorithm": algorithm, "config": dataclasses.asdict(self.cfg), "steps": clock.step,
                   "train_seconds": round(clock.elapsed(), 1), "final_model": str(final_model),
                   "backend": self.sampler.backend, "world_size": distributed.world_size(),
                   "last_metrics": history[-1] if history else None, "heldout_gaps": self.gaps,
                   "hacking_warnings": [{"step": m["step"], "warnings": m["hacking_warnings"]}
                                        for m in history if m.get("hacking_warnings")]}
        report = {"summary": summary, "before": before, "after": after, "comparison": None}
        if before is not None and after is not None:
            report["comparison"] = compare(before, after)
        if distributed.is_main():
            self._write(report, history, f"{algorithm} on {self.cfg.env}, model {source.label}")
        distributed.barrier()  # no rank ends the run before rank 0 has written it
        return report

    def _write(self, report: dict, history: list[dict], title: str) -> None:
        """Rank 0's output: the reward figure, the comparison table and report.json."""
        from evals.report import format_comparison_table

        plot_rewards(history, self.evaluations, self.out / "rewards.png", title)
        if report["comparison"] is not None:
            print(format_comparison_table(report["comparison"]))
        (self.out / "report.json").write_text(json.dumps(report, indent=1, default=str))
        progress(f"wrote {self.out / 'report.json'}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
