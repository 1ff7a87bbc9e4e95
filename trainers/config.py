"""One config dataclass per entry point; the CLI and YAML files are generated from it.

Each field's docstring (a string literal right after the field, as in cleanrl/tyro) becomes
its `--help` text; `--field-name value` sets a field; `--config file.yaml` loads a YAML mapping
of field names (command-line flags win over the file). A field's `validate()` rule is the
config class's business: `parse_config` calls `cfg.validate()`, which raises `ConfigError`
naming the field and the rule, before any work starts.
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


class ConfigError(ValueError):
    """A config value breaks a rule; the message names the field."""


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


def _kind(cls: type, f: dataclasses.Field) -> str:
    """`bool`, `int`, `float`, `str`, `optional-int`, ... or `json` for lists and dicts."""
    hint = typing.get_type_hints(cls)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    base = args[0] if optional and len(args) == 1 else hint
    name = {bool: "bool", int: "int", float: "float", str: "str"}.get(base, "json")
    return ("optional-" if optional else "") + name


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a command-line string or YAML value to the field's type, or raise ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise ConfigError(f"unknown config field {name!r}; valid fields: {', '.join(sorted(fields))}")
    kind = _kind(cls, fields[name])
    optional, kind = kind.startswith("optional-"), kind.removeprefix("optional-")
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{name}: may not be null")
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() not in _TRUE | _FALSE:
                raise ValueError("expected true or false")
            return str(value).lower() in _TRUE
        if kind in ("int", "float"):
            if isinstance(value, bool):
                raise ValueError("expected a number")
            number = {"int": int, "float": float}[kind](value)
            if kind == "int" and isinstance(value, float) and value != number:
                raise ValueError("expected an integer")
            return number
        if kind == "str":
            return str(value)
        return json.loads(value) if isinstance(value, str) else value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {value!r} as {kind}: {exc}") from None


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of field: value pairs (flags override it)")
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind = _kind(cls, f)
        help_text = f"{docs.get(f.name, '')} [{kind}, default: {json.dumps(default)}]".replace("%", "%%")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS,
                            metavar=kind.upper().replace("OPTIONAL-", "") if kind != "bool" else "BOOL",
                            help=help_text)
    return parser


def parse_config(cls: type, argv: list[str] | None, prog: str, description: str):
    """Flags and `--config` YAML -> a validated instance of `cls`."""
    args = vars(build_parser(cls, prog, description).parse_args(argv))
    values: dict[str, Any] = {}
    config_path = args.pop("config", None)
    if config_path:
        values.update(load_yaml(cls, Path(config_path)))
    for name, raw in args.items():
        values[name] = coerce(cls, name, raw)
    cfg = cls(**values)
    cfg.validate()
    return cfg


def run_cli(cls: type, train, argv: list[str] | None, prog: str, description: str) -> int:
    """The body of a trainer's `main`: parse and validate the config (exit 2 naming the field on
    a bad value, before any work), then train (bad input found later, `user_errors`, also exits 2
    with one line)."""
    import sys

    try:
        cfg = parse_config(cls, argv, prog, description)
        train(cfg)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input, not a bug: a config value, an environment option, a
    data file or row, a report, a prompt the tokenizer cannot read, a missing path. The CLIs print
    them as one `error:` line and exit 2; anything else keeps its traceback."""
    from data.hub import DataSourceError
    from envs import EnvError
    from evals.report import ReportError
    from trainers.generation import PromptError
    from verifiers import VerifierError

    return ConfigError, DataSourceError, EnvError, ReportError, PromptError, VerifierError, OSError


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
