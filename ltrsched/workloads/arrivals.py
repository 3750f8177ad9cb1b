"""Arrival processes: when each request of a workload arrives [s].

- ``burst``: every request at t = 0.
- ``poisson``: exponential inter-arrival times at ``rate`` [req/s]; the first request at t = 0.
- ``gamma``: gamma inter-arrival times with mean 1/rate and coefficient of variation ``cv``
  (cv = 1 is Poisson; larger is burstier).
- ``replay``: the workload's own ``arrival_time`` shifted to start at 0; with ``rate``, scaled so that
  the mean rate (requests - 1) / span equals ``rate``.

``duration`` keeps only requests arriving in ``[0, duration)`` (e.g. "60 s of requests at 16 req/s").
Requests receive times in table order.

No parameter is silently ignored: a rate or a duration with ``burst`` arrivals (every request at t = 0),
or a coefficient of variation other than 1 with anything but ``gamma``, is refused
(:func:`ignored_parameters`).

A file's arrival times are seconds unless its column's name says otherwise (``arrival_time_ms``:
:data:`ltrsched.workloads.loaders.UNIT_SUFFIXES`). Milliseconds taken for seconds make a trace 1000x slower, and
nothing fails: so replaying a file's times as seconds (``replay`` without a rate; with one the unit cancels)
warns on stderr when they look like milliseconds (:func:`seconds_unit_warning`), naming the column to rename.

Arrival times must stay below :data:`MAX_ARRIVAL_TIME_S` (1e8 s, about 3 years): float64 time has a
resolution of 1.5e-8 s there, so a step of 1 us (the shortest a profile may have) still advances the
clock by that step to within 1.5%, and a realistic step of milliseconds to within 1e-5. Much later times
would swallow step times (e.g. every latency 0 at t = 1e300 s, from ``rate=1e-300``).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import polars as pl

from ltrsched.errors import UserError
from ltrsched.numbers import grouped
from ltrsched.workloads.file_rows import FileRows, file_rows, request_named
from ltrsched.workloads.schema import Workload

PROCESSES = ("burst", "poisson", "gamma", "replay")
#: Latest arrival time a run may have [s]; see the module docstring.
MAX_ARRIVAL_TIME_S = 1e8


def ignored_parameters(process: str, rate: float | None, cv: float | None, duration: float | None) -> list[str]:
    """The parameters given that ``process`` would ignore: ``rate`` and ``duration`` with ``burst`` (all
    requests arrive at t = 0), ``cv`` other than 1 (None: not given) with anything but ``gamma``."""
    ignored = []
    if process == "burst" and rate is not None:
        ignored.append("rate")
    if process != "gamma" and cv is not None and cv != 1.0:
        ignored.append("cv")
    if process == "burst" and duration is not None:
        ignored.append("duration")
    return ignored


#: What shortens arrivals generated at a rate (poisson, gamma, a replay rescaled to a rate): :func:`check_arrival_span`.
RATE_FIX = "raise the rate, or use fewer requests"
#: ... and a file's own times, replayed without a rate (which has no rate to raise).
REPLAY_FIX = "give a rate, to which the replay rescales the file's times, or drop the requests far from the rest"


def check_arrival_span(t: np.ndarray, what: str = "the workload", fix: str = RATE_FIX) -> None:
    """Raise :class:`UserError` if an arrival time [s] reaches :data:`MAX_ARRIVAL_TIME_S`; ``fix``: what to do
    (:data:`RATE_FIX`, :data:`REPLAY_FIX`)."""
    last = float(t.max()) if len(t) else 0.0
    if not last < MAX_ARRIVAL_TIME_S:
        raise UserError(
            f"{what} has arrival times up to {last:.3g} s; they must stay below {MAX_ARRIVAL_TIME_S:.0e} s "
            f"(about 3 years), where float64 time still resolves a step ({fix})")


#: :func:`seconds_unit_warning`'s thresholds: a span of more than a day [s] whose median gap between arrivals is
#: over a minute [s] (a trace in milliseconds at under ~16 req/s), or times past 1e11 s (the year 5138 as Unix
#: time, where Unix milliseconds lie). The Azure 2023 traces (an hour, gaps of 0.06-0.12 s) are far from both.
UNIT_SPAN_S, UNIT_GAP_S, UNIT_EPOCH_S = 86_400.0, 60.0, 1e11
#: ... or a span of more than an hour [s] whose median gap is over 5 minutes [s]: a slow trace in milliseconds that
#: starts near 0 and is too short for the day (50 requests 1.5 s apart, read as seconds: 20 hours, gaps of 25
#: minutes). Milliseconds read as seconds make every gap 1000x longer: a chat trace at 0.5-20 req/s (median gaps
#: of 35-1400 ms) then has gaps of 35-1400 s. A median gap of 5 minutes in seconds is under 9 requests an hour (a
#: Poisson workload's median gap is ln 2 / rate: 300 s at 0.0023 req/s), no serving load: Poisson workloads at
#: 0.01 req/s and faster (median gaps of 69 s and less) and the Azure traces are far below it, while the same
#: file in milliseconds is a trace at 3.3 req/s or slower, as slow chat traces are. The hour keeps a handful of
#: requests (3 at 0, 1500, 3000) from judging: their pace says little. A seconds trace that slow says so by its
#: column's name (``arrival_time_s``).
UNIT_SLOW_SPAN_S, UNIT_SLOW_GAP_S = 3_600.0, 300.0


def seconds_unit_warning(t: np.ndarray) -> str | None:
    """What makes arrival times ``t`` read as seconds implausible (and likely milliseconds), or None: a span of days
    with a median gap of minutes (:data:`UNIT_SPAN_S`, :data:`UNIT_GAP_S`: a chat or code trace in milliseconds),
    a span of hours with a median gap of over 5 minutes (:data:`UNIT_SLOW_SPAN_S`, :data:`UNIT_SLOW_GAP_S`: a slow
    one, whatever its start), or times past :data:`UNIT_EPOCH_S` (Unix milliseconds). A trace that is seconds all
    the same says so by its column's name (``arrival_time_s``)."""
    t = np.asarray(t, dtype=np.float64)
    t = t[np.isfinite(t)]
    if len(t) < 2:
        return None
    t = np.sort(t)
    span = float(t[-1] - t[0])
    gaps = np.diff(t)
    gaps = gaps[gaps > 0]
    gap = float(np.median(gaps)) if len(gaps) else 0.0
    if span > UNIT_SPAN_S and gap > UNIT_GAP_S:
        return f"span {span / 86_400:,.1f} days with a median gap of {gap:,.0f} s between arrivals"
    if span > UNIT_SLOW_SPAN_S and gap > UNIT_SLOW_GAP_S:
        return f"span {span / 3_600:,.1f} hours with a median gap of {gap:,.0f} s between arrivals"
    if t[0] >= UNIT_EPOCH_S:
        return f"start at {t[0]:.4g} s, past the year 5000 as Unix time (Unix milliseconds are about 1.7e12)"
    return None


def arrival_times(n: int, process: str, rate: float | None = None, cv: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` arrival times [s] of a generative process (burst, poisson, gamma)."""
    if process == "burst":
        return np.zeros(n)
    _check_rate(rate, process)
    if not (math.isfinite(cv) and cv > 0):
        raise UserError(f"the coefficient of variation must be positive, got {cv}")
    rng = np.random.default_rng(seed)
    if process == "poisson":
        gaps = rng.exponential(1.0 / rate, n)
    elif process == "gamma":
        shape, scale = _gamma_parameters(rate, cv)
        gaps = rng.gamma(shape, scale, n)
    else:
        raise UserError(f"unknown arrival process {process!r}; use one of {', '.join(PROCESSES)}")
    gaps[0] = 0.0
    with np.errstate(over="ignore"):  # times beyond float64 (e.g. rate=1e-308) are inf: check_arrival_span refuses
        return np.cumsum(gaps)  # them in one line (numpy's overflow warning printed two lines before it)


def _gamma_parameters(rate: float, cv: float) -> tuple[float, float]:
    """Shape and scale [s] of gamma inter-arrival times with mean 1/rate [s] and coefficient of variation cv."""
    shape = 1.0 / (cv * cv) if cv * cv > 0 else math.inf
    scale = 1.0 / (rate * shape) if rate * shape > 0 else math.inf
    if not (0 < shape < math.inf and 0 < scale < math.inf):
        raise UserError(f"the coefficient of variation {cv:g} is out of range for gamma inter-arrival times "
                        f"at {rate:g} req/s (1/cv^2 and cv^2/rate must be positive finite numbers)")
    return shape, scale


def _check_rate(rate, process):
    if rate is None:
        raise UserError(f"arrival process {process!r} needs a rate [req/s]")
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise UserError(f"the arrival rate must be a positive number of requests per second, got {rate}")


def apply_arrivals(
    workload: Workload, process: str, rate: float | None = None, cv: float = 1.0, seed: int = 0,
    duration: float | None = None,
) -> Workload:
    """A copy of ``workload`` with arrival times from ``process``; see the module docstring."""
    if process not in PROCESSES:
        raise UserError(f"unknown arrival process {process!r}; use one of {', '.join(PROCESSES)}")
    ignored = ignored_parameters(process, rate, cv, duration)
    if ignored:
        raise UserError(f"{process} arrivals take no {' or '.join(ignored)} (given: "
                        f"{', '.join(f'{k}={v}' for k, v in (('rate', rate), ('cv', cv), ('duration', duration)) if k in ignored)})")
    n = len(workload)
    if process == "replay":
        t = workload.df["arrival_time"].to_numpy().astype(np.float64)
        start = t.min()
        t = t - start
        span = t.max()
        if n > 1 and span <= 0:  # e.g. a .jsonl without arrival times, or a built-in workload: was a burst
            when = ("at t = 0 (no arrival times)" if start == 0 else  # (all at 7 s said "t = 0 (no arrival times)")
                    f"at the same time (t = {start:g} s in the file: no gaps between arrivals to replay)")
            raise UserError(f"replay arrivals replay a file's timestamps, but every request of {workload.name} "
                            f"arrives {when}: use burst arrivals for that, or poisson "
                            "(or gamma) arrivals at a rate")
        if rate is not None:
            _check_rate(rate, process)
            if n < 2:
                raise UserError(f"cannot scale {workload.name} to {rate:g} req/s with replay arrivals: it has one "
                                "request; use poisson (or gamma) arrivals at that rate instead")
            t = t * (((n - 1) / span) / rate)
    else:
        t = arrival_times(n, process, rate, cv, seed)
    df = workload.df.with_columns(arrival_time=pl.Series(t, dtype=pl.Float64))
    if duration is not None:
        if not (math.isfinite(duration) and duration > 0):
            raise UserError(f"the duration must be positive, got {duration}")
        if process != "burst" and t.max() < duration and n > 1:
            raise UserError(
                f"the workload has only {n} requests, which all arrive within {t.max():.1f} s; "
                f"{duration:g} s of arrivals needs more (about rate x duration)"
            )
        df = df.filter(pl.col("arrival_time") < duration)
    unit_doubt = workload.meta.get("arrival_warning") if process == "replay" and rate is None else None
    try:
        check_arrival_span(df["arrival_time"].to_numpy(), f"{workload.name} with {process} arrivals"
                           + (f" at {rate:g} req/s" if rate is not None else "") + _outlier(df, file_rows(workload.meta)),
                           # (a replay of the file's own times has no rate: "raise the rate" was said of it too)
                           REPLAY_FIX if process == "replay" and rate is None else RATE_FIX)
    except UserError as exc:
        if not unit_doubt:
            raise
        column = workload.meta.get("arrival_column") or "arrival_time"
        raise UserError(f"{exc}; if the file's times are milliseconds, name the column {column.strip()}_ms") from None
    if unit_doubt:  # (after the checks: a warning ahead of an error made it two lines)
        print(f"warning: {unit_doubt}", file=sys.stderr)
    return workload.with_df(df, arrival=process, rate=rate, cv=cv, arrival_seed=seed, duration=duration)


def _outlier(df: pl.DataFrame, rows: FileRows | None = None) -> str:
    """``" (request 7 arrives 63 years after request 0)"``: the requests of ``df`` whose arrival times [s] span it,
    where that span reaches :data:`MAX_ARRIVAL_TIME_S` (a file's times decades apart, e.g. one at Unix time 0 among
    2023's: the refusal named neither); ``""`` otherwise. Each is named by its id and, where ``rows`` gives it, its
    place in its file (``request 7 in row 20``: once ``-n`` samples a file without ids, its id is none of the file's)."""
    t = df["arrival_time"].to_numpy()
    if len(t) < 2 or not np.isfinite(t).all() or not t.max() - t.min() >= MAX_ARRIVAL_TIME_S:
        return ""
    ids = df["request_id"].to_list() if "request_id" in df.columns else list(range(len(t)))

    def named(at: int) -> str:
        return request_named(ids[at], rows.place(ids[at]) if rows is not None else None)

    return (f" ({named(int(np.argmax(t)))} arrives {grouped((t.max() - t.min()) / 31_557_600, 0)} years after "
            f"{named(int(np.argmin(t)))})")


def duration_cut_note(counts: list[tuple[int, int]], duration: float, by: str, fix: str) -> str | None:
    """That ``by`` (the option or key giving the duration [s]) kept only the requests arriving in its first
    ``duration`` seconds: ``counts`` holds each run's ``(kept, total)`` requests (one for ``simulate``, one per
    distinct workload and rate for a sweep); ``fix``: how the caller's settings keep more. None when no run lost a
    request (the cut is then no news: a 200-request workload at 1 req/s kept 1 request with no word but "requests 1")."""
    cut = [(kept, total) for kept, total in counts if kept < total]
    if not cut:
        return None

    def span(values) -> str:
        low, high = min(values), max(values)
        return f"{low:,}" if low == high else f"{low:,} to {high:,}"

    runs = f" in {len(cut)} of {len(counts)} runs" if len(counts) > 1 else ""
    return (f"note: {by} kept {span([k for k, _ in cut])} of {span([t for _, t in cut])} requests{runs}: those arriving "
            f"in the first {duration:g} s (the rest arrive later and were not run); {fix}")


def thinned_replay_note(sample: Workload, whole: Workload, drawn_by: str, fix: str) -> str | None:
    """That ``drawn_by`` (the option or key giving the number of requests) drew ``sample`` at random from across the
    trace ``whole``, so that replaying its own timestamps serves the trace thinned (a trace of 2,000 requests at
    10 req/s, 100 drawn: 100 requests over its 200 s, at 0.5 req/s), not its first requests at its rate, as a replay
    reads; ``fix``: how the caller's settings change that. None when the sample is the whole trace or either has no
    span of arrival times (the replay refuses that)."""
    n, total = len(sample), len(whole)
    if n >= total or n < 2:
        return None
    times, all_times = sample.df["arrival_time"], whole.df["arrival_time"]
    span, whole_span = times.max() - times.min(), all_times.max() - all_times.min()
    if not (span is not None and whole_span is not None and span > 0 and whole_span > 0):
        return None
    return (f"note: {drawn_by} drew {n:,} of {whole.name}'s {total:,} requests at random from across its trace, so "
            f"replay arrivals served them thinned, at {(n - 1) / span:.3g} req/s (the trace: "
            f"{(total - 1) / whole_span:.3g} req/s); {fix}")
