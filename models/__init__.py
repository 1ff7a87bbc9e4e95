"""verirl models: what trainers and evals both sample from.

- `models.sampling`: the generation backends (vLLM, transformers), `resolve_backend`,
  `make_generator`, `Sample`.
- `models.tiny`: the built-in character-level Llama and its supervised warm start.
- `models.loading`: the model a user names (`tiny`, a hub id, a folder) -> a loadable path.

This package sits between `envs/` and `evals/`: it may import `verifiers` and `envs`, never
`evals` or `trainers` (tests/test_layers.py checks it).
"""
