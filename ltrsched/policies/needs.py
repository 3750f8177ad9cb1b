"""Checking, before a run, that a workload has the columns a policy needs (shared by every host)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ltrsched.errors import UserError
from ltrsched.policies.base import Policy

#: How to produce each column a policy may need.
PRODUCED_BY = {
    "score": "add it with `ltrsched predict --model DIR --workload FILE --out FILE` "
             "or use approximate-oracle scores with a tau parameter, e.g. `ltr:tau=0.62`",
    "predicted_length": "add it with `ltrsched predict` using a `ltrsched train --kind class` model",
    "po_estimate": "add a po_estimate column to the workload, or let `po` draw estimates (po:tau=...)",
}

#: The same for a router with a ``tau`` parameter (rank, least-work): its own spec, not a policy's, as the example.
ROUTER_TAU_HINT = {
    "score": "add it with `ltrsched predict --model DIR --workload FILE --out FILE` "
             "or use approximate-oracle scores with a tau parameter, e.g. {example}",
    "predicted_length": "add it with `ltrsched predict` using a `ltrsched train --kind class` model, "
                        "or use noisy true lengths with a tau parameter, e.g. {example}",
}


def check_needs(policy: Policy, has_column: Callable[[str], bool], workload_name: str = "the workload",
                kind: str = "policy", router_example: str = "`--router {name}:tau=0.62`") -> None:
    """Raise :class:`UserError` naming the missing column and the command that produces it.

    ``policy`` is anything with ``name`` and ``needs`` (a router too: ``kind="router"``). ``router_example``: how
    the user writes a router with ``tau`` where the router came from (``{name}``: the router's name), the CLI
    option by default; a sweep file's key in a sweep."""
    _check_declarations(policy, kind)
    for col in policy.needs:
        if not has_column(col):
            how = PRODUCED_BY.get(col, "add it to the workload")
            if kind == "router" and col in ROUTER_TAU_HINT and hasattr(policy, "tau"):  # (not a policy's spec)
                how = ROUTER_TAU_HINT[col].format(example=router_example.format(name=policy.name))
            raise UserError(f"{kind} {policy.name!r} needs a {col!r} column, which {workload_name} lacks; {how}")



def _check_declarations(policy, kind: str) -> None:
    """A one-line :class:`UserError` for a plugin's class attributes of the wrong kind: ``needs = "score"`` (a string:
    each of its letters was taken for a column, "needs a 's' column", and the policy could not run at all) or an
    ``extra_output_tokens`` that is not a whole number >= 0 (-5 served every request 5 tokens fewer than the
    workload's output, and a request of 5 or fewer never finished: a RuntimeError traceback; 2.5 half a token)."""
    needs = policy.needs
    if isinstance(needs, str) or not isinstance(needs, (tuple, list)) or not all(isinstance(c, str) for c in needs):
        raise UserError(f"{kind} {policy.name!r} declares needs = {needs!r}; it must be a tuple of column names, "
                        "e.g. needs = (\"score\",)")
    extra = getattr(policy, "extra_output_tokens", 0)
    if isinstance(extra, bool) or not isinstance(extra, (int, np.integer)) or extra < 0:
        raise UserError(f"{kind} {policy.name!r} declares extra_output_tokens = {extra!r}; it must be a whole number "
                        "of tokens >= 0 (output tokens the policy adds to every request)")


def warn_missing_scores(requests, who: str, example: str) -> None:
    """A ``warning:`` line on stderr naming ``who`` if some of the prepared ``requests`` have no ``score`` (NaN: a null
    in the workload's column) while others have one: ``-NaN`` sorts after every number, so those rank after every
    scored request (ties by arrival), which is what a run of them shows, but it ran so without a word. ``example``:
    the spec with a tau, which needs no column."""
    import sys

    scores = np.asarray(requests["score"], dtype=np.float64)
    missing = np.flatnonzero(np.isnan(scores))
    if len(missing):
        print(f"warning: {who}: {len(missing):,} of {len(scores):,} request(s) have no score (first: request "
              f"{requests['request_id'][missing[0]]}); they rank after every scored request, first come first "
              f"served among themselves: give every request a score (`ltrsched predict`), or use approximate-oracle "
              f"scores with a tau parameter, e.g. {example}", file=sys.stderr)
    scored = scores[~np.isnan(scores)]
    if len(scored) > 1 and scored.min() == scored.max():
        # (a predictor that gives every prompt one score, e.g. trained on labels all at one cap: its column ran the
        # policy as first come first served without a word; `ltrsched predict` warns when it writes such a column)
        print(f"warning: {who}: all {len(scored):,} scored request(s) have the same score ({scored[0]:g}); ranked "
              f"by it they run first come first served: check the predictor that wrote the column, or use "
              f"approximate-oracle scores with a tau parameter, e.g. {example}", file=sys.stderr)
