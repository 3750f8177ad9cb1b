"""Reproduction time: `ltrsched reproduce all` (and `table1 --quick`) on a fresh run cache.

Target (issue 5): `ltrsched reproduce all` <= 5 minutes on 2 cores. Each command runs in a fresh temporary
output directory, so every simulation runs (a trained default predictor already in the user cache is
reused; on a fresh machine the first call also trains it, see BENCHMARKS.md). A second call on the same
directory measures the cached rerun (every run reused).

    python benchmarks/bench_reproduce.py [--experiments table1-quick,all] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

TARGET_S = {"all": 300.0}


def run(args: list[str], out: str, jobs: int | None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "ltrsched.cli", "reproduce", *args, "--out", out]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    m = re.search(r"(\d+) runs simulated, (\d+) reused", proc.stdout)
    return wall, f"{m.group(1)} simulated, {m.group(2)} reused" if m else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", default="table1-quick,all",
                    help="comma-separated: an experiment name, 'all', or NAME-quick for --quick")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"{'command':<34}{'fresh [s]':>10}{'cached [s]':>11}  runs (fresh)")
    for item in args.experiments.split(","):
        name, quick = (item[:-6], True) if item.endswith("-quick") else (item, False)
        cli_args = [name] + (["--quick"] if quick else [])
        with tempfile.TemporaryDirectory(prefix="bench_reproduce_") as out:
            fresh, runs = run(cli_args, out, args.jobs)
            cached, _ = run(cli_args, out, args.jobs)
        label = "reproduce " + " ".join(cli_args)
        target = TARGET_S.get(item)
        verdict = "" if target is None else ("  (target <= %.0f s: %s)" % (target, "met" if fresh <= target else "MISSED"))
        print(f"{label:<34}{fresh:>10.1f}{cached:>11.1f}  {runs}{verdict}")


if __name__ == "__main__":
    main()
