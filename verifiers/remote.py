"""`remote`: verification on `python -m verifiers serve` servers, so that CPU-heavy checks (code
in the sandbox) run on machines apart from the trainer's.

    from verifiers.remote import RemoteVerifier
    verifier = RemoteVerifier(urls=["http://cpu1:8000", "http://cpu2:8000"], verifier="code")
    verdicts = verifier.verify_batch(completions, tasks)   # as the in-process `code` verifier

A batch is cut into shards (at most `chunk_size` samples, at least one per server), dealt
round-robin over the servers and sent in parallel to `POST /score`. A shard whose server
fails (connection refused or reset, no answer within `timeout`, a 5xx, a busy 503, a garbled
answer) is sent to the next server; a failed server is tried last for `cooldown` seconds. A
sample no server could judge gets a `verifier_error` verdict (the verifier's failure, not the
model's: trainers mask it out) whose `info.error` and `info.servers` give each server's reason:
never a silent 0, and `verify_batch` never raises on model output. The servers' verdicts keep
their own statuses, faults included.

A 413 (too large) splits the shard in halves, so only a sample too large by itself gets a
`verifier_error` verdict, as does a shard a server refused as malformed (a 4xx): neither is a
judgement of the completion. Misconfiguration raises `VerifierError`: a bad URL, a server that serves
another verifier than `verifier` (404), a task that cannot be sent as JSON.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from verifiers.base import Task, Verdict, Verifier, VerifierError, check_batch, error_verdict, register_verifier


class _ServerFailed(Exception):
    """The server could not judge this shard; another server may."""

    def __init__(self, reason: str, busy: bool = False):
        super().__init__(reason)
        self.busy = busy  # a busy server is alive: no cooldown


class _TooLarge(Exception):
    """413: the shard, as sent, is over the server's limits."""


class _Refused(Exception):
    """A 4xx about the request itself: every server would refuse it the same way."""


@register_verifier("remote")
class RemoteVerifier(Verifier):
    """Sends samples to `python -m verifiers serve` servers, retrying a failed server's share on another.

    `urls`: the servers' base URLs, a list or a comma-separated string. `verifier`: the name the
    servers must serve (checked by each server; None accepts any). `timeout`: seconds a request
    may take, verification included. `chunk_size`: most samples per request. `per_server`:
    requests in flight per server. `cooldown`: seconds a failed server is tried last.
    """

    def __init__(self, urls: Any, verifier: str | None = None, timeout: float = 300.0, chunk_size: int = 64,
                 per_server: int = 2, cooldown: float = 30.0):
        self.urls = parse_urls(urls)
        if verifier is not None and (not isinstance(verifier, str) or not verifier):
            raise VerifierError(f"option verifier must be a verifier name or None, got {verifier!r}")
        for name, value in (("timeout", timeout), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise VerifierError(f"option {name} must be a non-negative number, got {value!r}")
        for name, value in (("chunk_size", chunk_size), ("per_server", per_server)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise VerifierError(f"option {name} must be a positive int, got {value!r}")
        self.verifier, self.timeout, self.chunk_size = verifier, float(timeout), chunk_size
        self.per_server, self.cooldown = per_server, float(cooldown)
        self._query = "?" + urllib.parse.urlencode({"verifier": verifier}) if verifier else ""
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the contract

    def verify(self, completion: str, task: Task) -> Verdict:
        return self.verify_batch([completion], [task])[0]

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        check_batch(completions, tasks)
        records = [self._record(c, t) for c, t in zip(completions, tasks)]
        out: list[Verdict | None] = [r if isinstance(r, Verdict) else None for r in records]
        todo = [i for i, r in enumerate(records) if isinstance(r, str)]
        if not todo:
            return out  # type: ignore[return-value]
        size = min(self.chunk_size, -(-len(todo) // len(self.urls)))
        shards = [todo[i:i + size] for i in range(0, len(todo), size)]
        workers = min(len(shards), len(self.urls) * self.per_server)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda k: self._score_shard([records[i] for i in shards[k]], k), range(len(shards)))
            for shard, verdicts in zip(shards, results):
                for i, verdict in zip(shard, verdicts):
                    out[i] = verdict
        return out  # type: ignore[return-value]

    def health(self) -> dict[str, dict | str]:
        """Each server's `GET /health` answer, or why there is none (for a trainer's start-up log)."""
        report: dict[str, dict | str] = {}
        for url in self.urls:
            try:
                with urllib.request.urlopen(url + "/health", timeout=min(self.timeout, 10.0)) as reply:
                    report[url] = json.loads(reply.read())
            except (OSError, http.client.HTTPException, ValueError) as exc:
                report[url] = f"{type(exc).__name__}: {exc}"
        return report

    # ------------------------------------------------------------------ one shard

    def _record(self, completion: Any, task: Task) -> str | Verdict:
        """The record's JSON text, sent as is by whichever server gets it."""
        if not isinstance(completion, str):
            return error_verdict("error", f"the completion must be a string, got {type(completion).__name__}")
        try:
            return json.dumps({"completion": completion, "task": task.to_dict()})
        except (TypeError, ValueError) as exc:
            raise VerifierError(f"task {task.id!r} cannot be sent as JSON: {exc}") from None

    def _score_shard(self, records: list[str], first: int) -> list[Verdict]:
        failures: dict[str, str] = {}
        for url in self._servers(first):
            try:
                return self._post(url, records)
            except _TooLarge as exc:
                if len(records) == 1:
                    return [error_verdict("verifier_error", f"sample too large for {url}: {exc}")]
                half = len(records) // 2
                return self._score_shard(records[:half], first) + self._score_shard(records[half:], first)
            except _Refused as exc:
                return [error_verdict("verifier_error", f"{url} refused the request: {exc}") for _ in records]
            except _ServerFailed as exc:
                failures[url] = str(exc)
                if not exc.busy:
                    with self._lock:
                        self._down_until[url] = time.monotonic() + self.cooldown
        reasons = "; ".join(f"{url}: {reason}" for url, reason in failures.items())
        return [error_verdict("verifier_error", f"no server could judge this sample ({reasons})", servers=failures)
                for _ in records]

    def _servers(self, first: int) -> list[str]:
        """Every server once, starting at the shard's own; those in cooldown come last."""
        order = self.urls[first % len(self.urls):] + self.urls[:first % len(self.urls)]
        now = time.monotonic()
        with self._lock:
            down = {url for url in order if self._down_until.get(url, 0.0) > now}
        return [u for u in order if u not in down] + [u for u in order if u in down]

    def _post(self, url: str, records: list[str]) -> list[Verdict]:
        body = ("[" + ",".join(records) + "]").encode()
        request = urllib.request.Request(url + "/score" + self._query, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                text = reply.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(url, exc) from None
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut short
            raise _ServerFailed(f"{type(exc).__name__}: {exc}") from None
        return _verdicts(text, len(records))

    def _http_error(self, url: str, exc: urllib.error.HTTPError) -> Exception:
        try:
            reason = json.loads(exc.read()).get("error", "")
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            reason = ""
        reason = f"HTTP {exc.code}: {reason or exc.reason}"
        if exc.code == 404:
            return VerifierError(f"server {url} cannot serve this verifier ({reason}); check the URL and "
                                 f"that it runs `python -m verifiers serve --verifier {self.verifier or 'NAME'}`")
        if exc.code == 413:
            return _TooLarge(reason)
        if exc.code >= 500 or exc.code == 429:
            return _ServerFailed(reason, busy=exc.code in (429, 503))
        return _Refused(reason)


def parse_urls(urls: Any, option: str = "urls") -> list[str]:
    """Server base URLs from a list or a comma-separated string; `VerifierError` names the
    `option` they came from and the bad one."""
    items = urls.split(",") if isinstance(urls, str) else urls
    if not isinstance(items, (list, tuple)) or not items:
        raise VerifierError(f"option {option} must be a non-empty list or comma-separated string, got {urls!r}")
    out = []
    for item in items:
        parsed = urllib.parse.urlsplit(item.strip()) if isinstance(item, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise VerifierError(f"option {option}: {item!r} is not an http(s)://host:port URL")
        out.append(item.strip().rstrip("/"))
    if len(set(out)) != len(out):
        raise VerifierError(f"option {option} lists a server twice: {out}")
    return out


def _verdicts(text: bytes, n: int) -> list[Verdict]:
    """The server's answer as verdicts; anything else is the server's failure."""
    try:
        rows = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _ServerFailed(f"answer is not JSON: {exc}") from None
    if not isinstance(rows, list) or len(rows) != n:
        raise _ServerFailed(f"answer is not a list of {n} verdicts")
    if not all(isinstance(row, dict) and isinstance(row.get("passed"), bool) for row in rows):
        raise _ServerFailed("malformed verdict in the answer: 'passed' must be true or false")
    try:
        return [Verdict(row["reward"], row["passed"], row["info"]) for row in rows]
    except (KeyError, VerifierError) as exc:
        raise _ServerFailed(f"malformed verdict in the answer: {exc!r}") from None
