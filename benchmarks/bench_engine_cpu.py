"""The adapter on the real engine (vLLM's CPU build): plug-in overhead per step, and throughput with the
plug-in against vLLM's own scheduler on the same FCFS burst (issue 13 targets: <= 0.5 ms per step at
2,000 live requests; throughput within 3%).

* ``overhead``: one process replays a burst of ``--live`` ShareGPT requests (outputs capped at
  ``--max-output`` tokens so the run stays short) through ``ltrsched replay``'s driver with each policy;
  the adapter's own CPU time per step (live view, rank, form_batch, handing the plan to vLLM,
  bookkeeping: the step log's ``plugin_s``) over the steps with at least ``--min-live`` live requests.
* ``throughput``: ``LLM.generate`` of the same burst with ``scheduler_cls=PolicyScheduler`` (FCFS) and
  with vLLM's default scheduler, each in a fresh process, alternating ``--repeats`` times; output tokens
  per second of wall time, median per variant.

    python benchmarks/bench_engine_cpu.py overhead [--live 2000] [--model llama-tiny]
    python benchmarks/bench_engine_cpu.py throughput [--num-requests 400] [--repeats 5] [--model llama-100m]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def overhead(args) -> None:
    import numpy as np

    from cpu_engine_burst import cpu_engine_and_burst
    from ltrsched.policies import make_policy

    eng, wl = cpu_engine_and_burst(args.live, args.max_output, model=args.model, max_num_seqs=256,
                                   max_resident_seqs=256, kv_cache_gib=args.kv_gib, enforce_eager=True)
    print(f"engine: {eng.describe()}; {wl.df.height} requests, outputs <= {args.max_output}")
    for spec in args.policies.split(";"):
        r = eng.run(wl, make_policy(spec))
        steps = r.steps.filter(r.steps["num_live"] >= args.min_live)
        plug = steps["plugin_s"].to_numpy() * 1e3
        sched = steps["vllm_schedule_s"].to_numpy() * 1e3
        cycle = steps["cycle"].drop_nans().to_numpy() * 1e3
        print(f"{spec:<36} {len(plug):>5} steps with >= {args.min_live} live: plug-in mean {plug.mean():.3f} ms "
              f"(p50 {np.median(plug):.3f}, p99 {np.quantile(plug, 0.99):.3f}); vLLM schedule() inside "
              f"{sched.mean():.3f} ms; step cycle median {np.median(cycle):.1f} ms; "
              f"{r.summary['mismatched_steps']} steps differing from the plan")


_CHILD = r"""
import json, os, sys, time
os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
variant, model, n, max_output, kv_gib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
from ltrsched.engine.platform import pin_threads
pin_threads(1)
sys.path.insert(0, os.path.dirname(sys.argv[6]))
from cpu_engine_burst import sharegpt_burst
from ltrsched.engine.config import model_dir
from ltrsched.engine.vllm_compat import require_vllm
require_vllm()
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt
import numpy as np
kwargs = dict(model=model_dir(model), load_format="dummy", skip_tokenizer_init=True, dtype="float32", block_size=128,
              max_num_seqs=256, max_num_batched_tokens=768, enable_prefix_caching=False, async_scheduling=False,
              enable_chunked_prefill=True, kv_cache_memory_bytes=int(kv_gib * 2**30), enforce_eager=True, seed=0,
              disable_log_stats=True)
if variant == "plugin":
    from ltrsched.engine.scheduler import PolicyScheduler
    from ltrsched.engine.setup import EngineSetup, install
    from ltrsched.policies import make_policy
    install(EngineSetup(policy=make_policy("fcfs"), strict=True))
    kwargs["scheduler_cls"] = PolicyScheduler
llm = LLM(**kwargs)
wl = sharegpt_burst(n, max_output)
rng = np.random.default_rng(0)
vocab = llm.llm_engine.model_config.get_vocab_size() - 256
prompts = [TokensPrompt(prompt_token_ids=rng.integers(1, vocab, p).tolist()) for p in wl.df["prompt_tokens"]]
params = [SamplingParams(max_tokens=o, ignore_eos=True, detokenize=False) for o in wl.df["output_tokens"]]
llm.generate(prompts[:8], params[:8], use_tqdm=False)  # warm-up
t0 = time.perf_counter()
out = llm.generate(prompts, params, use_tqdm=False)
wall = time.perf_counter() - t0
tokens = sum(len(o.outputs[0].token_ids) for o in out)
print("RESULT " + json.dumps({"variant": variant, "wall_s": wall, "tokens": tokens, "tok_s": tokens / wall}))
"""


def throughput(args) -> None:
    import numpy as np

    results: dict[str, list[float]] = {"default": [], "plugin": []}
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"}
    for k in range(args.repeats):
        for variant in (("default", "plugin") if k % 2 == 0 else ("plugin", "default")):
            out = subprocess.run([sys.executable, "-c", _CHILD, variant, args.model, str(args.num_requests),
                                  str(args.max_output), str(args.kv_gib), os.path.abspath(__file__)],
                                 capture_output=True, text=True, env=env)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{variant} run failed:\n{out.stderr[-3000:]}")
            r = json.loads(line[7:])
            results[variant].append(r["tok_s"])
            print(f"repeat {k} {variant:<8} {r['tok_s']:8.1f} tok/s ({r['tokens']} tokens in {r['wall_s']:.1f} s)",
                  flush=True)
    d, p = np.median(results["default"]), np.median(results["plugin"])
    print(f"median: default scheduler {d:.1f} tok/s, ltrsched PolicyScheduler (fcfs) {p:.1f} tok/s: "
          f"plug-in/default = {p / d:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["overhead", "throughput"])
    ap.add_argument("--model", default="llama-tiny")
    ap.add_argument("--live", type=int, default=2000)
    ap.add_argument("--min-live", type=int, default=1800)
    ap.add_argument("--num-requests", type=int, default=400)
    ap.add_argument("--max-output", type=int, default=64)
    ap.add_argument("--kv-gib", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--policies", default="fcfs;ltr:tau=0.6,starve=200,quantum=10;mlfq")
    args = ap.parse_args()
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}")
    overhead(args) if args.what == "overhead" else throughput(args)


if __name__ == "__main__":
    main()
