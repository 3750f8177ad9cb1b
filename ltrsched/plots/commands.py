"""``ltrsched plot``: CDF plots of saved runs and sweeps, Chrome/Perfetto traces of saved runs."""

from __future__ import annotations

from pathlib import Path

import click

from ltrsched.errors import UserError
from ltrsched.names import shown_path
from ltrsched.outputs import OutFile


@click.group()
def plot() -> None:
    """Pictures of saved runs (simulate --out, sweep and reproduce directories)."""


@plot.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=OutFile(), default=Path("cdf.png"),
              show_default=True, help="Image file (.png, .pdf or .svg).")
@click.option("--title", default="", help="Figure title.")
def cdf(runs, out, title):
    """CDFs of latency per token, TTFT and TPOT: a line per policy, a row per setting.

    RUNS are run directories (simulate --out) or sweep/reproduce output directories (every run under
    runs/; of a sweep's, the runs its sweep.csv lists, not an earlier sweep file's). Settings that differ between runs (workload, rate, profile, seed...) get a row each; policies,
    and replica counts and routers where they differ, get a line each.
    """
    from ltrsched.plots.cdf import CDF_METRICS, check_image_path, check_title, ecdf, metric_values, plot_cdf_grid
    from ltrsched.plots.runs import group_for_plot, line_series, load_runs

    check_image_path(out, "--out")
    check_title(title)
    notes: list[str] = []
    loaded = load_runs(list(runs), notes, _check_figure_size)
    for note in notes:  # (runs of an earlier sweep file under a sweep's --out: left out)
        click.echo(note, err=True)
    for run in loaded:  # its line was left out of every panel, silently (with no other run: an empty figure, exit 0)
        if not any(len(ecdf(metric_values(run.requests, m))[0]) for m in CDF_METRICS):
            raise UserError(f"{run.path}: no request of the run has a latency to plot (none finished); leave the run "
                            "out")
    groups = group_for_plot(loaded)
    plot_cdf_grid(groups, out, title, line_series(loaded))
    click.echo(f"wrote {shown_path(out)} ({len(loaded)} runs, {len(groups)} setting(s))")


#: Most panel rows of a ``plot cdf`` figure (one per setting).
MAX_ROWS = 40
#: Most lines in a row of ``plot cdf`` (a run each): :func:`ltrsched.plots.styles.series_styles` has 80 styles to tell
#: lines apart, and 10,000 lines in a row took 188 s of CPU and 1 GB of memory for a legend of 625 columns.
MAX_LINES = 80


def _check_figure_size(runs) -> None:
    """One-line :class:`UserError` where ``runs`` (their fields; tables not read yet) make more than :data:`MAX_ROWS`
    rows of panels or more than :data:`MAX_LINES` lines in a row."""
    from ltrsched.plots.runs import group_for_plot

    groups = group_for_plot(runs)
    if len(groups) > MAX_ROWS:
        raise UserError(f"{len(groups)} settings would make {len(groups)} rows of panels; plot fewer runs at once")
    title, lines = max(groups, key=lambda group: len(group[1]), default=("", []))
    if len(lines) > MAX_LINES:
        where = f" ({title})" if title else ""
        raise UserError(f"{len(lines):,} runs would be {len(lines):,} lines in a row of panels{where}, more than the "
                        f"{MAX_LINES} whose styles tell them apart; plot fewer runs at once (give their directories)")


@plot.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=OutFile(), default=Path("trace.json"),
              show_default=True, help="Trace-event JSON file.")
@click.option("--start", type=float, default=None,
              help="Trace the steps that start at or after START [s of simulated time] (default: the first).")
@click.option("--end", type=float, default=None,
              help="Trace the steps that start before END [s of simulated time] (default: to the last).")
def trace(run, out, start, end):
    """Export a saved run's steps (simulate --record-steps --out RUN) as a Chrome trace for Perfetto.

    A trace holds at most 250,000 steps (about 170 MB, what trace viewers load); trace a longer run a window
    at a time with --start and --end.

    A replay's steps.parquet (and a validate engine run's) is the engine's step log, not a simulated step trace:
    simulate the same workload and policy with --record-steps to trace it.
    """
    from ltrsched.outputs import check_inputs_kept, check_out_file
    from ltrsched.plots.cdf import check_named
    from ltrsched.plots.chrome_trace import check_trace_out, steps_file_columns, write_trace_of_file
    from ltrsched.results import read_run_meta

    check_named(out, "--out", (".json",), "trace")
    check_out_file(out, "--out", ".json")
    _check_window(start, end)
    # (`-o RUN/summary.json` wrote the trace over the run's summary it read: the run's one .json file)
    check_inputs_kept({"the run's summary": run / "summary.json"}, files=(out,))
    check_trace_out(out, "--out")  # (another file that is no trace: another run's summary, a workload)
    if not (run / "summary.json").is_file():
        inner, traceable = _a_run_under(run) if run.is_dir() else (None, False)  # (a sweep's or validate's --out)
        raise UserError(f"{run}: not a run directory (no summary.json)" + (
            "" if inner is None else f"; it holds runs: give one's directory, e.g. {inner}" if traceable else
            f"; it holds runs (e.g. {inner}), none with a simulated step trace: simulate one with --record-steps "
            "--out DIR and give DIR"))
    # (the run's meta only: its steps are read a batch at a time as the trace is written, its requests not at all;
    # a pipe in a run file's place is refused: `plot trace` waited on one for good)
    meta = read_run_meta(run)
    steps = run / "steps.parquet"
    if not steps.exists():  # (validate's simulated runs, sweeps' and reproduce's record none either)
        raise UserError(f"{run}: the run has no steps.parquet; simulate it with --record-steps --out DIR "
                        "(simulate's option) and give DIR")
    if ENGINE_LOG_COLUMNS <= set(steps_file_columns(steps)):  # replay's (or validate's engine run's) steps.parquet:
        # "record it with simulate --record-steps" said the run lacked an option it has not, nor needs
        raise UserError(f"{run}: its steps.parquet is a real engine's step log (a replay or validate engine run), "
                        "not a simulated step trace, which plot trace draws; simulate the same workload and policy "
                        "with --record-steps --out DIR and give DIR (plot cdf compares the two runs)")
    write_trace_of_file(steps, meta, out, start, end, "--out")
    click.echo(f"wrote {shown_path(out)} (open in https://ui.perfetto.dev)")


def _check_window(start: float | None, end: float | None) -> None:
    """One-line :class:`UserError` unless ``--start`` and ``--end`` [s] are finite, at least 0, and ``start < end``
    (a NaN window held no step; ``inf`` ends is no time)."""
    import math

    for option, value in (("--start", start), ("--end", end)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"{option} {value:g}: give a time [s of simulated time], a finite number >= 0")
    if start is not None and end is not None and not start < end:
        raise UserError(f"--start {start:g} is not before --end {end:g}: the window holds no time")


#: Columns of the engine adapter's step log (:data:`ltrsched.engine.step_log.OTHER_FIELDS`) that no simulated
#: step trace has: a steps.parquet with them is a replay's (or a validate engine run's).
ENGINE_LOG_COLUMNS = frozenset({"vllm_schedule_s", "plugin_s"})


def _a_run_under(directory: Path) -> tuple[Path | None, bool]:
    """A run directory (one with a summary.json) up to 4 levels under ``directory`` (a sweep's runs/HASH, validate's
    runs/CASE/POLICY/engine) and whether its steps.parquet is a simulated step trace (preferring one that is);
    ``(None, False)`` if there is none."""
    import polars as pl

    found = None
    for depth in range(1, 5):
        for summary in sorted(directory.glob("/".join(["*"] * depth) + "/summary.json")):
            steps = summary.parent / "steps.parquet"
            try:
                if steps.is_file() and not ENGINE_LOG_COLUMNS <= set(pl.read_parquet_schema(steps)):
                    return summary.parent, True
            except Exception:  # (a damaged steps.parquet: not one to suggest)
                pass
            found = found or summary.parent
        if found is not None:
            return found, False
    return None, False
