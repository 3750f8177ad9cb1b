"""Sweep wall time on the process pool vs Ray (issue 15, item 1), and the files each writes.

Runs ``ltrsched sweep`` on a 200-run sweep (5 policies x 8 Poisson rates x 5 seeds, ``--requests``
requests each) with ``--backend process`` and ``--backend ray`` on the same machine, alternating which
goes first in each repeat, each into a fresh output directory (after an untimed one-run sweep that
builds the workload's cache, which would otherwise be charged to the first invocation), and reports every wall time and the CPU
time of the command's whole process tree (workers and Ray's daemons included), the median of each, and
the Ray/pool ratios per pair. On a machine shared with other jobs, wall time depends on the CPU share
each invocation wins (Ray's extra busy processes win more of a contended machine); the CPU time is the
cost that depends least on the machine's other load. It is exact where the benchmark may create a
cgroup of its own (as root: each command runs in a fresh one, cgroup v1 ``cpuacct`` or v2), and sampled
with psutil otherwise (see :func:`measure`). Every output file of every invocation is compared with the
first pool invocation's, byte for byte, except the summaries' wall-clock fields (``wall_time_s``,
``speedup_vs_real_time``: the simulator's own timing of itself), which are left out of ``summary.json``
and ``sweep.csv`` before comparing. It also measures a bare local Ray start (the backend's ``ray.init``
arguments, ``--jobs`` trivial tasks, ``ray.shutdown()``: Ray's fixed cost) in a child process;
``bench_ray_start.py`` does that for other ``ray.init`` options.

    python benchmarks/bench_ray_sweep.py --repeat 3                  # 200 runs x 200 requests
    python benchmarks/bench_ray_sweep.py --repeat 3 --requests 1000  # 200 runs x 1000 requests
    taskset -c 0 python benchmarks/bench_ray_sweep.py --repeat 1 [--ray-first]  # on one core (children inherit it)
    python benchmarks/bench_ray_sweep.py --repeat 3 --ray-head       # Ray sweeps join a running local head

With ``--ray-head`` each Ray invocation joins a local head started before it with ``ray start --head``
(``--jobs`` CPUs, no dashboard, the backend's object store size, Ray's token authentication), untimed, and
stopped after it: what a user who keeps a Ray instance up (or has a cluster) pays per sweep, without Ray's
start. The sweep is then ``ltrsched sweep --backend ray --address 127.0.0.1:PORT``. The pool's invocations
run with no Ray daemons on the machine. The head's start is timed apart (wall time). The Ray invocations' CPU
time then leaves out the head's daemons and the workers they start (outside the command's process tree).
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

WARM_UP = """workloads = ["sharegpt"]
policies = ["fcfs"]
arrival = "poisson"
rates = [2.0]
seeds = [0]
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


def _cgroup() -> tuple[Path, str] | None:
    """A fresh cgroup of this benchmark's own and the file holding its CPU time, where this user may create one
    (cgroup v1 ``cpuacct``: ``cpuacct.usage`` [ns]; v2: ``cpu.stat``'s ``usage_usec``); None otherwise."""
    for root, usage in ((Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage"), (Path("/sys/fs/cgroup"), "cpu.stat")):
        if (root / usage).exists() or (root / "cgroup.controllers").exists():
            group = root / f"bench-ray-{os.getpid()}-{time.monotonic_ns()}"
            try:
                group.mkdir()
            except OSError:
                continue
            return group, usage
    return None


def _cgroup_seconds(group: Path, usage: str) -> float:
    text = (group / usage).read_text()
    if usage == "cpu.stat":
        return int(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("usage_usec"))) / 1e6
    return int(text) / 1e9


def measure(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, str, str, int, str]:
    """Run ``cmd``: its wall time [s], the CPU time [s] (user + system) of its whole process tree (pool
    workers, Ray's daemons and workers, orphans included), its stdout, stderr and exit code, and how the CPU
    time was counted: ``cgroup`` (exact: a cgroup of its own, where one may be created; processes the command
    left behind are waited for, up to 10 s) or ``sampled`` (psutil, every 0.1 s: a process that ends between
    samples loses at most 0.1 s, and one that lives less is missed)."""
    import psutil

    cg = _cgroup()
    enter = None
    if cg is not None:
        procs = cg[0] / "cgroup.procs"

        def enter():
            procs.write_text(str(os.getpid()))

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=enter)
    if cg is not None:
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t0
        deadline = time.monotonic() + 10
        while (cg[0] / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        cpu = _cgroup_seconds(*cg)
        try:
            cg[0].rmdir()
        except OSError:
            pass
        return wall, cpu, stdout, stderr, proc.returncode, "cgroup"
    root = psutil.Process(proc.pid)
    cpu_of: dict[tuple[int, float], float] = {}
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                t = p.cpu_times()
                cpu_of[(p.pid, p.create_time())] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    return time.perf_counter() - t0, sum(cpu_of.values()), stdout, stderr, proc.returncode, "sampled"


def sweep(work: Path, backend: str, out: str, jobs: int, address: str | None = None) -> tuple[float, float, str]:
    """Wall time [s] of one ``ltrsched sweep``, the CPU time [s] of its whole process tree and how that was
    counted (see :func:`measure`); ``address``: a running Ray instance to join."""
    extra = ["--address", address] if address else []
    wall, cpu, stdout, stderr, rc, how = measure(
        [sys.executable, "-m", "ltrsched.cli", "sweep", "s.toml", "--out", out, "--backend", backend, "--jobs", str(jobs),
         *extra], cwd=work)
    if rc != 0 or "200 runs simulated, 0 reused" not in stdout:
        sys.exit(f"{backend} sweep failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return wall, cpu, how


def ray_fixed_cost(jobs: int, options: str = "", env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU time [s] of a bare local Ray start with the backend's ``ray.init`` arguments (updated
    with ``options``, Python keyword arguments), ``jobs`` trivial tasks (so that the workers Ray prestarts
    are up) and ``ray.shutdown()``, in a child process: Ray's fixed cost."""
    code = ("import ray\n"
            "from ltrsched.experiments.ray_backend import local_init_options\n"
            f"ray.init(**{{**local_init_options({jobs}), **dict({options})}})\n"
            "f = ray.remote(num_cpus=1)(lambda: 1)\n"
            f"ray.get([f.remote() for _ in range({jobs})])\n"
            "ray.shutdown()\n")
    old = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        wall, cpu, stdout, stderr, rc, _ = measure([sys.executable, "-c", code])
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    if rc != 0:
        sys.exit(f"ray.init({options}) failed:\n{stderr[-3000:]}")
    return wall, cpu


HEAD_PORT = 6391  # (not Ray's default 6379, so that a user's own instance is left alone)


def _ray_cli() -> str:
    """The ``ray`` command of this interpreter's environment."""
    return str(Path(sys.executable).with_name("ray"))


def start_head(jobs: int) -> float:
    """Start a local Ray head (``jobs`` CPUs, the backend's settings) and return the wall time [s] until it
    answers."""
    t0 = time.perf_counter()
    subprocess.run([_ray_cli(), "start", "--head", f"--port={HEAD_PORT}", "--node-ip-address=127.0.0.1", f"--num-cpus={jobs}", "--include-dashboard=false",
                    "--object-store-memory=134217728", "--disable-usage-stats"], check=True, capture_output=True)
    return time.perf_counter() - t0


def stop_head() -> None:
    subprocess.run([_ray_cli(), "stop", "--force"], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="pairs of invocations (order alternates)")
    ap.add_argument("--requests", type=int, default=200, help="requests per run")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--ray-first", action="store_true", help="Ray first in even repeats (default: the pool)")
    ap.add_argument("--ray-head", action="store_true",
                    help="Ray sweeps join a local head started (untimed) before each with `ray start --head`")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # as the backend sets it
    if args.ray_head:  # the head requires Ray's token (its default); a client joining an address sends it when told
        os.environ["RAY_AUTH_MODE"] = "token"
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        work = Path(tmp)
        (work / "s.toml").write_text(SWEEP.format(requests=args.requests))
        os.environ["LTRSCHED_CACHE"] = str(work / "cache")
        # the first run of a workload builds its cache (tokenized requests) under LTRSCHED_CACHE: a one-run sweep
        # of the same workload, untimed, so that no timed invocation pays for it
        (work / "warm.toml").write_text(WARM_UP.format(requests=args.requests))
        subprocess.run([sys.executable, "-m", "ltrsched.cli", "sweep", "warm.toml", "--out", "warm-up", "--jobs", "1"],
                       cwd=work, check=True, capture_output=True)
        walls: dict[str, list[float]] = {"process": [], "ray": []}
        cpus: dict[str, list[float]] = {"process": [], "ray": []}
        reference: dict[str, bytes] | None = None
        head_starts: list[float] = []
        differing = 0
        for i in range(args.repeat):
            order = ("process", "ray") if (i % 2 == 0) != args.ray_first else ("ray", "process")
            for backend in order:
                out = f"{backend}-{i}"
                address = None
                if backend == "ray" and args.ray_head:
                    head_starts.append(start_head(args.jobs))
                    time.sleep(5)  # (the head's daemons settle: their start is not the sweep's)
                    address = f"127.0.0.1:{HEAD_PORT}"
                try:
                    wall, cpu, how = sweep(work, backend, out, args.jobs, address)
                finally:
                    if address:
                        stop_head()
                walls[backend].append(wall)
                cpus[backend].append(cpu)
                got = files(work / out)
                if reference is None:
                    reference = got
                differing += sum(got.get(k) != v for k, v in reference.items()) + len(got.keys() - reference.keys())
                print(f"repeat {i} {backend:<8} wall {wall:6.1f} s  cpu {cpu:6.1f} s ({how})  (load {os.getloadavg()[0]:.1f})",
                      flush=True)
        fixed = [] if args.ray_head else [ray_fixed_cost(args.jobs) for _ in range(2)]
    ratios = [r / p for r, p in zip(walls["ray"], walls["process"])]
    print(f"\n200 runs x {args.requests} requests, --jobs {args.jobs}, {args.repeat} interleaved repeats")
    cpu_ratios = [r / p for r, p in zip(cpus["ray"], cpus["process"])]
    for b, w in walls.items():
        print(f"  {b:<8} wall median {statistics.median(w):6.1f} s (all {', '.join(f'{x:.1f}' for x in w)}); "
              f"cpu median {statistics.median(cpus[b]):6.1f} s (all {', '.join(f'{x:.1f}' for x in cpus[b])})")
    print(f"  ray/process wall per pair: {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}")
    print(f"  ray/process cpu per pair: {', '.join(f'{x:.2f}' for x in cpu_ratios)}; "
          f"median {statistics.median(cpu_ratios):.2f}" + (" (Ray's: the driver only)" if args.ray_head else ""))
    if fixed:
        print(f"  bare local Ray start + {args.jobs} tasks + shutdown: wall {', '.join(f'{w:.1f}' for w, _ in fixed)} s, "
              f"cpu {', '.join(f'{c:.1f}' for _, c in fixed)} s")
    if head_starts:
        print(f"  Ray sweeps joined a running local head (`ray start --head`, untimed: "
              f"{', '.join(f'{w:.1f}' for w in head_starts)} s of wall time each)")
    print(f"  files compared: {len(reference)} per invocation; differing (wall-clock fields aside): {differing}")


if __name__ == "__main__":
    main()
