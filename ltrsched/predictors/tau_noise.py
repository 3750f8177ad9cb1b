"""How far a Kendall tau measured on a few held-out prompts moves by chance alone.

Where scores and lengths are unrelated, Kendall's tau on ``n`` prompts has mean 0 and standard error
``sqrt(2 (2n + 5) / (9 n (n - 1)))`` (Kendall 1938; without ties): 0.64 on 3 prompts, 0.13 on 30, 0.068 on 100,
0.010 on 4,000 (``ltrsched label``'s eval window). The paper's rankers (0.52-0.64) and its another-seed ceiling
(0.74) are about 0.1 apart, so a tau on fewer than :data:`MIN_HELD_OUT` prompts cannot tell them apart.
``train``, ``evaluate``, ``ensemble`` and ``label-report`` print :func:`few_prompts_warning` beside their taus.
"""

from __future__ import annotations

import math

#: Fewest held-out prompts [prompts] whose tau is printed without a warning: the standard error is 0.068 there
#: (+-0.13 at 95%), about the gap between the paper's rankers and its ceiling.
MIN_HELD_OUT = 100


def tau_standard_error(n: int) -> float:
    """Standard error of Kendall's tau on ``n`` >= 2 pairs of unrelated values (no ties) [dimensionless]."""
    if n < 2:
        raise ValueError(f"Kendall tau needs at least 2 values, got {n}")
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))


def few_prompts_warning(n: int, what: str = "held-out prompts") -> str | None:
    """One line (``warning: ...``) where a tau on ``n`` ``what`` is mostly chance (``n`` < :data:`MIN_HELD_OUT`, at
    least 2); None otherwise."""
    if not 2 <= n < MIN_HELD_OUT:
        return None
    here, there = tau_standard_error(n), tau_standard_error(MIN_HELD_OUT)
    digits = 2  # (more where two decimals print the two alike: 99 prompts said "0.07; 100 or more bring it to 0.07")
    while f"{here:.{digits}f}" == f"{there:.{digits}f}":
        digits += 1
    return (f"warning: a Kendall tau on only {n} {what} says little: by chance alone it has a standard error of "
            f"{here:.{digits}f} (scores unrelated to the lengths); {MIN_HELD_OUT} or more bring it to "
            f"{there:.{digits}f}")
