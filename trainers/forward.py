"""The trainer's forward passes over a rollout: the logits, hidden states and log-probs that
score the sampled completion tokens.

Layout (see `trainers/rollout.py`): prompts left-padded to width P, completions right-padded to
width T, so `logits[:, P-1:P-1+T]` score the completion. Position ids follow the attention mask,
as in generation, so the trainer's log-probs of the sampled tokens match the generator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from trainers import core_logits

if TYPE_CHECKING:
    from trainers.rollout import Rollout


def sequence_logits(model, input_ids: Tensor, attention_mask: Tensor, prompt_width: int,
                    share_prompts: bool = True) -> Tensor:
    """Logits that score the completion tokens: (B, T, V) for the columns P-1 .. P+T-2."""
    return completion_states(model, input_ids, attention_mask, prompt_width, share_prompts)[0]


def completion_states(model, input_ids: Tensor, attention_mask: Tensor, prompt_width: int,
                      share_prompts: bool = True, logits: bool = True, hidden: bool = False
                      ) -> tuple[Tensor | None, Tensor | None]:
    """The logits (B, T, V) and/or last hidden states (B, T, H) at the columns that score the
    completion tokens, P-1 .. P+T-2. `model` is a causal LM, or with `logits=False` a bare trunk
    (`AutoModel`, read through `last_hidden_state`).

    With `share_prompts`, rows with the same (left-padded) prompt, as the completions of one GRPO
    group are, run that prompt once: its key/value cache, still carrying gradients, is copied to
    each of its rows, and the completions run on top. Logits, hidden states and gradients are
    those of the plain forward (to float rounding; the tests compare both), at a fraction of the
    work when prompts are long or groups large. The plain forward is used when no prompt repeats
    or the model keeps no cache that can be copied across rows (gradient checkpointing turns the
    cache off)."""
    P, T = prompt_width, input_ids.shape[1] - prompt_width
    device = next(model.parameters()).device  # batches are built on the CPU
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)

    def forward(keep: int, **kw):  # keep: logits of the last `keep` columns, 0 = all
        extra = dict(logits_to_keep=keep, output_hidden_states=hidden) if logits else {}
        out = model(**kw, **extra)
        states = (out.hidden_states[-1] if logits else out.last_hidden_state) if hidden else None
        return out, (out.logits if logits else None), states

    if share_prompts and P > 0 and T > 0 and not getattr(model, "is_gradient_checkpointing", False):
        prompts, inverse = torch.unique(torch.cat([input_ids[:, :P], attention_mask[:, :P]], 1), dim=0,
                                        return_inverse=True)
        if len(prompts) < len(input_ids):
            head, head_logits, head_states = forward(1, input_ids=prompts[:, :P], attention_mask=prompts[:, P:],
                                                 position_ids=(prompts[:, P:].cumsum(-1) - 1).clamp(min=0),
                                                 use_cache=True)
            if hasattr(head.past_key_values, "reorder_cache"):
                parts = [None if x is None else x[:, -1:].index_select(0, inverse) for x in (head_logits, head_states)]
                if T == 1:
                    return parts[0], parts[1]
                cache = head.past_key_values
                cache.reorder_cache(inverse)  # unique prompt -> each row (index_select: gradients add up)
                _, rest_logits, rest_states = forward(0, input_ids=input_ids[:, P:-1], past_key_values=cache,
                                                  attention_mask=attention_mask[:, :-1],
                                                  position_ids=position_ids[:, P:-1], use_cache=True)
                return tuple(None if a is None else torch.cat([a, b], 1)
                             for a, b in zip(parts, (rest_logits, rest_states)))
    _, all_logits, all_states = forward(T + 1, input_ids=input_ids, attention_mask=attention_mask,
                                    position_ids=position_ids, use_cache=False)
    return (None if all_logits is None else all_logits[:, :-1],
            None if all_states is None else all_states[:, P - 1:P - 1 + T])


def completion_logprobs(model, batch: "Rollout", temperature: float, with_entropy: bool = False,
                        share_prompts: bool = True) -> tuple[Tensor, Tensor | None]:
    """Log-probs (B, T) of the sampled completion tokens under `model` at `temperature`,
    and optionally the per-token entropy (B, T) of the same distribution."""
    logits = sequence_logits(model, batch.input_ids, batch.attention_mask, batch.prompt_width, share_prompts)
    tokens = batch.input_ids[:, batch.prompt_width:].to(logits.device)
    logp = core_logits.token_logprobs(logits, tokens, temperature=temperature)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = core_logits.entropy_from_logits(logits / temperature)
    return logp, entropy
