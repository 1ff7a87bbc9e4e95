"""README.md stays true to the tree: its layout block lists what exists, and every module of
the packages is in it; its links lead to files that exist.

The layout block is the fenced block under `## Layout`. A line that starts at the left margin
names a top-level folder (`envs/   what it is`); an indented line names entries inside it, before
the description (separated by two or more spaces): files, globs (`math_*.py`) or sub-folders
(`tools/`), comma-separated. A listed sub-folder covers everything in it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["verifiers", "data", "envs", "models", "evals", "trainers"]
HOW = "edit the block under '## Layout' in README.md"


def layout_block(readme: str) -> str:
    match = re.search(r"^## Layout\n.*?^```\n(.*?)^```", readme, flags=re.M | re.S)
    assert match, "README.md has no '## Layout' section with a fenced block"
    return match.group(1)


def listed_paths(block: str) -> list[str]:
    """The paths (globs included) the layout block names, relative to the repository root."""
    paths, folder = [], None
    for line in block.splitlines():
        if not line.strip():
            continue
        names = re.split(r"\s{2,}", line.strip())[0]
        if not line.startswith(" "):
            folder = names.split()[0]
            paths.append(folder)
            continue
        assert folder is not None, f"layout block: {line!r} is indented under no folder"
        paths += [folder + name.strip() for name in names.split(",") if name.strip()]
    return paths


def matches(path: str) -> list[Path]:
    return sorted(ROOT.glob(path.rstrip("/"))) if any(c in path for c in "*?[") else \
        ([ROOT / path] if (ROOT / path.rstrip("/")).exists() else [])


@pytest.mark.parametrize("block, expected", [
    ("envs/   environments\n  base.py    the registry\n  a.py, b_*.py   two\n  tools/   tools\n",
     ["envs/", "envs/base.py", "envs/a.py", "envs/b_*.py", "envs/tools/"]),
    ("docs/        pages\ntests/  the suite\n", ["docs/", "tests/"]),
])
def test_the_block_is_read_as_documented(block, expected):
    assert listed_paths(block) == expected


def test_every_listed_path_exists():
    stale = [p for p in listed_paths(layout_block((ROOT / "README.md").read_text())) if not matches(p)]
    assert not stale, f"README.md's layout block lists {stale}, which match nothing in the tree: fix or " \
                      f"remove those entries ({HOW})"


def test_every_module_and_folder_of_the_packages_is_listed():
    listed = listed_paths(layout_block((ROOT / "README.md").read_text()))
    covered = {m.resolve() for p in listed for m in matches(p)}
    folders = [m for m in covered if m.is_dir()]
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).iterdir()):
            if path.name.startswith(".") or path.name in ("__init__.py", "__pycache__"):
                continue
            if (path.is_dir() or path.suffix == ".py") and path.resolve() not in covered \
                    and not any(f in path.resolve().parents for f in folders if f != (ROOT / package).resolve()):
                missing.append(f"{package}/{path.name}{'/' if path.is_dir() else ''}")
    assert not missing, (f"README.md's layout block does not list {missing}: {HOW}, adding an indented line "
                         f"under the package, e.g. '  {missing[0].split('/', 1)[1]}   what it is' (a glob such "
                         f"as 'name_*.py' on an existing line works too)")


def test_every_top_level_folder_is_listed():
    listed = {p.rstrip("/") for p in listed_paths(layout_block((ROOT / "README.md").read_text())) if "/" not in
              p.rstrip("/")}
    tracked = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
               and p.name not in ("runs", "build", "dist") and not p.name.endswith(".egg-info")}
    assert tracked <= listed, f"README.md's layout block does not list the folders {sorted(tracked - listed)}: {HOW}"


def test_relative_links_lead_to_files():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert targets, "the README links to its docs pages"
    broken = [t for t in targets if not (ROOT / t).exists()]
    assert not broken, f"README.md links to {broken}, which do not exist"
