"""The built-in tiny model: char tokenizer, build + cache, a cached supervised warm start."""

from __future__ import annotations

import json

import pytest
import torch

from models import tiny as tm
from models.backends import make_sampler
from models.hf_sampler import HFSampler


def test_tokenizer_is_one_token_per_character_with_bos():
    tok = tm.build_tokenizer("0123456789+-=")
    ids = tok("12+34=")["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == 7
    assert tok.decode(ids, skip_special_tokens=True) == "12+34="
    assert tok.decode(tok("x9", add_special_tokens=False)["input_ids"]) == "<unk>9"
    assert (tok.pad_token_id, tok.eos_token_id, tok.padding_side) == (0, 2, "left")


@pytest.mark.parametrize("alphabet", ["aa", "a b"])
def test_tokenizer_rejects_bad_alphabets(alphabet):
    with pytest.raises(ValueError, match="distinct non-space"):
        tm.build_tokenizer(alphabet)


def test_model_size_matches_the_calibration(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 0.6e6  # hidden 128, 2 layers, 4 heads, intermediate 512: ~0.53M


def test_warm_start_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("VERIRL_CACHE", str(tmp_path))
    warm = tm.WarmStartConfig(max_steps=4, check_every=2, check_samples=8, batch_size=8, target_accuracy=1.1)
    logs = []
    path = tm.ensure_tiny_model(warm=warm, log=logs.append)
    stats = json.loads((tmp_path / path.split("/")[-1] / "warm_start.json").read_text())
    assert stats["steps"] == 4 and 0.0 <= stats["sampled_accuracy"] <= 1.0
    assert any("warm start step 2" in line for line in logs)
    again = []
    assert tm.ensure_tiny_model(warm=warm, log=again.append) == path and again == []  # no retraining
    other = tm.WarmStartConfig(max_steps=2, check_every=2, check_samples=8, batch_size=8)
    assert tm.ensure_tiny_model(warm=other, log=lambda *_: None) != path  # another recipe, another folder


def test_hf_sampling_is_seeded_and_leaves_the_global_rng_alone(tiny_model_path):
    gen = make_sampler(tiny_model_path, "hf")
    assert isinstance(gen, HFSampler)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = gen.generate(["12+34=", "5-7="], n=3, max_new_tokens=5, seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    b = gen.generate(["12+34=", "5-7="], n=3, max_new_tokens=5, seed=11)
    assert [[s.token_ids for s in g] for g in a] == [[s.token_ids for s in g] for g in b]
    for group in a:
        assert len(group) == 3
        for s in group:
            assert 1 <= len(s.token_ids) <= 5 and s.finish_reason in ("stop", "length")
            assert (s.finish_reason == "stop") == (s.token_ids[-1] == gen.tokenizer.eos_token_id)


def test_make_sampler_rejects_unknown_backends():
    with pytest.raises(ValueError, match="not one of"):
        make_sampler("x", "tgi")


def test_sample_loop_greedy_matches_transformers_generate(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.hf_sampler import hf_sample

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    with torch.no_grad():  # sharpen the random model so greedy paths are not ties
        model.lm_head.weight.mul_(20)
    prompts = ["12+34=", "5-7=", "99+1="]             # different lengths: left padding matters
    ours = [g[0].token_ids for g in hf_sample(model, tok, prompts, n=1, temperature=0, max_new_tokens=6)]
    for prompt, got in zip(prompts, ours):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        ref = model.generate(ids, do_sample=False, max_new_tokens=6, pad_token_id=0)[0, ids.shape[1]:].tolist()
        if tok.eos_token_id in ref:
            ref = ref[:ref.index(tok.eos_token_id) + 1]
        assert got == ref


def test_next_tokens_top_p_keeps_the_smallest_set_with_enough_mass():
    from models.hf_sampler import _next_tokens

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    torch.manual_seed(0)
    # top_p 0.7: {0.5, 0.3} reach 0.8 >= 0.7, renormalised to 0.625 / 0.375
    picks = _next_tokens(logits, 1.0, 0.7)
    assert set(picks.tolist()) == {0, 1}
    assert abs((picks == 0).float().mean().item() - 0.625) < 0.03
    # top_p 0.5: the first token alone has mass 0.5 >= 0.5
    assert set(_next_tokens(logits, 1.0, 0.5).tolist()) == {0}
    # temperature 0 is greedy
    assert _next_tokens(logits[:2], 0.0, 1.0).tolist() == [0, 0]


def test_sample_loop_first_token_frequencies_follow_the_model(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.hf_sampler import hf_sample

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    ids = tok("12+34=")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0, -1] / 0.8, -1)
    samples = hf_sample(model, tok, [ids], n=3000, temperature=0.8, max_new_tokens=1, seed=0)[0]
    counts = torch.bincount(torch.tensor([s.token_ids[0] for s in samples]), minlength=len(probs)).float()
    # total variation distance between empirical and model distribution (sampling noise ~0.03)
    assert 0.5 * (counts / counts.sum() - probs).abs().sum() < 0.06


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 1.0), (1.0, 0.8)])
def test_sampled_log_probs_are_the_trainers_to_float_rounding(tiny_model_path, temperature, top_p):
    """The behaviour log-probs of an off-policy correction: those of the distribution each token
    was drawn from. At top_p 1 they equal the trainer's log-probs of the same tokens (a forward
    over the whole sequence); at top_p < 1 they are the renormalised nucleus's, never below them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.hf_sampler import hf_sample
    from trainers.forward import completion_logprobs
    from trainers.rollout import collate
    from verifiers import Task, Verdict

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    groups = hf_sample(model, tok, ["12+34=", "7-5="], 4, temperature=temperature, top_p=top_p, max_new_tokens=6,
                       seed=3, logprobs=True)
    samples = [s for g in groups for s in g]
    assert all(len(s.logprobs) == len(s.token_ids) for s in samples)
    batch = collate([Task(id="t", prompt="")] * len(samples), samples, [Verdict(0.0, False, {})] * len(samples),
                    tok.pad_token_id, False)
    with torch.no_grad():
        trainer = completion_logprobs(model, batch, temperature)[0]
    mask = batch.completion_mask.bool()
    gap = (batch.gen_logprobs - trainer)[mask]
    if top_p == 1.0:
        assert gap.abs().max() < 1e-4
    else:   # log(p / nucleus mass) >= log p
        assert (gap > -1e-5).all() and gap.max() > 0
    greedy = hf_sample(model, tok, ["1+1="], 1, temperature=0, max_new_tokens=3, logprobs=True)[0][0]
    assert greedy.logprobs == [0.0] * len(greedy.token_ids)   # greedy draws from a one-point distribution
    plain = hf_sample(model, tok, ["12+34=", "7-5="], 4, temperature=temperature, top_p=top_p, max_new_tokens=6,
                      seed=3)
    assert [s.token_ids for g in plain for s in g] == [s.token_ids for s in samples]   # the same draws
    assert all(s.logprobs is None for g in plain for s in g)
