"""The paper's policies: hand-built orders, demotion points, tau calibration, starvation bound, LTR == SRTF."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import LiveView, RequestState, make_policy, order_by
from ltrsched.policies.approx_oracle import approx_oracle_scores
from ltrsched.sim import SimConfig, simulate
from ltrsched.workloads import load_workload


def view(**cols):
    n = len(next(iter(cols.values())))
    base = {
        "request_id": np.arange(n), "arrival_time": np.zeros(n), "prompt_tokens": np.full(n, 10),
        "output_tokens": np.full(n, 100), "generated_tokens": np.zeros(n, dtype=np.int64),
        "computed_tokens": np.zeros(n, dtype=np.int64), "state": np.full(n, int(RequestState.WAITING)),
        "idle_steps": np.zeros(n, dtype=np.int64), "run_time": np.zeros(n), "score": np.full(n, np.nan),
        "po_estimate": np.full(n, np.nan), "predicted_length": np.full(n, np.nan),
    }
    base.update({k: np.asarray(v) for k, v in cols.items()})
    return LiveView(base, None, now=0.0, step=0)


def prepared(spec, v):
    p = make_policy(spec)
    p.prepare({k: v.column(k) for k in ("request_id", "arrival_time", "prompt_tokens", "output_tokens",
                                        "score", "po_estimate", "predicted_length")})
    return p


KEY_KINDS = {  # key generators: (rng, n) -> array; sorted ones make order_by take its shortcut
    "small_int": lambda r, n: r.integers(0, 300, n), "wide_int": lambda r, n: r.integers(-(2**40), 2**40, n),
    "negative_int": lambda r, n: r.integers(-5, 5, n), "int32": lambda r, n: r.integers(0, 9, n).astype(np.int32),
    "float": lambda r, n: r.random(n).round(2), "nan": lambda r, n: np.where(r.random(n) < 0.2, np.nan, r.random(n)),
    "bool": lambda r, n: r.random(n) < 0.5, "zeros": lambda r, n: np.zeros(n), "signed_zero": lambda r, n: -np.zeros(n),
    "ascending": lambda r, n: np.sort(r.integers(0, 30, n)), "ascending_float": lambda r, n: np.sort(r.random(n)),
    "ids": lambda r, n: np.arange(n),
    "nan_tail": lambda r, n: np.r_[np.sort(r.random(n - n // 3)), np.full(n // 3, np.nan)],
    "ascending_with_nans": lambda r, n: np.where(r.random(n) < 0.2, np.nan, np.sort(r.random(n))),
}


@settings(max_examples=300, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 5, 255, 256, 700]), kinds=st.lists(st.sampled_from(sorted(KEY_KINDS)), min_size=1,
                                                                      max_size=4), seed=st.integers(0, 2**32 - 1))
def test_order_by_is_lexsort(n, kinds, seed):
    rng = np.random.default_rng(seed)
    keys = [KEY_KINDS[k](rng, n) for k in kinds]
    got, want = order_by(*keys), np.lexsort(keys[::-1])
    assert got.dtype == want.dtype and np.array_equal(got, want)


@settings(max_examples=200, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 5, 300]), kinds=st.lists(st.sampled_from(sorted(KEY_KINDS)), max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_view_order_by_breaks_ties_by_arrival_then_id(n, kinds, seed):
    """Listed by arrival (the host vouches) or not, LiveView.order_by is order_by(*keys, arrival, id)."""
    rng = np.random.default_rng(seed)
    keys = [KEY_KINDS[k](rng, n) for k in kinds]
    arrival, ids = rng.integers(0, 4, n).astype(float), rng.permutation(n) * 7
    rows = np.lexsort((ids, arrival))  # the rows of a host that lists requests by arrival, ties by id
    for listed, pos in ((True, rows), (False, rng.permutation(n))):
        v = view(arrival_time=arrival[pos], request_id=ids[pos])
        v.arrival_ordered = listed
        ks = [k[pos] for k in keys]
        assert np.array_equal(v.order_by(*ks), order_by(*ks, arrival[pos], ids[pos])), listed


@pytest.mark.parametrize("arrival", ["burst", "poisson"])
@pytest.mark.parametrize("spec", ["fcfs", "srtf", "mlfq", "srtf:starve=20,quantum=5"])
def test_row_order_of_the_workload_does_not_change_results(spec, arrival):
    """A workload listed out of arrival order (the simulator then cannot vouch for the order of its live
    requests) gives every request the same timestamps as the same workload sorted by arrival. (Policies
    whose scores are drawn per row, e.g. the approximate oracle, draw other scores for other rows.)"""
    from ltrsched.workloads import apply_arrivals
    from ltrsched.workloads.schema import Workload

    wl = apply_arrivals(load_workload("sharegpt", num_requests=300, seed=0), arrival,
                        rate=None if arrival == "burst" else 20, seed=0)
    shuffled = Workload(wl.df.sample(fraction=1.0, shuffle=True, seed=1), wl.name, wl.meta)
    assert not shuffled.df["request_id"].equals(wl.df["request_id"])
    cfg = SimConfig(num_gpu_blocks=600)
    cols = ["request_id", "first_scheduled_time", "first_token_time", "finish_time", "num_preemptions"]
    a = simulate(wl, make_policy(spec), cfg).requests.select(cols).sort("request_id")
    b = simulate(shuffled, make_policy(spec), cfg).requests.select(cols).sort("request_id")
    assert a.equals(b)


def test_fcfs_srtf_ltr_orders():
    v = view(arrival_time=[3.0, 1.0, 2.0, 1.0], output_tokens=[5, 50, 10, 50],
             generated_tokens=[0, 45, 0, 0], score=[0.1, 0.9, 0.5, 0.9])
    assert prepared("fcfs", v).rank(v).tolist() == [1, 3, 2, 0]
    assert prepared("srtf", v).rank(v).tolist() == [1, 0, 2, 3]  # remaining 5, 5, 10, 50; ties by arrival
    assert prepared("ltr", v).rank(v).tolist() == [1, 3, 2, 0]  # score desc, ties by arrival then id


def test_classification_buckets_and_po_phase():
    v = view(arrival_time=[0.0, 1.0, 2.0, 3.0], predicted_length=[900, 50, 819, 10])
    assert prepared("class:bucket=820", v).rank(v).tolist() == [1, 2, 3, 0]  # buckets 1,0,0,0
    assert prepared("class:bucket=10", v).rank(v).tolist() == [3, 1, 2, 0]
    v = view(arrival_time=[0.0, 1.0, 2.0, 3.0], generated_tokens=[0, 20, 5, 30], po_estimate=[100, 500, 10, 50])
    p = prepared("po", v)
    assert p.extra_output_tokens == 15
    assert p.rank(v).tolist() == [0, 2, 3, 1]  # estimate phase FCFS first, then shortest estimate


def test_classification_keeps_a_classifiers_own_buckets():
    # `ltrsched predict` with a model trained at --bucket 100 writes bucket midpoints (k + 0.5) * 100: the policy
    # by default orders by them (it re-bucketed them to 820-token buckets, merging classes 0-7 into one: FCFS)
    v = view(arrival_time=[0.0, 1.0, 2.0, 3.0], predicted_length=[750.0, 350.0, 50.0, 150.0])
    assert prepared("class", v).rank(v).tolist() == [2, 3, 1, 0]
    assert prepared("class:bucket=820", v).rank(v).tolist() == [0, 1, 2, 3]  # asked for: re-bucketed
    # the noise model (no predicted lengths) keeps its 820-token buckets: the same order as bucket=820
    v = view(arrival_time=np.arange(6.0), output_tokens=[3000, 10, 900, 5000, 400, 2000])
    assert prepared("class", v).rank(v).tolist() == prepared("class:bucket=820", v).rank(v).tolist()


def test_mlfq_demotion_points_by_hand():
    # quantum 0.03 s, threshold 2: level quanta 0.03, 0.06, 0.12 -> cumulative bounds 0.03, 0.09, 0.21
    run = [0.0, 0.029, 0.03, 0.089, 0.09, 0.209, 0.21]
    v = view(run_time=run, arrival_time=np.arange(7.0))
    p = prepared("mlfq:quantum=0.03,threshold=2", v)
    assert p.levels(v).tolist() == [0, 0, 1, 1, 2, 2, 3]
    p.on_step(v, np.array([False, True, False, False, False, False, False]), 0.01)
    v2 = LiveView({k: v.column(k) for k in ("request_id", "arrival_time", "run_time")}, None, 0.0, 1)
    assert p.rank(v2).tolist() == [1, 0, 2, 3, 4, 5, 6]  # most recently run first within level 0


def test_mlfq_demotes_in_simulation():
    # two long requests at t=0, a third arrives later: with MLFQ the newcomer (top level) preempts
    wl = make_workload([4, 4, 4], [40, 40, 3], arrivals=[0.0, 0.0, 0.2])
    cfg = SimConfig(profile=LinearProfile(), max_num_seqs=1, watermark=0)
    fcfs = simulate(wl, make_policy("fcfs"), cfg).requests.sort("request_id")
    mlfq = simulate(wl, make_policy("mlfq:quantum=0.03,threshold=2"), cfg).requests.sort("request_id")
    assert mlfq["finish_time"][2] < fcfs["finish_time"][2]
    # with 1 seq per step, MLFQ alternates: request 1 starts before request 0 has finished
    assert mlfq["first_token_time"][1] < mlfq["finish_time"][0]


@pytest.mark.parametrize("tau", [0.5, 0.62, 0.74, 0.84])
def test_approx_oracle_hits_tau(tau):
    lengths = load_workload("sharegpt", num_requests=2000, seed=0).df["output_tokens"].to_numpy()
    scores = approx_oracle_scores(lengths, tau, seed=0)
    assert kendalltau(scores, -lengths).statistic == pytest.approx(tau, abs=0.01)


@pytest.mark.parametrize("lengths, tau, seed", [(list(range(3, 121, 3)), 0.001, 2), (list(range(3, 121, 3)), 0.01, 2)])
def test_noisy_lengths_are_finite_and_in_the_scores_order_where_the_noise_runs_away(lengths, tau, seed):
    """A tau below what noise reaches ran the noise's scale to ~1e6: exp overflowed (a RuntimeWarning in PO's
    prepare), lengths became inf and 0 (ties the scores did not have); the least-work router's sums were inf.
    (Its first cases, 2-5 requests, no longer run away: the oracle takes the nearest tau reached there,
    tests/test_audit_pred.py; a tau near 0 on 40 requests still does.)"""
    import warnings

    from ltrsched.policies.approx_oracle import noisy_lengths

    lengths = np.array(lengths)
    scores = approx_oracle_scores(lengths, tau, seed)
    assert np.abs(scores).max() > 1e3  # (the case: exp(-score) is out of float range)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noisy = noisy_lengths(lengths, tau, seed)
        assert np.isfinite(noisy.sum())
    assert (noisy >= np.finfo(np.float64).tiny).all()
    pairs = np.subtract.outer
    assert (np.sign(pairs(noisy, noisy)) == np.sign(pairs(-scores, -scores))).all()  # the same order and ties


def test_noisy_lengths_are_the_exponentiated_scores_on_ordinary_lengths():
    from ltrsched.policies.approx_oracle import noisy_lengths

    lengths = np.random.default_rng(0).integers(1, 4000, 300)
    for tau in (0.3, 0.62, 0.9):
        assert noisy_lengths(lengths, tau, 3).tobytes() == np.exp(-approx_oracle_scores(lengths, tau, 3)).tobytes()


def test_ltr_with_perfect_predictor_equals_srtf_on_burst():
    wl = load_workload("sharegpt", num_requests=300, seed=1)
    wl = wl.with_df(wl.df.with_columns(score=-pl.col("output_tokens").cast(pl.Float64)))
    cfg = SimConfig(profile="a100-llama3-8b", num_gpu_blocks=3000, max_num_seqs=32)
    a = simulate(wl, make_policy("ltr"), cfg).requests
    b = simulate(wl, make_policy("srtf"), cfg).requests
    assert a["finish_time"].to_list() == b["finish_time"].to_list()
    assert a["latency_per_token"].mean() < simulate(wl, make_policy("fcfs"), cfg).requests["latency_per_token"].mean()


def test_ltr_without_scores_says_how_to_get_them():
    wl = make_workload([4, 4], [4, 4])
    with pytest.raises(UserError, match="ltrsched predict"):
        simulate(wl, make_policy("ltr"), SimConfig(profile=LinearProfile()))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(5, 40), seed=st.integers(0, 1000), seqs=st.integers(1, 4),
    threshold=st.integers(3, 30), quantum=st.integers(1, 5),
)
def test_starvation_prevention_bounds_idle_runs(n, seed, seqs, threshold, quantum):
    # adversarial: long requests have the worst score while short ones keep arriving
    rng = np.random.default_rng(seed)
    outputs = rng.integers(1, 60, n)
    arrivals = np.sort(rng.uniform(0, 1.0, n))
    wl = make_workload(rng.integers(1, 20, n), outputs, arrivals, score=-outputs.astype(float))
    cfg = SimConfig(profile=LinearProfile(), max_num_seqs=seqs, max_num_batched_tokens=64, watermark=0)
    spec = f"ltr:starve={threshold},quantum={quantum}"
    r = simulate(wl, make_policy(spec), cfg).requests
    # a promoted request waits at most for the promoted requests ahead of it (<= n), seqs at a time
    bound = threshold + quantum * -(-n // seqs)
    assert r["max_idle_steps"].max() <= bound


def test_starvation_prevention_matters():
    # one long request behind a stream of short ones: plain LTR starves it, prevention bounds it
    n = 60
    outputs = np.r_[200, np.full(n, 5)]
    arrivals = np.r_[0.0, np.linspace(0.0, 3.0, n)]
    wl = make_workload(np.full(n + 1, 4), outputs, arrivals, score=-outputs.astype(float))
    cfg = SimConfig(profile=LinearProfile(), max_num_seqs=1, watermark=0)
    plain = simulate(wl, make_policy("ltr"), cfg).requests
    fair = simulate(wl, make_policy("ltr:starve=20,quantum=5"), cfg).requests
    assert plain["max_idle_steps"][0] >= 250  # the long request waits for the whole stream
    # promoted after 20 idle steps, it then waits only for requests promoted before it (FIFO)
    assert fair["max_idle_steps"][0] <= plain["max_idle_steps"][0] / 3
    assert fair["max_idle_steps"].max() <= 20 + 5 * n
    assert fair["max_waiting_time"].max() < plain["max_waiting_time"].max() / 3


def test_spec_errors_list_what_exists():
    with pytest.raises(UserError, match="available: .*fcfs.*ltr"):
        make_policy("nope")
    with pytest.raises(UserError, match="bad value for bucket"):
        make_policy("class:bucket=wide")
    with pytest.raises(UserError, match="has no parameter 'zzz'"):
        make_policy("ltr:zzz=1")
    with pytest.raises(UserError, match="bad policy spec"):
        make_policy("ltr:tau")
    with pytest.raises(UserError, match="must be >= 1"):
        make_policy("fcfs:starve=0")
    assert make_policy(make_policy("mlfq:starve=50,starve_quantum=3").spec()).spec() == \
        "mlfq:quantum=0.03,threshold=2.0,promote=0,starve=50,starve_quantum=3"


def test_plugin_policy_runs_in_the_simulator(tmp_path):
    import subprocess
    import sys

    wlp = tmp_path / "wl.parquet"
    make_workload([10, 300, 60], [5, 5, 5]).save(wlp)
    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "simulate", "-w", str(wlp), "--plugin",
                        "examples/policies/short_prompt_aging.py", "--policy", "short-prompt:age=0.5",
                        "--num-gpu-blocks", "100", "--max-num-batched-tokens", "64", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    req = pl.read_parquet(tmp_path / "o" / "requests.parquet").sort("request_id")
    assert req["first_token_time"][0] < req["first_token_time"][2] < req["first_token_time"][1]


_SHADOWS_FCFS = ("from ltrsched.policies import Policy, register\n@register\nclass Mine(Policy):\n    name = 'fcfs'\n"
                 "    def rank(self, view):\n        return view.order_by(-view.prompt_tokens)\n")
_SHADOWS_ROUND_ROBIN = ("from ltrsched.routers import Router, register\n@register\nclass Mine(Router):\n"
                        "    name = 'round-robin'\n    def route(self, request, now, replicas):\n        return 0\n")


@pytest.mark.parametrize("name, content, message", [
    ("exits.py", "import sys\nsys.exit(3)\n", "cannot load plugin"),
    ("plugin.json", "{}", "is neither a module name nor a .py file"),
    # a file in the working directory, named without a slash, was imported as a module: "No module named 'plugin'"
    ("plugin.csv", "a,b\n", "plugin plugin.csv is neither a module name nor a .py file"),
    # these ran silently: --policy fcfs then ran the plugin's code (or, with --plugin, the built-in replaced the
    # plugin's class, ignoring it), and a file without @register added nothing
    ("mine.py", _SHADOWS_FCFS, "policy name 'fcfs' (class Mine) is a built-in policy's; give the plugin's class another"),
    ("mine.py", _SHADOWS_ROUND_ROBIN, "router name 'round-robin' (class Mine) is a built-in router's"),
    ("mine.py", "from ltrsched.policies import Policy\nclass Mine(Policy):\n    name = 'mine'\n",
     "plugin mine.py registers no policy or router: decorate its Policy (or Router) subclass with @register"),
    # two classes of one name: the second replaced the first, silently
    ("mine.py", _SHADOWS_FCFS.replace("'fcfs'", "'mine'") + _SHADOWS_FCFS.replace("'fcfs'", "'mine'").replace(
        "class Mine", "class Other"), "policy name 'mine' is registered twice, by class Mine ("),
])
def test_bad_plugin_is_one_line(tmp_path, name, content, message):
    import os
    import subprocess
    import sys

    from test_cli_simulate import assert_one_line_error, run_cli

    (tmp_path / name).write_text(content)
    for command in ("policies", "routers"):  # the file named as the user would, from its directory
        assert_one_line_error(run_cli(command, "--plugin", name, cwd=tmp_path), message)
    if name.endswith(".py"):  # the same from LTRSCHED_PLUGINS, loaded after the built-ins
        r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "policies"], capture_output=True, text=True,
                           cwd=tmp_path, env={**os.environ, "LTRSCHED_PLUGINS": name}, timeout=300)
        assert_one_line_error(r, message)


def test_two_plugin_files_registering_one_name_are_refused(tmp_path):
    """The file loaded last replaced the other's class silently: --policy mine ran whichever came last."""
    from test_cli_simulate import assert_one_line_error, run_cli

    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text(_SHADOWS_FCFS.replace("'fcfs'", "'mine'"))
        (tmp_path / f"r{name}.py").write_text(_SHADOWS_ROUND_ROBIN.replace("'round-robin'", "'mine'"))
    assert_one_line_error(run_cli("policies", "--plugin", "a.py", "--plugin", "b.py", cwd=tmp_path),
                          f"policy name 'mine' is registered twice, by class Mine ({tmp_path / 'a.py'}) and by "
                          f"class Mine ({tmp_path / 'b.py'}); give one of them another name")
    assert_one_line_error(run_cli("routers", "--plugin", "ra.py", "--plugin", "rb.py", cwd=tmp_path),
                          "router name 'mine' is registered twice")
    r = run_cli("policies", "--plugin", "a.py", "--plugin", str(tmp_path / "a.py"), cwd=tmp_path)  # one file twice
    assert r.returncode == 0 and "mine:" in r.stdout, r.stderr


RAISING_PLUGIN = """
from ltrsched.policies import LiveView, Policy, register
from ltrsched.routers import Router, register as register_router


@register
class Crashy(Policy):
    name = "crashy"

    def rank(self, view: LiveView):
        if view.step >= 3:
            return {}["no such key"]
        return view.order_by()


@register_router
class CrashyRouter(Router):
    name = "crashy-router"

    def route(self, row, now, replicas):
        raise ValueError("no replica for you")
"""


def test_plugin_code_that_raises_is_one_line_naming_where(tmp_path):
    """An exception in a plugin's own code (bad input, not a bug of ltrsched) is one line with the exception and the
    plugin's file and line, exit 2, in the simulator, in a sweep's pool workers and in a router; with
    LTRSCHED_TRACEBACK=1 the traceback instead."""
    import os

    from test_cli_simulate import assert_one_line_error, run_cli

    plugin = tmp_path / "crashy.py"
    plugin.write_text(RAISING_PLUGIN)
    lines = RAISING_PLUGIN.splitlines()
    rank_line = lines.index('            return {}["no such key"]') + 1
    route_line = lines.index('        raise ValueError("no replica for you")') + 1
    where = f"({plugin}:{rank_line}, in rank); fix the plugin (LTRSCHED_TRACEBACK=1 shows the traceback)"
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "40", "--plugin", str(plugin), "--policy", "crashy")
    assert_one_line_error(r, "plugin code raised KeyError: 'no such key' " + where)
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "40", "--plugin", str(plugin), "--replicas", "2",
                "--router", "crashy-router")
    assert_one_line_error(r, f"plugin code raised ValueError: no replica for you ({plugin}:{route_line}, in route)")
    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "crashy"]\n'
                                     'num_requests = 40\nseeds = [0, 1]\n')
    env = {**os.environ, "LTRSCHED_PLUGINS": str(plugin)}
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "sweep", "s.toml", "--out", "o", "--jobs", "2"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert_one_line_error(r, "plugin code raised KeyError: 'no such key' " + where)
    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "simulate", "-w", "lmsys-like", "-n", "40", "--policy",
                        "crashy"], capture_output=True, text=True, env={**env, "LTRSCHED_TRACEBACK": "1"}, timeout=300)
    assert r.returncode != 0 and "Traceback" in r.stderr and f'File "{plugin}", line {rank_line}, in rank' in r.stderr


def test_the_registries_name_the_modules_of_plugin_code(tmp_path):
    """plugin_errors finds a plugin's files through each registry's public plugin_modules() (it read the
    registries' private source tables): a plugin's policies and routers count, built-ins do not."""
    import os

    from ltrsched.plugin_errors import plugin_files
    from ltrsched.policies import load_plugin
    from ltrsched.policies.registry import plugin_modules as policy_modules
    from ltrsched.routers.registry import plugin_modules as router_modules

    plugin = tmp_path / "module_probe.py"
    plugin.write_text(RAISING_PLUGIN.replace('"crashy', '"module-probe'))
    load_plugin(str(plugin))
    assert any(m.startswith("ltrsched_plugin_module_probe_") for m in policy_modules())
    assert any(m.startswith("ltrsched_plugin_module_probe_") for m in router_modules())
    assert not any(m.startswith("ltrsched.") for m in policy_modules() | router_modules())
    assert os.path.realpath(plugin) in plugin_files()


SAME_NAMED_PLUGIN = """
from ltrsched.policies import LiveView, Policy, register


@register
class Mine(Policy):
    name = "{name}"

    def rank(self, view: LiveView):
        {body}
"""


def test_plugin_files_of_the_same_name_in_two_folders_are_two_modules(tmp_path):
    """Both files were loaded as module ``ltrsched_plugin_mine``: the second replaced the first in sys.modules, so the
    first file's classes were found in the second file (inspect, plugin error lines: a crash in the first file was a
    traceback), and a class of the same name registered under the same policy name silently replaced the first
    file's, as if the file had been reloaded. Each file is now its own module; a result's key still names it by stem."""
    import inspect
    import os
    import re
    import sys

    from test_cli_simulate import assert_one_line_error, run_cli

    from ltrsched.plugin_errors import plugin_files
    from ltrsched.policies import load_plugin
    from ltrsched.policies.registry import policy_source

    files = {}
    for folder, name in (("a", "mine-from-a"), ("b", "mine-from-b")):
        (tmp_path / folder).mkdir()
        files[name] = tmp_path / folder / "mine.py"
        files[name].write_text(SAME_NAMED_PLUGIN.format(name=name, body="return view.order_by()"))
    for file in files.values():
        load_plugin(str(file))
    for name, file in files.items():
        cls = type(make_policy(name))
        assert os.path.realpath(inspect.getfile(cls)) == os.path.realpath(file)
        assert sys.modules[cls.__module__].Mine is cls
        assert policy_source(name)["module"] == "ltrsched_plugin_mine"  # keys as before, whatever the folder
    assert {os.path.realpath(f) for f in files.values()} <= plugin_files()
    load_plugin(f"{tmp_path}/a/../a/mine.py")  # the same file again, spelled otherwise: loaded once
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mine.py").write_text(SAME_NAMED_PLUGIN.format(name="mine-from-a", body="return None"))
    twice = f"'mine-from-a' is registered twice.*{re.escape(str(files['mine-from-a']))}.*{re.escape(str(tmp_path))}/c/mine"
    with pytest.raises(UserError, match=twice):
        load_plugin(str(tmp_path / "c" / "mine.py"))

    (tmp_path / "a" / "mine.py").write_text(SAME_NAMED_PLUGIN.format(name="crash-a", body='return {}["boom"]'))
    (tmp_path / "b" / "mine.py").write_text(SAME_NAMED_PLUGIN.format(name="fine-b", body="return view.order_by()"))
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "20", "--plugin", str(tmp_path / "a" / "mine.py"), "--plugin",
                str(tmp_path / "b" / "mine.py"), "--policy", "crash-a")
    assert_one_line_error(r, f"plugin code raised KeyError: 'boom' ({tmp_path / 'a' / 'mine.py'}:")


def test_ltr_better_ranked_arrival_displaces_a_running_request():
    # one sequence per step: A (worst score) runs alone until B (best score) arrives, then B runs and A pauses
    wl = make_workload([4, 4], [30, 3], arrivals=[0.0, 0.05], score=[0.0, 1.0])
    cfg = SimConfig(profile=LinearProfile(), max_num_seqs=1, watermark=0, record_steps=True)
    r = simulate(wl, make_policy("ltr"), cfg).requests.sort("request_id")
    a, b = r.iter_rows(named=True)
    assert b["finish_time"] < a["finish_time"]
    assert a["first_token_time"] < b["arrival_time"] < b["finish_time"]
    assert a["max_idle_steps"] == 3  # paused for B's prefill + 2 decodes


def test_mlfq_periodic_promotion():
    v = view(run_time=[0.5, 0.5], idle_steps=[0, 50], arrival_time=[0.0, 1.0])
    plain = prepared("mlfq:quantum=0.03,threshold=2", v)
    promo = prepared("mlfq:quantum=0.03,threshold=2,promote=40", v)
    assert plain.levels(v).tolist()[0] == plain.levels(v).tolist()[1] > 0
    assert promo.levels(v).tolist()[1] == 0 and promo.rank(v).tolist() == [1, 0]


def test_po_serves_its_estimate_tokens():
    wl = make_workload([4, 4], [10, 20], po_estimate=[10, 20])
    r = simulate(wl, make_policy("po"), SimConfig(profile=LinearProfile(), watermark=0)).requests.sort("request_id")
    assert r["served_output_tokens"].to_list() == [25, 35]
    assert r["output_tokens"].to_list() == [10, 20]  # s/token divides by the workload's own length
    assert r["latency_per_token"][0] == pytest.approx(r["e2e_latency"][0] / 10)


@pytest.mark.parametrize("spec", ["oracle:tau=0", "ltr:tau=1.5", "po:tau=-0.1", "class:tau=2"])
def test_bad_tau_is_rejected_when_the_spec_is_parsed(spec):
    with pytest.raises(UserError, match=r"tau must be in \(0, 1\]"):
        make_policy(spec)


@pytest.mark.parametrize("spec, value", [("ltr:tau=0_5", "'0_5'"), ("ltr:starve=1_000", "'1_000'"),
                                         ("mlfq:threshold=1_0", "'1_0'"), ("oracle:tau=\u0660.5", "'\u0660.5'")])
def test_spec_numbers_take_no_underscore_separators(spec, value):
    """float("0_5") is 5.0: ``tau=0_5``, a typo for 0.5, ran at another value (or failed on a range check
    naming 5.0); a spec number is plain digits."""
    with pytest.raises(UserError, match=f": {value} is not a plain number"):
        make_policy(spec)
    assert make_policy("ltr:tau=0.5,starve=1000").spec() == "ltr:tau=0.5,seed=0,starve=1000,quantum=10"
    assert make_policy("mlfq:threshold=1e1").spec() == "mlfq:quantum=0.03,threshold=10.0,promote=0"


def test_mlfq_with_a_huge_threshold_builds_without_overflow_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy = make_policy("mlfq:threshold=1e10")
    assert np.isinf(policy._bounds[-1]) and policy._bounds[0] == pytest.approx(0.03)
