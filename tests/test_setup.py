"""`make` on a fresh machine: the system packages first, before anything is created.

Each test runs the real Makefile, in a copy of the repository's set-up files, with a PATH made of
this machine's commands minus the ones a case takes away (`bwrap`, `apt-get`, `sudo`) plus fakes
that record how they were called.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make")
REMOVED = {"bwrap", "apt-get", "sudo"}


def _bin(tmp_path: Path, fakes: dict[str, str]) -> Path:
    """A folder of links to every command on PATH except REMOVED, plus `fakes` (name -> script)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            target = bin_dir / entry.name
            if entry.name in REMOVED or target.exists() or not os.access(entry.path, os.X_OK):
                continue
            target.symlink_to(entry.path)
    for name, script in fakes.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + script)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _make(tmp_path: Path, goal: list[str], fakes: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, repo / name)
    env = {"PATH": str(_bin(tmp_path, fakes or {})), "HOME": str(tmp_path), "LC_ALL": "C"}
    return subprocess.run([MAKE, "-C", str(repo), *goal], env=env, capture_output=True, text=True, timeout=120)


FAKE_APT = 'echo "apt-get $*" >> "$(dirname "$0")/../calls"\n' \
           'case " $* " in *" install "*) printf "#!/bin/sh\\n" > "$(dirname "$0")/bwrap"; ' \
           'chmod +x "$(dirname "$0")/bwrap";; esac\n'
FAKE_SUDO = 'echo "sudo $*" >> "$(dirname "$0")/../calls"\n[ "$1" = -n ] && shift\nexec "$@"\n'


@pytest.mark.parametrize("goal", [[], ["test"]])
def test_without_bubblewrap_and_apt_get_make_stops_with_the_command_and_creates_nothing(tmp_path, goal):
    proc = _make(tmp_path, goal)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("make: ***")]  # make's own exit note
    assert len(lines) == 1, proc.stderr
    assert "apt-get install -y bubblewrap" in lines[0] and lines[0].startswith("make: missing system packages")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "repo" / ".venv").exists()          # nothing created
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["Makefile", "README.md", "pyproject.toml"]


def test_the_check_passes_where_bubblewrap_is_there(tmp_path):
    proc = _make(tmp_path, ["system-test"], {"bwrap": "exit 0\n"})
    assert (proc.returncode, proc.stderr) == (0, "")


def test_train_does_not_need_bubblewrap(tmp_path):
    proc = _make(tmp_path, ["system-train"])
    assert (proc.returncode, proc.stderr) == (0, "")


def test_with_apt_get_make_installs_bubblewrap_itself(tmp_path):
    """As root apt-get runs directly; otherwise through `sudo -n` (no password prompt)."""
    proc = _make(tmp_path, ["system-test"], {"apt-get": FAKE_APT, "sudo": FAKE_SUDO})
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    install = [c for c in calls if c.startswith("apt-get") and " install " in f" {c} "]
    assert install == ["apt-get install -y -q bubblewrap"]
    assert proc.stderr.strip() == "make: installing bubblewrap with apt-get"
    if os.getuid() != 0:
        assert "sudo -n apt-get install -y -q bubblewrap" in calls


def test_a_failing_apt_get_ends_with_the_command_to_run(tmp_path):
    proc = _make(tmp_path, ["test"], {"apt-get": "exit 100\n", "sudo": FAKE_SUDO})
    assert proc.returncode != 0
    assert "make: apt-get could not install bubblewrap; run: " in proc.stderr
    assert not (tmp_path / "repo" / ".venv").exists()


# Run a CLI with the sandbox's bubblewrap lookup finding nothing, as on a machine without it.
NO_BWRAP = ("import sys, runpy, verifiers.code.sandbox as s; s.bwrap_path = lambda: None; "
            "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


@pytest.mark.skipif(not hasattr(__import__("verifiers.code.sandbox").code.sandbox, "bwrap_path"),
                    reason="the sandbox no longer looks bubblewrap up through bwrap_path")
@pytest.mark.parametrize("command", [
    ["evals.pass_at_k", "--env", "synthetic_code", "--completions", "{completions}", "--output-dir", "{out}",
     "--progress", "false"],
    ["evals.pass_at_k", "--env", "humaneval", "--completions", "{humaneval}", "--output-dir", "{out}",
     "--progress", "false"],
])
def test_commands_that_need_the_sandbox_say_so_in_one_line(tmp_path, command):
    import json
    import sys

    import envs

    for env, name in (("synthetic_code", "c.jsonl"), ("humaneval", "h.jsonl")):
        task = envs.get_env(env).tasks("test")[0]
        (tmp_path / name).write_text(json.dumps({"task_id": task.id, "completion": "    return 1\n"}) + "\n")
    args = [a.format(completions=tmp_path / "c.jsonl", humaneval=tmp_path / "h.jsonl", out=tmp_path / "out")
            for a in command]
    proc = subprocess.run([sys.executable, "-c", NO_BWRAP, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bubblewrap" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
