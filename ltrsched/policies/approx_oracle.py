"""Approximate-oracle scores: true lengths perturbed to a requested Kendall's tau.

``score = -(log(length) + sigma * z)`` with ``z`` standard normal (seeded); ``sigma`` is found by
bisection so that Kendall's tau-b between the score and ``-length`` (i.e. between "predicted shortness"
and true shortness) equals the requested tau within ``tolerance`` on the given lengths. tau >= the
largest tau reachable with ties in the lengths gives the exact order (sigma = 0). Where tau-b moves in steps wider
than the tolerance (a few requests: 1, 1/3, -1/3, -1 on three), the scores take the nearest tau-b that scores
without ties have (:func:`nearest_reachable_tau`; :func:`unreachable_tau_warning` names it): the bisection alone
settled where two scores cross, on tied scores or on either side of the crossing, seed by seed.

The noise belongs to the request, not to its row: given the requests' ids, every draw (the normals, the bisection, the
swaps' random picks, ties broken by position) is made over the requests in order of id and the results put back in
their rows (:func:`id_order`), so a workload whose rows come in another order (a sorted trace file, a loader's order)
gets each request the same score. Rows already in id order (the built-in workloads, most files) draw as before.
"""

from __future__ import annotations

import numbers

import numpy as np

from ltrsched.arguments import shown
from ltrsched.errors import UserError

#: How close [dimensionless] :func:`approx_oracle_scores` brings Kendall tau-b to the requested tau.
TOLERANCE = 0.005


def check_tau(tau: float | None) -> None:
    """Raise ValueError unless ``tau`` is None or in (0, 1] (spec parameters call this at construction); TypeError
    for what is no number (text failed comparing ``<`` with an int; True ran as tau 1)."""
    if tau is not None and (isinstance(tau, (bool, np.bool_)) or not isinstance(tau, numbers.Real)):
        raise TypeError(f"tau must be a number in (0, 1], got {shown(tau)}")
    if tau is not None and not 0 < tau <= 1:
        raise ValueError(f"tau must be in (0, 1], got {tau}")


def check_seed(seed: int) -> None:
    """Raise ValueError unless ``seed`` is a non-negative integer (numpy's generators take no others); TypeError for
    what is no integer (1.5 and True were taken, None failed comparing ``<`` with an int)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer >= 0, got {shown(seed)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def id_order(request_ids, n: int) -> np.ndarray | None:
    """The rows of ``n`` requests in order of their ``request_ids`` (the order every noise draw is made in), or None
    where they are in that order already or no ids are given (None: the rows' own order)."""
    if request_ids is None:
        return None
    ids = np.asarray(request_ids)
    if len(ids) != n:
        raise ValueError(f"request_ids has {len(ids):,} values for {n:,} requests")
    if n < 2 or (ids[1:] > ids[:-1]).all():
        return None
    return np.argsort(ids, kind="stable")


def in_id_order(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``values`` (one per row, computed over the rows taken in :func:`id_order`'s ``order``) back in the rows'
    own order."""
    if order is None:
        return values
    out = np.empty_like(values)
    out[order] = values
    return out


def _tau(score: np.ndarray, lengths: np.ndarray) -> float:
    from scipy.stats import kendalltau  # (here: importing scipy.stats took 0.9 s of every command's start)

    return float(kendalltau(score, -lengths).statistic)


def approx_oracle_scores(lengths: np.ndarray, tau: float, seed: int = 0, tolerance: float = TOLERANCE,
                         request_ids=None) -> np.ndarray:
    """Scores (higher = shorter) whose Kendall tau-b against the true lengths is ``tau`` (+-tolerance), or, where
    no scores without ties have a tau that close (a few requests: :func:`nearest_reachable_tau`), the nearest
    that they have; the scores never tie where the lengths differ.

    Args:
        lengths: true output lengths [tokens], > 0.
        tau: target Kendall tau-b in (0, 1].
        seed: noise seed.
        request_ids: the requests' ids, one per length: the noise is drawn over the requests in order of id, so each
            request's score is the same whatever order the rows come in (None: the rows' order, as if in id order).
    """
    if not 0 < tau <= 1:
        raise UserError(f"tau must be in (0, 1], got {tau}")
    lengths = np.asarray(lengths, dtype=np.float64)
    order = id_order(request_ids, len(lengths))
    if order is not None:
        return in_id_order(approx_oracle_scores(lengths[order], tau, seed, tolerance), order)
    base = -np.log(lengths)
    if len(lengths) < 2:
        return base
    z = np.random.default_rng(seed).standard_normal(len(lengths))
    best = _tau(base, lengths)
    # (every length equal: tau-b is NaN; the exact order, as unreachable_tau_warning says of tau >= 1 - TOLERANCE,
    # ties every score, so requests run by arrival. Noise here ranked an ``oracle`` at random and unwarned)
    if tau >= best - tolerance or (tau >= 1 - TOLERANCE and np.isnan(best)):
        return base
    tried = []  # (scores, their tau) at each noise scale tried
    lo, hi = 0.0, 1.0
    while True:  # find an upper bracket
        score = base - hi * z
        got = _tau(score, lengths)
        tried.append((score, got))
        if got <= tau:
            break
        hi *= 2
        if hi > 1e6:
            break
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        score = base - mid * z
        got = _tau(score, lengths)
        tried.append((score, got))
        if abs(got - tau) <= tolerance and _ordered(score, lengths):  # (not where two scores cross)
            return score
        lo, hi = (mid, hi) if got > tau else (lo, mid)
    return _nearest(tried, lengths, tau, seed, tolerance)


def _untied(score: np.ndarray) -> bool:
    return len(np.unique(score)) == len(score)


def _ordered(score: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether ``score`` ties no two requests of different ``lengths`` (such a pair is in no order: tau-b counts
    it neither way, and a scheduler orders it by arrival); equal lengths' scores may tie (above the tie ceiling)."""
    by = np.lexsort((lengths, score))
    s, n = score[by], lengths[by]
    return not ((s[1:] == s[:-1]) & (n[1:] != n[:-1])).any()


def _nearest(tried: list[tuple[np.ndarray, float]], lengths: np.ndarray, tau: float, seed: int,
             tolerance: float) -> np.ndarray:
    """The scores of ``tried`` without ties whose tau-b is nearest ``tau``, moved onto :func:`nearest_reachable_tau`
    by swapping the scores of requests next to each other in score order.

    The bisection on the noise's scale misses ``tau`` where tau-b moves in steps wider than the tolerance (a few
    requests) or where the noise's order never goes that low (a tau near 0): it settled on the scale where two
    scores cross, with tied scores (tau-b NaN, or a pair in no order) or on either side of the crossing."""
    untied = [(s, t) for s, t in tried if np.isfinite(t) and _untied(s)]
    if not untied:  # every length equal: no order has a tau, the noise's order (random) it is
        return tried[0][0]
    score, got = min(untied, key=lambda st: abs(st[1] - tau))
    want = nearest_reachable_tau(lengths, tau)
    if abs(want - tau) <= tolerance:  # (many requests: the reachable tau-b within the tolerance nearest got)
        near = nearest_reachable_tau(lengths, min(max(got, tau - 0.9 * tolerance), tau + 0.9 * tolerance))
        want = near if abs(near - tau) <= tolerance else want
    return _swap_to(score.copy(), lengths, got, want, seed)


def _swap_to(score: np.ndarray, lengths: np.ndarray, got: float, want: float, seed: int) -> np.ndarray:
    """``score`` (without ties, tau-b ``got`` against ``lengths`` [tokens]) with tau-b ``want``: swapping the scores of
    two requests next to each other in score order, of different lengths, reverses that pair alone (tau-b one step
    down, or up), so disjoint such swaps (at places of one parity), chosen at random (seeded), move tau-b as many
    steps as they are."""
    m, scale = _distinct_pairs(lengths)
    have, need = round((m - got * scale) / 2), round((m - want * scale) / 2)  # pairs in reverse order
    order = np.argsort(-score, kind="stable")  # predicted shortest first
    rng = np.random.default_rng([seed, 1])
    parity = 0
    while have != need:
        ranked = lengths[order]
        steps = np.flatnonzero(ranked[:-1] < ranked[1:] if have < need else ranked[:-1] > ranked[1:])
        ours = steps[steps % 2 == parity]  # (places of one parity: no two pairs share a request)
        parity = 1 - parity
        if len(ours) == 0:
            continue
        k = rng.permutation(ours)[:abs(need - have)]
        i, j = order[k], order[k + 1]
        score[i], score[j] = score[j], score[i]
        order[k], order[k + 1] = j, i
        have += len(k) if have < need else -len(k)
    return score


def _distinct_pairs(lengths: np.ndarray) -> tuple[float, float]:
    """The pairs of ``lengths`` that differ, ``m``, and ``sqrt(m * all pairs)``: untied scores with ``d`` of the
    ``m`` in reverse order have Kendall tau-b ``(m - 2 d) / sqrt(m * all pairs)``."""
    n = len(lengths)
    pairs = n * (n - 1) / 2
    counts = np.unique(lengths, return_counts=True)[1].astype(np.float64)
    m = pairs - float((counts * (counts - 1) / 2).sum())
    return m, float(np.sqrt(m * pairs))


def nearest_reachable_tau(lengths: np.ndarray, tau: float) -> float:
    """The Kendall tau-b nearest ``tau`` that scores without ties reach against ``lengths`` [tokens] (the higher one
    where two are as near; 0 where every length is equal): ``(m - 2 d) / sqrt(m p)`` for ``d`` = 0..m of the ``m``
    pairs of different lengths among all ``p`` in reverse order (1, 1/3, -1/3, -1 on 3 requests; the tie ceiling
    at ``d = 0``)."""
    m, scale = _distinct_pairs(np.asarray(lengths))
    if m == 0:
        return 0.0
    d = min(max(np.ceil((m - tau * scale) / 2 - 0.5), 0), m)  # (half a step: towards fewer reversed pairs)
    return float((m - 2 * d) / scale)


def unreachable_tau_warning(lengths: np.ndarray, tau: float, what: str) -> str | None:
    """A one-line ``warning:`` when ties in ``lengths`` [tokens] put ``tau`` out of the approximate oracle's reach,
    naming the reachable maximum, or when too few requests do (tau-b's steps wider than :data:`TOLERANCE`), naming
    the nearest tau reached (:func:`nearest_reachable_tau`); None when it is reachable (or 1 - :data:`TOLERANCE` or
    more: the exact order).

    Scores without ties reach a Kendall tau-b of at most :func:`~ltrsched.workloads.ties.tau_ceiling`. Above it
    :func:`approx_oracle_scores` meets ``tau`` only with noise below the scores' float resolution, which ties
    equal lengths' scores and keeps every other pair in order: the exact order, not a ranker of that tau. With
    every length equal no order has a tau at all (the scores' order is random). ``what``: the spec, e.g. ``ltr``."""
    from ltrsched.workloads.ties import tau_ceiling, tied_pair_share  # (lengths alone: no predictor needed)

    lengths = np.asarray(lengths)
    if len(lengths) < 2 or tau >= 1 - TOLERANCE:
        return None
    ceiling = tau_ceiling(lengths)
    if tau <= ceiling + TOLERANCE:
        nearest = nearest_reachable_tau(lengths, tau)
        if abs(nearest - tau) <= TOLERANCE:
            return None
        m, scale = _distinct_pairs(lengths)
        return (f"warning: {what}: tau {tau:g} cannot be reached on {len(lengths):,} requests: scores without ties "
                f"move Kendall tau-b in steps of {2 / scale:.3f} here ({m:,.0f} pairs of different lengths); the "
                f"requests are ranked at the nearest tau reached, {nearest:.3f}")
    if ceiling == 0:
        return (f"warning: {what}: tau {tau:g} cannot be reached: all {len(lengths):,} output lengths are equal "
                f"({lengths[0]} token{'' if lengths[0] == 1 else 's'}), so no order has a Kendall tau (the reachable maximum is 0) and the "
                "requests are ranked at random")
    return (f"warning: {what}: tau {tau:g} cannot be reached on this workload: {tied_pair_share(lengths):.0%} of its "
            f"request pairs have equal output lengths, which Kendall tau-b orders in no pair, so scores without ties "
            f"reach at most {ceiling:.3f}; above that the requests are ranked in the exact order, not at tau {tau:g} "
            f"(ask for tau <= {ceiling:.3f})")


def warn_unreachable_tau(lengths: np.ndarray, tau: float, what: str) -> None:
    """Print :func:`unreachable_tau_warning` on stderr where it has one (the CLI prints each distinct line once:
    :mod:`ltrsched.notices`); for every user of the approximate oracle (``ltr:tau=``, the ``rank``/``least-work``
    routers' ``tau``, PO's and the classifier's noisy lengths: :func:`fill_missing_lengths`)."""
    import sys

    warning = unreachable_tau_warning(lengths, tau, what)
    if warning:
        print(warning, file=sys.stderr)


def noisy_lengths(lengths: np.ndarray, tau: float, seed: int = 0, request_ids=None) -> np.ndarray:
    """Predicted lengths [tokens] with Kendall tau ``tau`` against the truth (a length-valued oracle): finite,
    positive and in the order of :func:`approx_oracle_scores` (of the same ``request_ids``: each request's length
    whatever order the rows come in), so their tau is the scores' tau.

    They are ``exp(-score)`` (the true length times log-normal noise) wherever each is a normal float and at
    most the largest float over twice the number of requests (a router adds them up). Where one is not (the
    noise's scale runs to ~1e6 when ``tau`` is below what noise reaches on a few requests: ``exp`` gave inf and
    0, which tied requests that the scores order, and made a router's sums inf), the log-lengths are mapped
    linearly onto that range: the same order, without overflow."""
    log_lengths = -approx_oracle_scores(lengths, tau, seed, request_ids=request_ids)
    if len(log_lengths) == 0:
        return np.exp(log_lengths)
    low, high = _LOG_TINY, _LOG_MAX - np.log(2 * len(log_lengths))  # (sums stay below half the largest float)
    least, most = log_lengths.min(), log_lengths.max()
    if least < low or most > high:
        if most > least:
            log_lengths = low + (log_lengths - least) * ((high - low) / (most - least))
        else:
            log_lengths = np.full_like(log_lengths, min(max(least, low), high))
    return np.exp(log_lengths)


#: [log tokens] Natural logs of the smallest normal and the largest float64 (a noisy length's bounds).
_LOG_TINY, _LOG_MAX = float(np.log(np.finfo(np.float64).tiny)), float(np.log(np.finfo(np.float64).max))


def fill_missing_lengths(values, lengths, tau: float, seed: int = 0, *, what: str, request_ids=None) -> np.ndarray:
    """``values`` [tokens] with NaNs replaced by :func:`noisy_lengths` of the true ``lengths`` at ``tau`` (drawn over
    those requests in order of their ``request_ids``); where ties put ``tau`` out of reach of those requests,
    :func:`warn_unreachable_tau` says so for ``what`` (the spec, e.g. ``po:tau=0.51``), as ``ltr:tau=`` does."""
    out = np.asarray(values, dtype=np.float64).copy()
    missing = np.isnan(out)
    if missing.any():
        drawn = np.asarray(lengths)[missing]
        warn_unreachable_tau(drawn, tau, what)
        ids = None if request_ids is None else np.asarray(request_ids)[missing]
        out[missing] = noisy_lengths(drawn, tau, seed, ids)
    return out
