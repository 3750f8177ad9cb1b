"""Hostile inputs to workload generation and cluster simulation (arrival traces, lengths, router plugins):
each is a correct result or a one-line ``error: ...`` with exit code 2, never a traceback, a hang, or a
silently wrong result or lost output."""

from __future__ import annotations

import os
import subprocess
import sys

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error, run_cli

EXITING_PLUGIN = """
import sys
from ltrsched.policies import Policy, register
from ltrsched.routers import Router, register as register_router


@register
class Quitter(Policy):
    name = "quitter"

    def rank(self, view):
        sys.exit(0)


@register_router
class QuittingRouter(Router):
    name = "quitting-router"

    def route(self, row, now, replicas):
        sys.exit(0)
"""


def test_plugin_code_that_calls_sys_exit_mid_run_is_an_error(tmp_path):
    """A router's route (or a policy's rank) that calls sys.exit(0) ended the command with exit code 0 and no
    output at all (simulate, capacity): the run was lost silently. It is plugin code that raised: one line, exit 2."""
    plugin = tmp_path / "quitter.py"
    plugin.write_text(EXITING_PLUGIN)
    lines = EXITING_PLUGIN.splitlines()
    rank_line, route_line = [i + 1 for i, line in enumerate(lines) if line.strip() == "sys.exit(0)"]
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "20", "--plugin", str(plugin), "--replicas", "2",
                "--router", "quitting-router")
    assert_one_line_error(r, f"plugin code raised SystemExit: 0 ({plugin}:{route_line}, in route)")
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "20", "--plugin", str(plugin), "--policy", "quitter")
    assert_one_line_error(r, f"plugin code raised SystemExit: 0 ({plugin}:{rank_line}, in rank)")
    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "capacity", "--slo", "ttft_p90=2", "-p", "fcfs",
                        "--replicas", "2", "--router", "quitting-router", "-w", "lmsys-like", "-n", "20", "--seeds",
                        "1", "--out", str(tmp_path / "cap"), "--jobs", "1"],
                       capture_output=True, text=True, env={**os.environ, "LTRSCHED_PLUGINS": str(plugin)}, timeout=300)
    assert r.returncode == 2 and "plugin code raised SystemExit" in r.stderr, (r.stdout, r.stderr[-2000:])


MUTATING_ROUTER = """
from ltrsched.routers import Router, register


@register
class Shortener(Router):
    name = "shortener"

    def prepare(self, requests, num_replicas):
        requests["output_tokens"][:] = 1  # e.g. normalising a column in place

    def route(self, row, now, replicas):
        return 0
"""


def test_a_router_cannot_change_the_requests_it_is_prepared_with(tmp_path):
    """Router.prepare received the request table's own arrays: a router that changed one in place (output_tokens
    set to 1) silently changed what the replicas served (every request one token, exit 0). Its columns are
    read-only views: writing one is plugin code that raised, one line, exit 2."""
    plugin = tmp_path / "shortener.py"
    plugin.write_text(MUTATING_ROUTER)
    line = MUTATING_ROUTER.splitlines().index('        requests["output_tokens"][:] = 1  # e.g. normalising a '
                                               'column in place') + 1
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "20", "--plugin", str(plugin), "--replicas", "2",
                "--router", "shortener")
    assert_one_line_error(r, f"plugin code raised ValueError: assignment destination is read-only ({plugin}:{line}, "
                             "in prepare)")


def test_the_builtin_routers_run_on_read_only_columns():
    """Every built-in router prepares and routes from the read-only columns (none writes them)."""
    import numpy as np
    import polars as pl

    from ltrsched.policies import make_policy
    from ltrsched.routers import make_router
    from ltrsched.sim.cluster import simulate_cluster
    from ltrsched.sim.config import SimConfig
    from ltrsched.workloads import apply_arrivals, load_workload

    wl = apply_arrivals(load_workload("lmsys-like", num_requests=30), "poisson", rate=20.0)
    out = wl.df["output_tokens"].cast(pl.Float64)
    wl = wl.with_df(wl.df.with_columns(score=-out, predicted_length=out))
    for spec in ("round-robin", "random", "least-outstanding", "least-kv", "least-kv:by=tokens", "rank",
                 "rank:tau=0.6", "least-work", "least-work:tau=0.6"):
        result = simulate_cluster(wl, make_policy("fcfs"), SimConfig(), 3, make_router(spec))
        assert result.summary["num_finished"] == 30, spec
        assert np.array_equal(result.requests["served_output_tokens"].to_numpy(), wl.df["output_tokens"].to_numpy())


def test_a_trace_whose_first_10000_times_are_whole_seconds_loads(capsys, tmp_path):
    """Column types were inferred from the first 10,000 rows only: a trace whose first 10,000 arrival times were
    whole seconds, or whose token counts turned from 10 to 10.0 later, was refused ('cannot parse CSV: could not
    parse `10000.5` as dtype i64'). Both load, every value as written."""
    import numpy as np

    from ltrsched.workloads import load_workload

    n = 10_001
    path = tmp_path / "trace.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n"
                    + "".join(f"{i},{5 + i % 3},{1 + i % 4}\n" for i in range(n)) + f"{n - 0.5},7,12.0\n")
    df = load_workload(str(path)).df
    assert df.height == n + 1
    assert np.array_equal(df["arrival_time"].to_numpy(), np.append(np.arange(n, dtype=float), n - 0.5))
    assert df["output_tokens"][-1] == 12 and df["prompt_tokens"][-1] == 7
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "-n", "3")
    assert r.returncode == 0, r.stderr[-2000:]


def test_capacity_of_one_request_is_refused(capsys, tmp_path):
    """capacity -n 1 (or a one-request trace) ran 9 rates, each the same run of one request at t = 0, and reported
    'above max', a capacity of 1024 req/s, exit 0: no rate can miss an SLO with one request. It is refused."""
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "-w", "lmsys-like", "-n", "1", "--seeds",
                     "1",
                             "--out", str(tmp_path / "cap"))
    assert_one_line_error(r, "--num-requests 1: a run of one request is the same at every rate")
    assert not (tmp_path / "cap").exists()


def test_a_router_missing_its_column_is_told_its_own_tau_spec(capsys):
    """--router rank on a workload without scores advised `ltr:tau=0.62`, a policy spec (as --router: 'unknown
    router'); the advice names the router's own spec, and the spec advised runs."""
    for router, column in (("rank", "score"), ("least-work", "predicted_length")):
        r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "10", "--replicas", "2", "--router", router)
        assert_one_line_error(r, f"router {router!r} needs a {column!r} column")
        assert f"e.g. `--router {router}:tau=0.62`" in r.stderr and "ltr:tau" not in r.stderr, r.stderr
        r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "10", "--replicas", "2", "--router",
                         f"{router}:tau=0.62")
        assert r.returncode == 0, r.stderr[-2000:]


def test_least_work_refuses_requests_without_a_predicted_length(capsys, tmp_path):
    """least-work on a workload whose predicted_length is missing for some requests (null: allowed by the schema)
    routed every request to replica 0 (a NaN work never compares less), exit 0: 400 of 400 on one of 4 replicas.
    It is a one-line error naming the first such request; with every length given, the requests spread."""
    import polars as pl

    from ltrsched.workloads import load_workload

    df = load_workload("lmsys-like", num_requests=200).df
    length = pl.col("output_tokens").cast(pl.Float64)
    df.with_columns(predicted_length=pl.when(pl.col("request_id") == 7).then(None).otherwise(length)).write_parquet(
        tmp_path / "partial.parquet")
    df.with_columns(predicted_length=length).write_parquet(tmp_path / "full.parquet")
    args = ("--arrival", "poisson", "--rate", "30", "--replicas", "4", "--router", "least-work")
    r = run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "partial.parquet"), *args)
    assert_one_line_error(r, "router 'least-work': 1 request(s) have no predicted_length (first: request 7)")
    r = run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "full.parquet"), *args, "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr[-2000:]
    routed = pl.read_parquet(tmp_path / "run" / "requests.parquet")["replica"].value_counts()
    assert routed.height == 4 and routed["count"].max() < 150


BASE_EXCEPTION_ROUTER = """
from ltrsched.routers import Router, register


class Stop(BaseException):  # not an Exception
    pass


@register
class Stopper(Router):
    name = "stopper"

    def route(self, row, now, replicas):
        raise Stop("no more")
"""


def test_plugin_code_raising_a_base_exception_is_one_line(tmp_path):
    """A router raising an exception class derived from BaseException, not Exception, was a traceback (exit 1);
    it is plugin code that raised, one line naming it, exit 2."""
    plugin = tmp_path / "stopper.py"
    plugin.write_text(BASE_EXCEPTION_ROUTER)
    line = BASE_EXCEPTION_ROUTER.splitlines().index('        raise Stop("no more")') + 1
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "20", "--plugin", str(plugin), "--replicas", "2",
                "--router", "stopper")
    assert_one_line_error(r, f"plugin code raised Stop: no more ({plugin}:{line}, in route)")
    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "simulate", "-w", "lmsys-like", "-n", "20", "--plugin",
                        str(plugin), "--replicas", "2", "--router", "stopper"], capture_output=True, text=True,
                       env={**os.environ, "LTRSCHED_TRACEBACK": "1"}, timeout=300)
    assert r.returncode != 0 and "Traceback" in r.stderr and f'File "{plugin}", line {line}, in route' in r.stderr


def test_plot_cdf_refuses_a_run_with_nothing_to_plot(capsys, tmp_path):
    """plot cdf of a run whose requests have no latency (an empty requests table, or every metric missing) wrote
    an empty figure, exit 0, or left the run's line out beside other runs' lines; it names the run instead."""
    import polars as pl

    good = tmp_path / "good"
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "--out", str(good))
    assert r.returncode == 0, r.stderr[-2000:]
    empty, unfinished = tmp_path / "empty", tmp_path / "unfinished"
    requests = pl.read_parquet(good / "requests.parquet")
    for run, table in ((empty, requests.head(0)),
                       (unfinished, requests.with_columns(latency_per_token=float("nan"), ttft=None, tpot=None))):
        run.mkdir()
        (run / "summary.json").write_bytes((good / "summary.json").read_bytes())
        table.write_parquet(run / "requests.parquet")
        for runs in ([run], [good, run]):
            r = run_cli_fast(capsys, "plot", "cdf", *map(str, runs), "--out", str(tmp_path / "cdf.png"))
            assert_one_line_error(r, f"{run}: no request of the run has a latency to plot")
            assert not (tmp_path / "cdf.png").exists()
    r = run_cli_fast(capsys, "plot", "cdf", str(good), "--out", str(tmp_path / "cdf.png"))
    assert r.returncode == 0 and (tmp_path / "cdf.png").is_file(), r.stderr[-2000:]
