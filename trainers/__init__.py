"""verirl trainers: `python -m trainers.grpo` and `python -m trainers.ppo`.

- `trainers.core`: the RL math, pure tensor functions (advantages, losses, KL, GAE);
- `trainers.grpo`, `trainers.ppo`: the two training loops and their configs;
- `trainers.config`: `RunConfig` (fields every trainer has), `run_cli`, `derive_seed`;
- `trainers.run`: `RunContext`, the frame both loops share (set-up, sampling, weight sync, logs);
- `trainers.rollout`: prompts -> completions -> verdicts -> a padded tensor batch;
- `trainers.forward`: the forward passes that score completion tokens;
- `trainers.critic`: PPO's value model (a head on the policy's trunk, or a separate trunk);
- `trainers.checkpoint`, `trainers.plots`: checkpoints (exact resume) and `rewards.png`.

Trainers sample through `models.sampling` and evaluate through `evals`; nothing below imports them.
"""
