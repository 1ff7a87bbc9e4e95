"""Tools a model can call during an episode (`calculator`, `python`), the contract they
share (`envs.tools.base`) and the two ways calls are written (`envs.tools.syntax`)."""

from envs.tools.base import (
    INPUT_ERRORS,
    STATUSES,
    Tool,
    ToolCall,
    ToolError,
    ToolTimeout,
    call_tool,
    get_tool,
    list_tools,
    register_tool,
)
from envs.tools.calculator_tool import Calculator
from envs.tools.python_tool import Python
from envs.tools.syntax import ChatSyntax, ParsedCall, PlainSyntax, parse_hermes

__all__ = ["INPUT_ERRORS", "STATUSES", "Calculator", "ChatSyntax", "ParsedCall", "PlainSyntax", "Python", "Tool",
           "ToolCall", "ToolError", "ToolTimeout", "call_tool", "get_tool", "list_tools", "parse_hermes",
           "register_tool"]
