"""Format rewards: regex, XML-tag structure with partial credit, DAPO length penalty."""

from __future__ import annotations

import doctest

import pytest

import verifiers.format as fmt
from verifiers import Task, VerifierError, get_verifier

T = Task(id="t", prompt="p")


def test_doctests():
    result = doctest.testmod(fmt)
    assert result.attempted >= 10 and result.failed == 0


@pytest.mark.parametrize("completion, expected", [
    ("<think>a</think><answer>b</answer>", 1.0),
    ("  <think>\nmulti\nline\n</think>\n\n<answer>42</answer>\n", 1.0),   # surrounding whitespace ok
    ("<think>a</think>", 0.0),
    ("<answer>b</answer><think>a</think>", 0.0),                          # wrong order
    ("<think>a</think><answer>b</answer> trailing", 0.0),                 # fullmatch
    ("<THINK>a</THINK><answer>b</answer>", 0.0),                          # case matters
    ("", 0.0),
    ("<think></think><answer></answer>", 1.0),                            # empty bodies still match the shape
])
def test_format_default_pattern(completion, expected):
    v = get_verifier("format").verify(completion, T)
    assert v.reward == expected and v.passed == (expected == 1.0)


def test_format_search_and_bad_pattern():
    assert get_verifier("format", pattern=r"\\boxed\{", fullmatch=False).verify("so \\boxed{3}", T).passed
    with pytest.raises(VerifierError, match="not a valid regular expression"):
        get_verifier("format", pattern="(unclosed").verify("x", T)


@pytest.mark.parametrize("completion, partial, expected", [
    ("<think>a</think><answer>b</answer>", True, 1.0),
    ("<think>a</think>\n<answer>b</answer>\n", True, 1.0),
    ("<think>a</think>", True, 0.5),                                      # one of two tags
    ("<answer>b</answer>", True, 0.5),
    ("<think>a</think>", False, 0.0),                                     # no partial credit
    ("<think>a</think><think>b</think><answer>c</answer>", True, 0.5),    # think twice: no credit for it
    ("<think>a <answer>b</answer></think>", True, 0.5),                   # answer nested inside think
    ("<think>a</think>junk<answer>b</answer>", True, 0.0),                # text between tags
    ("</think>a<think><answer>b</answer>", True, 0.5),                    # close before open
    ("<think>a</think><answer>b", True, 0.5),                             # unclosed answer
    ("no tags at all", True, 0.0),
])
def test_tags(completion, partial, expected):
    v = get_verifier("tags", partial=partial).verify(completion, T)
    assert v.reward == expected
    assert v.passed == (expected == 1.0)


def test_tags_options():
    assert get_verifier("tags", allow_outside=True).verify("hi <think>a</think><answer>b</answer> bye", T).reward == 1.0
    three = get_verifier("tags", tags=["plan", "code", "answer"])
    assert three.verify("<plan>p</plan><code>c</code>", T).reward == pytest.approx(2 / 3)
    with pytest.raises(VerifierError, match="list of tag names"):
        get_verifier("tags", tags="think").verify("x", T)
    with pytest.raises(VerifierError, match="at least one tag"):
        get_verifier("tags", tags=[]).verify("x", T)


@pytest.mark.parametrize("length, expected", [
    (0, 0.0), (80, 0.0),      # at or below max_length - buffer = 80: free
    (81, -0.05),              # (80 - 81) / 20
    (90, -0.5), (100, -1.0),  # linear down to -1 at max_length
    (101, -1.0), (10_000, -1.0),
])
def test_length_penalty(length, expected):
    v = get_verifier("length", max_length=100, buffer=20).verify("x" * length, T)
    assert v.reward == pytest.approx(expected)
    assert v.passed == (expected == 0.0) and v.info["length"] == length


def test_length_words_and_misuse():
    assert get_verifier("length", max_length=3, buffer=1, unit="words").verify("a b c d", T).reward == -1.0
    with pytest.raises(VerifierError, match="unit='tokens' is not one of"):
        get_verifier("length", unit="tokens").verify("x", T)
    with pytest.raises(VerifierError, match="0 <= buffer <= max_length"):
        get_verifier("length", max_length=10, buffer=20).verify("x", T)
