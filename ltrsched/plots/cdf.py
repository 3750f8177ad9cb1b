"""CDF plots of per-request latency per token, TTFT and TPOT, one line per policy."""

from __future__ import annotations

import re
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
    check_named(path, option, IMAGE_SUFFIXES, "cdf")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{option} must end in {', '.join(IMAGE_SUFFIXES)}, got {path}")
    return check_out_file(path, option)


def check_named(path: Path, option: str, suffixes: tuple[str, ...], stem: str) -> None:
    """One-line :class:`UserError` for a file named by one of ``suffixes`` alone (``-o .png``): pathlib reads it as
    a hidden file without a suffix, and the error said "--out must end in .png, .pdf, .svg, got .png". ``stem``
    begins the name suggested."""
    if path.name.lower() in suffixes:
        raise UserError(f"{option} {path}: the name is its suffix alone, which names a hidden file without one; give "
                        f"a name before the suffix, e.g. {stem}{path.name}")


#: Most lines of a --title: more were drawn down over the panels (matplotlib's "Tight layout not applied").
MAX_TITLE_LINES = 3
#: Most characters of a --title's line: 70 of the widest letter (W) fit the figure's width (12.6 in; 80 did not); a
#: longer line was cut off at both edges of the image.
MAX_TITLE_CHARS = 70


#: Longest title an error shows whole [characters, once escaped]; a longer one is cut to its start and end.
MAX_SHOWN_TITLE = 60


def shown_title(title: str) -> str:
    """``title`` as an error line shows it: escaped (``repr``: a control character, line break, lone surrogate or
    bidirectional-text control as its escape) and, beyond :data:`MAX_SHOWN_TITLE` characters, cut to its start and
    end as :func:`ltrsched.cli.cut_long_words` cuts a long word, with its length. A title of thousands of characters
    holding a tab was echoed whole, its error a line as long."""
    text = repr(title)
    if len(text) <= MAX_SHOWN_TITLE:
        return text
    return f"{text[:40]}...{text[-20:]} ({len(title):,} characters)"


def check_title(title: str, option: str = "--title") -> str:
    """Raise :class:`UserError` if matplotlib would fail to typeset ``title`` (text between two ``$`` is
    math, e.g. ``$\\lambda$``; an unknown command there ended in a traceback after the runs were read), or if it holds
    a control character other than a line break (a tab, ESC, a carriage return: drawn as an empty box, which the
    missing-glyph note said a font would fix), or more lines or longer ones than fit the figure
    (:data:`MAX_TITLE_LINES`, :data:`MAX_TITLE_CHARS`)."""
    import unicodedata

    from matplotlib import cbook
    from matplotlib.mathtext import MathTextParser

    at = next((i for i, c in enumerate(title) if c != "\n" and unicodedata.category(c) == "Cc"), None)
    if at is not None:
        shown = shown_title(title)
        where = f" (character {at + 1:,})" if shown != repr(title) else ""  # (where a cut title hides it)
        raise UserError(f"{option} {shown}: {title[at]!r}{where} is a control character, which no font "
                        "draws (an empty box in the figure); give printable text (a line break, \\n, starts a second "
                        "line)")

    lines = title.split("\n")
    if len(lines) > MAX_TITLE_LINES:  # (drawn down over the panels, "Tight layout not applied")
        raise UserError(f"{option} has {len(lines):,} lines, more than the {MAX_TITLE_LINES} that fit above the panels "
                        "(the rest was drawn over them); shorten it")
    longest = max(range(len(lines)), key=lambda i: len(lines[i]))
    if len(lines[longest]) > MAX_TITLE_CHARS:  # (cut off at both edges of the image)
        raise UserError(f"{option}: its line {longest + 1} has {len(lines[longest]):,} characters, more than the "
                        f"{MAX_TITLE_CHARS} that fit the figure's width (the rest was cut off at its edges); shorten "
                        "it, or break it with a line break (\\n)")

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


#: Most steps of a CDF's line drawn (:func:`thinned_steps`): the line then rises at most 1/4,000 of its height between
#: two drawn steps, under a pixel of a panel (3.2 in at 120 dpi: 384 px) and under a line's width in a vector file.
MAX_DRAWN_STEPS = 4000


def thinned_steps(x: np.ndarray, y: np.ndarray, most: int = MAX_DRAWN_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """An empirical CDF's steps (:func:`ecdf`'s sorted values ``x`` and fractions ``y``) as drawn: all of them up to
    ``most``, else ``most`` of them evenly spaced in rank, the first and last (smallest and largest value) included, so
    the drawn line is the CDF to within ``1 / most`` of its height. A run of 1,000,000 requests drew 1,000,000 steps in
    each of its 3 panels: 530 MB of memory for the drawing alone."""
    if len(x) <= most:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, most).round().astype(np.int64))
    return x[keep], y[keep]


def unfinished_count(requests: pl.DataFrame) -> int:
    """Requests of the table that did not finish (``finish_time`` missing or not finite: an engine run's aborted
    requests, a run stopped at a time). A CDF counts them as latencies past every one it draws: its line ends at
    the share that finished. (It ended at 1 over the finished ones alone: a run that finished half of its requests
    looked as good as one that finished all of them.)"""
    if "finish_time" not in requests.columns:
        return 0
    finish = requests["finish_time"]
    if not finish.dtype.is_numeric():
        return 0
    return int(finish.is_null().sum() + (~finish.drop_nulls().cast(pl.Float64).is_finite()).sum())


def metric_values(requests: pl.DataFrame, metric: str) -> np.ndarray:
    """A metric's finite values over the finished requests (empty if the table lacks it)."""
    if metric not in requests.columns:
        return np.zeros(0)
    return requests[metric].drop_nulls().cast(pl.Float64).to_numpy()


#: Longest run label or row title drawn [characters]; longer ones are cut, ending in "...".
MAX_LABEL_CHARS = 80
#: Most legend entries kept inside a row's first panel; a row with more (or a longer one, :data:`MAX_INNER_TEXT`)
#: has its legend right of its last panel.
MAX_INNER_LEGEND = 8
#: Longest legend entry kept inside a row's first panel [characters] (about the panel's width at fontsize 7).
MAX_INNER_TEXT = 48
#: Legend entries per column of a legend right of a row's panels (fontsize 7 fits about 16 in a row's height).
LEGEND_ROWS = 16
#: Most intervals between a linear x-axis's ticks. Matplotlib's default allows about 9 here, sized for labels of
#: about 3 characters: over a narrow range of values, as every request of equal lengths has, or one request alone,
#: its labels are 6-7 characters (0.01525) and ran into each other; 5 keeps them apart on a panel's width.
MAX_X_TICK_BINS = 5
#: Powers of ten below and above which a linear x-axis labels its ticks as multiples of a power of ten (written at
#: its end, e.g. 1e-3): with matplotlib's default, (-5, 6), a narrow span near 1e-3 s was labelled 0.0011050, 0.0011075,
#: ... written over each other.
SCI_LIMITS = (-3, 4)
#: Narrowest linear x-axis, relative to its values' midpoint: values closer than this (two policies' TPOT of a lone
#: request, 1e-6 s apart) were labelled in steps of 1e-7 from an offset, "1e-6+1.5879e-2", drawn over the axis label.
#: Such a panel spans this much around their midpoint. (Equal values keep matplotlib's span of a single value.)
MIN_RELATIVE_SPAN = 0.01
#: A panel whose values are all 0 spans [-ZERO_SPAN_MARGIN, 1] of its unit: matplotlib's span of the single value 0,
#: -0.055 to 0.055, labelled negative latencies (-0.050, -0.025). The margin keeps the line at 0 off the left spine.
ZERO_SPAN_MARGIN = 0.05


def shown_text(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """``text`` as matplotlib draws it literally: cut to ``limit`` characters and every ``$`` escaped (a policy or
    workload named with two ``$`` was typeset as math, and a name like ``$\\foo$`` ended in a traceback). A control
    character or line break is written as its escape, as error lines print it (:func:`ltrsched.names.one_line`; ESC
    was an empty box), and so is a lone surrogate (``\\udcff``: a file name's byte that is no UTF-8, which
    matplotlib's font refused with a TypeError traceback) and a bidirectional-text control (:data:`_ESCAPED`)."""
    from ltrsched.names import one_line

    text = _ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", one_line(text))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("$", "\\$")


#: What :func:`shown_text` writes as escapes beyond control characters: a code point of UTF-16's surrogates, alone
#: in a str (Python reads a name's bytes that are no UTF-8 so), and bidirectional-text controls (U+202E, right-to-left
#: override, drew the rest of a legend entry backwards: "x (n=3)" as "(3=n) x").
_ESCAPED = re.compile("[\ud800-\udfff\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _plain_log_labels(ax, ratio: float) -> None:
    """Tick labels of a log x-axis spanning ``ratio`` (largest / smallest value) as plain numbers (0.02, 0.1, 1e-05),
    at the decades and, over up to 2 decades, at 2 and 5 times them. Matplotlib's labelled 2, 3, 4 and 6 times
    10^k in scientific notation over a decade or two (latency per token of a heavy tail), written over each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    if ratio <= 100:
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(plain)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())


def _empty_panel_text(metric: str, tables: Sequence[pl.DataFrame]) -> str:
    """What a panel no run has a finite value for says: why, where every finished request of the runs has one output
    token and the metric is TPOT (:data:`~ltrsched.metrics.NO_VALUE_REASON`, as the summary's table says)."""
    from ltrsched.metrics import NO_VALUE_REASON

    if metric != "tpot" or not all({"finish_time", "output_tokens"} <= set(t.columns) for t in tables):
        return "no finite values"
    finished = [t.filter(pl.col("finish_time").is_not_null())["output_tokens"] for t in tables]
    if not sum(len(o) for o in finished) or any((o != 1).any() for o in finished):
        return "no finite values"
    return f"no finite values:\nevery finished request has\n{NO_VALUE_REASON[metric]}"


def cdf_figure(groups: Sequence[tuple[str, Lines]], title: str = "", series: Mapping[str, str] | None = None):
    """The figure of :func:`plot_cdf_grid` (a matplotlib ``Figure``; the caller closes it). A line's colour and
    dash pattern follow its series, ``series[label]`` (default: the label; :func:`ltrsched.plots.runs.line_series`),
    in order of first appearance (:func:`ltrsched.plots.styles.series_styles`), so a policy is drawn alike in
    every panel and row. Each row has one legend of its runs (the first panel's count n where it has the run, and the
    requests that did not finish: :func:`unfinished_count`), in that order of the series in every row; a panel that
    no run has a finite value for says so (e.g. TPOT of 1-token outputs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ltrsched.plots.styles import series_styles

    series = series or {}
    styles = series_styles(series.get(label, label) for _, lines in groups for label, _ in lines)
    rank = {name: k for k, name in enumerate(styles)}  # series -> its place in every row's legend
    ncols = len(CDF_METRICS)
    fig, axes = plt.subplots(len(groups), ncols, figsize=(4.2 * ncols, 3.2 * len(groups) + 0.6), squeeze=False)
    for row, (group_title, lines) in zip(axes, groups):
        entries: dict[int, tuple[object, str]] = {}  # run's index in the row -> (its first line, legend text)
        for ax, (metric, xlabel) in zip(row, CDF_METRICS.items()):
            lo, hi, smallest = np.inf, 0.0, np.inf
            for i, (label, requests) in enumerate(lines):
                x, y = ecdf(metric_values(requests, metric))
                if not len(x):
                    continue
                unfinished = unfinished_count(requests)
                y = y * len(x) / (len(x) + unfinished)  # (an unfinished request's latency is past every one drawn)
                style = styles[series.get(label, label)]
                text = f"{shown_text(label)} (n={len(x)}" + (f", {unfinished} unfinished)" if unfinished else ")")
                # (from 0 at the smallest value: a lone request's CDF, one point, was drawn as nothing)
                drawn_x, drawn_y = thinned_steps(x, y)
                (line,) = ax.step(np.r_[x[0], drawn_x], np.r_[0.0, drawn_y], where="post", label=text, linewidth=1.4,
                                  color=style.color, linestyle=style.linestyle)
                entries.setdefault(i, (line, text))
                smallest = min(smallest, x[0])
                positive = x[x > 0]
                if len(positive):
                    lo, hi = min(lo, positive[0]), max(hi, positive[-1])
            if hi > 10 * lo:
                ax.set_xscale("log")
                _plain_log_labels(ax, hi / lo)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_X_TICK_BINS, steps=[1, 2, 2.5, 5, 10]))
                ax.ticklabel_format(axis="x", style="sci", scilimits=SCI_LIMITS)
                if smallest > 0 and 0 < hi - lo < MIN_RELATIVE_SPAN * (lo + hi) / 2:
                    mid = (lo + hi) / 2
                    ax.set_xlim(mid * (1 - MIN_RELATIVE_SPAN / 2), mid * (1 + MIN_RELATIVE_SPAN / 2))
                elif smallest == 0 and hi == 0:  # (every value 0)
                    ax.set_xlim(-ZERO_SPAN_MARGIN, 1.0)
            if not ax.get_lines():
                ax.text(0.5, 0.5, _empty_panel_text(metric, [requests for _, requests in lines]),
                        transform=ax.transAxes, ha="center", va="center", color="gray")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("fraction of requests")
            ax.set_ylim(0, 1.02)
            ax.grid(True, alpha=0.3)
            if group_title:
                ax.set_title(shown_text(group_title), fontsize=9)
        # (in the series' order over the figure, as their styles: each row listed its runs in its own order)
        ranked = sorted(entries, key=lambda i: (rank[series.get(lines[i][0], lines[i][0])], i))
        handles, texts = zip(*(entries[i] for i in ranked)) if entries else ((), ())
        inside = len(handles) <= MAX_INNER_LEGEND and max(map(len, texts), default=0) <= MAX_INNER_TEXT
        if inside:  # (explicit texts: one starting with "_" was left out of the legend)
            row[0].legend(handles, texts, fontsize=7, loc="lower right")
        else:  # (inside, 45 entries hid the panel and overflowed the row, a long label the panels to its left)
            legend = row[-1].legend(handles, texts, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                                    ncol=-(-len(handles) // LEGEND_ROWS), borderaxespad=0.0)
            legend.set_in_layout(False)  # (the saved image grows to hold it: plot_cdf_grid's bbox_inches)
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

    outside = [legend for legend in (ax.get_legend() for ax in fig.axes)
               if legend is not None and not legend.get_in_layout()]
    try:  # (a legend right of the panels: the image is widened to hold it)
        return atomic.write_figure(path, fig, dpi=120,
                                   **({"bbox_inches": "tight", "bbox_extra_artists": outside} if outside else {}))
    finally:
        plt.close(fig)


def plot_cdfs(lines: Lines, path: str | Path, title: str = "") -> Path:
    """One row of CDF panels (latency per token, TTFT, TPOT) with a line per (label, requests)."""
    return plot_cdf_grid([("", lines)], path, title)
