"""The project's built-in tiny model: a character-level Llama that learns arithmetic on a CPU.

`ensure_tiny_model()` returns a local folder that transformers and vLLM both load
(`config.json`, `model.safetensors`, `tokenizer.json`). It is built from scratch, never
downloaded: a Llama-style decoder (hidden 128, 2 layers, 4 heads, intermediate 512, about
0.53M parameters) with one token per character of the `arithmetic` environment's alphabet.

With `warm_start=True` (the default) the model is first trained with a short supervised phase
on the arithmetic *train* split, loss on the answer tokens only, and stopped as soon as its
sampled accuracy reaches `target_accuracy` (0.3). That leaves room for RL to show an
improvement: in the project's calibration runs plain GRPO moved held-out pass@1 from ~0.25 to
~0.45 in three minutes from such a start (README: `make train` ends near 0.35 -> 0.74). Both
folders are cached under `$VERIRL_CACHE` (default `~/.cache/verirl`), keyed by a hash of
everything that shapes them, so a second run skips the work.

`tiny_configs(env)` gives the model and warm start for an environment: the defaults above,
except for a multi-turn environment with demonstration episodes (`calculator`), whose tiny
model reads the tool syntax too (the environment's alphabet, longer positions; a cache key of
its own) and is warm-started on demonstration episodes, loss on the model's turns only (the
tool results are context), stopped at `target_accuracy` of sampled episodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
DEFAULT_ALPHABET = "0123456789+-*/=()."


@dataclass(frozen=True)
class TinyConfig:
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 64
    alphabet: str = DEFAULT_ALPHABET
    seed: int = 0


@dataclass(frozen=True)
class WarmStartConfig:
    """The supervised warm start (the calibration above). It is budgeted in steps, never in
    seconds, so the cached model is the same on a loaded machine as on a quiet one."""

    learning_rate: float = 2e-3
    batch_size: int = 128
    max_steps: int = 3000
    target_accuracy: float = 0.3
    check_every: int = 25
    check_samples: int = 256
    env: str = "arithmetic"


def cache_root() -> Path:
    return Path(os.environ.get("VERIRL_CACHE", Path.home() / ".cache" / "verirl"))


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def build_tokenizer(alphabet: str = DEFAULT_ALPHABET):
    """A `PreTrainedTokenizerFast` with one token per character and `<s>` prepended."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if len(set(alphabet)) != len(alphabet) or any(c.isspace() for c in alphabet):
        raise ValueError(f"alphabet must be distinct non-space characters, got {alphabet!r}")
    vocab = {tok: i for i, tok in enumerate(SPECIALS + tuple(alphabet))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", padding_side="left")


def build_model(cfg: TinyConfig, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def _save_atomically(path: Path, save) -> None:
    """Write into a temporary sibling folder and rename, so a crash never leaves half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        save(tmp)
        os.replace(tmp, path) if not path.exists() else shutil.rmtree(tmp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def tiny_configs(env_name: str | None) -> tuple[TinyConfig, WarmStartConfig]:
    """The tiny model and warm start for `env_name` (see the module docstring)."""
    if env_name is None:
        return TinyConfig(), WarmStartConfig()
    import envs

    env = envs.get_env(env_name)
    if not hasattr(env, "demonstration_episode"):
        return TinyConfig(), WarmStartConfig()
    extra = "".join(sorted(set(env.alphabet) - set(DEFAULT_ALPHABET)))
    return (TinyConfig(alphabet=DEFAULT_ALPHABET + extra, max_position_embeddings=128),
            WarmStartConfig(env=env_name, batch_size=64, max_steps=2000))


def ensure_tiny_model(warm_start: bool = True, cfg: TinyConfig = TinyConfig(),
                      warm: WarmStartConfig = WarmStartConfig(), log=print) -> str:
    """Path of the tiny model (built, and warm-started if asked, on first use; cached after)."""
    base = cache_root() / f"tiny-llama-{_digest(asdict(cfg))}"
    if not (base / "config.json").exists():
        tokenizer = build_tokenizer(cfg.alphabet)
        model = build_model(cfg, len(tokenizer))
        _save_atomically(base, lambda p: (model.save_pretrained(p), tokenizer.save_pretrained(p)))
    if not warm_start:
        return str(base)
    path = cache_root() / f"tiny-llama-{_digest(asdict(cfg), asdict(warm))}-warm"
    if not (path / "config.json").exists():
        log(f"warm-starting the tiny model (supervised, once; cached in {path})")
        model, tokenizer, stats = supervised_warm_start(str(base), warm, seed=cfg.seed, log=log)
        def save(p):
            model.save_pretrained(p)
            tokenizer.save_pretrained(p)
            (p / "warm_start.json").write_text(json.dumps({"config": asdict(warm), **stats}, indent=1))
        _save_atomically(path, save)
    return str(path)


def _encode_batch(tokenizer, prompts: list[str], answers: list[str]):
    """Right-padded input ids and labels with the loss on the answer and `</s>` only."""
    rows, labels = [], []
    for p, a in zip(prompts, answers):
        p_ids = tokenizer(p)["input_ids"]
        a_ids = tokenizer(a, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(p_ids + a_ids)
        labels.append([-100] * len(p_ids) + a_ids)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    return ids, (ids != pad).long(), lab


def sampled_accuracy(model, tokenizer, env, tasks, max_new_tokens: int = 8, seed: int = 0) -> float:
    """Fraction of tasks whose single temperature-1 sample the env's verifier passes."""
    from models.hf_sampler import hf_sample

    texts = hf_sample(model, tokenizer, [env.render(t) for t in tasks], n=1, temperature=1.0, top_p=1.0,
                      max_new_tokens=max_new_tokens, seed=seed)
    verdicts = env.verifier.verify_batch([s[0].text for s in texts], list(tasks))
    return sum(v.passed for v in verdicts) / max(len(verdicts), 1)


def _encode_episodes(tokenizer, episodes):
    """Right-padded ids and labels of demonstration episodes, each segment tokenized as the
    episode loop tokenizes it: the loss on the model's turns (and a final `</s>`) only, never
    on the prompt or a tool result."""
    rows, labels = [], []
    for e in episodes:
        ids, lab = [], []
        for i, seg in enumerate(e.segments):
            toks = tokenizer(seg.text, add_special_tokens=i == 0)["input_ids"]
            ids += toks
            lab += toks if seg.kind == "action" else [-100] * len(toks)
        rows.append(ids + [tokenizer.eos_token_id])
        labels.append(lab + [tokenizer.eos_token_id])
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    return ids, (ids != pad).long(), lab


def episode_accuracy(model, tokenizer, env, tasks, max_new_tokens: int = 32, seed: int = 0) -> float:
    """Fraction of tasks whose one sampled episode (temperature 1) the environment passes."""
    from envs.multiturn import episode_verdicts
    from models.episodes import play_episodes
    from models.hf_sampler import HFSampler

    groups = play_episodes(HFSampler(model, tokenizer), env, tasks, 1, max_new_tokens=max_new_tokens, seed=seed)
    verdicts = episode_verdicts(env, [g[0] for g in groups], list(tasks))
    return sum(v.passed for v in verdicts) / max(len(verdicts), 1)


def supervised_warm_start(path: str, warm: WarmStartConfig, seed: int = 0, log=print):
    """Train on (prompt, answer) pairs of the env's train split until sampled accuracy reaches
    the target, a step budget or a time budget; returns (model, tokenizer, stats)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import envs

    torch.manual_seed(seed)
    rng = random.Random(seed)
    env = envs.get_env(warm.env)
    tasks = list(env.tasks("train"))
    check = rng.sample(tasks, min(warm.check_samples, len(tasks)))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=warm.learning_rate)
    start, acc, step = time.perf_counter(), 0.0, 0
    episodic = hasattr(env, "demonstration_episode")
    demos = {t.id: env.demonstration_episode(t) for t in tasks} if episodic else {}
    for step in range(1, warm.max_steps + 1):
        batch = rng.sample(tasks, min(warm.batch_size, len(tasks)))
        if episodic:
            ids, attn, labels = _encode_episodes(tokenizer, [demos[t.id] for t in batch])
        else:
            ids, attn, labels = _encode_batch(tokenizer, [env.render(t) for t in batch],
                                              [str(t.answer) for t in batch])
        model.train()
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % warm.check_every == 0:
            model.eval()
            acc = (episode_accuracy if episodic else sampled_accuracy)(model, tokenizer, env, check, seed=seed + step)
            log(f"  warm start step {step}: loss {loss.item():.3f}, sampled accuracy {acc:.3f}")
            if acc >= warm.target_accuracy:
                break
    else:
        log(f"  warm start: target accuracy {warm.target_accuracy} not reached in {warm.max_steps} steps")
    stats = {"steps": step, "seconds": round(time.perf_counter() - start, 1), "sampled_accuracy": acc}
    return model, tokenizer, stats
