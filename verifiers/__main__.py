"""Command line of the verifiers.

    python -m verifiers list
    python -m verifiers score --verifier NAME [--option k=v ...] --input samples.jsonl [--output out.jsonl]

Each input line is `{"completion": "...", "task": {Task fields}}`; each output line, in the
same order, `{"reward": float, "passed": bool, "info": {...}}`. A malformed input line still
gets its output line: `passed=false`, `info.status="error"`, and `info.error` naming the line
and the problem. Progress goes to stderr when the input is long.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from typing import IO, Iterator

from verifiers import Task, Verdict, VerifierError, get_verifier, list_verifiers
from verifiers.base import error_verdict, iter_chunks, parse_option, verifier_options

CHUNK = 256          # lines verified together (verify_batch parallelises inside a chunk)
PROGRESS_EVERY = 1000  # lines between progress reports on stderr


def _parse_line(lineno: int, line: str) -> tuple[str, Task] | Verdict:
    """A (completion, task) pair, or an error verdict naming what is wrong with the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return error_verdict("error", f"line {lineno}: invalid JSON: {exc}")
    if not isinstance(obj, dict):
        return error_verdict("error", f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("completion", "task") if k not in obj]
    if missing:
        return error_verdict("error", f"line {lineno}: missing field(s) {missing}")
    if not isinstance(obj["completion"], str):
        return error_verdict("error", f"line {lineno}: field 'completion' must be a string")
    try:
        return obj["completion"], Task.from_dict(obj["task"])
    except (VerifierError, TypeError) as exc:
        return error_verdict("error", f"line {lineno}: field 'task': {exc}")


def _score_chunk(verifier, parsed: list[tuple[str, Task] | Verdict], first_lineno: int) -> list[Verdict]:
    good = [i for i, p in enumerate(parsed) if not isinstance(p, Verdict)]
    out: list[Verdict] = list(parsed)  # type: ignore[arg-type]
    try:
        verdicts = verifier.verify_batch([parsed[i][0] for i in good], [parsed[i][1] for i in good])
        for i, v in zip(good, verdicts):
            out[i] = v
    except VerifierError:
        # A task the verifier cannot judge spoils only its own line: find it one by one.
        for i in good:
            try:
                out[i] = verifier.verify(*parsed[i])
            except VerifierError as exc:
                out[i] = error_verdict("error", f"line {first_lineno + i}: {exc}")
    return out


def score_lines(verifier, numbered: Iterator[tuple[int, str]], progress: IO | None = None) -> Iterator[Verdict]:
    """Yield one verdict per (line number, line), in order."""
    done, start = 0, time.perf_counter()
    for chunk in iter_chunks(numbered, CHUNK):
        parsed = [_parse_line(n, line) for n, line in chunk]
        yield from _score_chunk(verifier, parsed, chunk[0][0])
        done += len(chunk)
        if progress is not None and done // PROGRESS_EVERY != (done - len(chunk)) // PROGRESS_EVERY:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"scored {done} lines ({rate:.0f}/s)", file=progress, flush=True)


def _options(name: str, pairs: list[str]) -> dict:
    params = verifier_options(name)
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise VerifierError(f"--option {pair!r}: expected k=v")
        if key not in params:
            raise VerifierError(f"unknown option {key!r} for verifier {name!r}; valid options: {sorted(params) or 'none'}")
        options[key] = parse_option(key, params[key], value)
    return options


def cmd_list(_args) -> int:
    for name, desc in list_verifiers().items():
        print(f"{name}: {desc}")
        for opt, p in verifier_options(name).items():
            default = "" if p.default is inspect.Parameter.empty else f" = {p.default!r}"
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            print(f"    {opt}{': ' + ann if ann else ''}{default}")
    return 0


def cmd_score(args) -> int:
    verifier = get_verifier(args.verifier, **_options(args.verifier, args.option))
    src = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    dst = sys.stdout if args.output is None else open(args.output, "w", encoding="utf-8")
    try:
        # Blank lines are not records; every other line gets exactly one output line.
        numbered = ((n, line) for n, line in enumerate(src, 1) if line.strip())
        for verdict in score_lines(verifier, numbered, progress=sys.stderr):
            dst.write(json.dumps(verdict.to_dict(), default=repr) + "\n")
    finally:
        verifier.close()
        if src is not sys.stdin:
            src.close()
        if dst is not sys.stdout:
            dst.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifiers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered verifiers, their descriptions and options").set_defaults(fn=cmd_list)
    score = sub.add_parser("score", help="score a JSONL file of {completion, task} lines")
    score.add_argument("--verifier", required=True, help="registered verifier name (see `list`)")
    score.add_argument("--option", action="append", default=[], metavar="K=V",
                       help="verifier option; values are read by the option's type (JSON for lists/dicts)")
    score.add_argument("--input", required=True, help="input JSONL file, or - for stdin")
    score.add_argument("--output", help="output JSONL file (default: stdout)")
    score.set_defaults(fn=cmd_score)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (VerifierError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
