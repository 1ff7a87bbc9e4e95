"""The sampler contract that trainers and the evaluation both sample through.

A `Sampler` (`models.hf_sampler.HFSampler`, `models.vllm_sampler.VLLMSampler`; build one with
`models.backends.make_sampler`) turns prompts into `Sample`s: `generate(prompts, n, ...)`
returns, for each prompt, `n` samples with the completion's text, token ids, finish reason and
(vLLM) the sampled tokens' log-probabilities. Prompts are tokenized once (`encode_prompts`) and
handed to either backend as token ids, so the trainer scores exactly the tokens that were
sampled; a prompt the tokenizer cannot read is a `PromptError`, never a silent `<unk>`.
`sample_tasks` samples an environment's rendered prompts through any sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

import torch


class PromptError(ValueError):
    """A prompt the model's tokenizer cannot read (characters it maps to its unknown token);
    `index` is its position in the batch, which callers turn into a task id with `for_task`."""

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index

    def for_task(self, task_id: str) -> "PromptError":
        return PromptError(f"task {task_id!r}: {self}", self.index)

    def __reduce__(self):  # pickled with its index: a distributed run re-raises it on every rank
        return PromptError, (str(self), self.index)


def encode_prompts(tokenizer, prompts: list[str] | list[list[int]]) -> list[list[int]]:
    """Token ids of each prompt (lists of ids pass through). A text prompt with characters that the
    tokenizer maps to its unknown token raises `PromptError` naming the prompt and the characters:
    the model would read `<unk>` there, and a task it cannot read scores a silent zero (the
    built-in tiny model knows only the bare arithmetic characters, so `few_shot` or `instruct`
    prompts hit this). Byte-level tokenizers have no unknown token and are never refused."""
    ids = [p if isinstance(p, list) else tokenizer(p)["input_ids"] for p in prompts]
    unk, unk_text = getattr(tokenizer, "unk_token_id", None), getattr(tokenizer, "unk_token", None)
    if unk is None:
        return ids
    for i, (prompt, row) in enumerate(zip(prompts, ids)):
        if isinstance(prompt, list) or unk not in row or (unk_text and unk_text in prompt):
            continue
        bad = sorted(c for c in set(prompt) if unk in tokenizer(c, add_special_tokens=False)["input_ids"])
        shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
        raise PromptError(f"prompt {i} ({shown!r}) has characters the model's tokenizer does not know: "
                          f"{''.join(bad) or '(a sequence)'!r}; it would read them as {tokenizer.unk_token!r}. "
                          "Use an environment whose prompts the tokenizer covers (the built-in tiny model reads "
                          "only bare arithmetic: digits, +-*/=().) or another model", i)
    return ids


@dataclass
class Sample:
    text: str                      # decoded completion, special tokens dropped
    token_ids: list[int]           # completion tokens, including a final EOS when it stopped
    logprobs: list[float] | None   # sampled-token log-probs from the sampler, if it has them
    finish_reason: str             # "stop" (EOS or a stop string) or "length" (hit max_new_tokens)
    prompt_token_ids: list[int]
    # An episode's sample (`models.episodes.episode_sample`): True at the tokens the model generated,
    # False at observations (context, never actions); None: every token is the model's.
    action_mask: list[bool] | None = None
    episode: Any = None            # the `envs.multiturn.Episode` it came from


class Sampler(Protocol):
    """What trainers and the evaluation sample from: the transformers sampler shares the
    trainer's module, vLLM keeps its own copy of the weights (`needs_sync`), which the trainer
    pushes with `load_weights` after each update."""

    backend: str            # "hf" or "vllm": written into reports and run summaries
    needs_sync: bool        # True when the sampler holds its own copy of the weights
    tokenizer: Any          # the model's tokenizer (prompts, chat templates, decoding turns)

    def generate(self, prompts: list[str] | list[list[int]], n: int, *, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: int = 64, seed: int | None = None,
                 stop: tuple[str, ...] | list[str] | None = None,
                 seeds: list[int] | None = None) -> list[list[Sample]]:
        """`n` samples of each prompt (text or token ids). `seed` seeds the whole batch's
        random stream; `seeds`, one per prompt, instead give sample k of prompt i its own stream
        seeded `seeds[i] + k`, so a prompt's samples do not depend on the rest of the batch.
        A completion ends at EOS or at the first `stop` string, which stays in its text."""
        ...

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the sampler's weights (checkpoint names, as in `state_dict()`)."""
        ...

    def close(self) -> None:
        """Release the engine (and its process groups) now, before the caller leaves its own."""
        ...


def sample_tasks(sampler: Sampler, env, tasks: list, n: int, *, chat_template: bool = True,
                 temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64, seed: int | None = None,
                 seeds: list[int] | None = None) -> list[list[Sample]]:
    """`n` samples of each task's prompt, as the environment renders it (through the tokenizer's
    chat template when it has one, unless `chat_template` is False). A prompt the tokenizer
    cannot read raises `PromptError` naming the task. `seeds` (one per task; sample k of task i
    seeded `seeds[i] + k`) replace the batch's `seed`; a sampler gets the keyword only when
    it is given. Trainers and the eval harness sample through `models.episodes.sample_env`,
    which calls this for single-turn environments."""
    tokenizer = getattr(sampler, "tokenizer", None) if chat_template else None
    per_task = {} if seeds is None else {"seeds": list(seeds)}
    try:
        return sampler.generate([env.render(task, tokenizer) for task in tasks], n, temperature=temperature,
                                top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, **per_task)
    except PromptError as exc:
        raise exc.for_task(tasks[exc.index].id) from None
