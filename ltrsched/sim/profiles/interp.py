"""Piecewise-linear lookup tables cheap enough to call once per simulated step (~0.1 µs)."""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence


class PiecewiseLinear:
    """y(x) by linear interpolation between measured points.

    Below the first point the first value is returned (tables start at the smallest meaningful size,
    e.g. 1 token); beyond the last point the last segment's slope is extended. Points are kept as
    plain Python floats: for tables of a few hundred points ``bisect`` on a list beats
    ``numpy.interp`` on a scalar by an order of magnitude. A simulator asks for the same few hundred
    sizes (tokens or sequences in a step) again and again, so answers are also memoised.
    """

    __slots__ = ("xs", "ys", "_slopes", "_x0", "_y0", "_xn", "_yn", "_tail", "_memo")

    MEMO_SIZE = 1 << 16  # answers kept (a step's sizes are bounded by the token budget and sequence cap)

    def __init__(self, xs: Sequence[float], ys: Sequence[float]):
        if len(xs) != len(ys) or not len(xs):
            raise ValueError("xs and ys must be non-empty and of equal length")
        self.xs = [float(x) for x in xs]
        self.ys = [float(y) for y in ys]
        if any(b <= a for a, b in zip(self.xs, self.xs[1:])):
            raise ValueError("xs must be strictly increasing")
        self._slopes = [(y1 - y0) / (x1 - x0) for x0, x1, y0, y1 in
                        zip(self.xs, self.xs[1:], self.ys, self.ys[1:])]
        self._x0, self._y0 = self.xs[0], self.ys[0]
        self._xn, self._yn = self.xs[-1], self.ys[-1]
        self._tail = self._slopes[-1] if self._slopes else 0.0
        self._memo: dict[float, float] = {}

    def __call__(self, x: float) -> float:
        y = self._memo.get(x)
        if y is None:
            y = self._interpolate(x)
            if len(self._memo) < self.MEMO_SIZE:
                self._memo[x] = y
        return y

    def _interpolate(self, x: float) -> float:
        if x <= self._x0:
            return self._y0
        if x >= self._xn:
            return self._yn + (x - self._xn) * self._tail
        i = bisect_right(self.xs, x) - 1
        return self.ys[i] + (x - self.xs[i]) * self._slopes[i]

    def __len__(self) -> int:
        return len(self.xs)
