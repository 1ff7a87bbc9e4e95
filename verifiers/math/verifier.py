"""Math answer verifier (`math`): the model's final answer against `Task.answer`, with SymPy.

Three stages, cheapest first:

1. extract the final answer from the completion (`<answer>`, the last `\\boxed{}` or a run of
   boxes holding one answer each, `#### x`, "the answer is x", the last math span, a bare
   answer, or the last number; `verifiers.math.extract`), and from the gold when the gold is
   a solution rather than an answer; normalise both (`verifiers.math.normalize`) and apply
   the label rules (`verifiers.math.labels`: `(p,q)=(3,2)` is `(3,2)` against a value);
2. decide in the calling thread when plain Python is certain: equal normalised strings,
   word answers and clock times, plain numbers and lists of them as exact fractions;
3. otherwise hand both strings to a small pool of long-lived worker processes that parse
   them with latex2sympy2_extended and compare them with SymPy (`verifiers.math.compare`:
   relations, intervals, matrices, sets, tuples, expressions).

`info["reason"]` names the rule that decided every verdict (with the label rules applied
before it, if any), so a reward can be audited row by row. The `audit` option (or the
`math_audit` verifier) also scores each row with math-verify, when it is installed, and
records `info["audit"] = {"agree", "ours", "math_verify"}`; the reward stays ours.

Decimal commas: `3,5` is 3.5 when the other side is a plain number and the comma cannot be a
thousands separator: not exactly three digits after it, or a lone `0` before it (`0,111`).
On the gold's side, where a list `1,2` is a common answer, only two digits after the comma
(`1,22`) or a lone `0` before it count. `1,000` is always a thousand.

Every check is bounded: answers longer than 1,000 characters or nested deeper than 60
brackets are refused before any parser sees them; numbers too large to evaluate are refused
inside the worker before evaluation; a worker that overruns `timeout` (CPU seconds) is killed and
replaced (`status="timeout"`), and its address space is capped (`memory_mb`). Workers and
their life-cycle: `verifiers.math.pool`.

Misuse raises `VerifierError`: a task without an answer, a gold answer the parser cannot
read, or an invalid option.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from numbers import Number as _Numeric

from verifiers.base import Task, Verdict, Verifier, VerifierError, check_batch, register_verifier
from verifiers.math.extract import FALLBACKS, MAX_ANSWER_CHARS, extract_answer, extract_gold
from verifiers.math.labels import align, text_rule
from verifiers.math.normalize import (
    MAX_NESTING, Normal, nesting_depth, normalize, numbers_match, parse_number, parse_tuples,
)
from verifiers.math.reference import available as reference_available
from verifiers.math.pool import release, shared_pool

MIN_CHECKS_PER_WORKER = 8   # verify_batch spreads SymPy checks over workers in groups at least this large
REFERENCE_TIMEOUT = 10.0    # seconds for one math-verify check in an audit (its first call imports it)

# --------------------------------------------------------------------------- the verifier


@lru_cache(maxsize=4096)
def _normal_gold(answer: str) -> tuple[Normal, str]:
    """A gold is extracted like a completion when it is a solution, not an answer."""
    found, method = extract_gold(answer)
    return normalize(found), method


def _split_list(text: str) -> list[str] | None:
    """Items of a bare comma list of plain numbers ("1, 2"), else None."""
    if "," not in text or any(c in text for c in "()[]{}\\=") :
        return None
    return [item.strip() for item in text.split(",")]


def _strip_assignment(text: str) -> tuple[str | None, str]:
    """("x", "3") for "x = 3"; (None, text) when it is not a one-variable assignment."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if sep and len(name) == 1 and name.isalpha() and "=" not in value:
        return name.lower(), value.strip()
    return None, text


@register_verifier("math")
class MathVerifier(Verifier):
    """Final math answer vs Task.answer: extraction, normalisation, exact numbers, SymPy equivalence.

    Options:
        rel_tol: relative tolerance for every numeric comparison (0: exact values only).
        sig_digits: a decimal answer to a gold that no finite decimal writes (1/3, sqrt 2,
            pi) passes when it agrees to this many significant digits (0: off).
        timeout: CPU seconds one SymPy check may use before its worker is killed (a machine too
            busy to run it gets up to 10 times that in wall time; `verifiers.math.pool`).
        fallback: "last_number" (use the last number when no answer marker is found) or
            "none" (no marker, no answer).
        workers: SymPy worker processes (verify_batch uses them all).
        memory_mb: address-space cap of a worker (0: none); beyond it, status "memory".
        audit: also score every row with math-verify (in the workers, when installed) and
            record `info["audit"] = {"agree", "ours", "math_verify"}`; the reward stays ours.
    """

    def __init__(self, rel_tol: float = 0.0, sig_digits: int = 6, timeout: float = 1.0,
                 fallback: str = "last_number", workers: int = 2, memory_mb: int = 1024, audit: bool = False):
        if not isinstance(audit, bool):
            raise VerifierError(f"option audit={audit!r} is not valid; valid values: true, false")
        self.audit = audit
        _check_option("rel_tol", rel_tol, float, lambda v: 0 <= v < 1, "a number in [0, 1)")
        _check_option("sig_digits", sig_digits, int, lambda v: 0 <= v <= 30, "an integer in [0, 30] (0: off)")
        _check_option("timeout", timeout, float, lambda v: 0 < v <= 600, "a number of seconds in (0, 600]")
        _check_option("workers", workers, int, lambda v: 1 <= v <= 64, "an integer in [1, 64]")
        _check_option("memory_mb", memory_mb, int, lambda v: v == 0 or v >= 256, "0 (no limit) or >= 256")
        if fallback not in FALLBACKS:
            raise VerifierError(f"option fallback={fallback!r} is not valid; valid values: {', '.join(FALLBACKS)}")
        self.rel_tol, self.sig_digits, self.timeout = float(rel_tol), sig_digits, float(timeout)
        self.fallback, self.workers, self.memory_mb = fallback, workers, memory_mb
        self.max_workers = workers
        self._release = None
        self._workers()

    # ---- stage 1 and 2: in the caller

    def _gold(self, task: Task) -> tuple[Normal, str]:
        answer = task.answer
        if answer is None:
            raise VerifierError(f"task {task.id!r} has no gold answer (Task.answer is None)")
        if isinstance(answer, bool) or not isinstance(answer, (str, _Numeric)):
            raise VerifierError(f"Task.answer of task {task.id!r} must be a string or a number, "
                                f"got {type(answer).__name__}")
        gold, method = _normal_gold(str(answer)[:10 * MAX_ANSWER_CHARS + 1])
        if not gold.text or len(gold.text) > 10 * MAX_ANSWER_CHARS:
            raise VerifierError(f"Task.answer of task {task.id!r} is empty or too long to be an answer: {answer!r:.80}")
        return gold, method

    def _prepare(self, completion: str, task: Task) -> Verdict | dict:
        """A decided verdict, or the info of a check that needs SymPy (with its request)."""
        gold, gold_method = self._gold(task)
        if not isinstance(completion, str):
            raise VerifierError(f"the completion for task {task.id!r} must be a string, got {type(completion).__name__}")
        answer, method = extract_answer(completion, self.fallback)
        info = {"answer": answer, "method": method, "gold": gold.text, "gold_method": gold_method}
        if answer is None:
            return _verdict("failed", info, error="no answer found", reason="no answer extracted")
        if len(answer) > MAX_ANSWER_CHARS or nesting_depth(answer) > MAX_NESTING:
            info["answer"] = answer[:80] + "..." if len(answer) > 80 else answer
            return _verdict("error", info, error="answer too long or nested too deeply to parse", reason="size guard")
        pred = normalize(answer)
        info["normalized"] = pred.text
        if not pred.text:
            return _verdict("failed", info, error="empty answer", reason="empty answer")
        gold_text, pred_text, rules = align(gold.text, pred.text)
        if gold.degrees != pred.degrees and "\\pi" in (pred_text if gold.degrees else gold_text):
            gold_text, pred_text = _radians(gold_text, gold.degrees), _radians(pred_text, pred.degrees)
            rules.append("degrees against radians")
        if rules:
            info["rules"] = rules
        gold, pred = Normal(gold_text, gold.percent), Normal(pred_text, pred.percent)
        decided = self._fast(gold, pred)
        if decided is not None:
            passed, reason, parsed = decided
            return _verdict("passed" if passed else "failed", {**info, "path": "fast", **parsed},
                            reason=_with_rules(reason, rules))
        info["request"] = {"gold": gold.text, "pred": pred.text, "gold_percent": gold.percent,
                           "pred_percent": pred.percent, "rel_tol": self.rel_tol, "sig_digits": self.sig_digits}
        return info

    def _fast(self, gold: Normal, pred: Normal) -> tuple[bool, str, dict] | None:
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
            same = numbers_match(g, p, self.rel_tol, self.sig_digits)
            return same, "equal numbers" if same else "different numbers", _parsed([g], [p])
        gl, pl = _split_list(gtext), _split_list(ptext)
        if gl and pl:
            gn, pn = [parse_number(x) for x in gl], [parse_number(x) for x in pl]
            if None not in gn and None not in pn:
                same = _same_number_sets(gn, pn, self.rel_tol, self.sig_digits)
                return same, "same numbers in any order" if same else "different number lists", _parsed(gn, pn)
        gt, pt = parse_tuples(gtext), parse_tuples(ptext)
        if gt and pt:
            same = _same_tuple_sets(gt, pt, self.rel_tol, self.sig_digits)
            return same, "same tuples in any order" if same else "different tuples", {}
        return None

    # ---- stage 3: in a worker

    def _finish(self, task: Task, info: dict, reply: dict) -> Verdict:
        info = {k: v for k, v in info.items() if k != "request"}
        info["path"] = "sympy"
        status = reply.get("status")
        if status == "gold_error":
            raise VerifierError(f"Task.answer of task {task.id!r} cannot be parsed as math: {reply.get('error')}")
        for key in ("gold_parsed", "answer_parsed"):
            if key in reply:
                info[key] = reply[key]
        rules = info.get("rules", [])
        if status in ("passed", "failed"):
            return _verdict(status, info, reason=_with_rules(reply.get("reason", "not equivalent"), rules))
        status = status if status in ("timeout", "memory", "verifier_error") else "error"
        reason = {"timeout": "SymPy deadline", "memory": "worker memory cap",
                  "verifier_error": "the worker failed"}.get(status, "answer not parseable")
        return _verdict(status, info, error=reply.get("error", "unknown worker failure"), reason=reason)

    def verify(self, completion: str, task: Task) -> Verdict:
        prepared = self._prepare(completion, task)
        if not isinstance(prepared, Verdict):
            prepared = self._finish(task, prepared, self._workers().run(prepared["request"], self.timeout))
        return self._audit([completion], [task], [prepared])[0] if self.audit else prepared

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        """Fast paths here; the rest spread over the workers, one thread per worker."""
        check_batch(completions, tasks)
        prepared = [self._prepare(c, t) for c, t in zip(completions, tasks)]
        pending = [i for i, p in enumerate(prepared) if not isinstance(p, Verdict)]
        replies = self._run_all([prepared[i]["request"] for i in pending], self.timeout)
        for i, reply in zip(pending, replies):
            prepared[i] = self._finish(tasks[i], prepared[i], reply)
        return self._audit(completions, tasks, prepared) if self.audit else prepared

    def _run_all(self, requests: list[dict], timeout: float) -> list[dict]:
        """Worker replies in order, one thread per worker in use."""
        workers = self._workers()
        # Another worker costs an interpreter start (~0.6 s of CPU): worth it for a long queue,
        # and only while a core is free to run it.
        lanes = min(self.workers, free_cores(), max(1, len(requests) // MIN_CHECKS_PER_WORKER))
        if lanes == 1:
            return [workers.run(r, timeout) for r in requests]
        with ThreadPoolExecutor(max_workers=lanes) as threads:
            return list(threads.map(lambda r: workers.run(r, timeout), requests))

    def _audit(self, completions: list[str], tasks: list[Task], verdicts: list[Verdict]) -> list[Verdict]:
        """Score each row with math-verify too (in the workers) and record the comparison."""
        if not reference_available():
            for v in verdicts:
                v.info["audit"] = {"agree": None, "ours": v.passed, "math_verify": None,
                                   "error": "math-verify is not installed: nothing compared"}
            return verdicts
        requests = [{"kind": "reference", "gold": str(t.answer), "completion": c} for c, t in zip(completions, tasks)]
        replies = self._run_all(requests, max(10 * self.timeout, REFERENCE_TIMEOUT))
        for v, reply in zip(verdicts, replies):
            theirs = reply.get("status") == "passed"
            v.info["audit"] = {"agree": theirs == v.passed, "ours": v.passed, "math_verify": theirs}
            if reply.get("error"):
                v.info["audit"]["error"] = reply["error"]
        return verdicts

    def _workers(self):
        """The shared pool, counting this verifier as a user again after a `close()`."""
        if self._release is None or not self._release.alive:
            self._pool = shared_pool(self.workers, self.memory_mb)
            self._release = weakref.finalize(self, release, self._pool)
        return self._pool

    def warm_up(self) -> None:
        """Start one SymPy worker now rather than at the first answer that needs it."""
        self._workers().start_one()

    def close(self) -> None:
        """Stop counting as a user of the shared workers (the last user kills them)."""
        self._release()


def free_cores() -> int:
    """Cores not busy by the load average (at least 1)."""
    try:
        return max(1, (os.cpu_count() or 1) - int(os.getloadavg()[0]))
    except OSError:
        return os.cpu_count() or 1


def _check_option(name: str, value, kind: type, ok, valid: str) -> None:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or (kind is int and not isinstance(value, int)) or not ok(value):
        raise VerifierError(f"option {name}={value!r} is not valid; valid values: {valid}")


def _parsed(gold: list, pred: list) -> dict:
    show = lambda numbers: ", ".join(str(n.value) + ("%" if n.percent else "") for n in numbers)  # noqa: E731
    return {"gold_parsed": show(gold), "answer_parsed": show(pred)}


def _decimal_comma(text: str, gold: bool = False) -> bool:
    """`3,5` is 3.5 when it cannot be a thousands separator (see the module docstring)."""
    head, _, tail = text.lstrip("-").partition(",")
    if not (head.isdigit() and tail.isdigit()):
        return False
    return head == "0" or (len(tail) == 2 if gold else len(tail) != 3)


def _same_number_sets(gold: list, pred: list, rel_tol: float, sig_digits: int) -> bool:
    """Bare lists are sets of answers: order and repeats do not matter."""
    return _same_sets(gold, pred, lambda g, p: numbers_match(g, p, rel_tol, sig_digits))


def _same_tuple_sets(gold: list, pred: list, rel_tol: float, sig_digits: int) -> bool:
    """Lists of tuples (`(1,2), (3,4)`) are sets of ordered tuples."""
    return _same_sets(gold, pred, lambda g, p: len(g) == len(p) and
                      all(numbers_match(a, b, rel_tol, sig_digits) for a, b in zip(g, p)))


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


def _radians(text: str, degrees: bool) -> str:
    """`45^\\circ` (its sign stripped by normalisation) as radians, to meet a gold or answer
    given in radians; unmarked numbers stay numbers (45 is not pi/4)."""
    return f"({text}) \\cdot \\frac{{\\pi}}{{180}}" if degrees else text


def _with_rules(reason: str, rules: list[str]) -> str:
    return f"{reason} (after {'; '.join(rules)})" if rules else reason


def _verdict(status: str, info: dict, error: str | None = None, reason: str | None = None) -> Verdict:
    info = {"status": status, **info}
    info["reason"] = reason or error or status
    if error is not None:
        info["error"] = error
    passed = status == "passed"
    return Verdict(1.0 if passed else 0.0, passed, info)


@register_verifier("math_audit")
class MathAuditVerifier(MathVerifier):
    """`math` whose every verdict also records math-verify's in `info["audit"]`.

    The reward stays ours; a training run logs how often the two disagree. Options as `math`.
    """

    def __init__(self, rel_tol: float = 0.0, sig_digits: int = 6, timeout: float = 1.0,
                 fallback: str = "last_number", workers: int = 2, memory_mb: int = 1024):
        super().__init__(rel_tol, sig_digits, timeout, fallback, workers, memory_mb, audit=True)
