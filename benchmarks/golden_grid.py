"""Golden grid: proof that a change leaves the simulator's results bit-identical.

Runs a fixed grid of simulations (4 workloads x 8 policies x 5 configurations = 160 runs of 160-240
requests, every run with a step trace) and hashes, exactly, every per-request column, every summary value
(but the wall-clock ones) and every step-trace column of every run into one SHA-256.

    python benchmarks/golden_grid.py                              # print the grid's hash
    python benchmarks/golden_grid.py --check benchmarks/golden_grid.json   # exit 1 if anything differs
    python benchmarks/golden_grid.py --write benchmarks/golden_grid.json   # store a new reference
    python benchmarks/golden_grid.py --verbose                    # also one hash per run

The committed reference (``benchmarks/golden_grid.json``) was written from the code of the commit it
names. A change to the simulator, the batch rules or a policy that should not change results must pass
``--check``; one that changes results on purpose writes a new reference in the same commit and says why.
Floats are hashed by their bytes, so the hashes hold for one platform and numpy/polars build (the JSON
records both); on another machine, write a reference from the base commit first, then check the change.
About 1-2 minutes on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402

#: name -> (workload, requests, arrival, rate [req/s], cv, small KV [blocks]: preemptions happen, the longest
#: request still fits)
WORKLOADS = {
    "sharegpt-burst": ("sharegpt", 240, "burst", None, 1.0, 300),
    "sharegpt-poisson": ("sharegpt", 240, "poisson", 12.0, 1.0, 300),
    "lmsys-like-gamma": ("lmsys-like", 240, "gamma", 8.0, 2.0, 300),
    "sharegpt-like-burst": ("sharegpt-like", 160, "burst", None, 1.0, 600),
}
POLICIES = (
    "fcfs", "srtf", "ltr:tau=0.6", "ltr:tau=0.6,starve=200,quantum=10", "mlfq", "po", "class:bucket=100",
    "oracle:tau=0.5",
)
#: name -> SimConfig keyword arguments (record_steps is always on); "small" blocks: the workload's small KV
CONFIGS = {
    # the paper's defaults: swap, chunked prefill, KV from the profile (no memory pressure at this size)
    "default": {},
    # memory pressure, swap to a host memory too small for it (falls back to recompute when full)
    "swap-small-kv": {"num_gpu_blocks": "small", "swap_space_gib": 0.25},
    "recompute-small-kv": {"num_gpu_blocks": "small", "preemption": "recompute"},
    # whole prompts only (the budget covers the longest request), some memory pressure
    "no-chunked": {"chunked_prefill": False, "max_num_batched_tokens": 8192, "num_gpu_blocks": 1200},
    # vLLM V1's rules: resident requests first, a resident cap (32) that binds, recompute, some memory pressure
    "vllm-v1": {"semantics": "vllm-v1", "preemption": "recompute", "num_gpu_blocks": "2x small",
                "max_num_seqs": 32},
}
#: summary values that measure the host, not the simulation
WALL_CLOCK_KEYS = ("wall_time_s", "speedup_vs_real_time")


def _hash_frame(h, df: pl.DataFrame) -> None:
    """Every column's name, dtype, null mask and values (numbers by their bytes) into ``h``."""
    h.update(f"frame {df.height}x{df.width}\n".encode())
    for name in df.columns:
        s = df[name]
        h.update(f"{name}:{s.dtype}\n".encode())
        h.update(s.is_null().to_numpy().tobytes())
        if s.dtype.is_numeric() or s.dtype == pl.Boolean:
            h.update(np.ascontiguousarray(s.fill_null(0).to_numpy()).tobytes())
        else:
            h.update(json.dumps([None if v is None else str(v) for v in s.to_list()]).encode())


def _scalar(v) -> str:
    if isinstance(v, (float, np.floating)):
        return float(v).hex()
    if isinstance(v, (int, np.integer, bool, np.bool_)):
        return repr(int(v))
    return repr(v)


def run_hash(result) -> str:
    """SHA-256 of one run's requests, summary (wall-clock values left out) and step trace."""
    h = hashlib.sha256()
    _hash_frame(h, result.requests)
    for key in sorted(result.summary):
        if key not in WALL_CLOCK_KEYS:
            h.update(f"{key}={_scalar(result.summary[key])}\n".encode())
    _hash_frame(h, result.steps)
    return h.hexdigest()


def grid():
    """(run id, workload key, policy spec, config key) of every run, in a fixed order."""
    for w in WORKLOADS:
        for c in CONFIGS:
            for p in POLICIES:
                yield f"{w}|{c}|{p}", w, p, c


def run_grid(verbose: bool = False) -> dict[str, str]:
    runs: dict[str, str] = {}
    workloads = {}
    for w, (name, n, arrival, rate, cv, _) in WORKLOADS.items():
        workloads[w] = apply_arrivals(load_workload(name, num_requests=n, seed=0), arrival, rate=rate, cv=cv, seed=0)
    for run_id, w, p, c in grid():
        t0 = time.perf_counter()
        small = WORKLOADS[w][5]
        kwargs = {k: {"small": small, "2x small": 2 * small}.get(v, v) if isinstance(v, str) else v
                  for k, v in CONFIGS[c].items()}
        result = simulate(workloads[w], make_policy(p), SimConfig(record_steps=True, **kwargs))
        runs[run_id] = run_hash(result)
        if verbose:
            print(f"{runs[run_id][:16]}  {time.perf_counter() - t0:6.2f} s  {run_id}", flush=True)
    return runs


def total_hash(runs: dict[str, str]) -> str:
    h = hashlib.sha256()
    for run_id in sorted(runs):
        h.update(f"{run_id}={runs[run_id]}\n".encode())
    return h.hexdigest()


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="FILE", help="compare with a reference JSON; exit 1 if any run differs")
    ap.add_argument("--write", metavar="FILE", help="store the results as a reference JSON")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every run's hash")
    args = ap.parse_args()

    t0 = time.perf_counter()
    runs = run_grid(args.verbose)
    total = total_hash(runs)
    print(f"golden grid: {len(runs)} runs in {time.perf_counter() - t0:.0f} s, sha256 {total}")
    if args.write:
        ref = {
            "sha256": total,
            "commit": _commit(),
            "platform": f"{platform.machine()}, python {platform.python_version()}, numpy {np.__version__}, "
                        f"polars {pl.__version__}",
            "runs": runs,
        }
        Path(args.write).write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.write}")
    if args.check:
        ref = json.loads(Path(args.check).read_text())
        if ref["sha256"] == total:
            print(f"identical to {args.check} (commit {ref.get('commit')})")
            return 0
        differ = sorted(r for r in set(ref["runs"]) | set(runs) if ref["runs"].get(r) != runs.get(r))
        print(f"DIFFERENT from {args.check} (commit {ref.get('commit')}, {ref.get('platform')}): "
              f"{len(differ)} of {len(runs)} runs", file=sys.stderr)
        for r in differ[:40]:
            print(f"  {r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
