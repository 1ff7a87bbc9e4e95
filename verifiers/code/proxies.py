"""What the tests see of the program's objects, in the judge: proxies that never run its code.

Loaded by path inside the sandbox (standard library only). Each proxy holds a handle of an
object that lives in the program's process; whatever the tests do with it crosses the
channel (`channel.py`) as plain data and comes back through the strict decoder:

* a program function (the entry point, a helper the tests call): a real function of the same
  name and docstring whose calls cross; `inspect.signature` gives the program's signature
  (`__wrapped__` is a `LazySignature`, fetched on first use: names, kinds, plain defaults,
  builtin annotations);
* a program class: a class of the same name (metaclass `RemoteClass`): calling it constructs
  the object in the program's process; its attributes and static methods are read there;
  `isinstance` and `issubclass` follow the program's class tree;
* a program object (`Remote`): attribute reads come from a cache of its state (its attributes,
  fetched with those of the objects they reach in one request, until the next request that
  runs the program's code); methods and operators the class defines cross (`operators`);
  `==` is decided here, from the class name and the attribute state, never by the program's
  `__eq__`, and an ordering is the program's only between its own objects;
* an iterator: `channel.RemoteIterator`, fetched lazily.
"""

from __future__ import annotations

import _thread

try:
    import _sandbox_hosting as hosting  # in the sandbox: loaded by path by the fork server
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code import hosting

OPERATORS = hosting.OPERATORS
_CHANNEL: list = [None]   # the judge's channel: one per judge process (`use`)
_COMPARING = _thread._local()


def use(chan) -> None:
    _CHANNEL[0] = chan


def _chan():
    return _CHANNEL[0]


class RemoteClass(type):
    """A program class, in the judge: construction and class attributes cross."""

    def __call__(cls, *args, **kwargs):
        return _chan().call({"op": "call", "to": cls._verirl_class_h}, args, kwargs)

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _chan().ask({"op": "get", "to": cls._verirl_class_h, "name": name})

    def __repr__(cls) -> str:
        return f"<class '{cls.__module__}.{cls.__qualname__}'>"


class Remote:
    """An object of the program, in the judge (see the module docstring)."""

    __slots__ = ("_verirl_h", "_verirl_state", "_verirl_epoch", "__weakref__")
    _verirl_desc: dict = {"f": [], "d": [], "p": []}

    def _verirl_fetch(self) -> dict:
        chan = _chan()
        if self._verirl_epoch != chan.epoch:
            chan.fetch_states(self)
        return self._verirl_state

    def __getattr__(self, name: str):
        if name.startswith("_verirl_") or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)  # probes (copy, pickle, numpy) do not cross
        desc = type(self)._verirl_desc
        if name not in desc["p"]:
            state = self._verirl_fetch()
            if name in state:
                return state[name]
        if name in desc["f"]:
            return RemoteMethod(self, name)
        return _chan().ask({"op": "get", "to": self._verirl_h, "name": name})

    def __setattr__(self, name: str, value) -> None:
        if name.startswith("_verirl_"):
            object.__setattr__(self, name, value)
        else:
            _chan().set_attribute(self._verirl_h, name, value)

    @property
    def __dict__(self) -> dict:
        return dict(self._verirl_fetch())

    def __eq__(self, other):
        if self is other:
            return True
        if isinstance(other, Remote):
            if type(self).__qualname__ != type(other).__qualname__:
                return False
            theirs = other._verirl_fetch
        elif type(other).__name__ == type(self).__name__ and type(other).__module__ == "__main__":
            def theirs():  # the tests' own class of that name
                return hosting.state(other)
        else:
            return NotImplemented
        pending = _COMPARING.__dict__.setdefault("pairs", set())
        key = (id(self), id(other))
        if key in pending:  # a cycle (a doubly linked list): equal as far as it went
            return True
        pending.add(key)
        try:
            return self._verirl_fetch() == theirs()
        finally:
            pending.discard(key)

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(type(self).__qualname__)  # consistent with == (which needs equal class names)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} object>"

    def _verirl_call(self, name: str, *args):
        return _chan().call({"op": "method", "to": self._verirl_h, "name": name}, args, {})


def operators(defined: list) -> dict:
    """The operators a program class defines, for its judge class: each crosses. Those it does
    not define are missing here too, so Python's own fallbacks apply (no `len()`, iteration
    by `__getitem__`, truth by `__len__`). Orderings cross only between the program's own
    objects: against a plain value, an ordering the program decides could pass `lo < f(x) <
    hi` without an answer, as `__eq__` could pass `f(x) == y`."""
    ns = {}
    for name in defined:
        if name in ("__lt__", "__le__", "__gt__", "__ge__"):
            ns[name] = _ordering(name)
        elif name in ("__iter__", "__reversed__"):
            ns[name] = _iterating(name)
        elif name in OPERATORS:
            ns[name] = _forward(name)
    return ns


def _forward(name: str):
    def method(self, *args):
        return self._verirl_call(name, *args)
    method.__name__ = method.__qualname__ = name
    return method


def _iterating(name: str):
    def method(self):
        return iter(self._verirl_call(name))
    method.__name__ = method.__qualname__ = name
    return method


def _ordering(name: str):
    def method(self, other):
        return self._verirl_call(name, other) if isinstance(other, Remote) else NotImplemented
    method.__name__ = method.__qualname__ = name
    return method


class RemoteMethod:
    """A method of a program object (`obj.push`): calling it crosses."""

    __slots__ = ("_verirl_obj", "__name__")

    def __init__(self, obj: Remote, name: str):
        self._verirl_obj, self.__name__ = obj, name

    def __call__(self, *args, **kwargs):
        return _chan().call({"op": "method", "to": self._verirl_obj._verirl_h, "name": self.__name__}, args, kwargs)

    def __repr__(self) -> str:
        return f"<bound method {type(self._verirl_obj).__qualname__}.{self.__name__}>"


def function(handle: int, name: str, doc, signature):
    """A program function: a function of that name and docstring whose calls cross."""
    def proxy(*args, **kwargs):
        return _chan().call({"op": "call", "to": handle}, args, kwargs)

    proxy.__name__ = proxy.__qualname__ = name
    proxy.__module__ = "__main__"
    proxy.__doc__ = doc
    if signature is not None:
        proxy.__wrapped__ = signature  # what inspect.signature follows
    return proxy


class LazySignature:
    """What `inspect.signature(proxy)` finds behind `__wrapped__`: the program's parameters,
    asked of the program and made into an `inspect.Signature` only when a test asks (the tests
    that ask have imported inspect; the others pay nothing). Names that are not a valid
    parameter list give `(*args, **kwargs)`: they came from the program."""

    def __init__(self, fetch):
        self._fetch = fetch  # -> (params [(name, kind)], defaults {position: value}, annotations)

    @property
    def __signature__(self):
        import inspect

        p = inspect.Parameter
        params, defaults, annotations = self._fetch()
        try:
            return inspect.Signature(
                [p(name, kind, default=defaults.get(i, p.empty), annotation=annotations.get(name, p.empty))
                 for i, (name, kind) in enumerate(params)],
                return_annotation=annotations.get("return", inspect.Signature.empty))
        except (ValueError, TypeError):
            return inspect.Signature([p("args", p.VAR_POSITIONAL), p("kwargs", p.VAR_KEYWORD)])


class Default:
    """A default value that is not plain data, shown by its repr in a signature."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text
