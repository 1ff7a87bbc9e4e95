"""The command line of a dataclass config, shared by the entry points: the evaluation
(`evals/pass_at_k.py`, `EvalConfig`) and the trainers (`RunConfig` and its subclasses).

A config is one dataclass: each field's docstring (the string literal after it) becomes its
`--help` text, `--field-name value` sets it and `--config file.yaml` loads a YAML mapping of
fields (flags win); values are read by the field's annotation with `verifiers.options`
(`parse_value`, `help_line`), so flags, environment options and verifier options read and
document values alike. `cfg.validate()` raises `ConfigError` naming the field and the rule
(`require`, `require_choice`) before any work starts.

`user_errors()` lists the exceptions that mean bad input rather than a bug; the entry points
print them as one `error:` line and exit with status 2.

It lives in `evals`, the lowest layer with an entry point: the trainers stand on it, and
`verifiers` keeps only the value parsing that verifier and environment options need.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

from verifiers.options import field_default, help_line, kind_of, parse_value


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


def _field_kind(cls: type, f: dataclasses.Field) -> str:
    return kind_of(typing.get_type_hints(cls)[f.name])



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


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input, not a bug: a config value, an environment option, a
    data file or row, a report, a prompt the tokenizer cannot read, a verifier misused (one that
    needs bubblewrap where it is missing, say), a missing path or system package. The entry
    points print them as one `error:` line and exit 2; anything else keeps its traceback."""
    from data.hub import DataSourceError
    from envs import EnvError
    from evals.report import ReportError
    from models.sampler import PromptError
    from verifiers import VerifierError

    return ConfigError, DataSourceError, EnvError, ReportError, PromptError, VerifierError, OSError
