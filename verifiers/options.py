"""How option values are read and documented: verifier, environment and run-config options alike.

Three kinds of options share it:
- verifier options: keyword arguments of a verifier, given as `--option k=v` on the command
  line (`parse_pairs`, then `parse_value` by the parameter's annotation);
- environment options: dataclass fields declared with `envs.option(default, help)`;
- run configs (trainers, the eval harness): dataclass fields read from flags and YAML by
  `evals.config_cli`, with the value parsing and help lines of this module.

Values are read the same way everywhere (`true/false/yes/no/on/off/1/0` for booleans, JSON for
lists and dicts, `none`/`null` for an optional value), and help lines have one shape:
`text [kind, default: value]` (`help_line`). It sits at the bottom of the package order, so
every layer above may use it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from typing import Any

TRUE, FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})
_NAMED = {bool: "bool", int: "int", float: "float", str: "str"}


def parse_bool(value: Any) -> bool:
    """`True`/`False`, or one of the words in TRUE and FALSE (any case); ValueError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in TRUE | FALSE:
        raise ValueError("expected true or false")
    return text in TRUE


def kind_of(annotation: Any) -> str:
    """`bool`, `int`, `float`, `str`, `json` (lists, dicts) or `any`, with an `optional-` prefix
    for `X | None`; from a type or a string annotation (`"float | None"`)."""
    if isinstance(annotation, str):
        parts = [p.strip() for p in annotation.split("|")]
        optional = "None" in parts
        rest = [p for p in parts if p != "None"]
        if len(rest) != 1:  # a union: text that is not JSON stays text only if str is allowed
            kind = "any" if {"str", "Any"} & set(rest) else "json"
        else:
            named = rest[0] if rest[0] in ("bool", "int", "float", "str") else None
            kind = named or ("any" if rest[0] in ("", "Any") else "json")
        return ("optional-" if optional else "") + kind
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    args = typing.get_args(annotation)
    optional = type(None) in args
    rest = [a for a in args if a is not type(None)]
    if args and len(rest) != 1:
        return ("optional-" if optional else "") + ("any" if str in rest else "json")
    base = rest[0] if optional else annotation
    return ("optional-" if optional else "") + _NAMED.get(base, "json")


def parse_value(kind: str, value: Any) -> Any:
    """Read a command-line string (or a YAML value) as `kind` (see `kind_of`); ValueError with
    the reason when it does not fit. `any` keeps text that is not JSON as text."""
    optional, kind = kind.startswith("optional-"), kind.removeprefix("optional-")
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional or kind == "any":
            return None
        raise ValueError("may not be null")
    if kind == "bool":
        return parse_bool(value)
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number = {"int": int, "float": float}[kind](value)
        if kind == "int" and isinstance(value, float) and value != number:
            raise ValueError("expected an integer")
        return number
    if kind == "str":
        return str(value)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if kind == "any":
            return value
        raise


def parse_pairs(pairs: list[str], flag: str = "--option") -> dict[str, str]:
    """`["k=v", ...]` -> `{"k": "v"}` (the value may itself hold `=`); ValueError on a pair
    without `=`, naming it."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r}: expected k=v")
        out[key] = value
    return out


REQUIRED = object()  # `help_line` default of an option without one


def help_line(text: str, kind: str, default: Any) -> str:
    """The help of one option, the same for all three kinds: `text [kind, default: value]`."""
    shown = "required" if default is REQUIRED else f"default: {json.dumps(default, default=str)}"
    kind = kind.removeprefix("optional-") + (" or null" if kind.startswith("optional-") else "")
    return f"{text} [{kind}, {shown}]".lstrip()


def field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default (its factory's value), or REQUIRED when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else REQUIRED
