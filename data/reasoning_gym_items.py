"""reasoning-gym's generators as a task source: which generators, how they mix, and the splits.

reasoning-gym (imported on first use here: about a second) builds item `i` of a generator
made with seed `s` from `Random(s + i)`; a composite gives its `j`-th generator the seed
`s + j + 1` and picks the generator of item `i` from `Random(s + i)` too.

Splits. The train split draws with seed `seed`, the test split with `seed + TEST_SEED_OFFSET`
(2**30), so the random seeds behind the two never meet while fewer than 2**30 items are
drawn. Generators with a small problem space can still produce one question from different
seeds, so the test split keeps distinct questions only, and the train split drops every
question the test split holds (and keeps its own repeats: sampling with replacement is what
the generator does). Tasks that no answer can pass are left out of both
(`data.reasoning_gym_gold.unsolvable`: a few percent of propositional_logic's). Both splits
are deterministic: the same options give the same items in the same order. A split of a
small problem space may hold fewer items than asked: drawing stops after `DRAWS_PER_ITEM`
draws per item asked (plus `EXTRA_DRAWS`).

Seeds that differ by less than the train size share most train items (item `i` of seed `s`
is item `i - 1` of seed `s + 1`): to get another training set, move the seed by more than
its size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from data.reasoning_gym_gold import unsolvable

TEST_SEED_OFFSET = 1 << 30
DRAWS_PER_ITEM = 4
EXTRA_DRAWS = 100
RESERVED = ("seed", "size")  # set by the splits, never by a generator's config
# Scorers of reasoning-gym 0.1.25 that give full credit to an answer that does not depend on the
# question (found by benchmarks/rgym_sweep.py): a policy trained on them learns that answer.
FLAWED_SCORERS = {
    "coin_flip": "any prefix of the answer's digits scores 1.0, so '0' passes every task",
    "game_of_life_halting": "bool(answer) == bool(gold): any non-empty answer scores 1.0",
}


@dataclass(frozen=True)
class Item:
    """One drawn item: the generator's entry and what rebuilds its scorer."""

    draw: int               # index of the draw within its split
    question: str
    answer: str | None      # reasoning-gym's answer (None where the generator gives none)
    metadata: dict
    dataset: str            # the generator (a composite's part: `source_dataset`)
    config: dict            # its config, seed and size included: `DATASETS[dataset][1](**config)`

    @property
    def entry(self) -> dict:
        return {"question": self.question, "answer": self.answer, "metadata": self.metadata}


def registry() -> dict:
    """Generator name -> (dataset class, config class), without the composite."""
    from reasoning_gym.factory import DATASETS

    return {name: classes for name, classes in DATASETS.items() if name != "composite"}


def generator_names() -> list[str]:
    return sorted(registry())


def parse_mix(dataset: Any, config: Any) -> tuple[dict[str, float], dict[str, dict]]:
    """(name -> weight, name -> its config) from the environment's options; `ValueError` naming
    the option for anything else. `dataset` is a name, a list of names (equal weights) or a
    mapping name -> weight; `config` is the generator's options, or name -> options for a mix."""
    if isinstance(dataset, str):
        weights = {dataset: 1.0}
    elif isinstance(dataset, list) and dataset and all(isinstance(n, str) for n in dataset):
        weights = {name: 1.0 for name in dataset}
        if len(weights) != len(dataset):
            raise ValueError(f"option dataset names a generator twice: {dataset}")
    elif isinstance(dataset, dict) and dataset and all(isinstance(n, str) for n in dataset):
        weights = dict(dataset)
    else:
        raise ValueError("option dataset must be a generator name, a list of names or {name: weight}, "
                         f"got {dataset!r}")
    known = registry()
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(f"option dataset: unknown generator(s) {unknown}; the installed reasoning-gym has "
                         f"{len(known)}: {', '.join(sorted(known))}")
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ValueError(f"option dataset: the weight of {name!r} must be a positive number, got {weight!r}")
    if not isinstance(config, dict):
        raise ValueError(f"option config must be a JSON object, got {type(config).__name__}")
    configs = {next(iter(weights)): config} if len(weights) == 1 else _mix_configs(weights, config)
    for name, options in configs.items():
        check_config(name, options, known[name][1])
    return {n: float(w) for n, w in weights.items()}, configs


def _mix_configs(weights: dict, config: dict) -> dict[str, dict]:
    stray = sorted(set(config) - set(weights))
    if stray:
        raise ValueError(f"option config of a mix maps generator names to their options; {stray} are not in the "
                         f"mix {sorted(weights)}")
    return {name: config.get(name, {}) for name in weights}


def check_config(name: str, options: Any, config_cls: type) -> None:
    if not isinstance(options, dict):
        raise ValueError(f"option config for {name!r} must be a JSON object, got {type(options).__name__}")
    reserved = sorted(set(options) & set(RESERVED))
    if reserved:
        raise ValueError(f"option config for {name!r} may not set {reserved}: the splits set them (options "
                         "seed, size and test_size)")
    valid = {f.name for f in dataclasses.fields(config_cls)} - set(RESERVED)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"option config for {name!r}: unknown field(s) {unknown}; valid: {sorted(valid)}")
    try:
        made = config_cls(**options, seed=0, size=1)
        if hasattr(made, "validate"):
            made.validate()
    except (AssertionError, ValueError, TypeError) as exc:
        why = exc or type(exc).__name__
        raise ValueError(f"option config for {name!r} is refused by reasoning-gym: {why}") from None


class Source:
    """The items a split draws: `weights`/`configs` from `parse_mix`, seeds from the split."""

    def __init__(self, weights: dict[str, float], configs: dict[str, dict], seed: int, draws: int):
        from reasoning_gym import create_dataset

        if len(weights) == 1:
            (name, config), = configs.items()
            self.dataset = create_dataset(name, **config, seed=seed, size=draws)
            self.configs = {name: {**config, "seed": seed, "size": draws}}
            return
        from reasoning_gym.composite import DatasetSpec

        specs = [DatasetSpec(name=n, weight=w, config=dict(configs[n])) for n, w in weights.items()]
        self.dataset = create_dataset("composite", seed=seed, size=draws, datasets=specs)
        # the composite's parts, with the seed and size it gave each
        self.configs = {n: {**configs[n], "seed": part.seed, "size": part.size}
                        for n, part in self.dataset.datasets.items()}

    def item(self, draw: int) -> Item:
        entry = self.dataset[draw]
        name = entry["metadata"]["source_dataset"]
        return Item(draw, entry["question"], entry["answer"], entry["metadata"], name, self.configs[name])


def draw_split(weights: dict, configs: dict, split: str, seed: int, count: int,
               exclude: frozenset = frozenset()) -> list[Item]:
    """Up to `count` items of `split` ("train" or "test"), none whose question is in `exclude`;
    the test split without repeated questions (see the module docstring)."""
    draws = DRAWS_PER_ITEM * count + EXTRA_DRAWS
    source = Source(weights, configs, seed + (TEST_SEED_OFFSET if split == "test" else 0), draws)
    items, seen = [], set()
    for draw in range(draws):
        if len(items) == count:
            break
        item = source.item(draw)
        key = item.question.strip()
        if key in exclude or (split == "test" and key in seen) or unsolvable(item.dataset, item.entry):
            continue
        seen.add(key)
        items.append(item)
    return items
