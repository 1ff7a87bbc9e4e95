"""The PPO loop: config rules, the critic's shapes and alignment, token rewards with process
steps, every parameter moving in an update, exact resume with the critic, the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import counting_envs  # noqa: F401 - registers test_ppo_twos
import pytest
import torch

from evals.config_cli import ConfigError, field_docs, parse_config
from models.sampler import Sample
from models.tiny import DEFAULT_ALPHABET, TinyConfig, build_model, build_tokenizer
from trainers import checkpoint
from trainers import rollout as ro
from trainers.config import RunConfig
from trainers.critic import build_critic
from trainers.forward import completion_logprobs
from trainers.parallel import DataParallel
from trainers.policy import Policy
from trainers.ppo import PPOConfig, explained_variance, main, ppo_advantages, token_rewards, train, update
from verifiers import Task, Verdict, get_verifier

ROOT = Path(__file__).resolve().parents[2]




def _cfg(tmp_path, model, **kw) -> PPOConfig:
    base = dict(model=model, env="test_ppo_twos", steps=2, prompts_per_step=4, group_size=4, max_new_tokens=4,
                learning_rate=1e-2, critic_learning_rate=1e-2, eval_samples=0, generation_backend="hf",
                output_dir=str(tmp_path / "run"), log_every=1000, max_minutes=0)
    base.update(kw)
    cfg = PPOConfig(**base)
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------- config


def test_defaults_and_every_field_documented():
    cfg = PPOConfig()
    cfg.validate()
    assert (cfg.output_dir, cfg.gamma, cfg.critic, cfg.kl_estimator) == ("runs/ppo", 1.0, "head", "k1")
    docs = field_docs(PPOConfig)
    missing = [f for f in PPOConfig.__dataclass_fields__ if not docs.get(f)]
    assert not missing, missing
    assert set(RunConfig.__dataclass_fields__) < set(PPOConfig.__dataclass_fields__)


@pytest.mark.parametrize("overrides,message", [
    ({"kl_coef": -0.1}, "kl_coef: must be >= 0"),
    ({"kl_estimator": "k4"}, "kl_estimator: 'k4' is not one of 'k1', 'k2', 'k3'"),
    ({"gamma": 1.5}, "gamma: must be in [0, 1]"),
    ({"lam": -0.1}, "lam: must be in [0, 1]"),
    ({"cliprange": 0.0}, "cliprange: must be in (0, 1)"),
    ({"cliprange_value": 0.0}, "cliprange_value: must be > 0"),
    ({"vf_coef": -1.0}, "vf_coef: must be >= 0"),
    ({"ppo_epochs": 0}, "ppo_epochs: must be >= 1"),
    ({"num_minibatches": 3}, "num_minibatches: must divide prompts_per_step * group_size = 256"),
    ({"num_minibatches": 0}, "num_minibatches: must divide"),
    ({"num_minibatches": 4, "minibatch_size": 128}, "minibatch_size: must divide the optimizer minibatch of 64"),
    ({"num_minibatches": 2, "minibatch_size": 96}, "minibatch_size: must divide prompts_per_step"),
    ({"critic": "shared"}, "critic: 'shared' is not one of 'head', 'separate'"),
    ({"critic_model": "/some/path"}, "critic_model: is only used with critic=separate"),
    ({"critic_learning_rate": 0.0}, "critic_learning_rate: must be > 0"),
    ({"group_size": 1}, "group_size: must be >= 2"),  # a RunConfig rule, still enforced
    ({"reward_mode": "steps"}, "reward_mode: 'steps' is not one of"),
])
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as err:
        PPOConfig(**overrides).validate()
    assert message in str(err.value)


def test_cli_and_yaml(tmp_path):
    path = tmp_path / "ppo.yaml"
    path.write_text("critic: separate\nlam: 1.0\nppo_epochs: 3\n")
    cfg = parse_config(PPOConfig, ["--config", str(path), "--ppo-epochs", "4", "--kl-coef", "0.05"], "ppo", "")
    assert (cfg.critic, cfg.lam, cfg.ppo_epochs, cfg.kl_coef) == ("separate", 1.0, 4, 0.05)
    assert main(["--critic", "nope", "--output-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- critic


def _tiny_policy(seed: int = 0):
    tok = build_tokenizer(DEFAULT_ALPHABET + ";")
    torch.manual_seed(seed)
    return build_model(TinyConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2), len(tok)), tok


def _batch(tok, texts: list[str], rewards: list[float], prompts: list[str] | None = None) -> ro.Rollout:
    prompts = prompts or ["12+3="] * len(texts)
    samples = [Sample(t, tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], None, "stop",
                      tok(p)["input_ids"]) for t, p in zip(texts, prompts)]
    tasks = [Task(id=str(i), prompt=p, answer="15") for i, p in enumerate(prompts)]
    verdicts = [Verdict(r, r > 0.5, {}) for r in rewards]
    return ro.collate(tasks, samples, verdicts, pad_id=tok.pad_token_id, mask_truncated=False)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    policy, tok = _tiny_policy()
    path = tmp_path_factory.mktemp("policy")
    policy.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("kind", ["head", "separate"])
def test_critic_shapes_and_logprobs_match_the_policy(kind, policy_dir):
    policy, tok = _tiny_policy()
    batch = _batch(tok, ["15", "1", "150"], [1.0, 0.0, 0.0], prompts=["12+3=", "7+8=", "100+50="])
    critic = build_critic(kind, policy, policy_dir)
    n_own = sum(p.numel() for p in critic.parameters())
    if kind == "head":
        assert n_own == 33  # hidden_size + 1
    else:
        assert n_own > 100 * 33  # a whole trunk
    logp, entropy, values = critic(policy, batch, temperature=0.7, with_entropy=True)
    B, T = batch.completion_mask.shape
    assert logp.shape == entropy.shape == values.shape == (B, T) == (3, 4)
    assert torch.count_nonzero(values) == 0  # a zero-initialised head claims nothing yet
    expected, _ = completion_logprobs(policy, batch, 0.7)
    assert torch.allclose(logp, expected, atol=1e-5)  # the same columns as the GRPO path
    assert values.requires_grad and logp.requires_grad


@pytest.mark.parametrize("kind", ["head", "separate"])
def test_critic_on_shared_prompts_matches_the_plain_forward(kind, policy_dir):
    """Groups of completions under repeated prompts: running each prompt once (its cache copied to
    the rows) gives the plain forward's log-probs, values and gradients (policy, trunk, head)."""
    policy, tok = _tiny_policy()
    critic = build_critic(kind, policy, policy_dir)
    torch.nn.init.normal_(critic.head.weight)
    texts = ["15", "1", "150", "2", "16", "155"]
    batch = _batch(tok, texts, [1.0] * 6, prompts=["12+3="] * 3 + ["100+55="] * 3)
    mask = batch.completion_mask.bool()
    results = {}
    for share in (False, True):
        critic.share_prompts = share
        policy.zero_grad()
        critic.zero_grad()
        logp, _, values = critic(policy, batch, 0.7)
        ((logp + values) * mask).sum().backward()
        grads = [p.grad.clone() for p in [*policy.parameters(), *critic.parameters()] if p.grad is not None]
        results[share] = (logp.detach(), values.detach(), grads)
    (lp0, v0, g0), (lp1, v1, g1) = results[False], results[True]
    assert torch.allclose(lp0[mask], lp1[mask], atol=1e-5) and torch.allclose(v0[mask], v1[mask], atol=1e-5)
    assert len(g0) == len(g1) > 0
    for a, b in zip(g0, g1):
        assert (a - b).norm() <= 1e-5 * a.norm() + 1e-8


@pytest.mark.parametrize("kind", ["head", "separate"])
def test_value_of_token_t_sees_only_the_tokens_before_it(kind, policy_dir):
    # V_t is the value of the state before completion token t: changing token 2 changes V_3
    # (and later) but not V_0 .. V_2.
    policy, tok = _tiny_policy()
    critic = build_critic(kind, policy, policy_dir)
    torch.nn.init.normal_(critic.head.weight)
    a = _batch(tok, ["1234"], [1.0])
    b = _batch(tok, ["1294"], [1.0])
    with torch.no_grad():
        va, vb = critic(policy, a, 1.0)[2], critic(policy, b, 1.0)[2]
    assert torch.allclose(va[0, :3], vb[0, :3], atol=1e-6)
    assert not torch.allclose(va[0, 3:], vb[0, 3:])


def test_unknown_critic_and_separate_without_path():
    policy, _ = _tiny_policy()
    with pytest.raises(ValueError, match="valid choices: \\['head', 'separate'\\]"):
        build_critic("twin", policy)
    with pytest.raises(ValueError, match="needs a model path"):
        build_critic("separate", policy, None)


def test_building_the_critic_leaves_the_callers_rng_alone():
    policy, _ = _tiny_policy()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    build_critic("head", policy)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- rewards and advantages


def test_token_rewards_outcome_process_both_and_kl():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    batch = SimpleNamespace(completion_mask=mask, rewards=torch.tensor([1.0, 0.0]),
                            step_rewards=[[1.0, 0.0], [0.0]], step_ends=[[0, 2], [1]])
    # outcome at the last set token (2 and 3); steps at their ends; both adds them up
    assert token_rewards(PPOConfig(), batch).tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]
    assert token_rewards(PPOConfig(reward_mode="process"), batch).tolist() == [[1, 0, 0, 0], [0, 0, 0, 0]]
    assert token_rewards(PPOConfig(reward_mode="both"), batch).tolist() == [[1, 0, 1, 0], [0, 0, 0, 0]]
    # KL penalty per token, k1 = old - ref: row 1 tokens .5 0 -.5, kl_coef .1 -> -.05 0 +.05 (+1 at the end)
    old = torch.tensor([[-1.0, -1.0, -1.0, 0.0], [-1.0, -1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, 9.0], [-1.0, -1.0, -1.0, -2.0]])
    got = token_rewards(PPOConfig(kl_coef=0.1), batch, old, ref)
    assert torch.allclose(got, torch.tensor([[-0.05, 0.0, 1.05, 0.0], [0.0, 0.0, 0.0, -0.1]]))
    # k3 = exp(ref - old) - (ref - old) - 1 >= 0: for ref - old = -.5, e^-.5 + .5 - 1 = .106531
    got = token_rewards(PPOConfig(kl_coef=1.0, kl_estimator="k3"), batch, old, ref)
    assert got[0, 0].item() == pytest.approx(-0.106531, abs=1e-5)
    assert got[0, 3].item() == 0.0  # padding gets no penalty


def test_wrong_intermediate_step_gets_a_lower_advantage_on_its_tokens():
    """PPO with process supervision: the real step verifier scores "2+3=6" wrong; that step's
    tokens (and those before it) get a lower advantage than in the correct completion, the
    shared correct second step is credited alike, and outcome-only rewards cannot tell them apart."""
    tok = build_tokenizer(DEFAULT_ALPHABET + ";")
    batch = _batch(tok, ["2+3=5;5*2=10", "2+3=6;5*2=10"], [1.0, 1.0], prompts=["(2+3)*2="] * 2)
    ro.add_step_rewards(batch, get_verifier("arithmetic_steps", separator=";", aggregate="min"), tok)
    assert batch.step_rewards == [[1.0, 1.0], [0.0, 1.0]] and batch.step_ends == [[4, 11], [4, 11]]
    mask, values = batch.completion_mask, torch.zeros_like(batch.completion_mask)
    cfg = PPOConfig(reward_mode="process", lam=1.0, whiten_advantages=False)
    adv, returns = ppo_advantages(cfg, token_rewards(cfg, batch), values, mask)
    # gamma = lam = 1, V = 0: a token's advantage is the sum of the rewards at or after it:
    # correct 2 on tokens 0-4 ("2+3=5"), 1 on 5-11; wrong 1 on tokens 0-4, 1 on 5-11; 0 on EOS
    assert adv[0, :5].tolist() == [2.0] * 5 and adv[1, :5].tolist() == [1.0] * 5
    assert torch.equal(adv[0, 5:], adv[1, 5:]) and torch.equal(returns, adv)
    for mode in ("process", "both"):  # with the default lam and whitening the order holds
        cfg = PPOConfig(reward_mode=mode)
        adv, _ = ppo_advantages(cfg, token_rewards(cfg, batch), values, mask)
        assert (adv[1, :5] < adv[0, :5]).all() and torch.allclose(adv[0, 5:], adv[1, 5:])
    cfg = PPOConfig(reward_mode="outcome")
    adv, _ = ppo_advantages(cfg, token_rewards(cfg, batch), values, mask)
    assert torch.equal(adv[0], adv[1])


def test_explained_variance_hand():
    returns = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    mask = torch.ones(1, 4)
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    # Var(returns) = 4 * .25 / 3 = 1/3 (Bessel). V = .5: residuals +-.5, Var 1/3 -> 1 - 1 = 0
    assert explained_variance(torch.full((1, 4), 0.5), returns, mask) == pytest.approx(0.0)
    # V = 1 - returns: residuals 2r - 1 = +-1, Var 4/3 -> 1 - (4/3) / (1/3) = -3
    assert explained_variance(1 - returns, returns, mask) == pytest.approx(-3.0)
    assert explained_variance(returns, torch.zeros(1, 4), mask) == 0.0  # constant returns


# --------------------------------------------------------------------------- updates


@pytest.mark.parametrize("kind", ["head", "separate"])
def test_update_changes_every_trainable_parameter(kind, policy_dir, tmp_path):
    policy, tok = _tiny_policy()
    # 2 epochs x 2 minibatches: the zero-initialised head passes no gradient to a separate trunk
    # in the first step, so that trunk moves from the second step on
    cfg = PPOConfig(critic=kind, learning_rate=1e-2, critic_learning_rate=1e-2, prompts_per_step=2, group_size=2,
                    ppo_epochs=2, num_minibatches=2, output_dir=str(tmp_path))
    trained = Policy(policy, tok, torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate), None)
    critic = build_critic(kind, policy, policy_dir)
    critic_optimizer = torch.optim.AdamW(critic.parameters(), lr=cfg.critic_learning_rate)
    before = {f"policy.{n}": p.detach().clone() for n, p in policy.named_parameters()}
    before.update({f"critic.{n}": p.detach().clone() for n, p in critic.named_parameters()})
    batch = _batch(tok, ["15", "14", "1", "150"], [1.0, 0.0, 0.0, 1.0])
    stats = update(cfg, trained, critic, critic_optimizer, DataParallel(), batch, step=1)
    after = {f"policy.{n}": p for n, p in policy.named_parameters()}
    after.update({f"critic.{n}": p for n, p in critic.named_parameters()})
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert not unchanged, f"parameters that did not move: {unchanged}"
    for key in ("loss", "pg_loss", "vf_loss", "vf_clip_frac", "clip_low", "clip_high", "approx_kl", "entropy",
                "grad_norm", "critic_grad_norm", "value_mean", "return_mean", "explained_variance", "update_s"):
        assert key in stats and torch.isfinite(torch.tensor(stats[key])), key
    # V = 0 at the rollout, so returns are lam-discounted rewards: "15</s>" (reward 1) gets
    # .9025 .95 1, "150</s>" .857375 .9025 .95 1, the others 0; 12 tokens in all
    assert stats["value_mean"] == 0.0
    assert stats["return_mean"] == pytest.approx((0.9025 + 0.95 + 1 + 0.857375 + 0.9025 + 0.95 + 1) / 12)


@pytest.mark.parametrize("epochs,minibatches", [(1, 1), (2, 2)])
def test_minibatch_chunks_accumulate_to_the_same_step(tmp_path, epochs, minibatches):
    """Gradient accumulation over chunks of `minibatch_size` takes the same optimizer steps as
    whole minibatches (the losses are normalised by the minibatch's token count); with (1, 1)
    this also checks the single-pass update (no scoring forward) against the general path."""
    results = []
    for chunk in (0, 1):
        policy, tok = _tiny_policy()
        cfg = PPOConfig(prompts_per_step=2, group_size=2, minibatch_size=chunk, ppo_epochs=epochs,
                        num_minibatches=minibatches, output_dir=str(tmp_path))
        # SGD: Adam's normalisation would blow float noise in near-zero gradients up to lr-sized steps
        trained = Policy(policy, tok, torch.optim.SGD(policy.parameters(), lr=0.1), None)
        critic = build_critic("head", policy)
        start = _flat(policy, critic)
        update(cfg, trained, critic, torch.optim.SGD(critic.parameters(), lr=0.1), DataParallel(),
               _batch(tok, ["15", "14", "1", "150"], [1.0, 0.0, 0.0, 1.0]), step=1)
        results.append(_flat(policy, critic))
        assert not torch.allclose(results[-1], start, atol=1e-4)
    assert torch.allclose(results[0], results[1], atol=1e-6)


def _flat(*modules) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for m in modules for p in m.parameters()])


# --------------------------------------------------------------------------- whole runs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["head", "separate"])
def test_resume_restores_the_critic_and_continues_to_the_same_result(tmp_path, tiny_model_path, kind):
    kw = dict(steps=4, critic=kind, minibatch_size=4, kl_coef=0.05, ppo_epochs=2, num_minibatches=2)
    straight = train(_cfg(tmp_path / "a", tiny_model_path, **kw))
    train(_cfg(tmp_path / "b", tiny_model_path, **{**kw, "steps": 2}))
    state = checkpoint.read(tmp_path / "b" / "run" / "checkpoint-2")
    assert set(state) == {"policy", "critic"} and set(state["critic"]) == {"model", "optim"}
    assert torch.count_nonzero(state["critic"]["model"]["head.weight"]) > 0  # the critic learned
    resumed = train(_cfg(tmp_path / "b", tiny_model_path, **kw, resume=True))
    a, b = _final(straight), _final(resumed)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    ca = checkpoint.read(tmp_path / "a" / "run" / "checkpoint-4")["critic"]["model"]
    cb = checkpoint.read(tmp_path / "b" / "run" / "checkpoint-4")["critic"]["model"]
    for k in ca:
        assert torch.allclose(ca[k], cb[k], atol=1e-6), k


def _final(report) -> dict:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(report["summary"]["final_model"]).state_dict()


@pytest.mark.slow
def test_cli_end_to_end_with_evaluation(tmp_path, tiny_model_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "trainers.ppo", "--model", tiny_model_path, "--steps", "3",
           "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4", "--eval-samples", "2",
           "--eval-tasks", "3", "--generation-backend", "hf", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["algorithm"] == "ppo" and report["summary"]["steps"] == 3
    assert report["before"]["num_tasks"] == 3 and report["after"]["num_tasks"] == 3
    assert "| k | before | after |" in proc.stdout
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3] and all("vf_loss" in m for m in lines)
    assert (out / "config.yaml").read_text().startswith("model: ")
