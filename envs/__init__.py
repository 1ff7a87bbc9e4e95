"""verirl environments: tasks + prompt rendering + verifier, by name (see `envs.base`).

    from envs import get_env
    env = get_env("arithmetic", digits=3)
    task = env.tasks("test")[0]
    verdict = env.verifier.verify("46", task)

Importing the package registers the built-in environments, one module each.
"""

# Built-in environments register themselves on import.
from envs import arithmetic as _arithmetic  # noqa: E402,F401
from envs import calculator as _calculator  # noqa: E402,F401
from envs import gsm8k as _gsm8k  # noqa: E402,F401
from envs import humaneval as _humaneval  # noqa: E402,F401
from envs import math as _math  # noqa: E402,F401
from envs import mbpp as _mbpp  # noqa: E402,F401
from envs import reasoning_gym as _reasoning_gym  # noqa: E402,F401  (reasoning-gym itself: imported on use)
from envs import synthetic_code as _synthetic_code  # noqa: E402,F401
from envs.base import (
    EnvError,
    Environment,
    env_about,
    env_help,
    env_options,
    get_env,
    list_envs,
    option,
    register_env,
    take,
)
from envs.interop import as_reasoning_gym_dataset  # noqa: E402

__all__ = [
    "EnvError", "Environment", "as_reasoning_gym_dataset", "env_about", "env_help", "env_options", "get_env",
    "list_envs", "option", "register_env", "take",
]
