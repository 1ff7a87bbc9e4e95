"""`python -m verifiers serve`: one verifier behind HTTP, for trainers on other machines.

    python -m verifiers serve --verifier code --option time_limit=5 --host 0.0.0.0 --port 8000

Routes (Starlette on uvicorn):

* `POST /score` — a JSON list of the CLI's records, `{"completion": ..., "task": {Task fields}}`;
  the answer is the list of verdicts, `{"reward", "passed", "info"}`, in order. A record that
  cannot be read gets its own `error` verdict, as in `python -m verifiers score`.
* `POST /get_reward` — OpenRLHF's remote reward protocol (`--remote_rm_url`), see
  `openrlhf_records`.
* `GET /health` — liveness, the verifier's name and options, the load and the limits.

A request that is not JSON, has the wrong shape, is too large, or names (`?verifier=NAME`) a
verifier other than the one served gets a 4xx answer `{"error": "<one line>"}`; 503 when
`max_pending` requests already wait. Verification runs in worker threads, never on the event
loop, in the verifier's own `verify_batch` (which spreads a batch over its own workers); at
most `max_concurrency` batches run at once and the rest wait their turn.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from verifiers.base import Task, Verdict, Verifier, VerifierError, error_verdict
from verifiers.records import Parsed, parse_record, score_parsed, to_json

log = logging.getLogger("verifiers.serve")
TASK_FIELDS = {"id", "prompt", "answer", "tests", "meta"}


@dataclass(frozen=True)
class ServeLimits:
    max_body_mb: float = 64.0   # request body, checked before and while it is read
    max_samples: int = 4096     # records in one request
    max_concurrency: int = 4    # batches verified at once (each spreads over the verifier's workers)
    max_pending: int = 64       # requests admitted (running + waiting); beyond: 503

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise VerifierError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)


class Refusal(Exception):
    """A request the server will not judge: answered with `status` and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason.replace("\n", " ")


class VerifierService:
    """The served verifier and the admission rules around it."""

    def __init__(self, verifier: Verifier, name: str, options: dict, limits: ServeLimits,
                 strip_suffixes: tuple[str, ...] = ()):
        self.verifier, self.name, self.options, self.limits = verifier, name, options, limits
        self.strip_suffixes = tuple(s for s in strip_suffixes if s)
        self.thread_limiter = anyio.CapacityLimiter(limits.max_concurrency)
        self.admitted = 0  # touched on the event loop only, so no lock

    # ------------------------------------------------------------------ request reading

    async def read_json(self, request: Request) -> Any:
        expected = request.query_params.get("verifier")
        if expected is not None and expected != self.name:
            raise Refusal(404, f"unknown verifier {expected!r}: this server serves {self.name!r}")
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise Refusal(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():  # a chunked body has no length to check up front
            body += chunk
            if len(body) > limit:
                raise Refusal(413, f"request body exceeds the limit of {limit} bytes")
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise Refusal(400, f"request body is not valid JSON: {exc}") from None

    def check_count(self, n: int) -> None:
        if n > self.limits.max_samples:
            raise Refusal(413, f"{n} samples in one request; the limit is {self.limits.max_samples}")

    # ------------------------------------------------------------------ judging

    async def judge(self, parsed: list[Parsed], route: str) -> list[Verdict]:
        """Verdicts for parsed records, computed in a worker thread under the concurrency limit."""
        if self.admitted >= self.limits.max_pending:
            raise Refusal(503, f"server busy: {self.admitted} requests running or waiting")
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(self._judge_now, parsed, route, limiter=self.thread_limiter)
        finally:
            self.admitted -= 1

    def _judge_now(self, parsed: list[Parsed], route: str) -> list[Verdict]:
        start = time.perf_counter()
        log.info("%s: scoring %d samples", route, len(parsed))  # tests wait on this line
        verdicts = score_parsed(self.verifier, parsed, [f"item {i}" for i in range(len(parsed))])
        errors = sum(v.info.get("status") == "error" for v in verdicts)
        faults = sum(v.verifier_fault for v in verdicts)
        log.info("%s: scored %d samples in %.2f s (%d errors, %d verifier faults)", route, len(parsed),
                 time.perf_counter() - start, errors, faults)
        return verdicts

    # ------------------------------------------------------------------ routes

    async def score(self, request: Request) -> Response:
        records = await self.read_json(request)
        if not isinstance(records, list):
            raise Refusal(400, f"expected a JSON list of {{completion, task}} records, got {type(records).__name__}")
        self.check_count(len(records))
        verdicts = await self.judge([parse_record(f"item {i}", r) for i, r in enumerate(records)], "/score")
        return Response(to_json([v.to_dict() for v in verdicts]), media_type="application/json")

    async def get_reward(self, request: Request) -> Response:
        body = await self.read_json(request)
        parsed = openrlhf_records(body, self.strip_suffixes)
        self.check_count(len(parsed))
        verdicts = await self.judge(parsed, "/get_reward")
        return Response(to_json(openrlhf_answer(verdicts, body)), media_type="application/json")

    async def health(self, _request: Request) -> Response:
        return Response(to_json({"status": "ok", "verifier": self.name, "options": self.options,
                                 "admitted": self.admitted, **asdict(self.limits)}), media_type="application/json")


# --------------------------------------------------------------------------- OpenRLHF


def openrlhf_records(body: Any, strip_suffixes: tuple[str, ...] = ()) -> list[Parsed]:
    """Records from OpenRLHF's request `{"query": [...], "prompts": [...], "labels": [...]}`.

    * `query[i]` is prompt + response as OpenRLHF decoded it (special tokens kept). The
      completion is what follows the first occurrence of `prompts[i]` in it; when the prompt
      is not found, the whole query (see `prompt_found` in the answer's `extra_logs`). Any of
      `strip_suffixes` (EOS and pad tokens: `--strip-suffix`) is cut from its end, repeatedly,
      since a program followed by `<|im_end|>` is not valid Python.
    * `labels[i]` (the dataset's `--label_key` column) gives the task: a JSON object, or a
      string holding one, whose keys are Task fields (`answer`, `tests`, `meta`, `id`)
      becomes those fields, which is how a code task sends its `tests`; any other string or
      number is `Task.answer`; null or a missing `labels` gives no answer.
    * `Task.prompt` is `prompts[i]`; `Task.id` is `openrlhf/<i>` unless the label sets it.
    """
    if not isinstance(body, dict):
        raise Refusal(400, f"expected a JSON object with a 'query' list, got {type(body).__name__}")
    queries = body.get("query")
    if not isinstance(queries, list):
        raise Refusal(400, "field 'query' must be a list of strings (prompt + response)")
    columns = {}
    for key in ("prompts", "labels"):
        column = body.get(key)
        if column is None:
            column = [None] * len(queries)
        if not isinstance(column, list) or len(column) != len(queries):
            raise Refusal(400, f"field {key!r} must be a list as long as 'query' ({len(queries)})")
        columns[key] = column
    return [_openrlhf_record(i, q, p, lab, strip_suffixes) for i, (q, p, lab)
            in enumerate(zip(queries, columns["prompts"], columns["labels"]))]


def _openrlhf_record(i: int, query: Any, prompt: Any, label: Any, strip_suffixes: tuple[str, ...]) -> Parsed:
    where = f"item {i}"
    if not isinstance(query, str):
        return error_verdict("verifier_error", f"{where}: 'query' must be a string, got {type(query).__name__}")
    at = query.find(prompt) if isinstance(prompt, str) and prompt else -1
    completion = query[at + len(prompt):] if at >= 0 else query
    while suffix := next((s for s in strip_suffixes if completion.endswith(s)), None):
        completion = completion[:-len(suffix)]
    fields = _label_fields(label)
    task = {"id": f"openrlhf/{i}", "prompt": prompt if isinstance(prompt, (str, list)) else "", **fields}
    try:
        return completion, Task.from_dict(task)
    except (VerifierError, TypeError) as exc:
        return error_verdict("verifier_error", f"{where}: label: {exc}")


def _label_fields(label: Any) -> dict:
    fields = label
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            fields = json.loads(label)
        except (json.JSONDecodeError, RecursionError):
            pass  # braces in a math answer, such as {1, 2}
    if isinstance(fields, dict) and set(fields) <= TASK_FIELDS and fields.keys() & {"answer", "tests"}:
        return fields
    return {} if label is None else {"answer": label}


def openrlhf_answer(verdicts: list[Verdict], body: dict) -> dict:
    """`rewards` train; `scores` (1.0 passed, else 0.0) drive OpenRLHF's dynamic filtering;
    `extra_logs` holds per-sample numbers it logs. An `error` verdict's reward is 0 in this
    protocol, and so is a verifier fault's (the protocol has no way to leave a sample out), so
    their flags here (`verify_error`; `verifier_fault` for the latter) and the server's log are
    where they show."""
    queries, prompts = body["query"], body.get("prompts") or [None] * len(verdicts)
    found = [float(isinstance(p, str) and bool(p) and isinstance(q, str) and p in q) for q, p in zip(queries, prompts)]
    return {"rewards": [v.reward for v in verdicts],
            "scores": [float(v.passed) for v in verdicts],
            "extra_logs": {"verify_error": [float(v.info.get("status") == "error" or v.verifier_fault)
                                            for v in verdicts],
                           "verifier_fault": [float(v.verifier_fault) for v in verdicts], "prompt_found": found}}


# --------------------------------------------------------------------------- app


async def _refused(_request: Request, exc: Refusal) -> Response:
    return JSONResponse({"error": exc.reason}, status_code=exc.status)


async def _crashed(_request: Request, exc: Exception) -> Response:
    # A bug in a verifier (not bad input: that gives verdicts) fails this request only.
    log.exception("internal error")
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}".replace("\n", " ")}, status_code=500)


def build_app(service: VerifierService) -> Starlette:
    routes = [Route("/score", service.score, methods=["POST"]),
              Route("/get_reward", service.get_reward, methods=["POST"]),
              Route("/health", service.health, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={Refusal: _refused, Exception: _crashed})


def serve(verifier: Verifier, name: str, options: dict, host: str, port: int, limits: ServeLimits,
          strip_suffixes: tuple[str, ...] = ()) -> int:
    """Run the server until interrupted; closes the verifier on the way out."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    service = VerifierService(verifier, name, options, limits, strip_suffixes)
    verifier.warm_up()
    log.info("serving verifier %r with options %s on http://%s:%d", name, to_json(options), host, port)
    try:
        uvicorn.run(build_app(service), host=host, port=port, log_level="warning",
                    limit_concurrency=limits.max_pending + 16, timeout_keep_alive=30)
    finally:
        verifier.close()
    return 0
