"""The channel between the judge S and the program's process C: requests, replies, handles.

Loaded by path inside the sandbox (standard library only). Each side hosts objects for the
other and answers its requests; what differs is the policy (`side`): the judge's
(`proxies.JudgeSide`) builds proxies for the program's objects and never runs the program's
code; the program's (`hosting.ProgramSide`) runs it. Messages are a 4-byte big-endian
length and JSON (`wire.py`), at most `reply_bytes` long. The requests, and their replies:

* `{"op": "call", "to": h, "a": [args], "k": [[name, value]]}`: call hosted `h`; reply
  `{"ok": value, "m": [...]}` or `{"x": exception, "m": [...]}`.
* `{"op": "method", "to": h, "name": s, "a", "k"}`: call method `s` of hosted `h`; the same reply.
* `{"op": "next", "to": h, "n": k}`: up to `k` items of hosted iterator `h`; reply
  `{"ok": [items], "end": true?, "x": exception?}`.
* `{"op": "get" / "set", "to": h, "name": s, "v": value}`, `{"op": "state", "to": h}`,
  `{"op": "globals", "names": [...]}`, `{"op": "trust", "names": [...]}`: the program's
  objects, for the judge (`hosting.py`); reply `{"ok": value}` (`trust`: none).

Arguments keep identities (`wire.Encoder(identities=True)`): each mutable container is
numbered, and after the call the host sends `m`, the new contents of every numbered
container the call changed (`[number, body]`); the caller writes them back into its own
objects, in place, before it decodes the return value (which may name them: `{"$same": n}`,
so `candidate(a) is a` holds). While a side waits for its reply it answers the other's
requests (a callback from the program, a call of the candidate from that callback).
"""

from __future__ import annotations

import _thread
import os
import struct
from collections import OrderedDict, defaultdict, deque

try:
    import _sandbox_decoder as decoder  # in the sandbox: loaded by path by the fork server
    import _sandbox_wire as wire
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code import decoder, wire

WireError = wire.WireError
MAX_CHUNK = 4096       # items of an iterator fetched in one request, at most


class Gone(BaseException):
    """The other side hung up (or died). A BaseException: a program's `except Exception`
    around a callback must not keep it alive once the judge has gone."""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, min(n - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def send(fd: int, obj, dumps) -> None:
    data = dumps(obj, separators=(",", ":")).encode()
    write_all(fd, struct.pack(">I", len(data)) + data)


def recv(fd: int, max_bytes: int):
    """One message, or None at end of stream; `WireError` on anything malformed."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    size = struct.unpack(">I", head)[0]
    if size > max_bytes:
        raise WireError(f"a message of {size} bytes, more than the {max_bytes} allowed")
    body = _read_exact(fd, size)
    if body is None:
        return None
    tree = wire.loads(body, max_bytes)
    if type(tree) is not dict:
        raise WireError("a message that is not an object")
    return tree


class Channel:
    """One end of the channel; `side` is the policy (see the module docstring)."""

    def __init__(self, send_fd: int, recv_fd: int, side, limits: dict, dumps):
        self.send_fd, self.recv_fd, self.side, self.dumps = send_fd, recv_fd, side, dumps
        self.max_bytes, self.max_depth = int(limits["reply_bytes"]), int(limits["max_depth"])
        self.lock = _thread.RLock()  # one exchange at a time; a nested one in the same thread
        self.hosted: dict = {}          # handle -> object hosted for the other side
        self.handles: dict = {}         # id(object) -> handle
        self.epoch = 0                  # counts exchanges that ran the other side's code

    def host(self, obj) -> int:
        handle = self.handles.get(id(obj))
        if handle is None:
            handle = self.handles[id(obj)] = len(self.hosted) + 1
            self.hosted[handle] = obj  # kept alive: the handle stays valid, the id unique
        return handle

    def hosted_object(self, msg: dict):
        handle = msg.get("to")
        if type(handle) is not int or handle not in self.hosted:
            raise WireError(f"no such handle: {str(handle)[:20]}")
        return self.hosted[handle]

    def encoder(self, objects=()) -> wire.Encoder:
        return wire.Encoder(self.side.encode_hook, True, self.max_depth, objects)

    def decoder(self, objects=None) -> decoder.Decoder:
        return decoder.Decoder(self.side.decode_hook, True, objects, self.max_depth)

    # ------------------------------------------------------------------ our requests

    def request(self, msg: dict) -> dict:
        """Send a request and return its reply, answering the other side's requests meanwhile."""
        with self.lock:
            try:
                send(self.send_fd, msg, self.dumps)
            except OSError:
                raise Gone() from None
            return self.receive()

    def receive(self) -> dict:
        """The next reply, answering the other side's requests meanwhile."""
        with self.lock:
            while True:
                try:
                    reply = recv(self.recv_fd, self.max_bytes)
                except OSError:
                    reply = None
                if reply is None:
                    raise Gone()
                if "op" not in reply:
                    return reply
                self.serve(reply)

    def call(self, target: dict, args: tuple, kwargs: dict):
        """Call a hosted callable (`{"op": "call", "to": h}`) or method, and return its value."""
        enc = self.encoder()
        msg = {**target, "a": [enc.encode(v) for v in args], "k": [[str(k), enc.encode(v)] for k, v in kwargs.items()]}
        reply = self.request(msg)
        self.epoch += 1
        return self.finish(reply, enc.objects)

    def finish(self, reply: dict, objects: list):
        """Write the mutations back, then return the value or raise the exception."""
        dec = self.decoder(list(objects))
        self.write_back(dec, objects, reply.get("m", []))
        if "x" in reply:
            raise self.side.rebuild(dec, reply["x"])
        if "ok" not in reply:
            raise WireError("a reply with neither a value nor an exception")
        return dec.decode(reply["ok"])

    def write_back(self, dec, objects: list, changes) -> None:
        if type(changes) is not list:
            raise WireError("malformed mutations")
        done = set()
        for change in changes:
            if type(change) is not list or len(change) != 2 or type(change[0]) is not int \
                    or not 0 <= change[0] < len(objects) or change[0] in done:
                raise WireError("malformed mutation")
            done.add(change[0])
            restore(objects[change[0]], dec.body(change[1]), self.side)

    def next_items(self, handle: int, n: int) -> tuple[list, bool, BaseException | None]:
        """Up to `n` items of a hosted iterator: (items, ended, the exception it raised after them)."""
        reply = self.request({"op": "next", "to": handle, "n": n})
        self.epoch += 1
        dec = self.decoder()
        items = dec.decode(reply.get("ok"))
        if type(items) is not list or len(items) > n:
            raise WireError("malformed items")
        return items, reply.get("end") is True, self.side.rebuild(dec, reply["x"]) if "x" in reply else None

    # ------------------------------------------------------------------ their requests

    def serve(self, msg: dict) -> None:
        op = msg.get("op")
        if op in ("call", "method"):
            reply = self.serve_call(msg)
        elif op == "next":
            reply = self.serve_next(msg)
        else:
            reply = self.side.serve(self, msg)
        if reply is not None:
            try:
                send(self.send_fd, reply, self.dumps)
            except OSError:
                raise Gone() from None

    def serve_call(self, msg: dict) -> dict:
        target = self.hosted_object(msg)
        args, kwargs, objects = wire.room(self._arguments, self.max_depth, msg)
        before = [snapshot(o, self.side) for o in objects]
        value, exc = None, None
        try:
            fn = target if msg["op"] == "call" else getattr(target, str(msg.get("name")))
            value = fn(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - it crosses to the caller
            exc = error
        self.side.after_code()
        return wire.room(self._reply, self.max_depth, objects, before, value, exc)

    def _arguments(self, msg: dict) -> tuple[list, dict, list]:
        dec = self.decoder()
        args = dec.items(msg.get("a"), 0, "arguments")
        kwargs = {k: dec.decode(v) for k, v in _pairs(msg.get("k"))}
        return args, kwargs, dec.objects

    def _reply(self, objects: list, before: list, value, exc: BaseException | None) -> dict:
        enc = self.encoder(objects)
        changes = [[n, enc.body(o)] for n, o in enumerate(objects) if snapshot(o, self.side) != before[n]]
        if exc is None:
            try:
                return {"ok": enc.encode(value), "m": changes}
            except (WireError, RecursionError) as error:
                exc = TypeError(f"the return value cannot cross to the tests: {error}")
        return {"x": self.side.describe(exc), "m": changes}

    def serve_next(self, msg: dict) -> dict:
        iterator = self.hosted_object(msg)
        n = msg.get("n") if type(msg.get("n")) is int else 1
        items, reply = [], {}
        try:
            for _ in range(max(1, min(n, MAX_CHUNK))):
                items.append(next(iterator))
        except StopIteration:
            reply["end"] = True
        except BaseException as exc:  # noqa: BLE001 - raised on the other side, after the items
            reply["x"] = self.side.describe(exc)
        self.side.after_code()
        try:
            reply["ok"] = self.encoder().encode(items)
        except (WireError, RecursionError) as error:
            reply = {"ok": [], "x": self.side.describe(TypeError(f"an item cannot cross to the tests: {error}"))}
        return reply


class RemoteIterator:
    """An iterator hosted by the other side, fetched lazily in chunks of 1, 2, 4, ... `MAX_CHUNK`
    items, so that `next()` on an endless generator costs one item and `list()` of a long one
    a few requests. What the iterator raises comes after the items before it; then it ends,
    as a generator does. (So the host may run up to twice as far ahead as the consumer.)"""

    def __init__(self, chan: Channel, handle: int):
        self.chan, self.handle = chan, handle
        self._items: deque = deque()
        self._end, self._exc, self._chunk = False, None, 1

    def __iter__(self):
        return self

    def __next__(self):
        while not self._items:
            if self._exc is not None:
                exc, self._exc, self._end = self._exc, None, True
                raise exc
            if self._end:
                raise StopIteration
            items, self._end, self._exc = self.chan.next_items(self.handle, self._chunk)
            self._chunk = min(2 * self._chunk, MAX_CHUNK)
            self._items.extend(items)
        return self._items.popleft()


def _pairs(body) -> list:
    if type(body) is not list or not all(type(p) is list and len(p) == 2 and type(p[0]) is str for p in body):
        raise WireError("malformed keyword arguments")
    return body


def snapshot(obj, side):
    """What tells whether a call changed a numbered container: its contents, one level deep
    (a nested container is numbered and has its own), compared after the call by identity
    first, then `==` (C's lists, dicts and tuples do both in one pass)."""
    if isinstance(obj, (list, deque)):
        return list(list.__iter__(obj) if isinstance(obj, list) else deque.__iter__(obj))
    if isinstance(obj, dict):
        return getattr(obj, "default_factory", None), list(dict.items(obj))
    if isinstance(obj, set):
        return set(set.__iter__(obj))
    if isinstance(obj, bytearray):
        return bytes(obj)
    if type(obj).__name__ == "ndarray":
        return obj.shape, obj.dtype.str, obj.tobytes()
    return list(side.state(obj).items())


def restore(obj, new, side) -> None:
    """Write a container's new contents back into it, in place (its identity kept)."""
    if isinstance(obj, list) and type(new) is list:
        list.__setitem__(obj, slice(None), new)
    elif isinstance(obj, OrderedDict) and isinstance(new, dict):
        OrderedDict.clear(obj)
        OrderedDict.update(obj, new)
    elif isinstance(obj, dict) and isinstance(new, dict):
        dict.clear(obj)
        dict.update(obj, new)
        if isinstance(obj, defaultdict) and isinstance(new, defaultdict):
            obj.default_factory = new.default_factory
    elif isinstance(obj, set) and isinstance(new, (set, frozenset)):
        set.clear(obj)
        set.update(obj, new)
    elif isinstance(obj, bytearray) and isinstance(new, (bytes, bytearray)):
        bytearray.__setitem__(obj, slice(None), new)
    elif isinstance(obj, deque) and isinstance(new, deque):
        deque.clear(obj)
        deque.extend(obj, new)
    elif type(obj).__name__ == "ndarray" and type(new).__name__ == "ndarray" and obj.shape == new.shape:
        obj[...] = new
    else:
        side.restore_object(obj, new)
