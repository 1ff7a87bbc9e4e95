"""The one option parser: verifier, environment and trainer options are read and documented here.

Three kinds of options share it:
- verifier options: keyword arguments of a verifier, given as `--option k=v` on the command
  line (`parse_pairs`, then `parse_value` by the parameter's annotation);
- environment options: dataclass fields declared with `envs.option(default, help)`;
- run configs (trainers, the eval harness): dataclass fields whose help is the docstring
  literal after the field; `build_parser` turns them into `--field-name` flags and
  `parse_config` reads flags and a `--config` YAML file into a validated instance.

Values are read the same way everywhere (`true/false/yes/no/on/off/1/0` for booleans, JSON for
lists and dicts, `none`/`null` for an optional value), and help lines have one shape:
`text [kind, default: value]` (`help_line`). It sits at the bottom of the package order, so
every layer above may use it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

TRUE, FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})
_NAMED = {bool: "bool", int: "int", float: "float", str: "str"}


class ConfigError(ValueError):
    """A config value breaks a rule; the message names the field."""


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


# --------------------------------------------------------------------------- dataclass configs


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring literal that follows it in the class body (base classes too)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _field_kind(cls: type, f: dataclasses.Field) -> str:
    return kind_of(typing.get_type_hints(cls)[f.name])


def field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default (its factory's value), or REQUIRED when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else REQUIRED


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a command-line string or YAML value to the field's type, or raise ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise ConfigError(f"unknown config field {name!r}; valid fields: {', '.join(sorted(fields))}")
    kind = _field_kind(cls, fields[name])
    try:
        return parse_value(kind, value)
    except (TypeError, ValueError) as exc:
        if str(exc) == "may not be null":
            raise ConfigError(f"{name}: may not be null") from None
        raise ConfigError(f"{name}: cannot read {value!r} as {kind.removeprefix('optional-')}: {exc}") from None


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """`--field-name VALUE` per field (help from `field_docs`), and `--config FILE.yaml`."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of field: value pairs (flags override it)")
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        kind = _field_kind(cls, f)
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS,
                            metavar=kind.removeprefix("optional-").upper(),
                            help=help_line(docs.get(f.name, ""), kind, field_default(f)).replace("%", "%%"))
    return parser


def read_args(cls: type, args: dict[str, Any]):
    """Parsed flags (and the `config` YAML path among them) -> a validated instance of `cls`."""
    values: dict[str, Any] = {}
    config_path = args.pop("config", None)
    if config_path:
        values.update(load_yaml(cls, Path(config_path)))
    for name, raw in args.items():
        values[name] = coerce(cls, name, raw)
    cfg = cls(**values)
    cfg.validate()
    return cfg


def parse_config(cls: type, argv: list[str] | None, prog: str, description: str):
    """Flags and `--config` YAML -> a validated instance of `cls`."""
    return read_args(cls, vars(build_parser(cls, prog, description).parse_args(argv)))


def load_yaml(cls: type, path: Path) -> dict:
    import yaml

    if not path.exists():
        raise ConfigError(f"--config: no such file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of field names to values")
    return {name: coerce(cls, name, value) for name, value in data.items()}


def dump_yaml(cfg) -> str:
    import yaml

    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


def require(ok: bool, field: str, rule: str) -> None:
    """Raise ConfigError(`field: rule`) unless `ok`."""
    if not ok:
        raise ConfigError(f"{field}: {rule}")


def require_choice(value: str, choices, field: str) -> None:
    require(value in choices, field, f"{value!r} is not one of {', '.join(map(repr, choices))}")
