"""A verifier that fails (a dead server, a server killed mid-run, a sandbox that cannot start, a
checker that crashes on half the samples) never trains the model on zeros: the rows are left out
of the loss, the rate is logged, and the run stops with one line after a checkpoint; an
evaluation counts the faults apart and refuses to report pass@k above the limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models.sampler import Sample
from tests.verifier_servers import ROOT, Server
from trainers import rollout as ro
from verifiers import Task, Verdict
from verifiers.base import error_verdict

FLAKY = str(ROOT / "tests" / "flaky_server.py")
needs_bwrap = pytest.mark.skipif(not any(os.access(os.path.join(d, "bwrap"), os.X_OK)
                                         for d in os.environ.get("PATH", "").split(os.pathsep)),
                                 reason="needs bubblewrap")


# --------------------------------------------------------------------------- the update


def _batch(tok, rewards: list[float], faulted: set[int], texts: list[str]) -> ro.Rollout:
    task = Task(id="t", prompt="12+3=", answer="15")
    samples = [Sample(t, tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], None, "stop",
                      tok("12+3=")["input_ids"]) for t in texts]
    verdicts = [error_verdict("verifier_error", "the checker crashed") if i in faulted
                else Verdict(r, r > 0.5, {"status": "passed" if r > 0.5 else "failed"}) for i, r in enumerate(rewards)]
    return ro.collate([task] * len(texts), samples, verdicts, pad_id=tok.pad_token_id, mask_truncated=False)


def _gradient(trainer: str, tiny_model_path: str, tmp_path: Path, batch_of) -> dict[str, torch.Tensor]:
    """The policy's gradient at the optimizer step of one update of `trainer` on
    `batch_of(tokenizer)`, from the same start. (Gradients, not the updated weights: Adam's first
    step is about lr * sign(g), which turns float rounding in a gradient near 0 into lr.)"""
    from trainers.parallel import DataParallel
    from trainers.policy import Policy

    torch.manual_seed(0)
    kw = dict(model=tiny_model_path, group_size=4, prompts_per_step=2, generation_backend="hf", max_new_tokens=4,
              learning_rate=1e-2, output_dir=str(tmp_path))
    if trainer == "grpo":
        from trainers.grpo import GRPOConfig, judged_groups, make_loss_fn, update_policy

        cfg = GRPOConfig(**kw)
        policy = Policy.load(cfg, DataParallel())
        run = lambda batch: update_policy(cfg, policy, DataParallel(), batch, make_loss_fn(cfg), 1)  # noqa: E731
    else:
        from trainers.ppo import PPOConfig, judged_groups, make_critic, update

        cfg = PPOConfig(**kw)
        policy = Policy.load(cfg, DataParallel())
        critic, opt = make_critic(cfg, policy, DataParallel())
        run = lambda batch: update(cfg, policy, critic, opt, DataParallel(), batch, 1)  # noqa: E731
    seen: dict[str, torch.Tensor] = {}
    step = policy.optimizer.step

    def record(*args, **kwargs):
        seen.update({n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None})
        return step(*args, **kwargs)

    policy.optimizer.step = record
    run(judged_groups(cfg, batch_of(policy.tokenizer)))
    return seen


@pytest.mark.parametrize("trainer", ["grpo", "ppo"])
def test_a_faulted_row_contributes_nothing_to_the_update(trainer, tiny_model_path, tmp_path):
    """Rows 2 and 5 are verifier faults: whatever their completions and rewards, the gradient is
    the same (within float rounding of the padded shapes); judged with those rewards, it is not."""
    texts = ["15", "14", "1", "15", "5", "151515", "15", "2"]
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    faulted = {2, 5}
    other_texts = [t if i not in faulted else "99999999" for i, t in enumerate(texts)]
    other_rewards = [r if i not in faulted else 1.0 - r for i, r in enumerate(rewards)]
    a = _gradient(trainer, tiny_model_path, tmp_path / "a", lambda tok: _batch(tok, rewards, faulted, texts))
    b = _gradient(trainer, tiny_model_path, tmp_path / "b",
                  lambda tok: _batch(tok, other_rewards, faulted, other_texts))
    judged = _gradient(trainer, tiny_model_path, tmp_path / "c",
                       lambda tok: _batch(tok, other_rewards, set(), other_texts))
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert any(not torch.allclose(a[k], judged[k], atol=1e-4) for k in a)


def test_the_rollout_leaves_faults_out_of_its_statistics(tiny_model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    batch = _batch(tok, [1.0, 0.0, 1.0, 1.0], {2}, ["15", "14", "1", "15"])
    assert batch.judged.tolist() == [True, True, False, True] and batch.completion_mask[2].sum() == 0
    stats = ro.rollout_stats(batch, 4)
    assert stats["verifier_failure_rate"] == 0.25 and stats["verifier_faults"] == 1
    assert stats["verifier_fault"] == {"verifier": None, "status": "verifier_error", "error": "the checker crashed"}
    assert stats["reward_mean"] == pytest.approx(2 / 3) and stats["pass_rate"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- end to end


def _args(tmp_path: Path, model: str, *extra: str) -> list[str]:
    return ["--model", model, "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "4",
            "--eval-samples", "0", "--generation-backend", "hf", "--max-minutes", "0", "--output-dir", str(tmp_path),
            *extra]


def _train(tmp_path: Path, model: str, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m trainers.grpo`, end to end."""
    cmd = [sys.executable, "-m", "trainers.grpo", *_args(tmp_path, model, *extra)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _train_in_process(tmp_path: Path, model: str, *extra: str) -> int:
    """The same run through `main`, what the command runs, in this process (where the command
    itself is not what a test checks: it saves an interpreter start)."""
    from trainers.grpo import main

    return main(_args(tmp_path, model, *extra))


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _one_error_line(stderr: str) -> str:
    """The single `error:` line a stopped run ends with (and no traceback)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


@pytest.mark.slow
def test_a_dead_server_stops_the_run_after_one_step(tmp_path, tiny_model_path):
    out = tmp_path / "run"
    proc = _train(out, tiny_model_path, "--steps", "5", "--verifier-url", "http://127.0.0.1:9")
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert line.startswith("error: stopped at step 1: verifier 'math' failed on 100.0% of the samples of the last "
                           "1 step, above --max-verifier-failure-rate 0.05 (last failure: verifier_error: math: no "
                           "server could judge this sample"), line
    assert "Connection refused" in line and "--resume true" in line
    (m,) = _metrics(out)
    assert (m["verifier_failure_rate"], m["verifier_faults"], m["loss"]) == (1.0, 8, 0.0)
    assert (out / "checkpoint-1" / "meta.json").exists()


@pytest.mark.slow
def test_half_the_samples_failing_is_masked_logged_then_stopped(tmp_path, tiny_model_path, capfd):
    """The tolerant run through `main` in process, the stopped one through the command."""
    server = Server(tmp_path / "flaky.log", "math", script=FLAKY)
    try:
        tolerant = _train_in_process(tmp_path / "tolerant", tiny_model_path, "--steps", "3", "--verifier-url",
                                     server.url, "--max-verifier-failure-rate", "0.6")
        stderr = capfd.readouterr().err
        assert tolerant == 0, stderr[-3000:]
        metrics = _metrics(tmp_path / "tolerant")
        assert [m["verifier_failure_rate"] for m in metrics] == [0.5] * 3   # logged every step
        assert all(m["verifier_faults"] == 4 and m["verifier_verdicts"] == 8 for m in metrics)
        assert all(m["loss"] == m["loss"] and abs(m["loss"]) < 1e3 for m in metrics)   # trained on the judged half
        assert "verifier faults 50.0%" in stderr                                        # in the progress line
        strict = _train(tmp_path / "strict", tiny_model_path, "--steps", "3", "--verifier-url", server.url)
    finally:
        server.kill()
    assert strict.returncode == 3, strict.stderr[-3000:]
    line = _one_error_line(strict.stderr)
    assert "stopped at step 1: verifier 'math' failed on 50.0% of the samples" in line
    assert "verifier 'math' raised RuntimeError: the checker crashed" in line
    assert [m["verifier_failure_rate"] for m in _metrics(tmp_path / "strict")] == [0.5]
    assert (tmp_path / "strict" / "checkpoint-1" / "meta.json").exists()


@pytest.mark.slow
def test_a_server_killed_mid_run_stops_it_and_resume_continues(tmp_path, tiny_model_path):
    out = tmp_path / "run"
    server = Server(tmp_path / "math.log", "math")
    cmd = [sys.executable, "-m", "trainers.grpo", "--model", tiny_model_path, "--steps", "200", "--prompts-per-step",
           "2", "--group-size", "4", "--max-new-tokens", "4", "--eval-samples", "0", "--generation-backend", "hf",
           "--max-minutes", "0", "--checkpoint-every", "0", "--output-dir", str(out), "--verifier-url", server.url]
    trainer = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while server.log().count("scored 8 samples") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()                       # two steps judged; the rest find no server
        _, stderr = trainer.communicate(timeout=600)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert trainer.returncode == 3, stderr[-3000:]
    line = _one_error_line(stderr)
    metrics = _metrics(out)
    stopped = metrics[-1]["step"]
    assert f"stopped at step {stopped}: verifier 'math' failed on" in line and "no server could judge" in line
    assert metrics[0]["verifier_failure_rate"] == 0.0 and metrics[-1]["verifier_failure_rate"] > 0
    assert (out / f"checkpoint-{stopped}" / "meta.json").exists()
    # the verifier is back (on another port): the run continues from its checkpoint to the end
    again = Server(tmp_path / "math2.log", "math")
    try:
        resumed = _train_in_process(out, tiny_model_path, "--steps", str(stopped + 2), "--resume", "true",
                                    "--verifier-url", again.url)
    finally:
        again.kill()
    assert resumed == 0
    assert [m["step"] for m in _metrics(out)] == list(range(1, stopped + 3))
    assert all(m["verifier_failure_rate"] == 0.0 for m in _metrics(out)[stopped:])


def _fake_bwrap(tmp_path: Path) -> dict:
    """An environment whose `bwrap` exits at once, as one without user namespaces does."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "bwrap").write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    (folder / "bwrap").chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_a_sandbox_that_cannot_start_is_the_verifiers_fault(tmp_path):
    record = {"completion": "def f(x):\n    return 2 * x\n",
              "task": {"id": "a", "prompt": "p",
                       "tests": {"entry_point": "f", "cases": [{"args": [2], "expected": 4}]}}}
    proc = subprocess.run([sys.executable, "-m", "verifiers", "score", "--verifier", "code", "--input", "-"], cwd=ROOT,
                          input=json.dumps(record) + "\n", capture_output=True, text=True, env=_fake_bwrap(tmp_path),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    assert (verdict["reward"], verdict["passed"], verdict["info"]["status"]) == (0.0, False, "sandbox_error")
    assert "the sandbox did not start: bwrap: setting up uid map: Permission denied" in verdict["info"]["error"]


def test_an_evaluation_refuses_pass_at_k_when_the_sandbox_cannot_start(tmp_path):
    import envs

    env = envs.get_env("synthetic_code")
    tasks = list(env.tasks("test"))[:3]
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps({"task_id": t.id, "completion": env.demonstration(t)}) + "\n"
                            for t in tasks for _ in range(2)))
    proc = subprocess.run([sys.executable, str(ROOT / "evals" / "pass_at_k.py"), "--env", "synthetic_code",
                           "--completions", str(path), "--output-dir", str(tmp_path / "out"), "--progress", "false"],
                          cwd=ROOT, capture_output=True, text=True, env=_fake_bwrap(tmp_path), timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert line.startswith("error: the verifier failed on 6 of 6 samples (100.0%), above max_verifier_failure_rate "
                           "0.05: pass@k is not reported (verifier 'code', sandbox_error: "), line
    assert not (tmp_path / "out" / "report.json").exists() and proc.stdout == ""


@pytest.mark.slow
def test_a_trainer_whose_sandbox_cannot_start_stops_after_one_step(tmp_path):
    from tests.envs.test_envs_reasoning_gym import _byte_level_model

    model = _byte_level_model(tmp_path / "model")
    options = {"dataset": "leg_counting", "size": 8, "test_size": 4, "style": "bare", "scorer": {"workers": 2}}
    cmd = [sys.executable, "-m", "trainers.grpo", "--model", model, "--env", "reasoning_gym", "--env-options",
           json.dumps(options), "--steps", "3", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens",
           "6", "--eval-samples", "0", "--generation-backend", "hf", "--output-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_fake_bwrap(tmp_path), timeout=600)
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert "stopped at step 1: verifier 'reasoning_gym' failed on 100.0%" in line and "sandbox_error" in line


def test_evaluation_counts_faults_apart_from_failures():
    import envs
    from evals import evaluate
    from verifiers import CompositeVerifier, get_verifier
    from verifiers.base import FunctionVerifier

    env = envs.get_env("arithmetic", test_size=4)
    tasks = list(env.tasks("test"))

    def checker(completion, task):
        if completion == "crash":
            raise RuntimeError("the checker crashed")
        return float(completion == task.answer)

    env.__dict__["verifier"] = CompositeVerifier([(FunctionVerifier(checker, "checker", ""), 1.0),
                                                  (get_verifier("format"), 0.0)])
    # task 0: 3 right + 1 crash; task 1: 1 right, 3 wrong; tasks 2, 3: 4 wrong -> 1 fault in 16
    completions = {tasks[0].id: [tasks[0].answer] * 3 + ["crash"], tasks[1].id: [tasks[1].answer] + ["x"] * 3,
                   tasks[2].id: ["x"] * 4, tasks[3].id: ["y"] * 4}
    report = evaluate(completions, env, n=4, ks=[1, 4], max_verifier_failure_rate=0.1)
    assert report["tasks"][tasks[0].id] == {"n": 3, "c": 3, "faults": 1}   # judged samples only
    assert report["tasks"][tasks[1].id] == {"n": 4, "c": 1}
    assert report["verifier_failures"]["faulted"] == 1 and report["verifier_failures"]["rate"] == 1 / 16
    assert report["statuses"] == {"failed": 11, "passed": 4, "verifier_error": 1}
    assert report["metrics"]["pass@k"]["1"]["value"] == pytest.approx((1 + 0.25 + 0 + 0) / 4)
    assert report["metrics"]["pass@k"]["4"]["value"] is None          # task 0 has 3 judged samples: not computable
    from evals.report import ReportError

    with pytest.raises(ReportError, match=r"the verifier failed on 1 of 16 samples \(6.2%\), above "
                                          r"max_verifier_failure_rate 0.05: pass@k is not reported "
                                          r"\(verifier 'checker', verifier_error: checker: verifier 'checker' raised"):
        evaluate(completions, env, n=4, ks=[1])
