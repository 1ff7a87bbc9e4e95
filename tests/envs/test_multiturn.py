"""envs/multiturn.py: the episode loop under scripted policies -- segments and their exact
boundaries, tool errors, bad syntax, max_turns, the token budget, tool timeouts, batching,
the JSON transcript -- and the environments page's multi-turn example."""

from __future__ import annotations

import json
import random
import time

import pytest

from envs import get_env
from envs.multiturn import (
    ACTION,
    OBSERVATION,
    PROMPT,
    Context,
    Episode,
    Turn,
    episode_verdicts,
    run_episode,
    run_episodes,
)
from envs.tools import Tool, ToolError, register_tool
from envs.tools.base import _TOOLS


def calc_env(**options):
    return get_env("calculator", test_size=20, train_size=20, **options)


def scripted(*turns):
    """A policy that plays `turns` in order, whatever it is shown."""
    def policy(context: Context):
        return turns[context.turn]
    return policy


def check_boundaries(ep: Episode) -> None:
    """Segments tile the text exactly; the char mask marks exactly the action characters."""
    assert ep.segments[0].kind == PROMPT and ep.segments[0].start == 0
    for a, b in zip(ep.segments, ep.segments[1:]):
        assert a.end == b.start
    for s in ep.segments:
        assert ep.text[s.start:s.end] == s.text
    mask = ep.action_mask("char")
    assert "".join(c for c, m in zip(ep.text, mask) if m) == "".join(s.text for s in ep.actions)


# --------------------------------------------------------------------------- scripted episodes


def test_correct_episode_segments_and_verdict():
    env = calc_env()
    task = env.tasks("test")[0]
    expr, answer = task.meta["expression"], task.answer
    ep = run_episode(env, task, scripted(f"<calc>{expr}</calc>", answer))
    check_boundaries(ep)
    assert [s.kind for s in ep.segments] == [PROMPT, ACTION, OBSERVATION, ACTION]
    assert ep.segments[2].text == f"<result>{answer}</result>"
    assert ep.text == f"{expr}=<calc>{expr}</calc><result>{answer}</result>{answer}"
    assert (ep.end, ep.unanswered, ep.num_turns, ep.final_text) == ("answer", False, 2, answer)
    assert ep.tool_calls == [{"name": "calculator", "arguments": {"expression": expr}, "output": answer,
                              "status": "ok", "seconds": ep.tool_calls[0]["seconds"], "turn": 0}]
    assert ep.tokens == len(ep.completion)  # characters by default: every action and observation
    verdict = env.verify_episodes([ep], [task])[0]
    assert verdict.passed and verdict.info["episode"] == {"turns": 2, "tool_calls": 1, "end": "answer",
                                                          "unanswered": False, "tokens": ep.tokens}


def test_a_wrong_final_answer_fails_though_the_tool_was_right():
    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted(f"<calc>{task.meta['expression']}</calc>", str(int(task.answer) + 1)))
    verdict = env.verify_episodes([ep], [task])[0]
    assert not verdict.passed and verdict.info["status"] == "failed"


@pytest.mark.parametrize("call, shown, status", [
    ("<calc>1/0</calc>", "<result>error: division by zero</result>", "error"),
    ("<calc>9**99999</calc>", "<result>error: power not checked", "error"),
    ("<calc>__import__('os')</calc>", "<result>error: not arithmetic", "error"),
    ("<calc>12*</calc>", "<result>error: not an arithmetic expression", "error"),
    ("<calc>12*34", "<result>error: <calc> is never closed with </calc></result>", "bad_call"),
    ("<calc></calc>", "<result>error: empty expression</result>", "error"),
])
def test_tool_errors_and_bad_syntax_become_observations(call, shown, status):
    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted(call, task.answer))
    check_boundaries(ep)
    assert ep.segments[2].kind == OBSERVATION and ep.segments[2].text.startswith(shown)
    assert ep.tool_calls[0]["status"] == status
    assert ep.end == "answer" and env.verify_episodes([ep], [task])[0].passed  # the episode went on


def test_text_that_is_not_a_call_is_the_answer():
    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted(f"<foo>1</foo>{task.answer}"))
    assert (ep.num_turns, ep.end, ep.tool_calls) == (1, "answer", [])


def test_several_calls_in_one_turn_are_answered_in_order():
    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted("<calc>2*3</calc>junk<calc>1/0</calc>", task.answer))
    assert ep.segments[2].text == "<result>6</result><result>error: division by zero</result>"
    assert [c["status"] for c in ep.tool_calls] == ["ok", "error"]


def test_max_turns_ends_an_episode_that_keeps_calling():
    env = calc_env(max_turns=2)
    task = env.tasks("test")[0]
    ep = run_episode(env, task, lambda c: "<calc>1+1</calc>")
    check_boundaries(ep)
    assert (ep.num_turns, ep.end, ep.unanswered) == (2, "max_turns", True)
    assert [s.kind for s in ep.segments] == [PROMPT, ACTION, OBSERVATION, ACTION]  # the last call is not answered
    verdict = env.verify_episodes([ep], [task])[0]
    assert (verdict.passed, verdict.info["status"]) == (False, "failed")
    assert "max_turns" in verdict.info["error"]


def budget_policy(text_per_turn):
    """Writes each turn's text, cut at the budget it is given (as a sampler's max_tokens)."""
    def policy(context: Context):
        text = text_per_turn[context.turn]
        if context.max_tokens is not None and len(text) > context.max_tokens:
            return Turn(text[:context.max_tokens], finish_reason="length")
        return text
    return policy


def test_budget_cuts_a_turn():
    env = calc_env(max_episode_tokens=10)
    task = env.tasks("test")[0]
    ep = run_episode(env, task, budget_policy([f"<calc>{task.meta['expression']}</calc>"]))
    assert (ep.end, ep.tokens, ep.truncated, ep.unanswered) == ("budget", 10, True, False)
    assert ep.final_text == f"<calc>{task.meta['expression']}"[:10]


def test_budget_refuses_an_observation_that_does_not_fit():
    env = calc_env()
    task = env.tasks("test")[0]
    call = f"<calc>{task.meta['expression']}</calc>"
    env.max_episode_tokens = len(call) + 5   # the call fits, its <result>...</result> does not
    ep = run_episode(env, task, budget_policy([call, task.answer]))
    assert (ep.end, ep.unanswered, ep.num_turns) == ("budget", True, 1)
    assert not env.verify_episodes([ep], [task])[0].passed


def test_budget_counts_with_the_samplers_function_and_tells_the_policy_what_is_left():
    env = calc_env()
    task = env.tasks("test")[0]
    call = f"<calc>{task.meta['expression']}</calc>"
    seen = []

    def policy(context):
        seen.append(context.max_tokens)
        return [call, task.answer][context.turn]

    count = lambda s: (len(s) + 3) // 4  # noqa: E731 - "4 characters a token"
    env.max_episode_tokens = 100
    ep = run_episode(env, task, policy, count_tokens=count)
    obs = ep.segments[2].text
    assert seen == [100, 100 - count(call) - count(obs)]
    assert ep.tokens == count(call) + count(obs) + count(task.answer) and ep.end == "answer"


def test_length_cut_ends_the_episode_without_running_the_partial_call():
    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, lambda c: Turn("<calc>12*3", finish_reason="length"))
    assert (ep.end, ep.truncated, ep.tool_calls, ep.num_turns) == ("length", True, [], 1)


# --------------------------------------------------------------------------- tool timeouts and bugs


@pytest.fixture
def slow_and_buggy_tools():
    @register_tool("test_sleep")
    class Sleep(Tool):
        argument = "seconds"

        def run(self, arguments, timeout):
            time.sleep(float(arguments["seconds"]))
            return "woke"

    @register_tool("test_buggy")
    class Buggy(Tool):
        def run(self, arguments, timeout):
            raise KeyError("a bug in the tool")

    @register_tool("test_refuses")
    class Refuses(Tool):
        def run(self, arguments, timeout):
            raise ToolError("no " + arguments["input"])

    yield
    for name in ("test_sleep", "test_buggy", "test_refuses"):
        _TOOLS.pop(name)


def test_tool_timeout_is_an_observation(slow_and_buggy_tools):
    env = calc_env(tools=["test_sleep", "test_refuses"], tool_timeout=0.05)
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted("<test_sleep>0.5</test_sleep><test_sleep>0</test_sleep>"
                                         "<test_refuses>way</test_refuses>", task.answer))
    assert ep.segments[2].text == ("<result>timeout: test_sleep ran longer than 0.05 s</result>"
                                   "<result>woke</result><result>error: no way</result>")
    assert [c["status"] for c in ep.tool_calls] == ["timeout", "ok", "error"]
    assert ep.end == "answer"


def test_a_bug_in_a_tool_is_raised_not_shown_to_the_model(slow_and_buggy_tools):
    env = calc_env(tools=["test_buggy"])
    task = env.tasks("test")[0]
    with pytest.raises(KeyError, match="a bug in the tool"):
        run_episode(env, task, scripted("<test_buggy>x</test_buggy>", "1"))


# --------------------------------------------------------------------------- tokens, batches, JSON


def char_ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_token_ids_and_masks_follow_the_segments():
    """A sampler's ids and log-probs are kept; observation ids come from `encode`; the
    token mask marks exactly the sampled tokens."""
    env = calc_env()
    task = env.tasks("test")[0]
    call = f"<calc>{task.meta['expression']}</calc>"
    contexts = []

    def policy(context):
        contexts.append(context)
        text = [call, task.answer][context.turn]
        return Turn(text, char_ids(text), [-0.5] * len(text))

    ep = run_episode(env, task, policy, encode=char_ids, encode_prompt=lambda s: [1] + char_ids(s))
    assert ep.token_ids == [1] + char_ids(ep.text)
    assert contexts[1].token_ids == [1] + char_ids(contexts[1].text)  # what the sampler continues, exactly
    mask = ep.action_mask()
    assert [t for t, m in zip(ep.token_ids, mask) if m] == char_ids(call + task.answer)
    for s in ep.segments:
        assert ep.token_ids[s.token_start:s.token_end] == s.token_ids
        assert (s.logprobs is not None) == (s.kind == ACTION)


def test_a_token_mask_without_ids_is_refused():
    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted(task.answer))
    with pytest.raises(ValueError, match="token ids"):
        ep.action_mask()


def test_batched_episodes_ask_only_the_running_ones():
    env = calc_env(max_turns=3)
    tasks = env.tasks("test")[:4]
    plans = {t.id: [f"<calc>{t.meta['expression']}</calc>"] * k + [t.answer] for k, t in enumerate(tasks)}
    rounds = []

    def policy(contexts):
        rounds.append([c.task.id for c in contexts])
        return [plans[c.task.id][c.turn] for c in contexts]

    episodes = run_episodes(env, tasks, policy)
    assert [len(r) for r in rounds] == [4, 3, 2]
    assert [(e.num_turns, e.end) for e in episodes] == [(1, "answer"), (2, "answer"), (3, "answer"), (3, "max_turns")]
    assert [v.passed for v in env.verify_episodes(episodes, tasks)] == [True, True, True, False]


def test_batched_and_single_episodes_agree():
    env = calc_env()
    tasks = env.tasks("test")[:5]
    rng = random.Random(0)
    plans = {t.id: rng.choice([[t.answer], [f"<calc>{t.meta['expression']}</calc>", t.answer], ["<calc>1/0", "7"]])
             for t in tasks}
    batched = run_episodes(env, tasks, lambda cs: [plans[c.task.id][c.turn] for c in cs])
    single = [run_episode(env, t, lambda c: plans[c.task.id][c.turn]) for t in tasks]
    strip = lambda e: {**e.to_json(), "tool_calls": [{**c, "seconds": 0} for c in e.tool_calls]}  # noqa: E731
    assert [strip(e) for e in batched] == [strip(e) for e in single]


def test_transcript_is_plain_json_and_round_trips():
    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted("<calc>1/0</calc>", "<calc>2*2</calc>", task.answer))
    data = json.loads(json.dumps(ep.to_json()))
    back = Episode.from_json(data)
    assert back == ep and back.text == ep.text and back.summary() == ep.summary()
    assert data["end"] == "answer" and [c["turn"] for c in data["tool_calls"]] == [0, 1]


@pytest.mark.parametrize("bad, error", [
    (lambda cs: [], ValueError),
    (lambda cs: [3 for _ in cs], TypeError),
    (lambda cs: [Turn("x", finish_reason="eos") for _ in cs], ValueError),
    (lambda cs: [Turn("xy", [1, 2], [0.0]) for _ in cs], ValueError),
])
def test_policy_misuse_is_an_error(bad, error):
    env = calc_env()
    with pytest.raises(error):
        run_episodes(env, env.tasks("test")[:2], bad)


# --------------------------------------------------------------------------- single-turn environments


def test_single_turn_environment_plays_one_turn_and_verifies_as_before():
    env = get_env("arithmetic", test_size=6)
    tasks = env.tasks("test")
    answers = [t.answer if i % 2 else "0" for i, t in enumerate(tasks)]
    episodes = run_episodes(env, tasks, lambda cs: [answers[tasks.index(c.task)] for c in cs])
    assert all((e.num_turns, e.end, e.prompt) == (1, "answer", env.render(t)) for e, t in zip(episodes, tasks))
    via_loop = episode_verdicts(env, episodes, tasks)
    direct = env.verifier.verify_batch(answers, tasks)
    assert [v.passed for v in via_loop] == [v.passed for v in direct] == [i % 2 == 1 for i in range(6)]


def test_single_turn_stop_strings_reach_the_policy():
    env = get_env("humaneval")
    task = env.tasks("test")[0]
    seen = []
    ep = run_episode(env, task, lambda c: seen.append(c.stop) or "    return 1\n")
    assert seen == [tuple(env.stop)] and ep.prompt == env.render(task) and ep.end == "answer"


def test_option_checks():
    with pytest.raises(ValueError, match="max_turns"):
        calc_env(max_turns=0)
    with pytest.raises(ValueError, match="max_episode_tokens"):
        calc_env(max_episode_tokens=-1)
    with pytest.raises(ValueError, match="tool_timeout"):
        calc_env(tool_timeout=0)
    with pytest.raises(ValueError, match="unknown tool"):
        calc_env(tools=["abacus"])
    with pytest.raises(ValueError, match="tool_options"):
        calc_env(tool_options={"python": {}})


def test_calls_past_the_per_turn_cap_are_refused_not_run():
    from envs.tools.syntax import MAX_CALLS_PER_TURN

    env = calc_env()
    task = env.tasks("test")[0]
    ep = run_episode(env, task, scripted("<calc>1+1</calc>" * (MAX_CALLS_PER_TURN + 2), task.answer))
    assert [c["status"] for c in ep.tool_calls] == ["ok"] * MAX_CALLS_PER_TURN + ["bad_call"] * 2
    assert ep.segments[2].text.count("<result>2</result>") == MAX_CALLS_PER_TURN
    assert ep.end == "answer"
