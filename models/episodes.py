"""Episodes played by a sampler: the bridge between `models.sampler` and `envs.multiturn`.

`SamplerPolicy(sampler, ...)` is the `contexts -> turns` policy that `run_episodes` asks for:
each round it samples one model turn per running episode, continuing from the episode's exact
token ids (what the model generated, the observations' tokens in between), ending the turn at
the environment's stop strings (a tool call's closing tag) or at EOS, and returns each turn's
token ids and, from samplers that report them (vLLM), their log-probs.

`play_episodes(sampler, env, tasks, n)` plays `n` episodes of each task with it (trainers'
groups, eval's samples) and `episode_sample(episode)` lays a played episode out as the trainers'
`Sample`: the prompt's tokens, then every later token (actions and observations) with an
`action_mask` that is False at observation tokens, so that no loss term, ratio, KL, entropy,
value target or token count ever touches them.
"""

from __future__ import annotations

from typing import Any

from envs.multiturn import ACTION, Context, Episode, MultiTurnEnvironment, Turn, run_episodes
from models.sampler import PromptError, Sample, encode_prompts, sample_tasks

# Episode rounds draw their seeds apart: round r of a call seeded s samples with s + r * ROUND_SEED_STRIDE.
ROUND_SEED_STRIDE = 1_000_003


class SamplerPolicy:
    """A sampler as a multi-turn policy. `max_new_tokens` caps each model turn (a context's
    own `max_tokens`, the episode's remaining token budget, may cap it lower).

    Seeds: `seed` seeds each round's batch (round r: seed + r * ROUND_SEED_STRIDE; the
    trainers' rollouts). `seeds`, one per episode (`Context.index`), seed each episode's turns
    instead: turn t of episode i samples with `seeds[i] + t * ROUND_SEED_STRIDE`, whatever other
    episodes share the round (the evaluation's per-sample seeds)."""

    def __init__(self, sampler, *, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64,
                 seed: int | None = None, seeds: list[int] | None = None):
        self.sampler, self.temperature, self.top_p = sampler, temperature, top_p
        self.max_new_tokens, self.seed, self.rounds = max_new_tokens, seed, 0
        self.seeds = seeds

    def __call__(self, contexts: list[Context]) -> list[Turn]:
        if not contexts:
            return []
        inputs = [c.token_ids if c.token_ids is not None else c.text for c in contexts]
        caps = [self.max_new_tokens if c.max_tokens is None else min(c.max_tokens, self.max_new_tokens)
                for c in contexts]
        stop = tuple(sorted({s for c in contexts for s in c.stop}))
        seed = None if self.seed is None else self.seed + self.rounds * ROUND_SEED_STRIDE
        self.rounds += 1
        # The first turn of a group's episodes has one prompt: sample it once with n (the prefill is shared).
        k = _run_length(inputs)
        per_episode = {}
        if self.seeds is not None:
            rows = [self.seeds[c.index] + c.turn * ROUND_SEED_STRIDE for c in contexts]
            if any(rows[i] != rows[i - i % k] + i % k for i in range(len(rows))):
                k = 1  # a shared prompt's k samples are seeded seed, seed + 1, ...: only such runs share it
            seed, per_episode = None, {"seeds": rows[::k]}
        unique = inputs[::k]
        groups = self.sampler.generate(unique, k, temperature=self.temperature, top_p=self.top_p,
                                         max_new_tokens=max(caps), seed=seed, stop=stop or None, **per_episode)
        samples = [s for group in groups for s in group]
        return [self._turn(s, cap) for s, cap in zip(samples, caps)]

    def _turn(self, sample: Sample, cap: int) -> Turn:
        """The sample as a turn, cut at `cap` tokens (the tokens past it are simply not taken:
        the same distribution as sampling `cap` tokens)."""
        ids, logprobs, reason = sample.token_ids, sample.logprobs, sample.finish_reason
        if len(ids) > cap:
            ids, reason = ids[:cap], "length"
            logprobs = None if logprobs is None else logprobs[:cap]
        text = sample.text if len(ids) == len(sample.token_ids) else \
            self.sampler.tokenizer.decode(ids, skip_special_tokens=True)
        return Turn(text, list(ids), None if logprobs is None else list(logprobs), reason)


def _run_length(inputs: list) -> int:
    """k when `inputs` is consecutive runs of k equal items (k > 1), else 1."""
    for k in range(len(inputs), 1, -1):
        if len(inputs) % k == 0 and all(inputs[i] == inputs[i - i % k] for i in range(len(inputs))):
            return k
    return 1


def play_episodes(sampler, env, tasks: list, n: int, *, chat_template: bool = True, temperature: float = 1.0,
                  top_p: float = 1.0, max_new_tokens: int = 64, seed: int | None = None,
                  seeds: list[int] | None = None) -> list[list[Episode]]:
    """`n` episodes of each task (groups in task order), every segment with its token ids.
    The first prompt is tokenized as `sample_tasks` tokenizes a prompt (a prompt the tokenizer
    cannot read raises `PromptError` naming the task); observations without special tokens
    added, as the text the loop appends. `seeds`, one per task, seed episode k of task i with
    `seeds[i] + k` (`SamplerPolicy`), as `sample_tasks` seeds sample k."""
    tokenizer = sampler.tokenizer
    chat = tokenizer if chat_template and getattr(tokenizer, "chat_template", None) else None
    rows = [t for t in tasks for _ in range(n)]
    prompts = [env.render(t, chat) for t in tasks]
    try:
        prompt_ids = dict(zip(prompts, encode_prompts(tokenizer, prompts)))
    except PromptError as exc:
        raise exc.for_task(tasks[exc.index].id) from None
    if seeds is not None and len(seeds) != len(tasks):
        raise ValueError(f"seeds: {len(seeds)} seeds for {len(tasks)} tasks; give one per task")
    row_seeds = None if seeds is None else [s + k for s in seeds for k in range(n)]
    policy = SamplerPolicy(sampler, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                           seeds=row_seeds)
    episodes = run_episodes(env, rows, policy, tokenizer=chat,
                            encode=lambda text: tokenizer(text, add_special_tokens=False)["input_ids"],
                            encode_prompt=lambda text: prompt_ids.get(text) or tokenizer(text)["input_ids"])
    return [episodes[i * n:(i + 1) * n] for i in range(len(tasks))]


def sample_env(sampler, env, tasks: list, n: int, **sampling: Any) -> list[list[Sample]]:
    """`n` samples of each task (groups in task order): sampled completions (`sample_tasks`), or
    for a multi-turn environment played episodes laid out as samples (`episode_sample`: each
    carries its episode). `sampling`: the keywords of `sample_tasks` and `play_episodes`. The
    trainers' rollouts and the eval harness both sample through here."""
    if isinstance(env, MultiTurnEnvironment):
        return [[episode_sample(e) for e in group] for group in play_episodes(sampler, env, tasks, n, **sampling)]
    return sample_tasks(sampler, env, tasks, n, **sampling)


def episode_sample(episode: Episode) -> Sample:
    """The episode as a trainer's sample: `token_ids` and `action_mask` cover everything after
    the prompt; log-probs (0 at observations, which are never scored) when every turn has them;
    "length" when a turn was cut (its own cap or the episode's budget): truncation masking
    applies to it as to a single-turn completion."""
    prompt = episode.segments[0].token_ids
    ids = episode.token_ids
    if ids is None:
        raise ValueError(f"episode of task {episode.task_id!r} lacks token ids; play it with play_episodes")
    later = episode.segments[1:]
    logprobs = None
    if all(s.logprobs is not None for s in later if s.kind == ACTION):
        logprobs = [lp for s in later for lp in (s.logprobs if s.kind == ACTION else [0.0] * len(s.token_ids))]
    reason = "length" if episode.end in ("length", "budget") else "stop"
    return Sample(episode.completion, ids[len(prompt):], logprobs, reason, list(prompt),
                  action_mask=episode.action_mask()[len(prompt):], episode=episode)


def episode_stats(samples: list[Any]) -> dict:
    """Mean turns and tool calls of the samples that are episodes (empty when none is)."""
    episodes = [s.episode for s in samples if getattr(s, "episode", None) is not None]
    if not episodes:
        return {}
    return {"turns_mean": sum(e.num_turns for e in episodes) / len(episodes),
            "tool_calls_mean": sum(len(e.tool_calls) for e in episodes) / len(episodes)}
