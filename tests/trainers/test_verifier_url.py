"""`verifier_url`: an environment's correctness part judged on `python -m verifiers serve` servers,
as an environment option and as the trainers' `--verifier-url`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from envs import EnvError, get_env
from tests.verifier_servers import ROOT, Server
from trainers.grpo import GRPOConfig


@pytest.fixture(scope="module")
def math_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("verifier-url") / "math.log", "math")
    yield server
    server.kill()


@pytest.mark.parametrize("url, fragment", [
    ("localhost:8000", "is not an http(s)://host:port URL"),
    ("http://a:1,http://a:1", "lists a server twice"),
    ("http://a:1,,http://b:2", "is not an http(s)://host:port URL"),
])
def test_a_bad_url_is_refused_when_the_environment_is_made(url, fragment):
    with pytest.raises(EnvError, match="option verifier_url") as info:
        get_env("arithmetic", verifier_url=url)
    assert fragment in str(info.value)


def test_the_option_is_given_once():
    cfg = GRPOConfig(verifier_url="http://a:1", env_options={"verifier_url": "http://b:2"})
    with pytest.raises(ValueError, match="verifier_url: is given twice"):
        cfg.validate()
    assert GRPOConfig(verifier_url="http://a:1").env_kwargs() == {"verifier_url": "http://a:1"}


def test_remote_verdicts_match_the_in_process_ones(math_server):
    local, remote = get_env("arithmetic", test_size=8), get_env("arithmetic", test_size=8, verifier_url=math_server.url)
    tasks = list(local.tasks("test"))
    # honest right and wrong answers, a hostile one and an empty one, in one batch
    completions = [str(t.answer) if i % 3 == 0 else f"{t.answer}1" if i % 3 == 1 else "\\boxed{" * 50
                   for i, t in enumerate(tasks)] + [""]
    tasks.append(tasks[0])
    ours, theirs = local.verifier.verify_batch(completions, tasks), remote.verifier.verify_batch(completions, tasks)
    assert [v.passed for v in theirs] == [v.passed for v in ours]
    assert [v.reward for v in theirs] == [v.reward for v in ours]
    assert sum(v.passed for v in ours) == 3  # the neighbours really differ
    assert list(theirs[0].info["parts"]) == list(ours[0].info["parts"])  # the part keeps its name: "math"
    assert math_server.wait_for_log(f"scored {len(tasks)} samples")


def test_no_server_gives_verifier_faults_not_zeros():
    env = get_env("arithmetic", test_size=2, verifier_url="http://127.0.0.1:9")  # discard port: refused
    verdicts = env.verifier.verify_batch(["1", "2"], list(env.tasks("test")))
    assert [v.info["status"] for v in verdicts] == ["verifier_error"] * 2 and not any(v.passed for v in verdicts)
    assert all(v.verifier_fault and v.info["fault_part"] == "math" for v in verdicts)  # the composite says whose
    assert all("Connection refused" in v.info["error"] for v in verdicts)  # the reason, not a bare 0


@pytest.mark.slow
def test_trainer_verifies_on_the_server_with_the_same_rewards(tmp_path, tiny_model_path, math_server):
    """The run on the server through the command; the reference run through the same `main`, in process."""
    from trainers.grpo import main

    def args(out, *extra):
        return ["--model", tiny_model_path, "--steps", "2", "--prompts-per-step", "2", "--group-size", "4",
                "--max-new-tokens", "4", "--eval-samples", "0", "--generation-backend", "hf", "--output-dir",
                str(out), *extra]

    def metrics(out):
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    assert main(args(tmp_path / "here")) == 0
    proc = subprocess.run([sys.executable, "-m", "trainers.grpo", *args(tmp_path / "there", "--verifier-url",
                                                                         math_server.url)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    here, there = metrics(tmp_path / "here"), metrics(tmp_path / "there")
    assert [m["reward_mean"] for m in there] == [m["reward_mean"] for m in here]
    assert math_server.wait_for_log("scored 8 samples")  # 2 prompts x 4 completions per step
