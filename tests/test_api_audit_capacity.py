"""The capacity search's Python entry (``search_capacity``, ``Slo``, ``Search``) given what ``ltrsched capacity``'s
option checks never let through: one TypeError/ValueError naming the argument before any run, not a traceback from
inside the search or a silently wrong capacity."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from conftest import make_workload
from ltrsched.experiments.capacity import MAX_HALVINGS, Search, Slo, evaluate, parse_slo, search_capacity
from ltrsched.experiments.runspec import RunSpec

TEMPLATE = RunSpec("capacity", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                   num_requests=30, arrival="poisson")
SLOS = [Slo("ttft_p90", 1.0)]


class NoRuns:
    """A backend that fails the test if the search gets as far as a run."""

    def run(self, *args, **kwargs):
        raise AssertionError("the search ran before refusing its arguments")


@pytest.mark.parametrize("changes, error, message", [
    ({"seeds": []}, ValueError, "seeds must hold at least one seed"),  # was a ZeroDivisionError traceback
    ({"seeds": [0, 0]}, ValueError, "seeds must be distinct"),
    ({"seeds": [-1]}, ValueError, "seeds must be in 0..2**64-1, got -1"),
    ({"seeds": "01"}, TypeError, "seeds must be a list or tuple, got str '01'"),
    ({"seeds": [0.5]}, TypeError, "seeds must hold integers, got float 0.5"),
    ({"slos": []}, ValueError, "slos must hold at least one Slo"),  # was 'above max': no SLO bounded the search
    ({"slos": ["ttft_p90=1"]}, TypeError, "slos must hold Slo objects"),  # was an AttributeError traceback
    ({"slos": [Slo("ttft_p90", 1.0), Slo("ttft_p90", 2.0)]}, ValueError, "slos name ttft_p90 twice"),
    ({"templates": ["fcfs"]}, TypeError, "templates must hold RunSpec objects, got str 'fcfs'"),
    ({"start_rate": 0}, ValueError, "start_rate must be a positive, finite number of requests per second, got int 0"),
    ({"start_rate": -1.0}, ValueError, "start_rate must be a positive"),
    ({"start_rate": math.nan}, ValueError, "start_rate must be a positive"),
    ({"start_rate": "4"}, TypeError, "start_rate must be a number of requests per second, got str '4'"),
    ({"start_rate": 1e-7}, ValueError, "start_rate 1e-07 req/s spreads a run's requests"),
    ({"max_rate": math.nan}, ValueError, "max_rate must be a positive"),  # was 'above max' at start_rate
    ({"max_rate": 1e12}, ValueError, "max_rate must be in 1e-08..1e+09 req/s, got 1e+12"),
    ({"start_rate": 8.0, "max_rate": 2.0}, ValueError, "start_rate 8 is above max_rate 2"),  # was capacity 8 > cap
    ({"tolerance": 0}, ValueError, "tolerance must be a positive, finite number"),
    ({"tolerance": -0.05}, ValueError, "tolerance must be a positive, finite number"),
    ({"tolerance": math.nan}, ValueError, "tolerance must be a positive, finite number"),
    ({"tolerance": True}, TypeError, "tolerance must be a number"),
])
def test_search_capacity_names_a_bad_argument_before_any_run(tmp_path, changes, error, message):
    args = dict(templates=[TEMPLATE], slos=SLOS, seeds=[0], out=tmp_path, backend=NoRuns(), start_rate=4.0,
                tolerance=0.05, max_rate=1024.0)
    args.update(changes)
    with pytest.raises(error) as info:
        search_capacity(**args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("metric, limit, error, message", [
    ("p90_ttft", 1.0, ValueError, "Slo metric must be a summary metric"),  # was: every rate missed it, 'none'
    ("ttft_p90", math.nan, ValueError, "Slo limit must be a positive number of seconds up to 1e+08, got float nan"),
    ("ttft_p90", -1.0, ValueError, "Slo limit must be a positive"),
    ("ttft_p90", 0, ValueError, "Slo limit must be a positive"),
    ("ttft_p90", math.inf, ValueError, "Slo limit must be a positive"),
    ("ttft_p90", "2", TypeError, "Slo limit must be a number of seconds, got str '2'"),
    (None, 1.0, ValueError, "Slo metric must be a summary metric"),
])
def test_an_slo_that_parse_slo_refuses_cannot_be_built_directly(metric, limit, error, message):
    with pytest.raises(error, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        Slo(metric, limit)


def test_an_slo_keeps_a_numpy_limit_as_a_python_float():
    slo = Slo("ttft_p90", np.float64(2))
    assert type(slo.limit) is float and slo == parse_slo("ttft_p90=2")


def test_a_search_over_all_of_a_workloads_requests_halves_down_to_its_floor(tmp_path):
    """A template with num_requests=None (RunSpec's default: the whole workload) was a TypeError traceback at the
    first halving, after its runs (min_rate(None)); its floor is that of the workload's size."""
    path = tmp_path / "wl.parquet"
    make_workload([20] * 30, [10] * 30).save(path)
    template = dataclasses.replace(TEMPLATE, workload=str(path), num_requests=None)
    search = Search(template, start_rate=4.0, tolerance=0.05, max_rate=1024.0)
    while search.next_rate is not None:  # every rate misses
        search.record(evaluate(SLOS, search.next_rate, [{"ttft_p90": 2.0}]))
    assert search.status == "none" and len(search.points) == MAX_HALVINGS + 1
    sized = Search(dataclasses.replace(template, num_requests=30), start_rate=4.0, tolerance=0.05, max_rate=1024.0)
    while sized.next_rate is not None:
        sized.record(evaluate(SLOS, sized.next_rate, [{"ttft_p90": 2.0}]))
    assert sorted(search.points) == sorted(sized.points)


def test_numpy_seeds_and_rates_reach_the_runs_as_python_numbers():
    """A numpy seed went into the runs' specs as is: a JSON TypeError traceback from the first run's key."""
    from ltrsched.experiments.capacity import search_arguments

    seeds, start, tolerance, cap = search_arguments([TEMPLATE], SLOS, [np.int64(1), np.uint8(2)], np.float64(4),
                                                    np.float32(0.5), np.int64(64))
    assert (seeds, start, tolerance, cap) == ([1, 2], 4.0, 0.5, 64.0)
    assert [type(v) for v in (*seeds, start, tolerance, cap)] == [int, int, float, float, float]


@pytest.mark.parametrize("slo", [Slo("ttft_p90", 2.0), Slo("latency_per_token_mean", 0.125), Slo("tpot_p99", 1e-3)])
def test_an_slo_as_capacity_prints_it_parses_back(slo):
    """capacity prints its SLOs as METRIC<=SECONDS (stdout, capacity.md); given back to --slo, that was
    "unknown metric 'ttft_p90<'"."""
    assert parse_slo(str(slo)) == slo and parse_slo(f" {slo.metric} <= {slo.limit!r} ") == slo


def test_the_slo_help_shows_both_forms_it_accepts(capsys):
    """--help showed only METRIC=SECONDS, though --slo takes METRIC<=SECONDS too (as capacity prints its SLOs)."""
    from cli_helpers import run_cli_fast

    r = run_cli_fast(capsys, "capacity", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())  # (click wraps the help)
    assert "--slo METRIC=SECONDS" in text
    assert "METRIC<=SECONDS, as the output writes SLOs, is the same (quote it in a shell: --slo 'ttft_p90<=2')" in text


@pytest.mark.parametrize("text, message", [
    ("p90_ttft<=-1", "--slo 'p90_ttft<=-1': unknown metric 'p90_ttft' (did you mean ttft_p90?); known: "),
    ("p99_e2e_latency=2", "unknown metric 'p99_e2e_latency' (did you mean e2e_latency_p99?)"),
    ("ttft_p90<=-1", "--slo 'ttft_p90<=-1': the limit must be a positive number of seconds, got -1"),
    ("ttft_p90<=nan", "the limit must be a positive number of seconds, got nan"),
    ("ttft_p90<=inf", "the limit must be at most 1e+08 s (about 3 years), got inf"),
    ("ttft_p90<=", "--slo 'ttft_p90<=': expected METRIC=SECONDS (or METRIC<=SECONDS), e.g. ttft_p90=2"),
    ("<=2", "--slo '<=2': expected METRIC=SECONDS"),
    ("ttft_p95=2", "unknown metric 'ttft_p95'; known: "),
])
def test_a_bad_slo_is_one_line_naming_it(capsys, tmp_path, text, message):
    from cli_helpers import assert_one_line_error, run_cli_fast

    r = run_cli_fast(capsys, "capacity", "--slo", text, "--out", tmp_path / "o")
    assert_one_line_error(r, message)
    assert not (tmp_path / "o").exists()


def _finished(template: RunSpec, slos, capacity: float, value) -> Search:
    """A search done by hand (no runs): ``value(rate)`` is each SLO metric's mean at the two rates it tried."""
    s = Search(template, start_rate=capacity, tolerance=0.05, max_rate=1024.0)
    for rate in (capacity, 2 * capacity):
        s.points[rate] = evaluate(slos, rate, [{slo.metric: value(rate) for slo in slos}])
    s.low, s.high, s.done = (capacity, 2 * capacity, True) if s.points[capacity].meets else (None, capacity, True)
    return s


@pytest.fixture
def figures(monkeypatch):
    """Each figure written: its legend's texts and its y scale."""
    from ltrsched import atomic

    seen = []
    write = atomic.write_figure

    def record(path, fig, **kwargs):
        ax = fig.axes[0]
        seen.append(([t.get_text() for t in ax.get_legend().get_texts()], ax.get_yscale()))
        return write(path, fig, **kwargs)

    monkeypatch.setattr(atomic, "write_figure", record)
    return seen


def test_a_lone_replica_beside_a_cluster_is_labelled_with_no_router_as_in_the_table(tmp_path, figures):
    """The figures' legends and the notes said 'fcfs | 1 | None' and 'router None' (a router of that name) where the
    table says '-'."""
    from ltrsched.experiments.capacity_report import capacity_figures, capacity_table, none_notes

    lone = TEMPLATE
    cluster = dataclasses.replace(TEMPLATE, replicas=2, router="least-kv")
    searches = [_finished(lone, SLOS, 4.0, lambda r: 2.0), _finished(cluster, SLOS, 4.0, lambda r: r / 8)]
    capacity_figures(searches, SLOS, tmp_path)
    (legend, _), = figures
    assert legend[:2] == ["fcfs | 1 | -", "fcfs | 2 | least-kv"] and not any("None" in t for t in legend)
    assert capacity_table(searches, 1)["router"].to_list() == [None, "least-kv"]  # (shown as '-')
    (note,) = none_notes(searches)
    assert note.startswith("policy fcfs, profile a100-llama3-8b, replicas 1, router -: none; ")


def test_an_slo_far_above_the_values_gets_a_log_axis(tmp_path, figures):
    """A limit 1e8 times the values on a linear axis drew every value at 0, under the SLO's line at the top."""
    from ltrsched.experiments.capacity_report import capacity_figures

    slos = [Slo("tpot_p90", 1e8), Slo("ttft_p90", 0.05)]
    capacity_figures([_finished(TEMPLATE, slos, 4.0, lambda r: 0.02 * r / 4)], slos, tmp_path)
    assert [scale for _, scale in figures] == ["log", "linear"]
