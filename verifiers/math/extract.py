"""Answer extraction for the `math` verifier, from completions and from gold answers alike.

Order for a completion (first that applies; `extract_answer`):

1. `<answer>...</answer>` (searched again inside);
2. boxes: the last complete `\\boxed{}`/`\\fbox{}`, joined with the boxes just before it when
   only a connector stands between them (`\\boxed{1}, \\boxed{2}`, `\\boxed{(2,2)} \\text{ and }
   \\boxed{(6,2)}`, `\\boxed{1}\\boxed{2}`, `\\boxed{1} papers and \\boxed{2} bins`): several
   answers given one box each. A correction (`\\boxed{40}, but correcting: \\boxed{42}`) has
   words that are no connector, and the last box wins. A "final answer is" marker written
   after the last box wins over it (the model restated its answer). Words that introduce the
   value inside a box go (`\\boxed{\\text{The answer is } 42}`, `\\boxed{\\text{Janet makes }
   \\$18}`: a prose phrase ending in "is", "are", "has", "makes", ... or a colon);
3. the last `#### x` (GSM8K), then the last "the answer is x" / "Final answer: x" / "the
   correct option is (D)". A hedge after a marker ("the answer is either 2 or 3") is no answer;
4. no marker: the fallback of `verifiers.math.ending` (the last math span, a bare answer, the
   last number), with its rules for verifications, hedges and cut-off text.

`finish_reason` is what the sampler said about the completion: "stop" (it ended on its own
or at a stop sequence), "length" (cut at the token limit) or None (not known). A cut-off
completion keeps only answers it finished: a complete box (the model's protocol for a
final answer, even with reasoning cut after it), a closed `<answer>` tag, or a marker whose
answer a sentence end, a line end or a closing delimiter ends ("The answer is 5" cut there
may have been "The answer is 56"); an unclosed box after the last complete one means the
model was cut while writing a new answer, so nothing counts. Without a marker, nothing does.

A gold answer goes through the same extraction when it is not itself an answer (MATH's
`solution` field, a sentence with boxes), as complete text; a short gold is left as written
(`extract_gold`). Every regular expression here is linear in its input, or bounded to the
text's tail: completions of a megabyte are scanned once, never backtracked over.
"""

from __future__ import annotations

import re
from collections import deque

from verifiers.math.ending import SPAN, hedged, last_number, looks_bare, unmarked_answer, with_bases

FALLBACKS = ("last_number", "none")
MAX_ANSWER_CHARS = 1000    # an extracted answer longer than this is not an answer
MAX_JOINED = 32            # boxes joined into one answer at most (a list, not a flood)

_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer|(?:correct|right|best)\s+(?:option|choice))"
    r"(?:\s+is|\s*:|\s*=)(?:\s*:)?[ \t*]*",
    re.IGNORECASE)
FINISH_REASONS = ("stop", "length", None)
# A phrase that introduces the value inside a box: "The answer is", "Janet makes", "Total:".
_BOX_PROSE = re.compile(r"[A-Za-z][A-Za-z ,']*?"
                        r"(?:\s(?:is|are|was|were|equals|has|have|makes|gets|needs|costs)|:)\s*:?\s*")
_BOX_TEXT = re.compile(r"\s*\\(?:text|textbf|textrm|textit|mbox|mathrm)\{([^{}]*)\}\s*")
_ENDED = re.compile(r"[.!?](?:\s|$)|\n|[.!?$)\]}*]\s*$")
_FINAL_ANSWER_IS = re.compile(r"final\s+answer\s+is\s*:?[ \t*]*", re.IGNORECASE)
_BOX_START = re.compile(r"\\(?:boxed|fbox)")
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


def _after_marker(text: str, start: int) -> str:
    """The answer that follows a marker: to the end of the line, cut at a sentence end;
    when that is prose ("18 dollars a day"), the last number in it."""
    line = text[start:start + 4 * MAX_ANSWER_CHARS].split("\n", 1)[0]
    boxed = last_boxed(line)
    if boxed is not None:
        return boxed
    first = SPAN.match(line.lstrip())
    if first and not line.lstrip()[first.end():].lstrip().startswith(("and", ",")):
        return next(g for g in first.groups() if g is not None).strip()
    m = re.search(r"\.(?:\s|$)|\s+(?:because|since|which|so)\s", line)
    found = with_bases(line[:m.start()] if m else line).strip().strip('"\\').strip()
    if len(found) > 1 and found.startswith("$") and found.endswith("$"):
        return found                        # `$12$ and $13$`: math, however many spans
    if not found.endswith("$"):
        found = found.rstrip("!").strip()   # prose: an exclamation, not a factorial
    if not looks_bare(found.replace("**", "")):
        return last_number(found) or found
    return found


def _last_match(pattern: re.Pattern, text: str, pos: int = 0) -> re.Match | None:
    """The last of `pattern`'s matches in `text` from `pos`, or None (holding no other)."""
    tail = deque(pattern.finditer(text, pos), maxlen=1)
    return tail[0] if tail else None


def _final_marker_after(completion: str, end: int, finish_reason: str | None) -> str | None:
    last = _last_match(_FINAL_ANSWER_IS, completion, end)
    if last is None or finish_reason == "length" and not _ENDED.search(completion[last.end():]):
        return None        # a restatement cut off: the box stands
    found = _after_marker(completion, last.end())
    return found if found and re.search(r"[\d\\]", found) else None   # not "... is correct"


def _box_words(content: str) -> str:
    """A box's value without the prose that introduces it (module docstring, step 2)."""
    text = _BOX_TEXT.match(content)
    prose, rest = (text.group(1), content[text.end():]) if text else (content, None)
    words = _BOX_PROSE.match(prose)
    if not words or not re.search(r"[A-Za-z]{3,}", words.group(0)):
        return content
    rest = prose[words.end():] + (rest or "") if text else prose[words.end():]
    return rest.strip() or content


def _marker_sentence(text: str, start: int) -> str:
    """The sentence a marker at `start` stands in (for the hedge rule)."""
    begin = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start)) + 1
    rest = re.split(r"[.!?](?:\s|$)|\n", text[start:start + 400], maxsplit=1)[0]
    return text[begin:start] + rest


def _tagged(completion: str, finish_reason: str | None) -> tuple[str | None, str] | None:
    at = completion.lower().rfind("<answer>")
    tags = _ANSWER_TAG.match(completion, at) if at >= 0 else None
    if not tags:
        return None
    if finish_reason == "length" and "</answer>" not in tags.group(0).lower():
        return None, "cut_off"
    inner = tags.group(1).strip()
    found, method = extract_answer(inner, "none", "stop") if inner else (None, "none")
    if method == "hedge":
        return None, "hedge"
    return (found if found is not None else inner or None), "answer_tag"


def _marked(completion: str, finish_reason: str | None) -> tuple[str | None, str] | None:
    """`#### x` or an answer marker; None when there is neither."""
    at, method = completion.rfind("####"), "gsm8k"
    if at >= 0:
        start = at + 4
    else:
        last = _last_match(_ANSWER_IS, completion)
        if last is None:
            return None
        start, method = last.end(), "answer_is"
    if hedged(_marker_sentence(completion, start)):
        return None, "hedge"
    if finish_reason == "length" and not _ENDED.search(completion[start:start + 4 * MAX_ANSWER_CHARS]):
        return None, "cut_off"
    found = _after_marker(completion, start)
    return (found, method) if found or method == "gsm8k" else None


def extract_answer(completion: str, fallback: str = "last_number",
                   finish_reason: str | None = None) -> tuple[str | None, str]:
    """(answer text or None, the method that found it, or why there is none: `none`, `hedge`,
    `cut_off`, `unfinished computation`); see the module docstring."""
    tagged = _tagged(completion, finish_reason)
    if tagged is not None:
        return tagged
    boxed, count, end = boxed_answer(completion)
    if finish_reason == "length" and _BOX_START.search(completion, max(end, 0)):
        return None, "cut_off"
    if boxed is not None:
        restated = _final_marker_after(completion, end, finish_reason)
        if restated:
            return restated, "answer_is"
        return _box_words(boxed), "boxes" if count > 1 else "boxed"
    marked = _marked(completion, finish_reason)
    if marked is not None:
        return marked
    return unmarked_answer(completion, fallback, finish_reason)


def extract_gold(gold: str) -> tuple[str, str]:
    """(the answer in a gold string, how it was found): boxes, a final-answer marker or a math
    span in a solution or sentence; a gold that is itself an answer stays as written."""
    if "\\boxed" in gold or "\\fbox" in gold:
        found, method = extract_answer(gold, "none", "stop")
        if found:
            return found, "gold_" + method
    if len(gold) > 200 or "\n" in gold.strip() or not looks_bare(gold):
        found, method = extract_answer(gold, "none", "stop")
        if found:
            return found, "gold_" + method
    return gold, "gold_as_written"


def box_runs(text: str) -> int:
    """How many separate answers the complete boxes of `text` give: a run of boxes with only
    connectors between them (one list answer to `boxed_answer`) counts once. Several runs are
    several final answers (the trainers' answer-spraying telemetry)."""
    boxes = _boxes(text)
    return sum(1 for i, box in enumerate(boxes) if i == 0 or not _is_connector(text[boxes[i - 1][1]:box[0]]))
