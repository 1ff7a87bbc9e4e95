"""Answer extraction for the `math` verifier, from completions and from gold answers alike.

Order for a completion (first that applies; `extract_answer`):

1. `<answer>...</answer>` (searched again inside);
2. boxes: the last complete `\\boxed{}`/`\\fbox{}`, joined with the boxes just before it when
   only a connector stands between them (`\\boxed{1}, \\boxed{2}`, `\\boxed{(2,2)} \\text{ and }
   \\boxed{(6,2)}`, `\\boxed{1}\\boxed{2}`, `\\boxed{1} papers and \\boxed{2} bins`): several
   answers given one box each. A correction (`\\boxed{40}, but correcting: \\boxed{42}`) has
   words that are no connector, and the last box wins. A "final answer is" marker written
   after the last box wins over it (the model restated its answer);
3. the last `#### x` (GSM8K), then the last "the answer is x" / "Final answer: x";
4. the last math span `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` (across newlines), unless
   a number follows it in the text (then that number is the later answer);
5. a completion that is itself a bare answer, then the fallback (the last number, or nothing).

A gold answer goes through the same extraction when it is not itself an answer (MATH's
`solution` field, a sentence with boxes); a short gold is left as written (`extract_gold`).
Every regular expression here is linear in its input, or bounded to the text's tail:
completions of a megabyte are scanned once, never backtracked over.
"""

from __future__ import annotations

import re

FALLBACKS = ("last_number", "none")
MAX_ANSWER_CHARS = 1000    # an extracted answer longer than this is not an answer
SPAN_SCAN_CHARS = 20_000   # math spans are looked for in this much of the text's tail
MAX_JOINED = 32            # boxes joined into one answer at most (a list, not a flood)

_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)(?:\s+is|\s*:|\s*=)(?:\s*:)?[ \t*]*", re.IGNORECASE)
_FINAL_ANSWER_IS = re.compile(r"final\s+answer\s+is\s*:?[ \t*]*", re.IGNORECASE)
# Decimal commas count ("2,74"): only in the last-number fallback, where nothing else tells.
_NUMBER_TOKEN = re.compile(
    r"(?:\\[dt]?frac\{-?\d+\}\{\d+\}|(?<![\w)\]}.,])-?\d+(?:,\d{3})*(?:\.\d+|,\d{1,2}(?![\d,]))?(?:/\d+)?"
    r"|(?<![\w)\]}.])-?\.\d+)(?:\s?\\?%)?")
_WORD = re.compile(r"[A-Za-z]{2,}")
_CONJUNCTION = re.compile(r"(?<![A-Za-z])(?:and|or)(?![a-z])")   # `1 and 2`, `W(x)=1orW(x)=-1`
_LATEX_WORDS = re.compile(r"\\[A-Za-z]+|\\text\{[^{}]*\}")
_BOX_START = re.compile(r"\\(?:boxed|fbox)")
_SPAN = re.compile(r"\$\$(.{1,%d}?)\$\$|(?<![\\$])\$((?:\\.|[^$\\]){1,%d}?)\$|\\\((.{1,%d}?)\\\)|\\\[(.{1,%d}?)\\\]"
                   % ((MAX_ANSWER_CHARS,) * 4), re.DOTALL)
# What may stand between two boxes that hold parts of one answer: punctuation, `and`/`or`,
# one word before it ("papers and"), spacing, math delimiters, and a label (`y_2 =`).
_TEXT_CONNECTOR = re.compile(r"\\text\{[^{}]*?\b(?:and|or)\s*\}|\\text\{\s*[,;]?\s*\}")
_SPACING = re.compile(r"\\q?quad|\\[,;:! ]|~|\$|\\[()\[\]]|\\\\|\\$|\+{2,}")
_CONNECTOR = re.compile(
    r"[\s,;.]*(?:(?:[A-Za-z]+\s+)?(?:and|or|&))?[\s,;.]*(?:[A-Za-z](?:_\{?\w+\}?)?\s*=)?\s*")


def _brace_pairs(text: str) -> dict[int, int]:
    """Position of every `{` -> its matching `}` (escaped braces skipped), in one pass."""
    pairs, stack, i, n = {}, [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _box_at(text: str, at: int, pairs: dict | None) -> tuple[tuple[int, str] | None, dict | None]:
    """((end, content) of the box starting at `at`, or None if incomplete; the brace map)."""
    j = at + (6 if text.startswith("\\boxed", at) else 5)
    while j < len(text) and text[j] == " ":
        j += 1
    if j < len(text) and text[j] == "{":
        pairs = _brace_pairs(text) if pairs is None else pairs
        if j in pairs:
            inner = text[j + 1:pairs[j]].strip()
            if "\\boxed" in inner or "\\fbox" in inner:
                inner = last_boxed(inner) or inner
            return (pairs[j] + 1, inner), pairs
    elif j < len(text) and text[j] not in "\\$":   # `\\boxed 5`: one token
        token = re.match(r"[^\s$]+", text[j:])
        if token:
            return (j + token.end(), token.group(0)), pairs
    return None, pairs


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of the complete outermost boxes, last one last."""
    found, pairs, end = [], None, -1
    for m in _BOX_START.finditer(text):
        if m.start() < end:
            continue                          # nested in the previous box
        box, pairs = _box_at(text, m.start(), pairs)
        if box is not None:
            end = box[0]
            found.append((m.start(), box[0], box[1]))
    return found


def last_boxed(text: str, strict: bool = False) -> str | None:
    """Content of the last complete `\\boxed{...}` or `\\fbox{...}` (`\\boxed 5`: one token);
    nested boxes unwrap.

    An unclosed box (a truncated completion) is skipped for an earlier complete one. With
    `strict`, the last box counts or nothing does: None when it is unclosed. The `math`
    environment reads gold answers from solutions that way, so that a damaged solution
    is refused rather than given the answer of an earlier box.

    >>> last_boxed(r"so $\\boxed{\\frac{1}{2}}$ and finally \\boxed{3}")
    '3'
    >>> last_boxed(r"\\boxed{\\dfrac{\\sqrt{3}}{2}}")
    '\\\\dfrac{\\\\sqrt{3}}{2}'
    >>> last_boxed(r"\\boxed{1}, then \\boxed{2"), last_boxed(r"\\boxed{1}, then \\boxed{2", strict=True)
    ('1', None)
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    if strict and _BOX_START.search(text, boxes[-1][1]):
        return None   # a box starts after the last complete one: it never closed
    return boxes[-1][2]


def _is_connector(between: str) -> bool:
    if len(between) > 80:
        return False
    between = _SPACING.sub(" ", _TEXT_CONNECTOR.sub(" and ", between))
    return _CONNECTOR.fullmatch(between) is not None


def boxed_answer(text: str) -> tuple[str | None, int, int]:
    """(answer, number of boxes joined, end of the last box): the last box, with the boxes
    before it that only connectors separate from it, joined as a list."""
    boxes = _boxes(text)
    if not boxes:
        return None, 0, -1
    run = [boxes[-1]]
    for box in reversed(boxes[-MAX_JOINED:-1]):
        if not _is_connector(text[box[1]:run[-1][0]]):
            break
        run.append(box)
    run.reverse()
    parts = list(dict.fromkeys(b[2] for b in run if b[2]))
    if len(parts) <= 1:
        return (parts[0] if parts else run[-1][2]), 1, boxes[-1][1]
    return ", ".join(parts), len(parts), boxes[-1][1]


def last_math_span(text: str) -> tuple[str | None, int]:
    """(content of the last `$..$`, `$$..$$`, `\\(..\\)` or `\\[..\\]` in the text's tail, its end)."""
    offset = max(0, len(text) - SPAN_SCAN_CHARS)
    last = None
    for last in _SPAN.finditer(text, offset):
        pass
    if last is None:
        return None, -1
    inner = next(g for g in last.groups() if g is not None).strip()
    return (inner or None), last.end()


def _last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER_TOKEN.finditer(text.replace("\u2212", "-")):
        pass
    return last.group(0) if last else None


def _after_marker(text: str, start: int) -> str:
    """The answer that follows a marker: to the end of the line, cut at a sentence end;
    when that is prose ("18 dollars a day"), the last number in it."""
    line = text[start:start + 4 * MAX_ANSWER_CHARS].split("\n", 1)[0]
    boxed = last_boxed(line)
    if boxed is not None:
        return boxed
    first = _SPAN.match(line.lstrip())
    if first and not line.lstrip()[first.end():].lstrip().startswith(("and", ",")):
        return next(g for g in first.groups() if g is not None).strip()
    m = re.search(r"\.(?:\s|$)|\s+(?:because|since|which|so)\s", line)
    found = (line[:m.start()] if m else line).strip().strip('"\\').strip()
    if len(found) > 1 and found.startswith("$") and found.endswith("$"):
        return found                        # `$12$ and $13$`: math, however many spans
    if not found.endswith("$"):
        found = found.rstrip("!").strip()   # prose: an exclamation, not a factorial
    if not looks_bare(found.replace("**", "")):
        return _last_number(found) or found
    return found


def looks_bare(text: str) -> bool:
    """A completion that is the answer itself: short, one line, no prose words."""
    s = text.strip()
    if not s or len(s) > 200 or "\n" in s:
        return False
    s = _CONJUNCTION.sub(" ", _LATEX_WORDS.sub(" ", s)) if not re.fullmatch(r"[A-Za-z]+", s) else s
    return bool(re.fullmatch(r"[A-Za-z]+", s)) or not _WORD.search(s)


def _final_marker_after(completion: str, end: int) -> str | None:
    last = None
    for last in _FINAL_ANSWER_IS.finditer(completion, end):
        pass
    found = _after_marker(completion, last.end()) if last else None
    return found if found and re.search(r"[\d\\]", found) else None   # not "... is correct"


def extract_answer(completion: str, fallback: str = "last_number") -> tuple[str | None, str]:
    """(answer text or None, the method that found it); see the module docstring."""
    at = completion.lower().rfind("<answer>")
    tags = _ANSWER_TAG.match(completion, at) if at >= 0 else None
    if tags:
        inner = tags.group(1).strip()
        found, _ = extract_answer(inner, "none") if inner else (None, "none")
        return (found if found is not None else inner or None), "answer_tag"
    boxed, count, end = boxed_answer(completion)
    if boxed is not None:
        restated = _final_marker_after(completion, end)
        if restated:
            return restated, "answer_is"
        return boxed, "boxes" if count > 1 else "boxed"
    at = completion.rfind("####")
    if at >= 0:
        return _after_marker(completion, at + 4), "gsm8k"
    last = None
    for last in _ANSWER_IS.finditer(completion):
        pass
    if last is not None:
        found = _after_marker(completion, last.end())
        if found:
            return found, "answer_is"
    span, end = last_math_span(completion)
    if span is not None and _last_number(completion[end:]) is None:
        return span, "math_span"
    if looks_bare(completion):
        return completion.strip(), "whole"
    number = _last_number(completion) if fallback == "last_number" else None
    return (number, "last_number") if number is not None else (None, "none")


def extract_gold(gold: str) -> tuple[str, str]:
    """(the answer in a gold string, how it was found): boxes, a final-answer marker or a math
    span in a solution or sentence; a gold that is itself an answer stays as written."""
    if "\\boxed" in gold or "\\fbox" in gold:
        found, method = extract_answer(gold, "none")
        if found:
            return found, "gold_" + method
    if len(gold) > 200 or "\n" in gold.strip() or not looks_bare(gold):
        found, method = extract_answer(gold, "none")
        if found:
            return found, "gold_" + method
    return gold, "gold_as_written"


def box_runs(text: str) -> int:
    """How many separate answers the complete boxes of `text` give: a run of boxes with only
    connectors between them (one list answer to `boxed_answer`) counts once. Several runs are
    several final answers (the trainers' answer-spraying telemetry)."""
    boxes = _boxes(text)
    return sum(1 for i, box in enumerate(boxes) if i == 0 or not _is_connector(text[boxes[i - 1][1]:box[0]]))
