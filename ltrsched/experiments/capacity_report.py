"""What ``ltrsched capacity`` writes: the capacity table (``capacity.md|csv``), every rate tried
(``capacity-rates.csv``) and one figure per SLO metric (``figures/capacity-<metric>.png``: the metric's
mean over seeds vs rate, one line per configuration, the SLO as a dashed line, each capacity starred).
A later search into the same directory replaces them, and removes the earlier search's figures of SLO metrics it
has not (:func:`stale_figures`: those the earlier ``capacity-rates.csv`` lists, nothing else), so ``figures/``
holds the figures of the report beside it.

A configuration's line is drawn in the same colour and dash pattern in every figure
(:func:`ltrsched.plots.styles.series_styles`: distinct for up to 80 configurations) and labelled with its name as
written (:func:`ltrsched.plots.cdf.shown_text`: a ``$`` is a dollar sign, not matplotlib's math)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

import polars as pl

from ltrsched.experiments.capacity import STOPPED_TEXT, Search, Slo
from ltrsched.experiments.runspec import LABEL_FIELDS, RunSpec

#: What a figure's legend says of a rate whose runs gave the metric no finite mean (e.g. no request finished, or a
#: seed's metric undefined: :func:`~ltrsched.experiments.capacity.evaluate` counts it as missing the SLO).
NO_VALUE_TEXT = "no value: counted as missing the SLO"

#: Template fields that the search sets itself, never shown as a configuration's columns.
SEARCH_FIELDS = {"rate", "seed", "arrival", *LABEL_FIELDS}


def varying_fields(templates: Sequence[RunSpec]) -> list[str]:
    """``policy`` and ``profile``, then every other field whose value differs between templates (a
    workload, a batch limit, a replica count, ...), in the dataclass's order; a cluster's fields also
    when they are the same for all (a table of 8-replica capacities says so)."""
    names = [f.name for f in dataclasses.fields(RunSpec) if f.name not in SEARCH_FIELDS]
    cluster = any(t.replicas > 1 for t in templates)
    shown = [n for n in names if len({repr(getattr(t, n)) for t in templates}) > 1
             or (cluster and n in ("replicas", "router"))]
    return ["policy", "profile", *(n for n in shown if n not in ("policy", "profile"))]


def shown_value(value) -> str:
    """A configuration's field as the notes and figure legends show it: as the table does, ``-`` for None (a lone
    replica's router, beside clusters: it read ``None``, a router of that name)."""
    return "-" if value is None else str(value)


def configuration(template: RunSpec, columns: Sequence[str]) -> str:
    """A configuration named by the table's ``columns`` for a note: ``policy fcfs, replicas 1, router -``."""
    return ", ".join(f"{c} {shown_value(getattr(template, c))}" for c in columns)


def capacity_table(searches: Sequence[Search], seeds: int) -> pl.DataFrame:
    """One row per configuration: its fields, ``capacity_rps`` (None if no rate met the SLOs), the
    bracket [req/s], the SLOs missed at the bracket's top (``stopped: preemption thrash`` where its runs were), rates
    tried, runs used (those at each rate, and the runs serving each request alone where the search measured its floor
    of unloaded service, :attr:`Search.unloaded`: one per seed, up to each request's first token, simulated in the
    main process and shared by the configurations that differ only in policy, scoring or router), status."""
    columns = varying_fields([s.template for s in searches])
    rows = []
    for s in searches:
        top = s.points.get(s.high) if s.high is not None else None
        rows.append({
            **{c: getattr(s.template, c) for c in columns},
            "capacity_rps": s.capacity,
            "bracket_low": s.low,
            "bracket_high": s.high,
            "limiting_slo": (STOPPED_TEXT if top.stopped else ", ".join(top.violated)) if top else "",
            "rates_tried": len(s.points),
            "runs": (len(s.points) + (s.unloaded is not None)) * seeds,
            "status": s.status,
        })
    return pl.DataFrame(rows, schema_overrides={"capacity_rps": pl.Float64, "bracket_low": pl.Float64,
                                                "bracket_high": pl.Float64})


def none_notes(searches: Sequence[Search]) -> list[str]:
    """One note under the capacity table per configuration whose capacity is ``none``, naming it by the table's
    columns and saying why: where the profile ruled every rate out before any run, its :attr:`Search.bound`, where
    halving stopped at the latency of unloaded service, its :attr:`Search.floor` (each the line ``capacity`` prints
    on stderr), else the SLOs that the lowest rate tried [req/s] missed."""
    columns = varying_fields([s.template for s in searches])
    notes = []
    for s in searches:
        if s.status != "none":
            continue
        if s.bound is not None:
            why = str(s.bound)
        elif s.floor is not None:
            why = str(s.floor)
        else:
            lowest = min(s.points)
            point = s.points[lowest]
            missed = f"was {STOPPED_TEXT}" if point.stopped else f"missed {', '.join(point.violated)}"
            why = f"even the lowest rate tried, {lowest:g} req/s, {missed}"
        notes.append(f"{configuration(s.template, columns)}: none; {why}")
    return notes


def limiting_note(searches: Sequence[Search]) -> str:
    """What the table's ``limiting_slo`` is, for the note under it: what ``bracket_high`` missed, and, where some
    configuration's ``bracket_high`` had its runs stopped for preemption thrash, that it then says so."""
    text = "limiting_slo = what bracket_high missed"
    if any(s.high is not None and s.points[s.high].stopped for s in searches):
        text += f", or {STOPPED_TEXT} where its runs were stopped for it (no metrics: counted as missing every SLO)"
    return text


def stopped_notes(searches: Sequence[Search]) -> list[str]:
    """One note under the capacity table per configuration whose highest rate that missed the SLOs had its runs
    stopped for preemption thrash, naming it by the table's columns and listing every such rate [req/s]: its
    ``limiting_slo`` names only what ``bracket_high`` missed, which may be a lower rate that ran."""
    columns = varying_fields([s.template for s in searches])
    notes = []
    for s in searches:
        missed = [r for r in sorted(s.points) if not s.points[r].meets]
        if not missed or not s.points[missed[-1]].stopped:
            continue
        stopped = [f"{r:g}" for r in missed if s.points[r].stopped]
        notes.append(f"{configuration(s.template, columns)}: the runs at {', '.join(stopped)} "
                     "req/s were stopped for preemption thrash (no metrics: counted as missing every SLO)")
    return notes


def rates_table(searches: Sequence[Search], slos: Sequence[Slo]) -> pl.DataFrame:
    """Every rate tried per configuration: each SLO metric's mean over seeds (empty where the runs were stopped),
    whether it met the SLOs, ``note``: ``stopped: preemption thrash`` where a run was stopped, else empty, and
    ``run_hashes``: its runs' hashes, one per seed, space-separated (:attr:`RatePoint.run_hashes`: each run's
    directory is ``runs/<hash>``; a stopped run's hash has none: it saves no result)."""
    columns = varying_fields([s.template for s in searches])
    rows = []
    for s in searches:
        for rate in sorted(s.points):
            p = s.points[rate]
            rows.append({**{c: getattr(s.template, c) for c in columns}, "rate": rate,
                         **{slo.metric: None if p.stopped else p.means[slo.metric] for slo in slos},
                         "meets_slos": p.meets, "note": STOPPED_TEXT if p.stopped else "",
                         "run_hashes": " ".join(p.run_hashes)})
    schema = {"rate": pl.Float64, **{slo.metric: pl.Float64 for slo in slos}, "meets_slos": pl.Boolean,
              "note": pl.String, "run_hashes": pl.String}
    if not rows:  # (every search ruled out before any run: the file has its header, not nothing)
        return pl.DataFrame(schema={**{c: pl.String for c in columns}, **schema})
    return pl.DataFrame(rows, schema_overrides=schema)


def figure_path(out_dir: Path, metric: str) -> Path:
    """Where :func:`capacity_figures` draws ``metric`` under ``out_dir``: ``capacity-<metric>.png``."""
    return out_dir / f"capacity-{metric}.png"


def reported_metrics(rates_csv: Path) -> list[str]:
    """The SLO metrics of the report whose every-rate table is ``rates_csv`` (its columns that are SLO metrics, in
    order: :func:`rates_table` writes one per SLO); none where there is no such file or it cannot be read."""
    import csv

    from ltrsched.experiments.capacity import SLO_METRICS

    try:
        with open(rates_csv, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [c for c in header if c in SLO_METRICS]


#: The start of a PNG that matplotlib wrote (:func:`capacity_figures`): the signature, the header chunk, then a text
#: chunk naming it.
_MATPLOTLIB_PNG = (b"\x89PNG\r\n\x1a\n", b"tEXtSoftware\x00Matplotlib")


def stale_figures(out_dir: Path, previous: Sequence[str], slos: Sequence[Slo]) -> list[Path]:
    """The figures under ``out_dir`` that the previous report, of SLO metrics ``previous`` (:func:`reported_metrics`
    of its ``capacity-rates.csv``), drew for a metric that ``slos`` do not have: left there, they sat beside the new
    report as if its own (4 figures where the report said 1). Only such a figure, a regular file (no link) that is
    still a PNG matplotlib wrote, is listed; every other file in ``out_dir`` (a reproduction's figures, the user's)
    is not."""
    now = {slo.metric for slo in slos}
    found = []
    for metric in dict.fromkeys(previous):
        path = figure_path(out_dir, metric)
        if metric in now or path.is_symlink() or not path.is_file():
            continue
        try:
            with open(path, "rb") as f:
                head = f.read(128)
        except OSError:
            continue
        signature, software = _MATPLOTLIB_PNG
        if head.startswith(signature) and software in head:
            found.append(path)
    return found


def capacity_figures(searches: Sequence[Search], slos: Sequence[Slo], out_dir: Path) -> list[Path]:
    """One PNG per SLO metric under ``out_dir``; a rate whose runs a preemption thrash stopped (no metrics) is an
    ``x`` at the top of the plot in its configuration's colour (one grey legend entry: ``stopped: preemption
    thrash``), and a rate whose metric has no finite mean a ``^`` there (legend: :data:`NO_VALUE_TEXT`); lines join
    the finite means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    from ltrsched import atomic
    from ltrsched.plots.cdf import shown_text
    from ltrsched.plots.styles import series_styles

    columns = varying_fields([s.template for s in searches])
    shown = [c for c in columns if c != "profile" or len({s.template.profile for s in searches}) > 1]
    names = [" | ".join(shown_value(getattr(s.template, c)) for c in shown) for s in searches]
    styles = series_styles(names)
    paths = []
    for slo in slos:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for s, name in zip(searches, names):
            ran = sorted(r for r in s.points if not s.points[r].stopped)
            rates = [r for r in ran if math.isfinite(s.points[r].means[slo.metric])]
            values = [s.points[r].means[slo.metric] for r in rates]
            color = styles[name].color
            ax.plot(rates, values, marker="o", markersize=4, linewidth=1.3, color=color,
                    linestyle=styles[name].linestyle,
                    label=shown_text(name) + (" (none: ruled out by the bound)" if s.bound else ""))
            if s.capacity is not None:
                y = s.points[s.capacity].means[slo.metric]
                ax.plot([s.capacity], [y], marker="*", markersize=14, color=color, markeredgecolor="black",
                        linestyle="none")
                ax.axvline(s.capacity, color=color, linestyle=":", linewidth=1)
            stopped = sorted(r for r in s.points if s.points[r].stopped)
            if stopped:
                ax.plot(stopped, [0.97] * len(stopped), marker="x", markersize=8, color=color, linestyle="none",
                        transform=ax.get_xaxis_transform())
            undefined = [r for r in ran if r not in rates]
            if undefined:  # (no finite mean: drawn, they left no line and, for every rate, a traceback)
                ax.plot(undefined, [0.97] * len(undefined), marker="^", markersize=7, color=color, linestyle="none",
                        transform=ax.get_xaxis_transform())
        if any(p.stopped for s in searches for p in s.points.values()):  # (one legend entry, in no series' colour)
            ax.plot([], [], marker="x", markersize=8, color="gray", linestyle="none", label=STOPPED_TEXT)
        if any(not p.stopped and not math.isfinite(p.means[slo.metric]) for s in searches for p in s.points.values()):
            ax.plot([], [], marker="^", markersize=7, color="gray", linestyle="none", label=NO_VALUE_TEXT)
        ax.axhline(slo.limit, color="black", linestyle="--", linewidth=1.2, label=f"SLO {slo.metric} = {slo.limit:g}")
        if any(s.points for s in searches):
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        else:  # (every search ruled out before any run: a log axis of no rate ended in a ValueError traceback)
            ax.set_xticks([])
            ax.set_ylim(0, 2 * slo.limit)
            ax.text(0.5, 0.75, "no rate run: the profile rules every rate out", transform=ax.transAxes,
                    ha="center", va="center", color="gray")
        finite = [v for s in searches for p in s.points.values() if not p.stopped for v in [p.means[slo.metric]]
                  if math.isfinite(v) and v > 0]
        # (the SLO's line counts: a limit 1e8 times the values drawn on a linear axis flattened them all onto 0)
        if finite and max(*finite, slo.limit) / min(*finite, slo.limit) > 20:
            ax.set_yscale("log")
        elif not finite and any(s.points for s in searches):  # (no value to scale by: the SLO in the middle)
            ax.set_ylim(0, 2 * slo.limit)
        ax.set_xlabel("Poisson arrival rate [req/s]")
        ax.set_ylabel(f"{slo.metric} (mean over seeds)")
        ax.set_title(f"{slo.metric} vs rate; * = capacity (every SLO met)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        path = figure_path(out_dir, slo.metric)
        try:
            atomic.write_figure(path, fig, dpi=110)
        finally:
            plt.close(fig)
        paths.append(path)
    return paths
