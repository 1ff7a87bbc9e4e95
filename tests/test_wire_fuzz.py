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
from verifiers.code.sandbox import Execution  # noqa: E402
from verifiers.code.verifier import CodeVerifier  # noqa: E402

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TAGS = ["$tuple", "$set", "$frozenset", "$dict", "$int", "$float", "$bytes", "$complex"]

# Edge values a hostile program would try: ints past a float's range, a float's edges, tag
# bodies that are almost right.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10 ** 600, 10 ** 600),
                    st.sampled_from([10 ** 400, -10 ** 400, 2 ** 1024, 2 ** 1023, 2 ** 62, -2 ** 63, 0]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["inf", "-inf", "nan", "1e999", "0x10", "-0x5", "zz", "1.5", "", "ff" * 40,
                                     "-0", "0" * 400, "1/0", "Infinity", "sNaN", "1e-999999"]))


def _node(children):
    return st.one_of(st.lists(children, max_size=4),
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
    for fn in (wire.decode, wire.canonical):
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
        assert back == value and wire.canonical(tree) == wire.canonical(wire.to_wire(back))


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
