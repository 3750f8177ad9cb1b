"""What a recompute preemption does to a request's counts: the one rule for the simulator and the engine adapter.

A request preempted by recompute (vLLM V1's only kind; the simulator's when swap space is full or
``preemption="recompute"``) loses its KV: it waits again, holds no KV on the GPU, and must compute its prompt and
every token it generated so far before it samples another (a sampled token is never lost). The hosts keep
``pending = prompt + generated - computed`` for every request; this keeps it.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import RequestState

_WAITING = int(RequestState.WAITING)
#: at most this many rows are written one by one (scalar writes: a numpy call costs more than a few of them)
_FEW = 16


def recompute(rows: np.ndarray, state: np.ndarray, resident: np.ndarray, computed_tokens: np.ndarray,
              pending_tokens: np.ndarray, prompt_tokens: np.ndarray, generated_tokens: np.ndarray) -> int:
    """Preempt ``rows`` by recompute, in place on the host's columns (indexed by ``rows``): each waits
    (``RequestState.WAITING``), is not resident, has 0 computed tokens and ``prompt + generated`` pending [tokens].

    Returns the computed tokens whose KV was thrown away [tokens] (the thrash guard's waste rule,
    :class:`ltrsched.policies.batching.ThrashGuard`). ``generated_tokens`` must be up to date (the engine's table
    adds its logged tokens before it hands the column over)."""
    if len(rows) <= _FEW:
        discarded = 0
        for r in rows.tolist():
            discarded += computed_tokens.item(r)
            state[r] = _WAITING
            resident[r] = False
            computed_tokens[r] = 0
            pending_tokens[r] = prompt_tokens.item(r) + generated_tokens.item(r)
        return discarded
    discarded = int(computed_tokens[rows].sum())
    state[rows] = _WAITING
    resident[rows] = False
    computed_tokens[rows] = 0
    pending_tokens[rows] = prompt_tokens[rows] + generated_tokens[rows]
    return discarded
