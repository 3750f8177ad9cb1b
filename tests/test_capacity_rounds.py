"""``capacity``'s progress says which round of about how many it runs (helper sweephash): it said ``K of N runs
done`` with N growing each round, no estimate of the whole search. The estimate is checked against searches driven on
known curves (no run), and the line against a small real search."""

from __future__ import annotations

import re

import pytest

from ltrsched.experiments.capacity import Search, Slo, bisection_rounds, evaluate, round_text, rounds_estimate
from test_capacity import TEMPLATE


def _rounds(searches, metric) -> list[tuple[int, int]]:
    """Drive ``searches`` in lockstep against ``metric(rate)``; the (likely, most) total rounds estimated before each
    round, as the progress shows them."""
    slo, estimates = Slo("ttft_p90", 1.0), []
    while any(s.next_rate is not None for s in searches):
        likely, most = rounds_estimate(searches)
        estimates.append((len(estimates) + likely, len(estimates) + most))
        for s in searches:
            if s.next_rate is not None:
                s.record(evaluate([slo], s.next_rate, [{"ttft_p90": metric(s.next_rate)}]))
    return estimates


@pytest.mark.parametrize("threshold", [0.001, 0.37, 3.0, 5.5, 13.3, 100.0, 777.0, 5000.0])
@pytest.mark.parametrize("tolerance", [0.01, 0.05, 0.3])
def test_the_estimate_bounds_the_rounds_and_is_exact_once_bracketed(threshold, tolerance):
    search = Search(TEMPLATE, start_rate=4.0, tolerance=tolerance, max_rate=1024.0)
    estimates = _rounds([search], lambda r: r / threshold)
    total = len(estimates)
    assert total == len(search.points)
    assert all(likely <= most and total <= most for likely, most in estimates), (total, estimates)
    # from the round after both a met and a missed rate were seen, the estimate is the count itself
    seen = sorted(search.points, key=list(search.points).index)
    first_bracket = next((i for i in range(1, total + 1) if any(search.points[r].meets for r in seen[:i])
                          and any(not search.points[r].meets for r in seen[:i])), None)
    if first_bracket is not None:
        assert all(e == (total, total) for e in estimates[first_bracket:]), (estimates, first_bracket)


def test_a_capacity_within_2x_of_the_start_is_estimated_exactly_from_the_first_round():
    for threshold in (4.5, 7.9, 2.1, 3.9):
        estimates = _rounds([Search(TEMPLATE, 4.0, 0.05, 1024.0)], lambda r: r / threshold)
        assert estimates[0][0] == len(estimates), (threshold, estimates)


def test_lockstep_searches_take_the_longest():
    a, b = Search(TEMPLATE, 4.0, 0.05, 1024.0), Search(TEMPLATE, 4.0, 0.05, 1024.0)
    estimates = _rounds([a, b], lambda r: r / 5.0)
    assert estimates[-1] == (len(estimates), len(estimates))
    assert round_text(1, [Search(TEMPLATE, 4.0, 0.05, 1024.0)]) == "capacity round 1 of ~6 (at most 15)"


def test_bisection_rounds_of_a_2x_bracket():
    assert bisection_rounds(16.0, 32.0, 0.05) == 4  # ceil(log2(ln 2 / ln 1.05)) = ceil(3.83)
    assert bisection_rounds(16.0, 16.5, 0.05) == 0


@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    """A small real search (fcfs, 30 lmsys-like requests, 1 seed, up to 16 req/s) with a progress line at every run
    done: its --out and the command's result."""
    import os

    from cli_helpers import run_cli_captured

    out = tmp_path_factory.mktemp("rounds") / "cap"
    env = {**os.environ, "LTRSCHED_PROGRESS_EVERY_S": "1e-9"}
    r = run_cli_captured("capacity", "-w", "lmsys-like", "-n", "30", "--seeds", "1", "-p", "fcfs", "--slo",
                         "ttft_p90=0.5", "--tolerance", "0.3", "--max-rate", "16", "--out", str(out), "--jobs", "1",
                         env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r


def test_capacity_prints_its_round_of_about_how_many(small_search):
    _, r = small_search
    lines = [m.groups() for m in re.finditer(r"capacity round (\d+) of ~(\d+)(?: \(at most (\d+)\))?: (\d+) of (\d+) "
                                             r"runs done, \d+ s", r.stderr)]
    assert lines, r.stderr
    rounds = int(lines[-1][0])
    assert [int(g[0]) for g in lines] == sorted(int(g[0]) for g in lines) and rounds >= 2
    assert all(rounds <= int(most or likely) for _, likely, most, _, _ in lines), lines
    assert int(lines[-1][1]) == rounds  # (the last round's estimate: the bracket's bisection, exact)


def test_capacity_rates_csv_names_each_rates_runs(small_search):
    """capacity-rates.csv lists the rates tried; its run_hashes name their runs' directories (runs/<hash>)."""
    import polars as pl

    from ltrsched.results import read_summary_file

    out, _ = small_search
    rates = pl.read_csv(out / "capacity-rates.csv", schema_overrides={"run_hashes": pl.String})
    assert rates.height >= 2
    hashes = [h for row in rates["run_hashes"] for h in row.split()]
    assert sorted(hashes) == sorted(d.name for d in (out / "runs").iterdir())
    for rate, row in zip(rates["rate"], rates["run_hashes"]):
        (run,) = row.split()  # (one seed)
        assert read_summary_file(out / "runs" / run / "summary.json")["meta"]["run_spec"]["rate"] == rate
