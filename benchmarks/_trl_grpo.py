"""The TRL side of `bench_grpo_vs_trl.py`: TRL's `GRPOTrainer` set up like `python -m trainers.grpo`,
run as a whole process so that its imports count, as they would for a user.

    python benchmarks/_trl_grpo.py --model PATH --steps 100 --out result.json

Settings that differ from TRL's defaults, to match ours (`trainers/grpo.py`, `trainers/policy.py`):
`loss_type="grpo"` (TRL's default is `dapo`), constant learning rate (TRL: linear decay),
`bf16=False` and `gradient_checkpointing=False` (TRL turns both on by default), `beta=0` (no
reference model), `num_iterations=1`, `gradient_accumulation_steps=1`, one generation batch of
`prompts_per_step * group_size` completions per optimizer step, `top_k=0`, AdamW (transformers'
default `adamw_torch_fused`, as ours; no weight decay, gradient clipping at 1.0), logging every
step, no saving, no evaluation. The prompts are the arithmetic train split in the order our trainer
draws them (`trainers.task_stream.TaskStream` with the same seed) and `shuffle_dataset=False`, so
both sides see the same prompts at the same steps. The reward is the environment's verifier through
`verifiers.as_trl_reward`.

Writes one JSON object: import and set-up seconds, each step's begin/end (seconds since this
process started importing, from a `TrainerCallback`), TRL's `train_runtime`, the per-step
reward and completion length TRL logged, and the prompts each step saw.
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="local model folder")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON result file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import envs
    from trainers.task_stream import TaskStream
    from verifiers import as_trl_reward

    imported = time.perf_counter()
    env = envs.get_env("arithmetic")
    tasks = TaskStream(list(env.tasks("train")), args.seed).take(args.prompts_per_step * args.steps)
    dataset = Dataset.from_list([{"prompt": env.render(t), "answer": t.answer, "id": t.id} for t in tasks])

    base, step_prompts = as_trl_reward(env.verifier), []

    def reward(prompts, completions, **columns):
        step_prompts.append(list(dict.fromkeys(prompts)))  # the step's distinct prompts, in order
        return base(prompts=prompts, completions=completions, **columns)

    reward.__name__ = base.__name__

    class StepTimer(TrainerCallback):
        """Wall-clock begin and end of every optimizer step (generation, reward, loss, update)."""

        def __init__(self):
            self.begin, self.end = [], []

        def on_step_begin(self, *a, **kw):
            self.begin.append(time.perf_counter() - T0)

        def on_step_end(self, *a, **kw):
            self.end.append(time.perf_counter() - T0)

    timer = StepTimer()
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-grpo-"), max_steps=args.steps, seed=args.seed,
        per_device_train_batch_size=args.prompts_per_step * args.group_size, num_generations=args.group_size,
        gradient_accumulation_steps=1, num_iterations=1, max_completion_length=args.max_new_tokens,
        temperature=1.0, top_p=1.0, top_k=0, learning_rate=args.learning_rate, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch_fused", beta=0.0, epsilon=0.2,
        loss_type="grpo", scale_rewards="group", mask_truncated_completions=False, use_vllm=False, bf16=False,
        fp16=False, gradient_checkpointing=False, shuffle_dataset=False, logging_steps=1, save_strategy="no",
        eval_strategy="no", report_to="none", disable_tqdm=True, dataloader_pin_memory=False, log_completions=False,
    )
    trainer = GRPOTrainer(model=args.model, reward_funcs=reward, args=config, train_dataset=dataset,
                          callbacks=[timer])
    ready = time.perf_counter()
    output = trainer.train()
    trained = time.perf_counter()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    result = {
        "import_s": imported - T0, "setup_s": ready - imported, "train_call_s": trained - ready,
        "train_runtime": output.metrics["train_runtime"], "step_begin": timer.begin, "step_end": timer.end,
        "reward": [h["reward"] for h in logs], "completion_len": [h["completions/mean_length"] for h in logs],
        "step_prompts": step_prompts, "expected_prompts": [env.render(t) for t in tasks],
    }
    Path(args.out).write_text(json.dumps(result))
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
