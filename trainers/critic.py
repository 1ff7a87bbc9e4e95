"""PPO's critic: a value V(s_t) for every completion token, next to the policy's log-probs.

Two kinds, chosen once from `CRITICS` by `PPOConfig.critic`:

* `head` (the default): a linear value head on the policy's last hidden state (TRL's
  `AutoModelForCausalLMWithValueHead`), parameters shared between policy and value function as
  in Schulman et al. (2017), section 5, hence one loss `L_clip + vf_coef * L_vf`. One forward
  gives the policy's log-probs and the values, and the value loss trains the trunk too. It
  costs `hidden_size + 1` parameters and nothing else: PPO with a head is about as cheap as GRPO.
* `separate`: a value model with its own transformer trunk, initialised from the policy's
  starting weights (or another checkpoint), plus a head: the layout of InstructGPT (whose
  value model starts from the reward model) and TRL's PPOTrainer. Its parameters, gradients,
  Adam state and activations are the memory that GRPO saves by using the group mean instead.

Alignment: the value of completion token t is read at the column that scores token t
(P-1+t in the `trainers.rollout` layout), i.e. the state before token t is sampled, so
`core.gae_advantages`'s delta_t = r_t + gamma V_{t+1} - V_t pairs with log pi(token t).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from trainers import core_logits
from trainers.forward import completion_states


def _text_hidden_size(config) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.hidden_size)


class Critic(nn.Module):
    """Value head, on the policy's trunk (`trunk=None`) or on a trunk of its own.

    `forward(policy, batch, temperature)` returns the policy's token log-probs, optionally their
    entropy, and the values, all (B, T) over the batch's completion tokens; with a shared trunk
    it costs one policy pass (with `share_prompts`: the distinct prompts, then the completions)."""

    def __init__(self, hidden_size: int, trunk: nn.Module | None = None, share_prompts: bool = True):
        super().__init__()
        self.trunk = trunk
        self.share_prompts = share_prompts  # see `trainers.forward.completion_states`
        self.head = nn.Linear(hidden_size, 1)
        # V = 0 at the start: before any data the critic claims nothing, and the first
        # advantages are plain returns (no random baseline noise).
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, policy, batch, temperature: float, with_entropy: bool = False
                ) -> tuple[Tensor, Tensor | None, Tensor]:
        P, ids, attention = batch.prompt_width, batch.input_ids, batch.attention_mask
        # `completion_states` lays columns out as the trainer's log-probs do, and with
        # `share_prompts` runs each of the batch's distinct prompts once (trainers/rollout.py).
        logits, hidden = completion_states(policy, ids, attention, P, self.share_prompts, hidden=self.trunk is None)
        if self.trunk is not None:
            hidden = completion_states(self.trunk, ids, attention, P, self.share_prompts, logits=False, hidden=True)[1]
        values = self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)
        logp = core_logits.token_logprobs(logits, ids[:, P:].to(logits.device), temperature=temperature)
        entropy = None
        if with_entropy:
            with torch.no_grad():
                entropy = core_logits.entropy_from_logits(logits / temperature)
        return logp, entropy, values


def head_critic(policy, model_path: str | None = None, **_) -> Critic:
    """A value head reading the policy's last hidden state (no trunk of its own)."""
    return Critic(_text_hidden_size(policy.config))


def separate_critic(policy, model_path: str | None = None, *, dtype: torch.dtype = torch.float32,
                    gradient_checkpointing: bool = False) -> Critic:
    """A value model: the transformer trunk of the checkpoint at `model_path` plus a head."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    if model_path is None:
        raise ValueError("a separate critic needs a model path for its trunk")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the causal LM's unused `lm_head` is expected, not news
    try:
        trunk = AutoModel.from_pretrained(model_path, dtype=dtype)
    finally:
        hf_logging.set_verbosity(verbosity)
    if gradient_checkpointing:
        trunk.gradient_checkpointing_enable()
    return Critic(_text_hidden_size(trunk.config), trunk)


CRITICS: dict[str, Callable[..., Critic]] = {"head": head_critic, "separate": separate_critic}


def build_critic(kind: str, policy, model_path: str | None = None, *, device: torch.device | str = "cpu",
                 seed: int = 0, **kw) -> Critic:
    """The critic of `kind` (a key of `CRITICS`) on `device`. Built under its own seed in a forked
    RNG, so that building it leaves the caller's random state (restored on resume) alone."""
    if kind not in CRITICS:
        raise ValueError(f"unknown critic {kind!r}; valid choices: {sorted(CRITICS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CRITICS[kind](policy, model_path, **kw).to(device)
