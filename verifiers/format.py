"""Format rewards: a regex match (`format`), an XML-tag structure (`tags`) and a length
penalty (`length`). Each is a small pure function; the registered verifiers wrap them.

These judge the *shape* of a completion, never its correctness: combine them with a
correctness verifier in a `CompositeVerifier`, usually with a small weight.
"""

from __future__ import annotations

import re
from functools import lru_cache

from verifiers.base import Task, Verdict, VerifierError, register_verifier

THINK_ANSWER = r"<think>.*?</think>\s*<answer>.*?</answer>"


@lru_cache(maxsize=64)
def _compile(pattern: str, dotall: bool) -> re.Pattern:
    try:
        return re.compile(pattern, re.DOTALL if dotall else 0)
    except re.error as exc:
        raise VerifierError(f"option pattern={pattern!r} is not a valid regular expression: {exc}") from None


def format_reward(completion: str, pattern: str = THINK_ANSWER, fullmatch: bool = True, dotall: bool = True) -> float:
    """1.0 when the completion matches `pattern` (surrounding whitespace ignored), else 0.0.

    >>> format_reward("<think>2+2 is 4</think> <answer>4</answer>")
    1.0
    >>> format_reward("<answer>4</answer>")
    0.0
    >>> format_reward("so the answer is 4", pattern=r"answer is \\d+", fullmatch=False)
    1.0
    """
    rx = _compile(pattern, dotall)
    text = completion.strip()
    return 1.0 if (rx.fullmatch(text) if fullmatch else rx.search(text)) else 0.0


def _tag_region(completion: str, tag: str) -> tuple[int, int] | None:
    """Span from the first to the end of the last markup of `tag` (to the end of the text if
    the last markup opens the tag), or None when the tag does not appear."""
    marks = [(m.start(), m.end(), m.group(1)) for m in re.finditer(f"<(/?){re.escape(tag)}>", completion)]
    if not marks:
        return None
    end = len(completion) if marks[-1][2] == "" else marks[-1][1]
    return marks[0][0], end


def tags_reward(completion: str, tags: tuple[str, ...] = ("think", "answer"), partial: bool = True,
                allow_outside: bool = False) -> tuple[float, dict]:
    """Score the structure `<t1>...</t1><t2>...</t2>...`; returns (reward, per-tag detail).

    Each tag earns 1/len(tags) when it opens and closes exactly once, after the previous
    well-formed tag, with no other tag nested inside it. Text outside every tag's region (from
    its first to its last markup) costs the whole reward unless `allow_outside`; a malformed
    tag only loses its own share. With `partial=False` the reward is 1.0 only when every tag
    earns its share.

    >>> tags_reward("<think>a</think>\\n<answer>b</answer>")[0]
    1.0
    >>> tags_reward("<think>a</think>")[0]
    0.5
    >>> tags_reward("<answer>b</answer><think>a</think>")[0]
    0.5
    >>> tags_reward("<think>a</think> <answer>b</answer>", partial=False)[0]
    1.0
    >>> tags_reward("hi <think>a</think><answer>b</answer>")[0]
    0.0
    """
    if not tags:
        raise VerifierError("option tags must name at least one tag")
    detail, last_end = {}, -1
    for tag in tags:
        opens = [m.start() for m in re.finditer(f"<{re.escape(tag)}>", completion)]
        closes = [m.start() for m in re.finditer(f"</{re.escape(tag)}>", completion)]
        ok = len(opens) == 1 and len(closes) == 1 and last_end <= opens[0] < closes[0]
        if ok:
            inner = completion[opens[0] + len(tag) + 2:closes[0]]
            ok = not any(f"<{t}>" in inner or f"</{t}>" in inner for t in tags)
        if ok:
            last_end = closes[0] + len(tag) + 3
        detail[tag] = ok
    if not allow_outside:
        covered = [False] * len(completion)
        for region in filter(None, (_tag_region(completion, t) for t in tags)):
            covered[region[0]:region[1]] = [True] * (region[1] - region[0])
        if "".join(c for c, inside in zip(completion, covered) if not inside).strip():
            return 0.0, {**detail, "outside_text": True}
    share = sum(detail.values()) / len(tags)
    return (share if partial else float(share == 1.0)), detail


def length_penalty(length: int, max_length: int, buffer: int) -> float:
    """DAPO's soft overlong penalty: 0 up to `max_length - buffer`, then falling linearly
    to -1 at `max_length`, and -1 beyond.

    >>> length_penalty(50, max_length=100, buffer=20)
    0.0
    >>> length_penalty(90, max_length=100, buffer=20)
    -0.5
    >>> length_penalty(150, max_length=100, buffer=20)
    -1.0
    """
    if max_length <= 0 or not 0 <= buffer <= max_length:
        raise VerifierError("length penalty needs max_length > 0 and 0 <= buffer <= max_length, "
                            f"got {max_length}, {buffer}")
    free = max_length - buffer
    if length <= free:
        return 0.0
    if length > max_length or buffer == 0:
        return -1.0
    return (free - length) / buffer


def _status(passed: bool) -> str:
    return "passed" if passed else "failed"


@register_verifier("format")
def format_verifier(completion: str, task: Task, *, pattern: str = THINK_ANSWER, fullmatch: bool = True,
                    dotall: bool = True) -> Verdict:
    """Regex format reward: 1.0 when the completion matches `pattern`."""
    reward = format_reward(completion, pattern, fullmatch, dotall)
    return Verdict(reward, reward == 1.0, {"status": _status(reward == 1.0), "pattern": pattern})


@register_verifier("tags")
def tags_verifier(completion: str, task: Task, *, tags: list = ("think", "answer"), partial: bool = True,
                  allow_outside: bool = False) -> Verdict:
    """XML-tag structure reward (<think>…</think><answer>…</answer>), partial credit per tag."""
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise VerifierError(f"option tags must be a list of tag names, got {tags!r}")
    reward, detail = tags_reward(completion, tuple(tags), partial, allow_outside)
    return Verdict(reward, reward == 1.0, {"status": _status(reward == 1.0), "tags": detail})


@register_verifier("length")
def length_verifier(completion: str, task: Task, *, max_length: int = 1024, buffer: int = 256,
                    unit: str = "chars") -> Verdict:
    """Soft overlong penalty (DAPO): 0 when short enough, down to -1 past max_length."""
    units = {"chars": len, "words": lambda s: len(s.split())}
    if unit not in units:
        raise VerifierError(f"option unit={unit!r} is not one of {sorted(units)}")
    n = units[unit](completion)
    reward = length_penalty(n, max_length, buffer)
    return Verdict(reward, reward == 0.0, {"status": _status(reward == 0.0), "length": n, "unit": unit})
