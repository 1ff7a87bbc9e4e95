"""verifiers/options.py: how option values are read and documented (verifier, environment and trainer options alike)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from verifiers.options import REQUIRED, help_line, kind_of, parse_bool, parse_pairs, parse_value


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("1", True), (" true ", True),
    ("false", False), ("No", False), ("off", False), ("0", False), (True, True), (False, False),
])
def test_parse_bool(text, expected):
    assert parse_bool(text) is expected


@pytest.mark.parametrize("text", ["maybe", "", "2", "truee", "y", None])
def test_parse_bool_refuses_anything_else(text):
    with pytest.raises(ValueError, match="expected true or false"):
        parse_bool(text)


@pytest.mark.parametrize("annotation, expected", [
    ("bool", "bool"), ("int", "int"), ("float | None", "optional-float"), ("str|None", "optional-str"),
    ("dict | list", "json"), ("str | list", "any"), ("list[str]", "json"), ("", "any"), ("Any", "any"),
    (bool, "bool"), (int, "int"), (float | None, "optional-float"), (dict, "json"), (Any, "any"),
    (inspect.Parameter.empty, "any"), (int | str, "any"), (list | None, "optional-json"),
])
def test_kind_of_string_and_real_annotations(annotation, expected):
    assert kind_of(annotation) == expected


@pytest.mark.parametrize("kind, text, expected", [
    ("int", "7", 7), ("float", "1e-3", 1e-3), ("optional-float", "null", None), ("optional-int", "3", 3),
    ("json", '{"a": [1, 2]}', {"a": [1, 2]}), ("any", "plain text", "plain text"), ("any", "[1]", [1]),
    ("str", "x=1", "x=1"), ("json", {"already": "parsed"}, {"already": "parsed"}), ("int", 4.0, 4),
])
def test_parse_value(kind, text, expected):
    assert parse_value(kind, text) == expected


@pytest.mark.parametrize("kind, text, message", [
    ("int", "1.5", "invalid literal"), ("int", 2.5, "expected an integer"), ("float", True, "expected a number"),
    ("json", "[1,", "Expecting"), ("int", None, "may not be null"), ("bool", "maybe", "true or false"),
])
def test_parse_value_errors_say_why(kind, text, message):
    with pytest.raises(ValueError, match=message):
        parse_value(kind, text)


def test_parse_pairs_keeps_equals_signs_in_values_and_names_a_bad_pair():
    assert parse_pairs(["a=1", "pattern=x=y", "empty="]) == {"a": "1", "pattern": "x=y", "empty": ""}
    for bad in ("novalue", "=1"):
        with pytest.raises(ValueError, match=f"--option {bad!r}: expected k=v"):
            parse_pairs(["ok=1", bad])


@pytest.mark.parametrize("text, kind, default, expected", [
    ("learning rate", "float", 3e-4, "learning rate [float, default: 0.0003]"),
    ("cap", "optional-int", None, "cap [int or null, default: null]"),
    ("", "json", REQUIRED, "[json, required]"),
    ("ops", "str", "+-", 'ops [str, default: "+-"]'),
])
def test_help_line_has_one_shape(text, kind, default, expected):
    assert help_line(text, kind, default) == expected


def test_environment_and_trainer_help_use_the_same_shape():
    import envs
    from evals.config_cli import build_parser
    from trainers.grpo import GRPOConfig

    assert envs.env_help("arithmetic")["digits"] == "digits of each integer operand [int, default: 2]"
    text = " ".join(build_parser(GRPOConfig, "grpo", "").format_help().split())
    assert "[int, default: 8]" in text and "[float or null, default: null]" in text
