"""Plug-in time per step of two versions of the adapter, stepped alternately in one process.

Timings on a shared 2-core VM swing by 2x between runs, so comparing two runs of
``bench_engine_overhead.py`` says little about a change of a few tens of percent. This script builds
two emulated engines (vLLM's real V1 scheduler, a fake model runner, steps timed by a profile) over the
same burst of ShareGPT requests: one with the adapter (``ltrsched/engine/scheduler.py``) as it is at ``--old-ref``
(the adapter's own modules as they are there, ``OLD_MODULES``; the rest of the package, policies and
batch rules included, as checked out), one with the current
code; each loop iteration steps the old engine, then the new one. It reports the step log's plug-in
time (``plugin_s``) over the steps with at least ``--min-live`` live requests, measured in thread CPU
time (robust to other processes on the core; ``--wall`` for wall time), and checks that both engines
logged the same steps.

    python benchmarks/bench_adapter_ab.py [--old-ref main] [--max-output 64] [--policies "fcfs;ltr:tau=0.6,starve=200,quantum=10"]
        [--split] [--thrash-mib 8] [--old-policies]

``--split`` also reports the adapter's own time without the code both versions share (the policy's hooks,
``on_step_ranks`` included, ``check_order``, ``form_batch``, vLLM's ``_preempt_request``); ``--thrash-mib`` writes memory before every step
(cold caches, as a CPU forward pass leaves them); ``--old-policies`` also takes ``form_batch``, LTR, MLFQ, SRTF, class and
starvation prevention from ``--old-ref`` (``OLD_POLICY_MODULES``) for the old engine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import tempfile
import time
import types

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402


#: The adapter's modules taken from ``--old-ref`` (those that exist there), in import order: the old
#: scheduler sees the old versions of the others (the rest of the package is shared).
OLD_MODULES = ("batch_shape", "live_table", "queues", "request_slots", "step_log", "scheduler")


#: With ``--old-policies``, also these modules of ``ltrsched/policies/`` from ``--old-ref``, loaded first (in import
#: order): the old engine forms its batches with the old ``form_batch`` and ranks with the old LTR, MLFQ, SRTF, class
#: and starvation prevention (other policies, and the rest of the package, are shared).
OLD_POLICY_MODULES = ("order_check", "batching", "remaining_order", "base_listing", "fixed_order", "front_order", "ltr",
                      "starvation", "mlfq", "srtf", "classification")  # (a module before those that import it)


def _old_modules(ref: str, policies: bool = False):
    """``ltrsched/engine/scheduler.py`` as it is at git ``ref``, importing the ``OLD_MODULES`` of ``ref`` (and, with
    ``policies``, the ``OLD_POLICY_MODULES``); returns it and ``{name: old policy module}``."""
    import sys

    import ltrsched.policies.registry as registry

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    wanted = [("policies", name) for name in OLD_POLICY_MODULES if policies] + [("engine", n) for n in OLD_MODULES]
    saved = {f"ltrsched.{pkg}.{name}": sys.modules.get(f"ltrsched.{pkg}.{name}") for pkg, name in wanted}
    register = registry.register
    registry.register = lambda cls: cls  # (an old policy class must not replace the registered one)
    mod, old_policies = None, {}
    try:
        for pkg, name in wanted:
            shown = subprocess.run(["git", "show", f"{ref}:ltrsched/{pkg}/{name}.py"], cwd=root,
                                   capture_output=True, text=True)
            if shown.returncode:
                continue  # not in that version
            with tempfile.NamedTemporaryFile("w", suffix=f"_old_{name}.py", delete=False) as f:
                f.write(shown.stdout)
            spec = importlib.util.spec_from_file_location(f"old_{name}", f.name)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = mod  # (dataclasses look their module up)
            spec.loader.exec_module(mod)
            os.unlink(f.name)
            sys.modules[f"ltrsched.{pkg}.{name}"] = mod  # what the next old module imports
            if pkg == "policies":
                old_policies[name] = mod
    finally:
        registry.register = register
        for key, m in saved.items():
            if m is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = m
    return mod, old_policies


def _old_policy(policy, old: dict):
    """``policy`` (as ``make_policy`` built it) with the old modules' LTR, MLFQ, SRTF, class and starvation prevention
    classes, if loaded; any other policy is itself."""
    from ltrsched.policies.classification import Classification
    from ltrsched.policies.ltr import LTR
    from ltrsched.policies.mlfq import MLFQ
    from ltrsched.policies.srtf import SRTF
    from ltrsched.policies.starvation import StarvationPrevention

    if "starvation" in old and isinstance(policy, StarvationPrevention):
        return old["starvation"].StarvationPrevention(_old_policy(policy.inner, old), policy.threshold, policy.quantum)
    if "ltr" in old and type(policy) is LTR:
        return old["ltr"].LTR(tau=policy.tau, seed=policy.seed)
    if "mlfq" in old and type(policy) is MLFQ:
        return old["mlfq"].MLFQ(policy.quantum, policy.threshold, policy.promote)
    if "srtf" in old and type(policy) is SRTF:
        return old["srtf"].SRTF()
    if "classification" in old and type(policy) is Classification:
        return old["classification"].Classification(bucket=policy.bucket, tau=policy.tau, seed=policy.seed)
    return policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-ref", default="main", help="git ref of the old adapter (ltrsched/engine/)")
    ap.add_argument("--policies", default="fcfs;ltr:tau=0.6,starve=200,quantum=10")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--max-output", type=int, default=0, help="cap output lengths [tokens] (0: ShareGPT's own)")
    ap.add_argument("--min-live", type=int, default=1500)
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--wall", action="store_true", help="wall time instead of thread CPU time")
    ap.add_argument("--old-policies", action="store_true",
                    help="the old engine also uses --old-ref's form_batch, order check, LTR, MLFQ, SRTF, class and "
                         "starvation prevention (OLD_POLICY_MODULES; without: both engines share the checked-out ones)")
    ap.add_argument("--thrash-mib", type=float, default=0.0,
                    help="write this many MiB of memory before every step of either engine, as a CPU engine's forward "
                         "pass streams weights and KV through the caches (bench_adapter_cold.py; 0: none)")
    ap.add_argument("--split", action="store_true",
                    help="also time the code both versions share (the policy's hooks, check_order, form_batch, vLLM's "
                         "_preempt_request; wrapped, ~3 us a call) in each engine, and report the adapter's own time "
                         "without it")
    args = ap.parse_args()

    from ltrsched.engine.vllm_compat import require_vllm

    require_vllm(cpu_only=True)
    import ltrsched.engine.scheduler as new_mod
    from ltrsched.engine import emulate as emulate_mod
    from ltrsched.engine.config import EngineConfig
    from ltrsched.engine.replay import request_infos
    from ltrsched.policies import make_policy
    from ltrsched.sim.profiles import load_profile
    from ltrsched.workloads import apply_arrivals, load_workload

    old_mod, old_policies = _old_modules(args.old_ref, args.old_policies)
    clock = time.perf_counter if args.wall else time.thread_time
    for mod in (old_mod, new_mod):  # plugin_s is measured with the module's time.perf_counter
        mod.time = types.SimpleNamespace(perf_counter=clock, monotonic=time.monotonic)

    wl = apply_arrivals(load_workload("sharegpt", num_requests=args.num_requests, seed=0), "burst")
    if args.max_output:
        wl = type(wl)(wl.df.with_columns(pl.col("output_tokens").clip(upper_bound=args.max_output)), wl.name)
    profile = load_profile(args.profile)
    config = EngineConfig(num_gpu_blocks=profile.num_gpu_blocks() + 1)

    def driver(mod):
        current = new_mod.PolicyScheduler
        new_mod.PolicyScheduler = mod.PolicyScheduler  # build_scheduler takes the class from this module
        try:
            return emulate_mod.emulated_driver(config, profile.step_time)
        finally:
            new_mod.PolicyScheduler = current

    drivers = {"old": driver(old_mod), "new": driver(new_mod)}
    thrash = np.ones(int(args.thrash_mib * 2**20) // 8) if args.thrash_mib > 0 else None
    shared = {"old": [0.0], "new": [0.0]}  # thread CPU time in the shared parts this step [s] (--split)
    if args.split:
        def timed(f, acc):
            def wrapper(*a, **k):
                t0 = clock()
                try:
                    return f(*a, **k)
                finally:
                    acc[0] += clock() - t0
            return wrapper

        for key, mod in (("old", old_mod), ("new", new_mod)):
            mod.form_batch = timed(mod.form_batch, shared[key])
            mod.check_order = timed(mod.check_order, shared[key])
            # vLLM's own preemption, called by the plug-in (the old class's and the new one's: both are vLLM's)
            cls = mod.PolicyScheduler
            cls._preempt_request = timed(cls._preempt_request, shared[key])
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}; "
          f"{args.num_requests} ShareGPT requests, burst, outputs <= {args.max_output or 'as drawn'}; old = "
          f"{args.old_ref}'s adapter{' and policy modules' if args.old_policies else ''}; "
          f"{'wall' if args.wall else 'thread CPU'} time"
          + (f"; {args.thrash_mib:g} MiB written before each step" if thrash is not None else ""))
    for pspec in args.policies.split(";"):
        for key, d in drivers.items():
            policy = make_policy(pspec)
            if key == "old":
                policy = _old_policy(policy, old_policies)
            if args.split:
                for hook in ("rank", "on_step", "on_step_ranks", "on_finish"):
                    if hasattr(policy, hook):
                        setattr(policy, hook, timed(getattr(policy, hook), shared[key]))
            policy.prepare(wl.policy_columns(policy.extra_output_tokens))
            d.begin(policy)
            for info in request_infos(wl, policy.extra_output_tokens):
                d.add(info)
            d.start()
        active = list(drivers.items())
        per_step = {"old": [], "new": []}
        while active:
            for key, d in active:
                if thrash is not None:
                    thrash += 1.0  # (every cache line of the buffer written)
                shared[key][0] = 0.0
                d.step()
                per_step[key].append(shared[key][0])
            active = [(k, d) for k, d in active if d.has_unfinished()]
        old, new = (d.scheduler.log.frame() for d in drivers.values())
        timing = ["plugin_s", "vllm_schedule_s"]
        same = old.drop(timing).equals(new.drop(timing))
        sel = old["num_live"].to_numpy() >= args.min_live
        po, pn = old["plugin_s"].to_numpy()[sel] * 1e3, new["plugin_s"].to_numpy()[sel] * 1e3
        print(f"{pspec:<36} {int(sel.sum()):>5} steps: old mean {po.mean():.3f} / median {np.median(po):.3f} ms, "
              f"new mean {pn.mean():.3f} / median {np.median(pn):.3f} ms, new/old {pn.mean() / po.mean():.2f}; "
              f"same steps: {same}; plan mismatches old {int(old['mismatches'].sum())}, new {int(new['mismatches'].sum())}",
              flush=True)
        if args.split and len(per_step["old"]) == old.height and len(per_step["new"]) == new.height:
            so = np.array(per_step["old"][: len(sel)])[sel] * 1e3
            sn = np.array(per_step["new"][: len(sel)])[sel] * 1e3
            print(f"{'':<36} the policy (rank, on_step(_ranks), on_finish), check_order, form_batch and vLLM's _preempt_request: "
                  f"old {so.mean():.3f}, new {sn.mean():.3f} ms; the adapter without them: old {(po - so).mean():.3f}, "
                  f"new {(pn - sn).mean():.3f} ms, new/old {(pn - sn).mean() / (po - so).mean():.2f}", flush=True)


if __name__ == "__main__":
    main()
