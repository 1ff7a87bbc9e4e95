"""Test environments whose reward counts a character in the completion: an untrained model
already gets varied rewards, so every update moves the policy. In a module of their own,
because a rollout worker (`--rollout async`) imports the module that registered the run's
environment, and a test's subprocess imports it before a trainer's `main`
(`python -c "import counting_envs; ..."` from tests/).

`test_ones` (GRPO's tests; option `flat`: every reward 0), `test_ppo_twos` (PPO's), and
`broken_verifier`, whose verifier raises: the bug a rollout worker has to report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from envs.base import Environment, register_env
from verifiers import Task, Verdict, Verifier


class CountChar(Verifier):
    """Reward = the share of `char` among the completion's characters; 0 on a task marked flat."""

    def __init__(self, char: str):
        self.char, self.name = char, f"count_{char}"

    def verify(self, completion: str, task: Task) -> Verdict:
        reward = 0.0 if task.meta.get("flat") else completion.count(self.char) / max(len(completion), 1)
        return Verdict(reward, reward > 0.5, {"status": "passed" if reward > 0.5 else "failed"})


@dataclass(kw_only=True, eq=False)   # as register_env makes the registered classes
class CountingEnv(Environment):
    """Prompts of digits, rewarded for emitting `char`; `flat`: every reward is 0."""

    char: ClassVar[str] = "1"
    flat: bool = False

    def load_tasks(self, split):
        return [Task(id=f"{split}/{i}", prompt=f"{i}+{i}=", meta={"flat": self.flat}) for i in range(10, 40)]

    def correctness_verifier(self):
        return CountChar(self.char)


@register_env("test_ones")
class OnesEnv(CountingEnv):
    char: ClassVar[str] = "1"


@register_env("test_ppo_twos")
class TwosEnv(CountingEnv):
    char: ClassVar[str] = "2"


class BrokenVerifier(Verifier):
    """A verifier with a bug: it raises on every completion (a verifier must not; this one
    stands for the bug a rollout worker has to report)."""

    name = "broken"

    def verify(self, completion: str, task: Task) -> Verdict:
        raise RuntimeError("the verifier broke")


@register_env("broken_verifier")
class BrokenEnv(CountingEnv):
    def correctness_verifier(self):
        return BrokenVerifier()
