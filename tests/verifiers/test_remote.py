"""The `remote` verifier: options, failover from servers that fail in every way we know of to one
that works, halving on 413, error verdicts with reasons when no server can judge, and a real
server killed in the middle of a batch.

Misbehaving servers are a stdlib HTTP server in a thread (one behaviour per URL path); working
ones are `python -m verifiers serve` subprocesses, killed in teardown.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from verifier_servers import Server, free_port

from verifiers import RemoteVerifier, Task, VerifierError, get_verifier
from verifiers.code import sandbox as sandbox_mod

HANG_S = 10.0  # how long the "hang" server sits on a request (the client gives up far sooner)


class Misbehaving(BaseHTTPRequestHandler):
    """`POST /<behaviour>/score`: answers as a broken or odd server would."""

    seen: Counter = Counter()
    release = threading.Event()

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        behaviour = self.path.split("/")[1]
        Misbehaving.seen[behaviour] += 1
        records = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if behaviour == "hang":
            Misbehaving.release.wait(HANG_S)
            return self._send(200, [])
        if behaviour == "small":  # 413 for more than 2 samples, or for a sample that is too large alone
            if len(records) > 2 or any(r["completion"] == "HUGE" for r in records):
                return self._send(413, {"error": "request body exceeds the limit of 10 bytes"})
            return self._send(200, [{"reward": 1.0, "passed": True, "info": {"status": "passed", "shard": len(records)}}
                                    for _ in records])
        answers = {"garbage": (200, b"<html>not json"), "short": (200, []), "boom": (500, {"error": "internal error"}),
                   "busy": (503, {"error": "server busy"}), "refuse": (400, {"error": "expected a JSON list"}),
                   "other": (404, {"error": "unknown verifier 'math': this server serves 'code'"}),
                   "liar": (200, [{"reward": 1.0, "passed": "yes", "info": {}} for _ in records])}
        self._send(*answers[behaviour])

    def _send(self, status, payload):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def fake():
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Misbehaving)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    Misbehaving.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def math_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("remote") / "math.log", "math")
    yield server
    server.kill()


def math_batch(n: int) -> tuple[list[str], list[Task]]:
    tasks = [Task(id=f"m{i}", prompt="p", answer=str(i)) for i in range(n)]
    return [rf"\boxed{{{i if i % 3 else i + 1}}}" for i in range(n)], tasks


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("options, fragment", [
    ({"urls": []}, "option urls must be a non-empty list"),
    ({"urls": "cpu1:8000"}, "'cpu1:8000' is not an http(s)://host:port URL"),
    ({"urls": ["http://a:1", "http://a:1/"]}, "lists a server twice"),
    ({"urls": "http://a:1", "timeout": -1}, "option timeout"),
    ({"urls": "http://a:1", "chunk_size": 0}, "option chunk_size"),
    ({"urls": "http://a:1", "per_server": True}, "option per_server"),
    ({"urls": "http://a:1", "verifier": ""}, "option verifier"),
])
def test_bad_options_raise_naming_the_field(options, fragment):
    with pytest.raises(VerifierError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        get_verifier("remote", **options)


def test_urls_from_a_comma_separated_string():
    assert RemoteVerifier(urls=" http://a:1/, https://b:2").urls == ["http://a:1", "https://b:2"]


# --------------------------------------------------------------------------- no server can judge


def test_no_reachable_server_gives_verifier_faults_with_reasons():
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    completions, tasks = math_batch(5)
    verdicts = RemoteVerifier(urls=dead, timeout=5).verify_batch(completions + [None], tasks + [tasks[0]])
    assert [v.passed for v in verdicts] == [False] * 6
    # no server: the verifier's failure, masked by trainers; a non-string completion: the sample's own
    assert [v.info["status"] for v in verdicts] == ["verifier_error"] * 5 + ["error"]
    assert [v.verifier_fault for v in verdicts] == [True] * 5 + [False]
    assert all(set(v.info["servers"]) == set(dead) for v in verdicts[:5])
    assert ("no server could judge this sample" in verdicts[0].info["error"]
            and "Connection refused" in verdicts[0].info["error"])
    assert verdicts[5].info["error"] == "the completion must be a string, got NoneType"


def test_a_task_json_cannot_carry_raises():
    with pytest.raises(VerifierError, match="task 'odd' cannot be sent as JSON"):
        RemoteVerifier(urls="http://127.0.0.1:1").verify("x", Task(id="odd", prompt="p", answer={1, 2}))


@pytest.mark.parametrize("behaviour, fragment", [
    ("garbage", "answer is not JSON"),
    ("short", "answer is not a list of 3 verdicts"),
    ("boom", "HTTP 500: internal error"),
    ("busy", "HTTP 503: server busy"),
    ("liar", "'passed' must be true or false"),
])
def test_each_kind_of_server_failure_is_named(fake, behaviour, fragment):
    completions, tasks = math_batch(3)
    verdicts = RemoteVerifier(urls=[f"{fake}/{behaviour}"]).verify_batch(completions, tasks)
    assert all(v.info["status"] == "verifier_error" and fragment in v.info["error"] for v in verdicts), verdicts[0].info


def test_a_refused_request_is_not_retried_and_a_wrong_verifier_raises(fake, math_server):
    completions, tasks = math_batch(2)
    before = Counter(Misbehaving.seen)
    verdicts = RemoteVerifier(urls=[f"{fake}/refuse", math_server.url]).verify_batch(completions[:1], tasks[:1])
    assert "refused the request: HTTP 400: expected a JSON list" in verdicts[0].info["error"]
    assert verdicts[0].verifier_fault  # a request the server cannot read judges nothing
    assert Misbehaving.seen["refuse"] == before["refuse"] + 1
    with pytest.raises(VerifierError, match="serves 'code'"):
        RemoteVerifier(urls=[f"{fake}/other"], verifier="math").verify_batch(completions, tasks)


def test_413_halves_the_shard_until_only_the_oversized_sample_fails(fake):
    completions = ["a", "b", "HUGE", "c", "d", "e", "f"]
    tasks = [Task(id=str(i), prompt="p") for i in range(7)]
    verdicts = RemoteVerifier(urls=[f"{fake}/small"], chunk_size=8).verify_batch(completions, tasks)
    assert [v.passed for v in verdicts] == [True, True, False, True, True, True, True]
    assert verdicts[2].info["error"].startswith(f"sample too large for {fake}/small: HTTP 413")
    assert verdicts[2].info["status"] == "verifier_error"
    assert all(v.info["shard"] <= 2 for i, v in enumerate(verdicts) if i != 2)


# --------------------------------------------------------------------------- failover to a working server


def test_failed_servers_shares_go_to_the_working_one(fake, math_server):
    bad = [f"{fake}/{b}" for b in ("garbage", "boom", "hang", "busy")]
    remote = RemoteVerifier(urls=bad + [math_server.url], timeout=1.0, chunk_size=2, cooldown=600)
    completions, tasks = math_batch(20)
    with get_verifier("math") as local:
        expected = [v.to_dict() for v in local.verify_batch(completions, tasks)]
    assert [v.to_dict() for v in remote.verify_batch(completions, tasks)] == expected
    # The failed servers are in cooldown, tried only after the working one: the next batch
    # reaches none of them (the busy one is alive, so it keeps its place).
    before = Counter(Misbehaving.seen)
    assert [v.to_dict() for v in remote.verify_batch(completions, tasks)] == expected
    assert all(Misbehaving.seen[b] == before[b] for b in ("garbage", "boom", "hang"))


# --------------------------------------------------------------------------- a server dies mid-step


SLEEPY = "import time\ntime.sleep(0.5)\ndef f(x):\n    return 2 * x\n"
WRONG = "import time\ntime.sleep(0.5)\ndef f(x):\n    return x + 2\n"
CHECK = {"kind": "assert", "code": "def check(c):\n    assert c(5) == 10\n", "entry_point": "f"}
CODE_OPTIONS = dict(time_limit=2, wall_time_limit=4, memory_mb=256, tmp_size_mb=8, workers=2)


@pytest.mark.slow
@pytest.mark.skipif(sandbox_mod.bwrap_path() is None, reason="needs bubblewrap (bwrap)")
def test_killing_one_of_two_servers_mid_step_loses_no_verdict(tmp_path):
    options = [x for k, v in CODE_OPTIONS.items() for x in ("--option", f"{k}={v}")]
    doomed = Server(tmp_path / "doomed.log", "code", *options)
    survivor = Server(tmp_path / "survivor.log", "code", *options)
    try:
        completions = [SLEEPY if i % 4 else WRONG for i in range(12)]
        tasks = [Task(id=f"c{i}", prompt="p", tests=CHECK) for i in range(12)]
        remote = RemoteVerifier(urls=[doomed.url, survivor.url], verifier="code", chunk_size=2, per_server=1)
        killed = threading.Event()

        def kill_when_busy():
            if doomed.wait_for_log("/score: scoring"):  # a shard is being verified there now
                doomed.kill()
                killed.set()

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        verdicts = remote.verify_batch(completions, tasks)
        killer.join(timeout=60)
        assert killed.is_set(), "the doomed server never received a shard"
        assert "scored" not in doomed.log().split("/score: scoring")[-1]  # it died inside the shard
        assert [v.info["status"] for v in verdicts] == ["failed" if i % 4 == 0 else "passed" for i in range(12)]
        assert survivor.log().count("/score: scoring") == 6  # every shard, the killed one's included
    finally:
        doomed.kill()
        survivor.kill()
