"""`--objective pass@K` in the trainers: refused where it cannot work, GRPO with dynamic sampling
and PPO's outcome rewards (the estimator itself: tests/trainers/test_core_objective.py)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from envs.base import Environment, register_env
from evals.config_cli import ConfigError
from models.sampler import Sample
from trainers import rollout as ro
from trainers.core import pass_at_k_advantages
from verifiers import Task, Verdict, Verifier

ROOT = Path(__file__).resolve().parents[2]


class SevensVerifier(Verifier):
    """Passes (1) when most characters are '7', else 0; `graded`: the share of sevens instead."""

    name = "sevens"

    def __init__(self, graded: bool = False):
        self.graded = graded

    def verify(self, completion: str, task: Task) -> Verdict:
        share = completion.count("7") / max(len(completion), 1)
        reward = share if self.graded else float(share > 0.5)
        return Verdict(reward, share > 0.5, {"status": "passed" if share > 0.5 else "failed"})


@register_env("test_sevens")
class SevensEnv(Environment):
    """Test environment whose untrained-model rewards already vary: emit sevens."""

    graded: bool = False

    def load_tasks(self, split):
        return [Task(id=f"{split}/{i}", prompt=f"{i}+{i}=") for i in range(10, 40)]

    def correctness_verifier(self):
        return SevensVerifier(self.graded)


def _kw(tmp_path, model, **kw) -> dict:
    return {**dict(model=model, env="test_sevens", steps=2, prompts_per_step=4, group_size=4, max_new_tokens=4,
                   learning_rate=1e-2, eval_samples=0, generation_backend="hf", output_dir=str(tmp_path / "run"),
                   log_every=1000, max_minutes=0, temperature=1.5), **kw}


REFUSALS = [
    (["--objective", "pass@8"], "objective: pass@8 needs K < group_size, got K = 8 and group_size = 8"),
    (["--objective", "pass@3", "--group-size", "2"], "got K = 3 and group_size = 2"),
    (["--objective", "best@4"], "objective: unknown objective 'best@4'; expected pass@K with K >= 1"),
    (["--objective", "pass@2", "--reward-mode", "process"], "pass@2 transforms outcome rewards"),
]
TRAINERS = ("trainers.grpo", "trainers.ppo")


@pytest.mark.parametrize("trainer", TRAINERS)
def test_the_command_refuses_an_objective_that_cannot_work_with_one_line_before_work(tmp_path, trainer):
    """End to end through the command, one refusal; the others go through the same `main` below."""
    args, message = REFUSALS[0]
    proc = subprocess.run([sys.executable, "-m", trainer, *args, "--output-dir", str(tmp_path / "x")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("args, message", REFUSALS)
def test_an_objective_that_cannot_work_is_refused_before_work(tmp_path, capsys, trainer, args, message):
    """`main` is what `python -m TRAINER` runs: the same exit status, line and empty folder."""
    main = importlib.import_module(trainer).main
    assert main([*args, "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err[-2000:]
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_grpo_with_pass_at_k_and_dynamic_sampling(tmp_path, tiny_model_path):
    from trainers.grpo import GRPOConfig, train

    cfg = GRPOConfig(**_kw(tmp_path, tiny_model_path, objective="pass@2", dynamic_sampling=True))
    cfg.validate()
    report = train(cfg)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert report["summary"]["steps"] == 2 and all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics)
    assert all(0 <= m["groups"] <= 4 for m in metrics)


@pytest.mark.slow
def test_pass_at_k_refuses_graded_rewards_with_one_line(tmp_path, tiny_model_path):
    from trainers.grpo import GRPOConfig, train

    cfg = GRPOConfig(**_kw(tmp_path, tiny_model_path, objective="pass@2", env_options={"graded": True}, steps=1))
    cfg.validate()
    with pytest.raises(ConfigError, match=r"objective: the pass@2 objective needs binary rewards \(0 or 1\), got 0."):
        train(cfg)


def test_ppo_takes_each_samples_baselined_share_as_its_outcome_reward():
    from models.tiny import DEFAULT_ALPHABET, build_tokenizer
    from trainers.ppo import PPOConfig, token_rewards

    tok = build_tokenizer(DEFAULT_ALPHABET)
    texts = ["7", "77", "1", "12", "7", "1", "2", "3"]
    rewards = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    samples = [Sample(t, tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], None, "stop",
                      tok("1+1=")["input_ids"]) for t in texts]
    task = Task(id="t", prompt="1+1=")
    batch = ro.collate([task] * 8, samples, [Verdict(r, r == 1, {}) for r in rewards], pad_id=tok.pad_token_id,
                       mask_truncated=False)
    placed = token_rewards(PPOConfig(group_size=4, objective="pass@2"), batch)
    # group 1: c = 2 of 4 -> +-1/4 (tests/trainers/test_core_objective.py: w = 1/2 of r - mean = +-1/2);
    # group 2: c = 1 of 4 -> w = 1: 3/4 and -1/4; each at the row's last completion token (its EOS)
    expected = pass_at_k_advantages(torch.tensor(rewards), 4, "none", k=2)
    torch.testing.assert_close(expected, torch.tensor([0.25, 0.25, -0.25, -0.25, 0.75, -0.25, -0.25, -0.25]))
    last = batch.completion_mask.sum(1).long() - 1
    torch.testing.assert_close(placed[torch.arange(8), last], expected)
    assert placed.sum() == pytest.approx(float(expected.sum()))          # nothing anywhere else
    plain = token_rewards(PPOConfig(group_size=4), batch)
    torch.testing.assert_close(plain[torch.arange(8), last], torch.tensor(rewards))   # pass@1: the rewards


@pytest.mark.slow
def test_ppo_trains_with_pass_at_k(tmp_path, tiny_model_path):
    from trainers.ppo import PPOConfig, train

    cfg = PPOConfig(**_kw(tmp_path, tiny_model_path, objective="pass@2", critic_learning_rate=1e-2))
    cfg.validate()
    assert train(cfg)["summary"]["steps"] == 2
