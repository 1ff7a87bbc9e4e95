"""trainers/curriculum.py: the control rule against hand-worked sequences of pass rates, the
mix of levels, the data stream (determinism, held-out prompts, state), the options, and GRPO
and PPO runs with the curriculum that resume exactly."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

import envs
from envs.base import Environment, register_env
from envs.difficulty import difficulty_option, level_task_id, resolve_level
from evals.config_cli import ConfigError
from trainers.config import RunConfig
from trainers.curriculum import BandController, CurriculumStream, training_stream
from trainers.grpo import GRPOConfig, train
from verifiers import Task, Verdict, Verifier

TIMINGS = ("elapsed_s", "generation_s", "verification_s", "update_s", "sync_s", "tokens_per_s")


# --------------------------------------------------------------------------- the control rule


def test_the_window_fills_before_any_decision_then_slides():
    c = BandController(levels=3, window=4)            # band 0.2-0.8, target 0.5, a quarter level per move
    assert c.observe(7, 16, 2) == 0 and c.last_rate is None          # 2 groups < 4: no reading yet
    assert c.observe(1, 16, 2) == 0 and c.last_rate == 8 / 32        # 0.25: in the band, below the target
    # A third draw: the window keeps the newest draws that hold 4 groups, (1 + 15) / 32 = 0.5: holds.
    assert c.observe(15, 16, 2) == 0 and c.last_rate == 16 / 32
    # (15 + 12) / 32 = 0.84375, above the target: one step up.
    assert c.observe(12, 16, 2) == 1 and c.last_rate == 27 / 32
    assert (c.ticks, c.position, c.history) == (1, 0.25, [])          # a move empties the window


def test_one_step_down_below_the_band_then_up_above_the_target():
    c = BandController(levels=3, window=2, ticks=4)                   # at level 1
    assert c.observe(3, 16, 2) == -1 and c.position == 0.75           # 3/16 = 0.1875 < 0.2
    # The window was emptied: this draw alone fills it, 9/16 = 0.5625 > 0.5 (inside the band).
    assert c.observe(9, 16, 2) == 1 and c.position == 1.0


def test_rates_on_the_lower_edge_and_on_the_target_hold():
    c = BandController(levels=3, window=2, ticks=4)
    assert c.observe(8, 40, 2) == 0 and c.last_rate == 0.2            # exactly low: inside
    assert c.observe(20, 40, 2) == 0 and c.last_rate == 0.5           # exactly the target: holds


def test_a_target_at_the_upper_edge_waits_for_the_rate_to_leave_the_band():
    c = BandController(levels=3, window=2, ticks=4, target=0.8)
    assert c.observe(26, 40, 2) == 0 and c.last_rate == 0.65          # above the middle, not above 0.8
    assert c.observe(32, 40, 2) == 0 and c.last_rate == 0.8           # exactly high: inside
    assert c.observe(33, 40, 2) == 1 and c.position == 1.25


def test_the_position_stays_between_the_lowest_and_the_top_level():
    bottom = BandController(levels=3, window=1)
    assert bottom.observe(0, 8, 1) == 0 and bottom.ticks == 0         # nothing below level 0
    top = BandController(levels=3, window=1, ticks=8)                 # level 2 = the top of 3 levels
    assert top.observe(8, 8, 1) == 0 and top.ticks == 8
    assert top.history == [[8, 8, 1]]                                 # no move: the window keeps sliding


def test_a_hand_worked_climb_and_fall():
    """Window 4 groups of 8 samples, each draw 4 groups (so every draw is a decision), step 1/2,
    band 0.2-0.8, target 0.5."""
    c = BandController(levels=3, window=4, ticks_per_level=2)
    rates = [20, 17, 16, 10, 5, 16, 27, 29]     # passes out of 32 per draw
    # 20/32 = 0.625 up (0.5); 17/32 = 0.531 up (1.0); 16/32 = 0.5 hold; 10/32 = 0.3125 hold;
    # 5/32 = 0.156 down (0.5); 16/32 hold; 27/32 = 0.844 up (1.0); 29/32 up (1.5).
    positions = []
    for passed in rates:
        c.observe(passed, 32, 4)
        positions.append(c.position)
    assert positions == [0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.5]


def test_empty_draws_are_ignored():
    c = BandController(levels=2, window=1)
    assert c.observe(0, 0, 0) == 0 and c.history == [] and c.last_rate is None


def test_the_mix_spreads_the_upper_level_evenly_and_carries_over_draws():
    c = BandController(levels=4, ticks_per_level=4, ticks=5)          # position 1.25
    assert c.mix(8) == [1, 1, 1, 2, 1, 1, 1, 2]
    c = BandController(levels=4, ticks_per_level=4, ticks=6)          # position 1.5
    assert c.mix(4) == [1, 2, 1, 2]
    whole, parts = BandController(levels=4, ticks=7), BandController(levels=4, ticks=7)
    assert whole.mix(8) == parts.mix(3) + parts.mix(5)                # the credit carries over
    assert BandController(levels=4, ticks=8).mix(3) == [2, 2, 2]      # a whole level: no mix


def test_controller_state_round_trips_as_json():
    c = BandController(levels=3, window=8)
    c.observe(5, 16, 2)
    c.mix(3)
    state = json.loads(json.dumps(c.state_dict()))
    d = BandController(levels=3, window=8)
    d.load_state_dict(state)
    assert d == c


# --------------------------------------------------------------------------- the data stream


def _stream(env, **kw) -> CurriculumStream:
    held_out = frozenset(t.prompt for t in env.tasks("test"))
    return CurriculumStream(env, 0, BandController(env.difficulty_levels, **kw), group_size=4, held_out=held_out)


def _verdicts(passed: int, total: int) -> list[Verdict]:
    return [Verdict(float(i < passed), i < passed, {"status": "passed" if i < passed else "failed"})
            for i in range(total)]


def test_stream_draws_the_mix_deterministically_and_never_a_test_prompt():
    env = envs.get_env("arithmetic", train_size=200, test_size=50)
    a, b = _stream(env, ticks=2), _stream(env, ticks=2)              # position 0.5
    drawn = a.take(8)
    assert [t.id for t in drawn] == [t.id for t in b.take(8)]
    assert [t.id.startswith("arithmetic/level1/") for t in drawn] == [False, True] * 4
    assert a.position == 8 and a.stats() == {"difficulty": 0.5}
    # Prompts of the evaluation's test split are never drawn (here: some level-0 train prompts).
    held = frozenset(t.prompt for t in env.tasks("train")[:20])
    c = CurriculumStream(env, 0, BandController(5), group_size=4, held_out=held)
    drawn = {t.prompt for t in c.take(400)}
    assert len(drawn) == 180 and not held & drawn


def test_stream_observes_verdicts_and_resumes_from_its_state():
    env = envs.get_env("arithmetic", train_size=200, test_size=50)
    first = _stream(env, window=2)
    first.take(8)
    first.observe(_verdicts(7, 8))                                    # 2 groups of 4, 7/8 > 0.8: up
    assert first.controller.position == 0.25
    assert first.stats() == {"difficulty": 0.0, "difficulty_window_pass_rate": 7 / 8}
    first.take(8)
    again = _stream(env, window=2)
    again.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert [t.id for t in first.take(16)] == [t.id for t in again.take(16)]
    assert again.stats() == first.stats()


def test_a_verifier_fault_is_not_counted_as_a_failure():
    class Fault(Verdict):
        verifier_fault = True

    env = envs.get_env("arithmetic", train_size=200, test_size=50)
    s = _stream(env, window=1)
    s.take(8)
    s.observe(_verdicts(4, 4) + [Fault(0.0, False, {"status": "sandbox_error"})] * 4)
    assert s.controller.last_rate == 1.0


@pytest.mark.parametrize("options,message", [
    (dict(env="synthetic_code", curriculum="adaptive"), "no difficulty levels"),
    (dict(curriculum="adaptive", env_options={"difficulty": 1}), "drop it from env_options"),
    (dict(curriculum="adaptive", curriculum_start=4.5), "above the top level 4"),
])
def test_a_stream_that_cannot_be_made_names_the_option(options, message):
    cfg = RunConfig(**options)
    with pytest.raises(ConfigError, match=message):
        training_stream(cfg, envs.get_env(cfg.env, **cfg.env_options))


@pytest.mark.parametrize("options,field", [
    (dict(curriculum="fast"), "curriculum"), (dict(curriculum_band=[0.8, 0.2]), "curriculum_band"),
    (dict(curriculum_band=[0.2]), "curriculum_band"), (dict(curriculum_window=0), "curriculum_window"),
    (dict(curriculum_step=0.3), "curriculum_step"), (dict(curriculum_start=0.1), "curriculum_start"),
    (dict(curriculum_target=0.9), "curriculum_target"), (dict(curriculum_target=0.1), "curriculum_target"),
    (dict(curriculum_target=True), "curriculum_target"),
    (dict(eval_difficulty="hardest"), "eval_difficulty"), (dict(eval_difficulty=-1), "eval_difficulty"),
])
def test_bad_curriculum_options_are_refused_naming_the_field(options, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        RunConfig(**options).validate()


# --------------------------------------------------------------------------- training with it


class AnyOfVerifier(Verifier):
    """Passes a completion holding any of the task's accepted characters."""

    name = "any_of"

    def verify(self, completion: str, task: Task) -> Verdict:
        ok = any(c in task.meta["accept"] for c in completion)
        return Verdict(float(ok), ok, {"status": "passed" if ok else "failed"})


@register_env("test_levels")
class LevelsEnv(Environment):
    """Test environment with 3 levels: fewer characters pass at higher levels."""

    difficulty_levels: ClassVar[int] = 3
    difficulty: Any = difficulty_option()

    def load_tasks(self, split):
        level = resolve_level(self.difficulty, self.difficulty_levels)
        accept = "0123456789+-*/=()."[: 14 - 6 * (level or 0)]
        numbers = range(10, 40) if split == "train" else range(40, 50)
        return [Task(id=level_task_id("test_levels", level, split, i), prompt=f"{n}+{level or 0}=",
                     meta={"accept": accept}) for i, n in enumerate(numbers)]

    def correctness_verifier(self):
        return AnyOfVerifier()


def _cfg(tmp_path, model, cls=GRPOConfig, **kw) -> GRPOConfig:
    base = dict(model=model, env="test_levels", steps=6, prompts_per_step=4, group_size=4, max_new_tokens=3,
                learning_rate=1e-2, eval_samples=0, generation_backend="hf", output_dir=str(tmp_path / "run"),
                log_every=1000, max_minutes=0, curriculum="adaptive", curriculum_window=4,
                curriculum_band=[0.55, 0.8], curriculum_step=0.5)
    base.update(kw)
    cfg = cls(**base)
    cfg.validate()
    return cfg


def _metrics(out) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def test_grpo_with_the_curriculum_logs_the_level_and_resumes_exactly(tmp_path, tiny_model_path):
    straight = train(_cfg(tmp_path / "a", tiny_model_path))
    train(_cfg(tmp_path / "b", tiny_model_path, steps=3))
    resumed = train(_cfg(tmp_path / "b", tiny_model_path, resume=True))
    a, b = _metrics(tmp_path / "a" / "run"), _metrics(tmp_path / "b" / "run")
    assert a == b
    levels = [m["difficulty"] for m in a]
    assert len(set(levels)) > 1, levels                                # the level moved during the run
    assert all(m["difficulty_window_pass_rate"] is not None for m in a[1:])
    for k, v in straight["summary"]["last_metrics"].items():
        assert k in TIMINGS or resumed["summary"]["last_metrics"][k] == v, k


def test_ppo_takes_the_curriculum_too(tmp_path, tiny_model_path):
    from trainers.ppo import PPOConfig
    from trainers.ppo import train as train_ppo

    train_ppo(_cfg(tmp_path, tiny_model_path, PPOConfig, steps=3))
    assert [type(m["difficulty"]) for m in _metrics(tmp_path / "run")] == [float] * 3


def test_the_evaluation_runs_at_the_hardest_level(tmp_path, tiny_model_path):
    report = train(_cfg(tmp_path, tiny_model_path, steps=1, eval_samples=2, eval_tasks=3, eval_difficulty="max"))
    assert report["after"]["manifest"]["env"]["options"]["difficulty"] == 2
    assert all(t.startswith("test_levels/level2/test/") for t in report["after"]["tasks"])
