"""Config dataclass -> CLI / YAML: docs, types, errors that name the field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from evals.config_cli import ConfigError, build_parser, coerce, field_docs, parse_config, require
from trainers.grpo import GRPOConfig


@dataclass
class Base:
    lr: float = 0.1
    """learning rate"""
    name: str = "x"
    """a name"""

    def validate(self):
        require(self.lr > 0, "lr", "must be > 0")


@dataclass
class Child(Base):
    steps: int = 3
    """how many steps"""
    flag: bool = False
    """a switch"""
    cap: float | None = None
    """optional cap"""
    opts: dict = field(default_factory=dict)
    """JSON options"""


def test_field_docs_include_base_classes():
    assert field_docs(Child) == {"lr": "learning rate", "name": "a name", "steps": "how many steps",
                                 "flag": "a switch", "cap": "optional cap", "opts": "JSON options"}


def test_every_grpo_field_is_documented_and_in_help():
    docs = field_docs(GRPOConfig)
    help_text = build_parser(GRPOConfig, "grpo", "").format_help()
    for f in dataclasses.fields(GRPOConfig):
        assert docs.get(f.name), f"field {f.name} has no docstring"
        assert "--" + f.name.replace("_", "-") in help_text


@pytest.mark.parametrize("name, raw, expected", [
    ("steps", "5", 5), ("lr", "1e-3", 1e-3), ("flag", "true", True), ("flag", "0", False),
    ("flag", True, True), ("cap", "none", None), ("cap", "2.5", 2.5), ("opts", '{"a": 1}', {"a": 1}),
    ("opts", {"a": 1}, {"a": 1}), ("name", "abc", "abc"),
])
def test_coerce(name, raw, expected):
    assert coerce(Child, name, raw) == expected


@pytest.mark.parametrize("name, raw, message", [
    ("steps", "five", "steps: cannot read 'five' as int"),
    ("steps", 2.5, "expected an integer"),
    ("flag", "maybe", "flag: cannot read"),
    ("lr", None, "lr: may not be null"),
    ("steps", True, "expected a number"),
    ("opts", "{bad json", "opts: cannot read"),
    ("nope", "1", "unknown config field 'nope'; valid fields: cap, flag, lr, name, opts, steps"),
])
def test_coerce_errors_name_the_field(name, raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")):
        coerce(Child, name, raw)


def test_flags_override_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.5\nsteps: 7\nopts: {k: v}\n")
    cfg = parse_config(Child, ["--config", str(path), "--steps", "9"], "p", "d")
    assert (cfg.lr, cfg.steps, cfg.opts) == (0.5, 9, {"k": "v"})


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        parse_config(Child, ["--config", str(tmp_path / "missing.yaml")], "p", "d")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(Child, ["--config", str(bad)], "p", "d")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("lr: 0.1\nlearning_rat: 3\n")
    with pytest.raises(ConfigError, match="unknown config field 'learning_rat'"):
        parse_config(Child, ["--config", str(unknown)], "p", "d")


def test_validate_runs_before_anything():
    with pytest.raises(ConfigError, match="lr: must be > 0"):
        parse_config(Child, ["--lr", "-1"], "p", "d")


@pytest.mark.parametrize("argv, message", [
    (["--group-size", "1"], "group_size: must be >= 2"),
    (["--prompts-per-step", "3", "--group-size", "4", "--minibatch-size", "5"],
     "minibatch_size: must divide prompts_per_step \\* group_size = 12"),
    (["--loss-type", "ppo"], "loss_type: 'ppo' is not one of"),
    (["--importance-level", "word"], "importance_level"),
    (["--scale-rewards", "max"], "scale_rewards"),
    (["--delta", "1.1", "--clip-eps-high", "0.28"], "delta: must exceed 1 \\+ clip_eps_high = 1.28"),
    (["--loss-type", "reinforce", "--inner-epochs", "2"], "reinforce is on-policy"),
    (["--temperature", "0"], "temperature: must be > 0"),
    (["--generation-backend", "tgi"], "generation_backend"),
    (["--reward-mode", "steps"], "reward_mode"),
    (["--bf16", "true"], "bf16: needs a CUDA device"),
])
def test_grpo_config_rules(argv, message):
    import torch

    if "--bf16" in argv and torch.cuda.is_available():
        pytest.skip("bf16 is valid on a GPU")
    with pytest.raises(ConfigError, match=message):
        parse_config(GRPOConfig, argv, "grpo", "")
