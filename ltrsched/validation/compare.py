"""Simulator vs engine: per-metric relative errors, policy rankings, a report and a plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from ltrsched import atomic
from ltrsched.results import RunResult

METRICS = ("e2e_latency", "ttft", "tpot", "latency_per_token")
STATS = ("mean", "p50", "p90")
RUN_METRICS = ("throughput_rps", "throughput_tok_s", "makespan")


def compare_runs(sim: RunResult, engine: RunResult) -> pl.DataFrame:
    """One row per metric and statistic: simulated, engine, and relative error ``sim / engine - 1``."""
    rows = []
    for m in METRICS:
        for s in STATS:
            key = f"{m}_{s}"
            if key in sim.summary and key in engine.summary:
                rows.append((m, s, sim.summary[key], engine.summary[key]))
    for m in RUN_METRICS:
        rows.append((m, "run", sim.summary[m], engine.summary[m]))
    df = pl.DataFrame(rows, schema=["metric", "stat", "sim", "engine"], orient="row")
    return df.with_columns(rel_error=pl.col("sim") / pl.col("engine") - 1)


def policy_ranking(results: dict[str, RunResult], metric: str = "latency_per_token_mean") -> list[str]:
    """Policies ordered best (lowest ``metric``) first."""
    return sorted(results, key=lambda p: results[p].summary[metric])


def write_report(cases: pl.DataFrame, rankings: list[dict], out: Path, title: str, command: str,
                 tolerance: float) -> Path:
    """``validation.md`` + ``validation.csv`` + ``validation.png`` in ``out``; returns the markdown path."""
    atomic.write_csv(out / "validation.csv", cases)
    gated = cases.filter(pl.col("metric").is_in(["e2e_latency", "ttft", "tpot"]) & pl.col("stat").is_in(["mean", "p90"]))
    worst = gated.with_columns(abs_err=pl.col("rel_error").abs()).sort("abs_err", descending=True)
    within = int((worst["abs_err"] <= tolerance).sum())
    lines = [f"# {title}", "", f"Command: `{command}`", "",
             f"**{within} of {worst.height} gated values (mean and P90 of E2E latency, TTFT, TPOT) within "
             f"±{tolerance:.0%}.**", ""]
    for r in rankings:
        same = r["sim"] == r["engine"]
        lines.append(f"- {r['case']}: policy ranking by mean s/token {'matches' if same else 'DIFFERS'} "
                     f"(sim: {', '.join(r['sim'])}; engine: {', '.join(r['engine'])})")
    lines += ["", "| case | policy | metric | stat | sim | engine | rel. error |", "|---|---|---|---|---|---|---|"]
    for row in cases.iter_rows(named=True):
        lines.append(f"| {row['case']} | {row['policy']} | {row['metric']} | {row['stat']} | {row['sim']:.4g} | "
                     f"{row['engine']:.4g} | {row['rel_error']:+.1%} |")
    md = out / "validation.md"
    atomic.write_text(md, "\n".join(lines) + "\n")
    _plot(cases, out / "validation.png", tolerance)
    return md


def _plot(cases: pl.DataFrame, path: Path, tolerance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = cases.filter(pl.col("stat").is_in(["mean", "p90"]) & pl.col("metric").is_in(list(METRICS)))
    labels = [f"{c}\n{p}" for c, p in sel.select("case", "policy").unique(maintain_order=True).iter_rows()]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4))
    width = 0.8 / (len(METRICS) * 2)
    groups = sel.select("case", "policy").unique(maintain_order=True).rows()
    for j, (m, s) in enumerate((m, s) for m in METRICS for s in ("mean", "p90")):
        vals = []
        for case, pol in groups:
            v = sel.filter((pl.col("case") == case) & (pl.col("policy") == pol) & (pl.col("metric") == m)
                           & (pl.col("stat") == s))["rel_error"]
            vals.append(float(v[0]) * 100 if len(v) else np.nan)
        ax.bar(np.arange(len(groups)) + (j - len(METRICS)) * width + width / 2, vals, width, label=f"{m} {s}")
    ax.axhspan(-tolerance * 100, tolerance * 100, color="0.9", zorder=0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(groups)), labels, fontsize=7)
    ax.set_ylabel("simulator vs engine [%]")
    ax.legend(fontsize=6, ncol=4)
    fig.tight_layout()
    try:
        atomic.write_figure(path, fig, dpi=120)
    finally:
        plt.close(fig)
