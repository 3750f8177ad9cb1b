"""Peak RSS and CPU time of one run of ``bench_record_steps.py``'s burst (20,000 requests, 32 blocks, FCFS, the first
``STOP`` simulated seconds), with (``1``) or without (``0``) the step trace, in this fresh process. Run both and
subtract: the difference in peak RSS is what the trace holds while the run goes (and the steps frame made from it).

    python benchmarks/bench_step_trace_memory.py 1 3000; python benchmarks/bench_step_trace_memory.py 0 3000
"""

from __future__ import annotations

import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_record_steps import burst  # noqa: E402

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402


def main() -> None:
    record, stop = bool(int(sys.argv[1])), float(sys.argv[2])
    wl = burst(20_000)
    t = time.process_time()
    r = simulate(wl, make_policy("fcfs"), SimConfig(num_gpu_blocks=32, record_steps=record, stop_time=stop))
    cpu = time.process_time() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"record_steps={record} steps={r.summary['steps']} cpu={cpu:.2f} s peak_rss={peak:.1f} MB")


if __name__ == "__main__":
    main()
