"""Ray's fixed cost per invocation with each ``ray.init`` option set (issue 15): what a local instance's
start can shed.

Each option set is a bare local Ray start in a child process: the backend's own ``ray.init`` arguments
(:func:`~ltrsched.experiments.ray_backend.local_init_options`) updated with the set's, ``--jobs`` trivial
tasks (so that the workers Ray prestarts are up, as a sweep needs them) and ``ray.shutdown()``. Reported:
wall time and the CPU time of the whole process tree (the driver, Ray's daemons and workers; exact where
a cgroup may be created, see ``bench_ray_sweep.measure``), each set ``--repeat`` times, the sets
interleaved. On a shared machine, run it on one core (``taskset -c 0``) and compare CPU times.

    taskset -c 0 python benchmarks/bench_ray_start.py --repeat 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ray_sweep import ray_fixed_cost  # noqa: E402

#: name -> (extra ``ray.init`` keyword arguments as Python source, environment)
OPTION_SETS: dict[str, tuple[str, dict[str, str]]] = {
    # Ray's defaults: the dashboard if installed (with only ``ray`` installed, its minimal API server and agents
    # start either way), object store 30% of memory, logging at INFO, workers' output forwarded, usage stats on
    "ray defaults": ("include_dashboard=None, object_store_memory=None, logging_level=20, log_to_driver=True",
                     {"RAY_USAGE_STATS_ENABLED": "1"}),
    "backend": ("", {"RAY_USAGE_STATS_ENABLED": "0"}),
    "backend, metrics collection off": ("_system_config={'enable_metrics_collection': False}",
                                        {"RAY_USAGE_STATS_ENABLED": "0"}),
    "backend, metrics + task events + timeline off": (
        "_system_config={'enable_metrics_collection': False, 'task_events_report_interval_ms': 0, "
        "'enable_timeline': False}", {"RAY_USAGE_STATS_ENABLED": "0"}),
    "backend, no worker prestart": (
        "_system_config={'enable_worker_prestart': False, 'prestart_worker_first_driver': False}",
        {"RAY_USAGE_STATS_ENABLED": "0"}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="the instance's CPUs and the tasks run")
    args = ap.parse_args()
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in OPTION_SETS}
    for i in range(args.repeat):
        for name, (options, env) in OPTION_SETS.items():
            wall, cpu = ray_fixed_cost(args.jobs, options, env)
            got[name].append((wall, cpu))
            print(f"repeat {i} {name:<46} wall {wall:5.1f} s  cpu {cpu:5.2f} s  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    print(f"\nbare local Ray start + {args.jobs} tasks + shutdown, {args.repeat} interleaved repeats")
    for name, xs in got.items():
        print(f"  {name:<46} cpu median {statistics.median(c for _, c in xs):5.2f} s "
              f"(all {', '.join(f'{c:.2f}' for _, c in xs)}); wall median {statistics.median(w for w, _ in xs):5.1f} s")


if __name__ == "__main__":
    main()
