"""Simulator vs engine: per-metric relative errors beside the engine's own repeat noise, policy rankings,
a report and a plot.

An engine run is a measurement: the same replay twice gives different times (other processes, caches,
frequency scaling). So a validation runs each case ``repeats`` times and reports, beside each simulator
error, the engine's *noise*: the largest relative difference between two repeats of that value. A value
passes its gate when ``|sim / engine - 1| <= max(tolerance, 2 * noise)`` (the engine value being the mean
of the repeats); with one repeat the noise is unknown and the gate is the tolerance alone.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ltrsched import atomic
from ltrsched.experiments.tables import md_cell
from ltrsched.results import RunResult
from ltrsched.validation.step_time_ratio import ratio_lines, step_time_ratio

METRICS = ("e2e_latency", "ttft", "tpot", "latency_per_token")
STATS = ("mean", "p50", "p90")
RUN_METRICS = ("throughput_rps", "throughput_tok_s", "makespan")
#: The gated values: mean and P90 of E2E latency, TTFT and TPOT.
GATED_METRICS = ("e2e_latency", "ttft", "tpot")
GATED_STATS = ("mean", "p90")
#: The metric policies are ranked by.
RANK_METRIC = "latency_per_token_mean"


def repeat_noise(values: list[float]) -> float:
    """The largest relative difference between two of ``values`` (``max / min - 1``); NaN for fewer than two."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or not np.all(np.isfinite(v)) or v.min() <= 0:
        return float("nan")
    return float(v.max() / v.min() - 1)


def compare_runs(sim: RunResult, engines: list[RunResult]) -> pl.DataFrame:
    """One row per metric and statistic: simulated, engine (mean of the repeats), relative error
    ``sim / engine - 1``, and the engine's repeat noise (see :func:`repeat_noise`)."""
    if isinstance(engines, RunResult):
        engines = [engines]
    keys = [(m, s, f"{m}_{s}") for m in METRICS for s in STATS] + [(m, "run", m) for m in RUN_METRICS]
    rows = []
    for metric, stat, key in keys:
        if all(r.summary.get(key) is not None for r in (sim, *engines)):  # (None: undefined, e.g. nothing finished)
            values = [float(e.summary[key]) for e in engines]
            rows.append((metric, stat, float(sim.summary[key]), float(np.mean(values)), repeat_noise(values)))
    # (typed: with no row, e.g. an engine summary without these keys, the columns were Null and the report's concat
    # of every policy's rows a ComputeError traceback)
    df = pl.DataFrame(rows, schema={"metric": pl.String, "stat": pl.String, "sim": pl.Float64, "engine": pl.Float64,
                                    "noise": pl.Float64}, orient="row")
    # (equal values are no error, 0 against 0 too: that was 0/0, NaN, a failed gate and '+nan%' in the report)
    return df.with_columns(rel_error=pl.when(pl.col("sim") == pl.col("engine")).then(0.0)
                           .otherwise(pl.col("sim") / pl.col("engine") - 1))


def gate(cases: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """The gated rows with their bound ``max(tolerance, 2 * noise)`` and whether they pass."""
    bound = pl.max_horizontal(pl.lit(tolerance), 2 * pl.col("noise").fill_nan(0.0).fill_null(0.0))
    return (cases.filter(pl.col("metric").is_in(GATED_METRICS) & pl.col("stat").is_in(GATED_STATS))
            .with_columns(bound=bound)
            .with_columns(passed=pl.col("rel_error").abs() <= pl.col("bound")))


def _value(result: RunResult, metric: str) -> float:
    """A summary's ``metric`` as a number; NaN where it is missing or undefined (None: e.g. nothing finished)."""
    value = result.summary.get(metric)
    return math.nan if value is None else float(value)


def _rank_key(value: float) -> tuple[bool, float]:
    """Sort key: lowest first, an undefined (non-finite) value last (NaN compared as anything: its order was
    arbitrary)."""
    return (not math.isfinite(value), value if math.isfinite(value) else 0.0)


def relative_difference(a: float, b: float) -> float:
    """``|a / b - 1|``; 0 where ``a == b`` (0 and 0 too), infinite where only ``b`` is 0 (a ZeroDivisionError)."""
    if a == b:
        return 0.0
    return math.inf if b == 0 else abs(a / b - 1)


def policy_ranking(results: dict[str, RunResult], metric: str = RANK_METRIC) -> list[str]:
    """Policies ordered best (lowest ``metric``) first; those without the metric last, in their given order."""
    return sorted(results, key=lambda p: _rank_key(_value(results[p], metric)))


def ranking_check(sims: dict[str, RunResult], engines: dict[str, list[RunResult]],
                  metric: str = RANK_METRIC) -> dict:
    """Does the simulator order every pair of policies as the engine does, where the engine separates them
    beyond its noise? A pair is *separated* when the engine means differ by more than twice the larger of
    the two policies' repeat noises (with one repeat every pair counts as separated). A pair where a run lacks the
    metric (None: e.g. nothing finished) is not separated: it has no order to compare.

    Returns ``{"sim": [...], "engine": [...], "separated": k, "agree": j, "disagree": [(a, b), ...]}``."""
    mean = {p: float(np.mean([_value(e, metric) for e in runs])) for p, runs in engines.items()}
    noise = {p: repeat_noise([_value(e, metric) for e in runs]) for p, runs in engines.items()}
    separated, disagree = 0, []
    for a, b in itertools.combinations(engines, 2):
        sim_a, sim_b = _value(sims[a], metric), _value(sims[b], metric)
        if not all(math.isfinite(v) for v in (mean[a], mean[b], sim_a, sim_b)):
            continue
        floor = 2 * np.nanmax([noise[a], noise[b], 0.0])
        if relative_difference(mean[a], mean[b]) <= floor:
            continue
        separated += 1
        if (mean[a] < mean[b]) != (sim_a < sim_b):
            disagree.append((a, b))
    return {"sim": policy_ranking(sims, metric), "engine": sorted(mean, key=lambda p: _rank_key(mean[p])),
            "separated": separated, "agree": separated - len(disagree), "disagree": disagree}


def write_report(cases: pl.DataFrame, rankings: list[dict], out: Path, title: str, command: str,
                 tolerance: float, host: str | None = None, repeats: int = 1,
                 step_time_ratios: pl.DataFrame | None = None, spread: bool = False,
                 own_speed: pl.DataFrame | None = None, note: str | None = None) -> Path:
    """``validation.md`` + ``validation.csv`` + ``validation.png`` in ``out`` (+ ``step_time_ratio.csv``: each
    engine run's step time over the profile's, see :mod:`ltrsched.validation.step_time_ratio`); returns the
    markdown path. ``spread``: each repeat ran on an engine start of its own, spread over the validation
    (``validate --spread-repeats``), which the report says beside the noise. ``own_speed``: each engine run against
    the simulator at that run's speed (:mod:`~ltrsched.validation.own_speed`), written to ``own_speed.csv``. ``note``:
    a line under the engine's (e.g. how many engine runs a resumed validation kept)."""
    atomic.write_csv(out / "validation.csv", cases)
    if step_time_ratios is not None:
        atomic.write_csv(out / "step_time_ratio.csv", step_time_ratios)
    if own_speed is not None:
        atomic.write_csv(out / "own_speed.csv", own_speed)
    gated = gate(cases, tolerance)
    within = int(gated["passed"].sum())
    within_tol = int((gated["rel_error"].abs() <= tolerance).sum())
    lines = [f"# {title}", "", f"Command: `{command}`", ""]
    if host:
        lines += [f"Engine: {host}", ""]
    if note:
        lines += [note, ""]
    runs = (f"{repeats} runs, each on an engine start of its own, spread over the validation" if spread
            else f"{repeats} runs")
    noise_note = (f"max(±{tolerance:.0%}, 2x the engine's own repeat noise over {runs})" if repeats > 1
                  else f"±{tolerance:.0%} (one run per case: the engine's noise is not measured)")
    lines += [f"**{within} of {gated.height} gated values (mean and P90 of E2E latency, TTFT, TPOT) within "
              f"{noise_note}; {within_tol} within ±{tolerance:.0%}.**", ""]
    for r in rankings:
        same = r["sim"] == r["engine"]
        sep = (f"; the engine separates {r['separated']} pair(s) beyond its noise, the simulator orders "
               f"{r['agree']} of them alike" if "separated" in r else "")
        lines.append(f"- {r['case']}: policy ranking by mean s/token {'matches' if same else 'DIFFERS'} "
                     f"(sim: {', '.join(r['sim'])}; engine: {', '.join(r['engine'])}){sep}")
    gated_keys = set(gated.filter(~pl.col("passed")).select("case", "policy", "metric", "stat").iter_rows())
    lines += ["", "| case | policy | metric | stat | sim | engine | rel. error | engine noise |",
              "|---|---|---|---|---|---|---|---|"]
    for row in cases.iter_rows(named=True):
        noise = row["noise"]
        flag = " ✗" if (row["case"], row["policy"], row["metric"], row["stat"]) in gated_keys else ""
        error = f"{row['rel_error']:+.1%}" if math.isfinite(row["rel_error"]) else "n/a"  # (was '+inf%', '+nan%')
        lines.append(f"| {md_cell(row['case'])} | {md_cell(row['policy'])} | {row['metric']} | {row['stat']} | "
                     f"{row['sim']:.4g} | {row['engine']:.4g} | {error}{flag} | "
                     f"{'' if noise is None or np.isnan(noise) else f'{noise:.1%}'} |")
    if step_time_ratios is not None:
        lines += ratio_lines(_md_names(step_time_ratios))
    if own_speed is not None:
        from ltrsched.validation.own_speed import own_speed_lines

        lines += own_speed_lines(_md_names(own_speed), tolerance)
    md = out / "validation.md"
    atomic.write_text(md, "\n".join(lines) + "\n")
    _plot(cases, out / "validation.png", tolerance)
    return md


def _md_names(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with its case and policy names as markdown table cells (:func:`md_cell`), for the tables of
    :mod:`~ltrsched.validation.step_time_ratio` and :mod:`~ltrsched.validation.own_speed`."""
    names = [c for c in ("case", "policy") if c in table.columns]
    return table.with_columns(pl.col(c).cast(pl.String).str.replace_all("\n", " ", literal=True)
                              .str.replace_all("|", "\\|", literal=True) for c in names)


#: The columns of ``validation.csv``, in order.
REPORT_COLUMNS = ("case", "policy", "metric", "stat", "sim", "engine", "rel_error", "noise")


@dataclass
class ValidationTally:
    """What a validation collects, case by case and policy by policy, for :func:`write_report`: ``ltrsched
    validate``, and a re-simulation of its runs with another profile (``benchmarks/resimulate_validation.py``)."""

    rows: list[pl.DataFrame] = field(default_factory=list)  # compare_runs per (case, policy)
    rankings: list[dict] = field(default_factory=list)  # ranking_check per case
    ratios: list[tuple] = field(default_factory=list)  # (case, policy, repeat, engine step time / profile's)
    own: list[tuple] = field(default_factory=list)  # engine runs vs the simulator at their own speed (own_speed)

    def add_engine_run(self, case: str, spec: str, repeat: int, engine: RunResult, profile) -> float:
        """One engine run's step time against ``profile``'s (see :mod:`~ltrsched.validation.step_time_ratio`);
        returns that ratio (NaN: unknown)."""
        ratio = step_time_ratio(engine.steps, profile)
        self.ratios.append((case, spec, repeat, ratio))
        return ratio

    def add_own_speed(self, case: str, spec: str, repeat: int, factor: float, sim: RunResult | None,
                      engine: RunResult) -> None:
        """One engine run against the simulator at its own speed (``sim``: None when the speed is unknown)."""
        if sim is not None:
            from ltrsched.validation.own_speed import own_speed_rows

            self.own.extend(own_speed_rows(case, spec, repeat, factor, sim, engine))

    def add_policy(self, case: str, spec: str, sim: RunResult, engines: list[RunResult]) -> str:
        """The simulator's run of ``spec`` on ``case`` against the engine's; returns the progress line to print."""
        self.rows.append(compare_runs(sim, engines).with_columns(case=pl.lit(case), policy=pl.lit(spec)))
        e_mean = float(np.mean([_value(e, "e2e_latency_mean") for e in engines]))  # (None: a TypeError traceback)
        both = " / ".join("n/a" if math.isnan(v) else f"{v:.3f}" for v in (_value(sim, "e2e_latency_mean"), e_mean))
        return f"{case:>16}  {spec:<40} sim/engine mean E2E {both} s"

    def end_case(self, case: str, sims: dict[str, RunResult], engines: dict[str, list[RunResult]]) -> None:
        self.rankings.append({"case": case, **ranking_check(sims, engines)})

    def write(self, out: Path, title: str, command: str, tolerance: float, host: str | None, repeats: int,
              spread: bool = False, note: str | None = None) -> Path:
        """The report files in ``out`` (:func:`write_report`); returns the markdown path."""
        table = pl.concat(self.rows).select(*REPORT_COLUMNS)
        from ltrsched.validation.own_speed import own_speed_table

        ratios = pl.DataFrame(self.ratios, schema=["case", "policy", "repeat", "step_time_ratio"], orient="row")
        own = own_speed_table(self.own) if self.own else None
        return write_report(table, self.rankings, out, title, command, tolerance, host=host, repeats=repeats,
                            step_time_ratios=ratios, spread=spread, own_speed=own, note=note)


#: The statistics the figure draws, of each metric of :data:`METRICS`.
PLOT_STATS = ("mean", "p90")
#: Each metric's name under its bars.
SHORT_METRIC = {"e2e_latency": "E2E", "ttft": "TTFT", "tpot": "TPOT", "latency_per_token": "s/token"}


def report_figure(cases: pl.DataFrame, tolerance: float):
    """The figure of ``validation.png`` (a matplotlib ``Figure``; the caller closes it): the simulator's relative
    error [%] per case, metric and statistic (x), a bar per policy in the policy's colour and dash pattern
    (:func:`ltrsched.plots.styles.series_styles`, in order of first appearance, as ``plot cdf`` draws it), over the
    ±``tolerance`` band. Names are drawn as written (:func:`ltrsched.plots.cdf.shown_text`); the legend of the
    policies is right of the panel where it is long. An undefined error (a value missing, or the engine's 0) draws
    no bar; a figure without any says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ltrsched.plots.cdf import LEGEND_ROWS, MAX_INNER_LEGEND, MAX_INNER_TEXT, shown_text
    from ltrsched.plots.styles import series_styles

    names = list(dict.fromkeys(cases["case"].to_list()))
    policies = list(dict.fromkeys(cases["policy"].to_list()))
    styles = series_styles(policies)
    error = {(c, p, m, s): v
             for c, p, m, s, v in cases.select("case", "policy", "metric", "stat", "rel_error").iter_rows()}
    groups = [(c, m, s) for c in names for m in METRICS for s in PLOT_STATS]
    x, width = np.arange(len(groups)), 0.8 / max(1, len(policies))
    fig, ax = plt.subplots(figsize=(max(6.0, len(groups) * (0.1 * len(policies) + 0.35) + 1.5), 4.2))
    handles = []
    for j, policy in enumerate(policies):
        values = np.array([100 * error.get((c, policy, m, s), np.nan) for c, m, s in groups], dtype=float)
        values[~np.isfinite(values)] = np.nan  # (an infinite bar: 'invalid value' RuntimeWarnings)
        style = styles[policy]
        handles.append(ax.bar(x + (j - (len(policies) - 1) / 2) * width, values, width, color=style.color,
                              linestyle=style.linestyle, edgecolor="black", linewidth=0.6))
    if not any(np.isfinite(bar.get_height()) for bars in handles for bar in bars):
        ax.text(0.5, 0.75, "no finite values", transform=ax.transAxes, ha="center", va="center", color="gray")
    for edge in range(len(METRICS) * len(PLOT_STATS), len(groups), len(METRICS) * len(PLOT_STATS)):
        ax.axvline(edge - 0.5, color="0.6", lw=0.8)  # (between cases)
    ax.axhspan(-tolerance * 100, tolerance * 100, color="0.9", zorder=0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{SHORT_METRIC[m]}\n{s}" for _, m, s in groups], fontsize=7)
    ax.set_xlim(-0.5, max(len(groups), 1) - 0.5)
    per_case = len(METRICS) * len(PLOT_STATS)
    for i, name in enumerate(names):  # (each case's name once, under its metrics)
        ax.text((i + 0.5) * per_case - 0.5, -0.17, shown_text(name), transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=8)
    ax.set_ylabel("simulator vs engine [%]")
    texts = [shown_text(p) for p in policies]  # (none where no value was compared: no empty legend box)
    if texts and len(texts) <= MAX_INNER_LEGEND and max(map(len, texts)) <= MAX_INNER_TEXT:
        ax.legend(handles, texts, fontsize=6)  # (explicit texts: one starting with "_" is kept)
    elif texts:  # (45 policies: beside the panel; the saved image grows to hold it)
        legend = ax.legend(handles, texts, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           ncol=-(-len(texts) // LEGEND_ROWS), borderaxespad=0.0)
        legend.set_in_layout(False)
    fig.tight_layout()
    return fig


def _plot(cases: pl.DataFrame, path: Path, tolerance: float) -> None:
    """``validation.png``: :func:`report_figure`."""
    fig = report_figure(cases, tolerance)
    import matplotlib.pyplot as plt  # (after report_figure chose the Agg backend)

    outside = [legend for legend in (ax.get_legend() for ax in fig.axes)
               if legend is not None and not legend.get_in_layout()]
    try:
        atomic.write_figure(path, fig, dpi=120,
                            **({"bbox_inches": "tight", "bbox_extra_artists": outside} if outside else {}))
    finally:
        plt.close(fig)
