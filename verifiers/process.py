"""Process rewards: a score for every step of a completion, not only for its final answer.

`StepVerifier` is the interface. It splits a completion into steps (non-empty pieces between
occurrences of `separator`, a newline by default, with their character offsets), scores
them (`score_steps`, or `score_steps_batch` for models that batch), and aggregates the step
scores into the reward with `aggregate`: `min` (the weakest step, as in Lightman et al.,
2023 and Math-Shepherd), `product` (the probability that every step is right), `last`, or
`mean`. `passed` is `reward >= pass_threshold`. Every scored step goes in `info["steps"]` as
`{"start", "end", "text", "score"}`, where `start`/`end` are character offsets into the
completion; trainers map them to the tokens that end each step (process supervision,
DeepSeekMath section 4.1.3).

Built in:

* `arithmetic_steps` — a verifiable process reward: every `expression = value` equation in
  a step is evaluated exactly (SymPy rationals) and the step scores 1.0 when all of its
  equations hold, 0.0 otherwise. Lines with no equation are not steps for it.
* `prm` — a learned process reward model through transformers, Math-Shepherd style
  (Wang et al., 2024): the question, then each step followed by a step tag (`ки`); a step's
  score is the probability of the good label token (`+`) at its tag, normalised against the
  bad label token (`-`), or over the whole vocabulary when `bad_token` is None.
"""

from __future__ import annotations

import ast
import math
import re
import threading
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from verifiers.base import Task, Verdict, Verifier, VerifierError, check_batch, register_verifier
from verifiers.parse_lock import parse

AGGREGATES = {
    "min": min,
    "product": math.prod,
    "last": lambda scores: scores[-1],
    "mean": lambda scores: sum(scores) / len(scores),
}


@dataclass(frozen=True)
class Step:
    start: int   # character offsets into the completion: completion[start:end] == text
    end: int
    text: str


def split_steps(completion: str, separator: str = "\n") -> list[Step]:
    """Non-empty pieces between separators, stripped, with their offsets.

    >>> [(s.start, s.end, s.text) for s in split_steps("a = 1\\n\\n  b = 2 \\n")]
    [(0, 5, 'a = 1'), (9, 14, 'b = 2')]
    """
    if not separator:
        raise VerifierError("option separator must be a non-empty string")
    steps, pos = [], 0
    for piece in completion.split(separator):
        stripped = piece.strip()
        if stripped:
            start = pos + piece.index(stripped)
            steps.append(Step(start, start + len(stripped), stripped))
        pos += len(piece) + len(separator)
    return steps


class StepVerifier(Verifier):
    """Split into steps, score each, aggregate. Subclasses implement `score_steps` (or
    `score_steps_batch`), returning per step a score, a dict with a "score" and details
    for `info["steps"]`, or None when the piece is not a step for this verifier."""

    def __init__(self, separator: str = "\n", aggregate: str = "min", pass_threshold: float = 1.0):
        if aggregate not in AGGREGATES:
            raise VerifierError(f"option aggregate={aggregate!r} is not one of {sorted(AGGREGATES)}")
        if not isinstance(separator, str) or not separator:
            raise VerifierError(f"option separator must be a non-empty string, got {separator!r}")
        self.separator, self.aggregate, self.pass_threshold = separator, aggregate, float(pass_threshold)

    def score_steps(self, steps: list[Step], task: Task) -> list[float | dict | None]:
        raise NotImplementedError

    def score_steps_batch(self, steps: list[list[Step]], tasks: list[Task]) -> list[list | str]:
        """Scores per completion; a string instead of a list says why it could not be scored."""
        return [self.score_steps(s, t) for s, t in zip(steps, tasks)]

    def verify(self, completion: str, task: Task) -> Verdict:
        return self.verify_batch([completion], [task])[0]

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        check_batch(completions, tasks)
        steps = [split_steps(c, self.separator) for c in completions]
        scored = self.score_steps_batch(steps, tasks) if completions else []
        return [self._verdict(s, sc) for s, sc in zip(steps, scored)]

    def _verdict(self, steps: list[Step], scores: list | str) -> Verdict:
        if isinstance(scores, str):
            return Verdict(0.0, False, {"status": "error", "error": scores, "steps": []})
        infos = []
        for step, score in zip(steps, scores):
            if score is not None:
                detail = score if isinstance(score, dict) else {"score": score}
                infos.append({"start": step.start, "end": step.end, "text": step.text, **detail})
        if not infos:
            return Verdict(0.0, False, {"status": "failed", "error": "no steps to score", "steps": []})
        reward = float(AGGREGATES[self.aggregate]([s["score"] for s in infos]))
        passed = reward >= self.pass_threshold
        return Verdict(reward, passed, {"status": "passed" if passed else "failed", "steps": infos,
                                        "aggregate": self.aggregate})


# --------------------------------------------------------------------------- arithmetic_steps

SUBSTITUTIONS = [("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("·", "*"), ("÷", "/"),
                  ("−", "-"), ("–", "-"), ("^", "**"), ("$", " "), ("\\left", ""), ("\\right", "")]
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_RUN = re.compile(r"[\d.+\-*/() =]+")  # one pass, no backtracking: linear in the text
_MAX_DIGITS = 1000  # a power whose result would have more digits is not checked
_MAX_CHARS = 1000   # an equation longer than this is not checked (and does not hold)


class Unverifiable(ValueError):
    """An equation side that is not plain arithmetic, or too large to evaluate."""


def evaluate_arithmetic(node: ast.AST):
    """Exact value (a SymPy Rational) of a plain arithmetic expression, parsed with
    `ast.parse(text, mode="eval")` after `SUBSTITUTIONS`; `Unverifiable` says why there is none.
    Shared by the `arithmetic_steps` verifier and the `calculator` tool, so both agree on every
    value. SymPy is imported here, not at module level, so that `import verifiers` stays cheap."""
    import sympy

    if isinstance(node, ast.Expression):
        return evaluate_arithmetic(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            # `1e999` parses as inf, which has no exact value (SymPy would raise TypeError)
            raise Unverifiable("number too large: a decimal literal overflows")
        return sympy.Rational(repr(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = evaluate_arithmetic(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
        a, b = evaluate_arithmetic(node.left), evaluate_arithmetic(node.right)
        if isinstance(node.op, ast.Div) and b == 0:
            raise Unverifiable("division by zero")
        if isinstance(node.op, ast.Pow):
            if not b.is_integer or abs(b) * math.log10(max(abs(a.p), a.q, 2)) > _MAX_DIGITS or (a == 0 and b < 0):
                raise Unverifiable("power not checked (non-integer exponent, too large, or 0 to a negative power)")
        return {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                ast.Div: lambda: a / b, ast.Pow: lambda: a ** b}[type(node.op)]()
    raise Unverifiable(f"not arithmetic: {ast.dump(node)[:60]}")


def _trim(part: str) -> str:
    """Drop sentence punctuation and parentheses left unbalanced by the surrounding prose."""
    part = part.strip().rstrip(".").strip()
    while part.endswith(")") and part.count(")") > part.count("("):
        part = part[:-1].strip()
    while part.startswith("(") and part.count("(") > part.count(")"):
        part = part[1:].strip()
    return part


def equations(text: str) -> list[list[str]]:
    """The arithmetic equation chains in a piece of text, each as its sides.

    A chain is a maximal run of numbers, operators, parentheses and `=`; a run glued to a
    letter or a backslash (`2x = 10`, `\\frac{1}{2} = 0.5`) is not arithmetic and is left out.

    >>> equations("So 12 + 34 = 46, and 46 * 2 = 92 = 92.")
    [['12 + 34', '46'], ['46 * 2', '92', '92']]
    >>> equations("2x + 3 = 13"), equations("3 × 4 = 12"), equations("1,000 + 1 = 1,001")
    ([], [['3 * 4', '12']], [['1000 + 1', '1001']])
    >>> equations("Let y = 2^3 = 8 (cubed)"), equations("13 = 2 * x"), equations("-22*5=-110")
    ([['2**3', '8']], [], [['-22*5', '-110']])
    """
    for old, new in SUBSTITUTIONS:
        text = text.replace(old, new)
    text = _THOUSANDS.sub("", text)
    chains = []
    for m in _RUN.finditer(text):
        if "=" not in m.group():
            continue
        # brackets that open or close prose ("b) 2+2 = 4", "= 8 (cubed)") are not part of it
        run = m.group().lstrip(") ").rstrip("( ")
        start = m.start() + len(m.group()) - len(m.group().lstrip(") "))
        end = start + len(run)
        if run and not _continues_prose(text, start, end, run):
            sides = [_trim(s) if len(run) <= _MAX_CHARS else s for s in run.split("=")]
            if not sides[0]:  # "y = 2 + 3 = 5": the chain after the unknown
                sides = sides[1:]
            if len(sides) >= 2 and all(any(c.isdigit() for c in s) for s in sides):
                chains.append(sides)
    return chains


def _continues_prose(text: str, start: int, end: int, run: str) -> bool:
    """Whether the run is glued to a symbol (`2x`, `\\frac{`) or is the tail or head of a
    longer, non-arithmetic expression (`2x + 3 = 13`, `13 = 2 * x`)."""
    glued = (start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_\\{}")) or \
        (end < len(text) and (text[end].isalpha() or text[end] in "_\\{"))
    before = text[:start].rstrip()[-1:]
    dangling = run[0] in "+*/" or run[-1] in "+-*/" or \
        (run[0] == "-" and before != "" and (before.isalnum() or before in ")}"))
    return glued or dangling


def check_equation(sides: list[str]) -> tuple[bool, str | None]:
    """(all sides are equal, error) with exact rational arithmetic."""
    if sum(map(len, sides)) > _MAX_CHARS:
        return False, f"equation longer than {_MAX_CHARS} characters: not checked"
    try:
        values = [evaluate_arithmetic(parse(side, mode="eval")) for side in sides]
    except (SyntaxError, Unverifiable, RecursionError, MemoryError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"[:200]
    return all(v == values[0] for v in values[1:]), None


@register_verifier("arithmetic_steps")
class ArithmeticStepsVerifier(StepVerifier):
    """Process reward: each `expression = value` step checked exactly (1 right, 0 wrong)."""

    def score_steps(self, steps: list[Step], task: Task) -> list[dict | None]:
        scores = []
        for step in steps:
            chains = equations(step.text)
            if not chains:
                scores.append(None)
                continue
            checks = [check_equation(c) for c in chains]
            detail = {"score": float(all(ok for ok, _ in checks)),
                      "equations": [" = ".join(c) for c in chains]}
            errors = [e for _, e in checks if e]
            if errors:
                detail["error"] = "; ".join(errors)
            scores.append(detail)
        return scores


# --------------------------------------------------------------------------- prm


def _prompt_text(task: Task) -> str:
    if isinstance(task.prompt, str):
        return task.prompt
    return "\n".join(m["content"] for m in task.prompt)


@register_verifier("prm")
class PRMVerifier(StepVerifier):
    """Learned process reward model (Math-Shepherd style): P(good label) at each step tag."""

    def __init__(self, model: str, tokenizer: str | None = None, step_tag: str = "ки", good_token: str = "+",
                 bad_token: str | None = "-", separator: str = "\n", aggregate: str = "min",
                 pass_threshold: float = 0.5, include_prompt: bool = True, device: str = "cpu",
                 dtype: str = "float32", batch_size: int = 8, max_length: int = 4096):
        super().__init__(separator, aggregate, pass_threshold)
        if not isinstance(model, str) or not model:
            raise VerifierError("option model must be a path or hub id of a causal LM process reward model")
        if not step_tag or step_tag in separator or separator in step_tag:
            raise VerifierError(f"option step_tag={step_tag!r} must be non-empty and differ from the separator")
        if batch_size < 1 or max_length < 2:
            raise VerifierError(f"options batch_size >= 1 and max_length >= 2 required, got {batch_size}, {max_length}")
        self.model_path, self.tokenizer_path = model, tokenizer or model
        self.step_tag, self.good_token, self.bad_token = step_tag, good_token, bad_token
        self.include_prompt, self.device, self.dtype = include_prompt, device, dtype
        self.batch_size, self.max_length = batch_size, max_length
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, list[int]] | None = None

    def _load(self) -> tuple[Any, Any, list[int]]:
        """(model, tokenizer, label token ids), loaded once on first use."""
        with self._lock:
            if self._loaded is None:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tok = AutoTokenizer.from_pretrained(self.tokenizer_path)
                if not tok.is_fast:
                    raise VerifierError(f"the PRM tokenizer at {self.tokenizer_path!r} must be a fast tokenizer "
                                        "(step positions come from its offset mapping)")
                labels = [self._single_token(tok, t, k) for k, t in
                          (("good_token", self.good_token), ("bad_token", self.bad_token)) if t is not None]
                dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
                model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype).to(self.device).eval()
                self._loaded = (model, tok, labels)
        return self._loaded

    @staticmethod
    def _single_token(tokenizer: Any, text: str, option: str) -> int:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise VerifierError(f"option {option}={text!r} must be a single token of the PRM's tokenizer; "
                                f"it encodes to {len(ids)} tokens {ids}")
        return ids[0]

    def build_input(self, steps: list[Step], task: Task, tokenizer: Any) -> tuple[list[int], list[int]] | str:
        """Token ids of `question + " " + step_1 + " ки\\n" + ...` and the position of the
        last token of each step tag (the logits there predict the label)."""
        text = _prompt_text(task) + " " if self.include_prompt else ""
        tag_ends = []
        for step in steps:
            text += f"{step.text} {self.step_tag}"
            tag_ends.append(len(text))
            text += "\n"
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        spans = [(a, i) for i, (a, b) in enumerate(offsets) if b > a]  # special tokens have empty spans
        starts = [a for a, _ in spans]
        positions = [spans[bisect_left(starts, e) - 1][1] for e in tag_ends]  # last token starting before the tag ends
        cut = max(0, len(ids) - self.max_length)
        if positions and positions[0] < cut:
            return f"{len(ids)} tokens: the steps do not fit in max_length={self.max_length}"
        return ids[cut:], [p - cut for p in positions]

    def score_steps_batch(self, steps: list[list[Step]], tasks: list[Task]) -> list[list | str]:
        model, tokenizer, labels = self._load()
        out: list[list | str] = []
        for first in range(0, len(steps), self.batch_size):
            chunk = range(first, min(first + self.batch_size, len(steps)))
            built = [self.build_input(steps[i], tasks[i], tokenizer) if steps[i] else ([], []) for i in chunk]
            todo = [b for b in built if not isinstance(b, str) and b[1]]
            probs = iter(self._label_probs(model, tokenizer, labels, todo)) if todo else iter(())
            out += [b if isinstance(b, str) else (next(probs) if b[1] else []) for b in built]
        return out

    def _label_probs(self, model: Any, tokenizer: Any, labels: list[int],
                     batch: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """P(good) at the tag positions of each sequence (one right-padded forward pass)."""
        import torch

        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=self.device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=self.device)
        with self._lock, torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        result = []
        for row, (_, positions) in enumerate(batch):
            at_tags = logits[row, positions]                        # (steps, vocab)
            if len(labels) == 2:                                    # Math-Shepherd: softmax over {good, bad}
                p = at_tags[:, labels].softmax(-1)[:, 0]
            else:
                p = at_tags.softmax(-1)[:, labels[0]]
            result.append([float(x) for x in p])
        return result

    def close(self) -> None:
        self._loaded = None
