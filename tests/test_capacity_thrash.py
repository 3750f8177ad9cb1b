"""A capacity search whose runs thrash far above capacity: a rate whose run a preemption thrash stopped misses the SLOs
(``stopped: preemption thrash``, no metrics) and the search bisects below it, through either backend's path; other
errors of a run still stop the search. (Before: the whole ``ltrsched capacity`` stopped with the thrash error.)"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import polars as pl
import pytest
from tqdm import tqdm

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError
from ltrsched.experiments import runner
from ltrsched.experiments.capacity import STOPPED_TEXT, Search, Slo, evaluate, stopped_point
from ltrsched.experiments.runspec import RunSpec
from ltrsched.policies import batching


def test_a_search_bisects_below_a_stopped_rate():
    search = Search(RunSpec("capacity", "s", "fcfs", workload="w", policy="fcfs", profile="a100-llama3-8b",
                            num_requests=30), 1.0, 0.2, 1024.0)
    slo = Slo("ttft_p90", 10.0)
    for _ in range(20):
        rate = search.next_rate
        if rate is None:
            break
        search.record(stopped_point([slo], rate, "run x: preemption thrash: 1 preemptions") if rate > 3 else
                      evaluate([slo], rate, [{"ttft_p90": 1.0}]))
    assert search.status == "found" and 2.5 < search.capacity <= 3 < search.high <= search.capacity * 1.2
    assert search.points[search.high].stopped and not search.points[search.high].meets


def _thrashing_capacity(capsys, out, workload):
    """A search on 30 requests of 5,000 + 1,000 tokens: above about 1 req/s so many overlap that they overflow the
    profile's KV cache (9,561 blocks), and the first preemption stops the run (the guard's cap is 0 per request)."""
    return run_cli_fast(capsys, "capacity", "-w", workload, "-n", "30", "--seeds", "1", "-p", "fcfs",
                        "--slo", "ttft_p90=10000", "--start-rate", "1", "--tolerance", "0.5", "--out", out,
                        "--jobs", "1")


def test_capacity_goes_on_below_a_rate_whose_run_thrashed_and_a_rerun_gives_the_same_table(tmp_path, capsys,
                                                                                          monkeypatch):
    monkeypatch.setattr(batching, "MAX_PREEMPTIONS_PER_REQUEST", 0)
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n" + "5000,1000\n" * 30)
    out = tmp_path / "o"
    r = _thrashing_capacity(capsys, out, workload)
    assert r.returncode == 0, r.stderr
    table = pl.read_csv(out / "capacity.csv")
    assert table.row(0, named=True) | {"profile": None} == {
        "policy": "fcfs", "profile": None, "capacity_rps": 1.0, "bracket_low": 1.0, "bracket_high": 1.414,
        "limiting_slo": STOPPED_TEXT, "rates_tried": 3, "runs": 3, "status": "found"}
    rates = pl.read_csv(out / "capacity-rates.csv")
    assert rates["rate"].to_list() == [1.0, 1.414, 2.0]
    assert rates["note"].fill_null("").to_list() == ["", STOPPED_TEXT, STOPPED_TEXT]
    assert rates["ttft_p90"].null_count() == 2 and rates["meets_slos"].to_list() == [True, False, False]
    assert "1 runs simulated, 0 reused, 2 stopped for preemption thrash" in r.stdout
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("capacity: ")]
    assert len(said) == 2 and all(f"misses the SLOs ({STOPPED_TEXT}): run fcfs on " in ln and
                                  ": preemption thrash: " in ln for ln in said), r.stderr
    assert (out / "figures" / "capacity-ttft_p90.png").stat().st_size > 0
    notes = (out / "capacity.md").read_text()
    assert f"limiting_slo = what bracket_high missed, or {STOPPED_TEXT} where its runs were stopped for it" in notes
    assert "- policy fcfs, profile a100-llama3-8b: the runs at 1.414, 2 req/s were stopped for preemption thrash" in notes
    # a thrash-stopped run saves no result: the rerun runs it again, it stops again, the same table
    assert not any(runner.is_done(out, s) for s in _stopped_specs(out, rates))
    again = _thrashing_capacity(capsys, out, workload)
    assert again.returncode == 0, again.stderr
    assert "0 runs simulated, 1 reused, 2 stopped for preemption thrash" in again.stdout
    assert pl.read_csv(out / "capacity.csv").equals(table) and pl.read_csv(out / "capacity-rates.csv").equals(rates)


def _stopped_specs(out, rates):
    from ltrsched.experiments.capacity import specs_at

    template = RunSpec("capacity", "w", "fcfs", workload=str(out.parent / "w.csv"), policy="fcfs",
                       profile="a100-llama3-8b", num_requests=30, arrival="poisson")
    return [s for r in rates.filter(pl.col("note") == STOPPED_TEXT)["rate"] for s in specs_at(template, r, [0])]


def _pending():
    specs = [RunSpec("sweep", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                     num_requests=5, arrival="poisson", rate=r)
             for r in (1.0, 2.0, 3.0)]
    return [(s, s.run_hash()) for s in specs]


def _fake_run_one(spec, out, run_hash=None, wait=True):
    if spec.rate == 2.0:
        raise batching.ThrashError(f"run {run_hash}: preemption thrash: 1 preemptions of 5 requests by step 9")
    if spec.rate == 3.0 and Path(out).name == "bad":
        raise UserError("an input changed")
    return runner.RAN


def _backend_run(path, pending, out, stats, thrash_ok):
    """``path``'s way of running ``pending``: in this process, or through the pool's result handling (a thread pool
    here: the pool's workers are spawned processes, which the test's patch would not reach)."""
    with tqdm(disable=True) as bar:
        if path == "here":
            runner._run_here(pending, out, stats, bar, thrash_ok)
        else:
            with cf.ThreadPoolExecutor(max_workers=1) as pool:
                runner._run_pool(pool, pending, out, stats, bar, None, thrash_ok)


@pytest.mark.parametrize("path", ["here", "pool"])
def test_a_thrash_stops_only_its_run_where_allowed_and_any_other_error_stops_them_all(tmp_path, monkeypatch, path):
    monkeypatch.setattr(runner, "run_one", _fake_run_one)
    pending = _pending()
    stats = runner.RunStats()
    _backend_run(path, pending, tmp_path / "ok", stats, thrash_ok=True)
    assert sorted(stats.ran) == sorted([pending[0][1], pending[2][1]])
    assert stats.stopped == {pending[1][1]: f"run {pending[1][1]}: preemption thrash: 1 preemptions of 5 requests by "
                                            "step 9"}
    with pytest.raises(batching.ThrashError, match="preemption thrash"):  # (a sweep: the error stops it, as before)
        _backend_run(path, pending, tmp_path / "ok", runner.RunStats(), thrash_ok=False)
    with pytest.raises(UserError, match="^an input changed$"):  # (not a thrash: it stops a capacity search too)
        _backend_run(path, pending, tmp_path / "bad", runner.RunStats(), thrash_ok=True)


class OldBackend(runner.Backend):
    """A user's backend written before ``thrash_ok`` existed: its ``run`` takes four arguments."""

    name = "old"

    def run(self, pending, out, stats, bar):
        runner._run_here(pending, out, stats, bar)


class KeywordBackend(runner.Backend):
    """A user's backend that passes whatever keywords it gets on (``**options``)."""

    name = "keywords"

    def run(self, pending, out, stats, bar, **options):
        runner._run_here(pending, out, stats, bar, **options)


def test_a_backend_written_before_thrash_ok_is_called_the_old_way_and_a_thrash_says_what_to_add(tmp_path, monkeypatch):
    """Passing ``thrash_ok`` to it was a TypeError traceback (``run() takes 5 positional arguments but 6 were given``)
    for every capacity search; now its runs go on, and a thrash stops them as before, its one line naming the class
    and the parameter to add."""
    monkeypatch.setattr(runner, "run_one", _fake_run_one)
    specs = [s for s, _ in _pending()]
    fine = [s for s in specs if s.rate != 2.0]
    stats = runner.run_all(fine, tmp_path / "ok", backend=OldBackend(), progress=False, thrash_ok=True)
    assert len(stats.ran) == 2 and not stats.stopped
    with pytest.raises(batching.ThrashError) as err:
        runner.run_all(specs, tmp_path / "ok", backend=OldBackend(), progress=False, thrash_ok=True)
    line = str(err.value)
    assert ": preemption thrash: 1 preemptions of 5 requests by step 9 (backend test_capacity_thrash.OldBackend ran it " \
           "without thrash_ok: its run takes no such keyword, so the thrash stops every run; add a `thrash_ok: bool = " \
           "False` parameter to its run" in line and "\n" not in line
    with pytest.raises(batching.ThrashError, match=r"by step 9$"):  # (not asked for: the error as it always was)
        runner.run_all(specs, tmp_path / "ok", backend=OldBackend(), progress=False)
    stats = runner.run_all(specs, tmp_path / "ok", backend=KeywordBackend(), progress=False, thrash_ok=True)
    assert len(stats.ran) == 2 and len(stats.stopped) == 1  # (**options: given the keyword, it goes on)


def _search_on(curve) -> Search:
    """A search driven to its end on ``curve``: rate [req/s] -> a point (met, missed or stopped)."""
    search = Search(RunSpec("capacity", "s", "fcfs", workload="w", policy="fcfs", profile="a100-llama3-8b",
                            num_requests=30), 1.0, 0.2, 1024.0)
    while search.next_rate is not None:
        search.record(curve(search.next_rate))
    return search


def test_the_limiting_slo_note_says_where_the_rates_that_failed_were_stopped():
    """The note under the table said ``limiting_slo = what bracket_high missed`` and nothing of stopped runs, whose
    rates missed no SLO that was measured; now it says when bracket_high's runs were stopped, and a note per
    configuration lists the stopped rates where the highest rate that failed was one (bracket_high may have run)."""
    from ltrsched.experiments.capacity_report import limiting_note, stopped_notes

    slo = Slo("ttft_p90", 10.0)

    def curve(stop_above, miss_above):
        return lambda rate: (stopped_point([slo], rate, "run x: preemption thrash") if rate > stop_above else
                             evaluate([slo], rate, [{"ttft_p90": 20.0 if rate > miss_above else 1.0}]))

    stopped_top = _search_on(curve(3, 3))  # bracket_high stopped
    measured_top = _search_on(curve(3, 2.5))  # bracket_high missed ttft_p90, the rates above it stopped
    met = _search_on(curve(1e9, 5))  # nothing stopped
    assert stopped_top.points[stopped_top.high].stopped and not measured_top.points[measured_top.high].stopped
    assert limiting_note([met, measured_top]) == "limiting_slo = what bracket_high missed"
    assert limiting_note([met, stopped_top]) == (f"limiting_slo = what bracket_high missed, or {STOPPED_TEXT} where "
                                                 "its runs were stopped for it (no metrics: counted as missing every SLO)")
    notes = stopped_notes([met, measured_top])
    stopped = ", ".join(f"{r:g}" for r in sorted(measured_top.points) if measured_top.points[r].stopped)
    assert stopped and notes == [f"policy fcfs, profile a100-llama3-8b: the runs at {stopped} req/s were stopped for "
                                 "preemption thrash (no metrics: counted as missing every SLO)"]
    assert stopped_notes([met]) == []
