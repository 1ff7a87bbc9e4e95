"""The calling thread's half of a `math` check, after extraction and normalisation: the form
rules that bring both answers to comparable forms, then the fast path that decides without
SymPy when plain Python is certain. Pure standard library.

Form rules, in order (`align_forms`):

1. multiple choice: an answer names a choice when it is a letter A-J alone (`C`, `(C)`,
   `\\textbf{(C)}`, "the correct option is **(D)**") or a letter in parentheses followed by its
   value (`\\textbf{(C) }12`, `(C) 12`, `C) 12`). A letter against a gold letter: the letters
   decide (a value written next to a letter only restates the choice). A value against a gold
   letter, or a letter against a gold value: the letter stands for its choice's value, read
   from the task's prompt when the prompt lists the choices (`(A) 10 (B) 11 ...`, AMC's
   `\\textbf{(A) }10 \\qquad ...`, or one a line: `A. 6`, `B) 8`); a model often answers with the
   value where the letter was asked, or the reverse, and the prompt says which value the letter
   means. Without choices in the prompt the two cannot be compared and the answer fails. A
   letter with its value against a gold value: the written value decides. The prompt's
   choices are the last run of markers lettered A, B, C, ... in order, two at least; each
   value runs to the next marker (the last to the end of its line);
2. number bases: against a gold written in base b (`1011_2`), an answer of bare digits is read
   in base b (`1011` is 11: models drop the subscript when the question names the base);
   digits base b cannot hold fail (`68` against `2112_3` restates the question's decimal);
3. function arguments: `f(t) = t^2` records its argument `t`, which SymPy renames to the other
   side's variable (`verifiers.math.compare`);
4. labels, membership and bounds (`verifiers.math.labels.align`);
5. degrees against radians: an answer in degrees (`45^\\circ`) against a gold with `\\pi`, or
   the reverse, is converted (`\\cdot \\frac{\\pi}{180}`); an unmarked 45 stays 45.

The fast path (`decide`): equal normalised strings pass; word answers and clock times compare
as text (`verifiers.math.labels.text_rule`); two assignments to different variables fail;
plain numbers, bare lists of them (a set of answers: any order, repeats aside) and lists of
number tuples (a set of ordered tuples) compare as exact fractions with the numeric rule of
`verifiers.math.normalize`. Anything else goes to SymPy.

Decimal commas: `3,5` is 3.5 when the other side is a plain number and the comma cannot be a
thousands separator: not exactly three digits after it, or a lone `0` before it (`0,111`).
On the gold's side, where a list `1,2` is a common answer, only two digits after the comma
(`1,22`) or a lone `0` before it count. `1,000` is always a thousand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from verifiers.math.labels import align, function_argument, text_rule
from verifiers.math.normalize import Normal, in_base, normalize, numbers_match, parse_number, parse_tuples

PROMPT_SCAN_CHARS = 20_000   # choices are looked for in this much of the prompt's tail

# --------------------------------------------------------------------------- form rules


@dataclass
class Aligned:
    """Both answers after the form rules; `decided` = (passed, reason) when a rule settled it."""

    gold: Normal
    pred: Normal
    rules: list[str] = field(default_factory=list)
    arguments: dict = field(default_factory=dict)    # {"gold_argument": "x", "pred_argument": "t"}
    decided: tuple[bool, str] | None = None


def align_forms(gold: Normal, pred: Normal, prompt) -> Aligned:
    """`gold` and `pred` after the rules of the module docstring, with the rules applied."""
    out = Aligned(gold, pred)
    choice = choice_rule(gold.text, pred.text, prompt)
    if choice is not None:
        g, p, rule = choice
        if rule in ("same choice letter", "different choice letters"):
            out.decided = (rule == "same choice letter", rule)
            return out
        gold, pred = Normal(g, gold.percent), Normal(p, pred.percent)
        out.rules.append(rule)
    if gold.base not in (None, 10) and pred.base is None and re.fullmatch(r"[0-9A-Z]+", pred.text):
        value = in_base(pred.text, gold.base)
        if value is None:
            out.decided = (False, f"digits that base {gold.base} cannot hold")
            return out
        pred = Normal(str(value), pred.percent)
        out.rules.append(f"digits read in base {gold.base}")
    for side, answer in (("gold", gold), ("pred", pred)):
        argument = function_argument(answer.text)
        if argument:
            out.arguments[f"{side}_argument"] = argument
    gold_text, pred_text, rules = align(gold.text, pred.text)
    out.rules += rules
    if gold.degrees != pred.degrees and "\\pi" in (pred_text if gold.degrees else gold_text):
        gold_text, pred_text = _radians(gold_text, gold.degrees), _radians(pred_text, pred.degrees)
        out.rules.append("degrees against radians")
    out.gold, out.pred = Normal(gold_text, gold.percent), Normal(pred_text, pred.percent)
    return out


def _radians(text: str, degrees: bool) -> str:
    """`45^\\circ` (its sign stripped by normalisation) as radians, to meet a gold or answer
    given in radians; unmarked numbers stay numbers (45 is not pi/4)."""
    return f"({text}) \\cdot \\frac{{\\pi}}{{180}}" if degrees else text


# --------------------------------------------------------------------------- multiple choice

_LETTER = re.compile(r"(?:(?:option|choice)\s+)?(?:\(([A-J])\)\s*(.*)|([A-J])\)\s*(.+)|([A-J]))", re.DOTALL)
_MARKER = re.compile(r"\\(?:textbf|mathrm|mathbf|text)\{\s*\(([A-J])\)\s*\}|\(([A-J])\)|(?m:^[ \t]*([A-J])[.)][ \t])")
_FILLER = re.compile(r"\\q?quad|\\[ ,;:!]|~|\$|\\\\")


def letter_and_value(text: str) -> tuple[str | None, str | None]:
    """("C", "12") for `(C) 12`, ("C", None) for `C` or `(C)`, (None, None) for other answers."""
    m = _LETTER.fullmatch(text.strip())
    if not m:
        return None, None
    letter = m.group(1) or m.group(3) or m.group(5)
    value = (m.group(2) or m.group(4) or "").strip()
    return letter, value or None


def _prompt_text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt[-PROMPT_SCAN_CHARS:]
    parts = [m.get("content") for m in prompt if isinstance(m, dict)]
    return "\n".join(p for p in parts if isinstance(p, str))[-PROMPT_SCAN_CHARS:]


def prompt_choices(prompt) -> dict[str, str]:
    """{letter: normalised value} of the choices the prompt lists, or {} (module docstring, rule 1)."""
    text = _prompt_text(prompt)
    runs, run = [], []
    for m in _MARKER.finditer(text):
        letter = m.group(1) or m.group(2) or m.group(3)
        if letter == "A":
            run = [m]
            runs.append(run)
        elif run and ord(letter) == ord(_letter(run[-1])) + 1:
            run.append(m)
    run = next((r for r in reversed(runs) if len(r) >= 2), None)
    if run is None:
        return {}
    ends = [m.start() for m in run[1:]] + [_line_end(text, run[-1].end())]
    choices = {}
    for m, end in zip(run, ends):
        value = _FILLER.sub(" ", text[m.end():end]).strip(" \t\n,;.")
        if value:
            choices[_letter(m)] = normalize(value).text
    return choices


def _letter(m: re.Match) -> str:
    return m.group(1) or m.group(2) or m.group(3)


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def choice_rule(gold: str, pred: str, prompt) -> tuple[str, str, str] | None:
    """(gold, prediction, rule) with choice letters resolved (module docstring, rule 1), or None when
    neither side names a choice. Rule "same choice letter" / "different choice letters" is a
    decision; otherwise the returned texts are compared as usual."""
    gl, gv = letter_and_value(gold)
    pl, pv = letter_and_value(pred)
    if gl is None and pl is None:
        return None
    if gl and pl:
        return gl, pl, "same choice letter" if gl == pl else "different choice letters"
    if gl:
        value = gv or prompt_choices(prompt).get(gl)
        return (value, pred, "gold letter as its choice's value") if value else None
    value = pv or prompt_choices(prompt).get(pl)
    return (gold, value, "answer letter as its choice's value") if value else None


# --------------------------------------------------------------------------- the fast path


def decide(gold: Normal, pred: Normal, rel_tol: float, sig_digits: int) -> tuple[bool, str, dict] | None:
    """(passed, reason, parsed forms) when plain Python is sure; None to ask SymPy."""
    if gold.key == pred.key and gold.percent == pred.percent:
        return True, "same normalized text", {}
    words = text_rule(gold.text, pred.text)
    if words is not None:
        return (*words, {})
    gvar, gtext = _strip_assignment(gold.text)
    pvar, ptext = _strip_assignment(pred.text)
    if gvar and pvar and gvar != pvar:
        return False, f"assignment to {pvar!r}, gold assigns {gvar!r}", {}
    g, p = parse_number(gtext, gold.percent), parse_number(ptext, pred.percent)
    if g is not None and p is None and _decimal_comma(ptext):
        p = parse_number(ptext.replace(",", "."), pred.percent)
    if p is not None and g is None and _decimal_comma(gtext, gold=True):
        g = parse_number(gtext.replace(",", "."), gold.percent)
    if g is not None and p is not None:
        same = numbers_match(g, p, rel_tol, sig_digits)
        return same, "equal numbers" if same else "different numbers", _parsed([g], [p])
    gl, pl = _split_list(gtext), _split_list(ptext)
    if gl and pl:
        gn, pn = [parse_number(x) for x in gl], [parse_number(x) for x in pl]
        if None not in gn and None not in pn:
            same = _same_sets(gn, pn, lambda a, b: numbers_match(a, b, rel_tol, sig_digits))
            return same, "same numbers in any order" if same else "different number lists", _parsed(gn, pn)
    gt, pt = parse_tuples(gtext), parse_tuples(ptext)
    if gt and pt:
        same = _same_sets(gt, pt, lambda a, b: len(a) == len(b) and
                          all(numbers_match(x, y, rel_tol, sig_digits) for x, y in zip(a, b)))
        return same, "same tuples in any order" if same else "different tuples", {}
    return None


def _split_list(text: str) -> list[str] | None:
    """Items of a bare comma list of plain numbers ("1, 2"), else None."""
    if "," not in text or any(c in text for c in "()[]{}\\="):
        return None
    return [item.strip() for item in text.split(",")]


def _strip_assignment(text: str) -> tuple[str | None, str]:
    """("x", "3") for "x = 3"; (None, text) when it is not a one-variable assignment."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if sep and len(name) == 1 and name.isalpha() and "=" not in value:
        return name.lower(), value.strip()
    return None, text


def _parsed(gold: list, pred: list) -> dict:
    show = lambda numbers: ", ".join(str(n.value) + ("%" if n.percent else "") for n in numbers)  # noqa: E731
    return {"gold_parsed": show(gold), "answer_parsed": show(pred)}


def _decimal_comma(text: str, gold: bool = False) -> bool:
    """`3,5` is 3.5 when it cannot be a thousands separator (see the module docstring)."""
    head, _, tail = text.lstrip("-").partition(",")
    if not (head.isdigit() and tail.isdigit()):
        return False
    return head == "0" or (len(tail) == 2 if gold else len(tail) != 3)


def _same_sets(gold: list, pred: list, match) -> bool:
    """Each distinct gold item matched by its own distinct predicted item, none left over."""
    gold, pred = list(dict.fromkeys(gold)), list(dict.fromkeys(pred))
    if len(gold) != len(pred):
        return False
    left = list(pred)
    for g in gold:
        hit = next((i for i, p in enumerate(left) if match(g, p)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True
