"""Where the adapter's plug-in time goes, statement by statement, on the emulated engine.

Rewrites the adapter's step functions (``PolicyScheduler.schedule``/``update_from_output`` and the helpers they
call in ``ltrsched/engine/``) so that every statement first appends ``(line, perf_counter_ns())`` to a list, then
serves a ShareGPT burst through vLLM's real V1 scheduler with a fake model runner (``emulate``). The time from one
mark to the next is the statement's (a call into an instrumented function is charged to the callee's lines, vLLM's
own ``schedule()`` to the line that calls it). Reports the mean per step over the steps with at least
``--min-live`` live requests, wall time in us (each mark adds ~0.1 us; run pinned, on a quiet core).

    python benchmarks/profile_adapter_lines.py [--policy fcfs] [--max-output 64] [--top 40] [--thrash-mib 64]
        [--policy-lines]

``--thrash-mib`` writes that much memory before each step (cold caches, as on the CPU engine);
``--policy-lines`` also marks the policies' rank paths (``POLICY_TARGETS``).
"""

from __future__ import annotations

import argparse
import ast
import collections
import importlib
import inspect
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

#: module -> qualified names of the functions whose statements are marked
TARGETS = {
    "ltrsched.policies.step_shape": ("split_step_shape",),
    "ltrsched.policies.batching": ("form_batch", "_blocks_added", "_lowest_residents"),
    "ltrsched.engine.request_slots": ("RequestSlots.gather", "RequestSlots.gather_ids", "RequestSlots.release"),
    "ltrsched.engine.live_table": ("LiveTable.scheduled", "LiveTable.stepped", "LiveTable.finished",
                                   "LiveTable.preempted", "LiveTable.live_columns"),
    "ltrsched.engine.scheduler": ("PolicyScheduler.schedule", "PolicyScheduler.update_from_output",
                                  "PolicyScheduler._check", "PolicyScheduler._sampled"),
}
#: module -> methods marked in place (the classes stay the ones the policy registry holds); with ``--policy-lines``
POLICY_TARGETS = {
    "ltrsched.policies.starvation": ("StarvationPrevention.rank", "StarvationPrevention._update_promoted",
                                     "StarvationPrevention._front_order", "StarvationPrevention.on_finish"),
    "ltrsched.policies.ltr": ("LTR.on_finish",),
    "ltrsched.policies.front_order": ("FrontOrder.follow", "FrontOrder._leave", "FrontOrder.order"),
    "ltrsched.policies.fixed_order": ("FixedKeyOrder.order", "FixedKeyOrder._shift"),
    "ltrsched.policies.mlfq": ("MLFQ.rank", "MLFQ.on_step"),
    "ltrsched.policies.fcfs": ("FCFS.rank",),
}

_MARKS: list = []


class _Marker(ast.NodeTransformer):
    def __init__(self, module: str, wanted: tuple[str, ...]) -> None:
        self.module, self.wanted, self.stack = module, wanted, []

    def visit_ClassDef(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()
        return node

    def visit_FunctionDef(self, node):
        qual = ".".join(self.stack + [node.name])
        if qual in self.wanted:
            node.body = self._mark_body(node.body, qual)
            end = self._mark(f"{qual}:return", node.lineno)
            node.body = [ast.Try(body=node.body, handlers=[], orelse=[], finalbody=[end])]
        return node

    def _mark(self, label: str, lineno: int) -> ast.stmt:
        call = ast.parse(f"_LP_APPEND(({label!r}, _LP_NS()))").body[0]
        return ast.copy_location(call, ast.Pass(lineno=lineno, col_offset=0))

    def _mark_body(self, body: list, qual: str) -> list:
        out = []
        for stmt in body:
            out.append(self._mark(f"{self.module.rsplit('.', 1)[-1]}:{stmt.lineno}", stmt.lineno))
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt) and not isinstance(stmt, ast.FunctionDef):
                    setattr(stmt, field, self._mark_body(inner, qual))
            for h in getattr(stmt, "handlers", []) or []:
                h.body = self._mark_body(h.body, qual)
            out.append(stmt)
        return out


def instrument(policy_lines: bool = False) -> dict[str, list[str]]:
    """Re-execute the target modules with marks; returns module -> its source lines. With ``policy_lines`` the
    :data:`POLICY_TARGETS` too: their classes are kept (the registry holds them), the marked methods put on them."""
    sources = {}
    targets = {**TARGETS, **POLICY_TARGETS} if policy_lines else TARGETS
    for name, wanted in targets.items():
        mod = importlib.import_module(name)
        src = inspect.getsource(mod)
        tree = _Marker(name, wanted).visit(ast.parse(src))
        ast.fix_missing_locations(tree)
        mod.__dict__["_LP_APPEND"] = _MARKS.append
        mod.__dict__["_LP_NS"] = time.perf_counter_ns
        classes = {k: v for k, v in vars(mod).items() if isinstance(v, type) and v.__module__ == name}
        exec(compile(tree, mod.__file__, "exec"), mod.__dict__)
        if name in POLICY_TARGETS:
            for qual in wanted:
                cls_name, meth = qual.split(".")
                setattr(classes[cls_name], meth, vars(mod)[cls_name].__dict__[meth])
            mod.__dict__.update(classes)
        sources[name.rsplit(".", 1)[-1]] = src.splitlines()
    return sources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="fcfs")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--max-output", type=int, default=64)
    ap.add_argument("--min-live", type=int, default=1500)
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--thrash-mib", type=float, default=0.0,
                    help="memory written before each step [MiB], as a CPU forward pass streams weights and KV")
    ap.add_argument("--policy-lines", action="store_true", help="also mark the policies' rank paths (POLICY_TARGETS)")
    args = ap.parse_args()

    from ltrsched.engine.vllm_compat import require_vllm

    require_vllm(cpu_only=True)
    sources = instrument(args.policy_lines)
    from cpu_engine_burst import sharegpt_burst

    from ltrsched.engine import emulate
    from ltrsched.engine.config import EngineConfig
    from ltrsched.engine.replay import request_infos
    from ltrsched.policies import make_policy
    from ltrsched.sim.profiles import load_profile
    from ltrsched.workloads import apply_arrivals

    wl = apply_arrivals(sharegpt_burst(args.num_requests, args.max_output or None), "burst")
    profile = load_profile(args.profile)
    config = EngineConfig(num_gpu_blocks=profile.num_gpu_blocks() + 1)
    driver = emulate.emulated_driver(config, profile.step_time)
    policy = make_policy(args.policy)
    policy.prepare(wl.policy_columns(policy.extra_output_tokens))
    driver.begin(policy)
    for info in request_infos(wl, policy.extra_output_tokens):
        driver.add(info)
    driver.start()
    table = driver.scheduler.table
    per_line: dict[str, list] = collections.defaultdict(list)
    steps = 0
    totals = []
    thrash = np.ones(int(args.thrash_mib * 2**20) // 8) if args.thrash_mib > 0 else None
    while driver.has_unfinished():
        if thrash is not None:
            thrash += 1.0  # write every cache line of the buffer
        counted = len(table.live) >= args.min_live
        _MARKS.clear()
        driver.step()
        if not counted or not _MARKS:
            continue
        steps += 1
        marks = _MARKS[:]
        total = 0
        spent: dict[str, int] = collections.defaultdict(int)
        for (label, t0), (_, t1) in zip(marks, marks[1:]):
            if label.endswith(":return"):
                continue  # between functions: vLLM's or the driver's time
            spent[label] += t1 - t0
        for label, ns in spent.items():
            per_line[label].append(ns)
            if "super()" not in _line(sources, label):
                total += ns
        totals.append(total)
    print(f"{args.policy}: {steps} steps with >= {args.min_live} live; marked time per step (vLLM's calls left out) "
          f"median {np.median(totals) / 1e3:.1f} us, mean {np.mean(totals) / 1e3:.1f} us (the sum of the medians below: "
          f"{sum(np.median(v + [0] * (steps - len(v))) for v in per_line.values() if v is not None) / 1e3:.1f} us)")
    print("median per step [us], mean per step [us] (a line not run in a step counts 0), line")
    rows = {k: np.array(v + [0] * (steps - len(v))) / 1e3 for k, v in per_line.items() if "super()" not in _line(sources, k)}
    for label, v in sorted(rows.items(), key=lambda kv: -np.median(kv[1]) - 1e-3 * kv[1].mean())[: args.top]:
        print(f"{np.median(v):7.2f} {v.mean():7.2f}  {label:<16} {_line(sources, label).strip()[:90]}")


def _line(sources, label: str) -> str:
    mod, _, line = label.partition(":")
    try:
        return sources[mod][int(line) - 1]
    except (KeyError, ValueError, IndexError):
        return ""


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
