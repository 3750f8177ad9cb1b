"""The adapter's plug-in time per step with warm and with cold CPU caches (issue 13: why the plug-in costs
more on the real CPU engine than on the emulated one).

On the CPU engine the model's forward pass runs on the same core between two of the plug-in's calls and
streams the weights and the KV cache through the core's caches; on the emulated engine (and on a GPU host,
where the forward runs on the GPU) nothing does. This script builds the emulated engine (vLLM's real V1
scheduler, a fake model runner, steps timed by a profile) over a ShareGPT burst and, in the "cold" runs,
writes ``--thrash-mib`` MiB of memory before every step, as a forward pass would; "warm" runs step as they
are. Warm and cold alternate (warm, cold, cold, warm). It reports the step log's plug-in time
(``plugin_s``, thread CPU time) over the steps with at least ``--min-live`` live requests and, with
``--sections``, each part of the plug-in (wrapped functions, thread CPU time; the wrappers add ~1 us each).

    python benchmarks/bench_adapter_cold.py [--policy fcfs] [--thrash-mib 64] [--sections] [--modes cold,cold]

Two trees compared (a change to the policies or ``form_batch``, which ``bench_adapter_ab.py`` shares between its
two engines): run this script with each tree first on ``PYTHONPATH``, alternating, ``--modes cold,cold``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import time
import types

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

#: The plug-in's parts timed with ``--sections``: (module or class path, attribute names).
SECTIONS = (
    ("ltrsched.engine.scheduler", ("form_batch", "check_order", "split_step_shape")),
    ("ltrsched.engine.live_table.LiveTable", ("live_columns", "scheduled", "stepped", "finished", "preempted")),
    ("ltrsched.engine.scheduler.PolicyScheduler", ("_check", "_sampled")),
    ("ltrsched.engine.request_slots.RequestSlots", ("gather", "gather_ids", "release")),
    ("ltrsched.engine.step_log.StepLog", ("record",)),
)


class SectionTimer:
    """Thread CPU time spent in wrapped functions while ``on`` [s per name]."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = collections.defaultdict(float)
        self.on = False

    def wrap(self, name: str, f):
        clock = time.thread_time

        @functools.wraps(f)
        def timed(*args, **kwargs):
            t0 = clock()
            try:
                return f(*args, **kwargs)
            finally:
                if self.on:
                    self.spent[name] += clock() - t0

        return timed

    def install(self) -> None:
        import importlib

        for path, names in SECTIONS:
            mod_path, _, cls_name = path.rpartition(".")
            try:
                owner = getattr(importlib.import_module(mod_path), cls_name)
            except (ImportError, AttributeError):
                owner = importlib.import_module(path)
            for name in names:
                label = name if isinstance(owner, types.ModuleType) else f"{owner.__name__}.{name}"
                setattr(owner, name, self.wrap(label, getattr(owner, name)))


def run(policy_spec: str, wl, config, profile, thrash: np.ndarray | None, min_live: int, timer: SectionTimer | None):
    """One emulated run; ``(plug-in ms per step, {section: ms per step})`` over the steps with >= ``min_live``."""
    from ltrsched.engine import emulate
    from ltrsched.engine.replay import request_infos
    from ltrsched.policies import make_policy

    driver = emulate.emulated_driver(config, profile.step_time)
    policy = make_policy(policy_spec)
    if timer is not None:
        policy.rank = timer.wrap("policy.rank", policy.rank)
    policy.prepare(wl.policy_columns(policy.extra_output_tokens))
    driver.begin(policy)
    for info in request_infos(wl, policy.extra_output_tokens):
        driver.add(info)
    driver.start()
    totals: dict[str, float] = collections.defaultdict(float)
    table = driver.scheduler.table
    while driver.has_unfinished():
        if thrash is not None:
            thrash += 1.0  # write every cache line of the buffer, as a forward pass streams weights and KV
        counted = len(table.live) >= min_live
        if timer is not None:
            timer.spent.clear()
            timer.on = counted
        driver.step()
        if timer is not None and counted:
            for k, v in timer.spent.items():
                totals[k] += v
    log = driver.scheduler.log.frame()
    sel = log["num_live"].to_numpy() >= min_live
    n = int(sel.sum())
    return float(log["plugin_s"].to_numpy()[sel].mean() * 1e3), {k: v * 1e3 / n for k, v in totals.items()}, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="fcfs")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--max-output", type=int, default=64, help="cap output lengths [tokens] (0: ShareGPT's own)")
    ap.add_argument("--min-live", type=int, default=1500)
    ap.add_argument("--thrash-mib", type=float, default=64.0, help="memory written before each cold step [MiB]")
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--sections", action="store_true", help="also time each part of the plug-in")
    ap.add_argument("--modes", default="warm,cold,cold,warm",
                    help="the runs, in order (e.g. 'cold,cold' for an A/B of two trees run one after the other)")
    args = ap.parse_args()

    from ltrsched.engine.vllm_compat import require_vllm

    require_vllm(cpu_only=True)
    import ltrsched.engine.scheduler as scheduler_mod
    from ltrsched.engine.config import EngineConfig
    from ltrsched.sim.profiles import load_profile
    from ltrsched.workloads import apply_arrivals

    from cpu_engine_burst import sharegpt_burst

    # plugin_s is measured with the module's time.perf_counter: thread CPU time instead
    scheduler_mod.time = types.SimpleNamespace(perf_counter=time.thread_time, monotonic=time.monotonic)
    timer = SectionTimer() if args.sections else None
    if timer is not None:
        timer.install()
    wl = apply_arrivals(sharegpt_burst(args.num_requests, args.max_output or None), "burst")
    profile = load_profile(args.profile)
    config = EngineConfig(num_gpu_blocks=profile.num_gpu_blocks() + 1)
    buf = np.ones(max(1, int(args.thrash_mib * 2**20) // 8))
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}; "
          f"{args.num_requests} ShareGPT requests, burst, outputs <= {args.max_output or 'as drawn'}; "
          f"{args.policy}; cold = {args.thrash_mib:g} MiB written before each step; thread CPU time", flush=True)
    results: dict[str, list] = {"warm": [], "cold": []}
    modes = args.modes.split(",")
    if not modes or set(modes) - {"warm", "cold"}:
        raise SystemExit(f"--modes must list warm and cold runs, got {args.modes!r}")
    for mode in modes:
        plug, parts, n = run(args.policy, wl, config, profile, buf if mode == "cold" else None, args.min_live, timer)
        results[mode].append((plug, parts))
        print(f"{mode}: {n} steps with >= {args.min_live} live, plug-in mean {plug:.3f} ms", flush=True)
    def mean(values: list) -> float:
        return float(np.mean(values)) if values else float("nan")

    warm = mean([p for p, _ in results["warm"]])
    cold = mean([p for p, _ in results["cold"]])
    print(f"plug-in mean: warm {warm:.3f} ms, cold {cold:.3f} ms, cold/warm {cold / warm:.2f}")
    if timer is not None:
        names = sorted({k for _, parts in results["cold"] for k in parts},
                       key=lambda k: -np.mean([parts.get(k, 0.0) for _, parts in results["cold"]]))
        print(f"{'part':<30} {'warm [ms]':>9} {'cold [ms]':>9} cold/warm")
        for name in names + ["(rest)"]:
            if name == "(rest)":
                w = warm - mean([sum(parts.values()) for _, parts in results["warm"]])
                c = cold - mean([sum(parts.values()) for _, parts in results["cold"]])
            else:
                w = mean([parts.get(name, 0.0) for _, parts in results["warm"]])
                c = mean([parts.get(name, 0.0) for _, parts in results["cold"]])
            print(f"{name:<30} {w:9.3f} {c:9.3f} {c / w if w else float('nan'):9.2f}")


if __name__ == "__main__":
    main()
