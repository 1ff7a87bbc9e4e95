"""models/hf_sampler.py stop strings and models/episodes.py: a sampler as the episode loop's
policy, and an episode as the trainers' sample (its action mask)."""

from __future__ import annotations

import pytest
import torch

from envs import get_env
from envs.multiturn import OBSERVATION, Context
from models.episodes import SamplerPolicy, _run_length, episode_sample, play_episodes
from models.hf_sampler import HFSampler, hf_sample
from models.sampler import Sample
from models.tiny import TinyConfig, build_model, build_tokenizer
from verifiers import Task


@pytest.fixture(scope="module")
def env():
    return get_env("calculator", train_size=50, test_size=20)


@pytest.fixture(scope="module")
def calc_model(env):
    """An untrained tiny model whose vocabulary covers the tool syntax."""
    tokenizer = build_tokenizer(env.alphabet)
    model = build_model(TinyConfig(alphabet=env.alphabet, max_position_embeddings=128), len(tokenizer))
    return model.eval(), tokenizer


def first_stop(tokenizer, row: list[int], stop: str) -> int | None:
    """Reference: the index of the token whose decoding first completes `stop` (decoding every prefix)."""
    return next((i for i in range(len(row)) if stop in tokenizer.decode(row[:i + 1])), None)


def test_hf_stop_strings_end_a_row_at_the_token_that_completes_them(calc_model):
    model, tokenizer = calc_model
    prompts = ["123*45=", "9=", "<calc>1+1</calc><result>2</result>", "777*77-1="]
    free = hf_sample(model, tokenizer, prompts, 1, temperature=0, max_new_tokens=24)
    text0 = free[0][0].text
    assert len(text0) >= 6, "the greedy reference row is too short to pick a stop string from"
    # One stop string that the first row meets mid-way, one that no row can write (its characters
    # are not in the vocabulary), and the tool's closing tag.
    stops = [text0[3:5], "</calc>", "#!"]
    stopped = hf_sample(model, tokenizer, prompts, 1, temperature=0, max_new_tokens=24, stop=stops)
    for before, (after,) in zip(free, stopped):
        row = before[0].token_ids
        cuts = [i for i in (first_stop(tokenizer, row, s) for s in stops) if i is not None]
        eos = row[-1] == tokenizer.eos_token_id and before[0].finish_reason == "stop"
        if cuts and (not eos or min(cuts) < len(row) - 1):
            assert after.token_ids == row[:min(cuts) + 1] and after.finish_reason == "stop"
            assert any(s in after.text for s in stops)
        else:  # never met: the row is the unstopped one, EOS or length as before
            assert (after.token_ids, after.finish_reason) == (row, before[0].finish_reason)
    assert stopped[0][0].text.endswith(text0[3:5])   # the row the stop string was taken from did stop


def test_hf_stop_strings_with_repeats_and_sampling_keep_rows_apart(calc_model):
    model, tokenizer = calc_model
    stop = ["1", "2"]
    groups = hf_sample(model, tokenizer, ["12*3=", "4="], 6, temperature=1.0, max_new_tokens=16, stop=stop, seed=3)
    for group in groups:
        for s in group:
            cut = [first_stop(tokenizer, s.token_ids, x) for x in stop]
            cut = [c for c in cut if c is not None]
            if s.finish_reason == "stop" and s.token_ids[-1] != tokenizer.eos_token_id:
                assert cut and min(cut) == len(s.token_ids) - 1   # ends exactly at its first stop string
            else:
                assert not cut                                    # no stop string inside a row that ran on


class ScriptedGenerator:
    """A generator that plays the calculator correctly except on tasks whose second digit is odd, where
    it first writes a call the tool cannot evaluate. Records each generate call."""

    def __init__(self, tokenizer, answers: dict[str, tuple[str, str]]):
        self.tokenizer, self.answers, self.calls = tokenizer, answers, []

    def generate(self, prompts, n, *, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=None, stop=None,
                 seeds=None):
        self.calls.append({"prompts": len(prompts), "n": n, "stop": stop, "max_new_tokens": max_new_tokens})
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            prompt = text.split("=")[0] + "="
            expression, answer = self.answers[prompt]
            if text.endswith("="):
                reply, eos = (f"<calc>{expression}</calc>", [])
            elif text.count("<result>") == 1 and int(prompt[1]) % 2:
                reply, eos = ("<calc>1+*2</calc>", [])
            else:
                reply, eos = (answer, [self.tokenizer.eos_token_id])
            tokens = self.tokenizer(reply, add_special_tokens=False)["input_ids"] + eos
            out.append([Sample(reply, tokens, [-0.5] * len(tokens), "stop", list(ids)) for _ in range(n)])
        return out


@pytest.fixture
def scripted(env, calc_model):
    tasks = env.tasks("test")[:3]
    return ScriptedGenerator(calc_model[1], {t.prompt: (t.meta["expression"], t.answer) for t in tasks}), tasks


def test_play_episodes_samples_first_turns_once_per_group_and_stops_at_the_tag(env, scripted):
    generator, tasks = scripted
    groups = play_episodes(generator, env, tasks, 2, max_new_tokens=30, seed=0)
    assert generator.calls[0]["prompts"] == 3 and generator.calls[0]["n"] == 2   # prompt shared by the group
    assert all(c["stop"] == ("</calc>",) for c in generator.calls)
    assert {int(t.prompt[1]) % 2 for t in tasks} == {0, 1}, "the tasks should mix one- and two-call episodes"
    for task, group in zip(tasks, groups):
        for episode in group:
            assert episode.final_text == task.answer and episode.end == "answer"
            expected_calls = 2 if int(task.prompt[1]) % 2 else 1
            assert len(episode.tool_calls) == expected_calls and episode.num_turns == expected_calls + 1


def test_episode_sample_masks_exactly_the_observation_tokens(env, scripted):
    generator, tasks = scripted
    tokenizer = generator.tokenizer
    for episode in [e for g in play_episodes(generator, env, tasks, 1, max_new_tokens=30) for e in g]:
        sample = episode_sample(episode)
        assert sample.prompt_token_ids + sample.token_ids == episode.token_ids
        assert len(sample.action_mask) == len(sample.token_ids) == len(sample.logprobs)
        observed = [t for s in episode.segments if s.kind == OBSERVATION for t in s.token_ids]
        assert [t for t, m in zip(sample.token_ids, sample.action_mask) if not m] == observed
        assert all(lp == 0.0 for lp, m in zip(sample.logprobs, sample.action_mask) if not m)
        assert all(lp == -0.5 for lp, m in zip(sample.logprobs, sample.action_mask) if m)
        masked_text = tokenizer.decode([t for t, m in zip(sample.token_ids, sample.action_mask) if not m])
        assert masked_text.startswith("<result>") and masked_text.endswith("</result>")
        assert sample.finish_reason == "stop" and sample.episode is episode


def test_a_turn_is_cut_at_the_episode_budget_and_reported_as_length(env, calc_model):
    tokenizer = calc_model[1]

    class Fixed:
        def __init__(self):
            self.tokenizer = tokenizer

        def generate(self, prompts, n, **kw):
            ids = tokenizer("1234567890", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            return [[Sample("1234567890", ids, None, "stop", p) for _ in range(n)] for p in prompts]

    policy = SamplerPolicy(Fixed(), max_new_tokens=8)
    task = Task(id="t", prompt="1=", answer="1")
    contexts = [Context(task, "1=", [1, 5, 17], cap, ("</calc>",), 0) for cap in (None, 4, 20)]
    turns = policy(contexts)
    assert [len(t.token_ids) for t in turns] == [8, 4, 8]
    assert [t.finish_reason for t in turns] == ["length"] * 3
    assert [t.text for t in turns] == ["12345678", "1234", "12345678"]


@pytest.mark.parametrize("inputs, k", [
    ([[1], [1], [2], [2]], 2), ([[1], [1], [1], [1]], 4), ([[1], [2], [1], [2]], 1),
    ([[1], [1], [2]], 1), (["a"], 1), ([[1], [1], [2], [2], [2], [2]], 2), ([[1], [1], [2], [2], [2]], 1),
])
def test_run_length_finds_groups_only_when_every_run_is_equal(inputs, k):
    assert _run_length(inputs) == k


def test_hf_generator_passes_stop_strings(calc_model):
    model, tokenizer = calc_model
    gen = HFSampler(model, tokenizer)
    free = gen.generate(["12*3="], 1, temperature=0, max_new_tokens=12)[0][0]
    assert free.text, "the greedy row is empty"
    stop = free.text[:1]
    out = gen.generate(["12*3="], 1, temperature=0, max_new_tokens=12, stop=[stop])[0][0]
    assert out.text == stop and out.finish_reason == "stop" and out.token_ids == free.token_ids[:1]
    assert torch.is_grad_enabled()


def test_the_calculator_tiny_model_reads_the_tool_syntax_under_its_own_cache_key(env):
    from dataclasses import asdict

    from models.tiny import DEFAULT_ALPHABET, WarmStartConfig, _digest, tiny_configs

    assert tiny_configs("arithmetic") == (TinyConfig(), WarmStartConfig())   # the default's cache is untouched
    assert tiny_configs(None) == (TinyConfig(), WarmStartConfig())
    model, warm = tiny_configs("calculator")
    assert model.alphabet.startswith(DEFAULT_ALPHABET) and set(env.alphabet) <= set(model.alphabet)
    assert warm.env == "calculator" and _digest(asdict(model)) != _digest(asdict(TinyConfig()))
    tokenizer = build_tokenizer(model.alphabet)
    demo = env.demonstration_episode(env.tasks("test")[0])
    assert tokenizer.unk_token_id not in tokenizer(demo.text)["input_ids"]


def test_warm_start_labels_are_the_model_turns_only(env, calc_model):
    from models.tiny import _encode_episodes

    tokenizer = calc_model[1]
    tasks = env.tasks("test")[:2]
    ids, attention, labels = _encode_episodes(tokenizer, [env.demonstration_episode(t) for t in tasks])
    for row, task in enumerate(tasks):
        learned = tokenizer.decode([t for t in labels[row].tolist() if t != -100], skip_special_tokens=False)
        assert learned == f"<calc>{task.meta['expression']}</calc>{task.answer}</s>"
        shown = tokenizer.decode(ids[row][attention[row].bool()].tolist(), skip_special_tokens=True)
        assert shown == env.demonstration_episode(task).text


class SeedRecorder(ScriptedGenerator):
    """The scripted calculator player, recording (prompt text, seed) of every sample it draws."""

    def __init__(self, tokenizer, answers):
        super().__init__(tokenizer, answers)
        self.drawn: list[tuple[str, int | None]] = []

    def generate(self, prompts, n, *, seeds=None, **kw):
        self.drawn += [(self.tokenizer.decode(ids, skip_special_tokens=True), None if seeds is None else seeds[i] + k)
                       for i, ids in enumerate(prompts) for k in range(n)]
        return super().generate(prompts, n, **kw)


def test_episodes_seeds_are_per_episode_and_turn_whatever_the_batch(env, calc_model):
    from models.episodes import ROUND_SEED_STRIDE

    tasks = env.tasks("test")[:4]
    answers = {t.prompt: (t.meta["expression"], t.answer) for t in tasks}
    together = SeedRecorder(calc_model[1], answers)
    play_episodes(together, env, tasks, 2, max_new_tokens=30, seeds=[100, 200, 300, 400])
    assert together.calls[0]["prompts"] == 4 and together.calls[0]["n"] == 2   # the first turn still shared
    for i, task in enumerate(tasks):
        alone = SeedRecorder(calc_model[1], answers)
        play_episodes(alone, env, [task], 2, max_new_tokens=30, seeds=[100 * (i + 1)])
        assert sorted(d for d in together.drawn if d[0].startswith(task.prompt)) == sorted(alone.drawn)
        # turn t of episode k: seeds[i] + k + t * stride; 2 or 3 turns (one or two tool calls) each
        by_turn = sorted((text.count("<result>"), seed) for text, seed in alone.drawn)
        turns = 3 if int(task.prompt[1]) % 2 else 2
        assert by_turn == [(t, 100 * (i + 1) + k + t * ROUND_SEED_STRIDE) for t in range(turns) for k in range(2)]


def test_hf_episodes_are_the_same_alone_and_batched(env, calc_model):
    model, tokenizer = calc_model
    gen = HFSampler(model, tokenizer)
    tasks, seeds = env.tasks("test")[:3], [7, 2**40, 123456]
    together = play_episodes(gen, env, tasks, 3, max_new_tokens=12, seeds=seeds)
    for task, seed, group in zip(tasks, seeds, together):
        alone = play_episodes(gen, env, [task], 3, max_new_tokens=12, seeds=[seed])[0]
        assert [e.token_ids for e in alone] == [e.token_ids for e in group]
    assert len({tuple(e.token_ids) for g in together for e in g}) > 3   # sampled, not one fixed reply


def test_play_episodes_wants_one_seed_per_task(env, calc_model):
    with pytest.raises(ValueError, match="seeds: 1 seeds for 2 tasks"):
        play_episodes(HFSampler(*calc_model), env, env.tasks("test")[:2], 2, seeds=[1])
