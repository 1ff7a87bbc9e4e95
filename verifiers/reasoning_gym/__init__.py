"""`reasoning_gym`: reasoning-gym's own `score_answer`, run in the sandbox behind a code gate.

reasoning-gym (PyPI `reasoning-gym`) scores its tasks with Python functions, some of which
evaluate the model's answer (`eval` in spiral_matrix, string_insertion, binary_matrix and
n_queens; SymPy's `parse_expr`, which evaluates too, in countdown, puzzle24, polynomial
multiplication and the integration tasks). Run in the trainer, an answer such as
`__import__('pathlib').Path('pwned').write_text('x') or [[1]]` writes a file there. This
verifier calls the scorers in the sandbox of `verifiers.code.sandbox` instead (bubblewrap: no
network, a read-only view of the interpreter and of the packages reasoning-gym imports, a
private /tmp; seccomp; CPU, memory and process limits), behind a gate that refuses to run any
code from the answer (`scorer_program.py`), in processes that no earlier abnormal answer has
touched (`runner.py`). docs/reasoning_gym.md has the whole story.

Task fields (what the `reasoning_gym` environment writes; any JSON source can write them):

| field | holds |
| --- | --- |
| `Task.answer` | the generator's `answer` (a string, or null where it has none) |
| `Task.meta["dataset"]` | the generator's registered name (`source_dataset`) |
| `Task.meta["config"]` | its config (JSON), from which its scorer is built |
| `Task.meta["question"]` | its `question` |
| `Task.meta["metadata"]` | its `metadata`, in the wire format of `verifiers.code.wire` (tuples stay tuples) |

The answer is taken from the completion by `extract` (`extract_answer`) and crosses as a
string; the entry crosses as plain data. The reward is reasoning-gym's own float (partial
credit stays partial); `passed` is `score >= pass_threshold`.
"""

from __future__ import annotations

import re
from typing import Any

from verifiers.base import Task, Verdict, Verifier, VerifierError, check_batch, register_verifier
from verifiers.code.memory import check_mode
from verifiers.code.sandbox import check_workers
from verifiers.code.wire import WireError, decode, to_wire

EXTRACT = ("tags", "whole", "auto")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PLAIN = (type(None), bool, int, float, str, bytes, complex)


def extract_answer(completion: str, how: str = "tags") -> str | None:
    """The answer in `completion`: the text of the last `<answer>...</answer>`, stripped
    (`tags`; None when there is none), the whole completion stripped (`whole`), or the first
    where there is a tag and the second otherwise (`auto`).

    >>> extract_answer("<think>2 or 3?</think> <answer> 3 </answer>")
    '3'
    >>> extract_answer("no tags here") is None, extract_answer(" 42\\n", "whole"), extract_answer("42", "auto")
    (True, '42', '42')
    """
    if how != "whole":
        found = _ANSWER.findall(completion)
        if found:
            return found[-1].strip()
        if how == "tags":
            return None
    return completion.strip()


def plain(value: Any) -> Any:
    """`value` with every leaf that is not plain data replaced by its text (a `Fraction` in
    gsm_symbolic's metadata becomes `'1/3'`); containers keep their types."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(plain(v) for v in value) if type(value) in (list, tuple, set, frozenset) \
            else [plain(v) for v in value]
    return str(value)


def metadata_to_wire(metadata: dict) -> Any:
    """A generator's `metadata` as the wire tree stored in `Task.meta["metadata"]`."""
    return to_wire(plain(metadata))


def entry_of(task: Task) -> dict:
    """The reasoning-gym entry a task carries (`question`, `answer`, `metadata`)."""
    return {"question": task.meta["question"], "answer": task.answer, "metadata": decode(task.meta["metadata"])}


def task_item(task: Task, answer: str | None) -> dict:
    """The request item of one answer; `VerifierError` naming the field of a task it cannot judge."""
    meta, where = task.meta, f"task {task.id!r}: Task.meta"
    for key, kind in (("dataset", str), ("config", dict), ("question", str)):
        if not isinstance(meta.get(key), kind):
            raise VerifierError(f"{where}[{key!r}] must be a {kind.__name__} (a reasoning-gym entry; see "
                                f"verifiers.reasoning_gym), got {type(meta.get(key)).__name__}")
    if "metadata" not in meta:
        raise VerifierError(f"{where} has no 'metadata' (the entry's metadata, as a wire tree)")
    try:
        decode(meta["metadata"])
    except (WireError, RecursionError) as exc:
        raise VerifierError(f"{where}['metadata'] is not a wire tree: {exc}") from None
    if task.answer is not None and not isinstance(task.answer, str):
        raise VerifierError(f"task {task.id!r}: Task.answer must be the entry's answer (a string or null), "
                            f"got {type(task.answer).__name__}")
    entry = {"$dict": [["question", meta["question"]], ["answer", task.answer], ["metadata", meta["metadata"]]]}
    return {"dataset": meta["dataset"], "config": meta["config"], "entry": entry, "answer": answer}


def check_datasets(items: list[dict], tasks: list[Task]) -> None:
    from reasoning_gym.factory import DATASETS  # imported here: about a second, paid on first use only

    for item, task in zip(items, tasks):
        if item["dataset"] not in DATASETS or item["dataset"] == "composite":
            raise VerifierError(f"task {task.id!r}: Task.meta['dataset']={item['dataset']!r} is not a generator of "
                                f"the installed reasoning-gym; known: {len(DATASETS) - 1} (python -m envs list)")


@register_verifier("reasoning_gym")
class ReasoningGymVerifier(Verifier):
    """reasoning-gym's score_answer, sandboxed and gated (partial credit kept).

    `extract`: `tags` (the last `<answer>...</answer>`; none: the scorer gets no answer),
    `whole` (the completion, stripped) or `auto` (tags if present, else whole). `time_limit`
    CPU seconds per answer, `memory_mb` per scoring process (`memory_mode`: see
    `verifiers.code.memory`), `workers` sandboxes (default two per core), `chunk_size`
    answers at most per scoring process. Statuses: `passed`/`failed` (score against
    `pass_threshold`), `error` (refused code, the scorer raised on the answer), `timeout`,
    `memory` (the answer's), and the verifier's own failures: `sandbox_error` (the sandbox
    could not run) and `verifier_error` (the scorer could not be built, returned no number, or
    its process crashed with no limit to explain it).
    """

    def __init__(self, extract: str = "tags", pass_threshold: float = 1.0, time_limit: float = 2.0,
                 memory_mb: int = 1024, workers: int | None = None, memory_mode: str = "auto", chunk_size: int = 128):
        if extract not in EXTRACT:
            raise VerifierError(f"option extract must be one of {list(EXTRACT)}, got {extract!r}")
        for name, value in (("pass_threshold", pass_threshold), ("time_limit", time_limit)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value == value:
                raise VerifierError(f"option {name} must be a number, got {value!r}")
        if not time_limit > 0:
            raise VerifierError(f"option time_limit must be positive, got {time_limit!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise VerifierError(f"option chunk_size must be a positive int, got {chunk_size!r}")
        check_mode(memory_mode)
        check_workers(workers)
        from verifiers.reasoning_gym.runner import ScorerPool

        self.extract, self.pass_threshold = extract, float(pass_threshold)
        self.scorers = ScorerPool(float(time_limit), memory_mb, workers, memory_mode, chunk_size)

    def verify(self, completion: str, task: Task) -> Verdict:
        return self.verify_batch([completion], [task])[0]

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        check_batch(completions, tasks)
        answers = [extract_answer(c, self.extract) if isinstance(c, str) else None for c in completions]
        items = [task_item(t, a) for t, a in zip(tasks, answers)]  # misuse raises before anything runs
        check_datasets(items, tasks)
        todo = [i for i, c in enumerate(completions) if isinstance(c, str)]
        outcomes = dict(zip(todo, self.scorers.score([items[i] for i in todo])))
        return [self._verdict(outcomes.get(i), items[i], completions[i]) for i in range(len(items))]

    def _verdict(self, outcome: dict | None, item: dict, completion: Any) -> Verdict:
        info = {"dataset": item["dataset"], "answer": None if item["answer"] is None else item["answer"][:300]}
        if outcome is None:
            return Verdict(0.0, False, {**info, "status": "error",
                                        "error": f"the completion must be a string, got {type(completion).__name__}"})
        if outcome.get("alone"):
            info["scored_alone"] = True
        if outcome.get("undefined"):  # names the gate kept the answer from reading (`scorer_program`)
            info["undefined_names"] = outcome["undefined"]
        if "score" in outcome:
            passed = outcome["score"] >= self.pass_threshold
            return Verdict(outcome["score"], passed, {**info, "status": "passed" if passed else "failed",
                                                      "score": outcome["score"]})
        return Verdict(0.0, False, {**info, "status": outcome["status"], "error": outcome["error"]})

    def warm_up(self) -> None:
        self.scorers.warm_up()

    def close(self) -> None:
        self.scorers.close()
