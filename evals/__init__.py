"""verirl evals: pass@k with bootstrap intervals and paired before/after comparisons.

    from evals import evaluate, compare, write_report
    before = evaluate(sampler, "arithmetic", n=8, ks=[1, 8], model="tiny")
    ...
    after = evaluate(sampler, "arithmetic", n=8, ks=[1, 8], model="tiny")
    result = compare(before, after)

Modules: `evals.stats` (estimators, bootstrap, exact test), `evals.collect` (generate or take
completions, verify, resume), `evals.report` (files, tables, plots), `evals.harness` (the
library: `EvalConfig`, `evaluate`), `evals.comparison` (`compare`), `evals.config_cli` (the
command line of a dataclass config, shared with the trainers), and `evals/pass_at_k.py`, the
command line. The names above are loaded on first use, so `import evals` stays cheap.
"""

_PUBLIC = {
    "evaluate": "harness", "evaluate_config": "harness", "EvalConfig": "harness",
    "compare": "comparison", "check_comparable": "comparison",
    "write_report": "report", "write_comparison": "report", "format_table": "report",
    "format_comparison_table": "report", "load_report": "report",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        from importlib import import_module

        return getattr(import_module(f"evals.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'evals' has no attribute {name!r}")


__all__ = sorted(_PUBLIC)
