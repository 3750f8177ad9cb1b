"""sweep.csv's ``run_hash`` column (helper sweephash): each row names its run's directory, ``runs/<run_hash>``, and
``plot cdf`` of a sweep's --out finds the runs it lists by it. It matched them by their settings and summary numbers,
which cannot tell apart two runs alike in both; a sweep.csv written before the column still plots that way."""

from __future__ import annotations

import polars as pl

from cli_helpers import run_cli_fast
from test_plot_sweep_runs import _run


def test_sweep_csv_names_each_rows_run_directory(capsys, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "srtf"]\nnum_requests = 20\n')
    out = tmp_path / "o"
    r = run_cli_fast(capsys, "sweep", str(cfg), "--out", str(out), "--jobs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    table = pl.read_csv(out / "sweep.csv", schema_overrides={"run_hash": pl.String})
    assert table.columns[-1] == "run_hash"
    assert sorted(table["run_hash"]) == sorted(d.name for d in (out / "runs").iterdir())
    from ltrsched.results import read_summary_file

    for row in table.iter_rows(named=True):  # (the summary there is the row's run's)
        meta = read_summary_file(out / "runs" / row["run_hash"] / "summary.json")["meta"]
        assert meta["run_hash"] == row["run_hash"] and meta["run_spec"]["policy"] == row["policy"]


def _alike(tmp_path, hashes: bool, names=("aaa", "bbb", "ccc")):
    """A sweep --out with two runs alike in settings and numbers (two sweep files' fcfs runs differing in a setting
    sweep.csv has no column for, their numbers equal), its sweep.csv listing the second only (by hash, or not)."""
    out = tmp_path / "out"
    _run(out, names[0], "fcfs", 20, 0.02)
    row = _run(out, names[1], "fcfs", 20, 0.02)
    rows = [row, _run(out, names[2], "srtf", 20, 0.01)]
    if hashes:
        rows = [{**rows[0], "run_hash": names[1]}, {**rows[1], "run_hash": names[2]}]
    pl.DataFrame(rows).write_csv(out / "sweep.csv")
    return out


def test_plot_cdf_draws_the_runs_sweep_csv_names_by_hash(capsys, tmp_path):
    from ltrsched.plots.runs import load_runs

    out = _alike(tmp_path, hashes=True)
    notes = []
    assert sorted(r.path.name for r in load_runs([out], notes)) == ["bbb", "ccc"]  # (by numbers: aaa too)
    assert len(notes) == 1 and "left out 1 run(s)" in notes[0] and "aaa" in notes[0]
    result = run_cli_fast(capsys, "plot", "cdf", str(out), "-o", str(tmp_path / "c.png"))
    assert result.returncode == 0 and "(2 runs" in result.stdout, result.stderr


def test_a_hash_of_digits_is_read_as_text(capsys, tmp_path):
    """A hash of hex digits 0-9 only, with leading zeros, read as a number did not name its directory."""
    from ltrsched.plots.runs import load_runs

    out = _alike(tmp_path, hashes=True, names=("aaa", "0012345678901234", "1000000000000000"))
    assert sorted(r.path.name for r in load_runs([out], [])) == ["0012345678901234", "1000000000000000"]


def test_an_old_sweep_csv_plots_by_settings_and_says_where_that_is_ambiguous(capsys, tmp_path):
    """Without the column: matched as before (both runs alike drawn), with one note saying so and why."""
    from ltrsched.plots.runs import load_runs

    out = _alike(tmp_path, hashes=False)
    notes = []
    assert sorted(r.path.name for r in load_runs([out], notes)) == ["aaa", "bbb", "ccc"]
    assert len(notes) == 1 and "no run_hash column" in notes[0] and "aaa, bbb" in notes[0], notes
    result = run_cli_fast(capsys, "plot", "cdf", str(out), "-o", str(tmp_path / "c.png"))
    assert result.returncode == 0 and "(3 runs" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "rerun the sweep" in result.stderr


def test_a_listed_run_that_is_gone_is_named_in_a_note(capsys, tmp_path):
    """By hash the runs a sweep.csv lists and runs/ lacks are known: the figure was drawn without them, unsaid."""
    import shutil

    from ltrsched.plots.runs import load_runs

    out = _alike(tmp_path, hashes=True)
    shutil.rmtree(out / "runs" / "ccc")
    notes = []
    assert [r.path.name for r in load_runs([out], notes)] == ["bbb"]
    assert len(notes) == 2 and "1 run(s) its sweep.csv lists are not under runs/" in notes[1] and "ccc" in notes[1]
