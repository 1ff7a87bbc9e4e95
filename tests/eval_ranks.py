"""`evaluate` as the trainers call it on every rank of a process group (run by torchrun from
tests/evals/test_eval_distributed.py): each rank builds its own generator and calls the library with
the same arguments; each rank writes what it got back to OUT/rank<r>.json.

    python -m torch.distributed.run --nproc_per_node 2 tests/eval_ranks.py MODEL OUT

Three calls, each rank recording the outcome of each:
  report   a fresh evaluation into OUT/eval (rank 0 alone writes there);
  refused  the same folder with another temperature: rank 0 alone reads the folder and refuses
           it, and every rank must raise that error;
  failed   a generator that raises PromptError on rank 1 only: every rank must raise it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import envs
from evals.harness import evaluate
from models import distributed
from models.hf_sampler import HFSampler
from models.sampler import PromptError

ENV_OPTIONS = {"digits": 1, "operators": "+"}
EVAL = dict(n=4, ks=[1, 2, 4], limit=5, batch_size=2, max_new_tokens=4, seed=3, n_bootstrap=50,
            env_options=ENV_OPTIONS)


class FailsOnRankOne:
    """The rank's generator, except that on rank 1 every prompt is refused."""

    def __init__(self, generator):
        self.generator, self.tokenizer = generator, generator.tokenizer

    def generate(self, prompts, n, **kw):
        if distributed.rank() == 1:
            raise PromptError("prompt 0 refused on rank 1 only", 0)
        return self.generator.generate(prompts, n, **kw)


def outcome(call) -> dict:
    try:
        return {"report": call()}
    except Exception as exc:  # noqa: BLE001 - records any error of this rank, for the test to compare
        cause = exc.__cause__
        return {"error": type(exc).__name__, "message": str(exc),
                "cause": None if cause is None else f"{type(cause).__name__}: {cause}"}


def main(model: str, out: Path) -> None:
    distributed.init()
    env = envs.get_env("arithmetic", **ENV_OPTIONS)
    generator = HFSampler(model)
    results = {
        "report": outcome(lambda: evaluate(generator, env, output_dir=str(out / "eval"), model="fitted", **EVAL)),
        "refused": outcome(lambda: evaluate(generator, env, output_dir=str(out / "eval"), model="fitted",
                                            **{**EVAL, "temperature": 0.5})),
        "failed": outcome(lambda: evaluate(FailsOnRankOne(generator), env, model="fitted", **EVAL)),
    }
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps(results))
    distributed.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
