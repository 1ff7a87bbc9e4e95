"""Host memory that one hostile sample can hold in the code sandbox, per memory mode.

    sudo python benchmarks/bench_sandbox_memory.py [--memory-mb 256] [--json out.json]

Each attack is an `io` program that, in its process and up to 15 children, holds as much
kernel memory as it can and prints how many bytes it pinned: TCP buffers (loopback
sender/receiver pairs), Unix-socket buffers (socketpairs), pipe buffers, and tmpfs pages
(/tmp and /dev/shm). `tests/verifiers/test_code_forgery.py` runs the same programs as attacks. Kernel
buffers belong to no process, so neither `RLIMIT_AS` nor the resident size of the processes
sees them.

How the host side is measured: this script moves itself into a fresh memory cgroup of its
own (not capped; it needs root and a cgroup v1 memory hierarchy), so every process of every
sandbox it starts is charged there, sample cgroups included (they are made under it). For
each sample it resets the cgroup's peak (`memory.max_usage_in_bytes`, which counts pages,
page cache, tmpfs, and the kernel memory v1 charges: slab, pipe and Unix-socket buffers) and
reads it after the verdict, less the peak of an honest sample run the same way just before.
TCP buffers are charged to no cgroup unless v1's TCP accounting is on for that very cgroup,
so they are measured host-wide instead: the peak of the kernel's TCP page count
(`/proc/net/sockstat`, "TCP ... mem", which is not per network namespace), sampled every
10 ms during the sample, less its value before, is added. The memory cap is `--memory-mb`
per sample, with the other limits at their defaults (`tmp_size_mb` 64, `open_files` 256,
`max_processes` 16).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Each attack leaves the bytes it holds in `pinned` (TARGET at most); `REPORT` prints them.
PIN = """
import os, socket
TARGET = 4 << 30
def pin_all(make):
    pinned, held = 0, []
    try:
        while pinned < TARGET:
            writers = make()
            held.append(writers)
            for write in writers:
                try:
                    while True:
                        pinned += write(b"x" * 65536)
                except BlockingIOError:
                    pass
    except OSError:  # out of descriptors, or refused
        pass
    return pinned, held
def fan_out(make):
    ends = []
    for _ in range(15):
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            os.write(w, str(pin_all(make)[0]).encode())
            os.read(r, 1)  # holds what it pinned until the program ends
            os._exit(0)
        os.close(w)
        ends.append(r)
    mine = pin_all(make)
    return sum(int(os.read(r, 64) or 0) for r in ends) + mine[0]
def nonblocking(*ends):
    for end in ends:
        end.setblocking(False)
    return [end.send for end in ends]
def tcp_pair():
    server = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(server.getsockname())
    return nonblocking(a, server.accept()[0])
def pipe():
    r, w = os.pipe()
    os.set_blocking(w, False)
    return [lambda data: os.write(w, data)]
"""
FILL = """
import errno, os
TARGET = 4 << 30
def fill(folder):
    global pinned
    for i in range(1 << 20):
        fd = os.open(f"{folder}/fill{i}", os.O_WRONLY | os.O_CREAT)
        try:
            while pinned < TARGET:
                pinned += os.write(fd, b"x" * (1 << 20))
            return
        except OSError as e:
            if e.errno != errno.EFBIG:  # past file_size_mb: the next file; else the folder is full
                return
        finally:
            os.close(fd)
pinned = 0
for folder in ("/tmp", "/dev/shm"):
    fill(folder)
"""
ATTACKS = {
    "tcp": PIN + "pinned = fan_out(tcp_pair)\n",
    "unix": PIN + "pinned = fan_out(lambda: nonblocking(*socket.socketpair()))\n",
    "pipes": PIN + "pinned = fan_out(pipe)\n",
    "tmpfs": FILL,
}
REPORT = "print(pinned)\n"
HONEST = "print(sum(range(1000)))"


def tcp_bytes() -> int:
    """The host's TCP buffer memory (pages counted against net.ipv4.tcp_mem), in bytes."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                words = line.split()
                return int(words[words.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


class Meter:
    """A memory cgroup of our own, holding this process and all it starts."""

    def __init__(self):
        own = next(line.split(":", 2)[2].strip() for line in open("/proc/self/cgroup") if ":memory:" in line)
        self.path = f"/sys/fs/cgroup/memory{own}/verirl-bench-{secrets.token_hex(4)}"
        os.mkdir(self.path)
        self._write("cgroup.procs", os.getpid())

    def _write(self, name: str, value) -> None:
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def _read(self, name: str) -> int:
        with open(os.path.join(self.path, name)) as f:
            return int(f.read())

    def reset(self) -> None:
        self._write("memory.max_usage_in_bytes", 0)
        self.tcp_base = self.tcp_peak = tcp_bytes()
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample_tcp, daemon=True)
        self._sampler.start()

    def _sample_tcp(self) -> None:
        while self._sampling:
            self.tcp_peak = max(self.tcp_peak, tcp_bytes())
            time.sleep(0.01)

    def peak(self) -> int:
        self._sampling = False
        self._sampler.join()
        return self._read("memory.max_usage_in_bytes") + max(0, self.tcp_peak - self.tcp_base)

    def close(self) -> None:
        parent = os.path.dirname(self.path)
        with open(os.path.join(parent, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        for _ in range(100):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.05)


def measure(meter: Meter, mode: str, memory_mb: int) -> dict:
    from verifiers import Task, get_verifier

    task = Task(id="pin", prompt="", tests={"kind": "io", "cases": [{"stdin": "", "stdout": "never"}]})
    rows = {}
    with get_verifier("code", workers=1, memory_mode=mode, memory_mb=memory_mb, time_limit=20,
                      wall_time_limit=120) as v:
        for name, program in [("honest", HONEST), *((k, a + REPORT) for k, a in ATTACKS.items())]:
            v.verify(HONEST, task)  # the worker is up, and the honest sample's pages are warm
            meter.reset()
            verdict = v.verify(program, task)
            peak = meter.peak()
            if name == "honest":
                base = peak
            out = verdict.info.get("stdout", "").strip()
            rows[name] = {"status": verdict.info["status"], "mode": verdict.info.get("memory_mode") or mode,
                          "pinned_mib": round(int(out) / 2**20, 1) if out.isdigit() else None,
                          "host_mib": round((peak - base) / 2**20, 1), "error": verdict.info.get("error", "")[:80]}
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--modes", default="cgroup,rlimit")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup/memory"):
        raise SystemExit("needs root and a cgroup v1 memory hierarchy (to measure)")
    meter = Meter()
    try:
        report = {mode: measure(meter, mode, args.memory_mb) for mode in args.modes.split(",")}
    finally:
        meter.close()
    print("| memory_mode | attack | verdict | pinned, as the program counts (MiB) "
          "| host memory above an honest sample (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for mode, rows in report.items():
        for name, row in rows.items():
            if name != "honest":
                print(f"| {mode} | {name} | {row['status']} | {row['pinned_mib']} | {row['host_mib']} |")
    print(f"\nmemory_mb={args.memory_mb}; load average {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"memory_mb": args.memory_mb, "report": report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
