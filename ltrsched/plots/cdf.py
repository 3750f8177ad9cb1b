"""CDF plots of per-request latency per token, TTFT and TPOT, one line per policy."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import polars as pl

from ltrsched import atomic
from ltrsched.errors import UserError
from ltrsched.outputs import check_out_file

#: Metric column -> axis label.
CDF_METRICS = {
    "latency_per_token": "latency per output token [s/token]",
    "ttft": "time to first token [s]",
    "tpot": "time per output token [s/token]",
}
IMAGE_SUFFIXES = (".png", ".pdf", ".svg")

Lines = Sequence[tuple[str, pl.DataFrame]]  # (label, requests table)


def check_image_path(path: str | Path, option: str = "--out") -> Path:
    """Raise :class:`UserError` unless ``path`` is a writable image file path (.png, .pdf, .svg)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{option} must end in {', '.join(IMAGE_SUFFIXES)}, got {path}")
    return check_out_file(path, option)


def check_title(title: str, option: str = "--title") -> str:
    """Raise :class:`UserError` if matplotlib would fail to typeset ``title`` (text between two ``$`` is
    math, e.g. ``$\\lambda$``; an unknown command there ended in a traceback after the runs were read)."""
    from matplotlib import cbook
    from matplotlib.mathtext import MathTextParser

    if cbook.is_math_text(title):
        try:
            MathTextParser("path").parse(title)
        except ValueError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{option} {title!r}: matplotlib cannot typeset the math between its $ signs ({reason}); "
                            "write \\$ for a literal dollar sign") from None
    return title


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted finite values and the fraction of values at or below each (the empirical CDF's steps)."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    return v, np.arange(1, len(v) + 1) / max(len(v), 1)


def metric_values(requests: pl.DataFrame, metric: str) -> np.ndarray:
    """A metric's finite values over the finished requests (empty if the table lacks it)."""
    if metric not in requests.columns:
        return np.zeros(0)
    return requests[metric].drop_nulls().cast(pl.Float64).to_numpy()


def cdf_figure(groups: Sequence[tuple[str, Lines]], title: str = "", series: Mapping[str, str] | None = None):
    """The figure of :func:`plot_cdf_grid` (a matplotlib ``Figure``; the caller closes it). A line's colour and
    dash pattern follow its series, ``series[label]`` (default: the label; :func:`ltrsched.plots.runs.line_series`),
    in order of first appearance (:func:`ltrsched.plots.styles.series_styles`), so a policy is drawn alike in
    every panel and row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ltrsched.plots.styles import series_styles

    series = series or {}
    styles = series_styles(series.get(label, label) for _, lines in groups for label, _ in lines)
    ncols = len(CDF_METRICS)
    fig, axes = plt.subplots(len(groups), ncols, figsize=(4.2 * ncols, 3.2 * len(groups) + 0.6), squeeze=False)
    for row, (group_title, lines) in zip(axes, groups):
        for ax, (metric, xlabel) in zip(row, CDF_METRICS.items()):
            lo, hi = np.inf, 0.0
            for label, requests in lines:
                x, y = ecdf(metric_values(requests, metric))
                if not len(x):
                    continue
                style = styles[series.get(label, label)]
                ax.step(x, y, where="post", label=f"{label} (n={len(x)})", linewidth=1.4, color=style.color,
                        linestyle=style.linestyle)
                positive = x[x > 0]
                if len(positive):
                    lo, hi = min(lo, positive[0]), max(hi, positive[-1])
            if hi > 10 * lo:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("fraction of requests")
            ax.set_ylim(0, 1.02)
            ax.grid(True, alpha=0.3)
            if group_title:
                ax.set_title(group_title, fontsize=9)
        row[0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_cdf_grid(groups: Sequence[tuple[str, Lines]], path: str | Path, title: str = "",
                  series: Mapping[str, str] | None = None) -> Path:
    """One row of panels per group (title, lines), one panel per metric of :data:`CDF_METRICS`; a step
    line per (label, requests), styled by its series (:func:`cdf_figure`). Log x-axis where a panel's values span
    more than a decade."""
    fig = cdf_figure(groups, title, series)
    import matplotlib.pyplot as plt  # (after cdf_figure chose the Agg backend)

    try:
        return atomic.write_figure(path, fig, dpi=120)
    finally:
        plt.close(fig)


def plot_cdfs(lines: Lines, path: str | Path, title: str = "") -> Path:
    """One row of CDF panels (latency per token, TTFT, TPOT) with a line per (label, requests)."""
    return plot_cdf_grid([("", lines)], path, title)
