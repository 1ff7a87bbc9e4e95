"""The schedule of asynchronous rollouts (`trainers.rollout_worker.behaviour_version`), as a
function and in a whole run: every batch a worker queues was sampled by exactly the version
the schedule names, which the trainer checks against weights it kept of every version."""

from __future__ import annotations

import copy

import counting_envs  # noqa: F401 - registers test_ones, here and in the worker
import pytest
import torch
from interrupted import interrupted_copy

from trainers import async_rollout as ar
from trainers.forward import completion_logprobs
from trainers.grpo import GRPOConfig, train
from trainers.rollout_worker import behaviour_version


def test_batch_b_is_sampled_by_version_b_minus_n_never_below_the_start():
    assert [behaviour_version(b, 1) for b in range(5)] == [0, 0, 1, 2, 3]
    assert [behaviour_version(b, 0) for b in range(3)] == [0, 1, 2]            # staleness 0: the sync schedule
    assert [behaviour_version(b, 2, floor=5) for b in range(5, 10)] == [5, 5, 5, 6, 7]   # resumed at step 5


@pytest.mark.slow
def test_each_batch_is_sampled_by_the_version_it_names_and_no_other(tmp_path, tiny_model_path, monkeypatch):
    """The worker's behaviour log-probs of batch b are those of version b - 2 (kept by the
    trainer when it published it) to float precision, and far from those of its neighbours: the
    worker loaded every version whole, when it should, and sampled nothing else."""
    versions, batches = {}, []
    start, publish, next_batch = ar.AsyncRollouts._start, ar.AsyncRollouts.publish, ar.AsyncRollouts.next_batch

    def keep(self, version):
        versions[version] = copy.deepcopy(self.policy.model.state_dict())

    monkeypatch.setattr(ar.AsyncRollouts, "_start", lambda self, v: (keep(self, v), start(self, v))[1])
    monkeypatch.setattr(ar.AsyncRollouts, "publish", lambda self, s, b: (keep(self, s), publish(self, s, b))[1])
    monkeypatch.setattr(ar.AsyncRollouts, "next_batch",
                        lambda self, s: batches.append(next_batch(self, s)) or batches[-1])
    cfg = GRPOConfig(model=tiny_model_path, env="test_ones", steps=6, prompts_per_step=4, group_size=4,
                     max_new_tokens=4, learning_rate=1e-2, eval_samples=0, generation_backend="hf",
                     output_dir=str(tmp_path), log_every=1000, max_minutes=0, rollout="async", max_staleness=2,
                     checkpoint_every=0)
    cfg.validate()
    train(cfg)
    model = _model(tiny_model_path)

    def gap(batch, version) -> float:
        model.load_state_dict(versions[version])
        with torch.no_grad():
            logp, _ = completion_logprobs(model, batch, cfg.temperature)
        return float((logp - batch.gen_logprobs).abs()[batch.completion_mask.bool()].max())

    assert [int(b.versions.unique()) for b in batches] == [0, 0, 0, 1, 2, 3]
    for b, batch in enumerate(batches):
        named = behaviour_version(b, 2)
        assert gap(batch, named) < 1e-4, b
        assert all(gap(batch, other) > 1e-2 for other in (named - 1, named + 1) if other in versions), b


def _model(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


@pytest.mark.slow
def test_the_curriculum_moves_in_the_worker_and_resumes_exactly(tmp_path, tiny_model_path):
    """Under async the curriculum's stream observes each draw where it happens, in the worker:
    the level moves, and a run resumed at step 3 logs what the straight run did (the stream's
    state travels with the queued batches)."""
    from test_curriculum import _cfg  # its environment with levels, and a curriculum that moves in 6 steps

    kw = dict(rollout="async", max_staleness=1, checkpoint_every=3)
    train(_cfg(tmp_path / "a", tiny_model_path, **kw))
    interrupted_copy(tmp_path / "a" / "run", tmp_path / "b" / "run", 3)
    train(_cfg(tmp_path / "b", tiny_model_path, resume=True, **kw))
    a, b = (_metrics(tmp_path / name / "run") for name in ("a", "b"))
    assert a == b and len(a) == 6
    assert len({m["difficulty"] for m in a}) > 1, [m["difficulty"] for m in a]


def _metrics(out) -> list[dict]:
    """metrics.jsonl without its timings."""
    import json

    return [{k: v for k, v in json.loads(line).items() if not k.endswith(("_s", "tokens_per_s"))}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_the_curriculum_under_async_is_refused_on_several_ranks(monkeypatch):
    """A worker has no process group: each rank's curriculum would read its own verdicts only."""
    from evals.config_cli import ConfigError

    GRPOConfig(rollout="async", curriculum="adaptive").validate()      # one process: fine
    monkeypatch.setenv("WORLD_SIZE", "2")
    GRPOConfig(rollout="sync", curriculum="adaptive").validate()       # sync on two ranks: fine
    with pytest.raises(ConfigError, match="curriculum.*one process only"):
        GRPOConfig(rollout="async", curriculum="adaptive").validate()
