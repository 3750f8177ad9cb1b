"""Scheduler plug-in overhead per step with ~2,000 live requests (issue 6 target: <= 0.5 ms).

Runs a burst of ShareGPT requests through vLLM 0.26's real V1 scheduler with the adapter (the emulated
engine: no GPU, steps timed by a profile) and reports, per step, the adapter's own CPU time (building the
live view, the policy's rank, form_batch, handing the plan to vLLM, bookkeeping) and vLLM's
``Scheduler.schedule()`` time inside it, over the steps with at least ``--min-live`` live requests.
For comparison it drives vLLM's default scheduler (FCFS, no plug-in) through the same loop.

    python benchmarks/bench_engine_overhead.py [--num-requests 2000] [--policies fcfs,ltr:tau=0.6,starve=200,quantum=10]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ltrsched.engine.emulate import emulate  # noqa: E402
from ltrsched.engine.config import EngineConfig  # noqa: E402
from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim.profiles import load_profile  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402


def default_scheduler_step_s(wl, config: EngineConfig, step_time) -> np.ndarray:
    """schedule() + update_from_output() CPU time per step of vLLM's own Scheduler, same loop, FCFS."""
    import torch
    from vllm.config import CacheConfig, DeviceConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.sampling_params import SamplingParams
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.outputs import ModelRunnerOutput
    from vllm.v1.request import Request
    from vllm.v1.structured_output import StructuredOutputManager

    from ltrsched.engine.config import model_dir

    model = ModelConfig(model=model_dir(config.model), dtype="bfloat16", seed=0, skip_tokenizer_init=True)
    sched = SchedulerConfig(max_num_seqs=config.max_num_seqs, max_num_batched_tokens=config.max_num_batched_tokens,
                            max_model_len=model.max_model_len, enable_chunked_prefill=True, async_scheduling=False,
                            is_encoder_decoder=False)
    cache = CacheConfig(block_size=16, enable_prefix_caching=False)
    cache.num_gpu_blocks = config.num_gpu_blocks
    vc = VllmConfig(scheduler_config=sched, model_config=model, cache_config=cache, device_config=DeviceConfig(device="cpu"))
    kv = KVCacheConfig(num_blocks=config.num_gpu_blocks, kv_cache_tensors=[], kv_cache_groups=[
        KVCacheGroupSpec(["layer"], FullAttentionSpec(block_size=16, num_kv_heads=1, head_size=1, dtype=torch.float32))])
    s = Scheduler(vllm_config=vc, kv_cache_config=kv, block_size=16,
                  structured_output_manager=StructuredOutputManager(vc), log_stats=False)
    for i, (p, o) in enumerate(zip(wl.df["prompt_tokens"], wl.df["output_tokens"])):
        s.add_request(Request(request_id=str(i), prompt_token_ids=[0] * p, pooling_params=None,
                              sampling_params=SamplingParams(max_tokens=o, ignore_eos=True)))
    times, live = [], []
    while s.get_num_unfinished_requests():
        live.append(s.get_num_unfinished_requests())
        t0 = time.perf_counter()
        out = s.schedule()
        t1 = time.perf_counter()
        ids = list(out.num_scheduled_tokens)
        mro = ModelRunnerOutput(req_ids=ids, req_id_to_index={r: k for k, r in enumerate(ids)},
                                sampled_token_ids=[[] if s.requests[r].is_prefill_chunk else [0] for r in ids])
        t2 = time.perf_counter()
        s.update_from_output(out, mro)
        times.append((t1 - t0) + (time.perf_counter() - t2))
    return np.array(times), np.array(live)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--policies", default="fcfs;ltr:tau=0.6;ltr:tau=0.6,starve=200,quantum=10;srtf;mlfq")
    ap.add_argument("--min-live", type=int, default=1500)
    ap.add_argument("--profile", default="a100-llama3-8b")
    args = ap.parse_args()

    wl = apply_arrivals(load_workload("sharegpt", num_requests=args.num_requests, seed=0), "burst")
    profile = load_profile(args.profile)
    config = EngineConfig(num_gpu_blocks=profile.num_gpu_blocks() + 1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"{args.num_requests} ShareGPT requests, burst, {config.num_gpu_blocks} KV blocks")
    print(f"{'scheduler':<40}{'steps':>7}{'adapter ms/step (mean / p50 / p99)':>38}{'vLLM schedule ms':>18}")
    for spec in args.policies.split(";"):
        r = emulate(wl, make_policy(spec), profile.step_time, config)
        st = r.steps.filter(r.steps["num_live"] >= args.min_live)
        plugin = st["plugin_s"].to_numpy() * 1e3
        vllm = st["vllm_schedule_s"].to_numpy() * 1e3
        print(f"{spec:<40}{st.height:>7}{plugin.mean():>16.3f} / {np.median(plugin):.3f} / {np.quantile(plugin, 0.99):.3f}"
              f"{vllm.mean():>14.3f}")
    times, live = default_scheduler_step_s(wl, config, profile.step_time)
    sel = times[live >= args.min_live] * 1e3
    print(f"{'vLLM default Scheduler (no plug-in)':<40}{len(sel):>7}{'-':>20}{sel.mean():>28.3f}  (schedule + update)")


if __name__ == "__main__":
    main()
