"""Golden grid: proof that a change leaves the simulator's results bit-identical.

Runs a fixed grid of simulations (5 workloads x 8 policies x 5 configurations = 200 runs of 96-240
requests, every run with a step trace) and hashes, exactly, every per-request column, every summary value
(but the wall-clock ones) and every step-trace column of every run into one SHA-256.

    python benchmarks/golden_grid.py                              # print the grid's hash
    python benchmarks/golden_grid.py --check benchmarks/golden_grid.json   # exit 1 if anything differs
    python benchmarks/golden_grid.py --write benchmarks/golden_grid.json   # store a new reference
    python benchmarks/golden_grid.py --verbose                    # also one hash per run
    python benchmarks/golden_grid.py --gaps-as-zero               # also the hash with max_token_gap's nulls as 0.0

The committed reference (``benchmarks/golden_grid.json``) was written from the code of the commit it
names. A change to the simulator, the batch rules or a policy that should not change results must pass
``--check``; one that changes results on purpose writes a new reference in the same commit and says why.
Floats are hashed by their bytes, so the hashes hold for one platform and numpy/polars build (the JSON
records both); on another machine, write a reference from the base commit first, then check the change.
About 1-2 minutes on one core.

``--gaps-as-zero`` also prints the grid's hash with ``max_token_gap``'s nulls taken as 0.0, as the results were before
one-token requests' gaps became null (branch simgap, after fa37e38): where nothing else changed it is this grid's hash
from fa37e38's code, :data:`GAPS_AS_ZERO_SHA256` (exit 1 if not).
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
    "lmsys-like-short-burst": ("lmsys-like", 96, "burst", None, 1.0, 150),
}
#: name -> k: of the workload's requests, every k-th (the 1st, the (k+1)-th, ...) generates 1 output token and the
#: one after it 2 (the others' shortest is 4): requests with no token gap (``max_token_gap`` null) beside ones with one
SHORT_OUTPUTS = {"lmsys-like-short-burst": 4}
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


#: This grid's hash from the code before one-token requests' ``max_token_gap`` became null (0.0 then; fa37e38, whose
#: own 160-run grid hashed to dae69015...): what ``--gaps-as-zero`` must give.
GAPS_AS_ZERO_SHA256 = "1566f648ee2e4e86bd4768ec65257310459d7a5f177eb5861a897526de685c6b"


def run_hash(result, gaps_as_zero: bool = False) -> str:
    """SHA-256 of one run's requests, summary (wall-clock values left out) and step trace; ``gaps_as_zero``: with
    ``max_token_gap``'s nulls (requests of fewer than two tokens) taken as 0.0, as they were before they were null."""
    h = hashlib.sha256()
    requests = result.requests
    if gaps_as_zero:
        requests = requests.with_columns(pl.col("max_token_gap").fill_null(0.0))
    _hash_frame(h, requests)
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


def with_short_outputs(workload, every: int):
    """``workload`` with the outputs of every ``every``-th request set to 1 token and of the one after it to 2."""
    row = np.arange(len(workload)) % every
    out = workload.df["output_tokens"].to_numpy().copy()
    out[row == 0], out[row == 1] = 1, 2
    return workload.with_df(workload.df.with_columns(output_tokens=pl.Series(out)))


def run_grid(verbose: bool = False, gaps_as_zero: dict[str, str] | None = None) -> dict[str, str]:
    """Each run's hash; with ``gaps_as_zero`` (a dict) each run's :func:`run_hash` with ``gaps_as_zero`` in it too."""
    runs: dict[str, str] = {}
    workloads = {}
    for w, (name, n, arrival, rate, cv, _) in WORKLOADS.items():
        workload = load_workload(name, num_requests=n, seed=0)
        if w in SHORT_OUTPUTS:
            workload = with_short_outputs(workload, SHORT_OUTPUTS[w])
        workloads[w] = apply_arrivals(workload, arrival, rate=rate, cv=cv, seed=0)
    for run_id, w, p, c in grid():
        t0 = time.perf_counter()
        small = WORKLOADS[w][5]
        kwargs = {k: {"small": small, "2x small": 2 * small}.get(v, v) if isinstance(v, str) else v
                  for k, v in CONFIGS[c].items()}
        result = simulate(workloads[w], make_policy(p), SimConfig(record_steps=True, **kwargs))
        runs[run_id] = run_hash(result)
        if gaps_as_zero is not None:
            gaps_as_zero[run_id] = run_hash(result, gaps_as_zero=True)
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
    ap.add_argument("--gaps-as-zero", action="store_true",
                    help="also print the hash with max_token_gap's nulls as 0.0 (as before they were null), and "
                         f"whether it is {GAPS_AS_ZERO_SHA256[:8]}..., the reference before")
    args = ap.parse_args()

    t0 = time.perf_counter()
    old = {} if args.gaps_as_zero else None
    runs = run_grid(args.verbose, old)
    total = total_hash(runs)
    print(f"golden grid: {len(runs)} runs in {time.perf_counter() - t0:.0f} s, sha256 {total}")
    status = 0
    if old is not None:
        old_total = total_hash(old)
        same = "identical to" if old_total == GAPS_AS_ZERO_SHA256 else "DIFFERENT from"
        print(f"with max_token_gap's nulls as 0.0: sha256 {old_total}, {same} the reference before they were null "
              f"({GAPS_AS_ZERO_SHA256[:8]}...)")
        status = int(old_total != GAPS_AS_ZERO_SHA256)
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
            return status
        differ = sorted(r for r in set(ref["runs"]) | set(runs) if ref["runs"].get(r) != runs.get(r))
        print(f"DIFFERENT from {args.check} (commit {ref.get('commit')}, {ref.get('platform')}): "
              f"{len(differ)} of {len(runs)} runs", file=sys.stderr)
        for r in differ[:40]:
            print(f"  {r}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
