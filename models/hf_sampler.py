"""Sampling from a transformers model: the trainers' default on CPU and the evaluation's `hf` backend.

`HFSampler` samples the very module a trainer updates, so it needs no weight sync. It runs
`sample_loop`, a KV-cached decoding loop with the distribution of transformers `generate`
(top_k = 0) without its per-token machinery. Randomness is either one stream for the batch
(`seed`, the trainers' rollouts) or one stream per row (`seeds` through `row_uniforms`, the
evaluation's per-task seeds), so a prompt's samples need not depend on the rest of its batch.
"""

from __future__ import annotations

from typing import Iterable

import torch

from models.sampler import Sample, Sampler, encode_prompts


def _eos_ids(model, tokenizer) -> set[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None) or tokenizer.eos_token_id
    return set(ids if isinstance(ids, (list, tuple)) else [ids])


def _split_completion(ids: list[int], eos: set[int]) -> tuple[list[int], str]:
    """Cut a row of new tokens after its first EOS; a row without one ran out of tokens and
    holds only sampled tokens (`sample_loop` pads only after EOS), a sampled pad id included."""
    for i, t in enumerate(ids):
        if t in eos:
            return ids[: i + 1], "stop"
    return ids, "length"


class StopStrings:
    """`check(tokens, done) -> (B,) bool`, `sample_loop`'s `stop_check`: the rows not yet done
    whose newest token completes one of the `stop` strings (as vLLM's `stop`, matched on the
    generated text only); `ended[row]` is the index of that token. Only the last
    `max(len(stop))` tokens are decoded: every token is at least one character, so a stop
    string that the newest token completes lies within them, and one completed earlier had
    already ended its row."""

    def __init__(self, tokenizer, stop: tuple[str, ...] | list[str]):
        self.tokenizer, self.stop = tokenizer, tuple(stop)
        self.width = max(len(s) for s in self.stop)
        self.ended: dict[int, int] = {}

    def __call__(self, tokens: list[torch.Tensor], done: torch.Tensor) -> torch.Tensor:
        tail = torch.stack(tokens[-self.width:], 1).tolist()
        hit = [not d and any(s in self.tokenizer.decode(row, skip_special_tokens=False) for s in self.stop)
               for row, d in zip(tail, done.tolist())]
        for row in (i for i, h in enumerate(hit) if h):
            self.ended[row] = len(tokens) - 1
        return torch.tensor(hit, dtype=torch.bool, device=done.device)

    def cut(self, index: int, row: list[int], eos: set[int]) -> tuple[list[int], str]:
        """Row `index`'s completion and finish reason: up to its first EOS or stop string."""
        if index in self.ended:  # tokens after the stop string are padding, which may be the EOS id
            return row[: self.ended[index] + 1], "stop"
        return _split_completion(row, eos)


def _next_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                 uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """Sample one token per row from logits (B, V): greedy at temperature 0, else softmax of
    logits / temperature restricted to the smallest set of tokens with mass >= top_p. With
    `uniforms` (B,) each row draws with its own number (`_inverse_cdf`), else one
    `torch.multinomial` draws for all rows from the global RNG."""
    if temperature == 0:
        return logits.argmax(-1)
    return _draw(_sampling_probs(logits, temperature, top_p), uniforms)


def _sampling_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution (B, V) a row draws from: softmax of logits / temperature, zero outside
    the smallest set of tokens with mass >= top_p (not renormalised: the draws scale by the mass)."""
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= top_p   # mass before this token already >= top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return probs


def _draw(probs: torch.Tensor, uniforms: torch.Tensor | None) -> torch.Tensor:
    """One token per row of `probs` (B, V): from the row's own uniform, or `torch.multinomial`."""
    if uniforms is not None:
        return _inverse_cdf(probs, uniforms)
    return torch.multinomial(probs, 1).squeeze(-1)


def _step(logits: torch.Tensor, temperature: float, top_p: float, uniforms: torch.Tensor | None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """`_next_tokens`, with the log-probability (B,) of each drawn token under the distribution
    it was drawn from (top_p's renormalised one; 0 for greedy): the behaviour log-probs an
    off-policy correction weighs against the trainer's."""
    if temperature == 0:
        token = logits.argmax(-1)
        return token, torch.zeros(token.shape, dtype=torch.float32, device=token.device)
    probs = _sampling_probs(logits, temperature, top_p)
    token = _draw(probs, uniforms)
    chosen = probs.gather(-1, token[:, None]).squeeze(-1)
    return token, (chosen / probs.sum(-1) if top_p < 1.0 else chosen).log()


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The token (B,) whose interval of the cumulative distribution of `probs` (B, V) holds
    `uniforms` (B,) in [0, 1) scaled by the row's mass: `torch.multinomial`'s distribution,
    drawn from a number the row owns. A token without mass has an empty interval; only
    rounding (u * mass == mass) could step past the last token with mass, so clamp to it."""
    cdf = probs.double().cumsum(-1)
    index = torch.searchsorted(cdf, (uniforms.to(cdf) * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
    last = (probs > 0).cumsum(-1).argmax(-1)   # the first index reaching the final count: the last with mass
    return torch.minimum(index, last)


def row_uniforms(seeds: list[int], n: int, steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(len(seeds) * n, steps) float64 uniforms: row i * n + k from its own CPU generator seeded
    `seeds[i] + k` (vLLM's seed of the k-th sample of a request), so a row's draws depend on
    its seed alone, not on the batch, its size or the device. A generator's stream is the same
    whatever its length, so a longer `steps` only extends each row."""
    rows = [torch.rand(steps, generator=torch.Generator().manual_seed(seed + k), dtype=torch.float64)
            for seed in seeds for k in range(n)]
    return torch.stack(rows).to(device)


@torch.no_grad()
def sample_loop(model, input_ids: torch.Tensor, attention: torch.Tensor, max_new_tokens: int, temperature: float,
                top_p: float, eos: set[int], pad: int, repeats: int = 1,
                stop_check: StopStrings | None = None, uniforms: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Autoregressive sampling with a KV cache: (B, P) left-padded prompts -> (B * repeats,
    <= max_new_tokens) new tokens, `pad` after a row's EOS, and the log-prob of each drawn token
    (same shape, 0 after EOS; `_step`); rows i*repeats .. (i+1)*repeats-1
    continue prompt i, whose prefill runs once and is shared through the cache. The same
    distribution as transformers `generate` with top_k=0, without its per-token machinery (logits
    processors, stopping criteria), which for small models and short answers costs more than the
    model itself; stops when every row ended. `stop_check(tokens, done)` (`StopStrings`) ends
    rows at stop strings too: they are padded from the next token on. `uniforms` (B * repeats,
    max_new_tokens) (`row_uniforms`): row r's token t is drawn with `uniforms[r, t]` instead of
    the global RNG, so each row's samples are its own whatever shares its batch."""
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    if repeats > 1:
        input_ids, attention, positions = (t.repeat_interleave(repeats, 0) for t in (input_ids, attention, positions))
        if hasattr(out.past_key_values, "batch_repeat_interleave"):
            out.past_key_values.batch_repeat_interleave(repeats)
            out.logits = out.logits.repeat_interleave(repeats, 0)
        else:  # a cache that cannot be copied across rows: prefill every row
            out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                        logits_to_keep=1)
    eos_ids = torch.tensor(sorted(eos), device=input_ids.device)
    done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    position = positions[:, -1:]
    tokens, logprobs = [], []
    for _ in range(max_new_tokens):
        draws = None if uniforms is None else uniforms[:, len(tokens)]
        token, logprob = _step(out.logits[:, -1], temperature, top_p, draws)
        tokens.append(token.masked_fill(done, pad))
        logprobs.append(logprob.masked_fill(done, 0.0))
        token = tokens[-1]
        if stop_check is not None:
            done |= stop_check(tokens, done)
        done |= torch.isin(token, eos_ids)
        if done.all() or len(tokens) == max_new_tokens:
            break
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], -1)
        position = position + 1
        out = model(input_ids=token[:, None], attention_mask=attention, position_ids=position,
                    past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
    return torch.stack(tokens, 1), torch.stack(logprobs, 1)


@torch.no_grad()
def hf_sample(model, tokenizer, prompts: list[str] | list[list[int]], n: int, *, temperature: float = 1.0,
              top_p: float = 1.0, max_new_tokens: int = 64, seed: int | None = None,
              stop: tuple[str, ...] | list[str] | None = None, seeds: list[int] | None = None,
              logprobs: bool = False) -> list[list[Sample]]:
    """Sample `n` completions per prompt from a transformers model (left padding, `sample_loop`);
    a completion also ends at the first of the `stop` strings, kept in its text and tokens.
    `logprobs`: each sample carries the log-probs of its tokens under the distribution they
    were drawn from (otherwise None, as the trainer needs none from a sampler it shares).

    `seed` seeds the one random stream of the whole batch (the trainers' rollouts). `seeds`,
    one per prompt, instead gives sample k of prompt i its own stream seeded `seeds[i] + k`
    (`row_uniforms`), so that a prompt's samples do not depend on which prompts share the batch
    (the evaluation's per-task seeds); `seed` is then unused."""
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"seeds: {len(seeds)} seeds for {len(prompts)} prompts; give one per prompt")
    ids = encode_prompts(tokenizer, prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(map(len, ids))
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in ids], device=model.device)
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids], device=model.device)
    eos = _eos_ids(model, tokenizer)
    devices = [model.device] if model.device.type == "cuda" else []
    uniforms = None if seeds is None else row_uniforms(seeds, n, max_new_tokens, model.device)
    seed = None if seeds is not None else seed
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):  # leave the caller's RNG alone
        if seed is not None:
            torch.manual_seed(seed)
        check = StopStrings(tokenizer, stop) if stop else None
        out, out_logprobs = sample_loop(model, input_ids, attention, max_new_tokens, temperature, top_p, eos, pad,
                                        repeats=n, stop_check=check, uniforms=uniforms)
    out_logprobs = out_logprobs.tolist() if logprobs else None
    result = []
    for i, prompt_ids in enumerate(ids):
        group = []
        for j, row in enumerate(out[i * n:(i + 1) * n].tolist()):
            completion, reason = check.cut(i * n + j, row, eos) if check else _split_completion(row, eos)
            lps = None if out_logprobs is None else out_logprobs[i * n + j][:len(completion)]
            group.append(Sample(tokenizer.decode(completion, skip_special_tokens=True), completion, lps, reason,
                                prompt_ids))
        result.append(group)
    return result


class HFSampler(Sampler):
    """A transformers model sampled with `sample_loop`. Given a module (the trainer's), it samples
    that very module and needs no weight sync; given a path, it loads a copy of its own
    (`needs_sync`: an asynchronous rollout worker's), which `load_weights` refills. `logprobs`:
    samples carry their tokens' log-probs (`hf_sample`)."""

    def __init__(self, model, tokenizer=None, *, dtype: str = "float32", device: str | None = None,
                 logprobs: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.needs_sync = isinstance(model, str)
        if isinstance(model, str):
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(device)
        else:
            self.tokenizer = tokenizer
        self.model, self.logprobs = model, logprobs

    def generate(self, prompts, n: int, *, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 64, seed: int | None = None, stop=None,
                 seeds: list[int] | None = None) -> list[list[Sample]]:
        """`hf_sample`: `seed` for the batch, or `seeds` (sample k of prompt i: `seeds[i] + k`)."""
        was_training = self.model.training
        self.model.eval()
        try:
            return hf_sample(self.model, self.tokenizer, prompts, n, temperature=temperature, top_p=top_p,
                             max_new_tokens=max_new_tokens, seed=seed, stop=stop, seeds=seeds,
                             logprobs=self.logprobs)
        finally:
            self.model.train(was_training)

    backend = "hf"

    @torch.no_grad()
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy the named tensors (checkpoint names) into a copy of its own; nothing to do on the
        trainer's module, which the trainer updates itself. An unknown name raises KeyError."""
        if not self.needs_sync:
            return
        state = self.model.state_dict()
        for name, tensor in named_tensors:
            state[name].copy_(tensor)

    def close(self) -> None:
        pass
