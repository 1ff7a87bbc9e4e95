"""The adaptive curriculum: training prompts drawn at the environment's difficulty levels
(`envs.difficulty`), the level raised or lowered during training so that the pass rate stays
in a band (`--curriculum adaptive`).

The control rule (`BandController`), in four parts:

1. **A position between levels, a mix of two levels.** The curriculum's position x moves in
   steps of `curriculum_step` (a quarter level by default) between 0 and the top level. With
   x = l + f, a share f of the prompts is drawn at level l + 1 and the rest at level l, spread
   evenly (every 4th prompt at f = 1/4: a running credit, no random draw). Moving by a quarter
   level changes the batch's difficulty by a quarter of a level's jump, so the pass rate
   follows the position smoothly instead of jumping from above the band to below it.
2. **A moving window of pass rates.** The rate the rule reads is passes / samples over the
   last `curriculum_window` groups (at least; whole draws), counted on every rank and summed
   over ranks (one all-reduce per draw), so every rank holds the same window and takes the
   same decision. Groups dropped later by dynamic sampling count: they are what the model
   does at this difficulty. Verdicts that are the verifier's own failure do not.
3. **A band, and a target inside it.** Once the window holds `curriculum_window` groups: above
   the target (`curriculum_target`; by default the band's middle, 0.5) the position moves one
   step up, below the band's lower edge (0.2) one step down, in between it stays. The rule
   thus looks for the hardest mix at which the rate stays in the band: GRPO learns from groups
   that are neither all right nor all wrong (the advantage of a group with pass rate p has
   variance p(1 - p), largest at 0.5), and a rate above the middle says a harder mix would
   still be in the band. Why not wait for the upper edge (0.8): a model's pass rate may level
   off below it, and then the rule never moves. It did so on `arithmetic` with the tiny
   model: its level-0 rate stayed between 0.42 and 0.78 for 1,000 steps, it trained on level 0
   throughout, and its pass@1 at the hardest level fell from 0.064 to 0.018, while the same
   steps at the hardest level raised it to 0.093 (benchmarks/README.md, bench_curriculum).
   `curriculum_target` equal to the band's upper edge gives that wait-for-the-edge rule. With
   the target, on a ladder the tiny model can climb (one-digit sums of 2 to 6 operands), the
   runs reached the top level by step 644-723 with 99.8-100% of their batches in the band, and
   pass@1 there rose 0.254 -> 0.487 over two training seeds, as the same steps at that level
   alone did (-0.000 [-0.028, +0.030]) and +0.39 above level 0 alone.
4. **Hysteresis by dwell time.** A move empties the window: the next decision waits for
   `curriculum_window` groups drawn at the new position, so one good batch does not climb two
   steps, and a rate measured at the old position never moves the new one.

Where it comes from. reasoning-gym's own training recipes raise a generator's global level by
one when the mean score of its last `last_k` samples passes a success threshold (0.7) and lower
it below a failure threshold (0.1): a window, a band and one step at a time, here with steps
finer than a level. AdaRFT (Shi et al. 2025) moves a target difficulty each step by the
distance of the batch reward to a target (0.5) and samples problems near it: the continuous
position and the mix come from there, the dead zone replaces its step size proportional to
the error (a fixed step is easier to reason about and to test by hand). Online difficulty
filtering (Bae et al. 2025) and DAPO's dynamic sampling keep prompts of intermediate pass
rates for the same reason as the band. Learning-progress samplers (ALP-GMM, Portelas et al.
2020; Prioritized Level Replay, Jiang et al. 2021) draw where the success rate changes fastest,
which needs a running estimate at every level; on an ordered ladder of levels the band rule
spends no samples on levels far from the frontier. verl's curriculum sampler hook (a sampler
updated with each batch's results) is the same shape as `observe` here.

`CurriculumStream` is the trainers' data stream for it (the `TaskStream` protocol: `take`,
`position`, `state_dict`, `load_state_dict`, plus `observe` and `stats`): one shuffled stream
of train tasks per level, built when the level is first drawn, none holding a prompt of the
evaluation's test split. Its state (position, the controller, each level's stream position)
is plain JSON in every checkpoint, so a resumed run draws what the uninterrupted one would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import envs
from envs.difficulty import at_level, levels_of
from evals.config_cli import ConfigError
from models import distributed
from trainers.evaluator import evaluation_env
from trainers.task_stream import TRAIN_TASKS_CAP, TaskStream
from verifiers import Task, Verdict


@dataclass
class BandController:
    """The control rule of the module docstring. The position is kept in whole steps (`ticks`,
    `ticks_per_level` of them a level) and the mix's credit in the same units, so the state is
    integers: exact, and the same on every rank."""

    levels: int                # levels 0 .. levels-1
    low: float = 0.2           # band
    high: float = 0.8
    window: int = 128          # groups per decision
    ticks_per_level: int = 4   # 1 / curriculum_step
    ticks: int = 0             # position * ticks_per_level
    target: float | None = None   # a step up above it; None: the band's middle
    credit: int = 0            # the mix's running credit, in ticks
    history: list = field(default_factory=list)   # [passed, samples, groups] per draw since the last move
    last_rate: float | None = None                # the window's pass rate at the last decision

    @property
    def position(self) -> float:
        return self.ticks / self.ticks_per_level

    @property
    def top(self) -> int:
        return (self.levels - 1) * self.ticks_per_level

    def mix(self, k: int) -> list[int]:
        """The levels of the next k prompts: a share frac(position) at the level above, evenly spread."""
        lower, frac = divmod(self.ticks, self.ticks_per_level)
        out = []
        for _ in range(k):
            self.credit += frac
            if self.credit >= self.ticks_per_level:
                self.credit -= self.ticks_per_level
                out.append(lower + 1)
            else:
                out.append(lower)
        return out

    def window_rate(self) -> float | None:
        """Passes / samples over the window (None while it is empty)."""
        samples = sum(h[1] for h in self.history)
        return sum(h[0] for h in self.history) / samples if samples else None

    def observe(self, passed: int, samples: int, groups: int) -> int:
        """Add one draw's counts (all ranks'); the move taken: +1 (a step up), -1 or 0."""
        if samples <= 0:
            return 0
        self.history.append([passed, samples, groups])
        while sum(h[2] for h in self.history) - self.history[0][2] >= self.window:
            self.history.pop(0)   # the window keeps the newest draws that hold `window` groups
        if sum(h[2] for h in self.history) < self.window:
            return 0
        rate = self.last_rate = self.window_rate()
        up_above = (self.low + self.high) / 2 if self.target is None else self.target
        move = 1 if rate > up_above and self.ticks < self.top else -1 if rate < self.low and self.ticks > 0 else 0
        if move:
            self.ticks += move
            self.history, self.credit = [], 0   # dwell: the next decision reads the new position only
        return move

    def state_dict(self) -> dict:
        return {"ticks": self.ticks, "credit": self.credit, "history": [list(h) for h in self.history],
                "last_rate": self.last_rate}

    def load_state_dict(self, state: dict) -> None:
        self.ticks, self.credit = int(state["ticks"]), int(state["credit"])
        self.history = [[int(x) for x in h] for h in state["history"]]
        self.last_rate = state["last_rate"]


def _prompt_key(task: Task) -> str:
    return task.prompt if isinstance(task.prompt, str) else json.dumps(task.prompt, sort_keys=True)


class CurriculumStream:
    """Training tasks of `env` at the levels `controller` picks; `held_out`: prompts never drawn
    (the evaluation's test split). `group_size` turns samples into groups for the window."""

    def __init__(self, env, seed: int, controller: BandController, group_size: int,
                 held_out: frozenset[str] = frozenset()):
        self.env, self.seed, self.controller, self.group_size = env, seed, controller, group_size
        self.held_out = held_out
        self.position = 0          # tasks handed out, every level together (sampling seeds follow it)
        self.drawn_at = controller.position
        self._streams: dict[int, TaskStream] = {}

    def level_stream(self, level: int) -> TaskStream:
        """The shuffled train tasks of `level` (built on first use; deterministic)."""
        if level not in self._streams:
            tasks = [t for t in envs.take(at_level(self.env, level).tasks("train"), TRAIN_TASKS_CAP)
                     if _prompt_key(t) not in self.held_out]
            if not tasks:
                raise envs.EnvError(f"difficulty level {level} of {self.env.name!r} has no train task outside "
                                    "the evaluation's test split")
            self._streams[level] = TaskStream(tasks, self.seed)
        return self._streams[level]

    def take(self, k: int) -> list[Task]:
        """The next k tasks, at the levels of the controller's mix."""
        self.drawn_at = self.controller.position
        out = [self.level_stream(level).take(1)[0] for level in self.controller.mix(k)]
        self.position += k
        return out

    def observe(self, verdicts: list[Verdict]) -> None:
        """This rank's verdicts of the last draw (every rank calls it, after every draw): the
        counts of all ranks go to the controller, which may move the position."""
        # A verifier's own failure judged nothing (`Verdict.verifier_fault`, where verdicts have it).
        judged = [v for v in verdicts if not getattr(v, "verifier_fault", False)]
        passed, samples = (int(x) for x in distributed.all_reduce([sum(v.passed for v in judged), len(judged)]))
        self.controller.observe(passed, samples, samples // self.group_size)

    def stats(self) -> dict:
        """For the step's metrics: the position of the last draw, and the pass rate of the window
        at the last decision (once there was one)."""
        out = {"difficulty": self.drawn_at}
        if self.controller.last_rate is not None:
            out["difficulty_window_pass_rate"] = self.controller.last_rate
        return out

    def state_dict(self) -> dict:
        return {"position": self.position, "drawn_at": self.drawn_at, "controller": self.controller.state_dict(),
                "levels": {str(level): s.position for level, s in self._streams.items()}}

    def load_state_dict(self, state: dict) -> None:
        if "controller" not in state:
            raise ConfigError("resume: the checkpoint was written without a curriculum (curriculum=none); resume "
                              "it with the same curriculum option")
        self.position, self.drawn_at = int(state["position"]), float(state["drawn_at"])
        self.controller.load_state_dict(state["controller"])
        for level, position in state["levels"].items():
            self.level_stream(int(level)).position = int(position)


def training_stream(cfg, env) -> TaskStream | CurriculumStream:
    """The run's data stream: `TaskStream` over the train split, or with `curriculum=adaptive`
    a `CurriculumStream` over the environment's levels, kept off the evaluation's test split."""
    if cfg.curriculum == "none":
        return TaskStream.of(env, cfg.seed)
    levels = levels_of(env)
    if levels < 2:
        raise ConfigError(f"curriculum: environment {cfg.env!r} has {levels or 'no'} difficulty levels; the adaptive "
                          "curriculum needs at least 2 (arithmetic, calculator, reasoning_gym have them)")
    if getattr(env, "difficulty", None) is not None:
        raise ConfigError("curriculum: the curriculum sets the difficulty; drop it from env_options "
                          "(curriculum_start sets where it begins)")
    ticks_per_level = round(1 / cfg.curriculum_step)
    start = round(cfg.curriculum_start * ticks_per_level)
    if start > (levels - 1) * ticks_per_level:
        raise ConfigError(f"curriculum_start: {cfg.curriculum_start} is above the top level {levels - 1}")
    low, high = cfg.curriculum_band
    controller = BandController(levels, low, high, cfg.curriculum_window, ticks_per_level, ticks=start,
                                target=cfg.curriculum_target)
    test = evaluation_env(cfg, env).tasks("test")
    held_out = frozenset(_prompt_key(t) for t in envs.take(test, TRAIN_TASKS_CAP))
    return CurriculumStream(env, cfg.seed, controller, cfg.group_size, held_out)
