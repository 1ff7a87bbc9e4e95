"""`ToolEnvironment`: a multi-turn environment whose observations are the results of the
tools the model calls (`envs.tools`: `calculator`, `python`, or any registered tool).

After each model turn the tool calls in it are parsed (the plain-text syntax, or the chat
template's `<tool_call>` JSON in chat episodes; see `envs.tools.syntax`) and run, at most
`MAX_CALLS_PER_TURN` of them, each within `tool_timeout` seconds; a turn with no call is the
answer and ends the episode. Nothing a model writes can end an episode early or crash it: a
malformed call, an unknown tool, bad arguments, a tool's error or timeout is a result the
model reads (`<result>error: ...</result>`, or a tool message). A batch of episodes runs its
calls on `tool_workers` threads (the `python` tool's sandboxes run in parallel).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from envs.base import EnvError, option
from envs.multiturn import Episode, MultiTurnEnvironment, Observation
from envs.tools import ChatSyntax, PlainSyntax, Tool, ToolCall, call_tool, get_tool, parse_hermes
from envs.tools.syntax import MAX_CALLS_PER_TURN, ParsedCall
from verifiers import Task


@dataclass(kw_only=True, eq=False)
class ToolEnvironment(MultiTurnEnvironment):
    """Subclasses name their tools in `tool_names` (or take the `tools` option)."""

    tool_names: ClassVar[tuple[str, ...]] = ()

    tools: list | None = option(None, "names of the tools the model may call (None: the environment's own)")
    tool_options: dict = option({}, "options per tool, {name: {option: value}}")
    tool_timeout: float = option(10.0, "seconds one tool call may take (the python tool: CPU seconds, rounded up)")
    tool_workers: int = option(4, "threads running a batch's tool calls")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.tool_timeout, bool) or not isinstance(self.tool_timeout, (int, float)) \
                or not 0 < self.tool_timeout <= 600:
            raise EnvError(f"option tool_timeout must be a number of seconds in (0, 600], got {self.tool_timeout!r}")
        if isinstance(self.tool_workers, bool) or not isinstance(self.tool_workers, int) or self.tool_workers < 1:
            raise EnvError(f"option tool_workers must be a positive int, got {self.tool_workers!r}")
        names = self.tool_names if self.tools is None else self.tools
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
            raise EnvError(f"option tools must be a non-empty list of tool names, got {names!r}")
        unknown = sorted(set(self.tool_options) - set(names)) if isinstance(self.tool_options, dict) else ["?"]
        if unknown:
            raise EnvError(f"option tool_options must be a dict keyed by the tools used {list(names)}; got {unknown}")
        try:
            self.toolbox: dict[str, Tool] = {n: get_tool(n, **self.tool_options.get(n, {})) for n in names}
        except (ValueError, TypeError) as exc:
            raise EnvError(f"option tools / tool_options: {exc}") from None

    @cached_property
    def plain_syntax(self) -> PlainSyntax:
        return PlainSyntax({tool.tag: (tool.name, tool.argument) for tool in self.toolbox.values()})

    def stop_strings(self, chat: bool) -> tuple[str, ...]:
        return tuple(self.stop) + (ChatSyntax.stop if chat else self.plain_syntax.stop)

    def tool_schemas(self) -> list[dict]:
        return [tool.schema() for tool in self.toolbox.values()]

    def render(self, task: Task, tokenizer: Any = None) -> str:
        """Plain text as any environment; with a chat template, the tools' schemas go to it."""
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return ChatSyntax(tokenizer, self.tool_schemas()).render(self.messages(task), generation_prompt=True)
        return super().render(task, tokenizer)

    def step(self, task: Task, episode: Episode, action: str) -> Observation | None:
        calls = parse_hermes(action) if episode.chat else self.plain_syntax.parse(action)
        if not calls:
            return None
        records = [self._call(c) if n < MAX_CALLS_PER_TURN else
                   ToolCall(c.name, c.arguments, f"error: more than {MAX_CALLS_PER_TURN} calls in one turn", "bad_call")
                   for n, c in enumerate(calls)]
        outputs = [r.output for r in records]
        return Observation(
            text=PlainSyntax.observation_text(outputs),
            messages=[{"role": "tool", "name": r.name, "content": r.output} for r in records],
            assistant=ChatSyntax.assistant_message(action, calls) if episode.chat else None,
            tool_calls=records)

    def _call(self, call: ParsedCall) -> ToolCall:
        if call.problem:
            return ToolCall(call.name, call.arguments, f"error: {call.problem}", "bad_call")
        return call_tool(self.toolbox, call.name, call.arguments, float(self.tool_timeout))

    def step_batch(self, tasks: list[Task], episodes: list[Episode], actions: list[str]) -> list[Observation | None]:
        if len(episodes) < 2 or self.tool_workers == 1:
            return super().step_batch(tasks, episodes, actions)
        with ThreadPoolExecutor(max_workers=min(self.tool_workers, len(episodes))) as threads:
            return list(threads.map(self.step, tasks, episodes, actions))

    def close(self) -> None:
        for tool in self.toolbox.values():
            tool.close()
        super().close()
