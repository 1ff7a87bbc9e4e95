"""The fallback of the `math` verifier: an answer read from how a completion ends, when it has
no answer marker (no `<answer>`, box, `####` or "the answer is"). Pure standard library.

How models end an answer without a marker, and what the fallback takes (`unmarked_answer`):

* a plain concluding statement: "so she has 18 apples." -> 18; "Therefore x = 7." -> 7 (the
  last number, or the last math span `$...$` when no number follows it);
* a verification after the answer: "x = 7. Check: 3(7) - 4 = 17 ✓" -> 7. A check is a
  sentence that says so ("Check:", "Let's verify", "Verification:", "Double-check", "to
  confirm", "substituting back", "plugging into the original") or a computation marked with
  a tick; its numbers are the problem's and the answer's, recomputed, so the fallback reads
  the text before the first check that follows a stated value (cut at the check's word: "So
  x = 7 (check: ...)" keeps its 7). "Substituting y = 3 into the first equation" solves, and
  is no check. A conclusion after the check wins ("Let me recheck: 2 + 4 = 6, not 5.
  So the total should be 6." -> 6): a sentence that starts "So", "Thus", "Therefore", "Hence",
  "Yes", ... and states a value rather than computing one;
* a hedge that lists alternatives: "either 3 or 4", "could be 2, 3, 5, or 7", "might be 10 or
  12", "It is 12, but it could also be 15", "Maybe 5? Or 6." (a hedge word, "or" or "also",
  two values or more in the final sentence, or in the two when the last starts with "Or")
  -> no answer, even when one item is right. Alternatives without a hedge word state a set
  of solutions: "so x = 2 or x = 3." -> the list `2, 3`, which a single gold never equals.
  One value with a hedge word ("It is probably 5.", "either the red or the blue ball, so 6")
  is still that value;
* an unfinished computation: "Then 9 × 2" -> no answer (the last number is an operand; a
  bullet's dash, "\\n- 42", is none);
* a completion cut off mid-sentence -> no answer. With `finish_reason="length"` (the sampler
  cut it) nothing unmarked counts; with "stop" the text is taken as complete; when it is not
  known (None) the text decides (`ends_mid_sentence`): a last word that cannot end a sentence
  ("the", "and", "is", "at"), a trailing operator, comma or colon, or an open brace, `\\(`,
  `\\[` or box. A text ending in a number or a word that can end a sentence is complete.

A base in words stays with its digits ("1011 in base 2", "1011 (base two)" read as
`1011_{2}`). A quantifier span after the answer is not the answer: in "$f(x) = x$ for all
$x \\in \\mathbb{R}$" the span before "for all" is. Every scan here is linear in the text or
bounded to its tail.
"""

from __future__ import annotations

import re

TAIL_CHARS = 4000         # the ending is looked for in this much of the text's tail
SPAN_SCAN_CHARS = 20_000  # math spans are looked for in this much of the text's tail
MAX_SPAN_CHARS = 1000

# Decimal commas count ("2,74"): only in the last-number fallback, where nothing else tells.
# A base subscript stays with its digits (`1011_2`).
NUMBER_TOKEN = re.compile(
    r"(?:\\[dt]?frac\{-?\d+\}\{\d+\}|(?<![\w)\]}.,])-?\d+(?:,\d{3})*(?:\.\d+|,\d{1,2}(?![\d,]))?(?:/\d+)?"
    r"(?:_\{\d{1,2}\}|_\d{1,2}(?!\d))?|(?<![\w)\]}.])-?\.\d+)(?:\s?\\?%)?")
SPAN = re.compile(r"\$\$(.{1,%d}?)\$\$|(?<![\\$])\$((?:\\.|[^$\\]){1,%d}?)\$|\\\((.{1,%d}?)\\\)|\\\[(.{1,%d}?)\\\]"
                  % ((MAX_SPAN_CHARS,) * 4), re.DOTALL)
_WORD = re.compile(r"[A-Za-z]{2,}")
_CONJUNCTION = re.compile(r"(?<![A-Za-z])(?:and|or)(?![a-z])")   # `1 and 2`, `W(x)=1orW(x)=-1`
_LATEX_WORDS = re.compile(r"\\[A-Za-z]+|\\text\{[^{}]*\}")

_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n+")
_CHECK = re.compile(
    r"\b(?:double[- ]?|re)?(?:check|verify)(?:ing)?\b|\bverification\b|\bsanity[- ]check\b|\bconfirm(?:ing)?\b"
    r"|\b(?:substitut|plugg?)\w*\b[^.\n]{0,40}?\b(?:back|original)\b", re.IGNORECASE)
_TICK = re.compile("[\u2713\u2714\u2705]|\\\\checkmark")
_OPERATOR = re.compile(r"[\d)]\s*(?:[-+*/\u00d7\u00f7^]|\\times|\\cdot|\\div)\s*[\d(]")
_CONCLUSION = re.compile(
    r"^[\s*#>_]*(?:so|thus|therefore|hence|consequently|finally|yes|overall|altogether"
    r"|in\s+(?:total|conclusion|summary))\b",
    re.IGNORECASE)
_HEDGE = re.compile(r"\b(?:either|could|might|may|maybe|perhaps|possibl[ey]|probably|likely|unsure|not\s+sure|"
                    r"uncertain|guess|depending|depends)\b", re.IGNORECASE)
_OR = re.compile(r"\b(?:or|also|alternatively)\b", re.IGNORECASE)
_OR_FIRST = re.compile(r"[\s*]*(?:or|alternatively)\b", re.IGNORECASE)   # "Maybe 5? Or 6."
_BASE_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
               "ten": 10, "twelve": 12, "sixteen": 16}
_IN_BASE = re.compile(r"(?<![\w.])([0-9A-Z]{1,64})\s*(\(\s*)?(?:in\s+)?[Bb]ase[\s-]*(\d{1,2}|%s)\b(?(2)\s*\))"
                      % "|".join(_BASE_WORDS))
# No comma inside an item: the list's commas would be ambiguous, and backtracking exponential.
_ITEM = r"(?:[A-Za-z]\s*=\s*)?\$?-?\d+(?:\.\d+)?(?:/\d+)?\$?"
_ALTERNATIVES = re.compile(rf"{_ITEM}(?:\s*,\s*{_ITEM})*\s*,?\s+or\s+{_ITEM}$")
# An operator with an operand before it (a digit, a bracket, a one-letter variable): not a
# bullet (`\n- 42`) or a dash after a word ("Result - 42").
_OPERAND = re.compile(r"(?:\d|[)\]}]|(?<![A-Za-z\\])[A-Za-z])\s*(?:[-+*/\u00d7\u00f7^]|\\times|\\cdot|\\div)\s*$")
_QUANTIFIER = re.compile(r"[\s,;]*(?:for\s+(?:all|every|any|each)(?:\s+real)?|where|whenever|\\forall)[\s,]*",
                         re.IGNORECASE)
# Words a sentence cannot end with: a completion that stops on one was cut off.
_OPEN_WORDS = frozenset("""a an the and or but of to by with for from in on at into onto as than then so that
    which whose where when while if is are was were be been has have had do does did can could will would should
    must may might we i you it its this these those our their his her let let's plus minus times over equals gives
    get gets because since each per not also therefore thus hence""".split())
# (`*` only after a space, and not `_`: markdown closes with them, `**5**`.)
_OPEN_END = re.compile(r"(?:[=+\-/^(\[{,:;\\\u00d7\u00f7]|(?<=\s)\*|\\(?:times|cdot|div|frac|sqrt|left|quad))\s*$")


def looks_bare(text: str) -> bool:
    """A completion that is the answer itself: short, one line, no prose words."""
    s = text.strip()
    if not s or len(s) > 200 or "\n" in s:
        return False
    s = _CONJUNCTION.sub(" ", _LATEX_WORDS.sub(" ", s)) if not re.fullmatch(r"[A-Za-z]+", s) else s
    return bool(re.fullmatch(r"[A-Za-z]+", s)) or not _WORD.search(s)


def last_number(text: str) -> str | None:
    last = None
    for match in NUMBER_TOKEN.finditer(text.replace("\u2212", "-")):
        last = match
    return last.group(0) if last else None


def last_math_span(text: str) -> tuple[str | None, int]:
    """(content of the last `$..$`, `$$..$$`, `\\(..\\)` or `\\[..\\]` in the text's tail, its
    end); a span that only qualifies the one before it ("for all $x \\in \\mathbb{R}$") gives
    the one before it, with the end of the qualifier."""
    offset = max(0, len(text) - SPAN_SCAN_CHARS)
    before = last = None
    for m in SPAN.finditer(text, offset):
        before, last = last, m
    if last is None:
        return None, -1
    chosen = before if before is not None and _QUANTIFIER.fullmatch(text[before.end():last.start()]) else last
    inner = next(g for g in chosen.groups() if g is not None).strip()
    return (inner or None), last.end()


def ends_mid_sentence(text: str) -> bool:
    """True when the text stops where no sentence ends (see the module docstring)."""
    tail = text[-TAIL_CHARS:].rstrip()
    if not tail:
        return False
    if _OPEN_END.search(tail):
        return True
    words = re.findall(r"[A-Za-z']+$", tail)
    if words and words[0].lower() in _OPEN_WORDS:
        return True
    return _unclosed(tail)


def _unclosed(tail: str) -> bool:
    """An open brace, `\\(`, `\\[` or box at the end of the text."""
    depth, i = 0, 0
    while i < len(tail):
        c = tail[i]
        if c == "\\":
            i += 2
            continue
        depth += (c == "{") - (c == "}")
        depth = max(depth, 0)         # a brace closed that opened before the tail
        i += 1
    return depth > 0 or tail.rfind("\\(") > tail.rfind("\\)") or tail.rfind("\\[") > tail.rfind("\\]")


def _sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences (and lines) of the text."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if text[start:m.end()].strip():
            spans.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _check_start(sentence: str) -> int | None:
    """Where a check begins in a sentence: at its word ("x = 7 (check: ...)"), or, for a ticked
    computation, at the sentence's start; None when the sentence is no check."""
    word = _CHECK.search(sentence)
    if word:
        return word.start()
    return 0 if _TICK.search(sentence) and _OPERATOR.search(sentence) else None


def _is_conclusion(sentence: str) -> bool:
    """A sentence that states a value after "So", "Thus", ... (not a computation, not a check)."""
    if not _CONCLUSION.match(sentence) or _check_start(sentence) is not None or _OPERATOR.search(sentence):
        return False
    return bool(re.search(r"\d", sentence))


def before_checks(text: str) -> tuple[str, bool]:
    """(the text without a verification that follows its answer, whether one was set aside):
    cut at the first check after the last conclusion that has a value stated just before it
    (in its own sentence or the one before)."""
    offset = max(0, len(text) - TAIL_CHARS)
    spans = [(a + offset, b + offset) for a, b in _sentences(text[offset:])]
    sentences = [text[a:b] for a, b in spans]
    last_conclusion = max((i for i, s in enumerate(sentences) if _is_conclusion(s)), default=-1)
    for i in range(last_conclusion + 1, len(spans)):
        start = _check_start(sentences[i])
        if start is None:
            continue
        cut = spans[i][0] + start
        if re.search(r"\d", text[spans[max(i - 1, 0)][0]:cut]):
            return text[:cut], True
    return text, False


def _final_sentence(text: str) -> str:
    """The last sentence of the text that holds a digit (the one the fallback reads), with
    the sentence before it when it starts with "Or" ("Maybe 5? Or 6.")."""
    offset = max(0, len(text) - TAIL_CHARS)
    spans = _sentences(text[offset:])
    for i in range(len(spans) - 1, -1, -1):
        a, b = spans[i]
        if re.search(r"\d", text[offset + a:offset + b]):
            if i > 0 and _OR_FIRST.match(text, offset + a):
                a = spans[i - 1][0]
            return text[offset + a:offset + b]
    return ""


def with_bases(text: str) -> str:
    """"1011 in base 2", "1011 (base 2)" written as `1011_{2}`, so the base stays with its digits."""
    return _IN_BASE.sub(lambda m: f"{m.group(1)}_{{{_BASE_WORDS.get(m.group(3).lower(), m.group(3))}}}", text)


def hedged(sentence: str) -> bool:
    """Alternative values offered with a hedge word: "either 3 or 4", "could be 2, 3, 5, or
    7", "It is 12, but it could also be 15"; not "either the red or the blue ball, so 6" (one
    value)."""
    if not (_HEDGE.search(sentence) and _OR.search(sentence)):
        return False
    return len({m.group(0) for m in NUMBER_TOKEN.finditer(sentence[:1000])}) >= 2


def _number_answer(text: str) -> tuple[str | None, str]:
    """The last number as the answer, unless it is an operand or one of hedged alternatives."""
    last = None
    for match in NUMBER_TOKEN.finditer(text):
        last = match
    if last is None:
        return None, "none"
    if _OPERAND.search(text[max(0, last.start() - 20):last.start()]):
        return None, "unfinished computation"
    end = last.end() + (text[last.end():last.end() + 1] == "$")
    head = text[max(0, end - 300):end]     # bounded: the regex below would crawl over a megabyte
    either = _ALTERNATIVES.search(head)
    if either:
        return either.group(0), "alternatives"
    return last.group(0), "last_number"


def unmarked_answer(text: str, fallback: str, finish_reason: str | None) -> tuple[str | None, str]:
    """(answer or None, method) for a completion without an answer marker (module docstring).

    Methods: `math_span`, `whole`, `last_number`, `alternatives`; for no answer `none`,
    `cut_off`, `hedge` or `unfinished computation`."""
    if finish_reason == "length" or finish_reason is None and ends_mid_sentence(text):
        return None, "cut_off"
    text = with_bases(text.replace("\u2212", "-"))
    kept, _ = before_checks(text)
    if hedged(_final_sentence(kept)):
        return None, "hedge"
    span, end = last_math_span(kept)
    if span is not None and last_number(kept[end:]) is None:
        return span, "math_span"
    if looks_bare(text):
        return text.strip(), "whole"
    if fallback != "last_number":
        return None, "none"
    return _number_answer(kept)
