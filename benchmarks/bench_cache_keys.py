"""Cost of content-keyed caches (issue 12): `reproduce table1 --quick` before/after, and the key's parts.

Runs `ltrsched reproduce table1 --quick` from each source tree given (``--trees``, e.g. a checkout of
the commit before and one after), alternating, ``--rounds`` times each on a fresh output directory
and then on the cached one; prints the median wall time and CPU time (user + sys, the command and its
pool workers). Each tree uses its own user cache (``LTRSCHED_CACHE``, new or ``--caches``): a run on
an empty cache trains the predictors, so warm new caches first (``--warm``). Then, in this process with
the current tree, times the new work itself: hashing the packaged ShareGPT file (once per invocation)
and one run key with the digests known.

    python benchmarks/bench_cache_keys.py --trees /path/before,/path/after --rounds 5 --warm
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall [s], CPU [s] of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", required=True, help="comma-separated source trees (PYTHONPATH of each run)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm", action="store_true", help="first run each tree once to fill its user cache")
    ap.add_argument("--caches", default=None, help="comma-separated user caches, one per tree (default: new)")
    args = ap.parse_args()
    trees = args.trees.split(",")
    work = tempfile.mkdtemp(prefix="bench_cache_keys_")
    caches = args.caches.split(",") if args.caches else [os.path.join(work, f"cache{i}") for i in range(len(trees))]
    envs = {t: {**os.environ, "PYTHONPATH": t, "LTRSCHED_CACHE": c} for t, c in zip(trees, caches)}
    cmd = [sys.executable, "-m", "ltrsched.cli", "reproduce", "table1", "--quick", "--out"]
    if args.warm:
        for t in trees:
            timed(cmd + [os.path.join(work, "warm")], envs[t])
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for kind in ("fresh", "cached"):
        for r in range(args.rounds):
            for i, t in enumerate(trees):
                out = os.path.join(work, f"out{i}" + (f"-{r}" if kind == "fresh" else "-0"))
                times.setdefault((kind, t), []).append(timed(cmd + [out], envs[t]))
    print(f"{'tree':<40}{'kind':<8}{'wall median [s]':>16}{'CPU median [s]':>16}  (rounds: {args.rounds})")
    for (kind, t), vals in times.items():
        print(f"{t:<40}{kind:<8}{statistics.median(v[0] for v in vals):>16.2f}"
              f"{statistics.median(v[1] for v in vals):>16.2f}")

    from ltrsched.experiments import table1
    from ltrsched.fingerprint import file_digest
    from ltrsched.workloads.sharegpt import _package_file

    path = _package_file()
    t0 = time.process_time()
    file_digest(path)
    hashed = time.process_time() - t0
    specs = table1.specs(True)
    [s.run_hash() for s in specs]
    t0 = time.process_time()
    for _ in range(20):
        for s in specs:
            s.run_hash()
    per_key = (time.process_time() - t0) / (20 * len(specs))
    print(f"SHA-256 of the packaged ShareGPT file ({os.path.getsize(path) / 1e6:.0f} MB): {hashed:.3f} s CPU; "
          f"one run key with digests known: {per_key * 1e3:.2f} ms CPU")


if __name__ == "__main__":
    main()
