"""The verifier contract: `Task`, `Verdict`, `Verifier`, the registry (`CompositeVerifier`:
`verifiers.composite`).

Rules every verifier keeps (docs/verifiers.md has the whole contract):

* `verify` never raises on model output. A bad or hostile completion gives
  `passed=False` with `info["status"]` (one of `STATUSES`) and `info["error"]`.
* Misuse raises `VerifierError` (a `ValueError`): an unknown verifier name, an unknown or
  badly typed option, a task that lacks what the verifier needs. The message names the
  offending field and lists the valid choices.
* A failure is the model's or the verifier's own. The model's (`failed`, `timeout`,
  `memory`, `error`: a wrong, slow, greedy or unreadable answer) is a judgement, and its
  reward trains. The verifier's (`VERIFIER_FAULTS`: `sandbox_error`, the sandbox could not
  run the sample; `verifier_error`, a checker that crashed or could not start, a server none
  could reach) is no judgement at all: `Verdict.verifier_fault` is true, trainers leave the
  row out of the loss and stop when such rows are frequent, evaluations count them apart.

A verifier is a `Verifier` subclass whose keyword arguments are its options, or a plain
function `(completion, task, **options) -> float | Verdict` registered with
`@register_verifier("name")`. Third-party packages register through the entry-point group
`verirl.verifiers` (the entry point's name is the verifier's name; it points at a class or
a function).
"""

from __future__ import annotations

import inspect
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable

from verifiers.options import kind_of, parse_value

ENTRY_POINT_GROUP = "verirl.verifiers"
STATUSES = ("passed", "failed", "timeout", "memory", "error", "sandbox_error", "verifier_error")
# The statuses that are the verifier's failure, not the model's: no judgement was made.
VERIFIER_FAULTS = frozenset({"sandbox_error", "verifier_error"})


class VerifierError(ValueError):
    """Misuse of a verifier: unknown name, bad option, or a task it cannot judge."""


# --------------------------------------------------------------------------- data


def _check_prompt(prompt: Any) -> None:
    if isinstance(prompt, str):
        return
    if not isinstance(prompt, list) or not prompt:
        raise VerifierError(
            f"Task.prompt must be a string or a non-empty list of chat messages, got {type(prompt).__name__}"
        )
    for i, msg in enumerate(prompt):
        if not (isinstance(msg, dict) and isinstance(msg.get("role"), str) and isinstance(msg.get("content"), str)):
            raise VerifierError(f"Task.prompt[{i}] must be a dict with string 'role' and 'content', got {msg!r:.80}")


@dataclass(frozen=True)
class Task:
    """One problem: what the model sees (`prompt`) and what judges it (`answer`, `tests`)."""

    id: str
    prompt: str | list[dict]
    answer: Any = None
    tests: dict | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise VerifierError(f"Task.id must be a non-empty string, got {self.id!r:.80}")
        _check_prompt(self.prompt)
        if self.tests is not None and not isinstance(self.tests, dict):
            raise VerifierError(f"Task.tests of task {self.id!r} must be a dict or None, "
                                f"got {type(self.tests).__name__}")
        if not isinstance(self.meta, dict):
            raise VerifierError(f"Task.meta of task {self.id!r} must be a dict, got {type(self.meta).__name__}")

    __hash__ = None  # dict fields: a Task is a record, not a key

    @classmethod
    def from_dict(cls, data: Any) -> "Task":
        """Build a Task from a JSON object, naming any unknown or missing field."""
        if not isinstance(data, dict):
            raise VerifierError(f"a task must be a JSON object, got {type(data).__name__}")
        known = {"id", "prompt", "answer", "tests", "meta"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VerifierError(f"unknown task field(s) {unknown}; valid fields: {sorted(known)}")
        missing = [k for k in ("id", "prompt") if k not in data]
        if missing:
            raise VerifierError(f"task is missing required field(s) {missing}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def sampled(self, finish_reason: str | None) -> "Task":
        """This task as the verifier of one sample sees it: `meta["finish_reason"]` says whether
        the sampler cut the completion ("length") or it ended ("stop"), so that a verifier never
        reads an answer into text that was cut off (docs/verifiers.md, `Task.meta`)."""
        if finish_reason is None or self.meta.get("finish_reason") == finish_reason:
            return self
        return replace(self, meta={**self.meta, "finish_reason": finish_reason})


@dataclass(frozen=True)
class Verdict:
    """The judgement of one completion: `reward` trains, `passed` counts for pass@k."""

    reward: float
    passed: bool
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.reward, bool) or not isinstance(self.reward, (int, float)):
            raise VerifierError(f"Verdict.reward must be a number, got {type(self.reward).__name__}")
        if not math.isfinite(self.reward):
            raise VerifierError(f"Verdict.reward must be finite, got {self.reward}")
        object.__setattr__(self, "reward", float(self.reward))
        object.__setattr__(self, "passed", bool(self.passed))
        if not isinstance(self.info, dict):
            raise VerifierError(f"Verdict.info must be a dict, got {type(self.info).__name__}")

    __hash__ = None

    @property
    def verifier_fault(self) -> bool:
        """Whether this is the verifier's failure (`VERIFIER_FAULTS`): no judgement of the
        completion was made, so its reward must not train and pass@k must not count it."""
        return self.info.get("status") in VERIFIER_FAULTS

    def to_dict(self) -> dict:
        return {"reward": self.reward, "passed": self.passed, "info": self.info}


def error_verdict(status: str, error: str, **info: Any) -> Verdict:
    """A failing verdict: bad model output (`error`, `timeout`, ...) or the verifier's own
    failure (`VERIFIER_FAULTS`); never for misuse, which raises."""
    assert status in STATUSES, status
    return Verdict(0.0, False, {"status": status, "error": error, **info})


# --------------------------------------------------------------------------- verifiers


class Verifier:
    """Base class. Subclasses set `name`, `description`, take their options as keyword
    arguments of `__init__`, and implement `verify`. `verify_batch` runs `verify` over a
    thread pool; verifiers whose work holds the GIL override it with processes."""

    name: str = ""
    description: str = ""
    max_workers: int | None = None

    def verify(self, completion: str, task: Task) -> Verdict:
        raise NotImplementedError

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        check_batch(completions, tasks)
        if len(completions) <= 1:
            return [self.verify(c, t) for c, t in zip(completions, tasks)]
        workers = self.max_workers or min(len(completions), os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.verify, completions, tasks))

    def warm_up(self) -> None:
        """Start worker processes or load models now instead of on first use (no-op by default);
        trainers call it in the background during their set-up."""

    def close(self) -> None:
        """Release worker processes or other resources (no-op by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def check_batch(completions: list, tasks: list) -> None:
    if len(completions) != len(tasks):
        raise VerifierError(f"verify_batch got {len(completions)} completions but {len(tasks)} tasks")
    for i, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise VerifierError(f"tasks[{i}] must be a Task, got {type(task).__name__}")


class FunctionVerifier(Verifier):
    """Wraps a registered function `(completion, task, **options) -> float | Verdict`.

    A float result becomes `Verdict(reward, passed=reward >= pass_threshold)`; the
    threshold is an option of every function verifier (default 1.0, i.e. full credit).

    A function that raises on a sample has a bug, and that sample gets a `verifier_error`
    verdict naming the exception, rather than the whole batch failing or the sample a 0: the
    trainers leave it out of the loss, count it, and stop the run when such verdicts are
    frequent (the bug is reported there, not hidden). `VerifierError` (misuse) still raises.
    """

    def __init__(self, fn: Callable, name: str, description: str, pass_threshold: float = 1.0, **options: Any):
        self.fn, self.name, self.description = fn, name, description
        self.pass_threshold = pass_threshold
        self.options = options

    def verify(self, completion: str, task: Task) -> Verdict:
        try:
            out = self.fn(completion, task, **self.options)
        except VerifierError:
            raise
        except Exception as exc:  # noqa: BLE001 - the checker's bug, reported as its fault (docstring)
            return error_verdict("verifier_error", f"verifier {self.name!r} raised {type(exc).__name__}: "
                                                   f"{str(exc)[:500]}")
        if isinstance(out, Verdict):
            return out
        if isinstance(out, bool) or not isinstance(out, (int, float)):
            raise VerifierError(f"verifier {self.name!r} returned {type(out).__name__}; expected float or Verdict")
        return Verdict(float(out), out >= self.pass_threshold,
                       {"status": "passed" if out >= self.pass_threshold else "failed"})


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Entry:
    name: str
    target: Any  # a Verifier subclass or a function
    description: str

    def options(self) -> dict[str, inspect.Parameter]:
        """Option name -> parameter (keyword arguments of the class or function)."""
        if isinstance(self.target, type):
            params = list(inspect.signature(self.target.__init__).parameters.values())[1:]
        else:
            sig = inspect.signature(self.target)
            params = list(sig.parameters.values())[2:]
            if sig.return_annotation not in ("Verdict", Verdict):  # a float result needs a threshold
                params.append(inspect.Parameter("pass_threshold", inspect.Parameter.KEYWORD_ONLY, default=1.0,
                                                annotation="float"))
        return {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def build(self, options: dict) -> Verifier:
        valid = self.options()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise VerifierError(
                f"unknown option(s) {unknown} for verifier {self.name!r}; valid options: {sorted(valid) or 'none'}"
            )
        if isinstance(self.target, type):
            return self.target(**options)
        return FunctionVerifier(self.target, self.name, self.description, **options)


_REGISTRY: dict[str, _Entry] = {}
_entry_points_loaded = False


def _first_line(doc: str | None) -> str:
    return (inspect.cleandoc(doc).splitlines() or [""])[0] if doc else ""


def register_verifier(name: str, description: str | None = None) -> Callable:
    """Decorator registering a `Verifier` subclass or a function under `name`."""
    if not isinstance(name, str) or not name:
        raise VerifierError(f"a verifier name must be a non-empty string, got {name!r}")

    def decorate(target):
        if isinstance(target, type) and not issubclass(target, Verifier):
            raise VerifierError(f"{target.__name__} must subclass verifiers.Verifier to be registered")
        if not isinstance(target, type) and not callable(target):
            raise VerifierError(f"cannot register {target!r}: not a class or a function")
        if name in _REGISTRY and _REGISTRY[name].target is not target:
            raise VerifierError(f"a verifier named {name!r} is already registered ({_REGISTRY[name].target!r})")
        if isinstance(target, type):
            target.name = name
        _REGISTRY[name] = _Entry(name, target, description or _first_line(target.__doc__))
        return target

    return decorate


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib import metadata

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        register_verifier(ep.name)(ep.load())


def list_verifiers() -> dict[str, str]:
    """Registered names -> one-line descriptions, sorted by name."""
    _load_entry_points()
    return {n: _REGISTRY[n].description for n in sorted(_REGISTRY)}


def verifier_options(name: str) -> dict[str, inspect.Parameter]:
    return _entry(name).options()


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:  # entry points only for names not built in: reading every installed
        _load_entry_points()   # distribution's metadata costs a CLI run 0.1-0.3 s (and a built-in wins anyway)
    if name not in _REGISTRY:
        raise VerifierError(f"unknown verifier {name!r}; known verifiers: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def get_verifier(name: str, **options: Any) -> Verifier:
    """Build the verifier registered as `name` with its options."""
    return _entry(name).build(options)


def parse_option(name: str, param: inspect.Parameter, text: str) -> Any:
    """Convert a command-line `k=v` value by the option's annotation (`verifiers.options`)."""
    kind = kind_of(param.annotation)
    try:
        return parse_value(kind, text)
    except (TypeError, ValueError) as exc:
        raise VerifierError(f"option {name}={text!r}: cannot read as {kind.removeprefix('optional-')}: {exc}") from None


def iter_chunks(items: Iterable, size: int) -> Iterable[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
