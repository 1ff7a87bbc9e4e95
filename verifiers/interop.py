"""Use verirl verifiers from other trainers: `as_trl_reward` makes a TRL reward function.

TRL's `GRPOTrainer` calls each reward function as `f(prompts=..., completions=...,
completion_ids=..., **columns)`, where every other dataset column arrives as a keyword argument
holding one value per completion, and expects one float per completion. The task is rebuilt per
row from the columns named like `Task` fields (`id`, else `task_id`; `answer`, `tests`); the other
columns go in `Task.meta`, except the ones TRL adds itself (`trainer_state`, `completion_ids`,
`log_extra`, `log_metric`, `environments`). Conversational completions (lists of messages) are
judged on the content of their last message; conversational prompts stay chat messages.
"""

from __future__ import annotations

from typing import Any, Callable

from verifiers.base import Task, Verifier, VerifierError, get_verifier

_TRL_INTERNAL = {"trainer_state", "completion_ids", "log_extra", "log_metric", "environments"}


def _text(item: Any, what: str, row: int) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, list) and item and isinstance(item[-1], dict) and "content" in item[-1]:
        return item if what == "prompt" else item[-1]["content"]
    raise VerifierError(f"{what} of row {row} must be a string or a list of chat messages, got {type(item).__name__}")


def _task_id(row: dict, i: int) -> str:
    """`id`, else `task_id` (both leave `meta`); a missing or empty one (0 is an id) becomes `row-i`."""
    ids = [row.pop(key, None) for key in ("id", "task_id")]
    return next((str(v) for v in ids if v is not None and v != ""), f"row-{i}")


def as_trl_reward(verifier: Verifier | str, **options: Any) -> Callable[..., list[float]]:
    """A TRL-style reward function `(prompts, completions, **columns) -> list[float]` that
    scores with `verifier` (an instance, or a registered name built with `options`)."""
    if isinstance(verifier, str):
        verifier = get_verifier(verifier, **options)
    elif not isinstance(verifier, Verifier):
        raise VerifierError(f"as_trl_reward needs a Verifier or a registered verifier name, got "
                            f"{type(verifier).__name__}")
    elif options:
        raise VerifierError("options are only accepted with a verifier name")

    def reward(prompts: list, completions: list, **columns: Any) -> list[float]:
        columns = {k: v for k, v in columns.items() if k not in _TRL_INTERNAL}
        if len(prompts) != len(completions):
            raise VerifierError(f"got {len(prompts)} prompts but {len(completions)} completions; TRL passes one "
                                "prompt per completion")
        for name, values in columns.items():
            if not isinstance(values, (list, tuple)) or len(values) != len(completions):
                got = f"{len(values)} values" if isinstance(values, (list, tuple)) else type(values).__name__
                raise VerifierError(f"column {name!r} must hold one value per completion "
                                    f"({len(completions)}), got {got}")
        tasks = []
        for i, prompt in enumerate(prompts):
            row = {k: v[i] for k, v in columns.items()}
            tasks.append(Task(id=_task_id(row, i), prompt=_text(prompt, "prompt", i), answer=row.pop("answer", None),
                              tests=row.pop("tests", None), meta=row))
        texts = [_text(c, "completion", i) for i, c in enumerate(completions)]
        return [v.reward for v in verifier.verify_batch(texts, tasks)]

    reward.__name__ = f"verirl_{verifier.name or type(verifier).__name__}"
    return reward
