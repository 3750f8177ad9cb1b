"""Scheduling policies (pure Python + numpy; no simulator or vLLM imports).

Public API: :class:`Policy`, :class:`LiveView`, :class:`RequestState`, :func:`make_policy`,
:func:`register`, :func:`available`, the one batch-forming rule set :func:`form_batch`, and
:func:`check_order`, which both hosts run on every order a policy returns.
"""

from ltrsched.policies.approx_oracle import approx_oracle_scores, noisy_lengths
from ltrsched.policies.base import LIVE_COLUMNS, LiveView, Policy, RequestState, order_by
from ltrsched.policies.batching import BatchLimits, BatchPlan, form_batch
from ltrsched.policies.order_check import check_order
from ltrsched.policies.registry import available, load_plugin, make_policy, register

__all__ = [
    "approx_oracle_scores", "noisy_lengths", "LIVE_COLUMNS", "LiveView", "Policy", "RequestState", "order_by",
    "BatchLimits", "BatchPlan", "form_batch", "check_order",
    "available", "load_plugin", "make_policy", "register",
]
