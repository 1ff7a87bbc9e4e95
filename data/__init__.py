"""verirl data: the task sources environments draw from.

- `data.arithmetic_problems`: offline arithmetic problems with exact answers, split by a hash
  of the problem;
- `data.calculator_problems`: offline products too large to do in one's head (the
  `calculator` environment);
- `data.functions`: offline integer polynomials (the synthetic code task);
- `data.hub`: a split of a Hugging Face dataset, from the hub or a local copy.
"""
