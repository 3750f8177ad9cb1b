"""Garbage collection inside the adapter's plug-in time on the real CPU engine (issue 13).

Runs the `bench_engine_cpu.py overhead` burst (2,000 ShareGPT requests, outputs <= 64 tokens, llama-tiny) for each
policy and times every garbage collection (``gc.callbacks``) and every call of the adapter's ``schedule()`` and
``update_from_output()`` and of vLLM's own ``schedule()`` inside it; prints how many collections of each
generation ran, how long they took, and how many fell inside the plug-in's windows.

    PYTHONPATH=$PWD taskset -c 1 python benchmarks/gc_in_plugin.py 'ltr:tau=0.6,starve=200,quantum=10' fcfs mlfq
"""

from __future__ import annotations

import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402


def main() -> None:
    from cpu_engine_burst import cpu_engine_and_burst
    from vllm.v1.core.sched.scheduler import Scheduler as VllmScheduler

    from ltrsched.engine import scheduler as adapter
    from ltrsched.policies import make_policy

    clock = time.perf_counter
    windows: list[tuple[str, float, float]] = []  # (which, start, end) [s]

    def timed(cls, name: str, which: str) -> None:
        method = getattr(cls, name)

        def wrapper(*args, **kwargs):
            start = clock()
            try:
                return method(*args, **kwargs)
            finally:
                windows.append((which, start, clock()))

        setattr(cls, name, wrapper)

    timed(adapter.PolicyScheduler, "schedule", "adapter")
    timed(adapter.PolicyScheduler, "update_from_output", "update")
    timed(VllmScheduler, "schedule", "vllm")
    collections: list[tuple[int, float, float]] = []  # (generation, start, end) [s]
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started["t"] = clock()
        else:
            collections.append((info["generation"], started.pop("t", clock()), clock()))

    gc.callbacks.append(on_gc)
    eng, wl = cpu_engine_and_burst(2000, 64, model="llama-tiny", max_num_seqs=256, max_resident_seqs=256,
                                   kv_cache_gib=2.0, enforce_eager=True)
    for spec in sys.argv[1:] or ["ltr:tau=0.6,starve=200,quantum=10", "fcfs", "mlfq"]:
        windows.clear()
        collections.clear()
        eng.run(wl, make_policy(spec))
        spans = np.array([(s, e) for _, s, e in collections]).reshape(-1, 2)
        gen = np.array([g for g, _, _ in collections], dtype=int)

        def inside(which: str) -> tuple[int, float]:
            count, seconds = 0, 0.0
            for w, s, e in windows:
                if w == which and len(spans):
                    hit = (spans[:, 0] >= s) & (spans[:, 1] <= e)
                    count += int(hit.sum())
                    seconds += float((spans[hit, 1] - spans[hit, 0]).sum())
            return count, seconds

        took = spans[:, 1] - spans[:, 0] if len(spans) else np.zeros(0)
        per_gen = ", ".join(f"gen {g}: {int((gen == g).sum())} ({1e6 * took[gen == g].mean():.0f} us each)"
                            for g in range(3) if (gen == g).any())
        (na, sa), (nv, sv), (nu, su) = inside("adapter"), inside("vllm"), inside("update")
        print(f"{spec}: {len(collections)} collections ({per_gen}); inside the adapter's schedule() {na} "
              f"({1e3 * sa:.2f} ms), of them inside vLLM's own schedule() {nv} ({1e3 * sv:.2f} ms); inside "
              f"update_from_output() {nu} ({1e3 * su:.2f} ms)", flush=True)


if __name__ == "__main__":
    main()
