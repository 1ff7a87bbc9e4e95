"""verirl evals: pass@k with bootstrap intervals and paired before/after comparisons.

    from evals import evaluate, compare, write_report
    before = evaluate(generator, "arithmetic", n=8, ks=[1, 8], model="tiny")
    ...
    after = evaluate(generator, "arithmetic", n=8, ks=[1, 8], model="tiny")
    result = compare(before, after)

Modules: `evals.stats` (estimators, bootstrap, exact test), `evals.sampling` (generate or take
completions, verify, resume), `evals.report` (files, tables, plots), `evals.pass_at_k` (the
library entry points and the command line). The names above are loaded on first use, so
`python -m evals.pass_at_k` does not import the module twice.
"""

_PUBLIC = {"evaluate", "compare", "check_comparable", "run", "EvalConfig", "write_report", "write_comparison",
           "format_table", "format_comparison_table", "load_report"}


def __getattr__(name: str):
    if name in _PUBLIC:
        from evals import pass_at_k

        return getattr(pass_at_k, name)
    raise AttributeError(f"module 'evals' has no attribute {name!r}")


__all__ = sorted(_PUBLIC)
