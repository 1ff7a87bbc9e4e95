"""envs/reasoning_gym.py: reasoning-gym's generators as an environment (options, splits, prompts,
gold completions), `python -m envs list`, the lazy import, interop both ways, and the entry
points end to end (a 2-step GRPO run on a byte-level model made here, pass@k on completions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envs import EnvError, as_reasoning_gym_dataset, get_env
from verifiers import as_verl_reward
from verifiers.reasoning_gym import entry_of

ROOT = Path(__file__).resolve().parents[2]


def _env(**options):
    return get_env("reasoning_gym", **{"size": 30, "test_size": 20, "scorer": {"workers": 1}, **options})


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("options, message", [
    ({"dataset": "nope"}, "unknown generator(s) ['nope']; the installed reasoning-gym has"),
    ({"dataset": []}, "option dataset must be a generator name"),
    ({"dataset": ["countdown", "countdown"]}, "names a generator twice"),
    ({"dataset": {"countdown": 0}}, "the weight of 'countdown' must be a positive number"),
    ({"config": {"seed": 3}}, "may not set ['seed']"),
    ({"config": {"bogus": 1}}, "unknown field(s) ['bogus']"),
    ({"config": {"min_numbers": 9, "max_numbers": 2}}, "refused by reasoning-gym"),
    ({"dataset": ["countdown", "leg_counting"], "config": {"sudoku": {}}}, "['sudoku'] are not in the mix"),
    ({"style": "chat"}, "option style='chat'"),
    ({"size": 0}, "option size must be a positive int"),
    ({"seed": -1}, "option seed must be an int in [0, 2**30)"),
    ({"scorer": {"extract": "whole"}}, "option scorer must hold options"),
])
def test_bad_options_name_the_option(options, message):
    with pytest.raises(EnvError) as exc:
        get_env("reasoning_gym", **options)
    assert message in str(exc.value)


def test_a_flawed_scorer_is_warned_about():
    with pytest.warns(RuntimeWarning, match="game_of_life_halting scorer is flawed: bool"):
        get_env("reasoning_gym", dataset="game_of_life_halting")


# --------------------------------------------------------------------------- splits


def test_splits_are_deterministic_and_never_share_a_question():
    a, b = _env(), _env()
    for split in ("train", "test"):
        assert [(t.id, t.prompt, t.answer, t.meta) for t in a.tasks(split)] == \
            [(t.id, t.prompt, t.answer, t.meta) for t in b.tasks(split)]
    test, train = a.tasks("test"), a.tasks("train")
    assert len(test) == 20 and len(train) == 30
    assert len({t.meta["question"] for t in test}) == 20
    assert not {t.meta["question"] for t in test} & {t.meta["question"] for t in train}
    assert test[3].id == "reasoning_gym/countdown/test/3"
    assert [t.meta["question"] for t in _env(seed=7).tasks("test")] != [t.meta["question"] for t in test]


def test_a_small_problem_space_is_deduplicated_across_splits():
    """basic_arithmetic with two one-digit terms has a few hundred questions: the same
    question comes from many seeds, yet none is in both splits and the test split repeats none."""
    env = _env(dataset="basic_arithmetic", size=200, test_size=100,
               config={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    test = [t.meta["question"] for t in env.tasks("test")]
    train = [t.meta["question"] for t in env.tasks("train")]
    assert len(set(test)) == len(test) == 100
    assert len(train) == 200 and len(set(train)) < 200  # train keeps its own repeats
    assert not set(test) & set(train)


def test_a_weighted_mix_draws_from_its_parts_with_their_configs():
    env = _env(dataset={"leg_counting": 3, "spell_backward": 1}, size=200,
               config={"spell_backward": {"min_word_len": 5}})
    tasks = env.tasks("train")
    names = [t.meta["dataset"] for t in tasks]
    assert set(names) == {"leg_counting", "spell_backward"}
    assert names.count("leg_counting") > names.count("spell_backward") > 10
    spell = next(t for t in tasks if t.meta["dataset"] == "spell_backward")
    assert spell.meta["config"]["min_word_len"] == 5 and "seed" in spell.meta["config"]
    verdicts = env.verifier.verify_batch([env.demonstration(t) for t in tasks[:20]], tasks[:20])
    assert all(v.passed for v in verdicts)
    env.close()


def test_tasks_carry_the_entry_as_plain_json_with_tuples_kept():
    task = _env(dataset="arc_1d", size=1, test_size=2).tasks("test")[0]
    assert json.loads(json.dumps(task.to_dict())) == task.to_dict()  # plain JSON
    entry = entry_of(task)
    import reasoning_gym

    original = reasoning_gym.create_dataset("arc_1d", **task.meta["config"])[0]
    assert entry["question"] == original["question"] and entry["answer"] == original["answer"]
    assert entry["metadata"] == original["metadata"]  # tuples come back as tuples


def test_unsolvable_tasks_are_left_out():
    """propositional_logic sometimes gives premises that are all tautologies: nothing passes."""
    from data.reasoning_gym_gold import gold_answer

    env = _env(dataset="propositional_logic", size=100, test_size=100)
    for task in env.tasks("test") + env.tasks("train"):
        assert gold_answer("propositional_logic", entry_of(task)) is not None


# --------------------------------------------------------------------------- prompts and gold


def test_styles_and_demonstrations():
    instruct, bare = _env(), _env(style="bare")
    task_i, task_b = instruct.tasks("test")[0], bare.tasks("test")[0]
    assert task_i.prompt.startswith(task_i.meta["question"])
    assert task_i.prompt.endswith("between <answer> and </answer>.")
    assert task_b.prompt == task_b.meta["question"] + "\nAnswer: "
    assert instruct.demonstration(task_i) == f"<answer>{task_i.answer}</answer>"
    assert bare.demonstration(task_b) == task_b.answer
    for env, task in ((instruct, task_i), (bare, task_b)):
        verdict = env.verifier.verify(env.demonstration(task), task)
        assert verdict.passed and verdict.info["parts"]["format"]["passed"]
        env.close()


def test_few_shot_and_chat_template_rendering():
    env = _env(few_shot=1, system_prompt="Be brief.")
    task = env.tasks("test")[0]
    text = env.render(task)
    assert text.startswith("Be brief.\n\n") and text.endswith(task.prompt) and "</answer>" in text

    class Chat:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return json.dumps(messages)

    messages = json.loads(env.render(task, Chat()))
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == task.prompt


def test_no_answer_generators_get_a_derived_gold():
    from verifiers import get_verifier

    with get_verifier("reasoning_gym", workers=2) as verifier:
        for name in ("rush_hour", "boxnet", "graph_color", "rubiks_cube", "propositional_logic"):
            env = _env(dataset=name, size=1, test_size=3)
            tasks = env.tasks("test")
            assert all(t.answer is None for t in tasks)
            assert all(v.passed for v in verifier.verify_batch([env.demonstration(t) for t in tasks], tasks)), name


# --------------------------------------------------------------------------- interop


def test_verl_reward_scores_reasoning_gym_tasks_as_verl_calls_it():
    env = _env(size=1, test_size=3)
    tasks = env.tasks("test")
    compute_score = as_verl_reward("reasoning_gym")
    # NaiveRewardManager: one response per call, keywords; extra_info as a dataset row would hold it
    row = {"index": 7, "prompt": tasks[0].prompt, **tasks[0].meta, "num_turns": None}
    assert compute_score(data_source="reasoning_gym", solution_str=env.demonstration(tasks[0]),
                         ground_truth=tasks[0].answer, extra_info=row) == {"score": 1.0, "acc": 1.0}
    # BatchRewardManager: lists
    out = compute_score(data_sources=["reasoning_gym"] * 3, solution_strs=["<answer>1</answer>"] * 3,
                        ground_truths=[t.answer for t in tasks], extra_infos=[t.meta for t in tasks])
    assert [o["acc"] for o in out] == [0.0, 0.0, 0.0] and all(0 <= o["score"] < 1 for o in out)


def test_our_environments_as_reasoning_gym_datasets():
    """Their users can score with our math checker and our sandboxed code checker."""
    math = as_reasoning_gym_dataset(get_env("arithmetic", test_size=5), "test")
    assert len(math) == 5 and [e["answer"] for e in math] == [t.answer for t in math.tasks]
    entry = math[0]
    assert entry["question"] == math.tasks[0].prompt and entry["metadata"]["source_dataset"] == "verirl/arithmetic"
    assert math.score_answer(entry["answer"], entry) == 1.0 and math.score_answer("-1", entry) == 0.0
    assert math.score_answer(None, entry) == 0.0
    code_env = get_env("synthetic_code")
    code = as_reasoning_gym_dataset(code_env, "test", size=2)
    entry = code[1]
    assert code.score_answer(code.tasks[1].answer, entry) == 1.0
    assert code.score_answer("__import__('os')._exit(0)", entry) == 0.0
    code_env.close()
    with pytest.raises(EnvError, match="must be a task of this dataset"):
        math.score_answer("1", {"question": "q", "answer": "1", "metadata": {}})


# --------------------------------------------------------------------------- command lines


def _run(args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)


def test_envs_list_shows_options_and_the_generators():
    from data.reasoning_gym_items import generator_names

    proc = _run(["-m", "envs", "list", "reasoning_gym"])
    assert proc.returncode == 0, proc.stderr
    assert "    dataset: a generator name, a list of names (equal weights) or {name: weight}" in proc.stdout
    assert f"{len(generator_names())} generators in the installed reasoning-gym" in proc.stdout
    assert "countdown" in proc.stdout.splitlines()[-1]
    assert "arithmetic:" in _run(["-m", "envs", "list"]).stdout
    bad = _run(["-m", "envs", "list", "nope"])
    assert bad.returncode == 2 and "unknown environment(s) ['nope']" in bad.stderr


@pytest.mark.parametrize("args", [["-m", "trainers.grpo", "--help"], ["-m", "verifiers", "list"],
                                  ["-c", "import envs, verifiers, evals.pass_at_k"]])
def test_reasoning_gym_is_imported_only_on_use(args):
    proc = _run(["-X", "importtime", *args])
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "reasoning_gym" not in imported
    if args[1] != "trainers.grpo":  # where the registries are built, the reasoning_gym modules register
        assert {"verifiers.reasoning_gym", "envs.reasoning_gym"} <= imported or args[1] == "verifiers"


def _byte_level_model(path: Path) -> str:
    """A 2-layer Llama with a byte-level BPE tokenizer (256 byte tokens, no merges): reads any text."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                        padding_side="left")
    assert tokenizer.decode(tokenizer("Résumé: 3 → 4\n")["input_ids"]) == "Résumé: 3 → 4\n"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=4096,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.slow
def test_grpo_trains_two_steps_on_reasoning_gym(tmp_path):
    model = _byte_level_model(tmp_path / "model")
    options = {"dataset": "leg_counting", "size": 8, "test_size": 4, "style": "bare", "scorer": {"workers": 2}}
    out = tmp_path / "run"
    proc = _run(["-m", "trainers.grpo", "--model", model, "--env", "reasoning_gym", "--env-options",
                 json.dumps(options), "--steps", "2", "--prompts-per-step", "2", "--group-size", "2",
                 "--max-new-tokens", "6", "--eval-samples", "2", "--eval-tasks", "2", "--generation-backend", "hf",
                 "--output-dir", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2
    report = json.loads((out / "report.json").read_text())
    assert report["before"]["num_tasks"] == 2 and report["after"]["num_tasks"] == 2


@pytest.mark.slow
def test_the_curriculum_moves_through_reasoning_gyms_levels(tmp_path):
    """The untrained model passes nothing: from level 1 the adaptive curriculum steps down a
    quarter level per step (a window of 2 groups is one step); evaluated at the hardest level."""
    model = _byte_level_model(tmp_path / "model")
    options = {"dataset": "leg_counting", "size": 8, "test_size": 4, "style": "bare", "scorer": {"workers": 2}}
    out = tmp_path / "run"
    proc = _run(["-m", "trainers.grpo", "--model", model, "--env", "reasoning_gym", "--env-options",
                 json.dumps(options), "--steps", "2", "--prompts-per-step", "2", "--group-size", "2",
                 "--max-new-tokens", "6", "--curriculum", "adaptive", "--curriculum-start", "1",
                 "--curriculum-window", "2", "--eval-samples", "2", "--eval-tasks", "2", "--eval-difficulty", "max",
                 "--generation-backend", "hf", "--output-dir", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["difficulty"] for m in metrics] == [1.0, 0.75]
    report = json.loads((out / "report.json").read_text())
    top = get_env("reasoning_gym", **options).difficulty_levels - 1
    assert all(t.startswith(f"reasoning_gym/leg_counting/level{top}/test/") for t in report["after"]["tasks"])


@pytest.mark.slow
def test_pass_at_k_scores_a_completions_file(tmp_path):
    env = _env(dataset="countdown", test_size=4)
    tasks = env.tasks("test")
    # task i: i of its 4 completions are gold, the others empty -> c = 0, 1, 2, 3
    lines = [{"task_id": t.id, "completion": env.demonstration(t) if j < i else "<answer></answer>"}
             for i, t in enumerate(tasks) for j in range(4)]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    options = json.dumps({"dataset": "countdown", "size": 30, "test_size": 4})
    proc = _run([str(ROOT / "evals" / "pass_at_k.py"), "--env", "reasoning_gym", "--env-options", options,
                 "--completions", str(path), "--output-dir", str(tmp_path / "out"), "--progress", "false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # pass@1 = (0 + 1/4 + 2/4 + 3/4) / 4 = 0.375; pass@4 = 3/4
    assert "| 1 | 0.375 |" in proc.stdout and "| 4 | 0.750 |" in proc.stdout
    samples = [json.loads(x) for x in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 16
    env.close()
