"""Difficulty levels of an environment: the `difficulty` option and what a curriculum uses.

An environment with levels (`arithmetic`, `calculator`, `reasoning_gym`) has the option
`difficulty`: None (the default: the options as given, exactly as before levels existed), a
level `0 .. n-1`, or `"max"` (level n-1); `env.difficulty_levels` is n. What a level is belongs
to the environment:

- `arithmetic` and `calculator` climb a `ladder` of steps from the options as given: level 0 is
  those options (so `difficulty=0` and None give the same tasks), level k applies the ladder's
  first k steps in turn, each raising one option (`climb`). A level is never easier than the
  one below it, whatever the options.
- `reasoning_gym` takes the generator's own curriculum (reasoning-gym's `create_curriculum`):
  level k sets every attribute of the curriculum to its level k (`data.reasoning_gym_items`).

Levels change the tasks, never the verifier: `at_level(env, k)` is the environment with option
`difficulty=k` sharing `env`'s verifier (its worker processes too), so a curriculum draws
tasks at any level and scores them all with one verifier. Task ids name the level
(`arithmetic/level2/train/17`) wherever a level's tasks differ from the options as given, so
ids stay unique across levels; and each environment keeps train and test disjoint at every
level and across levels (a test task of one level is never a train task of another).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from envs.base import EnvError, Environment, option

MAX = "max"

# The option as environments declare it (the help line `python -m envs list` shows).
DIFFICULTY_HELP = "difficulty level: null = the options as given, 0 .. levels-1, or 'max' (see envs/difficulty.py)"


def difficulty_option() -> Any:
    return option(None, DIFFICULTY_HELP)


def resolve_level(value: Any, levels: int, where: str = "option difficulty") -> int | None:
    """The level `value` names among `levels` (None stays None); EnvError naming `where` otherwise."""
    if value is None:
        return None
    if value == MAX:
        return levels - 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < levels:
        raise EnvError(f"{where} must be null, 'max' or an int in 0..{levels - 1}, got {value!r}")
    return value


def levels_of(env: Environment) -> int:
    """How many difficulty levels `env` has (0: it has no `difficulty` option)."""
    return int(getattr(env, "difficulty_levels", 0) or 0)


def at_level(env: Environment, level: int | str) -> Environment:
    """`env` at difficulty `level` (an int or "max"): the same options otherwise, and `env`'s own
    verifier (levels change the tasks, never how they are scored)."""
    levels = levels_of(env)
    if not levels:
        raise EnvError(f"environment {env.name!r} has no difficulty levels; those with levels: arithmetic, "
                       "calculator, reasoning_gym")
    level = resolve_level(level, levels, "difficulty")
    if level == getattr(env, "difficulty", None):
        return env
    # One environment per level, kept on `env`: the curriculum and the evaluation share its splits.
    made = env.__dict__.setdefault("_level_envs", {})
    if level not in made:
        made[level] = dataclasses.replace(env, difficulty=level)
        made[level].__dict__["verifier"] = env.verifier  # the cached_property's slot: one verifier for all levels
    return made[level]


def level_task_id(name: str, level: int | None, split: str, index: int) -> str:
    """`name/split/index`, or `name/levelK/split/index` for tasks of level K."""
    return f"{name}/{split}/{index}" if level is None else f"{name}/level{level}/{split}/{index}"


# --------------------------------------------------------------------------- ladders


def raise_int(name: str, limit: int) -> Callable[[dict], dict]:
    """A ladder step that raises int option `name` by one (at most to `limit`)."""
    def step(options: dict) -> dict:
        if options[name] + 1 > limit:
            raise EnvError(f"the ladder raises {name} above its limit {limit}")
        return {**options, name: options[name] + 1}
    return step


def add_to(name: str, item: str) -> Callable[[dict], dict]:
    """A ladder step that adds `item` to option `name` (a string of items, or a list)."""
    def step(options: dict) -> dict:
        if item in options[name]:
            raise EnvError(f"the ladder adds {item!r} to {name}, which already holds it")
        value = options[name]
        return {**options, name: value + item if isinstance(value, str) else [*value, item]}
    return step


def switch_on(name: str) -> Callable[[dict], dict]:
    """A ladder step that turns bool option `name` on."""
    def step(options: dict) -> dict:
        if options[name]:
            raise EnvError(f"the ladder switches {name} on, but it already is")
        return {**options, name: True}
    return step


def climb(options: dict, ladder: Any, level: int, steps: dict[str, Callable[[dict], dict]]) -> dict:
    """`options` after the first `level` steps of `ladder` (a list of names in `steps`), in turn."""
    check_ladder(ladder, steps)
    for i, name in enumerate(ladder[:level]):
        try:
            options = steps[name](options)
        except EnvError as exc:
            raise EnvError(f"option ladder, step {i} ({name!r}, level {i + 1}): {exc}") from None
    return options


def check_ladder(ladder: Any, steps: dict) -> None:
    if not isinstance(ladder, list) or not all(isinstance(s, str) for s in ladder):
        raise EnvError(f"option ladder must be a list of step names among {sorted(steps)}, got {ladder!r}")
    unknown = sorted(set(ladder) - set(steps))
    if unknown:
        raise EnvError(f"option ladder: unknown step(s) {unknown}; valid steps: {sorted(steps)}")
