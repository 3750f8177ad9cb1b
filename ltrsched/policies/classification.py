"""Classification baseline: a predicted output-length bucket, shortest bucket first, ties by arrival.

The bucket comes from the ``predicted_length`` column [tokens] (``ltrsched predict`` with a
classification model writes its most likely bucket's midpoint): by default each request's predicted length is
its key as it is, so the model's own buckets, whatever width it was trained with, order the requests; with
``bucket`` given, ``floor(predicted_length / bucket)`` (re-bucketed to that width). Without that column the
bucket comes from a noise model: the true length perturbed to Kendall tau ``tau`` (the underlying predictor's
quality), then bucketed (``bucket``, by default 820 tokens), so coarse buckets lose ranking information exactly as
a real classifier's do. ``bucket=820`` is the 10-bucket baseline of earlier work; the paper's ablation also uses
100, 10 and 1.

Where every request falls in one bucket although their lengths differ (a short-answer model's lengths all under 820
tokens; a classifier that predicts one class for every prompt) the policy is first come first served: it says so on
stderr (:func:`one_bucket_warning`), with a width that tells the lengths apart.

Calibration of the default ``tau=0.55`` (the paper's 70B ShareGPT predictor tau), measured on 2,000
ShareGPT requests (seed 0) against the paper's Table 3 (ShareGPT): bucket 820 gives 89.7% accuracy and
bucket tau 0.29 (paper 85.1%, 0.24); bucket 100 gives 28.3% and 0.56 (paper 28.1%, 0.49); bucket 10 gives
4.2% and 0.55 (paper 4.7%, 0.46). For LMSYS-like runs ``tau=0.62`` is the matching choice.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

from ltrsched.arguments import shown

from ltrsched.policies.approx_oracle import check_seed, check_tau, fill_missing_lengths
from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.fixed_order import FixedKeyOrder
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.registry import register


#: [tokens] The noise model's bucket width when no ``bucket`` is given (the 10-bucket baseline of earlier work).
NOISE_BUCKET = 820


@register
class Classification(Policy):
    """Shortest predicted bucket first; ties by arrival. ``bucket`` [tokens]: the width every predicted length is
    re-bucketed to; None: a ``predicted_length`` column's values as they are (a classifier's own buckets: a width
    here other than the one it was trained with would merge or split its classes) and the noise model's lengths in
    buckets of :data:`NOISE_BUCKET`."""

    name = "class"

    def __init__(self, bucket: int | None = None, tau: float = 0.55, seed: int = 0):
        if bucket is not None and (isinstance(bucket, (bool, np.bool_)) or not isinstance(bucket, numbers.Integral)):
            raise TypeError(f"bucket must be a whole number of tokens >= 1 or None, got {shown(bucket)}")  # (NaN, inf
            # and 1.5 were taken: a NaN width ranked every request alike)
        if bucket is not None and bucket < 1:
            raise ValueError(f"bucket must be >= 1 token, got {bucket}")
        self.bucket = bucket
        check_tau(tau)
        check_seed(seed)
        self.tau = tau
        self.seed = seed
        self._bucket_of = IdArray(np.nan)
        self._order = FixedKeyOrder()  # every live request by (bucket, arrival, id); told arrivals and finishes

    def prepare(self, requests) -> None:
        self._bucket_of.reset()
        self._order.reset()
        given = np.asarray(requests["predicted_length"], dtype=np.float64)
        predicted = fill_missing_lengths(given, requests["output_tokens"], self.tau, self.seed,
                                         what=f"{self.name}:tau={self.tau:g}", request_ids=requests["request_id"])
        if self.bucket is not None:
            key = np.floor(predicted / self.bucket)
        else:  # the noise model's lengths as a classifier of NOISE_BUCKET would give them (its bucket's midpoint)
            key = np.where(np.isnan(given), (np.floor(predicted / NOISE_BUCKET) + 0.5) * NOISE_BUCKET, given)
        self._bucket_of[requests["request_id"]] = key
        spec = ",".join([f"bucket={self.bucket}"] * (self.bucket is not None) + [f"tau={self.tau:g}"] * bool(
            np.isnan(given).any()))  # (the tau only where the noise model drew lengths)
        warning = one_bucket_warning(key, requests["output_tokens"], given, f"{self.name}:{spec}".rstrip(":"),
                                     self.bucket)
        if warning:
            print(warning, file=sys.stderr)

    def on_arrival(self, request_ids, now) -> None:
        self._order.arrived(request_ids)

    def on_finish(self, request_ids, now) -> None:
        self._order.departed(request_ids)

    def rank(self, view: LiveView) -> np.ndarray:
        """``view.order_by(bucket)``. A request's bucket is fixed, so the order is kept from step to step and updated
        only for the requests that arrived and finished (:class:`~ltrsched.policies.fixed_order.FixedKeyOrder`):
        before, a stable sort of every live request's float key each step (1,205 us a step at 20,000 waiting
        requests, 21x FCFS's; BENCHMARKS.md, "Big queues")."""
        return self._order.order(view, self._keys)

    def _keys(self, view: LiveView) -> np.ndarray:
        return self._bucket_of.get(view.request_id)


def one_bucket_warning(keys: np.ndarray, lengths, given: np.ndarray, spec: str, bucket: int | None) -> str | None:
    """A one-line ``warning:`` where every request's bucket (``keys``, :meth:`Classification.prepare`'s) is one and
    the same although their true output ``lengths`` [tokens] differ: the policy then orders them by arrival alone,
    first come first served. ``given``: the ``predicted_length`` column (NaN where absent); ``bucket``: the policy's
    width [tokens] (None: the column's values as they are, the noise model's :data:`NOISE_BUCKET`). A model whose
    lengths all lie below 820 tokens (short answers) fell in one noise bucket without a word; so did a classifier that
    predicts one class for every prompt. None where the buckets differ, or where the lengths are all equal (nothing
    to order)."""
    keys, lengths = np.asarray(keys), np.asarray(lengths)
    if len(keys) < 2 or not (keys == keys[0]).all() or (lengths == lengths[0]).all():
        return None
    n = f"all {len(keys):,} requests"
    fcfs = "so it orders them by arrival, first come first served"
    if bucket is None and not np.isnan(given).any():  # (a classifier's own buckets)
        return (f"warning: {spec}: the predicted_length column gives {n} one length ({given[0]:g} tokens): the "
                f"classifier predicts one bucket for every prompt, {fcfs} (a classifier trained on other lengths, or "
                "on lengths most of which fell in that bucket: train it on these, or with a smaller --bucket)")
    width = NOISE_BUCKET if bucket is None else bucket
    fit = max(1, int(lengths.max() - lengths.min()) // 10)
    source = ("their predicted lengths" if not np.isnan(given).any()
              else f"the noise model's lengths (of output lengths {lengths.min():,}-{lengths.max():,} tokens)")
    return (f"warning: {spec}: {source} put {n} in one bucket of {width:,} tokens, {fcfs}"
            + (f"; give class:bucket={fit} (about 10 buckets over these lengths)" if fit < width else ""))
