"""Command line of the verifiers.

    python -m verifiers list
    python -m verifiers score --verifier NAME [--option k=v ...] --input samples.jsonl [--output out.jsonl]
    python -m verifiers serve --verifier NAME [--option k=v ...] [--host H] [--port P]   (see verifiers.serve)

Each input line is `{"completion": "...", "task": {Task fields}}`; each output line, in the
same order, `{"reward": float, "passed": bool, "info": {...}}`. A malformed input line still
gets its output line: `passed=false`, `info.status="error"`, and `info.error` naming the line
and the problem. Progress goes to stderr when the input is long.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from typing import IO, Iterator

from verifiers import Verdict, VerifierError, get_verifier, list_verifiers
from verifiers.base import iter_chunks, parse_option, verifier_options
from verifiers.options import REQUIRED, help_line, kind_of, parse_pairs
from verifiers.records import parse_line, score_parsed, to_json

CHUNK = 256          # lines verified together (verify_batch parallelises inside a chunk)
PROGRESS_EVERY = 1000  # lines between progress reports on stderr


def score_lines(verifier, numbered: Iterator[tuple[int, str]], progress: IO | None = None) -> Iterator[Verdict]:
    """Yield one verdict per (line number, line), in order."""
    done, start = 0, time.perf_counter()
    for chunk in iter_chunks(numbered, CHUNK):
        parsed = [parse_line(n, line) for n, line in chunk]
        yield from score_parsed(verifier, parsed, [f"line {n}" for n, _ in chunk])
        done += len(chunk)
        if progress is not None and done // PROGRESS_EVERY != (done - len(chunk)) // PROGRESS_EVERY:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"scored {done} lines ({rate:.0f}/s)", file=progress, flush=True)


def _options(name: str, pairs: list[str]) -> dict:
    params = verifier_options(name)
    try:
        given = parse_pairs(pairs)
    except ValueError as exc:
        raise VerifierError(str(exc)) from None
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise VerifierError(f"unknown option {unknown[0]!r} for verifier {name!r}; "
                            f"valid options: {sorted(params) or 'none'}")
    return {key: parse_option(key, params[key], value) for key, value in given.items()}


def cmd_list(_args) -> int:
    for name, desc in list_verifiers().items():
        print(f"{name}: {desc}")
        for opt, p in verifier_options(name).items():
            default = REQUIRED if p.default is inspect.Parameter.empty else p.default
            print(f"    {opt}: {help_line('', kind_of(p.annotation), default)}")
    return 0


def cmd_score(args) -> int:
    verifier = get_verifier(args.verifier, **_options(args.verifier, args.option))
    src = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    dst = sys.stdout if args.output is None else open(args.output, "w", encoding="utf-8")
    try:
        # Blank lines are not records; every other line gets exactly one output line.
        numbered = ((n, line) for n, line in enumerate(src, 1) if line.strip())
        for verdict in score_lines(verifier, numbered, progress=sys.stderr):
            dst.write(to_json(verdict.to_dict()) + "\n")
    finally:
        verifier.close()
        if src is not sys.stdin:
            src.close()
        if dst is not sys.stdout:
            dst.close()
    return 0


def cmd_serve(args) -> int:
    from verifiers.serve import ServeLimits, serve  # starlette and uvicorn load for this command only

    given = {k: getattr(args, k) for k in ("max_body_mb", "max_samples", "max_concurrency", "max_pending")}
    limits = ServeLimits(**{k: v for k, v in given.items() if v is not None})  # defaults live in ServeLimits
    options = _options(args.verifier, args.option)
    return serve(get_verifier(args.verifier, **options), args.verifier, options, args.host, args.port, limits,
                 tuple(args.strip_suffix))


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
    serve = sub.add_parser("serve", help="serve a verifier over HTTP (POST /score, POST /get_reward, GET /health)")
    serve.add_argument("--verifier", required=True, help="registered verifier name (see `list`)")
    serve.add_argument("--option", action="append", default=[], metavar="K=V", help="verifier option, as for score")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-body-mb", type=float, help="largest request body, 413 beyond (default 64)")
    serve.add_argument("--max-samples", type=int, help="most samples in one request, 413 beyond (default 4096)")
    serve.add_argument("--max-concurrency", type=int, help="batches verified at once, others wait (default 4)")
    serve.add_argument("--max-pending", type=int, help="requests running or waiting, 503 beyond (default 64)")
    serve.add_argument("--strip-suffix", action="append", default=[], metavar="TEXT",
                       help="/get_reward: cut TEXT (an EOS or pad token) from the end of each response")
    serve.set_defaults(fn=cmd_serve)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (VerifierError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
