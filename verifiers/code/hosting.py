"""The program's side of the channel (in the program's process C): its objects, hosted for the judge.

Loaded by path inside the sandbox (standard library only). Everything here runs in the
program's process, next to the program's code, so nothing here is trusted and nothing is
worth forging: what it sends the judge is data the judge decodes strictly (`channel.py`).

What crosses to the judge (`encode_hook`), besides plain data:

* an instance of a class whose name the tests define too (`trust`: the prompt's `TreeNode`,
  say): `{"$obj": [class name, attribute state]}`; the judge builds its own class's instance;
* a class: `{"$ref": {"id", "k": "cls", "c": description}}`; an iterator: `{"$ref": {"id", "k":
  "iter"}}`; a function or method: `{"$ref": {"id", "k": "fn", "n", "doc", "sig"}}`; any other
  object: `{"$ref": {"id", "k": "obj", "c": description}}`, its class described once (name,
  module, bases, method, operator and property names: `describe_class`);
* a module: `{"$module": name}`; an exception: `{"$exc": description}` (`describe`).

Ops it serves beyond `call`, `method` and `next`: `get`/`set` an attribute, `state` (the
attribute values of an object and of the program objects they reach, for the judge's cache),
`globals` (the program's values of names the tests use), `signature` (of a function, for
`inspect.signature`), `trust` (the judge's class names).
"""

from __future__ import annotations

import functools
import os
import sys
import types

try:
    import _sandbox_channel as channel  # in the sandbox: loaded by path by the fork server
    import _sandbox_wire as wire
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code import channel, wire

WireError = wire.WireError
MAX_STATE_OBJECTS = 2000    # objects whose state one `state` request returns
# Operators a program class may define that the judge forwards (see `proxies.Remote`).
OPERATORS = ("__len__", "__iter__", "__next__", "__getitem__", "__setitem__", "__delitem__", "__contains__",
             "__str__", "__repr__", "__bool__", "__call__", "__lt__", "__le__", "__gt__", "__ge__", "__add__",
             "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
             "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__neg__", "__pos__", "__abs__",
             "__int__", "__float__", "__index__", "__enter__", "__exit__", "__reversed__", "__matmul__", "__and__",
             "__or__", "__xor__", "__invert__", "__round__")
_ROUTINES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType,
             types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType,
             functools.partial)


def state(obj) -> dict:
    """An object's attributes (its `__dict__` and its slots), read without running its code."""
    found = {}
    try:
        found.update(object.__getattribute__(obj, "__dict__"))
    except (AttributeError, TypeError):
        pass
    for cls in type(obj).__mro__:
        slots = vars(cls).get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if isinstance(name, str) and name not in ("__dict__", "__weakref__"):
                try:
                    found[name] = object.__getattribute__(obj, name)
                except AttributeError:
                    pass
    return found


def set_state(obj, values: dict) -> None:
    """Set plain attributes; never a dunder (`__class__`, `__dict__`) the other side named."""
    for name, value in values.items():
        if type(name) is not str or name.startswith("__"):
            continue
        try:
            object.__setattr__(obj, name, value)
        except (AttributeError, TypeError):
            pass


def is_iterator(value) -> bool:
    t = type(value)
    return hasattr(t, "__next__") and hasattr(t, "__iter__") and not isinstance(value, type)


class JudgeFunction:
    """In the program's process: a callable the tests passed (a callback, a key function),
    hosted by the judge; a call crosses to the judge, which runs it on plain data."""

    def __init__(self, chan, handle: int, name: str):
        self._chan, self._h, self.__name__ = chan, handle, name
        self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        return self._chan.call({"op": "call", "to": self._h}, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__}>"


class ProgramSide:
    """The program's policy on the channel (see the module docstring)."""

    def __init__(self, me: int, program_globals: dict, limits: dict):
        self.me, self.globals, self.limits = me, program_globals, limits
        self.trusted: set = set()         # class names the tests define (`trust`)
        self.described: set = set()       # handles of classes already described to the judge
        self.synthesized: dict = {}       # class name -> a class made for a `$obj` of the judge's
        self.refs: list | None = None     # objects met while encoding a `state` reply
        self.chan: channel.Channel | None = None

    def after_code(self) -> None:
        """A process the program forked, falling out of the program into this code, must not answer."""
        if os.getpid() != self.me:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # noqa: BLE001 - the program may have replaced the streams
                    pass
            os._exit(0)

    # ------------------------------------------------------------------ encoding

    def encode_hook(self, enc, value, depth: int, top: bool):
        if isinstance(value, JudgeFunction):
            return {"$yours": value._h}
        if isinstance(value, channel.RemoteIterator):
            return {"$yours": value.handle}
        if isinstance(value, types.ModuleType):
            return {"$module": value.__name__}
        if isinstance(value, BaseException):
            return {"$exc": self.describe(value)}
        t = type(value)
        if isinstance(value, type):
            return {"$ref": {"id": self.chan.host(value), "k": "cls", "c": self.describe_class(value)}}
        if t.__name__ in self.trusted and t.__module__ == "__main__":
            if top:
                enc.number(value)
            return {"$obj": [t.__name__, enc.pairs(state(value), depth + 1)]}
        if is_iterator(value):
            return {"$ref": {"id": self.chan.host(value), "k": "iter"}}
        if isinstance(value, _ROUTINES) or type(value).__name__ == "_lru_cache_wrapper":
            return {"$ref": self.describe_function(value)}
        if self.refs is not None:
            self.refs.append(value)
        return {"$ref": {"id": self.chan.host(value), "k": "obj", "c": self.describe_class(t)}}

    def describe_function(self, fn) -> dict:
        handle = self.chan.host(fn)
        desc = {"id": handle, "k": "fn", "n": str(getattr(fn, "__name__", "function"))[:200]}
        if handle in self.described:
            return desc
        self.described.add(handle)
        doc = getattr(fn, "__doc__", None)
        if isinstance(doc, str):
            desc["doc"] = doc[:self.limits["message_chars"]]
        return desc  # its signature only when the judge asks (`signature` op): reading it costs

    def signature(self, fn) -> list | None:
        """[[name, kind (0-4, as inspect's), default?, annotation?], ...], read from the code
        object (no `inspect`: its import costs milliseconds), or None."""
        bound = isinstance(fn, types.MethodType)
        func = fn.__func__ if bound else getattr(fn, "__wrapped__", fn)
        code = getattr(func, "__code__", None)
        if not isinstance(code, types.CodeType):
            return None
        n, kwonly, names = code.co_argcount, code.co_kwonlyargcount, code.co_varnames
        defaults, kwdefaults = func.__defaults__ or (), func.__kwdefaults__ or {}
        annotations = func.__annotations__ if isinstance(getattr(func, "__annotations__", None), dict) else {}
        params = [[name, 0 if i < code.co_posonlyargcount else 1, *self._default(defaults, i - (n - len(defaults)))]
                  for i, name in enumerate(names[:n])]
        if code.co_flags & 0x04:
            params.append([names[n + kwonly], 2])
        params += [[name, 3, *self._default([kwdefaults[name]] if name in kwdefaults else [], 0)]
                   for name in names[n:n + kwonly]]
        if code.co_flags & 0x08:
            params.append([names[n + kwonly + bool(code.co_flags & 0x04)], 4])
        for param in params:
            if param[0] in annotations:
                param += [None] * (3 - len(param)) + [_annotation(annotations[param[0]])]
        ret = [_annotation(annotations["return"])] if "return" in annotations else []
        return [params[1:] if bound else params, *ret]

    @staticmethod
    def _default(defaults, i: int) -> list:
        if not 0 <= i < len(defaults):
            return []
        try:
            return [{"$default": wire.to_wire(defaults[i])}]
        except (WireError, RecursionError):
            return [{"$default": {"$repr": _safe_repr(defaults[i])}}]

    def describe_class(self, cls, depth: int = 0):
        """A class for the judge: its handle once described, else its description."""
        if cls.__module__ == "builtins" or depth > 20:
            return {"std": f"builtins.{cls.__qualname__}" if cls.__module__ == "builtins" else "builtins.object"}
        handle = self.chan.host(cls)
        if handle in self.described:
            return handle
        self.described.add(handle)
        mro = [k for k in cls.__mro__ if k is not object]
        defined = {name: value for k in reversed(mro) for name, value in vars(k).items()}
        return {"id": handle, "n": str(cls.__name__), "q": str(cls.__qualname__), "m": str(cls.__module__),
                "b": [self.describe_class(b, depth + 1) for b in cls.__bases__ if b is not object],
                "x": issubclass(cls, BaseException),
                "f": sorted(name for name, v in defined.items() if not name.startswith("__")
                            and (callable(v) or isinstance(v, (classmethod, staticmethod)))),
                "d": [name for name in OPERATORS if name in defined],
                "p": sorted(name for name, v in defined.items() if hasattr(type(v), "__set__")
                            or isinstance(v, property))}

    def describe(self, exc: BaseException) -> dict:
        """An exception for the judge: its class, `args` as data, its text, plain attributes."""
        t = type(exc)
        cls = {"std": f"{t.__module__}.{t.__qualname__}", "b": [self.describe_class(b) for b in t.__bases__]} \
            if t.__module__ != "__main__" else self.describe_class(t)
        desc = {"c": cls, "s": _safe_str(exc)[:self.limits["message_chars"]]}
        plain = wire.Encoder(self.encode_hook, max_depth=self.limits["max_depth"])
        try:
            desc["a"] = plain.encode(list(exc.args))
        except (WireError, RecursionError, TypeError):
            desc["a"] = [desc["s"]]
        attributes = {k: v for k, v in list(getattr(exc, "__dict__", {}).items())[:20] if not k.startswith("__")}
        try:
            desc["d"] = plain.pairs(attributes, 1)
        except (WireError, RecursionError):
            pass
        return desc

    # ------------------------------------------------------------------ decoding

    def decode_hook(self, dec, tag: str, body, depth: int):
        if tag == "$ref" and type(body) is dict and body.get("k") == "fn":
            return JudgeFunction(self.chan, body["id"], str(body.get("n", "callback")))
        if tag == "$ref" and type(body) is dict and body.get("k") == "iter":
            return channel.RemoteIterator(self.chan, body["id"])
        if tag == "$yours":
            return self.chan.hosted_object({"to": body})
        if tag == "$obj":
            return self._instance(dec, body, depth)
        if tag == "$module":
            import importlib

            return importlib.import_module(body)
        if tag == "$exc":
            return self.rebuild(dec, body)
        raise WireError(f"unknown tag {tag[:40]!r}")

    def _instance(self, dec, body, depth: int):
        """An instance of the program's class of that name (or of a class made for it)."""
        name = body[0]
        cls = self.globals.get(name)
        if not isinstance(cls, type):
            cls = self.synthesized.setdefault(name, type(name, (), {"__module__": "__main__"}))
        try:
            obj = object.__new__(cls)
        except TypeError:
            obj = object.__new__(self.synthesized.setdefault(name, type(name, (), {"__module__": "__main__"})))
        dec.number(obj)
        set_state(obj, dict(dec.pairs(body[1], depth, "$obj")))
        return obj

    def restore_object(self, obj, new) -> None:
        set_state(obj, state(new))

    state = staticmethod(state)

    def rebuild(self, dec, desc: dict) -> BaseException:
        """The judge's exception (raised in a callback) as one the program can catch."""
        cls = self._exception_class(desc.get("c"))
        args = tuple(dec.decode(desc.get("a", [])))
        try:
            exc = cls.__new__(cls, *args)
            exc.args = args
        except Exception:  # noqa: BLE001 - a class that wants other arguments
            exc = Exception(*args)
        for name, value in dec.pairs(desc.get("d", []), 0, "attributes"):
            try:
                setattr(exc, name, value)
            except (AttributeError, TypeError):
                pass
        return exc

    def _exception_class(self, ref, depth: int = 0):
        if isinstance(ref, int):
            cls = self.chan.hosted.get(ref)
            return cls if isinstance(cls, type) and issubclass(cls, BaseException) else Exception
        ref = ref if isinstance(ref, dict) else {}
        module, _, name = str(ref.get("std", "")).rpartition(".")
        found = getattr(sys.modules.get(module), name, None) if module else None
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
        bases = tuple(b for b in (self._exception_class(b, depth + 1) for b in ref.get("b", [])[:8] if depth < 10)
                      if issubclass(b, BaseException)) or (Exception,)
        try:
            return type(name or str(ref.get("n", "Error")), bases, {"__module__": module or "__main__"})
        except TypeError:
            return bases[0]

    # ------------------------------------------------------------------ the judge's requests

    def serve(self, chan, msg: dict):
        op = msg.get("op")
        if op == "trust":
            self.trusted = {n for n in msg.get("names", []) if isinstance(n, str)}
            return None
        if op == "globals":
            enc = chan.encoder()
            names = [n for n in msg.get("names", []) if isinstance(n, str) and n in self.globals]
            return {"ok": [[n, enc.encode(self.globals[n])] for n in names]}
        if op == "state":
            return {"ok": self._states(chan, chan.hosted_object(msg))}
        if op == "signature":
            return {"ok": self.signature(chan.hosted_object(msg))}
        try:
            obj = chan.hosted_object(msg)
            if op == "get":
                value = getattr(obj, str(msg.get("name")))
            elif op == "set":
                value = setattr(obj, str(msg.get("name")), chan.decoder().decode(msg.get("v")))
            else:
                raise WireError(f"unknown op {str(op)[:20]!r}")
        except BaseException as exc:  # noqa: BLE001 - it crosses to the judge
            self.after_code()
            return {"x": self.describe(exc)}
        self.after_code()
        try:
            return {"ok": chan.encoder().encode(value)}
        except (WireError, RecursionError) as exc:
            return {"x": self.describe(TypeError(f"the attribute cannot cross to the tests: {exc}"))}

    def _states(self, chan, first) -> list:
        """[[handle, attribute pairs], ...] of `first` and the program objects its attributes reach."""
        enc, out, seen = chan.encoder(), [], set()
        self.refs = [first]
        while self.refs and len(out) < MAX_STATE_OBJECTS:
            obj = self.refs.pop(0)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            try:
                pairs = enc.pairs(state(obj), 1)
            except (WireError, RecursionError):
                pairs = []
            out.append([chan.host(obj), pairs])
        self.refs = None
        return out


def _annotation(value) -> str:
    if isinstance(value, type) and value.__module__ == "builtins":
        return value.__name__
    return value if isinstance(value, str) else _safe_repr(value)


def _safe_repr(value) -> str:
    try:
        return repr(value)[:200]
    except BaseException:  # noqa: BLE001 - a program's __repr__ may raise anything
        return "<unprintable>"


def _safe_str(value) -> str:
    try:
        return str(value)
    except BaseException:  # noqa: BLE001 - a program's __str__ may raise anything
        return "<unprintable>"

