"""`math`: competition mathematics (Hendrycks et al., 2021), by default `HuggingFaceH4/MATH-500`.

MATH-500 is the 500-problem test subset of MATH used by "Let's Verify Step by Step"
(Lightman et al., 2023); it has only a `test` split. Rows have `problem`, `solution`,
`answer`, `subject`, `level` (1-5) and `unique_id`. The gold answer is the `answer` column
when the dataset has one, otherwise the last `\\boxed{}` of the solution (a last box left open
is no answer: `verifiers.math.extract.last_boxed` with `strict=True`). The original MATH files,
with `type` and `level` = "Level 3", load too. Offline, pass a local copy with
`path` or `data_files` (see `data.hub`). `subjects` and `levels` filter the problems.
Correctness is the `math` verifier (SymPy equivalence of LaTeX answers).
"""

from __future__ import annotations

import re

from data.hub import DataSourceError
from envs.base import EnvError, HubEnvironment, option, register_env
from envs.gsm8k import BOXED_INSTRUCTION
from verifiers import Task, Verifier, get_verifier
from verifiers.math.extract import last_boxed


def _level(value) -> int | None:
    m = re.search(r"\d+", str(value))
    return int(m.group()) if m else None


def _list_of(value, ok) -> bool:
    return isinstance(value, (list, tuple)) and all(ok(x) for x in value)


@register_env("math")
class MathEnv(HubEnvironment):
    """Competition math (HuggingFaceH4/MATH-500; LaTeX answers, SymPy-checked)."""

    columns = ("problem", "solution")

    path: str = option("HuggingFaceH4/MATH-500", "hub id, local folder (a clone), or one local data file")
    instruction: str = option(BOXED_INSTRUCTION, "appended to each problem ('' for none)")
    subjects: list | None = option(None, "keep only these subjects (e.g. ['Algebra', 'Precalculus'])")
    levels: list | None = option(None, "keep only these difficulty levels (1-5)")
    audit: bool = option(False, "also score with math-verify and record agreement in info['audit']")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels is not None and not _list_of(self.levels, lambda x: isinstance(x, int) and 1 <= x <= 5):
            raise EnvError(f"option levels must be a list of ints in 1..5, got {self.levels!r}")
        if self.subjects is not None and not _list_of(self.subjects, lambda s: isinstance(s, str)):
            raise EnvError(f"option subjects must be a list of subject names, got {self.subjects!r}")

    def row_task(self, row: dict, split: str, index: int) -> Task | None:
        subject, level = row.get("subject") or row.get("type"), _level(row.get("level"))
        if (self.subjects is not None and subject not in self.subjects) or \
                (self.levels is not None and level not in self.levels):
            return None
        answer = row.get("answer") or last_boxed(row["solution"], strict=True)
        if not answer:
            raise DataSourceError(f"math {split} row {index}: no 'answer' column and no \\boxed{{}} in the solution")
        prompt = row["problem"] + (f"\n{self.instruction}" if self.instruction else "")
        task_id = f"math/{row['unique_id']}" if row.get("unique_id") else f"math/{split}/{index}"
        return Task(id=task_id, prompt=prompt, answer=answer,
                    meta={"problem": row["problem"], "solution": row["solution"], "subject": subject, "level": level})

    def demonstration(self, task: Task) -> str:
        """The reference solution (it ends in a `\\boxed{}`)."""
        solution = task.meta["solution"]
        return solution if last_boxed(solution, strict=True) else f"{solution}\nThe answer is \\boxed{{{task.answer}}}."

    def correctness_verifier(self) -> Verifier:
        return get_verifier("math", audit=self.audit)
