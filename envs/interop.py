"""Our environments as reasoning-gym-style datasets, so that reasoning-gym's users can take our checkers.

reasoning-gym's convention (which its users' training and evaluation code reads): a dataset is
a sized, indexable sequence of entries `{"question", "answer", "metadata"}` with a method
`score_answer(answer, entry) -> float`. `as_reasoning_gym_dataset(env, split)` gives one for a
split of any environment: the question is the task rendered as plain text (`env.render`),
the answer its gold answer (as text; None where the task has none, as for code tasks judged by
tests), and the metadata carries the whole task, so that `score_answer` can rebuild it and
judge the answer with the environment's verifier (the math checker, the sandboxed code
checker, ...). The score is the verdict's reward.

    from envs import get_env, as_reasoning_gym_dataset
    dataset = as_reasoning_gym_dataset(get_env("gsm8k"), "test")
    entry = dataset[0]
    dataset.score_answer("... so the answer is \\\\boxed{18}", entry)   # 1.0 when right
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from envs.base import EnvError, Environment, take
from verifiers import Task, VerifierError


class ReasoningGymStyleDataset:
    """A split of `env` as reasoning-gym entries (see the module docstring); the first `size`
    tasks of the split (all of a list; 1000 of an endless stream by default)."""

    def __init__(self, env: Environment, split: str = "test", size: int | None = None):
        tasks = env.tasks(split)
        self.tasks: list[Task] = take(tasks, size) if size is not None else \
            (list(tasks) if isinstance(tasks, list) else take(tasks, 1000))
        self.env, self.split = env, split
        self.size = len(self.tasks)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        task = self.tasks[index]
        answer = task.answer if task.answer is None or isinstance(task.answer, str) else json.dumps(task.answer)
        return {"question": self.env.render(task), "answer": answer,
                "metadata": {"source_dataset": f"verirl/{self.env.name}", "source_index": index,
                             "split": self.split, "task": task.to_dict()}}

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(self.size))

    def score_answer(self, answer: str | None, entry: dict[str, Any]) -> float:
        """The environment's reward for `answer` (the model's completion) on `entry`'s task."""
        try:
            task = Task.from_dict(entry["metadata"]["task"])
        except (KeyError, TypeError, VerifierError) as exc:
            raise EnvError(f"entry['metadata']['task'] must be a task of this dataset (entry of "
                           f"as_reasoning_gym_dataset): {exc}") from None
        return self.env.verifier.verify(answer if isinstance(answer, str) else "", task).reward


def as_reasoning_gym_dataset(env: Environment, split: str = "test",
                             size: int | None = None) -> ReasoningGymStyleDataset:
    """`split` of `env` as a reasoning-gym-style dataset (see `ReasoningGymStyleDataset`)."""
    return ReasoningGymStyleDataset(env, split, size)
