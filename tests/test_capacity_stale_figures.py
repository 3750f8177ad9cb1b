"""A second ``capacity`` search into the same ``--out`` left the first one's figures: the README's sequence (a 4-SLO
search, then ``--slo ttft_p90=0.001`` there) printed "1 figure(s)" beside 4 in ``figures/``, 3 of SLOs the report
beside them has not. The earlier search's figures of other SLOs are removed (those its ``capacity-rates.csv``
lists, as matplotlib wrote them), and nothing else. SLOs below the profile's lightest step: no run."""

from __future__ import annotations

import polars as pl

from cli_helpers import run_cli_fast
from conftest import make_workload


def _search(capsys, workload, out, *slos):
    r = run_cli_fast(capsys, "capacity", "-w", str(workload), "-n", "3", "--seeds", "1", "-p", "fcfs",
                     *(a for slo in slos for a in ("--slo", slo)), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_a_second_search_removes_the_first_ones_figures_of_other_slos_only(tmp_path, capsys):
    workload = tmp_path / "w.parquet"
    make_workload([20, 300, 5], [30, 2, 100], [0.0, 0.1, 0.2]).save(workload)
    out = tmp_path / "cap"
    _search(capsys, workload, out, "ttft_p90=0.001", "tpot_p90=0.001", "e2e_latency_p99=0.001")
    figures = out / "figures"
    assert sorted(p.name for p in figures.iterdir()) == [
        "capacity-e2e_latency_p99.png", "capacity-tpot_p90.png", "capacity-ttft_p90.png"]
    mine = {"notes.txt": b"my notes", "capacity-mine.png": (figures / "capacity-tpot_p90.png").read_bytes(),
            "table1.png": (figures / "capacity-tpot_p90.png").read_bytes(),  # (a reproduction's, in a shared --out)
            "capacity-e2e_latency_p99.png": b"\x89PNG\r\n\x1a\n my own drawing"}  # (the user's, over the tool's)
    for name, data in mine.items():
        (figures / name).write_bytes(data)

    r = _search(capsys, workload, out, "ttft_p90<=0.001")
    assert "and 1 figure(s) in " in r.stdout
    assert r.stdout.rstrip().splitlines()[-1] == (
        f"Removed 1 figure(s) of the previous search's SLOs, which this one has not: {figures / 'capacity-tpot_p90.png'}")
    assert sorted(p.name for p in figures.iterdir()) == sorted([*mine, "capacity-ttft_p90.png"])
    for name, data in mine.items():
        assert (figures / name).read_bytes() == data, name
    assert pl.read_csv(out / "capacity-rates.csv").columns == ["policy", "profile", "rate", "ttft_p90", "meets_slos",
                                                              "note", "run_hashes"]


def test_the_previous_reports_metrics_are_read_from_its_rates_header_or_none(tmp_path):
    """No such file, or one that is no CSV text (a damaged report), lists no metric: nothing is removed."""
    from ltrsched.experiments.capacity_report import reported_metrics

    rates = tmp_path / "capacity-rates.csv"
    assert reported_metrics(rates) == []
    rates.write_bytes(b"\xff\xfe\x00garbage")
    assert reported_metrics(rates) == []
    rates.write_text("policy,replicas,rate,tpot_p90,ttft_p90,meets_slos,note\nfcfs,1,2.0,0.1,1.0,true,\n")
    assert reported_metrics(rates) == ["tpot_p90", "ttft_p90"]
