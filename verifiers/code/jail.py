"""Confinement of one process inside the sandbox: namespaces, mounts, seccomp, capabilities, rlimits.

Loaded by path by the fork server (`forkserver.py`; standard library only). What the
parent binds into the sandbox in the first place is `confine.py`'s job.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import struct

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x20000, 0x8000000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429          # the same number on every architecture
OPEN_TREE_CLONE, AT_EMPTY_PATH, AT_FDCWD, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x1000, -100, 4
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
INNER_ID = 1000        # the program's uid and gid inside its own user namespace


def check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def become(uid: int | None) -> None:
    """Started as root: become the sandbox user (so that RLIMIT_NPROC applies)."""
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)


def map_ids(libc, uid: int, gid: int) -> None:
    """Map our outer uid/gid (the only ones we may map) to INNER_ID in the new user namespace."""
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the id maps of a non-dumpable process belong to root
    for name, text in (("setgroups", "deny"), ("uid_map", f"{INNER_ID} {uid} 1"), ("gid_map", f"{INNER_ID} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def enter_pid_namespace(libc) -> None:
    """A user namespace owning a fresh pid namespace, whose next child is its init."""
    outer = os.getuid(), os.getgid()
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWPID), "unshare(user, pid)")
    map_ids(libc, *outer)


def enter_private_namespaces(libc, limits: dict, seccomp: bool) -> None:
    """The program's own user namespace (so that RLIMIT_NPROC counts its processes only),
    mount and IPC namespaces; a private /tmp and /dev/shm; a /proc that shows only the
    program's own process (its maps and memory: nothing of other samples is there to see);
    and /sandbox (our files, the memory cgroup) hidden."""
    outer = os.getuid(), os.getgid()
    ipc = 0 if seccomp else CLONE_NEWIPC  # without SysV IPC (seccomp) there is nothing to isolate
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | ipc), "unshare(user, mount, ipc)")
    map_ids(libc, *outer)
    tmp = f"size={limits['tmp_bytes']},nr_inodes=16384,mode=1777".encode()
    for target in (b"/tmp", b"/dev/shm"):
        check(libc.mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, tmp), f"mount {target}")
    # /proc/self: our pid's folder in the worker's procfs, cloned before /proc is covered and
    # moved in after (the new mount API: no unmount, whose RCU wait costs milliseconds).
    own = os.open(f"/proc/{os.readlink('/proc/self')}", os.O_PATH | os.O_DIRECTORY)
    tree = libc.syscall(SYS_OPEN_TREE, own, b"", OPEN_TREE_CLONE | AT_EMPTY_PATH)
    check(0 if tree >= 0 else -1, "open_tree /proc/self")
    hidden = MS_NOSUID | MS_NODEV | MS_NOEXEC
    check(libc.mount(b"tmpfs", b"/proc", b"tmpfs", hidden, b"size=4096,mode=755"), "hide /proc")
    os.mkdir("/proc/self")
    check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, b"/proc/self", MOVE_MOUNT_F_EMPTY_PATH), "mount /proc/self")
    os.close(tree)
    os.close(own)
    check(libc.mount(None, b"/proc", None, MS_REMOUNT | MS_RDONLY | hidden, None), "remount /proc read-only")
    if os.path.isdir("/sandbox"):
        check(libc.mount(b"tmpfs", b"/sandbox", b"tmpfs", MS_RDONLY | hidden, b"size=4096,mode=555"), "hide /sandbox")


# --------------------------------------------------------------------------- seccomp (x86_64)

# System calls a program never needs and that widen the kernel's attack surface or escape
# the limits: SysV IPC and memfd (memory RLIMIT_AS does not count), namespaces (nested user
# namespaces are the usual way into kernel bugs), mounts, io_uring, bpf, userfaultfd,
# perf, keyrings, ptrace and cross-process memory access, modules, kexec, handles, swap.
# They fail with EPERM; clone3 fails with ENOSYS (its flags cannot be inspected), so the C
# library falls back to clone, whose namespace flags are refused.
_DENIED_X86_64 = (29, 64, 68, 240, 319, 447,                            # shmget semget msgget mq_open memfd*
                  272, 308,                                             # unshare setns
                  155, 161, 165, 166, 428, 429, 430, 431, 432, 433, 442,  # pivot_root chroot mount ... mount_setattr
                  425, 426, 427, 321, 323, 298,                         # io_uring_* bpf userfaultfd perf_event_open
                  248, 249, 250, 101, 310, 311,                         # keyrings, ptrace, process_vm_readv/writev
                  175, 176, 313, 246, 320, 303, 304,                    # modules, kexec, name_to/open_by_handle_at
                  103, 163, 167, 168, 169, 179)                         # syslog acct swapon/off reboot quotactl
_NS_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_AUDIT_ARCH_X86_64, _ALLOW, _ERRNO = 0xC000003E, 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS, _EAFNOSUPPORT = 1, 38, 97
# Arguments the filter inspects: system call, argument (its low 32 bits), refused values.
# * socket, socketpair: only AF_UNIX (1). The sandbox has no network, so TCP/IP is loopback
#   only, and its buffers are charged to no memory cgroup (v1) and draw on the host's TCP
#   pool; netlink, packet and the rest are kernel attack surface. Unix sockets stay: asyncio
#   and multiprocessing's duplex pipes need socketpair, and their buffers are charged to the
#   sample cgroup. Refused with EAFNOSUPPORT, as by a kernel without that family.
# * setsockopt(SOL_SOCKET, SO_SNDBUF / SO_RCVBUF / ...FORCE) and fcntl(F_SETPIPE_SZ): buffers
#   keep their default sizes, which bounds what one descriptor holds in rlimit mode.
_SOCKET, _SOCKETPAIR, _SETSOCKOPT, _FCNTL, _RT_SIGACTION = 41, 53, 54, 72, 13
_AF_UNIX, _SOL_SOCKET, _BUFFER_OPTS, _F_SETPIPE_SZ, _SIGCHLD = 1, 1, (7, 8, 32, 33), 1031, 17


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _arg(i: int, high: bool = False) -> tuple:
    """Load argument `i` (its low 32 bits, or its high ones) of `struct seccomp_data`."""
    return ("ld", 16 + 8 * i + (4 if high else 0))


def seccomp_filter(sigchld: bool = False) -> bytes | None:
    """The classic-BPF program above, or None where we have no table for the architecture.

    `sigchld`: also refuse setting SIGCHLD's disposition (rt_sigaction with a new action), for
    when the sample's CPU time is summed over its process tree (`accounting.Clock`): a process
    that ignores SIGCHLD, or sets SA_NOCLDWAIT, has its children reaped by the kernel, and
    their time is then counted nowhere. Reading the disposition stays allowed."""
    if os.uname().machine != "x86_64":
        return None
    code = [("ld", 4), ("jeq", _AUDIT_ARCH_X86_64, 0, "deny"), ("ld", 0),
            ("jge", 0x40000000, "deny", 0),              # the x32 ABI
            ("jeq", 56, "clone", 0), ("jeq", 435, "nosys", 0),
            ("jeq", _SOCKET, "family", 0), ("jeq", _SOCKETPAIR, "family", 0),
            ("jeq", _SETSOCKOPT, "sockopt", 0), ("jeq", _FCNTL, "fcntl", 0),
            *([("jeq", _RT_SIGACTION, "sigaction", 0)] if sigchld else []),
            *[("jeq", nr, "deny", 0) for nr in _DENIED_X86_64], ("ret", _ALLOW),
            "clone", _arg(0), ("jset", _NS_FLAGS, "deny", 0), ("ret", _ALLOW),
            "family", _arg(0), ("jeq", _AF_UNIX, "allow", 0), ("ret", _ERRNO | _EAFNOSUPPORT),
            "sockopt", _arg(1), ("jeq", _SOL_SOCKET, 0, "allow"), _arg(2),
            *[("jeq", opt, "deny", 0) for opt in _BUFFER_OPTS], ("ret", _ALLOW),
            "fcntl", _arg(1), ("jeq", _F_SETPIPE_SZ, "deny", "allow"),
            "sigaction", _arg(0), ("jeq", _SIGCHLD, 0, "allow"), _arg(1), ("jeq", 0, 0, "deny"),
            _arg(1, high=True), ("jeq", 0, "allow", "deny"),
            "allow", ("ret", _ALLOW), "nosys", ("ret", _ERRNO | _ENOSYS), "deny", ("ret", _ERRNO | _EPERM)]
    labels, program = {}, []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(program)
        else:
            program.append(item)
    ops = {"ld": 0x20, "jeq": 0x15, "jge": 0x35, "jset": 0x45, "ret": 0x06}
    out = bytearray()
    for i, (op, k, *jumps) in enumerate(program):
        jt, jf = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jumps or (0, 0)))
        assert 0 <= jt < 256 and 0 <= jf < 256, "a jump too far for classic BPF"
        out += struct.pack("HBBI", ops[op], jt, jf, k)
    return bytes(out)


def install_seccomp(libc, program: ctypes.Array) -> None:
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(program))
    check(libc.prctl(22, 2, ctypes.byref(fprog), 0, 0), "seccomp")  # PR_SET_SECCOMP, MODE_FILTER


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


def drop_capabilities(libc) -> None:
    """No capabilities left, not even in the sample's own user namespace. (The bounding set
    can stay: the program is not uid 0 in its namespace, `no_new_privs` is set and the mounts
    are nosuid, so no execve can bring capabilities back.)"""
    libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (ctypes.c_uint32 * 6)())


def apply_limits(limits: dict, memory_bytes: int, program: bool = True) -> None:
    """rlimits of the program's processes, or (`program=False`) of the judge.

    The program's CPU time is counted for all its processes together and ended at the limit by
    the fork server (`accounting.Clock`); its RLIMIT_CPU is only a backstop, far enough above
    the limit that it never fires first: the kernel checks it against a tick-sampled count,
    which under load runs well ahead of the exact time (a loop was killed at 4.3 s of CPU under
    a 5 s limit). The judge's limit is its own, and it gets no process limit (it forks nothing,
    and RLIMIT_NPROC would also count the program's processes)."""
    cpu = max(1, math.ceil(limits["cpu_s"]))
    if program:
        cpu = 2 * cpu + 1
    # soft == hard: SIGKILL at the limit (a namespace's init ignores SIGXCPU)
    for res, value in ((resource.RLIMIT_CPU, cpu),
                       (resource.RLIMIT_AS, memory_bytes),
                       (resource.RLIMIT_FSIZE, limits["file_bytes"]),
                       (resource.RLIMIT_NOFILE, limits["open_files"]),
                       (resource.RLIMIT_NPROC, limits["processes"]),
                       (resource.RLIMIT_CORE, 0)):
        if res != resource.RLIMIT_NPROC or program:
            resource.setrlimit(res, (value, value))
