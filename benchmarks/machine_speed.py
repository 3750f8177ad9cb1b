"""How steady is this machine? A fixed piece of work timed over and over on one pinned CPU, with the CPU's steal time.

The CPU engine's step times move by 10-20% between engine starts and within minutes (VALIDATION.md). This tells
whether the machine itself moves so, with no vLLM, no model and no engine start: one thread, pinned to ``--cpu``,
runs the same two kernels again and again for ``--seconds``:

* ``matmul``: a float32 matrix product (``--size`` square, in cache: compute-bound);
* ``stream``: a copy of a ``--stream-mib`` MiB float32 array (beyond the caches: memory-bound);

and records each round's time, with the pinned CPU's steal time (``/proc/stat``: time the hypervisor ran
something else on it) over the same round. Output: a CSV of the rounds (``--out``), and per minute the
median time of each kernel relative to its median over the whole run.

    taskset -c 1 python benchmarks/machine_speed.py --cpu 1 --seconds 600 --out speed.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def steal_jiffies(cpu: int) -> int:
    """The ``steal`` column of CPU ``cpu`` in /proc/stat [jiffies, usually 10 ms]; -1 where not readable."""
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith(f"cpu{cpu} "):
                    fields = line.split()
                    return int(fields[8]) if len(fields) > 8 else -1
    except OSError:
        pass
    return -1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", type=int, default=1, help="CPU to pin this process to")
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--size", type=int, default=384, help="matrix side of the matmul kernel")
    ap.add_argument("--stream-mib", type=int, default=256, help="array copied by the stream kernel [MiB]")
    ap.add_argument("--out", default=None, help="CSV of every round")
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        os.sched_setaffinity(0, {args.cpu})
    except (OSError, ValueError) as exc:
        print(f"error: cannot pin to CPU {args.cpu}: {exc}", file=sys.stderr)
        return 2
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.size, args.size), dtype=np.float32)
    b = rng.standard_normal((args.size, args.size), dtype=np.float32)
    n = args.stream_mib * 2**20 // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    rows = []
    t_end = time.monotonic() + args.seconds
    t0 = time.time()
    while time.monotonic() < t_end:
        steal0 = steal_jiffies(args.cpu)
        s = time.perf_counter()
        for _ in range(20):
            a @ b
        mm = time.perf_counter() - s
        s = time.perf_counter()
        np.copyto(dst, src)
        np.copyto(src, dst)
        st = time.perf_counter() - s
        rows.append({"t_s": time.time() - t0, "matmul_s": mm, "stream_s": st,
                     "steal_jiffies": steal_jiffies(args.cpu) - steal0 if steal0 >= 0 else None})
    df = pl.DataFrame(rows)
    if args.out:
        df.write_csv(args.out)
    med_mm, med_st = df["matmul_s"].median(), df["stream_s"].median()
    per_min = (df.with_columns(minute=(pl.col("t_s") // 60).cast(pl.Int32))
               .group_by("minute", maintain_order=True)
               .agg(pl.len().alias("rounds"), (pl.col("matmul_s").median() / med_mm).alias("matmul"),
                    (pl.col("stream_s").median() / med_st).alias("stream"), pl.col("steal_jiffies").sum()))
    print(f"{df.height} rounds in {args.seconds:.0f} s on CPU {args.cpu}; median round: matmul {med_mm * 1e3:.2f} ms, "
          f"stream {med_st * 1e3:.2f} ms; per minute, median time over the run's median:")
    print("| minute | rounds | matmul | stream | steal [jiffies] |")
    print("|---|---|---|---|---|")
    for r in per_min.iter_rows(named=True):
        print(f"| {r['minute']} | {r['rounds']} | {r['matmul']:.3f} | {r['stream']:.3f} | {r['steal_jiffies']} |")
    q = [df[c].quantile(p) / m for c, m in (("matmul_s", med_mm), ("stream_s", med_st)) for p in (0.1, 0.9)]
    print(f"rounds' P10-P90 over the median: matmul {q[0]:.3f}-{q[1]:.3f}, stream {q[2]:.3f}-{q[3]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
