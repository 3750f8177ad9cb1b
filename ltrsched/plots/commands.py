"""``ltrsched plot``: CDF plots of saved runs and sweeps, Chrome/Perfetto traces of saved runs."""

from __future__ import annotations

from pathlib import Path

import click

from ltrsched.errors import UserError


@click.group()
def plot() -> None:
    """Pictures of saved runs (simulate --out, sweep and reproduce directories)."""


@plot.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("cdf.png"),
              show_default=True, help="Image file (.png, .pdf or .svg).")
@click.option("--title", default="", help="Figure title.")
def cdf(runs, out, title):
    """CDFs of latency per token, TTFT and TPOT: a line per policy, a row per setting.

    RUNS are run directories (simulate --out) or sweep/reproduce output directories (every run under
    runs/). Settings that differ between runs (workload, rate, profile, seed...) get a row each; policies,
    and replica counts and routers where they differ, get a line each.
    """
    from ltrsched.plots.cdf import CDF_METRICS, check_image_path, check_title, ecdf, metric_values, plot_cdf_grid
    from ltrsched.plots.runs import group_for_plot, load_runs

    check_image_path(out, "--out")
    check_title(title)
    loaded = load_runs(list(runs))
    for run in loaded:  # its line was left out of every panel, silently (with no other run: an empty figure, exit 0)
        if not any(len(ecdf(metric_values(run.requests, m))[0]) for m in CDF_METRICS):
            raise UserError(f"{run.path}: no request of the run has a latency to plot (none finished); leave the run "
                            "out")
    groups = group_for_plot(loaded)
    if len(groups) > 40:
        raise UserError(f"{len(groups)} settings would make {len(groups)} rows of panels; plot fewer runs at once")
    plot_cdf_grid(groups, out, title)
    click.echo(f"wrote {out} ({len(loaded)} runs, {len(groups)} setting(s))")


@plot.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("trace.json"),
              show_default=True, help="Trace-event JSON file.")
def trace(run, out):
    """Export a saved run's steps (simulate --record-steps --out RUN) as a Chrome trace for Perfetto."""
    from ltrsched.outputs import check_inputs_kept, check_out_file
    from ltrsched.plots.chrome_trace import write_chrome_trace
    from ltrsched.results import RunResult

    check_out_file(out, "--out", ".json")
    # (`-o RUN/summary.json` wrote the trace over the run's summary it read: the run's one .json file)
    check_inputs_kept({"the run's summary": run / "summary.json"}, files=(out,))
    if not (run / "summary.json").is_file():
        raise UserError(f"{run}: not a run directory (no summary.json)")
    result = RunResult.load(run)
    if result.steps is None:
        raise UserError(f"{run}: the run has no steps.parquet; simulate it with --record-steps")
    write_chrome_trace(result, out)
    click.echo(f"wrote {out} (open in https://ui.perfetto.dev)")
