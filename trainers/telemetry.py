"""Reward-hacking telemetry: the per-step signals that go wrong first when a policy learns to
please its verifier instead of solving the task, and one-line warnings when a documented
signature of hacking shows in them.

Per step (`batch_telemetry`, in `metrics.jsonl`; judged rows only):

* reward composition, for a composite verifier: `reward_correct_mean` (the correctness part's
  weighted reward), `reward_other_mean` (the other parts': format, tags, length) and
  `reward_other_share`, the other parts' share of all the reward paid;
* length: `completion_len_mean` and `completion_len_max` (`trainers.rollout`),
  `completion_len_p95`, `truncated_frac`;
* `duplicate_frac`: the share of completions identical to another of their group;
* `answer_spray_frac`: the share of completions that give more than one final answer
  (`final_answers`: several boxes, several `####` lines, several `<answer>` tags);
* `audit_disagreement_rate` (`trainers.rollout`), where the verifier audits its verdicts.

At each evaluation after the first (`HackingMonitor.observe_evaluation`): the held-out gap,
the training pass rate since the previous evaluation minus the held-out pass@1.

`SIGNATURES` are the warnings, each a comparison of the last `WINDOW` steps' two halves (or of
the last three evaluations): a signature fires with one line on stderr and its name in that
step's `hacking_warnings`, then stays quiet for `WINDOW` steps. docs/training.md lists them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from verifiers.math.extract import box_runs

WINDOW = 20          # steps: the last WINDOW/2 against the WINDOW/2 before them
FLAT = 0.02          # a pass-rate change below this is no progress
_HASHES = re.compile(r"^\s*####", re.MULTILINE)
_ANSWER_TAG = re.compile(r"<answer>", re.IGNORECASE)


# --------------------------------------------------------------------------- per step


def final_answers(text: str) -> int:
    """How many separate final answers `text` gives, by the kind it gives most of: boxes (a run
    that the math extraction joins into one list answer, `\\boxed{1}, \\boxed{2}`, counts once),
    `####` lines, `<answer>` tags. A restated answer in another form ("the answer is \\boxed{3}")
    is one answer, not two."""
    return max(box_runs(text), len(_HASHES.findall(text)), len(_ANSWER_TAG.findall(text)))


def duplicate_share(texts: list[str]) -> float:
    """The share of `texts` equal to another one of them."""
    counts: dict[str, int] = {}
    for t in texts:
        counts[t] = counts.get(t, 0) + 1
    return sum(c for c in counts.values() if c > 1) / max(len(texts), 1)


def reward_parts(verdicts: list) -> dict[str, float]:
    """The composition of the paid reward of composite verdicts (others: {}): the correctness
    part's weighted reward, the other parts', both per verdict, and the others' share of all."""
    rows = [v.info for v in verdicts if isinstance(v.info.get("parts"), dict) and v.info.get("correctness")]
    if not rows:
        return {}
    correct = other = paid = 0.0
    for info in rows:
        for name, part in info["parts"].items():
            value = part["weight"] * part["reward"]
            correct, other = (correct + value, other) if name == info["correctness"] else (correct, other + value)
            paid += abs(value)
    return {"reward_correct_mean": correct / len(rows), "reward_other_mean": other / len(rows),
            "reward_other_share": abs(other) / paid if paid else 0.0}


def batch_telemetry(batch, group_size: int, lengths: list[int]) -> dict[str, float]:
    """A step's hacking telemetry (module docstring) from a `trainers.rollout.Rollout` whose
    judged rows have the model-token `lengths` (in row order)."""
    rows = batch.judged.nonzero().flatten().tolist()
    texts = {i: batch.samples[i].text for i in rows}
    groups = [[texts[i] for i in range(g, g + group_size) if i in texts] for g in range(0, len(batch), group_size)]
    dup = sum(duplicate_share(g) * len(g) for g in groups) / max(len(rows), 1)
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0
    return {"completion_len_p95": float(p95), "duplicate_frac": dup,
            "answer_spray_frac": sum(final_answers(t) > 1 for t in texts.values()) / max(len(rows), 1),
            **reward_parts([batch.verdicts[i] for i in rows])}


# --------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class Signature:
    """A documented pattern of reward hacking: `test(earlier, later)` on the means of the two
    halves of the window (metric -> mean; a metric absent from a step is absent from its half)
    is true when it shows; `says(earlier, later)` is the warning's text."""

    name: str
    test: Callable[[dict, dict], bool]
    says: Callable[[dict, dict], str]


def _rise(key: str, earlier: dict, later: dict) -> float:
    return later[key] - earlier[key] if key in earlier and key in later else 0.0


def _flat(earlier: dict, later: dict) -> bool:
    return _rise("pass_rate", earlier, later) < FLAT


def _moved(key: str, earlier: dict, later: dict) -> str:
    return (f"{key} {earlier.get(key, 0.0):.3f} -> {later.get(key, 0.0):.3f} while pass_rate "
            f"{earlier.get('pass_rate', 0.0):.3f} -> {later.get('pass_rate', 0.0):.3f}")


SIGNATURES = (
    Signature("reward_without_correctness",   # a format (tags, length) reward learnt for itself
              lambda e, lt: _rise("reward_other_mean", e, lt) >= 0.1 and _flat(e, lt),
              lambda e, lt: "reward from parts other than correctness up: " + _moved("reward_other_mean", e, lt)),
    Signature("truncation_up",                # longer and longer, cut at max_new_tokens, no better
              lambda e, lt: _rise("truncated_frac", e, lt) >= 0.2 and _flat(e, lt),
              lambda e, lt: "completions cut at max_new_tokens more often: " + _moved("truncated_frac", e, lt)),
    Signature("collapse_without_progress",    # one completion repeated, not a right one
              lambda e, lt: _rise("duplicate_frac", e, lt) >= 0.3 and _flat(e, lt),
              lambda e, lt: "identical completions within groups up: " + _moved("duplicate_frac", e, lt)),
    Signature("answer_spraying",              # several final answers, hoping one is taken
              lambda e, lt: lt.get("answer_spray_frac", 0.0) >= 0.1 and _rise("answer_spray_frac", e, lt) >= 0.05,
              lambda e, lt: "completions with several final answers up: " + _moved("answer_spray_frac", e, lt)),
    Signature("audit_disagreement",           # the reward and its audit part ways: a checker's blind spot
              lambda e, lt: lt.get("audit_disagreement_rate", 0.0) >= 0.05
              and _rise("audit_disagreement_rate", e, lt) >= 0.03,
              lambda e, lt: "the verifier and its audit disagree more: " + _moved("audit_disagreement_rate", e, lt)),
)
GAP_WIDENING = 0.02  # held-out gap growth per evaluation that counts as widening


class HackingMonitor:
    """Watches the logged steps and the evaluations; returns (and prints, through `warn`) the
    warnings of `SIGNATURES` and of a held-out gap widening over two evaluations."""

    def __init__(self, warn: Callable[[str], None], window: int = WINDOW):
        self.warn, self.window = warn, window
        self.steps: list[dict] = []
        self.gaps: list[dict] = []
        self._quiet_until: dict[str, int] = {}

    def observe_step(self, step: int, metrics: dict) -> list[str]:
        """The names of the signatures that fire at this step (each warned about in one line)."""
        self.steps = (self.steps + [metrics])[-self.window:]
        if len(self.steps) < self.window:
            return []
        half = self.window // 2
        earlier, later = _means(self.steps[:half]), _means(self.steps[half:])
        fired = [s for s in SIGNATURES if self._quiet_until.get(s.name, 0) <= step and s.test(earlier, later)]
        for s in fired:
            self._quiet_until[s.name] = step + self.window
            self.warn(f"warning: step {step}: possible reward hacking ({s.name}): {s.says(earlier, later)} "
                      f"over the last {self.window} steps (docs/training.md, reward-hacking telemetry)")
        return [s.name for s in fired]

    def observe_evaluation(self, step: int, train_pass_rate: float, heldout_pass_at_1: float) -> dict:
        """The held-out gap at this evaluation, `{step, train_pass_rate, heldout_pass_at_1, gap,
        warning}`; the warning (also printed) when the gap widened at this and the previous one."""
        gap = {"step": step, "train_pass_rate": train_pass_rate, "heldout_pass_at_1": heldout_pass_at_1,
               "gap": train_pass_rate - heldout_pass_at_1, "warning": None}
        self.gaps.append(gap)
        last = [g["gap"] for g in self.gaps[-3:]]
        if len(last) == 3 and last[2] - last[1] >= GAP_WIDENING and last[1] - last[0] >= GAP_WIDENING:
            gap["warning"] = "heldout_gap_widening"
            self.warn(f"warning: step {step}: possible reward hacking (heldout_gap_widening): train pass rate minus "
                      f"held-out pass@1 went {last[0]:+.3f} -> {last[1]:+.3f} -> {last[2]:+.3f} over the last "
                      f"two evaluations (docs/training.md, reward-hacking telemetry)")
        return gap


def _means(steps: list[dict]) -> dict[str, float]:
    """Per metric, the mean over the steps that have it as a number."""
    sums: dict[str, list[float]] = {}
    for m in steps:
        for k, v in m.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                sums.setdefault(k, []).append(float(v))
    return {k: sum(v) / len(v) for k, v in sums.items()}
