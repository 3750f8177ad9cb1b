"""The check every host runs on a policy's competition order before forming a batch.

:meth:`Policy.rank` must return a permutation of the live positions ``0 .. n-1`` (each exactly once) as a
1-D integer array. :func:`form_batch` trusts that: duplicates would run a request twice in one step and
count its tokens twice, out-of-range positions index other requests' state. Both hosts (the simulator's
replica and the engine adapter) call :func:`check_order` on every order, so a broken policy (usually a
plug-in) stops at its first bad step with a one-line :class:`UserError` that names it and what is wrong.

Cost (the check runs every step; BENCHMARKS.md): an order that :meth:`LiveView.order_by` made for this
view and that is unchanged (it is read-only) is a permutation by construction, so it is accepted by
identity (~0.1 us). So is the very order the last check accepted value by value, returned again unchanged
for a view of the same size (a policy that keeps its order between steps, such as LTR between arrivals and
finishes, returns the same array): it must be read-only and own its memory, so that nothing changes it
behind the flag. So is an order a library policy built from such an order and vouched for with :func:`vouched`
(a permutation by construction, proven with checks that cost as much as the change, not the live set: a
kept LTR order after a few requests finished, or the same with promoted requests moved to its front). Any other
order is checked value by value: one fancy-index write into a fresh boolean
array, one count and one bitwise OR of the values (53 k instructions at 2,000 live requests, 60 k with
the integer sum used before: callgrind). The diagnosis of a bad order runs only once it has failed.

The shortcuts trust "read-only" only where the library made the order: a policy of this package (and every policy
it wraps: :func:`library_policy`), or an order the library vouched for. A plugin's own orders are checked value by
value every step (the 53 k instructions above at 2,000 live requests): an array's owner may set it writeable
again, change it and set it read-only, and a plugin that kept its order so, edited in place, had a repeated
position accepted unchecked.
"""

from __future__ import annotations

import numpy as np

from ltrsched.errors import UserError
from ltrsched.policies.base import LiveView
from ltrsched.policies.fastops import count_nonzero, frozen

_TRUE = np.array(True)

#: The last order accepted value by value that nothing can change (read-only, owning its memory), and its
#: length: returned again for a view of that size, it is still a permutation.
_accepted: tuple = (None, -1)


def check_order(order, view: LiveView, policy: object) -> np.ndarray:
    """``order`` if it is a permutation of ``range(len(view))`` with an integer dtype, else a :class:`UserError`.

    Args:
        order: what ``policy.rank(view)`` returned (a numpy array; other sequences are converted).
        view: the view the policy ranked.
        policy: the policy, named in the error by its spec.

    Returns:
        The order as a numpy array (the same object when it was one already).
    """
    global _accepted
    if order is view._ranked and order is not None and not order.flags.writeable and (
            order is view._vouched or library_policy(policy)):  # vouched for, or order_by's for the library's policy
        return order
    n = len(view)
    if order is _accepted[0] and n == _accepted[1] and not order.flags.writeable and library_policy(policy):
        return order  # accepted before, unchanged
    if type(order) is not np.ndarray:
        given = type(order).__name__
        try:
            order = np.asarray(order)
        except Exception as exc:  # e.g. a ragged list
            _fail(policy, view, n, f"a {given} that is no array of positions ({exc})")
        if order.ndim == 0:  # None (a missing return), a generator, a number, a string
            _fail(policy, view, n, f"a {given}, not an array of positions")
    if order.ndim == 1 and len(order) == n and order.dtype.kind in "iu" and _is_permutation(order, n):
        if frozen(order):
            _accepted = (order, n)
        return order
    _fail(policy, view, n, _diagnose(order, n))


#: The policy :func:`library_policy` last judged, and its answer (the same object every step of a run).
_judged: tuple = (None, False)


def library_policy(policy: object) -> bool:
    """Whether ``policy`` and every policy it wraps (through ``inner``) are this package's own, whose orders the
    identity shortcuts above may take on trust. A plugin's are checked value by value every step: "read-only and
    owning its memory" proves nothing about an array its owner holds, who may set it writeable again, change it and
    set it read-only (a plugin that kept one order and edited it so had a repeated position accepted unchecked, and
    its run served one request twice in a step, without a word)."""
    global _judged
    if policy is not _judged[0]:
        _judged = (policy, _all_library(policy))
    return _judged[1]


def _all_library(policy: object) -> bool:
    seen = 0
    while policy is not None and seen < 16:  # (a wrapper of a wrapper; bounded against a cycle)
        if type(policy).__module__.partition(".")[0] != "ltrsched":  # (registry.is_builtin's rule)
            return False
        policy, seen = getattr(policy, "inner", None), seen + 1
    return policy is None


def vouched(view: LiveView, order: np.ndarray) -> np.ndarray:
    """Mark ``order`` as a permutation of ``view``'s positions by construction and return it, read-only: hosts
    then accept it without checking its values, as they accept :meth:`LiveView.order_by`'s.

    For the library's own policies, and only where the caller has *proven* the order to be one (e.g. built from
    an order that was one, by removing distinct positions and appending distinct new ones, with the counts
    checked): a wrongly vouched order would reach :func:`~ltrsched.policies.batching.form_batch` unchecked.
    """
    order.setflags(write=False)  # (what setting ``order.flags.writeable`` calls, without building a flags object)
    view._ranked = view._vouched = order
    return order


def vouched_again(view: LiveView, order: np.ndarray) -> np.ndarray:
    """``order``, which :func:`vouched` marked for an earlier view of the same live requests (read-only since), as
    ``view``'s: the same as :func:`vouched` without the flags call (~3 us on the CPU engine's cold caches)."""
    view._ranked = view._vouched = order
    return order


def _fail(policy: object, view: LiveView, n: int, what: str):
    raise UserError(f"policy {_spec(policy)} returned an invalid order at step {view.step}: {what}; "
                    f"rank() must return a permutation of the {n} live positions 0..{n - 1} as a 1-D integer array")


def _is_permutation(order: np.ndarray, n: int) -> bool:
    """Whether the 1-D integer array ``order`` of length ``n`` holds 0..n-1, each once (exact)."""
    if n < 2:
        return n == 0 or order[0] == 0
    seen = np.zeros(n, dtype=bool)
    try:
        # every value v in [-n, n) marks entry v mod n (others raise IndexError); n values mark all n entries
        # exactly when their residues mod n are 0..n-1, each once. Then each value is its residue unless it is
        # negative: the bitwise OR of all values has the sign bit set exactly when one is (one SIMD pass, ~2x
        # cheaper than the integer sum that told the same)
        seen[order] = _TRUE
    except IndexError:
        return False
    if count_nonzero(seen) != n:
        return False
    return order.dtype.kind == "u" or int(_bitwise_or_all(order)) >= 0


_bitwise_or_all = np.bitwise_or.reduce


def _diagnose(order: np.ndarray, n: int) -> str:
    """What is wrong with an order that failed :func:`check_order` (one phrase)."""
    if order.ndim != 1:
        return f"a {order.ndim}-D array of shape {order.shape}"
    if order.dtype.kind not in "iu":
        return f"dtype {order.dtype}, not an integer type"
    if len(order) != n:
        return f"{len(order)} positions for {n} live requests"
    bad = order[(order < 0) | (order >= n)]
    if len(bad):
        return f"{len(bad)} position(s) out of range (first: {int(bad[0])})"
    values, counts = np.unique(order, return_counts=True)
    dup = values[counts > 1]
    missing = np.setdiff1d(np.arange(n), values)
    return (f"{len(dup)} position(s) repeated (first: {int(dup[0])}), {len(missing)} missing "
            f"(first: {int(missing[0])})")


def _spec(policy: object) -> str:
    try:
        return repr(policy.spec())
    except Exception:  # a plug-in that is not a Policy, or whose parameters() fails
        return repr(getattr(policy, "name", type(policy).__name__))
