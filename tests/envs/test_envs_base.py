"""envs/base.py: the registry, options, rendering (plain, few-shot, chat template) and the docs example."""

from __future__ import annotations

import random

import pytest

from envs import EnvError, Environment, env_options, get_env, list_envs, option, register_env, take
from envs.base import _REGISTRY
from verifiers import Task, get_verifier

BUILT_IN = ["arithmetic", "gsm8k", "humaneval", "math", "mbpp", "synthetic_code"]


# The "write your own environment" example of docs/environments.md, verbatim.
@register_env("list_sum")
class ListSumEnv(Environment):
    """Add up a list of small integers."""

    length: int = option(5, "numbers per list")

    def load_tasks(self, split):
        rng = random.Random(f"{self.seed}/{split}")
        tasks = []
        for i in range(100):
            xs = [rng.randint(-9, 9) for _ in range(self.length)]
            tasks.append(Task(id=f"list_sum/{split}/{i}", prompt=f"Add up {xs}. Answer in \\boxed{{}}.",
                              answer=str(sum(xs))))
        return tasks

    def correctness_verifier(self):
        return get_verifier("math")


def test_the_environments_page_shows_the_example_verbatim():
    import inspect
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "environments.md").read_text()
    assert inspect.getsource(ListSumEnv) in page   # getsource includes the decorator


@pytest.fixture(scope="module", autouse=True)
def _unregister_example():
    """The example is registered at import; leave the registry as other test modules expect it."""
    yield
    _REGISTRY.pop("list_sum", None)


@pytest.fixture
def chat_tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
                                  unk_token="[UNK]")
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    return tok


def test_built_ins_are_registered():
    assert set(BUILT_IN) <= set(list_envs())
    assert all(list_envs()[name] for name in BUILT_IN)


def test_unknown_env_lists_the_known_ones():
    with pytest.raises(EnvError, match="known environments: .*arithmetic.*gsm8k"):
        get_env("arithmetics")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(EnvError, match=r"unknown option\(s\) \['size'\].*valid options: .*'length'"):
        get_env("list_sum", size=3)


def test_register_rejects_duplicates_and_non_environments():
    with pytest.raises(EnvError, match="already registered"):
        register_env("arithmetic")(ListSumEnv)
    with pytest.raises(EnvError, match="must subclass"):
        register_env("not_an_env")(dict)
    with pytest.raises(EnvError, match="non-empty"):
        register_env("")
    assert "not_an_env" not in _REGISTRY


def test_readme_example():
    env = get_env("list_sum", length=3, format_weight=0.1)
    task = env.tasks("test")[0]
    assert env.render(task) == task.prompt and task.prompt.startswith("Add up [")
    verdict = env.verifier.verify(f"\\boxed{{{task.answer}}}", task)
    assert verdict.passed and verdict.reward == pytest.approx(1.1)  # 1.0 correct + 0.1 * format
    assert not env.verifier.verify(f"\\boxed{{{int(task.answer) + 1}}}", task).passed
    assert env.options()["length"] == 3 and env_options("list_sum")["length"].metadata["help"] == "numbers per list"


def test_plain_rendering_with_system_prompt_and_demonstrations():
    env = get_env("list_sum", system_prompt="Be exact.", few_shot=2)
    train, task = env.tasks("train"), env.tasks("test")[0]
    demo = f"{train[0].prompt}\nThe answer is \\boxed{{{train[0].answer}}}."
    parts = env.render(task).split("\n\n")
    assert parts[0] == "Be exact." and parts[1] == demo and parts[-1] == task.prompt and len(parts) == 4


def test_a_task_is_never_its_own_demonstration():
    env = get_env("list_sum", few_shot=2)
    first = env.tasks("train")[0]
    demos = env.messages(first)[:-1]
    assert len(demos) == 4 and first.prompt not in [m["content"] for m in demos]


def test_explicit_demonstrations_and_chat_template(chat_tokenizer):
    env = get_env("list_sum", system_prompt="S", few_shot=[{"prompt": "Add up [1].", "completion": "\\boxed{1}"}])
    task = env.tasks("test")[0]
    assert env.render(task, chat_tokenizer) == (
        f"<|system|>S\n<|user|>Add up [1].\n<|assistant|>\\boxed{{1}}\n<|user|>{task.prompt}\n<|assistant|>")
    chat_tokenizer.chat_template = None  # no template: plain text
    assert env.render(task, chat_tokenizer) == env.render(task)


def test_chat_prompts_pass_through():
    env = get_env("list_sum", system_prompt="S")
    task = Task(id="c", prompt=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                {"role": "user", "content": "sum [2]"}])
    assert [m["role"] for m in env.messages(task)] == ["system", "user", "assistant", "user"]
    assert env.render(task) == "S\n\nhi\n\nyo\n\nsum [2]"


@pytest.mark.parametrize("few_shot, match", [
    (-1, ">= 0"), (True, "int or a list"), ("2", "int or a list"), ([{"prompt": "p"}], r"few_shot\[0\]"),
    ([{"prompt": "p", "completion": 3}], r"few_shot\[0\]"),
])
def test_bad_few_shot(few_shot, match):
    with pytest.raises(EnvError, match=match):
        get_env("list_sum", few_shot=few_shot)


def test_bad_format_weight():
    with pytest.raises(EnvError, match="format_weight"):
        get_env("list_sum", format_weight="0.1")


def test_take_works_on_lists_and_streams():
    stream = get_env("arithmetic", train_size=None).tasks("train")
    assert len(take(stream, 5)) == 5 and len(take(iter(range(3)), 10)) == 3
