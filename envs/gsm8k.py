"""`gsm8k`: grade-school math word problems (Cobbe et al., 2021), `openai/gsm8k` config `main`.

Loaded with `datasets` (train 7,473 / test 1,319 problems on the hub); offline, pass a local
copy with `path` (a clone of the hub repository, or one `.jsonl`/`.parquet` file) or
`data_files` (see `data.hub`). Each row has `question` and `answer`; the gold answer is the
text after `####` in `answer`, with thousands separators removed. The prompt is the question
followed by `instruction` (ask for `\\boxed{}`); correctness is the `math` verifier, which also
reads `#### n` and a last-number fallback.
"""

from __future__ import annotations

import re

from data.hub import DataSourceError
from envs.base import HubEnvironment, option, register_env
from verifiers import Task, Verifier, get_verifier

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>


def gold_answer(solution: str) -> str | None:
    """The number after the last `####`, without thousands separators.

    >>> gold_answer("16 - 3 - 4 = <<16-3-4=9>>9 eggs.\\n#### 1,018")
    '1018'
    """
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip().replace(",", "") or None


@register_env("gsm8k")
class GSM8KEnv(HubEnvironment):
    """Grade-school math word problems (openai/gsm8k; gold after ####)."""

    columns = ("question", "answer")

    path: str = option("openai/gsm8k", "hub id, local folder (a clone), or one local data file")
    config: str | None = option("main", "dataset configuration ('main' or 'socratic')")
    instruction: str = option(BOXED_INSTRUCTION, "appended to each question ('' for none)")
    audit: bool = option(False, "also score with math-verify and record agreement in info['audit']")

    def row_task(self, row: dict, split: str, index: int) -> Task:
        answer = gold_answer(row["answer"])
        if answer is None:
            raise DataSourceError(f"gsm8k {split} row {index}: no '#### answer' in {row['answer'][-80:]!r}")
        prompt = row["question"] + (f"\n{self.instruction}" if self.instruction else "")
        solution = row["answer"].rsplit("####", 1)[0].strip()
        return Task(id=f"gsm8k/{split}/{index}", prompt=prompt, answer=answer,
                    meta={"question": row["question"], "solution": solution})

    def demonstration(self, task: Task) -> str:
        """The reference solution without calculator annotations, ending in a box."""
        return f"{_CALCULATOR.sub('', task.meta['solution'])}\nThe answer is \\boxed{{{task.answer}}}."

    def correctness_verifier(self) -> Verifier:
        return get_verifier("math", audit=self.audit)
