"""Tool calls for chat models: Hermes/Qwen `<tool_call>` parsing, and episodes through a
local tokenizer whose chat template takes `tools=` (built here, no hub): the episode's text
is exactly the template's rendering of the conversation."""

from __future__ import annotations

import json

import pytest

from envs import get_env
from envs.multiturn import ACTION, OBSERVATION, Turn, run_episode
from envs.tools import ChatSyntax, parse_hermes

# A Hermes-style template written for this test: tools listed in the system turn, calls as
# <tool_call> JSON, tool results in `tool` turns, `<|im_end|>` then a newline after each turn.
TEMPLATE = (
    "{% if tools %}<|im_start|>system\nYou may call these tools:\n"
    "{% for t in tools %}\n{{ t | tojson }}{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}{% if m.content or not loop.first %}\n{% endif %}"
    "<tool_call>\n{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}\n</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
EOT = "<|im_end|>"


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0, EOT: 1}, unk_token="[UNK]")),
                                  unk_token="[UNK]", eos_token=EOT)
    tok.chat_template = TEMPLATE
    return tok


def call_text(name: str, arguments) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


@pytest.mark.parametrize("text, expected", [
    (call_text("calculator", {"expression": "1+2"}), [("calculator", {"expression": "1+2"}, None)]),
    ('<tool_call>{"name": "calculator", "arguments": "{\\"expression\\": \\"3\\"}"}</tool_call>',
     [("calculator", {"expression": "3"}, None)]),                      # arguments as a JSON string
    ('<tool_call>{"name": "python", "parameters": {"code": "print(1)"}}</tool_call>',
     [("python", {"code": "print(1)"}, None)]),
    ("I will add. " + call_text("a", {}) + " and " + call_text("b", {"x": "1"}),
     [("a", {}, None), ("b", {"x": "1"}, None)]),
    ("<tool_call>{name: calculator}</tool_call>", [("", "{name: calculator}", "not valid JSON")]),
    ('<tool_call>["calculator"]</tool_call>', [("", '["calculator"]', "must be")]),
    ('<tool_call>{"arguments": {}}</tool_call>', [("", '{"arguments": {}}', "must be")]),
    ('<tool_call>{"name": "calculator"', [("", '<tool_call>{"name": "calculator"', "never closed")]),
    ("<tool_call>" + "[" * 100_000 + "</tool_call>", [("", "[" * 200, "not valid JSON")]),  # deep nesting
    ("no call here </tool_call>", []),
])
def test_parse_hermes(text, expected):
    parsed = [(c.name, c.arguments, c.problem) for c in parse_hermes(text)]
    assert [(n, a) for n, a, _ in parsed] == [(n, a) for n, a, _ in expected]
    for (_, _, problem), (_, _, want) in zip(parsed, expected):
        assert (problem is None) if want is None else (want in problem)


def test_a_hermes_call_with_string_arguments_that_are_not_json_is_a_bad_call(tokenizer):
    env = get_env("calculator", style="instruct", test_size=5)
    task = env.tasks("test")[0]
    bad = '<tool_call>{"name": "calculator", "arguments": "12*3"}</tool_call>'
    ep = run_episode(env, task, lambda c: bad if c.turn == 0 else f"\\boxed{{{task.answer}}}", tokenizer=tokenizer)
    assert ep.tool_calls[0]["status"] == "bad_call" and "must be an object" in ep.tool_calls[0]["output"]
    assert ep.end == "answer"


def test_chat_episode_is_the_templates_rendering_of_the_conversation(tokenizer):
    env = get_env("calculator", style="instruct", test_size=5)
    task = env.tasks("test")[0]
    expr, answer = task.meta["expression"], task.answer
    turns = [call_text("calculator", {"expression": expr}) + EOT, f"The answer is \\boxed{{{answer}}}." + EOT]
    ep = run_episode(env, task, lambda c: turns[c.turn], tokenizer=tokenizer)
    assert ep.chat and ep.end == "answer" and env.verify_episodes([ep], [task])[0].passed
    schema = json.dumps(env.tool_schemas()[0])
    assert ep.prompt.startswith("<|im_start|>system\nYou may call these tools:\n" + schema)
    assert ep.prompt.endswith(f"<|im_start|>user\n{task.prompt}<|im_end|>\n<|im_start|>assistant\n")
    assert [s.kind for s in ep.segments[1:]] == [ACTION, OBSERVATION, ACTION]
    assert ep.segments[2].text == f"\n<|im_start|>tool\n{answer}<|im_end|>\n<|im_start|>assistant\n"
    assert ep.messages[-3:] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "calculator", "arguments": {"expression": expr}}}]},
        {"role": "tool", "name": "calculator", "content": answer},
        {"role": "assistant", "content": f"The answer is \\boxed{{{answer}}}."}]
    # The whole episode, with what the template puts after the final turn, is the template's
    # rendering of the conversation: the model saw exactly what the template would show it.
    rendered = tokenizer.apply_chat_template(ep.messages, tools=env.tool_schemas(), tokenize=False)
    assert ep.text + "\n" == rendered


def test_a_turn_stopped_before_its_end_token_gets_it_from_the_observation(tokenizer):
    env = get_env("calculator", style="instruct", test_size=5)
    task = env.tasks("test")[0]
    call = call_text("calculator", {"expression": task.meta["expression"]})
    ep = run_episode(env, task, lambda c: call if c.turn == 0 else "done" + EOT, tokenizer=tokenizer)
    assert ep.segments[2].text.startswith(EOT + "\n<|im_start|>tool\n")
    # with token ids, the end token is read from the ids (a sampler may decode it away)
    ep = run_episode(env, task, lambda c: Turn(call, [0] * 3 + [tokenizer.eos_token_id]) if c.turn == 0 else "x",
                     tokenizer=tokenizer)
    assert ep.segments[2].text.startswith("\n<|im_start|>tool\n")


def test_chat_errors_are_tool_messages(tokenizer):
    env = get_env("calculator", style="instruct", test_size=5)
    task = env.tasks("test")[0]
    turns = ["<tool_call>{oops}</tool_call>" + EOT, call_text("calculator", {"expression": "1/0"}) + EOT,
             call_text("python", {"code": "1"}) + EOT]
    env.max_turns = 4
    ep = run_episode(env, task, lambda c: turns[c.turn] if c.turn < 3 else task.answer + EOT, tokenizer=tokenizer)
    tool_messages = [m for m in ep.messages if m["role"] == "tool"]
    assert [m["content"].split(":")[0] for m in tool_messages] == ["error"] * 3
    assert "not valid JSON" in tool_messages[0]["content"]
    assert "division by zero" in tool_messages[1]["content"]
    assert "unknown tool 'python'" in tool_messages[2]["content"]
    assert [c["status"] for c in ep.tool_calls] == ["bad_call", "error", "bad_call"] and ep.end == "answer"


def test_a_template_that_rewrites_history_is_refused(tokenizer):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
                                  unk_token="[UNK]", eos_token="[UNK]")
    # shows only the last message: an episode's context would not be a prefix of the next
    tok.chat_template = "{{ messages[-1].role }}:{{ messages[-1].content }}{% if add_generation_prompt %}>{% endif %}"
    syntax = ChatSyntax(tok, [])
    with pytest.raises(ValueError, match="prefix"):
        syntax.observation_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                                [{"role": "tool", "content": "r"}], ended=True)


def test_an_observation_without_messages_in_a_chat_episode_is_misuse(tokenizer, monkeypatch):
    from envs.multiturn import Observation
    from envs.tool_env import ToolEnvironment

    env = get_env("calculator", style="instruct", test_size=5)
    monkeypatch.setattr(ToolEnvironment, "step", lambda self, task, episode, action: Observation(text="plain only"))
    with pytest.raises(ValueError, match="without `messages` in a chat episode"):
        run_episode(env, env.tasks("test")[0], lambda c: "x", tokenizer=tokenizer)
