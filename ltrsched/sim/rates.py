"""The arrival rates [req/s] a run may be given (``simulate``/``replay``/``validate --rate``, a sweep's ``rates``,
``capacity --start-rate``/``--max-rate``): from :data:`MIN_RATE` to :data:`MAX_RATE`.

Outside that range a rate means nothing a run can show. ``simulate --rate 1e308`` ran, labelled 1e308 req/s, as a
burst (every gap 1e-308 s, all requests at once), where ``capacity --max-rate`` refused rates above 1e9; and
``--rate 1e-308`` was refused for "arrival times up to inf s".
"""

from __future__ import annotations

import math

from ltrsched.errors import UserError
from ltrsched.sim.profiles.model import MIN_STEP_S
from ltrsched.workloads.arrivals import MAX_ARRIVAL_TIME_S

#: Highest arrival rate [req/s]: a request every nanosecond, a thousandth of the shortest step a profile may model
#: (:data:`~ltrsched.sim.profiles.model.MIN_STEP_S`): arrivals that dense are a burst, whatever the rate. (Rates near float64's largest overflowed capacity's log axis.)
MAX_RATE = 1e3 / MIN_STEP_S
#: Lowest arrival rate [req/s]: a request every 1e8 s (about 3 years), the latest a run's arrivals may come
#: (:data:`~ltrsched.workloads.arrivals.MAX_ARRIVAL_TIME_S`). A run of many requests needs a higher one, its
#: arrivals spanning about ``requests / rate`` seconds (refused, naming its span, where the arrivals are drawn).
MIN_RATE = 1.0 / MAX_ARRIVAL_TIME_S


def check_rate(rate: float, option: str, burst: str | None = "--arrival burst") -> None:
    """Raise a one-line :class:`UserError` naming ``option`` (``--rate``, ``s.toml: 'rates'``) unless ``rate`` is
    a number of requests per second from :data:`MIN_RATE` to :data:`MAX_RATE`; ``burst``: how the command asks for
    every request at once, named to a rate above the range (None: not named)."""
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise UserError(f"{option} must be a positive number of requests per second, got {rate}")
    if rate > MAX_RATE:
        raise UserError(f"{option} {rate:.10g} req/s is above {MAX_RATE:.0e} (a request every nanosecond, a thousand "
                        f"in the shortest step a profile models): arrivals that dense are a burst at any rate; give a "
                        "lower rate" + (f", or {burst} for every request at t = 0" if burst else ""))
    if rate < MIN_RATE:
        raise UserError(f"{option} {rate:.10g} req/s is below {MIN_RATE:.0e} (a request every {1 / MIN_RATE:.0e} s, "
                        "about 3 years, the latest a run's arrivals may come); give a higher rate")
