"""The tool contract: `Tool` (a name, a JSON schema, a call), its registry, and `call_tool`,
which turns anything a model can do to a tool into a `ToolCall` record and never raises on it.

What a call can end as (`ToolCall.status`):

* `ok` -- the tool's output, as text;
* `error` -- the tool refused or failed on this input (`ToolError`, or one of the input errors
  of `INPUT_ERRORS`: a division by zero, a value too large, a recursion too deep);
* `timeout` -- the call overran `timeout` seconds (or the tool's own limit: `ToolTimeout`);
* `bad_call` -- the call itself is malformed: unknown tool, arguments not an object, a missing
  or unexpected argument, an argument that is not a string.

Any other exception is a bug of the tool, not of the model, and propagates, as do `MISUSE`
errors (a `ValueError` that means a broken set-up, such as no bubblewrap): a broken tool must
not look like a model that keeps failing.

Timeouts: a tool that bounds its own time (`bounds_time = True`: the calculator by its size
limits, `python` by the sandbox's CPU and wall limits) runs in the caller's thread and gets
`timeout` to apply. Any other tool runs in a daemon thread that the caller stops waiting for
after `timeout` seconds; Python cannot kill a thread, so such a tool keeps its CPU until it
returns -- tools that can run long should bound themselves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

from envs.base import EnvError
from verifiers import VerifierError

INPUT_ERRORS = (ArithmeticError, ValueError, RecursionError, MemoryError)
MISUSE = (EnvError, VerifierError)   # a tool's set-up failing (no bwrap, a closed pool): raised, never shown
STATUSES = ("ok", "error", "timeout", "bad_call")


class ToolError(Exception):
    """Raised by a tool for a failure the model caused; its message is what the model sees."""


class ToolTimeout(ToolError):
    """Raised by a tool that bounds its own time when the call overran it."""


@dataclass
class ToolCall:
    """One call as the episode records it (plain JSON through `to_json`)."""

    name: str
    arguments: Any               # what the model wrote: a dict of arguments, or the raw text
    output: str = ""             # what the model is shown (an error message for a failed call)
    status: str = "ok"           # one of STATUSES
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


class Tool:
    """A function the model may call. Subclasses set the class attributes and `run`.

    `parameters` is the JSON schema of the arguments object (what chat templates show the
    model); `argument` names the one string argument that a plain-text call's body fills
    (`<calc>12*34</calc>` -> `{"expression": "12*34"}`); `tag` is the plain-text tag."""

    name: ClassVar[str] = ""
    tag: ClassVar[str] = ""
    description: ClassVar[str] = ""
    argument: ClassVar[str] = "input"
    bounds_time: ClassVar[bool] = False

    @property
    def parameters(self) -> dict:
        return {"type": "object", "properties": {self.argument: {"type": "string", "description": self.argument}},
                "required": [self.argument]}

    def schema(self) -> dict:
        """The OpenAI-style function schema that `apply_chat_template(..., tools=[...])` takes."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def run(self, arguments: dict, timeout: float) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the tool holds (sandboxes); it may be used again after."""


# --------------------------------------------------------------------------- registry

_TOOLS: dict[str, Callable[..., Tool]] = {}


def register_tool(name: str) -> Callable[[type], type]:
    """Class decorator: register a `Tool` subclass under `name` (also its `name`, and its
    `tag` unless it sets one)."""
    def decorate(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Tool)):
            raise TypeError(f"{cls!r} must subclass envs.tools.Tool to be registered")
        if name in _TOOLS and _TOOLS[name] is not cls:
            raise ValueError(f"a tool named {name!r} is already registered ({_TOOLS[name]!r})")
        cls.name = name
        cls.tag = cls.__dict__.get("tag") or name
        _TOOLS[name] = cls
        return cls
    return decorate


def list_tools() -> list[str]:
    return sorted(_TOOLS)


def get_tool(name: str, **options: Any) -> Tool:
    """Build the tool registered as `name`; an unknown name lists the known ones."""
    if name not in _TOOLS:
        raise ValueError(f"unknown tool {name!r}; known tools: {', '.join(list_tools())}")
    return _TOOLS[name](**options)


# --------------------------------------------------------------------------- calling


def _arguments_problem(tool: Tool, arguments: Any) -> str | None:
    """Why these arguments cannot be passed to `tool`, or None."""
    if not isinstance(arguments, dict):
        return f"the arguments of {tool.name} must be an object, got {type(arguments).__name__}"
    props = tool.parameters.get("properties", {})
    missing = [k for k in tool.parameters.get("required", []) if k not in arguments]
    unknown = [k for k in arguments if k not in props]
    if missing or unknown:
        return f"{tool.name} takes {sorted(props)}; missing {missing}, unexpected {unknown[:5]}"
    wrong = [k for k, v in arguments.items() if props[k].get("type") == "string" and not isinstance(v, str)]
    return f"argument(s) {wrong} of {tool.name} must be strings" if wrong else None


def _run_with_deadline(tool: Tool, arguments: dict, timeout: float) -> tuple[str, str]:
    """(status, output) of a tool that does not bound its own time."""
    box: dict = {}

    def target() -> None:
        try:
            box["output"] = tool.run(arguments, timeout)
        except MISUSE as exc:
            box["bug"] = exc
        except (ToolError, *INPUT_ERRORS) as exc:
            box["error"] = exc
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            box["bug"] = exc

    worker = threading.Thread(target=target, daemon=True, name=f"tool-{tool.name}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return "timeout", f"timeout: {tool.name} ran longer than {timeout:g} s"
    if "bug" in box:
        raise box["bug"]
    if "error" in box:
        return _failure(box["error"])
    return "ok", box["output"]


def _failure(exc: BaseException) -> tuple[str, str]:
    """(status, output) of a call that raised one of the errors a model can cause."""
    if isinstance(exc, ToolTimeout):
        return "timeout", f"timeout: {exc}"
    if isinstance(exc, ToolError):
        return "error", f"error: {exc}"
    return "error", f"error: {type(exc).__name__}: {exc}"[:500]


def call_tool(tools: dict[str, Tool], name: str, arguments: Any, timeout: float) -> ToolCall:
    """Run one call the model made; every failure it can cause becomes the returned record."""
    start = time.perf_counter()
    record = ToolCall(name=name, arguments=arguments)
    tool = tools.get(name)
    problem = f"unknown tool {name!r}; tools: {sorted(tools)}" if tool is None else _arguments_problem(tool, arguments)
    if problem:
        record.status, record.output = "bad_call", f"error: {problem}"
    elif tool.bounds_time:
        try:
            record.output = tool.run(arguments, timeout)
        except MISUSE:
            raise
        except (ToolError, *INPUT_ERRORS) as exc:
            record.status, record.output = _failure(exc)
    else:
        record.status, record.output = _run_with_deadline(tool, arguments, timeout)
    if not isinstance(record.output, str):
        raise TypeError(f"tool {name!r} returned {type(record.output).__name__}, not the text the model sees")
    record.seconds = round(time.perf_counter() - start, 6)
    return record
