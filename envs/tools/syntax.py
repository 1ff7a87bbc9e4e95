"""How tool calls are written: one plain-text syntax, and the chat template's own.

Plain text (any model, the tiny character-level one included). A call is the tool's tag
around its one argument, and the environment answers with the output between `<result>`
tags, appended right after the call:

    123*45=<calc>123*45</calc><result>5535</result>5535

No whitespace is needed (the tiny model's tokenizer has none). The tags of the episode's
tools are the only calls (`<calc>`, `<python>`); several calls in one turn are run in order
and answered by as many `<result>`s. A tag opened and never closed is a malformed call: the
model is shown an error. Samplers stop at a closing tag (`PlainSyntax.stop`) and keep it in
the text.

Chat models use the tokenizer's tool-calling template: the tools' JSON schemas go to
`apply_chat_template(messages, tools=schemas)`, the model writes Hermes/Qwen-style calls,

    <tool_call>
    {"name": "calculator", "arguments": {"expression": "123*45"}}
    </tool_call>

and each result comes back as a `{"role": "tool", "name": ..., "content": ...}` message,
rendered by the same template (`ChatSyntax.observation_text`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

RESULT_OPEN, RESULT_CLOSE = "<result>", "</result>"
MAX_CALLS_PER_TURN = 8   # calls past this in one turn are answered with an error, not run


@dataclass
class ParsedCall:
    """A call found in a model turn: the tool's name and arguments, or why it is malformed."""

    name: str
    arguments: Any
    problem: str | None = None


@dataclass
class PlainSyntax:
    """`<tag>argument</tag>` calls, answered by `<result>output</result>`."""

    tags: dict[str, tuple[str, str]]   # tag -> (tool name, argument name)
    pattern: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = "|".join(re.escape(t) for t in sorted(self.tags, key=len, reverse=True))
        self.pattern = re.compile(rf"<({names})>")

    @property
    def stop(self) -> tuple[str, ...]:
        return tuple(f"</{t}>" for t in self.tags)

    def parse(self, text: str) -> list[ParsedCall]:
        calls = []
        for tag, body, problem, _, _ in _blocks(text, self.pattern, lambda m: f"</{m.group(1)}>"):
            name, arg = self.tags[tag]
            calls.append(ParsedCall(name, body if problem else {arg: body}, problem))
        return calls

    @staticmethod
    def observation_text(outputs: list[str]) -> str:
        return "".join(f"{RESULT_OPEN}{out}{RESULT_CLOSE}" for out in outputs)


def _blocks(text: str, opening: re.Pattern, closing_of) -> list[tuple[str, str, str | None, int, int]]:
    """(opening tag name, body, problem, start, end) of each `<tag>body</tag>` in order. An opening tag
    never closed takes the rest of the text as its body and ends the scan. One pass: each
    closing tag is searched for once from where its opening tag ends (a lazy `.*?` regex
    would rescan the rest of the text for every opening tag: quadratic on hostile text)."""
    out, pos = [], 0
    while (m := opening.search(text, pos)) is not None:
        close = closing_of(m)
        end = text.find(close, m.end())
        if end < 0:
            out.append((m.group(1), text[m.start():], f"{m.group(0)} is never closed with {close}",
                        m.start(), len(text)))
            break
        out.append((m.group(1), text[m.end():end], None, m.start(), end + len(close)))
        pos = end + len(close)
    return out


_HERMES_OPEN = re.compile(r"<(tool_call)>")


def _hermes_close(_: re.Match) -> str:
    return "</tool_call>"


def parse_hermes(text: str) -> list[ParsedCall]:
    """Calls written `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes,
    Qwen 2.5/3). `arguments` may also be a JSON string of the object, as some models write."""
    calls = []
    for _, body, problem, _, _ in _blocks(text, _HERMES_OPEN, _hermes_close):
        if problem:
            calls.append(ParsedCall("", body[:200], problem))
            continue
        body = body.strip()
        try:
            call = json.loads(body)
        except (ValueError, RecursionError) as exc:
            calls.append(ParsedCall("", body[:200], f"the tool call is not valid JSON ({exc})"[:300]))
            continue
        if not (isinstance(call, dict) and isinstance(call.get("name"), str)):
            calls.append(ParsedCall("", body[:200], 'a tool call must be {"name": ..., "arguments": {...}}'))
            continue
        args = call.get("arguments", call.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except (ValueError, RecursionError):
                pass  # left a string: the call is then reported as malformed arguments
        calls.append(ParsedCall(call["name"], args))
    return calls


class ChatSyntax:
    """Tool calls through a tokenizer's chat template.

    The text appended after a model turn is exactly what the template renders for the tool
    messages and the next generation prompt: the difference between the conversation
    rendered with and without them. The end-of-turn text the model did not write itself
    (its end-of-turn token when the sampler stopped before it, and what the template puts
    after that token, such as a newline) is part of the observation, so that the episode's
    text is the template's rendering of the conversation.
    """

    stop: tuple[str, ...] = ()   # the model ends its turn with its end-of-turn token

    def __init__(self, tokenizer: Any, tools: list[dict]):
        self.tokenizer, self.tools = tokenizer, tools
        self.eot = tokenizer.eos_token or ""

    def render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=self.tools or None, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    @staticmethod
    def assistant_message(text: str, calls: list[ParsedCall]) -> dict:
        """The model's turn as a chat message: its prose and its well-formed calls."""
        content, pos = "", 0
        for _, _, problem, start, end in _blocks(text, _HERMES_OPEN, _hermes_close):
            if problem is None:  # well-formed calls become `tool_calls`; the rest stays prose
                content, pos = content + text[pos:start], end
        content += text[pos:]
        message = {"role": "assistant", "content": content.strip()}
        good = [c for c in calls if c.problem is None and isinstance(c.arguments, dict)]
        if good:
            message["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                     for c in good]
        return message

    def observation_text(self, messages: list[dict], replies: list[dict], ended: bool) -> str:
        """The text after the model's turn: `messages` ends with the model's message,
        `replies` are the tool messages, `ended` says whether the turn's text already ends
        with the end-of-turn token."""
        before = self.render(messages, generation_prompt=False)
        after = self.render(messages + replies, generation_prompt=True)
        if not after.startswith(before):
            raise ValueError("the chat template renders earlier turns differently once tool messages follow; "
                             "an episode's context would not be a prefix of the next one")
        cut = before.rfind(self.eot) if self.eot else -1
        closing = before[cut + len(self.eot):] if cut >= 0 else None
        if closing is None or closing.strip():  # this template does not end a model turn with the token
            return after[len(before):]
        return ("" if ended else self.eot) + closing + after[len(before):]
