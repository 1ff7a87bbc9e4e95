"""Use verirl verifiers from other trainers: `as_trl_reward` makes a TRL reward function.

TRL's `GRPOTrainer` calls each reward function as `f(prompts=..., completions=...,
completion_ids=..., **columns)`, where every other dataset column arrives as a keyword argument
holding one value per completion, and expects one float per completion. The task is rebuilt per
row from the columns named like `Task` fields (`id`/`task_id`, `answer`, `tests`); the other
columns go in `Task.meta`. Conversational completions (lists of messages) are judged on the
content of their last message.
"""

from __future__ import annotations

from typing import Any, Callable

from verifiers.base import Task, Verifier, VerifierError, get_verifier

_TRL_INTERNAL = {"trainer_state", "completion_ids", "log_extra", "log_metric"}


def _text(item: Any, what: str, row: int) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, list) and item and isinstance(item[-1], dict) and "content" in item[-1]:
        return item if what == "prompt" else item[-1]["content"]
    raise VerifierError(f"{what} of row {row} must be a string or a list of chat messages, got {type(item).__name__}")


def as_trl_reward(verifier: Verifier | str, **options: Any) -> Callable[..., list[float]]:
    """A TRL-style reward function `(prompts, completions, **columns) -> list[float]` that
    scores with `verifier` (an instance, or a registered name built with `options`)."""
    if isinstance(verifier, str):
        verifier = get_verifier(verifier, **options)
    elif options:
        raise VerifierError("options are only accepted with a verifier name")

    def reward(prompts: list, completions: list, **columns: Any) -> list[float]:
        columns = {k: v for k, v in columns.items() if k not in _TRL_INTERNAL}
        for name, values in columns.items():
            if not isinstance(values, list) or len(values) != len(completions):
                raise VerifierError(f"column {name!r} must hold one value per completion ({len(completions)})")
        tasks = []
        for i, prompt in enumerate(prompts):
            row = {k: v[i] for k, v in columns.items()}
            task_id = row.pop("id", None) or row.pop("task_id", None) or f"row-{i}"
            tasks.append(Task(id=str(task_id), prompt=_text(prompt, "prompt", i), answer=row.pop("answer", None),
                              tests=row.pop("tests", None), meta=row))
        texts = [_text(c, "completion", i) for i, c in enumerate(completions)]
        return [v.reward for v in verifier.verify_batch(texts, tasks)]

    reward.__name__ = f"verirl_{verifier.name or type(verifier).__name__}"
    return reward
