"""The `reasoning_gym` verifier: reasoning-gym's scorers in the sandbox, behind the code gate.

Tables: answer extraction; gold, empty and wrong answers on a fast subset of generators (the
whole sweep over every generator is marked `sweep`: `make sweep`); hostile answers against
every scorer that evaluates or parses its answer, each with honest neighbours in its batch;
scorers that raise, hang, eat memory, exit, print or return no number (a generator
registered by a module shown to the sandbox for the test); and the confinement itself,
tried without the gate (files, network, host files, processes).
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import socket
import sys
import threading
from pathlib import Path

import pytest
from procs import processes_with

from verifiers import Task, VerifierError, get_verifier
from verifiers.reasoning_gym import entry_of, extract_answer, metadata_to_wire, task_item
from verifiers.reasoning_gym.runner import ScorerPool

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "benchmarks" / "rgym_sweep.py"
# The scorers that evaluate (eval) or parse (SymPy's parse_expr, which evaluates) their answer,
# found by reading reasoning-gym 0.1.25: grep for eval( and parse_expr in score_answer.
EVALUATING = ["spiral_matrix", "string_insertion", "binary_matrix", "n_queens"]
PARSING = ["countdown", "puzzle24", "polynomial_multiplication", "simple_integration", "intermediate_integration"]
FAST = EVALUATING + PARSING + ["rush_hour", "graph_color", "boxnet", "propositional_logic", "basic_arithmetic",
                               "arc_1d", "gsm_symbolic", "knights_knaves"]


def _sweep():
    if "rgym_sweep" not in sys.modules:  # registered first: its dataclass looks its module up
        spec = importlib.util.spec_from_file_location("rgym_sweep", SWEEP)
        sys.modules["rgym_sweep"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["rgym_sweep"]


@pytest.fixture(scope="module")
def verifier():
    with get_verifier("reasoning_gym", extract="tags", time_limit=1.0) as v:
        yield v


@pytest.fixture(scope="module")
def env_tasks():
    from envs import get_env

    cache = {}

    def tasks(name: str, n: int = 4) -> list[Task]:
        if name not in cache:
            cache[name] = get_env("reasoning_gym", dataset=name, size=1, test_size=8).tasks("test")
        return cache[name][:n]

    return tasks


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("completion, how, expected", [
    ("<answer>42</answer>", "tags", "42"),
    ("<think>maybe <answer>1</answer></think> <answer> 2 \n</answer>", "tags", "2"),   # the last tag
    ("<answer>\n[[1, 2],\n [3, 4]]\n</answer>", "tags", "[[1, 2],\n [3, 4]]"),        # multi-line
    ("the answer is 42", "tags", None),                                              # no tag: no answer
    ("<answer>42", "tags", None),                                                    # unclosed
    ("<answer></answer>", "tags", ""),
    ("  42 \n", "whole", "42"),
    ("<answer>4</answer>", "whole", "<answer>4</answer>"),
    ("<answer>4</answer> trailing", "auto", "4"),
    ("just 4", "auto", "just 4"),
])
def test_extract_answer(completion, how, expected):
    assert extract_answer(completion, how) == expected


def test_options_and_tasks_it_cannot_judge_raise(verifier):
    for options in ({"extract": "last"}, {"time_limit": 0}, {"chunk_size": 0}, {"memory_mode": "x"}, {"workers": 0}):
        with pytest.raises(VerifierError):
            get_verifier("reasoning_gym", **options)
    good = {"dataset": "countdown", "config": {}, "question": "q", "metadata": metadata_to_wire({"a": (1, 2)})}
    for meta, field in (({**good, "dataset": 3}, "dataset"), ({**good, "config": []}, "config"),
                        ({k: v for k, v in good.items() if k != "metadata"}, "metadata"),
                        ({**good, "metadata": {"$nope": 1}}, "metadata")):
        with pytest.raises(VerifierError, match=field):
            verifier.verify("<answer>1</answer>", Task(id="t", prompt="p", meta=meta))
    with pytest.raises(VerifierError, match="not a generator of the installed reasoning-gym"):
        verifier.verify("<answer>1</answer>", Task(id="t", prompt="p", meta={**good, "dataset": "nope"}))


# --------------------------------------------------------------------------- gold, empty, wrong


@pytest.mark.parametrize("name", FAST)
def test_gold_passes_empty_and_wrong_fail(name, verifier):
    """20 test-split tasks: the gold answer passes, an empty and a perturbed one fail, and every
    score equals `score_answer` called in this process."""
    row = _sweep().sweep_one(name, 20, verifier)
    assert row.tasks == 20
    assert (row.gold_passed, row.empty_failed, row.wrong_failed) == (20, 20, 20), row
    assert row.agree == 60, row


@pytest.mark.sweep
def test_every_installed_generator(tmp_path):
    """The whole sweep (benchmarks/rgym_sweep.py): every generator the installed reasoning-gym offers."""
    import subprocess

    out = tmp_path / "table.md"
    proc = subprocess.run([sys.executable, str(SWEEP), "--markdown", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from data.reasoning_gym_items import generator_names

    rows = [line.split(" | ")[0][2:] for line in out.read_text().splitlines()[2:]]  # after the header and rule
    assert rows == generator_names() and len(rows) >= 100


def test_partial_credit_stays_partial(verifier, env_tasks):
    """countdown: numbers not all used scores 0.05, an empty answer 0.01: reasoning-gym's floats."""
    task = env_tasks("countdown", 1)[0]
    wrong_numbers = f"<answer>{entry_of(task)['metadata']['numbers'][0]}</answer>"  # one number of four
    v_partial, v_empty = verifier.verify_batch([wrong_numbers, "<answer></answer>"], [task, task])
    assert (v_partial.reward, v_partial.passed, v_partial.info["status"]) == (0.05, False, "failed")
    assert (v_empty.reward, v_empty.info["status"]) == (0.01, "failed")
    lenient = get_verifier("reasoning_gym", pass_threshold=0.05)
    try:
        assert lenient.verify(wrong_numbers, task).passed
    finally:
        lenient.close()


# --------------------------------------------------------------------------- hostile answers


def _hostile(marker: Path, port: int, parser: bool) -> dict[str, tuple[str, set]]:
    """name -> (answer, the statuses it may get). None may pass. Code is refused (`error`) where
    the scorer evaluates the answer as Python; SymPy's parser may reject the text before that
    (`failed`)."""
    code = {"error", "failed"} if parser else {"error"}
    return {
        "file write": ("__import__('pathlib').Path('pwned').write_text('x') or [[1]]", code),
        "file write, host path": (f"__import__('pathlib').Path({str(marker)!r}).write_text('x') or [[1]]", code),
        "code execution": (f"__import__('os').system('touch {marker}') or [[1]]", code),
        "exec": (f"exec(\"open({str(marker)!r}, 'w')\") or [[1]]", code),
        "import": ("__import__('socket')", code),
        "network": (f"__import__('socket').create_connection(('127.0.0.1', {port})) and [[1]]", code),
        "attribute walk": ("().__class__.__base__.__subclasses__()", code),
        "lambda": ("(lambda: [[1]])()", code),
        "walrus": ("(x := [[1]])", code),
        "comprehension": ("[i for i in range(10**9)]", code),
        "monkeypatch": ("setattr(__import__('reasoning_gym').factory.DATASETS['countdown'][0], 'score_answer', "
                        "lambda *a: 1.0) or [[1]]", code),
        "read the gold": ("oracle_answer", {"failed"}),
        "read the entry": ("entry['answer']", {"failed"}),
        "deep nesting": ("[" * 5000 + "]" * 5000, {"failed", "error"}),
        "long string": ("1" * 1_000_000, {"failed", "error"}),
        "memory": ("[0] * 10**10", {"failed", "memory"}),
    }


@pytest.fixture(scope="module")
def listener():
    """A TCP server on the host's loopback that records any connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                seen.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


@pytest.mark.parametrize("name", EVALUATING + PARSING)
def test_hostile_answers_with_honest_neighbours(name, verifier, env_tasks, listener, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a write to 'pwned' in the trainer's directory would land
    port, connections = listener
    marker = tmp_path / f"host-{secrets.token_hex(4)}"
    gold, other = env_tasks(name, 2)
    cases = _hostile(marker, port, parser=name in PARSING)
    completions, tasks = [], []
    for answer, _ in cases.values():  # each hostile answer between two honest ones
        completions += [f"<answer>{answer}</answer>", verifier_gold(gold), "<answer>no</answer>"]
        tasks += [other, gold, gold]
    verdicts = verifier.verify_batch(completions, tasks)
    for (case, (_, allowed)), hostile, honest, wrong in zip(cases.items(), verdicts[::3], verdicts[1::3],
                                                            verdicts[2::3]):
        assert not hostile.passed and hostile.info["status"] in allowed, (case, hostile.info)
        assert hostile.reward < 1.0, (case, hostile)
        assert honest.passed and honest.reward == 1.0, (case, honest.info)
        assert not wrong.passed, (case, wrong.info)
    assert not (tmp_path / "pwned").exists() and not marker.exists() and not Path("/tmp/pwned").exists()
    assert connections == []
    if name == "string_insertion":  # in process, eval('oracle_answer') would earn 0.1
        read = verdicts[3 * list(cases).index("read the gold")]
        assert read.reward == 0.0 and read.info["undefined_names"] == ["oracle_answer"]


def verifier_gold(task: Task) -> str:
    from envs import get_env

    return get_env("reasoning_gym", dataset=task.meta["dataset"], size=1, test_size=1).demonstration(task)


def test_huge_exponents_time_out_alone(verifier, env_tasks):
    """Work in C (a huge power in `eval`) and in Python (SymPy's) ends at the CPU limit, the
    answer is scored again alone, and the neighbours keep their verdicts."""
    spiral, count = env_tasks("spiral_matrix", 2), env_tasks("countdown", 2)
    completions = [verifier_gold(spiral[0]), "<answer>9**9**9</answer>", verifier_gold(spiral[1]),
                   verifier_gold(count[0]), "<answer>9**9**9**9</answer>", verifier_gold(count[1])]
    verdicts = verifier.verify_batch(completions, [spiral[0], spiral[1], spiral[1], count[0], count[1], count[1]])
    assert [v.info["status"] for v in verdicts] == ["passed", "timeout", "passed", "passed", "timeout", "passed"]
    assert "CPU time limit" in verdicts[1].info["error"]


# --------------------------------------------------------------------------- misbehaving scorers

FAKE = '''
"""A generator whose scorer misbehaves on request (test only)."""
import os
from dataclasses import dataclass
from typing import Optional

from reasoning_gym.dataset import ProceduralDataset
from reasoning_gym.factory import register_dataset


@dataclass
class FakeConfig:
    seed: Optional[int] = None
    size: int = 10


class FakeDataset(ProceduralDataset):
    def __init__(self, config):
        super().__init__(config=config, seed=config.seed, size=config.size)

    def __getitem__(self, idx):
        return {"question": "q", "answer": "ok", "metadata": {"source_dataset": "verirl_fake", "source_index": idx}}

    def score_answer(self, answer, entry):
        if answer == "raise":
            raise ValueError("the scorer failed")
        if answer == "hang":
            while True:
                pass
        if answer == "hang in C":
            sum(range(10 ** 13))
        if answer == "eat":
            return float(len(bytearray(10 ** 11)))
        if answer == "grow":
            hog = []
            while True:
                hog.append(bytearray(10 ** 7))
        if answer == "exit":
            os._exit(3)
        if answer == "print":
            print("x" * 10 ** 7)
        if answer == "nan":
            return float("nan")
        if answer == "text":
            return "1.0"
        if answer == "fork":
            return float(os.fork())
        return {"ok": 1.0, "half": 0.5}.get(answer, 0.0)


register_dataset("verirl_fake", FakeDataset, FakeConfig)
'''


@pytest.fixture(scope="module")
def fake_pool(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake_scorers")
    (folder / "verirl_fake_scorers.py").write_text(FAKE)
    sys.path.insert(0, str(folder))
    pool = ScorerPool(time_limit=1.0, memory_mb=1024, workers=2, memory_mode="auto", chunk_size=64,
                      modules=("verirl_fake_scorers",))
    try:
        yield pool
        tag = pool.pool.tag
    finally:
        pool.close()
        sys.path.remove(str(folder))
    assert processes_with(tag) == []


def _fake_items(answers: list[str]) -> list[dict]:
    task = Task(id="fake", prompt="q", answer="ok", meta={"dataset": "verirl_fake", "config": {"seed": 0, "size": 10},
                                                           "question": "q", "metadata": metadata_to_wire({})})
    return [task_item(task, a) for a in answers]


@pytest.mark.parametrize("answer, status, error", [
    ("raise", "error", "the scorer raised ValueError: the scorer failed"),
    ("hang", "timeout", "CPU time limit"),
    ("hang in C", "timeout", "CPU time limit"),
    ("eat", "memory", "MemoryError"),
    ("grow", "memory", ""),
    ("exit", "verifier_error", "exit code 3"),      # the scorer's own failures: no judgement of the answer
    ("print", "error", "printed more than"),
    ("nan", "verifier_error", "returned float nan"),
    ("text", "verifier_error", "returned str"),
    ("fork", "error", "refused to run the audit event os.fork"),
])
def test_a_misbehaving_scorer_gets_its_verdict_and_spares_its_neighbours(fake_pool, answer, status, error):
    answers = ["ok", answer, "half", "ok"]
    outcomes = fake_pool.score(_fake_items(answers))
    assert outcomes[0] == {"score": 1.0}
    assert outcomes[1]["status"] == status and error in outcomes[1]["error"], outcomes[1]
    assert outcomes[1]["alone"] is True  # not first in its process: scored again alone, and that counts
    assert outcomes[2:] == [{"score": 0.5}, {"score": 1.0}]


def test_first_in_its_process_counts_without_a_second_run(fake_pool):
    outcome, = fake_pool.score(_fake_items(["raise"]))
    assert outcome["status"] == "error" and "alone" not in outcome


# --------------------------------------------------------------------------- the confinement without the gate


@pytest.mark.parametrize("program, expected", [
    ("open({marker!r}, 'w').write('x')", "FileNotFoundError"),            # the host's folders are not there
    ("open('/pwned', 'w')", "OSError"),                                    # the root is read-only
    ("import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)", "OSError"),  # no network
    ("print(open({repo!r}).read())", "FileNotFoundError"),                # the project's files are not shown
    ("import os; os.fork()", "BlockingIOError"),                           # no second process
    ("import verifiers", "ModuleNotFoundError"),                           # nor its packages
])
def test_the_sandbox_itself_confines_code_that_got_past_the_gate(verifier, listener, tmp_path, program, expected):
    """The gate stops answers from running code; this is what such code would meet if it got past:
    raw programs run in the verifier's own sandboxes (same packages, same limits)."""
    port, connections = listener
    marker = tmp_path / "escaped"
    source = program.format(marker=str(marker), port=port, repo=str(ROOT / "README.md"))
    scorers = verifier.scorers
    ex = scorers.pool.run({"mode": "io", "program": source, "stdin": ""}, scorers.limits)
    report = json.loads(ex.result) if ex.result else {}
    assert report.get("exc", "") == expected or expected in report.get("msg", "") or \
        (expected == "OSError" and report.get("exc", "").endswith("Error")), (report, ex.stderr[-500:])
    assert not marker.exists() and connections == []


def test_no_process_outlives_the_verifier(env_tasks):
    v = get_verifier("reasoning_gym", workers=2)
    task = env_tasks("countdown", 1)[0]
    v.verify_batch(["<answer>1</answer>"] * 3, [task] * 3)
    tag = v.scorers.pool.tag
    assert processes_with(tag)  # its sandboxes, warm
    v.close()
    assert processes_with(tag) == []
