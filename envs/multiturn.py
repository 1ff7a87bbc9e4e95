"""Multi-turn environments and the episode loop, independent of any model.

An episode alternates model turns (actions) and environment replies (observations):

    prompt | action | observation | action | observation | ... | action (the answer)

* `MultiTurnEnvironment.render(task)` is the first prompt; after each model turn,
  `step(task, episode, action)` returns an `Observation` to append, or None: the episode is over.
  `verify_episodes` scores whole episodes (by default: the verifier on the last turn, the
  answer after the last observation). `envs.tool_env.ToolEnvironment` is the
  environment whose observations are tool results.
* `run_episodes(env, tasks, policy)` plays many episodes at once: each round asks the policy
  to continue every running episode in one batch, then steps them all. `run_episode` plays
  one. A policy is any callable `contexts -> turns` (one `Context` in, one `Turn` or plain
  string out, per running episode); samplers return their token ids and log-probs with the
  text, and the loop keeps them.
* Every piece of text is a `Segment`: the prompt, an ACTION (model-generated: the only
  tokens any loss term may touch) or an OBSERVATION (context only), with its exact character
  span in the episode's text and, when the sampler gives token ids and `encode`, its token
  span. `Episode.to_json()` is the plain-JSON transcript: segments, tool calls, turns, why
  it ended.

Limits (options of `MultiTurnEnvironment`): `max_turns` model turns; `max_episode_tokens`,
a budget on the tokens of actions and observations together (counted by the sampler's
`count_tokens`, characters by default; the prompt is not counted); tool timeouts are the
tool environment's. Why an episode ended (`Episode.end`):

* `answer` -- the model's turn asked for nothing more (the normal end);
* `length` -- the sampler cut the model's turn (its own token cap);
* `budget` -- the token budget ran out: a turn was cut at it, or an observation did not fit;
* `max_turns` -- the model's last allowed turn still asked for an observation.

An observation that is not appended (`max_turns`, `budget`) leaves the episode `unanswered`:
it has no final answer and fails verification (`status="failed"`, with the reason).

Single-turn environments play through the same loop: one turn, ending `answer` or `length`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from envs.base import EnvError, Environment, option
from verifiers import Task, Verdict

PROMPT, ACTION, OBSERVATION = "prompt", "action", "observation"
END_REASONS = ("answer", "length", "budget", "max_turns")


@dataclass
class Turn:
    """One model turn, as a policy returns it. A sampler fills `token_ids` (exactly the
    sampled tokens, the text's tokens) and `logprobs`; `finish_reason` is "stop" (end of
    turn: EOS or a stop string, kept in the text) or "length" (cut by `max_tokens`)."""

    text: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: str = "stop"


@dataclass
class Context:
    """What a policy continues: `text` (prompt and every segment so far) or, when all token
    ids are known, exactly `token_ids`; at most `max_tokens` new tokens (None: the sampler's
    own cap); stop at any of `stop` and keep it in the text. `index`: the episode's position in
    `run_episodes`'s tasks (a policy that seeds each episode apart reads it)."""

    task: Task
    text: str
    token_ids: list[int] | None
    max_tokens: int | None
    stop: tuple[str, ...]
    turn: int
    index: int = 0


@dataclass
class Segment:
    kind: str                            # PROMPT, ACTION or OBSERVATION
    text: str
    start: int                           # episode.text[start:end] == text
    end: int
    turn: int                            # the model turn it belongs to (observations: the turn they answer)
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None  # actions, when the sampler gave them
    token_start: int | None = None       # episode.token_ids[token_start:token_end] == token_ids
    token_end: int | None = None


@dataclass
class Observation:
    """The environment's reply to a model turn: `text` appended in plain-text episodes,
    `messages` rendered by the chat template in chat episodes (with `assistant`, the model's
    turn read as a chat message, when the template needs its tool calls), and the tool calls
    it ran."""

    text: str = ""
    messages: list[dict] = field(default_factory=list)
    assistant: dict | None = None
    tool_calls: list = field(default_factory=list)


@dataclass
class Episode:
    """The transcript of one episode (`to_json` / `from_json`: plain JSON for samples.jsonl)."""

    task_id: str
    chat: bool = False
    segments: list[Segment] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)   # ToolCall.to_json() + {"turn": i}
    messages: list[dict] | None = None                     # chat episodes: the conversation so far
    end: str | None = None                                 # one of END_REASONS once over
    unanswered: bool = False                               # ended with an observation not appended
    tokens: int = 0                                        # budget used: actions + observations

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def prompt(self) -> str:
        return self.segments[0].text

    @property
    def completion(self) -> str:
        """Everything after the prompt: actions and observations as the model saw them."""
        return self.text[len(self.prompt):]

    @property
    def actions(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == ACTION]

    @property
    def final_text(self) -> str:
        """The last model turn: the answer, after the last observation."""
        return self.actions[-1].text if self.actions else ""

    @property
    def num_turns(self) -> int:
        return len(self.actions)

    @property
    def truncated(self) -> bool:
        return self.end in ("length", "budget") and not self.unanswered

    @property
    def token_ids(self) -> list[int] | None:
        """All token ids (prompt included), when every segment has them."""
        if any(s.token_ids is None for s in self.segments):
            return None
        return [t for s in self.segments for t in s.token_ids]

    def action_mask(self, unit: str = "token") -> list[bool]:
        """True at every token (or character) a model turn generated, False at prompt and
        observation ones: the mask of every loss term."""
        if unit == "char":
            return [s.kind == ACTION for s in self.segments for _ in s.text]
        if self.token_ids is None:
            raise EnvError("a token mask needs the token ids of every segment (a sampler's token_ids and encode)")
        return [s.kind == ACTION for s in self.segments for _ in s.token_ids]

    def summary(self) -> dict:
        return {"turns": self.num_turns, "tool_calls": len(self.tool_calls), "end": self.end,
                "unanswered": self.unanswered, "tokens": self.tokens}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Episode":
        return cls(**{**data, "segments": [Segment(**s) for s in data["segments"]]})

    def _append(self, kind: str, text: str, turn: int, token_ids: list[int] | None = None,
                logprobs: list[float] | None = None) -> Segment:
        start = self.segments[-1].end if self.segments else 0
        token_start = None
        if token_ids is not None and all(s.token_ids is not None for s in self.segments):
            token_start = sum(len(s.token_ids) for s in self.segments)
        seg = Segment(kind, text, start, start + len(text), turn, token_ids, logprobs, token_start,
                      None if token_start is None else token_start + len(token_ids))
        self.segments.append(seg)
        return seg


@dataclass(kw_only=True, eq=False)
class MultiTurnEnvironment(Environment):
    """An environment that answers model turns. Subclasses implement `step` (and, as every
    environment, `load_tasks` and `correctness_verifier`)."""

    max_turns: int = option(4, "model turns per episode")
    max_episode_tokens: int | None = option(None, "token budget of the model's turns and the observations "
                                                  "together (None: none)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.max_turns, bool) or not isinstance(self.max_turns, int) or self.max_turns < 1:
            raise EnvError(f"option max_turns must be a positive int, got {self.max_turns!r}")
        budget = self.max_episode_tokens
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise EnvError(f"option max_episode_tokens must be a positive int or None, got {budget!r}")

    def step(self, task: Task, episode: Episode, action: str) -> Observation | None:
        """The reply to the model's turn `action` (already in `episode`), or None to end."""
        raise NotImplementedError

    def step_batch(self, tasks: list[Task], episodes: list[Episode], actions: list[str]) -> list[Observation | None]:
        return [self.step(t, e, a) for t, e, a in zip(tasks, episodes, actions)]

    def stop_strings(self, chat: bool) -> tuple[str, ...]:
        """Where a sampler ends a model turn (besides EOS)."""
        return tuple(self.stop)

    def tool_schemas(self) -> list[dict]:
        """Function schemas for `apply_chat_template(..., tools=...)` (none by default)."""
        return []

    def verify_episodes(self, episodes: list[Episode], tasks: list[Task]) -> list[Verdict]:
        """The verifier on each episode's last turn; an unanswered episode fails."""
        graded = [i for i, e in enumerate(episodes) if not e.unanswered]
        verdicts = self.verifier.verify_batch([episodes[i].final_text for i in graded], [tasks[i] for i in graded])
        out: list[Verdict] = [Verdict(0.0, False, {"status": "failed", "error": f"the episode ended ({e.end}) "
                                                   "with an observation not shown: no final answer"})
                              for e in episodes]
        for i, verdict in zip(graded, verdicts):
            out[i] = verdict
        return [Verdict(v.reward, v.passed, {**v.info, "episode": e.summary()}) for v, e in zip(out, episodes)]


def episode_verdicts(env: Environment, episodes: list[Episode], tasks: list[Task]) -> list[Verdict]:
    """Verdicts of played episodes, multi-turn or not (a single-turn episode's completion is its one turn)."""
    if isinstance(env, MultiTurnEnvironment):
        return env.verify_episodes(episodes, tasks)
    return env.verifier.verify_batch([e.completion for e in episodes], tasks)


# --------------------------------------------------------------------------- the loop

TurnPolicy = Callable[[list[Context]], Sequence[Any]]


def _as_turn(out: Any) -> Turn:
    """A policy's output as a Turn: a string, a Turn, or any object with the same fields (a
    sampler's sample)."""
    if isinstance(out, str):
        return Turn(out)
    if not isinstance(getattr(out, "text", None), str):
        raise TypeError(f"a policy must return strings or turns with a `text`, got {type(out).__name__}")
    turn = Turn(out.text, getattr(out, "token_ids", None), getattr(out, "logprobs", None),
                getattr(out, "finish_reason", "stop"))
    if turn.finish_reason not in ("stop", "length"):
        raise ValueError(f"finish_reason must be 'stop' or 'length', got {turn.finish_reason!r}")
    if turn.token_ids is not None and turn.logprobs is not None and len(turn.token_ids) != len(turn.logprobs):
        raise ValueError(f"a turn has {len(turn.token_ids)} token ids but {len(turn.logprobs)} log-probs")
    return turn


class _Loop:
    """The state shared by one `run_episodes` call: environment, limits and counting."""

    def __init__(self, env: Environment, tokenizer: Any, encode: Callable | None, encode_prompt: Callable | None,
                 count_tokens: Callable | None):
        self.env, self.tokenizer, self.encode = env, tokenizer, encode
        self.encode_prompt = encode_prompt or encode
        self.count = count_tokens or ((lambda s: len(encode(s))) if encode else len)
        self.multi = isinstance(env, MultiTurnEnvironment)
        self.chat = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))
        self.max_turns = env.max_turns if self.multi else 1
        self.budget = env.max_episode_tokens if self.multi else None
        self.stop = env.stop_strings(self.chat) if self.multi else tuple(env.stop)
        self.syntax = None
        if self.multi and self.chat:
            from envs.tools.syntax import ChatSyntax
            self.syntax = ChatSyntax(tokenizer, env.tool_schemas())

    def start(self, task: Task) -> Episode:
        episode = Episode(task_id=task.id, chat=self.chat)
        prompt = self.env.render(task, self.tokenizer)
        episode._append(PROMPT, prompt, 0, self.encode_prompt(prompt) if self.encode_prompt else None)
        if self.chat:
            episode.messages = self.env.messages(task)
        return episode

    def context(self, episode: Episode, task: Task, index: int = 0) -> Context:
        left = None if self.budget is None else self.budget - episode.tokens
        return Context(task, episode.text, episode.token_ids, left, self.stop, episode.num_turns, index)

    def act(self, episode: Episode, turn: Turn) -> bool:
        """Record the model's turn; True when the episode goes on to a step."""
        episode._append(ACTION, turn.text, episode.num_turns, turn.token_ids, turn.logprobs)
        episode.tokens += len(turn.token_ids) if turn.token_ids is not None else self.count(turn.text)
        if turn.finish_reason == "length":
            episode.end = "budget" if self.budget is not None and episode.tokens >= self.budget else "length"
        elif not self.multi:
            episode.end = "answer"
        return episode.end is None

    def observe(self, episode: Episode, action: str, reply: Observation | None) -> None:
        turn = episode.num_turns - 1
        if self.chat:
            message = dict(reply.assistant) if reply and reply.assistant else {"role": "assistant", "content": action}
            if self.syntax and self.syntax.eot:  # the template writes the end-of-turn token itself
                message["content"] = message["content"].replace(self.syntax.eot, "").strip()
            episode.messages.append(message)
        if reply is None:
            episode.end = "answer"
            return
        if episode.num_turns >= self.max_turns:
            episode.end, episode.unanswered = "max_turns", True
            return
        if self.chat and not reply.messages:
            raise EnvError(f"{type(self.env).__name__}.step returned an Observation without `messages` "
                           "in a chat episode")
        episode.tool_calls += [{**call.to_json(), "turn": turn} for call in reply.tool_calls]
        text = (self.syntax.observation_text(episode.messages, reply.messages, self._ended(action, episode))
                if self.chat else reply.text)
        ids = self.encode(text) if self.encode else None
        cost = len(ids) if ids is not None else self.count(text)
        if self.budget is not None and episode.tokens + cost >= self.budget:
            episode.end, episode.unanswered = "budget", True  # no room left for the model to read it and answer
            return
        episode.tokens += cost
        episode._append(OBSERVATION, text, turn, ids)
        if self.chat:
            episode.messages += reply.messages

    def _ended(self, action: str, episode: Episode) -> bool:
        """Whether the model's turn already ends with its end-of-turn token."""
        ids, eos = episode.segments[-1].token_ids, getattr(self.tokenizer, "eos_token_id", None)
        return action.endswith(self.syntax.eot) if not ids else ids[-1] == eos


def run_episodes(env: Environment, tasks: list[Task], policy: TurnPolicy, *, tokenizer: Any = None,
                 encode: Callable[[str], list[int]] | None = None,
                 encode_prompt: Callable[[str], list[int]] | None = None,
                 count_tokens: Callable[[str], int] | None = None) -> list[Episode]:
    """Play one episode per task; each round, one policy call continues every running episode.

    `tokenizer`: with a chat template, episodes are chat conversations (tools through the
    template); otherwise plain text. `encode(text)`: token ids of text the loop appends
    (observations; no special tokens); `encode_prompt` those of the first prompt (default
    `encode`): with both and a policy that returns token ids, every segment has its token
    ids. `count_tokens(text)`: the budget's unit where ids are unknown (default: `encode`'s
    length, else characters).
    """
    loop = _Loop(env, tokenizer, encode, encode_prompt, count_tokens)
    episodes = [loop.start(task) for task in tasks]
    running = list(range(len(tasks)))
    while running:
        for i in running:
            if loop.budget is not None and episodes[i].tokens >= loop.budget:
                episodes[i].end = "budget"
        running = [i for i in running if episodes[i].end is None]
        if not running:
            break
        turns = list(policy([loop.context(episodes[i], tasks[i], i) for i in running]))
        if len(turns) != len(running):
            raise ValueError(f"the policy returned {len(turns)} turns for {len(running)} contexts")
        stepping = [i for i, out in zip(running, turns) if loop.act(episodes[i], _as_turn(out))]
        actions = [episodes[i].final_text for i in stepping]
        replies = env.step_batch([tasks[i] for i in stepping], [episodes[i] for i in stepping],
                                 actions) if stepping else []
        for i, action, reply in zip(stepping, actions, replies):
            loop.observe(episodes[i], action, reply)
        running = [i for i in running if episodes[i].end is None]
    return episodes


def run_episode(env: Environment, task: Task, policy: Callable[[Context], Any], **options: Any) -> Episode:
    """Play one episode; `policy(context)` returns one turn (a string or a `Turn`)."""
    return run_episodes(env, [task], lambda contexts: [policy(c) for c in contexts], **options)[0]
