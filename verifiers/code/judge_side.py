"""The judge's policy on the channel (in the judge S): what the program's replies become (proxies,
classes, exceptions) and what of the tests' crosses to the program.

Loaded by path inside the sandbox (standard library only). Decoding builds only proxies
(`proxies.py`) and the tests' own classes' instances from the program's plain data; the
program's code never runs here. Exceptions come back as their own class where that class is
the standard library's (by qualified name, `EXCEPTION_MODULES`) and otherwise as a class of
the same name made here from the builtin classes it derives from, so `except ValueError`
catches a program's `ValueError` subclass; `args` are plain data, the text the program's
`str()` gave, up to `message_chars`. StopIteration and StopAsyncIteration from a call become
RuntimeError (PEP 479), and a BaseException that is not an Exception (SystemExit) ends the
tests (`judging.Broken`).
"""

from __future__ import annotations

import importlib
import types

try:
    import _sandbox_channel as channel  # in the sandbox: loaded by path by the fork server
    import _sandbox_hosting as hosting
    import _sandbox_judging as judging
    import _sandbox_proxies as proxies
    import _sandbox_wire as wire
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code import channel, hosting, judging, proxies, wire

WireError = wire.WireError
# Modules whose exception classes the judge raises as themselves.
EXCEPTION_MODULES = frozenset({
    "builtins", "json", "json.decoder", "decimal", "fractions", "re", "struct", "statistics", "queue", "csv",
    "binascii", "zlib", "copy", "calendar", "math", "itertools", "functools", "collections", "heapq", "bisect",
    "string", "datetime", "textwrap", "operator", "random", "typing", "ast", "shlex", "subprocess", "socket",
    "concurrent.futures", "concurrent.futures._base", "asyncio", "asyncio.exceptions", "unicodedata", "enum",
    "numpy", "numpy.exceptions", "numpy.linalg", "numpy.core._exceptions", "numpy._core._exceptions"})



class JudgeSide:
    """The judge's policy on the channel (see the module docstring)."""

    def __init__(self, limits: dict):
        self.limits = limits
        self.chan = None            # the judge's JudgeChannel (judging.py), once the program is ready
        self.proxies: dict = {}     # handle -> the proxy of a program object (one per handle)
        self.handles: dict = {}     # id(proxy) -> handle
        self.classes: dict = {}     # handle -> the judge's class for a program class
        self.trusted: dict = {}     # class name -> a class the setup or tests define
        self.made: dict = {}        # qualified name -> an exception class made here

    def after_code(self) -> None:
        pass

    def trust(self, namespace: dict) -> None:
        """Tell the program which class names are the tests' own: their instances cross as state."""
        self.trusted = {k: v for k, v in namespace.items() if isinstance(v, type) and v.__module__ == "__main__"}
        if self.trusted:
            try:
                channel.send(self.chan.send_fd, {"op": "trust", "names": sorted(self.trusted)}, self.chan.dumps)
            except OSError:
                pass  # the program is gone: the next request says so

    def serve(self, chan, msg: dict):
        raise WireError(f"the program may only call back, not {str(msg.get('op'))[:20]!r}")

    # ------------------------------------------------------------------ encoding

    def encode_hook(self, enc, value, depth: int, top: bool):
        handle = self.handles.get(id(value))
        if handle is not None and self.proxies.get(handle) is value:
            return {"$yours": handle}
        if isinstance(value, types.ModuleType):
            return {"$module": value.__name__}
        if isinstance(value, BaseException):
            return {"$exc": self.describe(value)}
        t = type(value)
        if self.trusted.get(t.__name__) is t and not callable(value):
            if top:
                enc.number(value)
            return {"$obj": [t.__name__, enc.pairs(hosting.state(value), depth + 1)]}
        if hosting.is_iterator(value):
            return {"$ref": {"id": self.chan.host(value), "k": "iter"}}
        if callable(value):
            return {"$ref": {"id": self.chan.host(value), "k": "fn", "n": str(getattr(value, "__name__", "callback"))}}
        raise WireError(f"{t.__name__} is not plain data")

    def describe(self, exc: BaseException) -> dict:
        """An exception of a callback, for the program."""
        t = type(exc)
        desc = {"c": self._class_ref(t), "s": str(exc)[:self.limits["message_chars"]]}
        try:
            desc["a"] = wire.Encoder(self.encode_hook, max_depth=self.limits["max_depth"]).encode(list(exc.args))
        except (WireError, RecursionError):
            desc["a"] = [desc["s"]]
        return desc

    def _class_ref(self, t, depth: int = 0) -> dict:
        bases = [self._class_ref(b, depth + 1) for b in t.__bases__ if b is not object] if depth < 10 else []
        return {"std": f"{t.__module__}.{t.__qualname__}", "b": bases}

    # ------------------------------------------------------------------ decoding

    def decode_hook(self, dec, tag: str, body, depth: int):
        if tag == "$ref":
            return self.proxy(body)
        if tag == "$yours":
            return self.chan.hosted_object({"to": body})
        if tag == "$obj":
            return self._instance(dec, body, depth)
        if tag == "$module" and type(body) is str:
            try:
                return importlib.import_module(body)
            except Exception as exc:  # noqa: BLE001 - a module the judge cannot import
                raise WireError(f"module {body[:60]!r} cannot be imported here: {exc}") from None
        if tag == "$exc":
            return self.rebuild(dec, body, raising=False)
        raise WireError(f"unknown tag {tag[:40]!r}")

    def proxy(self, body):
        if type(body) is not dict or type(body.get("id")) is not int:
            raise WireError("malformed $ref")
        handle, kind = body["id"], body.get("k")
        known = self.proxies.get(handle)
        if known is not None:
            return known
        if kind == "fn":
            made = self._function(handle, body)
        elif kind == "cls":
            made = self.judge_class(body.get("c"))
        elif kind == "obj":
            cls = self.judge_class(body.get("c"))
            if not isinstance(cls, proxies.RemoteClass):
                raise WireError("malformed $ref: not a program class")
            made = object.__new__(cls)
            made._verirl_h, made._verirl_state, made._verirl_epoch = handle, {}, -1
        elif kind == "iter":
            made = channel.RemoteIterator(self.chan, handle)
        else:
            raise WireError(f"malformed $ref kind {str(kind)[:20]!r}")
        self.proxies[handle], self.handles[id(made)] = made, handle
        return made

    def _function(self, handle: int, body: dict):
        name, doc = body.get("n", "function"), body.get("doc")
        if type(name) is not str or not (doc is None or type(doc) is str):
            raise WireError("malformed function")
        return proxies.function(handle, name[:200], doc, proxies.LazySignature(lambda: self._signature(handle)))

    def _signature(self, handle: int) -> tuple[list, dict, dict]:
        """The program function's (parameters, defaults by position, annotations), asked of the
        program when a test first calls `inspect.signature`."""
        sig = self.chan.ask({"op": "signature", "to": handle}, raw=True)
        if sig is None:
            return [("args", 2), ("kwargs", 4)], {}, {}
        if type(sig) is not list or not sig or type(sig[0]) is not list:
            raise WireError("malformed signature")
        params, defaults, annotations = [], {}, {}
        for i, p in enumerate(sig[0][:256]):
            if type(p) is not list or len(p) < 2 or type(p[0]) is not str or type(p[1]) is not int:
                raise WireError("malformed parameter")
            params.append((p[0][:200], p[1]))
            if len(p) > 2 and type(p[2]) is dict and "$default" in p[2]:
                defaults[i] = self._default(p[2]["$default"])
            if len(p) > 3:
                annotations[p[0]] = _annotation(p[3])
        if len(sig) > 1:
            annotations["return"] = _annotation(sig[1])
        return params, defaults, annotations

    def _default(self, tree):
        if type(tree) is dict and list(tree) == ["$repr"] and type(tree["$repr"]) is str:
            return proxies.Default(tree["$repr"][:200])
        return wire.decode(tree, self.limits["max_depth"])

    def judge_class(self, ref, depth: int = 0):
        """The judge's class for a program class (made once per handle)."""
        if type(ref) is int:
            if ref not in self.classes:
                raise WireError("malformed class: an unknown handle")
            return self.classes[ref]
        if type(ref) is not dict or depth > 20:
            raise WireError("malformed class")
        if "std" in ref:
            return self._std(ref.get("std")) or object
        desc = _checked_class(ref)
        if desc["id"] in self.classes:
            return self.classes[desc["id"]]
        real = self._std(f"{desc['m']}.{desc['q']}") if desc["m"] != "__main__" else None
        if real is None:
            bases = [self.judge_class(b, depth + 1) for b in desc["b"][:16]]
            real = (_exception_class if desc["x"] else _remote_class)(desc, bases)
        self.classes[desc["id"]] = self.proxies[desc["id"]] = real
        self.handles[id(real)] = desc["id"]
        return real

    def _std(self, qualified) -> type | None:
        """A standard-library class by qualified name, if its module is one the judge trusts."""
        parts = str(qualified).split(".")
        for i in range(len(parts) - 1, 0, -1):  # the longest module prefix: `json.decoder` of `json.decoder.X`
            if ".".join(parts[:i]) in EXCEPTION_MODULES:
                try:
                    found = importlib.import_module(".".join(parts[:i]))
                    for part in parts[i:]:
                        found = getattr(found, part)
                except (ImportError, AttributeError):
                    return None
                return found if isinstance(found, type) else None
        return None

    def rebuild(self, dec, desc, raising: bool = True) -> BaseException:
        """The program's exception, as an exception of the judge (see the module docstring)."""
        if type(desc) is not dict or type(desc.get("s")) is not str:
            raise WireError("malformed exception")
        cls = self._exception_class(desc.get("c"))
        args = dec.decode(desc.get("a", []))
        text = desc["s"][:self.limits["message_chars"]]
        if type(args) is not list:
            raise WireError("malformed exception arguments")
        exc = _instantiate(cls, tuple(args))
        for name, value in dec.pairs(desc.get("d", []), 0, "attributes"):
            if type(name) is str and not name.startswith("__"):
                try:
                    setattr(exc, name, value)
                except (AttributeError, TypeError):
                    pass
        if cls in self.made.values() or cls in self.classes.values():
            exc._verirl_str = text  # a class made here shows the program's own text
        if not raising:
            return exc
        if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt: the tests end
            return judging.Broken(cls.__name__[:100], text, "call")
        if isinstance(exc, (StopIteration, StopAsyncIteration)):
            error = RuntimeError(f"the program raised {cls.__name__}")  # as PEP 479 does in a generator
            error.__cause__ = exc
            return error
        return exc

    def _exception_class(self, ref, depth: int = 0) -> type:
        if type(ref) is int or type(ref) is dict and "id" in ref:
            cls = self.judge_class(ref)
        elif type(ref) is dict and type(ref.get("std")) is str and depth < 10:
            cls = self._std(ref["std"])
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                cls = self.made.get(ref["std"])
            if cls is None:
                bases = [self._exception_class(b, depth + 1) for b in (ref.get("b") or [])[:8]]
                module, _, name = ref["std"].rpartition(".")
                cls = self.made[ref["std"]] = _exception_class({"n": name, "q": name, "m": module, "id": 0}, bases)
        else:
            raise WireError("malformed exception class")
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise WireError("malformed exception class")
        return cls

    def _instance(self, dec, body, depth: int):
        """An instance of the tests' own class, built from the attribute state the program sent."""
        if type(body) is not list or len(body) != 2 or body[0] not in self.trusted:
            raise WireError("malformed $obj")
        cls = self.trusted[body[0]]
        try:
            obj = cls.__new__(cls)
        except TypeError:
            obj = object.__new__(cls)
        dec.number(obj)
        values = dict(dec.pairs(body[1], depth, "$obj"))
        hosting.set_state(obj, {k: v for k, v in values.items() if type(k) is str})
        return obj

    state = staticmethod(hosting.state)

    def restore_object(self, obj, new) -> None:
        if type(new) is not type(obj):
            raise WireError("malformed mutation: another type")
        held = getattr(obj, "__dict__", None)
        if isinstance(held, dict):
            held.clear()
        hosting.set_state(obj, hosting.state(new))


def _checked_class(ref: dict) -> dict:
    ok = (type(ref.get("id")) is int and all(type(ref.get(k)) is str for k in "nqm") and type(ref.get("b")) is list
          and type(ref.get("x")) is bool and all(type(ref.get(k)) is list and all(type(n) is str for n in ref[k])
                                                  for k in "fdp"))
    if not ok:
        raise WireError("malformed class description")
    return ref


def _remote_class(desc: dict, bases: list) -> type:
    ns = {"__module__": desc["m"][:200], "__qualname__": desc["q"][:200], "__slots__": (),
          "_verirl_class_h": desc["id"],
          "_verirl_desc": {"f": frozenset(desc["f"]), "d": list(desc["d"]), "p": frozenset(desc["p"])},
          **proxies.operators(desc["d"])}
    remote_bases = tuple(b for b in bases if isinstance(b, proxies.RemoteClass)) or (proxies.Remote,)
    try:
        return proxies.RemoteClass(desc["n"][:200], remote_bases, ns)
    except TypeError:  # an inconsistent order of bases
        return proxies.RemoteClass(desc["n"][:200], (proxies.Remote,), ns)


def _exception_str(self) -> str:
    text = self.__dict__.get("_verirl_str")
    return text if text is not None else BaseException.__str__(self)


def _exception_class(desc: dict, bases: list) -> type:
    ns = {"__module__": desc["m"][:200], "__qualname__": desc["q"][:200], "__str__": _exception_str,
          "_verirl_h": desc["id"]}
    exception_bases = tuple(b for b in bases if isinstance(b, type) and issubclass(b, BaseException)) or (Exception,)
    for candidates in (exception_bases, exception_bases[:1]):
        try:
            return type(desc["n"][:200], candidates, ns)
        except TypeError:  # bases whose layouts conflict
            continue
    return type(desc["n"][:200], (Exception,), ns)


def _instantiate(cls: type, args: tuple) -> BaseException:
    """An instance with these `args`, without running an `__init__` (the class's own is the
    standard library's or made here: trusted, but it may want other arguments)."""
    for attempt in (args, ()):
        try:
            exc = cls.__new__(cls, *attempt)
            exc.args = args
            return exc
        except Exception:  # noqa: BLE001 - a __new__ that wants other arguments
            continue
    return Exception(*args)


def _annotation(value):
    import builtins

    if value is None or type(value) is not str:
        return None
    if value == "None":
        return None
    found = getattr(builtins, value, None)
    return found if isinstance(found, type) else value
