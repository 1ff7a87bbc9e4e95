"""verifiers/process.py: step splitting, aggregation, arithmetic_steps, and the PRM on a tiny model."""

from __future__ import annotations

import doctest
import math

import pytest

import verifiers.process
from verifiers import Task, VerifierError, get_verifier
from verifiers.process import StepVerifier, check_equation, equations, split_steps

TASK = Task(id="t", prompt="What is 12+34, doubled?")


def test_doctests():
    assert doctest.testmod(verifiers.process).failed == 0


# --------------------------------------------------------------------------- splitting


@pytest.mark.parametrize("completion, separator, texts", [
    ("a\nb\nc", "\n", ["a", "b", "c"]),
    ("  a = 1 \n\n\n b\n", "\n", ["a = 1", "b"]),
    ("p1 line\nstill p1\n\np2", "\n\n", ["p1 line\nstill p1", "p2"]),
    ("step one ки step two ки", "ки", ["step one", "step two"]),
    ("", "\n", []),
    (" \n\t\n", "\n", []),
    ("no separator at all", "\n", ["no separator at all"]),
])
def test_split_steps_texts_and_offsets(completion, separator, texts):
    steps = split_steps(completion, separator)
    assert [s.text for s in steps] == texts
    assert all(completion[s.start:s.end] == s.text for s in steps)
    assert [s.start for s in steps] == sorted(s.start for s in steps)


class Fixed(StepVerifier):
    """Scores given by hand, one per step (None: not a step)."""

    def __init__(self, scores, **options):
        super().__init__(**options)
        self.scores = scores

    def score_steps(self, steps, task):
        return self.scores[:len(steps)]


@pytest.mark.parametrize("aggregate, reward", [
    ("min", 0.5), ("product", 0.9 * 0.5 * 0.8), ("last", 0.8), ("mean", (0.9 + 0.5 + 0.8) / 3),
])
def test_aggregates(aggregate, reward):
    v = Fixed([0.9, 0.5, 0.8], aggregate=aggregate, pass_threshold=0.6)
    verdict = v.verify("a\nb\nc", TASK)
    assert verdict.reward == pytest.approx(reward)
    assert verdict.passed is (reward >= 0.6)
    assert [(s["start"], s["end"], s["text"], s["score"]) for s in verdict.info["steps"]] == [
        (0, 1, "a", 0.9), (2, 3, "b", 0.5), (4, 5, "c", 0.8)]


def test_pieces_scored_none_are_not_steps():
    verdict = Fixed([None, 0.25, None], aggregate="mean").verify("intro\nx\noutro", TASK)
    assert verdict.reward == 0.25 and [s["text"] for s in verdict.info["steps"]] == ["x"]
    empty = Fixed([None]).verify("intro", TASK)
    assert not empty.passed and empty.reward == 0.0 and empty.info["error"] == "no steps to score"


@pytest.mark.parametrize("options, field", [({"aggregate": "max"}, "aggregate"), ({"separator": ""}, "separator")])
def test_bad_options(options, field):
    with pytest.raises(VerifierError, match=field):
        get_verifier("arithmetic_steps", **options)


# --------------------------------------------------------------------------- arithmetic_steps


@pytest.mark.parametrize("text, chains", [
    ("12+34=46", [["12+34", "46"]]),
    ("So 46 * 2 = 92.", [["46 * 2", "92"]]),
    ("a) 1+1 = 2 and b) 2+2 = 5", [["1+1", "2"], ["2+2", "5"]]),
    ("(3 + 4) * 2 = 14", [["(3 + 4) * 2", "14"]]),
    ("(so 3 + 4 = 7)", [["3 + 4", "7"]]),
    ("$3 \\times 4 = 12$", [["3 * 4", "12"]]),
    ("7 − 9 = −2", [["7 - 9", "-2"]]),
    ("2^{3} = 8", []),              # LaTeX braces: not plain arithmetic
    ("x = 5", []),
    ("2x = 10", []),
    ("x - 3 = 7", []),
    ("\\frac{1}{2} = 0.5", []),
    ("12 + 34 =", []),
    ("a == b", []),
    ("The year 2024 was good", []),
])
def test_equations(text, chains):
    assert equations(text) == chains


@pytest.mark.parametrize("sides, holds", [
    (["12+34", "46"], True), (["12+34", "47"], False), (["1/2", "0.5"], True), (["0.1+0.2", "0.3"], True),
    (["1/3", "0.333"], False), (["2**10", "1024"], True), (["-22*5", "-110"], True), (["6/4", "3/2", "1.5"], True),
    (["3/4*2", "3/2"], True), (["7/2", "3"], False), (["1/0", "1"], False), (["2**0.5", "1.4142"], False),
    (["10**100000", "1"], False), (["0**-1", "0"], False), (["1 +", "1"], False), (["((1)", "1"], False),
    (["1e999", "1"], False), (["1e999-1e999", "0"], False),  # overflow to inf: no exact value, no TypeError
])
def test_check_equation_is_exact(sides, holds):
    assert check_equation(sides)[0] is holds


@pytest.mark.parametrize("completion, scores, reward", [
    ("12+34=46\n46*2=92", [1.0, 1.0], 1.0),
    ("12+34=46\n46*2=93", [1.0, 0.0], 0.0),
    ("First add.\n12 + 34 = 46\nThen double: 46 * 2 = 92\nAnswer: 92", [1.0, 1.0], 1.0),
    ("12+34=46, 46*2=90", [0.0], 0.0),       # one wrong equation spoils its step
    ("10/0 = 1\n1+1=2", [0.0, 1.0], 0.0),
    ("no arithmetic here", [], 0.0),
])
def test_arithmetic_steps(completion, scores, reward):
    verdict = get_verifier("arithmetic_steps").verify(completion, TASK)
    assert [s["score"] for s in verdict.info["steps"]] == scores
    assert verdict.reward == reward and verdict.passed is (reward == 1.0)
    for step in verdict.info["steps"]:
        assert completion[step["start"]:step["end"]] == step["text"]


@pytest.mark.parametrize("completion", [
    "2**99999999 = 1", "(" * 500 + "1" + ")" * 500 + " = 1", "9" * 5000 + " = 1", "1+" * 100_000 + "1 = 1",
    "=" * 100_000, "1=1" * 50_000, "\x00\n\ud800 = 1\n" * 100, "(" * 100_000 + "=1", "1e999 = 1e999",
])
def test_hostile_completions_fail_without_raising(completion):
    verdict = get_verifier("arithmetic_steps").verify(completion, TASK)
    assert not verdict.passed or verdict.reward == 1.0  # never raises; bounded time


def test_arithmetic_env_multi_step_demonstrations_are_all_valid_steps():
    from envs import get_env

    env = get_env("arithmetic", style="instruct", multi_step=True, operands=4, operators="+-*/", fractions=True,
                  test_size=30)
    v = get_verifier("arithmetic_steps")
    for task in env.tasks("test"):
        demo = env.demonstration(task)
        good = v.verify(demo, task)
        assert good.passed and len(good.info["steps"]) == 3, (demo, good.info)
        first = demo.splitlines()[0]
        lhs, rhs = first.split(" = ")
        bad = v.verify(demo.replace(first, f"{lhs} = {rhs}1", 1), task)
        assert [s["score"] for s in bad.info["steps"]][0] == 0.0 and not bad.passed


# --------------------------------------------------------------------------- prm

VOCAB = ["[PAD]", "[UNK]", "<s>", "ки", "+", "-", "=", "*", "What", "is", "doubled", "?", "Step", "1", "2", "3",
         ":", "add", "double", "12", "34", "46", "92", "93", "the", "answer", ","]


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory):
    """A randomly initialised 2-layer Llama and a word-level tokenizer, saved locally."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         bos_token_id=2, pad_token_id=0, eos_token_id=None)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("prm")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return str(path), model, fast


SOLUTION = "Step 1 : 12 + 34 = 46\nStep 2 : 46 * 2 = 92\nStep 3 : the answer is 92"


def _reference_scores(model, tokenizer, question: str, steps: list[str]) -> list[float]:
    """The Math-Shepherd model card's recipe, verbatim in substance."""
    import torch

    candidate_tokens = tokenizer.encode("+ -")[1:]   # drop BOS
    step_tag_id = tokenizer.encode("ки")[-1]
    output = "".join(f"{s} ки\n" for s in steps)
    input_id = torch.tensor([tokenizer.encode(f"{question} {output}")])
    with torch.no_grad():
        logits = model(input_id).logits[:, :, candidate_tokens]
    scores = logits.softmax(dim=-1)[:, :, 0]
    return scores[input_id == step_tag_id].tolist()


def test_prm_matches_the_math_shepherd_recipe(tiny_prm):
    path, model, tokenizer = tiny_prm
    verdict = get_verifier("prm", model=path).verify(SOLUTION, TASK)
    expected = _reference_scores(model, tokenizer, TASK.prompt, SOLUTION.split("\n"))
    scores = [s["score"] for s in verdict.info["steps"]]
    assert len(scores) == 3 and scores == pytest.approx(expected, abs=1e-6)
    assert all(0.0 < s < 1.0 for s in scores) and len(set(scores)) == 3
    assert verdict.reward == pytest.approx(min(expected))
    assert [SOLUTION[s["start"]:s["end"]] for s in verdict.info["steps"]] == SOLUTION.split("\n")


def test_prm_equal_label_logits_give_one_half(tiny_prm, tmp_path):
    import torch

    path, model, tokenizer = tiny_prm
    twin = type(model)(model.config)
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():  # the '-' row := the '+' row, so softmax over {+, -} is exactly 1/2
        twin.lm_head.weight[VOCAB.index("-")] = twin.lm_head.weight[VOCAB.index("+")]
    twin.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    verdict = get_verifier("prm", model=str(tmp_path), aggregate="product").verify(SOLUTION, TASK)
    assert [s["score"] for s in verdict.info["steps"]] == [0.5, 0.5, 0.5]
    assert verdict.reward == pytest.approx(0.125) and not verdict.passed  # 0.5**3 < 0.5


def test_prm_is_causal_and_batch_independent(tiny_prm):
    path, _, _ = tiny_prm
    v = get_verifier("prm", model=path, batch_size=2)
    completions = ["Step 1 : 12 + 34 = 46", SOLUTION, "Step 1 : 12 + 34 = 46\nStep 2 : 46 * 2 = 93", ""]
    batch = v.verify_batch(completions, [TASK] * 4)
    single = [v.verify(c, TASK) for c in completions]
    assert [len(b.info["steps"]) for b in batch] == [len(x.info["steps"]) for x in single] == [1, 3, 2, 0]
    assert [s["score"] for b in batch for s in b.info["steps"]] == \
        pytest.approx([s["score"] for x in single for s in x.info["steps"]], abs=1e-5)
    first = [b.info["steps"][0]["score"] for b in batch[:3]]
    assert first == pytest.approx([first[0]] * 3, abs=1e-5)  # later steps do not change earlier scores
    assert batch[3].info["error"] == "no steps to score" and not batch[3].passed


def test_prm_full_vocabulary_probability(tiny_prm):
    import torch

    path, model, tokenizer = tiny_prm
    verdict = get_verifier("prm", model=path, bad_token=None, include_prompt=False).verify("12 + 34 = 46", TASK)
    ids = tokenizer("12 + 34 = 46 ки")["input_ids"]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0, -1].softmax(-1)[VOCAB.index("+")].item()
    assert verdict.info["steps"][0]["score"] == pytest.approx(expected, abs=1e-6)


def test_prm_misuse_and_overlong_input(tiny_prm):
    path, _, _ = tiny_prm
    with pytest.raises(VerifierError, match="good_token"):
        get_verifier("prm", model=path, good_token="+ +").verify("12 = 12", TASK)
    with pytest.raises(VerifierError, match="step_tag"):
        get_verifier("prm", model=path, step_tag="\n")
    verdict = get_verifier("prm", model=path, max_length=8).verify(SOLUTION, TASK)
    assert verdict.info["status"] == "error" and "max_length=8" in verdict.info["error"] and not verdict.passed


def test_prm_keeps_steps_when_only_the_prompt_is_cut(tiny_prm):
    path, _, _ = tiny_prm
    long_task = Task(id="long", prompt=" ".join(["What is 12 + 34 ?"] * 20))
    cut = get_verifier("prm", model=path, max_length=40).verify(SOLUTION, long_task)
    assert cut.info["status"] in ("passed", "failed") and len(cut.info["steps"]) == 3
    assert math.isfinite(cut.reward)
