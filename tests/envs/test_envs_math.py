"""envs/math.py: competition math on local copies with the MATH-500 / MATH schemas (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.hub import DataSourceError
from envs import EnvError, get_env
from verifiers.math.extract import last_boxed

FIXTURES = Path(__file__).parents[1] / "fixtures" / "envs"
MATH500 = str(FIXTURES / "math500.jsonl")


pytestmark = pytest.mark.usefixtures("offline")  # conftest.py: no hub retries


@pytest.mark.parametrize("text, boxed", [
    (r"\boxed{5}", "5"), (r"a \boxed{1} b \boxed{ \frac{3}{4} }", r"\frac{3}{4}"), (r"\fbox{x^{2}}", "x^{2}"),
    (r"\boxed {7}", "7"), (r"\boxed{unclosed", None), ("none", None),
    (r"\boxed{1} and at last \boxed{2", None),   # the last box never closed: no gold, not the earlier box
])
def test_gold_is_the_last_box_of_the_solution(text, boxed):
    assert last_boxed(text, strict=True) == boxed


def test_a_solution_whose_last_box_is_open_is_refused(tmp_path):
    rows = [{"problem": "p", "level": "Level 1", "type": "Algebra", "solution": "so \\boxed{3}, no: \\boxed{4"}]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataSourceError, match="row 0"):
        get_env("math", data_files={"test": str(path)}).tasks("test")


def test_math500_tasks_and_round_trip():
    env = get_env("math", path=MATH500)
    tasks = env.tasks("test")
    assert [t.answer for t in tasks] == ["\\frac{3}{4}", "-3", "5", "60", "\\frac{\\sqrt{3}}{2}"]
    assert tasks[1].id == "math/test/algebra/9002.json" and tasks[1].meta["level"] == 1
    gold = env.verifier.verify_batch([env.demonstration(t) for t in tasks], tasks)
    wrong = env.verifier.verify_batch(["\\boxed{7}"] * len(tasks), tasks)
    assert all(v.passed for v in gold) and not any(v.passed for v in wrong)


@pytest.mark.parametrize("options, answers", [
    ({"subjects": ["Algebra"]}, ["-3", "5"]),
    ({"levels": [2, 3]}, ["5", "60", "\\frac{\\sqrt{3}}{2}"]),
    ({"subjects": ["Algebra"], "levels": [1]}, ["-3"]),
    ({"subjects": ["Geometry"]}, []),
])
def test_math_filters(options, answers):
    assert [t.answer for t in get_env("math", path=MATH500, **options).tasks("test")] == answers


def test_original_math_files_take_the_gold_from_the_box():
    tasks = get_env("math", data_files={"test": str(FIXTURES / "math_original.jsonl")}).tasks("test")
    assert [(t.answer, t.meta["level"], t.meta["subject"]) for t in tasks] == [
        ("56", 1, "Prealgebra"), ("\\dfrac{4}{9}", 2, "Algebra")]


@pytest.mark.parametrize("options, field", [({"levels": [6]}, "levels"), ({"subjects": "Algebra"}, "subjects"),
                                            ({"few_shot": "2"}, "few_shot"), ({"dataset": "x"}, "valid options")])
def test_math_bad_options(options, field):
    with pytest.raises(EnvError, match=field):
        get_env("math", **options)
