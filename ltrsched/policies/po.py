"""PO: the served LLM predicts its own output length (Perception in Advance, as the paper ran it).

Each request first generates ``tokens`` (15) extra output tokens, the model's self-estimate of its
length; the host adds them to every request's output (``extra_output_tokens``). Requests still in that
estimate phase (fewer than ``tokens`` tokens generated) go first, FCFS among themselves; after it,
requests are ordered by the estimate, shortest first, ties by arrival.

The estimate is the ``po_estimate`` column [tokens] when the workload has one. Otherwise it is drawn
from a noise model: the true length perturbed to Kendall tau ``tau`` (default 0.51, the paper's PO tau on
ShareGPT; 0.67 on LMSYS), see :mod:`ltrsched.policies.approx_oracle`.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.approx_oracle import check_seed, check_tau, fill_missing_lengths
from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.registry import register


@register
class PO(Policy):
    """Self-estimated length, shortest first, after a FCFS estimate phase of ``tokens`` output tokens."""

    name = "po"

    def __init__(self, tau: float = 0.51, seed: int = 0, tokens: int = 15):
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        check_tau(tau)
        check_seed(seed)
        self.tau = tau
        self.seed = seed
        self.tokens = tokens
        self._estimate = IdArray(np.nan)

    @property
    def extra_output_tokens(self) -> int:  # type: ignore[override]
        return self.tokens

    def prepare(self, requests) -> None:
        self._estimate.reset()
        est = fill_missing_lengths(requests["po_estimate"], requests["output_tokens"], self.tau, self.seed)
        self._estimate[requests["request_id"]] = est

    def rank(self, view: LiveView) -> np.ndarray:
        phase = view.generated_tokens < self.tokens
        estimate = np.where(phase, 0.0, self._estimate.get(view.request_id))
        return view.order_by(~phase, estimate)
