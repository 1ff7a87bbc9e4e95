"""Gold answers of reasoning-gym entries, also where the generator gives none.

Most generators put a reference answer in the entry's `answer`. Five put `None` there,
because many answers are right; their scorers check an answer against the puzzle instead.
For those, the gold answer comes from the entry's metadata (graph_color, propositional_logic,
rubiks_cube keep an example there; propositional_logic's is checked with its scorer, since it
is sometimes not implied by the premises) or from a small solver written here (rush_hour: a
breadth-first search of the board; boxnet: each box walked to a target of its colour, one
move per step). Each is checked by the generator's own scorer in `benchmarks/rgym_sweep.py`.
`CHECKED` names the generators whose tasks may have no passing answer at all.
"""

from __future__ import annotations

import json
from collections import deque


def unsolvable(dataset: str, entry: dict) -> bool:
    """True for a task of a generator in `CHECKED` that no answer can pass (it has no gold)."""
    return dataset in CHECKED and gold_answer(dataset, entry) is None


def gold_answer(dataset: str, entry: dict) -> str | None:
    """The answer that should score 1.0 for `entry` of generator `dataset`, or None where unknown."""
    if entry["answer"] is not None:
        return entry["answer"]
    derive = DERIVED.get(dataset)
    return derive(entry["metadata"]) if derive else None


def _graph_color(metadata: dict) -> str:
    return json.dumps({str(vertex): colour for vertex, colour in metadata["possible_answer"].items()})


# --------------------------------------------------------------------------- rush hour

SIDE, EXIT = 6, 2 * 6 + 4  # a 6x6 board; the red car (A) leaves when its left cell is row 2, column 4


def _pieces(board: str) -> tuple[list[tuple[int, int]], tuple[int, ...]]:
    """([(length, stride)] per car in label order, their first cells); walls are 'x', empty 'o'."""
    cells: dict[str, list[int]] = {}
    for i, label in enumerate(board):
        if label not in "ox":
            cells.setdefault(label, []).append(i)
    labels = sorted(cells)
    shapes = [(len(cells[k]), cells[k][1] - cells[k][0]) for k in labels]
    return shapes, tuple(cells[k][0] for k in labels)


def _occupied(shapes, state, walls: frozenset) -> set[int]:
    taken = set(walls)
    for (length, stride), first in zip(shapes, state):
        taken.update(first + stride * j for j in range(length))
    return taken


def _slides(shapes, state, walls):
    """(car, steps, next state) for every slide of one car by one or more cells."""
    taken = _occupied(shapes, state, walls)
    for car, ((length, stride), first) in enumerate(zip(shapes, state)):
        for direction in (-1, 1):
            steps, pos = 0, first
            while True:
                lead = pos - stride if direction < 0 else pos + stride * length
                same_line = (lead // SIDE == first // SIDE) if stride == 1 else 0 <= lead < SIDE * SIDE
                if not (0 <= lead < SIDE * SIDE and same_line) or lead in taken:
                    break
                pos += stride * direction
                steps += direction
                yield car, steps, state[:car] + (pos,) + state[car + 1:]


def _rush_hour(metadata: dict) -> str | None:
    board = metadata["board_config"]
    shapes, start = _pieces(board)
    walls = frozenset(i for i, label in enumerate(board) if label == "x")
    parent = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state[0] == EXIT:
            moves = []
            while parent[state] is not None:
                state, car, steps = parent[state]
                moves.append(f"{chr(ord('A') + car)}{steps:+d}")
            return " ".join(reversed(moves))
        for car, steps, nxt in _slides(shapes, state, walls):
            if nxt not in parent:
                parent[nxt] = (state, car, steps)
                queue.append(nxt)
    return None


# --------------------------------------------------------------------------- boxnet


def _square(key: str) -> tuple[float, float]:
    row, col = key.split("_")
    return float(row), float(col)


def _boxnet(metadata: dict) -> str:
    """One action per step: each box walks along its row, then its column, to a free target of
    its colour, and is matched there."""
    state = metadata["initial_state"]
    targets = {}
    for key, items in state.items():
        for item in items:
            if item.startswith("target_"):
                targets.setdefault(item[7:], []).append(_square(key))
    plan = []
    for key, items in state.items():
        for item in items:
            if not item.startswith("box_"):
                continue
            colour = item[4:]
            (row, col), (t_row, t_col) = _square(key), targets[colour].pop(0)
            while (row, col) != (t_row, t_col):
                nxt = (row + (t_row > row) - (t_row < row), col) if row != t_row else \
                    (row, col + (t_col > col) - (t_col < col))
                plan.append({f"Agent[{row}, {col}]": f"move({item}, square[{nxt[0]}, {nxt[1]}])"})
                row, col = nxt
            plan.append({f"Agent[{row}, {col}]": f"move({item}, target_{colour})"})
    return json.dumps(plan)


# --------------------------------------------------------------------------- propositional logic


def _propositional_logic(metadata: dict) -> str | None:
    """The generator's example answer where its scorer gives it 1.0 (not always: the example can
    be a formula the premises do not imply), else the first premise, variable or negated variable
    that scores 1.0; None when nothing does (when every premise is a tautology, every valid
    conclusion is one too, and a tautology scores 0.25)."""
    from reasoning_gym.factory import DATASETS

    dataset_cls, config_cls = DATASETS["propositional_logic"]
    scorer = dataset_cls(config=config_cls(seed=0, size=1))
    entry = {"question": "", "answer": None, "metadata": metadata}
    candidates = [metadata["example_answer"], *metadata["premises"], *metadata["variables"],
                  *(f"¬{v}" for v in metadata["variables"])]
    return next((c for c in candidates if scorer.score_answer(c, entry) == 1.0), None)


DERIVED = {
    "graph_color": _graph_color,
    "propositional_logic": _propositional_logic,
    "rubiks_cube": lambda metadata: metadata["example_correct_answer"],
    "rush_hour": _rush_hour,
    "boxnet": _boxnet,
}
# Generators whose tasks may have no passing answer at all; their splits leave such tasks out.
CHECKED = frozenset({"propositional_logic"})
