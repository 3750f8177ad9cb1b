"""PNG figures in the paper's style: one panel per setting, a line with markers per policy."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ltrsched import atomic  # noqa: E402
from ltrsched.plots.cdf import shown_text  # noqa: E402
from ltrsched.plots.styles import SeriesStyle, series_styles  # noqa: E402

#: Consistent colour and marker per policy label across figures.
STYLE = {
    "FCFS": ("tab:blue", "o"),
    "MLFQ": ("tab:orange", "s"),
    "PO": ("tab:green", "^"),
    "Classification": ("tab:purple", "D"),
    "LTR": ("tab:red", "*"),
    "LTR + starvation prevention": ("tab:brown", "v"),
    "Oracle": ("tab:gray", "x"),
}

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]  # label -> (x, y)


def styles(labels: Sequence[str]) -> dict[str, SeriesStyle]:
    """A colour and line style per label: :data:`STYLE`'s colour, solid, and for a label it lacks (e.g. "LTR at
    the paper's tau") a style of :func:`ltrsched.plots.styles.series_styles` in a colour no :data:`STYLE` label
    has, the same in every panel (matplotlib's cycle, which these took, started over at FCFS's blue in each
    panel)."""
    from matplotlib.colors import to_hex

    others = series_styles([x for x in labels if x not in STYLE], avoid=[c for c, _ in STYLE.values()])
    return {x: SeriesStyle(to_hex(STYLE[x][0]), "-") if x in STYLE else others[x] for x in labels}


def line_panels(panels: Mapping[str, Series], path: Path, xlabel: str, ylabel: str | Sequence[str],
                logy: bool = True, logx: bool = True, ncols: int | None = None, title: str = "") -> Path:
    """One subplot per panel (title -> series), shared legend; writes ``path`` (PNG). A log axis only where the
    panel has a finite value above 0 (a panel whose values were all 0 or NaN ended the figure in a ValueError:
    "Data cannot be log-scaled")."""
    names = list(panels)
    ncols = ncols or len(names)
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
    ylabels = [ylabel] * len(names) if isinstance(ylabel, str) else list(ylabel)
    handles = {}
    style = styles([label for name in names for label in panels[name]])
    for ax, name, yl in zip(axes.flat, names, ylabels):
        for label, (x, y) in panels[name].items():
            marker = STYLE.get(label, (None, "."))[1]
            (h,) = ax.plot(x, y, marker=marker, color=style[label].color, linestyle=style[label].linestyle,
                           label=shown_text(label), linewidth=1.5, markersize=6)
            handles.setdefault(label, h)
        if logy and _any_positive(y for _, y in panels[name].values()):  # (else a ValueError traceback)
            ax.set_yscale("log")
        if logx and _any_positive(x for x, _ in panels[name].values()):
            ax.set_xscale("log", base=2)
        ax.set_title(shown_text(name), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.legend(handles.values(), [shown_text(label) for label in handles], loc="lower center",
               ncol=min(len(handles), 6), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95 if title else 1))
    try:
        atomic.write_figure(path, fig, dpi=120)
    finally:
        plt.close(fig)
    return path


def _any_positive(values: Iterable[Sequence[float]]) -> bool:
    """Whether any of the sequences holds a finite number above 0 (what a log axis can show; None is no number)."""
    return any(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for vs in values for v in vs)


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]], path: Path, ylabel: str,
                 title: str = "", hatched: Sequence[str] = ()) -> Path:
    """Grouped bar chart: one group per setting, one bar per series (``hatched`` series drawn hatched)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) * max(1, len(series)) / 4), 3.4))
    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(groups))
    style = styles([label.split(" (")[0] for label in series])  # ("LTR (ours)" and "LTR (paper)" alike)
    for i, (label, values) in enumerate(series.items()):
        color = style[label.split(" (")[0]].color
        ax.bar(x + (i - (n - 1) / 2) * width, values, width, label=shown_text(label), color=color,
               hatch="//" if label in hatched else None, alpha=0.55 if label in hatched else 1.0,
               edgecolor="black", linewidth=0.4)
    ax.set_xticks(x, [shown_text(g) for g in groups])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    try:
        atomic.write_figure(path, fig, dpi=120)
    finally:
        plt.close(fig)
    return path
