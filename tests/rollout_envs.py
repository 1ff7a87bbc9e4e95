"""Environments for the asynchronous-rollout tests, in a module of their own: a rollout worker
imports the module that registered the run's environment, and a test's subprocess imports it
before calling a trainer's `main` (`python -c "import rollout_envs; ..."` from tests/)."""

from __future__ import annotations

from envs.base import Environment, register_env
from verifiers import Task, Verdict, Verifier


class CountOnes(Verifier):
    """Reward = share of '1' characters: an untrained model already gets varied rewards."""

    name = "count_ones"

    def verify(self, completion: str, task: Task) -> Verdict:
        reward = completion.count("1") / max(len(completion), 1)
        return Verdict(reward, reward > 0.5, {"status": "passed" if reward > 0.5 else "failed"})


@register_env("count_ones")
class CountOnesEnv(Environment):
    """Prompts of digits, rewarded for emitting ones."""

    def load_tasks(self, split):
        return [Task(id=f"{split}/{i}", prompt=f"{i}+{i}=") for i in range(10, 40)]

    def correctness_verifier(self):
        return CountOnes()


class BrokenVerifier(Verifier):
    """A verifier with a bug: it raises on every batch (a verifier must not; this one stands for
    a bug that a rollout worker has to report)."""

    name = "broken"

    def verify(self, completion: str, task: Task) -> Verdict:
        raise RuntimeError("the verifier broke")


@register_env("broken_verifier")
class BrokenEnv(CountOnesEnv):
    def correctness_verifier(self):
        return BrokenVerifier()
