"""samples.jsonl resume rules, report files, tables, plot and the manifest helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from evals import report as rp
from verifiers import CompositeVerifier, Task, get_verifier

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "evals"))
from evals_toy import ExactAnswer  # noqa: E402

RUN = {"env": "toy", "seed": 0, "temperature": 1.0}


def rec(task_id: str, index: int, passed: bool = True) -> dict:
    return {"task_id": task_id, "index": index, "completion": "c", "passed": passed, "reward": float(passed),
            "status": "passed" if passed else "failed", "info": {}}


def test_store_persists_and_resumes(tmp_path):
    store = rp.SampleStore.open(tmp_path, RUN)
    store.append([rec("a", 0), rec("a", 1, False), rec("b", 0)])
    again = rp.SampleStore.open(tmp_path, RUN)
    assert [r["passed"] for r in again.done["a"]] == [True, False]
    assert len(again.done["b"]) == 1
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["run"] == store.key for line in lines)
    assert json.loads((tmp_path / "run.json").read_text()) == RUN


def test_store_refuses_other_configuration_naming_fields(tmp_path):
    rp.SampleStore.open(tmp_path, RUN).append([rec("a", 0)])
    with pytest.raises(rp.ReportError, match=r"temperature: 1.0 != 0.7.*--overwrite"):
        rp.SampleStore.open(tmp_path, {**RUN, "temperature": 0.7})


def test_store_overwrite_discards(tmp_path):
    rp.SampleStore.open(tmp_path, RUN).append([rec("a", 0)])
    store = rp.SampleStore.open(tmp_path, {**RUN, "seed": 1}, overwrite=True)
    assert store.done == {}
    assert not (tmp_path / "samples.jsonl").exists()


def test_store_drops_a_line_cut_off_by_an_interruption(tmp_path):
    store = rp.SampleStore.open(tmp_path, RUN)
    store.append([rec("a", 0)])
    with (tmp_path / "samples.jsonl").open("a") as fh:
        fh.write('{"run": "' + store.key + '", "task_id": "a", "ind')
    again = rp.SampleStore.open(tmp_path, RUN)
    assert len(again.done["a"]) == 1
    again.append([rec("a", 1)])
    assert len(rp.SampleStore.open(tmp_path, RUN).done["a"]) == 2


@pytest.mark.parametrize("line,message", [
    ({"run": "someone-else", "task_id": "a", "index": 0}, "another run configuration"),
    ({"task_id": "a", "index": 0}, "another run configuration"),
    ({"completion": "x"}, "expected a sample record with task_id and index"),
    ([1, 2], "expected a sample record"),
    ("RAW:{oops", "samples.jsonl:1: invalid JSON"),
    ("SELF:a:3", "sample 3 follows 0 samples"),
])
def test_store_refuses_foreign_lines(tmp_path, line, message):
    store = rp.SampleStore.open(tmp_path, RUN)
    if line == "SELF:a:3":
        line = {"run": store.key, **rec("a", 3)}
    text = line[4:] if isinstance(line, str) and line.startswith("RAW:") else json.dumps(line)
    (tmp_path / "samples.jsonl").write_text(text + "\n")
    with pytest.raises(rp.ReportError, match=message):
        rp.SampleStore.open(tmp_path, RUN)


def test_in_memory_store_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = rp.SampleStore(None, RUN)
    store.append([rec("a", 0), rec("a", 1)])
    assert len(store.done["a"]) == 2 and list(tmp_path.iterdir()) == []


def test_dataset_hash_sees_contents_and_order():
    a, b = Task(id="a", prompt="p", answer="1"), Task(id="b", prompt="q", answer="2")
    changed = Task(id="a", prompt="p", answer="7")
    assert rp.dataset_hash([a, b]) == rp.dataset_hash([a, b])
    assert rp.dataset_hash([a, b]) != rp.dataset_hash([changed, b])
    assert rp.dataset_hash([a, b]) != rp.dataset_hash([b, a])


def test_describe_keeps_options_and_composite_parts():
    composite = CompositeVerifier([(ExactAnswer(strip=False), 1.0), (get_verifier("format"), 0.1)])
    desc = rp.describe(composite)
    assert desc["name"] == "composite" and desc["options"]["correctness"] == "exact_answer"
    names = [part[0] for part in desc["options"]["parts"]]
    assert names == ["exact_answer", "format"]
    exact = desc["options"]["parts"][0][1]
    assert exact["options"] == {"strip": False} and desc["options"]["parts"][1][2] == 0.1
    assert rp.describe(composite) == rp.describe(composite)
    json.dumps(desc)   # JSON-able


def test_describe_function_verifier_names_function_and_options():
    desc = rp.describe(get_verifier("format", pattern="a+"))
    assert desc["options"]["options"] == {"pattern": "a+"}
    assert desc["options"]["fn"] == "verifiers.format.format_verifier"   # the function, by qualified name


def test_describe_records_the_code_limits_in_force_defaults_included():
    """A manifest must show the sandbox limits a code environment ran under, even when the user set
    none, or two runs with different defaults would compare as equal."""
    from envs import get_env

    def limits(env):
        program = rp.describe(env.verifier)["options"]["parts"][0][1]
        assert program["class"] == "envs.program.ProgramVerifier"
        return program["options"]["code"]["options"]["limits"]

    default, strict = get_env("humaneval"), get_env("humaneval", code_options={"time_limit": 2.0, "memory_mb": 256})
    assert limits(default)["time_limit"] == 5.0 and limits(default)["memory_mb"] == 1024
    assert limits(strict)["time_limit"] == 2.0 and limits(strict)["memory_mb"] == 256
    assert rp.differences({"limits": limits(default)}, {"limits": limits(strict)}) == [
        "limits.memory_mb: 1024 != 256", "limits.time_limit: 5.0 != 2.0"]
    json.dumps(rp.describe(strict.verifier))


@pytest.mark.parametrize("old,new,expected", [
    ({"a": 1}, {"a": 1}, []),
    ({"a": 1}, {"a": 2}, ["a: 1 != 2"]),
    ({"a": {"b": 1}}, {"a": {}}, ["a.b: 1 != <missing>"]),
    ({"a": [1]}, {"a": [1, 2]}, ["a: [1] != [1, 2]"]),
    (1, "1", ["value: 1 != '1'"]),
])
def test_differences(old, new, expected):
    assert rp.differences(old, new) == expected


def test_load_report_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(rp.ReportError, match="not a pass@k report"):
        rp.load_report(tmp_path / "x.json")
    with pytest.raises(rp.ReportError, match="cannot read report"):
        rp.load_report(tmp_path / "bad.json")
    with pytest.raises(rp.ReportError, match="cannot read report"):
        rp.load_report(tmp_path / "missing.json")


def small_report() -> dict:
    entry = {"value": 0.5, "ci": [0.25, 0.75], "num_tasks": 2}
    missing = {"value": None, "ci": None, "num_tasks": 2,
               "not_computable": {"reason": "1 task(s) have fewer than k=2 samples", "tasks": ["b"]}}
    metrics = {"1": entry, "2": missing}
    return {"format": rp.REPORT_FORMAT, "ks": [1, 2], "confidence": 0.95, "metrics": {"pass@k": metrics,
            "pass^k": metrics}, "manifest": {"model": "m", "env": {"name": "toy", "options": {}}}}


def test_format_table_shows_values_intervals_and_not_computable():
    table = rp.format_table(small_report()).splitlines()
    assert table[0] == "| k | pass@k | 95% CI | pass^k | 95% CI |"
    assert table[2] == "| 1 | 0.500 | [0.250, 0.750] | 0.500 | [0.250, 0.750] |"
    assert table[3].startswith("| 2 | not computable | 1 task(s) have fewer than k=2 samples |")


def test_format_comparison_table():
    diff = {"before": 0.25, "after": 0.5, "difference": 0.25, "ci": [0.0, 0.5], "wins": 3, "losses": 1,
            "ties": 4, "p_value": 0.625}
    missing = {"difference": None, "ci": None, "p_value": None, "not_computable": {"reason": "too few"}}
    comparison = {"ks": [1, 4], "confidence": 0.9, "metrics": {"pass@k": {"1": diff, "4": missing}}}
    rows = rp.format_comparison_table(comparison).splitlines()
    assert "90% CI" in rows[0]
    assert rows[2] == "| 1 | 0.250 | 0.500 | +0.250 | [+0.000, +0.500] | 3/1/4 | 0.625 |"
    assert "not computable | too few" in rows[3]


def test_write_report_writes_json_and_png(tmp_path):
    paths = rp.write_report(small_report(), tmp_path / "out")
    assert json.loads(paths["report"].read_text())["ks"] == [1, 2]
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rp.write_report(small_report(), tmp_path / "bare", plot_png=False).keys() == {"report"}


def _drawn(monkeypatch, draw):
    """The figure `draw()` saves, caught when matplotlib closes it."""
    import matplotlib.pyplot as plt

    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig) or close(fig))
    draw()
    return figures[-1]


@pytest.mark.parametrize("ks, values, expected_ticks", [
    ([1], {"1": 0.5}, [1]),                                   # one k: one integer tick, no 0.945 .. 1.050
    ([1, 2, 3], {"1": 0.5, "2": 0.6, "3": 0.7}, [1, 2, 3]),
    ([1, 2], {"1": 0.5, "2": None}, [1, 2]),                  # a k not computable still has its tick
])
def test_pass_at_k_plot_has_integer_ticks_and_the_users_model_name(tmp_path, monkeypatch, ks, values,
                                                                    expected_ticks):
    metrics = {k: ({"value": v, "ci": [v - 0.1, v + 0.1]} if v is not None else {"value": None, "ci": None})
               for k, v in values.items()}
    report = {**small_report(), "ks": ks, "metrics": {"pass@k": metrics, "pass^k": metrics}}
    report["manifest"] = {"model": "/cache/tiny-llama-22b5ec5e40f5-warm", "model_label": "tiny",
                          "env": {"name": "toy", "options": {}}}
    fig = _drawn(monkeypatch, lambda: rp.write_report(report, tmp_path))
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == expected_ticks
    assert ax.get_title() == "tiny on toy" and ax.get_xlabel().startswith("k")


def test_package_versions_names_python_and_absent_packages():
    versions = rp.package_versions()
    assert versions["python"].count(".") == 2
    assert versions["numpy"] is not None
    assert set(rp.PACKAGES) <= set(versions)
