"""The `{"completion", "task"}` record format shared by `python -m verifiers score` (one record
per JSON line) and `python -m verifiers serve` (a JSON list of records per request).

A record that cannot be read still gets its verdict, in its place: `passed=False`,
`info.status="verifier_error"` (no completion was judged: the record, not the model, is at
fault, so a trainer masks it out), and `info.error` naming the record (`line 3`, `item 0`) and
the problem. Verdicts cross the wire whole: `info.status` keeps the verifier's own statuses,
its faults included.
"""

from __future__ import annotations

import json
from typing import Any

from verifiers.base import Task, Verdict, Verifier, VerifierError, error_verdict

Parsed = tuple[str, Task] | Verdict  # a record ready to verify, or the error verdict it earned


def parse_line(lineno: int, line: str) -> Parsed:
    """A JSON line of the CLI's input, read as a record."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return error_verdict("verifier_error", f"line {lineno}: invalid JSON: {exc}")
    return parse_record(f"line {lineno}", obj)


def parse_record(where: str, obj: Any) -> Parsed:
    """A (completion, task) pair, or an error verdict saying what is wrong with the record."""
    if not isinstance(obj, dict):
        return error_verdict("verifier_error", f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("completion", "task") if k not in obj]
    if missing:
        return error_verdict("verifier_error", f"{where}: missing field(s) {missing}")
    if not isinstance(obj["completion"], str):
        return error_verdict("verifier_error", f"{where}: field 'completion' must be a string")
    try:
        return obj["completion"], Task.from_dict(obj["task"])
    except (VerifierError, TypeError) as exc:
        return error_verdict("verifier_error", f"{where}: field 'task': {exc}")


def score_parsed(verifier: Verifier, parsed: list[Parsed], names: list[str]) -> list[Verdict]:
    """One verdict per parsed record, in order; `names[i]` labels record i in error messages."""
    good = [i for i, p in enumerate(parsed) if not isinstance(p, Verdict)]
    out: list[Verdict] = list(parsed)  # type: ignore[arg-type]
    try:
        verdicts = verifier.verify_batch([parsed[i][0] for i in good], [parsed[i][1] for i in good])
        for i, v in zip(good, verdicts):
            out[i] = v
    except VerifierError:
        # A task the verifier cannot judge spoils only its own record: find it one by one.
        for i in good:
            try:
                out[i] = verifier.verify(*parsed[i])
            except VerifierError as exc:
                out[i] = error_verdict("verifier_error", f"{names[i]}: {exc}")
    return out


def to_json(obj: Any) -> str:
    """JSON text of verdicts; a value JSON cannot hold (a verifier may put any object in `info`)
    is written as its repr rather than failing the whole answer."""
    return json.dumps(obj, default=repr)
