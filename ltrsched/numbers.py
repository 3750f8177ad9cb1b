"""Numbers as users write them: in options, specs and JSON files.

Two rules shared by every reader (command-line options, policy specs, ``--rates``/``--sizes`` lists, profile,
sweep and checkpoint JSON):

* :func:`plain_number_text`: a number is written in plain ASCII digits. Python's ``int()``/``float()`` also take
  underscore separators (``float("0_5")`` is 5.0, so a typo for 0.5 ran at another value) and non-ASCII digits.
* :func:`is_finite_number`: JSON's integers have no bound, and ``math.isfinite`` raises OverflowError (a
  traceback) on one beyond float64 instead of saying it is not finite.
"""

from __future__ import annotations

import math


def plain_number_text(text: str) -> str:
    """``text``, unless it is a number only by Python's own literal rules: ValueError for underscore digit
    separators or non-ASCII digits."""
    if not text.isascii():  # (full-width '１', Arabic-Indic '١٠': the '_' hint was the wrong one for these)
        raise ValueError(f"{text!r} is not a plain number (write it in ASCII digits 0-9, e.g. 0.5 or 1000)")
    if "_" in text:
        raise ValueError(f"{text!r} is not a plain number (write digits without '_', e.g. 0.5 or 1000)")
    return text


def is_finite_number(value) -> bool:
    """True for a finite int or float; False for NaN, an infinity, or an integer beyond float64."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def grouped(value: float, decimals: int = 1) -> str:
    """``value`` with thousands separators and ``decimals`` decimals (``12,345.6``), or in 3 significant digits
    from 1e15 on (``1e+300``): a file's arrival time of 1e300 s printed a 300-digit number in a note."""
    return f"{value:.3g}" if abs(value) >= 1e15 else f"{value:,.{decimals}f}"


def seconds_from_env(name: str, default: float, zero_means: str) -> float:
    """A duration [s] from the environment variable ``name``: ``default`` when unset or blank; a value that is no
    finite number >= 0 is a :class:`~ltrsched.errors.UserError` naming what 0 means (``zero_means``)."""
    import os

    from ltrsched.errors import UserError

    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"{name} must be a finite number of seconds >= 0 (0: {zero_means}), got {text!r}")
    return value
