"""models/: the one backend resolution, the one model-path resolver, the one task sampler."""

from __future__ import annotations

import pytest
import torch

from models.backends import BACKENDS, resolve_backend
from models.loading import ModelRef, resolve_model
from models.sampler import PromptError, Sample, sample_tasks
from verifiers import Task


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_an_explicit_backend_is_kept(backend):
    assert resolve_backend(backend) == backend


def test_auto_is_vllm_only_on_a_cuda_machine_that_has_it(monkeypatch):
    import models.backends as backends

    for cuda, has_vllm, expected in [(False, True, "hf"), (False, False, "hf"), (True, True, "vllm"),
                                     (True, False, "hf")]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        monkeypatch.setattr(backends, "vllm_available", lambda has_vllm=has_vllm: has_vllm)
        assert resolve_backend("auto") == expected, (cuda, has_vllm)


@pytest.mark.parametrize("bad", ["tgi", "", "HF", "auto "])
def test_unknown_backends_are_refused_with_the_list(bad):
    with pytest.raises(ValueError, match=f"{bad!r} is not one of {BACKENDS}".replace("(", r"\(").replace(")", r"\)")):
        resolve_backend(bad)


def test_the_trainer_and_the_eval_cli_share_the_resolution():
    from evals import harness
    from trainers import config

    assert harness.BACKENDS is BACKENDS and config.BACKENDS is BACKENDS


def test_every_sampler_implements_the_whole_contract():
    """The samplers name the `Sampler` protocol as their base, and define each of its members
    themselves: the protocol's own methods are stubs that would return None."""
    import typing

    from evals.pass_at_k import LazySampler
    from models.hf_sampler import HFSampler
    from models.sampler import Sampler
    from models.vllm_sampler import VLLMSampler

    members = {*typing.get_type_hints(Sampler), *(n for n, v in vars(Sampler).items() if callable(v)
                                                    and not n.startswith("_"))}
    assert members == {"backend", "needs_sync", "tokenizer", "generate", "load_weights", "close"}
    for cls in (HFSampler, VLLMSampler, LazySampler):
        assert Sampler in cls.__mro__   # named as the base, not merely shaped like it
        own = {n for klass in cls.__mro__[:cls.__mro__.index(Sampler)] for n in vars(klass)}
        # tokenizer is set in __init__ (HFSampler, VLLMSampler) or a property (LazySampler);
        # HFSampler sets needs_sync in __init__ (its own copy of the weights only in a rollout worker)
        in_init = {"tokenizer"} if cls is not LazySampler else set()
        missing = members - own - in_init - ({"needs_sync"} if cls is HFSampler else set())
        assert not missing, f"{cls.__name__} lacks {sorted(missing)}"


def test_model_names_keep_what_the_user_gave(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert resolve_model("Qwen/Qwen2.5-0.5B") == ModelRef("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B")
    assert ModelRef("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B").label == "Qwen/Qwen2.5-0.5B"   # hub id as given
    assert ModelRef(str(folder), str(folder)).label == "my-model"                          # a folder: its name
    assert ModelRef("tiny", "/cache/tiny-llama-22b5ec5e40f5-warm").label == "tiny"          # not the cache path


def test_tiny_resolves_to_the_cached_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VERIRL_CACHE", str(tmp_path))
    ref = resolve_model("tiny", warm_start=False, log=lambda *_: None)
    assert ref.name == "tiny" and ref.path.startswith(str(tmp_path)) and ref.label == "tiny"


class Recorder:
    """A generator that records its prompts; prompt 1 of a batch holding a `?` is unreadable."""

    tokenizer = None

    def __init__(self):
        self.calls = []

    def generate(self, prompts, n, **kw):
        self.calls.append((prompts, n, kw))
        for i, p in enumerate(prompts):
            if "?" in p:
                raise PromptError(f"prompt {i} unreadable", i)
        return [[Sample(p[::-1], [], None, "stop", []) for _ in range(n)] for p in prompts]


class PlainEnv:
    def render(self, task, tokenizer=None):
        return f"<{task.prompt}>" if tokenizer is None else "chat"


def test_sample_tasks_renders_passes_sampling_and_names_the_unreadable_task():
    gen, env = Recorder(), PlainEnv()
    tasks = [Task(id="a", prompt="1+1="), Task(id="b", prompt="2+2=")]
    groups = sample_tasks(gen, env, tasks, 3, temperature=0.5, seed=7)
    assert [len(g) for g in groups] == [3, 3] and groups[1][0].text == ">=2+2<"
    assert gen.calls[0][0] == ["<1+1=>", "<2+2=>"] and gen.calls[0][2]["seed"] == 7
    with pytest.raises(PromptError, match="task 'bad'"):
        sample_tasks(gen, env, [tasks[0], Task(id="bad", prompt="x?")], 1)
