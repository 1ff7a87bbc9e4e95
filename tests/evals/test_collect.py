"""Completions files, task selection, batching, seeds, and collect's generate/verify/resume loop."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from evals import collect
from evals.report import ReportError, SampleStore

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "evals"))
from evals_toy import FakeGenerator, ToyEnv  # noqa: E402


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_read_completions_groups_in_file_order(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [
        {"task_id": "t1", "completion": "a"}, "", {"task_id": "t0", "completion": "b", "extra": 1},
        {"task_id": "t1", "completion": ""},
    ])
    assert collect.read_completions(path) == {"t1": ["a", ""], "t0": ["b"]}


@pytest.mark.parametrize("line,message", [
    ("{not json", "c.jsonl:2: invalid JSON"),
    ('["task_id", "completion"]', "c.jsonl:2: expected an object"),
    ('{"task_id": "t0"}', "c.jsonl:2: expected an object with string fields"),
    ('{"task_id": 3, "completion": "x"}', "c.jsonl:2: expected an object with string fields"),
    ('{"task_id": "t0", "completion": null}', "c.jsonl:2: expected an object with string fields"),
])
def test_read_completions_names_the_bad_line(tmp_path, line, message):
    path = write_lines(tmp_path / "c.jsonl", [{"task_id": "t0", "completion": "a"}, line])
    with pytest.raises(ReportError, match=message):
        collect.read_completions(path)


def test_read_completions_rejects_empty_file(tmp_path):
    with pytest.raises(ReportError, match="holds no completions"):
        collect.read_completions(write_lines(tmp_path / "c.jsonl", ["", " "]))


def test_completions_source_kinds(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [{"task_id": "t0", "completion": "0"}])
    by_file, sha_file = collect.completions_source(path)
    by_map, sha_map = collect.completions_source({"t0": ("0",)})
    assert by_file == by_map == {"t0": ["0"]}
    assert len(sha_file) == len(sha_map) == 64 and sha_file != sha_map
    assert collect.completions_source(FakeGenerator()) == (None, None)
    with pytest.raises(TypeError, match="source must be"):
        collect.completions_source(42)


def test_select_tasks():
    tasks = ToyEnv(size=5).tasks("test")
    assert [t.id for t in collect.select_tasks(tasks, None, None, "toy")] == ["t0", "t1", "t2", "t3", "t4"]
    assert [t.id for t in collect.select_tasks(tasks, None, 2, "toy")] == ["t0", "t1"]
    chosen = collect.select_tasks(tasks, {"t3": ["x"], "t1": ["y"]}, None, "toy")
    assert [t.id for t in chosen] == ["t1", "t3"]   # split order, not file order
    with pytest.raises(ReportError, match=r"2 task id\(s\) of the completions are not in toy split, "
                                          r"e.g. \['HumanEval/0', 'zz'\]"):
        collect.select_tasks(tasks, {"t1": ["y"], "HumanEval/0": ["x"], "zz": ["x"]}, None, "toy split")


def test_task_seed_is_stable_and_distinct():
    seed = collect.task_seed(0, "t0")
    # sha256 of '[0, "t0"]', its first 8 bytes little-endian, >> 2: fixed across processes and
    # Python versions (Python's str hash is salted per process)
    import hashlib
    digest = hashlib.sha256(b'[0, "t0"]').digest()
    assert seed == int.from_bytes(digest[:8], "little") >> 2
    assert 0 <= seed < 2**62
    others = {collect.task_seed(1, "t0"), collect.task_seed(0, "t1"), collect.task_seed(0, "t0 "),
              collect.task_seed(0, "T0")}
    assert seed not in others and len(others) == 4


def test_collect_seeds_each_task_from_its_id_and_first_missing_index(tmp_path):
    env, tasks = ToyEnv(size=3), ToyEnv(size=3).tasks("test")
    store = SampleStore.open(tmp_path, {"k": 1})
    collect.collect(FakeGenerator(), env, store, tasks[:2], None, collect.Sampling(n=2, seed=7))
    gen = FakeGenerator()
    collect.collect(gen, env, SampleStore.open(tmp_path, {"k": 1}), tasks, None, collect.Sampling(n=5, seed=7))
    seeds = {p: (s, c["n"]) for c in gen.calls for p, s in zip(c["prompts"], c["seeds"])}
    # t0, t1 resume at sample 2 (their seed + 2: samples 2..4 are what a fresh run draws there);
    # t2 starts at 0. No batch seed is passed.
    assert seeds == {"0+0=": (collect.task_seed(7, "t0") + 2, 3), "1+1=": (collect.task_seed(7, "t1") + 2, 3),
                     "2+2=": (collect.task_seed(7, "t2"), 5)}
    assert {c["seed"] for c in gen.calls} == {None}


def test_collect_generates_n_per_task_in_batches_and_verifies():
    env, gen = ToyEnv(size=5), FakeGenerator(solves={0, 2})
    store = SampleStore(None, {"k": 1})
    tasks = env.tasks("test")
    collect.collect(gen, env, store, tasks, None, collect.Sampling(n=3, batch_size=2, temperature=0.5))
    assert [len(c["prompts"]) for c in gen.calls] == [2, 2, 1]
    assert all(c["n"] == 3 and c["temperature"] == 0.5 for c in gen.calls)
    assert gen.calls[0]["seeds"] == [collect.task_seed(0, "t0"), collect.task_seed(0, "t1")]
    assert [r["passed"] for r in store.done["t0"]] == [True] * 3
    assert [r["passed"] for r in store.done["t1"]] == [False] * 3
    assert [r["index"] for r in store.done["t4"]] == [0, 1, 2]
    first = store.done["t2"][0]
    assert (first["completion"], first["status"], first["finish_reason"], first["num_tokens"]) == (
        "4", "passed", "stop", 2)
    assert store.done["t1"][0]["finish_reason"] == "length"
    assert collect.counts(store, tasks, None, 3)["t2"] == {"n": 3, "c": 3}
    assert collect.tally(store, collect.counts(store, tasks, None, 3), "status") == {"failed": 9, "passed": 6}


def test_collect_resumes_only_missing_samples_and_groups_by_need(tmp_path):
    env, tasks = ToyEnv(size=3), ToyEnv(size=3).tasks("test")
    store = SampleStore.open(tmp_path, {"k": 1})
    collect.collect(FakeGenerator(), env, store, tasks[:2], None, collect.Sampling(n=2))
    gen = FakeGenerator()
    again = SampleStore.open(tmp_path, {"k": 1})
    collect.collect(gen, env, again, tasks, None, collect.Sampling(n=4))
    # t0, t1 had 2 of 4 samples, t2 none: one batch needing 2 (from index 2), one needing 4.
    assert sorted((c["prompts"], c["n"]) for c in gen.calls) == [(["0+0=", "1+1="], 2), (["2+2="], 4)]
    assert [r["index"] for r in again.done["t0"]] == [0, 1, 2, 3]
    assert collect.counts(again, tasks, None, 3)["t0"] == {"n": 3, "c": 3}   # a smaller n uses the first n


def test_collect_with_completions_verifies_only_what_is_new(tmp_path):
    env, tasks = ToyEnv(size=2), ToyEnv(size=2).tasks("test")
    completions = {"t0": ["0", "1"], "t1": ["2"]}
    store = SampleStore.open(tmp_path, {"k": 2})
    collect.collect(None, env, store, tasks[:1], {"t0": ["0"]}, collect.Sampling())
    collect.collect(None, env, store, tasks, completions, collect.Sampling())
    assert [r["completion"] for r in store.done["t0"]] == ["0", "1"]
    per_task = collect.counts(store, tasks, completions, n=10)
    assert per_task == {"t0": {"n": 2, "c": 1}, "t1": {"n": 1, "c": 1}}
    assert "finish_reason" not in store.done["t0"][0]


def test_select_tasks_from_a_stream_needs_a_limit():
    def stream():
        i = 0
        while True:
            yield ToyEnv(size=i + 1).tasks("train")[i]
            i += 1

    assert [t.id for t in collect.select_tasks(stream(), None, 3, "toy train")] == ["t0", "t1", "t2"]
    with pytest.raises(ReportError, match="toy train is a stream of tasks, not a list; give a limit"):
        collect.select_tasks(stream(), None, None, "toy train")


@pytest.mark.parametrize("text,stops,expected", [
    ("4|junk", ("|",), "4"),
    ("4", ("|",), "4"),
    ("a</b>c\nd", ("\n", "</b>"), "a"),       # the earliest stop wins
    ("abc", (), "abc"),
    ("abc", ("",), "abc"),                      # an empty stop string is ignored
    ("|x", ("|",), ""),
])
def test_truncate_at_stop(text, stops, expected):
    assert collect.truncate_at_stop(text, stops) == expected


def test_cut_samples_are_marked_stopped():
    env, store = ToyEnv(size=2), SampleStore(None, {"k": 3})
    collect.collect(FakeGenerator(solves={0}), env, store, env.tasks("test"), None, collect.Sampling(n=1))
    assert store.done["t0"][0]["completion"] == "0" and store.done["t0"][0]["finish_reason"] == "stop"
    assert store.done["t1"][0]["completion"] == "x" and store.done["t1"][0]["finish_reason"] == "length"


def test_generated_samples_reach_the_verifier_with_their_finish_reason():
    """A completion the token limit cut is verified as cut ("length"); one cut at a stop sequence
    (its text shorter than the sampler's) counts as ended ("stop"), in the task and the record."""
    from types import SimpleNamespace

    from models.sampler import Sample
    from verifiers import Task, Verdict

    seen = []

    class Recording:
        def verify_batch(self, texts, tasks):
            seen.extend(tasks)
            return [Verdict(0.0, False) for _ in texts]

    task = Task(id="t0", prompt="p", answer="7")
    samples = [[Sample("so 7", [1], None, "stop", [0]), Sample("so 7 and", [2], None, "length", [0]),
                Sample("so 7\n\nQ: next", [3], None, "length", [0])]]
    texts = [["so 7", "so 7 and", "so 7"]]
    records = collect._verify(SimpleNamespace(verifier=Recording()), [(task, 0, None)], texts, samples)
    assert [t.meta["finish_reason"] for t in seen] == ["stop", "length", "stop"]
    assert [r["finish_reason"] for r in records] == ["stop", "length", "stop"]
