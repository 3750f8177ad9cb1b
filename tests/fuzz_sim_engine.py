"""A seeded differential fuzz of the simulator (``semantics="vllm-v1"``) against the emulated engine (vLLM's real V1
scheduler with the adapter and no model, :func:`ltrsched.engine.emulate.emulate`).

Each case draws a policy with random parameters (every built-in: fcfs, srtf, ltr on a score column or on oracle
scores at a tau, ltr with starvation prevention, mlfq, po, class, oracle; a fresh random order every step; the plugin
example ``examples/policies/short_prompt_aging.py``), an engine configuration (KV blocks from barely the largest
request to plenty, block sizes 8-128, token budgets 1-2,048, ``max_num_seqs`` 1-64, a larger resident cap or none, the
context, at most what the cache holds, as vLLM's engine starts only then; or, in about a fifth of the cases, no
context at all on a small cache, which then bounds the model's and the profile's context on each side, with requests of
that bound and one token more; or, in about a tenth, a context beyond what a cache holds, which both sides refuse as
vLLM refuses to start on it), a step-time profile and a workload (bursts, Poisson at random rates, arrival ties,
1-token prompts and outputs, prompts at the context limit, outputs long relative to the cache, duplicated lengths, 2-200
requests). The
engine side is configured as ``validate`` pairs it with the simulator (:meth:`EngineFacts.sim_config`): one KV block
more (vLLM's null block), recompute preemption, chunked prefill (the only mode the adapter runs); each side's default
watermark (as ``simulate --semantics vllm-v1`` and ``replay --emulate`` take it), or now and then one both are given.

A case agrees when both runs end with the same per-request results (:data:`COMPARED`, exactly up to 1e-9 s), the same
number of steps, no step where vLLM left the plan, every request served its planned tokens; or when both refuse the
case with the same one-line error (a preemption thrash both stop at the same step: the guards' bounds are lowered,
:data:`QUICK_GUARDS`, unless ``--full-guards``). A divergence is minimised (fewest requests that still diverge) and
printed as a :class:`Case` literal with the first differing request, step and policy view.

Run outside the suite (one engine build, ~30-80 s on first use, then ~0.1-3 s a case)::

    PYTHONPATH=$PWD:$PWD/tests python tests/fuzz_sim_engine.py --cases 300 --seed 1
    PYTHONPATH=$PWD:$PWD/tests python tests/fuzz_sim_engine.py --cases 100 --watermark-share 1  # a watermark in each

``tests/test_fuzz_sim_engine.py`` keeps a small seeded slice in the suite.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

#: The per-request columns compared (those tests/test_engine_emulated.py compares).
COMPARED = ("first_scheduled_time", "first_token_time", "finish_time", "max_token_gap", "num_preemptions",
            "max_idle_steps", "generated_tokens")
#: The step-log columns both sides record, compared to name the first differing step.
STEP_COLUMNS = ("start", "num_prefill_tokens", "num_decode_seqs", "num_evicted", "num_finished", "blocks_in_use")
#: Largest difference taken as equal [s].
ATOL = 1e-9
#: The plugin example the fuzz draws specs for.
PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "policies" / "short_prompt_aging.py"
#: The spec of a fresh random order every step (:class:`RandomOrder`; no built-in policy does it).
RANDOM = "fuzz-random"
#: Steps whose policy views a minimisation compares at most.
MINIMISE_CALLS = 500
#: The outcome of a case past its time limit.
SLOW = "slow"
#: The context both sides take where a case gives none, before its KV cache bounds it [tokens]: the emulated engine's
#: model's (llama-3-8b's config.json), and so the fuzz profile's.
MODEL_CONTEXT = 8192
#: The share of the cases that give no context (:func:`draw_case`).
UNBOUNDED_SHARE = 0.2
#: The share of the cases that give a context beyond what their cache holds, which both sides refuse as vLLM does at
#: its start (:func:`draw_case`).
BEYOND_SHARE = 0.1


class Hang(BaseException):
    """Raised by the alarm when a case runs past its time limit."""


def random_order_class():
    """The emulated-engine tests' :class:`RandomOrder` (a fresh random order every step: stresses preemption, pauses,
    the resident cap and chunk edges), imported on first use (importing ``ltrsched.policies`` takes a second)."""
    from test_engine_emulated import RandomOrder

    return RandomOrder


def make_case_policy(spec: str):
    """A fresh policy object of ``spec``: a built-in's, the plugin example's (``short-prompt:...``), or
    ``fuzz-random:seed=K``."""
    from ltrsched.plugin_scope import command_plugins
    from ltrsched.policies import make_policy
    from ltrsched.policies.registry import load_plugin

    if spec.startswith(RANDOM):
        seed = int(spec.partition("seed=")[2] or 0)
        return random_order_class()(seed)
    if spec.startswith("short-prompt"):
        with command_plugins():  # (registered for this block only, as a command's --plugin is)
            load_plugin(str(PLUGIN))
            return make_policy(spec)
    return make_policy(spec)


@dataclass(frozen=True)
class Case:
    """One differential case. ``blocks``: the simulator's KV blocks (the engine gets one more, vLLM's null block);
    ``budget``/``seqs``: the step's token budget and sequence cap; ``resident``: vLLM's own ``max_num_seqs`` (None:
    ``seqs``); ``profile``: the linear step time's (overhead [s], per token [s], per decode KV token [s], per prefill
    attention pair [s]); the workload's columns per request (``score``, ``predicted``, ``po``: None when absent);
    ``watermark``: both sides' (None: each one's default, as ``simulate --semantics vllm-v1`` and ``replay --emulate``
    take it). ``max_model_len`` None: neither side is given a context, so each takes :data:`MODEL_CONTEXT` bounded by
    its KV cache (the engine's ``default_context_bound``, the simulator's ``cache_bound``: ``blocks x block_size``);
    ``sized``: the simulator's blocks come from its profile's memory (``num_gpu_blocks`` None), not given."""

    seed: int
    spec: str
    prompts: tuple[int, ...]
    outputs: tuple[int, ...]
    arrivals: tuple[float, ...]
    blocks: int
    block_size: int
    budget: int
    seqs: int
    resident: int | None
    max_model_len: int | None
    profile: tuple[float, float, float, float]
    score: tuple[float, ...] | None = None
    predicted: tuple[float, ...] | None = None
    po: tuple[float, ...] | None = None
    watermark: float | None = None
    sized: bool = False

    @property
    def n(self) -> int:
        return len(self.prompts)

    def keep(self, rows) -> "Case":
        """This case with only the requests ``rows`` (positions), renumbered from 0."""
        rows = list(rows)

        def pick(col):
            return None if col is None else tuple(col[i] for i in rows)

        return replace(self, prompts=pick(self.prompts), outputs=pick(self.outputs), arrivals=pick(self.arrivals),
                       score=pick(self.score), predicted=pick(self.predicted), po=pick(self.po))

    def short(self) -> str:
        return (f"seed={self.seed} spec={self.spec!r} n={self.n} blocks={self.blocks} block_size={self.block_size} "
                f"budget={self.budget} seqs={self.seqs} resident={self.resident} max_model_len={self.max_model_len}"
                + (" sized" if self.sized else ""))

    def literal(self) -> str:
        """This case as a Python literal (``Case(**...)``), to paste into a regression test."""
        d = asdict(self)
        return "Case(" + ", ".join(f"{k}={v!r}" for k, v in d.items()
                                   if (v is not None or k in ("resident", "max_model_len"))
                                   and not (k == "sized" and not v)) + ")"


# ---------------------------------------------------------------------------------------------------------------------
# drawing cases

def _spec(rng: np.random.Generator, has_score: bool, has_predicted: bool, has_po: bool) -> str:
    """A random policy spec."""
    def starve() -> str:
        return f",starve={int(rng.integers(1, 40))},quantum={int(rng.integers(1, 12))}" if rng.random() < 0.35 else ""

    tau = lambda: f"{rng.choice([0.05, 0.3, 0.5, 0.62, 0.9, 1.0]):g}"  # noqa: E731  (tau <= 0 is refused alike)
    seed = lambda: int(rng.integers(0, 1000))  # noqa: E731
    kind = rng.choice(["fcfs", "srtf", "ltr-tau", "ltr-score", "mlfq", "po", "class", "oracle", RANDOM, "plugin"],
                      p=[0.08, 0.1, 0.14, 0.08, 0.16, 0.1, 0.08, 0.08, 0.1, 0.08])
    if kind == "ltr-score" and not has_score:
        kind = "ltr-tau"
    if kind in ("fcfs", "srtf"):
        s = starve()
        return kind + (":" + s[1:] if s else "")
    if kind == "ltr-tau":
        return f"ltr:tau={tau()},seed={seed()}" + starve()
    if kind == "ltr-score":
        s = starve()
        return "ltr" + (":" + s[1:] if s else "")
    if kind == "mlfq":
        spec = (f"mlfq:quantum={rng.choice([0.005, 0.01, 0.02, 0.03, 0.1, 0.5]):g},"
                f"threshold={rng.choice([1.0, 1.5, 2.0, 4.0]):g},promote={int(rng.choice([0, 0, 5, 20, 100]))}")
        if rng.random() < 0.3:
            spec += f",starve={int(rng.integers(1, 40))},starve_quantum={int(rng.integers(1, 12))}"
        return spec
    if kind == "po":
        spec = f"po:tokens={int(rng.choice([0, 1, 3, 15]))}"
        if not has_po or rng.random() < 0.5:
            spec += f",tau={tau()},seed={seed()}"
        return spec + starve()
    if kind == "class":
        spec = "class:" + (f"bucket={int(rng.choice([1, 10, 100, 820]))}," if rng.random() < 0.6 else "")
        return spec + f"tau={tau()},seed={seed()}" + starve()
    if kind == "oracle":
        return f"oracle:tau={tau()},seed={seed()}" + starve()
    if kind == RANDOM:
        return f"{RANDOM}:seed={seed()}"
    return f"short-prompt:age={rng.choice([0.0, 0.5, 5.0, 100.0]):g}"


def _arrivals(rng: np.random.Generator, n: int) -> np.ndarray:
    """Arrival times [s]: a burst, Poisson at a random rate, ties on a coarse grid, or groups of bursts."""
    kind = rng.choice(["burst", "poisson", "ties", "groups"], p=[0.25, 0.4, 0.15, 0.2])
    if kind == "burst":
        return np.zeros(n)
    rate = float(np.exp(rng.uniform(np.log(2.0), np.log(2000.0))))  # [requests/s]
    t = np.cumsum(rng.exponential(1 / rate, n))
    if rng.random() < 0.3:
        t -= t[0]  # the first at t = 0
    if kind == "ties":
        t = np.round(t * rate / 3) / (rate / 3)  # about three arrivals per grid point
    elif kind == "groups":
        t = np.sort(rng.choice(np.round(t[: max(1, n // 5)], 6), n))
    return np.round(np.sort(t), 9)


def _lengths(rng: np.random.Generator, n: int, top: int) -> np.ndarray:
    """``n`` lengths in [1, top] [tokens], from one of several shapes."""
    kind = rng.choice(["uniform", "ones", "duplicated", "skewed", "mixed"], p=[0.35, 0.1, 0.2, 0.2, 0.15])
    if kind == "ones":
        return np.ones(n, dtype=np.int64)
    if kind == "duplicated":
        return rng.choice(rng.integers(1, top + 1, int(rng.integers(1, 4))), n)
    if kind == "skewed":
        return np.minimum(top, np.ceil(rng.pareto(1.2, n) * top / 10 + 1)).astype(np.int64)
    x = rng.integers(1, top + 1, n)
    if kind == "mixed":
        x[rng.random(n) < 0.3] = 1
    return x


def draw_case(seed: int, watermark_share: float | None = None, unbounded_share: float | None = None,
              beyond_share: float | None = None) -> Case:
    """The case of ``seed`` (the same seed draws the same case). ``watermark_share``: the chance that both sides are
    given a watermark (None: 0.15); only the watermark's draw depends on it. ``unbounded_share``: the chance that
    neither side is given a context, on a small cache (None: :data:`UNBOUNDED_SHARE`; 0 draws every case as before
    there were such cases). ``beyond_share``: the chance that a case given a context is given one beyond what its cache
    holds, 1 to 2 blocks' tokens more (None: :data:`BEYOND_SHARE`; 0 draws every case as before there were such
    cases)."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([int(rng.integers(2, 9)), int(rng.integers(9, 41)), int(rng.integers(41, 201))],
                       p=[0.35, 0.45, 0.2]))
    # a smaller product of length x count for the larger cases, so that a case stays ~1-3 s
    p_top = int(rng.choice([8, 40, 120, 400])) if n <= 40 else int(rng.choice([8, 40, 120]))
    o_top = int(rng.choice([4, 20, 60, 200])) if n <= 40 else int(rng.choice([4, 20, 40]))
    prompts, outputs = _lengths(rng, n, p_top), _lengths(rng, n, o_top)
    slack = int(rng.choice([0, 0, 1, 50, 2_000]))
    max_model_len = int((prompts + outputs).max() + slack)
    if slack <= 50 and rng.random() < 0.25:  # prompts at the context limit: prompt + output == max_model_len
        at = rng.random(n) < 0.3
        prompts[at] = np.maximum(1, max_model_len - outputs[at])
    po_extra = 0  # (set below for a po spec: its estimate tokens count towards the context and the cache)
    has_score, has_predicted, has_po = (rng.random() < 0.5 for _ in range(3))
    spec = _spec(rng, has_score, has_predicted, has_po)
    if spec.startswith("po:"):
        po_extra = int(spec.partition("tokens=")[2].split(",")[0])
        max_model_len += po_extra
    block_size = int(rng.choice([8, 16, 16, 32, 64, 128]))
    need = int(max(-(-(int(p) + int(o) + po_extra) // block_size) for p, o in zip(prompts, outputs)))  # one request
    total = int(sum(-(-(int(p) + int(o) + po_extra) // block_size) for p, o in zip(prompts, outputs)))
    blocks = int(rng.choice([need, need + 1, need + int(rng.integers(1, 4)), int(need * rng.uniform(1.5, 4)),
                             max(need, total), need - 1 if need > 1 else need], p=[0.15, 0.1, 0.2, 0.3, 0.2, 0.05]))
    # the context the cache holds at most (its blocks less vLLM's null block, every layer attending fully): vLLM's
    # engine refuses to start on a cache that holds no request of max_model_len tokens, and so does the emulated one
    max_model_len = min(max_model_len, blocks * block_size)
    seqs = int(rng.choice([1, 2, 3, 4, 8, 16, 32, 64], p=[0.08, 0.1, 0.1, 0.17, 0.2, 0.15, 0.1, 0.1]))
    budget = int(rng.choice([int(rng.integers(1, 9)), int(rng.integers(8, 65)), int(rng.integers(64, 513)), 2048],
                            p=[0.15, 0.35, 0.35, 0.15]))
    resident = None if rng.random() < 0.6 else int(seqs * rng.choice([1, 2, 4]) + rng.integers(0, 3))
    budget = max(budget, resident or seqs)  # (vLLM refuses a budget below its max_num_seqs, the resident cap)
    # a case of at most ~3,000 prompt steps, so that it takes seconds (the prompts' chunks at the budget)
    budget = max(budget, -(-int(prompts.sum()) // 3000))
    profile = (float(rng.choice([0.001, 0.01, 0.02])), float(rng.choice([0.0, 1e-4, 1e-3])),
               float(rng.choice([0.0, 1e-6, 1e-5])), float(rng.choice([0.0, 0.0, 1e-8])))
    col = lambda has, values: tuple(float(v) for v in values) if has else None  # noqa: E731
    score = col(has_score, np.round(rng.normal(0, 1, n) - 0.01 * outputs * rng.random(), 3))
    predicted = col(has_predicted, np.maximum(1, outputs + rng.integers(-20, 21, n)))
    po = col(has_po, np.maximum(1, outputs + rng.integers(-10, 11, n)))
    no_watermark = 0.85 if watermark_share is None else 1 - watermark_share
    watermark = None if rng.random() < no_watermark else float(rng.choice([0.01, 0.05, 0.2]))
    sized = False
    # no context given, on a small cache (a stream of its own: the other cases stay as drawn before). Not under a
    # policy that adds output tokens: the engine counts them against the context, the simulator deliberately does not
    # (ltrsched.sim.simulate._check_fits says why), so a request within them of the bound is refused on one side only
    bounded = np.random.default_rng([seed, 1])
    if bounded.random() < (UNBOUNDED_SHARE if unbounded_share is None else unbounded_share) and po_extra == 0:
        blocks = max(1, int(bounded.choice([need - 1, need, need, need + 1, need + int(bounded.integers(1, 4))])))
        bound = blocks * block_size  # (the engine's (blocks + 1 - 1) x block_size: vLLM's null block aside)
        near = bounded.random(n) < min(0.5, 2 / n)  # requests of the bound, or one token more
        longer = near & (bounded.random(n) < 0.3)
        outputs[near] = np.minimum(outputs[near], bound - 1)
        prompts[near] = bound - outputs[near] + longer[near]
        max_model_len, sized = None, bool(bounded.random() < 0.5)
        budget = max(budget, -(-int(prompts.sum()) // 3000))
    # a context given beyond what the cache holds (a stream of its own too): vLLM refuses to start on such a cache, and
    # both sides must refuse the case alike (the engine's kv_short_reason, the simulator's cache_short), the
    # simulator's blocks given or sized by its profile
    beyond = np.random.default_rng([seed, 2])
    if max_model_len is not None and beyond.random() < (BEYOND_SHARE if beyond_share is None else beyond_share):
        max_model_len = blocks * block_size + int(beyond.integers(1, 2 * block_size + 1))
        sized = bool(beyond.random() < 0.5)
    return Case(seed, spec, tuple(int(p) for p in prompts), tuple(int(o) for o in outputs),
                tuple(float(a) for a in _arrivals(rng, n)), blocks, block_size, budget, seqs, resident, max_model_len,
                profile, score, predicted, po, watermark, sized)


# ---------------------------------------------------------------------------------------------------------------------
# running and comparing

@dataclass
class Outcome:
    """What a case did: ``problem`` None when both sides agree, else the divergence in one line; ``detail``: the first
    differing request and step; ``refused``: the error line both sides refused the case with (None: both ran)."""

    problem: str | None
    detail: str = ""
    refused: str | None = None
    steps: int = 0
    seconds: float = 0.0


def _profile(case: Case):
    overhead, per_token, per_kv, per_pair = case.profile

    @dataclass(frozen=True)
    class Linear:
        blocks: int
        max_model_len: int
        name: str = "fuzz-linear"
        kv_bytes_per_token: int = 1024
        host_link_bytes_per_s: float = 1e12

        def step_time(self, s) -> float:
            return (overhead + per_token * s.num_tokens + per_kv * s.decode_context_tokens
                    + per_pair * s.prefill_attention_pairs)

        def num_gpu_blocks(self, block_size: int = 16, gpu_memory_utilization: float = 0.9) -> int:
            return self.blocks

    return Linear(case.blocks, case.max_model_len or MODEL_CONTEXT)


def workload_of(case: Case):
    import polars as pl

    from ltrsched.workloads.schema import Workload

    cols = {"request_id": np.arange(case.n, dtype=np.int64), "prompt_tokens": np.array(case.prompts, dtype=np.int64),
            "output_tokens": np.array(case.outputs, dtype=np.int64),
            "arrival_time": np.array(case.arrivals, dtype=np.float64)}
    for name, values in (("score", case.score), ("predicted_length", case.predicted), ("po_estimate", case.po)):
        if values is not None:
            cols[name] = np.array(values, dtype=np.float64)
    return Workload(pl.DataFrame(cols), "fuzz")


def engine_config(case: Case):
    from ltrsched.engine.emulate import EngineConfig

    given = {} if case.watermark is None else {"watermark": case.watermark}
    return EngineConfig(num_gpu_blocks=case.blocks + 1, block_size=case.block_size, max_num_batched_tokens=case.budget,
                        max_num_seqs=case.seqs, max_resident_seqs=case.resident, max_model_len=case.max_model_len,
                        **given)


def sim_config(case: Case):
    from ltrsched.sim import SimConfig

    return SimConfig(profile=_profile(case), max_num_batched_tokens=case.budget, max_num_seqs=case.seqs,
                     block_size=case.block_size, num_gpu_blocks=None if case.sized else case.blocks,
                     max_resident_seqs=case.resident,
                     max_model_len=case.max_model_len, preemption="recompute", semantics="vllm-v1", record_steps=True,
                     **({} if case.watermark is None else {"watermark": case.watermark}))


def _run(fn):
    """``fn()``'s result, or the exception it raised."""
    try:
        return fn()
    except Hang:
        raise
    except Exception as exc:  # (compared below: a refusal both sides make alike is agreement)
        return exc


def run_both(case: Case):
    """(the engine's result or exception, the simulator's)."""
    from ltrsched.engine.emulate import emulate
    from ltrsched.sim import simulate

    workload = workload_of(case)
    profile = _profile(case)
    engine = _run(lambda: emulate(workload, make_case_policy(case.spec), profile.step_time, engine_config(case)))
    sim = _run(lambda: simulate(workload, make_case_policy(case.spec), sim_config(case)))
    return engine, sim


#: What a policy is shown of each live request, compared step by step (:func:`first_view_difference`).
VIEW_COLUMNS = ("request_id", "state", "generated_tokens", "computed_tokens", "idle_steps")


class Enough(Exception):
    """Raised by a recording policy once it has seen as many steps as asked."""


def _recording(policy, seen: list, calls: int | None = None):
    """``policy``, each of its rank() calls appending (step, now, the view's :data:`VIEW_COLUMNS` by request) to
    ``seen``; the run stopped (:class:`Enough`) after ``calls`` of them (None: never)."""
    rank = policy.rank

    def recorded(view):
        if calls is not None and len(seen) >= calls:
            raise Enough()
        rows = sorted(zip(*(view.column(c).tolist() for c in VIEW_COLUMNS)))
        seen.append((view.step, round(float(view.now), 9), rows))
        return rank(view)

    policy.rank = recorded
    return policy


def first_view_difference(case: Case, limit: float = 60.0, calls: int | None = None) -> str:
    """The first step at which the policy is shown different live requests (ids, states, tokens, idle steps) on the two
    sides: where a divergence starts, even one that ends both runs with errors. ``calls``: compare that many steps at
    most (faster)."""
    from ltrsched.engine.emulate import emulate
    from ltrsched.sim import simulate

    workload, profile = workload_of(case), _profile(case)
    on_engine, in_sim = [], []

    def on_alarm(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        _run(lambda: emulate(workload, _recording(make_case_policy(case.spec), on_engine, calls), profile.step_time,
                             engine_config(case)))
        _run(lambda: simulate(workload, _recording(make_case_policy(case.spec), in_sim, calls), sim_config(case)))
    except Hang:
        return f"(views not compared: over {limit:g} s)"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    for k, (e, s) in enumerate(zip(on_engine, in_sim)):
        if e != s:
            (es, et, erows), (ss, st, srows) = e, s
            e_by, s_by = {r[0]: r[1:] for r in erows}, {r[0]: r[1:] for r in srows}
            diff = {i: (e_by.get(i), s_by.get(i)) for i in sorted(set(e_by) | set(s_by))
                    if e_by.get(i) != s_by.get(i)}
            return (f"first differing policy view: call {k} (engine step {es} at t={et}, simulator step {ss} at "
                    f"t={st}); request: (engine, simulator) {VIEW_COLUMNS[1:]}: {dict(list(diff.items())[:6])}")
    if len(on_engine) != len(in_sim):
        return (f"policy views agree for {min(len(on_engine), len(in_sim))} calls; engine {len(on_engine)}, "
                f"simulator {len(in_sim)}")
    return "policy views agree"


def _first_step_difference(engine, sim) -> str:
    e, s = engine.steps, sim.steps
    if e is None or s is None:
        return ""
    for k in range(min(e.height, s.height)):
        for col in STEP_COLUMNS:
            if col in e.columns and col in s.columns:
                a, b = e[col][k], s[col][k]
                if not (abs(float(a) - float(b)) <= ATOL):
                    row = lambda df: {c: df[c][k] for c in STEP_COLUMNS if c in df.columns}  # noqa: E731
                    return f"first differing step {k} ({col}): engine {row(e)}, simulator {row(s)}"
    if e.height != s.height:
        return f"steps agree up to step {min(e.height, s.height)}; engine {e.height} steps, simulator {s.height}"
    return ""


#: Where the simulator's refusal names its first request's row and workload (``request 1 in row 2 of workload
#: 'fuzz'``); the engine's names the request alone.
_ROW = r"(?: in row \d+(?: of .+?)?)?"
#: The KV-fit refusal of each side (each words its own fix): the requests, usable blocks, first request, its blocks.
_FIT = re.compile(r"^(\d+) request\(s\) can never fit (?:the engine's KV cache|the KV cache) of (\d+) usable blocks "
                  r"\(first: request (\d+)" + _ROW + r" needs (\d+) blocks")


def _same_fit_refusal(engine: str, sim: str) -> bool:
    """Both lines refuse requests too large for the KV cache, with the same counts and the same first request."""
    e, s = _FIT.match(engine), _FIT.match(sim)
    return e is not None and s is not None and e.groups() == s.groups()


#: The context refusal of each side: the engine's (requests, context, first request, its tokens; none of them a
#: policy's extra tokens) and the simulator's (requests, context, first request, its prompt and output).
_CONTEXT_ENGINE = re.compile(r"^(\d+) request\(s\) exceed the engine's max_model_len (\d+) tokens \(first: request "
                             r"(\d+), (\d+) tokens\)")
_CONTEXT_SIM = re.compile(r"^(\d+) request\(s\) exceed the context limit of (\d+) tokens (?:set by max_model_len )?"
                          r"\(first: request (\d+)" + _ROW + r", prompt (\d+) \+ output (\d+)\)")


def _same_context_refusal(engine: str, sim: str) -> bool:
    """Both lines refuse requests longer than the context, with the same counts, the same first request and its
    length (a cache-sized context, :func:`draw_case`, shorter than a request; given, or where none is given the one
    the cache bounds)."""
    e, s = _CONTEXT_ENGINE.match(engine), _CONTEXT_SIM.match(sim)
    return (e is not None and s is not None and e.groups()[:3] == s.groups()[:3]
            and int(e[4]) == int(s[4]) + int(s[5]))


#: The refusal of a context the KV cache does not hold (``ltrsched.policies.kv_bound.short_reason``), each side's
#: blocks counted its own way (the engine's with vLLM's null block): the context, the blocks needed, the block size,
#: the cache in words, the blocks it holds, what to do, the context it holds.
_SHORT = re.compile(r"^max_model_len (\d+) needs (\d+) KV blocks of (\d+) tokens \((.+?)\), and (.+) holds (\d+), "
                    r"which vLLM refuses once started: (.+), or give max_model_len (\d+) or less$")


def _same_short_refusal(engine: str, sim: str) -> bool:
    """Both lines refuse a context the KV cache does not hold: the same context, block size and the context the cache
    holds, the engine's blocks (needed and held) one more than the simulator's (vLLM's null block)."""
    e, s = _SHORT.match(engine), _SHORT.match(sim)
    return (e is not None and s is not None and (e[1], e[3], e[8]) == (s[1], s[3], s[8])
            and int(e[2]) == int(s[2]) + 1 and int(e[6]) == int(s[6]) + 1)


def compare(engine, sim) -> Outcome:
    """The outcome of one case's two runs (a result or an exception each)."""
    from ltrsched.errors import UserError

    e_err, s_err = isinstance(engine, BaseException), isinstance(sim, BaseException)
    if e_err or s_err:
        line = lambda x: f"{type(x).__name__}: {x}" if isinstance(x, BaseException) else "ran"  # noqa: E731
        if e_err and s_err and isinstance(engine, UserError) and isinstance(sim, UserError) and (
                str(engine) == str(sim) or _same_fit_refusal(str(engine), str(sim))
                or _same_context_refusal(str(engine), str(sim))):
            return Outcome(None, refused=str(sim))
        # (a context the cache does not hold: the simulator's SimConfig refuses it as its other settings, a ValueError)
        if isinstance(engine, UserError) and isinstance(sim, ValueError) and _same_short_refusal(str(engine), str(sim)):
            return Outcome(None, refused=str(sim))
        both = e_err and s_err and isinstance(engine, UserError) and isinstance(sim, UserError)
        kind = "refused differently" if both else "one side failed"
        return Outcome(f"{kind}: engine {line(engine)} | simulator {line(sim)}")
    e, s = engine.requests.sort("request_id"), sim.requests.sort("request_id")
    steps = int(sim.summary["steps"])
    if e["request_id"].to_list() != s["request_id"].to_list():
        return Outcome("different request ids", steps=steps)
    for col in COMPARED:
        a, b = e[col].to_numpy().astype(np.float64), s[col].to_numpy().astype(np.float64)
        same = (np.abs(a - b) <= ATOL) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            rid = int(e["request_id"][i])
            return Outcome(f"{col} differs for {int((~same).sum())} request(s), first request {rid}: engine {a[i]!r}, "
                           f"simulator {b[i]!r}", detail=_first_step_difference(engine, sim), steps=steps)
    if engine.summary["steps"] != sim.summary["steps"]:
        return Outcome(f"steps: engine {engine.summary['steps']}, simulator {sim.summary['steps']}",
                       detail=_first_step_difference(engine, sim), steps=steps)
    if engine.summary["mismatched_steps"]:
        return Outcome(f"{engine.summary['mismatched_steps']} engine step(s) differ from the plan", steps=steps)
    if not (e["generated_tokens"] == e["served_output_tokens"]).all():
        return Outcome("the engine served some request fewer tokens than planned", steps=steps)
    return Outcome(None, steps=steps)


def run_case(case: Case, limit: float = 60.0) -> Outcome:
    """Run ``case`` on both sides and compare, within ``limit`` seconds (past it: :data:`SLOW`)."""
    def on_alarm(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    try:
        outcome = compare(*run_both(case))
    except Hang:  # (a long thrash before its guard stops it, as likely as a hang: counted apart, not minimised)
        outcome = Outcome(f"{SLOW}: over {limit:g} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    outcome.seconds = time.perf_counter() - start
    return outcome


#: The thrash guards' bounds the fuzz runs under (``ltrsched.policies.batching``'s, which both sides share): a
#: thrash stops after a tenth of its default preemptions, so that a case under KV pressure with an unstable order takes
#: seconds, not minutes, and both sides must stop it at the same step with the same line.
QUICK_GUARDS = {"MAX_PREEMPTIONS_PER_REQUEST": 100, "NO_PROGRESS_MIN_RECOMPUTES": 1000}


def quick_guards() -> dict:
    """Set :data:`QUICK_GUARDS`; returns the bounds they replaced."""
    from ltrsched.policies import batching

    before = {name: getattr(batching, name) for name in QUICK_GUARDS}
    for name, value in QUICK_GUARDS.items():
        setattr(batching, name, value)
    return before


def warm() -> None:
    """Run a one-request case without a time limit: vLLM's imports and its first engine build (30-80 s on a loaded
    2-core machine; later builds ~0.1 s) are not counted in the first case's time limit."""
    outcome = compare(*run_both(Case(0, "fcfs", (1,), (1,), (0.0,), 10, 16, 16, 1, None, 100, (0.01, 0.0, 0.0, 0.0))))
    if outcome.problem is not None:
        raise RuntimeError(f"the warm-up case diverged: {outcome.problem}")


def _kind(problem: str | None) -> str | None:
    """The divergence's kind (its first words), which a minimised case must keep."""
    if problem is None:
        return None
    return problem.split(":")[0].split(" for ")[0].split(" differs")[0]


def _shrink(n: int, still_fails, budget_s: float) -> list[int]:
    """The fewest of the rows ``0..n-1`` for which ``still_fails(rows)`` holds (removed in halves, then quarters, ...,
    then one at a time), within ``budget_s`` seconds."""
    deadline = time.perf_counter() + budget_s
    rows = list(range(n))
    chunk = max(1, len(rows) // 2)
    while chunk >= 1 and time.perf_counter() < deadline:
        k, removed = 0, False
        while k < len(rows) and len(rows) > 1 and time.perf_counter() < deadline:
            trial = rows[:k] + rows[k + chunk:]
            if trial and still_fails(trial):
                rows, removed = trial, True
                continue
            k += chunk
        if not removed:
            chunk //= 2
    return rows


def minimise(case: Case, outcome: Outcome, budget_s: float = 120.0) -> tuple[Case, Outcome]:
    """The case with the fewest requests that still diverges the same way (:func:`_shrink`), and its outcome."""
    kind = _kind(outcome.problem)
    outcomes = {}

    def same_kind(rows: list[int]) -> bool:
        got = outcomes[tuple(rows)] = run_case(case.keep(rows), limit=30)
        return _kind(got.problem) == kind

    rows = _shrink(case.n, same_kind, budget_s)
    return case.keep(rows), outcomes.get(tuple(rows), outcome)


def minimise_views(case: Case, calls: int = 300, budget_s: float = 300.0) -> Case:
    """The case with the fewest requests whose policy views still differ within ``calls`` steps (a divergence that
    starts early but shows late, e.g. in a thrash's stop): as :func:`minimise`."""
    return case.keep(_shrink(case.n, lambda rows: first_view_difference(case.keep(rows), limit=30, calls=calls)
                             .startswith("first differing"), budget_s))


# ---------------------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="first case's seed; case k has seed S + k")
    parser.add_argument("--no-minimise", action="store_true", help="print divergences as drawn")
    parser.add_argument("--verbose", action="store_true", help="a line per case")
    parser.add_argument("--full-guards", action="store_true",
                        help="the thrash guards' default bounds (else QUICK_GUARDS: a thrash stops sooner)")
    parser.add_argument("--watermark-share", type=float, default=None, metavar="P",
                        help="the chance in [0, 1] that a case gives both sides a watermark (default 0.15)")
    args = parser.parse_args(argv)
    if args.watermark_share is not None and not 0 <= args.watermark_share <= 1:
        parser.error(f"--watermark-share must be in [0, 1], got {args.watermark_share}")
    if not args.full_guards:
        quick_guards()
    start = time.perf_counter()
    print("building the emulated engine once (vLLM's imports) ...", file=sys.stderr, flush=True)
    warm()
    warm_s = time.perf_counter() - start
    counts = {"agree": 0, "refused alike": 0, "diverged": 0, SLOW: 0}
    divergences = []
    seconds = []
    for k in range(args.cases):
        case = draw_case(args.seed + k, args.watermark_share)
        outcome = run_case(case)
        seconds.append(outcome.seconds)
        if outcome.problem is None:
            counts["refused alike" if outcome.refused else "agree"] += 1
        elif outcome.problem.startswith(SLOW):
            counts[SLOW] += 1
        else:
            counts["diverged"] += 1
            divergences.append((case, outcome))
        if args.verbose or outcome.problem:  # (a slow case too: its seed, to run it alone)
            status = outcome.problem or (f"refused alike: {outcome.refused}" if outcome.refused else "agree")
            print(f"[{k + 1}/{args.cases}] {outcome.seconds:5.2f}s {outcome.steps:6d} steps {case.short()}: {status}",
                  flush=True)
    for case, outcome in divergences:
        small, got = case, outcome
        if not args.no_minimise:
            # a divergence the policy's views show within a few hundred steps is minimised on them (fast, and a thrash
            # both sides stop with different lines is one of them); else on the outcome itself
            if first_view_difference(case, limit=120, calls=MINIMISE_CALLS).startswith("first differing"):
                small = minimise_views(case, calls=MINIMISE_CALLS)
                got = run_case(small)
            else:
                small, got = minimise(case, outcome)
        print(f"\nDIVERGENCE seed={case.seed} ({case.n} requests, minimised to {small.n}): {got.problem}")
        if got.detail:
            print(f"  {got.detail}")
        print(f"  {first_view_difference(small)}")
        print(f"  {small.literal()}")
    print(f"\n{args.cases} cases (seeds {args.seed}..{args.seed + args.cases - 1}): {counts['agree']} agree, "
          f"{counts['refused alike']} refused alike, {counts['diverged']} diverged, {counts[SLOW]} past the time "
          f"limit; engine build {warm_s:.1f} s, cases "
          f"{sum(seconds):.1f} s (median {np.median(seconds) if seconds else math.nan:.2f} s, max "
          f"{max(seconds, default=math.nan):.2f} s)")
    return 1 if divergences else 0


if __name__ == "__main__":
    sys.exit(main())
