"""envs/difficulty.py and the difficulty option of arithmetic, calculator and reasoning_gym:
level 0 is today's tasks, levels climb, ids are unique across levels, splits are
deterministic and disjoint at every level, one verifier scores every level, misuse is named."""

from __future__ import annotations

import re

import pytest

import envs
from data.arithmetic_problems import split_of
from envs import EnvError, env_help, get_env
from envs.difficulty import at_level, levels_of, resolve_level
from models.tiny import DEFAULT_ALPHABET

SMALL = {"arithmetic": dict(train_size=300, test_size=60), "calculator": dict(train_size=300, test_size=60),
         "reasoning_gym": dict(dataset="basic_arithmetic", size=60, test_size=30)}


@pytest.mark.parametrize("name", list(SMALL))
def test_every_level_is_deterministic_disjoint_and_uniquely_named(name):
    env = get_env(name, **SMALL[name])
    assert levels_of(env) >= 4 and "difficulty" in env_help(name)
    ids, test_prompts, train_prompts = set(), set(), set()
    for level in range(levels_of(env)):
        first, again = get_env(name, difficulty=level, **SMALL[name]), get_env(name, difficulty=level, **SMALL[name])
        for split in ("train", "test"):
            tasks = first.tasks(split)
            fields = [(t.id, t.prompt, t.answer) for t in tasks]
            assert fields == [(t.id, t.prompt, t.answer) for t in again.tasks(split)]
            assert all(f"/level{level}/" in t.id or (level == 0 and name != "reasoning_gym") for t in tasks)
            ids |= {t.id for t in tasks}
        test, train = {t.prompt for t in first.tasks("test")}, {t.prompt for t in first.tasks("train")}
        assert not test & train, level                       # disjoint at this level
        test_prompts |= test
        train_prompts |= train
    assert len(ids) == sum(len(get_env(name, difficulty=lvl, **SMALL[name]).tasks(s))
                           for lvl in range(levels_of(env)) for s in ("train", "test"))
    if name != "reasoning_gym":                              # split by a hash of the expression: across levels too
        assert not test_prompts & train_prompts


@pytest.mark.parametrize("name", ["arithmetic", "calculator"])
def test_level_zero_and_no_level_are_todays_tasks(name):
    today = get_env(name, **SMALL[name])
    for options in ({"difficulty": 0}, {"difficulty": None}):
        env = get_env(name, **options, **SMALL[name])
        for split in ("train", "test"):
            assert [(t.id, t.prompt) for t in env.tasks(split)] == [(t.id, t.prompt) for t in today.tasks(split)]
    assert today.tasks("test")[0].id == f"{name}/test/0"


def _shape(expression: str) -> tuple[int, int]:
    """(operands, digits of the longest operand) of a printed expression."""
    numbers = re.findall(r"\d+", expression)
    return len(numbers), max(map(len, numbers))


def test_arithmetic_climbs_the_default_ladder():
    # operands, then digits, in turn: 12+34 / 12+34-56 / 123+456-789 / 4 x 3 digits / 4 x 4 digits
    expected = [(2, 2), (3, 2), (3, 3), (4, 3), (4, 4)]
    for level, shape in enumerate(expected):
        tasks = get_env("arithmetic", difficulty=level, test_size=40).tasks("test")
        assert {_shape(t.meta["expression"]) for t in tasks} == {shape}, level
        assert all(split_of(t.meta["expression"], 0.1) == "test" for t in tasks)
    assert get_env("arithmetic", difficulty="max").level == 4


def test_arithmetic_ladder_steps_and_the_tiny_models_characters():
    env = get_env("arithmetic", ladder=["*", "multi_step", "/", "operands"], test_size=60, difficulty="max")
    tasks = env.tasks("test")
    assert env.spec.operators == "+-*/" and env.spec.multi_step and env.spec.operands == 3
    chars = set("".join(t.prompt + t.answer for t in tasks))
    assert chars <= set(env.alphabet) <= set(DEFAULT_ALPHABET + "\n"), chars
    assert all(v.passed for v in env.verifier.verify_batch([env.demonstration(t) for t in tasks], tasks))


def test_calculator_levels_grow_the_operands_and_gold_episodes_pass():
    base = get_env("calculator", test_size=20)
    for level, (big, small) in enumerate([(3, 2), (3, 3), (4, 3), (4, 4), (5, 4)]):
        env = at_level(base, level)
        tasks = env.tasks("test")
        for t in tasks:
            a, b = re.match(r"(?:\d+[+-])?(\d+)\*(\d+)", t.meta["expression"]).groups()
            assert (len(a), len(b)) == (big, small)
        assert all(v.passed for v in base.verifier.verify_batch([env.demonstration(t) for t in tasks[:5]], tasks[:5]))


def test_reasoning_gym_levels_are_its_curriculum_merged_into_the_config():
    env = get_env("reasoning_gym", dataset="basic_arithmetic", config={"whitespace": "single"}, difficulty=2,
                  size=20, test_size=10)
    config = env.tasks("test")[0].meta["config"]
    assert (config["max_terms"], config["max_digits"], config["whitespace"]) == (4, 3, "single")
    assert env.tasks("test")[0].id == "reasoning_gym/basic_arithmetic/level2/test/0"
    gold = [env.demonstration(t) for t in env.tasks("test")]
    assert all(v.passed for v in env.verifier.verify_batch(gold, env.tasks("test")))
    # A mix has the levels of its longest part; caesar_cipher's levels 2 and up are refused by its own config.
    assert levels_of(get_env("reasoning_gym", dataset="caesar_cipher")) == 2
    mix = get_env("reasoning_gym", dataset=["caesar_cipher", "basic_arithmetic"], difficulty="max", size=5,
                  test_size=5)
    assert mix.level == 4 and mix.configs["caesar_cipher"]["max_rotation"] == 25


@pytest.mark.parametrize("name,options,message", [
    ("arithmetic", dict(difficulty=5), r"int in 0\.\.4"),
    ("arithmetic", dict(difficulty="hardest"), "difficulty must be"),
    ("arithmetic", dict(ladder=["digits"] * 8), "raises digits above its limit 9"),
    ("arithmetic", dict(ladder=["+"]), r"unknown step\(s\) \['\+'\]"),
    ("arithmetic", dict(operators="+-*", ladder=["*"]), "already holds it"),
    ("calculator", dict(ladder=["mul"]), "already holds it"),
    ("reasoning_gym", dict(dataset="acre", difficulty=0), "no curriculum"),
    ("reasoning_gym", dict(dataset="knight_swap", difficulty=0), "refuses every config"),
    ("reasoning_gym", dict(dataset="basic_arithmetic", config={"max_terms": 3}, difficulty=1),
     r"sets \['max_terms'\], which its difficulty levels set"),
])
def test_misuse_names_the_option(name, options, message):
    with pytest.raises(EnvError, match=message):
        get_env(name, **options)


def test_at_level_shares_the_verifier_and_the_level_environments():
    env = get_env("arithmetic", test_size=10)
    hardest = at_level(env, "max")
    assert hardest is at_level(env, 4) and hardest.verifier is env.verifier and hardest.difficulty == 4
    assert resolve_level("2", 5) == 2 and resolve_level(None, 5) is None
    with pytest.raises(EnvError, match="no difficulty levels"):
        at_level(envs.get_env("synthetic_code"), 1)
