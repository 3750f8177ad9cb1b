"""Sweep wall time on the process pool vs Ray (issue 15, item 1), and the files each writes.

Runs ``ltrsched sweep`` on a 200-run sweep (5 policies x 8 Poisson rates x 5 seeds, ``--requests``
requests each) with ``--backend process`` and ``--backend ray`` on the same machine, alternating which
goes first in each repeat, each into a fresh output directory, and reports every wall time and the CPU
time of the command's whole process tree (workers and Ray's daemons included), the median of each, and
the Ray/pool ratios per pair. On a machine shared with other jobs, wall time depends on the CPU share
each invocation wins (Ray's extra busy processes win more of a contended machine); the CPU time is the
cost that does not depend on the machine's other load. Every output file of every invocation is compared with the
first pool invocation's, byte for byte, except the summaries' wall-clock fields (``wall_time_s``,
``speedup_vs_real_time``: the simulator's own timing of itself), which are left out of ``summary.json``
and ``sweep.csv`` before comparing. It also times a bare local ``ray.init()`` + ``ray.shutdown()``
(Ray's fixed cost) in a child process.

    python benchmarks/bench_ray_sweep.py --repeat 3                  # 200 runs x 200 requests
    python benchmarks/bench_ray_sweep.py --repeat 3 --requests 1000  # 200 runs x 1000 requests
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

WALL_CLOCK_FIELDS = ("wall_time_s", "speedup_vs_real_time")
SWEEP = """workloads = ["sharegpt"]
policies = ["fcfs", "srtf", "ltr:tau=0.62", "ltr:tau=0.62,starve=200,quantum=10", "mlfq"]
arrival = "poisson"
rates = [2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0]
seeds = [0, 1, 2, 3, 4]
num_requests = {requests}
"""


def files(root: Path) -> dict[str, bytes]:
    """Every output file (lock files aside) with the wall-clock fields left out."""
    out = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        data = path.read_bytes()
        if path.name == "summary.json":
            doc = json.loads(data)
            for k in WALL_CLOCK_FIELDS:
                doc["summary"].pop(k)
            data = json.dumps(doc, sort_keys=True).encode()
        elif path.name == "sweep.csv":
            data = pl.read_csv(path).drop(WALL_CLOCK_FIELDS).write_csv().encode()
        out[str(path.relative_to(root))] = data
    return out


def sweep(work: Path, backend: str, out: str, jobs: int) -> tuple[float, float]:
    """Wall time [s] of one ``ltrsched sweep``, and the CPU time [s] (user + system) of its whole process
    tree: the command, its pool workers or its Ray daemons and workers (sampled every 0.1 s, so a process
    that ends between samples loses at most 0.1 s)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ltrsched.cli", "sweep", "s.toml", "--out", out, "--backend", backend,
                             "--jobs", str(jobs)], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    cpu: dict[tuple[int, float], float] = {}
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                t = p.cpu_times()
                cpu[(p.pid, p.create_time())] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or "200 runs simulated, 0 reused" not in stdout:
        sys.exit(f"{backend} sweep failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return wall, sum(cpu.values())


def ray_fixed_cost(jobs: int) -> float:
    code = ("import logging, time; t = time.perf_counter(); import ray\n"
            f"ray.init(address='local', num_cpus={jobs}, include_dashboard=False, logging_level=logging.ERROR,"
            " log_to_driver=False, object_store_memory=128 * 2**20)\n"
            "ray.shutdown(); print(time.perf_counter() - t)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="pairs of invocations (order alternates)")
    ap.add_argument("--requests", type=int, default=200, help="requests per run")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        work = Path(tmp)
        (work / "s.toml").write_text(SWEEP.format(requests=args.requests))
        os.environ["LTRSCHED_CACHE"] = str(work / "cache")
        walls: dict[str, list[float]] = {"process": [], "ray": []}
        cpus: dict[str, list[float]] = {"process": [], "ray": []}
        reference: dict[str, bytes] | None = None
        differing = 0
        for i in range(args.repeat):
            order = ("process", "ray") if i % 2 == 0 else ("ray", "process")
            for backend in order:
                out = f"{backend}-{i}"
                wall, cpu = sweep(work, backend, out, args.jobs)
                walls[backend].append(wall)
                cpus[backend].append(cpu)
                got = files(work / out)
                if reference is None:
                    reference = got
                differing += sum(got.get(k) != v for k, v in reference.items()) + len(got.keys() - reference.keys())
                print(f"repeat {i} {backend:<8} wall {wall:6.1f} s  cpu {cpu:6.1f} s  (load {os.getloadavg()[0]:.1f})",
                      flush=True)
        fixed = [ray_fixed_cost(args.jobs) for _ in range(2)]
    ratios = [r / p for r, p in zip(walls["ray"], walls["process"])]
    print(f"\n200 runs x {args.requests} requests, --jobs {args.jobs}, {args.repeat} interleaved repeats")
    cpu_ratios = [r / p for r, p in zip(cpus["ray"], cpus["process"])]
    for b, w in walls.items():
        print(f"  {b:<8} wall median {statistics.median(w):6.1f} s (all {', '.join(f'{x:.1f}' for x in w)}); "
              f"cpu median {statistics.median(cpus[b]):6.1f} s (all {', '.join(f'{x:.1f}' for x in cpus[b])})")
    print(f"  ray/process wall per pair: {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}")
    print(f"  ray/process cpu per pair: {', '.join(f'{x:.2f}' for x in cpu_ratios)}; "
          f"median {statistics.median(cpu_ratios):.2f}")
    print(f"  bare local ray.init + shutdown: {', '.join(f'{x:.1f}' for x in fixed)} s")
    print(f"  files compared: {len(reference)} per invocation; differing (wall-clock fields aside): {differing}")


if __name__ == "__main__":
    main()
