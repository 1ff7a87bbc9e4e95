"""The strict decoder and the canonical form against arbitrary bytes: whatever a program writes on
the wire, they return a value or raise `WireError` (which is that sample's `error` verdict),
never anything else (issue 19: `{"$complex": [10**400, 1]}` raised OverflowError out of
`verify_batch`). Property tests over random trees, random bytes, and mutations of valid
encodings; and the parent's whole `call` path over arbitrary result bytes, without a sandbox.
"""

from __future__ import annotations

import json
import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from verifiers import Task  # noqa: E402
from verifiers.code import wire  # noqa: E402
from verifiers.code.canonical import canonical  # noqa: E402
from verifiers.code.sandbox import Execution  # noqa: E402
from verifiers.code.verifier import CodeVerifier  # noqa: E402

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TAGS = ["$tuple", "$set", "$frozenset", "$dict", "$int", "$float", "$bytes", "$complex", "$bytearray", "$counter",
        "$odict", "$ddict", "$deque", "$ntuple", "$fraction", "$decimal", "$range", "$keys", "$values", "$items",
        "$ndarray", "$builtin", "$same", "$ref", "$yours", "$obj"]

# Edge values a hostile program would try: ints past a float's range, a float's edges, tag
# bodies that are almost right.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10 ** 600, 10 ** 600),
                    st.sampled_from([10 ** 400, -10 ** 400, 2 ** 1024, 2 ** 1023, 2 ** 62, -2 ** 63, 0]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["inf", "-inf", "nan", "1e999", "0x10", "-0x5", "zz", "1.5", "", "ff" * 40,
                                     "-0", "0" * 400, "1/0", "Infinity", "sNaN", "1e-999999"]))


KEYS = ["id", "k", "c", "n", "doc", "sig", "q", "m", "b", "x", "f", "d", "p", "std", "s", "a", "ok", "end"]
KINDS = st.sampled_from(["fn", "cls", "obj", "iter", "x"])


def _node(children):
    fields = st.dictionaries(st.sampled_from(KEYS), st.one_of(children, KINDS, st.integers(0, 3)), max_size=6)
    return st.one_of(st.lists(children, max_size=4),
                     st.builds(lambda tag, body: {tag: body}, st.sampled_from(TAGS), fields),
                     st.builds(lambda tag, body: {tag: body}, st.sampled_from(TAGS + ["$x", "tuple"]), children),
                     st.builds(lambda tag, items: {tag: items}, st.sampled_from(TAGS), st.lists(children, max_size=3)),
                     st.builds(lambda tag, items: {tag: items}, st.sampled_from(TAGS),
                               st.lists(scalars, min_size=1, max_size=3)),
                     st.dictionaries(st.text(max_size=3), children, max_size=2))


trees = st.recursive(scalars, _node, max_leaves=12)

plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.floats(), st.text(max_size=5),
              st.binary(max_size=5), st.complex_numbers(allow_nan=True)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.tuples(children, children),
                               st.frozensets(st.integers(), max_size=3),
                               st.dictionaries(st.one_of(st.integers(), st.text(max_size=3)), children, max_size=3)),
    max_leaves=10)


def _only_wire_errors(data: bytes) -> None:
    try:
        tree = wire.loads(data, 1 << 20)
    except wire.WireError:
        return
    for fn in (wire.decode, canonical):
        try:
            fn(tree)
        except wire.WireError:
            pass


def _dumps(tree) -> bytes:
    return json.dumps(tree, allow_nan=True).encode()


@FUZZ
@given(trees)
def test_random_trees_decode_or_raise_wire_error(tree):
    _only_wire_errors(_dumps(tree))


@FUZZ
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_wire_error(data):
    _only_wire_errors(data)


@FUZZ
@given(plain_values, st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(["flip", "insert", "delete", "cut"]),
                                        st.binary(min_size=1, max_size=3)), min_size=1, max_size=4))
def test_mutated_encodings_decode_or_raise_wire_error(value, edits):
    data = bytearray(_dumps(wire.to_wire(value)))
    for at, how, chunk in edits:
        at %= max(len(data), 1)
        if how == "flip" and data:
            data[at] ^= chunk[0] or 1
        elif how == "insert":
            data[at:at] = chunk
        elif how == "delete":
            del data[at:at + len(chunk)]
        else:
            del data[at:]
    _only_wire_errors(bytes(data))


@FUZZ
@given(plain_values)
def test_valid_encodings_round_trip_and_compare_equal_to_themselves(value):
    tree = json.loads(_dumps(wire.to_wire(value)))
    back = wire.decode(tree)
    if not _has_nan(value):  # NaN equals nothing, itself included
        assert back == value and canonical(tree) == canonical(wire.to_wire(back))


def _has_nan(value) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, complex):
        return math.isnan(value.real) or math.isnan(value.imag)
    if isinstance(value, dict):
        return any(_has_nan(k) or _has_nan(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_nan(v) for v in value)
    return False


# --------------------------------------------------------------------------- the parent's `call` path


class _FakePool:
    """Hands back a fixed result channel, as if a program had written it."""

    size = 1

    def __init__(self, result: bytes):
        self.result = result

    def run(self, request, limits):
        return Execution(exit_code=0, cpu_s=0.01, wall_s=0.01, result=self.result)


CALL_TASK = Task(id="c", prompt="p", tests={"kind": "call", "entry_point": "f",
                                            "cases": [{"args": [2], "expected": 4}, {"args": [5], "expected": 10}]})


def _verdict(result: bytes):
    v = CodeVerifier(workers=1)
    v._pool = _FakePool(result)
    return v.verify("def f(x):\n    return 2 * x\n", CALL_TASK)


@pytest.mark.parametrize("result, status", [
    (b'{"results": [{"ok": 4}, {"ok": 10}]}', "passed"),
    (b'{"results": [{"ok": {"$complex": [' + str(10 ** 400).encode() + b', 1]}}, {"ok": 10}]}', "error"),
    (b'{"results": [{"ok": {"$complex": [' + str(10 ** 400).encode() + b', 0]}}, {"ok": 10}]}', "error"),
    (b'{"results": [{"ok": 4}, {"ok": 11}]}', "failed"),
])
def test_the_call_path_gives_a_verdict(result, status):
    assert _verdict(result).info["status"] == status


@FUZZ
@given(st.lists(trees, min_size=2, max_size=2))
def test_the_call_path_gives_a_verdict_for_any_results(results):
    data = _dumps({"results": [{"ok": t} for t in results]})
    assert _verdict(data).info["status"] in ("passed", "failed", "error")


@FUZZ
@given(st.binary(max_size=80))
def test_the_call_path_gives_a_verdict_for_any_bytes(data):
    assert _verdict(b'{"results": [' + data).info["status"] in ("passed", "failed", "error")


# --------------------------------------------------------------------------- the judge's decoder (with its hook)


def _judge():
    from verifiers.code.judge_side import JudgeSide
    from verifiers.code.judging import JudgeChannel

    limits = {"reply_bytes": 1 << 20, "max_depth": 50, "message_chars": 1000}
    side = JudgeSide(limits)
    side.chan = JudgeChannel(-1, -1, side, limits, json.dumps)  # decoding never touches the descriptors
    return side


@FUZZ
@given(trees)
def test_the_judges_decoder_returns_or_raises_wire_error(tree):
    side = _judge()
    try:
        side.chan.decoder().decode(tree)
    except wire.WireError:
        pass


@FUZZ
@given(st.dictionaries(st.sampled_from(["ok", "m"]), trees, min_size=1))
def test_a_reply_either_finishes_or_breaks_the_channel(reply):
    from verifiers.code.judging import Broken

    side = _judge()
    try:
        side.chan.finish(reply, [[1, 2], {"a": 1}, {3}])
    except Broken:
        assert side.chan.broken  # recorded: the tests cannot swallow it


@FUZZ
@given(st.one_of(trees, st.dictionaries(st.sampled_from(["c", "a", "s", "d"]), trees, max_size=4)))
def test_an_exception_description_becomes_an_exception_or_a_wire_error(desc):
    side = _judge()
    try:
        assert isinstance(side.rebuild(side.chan.decoder(), desc), BaseException)
    except wire.WireError:
        pass


names = st.sampled_from(["Node", "f", "__init__", "__len__", "__lt__", "x", "", "1a", "class", "a b", "__class__"])
class_descs = st.recursive(
    st.one_of(st.integers(0, 4), st.fixed_dictionaries({"std": st.sampled_from(
        ["builtins.ValueError", "builtins.object", "json.decoder.JSONDecodeError", "os.error", "x", "builtins.len"])})),
    lambda bases: st.fixed_dictionaries(
        {"id": st.integers(0, 4), "n": names, "q": names, "m": st.sampled_from(["__main__", "json", "builtins", "x.y"]),
         "b": st.lists(bases, max_size=2), "x": st.booleans(), "f": st.lists(names, max_size=3),
         "d": st.lists(names, max_size=3), "p": st.lists(names, max_size=2)}),
    max_leaves=4)
params = st.lists(st.one_of(st.lists(st.one_of(names, st.integers(-1, 5), st.none(),
                                                st.fixed_dictionaries({"$default": scalars}),
                                                st.fixed_dictionaries({"$default": st.fixed_dictionaries(
                                                    {"$repr": st.text(max_size=5)})})), max_size=4), scalars),
                  max_size=4)
refs = st.fixed_dictionaries({"id": st.integers(0, 4), "k": KINDS},
                             optional={"c": class_descs, "n": names, "doc": st.one_of(st.none(), st.text(max_size=5)),
                                       "sig": st.one_of(st.lists(params, max_size=2), scalars)})


@FUZZ
@given(st.lists(st.builds(lambda body: {"$ref": body}, refs), min_size=1, max_size=4))
def test_the_judges_decoder_survives_hostile_handles(values):
    side = _judge()
    try:
        for value in side.chan.decoder().decode(values):
            repr(value)
    except wire.WireError:
        pass


@FUZZ
@given(st.fixed_dictionaries({"c": class_descs, "a": st.lists(scalars, max_size=2), "s": st.text(max_size=5)},
                             optional={"d": st.lists(st.lists(scalars, min_size=2, max_size=2), max_size=2)}))
def test_hostile_exception_classes_become_exceptions_or_wire_errors(desc):
    side = _judge()
    try:
        assert isinstance(side.rebuild(side.chan.decoder(), desc), BaseException)
    except wire.WireError:
        pass
