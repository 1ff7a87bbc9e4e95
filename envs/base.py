"""The environment contract: `Environment` (tasks + prompt rendering + verifier) and its registry.

An environment is what a trainer and the eval harness consume. It owns three things:

* `tasks(split)` — the problems of a split as `Task`s (a list, or an endless iterator for
  generated training streams);
* `render(task, tokenizer=None)` — the text the model is given: the task's prompt, preceded
  by an optional system prompt and few-shot demonstrations, through the tokenizer's chat
  template when the tokenizer has one, as plain text otherwise;
* `verifier` — usually a `CompositeVerifier`: the correctness part (which decides `passed`)
  plus a format part whose weight is the `format_weight` option (0 = logged only).

Environments are dataclasses: their fields are their options, so `get_env(name, **options)`
can name an unknown option and list the valid ones, and `env.options()` is a plain dict for
run manifests. Subclasses register with `@register_env("name")`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, ClassVar, Iterable, Iterator

from verifiers import CompositeVerifier, Task, Verifier
from verifiers.options import field_default, help_line, kind_of


class EnvError(ValueError):
    """Misuse of an environment: unknown name, option or split, or options that contradict."""


def option(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with a help text (shown by `env_help`)."""
    if default is not dataclasses.MISSING and isinstance(default, (list, dict, set)):
        kwargs["default_factory"] = lambda d=default: type(d)(d)
        default = dataclasses.MISSING
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(kw_only=True, eq=False)
class Environment:
    """Tasks, their rendering and their verifier. Subclasses implement `load_tasks` and
    `correctness_verifier`, and may override `demonstration` and `format_options`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    fewshot_split: ClassVar[str] = "train"
    separator: ClassVar[str] = "\n\n"     # joins system prompt, demonstrations and prompt in plain text
    demo_separator: ClassVar[str] = "\n"  # between a demonstration's prompt and its completion
    alphabet: ClassVar[str | None] = None  # characters of bare prompts + answers, for char-level tokenizers
    stop: ClassVar[tuple[str, ...]] = ()   # stop sequences a sampler should use (besides EOS)

    system_prompt: str | None = option(None, "system message (chat) or first paragraph (plain text)")
    few_shot: int | list = option(0, "number of demonstrations drawn from the few-shot split, "
                                     "or a list of {prompt, completion} dicts")
    format_weight: float = option(0.0, "weight of the format reward part (0 = logged only)")
    seed: int = option(0, "seed of generated problems and of sampled subsets")
    verifier_url: str = option("", "comma-separated base URLs of `python -m verifiers serve` servers that "
                                   "judge the correctness part (the format part stays in-process); empty: "
                                   "judge in-process")

    def __post_init__(self) -> None:
        if isinstance(self.few_shot, bool) or not isinstance(self.few_shot, (int, list)):
            raise EnvError("option few_shot must be an int or a list of {prompt, completion} dicts, "
                           f"got {self.few_shot!r}")
        if isinstance(self.few_shot, int) and self.few_shot < 0:
            raise EnvError(f"option few_shot must be >= 0, got {self.few_shot}")
        for i, demo in enumerate(self.few_shot if isinstance(self.few_shot, list) else []):
            if not (isinstance(demo, dict) and isinstance(demo.get("prompt"), str)
                    and isinstance(demo.get("completion"), str)):
                raise EnvError(f"few_shot[{i}] must be a dict with string 'prompt' and 'completion', got {demo!r:.80}")
        if isinstance(self.format_weight, bool) or not isinstance(self.format_weight, (int, float)):
            raise EnvError(f"option format_weight must be a number, got {self.format_weight!r}")
        if not isinstance(self.verifier_url, str):
            raise EnvError(f"option verifier_url must be a comma-separated string of URLs, got {self.verifier_url!r}")
        if self.verifier_url:
            from verifiers import VerifierError
            from verifiers.remote import parse_urls  # checked now, not at the first verification

            try:
                parse_urls(self.verifier_url, option="verifier_url")
            except VerifierError as exc:
                raise EnvError(str(exc)) from None

    # ------------------------------------------------------------------ to override

    def load_tasks(self, split: str) -> list[Task] | Iterator[Task]:
        raise NotImplementedError

    def correctness_verifier(self) -> Verifier:
        """The verifier that decides `passed` (the composite's correctness part)."""
        raise NotImplementedError

    def format_options(self) -> dict:
        """Options of the `format` verifier for this environment's expected answer shape."""
        return {"pattern": r"\\boxed\{.+\}", "fullmatch": False}

    @classmethod
    def about(cls) -> str:
        """One line on what the environment draws from, for `python -m envs list` ("" for nothing)."""
        return ""

    def demonstration(self, task: Task) -> str:
        """A correct completion of `task`, used as a few-shot example."""
        return f"The answer is \\boxed{{{task.answer}}}."

    # ------------------------------------------------------------------ public API

    def tasks(self, split: str = "test") -> list[Task] | Iterator[Task]:
        """The tasks of `split`: a list, or an endless iterator where the env says so."""
        if split not in self.splits:
            raise EnvError(f"unknown split {split!r} for environment {self.name!r}; valid splits: {list(self.splits)}")
        return self.load_tasks(split)

    @cached_property
    def verifier(self) -> Verifier:
        correctness = self.correctness_verifier()
        if self.verifier_url:
            correctness = self._remote(correctness)
        fmt = {"verifier": "format", "weight": float(self.format_weight), "options": self.format_options()}
        return CompositeVerifier([(correctness, 1.0), ("format", fmt)], correctness=correctness.name)

    def _remote(self, local: Verifier) -> Verifier:
        """The correctness verifier on servers. Each server must serve the same registered name
        (checked by the server: a 404 raises) with the same options as `local`; options are not
        compared, because a server's options are its operator's choice (`GET /health` shows them)."""
        from verifiers.remote import RemoteVerifier

        remote = RemoteVerifier(urls=self.verifier_url, verifier=local.name)
        local.close()
        # The part keeps the local name, so metrics and info["parts"] read the same either way.
        remote.name = local.name
        return remote

    def messages(self, task: Task) -> list[dict]:
        """Chat messages: system prompt, demonstrations as user/assistant turns, the task."""
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for demo in self._demonstrations(task):
            msgs += [{"role": "user", "content": demo["prompt"]}, {"role": "assistant", "content": demo["completion"]}]
        if isinstance(task.prompt, list):
            return msgs + list(task.prompt)
        return msgs + [{"role": "user", "content": task.prompt}]

    def render(self, task: Task, tokenizer: Any = None) -> str:
        """The model's input text. With a tokenizer that has a chat template, the chat
        messages go through it (with the generation prompt); otherwise plain text: the
        system prompt, each demonstration as prompt + `demo_separator` + completion, then the prompt, joined
        by `separator`. With no system prompt and no demonstrations a string prompt is
        returned unchanged (the bare arithmetic prompt stays `12+34=`)."""
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(self.messages(task), tokenize=False, add_generation_prompt=True)
        parts = [self.system_prompt] if self.system_prompt else []
        parts += [d["prompt"] + self.demo_separator + d["completion"] for d in self._demonstrations(task)]
        if isinstance(task.prompt, list):
            parts += [m["content"] for m in task.prompt]
        else:
            parts.append(task.prompt)
        return self.separator.join(parts)

    def options(self) -> dict:
        """The option values of this environment (for run manifests)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def close(self) -> None:
        if "verifier" in self.__dict__:
            self.verifier.close()

    # ------------------------------------------------------------------ few-shot

    def _demonstrations(self, task: Task) -> list[dict]:
        if isinstance(self.few_shot, list):
            return self.few_shot
        if self.few_shot == 0:
            return []
        return [d for d in self._drawn_demos if d["id"] != task.id][:self.few_shot]

    @cached_property
    def _drawn_demos(self) -> list[dict]:
        """`few_shot + 1` demonstrations from the few-shot split (one spare, so that a task
        is never its own example)."""
        demos = []
        for task in self.tasks(self.fewshot_split):
            if len(demos) == self.few_shot + 1:
                break
            demos.append({"id": task.id, "prompt": task.prompt, "completion": self.demonstration(task)})
        return demos


@dataclass(kw_only=True, eq=False)
class HubEnvironment(Environment):
    """An environment whose tasks come from a dataset loaded by `data.hub.load_split`:
    from the hub by default, or from a local copy given by `path` / `data_files`.
    Subclasses set the defaults of `path` and `config`, `columns`, and `row_task`."""

    columns: ClassVar[tuple[str, ...]] = ()

    path: str = option("", "hub id, local folder (a clone), or one local data file")
    config: str | None = option(None, "dataset configuration (load_dataset's `name`)")
    data_files: Any = option(None, "local files: {split: file(s)}, or file(s) for the split asked for")

    def load_tasks(self, split: str) -> list[Task]:
        from data.hub import load_split

        rows = load_split(self.path, split, name=self.config, data_files=self.data_files,
                          columns=self.columns, env=self.name)
        return [task for i, row in enumerate(rows) if (task := self.row_task(row, split, i)) is not None]

    def row_task(self, row: dict, split: str, index: int) -> Task | None:
        """The task of one dataset row (None to leave the row out)."""
        raise NotImplementedError


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[Environment]] = {}


def register_env(name: str) -> Callable[[type], type]:
    """Class decorator registering an `Environment` subclass under `name`. The class becomes
    a keyword-only dataclass (its annotated attributes are its options) unless the class
    body was already decorated with `@dataclass`."""
    if not isinstance(name, str) or not name:
        raise EnvError(f"an environment name must be a non-empty string, got {name!r}")

    def decorate(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Environment)):
            raise EnvError(f"{cls!r} must subclass envs.Environment to be registered")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise EnvError(f"an environment named {name!r} is already registered ({_REGISTRY[name]!r})")
        if "__dataclass_params__" not in cls.__dict__:
            cls = dataclass(kw_only=True, eq=False)(cls)
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _env_class(name: str) -> type[Environment]:
    if name not in _REGISTRY:
        raise EnvError(f"unknown environment {name!r}; known environments: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_envs() -> dict[str, str]:
    """Registered names -> one-line descriptions, sorted by name."""
    return {n: _REGISTRY[n].description or (_REGISTRY[n].__doc__ or "").strip().split("\n")[0]
            for n in sorted(_REGISTRY)}


def env_about(name: str) -> str:
    """What environment `name` says about its catalogue (`Environment.about`)."""
    return _env_class(name).about()


def env_options(name: str) -> dict[str, dataclasses.Field]:
    """Option name -> dataclass field (default and `metadata["help"]`) of environment `name`."""
    return {f.name: f for f in dataclasses.fields(_env_class(name))}


def env_help(name: str) -> dict[str, str]:
    """Option name -> its help line, in the shape every option has (`verifiers.options.help_line`)."""
    out = {}
    for f in env_options(name).values():
        out[f.name] = help_line(f.metadata.get("help", ""), kind_of(f.type), field_default(f))
    return out


def get_env(name: str, **options: Any) -> Environment:
    """Build the environment registered as `name` with its options."""
    cls = _env_class(name)
    valid = env_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise EnvError(f"unknown option(s) {unknown} for environment {name!r}; valid options: {sorted(valid)}")
    return cls(**options)


def take(tasks: Iterable[Task], n: int) -> list[Task]:
    """The first `n` tasks of a split (lists and endless streams alike)."""
    out = []
    for task in tasks:
        if len(out) == n:
            break
        out.append(task)
    return out
