"""verirl models: what trainers and evals both sample from.

- `models.sampler`: the `Sampler` contract, `Sample`, prompt encoding (`PromptError`);
- `models.hf_sampler`, `models.vllm_sampler`: the transformers and vLLM samplers;
- `models.backends`: `resolve_backend` (what `auto` means) and `make_sampler`;
- `models.episodes`: an environment sampled through a sampler, multi-turn episodes included;
- `models.distributed`: the process group of a torchrun launch and its few collectives;
- `models.tiny`: the built-in character-level Llama and its supervised warm start;
- `models.loading`: the model a user names (`tiny`, a hub id, a folder) -> a loadable path.

This package sits between `envs/` and `evals/`: it may import `verifiers` and `envs`, never
`evals` or `trainers` (tests/test_layers.py checks it).
"""
