"""envs/arithmetic.py: the default environment (bare prompts for the tiny char model)."""

from __future__ import annotations

import re
from fractions import Fraction
from itertools import islice

import pytest

from envs import EnvError, get_env
from envs.arithmetic import ArithmeticEnv

CONFIGS = [
    {},
    {"digits": 3, "operands": 3, "operators": "+-*/"},
    {"operands": 3, "operators": "+-*/", "fractions": True},
    {"operands": 4, "operators": "+-*", "multi_step": True},
    {"style": "instruct", "operands": 3, "operators": "+-*/", "fractions": True},
    {"style": "instruct", "operands": 3, "multi_step": True},
]


def _wrong(answer: str) -> str:
    return str(Fraction(answer) + 1).replace(" ", "")


def test_defaults_are_the_calibrated_demo():
    env = get_env("arithmetic")
    tasks = env.tasks("test")
    assert len(tasks) == 300 and len(env.tasks("train")) == 5000
    for task in tasks:
        match = re.fullmatch(r"([1-9]\d)([+-])([1-9]\d)=", task.prompt)  # two integers, + or -
        assert match, task.prompt
        assert env.render(task) == task.prompt  # bare: nothing added
        a, b = int(match[1]), int(match[3])
        assert int(task.answer) == (a + b if match[2] == "+" else a - b)


@pytest.mark.parametrize("options", CONFIGS, ids=str)
def test_round_trip_gold_passes_wrong_fails(options):
    env = get_env("arithmetic", test_size=40, **options)
    tasks = env.tasks("test")
    golds = [env.demonstration(t) for t in tasks]
    wrongs = [_wrong(t.answer) if options.get("style") != "instruct" else f"\\boxed{{{_wrong(t.answer)}}}"
              for t in tasks]
    assert all(v.passed and v.reward == 1.0 for v in env.verifier.verify_batch(golds, tasks))
    assert not any(v.passed for v in env.verifier.verify_batch(wrongs, tasks))


@pytest.mark.parametrize("options", [o for o in CONFIGS if o.get("style") != "instruct"], ids=str)
def test_bare_prompts_and_answers_stay_in_the_alphabet(options):
    env = get_env("arithmetic", test_size=100, **options)
    chars = set("".join(t.prompt + t.answer for t in env.tasks("test")))
    assert chars <= set(env.alphabet), chars - set(env.alphabet)


def test_alphabet_is_readable_from_the_class():
    assert ArithmeticEnv.alphabet == "0123456789+-*/="
    assert set(get_env("arithmetic", multi_step=True).alphabet) == set("0123456789+-*/=()")


def test_splits_never_share_a_problem_whatever_the_seeds():
    test = {t.prompt for t in get_env("arithmetic", seed=1).tasks("test")}
    train = {t.prompt for t in get_env("arithmetic", seed=2).tasks("train")}
    assert len(train) == 5000 and not test & train


def test_deterministic_given_seed():
    a = get_env("arithmetic", seed=3, test_size=50).tasks("test")
    b = get_env("arithmetic", seed=3, test_size=50).tasks("test")
    c = get_env("arithmetic", seed=4, test_size=50).tasks("test")
    assert [(t.id, t.prompt, t.answer) for t in a] == [(t.id, t.prompt, t.answer) for t in b]
    assert [t.prompt for t in a] != [t.prompt for t in c]


def test_endless_train_stream():
    env = get_env("arithmetic", train_size=None)
    stream = env.tasks("train")
    assert not isinstance(stream, list)
    test = {t.prompt for t in env.tasks("test")}
    drawn = list(islice(stream, 2000))
    assert not {t.prompt for t in drawn} & test
    assert len({t.id for t in drawn}) == 2000


def test_instruct_prompt_asks_for_a_box():
    env = get_env("arithmetic", style="instruct", fractions=True, operators="+/")
    task = env.tasks("test")[0]
    assert "\\boxed{}" in task.prompt and "reduced fraction" in task.prompt
    assert re.search(r"\d+ [+/] \d+", task.prompt)


def test_format_part_is_logged_at_weight_zero_and_paid_when_weighted():
    env0, env1 = get_env("arithmetic"), get_env("arithmetic", format_weight=0.5)
    task = env0.tasks("test")[0]
    chatty = f"the answer is {task.answer}"
    v0, v1 = env0.verifier.verify(chatty, task), env1.verifier.verify(task.answer, task)
    assert v0.passed and v0.reward == 1.0 and v0.info["parts"]["format"]["reward"] == 0.0
    assert v1.passed and v1.reward == 1.5  # 1.0 correctness + 0.5 * 1.0 format


def test_bare_few_shot_rendering():
    env = get_env("arithmetic", few_shot=2)
    task = env.tasks("test")[0]
    demos = env.tasks("train")[:2]
    assert env.render(task) == f"{demos[0].prompt}{demos[0].answer}\n{demos[1].prompt}{demos[1].answer}\n{task.prompt}"
    assert set(env.render(task)) <= set(env.alphabet)


@pytest.mark.parametrize("options, field", [
    ({"style": "chat"}, "style"), ({"digits": 0}, "digits"), ({"operators": "+%"}, "operators"),
    ({"test_fraction": 1.5}, "test_fraction"), ({"test_size": 0}, "test_size"), ({"train_size": -1}, "train_size"),
    ({"few_shot": -1}, "few_shot"), ({"ops": "+"}, "valid options"),
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(EnvError, match=field):
        get_env("arithmetic", **options)


def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(EnvError, match=r"valid splits: \['train', 'test'\]"):
        get_env("arithmetic").tasks("validation")
