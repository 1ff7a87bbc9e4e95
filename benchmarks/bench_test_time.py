"""How long a set of tests takes on a reference revision and on this working tree, side by side
in one run: pytest with `-n 2 --dist worksteal` (as `make test`) on each, one after the other.

    python benchmarks/bench_test_time.py --ref main --ref-tests A.txt --tests B.txt [--json OUT]

A.txt and B.txt list pytest node ids, one a line (`#` starts a comment): the tests as the
reference names them and as this tree names them (a change may rename, split or merge tests,
so the two lists may differ). The reference is `git archive REF`, unpacked into a temporary
folder and run with this interpreter; the tree is run where it is. Reported: each side's wall
time, the sum of its tests' times (setup, call and teardown, from pytest's junit XML: what the
tests cost the machine's 2 workers), per test, and the ratios tree / reference. The machine's
load (`os.getloadavg`) before and after each side goes with the figures: other work on a shared
machine slows both sides, not always equally, so run it when the machine is quiet or read the
ratio with the load beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_ids(path: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    ids = [line for line in lines if line]
    if not ids:
        raise SystemExit(f"{path}: no test ids")
    return ids


def unpack(ref: str, into: Path) -> Path:
    archive = into / "ref.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", ref], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def run_side(tree: Path, ids: list[str], xml: Path) -> dict:
    """pytest on `ids` in `tree`; its wall time, load and per-test times."""
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "worksteal", "-q", "-p", "no:cacheprovider",
           f"--junitxml={xml}", *ids]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pytest failed in {tree}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    per_test: dict[str, float] = defaultdict(float)
    for case in ET.parse(xml).getroot().iter("testcase"):   # parametrised cases summed under their test
        per_test[f"{case.get('classname').split('.')[-1]}::{case.get('name').split('[')[0]}"] += float(case.get("time"))
    return {"wall_s": wall, "tests_s": sum(per_test.values()), "per_test_s": dict(per_test),
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="the reference revision (git archive REF)")
    parser.add_argument("--ref-tests", required=True, help="file of node ids, as the reference names them")
    parser.add_argument("--tests", required=True, help="file of node ids, as this tree names them")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    ref_ids, tree_ids = read_ids(args.ref_tests), read_ids(args.tests)
    with tempfile.TemporaryDirectory(prefix="bench_test_time.") as tmp:
        ref = run_side(unpack(args.ref, Path(tmp)), ref_ids, Path(tmp) / "ref.xml")
        tree = run_side(ROOT, tree_ids, Path(tmp) / "tree.xml")
    result = {"ref": args.ref, "reference": ref, "tree": tree,
              "wall_ratio": tree["wall_s"] / ref["wall_s"], "tests_ratio": tree["tests_s"] / ref["tests_s"]}
    print("| side | wall s | tests s | load before, after |\n|---|---|---|---|")
    for name, side in ((f"reference ({args.ref})", ref), ("this tree", tree)):
        print(f"| {name} | {side['wall_s']:.0f} | {side['tests_s']:.0f} | "
              f"{side['load_before']:.1f}, {side['load_after']:.1f} |")
    print(f"\ntree / reference: wall {result['wall_ratio']:.2f}x, tests {result['tests_ratio']:.2f}x\n")
    for name, side in (("reference", ref), ("tree", tree)):
        for test, seconds in sorted(side["per_test_s"].items()):
            print(f"{name:9s} {seconds:7.1f}  {test}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
