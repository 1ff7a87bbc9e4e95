"""docs/environments.md's "write a multi-turn environment" example, verbatim, played by scripted policies."""

from __future__ import annotations

# The example below starts with its own imports, verbatim as the docs show them: ruff's import
# sorting would merge them with the test's.
# isort: skip_file
import pytest

from envs.base import _REGISTRY

# ---- the docs example, verbatim (from here to the end marker)
import random
import re

from envs import get_env, option, register_env
from envs.multiturn import MultiTurnEnvironment, Observation, run_episode
from verifiers import Task, get_verifier

@register_env("guess")
class GuessEnv(MultiTurnEnvironment):
    """Find a hidden number; after each guess the environment says higher or lower."""

    top: int = option(100, "the number is in 1..top")

    def load_tasks(self, split):
        rng = random.Random(f"{self.seed}/{split}")
        return [Task(id=f"guess/{split}/{i}", prompt=f"Guess my number (1-{self.top}).",
                     answer=str(rng.randint(1, self.top))) for i in range(50)]

    def step(self, task, episode, action):
        guess = action.strip()
        if guess == task.answer:
            return None                                    # found it: the episode ends
        hint = "a number?" if not guess.isdigit() else "higher" if int(guess) < int(task.answer) else "lower"
        return Observation(text=f"\n{hint}\n", messages=[{"role": "user", "content": hint}])

    def correctness_verifier(self):
        return get_verifier("math")                        # on the last turn: the final guess

def bisect(context):                                       # a scripted policy: binary search on the hints
    lo, hi = 1, 100
    for hint in re.findall(r"higher|lower", context.text):
        guess = (lo + hi) // 2
        lo, hi = (guess + 1, hi) if hint == "higher" else (lo, guess - 1)
    return str((lo + hi) // 2)

env = get_env("guess", max_turns=7)
task = env.tasks("test")[0]
episode = run_episode(env, task, bisect)                   # "Guess my number (1-100).50\nhigher\n75\n..."
verdict = env.verify_episodes([episode], [task])[0]        # passed; info["episode"]: turns, end, ...
# ---- end of the docs example


@pytest.fixture(scope="module", autouse=True)
def _unregister_example():
    yield
    _REGISTRY.pop("guess", None)


def test_the_example_finds_every_number_within_seven_turns():
    tasks = env.tasks("test")
    episodes = [run_episode(env, t, bisect) for t in tasks]
    verdicts = env.verify_episodes(episodes, tasks)
    assert all(v.passed for v in verdicts) and verdict.passed
    assert max(e.num_turns for e in episodes) <= 7 and {e.end for e in episodes} == {"answer"}
    assert episode.final_text == task.answer and episode.text.startswith("Guess my number (1-100).")


def test_the_example_fails_a_policy_that_never_finds_it():
    tasks = [t for t in env.tasks("test") if t.answer != "1"][:5]
    episodes = [run_episode(env, t, lambda c: "1") for t in tasks]
    assert all(e.end == "max_turns" and e.num_turns == 7 for e in episodes)
    assert not any(v.passed for v in env.verify_episodes(episodes, tasks))
    assert episodes[0].segments[2].text == "\nhigher\n"


def test_the_example_shows_a_hint_for_a_non_number():
    ep = run_episode(env, task, lambda c: "fifty" if c.turn == 0 else task.answer)
    assert ep.segments[2].text == "\na number?\n" and ep.end == "answer"


def test_the_environments_page_shows_this_example_verbatim_in_under_40_lines():
    from pathlib import Path

    source = Path(__file__).read_text()
    example = source.split("# ---- the docs example, verbatim (from here to the end marker)\n")[1]
    example = example.split("# ---- end of the docs example")[0]
    assert example.count("\n") < 40
    assert f"```python\n{example}```" in (Path(__file__).parents[2] / "docs" / "environments.md").read_text()
