"""The verifier contract: Task/Verdict validation, the registry, function verifiers, composites."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from verifiers import (
    CompositeVerifier,
    Task,
    Verdict,
    Verifier,
    VerifierError,
    get_verifier,
    list_verifiers,
    register_verifier,
)
from verifiers.base import VERIFIER_FAULTS, FunctionVerifier, error_verdict, parse_option, verifier_options

T = Task(id="t", prompt="p", answer="4")


# --------------------------------------------------------------------------- Task / Verdict


@pytest.mark.parametrize("kwargs, message", [
    ({"id": "", "prompt": "p"}, "Task.id must be a non-empty string"),
    ({"id": 3, "prompt": "p"}, "Task.id must be a non-empty string"),
    ({"id": "a", "prompt": 5}, "Task.prompt must be a string or a non-empty list"),
    ({"id": "a", "prompt": []}, "Task.prompt must be a string or a non-empty list"),
    ({"id": "a", "prompt": [{"role": "user"}]}, r"Task.prompt\[0\] must be a dict"),
    ({"id": "a", "prompt": [{"role": "user", "content": 1}]}, r"Task.prompt\[0\]"),
    ({"id": "a", "prompt": "p", "tests": [1]}, "Task.tests of task 'a' must be a dict"),
    ({"id": "a", "prompt": "p", "meta": None}, "Task.meta of task 'a' must be a dict"),
])
def test_task_validation_names_the_field(kwargs, message):
    with pytest.raises(VerifierError, match=message):
        Task(**kwargs)


def test_task_from_dict_round_trip_and_errors():
    t = Task(id="a", prompt=[{"role": "user", "content": "hi"}], answer="1", tests={"kind": "io"}, meta={"x": 1})
    assert Task.from_dict(t.to_dict()) == t
    with pytest.raises(VerifierError, match=r"unknown task field\(s\) \['anwser'\]"):
        Task.from_dict({"id": "a", "prompt": "p", "anwser": "1"})
    with pytest.raises(VerifierError, match=r"missing required field\(s\) \['prompt'\]"):
        Task.from_dict({"id": "a"})
    with pytest.raises(VerifierError, match="must be a JSON object"):
        Task.from_dict(["a"])


@pytest.mark.parametrize("reward, message", [
    (float("nan"), "must be finite"), (float("inf"), "must be finite"), ("1", "must be a number"),
    (True, "must be a number"), (None, "must be a number"),
])
def test_verdict_rejects_bad_rewards(reward, message):
    with pytest.raises(VerifierError, match=message):
        Verdict(reward, True, {})


def test_verdict_coerces_types():
    v = Verdict(1, 1, {"status": "passed"})
    assert (v.reward, v.passed) == (1.0, True) and isinstance(v.reward, float)
    with pytest.raises(VerifierError, match="info must be a dict"):
        Verdict(0.0, False, None)
    assert error_verdict("timeout", "slow", seconds=2).info == {"status": "timeout", "error": "slow", "seconds": 2}


# --------------------------------------------------------------------------- registry


@register_verifier("test_exact")
def exact(completion: str, task: Task, *, strip: bool = True) -> float:
    """1.0 when the completion equals the gold answer."""
    text = completion.strip() if strip else completion
    return float(text == str(task.answer))


@register_verifier("test_half", description="half credit")
def half(completion, task):
    return 0.5


@register_verifier("test_budget")
class Budget(Verifier):
    """Rewards short completions."""

    def __init__(self, budget: int = 3, scale: float = 1.0):
        if budget < 0:
            raise VerifierError(f"option budget must be >= 0, got {budget}")
        self.budget, self.scale = budget, scale

    def verify(self, completion, task):
        ok = len(completion) <= self.budget
        return Verdict(self.scale * ok, ok, {"status": "passed" if ok else "failed", "thread": threading.get_ident()})


def test_function_verifier_threshold_and_options():
    assert get_verifier("test_exact").verify(" 4 ", T).passed
    assert not get_verifier("test_exact", strip=False).verify(" 4 ", T).passed
    v = get_verifier("test_half").verify("x", T)
    assert (v.reward, v.passed, v.info["status"]) == (0.5, False, "failed")
    assert get_verifier("test_half", pass_threshold=0.5).verify("x", T).passed
    assert list(verifier_options("test_exact")) == ["strip", "pass_threshold"]


def test_registry_lists_names_and_descriptions():
    names = list_verifiers()
    assert names["test_exact"] == "1.0 when the completion equals the gold answer."
    assert names["test_half"] == "half credit"
    assert names["test_budget"] == "Rewards short completions."
    assert {"format", "tags", "length", "composite", "math"} <= set(names)
    assert list(names) == sorted(names)
    assert Budget.name == "test_budget"


def test_import_registers_the_built_ins_without_heavy_libraries():
    """`import verifiers` is cheap: SymPy loads in the math workers only, torch and transformers
    with a learned PRM, starlette and uvicorn with `serve`."""
    heavy = ["sympy", "latex2sympy2_extended", "torch", "transformers", "starlette", "uvicorn"]
    script = (f"import sys, verifiers; print(__import__('json').dumps([sorted(verifiers.list_verifiers()), "
              f"[m for m in {heavy!r} if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    names, loaded = json.loads(out.stdout)
    assert {"math", "math_audit", "code", "format", "tags", "length", "arithmetic_steps", "prm", "remote",
            "composite"} <= set(names), out.stderr
    assert loaded == []


def test_unknown_name_and_option_list_the_valid_choices():
    with pytest.raises(VerifierError, match=r"unknown verifier 'nope'; known verifiers: .*test_budget"):
        get_verifier("nope")
    with pytest.raises(VerifierError, match=r"unknown option\(s\) \['budgte'\] for verifier 'test_budget'; "
                                            r"valid options: \['budget', 'scale'\]"):
        get_verifier("test_budget", budgte=3)


def test_registering_twice_or_non_verifiers_is_refused():
    with pytest.raises(VerifierError, match="already registered"):
        register_verifier("test_exact")(half)
    with pytest.raises(VerifierError, match="must subclass verifiers.Verifier"):
        register_verifier("test_bad")(dict)
    with pytest.raises(VerifierError, match="non-empty string"):
        register_verifier("")
    register_verifier("test_exact")(exact)  # the same target again is fine (module reloads)


def test_function_returning_wrong_type_is_a_bug_not_a_zero():
    fv = FunctionVerifier(lambda c, t: "1.0", "bad", "")
    with pytest.raises(VerifierError, match="returned str; expected float or Verdict"):
        fv.verify("x", T)


@pytest.mark.parametrize("status, fault", [("passed", False), ("failed", False), ("timeout", False),
                                           ("memory", False), ("error", False), ("sandbox_error", True),
                                           ("verifier_error", True)])
def test_a_failure_is_the_models_or_the_verifiers(status, fault):
    assert error_verdict(status, "why").verifier_fault is fault
    assert (status in VERIFIER_FAULTS) is fault
    assert Verdict(0.0, False, {}).verifier_fault is False  # no status: a plain judgement


def test_a_function_that_raises_faults_its_sample_alone():
    def flaky(completion, task):
        if completion == "boom":
            raise ZeroDivisionError("division by zero")
        return float(completion == task.answer)

    fv = FunctionVerifier(flaky, "flaky", "")
    verdicts = fv.verify_batch(["4", "boom", "5", "4"], [T] * 4)  # honest neighbours in the same batch
    assert [v.passed for v in verdicts] == [True, False, False, True]
    assert [v.verifier_fault for v in verdicts] == [False, True, False, False]
    assert verdicts[1].info == {"status": "verifier_error",
                                "error": "verifier 'flaky' raised ZeroDivisionError: division by zero"}


def test_verify_batch_runs_in_parallel_and_keeps_order():
    v = get_verifier("test_budget", budget=2)
    completions = ["a" * (i % 4) for i in range(40)]
    verdicts = v.verify_batch(completions, [T] * 40)
    assert [x.passed for x in verdicts] == [len(c) <= 2 for c in completions]
    with pytest.raises(VerifierError, match="2 completions but 1 tasks"):
        v.verify_batch(["a", "b"], [T])
    with pytest.raises(VerifierError, match=r"tasks\[0\] must be a Task"):
        v.verify_batch(["a"], [{"id": "t"}])


@pytest.mark.parametrize("annotation, text, expected", [
    ("bool", "true", True), ("bool", "No", False), ("int", "7", 7), ("float", "1e-3", 1e-3),
    ("float | None", "none", None), ("float | None", "0.5", 0.5), ("str", "x=1", "x=1"),
    ("str | None", "None", None), ("list", '["a", "b"]', ["a", "b"]), ("dict", '{"a": 1}', {"a": 1}),
    ("", "plain", "plain"),
])
def test_parse_option(annotation, text, expected):
    import inspect

    param = inspect.Parameter("x", inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
    assert parse_option("x", param, text) == expected


@pytest.mark.parametrize("annotation, text", [("bool", "maybe"), ("int", "1.5"), ("list", "[1,")])
def test_parse_option_errors(annotation, text):
    import inspect

    param = inspect.Parameter("x", inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
    with pytest.raises(VerifierError, match=f"option x={text!r}".replace("[", r"\[")):
        parse_option("x", param, text)


# --------------------------------------------------------------------------- composite


def test_composite_weights_passed_and_parts():
    c = CompositeVerifier({"test_exact": 1.0, "test_budget": {"weight": 0.5, "options": {"budget": 1}},
                           "tags": 0.0}, correctness="test_exact")
    v = c.verify("4", T)
    # 1.0 * 1 (exact) + 0.5 * 1 (length 1 <= 1) + 0 * tags (logged only) = 1.5
    assert v.reward == 1.5 and v.passed
    assert v.info["parts"]["tags"]["weight"] == 0.0 and v.info["parts"]["tags"]["reward"] == 0.0
    assert v.info["status"] == "passed"
    w = c.verify("44", T)
    # exact fails, budget fails: 0
    assert (w.reward, w.passed, w.info["status"]) == (0.0, False, "failed")
    assert [x.reward for x in c.verify_batch(["4", "44"], [T, T])] == [1.5, 0.0]


def test_composite_passed_comes_from_correctness_even_when_others_pay():
    c = get_verifier("composite", parts={"test_exact": 1.0, "test_half": 2.0}, correctness="test_exact")
    v = c.verify("5", T)
    assert v.reward == 1.0 and not v.passed  # 0 * 1 + 2 * 0.5


def test_composite_accepts_built_verifiers_and_same_verifier_twice_under_names():
    c = CompositeVerifier([(get_verifier("test_budget", budget=1), 1.0),
                           ("short2", {"verifier": "test_budget", "options": {"budget": 2}, "weight": 2.0})])
    assert c.correctness == "test_budget"
    assert c.verify("ab", T).reward == 2.0


def _faulty(completion, task):
    if completion == "down":
        return error_verdict("sandbox_error", "the sandbox could not start")
    return 1.0


register_verifier("test_faulty")(_faulty)


@pytest.mark.parametrize("weights, fault", [
    ({"test_exact": 1.0, "test_faulty": 0.5}, True),    # a paid part: its fault is the verdict's
    ({"test_exact": 1.0, "test_faulty": 0.0}, False),   # logged only: the reward does not depend on it
    ({"test_faulty": 0.0, "test_exact": 1.0}, True),    # the correctness part (first), even at weight 0
])
def test_composite_is_a_fault_when_its_correctness_or_a_paid_part_is(weights, fault):
    c = CompositeVerifier(weights)
    down, up = c.verify_batch(["down", "4"], [T, T])
    assert down.verifier_fault is fault and not up.verifier_fault
    if fault:
        assert down.info["fault_part"] == "test_faulty" and down.info["status"] == "sandbox_error"
        assert down.info["error"] == "test_faulty: the sandbox could not start"
    else:
        assert down.info["status"] == "failed" and "fault_part" not in down.info


@pytest.mark.parametrize("parts, correctness, message", [
    ({}, None, "at least one part"),
    ({"test_exact": 1.0}, "math", "correctness part 'math' is not one of the parts"),
    ({"test_exact": "heavy"}, None, "weight must be a finite number"),
    ({"test_exact": math.nan}, None, "weight must be a finite number"),
    ({"test_exact": {"wieght": 1}}, None, r"unknown field\(s\) \['wieght'\]"),
    ({"nope": 1.0}, None, "unknown verifier 'nope'"),
])
def test_composite_misuse(parts, correctness, message):
    with pytest.raises(VerifierError, match=message):
        CompositeVerifier(parts, correctness)


def test_composite_forwards_warm_up_and_close():
    calls = []

    class Probe(Verifier):
        name = "probe"

        def verify(self, completion, task):
            return Verdict(0.0, False, {"status": "failed"})

        def warm_up(self):
            calls.append("warm")

        def close(self):
            calls.append("close")

    c = CompositeVerifier([(Probe(), 1.0), ("tags", 0.0)])
    c.warm_up()
    c.close()
    assert calls == ["warm", "close"]
    get_verifier("tags").warm_up()  # the default is a harmless no-op


def test_math_warm_up_starts_a_worker_before_the_first_check():
    v = get_verifier("math", workers=1)
    try:
        pool = v._workers()
        v.warm_up()
        assert pool._alive == 1 and len(pool._idle) == 1
        v.warm_up()  # idempotent: the pool is full
        assert pool._alive == 1
        assert v.verify(r"\boxed{\frac{1}{2}}", Task(id="m", prompt="p", answer="0.5")).passed
    finally:
        v.close()


def test_a_sampled_task_carries_the_finish_reason_and_keeps_its_meta():
    task = Task(id="t", prompt="p", answer="1", meta={"source": "x"})
    cut = task.sampled("length")
    assert cut.meta == {"source": "x", "finish_reason": "length"} and task.meta == {"source": "x"}
    assert (cut.id, cut.prompt, cut.answer) == ("t", "p", "1")
    assert task.sampled(None) is task and cut.sampled("length") is cut
