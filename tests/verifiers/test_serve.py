"""`python -m verifiers serve`: the same verdicts as in process, refusals with one-line reasons,
OpenRLHF's remote reward protocol, and a server that outlives every bad request.

Servers run as subprocesses on free loopback ports and are killed in teardown.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from verifier_servers import ROOT, Server

from verifiers import Task, get_verifier
from verifiers.code import sandbox as sandbox_mod
from verifiers.records import parse_record, score_parsed

needs_bwrap = pytest.mark.skipif(sandbox_mod.bwrap_path() is None, reason="needs bubblewrap (bwrap)")

MATH_LIMITS = ["--max-body-mb", "0.01", "--max-samples", "16"]   # 10 KiB, so the limit is cheap to hit
CODE_LIMITS = dict(time_limit=1, wall_time_limit=2, memory_mb=256, tmp_size_mb=8, output_kb=64, workers=2)
CODE_PARTS = {"code": {"weight": 1.0, "options": CODE_LIMITS}, "tags": {"weight": 0.1, "options": {"tags": ["answer"]}}}
VOLATILE = {"cpu_s", "wall_s"}  # timings: differ from run to run


@pytest.fixture(scope="module")
def math_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serve") / "math.log", "math", *MATH_LIMITS)
    yield server
    server.kill()


@pytest.fixture(scope="module")
def code_server(tmp_path_factory):
    if sandbox_mod.bwrap_path() is None:
        pytest.skip("needs bubblewrap (bwrap)")
    server = Server(tmp_path_factory.mktemp("serve") / "code.log", "composite",
                    "--option", f"parts={json.dumps(CODE_PARTS)}", "--option", "correctness=code",
                    "--strip-suffix", "<|im_end|>", "--strip-suffix", "<pad>")
    yield server
    server.kill()


def stable(obj):
    """A verdict without its timings."""
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if k not in VOLATILE}
    return obj


def in_process(verifier, records: list) -> list[dict]:
    """What the server must answer: the same parsing and scoring, in this process."""
    parsed = [parse_record(f"item {i}", r) for i, r in enumerate(records)]
    return [stable(v.to_dict()) for v in score_parsed(verifier, parsed, [f"item {i}" for i in range(len(records))])]


def math_record(completion, answer, task_id="m"):
    return {"completion": completion, "task": {"id": task_id, "prompt": "p", "answer": answer}}


# --------------------------------------------------------------------------- same verdicts


MATH_BATCH = [
    math_record(r"so \boxed{\frac{3}{4}}", "0.75"),                # honest, another form
    math_record(r"\boxed{0.7500001}", "0.75"),                     # near miss
    math_record("", "1"),                                          # empty completion
    math_record("\u202e\\boxed{1}\u0000", "1"),                    # bidi override and NUL around the answer
    math_record(r"\boxed{\boxed{\boxed{2}}}", "2"),                # nested boxes
    math_record("the answer is 12", "12"),                         # honest, plain text
    math_record(r"\boxed{x^{2} + 2x + 1}", "(x+1)^2"),             # symbolic
    math_record(r"\boxed{" + "9" * 2000 + "}", "9"),               # huge number
    math_record("#### 42", "42"),                                  # GSM8K marker
    {"completion": 7, "task": {"id": "bad", "prompt": "p", "answer": "7"}},   # malformed: completion not a string
    math_record(r"\boxed{4}", None, task_id="no-gold"),            # a task the verifier cannot judge
    ["not", "a", "record"],                                        # malformed: not an object
    {"completion": r"\boxed{5}", "task": {"id": "x", "prompt": "p", "answer": "5", "colour": 1}},  # unknown field
]


def test_math_verdicts_match_the_in_process_verifier(math_server):
    status, answer = math_server.post("/score", json.dumps(MATH_BATCH).encode())
    assert status == 200
    with get_verifier("math") as verifier:
        expected = in_process(verifier, MATH_BATCH)
    assert [stable(v) for v in answer] == expected
    assert [v["passed"] for v in answer][:2] == [True, False] and answer[5]["passed"]
    errors = [v["info"].get("error", "") for v in answer]
    assert errors[9] == "item 9: field 'completion' must be a string"
    assert errors[10].startswith("item 10:") and errors[11] == "item 11: expected a JSON object, got list"


def code_record(program, tests, task_id="c"):
    return {"completion": program, "task": {"id": task_id, "prompt": "p", "tests": tests}}


DOUBLE = "def f(x):\n    return 2 * x\n"
ASSERT = {"kind": "assert", "code": "def check(c):\n    assert c(2) == 4\n    assert c(5) == 10\n", "entry_point": "f"}
IO = {"kind": "io", "cases": [{"stdin": "1 2\n", "stdout": "3\n"}]}
CALL = {"kind": "call", "entry_point": "f", "cases": [{"args": [3], "expected": 6}]}
CODE_BATCH = [
    code_record(DOUBLE, ASSERT),                                               # honest
    code_record("def f(x):\n    return x + 2\n", ASSERT),                      # wrong on 5
    code_record("def f(x):\n    while True:\n        pass\n", ASSERT),          # timeout
    code_record("import os\nos._exit(0)\n", ASSERT),                           # exits before the tests
    code_record("import os\ndef f(x):\n    os._exit(0)\n", ASSERT),           # exits inside the tests
    code_record("a, b = map(int, input().split())\nprint(a + b)\n", IO),       # honest io
    code_record("print(4)\n", IO),                                             # wrong io
    code_record(DOUBLE, CALL),                                                 # honest call
    code_record("class E:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return E()\n", CALL),
    code_record("print('x' * 10**6)\n", IO),                                    # output cap
    code_record(DOUBLE, None, task_id="no-tests"),                              # a task the verifier cannot judge
    {"completion": DOUBLE},                                                     # malformed: no task
]


@needs_bwrap
@pytest.mark.slow
def test_code_composite_verdicts_match_the_in_process_verifier(code_server):
    status, answer = code_server.post("/score", json.dumps(CODE_BATCH).encode())
    assert status == 200, answer
    with get_verifier("composite", parts=CODE_PARTS, correctness="code") as verifier:
        expected = in_process(verifier, CODE_BATCH)
    assert [stable(v) for v in answer] == expected
    statuses = [v["info"]["status"] for v in answer]
    assert statuses[:3] == ["passed", "failed", "timeout"] and statuses[5] == "passed" and statuses[7] == "passed"
    assert [v["passed"] for v in answer].count(True) == 3
    assert (statuses[10:] == ["verifier_error"] * 2
            and "item 11: missing field(s) ['task']" == answer[11]["info"]["error"])


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("path, body, status, fragment", [
    ("/score", b"[{", 400, "not valid JSON"),
    ("/score", b"\xff\xfe[]", 400, "not valid JSON"),
    ("/score", b"[" * 4000 + b"]" * 4000, 400, "not valid JSON"),                 # deeper than the parser goes
    ("/score", b'{"completion": "x"}', 400, "expected a JSON list"),
    ("/score", b"null", 400, "expected a JSON list"),
    ("/score", json.dumps([math_record("1", "1")] * 17).encode(), 413, "17 samples in one request; the limit is 16"),
    ("/score", b"[" + b" " * 20000 + b"]", 413, "exceeds the limit of 10485 bytes"),
    ("/score?verifier=code", b"[]", 404, "unknown verifier 'code': this server serves 'math'"),
    ("/get_reward", b"[]", 400, "expected a JSON object with a 'query' list"),
    ("/get_reward", b'{"query": "x"}', 400, "field 'query' must be a list"),
    ("/get_reward", b'{"query": ["a", "b"], "labels": ["1"]}', 400,
     "field 'labels' must be a list as long as 'query' (2)"),
])
def test_bad_requests_get_a_4xx_with_a_one_line_reason(math_server, path, body, status, fragment):
    got, answer = math_server.post(path, body)
    assert got == status and fragment in answer["error"] and "\n" not in answer["error"], answer
    assert math_server.alive()


def test_other_bad_requests_leave_the_server_up(math_server):
    assert math_server.post("/nowhere", b"[]")[0] == 404
    assert get_status(math_server.url + "/score") == 405
    # A chunked body has no length to check first: the limit applies while it is read.
    with socket.create_connection(("127.0.0.1", math_server.port), timeout=30) as conn:
        chunk = b"[" + b" " * 8000
        conn.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert b" 413 " in conn.recv(4096).split(b"\r\n")[0] + b" "
    with socket.create_connection(("127.0.0.1", math_server.port), timeout=30) as conn:
        conn.sendall(b"\x00\x01 not http at all\r\n\r\n")
        conn.recv(4096)
    status, answer = math_server.post("/score", json.dumps([math_record(r"\boxed{2}", "2")]).encode())
    assert status == 200 and answer[0]["passed"] and math_server.alive()


def get_status(url: str) -> int:
    """The HTTP status of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_health_reports_the_verifier_and_limits(math_server):
    with urllib.request.urlopen(math_server.url + "/health", timeout=30) as reply:
        health = json.loads(reply.read())
    assert health["status"] == "ok" and health["verifier"] == "math"
    assert (health["max_samples"], health["max_body_mb"]) == (16, 0.01)


@pytest.mark.parametrize("args, fragment", [
    (["--verifier", "nope"], "unknown verifier 'nope'; known verifiers:"),
    (["--verifier", "math", "--option", "rel_tl=1"], "unknown option 'rel_tl' for verifier 'math'"),
    (["--verifier", "math", "--max-samples", "0"], "--max-samples must be a positive number"),
])
def test_misuse_at_start_up_exits_2_with_one_line(args, fragment):
    proc = subprocess.run([sys.executable, "-m", "verifiers", "serve", *args, "--port", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and fragment in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


# --------------------------------------------------------------------------- OpenRLHF


def test_openrlhf_protocol_math(math_server):
    prompts = ["<|user|>What is 2+2?<|assistant|>", "<|user|>Name the set.<|assistant|>", "Q", "lost prompt"]
    responses = [r"It is \boxed{4}.</s>", r"\boxed{\{1, 2\}}</s>", r"\boxed{3}", r"\boxed{7}"]
    queries = ["<pad><pad>" + p + r for p, r in zip(prompts, responses)]
    queries[3] = r"a retokenised prompt \boxed{7}"
    labels = ["4", "{1, 2}", '{"answer": "3", "meta": {"level": 1}}', "8"]
    status, answer = math_server.post("/get_reward", json.dumps(
        {"query": queries, "prompts": prompts, "labels": labels}).encode())
    assert status == 200, answer
    tasks = [Task(id="t", prompt="p", answer=a) for a in ["4", "{1, 2}", "3", "8"]]
    with get_verifier("math") as verifier:
        local = verifier.verify_batch(responses[:3] + [queries[3]], tasks)
    assert answer["rewards"] == [v.reward for v in local] == [1.0, 1.0, 1.0, 0.0]
    assert answer["scores"] == [1.0, 1.0, 1.0, 0.0]
    assert answer["extra_logs"] == {"verify_error": [0.0] * 4, "verifier_fault": [0.0] * 4,
                                    "prompt_found": [1.0, 1.0, 1.0, 0.0]}


def test_openrlhf_protocol_flags_an_item_it_cannot_judge(math_server):
    body = {"query": ["Q\\boxed{1}", 5, "Q\\boxed{2}"], "prompts": ["Q", "Q", "Q"], "labels": ["1", "1", None]}
    status, answer = math_server.post("/get_reward", json.dumps(body).encode())
    assert status == 200 and answer["rewards"] == [1.0, 0.0, 0.0]
    assert answer["extra_logs"]["verify_error"] == [0.0, 1.0, 1.0]   # a non-string query; no gold answer
    assert answer["extra_logs"]["verifier_fault"] == [0.0, 1.0, 1.0]  # neither was a judgement
    assert "scoring 3 samples" in math_server.log()


@needs_bwrap
@pytest.mark.slow
def test_openrlhf_protocol_code_task_sends_its_tests_in_the_label(code_server):
    prompt = "Write f that doubles x.\n"
    labels = [json.dumps({"tests": ASSERT}), json.dumps({"tests": CALL, "id": "call-task"}), json.dumps({"tests": IO})]
    programs = [DOUBLE, DOUBLE, "print(4)\n"]
    # OpenRLHF keeps special tokens when it decodes: the server cuts them (--strip-suffix).
    body = {"query": [prompt + p + "<|im_end|><pad><pad>" for p in programs], "prompts": [prompt] * 3, "labels": labels}
    status, answer = code_server.post("/get_reward", json.dumps(body).encode())
    assert status == 200, answer
    assert answer["scores"] == [1.0, 1.0, 0.0] and answer["extra_logs"]["verify_error"] == [0.0] * 3
    assert answer["rewards"] == [1.0, 1.0, 0.0]  # the tags part (weight 0.1) finds no <answer> tag


def test_a_verifier_bug_fails_its_request_only():
    """A verifier that raises something other than VerifierError has a bug: 500, one line, and
    the app keeps answering (in process: no registered verifier here is buggy)."""
    pytest.importorskip("httpx")  # Starlette's TestClient
    from starlette.testclient import TestClient

    from verifiers import Verifier
    from verifiers.serve import ServeLimits, VerifierService, build_app

    class Buggy(Verifier):
        def verify(self, completion, task):
            return 1 / 0

    client = TestClient(build_app(VerifierService(Buggy(), "buggy", {}, ServeLimits())), raise_server_exceptions=False)
    reply = client.post("/score", json=[math_record("x", "1")])
    assert reply.status_code == 500 and reply.json() == {"error": "internal error: ZeroDivisionError: division by zero"}
    assert client.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize("label, answer, tests", [
    ("42", "42", None),
    ("{1, 2}", "{1, 2}", None),                                  # braces, but not JSON: a math answer
    ('{"answer": "3"}', "3", None),
    ({"tests": CALL}, None, CALL),                               # a dict column, not a string
    (json.dumps({"tests": CALL, "id": "own-id"}), None, CALL),
    ('{"value": 1}', '{"value": 1}', None),                      # not Task fields: the label is the answer
    ({"value": 1}, {"value": 1}, None),
    (7, 7, None),
    (None, None, None),
])
def test_openrlhf_label_mapping(label, answer, tests):
    from verifiers.serve import openrlhf_records

    [(completion, task)] = openrlhf_records({"query": ["<s>Q: A:</s>"], "prompts": ["Q:"], "labels": [label]},
                                            ("</s>",))
    assert (completion, task.prompt, task.answer, task.tests) == (" A:", "Q:", answer, tests)
    assert task.id == ("own-id" if "own-id" in str(label) else "openrlhf/0")


@needs_bwrap
@pytest.mark.slow
def test_a_full_server_answers_503_and_finishes_what_it_admitted(tmp_path):
    server = Server(tmp_path / "one.log", "code", "--max-pending", "1", "--option", "workers=1")
    try:
        slow = [code_record("import time\ntime.sleep(1)\n" + DOUBLE, ASSERT)]
        first = {}
        thread = threading.Thread(target=lambda: first.update(reply=server.post("/score", json.dumps(slow).encode())))
        thread.start()
        assert server.wait_for_log("/score: scoring 1 samples")
        status, answer = server.post("/score", json.dumps(slow).encode())
        assert status == 503 and answer["error"] == "server busy: 1 requests running or waiting"
        thread.join(timeout=60)
        status, answer = first["reply"]
        assert status == 200 and answer[0]["passed"]
    finally:
        server.kill()
