"""The trainers' data stream: which training tasks each step draws, and how a checkpoint
resumes it.

`TaskStream` makes endless shuffled passes over the environment's train split, each pass in
an order seeded by the run seed and the pass number. Every rank holds the same stream and
draws the same prompts (each keeps its own share of them), so the state to checkpoint is one
number, the position. An environment may generate an endless train split; the stream cycles
over its first `TRAIN_TASKS_CAP` tasks, which keeps that position, and so resuming, exact.

Anything with `take(k)`, `position`, `observe(verdicts)`, `stats()`, `state_dict()` and
`load_state_dict(state)` can stand in for it: that is all the trainers and checkpoints use.
`trainers.curriculum.CurriculumStream`, the adaptive curriculum, does; `training_stream` there
picks the run's stream.
"""

from __future__ import annotations

import random

from trainers.config import derive_seed
from verifiers import Task

TRAIN_TASKS_CAP = 100_000


class TaskStream:
    """Endless shuffled passes over `tasks`; `position` counts the tasks handed out so far."""

    def __init__(self, tasks: list[Task], seed: int, position: int = 0):
        if not tasks:
            raise ValueError("the environment's train split is empty")
        self.tasks, self.seed, self.position = tasks, seed, position
        self._epoch, self._order = -1, []

    @classmethod
    def of(cls, env, seed: int) -> "TaskStream":
        """The stream of `env`'s train split (its first TRAIN_TASKS_CAP tasks)."""
        import envs

        return cls(envs.take(env.tasks("train"), TRAIN_TASKS_CAP), seed)

    def take(self, k: int) -> list[Task]:
        """The next k tasks."""
        out = []
        for _ in range(k):
            epoch, i = divmod(self.position, len(self.tasks))
            if epoch != self._epoch:
                self._epoch, self._order = epoch, list(range(len(self.tasks)))
                random.Random(derive_seed(self.seed, "task_order", epoch)).shuffle(self._order)
            out.append(self.tasks[self._order[i]])
            self.position += 1
        return out

    def observe(self, verdicts: list) -> None:
        """The verdicts of the last draw (this rank's share; every rank calls it after every
        draw): nothing to learn from them here."""

    def stats(self) -> dict:
        """What the step's metrics report of the stream: nothing here."""
        return {}

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the stream (plain JSON)."""
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
