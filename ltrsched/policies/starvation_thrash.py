"""A warning for a starvation-prevention run that thrashes: read from the run's summary, never per step.

Under sustained overload the paper's rule (promote a request idle ``starve`` = T steps ahead of every other for
``quantum`` = Q steps) soon promotes most of the backlog: a promoted request goes ahead of the requests holding KV,
which are evicted for it and, once the swap space is full, recompute their prefill. BENCHMARKS.md ("why 200,000
requests at 4x overload never finish") measured 20-26 preemptions per request at T=200, Q=10 and 40 req/s on
ShareGPT (FCFS and plain LTR: none), ~10x the simulated time, while T=1000, Q=100 there preempted 1.6 times per
request. The simulators' own guard (``ltrsched.policies.batching.ThrashGuard``: no output token over a window of
recompute preemptions, 1,000 preemptions per request, or recomputes that threw away more than 10x the workload's
tokens and 50 per output token sampled) stops a livelock or a thrash that creeps (outputs of thousands of tokens,
each eviction throwing their context away), not this one: it finishes, at 17-22x and 22-29 per output token, and
this warning names the same cause and remedy as the guard's error.
"""

from __future__ import annotations

#: Preemptions per finished request above which a starvation-prevention run is said to thrash. The thrash measured
#: 20-26; the paper's settings in ``reproduce`` (Tables 1-4, Figures 3-5) stay far below (BENCHMARKS.md).
THRASH_PREEMPTIONS_PER_REQUEST = 5.0


def starvation_settings(policy) -> tuple[int, int] | None:
    """(T, Q) [steps] of the starvation prevention ``policy`` is or wraps (through ``inner``), else None."""
    wrapper = _starvation_wrapper(policy)
    return None if wrapper is None else (wrapper.threshold, wrapper.quantum)


def _starvation_wrapper(policy):
    """The :class:`~ltrsched.policies.starvation.StarvationPrevention` ``policy`` is or wraps (through ``inner``),
    else None."""
    from ltrsched.policies.starvation import StarvationPrevention

    seen = 0
    while policy is not None and seen < 16:  # (a wrapper of a wrapper; bounded against a cycle)
        if isinstance(policy, StarvationPrevention):
            return policy
        policy, seen = getattr(policy, "inner", None), seen + 1
    return None


def starvation_cause(policy) -> str | None:
    """The clause naming ``policy``'s starvation prevention as a thrash's cause and its remedy (shared by
    :func:`thrash_warning` and the simulators' thrash error); None for a policy without starvation prevention."""
    wrapper = _starvation_wrapper(policy)
    if wrapper is None:
        return None
    threshold, quantum = wrapper.threshold, wrapper.quantum
    key = wrapper.quantum_key()  # (MLFQ's own quantum is "quantum": raising that changed the policy, not this)
    return (f"starvation prevention (starve={threshold},{key}={quantum}) promotes every request idle {threshold} "
            f"step{'' if threshold == 1 else 's'} ahead of those running, and under sustained overload evicts them over "
            f"and over to recompute (a thrash, BENCHMARKS.md); raise the threshold and the quantum (e.g. starve={max(1000, 5 * threshold)},"
            f"{key}={max(100, 10 * quantum)}), or lower the load")


def thrash_warning(policy, num_preemptions: int, num_finished: int, what: str) -> str | None:
    """The ``warning:`` line for a run of ``policy`` (named ``what``) whose starvation prevention preempted more
    than :data:`THRASH_PREEMPTIONS_PER_REQUEST` times per finished request (``num_preemptions`` over
    ``num_finished``, from the run's summary), naming the cause and the remedy; None for any other run."""
    cause = starvation_cause(policy)
    if cause is None or num_finished <= 0 or num_preemptions <= THRASH_PREEMPTIONS_PER_REQUEST * num_finished:
        return None
    per = num_preemptions / num_finished
    return (f"warning: {what}: {per:.1f} preemptions per finished request ({num_preemptions:,} for {num_finished:,}), "
            f"more than {THRASH_PREEMPTIONS_PER_REQUEST:g}: {cause}")
