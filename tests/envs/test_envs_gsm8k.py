"""envs/gsm8k.py on a local clone with the hub schema (no network)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import envs.gsm8k
from data.hub import HubUnavailableError
from envs import get_env

FIXTURES = Path(__file__).parents[1] / "fixtures" / "envs"
CLONE = str(FIXTURES / "gsm8k")


pytestmark = pytest.mark.usefixtures("offline")  # conftest.py: no hub retries


def test_doctests():
    assert doctest.testmod(envs.gsm8k).failed == 0


@pytest.mark.parametrize("solution, gold", [
    ("x\n#### 72", "72"), ("#### 1,018", "1018"), ("a #### b\n#### -3 ", "-3"), ("no marker", None), ("####   ", None),
])
def test_gsm8k_gold_answer(solution, gold):
    assert envs.gsm8k.gold_answer(solution) == gold


def test_gsm8k_tasks_from_a_local_clone():
    env = get_env("gsm8k", path=CLONE)
    tasks = env.tasks("test")
    assert [t.answer for t in tasks] == ["6", "80", "5000", "-3"]
    assert tasks[0].id == "gsm8k/test/0"
    assert tasks[0].prompt.startswith("A baker makes 24 muffins") and tasks[0].prompt.endswith("\\boxed{}.")
    assert get_env("gsm8k", path=CLONE, instruction="").tasks("test")[1].prompt.endswith("in total?")


def test_gsm8k_round_trip():
    env = get_env("gsm8k", path=CLONE)
    tasks = env.tasks("test")
    gold = env.verifier.verify_batch([env.demonstration(t) for t in tasks], tasks)
    hashes = env.verifier.verify_batch([f"so\n#### {t.answer}" for t in tasks], tasks)
    wrong = env.verifier.verify_batch([f"\\boxed{{{int(t.answer) + 1}}}" for t in tasks], tasks)
    assert all(v.passed for v in gold) and all(v.passed for v in hashes)
    assert not any(v.passed for v in wrong)
    assert "<<" not in env.demonstration(tasks[0])  # calculator annotations are not shown


def test_gsm8k_few_shot_from_the_train_split():
    env = get_env("gsm8k", path=CLONE, few_shot=1, system_prompt="You are careful.")
    task = env.tasks("test")[0]
    text = env.render(task)
    assert text.startswith("You are careful.\n\nMia has 3 boxes")
    assert "\\boxed{24}" in text and text.endswith(task.prompt)
    roles = [m["role"] for m in env.messages(task)]
    assert roles == ["system", "user", "assistant", "user"]


def test_gsm8k_offline_without_a_local_copy_names_the_options():
    with pytest.raises(HubUnavailableError, match=r"get_env\('gsm8k', path="):
        get_env("gsm8k").tasks("test")
