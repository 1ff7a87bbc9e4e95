"""Use verirl verifiers from other trainers: `as_trl_reward` makes a TRL reward function,
`as_verl_reward` a verl `compute_score` function.

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


def _build(verifier: Verifier | str, options: dict, caller: str) -> Verifier:
    if isinstance(verifier, str):
        return get_verifier(verifier, **options)
    if not isinstance(verifier, Verifier):
        raise VerifierError(f"{caller} needs a Verifier or a registered verifier name, got {type(verifier).__name__}")
    if options:
        raise VerifierError("options are only accepted with a verifier name")
    return verifier


def as_trl_reward(verifier: Verifier | str, **options: Any) -> Callable[..., list[float]]:
    """A TRL-style reward function `(prompts, completions, **columns) -> list[float]` that
    scores with `verifier` (an instance, or a registered name built with `options`)."""
    verifier = _build(verifier, options, "as_trl_reward")

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


# --------------------------------------------------------------------------- verl


def _verl_task(data_source: Any, ground_truth: Any, extra_info: Any, i: int) -> Task:
    """verl's row -> Task: `ground_truth` is the answer; from `extra_info`, `id`/`task_id`/`index`
    give the id, `prompt` the prompt (default ""), `tests` the tests, a `meta` dict and every other
    key the meta, which also gets `data_source`."""
    if extra_info is not None and not isinstance(extra_info, dict):
        raise VerifierError(f"extra_info of row {i} must be a dict or None, got {type(extra_info).__name__}")
    row = dict(extra_info or {})
    row.pop("num_turns", None)  # verl's own bookkeeping (multi-turn rollouts), not the task's
    ids = [row.pop(key, None) for key in ("id", "task_id", "index")]
    task_id = next((str(v) for v in ids if v is not None and v != ""), f"row-{i}")
    meta = row.pop("meta", None) or {}
    if not isinstance(meta, dict):
        raise VerifierError(f"extra_info['meta'] of row {i} must be a dict, got {type(meta).__name__}")
    prompt = _text(row.pop("prompt", ""), "prompt", i)
    return Task(id=task_id, prompt=prompt, answer=ground_truth, tests=row.pop("tests", None),
                meta={**meta, **row, "data_source": data_source})


def as_verl_reward(verifier: Verifier | str, **options: Any) -> Callable[..., Any]:
    """A verl reward function that scores with `verifier` (an instance, or a registered name
    built with `options`); give it to verl as `custom_reward_function.path/name`.

    verl's `NaiveRewardManager` calls `compute_score(data_source=..., solution_str=...,
    ground_truth=..., extra_info=...)` once per response; its `BatchRewardManager` calls
    `compute_score(data_sources=..., solution_strs=..., ground_truths=..., extra_infos=...)` once
    per batch. The function answers both: a dict `{"score": reward, "acc": 1.0 | 0.0}` (verl takes
    `score` as the reward and logs every key), or a list of them. Tasks are rebuilt by `_verl_task`.
    """
    verifier = _build(verifier, options, "as_verl_reward")

    def compute_score(data_source=None, solution_str=None, ground_truth=None, extra_info=None, *,
                      data_sources=None, solution_strs=None, ground_truths=None, extra_infos=None):
        if solution_strs is None:
            return _verl_scores(verifier, [data_source], [solution_str], [ground_truth], [extra_info])[0]
        n = len(solution_strs)

        def given(values):
            return list(values) if values is not None else [None] * n

        return _verl_scores(verifier, given(data_sources), list(solution_strs), given(ground_truths),
                            given(extra_infos))

    compute_score.__name__ = f"verirl_{verifier.name or type(verifier).__name__}"
    return compute_score


def _verl_scores(verifier: Verifier, sources: list, solutions: list, truths: list, infos: list) -> list[dict]:
    if not len(sources) == len(solutions) == len(truths) == len(infos):
        raise VerifierError(f"got {len(sources)} data sources, {len(solutions)} solutions, {len(truths)} ground "
                            f"truths and {len(infos)} extra infos; verl passes one of each per response")
    tasks = [_verl_task(s, g, e, i) for i, (s, g, e) in enumerate(zip(sources, truths, infos))]
    verdicts = verifier.verify_batch([_text(c, "solution_str", i) for i, c in enumerate(solutions)], tasks)
    return [{"score": v.reward, "acc": float(v.passed)} for v in verdicts]
