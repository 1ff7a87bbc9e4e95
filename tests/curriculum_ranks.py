"""The curriculum's decision on every rank of a process group (run by torchrun from
tests/trainers/test_distributed.py): each rank feeds the stream verdicts of its own, rank 0 all passes
and rank 1 none, then 12 of 16; each writes its stream's state to OUT/rank<r>.json.

    python -m torch.distributed.run --nproc_per_node 2 tests/curriculum_ranks.py OUT

Read alone, rank 0's rates would move the level up and rank 1's down; summed over ranks they
give 0.5 (inside the band: no move), then 28/32 = 0.875 (one step up, on both ranks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import envs
from models import distributed
from trainers.curriculum import BandController, CurriculumStream
from verifiers import Verdict


def verdicts(passed: int, total: int = 16) -> list[Verdict]:
    return [Verdict(float(i < passed), i < passed, {"status": "passed" if i < passed else "failed"})
            for i in range(total)]


def main(out: Path) -> None:
    distributed.init()
    rank = distributed.rank()
    env = envs.get_env("arithmetic", train_size=100, test_size=20)
    stream = CurriculumStream(env, 0, BandController(env.difficulty_levels, window=8), group_size=4)
    stream.take(8)                                   # 4 prompts x 4 samples on each of the 2 ranks
    stream.observe(verdicts(16 if rank == 0 else 0))
    after_first = stream.controller.position
    stream.take(8)
    stream.observe(verdicts(16 if rank == 0 else 12))
    (out / f"rank{rank}.json").write_text(json.dumps({"after_first": after_first, "state": stream.state_dict()}))
    distributed.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
