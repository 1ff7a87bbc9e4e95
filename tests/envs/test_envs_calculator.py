"""envs/calculator.py and data/calculator_problems.py: problems, splits, demonstrations, the alphabet
the tool syntax needs, and verdicts on whole episodes."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from data.arithmetic_problems import split_of
from data.calculator_problems import _SALT, FORMS, calculator_problems
from envs import EnvError, Environment, env_options, get_env, list_envs
from envs.multiturn import ACTION, OBSERVATION, PROMPT, MultiTurnEnvironment, run_episode


@pytest.fixture(scope="module")
def env():
    return get_env("calculator", train_size=300, test_size=100)


def exact(expression: str) -> Fraction:
    """Reference value: the expressions are digits and + - * only (checked first)."""
    assert re.fullmatch(r"[0-9+*-]+", expression)
    return Fraction(eval(expression))  # noqa: S307 - digits and operators only, checked above


def test_registered_with_its_options():
    assert "calculator" in list_envs()
    assert {"max_turns", "max_episode_tokens", "tool_timeout", "forms", "big_digits"} <= set(env_options("calculator"))


def test_problems_are_exact_and_of_the_asked_size(env):
    for task in env.tasks("test"):
        expr = task.meta["expression"]
        assert task.prompt == expr + "=" and Fraction(task.answer) == exact(expr)
        a, b = re.match(r"(?:\d+[+-])?(\d+)\*(\d+)", expr).groups()
        assert (len(a), len(b)) == (3, 2)


def test_forms_and_digits_are_options():
    env = get_env("calculator", forms=["sub_mul"], big_digits=2, small_digits=1, test_size=30)
    tasks = env.tasks("test")
    assert all(re.fullmatch(r"\d{2}-\d{2}\*\d", t.meta["expression"]) for t in tasks)
    assert any(t.answer.startswith("-") for t in tasks)
    assert all(Fraction(t.answer) == exact(t.meta["expression"]) for t in tasks)


def test_splits_are_disjoint_deterministic_and_hash_assigned(env):
    test, train = env.tasks("test"), env.tasks("train")
    test_exprs, train_exprs = {t.meta["expression"] for t in test}, {t.meta["expression"] for t in train}
    assert len(test_exprs) == 100 and len(train_exprs) == 300 and not test_exprs & train_exprs
    assert all(split_of(e, 0.1, _SALT) == "test" for e in test_exprs)
    assert all(split_of(e, 0.1, _SALT) == "train" for e in train_exprs)
    assert [t.prompt for t in get_env("calculator", test_size=100).tasks("test")] == [t.prompt for t in test]
    other_seed = get_env("calculator", test_size=100, seed=1).tasks("test")
    assert [t.prompt for t in other_seed] != [t.prompt for t in test]
    assert all(split_of(t.meta["expression"], 0.1, _SALT) == "test" for t in other_seed)


def test_endless_train_stream():
    stream = get_env("calculator", train_size=None).tasks("train")
    first = [next(stream) for _ in range(50)]
    assert all(split_of(t.meta["expression"], 0.1, _SALT) == "train" for t in first)


def test_demonstration_episodes_are_correct_and_masked(env):
    for task in env.tasks("train")[:50]:
        episode = env.demonstration_episode(task)
        expr, answer = task.meta["expression"], task.answer
        assert [s.kind for s in episode.segments] == [PROMPT, ACTION, OBSERVATION, ACTION]
        assert episode.completion == env.demonstration(task) == f"<calc>{expr}</calc><result>{answer}</result>{answer}"
        assert "".join(s.text for s in episode.segments if s.kind == ACTION) == f"<calc>{expr}</calc>{answer}"
        assert env.verify_episodes([episode], [task])[0].passed


def test_instruct_demonstrations_and_prompts():
    env = get_env("calculator", style="instruct", test_size=10)
    task = env.tasks("test")[0]
    assert task.prompt.startswith("Compute ") and "\\boxed{}" in task.prompt and " * " in task.prompt
    episode = env.demonstration_episode(task)
    assert episode.final_text == f"The answer is \\boxed{{{task.answer}}}."
    assert env.verify_episodes([episode], [task])[0].passed


def test_alphabet_covers_prompts_and_demonstrations_and_names_what_the_tiny_model_lacks(env):
    from models.tiny import DEFAULT_ALPHABET

    used = set()
    for task in env.tasks("test") + env.tasks("train")[:100]:
        used |= set(task.prompt + env.demonstration(task))
    assert used <= set(env.alphabet)
    assert set(env.alphabet) - used <= {"-", "/"}   # '-' for negative answers, '/' of the tool syntax
    assert "/" in used
    assert "".join(sorted(set(env.alphabet) - set(DEFAULT_ALPHABET))) == "<>acelrstu"
    assert not any(c.isspace() for c in env.alphabet)   # the tiny tokenizer has no whitespace tokens
    longest = max(len(t.prompt + env.demonstration(t)) for t in env.tasks("test"))
    assert longest <= 62  # + <s> and </s>: within the tiny model's 64 positions


def test_answering_without_the_tool_is_allowed_and_judged_on_the_answer(env):
    task = env.tasks("test")[0]
    right = run_episode(env, task, lambda c: task.answer)
    wrong = run_episode(env, task, lambda c: str(int(task.answer) - 10))
    assert [v.passed for v in env.verify_episodes([right, wrong], [task, task])] == [True, False]


def test_the_verifier_reads_the_answer_after_the_last_result_only(env):
    """A last turn with no answer (the result is only in an observation) fails."""
    task = env.tasks("test")[0]
    episode = run_episode(env, task, lambda c: f"<calc>{task.meta['expression']}</calc>" if c.turn == 0 else "")
    assert task.answer in episode.completion
    verdict = env.verify_episodes([episode], [task])[0]
    assert not verdict.passed and verdict.info["status"] == "failed"


@pytest.mark.parametrize("options, field", [
    ({"forms": ["div"]}, "forms"), ({"forms": []}, "forms"), ({"big_digits": 0}, "big_digits"),
    ({"small_digits": 10}, "small_digits"), ({"style": "chat"}, "style"), ({"test_fraction": 1.0}, "test_fraction"),
    ({"test_size": 0}, "test_size"), ({"train_size": "all"}, "train_size"),
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(EnvError, match=field):
        get_env("calculator", **options)


def test_forms_table_is_consistent():
    assert set(FORMS) == {"mul", "mul_add", "mul_sub", "add_mul", "sub_mul"}
    problems = list(calculator_problems("test", 0, 0.5, 20, tuple(FORMS)))
    assert all(Fraction(p.answer) == exact(p.expression) for p in problems)
    assert all(p.steps[-1] == f"{p.expression}={p.answer}" for p in problems)


@pytest.mark.parametrize("name", ["arithmetic", "gsm8k", "math", "humaneval", "mbpp", "synthetic_code"])
def test_single_turn_environments_are_unaffected(name):
    env = get_env(name)
    assert isinstance(env, Environment) and not isinstance(env, MultiTurnEnvironment)
    assert not {"max_turns", "max_episode_tokens", "tools"} & set(env_options(name))
