"""Difficulty levels of reasoning-gym's generators, from their own curricula.

reasoning-gym gives most generators a curriculum (`reasoning_gym.create_curriculum(name)`):
attributes of the generator's config (countdown: how many numbers, the target's and the
values' ranges), each with a list of levels. Level k here is reasoning-gym's global level k:
every attribute at its level k, or at its last one where it has fewer
(`set_global_level`), turned into a config by reasoning-gym's own `generate_configuration`
with its default context (a range attribute at level k spans its level-0 value to its level-k
one, so a level keeps the easier problems below it in its mix). The config fields the
curriculum sets are merged into the environment's `config`; the user may not set them too.

A generator has as many levels as its longest attribute, counted up to the first level whose
config reasoning-gym itself refuses (caesar_cipher's levels 2 and 3 ask for rotations its
config rejects, so it has 2): a curriculum never steps into a level that cannot be drawn. A mix
has as many levels as its longest part; a part with fewer stays at its last one above that.
Three generators have no curriculum (acre, gsm_symbolic, list_functions): they take no
`difficulty`. Some accepted configs still fail when drawn (countdown's levels 3 and 4 in
reasoning-gym 0.1.25 find no expression in 100 attempts): that shows as an error when the
level's items are drawn, naming the generator and the level.
"""

from __future__ import annotations

import json
from functools import lru_cache

from data.reasoning_gym_items import check_config, registry


def has_curriculum(name: str) -> bool:
    from reasoning_gym.factory import has_curriculum as rg_has_curriculum

    return rg_has_curriculum(name)


def curriculum_fields(name: str, level: int) -> dict:
    """The config fields reasoning-gym's curriculum for `name` sets at global level `level`."""
    from reasoning_gym.coaching.attributes import RangeAttributeDefinition
    from reasoning_gym.factory import create_curriculum

    curriculum = create_curriculum(name)
    curriculum.set_global_level(level)
    made = curriculum.generate_configuration({"seed": 0, "size": 1})
    names = []
    for attr in curriculum.attributes.values():
        names += [attr.lower_field_name, attr.upper_field_name] if isinstance(attr, RangeAttributeDefinition) \
            else [attr.field_name]
    return {field: getattr(made, field) for field in names}


def _level_config(name: str, config: dict, level: int) -> dict:
    """`config` with the curriculum's fields of `level`; ValueError if reasoning-gym refuses it."""
    merged = {**config, **curriculum_fields(name, level)}
    check_config(name, merged, registry()[name][1])
    return merged


def generator_levels(name: str, config: dict) -> int:
    """How many levels of `name`'s curriculum give a config reasoning-gym accepts, from level 0 on;
    ValueError if `config` sets a field the levels set."""
    both = sorted(set(curriculum_fields(name, 0)) & set(config))
    if both:
        raise ValueError(f"option config for {name!r} sets {both}, which its difficulty levels set: drop them or "
                         "the difficulty option")
    return _accepted_levels(name, json.dumps(config, sort_keys=True))


@lru_cache(maxsize=256)
def _accepted_levels(name: str, config_json: str) -> int:
    from reasoning_gym.factory import create_curriculum

    config = json.loads(config_json)
    top = max(len(attr.levels) for attr in create_curriculum(name).attributes.values())
    for level in range(top):
        try:
            _level_config(name, config, level)
        except ValueError:
            return level
    return top


def curriculum_levels(configs: dict[str, dict]) -> int:
    """The levels of a mix (`configs`: generator -> its config): those of its longest part;
    ValueError naming a part with no curriculum, or none that reasoning-gym accepts."""
    missing = sorted(name for name in configs if not has_curriculum(name))
    if missing:
        raise ValueError(f"option difficulty: reasoning-gym has no curriculum for {missing}")
    counts = {name: generator_levels(name, config) for name, config in configs.items()}
    refused = sorted(name for name, n in counts.items() if n == 0)
    if refused:
        raise ValueError(f"option difficulty: reasoning-gym refuses every config of its own curriculum for {refused}")
    return max(counts.values())


def level_configs(configs: dict[str, dict], level: int) -> dict[str, dict]:
    """Each part's config at `level` (a part with fewer levels: its last accepted one)."""
    return {name: _level_config(name, config, min(level, generator_levels(name, config) - 1))
            for name, config in configs.items()}
