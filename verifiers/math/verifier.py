"""Math answer verifier (`math`): the model's final answer against `Task.answer`, with SymPy.

Three stages, cheapest first:

1. extract the final answer from the completion (`<answer>`, the last `\\boxed{}` or a run of
   boxes holding one answer each, `#### x`, "the answer is x"; without a marker, the fallback:
   the last math span, a bare answer, or the last number; `verifiers.math.extract` and
   `verifiers.math.ending`), and from the gold when the gold is a solution rather than an
   answer; normalise both (`verifiers.math.normalize`) and apply the form rules
   (`verifiers.math.fast`: multiple choice, number bases, labels such as `(p,q)=(3,2)`
   against a value, degrees against radians);
2. decide in the calling thread when plain Python is certain: equal normalised strings,
   word answers and clock times, plain numbers and lists of them as exact fractions;
3. otherwise hand both strings to a small pool of long-lived worker processes that parse
   them with latex2sympy2_extended and compare them with SymPy (`verifiers.math.compare`:
   relations, intervals, matrices, sets, tuples, expressions).

`info["reason"]` names the rule that decided every verdict (with the form rules applied
before it, if any), so a reward can be audited row by row; a completion without an answer
says why (no marker and no number, a hedge, cut off, an unfinished computation). The `audit`
option (or the `math_audit` verifier) also scores each row with math-verify, when it is
installed, and records `info["audit"] = {"agree", "ours", "math_verify"}`; the reward stays ours.

The sample's `finish_reason` (contract, docs/verifiers.md): `Task.meta["finish_reason"]` on
a per-sample copy of the task, "stop" (it ended on its own or at a stop sequence), "length"
(cut at the token limit) or absent/None (not known); any other value is misuse. The call
stays `verify(completion, task)`, so the fact travels through composites, the command line
and the HTTP server unchanged. A cut-off completion keeps only the answers it finished (a
complete box, a closed `<answer>` tag, a marker whose answer something ends); the fallback
gives nothing. When the reason is not known, the text decides: a completion that stops
mid-sentence ("... she sells them at") has no unmarked answer.

Policies (decisions of this verifier; each has its rows in tests/verifiers/test_math_rules.py):

* The fallback (no marker) reads the ending the way models end answers: "so she has 18
  apples." is 18; "x = 7. Check: 3(7) - 4 = 17 ✓" is 7, the value stated before the check
  (a check recomputes the problem's numbers, and the answer was stated first), unless a
  conclusion follows the check ("... So the total should be 6."); "either 3 or 4", "could be
  2, 3, 5, or 7" are hedges and no answer, even when one item is right; "so x = 2 or x = 3."
  (alternatives without a hedge word) is the list of both, which a single gold never equals;
  "Then 9 × 2" ends inside a computation and has no answer. Rules and examples:
  `verifiers.math.ending`.
* Renamed function arguments: a function's argument is a bound name. `f(t) = t^2` is the
  function x ↦ x², so it equals `x^2` and `f(x) = x^2`; an unlabelled `t^2` is an expression
  in another variable and fails against `x^2`, as does `f(x) = t^2`.
* Degree answers against radian golds: an answer marked in degrees (`45^\\circ`) against a
  gold with `\\pi` (`\\frac{\\pi}{4}`) is converted and passes, and the reverse; an unmarked 45
  stays the number 45 (models do not write radians without π). A trig function of degrees is
  evaluated in degrees (`\\sin 60^\\circ` is `\\frac{\\sqrt3}{2}`), of a bare number in radians.
* `j` against `i`: `j` is the imaginary unit only in an answer whose only symbol it is,
  against a gold that is a non-real number (`3+2j` is `3+2i`, an engineer's spelling);
  anywhere else `j` is a variable (an index, a count).
* Number bases: a number with a number subscript is in that base (`1011_2` is 11 and not
  `1011_3`, which is 31); bare digits against a gold in base b are read in base b (`1011`
  for `1011_2`: models drop the subscript the question asked for), and digits base b cannot
  hold fail (`68` for `2112_3` restates the question's decimal).
* Infinity keeps its sign: `\\infty` and `-\\infty` differ; sets in words ("all real numbers",
  `\\mathbb{R}`, "no solution", ∅) are the sets they name.
* Multiple choice: a letter against a gold letter, the letters decide; a letter against a
  gold value (or a value against a gold letter), the letter means its choice's value in the
  task's prompt, and fails when the prompt lists no choices (`verifiers.math.fast`).
* Decimal commas (`3,5` against 3.5) and what stays a list (`1,2`): `verifiers.math.fast`.

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
from verifiers.math.extract import FALLBACKS, FINISH_REASONS, MAX_ANSWER_CHARS, extract_answer, extract_gold
from verifiers.math.fast import align_forms, decide
from verifiers.math.normalize import MAX_NESTING, Normal, nesting_depth, normalize
from verifiers.math.pool import release, shared_pool
from verifiers.math.reference import available as reference_available

MIN_CHECKS_PER_WORKER = 8   # verify_batch spreads SymPy checks over workers in groups at least this large
REFERENCE_TIMEOUT = 10.0    # seconds for one math-verify check in an audit (its first call imports it)
_NO_ANSWER = {"hedge": "no answer: a hedge between alternatives", "cut_off": "no answer: cut off before one",
              "unfinished computation": "no answer: the text ends inside a computation"}

# --------------------------------------------------------------------------- the verifier


@lru_cache(maxsize=4096)
def _normal_gold(answer: str) -> tuple[Normal, str]:
    """A gold is extracted like a completion when it is a solution, not an answer."""
    found, method = extract_gold(answer)
    return normalize(found), method


@register_verifier("math")
class MathVerifier(Verifier):
    """Final math answer vs Task.answer: extraction, normalisation, exact numbers, SymPy equivalence.

    Options:
        rel_tol: relative tolerance for every numeric comparison (0: exact values only).
        sig_digits: a decimal answer to a gold that no finite decimal writes (1/3, sqrt 2,
            pi) passes when it agrees to this many significant digits (0: off).
        timeout: CPU seconds one SymPy check may use before its worker is killed (a machine too
            busy to run it gets up to 10 times that in wall time; `verifiers.math.pool`).
        fallback: "last_number" (with no answer marker, read the completion's ending:
            `verifiers.math.ending`) or "none" (no marker, no number taken; a math span or a
            completion that is a bare answer still counts).
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
            raise VerifierError(f"the completion for task {task.id!r} must be a string, "
                                f"got {type(completion).__name__}")
        answer, method = extract_answer(completion, self.fallback, finish_reason(task))
        info = {"answer": answer, "method": method, "gold": gold.text, "gold_method": gold_method}
        if answer is None:
            return _verdict("failed", info, error="no answer found",
                            reason=_NO_ANSWER.get(method, "no answer extracted"))
        if len(answer) > MAX_ANSWER_CHARS or nesting_depth(answer) > MAX_NESTING:
            info["answer"] = answer[:80] + "..." if len(answer) > 80 else answer
            return _verdict("error", info, error="answer too long or nested too deeply to parse", reason="size guard")
        pred = normalize(answer)
        info["normalized"] = pred.text
        if not pred.text:
            return _verdict("failed", info, error="empty answer", reason="empty answer")
        forms = align_forms(gold, pred, task.prompt)
        if forms.rules:
            info["rules"] = forms.rules
        decided = ((*forms.decided, {}) if forms.decided
                   else decide(forms.gold, forms.pred, self.rel_tol, self.sig_digits))
        if decided is not None:
            passed, reason, parsed = decided
            return _verdict("passed" if passed else "failed", {**info, "path": "fast", **parsed},
                            reason=_with_rules(reason, forms.rules))
        gold, pred = forms.gold, forms.pred
        info["request"] = {"gold": gold.text, "pred": pred.text, "gold_percent": gold.percent,
                           "pred_percent": pred.percent, "rel_tol": self.rel_tol, "sig_digits": self.sig_digits,
                           **forms.arguments}
        return info

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


def finish_reason(task: Task) -> str | None:
    """`Task.meta["finish_reason"]`: "stop", "length", or None (not known); see the module docstring."""
    reason = task.meta.get("finish_reason")
    if reason not in FINISH_REASONS:
        raise VerifierError(f'Task.meta["finish_reason"] of task {task.id!r} is {reason!r}; '
                            f"valid values: 'stop', 'length', None")
    return reason


def _check_option(name: str, value, kind: type, ok, valid: str) -> None:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or (kind is int and not isinstance(value, int)) or not ok(value):
        raise VerifierError(f"option {name}={value!r} is not valid; valid values: {valid}")


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
