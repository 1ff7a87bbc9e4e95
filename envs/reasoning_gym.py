"""`reasoning_gym`: any generator of the reasoning-gym package, its scorer confined.

reasoning-gym (PyPI `reasoning-gym`, imported on first use) has about a hundred procedural
generators: countdown, sudoku, knights and knaves, graph colouring, ARC-1D, word ladders,
cryptarithms, ... (`python -m envs list reasoning_gym` names those installed). This
environment draws its tasks from one of them, a list (equal weights) or a weighted mix
`{"countdown": 3, "sudoku": 1}` (reasoning-gym's composite dataset), with the generator's own
options in `config` (for a mix, `{name: options}`).

Splits (`data.reasoning_gym_items`): `test` holds `test_size` distinct questions (200 by
default), `train` holds `size` items (reasoning-gym's name for it; 1000 by default), drawn with
seeds 2**30 apart, and no question of the test split is in the train split. Task ids
(`reasoning_gym/<generator>/<split>/<i>`) and splits depend on the options only.

Difficulty (`envs.difficulty`, `data.reasoning_gym_levels`): `difficulty=k` draws at level k
of the generator's own curriculum in reasoning-gym (for a mix, of each part's), its fields
merged into `config`; None (the default) uses `config` as given. Levels have their own task ids
(`reasoning_gym/<generator>/levelK/<split>/<i>`) and the splits of each level are disjoint as
above. Levels can share questions where a problem space is small; the curriculum sampler
drops from training every prompt of the test split it is evaluated on
(`trainers/curriculum.py`).

Prompts: `instruct` (default) is the generator's question followed by a request for the final
answer between `<answer>` and `</answer>`; the verifier scores the text of the last such tag
(none: the scorer gets no answer). `bare` is the question followed by `Answer: `, and the
whole completion (stripped) is the answer. Through a tokenizer with a chat template, the
question goes as a user message, as for every environment. `demonstration` is the gold answer
in that shape (`data.reasoning_gym_gold`: the entry's answer, or a solution where reasoning-gym
gives none).

Correctness is the `reasoning_gym` verifier: reasoning-gym's own `score_answer`, run in the
sandbox behind a gate that refuses to run code from the answer (docs/reasoning_gym.md). The
reward is its float (partial credit stays partial), `passed` is `score >= pass_threshold`.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any

from data.reasoning_gym_gold import gold_answer
from data.reasoning_gym_items import FLAWED_SCORERS, TEST_SEED_OFFSET, Item, draw_split, generator_names, parse_mix
from data.reasoning_gym_levels import curriculum_levels, level_configs
from envs.base import EnvError, Environment, option, register_env
from envs.difficulty import difficulty_option, level_task_id, resolve_level
from verifiers import Task, Verifier, get_verifier
from verifiers.base import verifier_options
from verifiers.reasoning_gym import entry_of, metadata_to_wire

STYLES = ("instruct", "bare")
INSTRUCTION = "Give your final answer, and nothing else, between <answer> and </answer>."
BARE_CUE = "\nAnswer: "


@register_env("reasoning_gym")
class ReasoningGymEnv(Environment):
    """Any reasoning-gym generator (or a weighted mix), scored by its own scorer in the sandbox."""

    dataset: Any = option("countdown", "a generator name, a list of names (equal weights) or {name: weight}")
    config: dict = option({}, "the generator's own options (for a mix: {name: options}); not seed or size")
    size: int = option(1000, "train items (reasoning-gym's `size`)")
    test_size: int = option(200, "test items: distinct questions, none of them in the train split")
    style: str = option("instruct", "'instruct' (question + ask for <answer> tags) or 'bare' (question + "
                                    "'Answer: ', the completion is the answer)")
    pass_threshold: float = option(1.0, "a score at or above it passes (reasoning-gym scores lie in [0, 1])")
    scorer: dict = option({}, "options of the reasoning_gym verifier (time_limit, memory_mb, workers, "
                              "memory_mode, chunk_size)")
    difficulty: Any = difficulty_option()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.style not in STYLES:
            raise EnvError(f"option style={self.style!r} is not one of {list(STYLES)}")
        for key in ("size", "test_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EnvError(f"option {key} must be a positive int, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < TEST_SEED_OFFSET:
            raise EnvError(f"option seed must be an int in [0, 2**30), got {self.seed!r}")
        if not isinstance(self.scorer, dict) or not set(self.scorer) <= set(verifier_options("reasoning_gym")) - \
                {"extract", "pass_threshold"}:
            raise EnvError(f"option scorer must hold options of the reasoning_gym verifier (time_limit, memory_mb, "
                           f"workers, memory_mode, chunk_size), got {self.scorer!r}")
        try:
            self.weights, self.configs = parse_mix(self.dataset, self.config)
            self.given_configs = self.configs
            self.level = resolve_level(self.difficulty, self.difficulty_levels) if self.difficulty is not None else None
            if self.level is not None:
                self.configs = level_configs(self.given_configs, self.level)
        except ValueError as exc:
            raise EnvError(str(exc)) from None
        if self.style == "bare":
            self.demo_separator = ""
        for name in sorted(set(self.weights) & set(FLAWED_SCORERS)):
            warnings.warn(f"reasoning-gym's {name} scorer is flawed: {FLAWED_SCORERS[name]}; rewards on it can be "
                          "gamed (docs/reasoning_gym.md)", RuntimeWarning, stacklevel=2)

    @classmethod
    def about(cls) -> str:
        from importlib.metadata import version

        names = generator_names()
        return f"{len(names)} generators in the installed reasoning-gym {version('reasoning-gym')}: {', '.join(names)}"

    @cached_property
    def difficulty_levels(self) -> int:
        """The levels of reasoning-gym's curricula for the generators (`data.reasoning_gym_levels`)."""
        try:
            return curriculum_levels(self.given_configs)
        except ValueError as exc:
            raise EnvError(str(exc)) from None

    @cached_property
    def _items(self) -> dict[str, list[Item]]:
        try:
            return self._draw_items()
        except (ValueError, AssertionError) as exc:
            if self.level is None:
                raise
            raise EnvError(f"reasoning-gym could not draw items of {sorted(self.weights)} at difficulty level "
                           f"{self.level}: {exc}") from None

    def _draw_items(self) -> dict[str, list[Item]]:
        test = draw_split(self.weights, self.configs, "test", self.seed, self.test_size)
        held_out = frozenset(item.question.strip() for item in test)
        train = draw_split(self.weights, self.configs, "train", self.seed, self.size, exclude=held_out)
        return {"train": train, "test": test}

    def load_tasks(self, split: str) -> list[Task]:
        return [self._task(split, i, item) for i, item in enumerate(self._items[split])]

    def _task(self, split: str, index: int, item: Item) -> Task:
        meta = {"dataset": item.dataset, "config": item.config, "question": item.question,
                "metadata": metadata_to_wire(item.metadata)}
        return Task(id=level_task_id(f"reasoning_gym/{item.dataset}", self.level, split, index),
                    prompt=self.prompt(item.question), answer=item.answer, meta=meta)

    def prompt(self, question: str) -> str:
        return question + (f"\n\n{INSTRUCTION}" if self.style == "instruct" else BARE_CUE)

    def demonstration(self, task: Task) -> str:
        gold = gold_answer(task.meta["dataset"], entry_of(task))
        if gold is None:
            raise EnvError(f"task {task.id!r}: reasoning-gym gives no answer for {task.meta['dataset']!r} and none "
                           "is derived (data.reasoning_gym_gold)")
        return f"<answer>{gold}</answer>" if self.style == "instruct" else gold

    def format_options(self) -> dict:
        if self.style == "instruct":
            return {"pattern": r"<answer>.*?</answer>", "fullmatch": False}
        return {"pattern": r".*\S.*", "fullmatch": True}

    def correctness_verifier(self) -> Verifier:
        extract = "tags" if self.style == "instruct" else "whole"
        return get_verifier("reasoning_gym", extract=extract, pass_threshold=self.pass_threshold, **self.scorer)
