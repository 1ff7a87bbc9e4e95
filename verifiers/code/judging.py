"""The judge's end of the channel (in the judge S), and the names the tests see.

Loaded by path inside the sandbox (standard library only). Everything the program sends is
decoded strictly (`decoder.py`, with `judge_side.JudgeSide`'s hook); a malformed message, a
hang-up or an argument that cannot cross breaks the channel for good (`Broken`, recorded, so
that a test's `except` cannot hide it). `ProgramNames` gives the tests the program's globals
they use and do not define.
"""

from __future__ import annotations

import collections

try:
    import _sandbox_channel as channel  # in the sandbox: loaded by path by the fork server
    import _sandbox_proxies as proxies
    import _sandbox_wire as wire
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code import channel, proxies, wire

WireError = wire.WireError
class Broken(BaseException):
    """The program's side failed to answer properly. A BaseException, so that a test's
    `except Exception` cannot swallow it; and recorded (`JudgeChannel.broken`), so that nothing can."""

    def __init__(self, exc: str, msg: str, where: str):
        super().__init__(msg)
        self.report = {"exc": exc, "msg": msg, "where": where}


class JudgeChannel(channel.Channel):
    """The judge's end: every failure of the program's side breaks it for good."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.broken: list = []
        self.pending: collections.deque = collections.deque()  # calls sent ahead (`pipeline`)

    def fail(self, exc: str, msg: str, where: str) -> Broken:
        error = Broken(exc, msg[:self.side.limits["message_chars"]], where)
        self.broken.append(error.report)
        return error

    def check(self) -> None:
        if self.broken:
            raise Broken(**self.broken[0])

    def request(self, msg: dict) -> dict:
        self.check()
        self.drain()
        return self._guarded(super().request, msg)

    def _guarded(self, fn, *args):
        try:
            return fn(*args)
        except channel.Gone:
            raise self.fail("Exited", "the program exited before the tests finished", "exited") from None
        except (WireError, RecursionError) as exc:
            raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None

    def pipeline(self, handle: int, calls: list) -> None:
        """Send at once the calls of the entry point the tests will make first, in their order
        (`spec.prefetch_calls`: literal arguments, in straight-line asserts), so that the program
        answers them without a round trip each; `call` then takes their replies in turn."""
        frames = []
        for args, kwargs in calls:
            data = self.dumps({"op": "call", "to": handle, "a": args, "k": kwargs}, separators=(",", ":")).encode()
            frames.append(len(data).to_bytes(4, "big") + data)
            self.pending.append(({"op": "call", "to": handle}, args, kwargs))
        try:
            channel.write_all(self.send_fd, b"".join(frames))  # at most 32 KiB: the pipe takes it at once
        except OSError:
            pass  # the program is gone: the first call's reply says so

    def drain(self) -> None:
        """Take the replies to calls sent ahead that the tests did not make in that order (the
        program ran them: documented in docs/sandbox.md). Each is decoded and dropped: it may
        describe a class that later replies name by its handle."""
        while self.pending:
            _, args, kwargs = self.pending.popleft()
            reply = self._guarded(self.receive)
            self.epoch += 1
            dec = self.decoder()
            try:
                dec.items(args, 0, "arguments")
                for _, value in kwargs:
                    dec.decode(value)
                self.finish(reply, dec.objects)
            except WireError as exc:
                raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None
            except Exception:  # noqa: BLE001 - the program's exception from a call nobody made
                pass

    def call(self, target: dict, args: tuple, kwargs: dict):
        self.check()
        enc = self.encoder()
        try:
            msg = {**target, "a": [enc.encode(v) for v in args],
                   "k": [[str(k), enc.encode(v)] for k, v in kwargs.items()]}
        except (WireError, RecursionError) as exc:
            raise self.fail("NotPlainData", f"an argument is not plain data ({exc}): it cannot cross to the "
                                            "program's process", "argument") from None
        if self.pending and self.pending[0] == (target, msg["a"], msg["k"]):
            self.pending.popleft()  # sent ahead: its reply is on its way, or there
            reply = self._guarded(self.receive)
        else:
            reply = self.request(msg)
        self.epoch += 1
        return self.finish(reply, enc.objects)

    def finish(self, reply: dict, objects: list):
        try:
            return super().finish(reply, objects)
        except (WireError, RecursionError) as exc:
            raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None

    def next_items(self, handle: int, n: int):
        reply = self.request({"op": "next", "to": handle, "n": n})
        self.epoch += 1
        try:
            return self._items(reply, n)
        except (WireError, RecursionError) as exc:
            raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None

    def _items(self, reply: dict, n: int):
        dec = self.decoder()
        items = dec.decode(reply.get("ok"))
        if type(items) is not list or len(items) > n:
            raise WireError("malformed items")
        return items, reply.get("end") is True, self.side.rebuild(dec, reply["x"]) if "x" in reply else None

    def ask(self, msg: dict, raw: bool = False):
        """A request that runs the program's code and answers a value (`get`, `set`); `raw`:
        the answer's tree itself (a signature, which `_signature` checks)."""
        reply = self.request(msg)
        self.epoch += 1
        if raw and "x" not in reply:
            return reply.get("ok")
        return self.finish(reply, [])

    def set_attribute(self, handle: int, name: str, value) -> None:
        try:
            tree = self.encoder().encode(value)
        except (WireError, RecursionError) as exc:
            raise self.fail("NotPlainData", f"a value is not plain data ({exc})", "argument") from None
        self.ask({"op": "set", "to": handle, "name": name, "v": tree})

    def fetch_states(self, remote) -> None:
        """The attribute state of `remote` and of the program objects it reaches, cached until
        the next request that runs the program's code."""
        reply = self.request({"op": "state", "to": remote._verirl_h})
        try:
            dec = self.decoder()
            entries = reply.get("ok")
            if type(entries) is not list:
                raise WireError("malformed states")
            for entry in entries:
                if type(entry) is not list or len(entry) != 2:
                    raise WireError("malformed state")
                values = dict(dec.pairs(entry[1], 0, "state"))
                target = self.side.proxies.get(entry[0])
                if isinstance(target, proxies.Remote) and all(type(k) is str for k in values):
                    target._verirl_state, target._verirl_epoch = values, self.epoch
        except (WireError, RecursionError) as exc:
            raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None
        if remote._verirl_epoch != self.epoch:
            remote._verirl_state, remote._verirl_epoch = {}, self.epoch

    def program_globals(self, names: list) -> dict:
        reply = self.request({"op": "globals", "names": names})
        try:
            found = dict(self.decoder().pairs(reply.get("ok"), 0, "globals"))
        except (WireError, RecursionError) as exc:
            raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None
        return {k: v for k, v in found.items() if k in names}

    def hello(self):
        """The program's first message: (the entry point's proxy, the program's global names)."""
        try:
            msg = channel.recv(self.recv_fd, self.max_bytes)
        except OSError:
            msg = None
        except (WireError, RecursionError) as exc:
            raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None
        if msg is None:
            raise self.fail("Exited", "the program exited before the tests started", "exited")
        failed = msg.get("failed")
        if type(failed) is dict and type(failed.get("exc")) is str and type(failed.get("msg")) is str:
            raise Broken(failed["exc"][:100], failed["msg"][:self.side.limits["message_chars"]], "program")
        ready = msg.get("ready")
        try:
            if type(ready) is not dict or type(ready.get("names")) is not list:
                raise WireError("malformed hello")
            return self.decoder().decode(ready.get("entry")), [n for n in ready["names"] if type(n) is str]
        except (WireError, RecursionError) as exc:
            raise self.fail("WireError", f"malformed reply: {exc}", "wire") from None


class ProgramNames(dict):
    """The builtins of the tests' module, then the program's globals: a name the tests look up
    and define nowhere (a helper the program defines, its class `Pair`) is fetched from the
    program the first time (one request), a proxy for a function or a class. The real builtins
    come first, so a program's `abs` never replaces the tests' (`LOAD_GLOBAL` reads a dict
    subclass of builtins through `__missing__`)."""

    def __init__(self, chan: JudgeChannel, names: list):
        import builtins

        super().__init__(vars(builtins))
        self._chan, self._names = chan, frozenset(names)

    def __missing__(self, name: str):
        if name not in self._names:
            raise KeyError(name)
        found = self._chan.program_globals([name])
        if name not in found:
            raise KeyError(name)
        self[name] = found[name]
        return found[name]
