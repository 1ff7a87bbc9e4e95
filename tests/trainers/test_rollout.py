"""Rollout plumbing: batch layout, padding-independent log-probs, the resumable task stream."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from models.hf_sampler import _split_completion
from models.sampler import Sample
from trainers import rollout as ro
from trainers.forward import completion_logprobs
from trainers.task_stream import TaskStream
from verifiers import Task, Verdict


def _sample(prompt, completion, reason="stop", logprobs=None):
    return Sample(text="", token_ids=completion, logprobs=logprobs, finish_reason=reason, prompt_token_ids=prompt)


def _tasks(n):
    return [Task(id=f"t{i}", prompt="p") for i in range(n)]


def test_collate_layout_left_pads_prompts_right_pads_completions():
    samples = [_sample([1, 5], [7, 8, 2]), _sample([1, 5, 6, 9], [7], reason="length")]
    verdicts = [Verdict(1.0, True, {}), Verdict(0.0, False, {})]
    b = ro.collate(_tasks(2), samples, verdicts, pad_id=0, mask_truncated=False)
    # P = 4 (longest prompt), T = 3 (longest completion)
    assert b.prompt_width == 4
    assert b.input_ids.tolist() == [[0, 0, 1, 5, 7, 8, 2], [1, 5, 6, 9, 7, 0, 0]]
    assert b.attention_mask.tolist() == [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]
    assert b.completion_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b.rewards.tolist() == [1.0, 0.0]
    assert b.truncated.tolist() == [False, True]
    assert b.gen_logprobs is None


def test_collate_mask_truncated_zeroes_truncated_rows_only():
    samples = [_sample([1], [4, 2], logprobs=[-0.5, -0.25]), _sample([1], [4, 4], "length", logprobs=[-1.0, -2.0])]
    b = ro.collate(_tasks(2), samples, [Verdict(1.0, True, {})] * 2, pad_id=0, mask_truncated=True)
    assert b.completion_mask.tolist() == [[1, 1], [0, 0]]
    assert b.gen_logprobs.tolist() == [[-0.5, -0.25], [-1.0, -2.0]]


def test_select_keeps_rows_aligned():
    samples = [_sample([1], [i + 3]) for i in range(4)]
    verdicts = [Verdict(float(i), False, {}) for i in range(4)]
    b = ro.collate(_tasks(4), samples, verdicts, pad_id=0, mask_truncated=False).select([3, 1])
    assert b.rewards.tolist() == [3.0, 1.0]
    assert [t.id for t in b.tasks] == ["t3", "t1"]
    assert b.input_ids[:, -1].tolist() == [6, 4]


def test_select_keeps_every_field_step_rewards_included():
    samples = [_sample([1], [i + 3, 2], logprobs=[-0.1 * i, -0.2]) for i in range(3)]
    b = ro.collate(_tasks(3), samples, [Verdict(float(i), True, {}) for i in range(3)], pad_id=0,
                   mask_truncated=False, timings={"generation_s": 1.0})
    b.step_rewards, b.step_ends = [[1.0], [0.0, 1.0], []], [[0], [0, 1], []]
    b.versions = torch.tensor([4, 5, 6])           # as an async worker's batch carries them
    picked = b.select([2, 0])
    assert picked.step_rewards == [[], [1.0]] and picked.step_ends == [[], [0]]
    assert picked.versions.tolist() == [6, 4]
    assert torch.allclose(picked.gen_logprobs, torch.tensor([[-0.2, -0.2], [0.0, -0.2]]))
    assert [s.token_ids for s in picked.samples] == [[5, 2], [3, 2]]
    assert picked.verdicts[0].reward == 2.0 and picked.timings == {"generation_s": 1.0}
    assert picked.prompt_width == b.prompt_width
    for f in dataclasses.fields(b):                  # nothing left at its default
        assert getattr(picked, f.name) is not None, f.name
    assert len(b.select([])) == 0 and b.select([]).step_rewards == []


@pytest.mark.parametrize("infos, expected", [
    ([{}, {}], None),                                                          # no audit: not logged
    ([{"audit": {"agree": True}}, {"audit": {"agree": False}}, {}], 0.5),      # rows without an audit don't count
    ([{"parts": {"math": {"info": {"audit": {"agree": False}}}, "format": {"info": {}}}},
      {"parts": {"math": {"info": {"audit": {"agree": True}}}}}], 0.5),       # inside a composite's part
    ([{"audit": "not a dict"}, {"audit": {"no_agree_key": 1}}], None),         # malformed audits are ignored
    ([{"audit": {"agree": False}}] * 3, 1.0),
])
def test_audit_disagreement_rate(infos, expected):
    samples = [_sample([1], [4, 2]) for _ in infos]
    b = ro.collate(_tasks(len(infos)), samples, [Verdict(1.0, True, i) for i in infos], pad_id=0,
                   mask_truncated=False)
    stats = ro.rollout_stats(b, group_size=1)
    assert stats.get("audit_disagreement_rate") == expected


@pytest.mark.parametrize("ids, eos, expected", [
    ([5, 6, 2, 0, 0], {2}, ([5, 6, 2], "stop")),     # stops at EOS, keeps it, drops the padding after it
    ([5, 6, 7], {2}, ([5, 6, 7], "length")),          # ran out of tokens
    ([5, 0, 7], {2}, ([5, 0, 7], "length")),          # a sampled pad id is a real token
    ([2, 5], {2, 9}, ([2], "stop")),                  # EOS first: empty answer + EOS
    ([5, 9, 2], {2, 9}, ([5, 9], "stop")),            # any of several EOS ids
])
def test_split_completion(ids, eos, expected):
    assert _split_completion(ids, eos) == expected


def test_completion_logprobs_do_not_depend_on_padding(tiny_model_path):
    """Each row's log-probs in a padded batch equal those of the row run alone, unpadded."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    samples = [_sample([1, 5, 6], [7, 8, 2]), _sample([1, 9, 10, 11, 12, 13], [14]), _sample([1], [4, 5, 6])]
    batch = ro.collate(_tasks(3), samples, [Verdict(0.0, False, {})] * 3, pad_id=0, mask_truncated=False)
    with torch.no_grad():
        logp, entropy = completion_logprobs(model, batch, temperature=0.7, with_entropy=True)
        for i, s in enumerate(samples):
            ids = torch.tensor([s.prompt_token_ids + s.token_ids])
            logits = model(ids).logits[0, len(s.prompt_token_ids) - 1:-1] / 0.7
            ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(s.token_ids)[:, None])[:, 0]
            assert torch.allclose(logp[i, :len(s.token_ids)], ref, atol=1e-5)
    assert entropy.shape == logp.shape and (entropy >= 0).all()


def test_task_stream_is_deterministic_and_resumable():
    tasks = _tasks(5)
    a = TaskStream(tasks, seed=3)
    first = [t.id for t in a.take(12)]           # crosses two epoch boundaries
    assert sorted(first[:5]) == sorted(t.id for t in tasks)   # each epoch is a permutation
    assert sorted(first[5:10]) == sorted(t.id for t in tasks)
    b = TaskStream(tasks, seed=3)
    b.take(7)
    assert b.state_dict() == {"position": 7}
    resumed = TaskStream(tasks, seed=3)
    resumed.load_state_dict(b.state_dict())      # as a checkpoint restores it
    assert [t.id for t in resumed.take(5)] == first[7:12]
    assert [t.id for t in TaskStream(tasks, seed=4).take(12)] != first


def test_task_stream_refuses_empty_split():
    with pytest.raises(ValueError, match="empty"):
        TaskStream([], seed=0)


def test_minibatches_cover_every_row_once():
    parts = ro.minibatches(10, 4, torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(sum(parts, [])) == list(range(10))
    assert ro.minibatches(4, 2) == [[0, 1], [2, 3]]


def test_char_to_token_ends_maps_step_offsets_to_tokens(tiny_model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    ids = tok("12+3=15", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    # steps end after "12+3" (char 4) and after "12+3=15" (char 7): tokens 3 and 6 (0-based)
    assert ro.char_to_token_ends(tok, ids, [4, 7]) == [3, 6]
    # an offset past the text lands on the last token
    assert ro.char_to_token_ends(tok, ids, [100]) == [len(ids) - 1]


@pytest.mark.parametrize("prompt, unknown", [
    ("11+61=72\n78+27=", "'\\n'"),                       # few-shot demonstrations joined by newlines
    ("Compute 4 + 8.", "' Cemoptu'"),                    # an instruct prompt: letters and spaces
    ("12+34≠", "'≠'"),
])
def test_prompts_the_tokenizer_cannot_read_are_refused_by_name(prompt, unknown):
    """The tiny tokenizer maps unknown characters to <unk>: sampling from such a prompt would score
    a silent zero, so encoding refuses it and names the characters."""
    from models.sampler import PromptError, encode_prompts
    from models.tiny import build_tokenizer

    tok = build_tokenizer()
    with pytest.raises(PromptError, match=r"prompt 1 .*does not know: " + re.escape(unknown)) as info:
        encode_prompts(tok, ["12+34=", prompt])
    assert info.value.index == 1
    assert str(info.value.for_task("arithmetic/test/7")).startswith("task 'arithmetic/test/7': prompt 1")


def test_readable_prompts_and_token_ids_pass_through():
    from models.sampler import encode_prompts
    from models.tiny import build_tokenizer

    tok = build_tokenizer()
    assert encode_prompts(tok, ["12+34=", [1, 5, 6]]) == [[1] + [tok.convert_tokens_to_ids(c) for c in "12+34="],
                                                          [1, 5, 6]]

    class ByteLevel:  # no unknown token at all (GPT-2 style): never refused
        unk_token_id = None

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": list(text.encode())}

    assert encode_prompts(ByteLevel(), ["a\nb"]) == [[97, 10, 98]]


def test_rollout_names_the_task_whose_prompt_cannot_be_read(tiny_model_path):
    from envs import get_env
    from models.backends import make_sampler
    from models.sampler import PromptError

    env = get_env("arithmetic", few_shot=2)
    sampler = make_sampler(tiny_model_path, "hf")
    tasks = list(env.tasks("test"))[:3]
    with pytest.raises(PromptError, match=r"^task 'arithmetic/test/0': prompt 0 .*'\\n'"):
        ro.generate_and_verify(sampler, env, tasks, 2, temperature=1.0, top_p=1.0, max_new_tokens=2, seed=0)
    env.close()


def _grouped_batch(prompt_lengths, completion_lengths, group_size):
    """Groups of completions under left-padded prompts of different lengths, right-padded."""
    g = torch.Generator().manual_seed(0)
    tasks, samples = [], []
    for i, plen in enumerate(prompt_lengths):
        prompt = [1] + torch.randint(4, 20, (plen - 1,), generator=g).tolist()
        for j in range(group_size):
            n = completion_lengths[(i * group_size + j) % len(completion_lengths)]
            samples.append(_sample(prompt, torch.randint(4, 20, (n,), generator=g).tolist()))
            tasks.append(Task(id=f"t{i}", prompt="p"))
    return ro.collate(tasks, samples, [Verdict(0.0, False, {})] * len(samples), pad_id=0, mask_truncated=False)


@pytest.mark.parametrize("prompt_lengths, completion_lengths, group_size, forwards", [
    ([7, 5, 7, 3], [4, 1, 3, 2, 4], 4, 2),   # groups share a prompt: one prompt forward + one for completions
    ([6, 4], [1], 3, 1),                      # one completion token each: the prompt forward alone scores it
    ([7, 5, 6], [3, 2], 1, 1),                # no prompt repeats: the plain forward
])
def test_shared_prompt_forward_matches_the_plain_forward(tiny_model_path, prompt_lengths, completion_lengths,
                                                         group_size, forwards):
    """Scoring a group's completions on one forward of their prompt gives the plain forward's
    log-probs and gradients on every real completion token."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    model.train()
    calls = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    batch = _grouped_batch(prompt_lengths, completion_lengths, group_size)
    mask = batch.completion_mask.bool()
    results = {}
    for share in (False, True):
        model.zero_grad()
        calls.clear()
        logp, _ = completion_logprobs(model, batch, temperature=0.7, share_prompts=share)
        (logp * mask).sum().backward()
        results[share] = (logp.detach(), [p.grad.clone() for p in model.parameters()], len(calls))
    (plain, plain_grads, n_plain), (shared, shared_grads, n_shared) = results[False], results[True]
    assert n_plain == 1 and n_shared == forwards
    assert torch.allclose(plain[mask], shared[mask], atol=1e-5)
    for a, b in zip(plain_grads, shared_grads):  # float rounding only: ~5e-7 of each gradient's norm
        assert (a - b).norm() <= 1e-5 * a.norm()


def test_shared_prompt_forward_steps_aside_for_gradient_checkpointing(tiny_model_path):
    """Gradient checkpointing turns the KV cache off, so the plain forward runs, once."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    model.gradient_checkpointing_enable()
    model.train()
    calls = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    batch = _grouped_batch([5, 5], [3, 2], 4)
    logp, _ = completion_logprobs(model, batch, temperature=1.0)
    assert len(calls) == 1 and logp.shape == batch.completion_mask.shape and logp.requires_grad


def test_the_verifier_is_told_which_completions_the_token_limit_cut(monkeypatch):
    """Each row's task reaches the verifier with the sampler's finish_reason in its meta, the
    task's own meta kept (a cut-off completion must not yield a fallback answer)."""
    seen = []

    class Recording:
        def verify_batch(self, texts, tasks):
            seen.extend(tasks)
            return [Verdict(0.0, False) for _ in texts]

    groups = [[Sample("so 7", [1], None, "stop", [0]), Sample("so the answer is 1", [2], None, "length", [0])]]
    monkeypatch.setattr(ro, "sample_env", lambda *args, **kwargs: groups)
    task = Task(id="t0", prompt="p", answer="7", meta={"level": 2})
    ro.generate_and_verify(None, dataclasses.make_dataclass("Env", [("verifier", object)])(Recording()), [task], 2,
                           temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0)
    assert [t.meta for t in seen] == [{"level": 2, "finish_reason": "stop"}, {"level": 2, "finish_reason": "length"}]
    assert task.meta == {"level": 2}   # the stream's task is not changed
