"""What an adversarial audit of the simulation side found wrong, each now a correct run or a one-line error (exit
code 2): runs on other data, hand-written files and odd option values that gave a traceback or a silently wrong
result. Every case goes through the in-process CLI (no interpreter per case)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError
from ltrsched.policies.base import Policy
from ltrsched.policies.starvation import StarvationPrevention
from ltrsched.sim import SimConfig, simulate
from ltrsched.workloads.schema import Workload
from test_cli_simulate import assert_one_line_error


def _scored(tmp_path, scores) -> str:
    """A parquet workload of three requests holding ``scores`` (None: a row without one); request 0 is the shortest."""
    path = tmp_path / "scored.parquet"
    pl.DataFrame({"request_id": [0, 1, 2], "prompt_tokens": [10, 20, 30], "output_tokens": [5, 60, 70],
                  "score": pl.Series(scores, dtype=pl.Float64)}).write_parquet(path)
    return str(path)


@pytest.mark.parametrize("policy", ["ltr", "ltr:starve=1000,quantum=1"])
@pytest.mark.parametrize("missing", [None, float("nan")])
def test_requests_without_a_score_are_ranked_last_with_a_warning(tmp_path, capsys, policy, missing):
    """LTR orders by -score: a request whose score was null or NaN sorted after every scored one and ran last, without
    a word, once any row had a score. It still does (a contract: missing predictor values are allowed), but says so."""
    out = tmp_path / "run"
    r = run_cli_fast(capsys, "simulate", "-w", _scored(tmp_path, [missing, 1.0, 2.0]), "-P", policy,
                     "--max-num-seqs", "1", "-o", out)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(
        "warning: policy 'ltr': 1 of 3 request(s) have no score (first: request 0); they rank after every scored "
        "request"), r.stderr
    finish = pl.read_parquet(out / "requests.parquet").sort("request_id")["finish_time"].to_list()
    assert finish[0] > max(finish[1:])  # the shortest, unscored, ran last: as the warning says


@pytest.mark.parametrize("policy", ["ltr", "ltr:starve=1000,quantum=1"])
def test_a_workload_whose_requests_all_have_one_score_warns(tmp_path, capsys, policy):
    """A score column of one value (a predictor that gives every prompt the same score) ran LTR as first come first
    served without a word."""
    r = run_cli_fast(capsys, "simulate", "-w", _scored(tmp_path, [0.5, 0.5, 0.5]), "-P", policy)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert r.returncode == 0 and len(warnings) == 1 and warnings[0].startswith(
        "warning: policy 'ltr': all 3 scored request(s) have the same score (0.5); ranked by it they run first come "
        "first served"), r.stderr


def test_a_fully_scored_workload_runs_under_ltr_without_a_warning(tmp_path, capsys):
    r = run_cli_fast(capsys, "simulate", "-w", _scored(tmp_path, [3.0, 1.0, 2.0]), "-P", "ltr")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_mlfq_with_starvation_prevention_keeps_its_own_quantum_in_the_result_files(tmp_path, capsys):
    """The wrapper described its quantum [steps] under "quantum", over MLFQ's own quantum [s]: summary.json said
    quantum=3 for mlfq:quantum=0.05,starve=5,starve_quantum=3 (the spec, starve_quantum, was right)."""
    out = tmp_path / "run"
    r = run_cli_fast(capsys, "simulate", "-n", "5", "-P", "mlfq:quantum=0.05,starve=5,starve_quantum=3", "-o", out)
    assert r.returncode == 0, r.stderr
    params = json.loads((out / "summary.json").read_text())["meta"]["policy_params"]
    assert params == {"policy": "mlfq", "quantum": 0.05, "threshold": 2.0, "promote": 0, "starve": 5,
                      "starve_quantum": 3}


@pytest.mark.parametrize("spec, message", [
    ("mlfq:starve=5,starve_quantum=0", "policy 'mlfq': starve and starve_quantum must be >= 1, got starve=5, "
                                       "starve_quantum=0"),  # (named MLFQ's own quantum)
    ("mlfq:starve=5,starve_quantum=1.5", "policy 'mlfq': starve/starve_quantum must be integers (steps)"),
    ("fcfs:starve=1,quantum=0", "policy 'fcfs': starve and quantum must be >= 1, got starve=1, quantum=0"),
])
def test_a_bad_starvation_quantum_is_named_as_the_spec_names_it(capsys, spec, message):
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-n", "3", "-P", spec), message)


def test_the_thrash_warning_for_mlfq_names_the_starvation_quantum(capsys):
    """For MLFQ, whose own quantum [s] is "quantum", the remedy said "e.g. starve=1000,quantum=100": following it set
    MLFQ's quantum to 100 s and left the starvation quantum at 5."""
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "30", "--num-gpu-blocks", "120", "--preemption",
                     "recompute", "-P", "mlfq:starve=20,starve_quantum=5")
    assert r.returncode == 0, r.stderr
    warning = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "(starve=20,starve_quantum=5) promotes" in warning[0], r.stderr
    assert "(e.g. starve=1000,starve_quantum=100)" in warning[0] and "quantum=100)" not in warning[0].replace(
        "starve_quantum=100)", "")


@pytest.mark.parametrize("policy, warns", [("fcfs:starve=20,quantum=5", True), ("fcfs:starve=1000,quantum=100", False)])
def test_reproduce_warns_when_a_run_of_its_thrashes(tmp_path, capsys, monkeypatch, policy, warns):
    """simulate and sweep warned of a starvation-prevention thrash, reproduce said nothing. Its paper settings never
    thrash (0 preemptions in fig4-5), so a thrash there is news: its starvation rows would be wrong. One small run
    stands in for the experiment's (the paper's take a minute); it thrashes as test_starvation_thrash's does."""
    from types import SimpleNamespace

    from ltrsched.experiments import commands
    from ltrsched.experiments.runspec import RunSpec
    from ltrsched.experiments.tables import Section
    from test_starvation_thrash import small_profile

    spec = RunSpec(experiment="fig4-5", setting="tight", label="FCFS-SP", workload="lmsys-like", policy=policy,
                   profile=small_profile(tmp_path / "small.json"), num_requests=30, preemption="recompute")
    experiment = SimpleNamespace(specs=lambda quick: [spec], build=lambda out, quick: Section("fig4-5", "Tight"))
    monkeypatch.setattr(commands, "_modules", lambda: {"fig4-5": experiment})
    r = run_cli_fast(capsys, "reproduce", "fig4-5", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    if warns:
        assert len(warnings) == 1 and warnings[0].startswith(f"warning: run {policy} on lmsys-like") \
            and "starvation prevention (starve=20,quantum=5)" in warnings[0], r.stderr
    else:
        assert warnings == [], r.stderr


# ------------------------------------------------------------------ plugin orders edited behind the read-only flag
class _KeptOrder(Policy):
    """Least run time first, in one array kept from step to step: edited in place (writeable again for it), then
    read-only. ``repeat``: the edit also writes position 1 over position 0 (no permutation)."""

    def __init__(self, repeat: bool = False):
        self.repeat = repeat
        self.kept = None

    def rank(self, view):
        n = len(view)
        if self.kept is None or len(self.kept) != n:
            self.kept = np.arange(n)
        self.kept.flags.writeable = True
        self.kept[:] = view.order_by(view.run_time)
        if self.repeat and n > 1 and view.step > 0:
            self.kept[0] = self.kept[1]
        self.kept.flags.writeable = False
        return self.kept


class _FreshOrder(Policy):
    """The same order, a fresh array each step."""

    def rank(self, view):
        return view.order_by(view.run_time)


class _EditedOrderBy(Policy):
    """order_by's read-only array, set writeable, given a repeated position and set read-only again."""

    def rank(self, view):
        order = view.order_by(view.prompt_tokens)
        if len(order) > 1:
            order.flags.writeable = True
            order[0] = order[1]
            order.flags.writeable = False
        return order


def _workload(n: int = 60, seed: int = 3) -> Workload:
    rng = np.random.default_rng(seed)
    return Workload(pl.DataFrame({"request_id": np.arange(n), "prompt_tokens": rng.integers(5, 300, n),
                                  "output_tokens": rng.integers(5, 400, n), "arrival_time": np.zeros(n)}), "w")


@pytest.mark.parametrize("policy, step", [(_KeptOrder(repeat=True), 1), (_EditedOrderBy(), 0),
                                          (StarvationPrevention(_KeptOrder(repeat=True), 3, 2), 1)])
def test_a_plugin_order_edited_behind_the_read_only_flag_is_still_checked(policy, step):
    """The host took a read-only array that owns its memory, returned again, or order_by's own, as a permutation
    without looking: its owner had set it writeable, repeated a position and set it read-only, and the run served a
    request twice in a step, without a word."""
    with pytest.raises(UserError, match=f"returned an invalid order at step {step}: 1 position"):
        simulate(_workload(), policy, SimConfig(max_num_seqs=4))


def test_starvation_prevention_follows_a_plugin_order_edited_in_place():
    """The wrapper kept its promoted-first order while the inner order was the same read-only array: a plugin that
    edited that array in place (a valid order) was followed late, and the run came out another (2,043 steps, not 2,015)."""
    kept = simulate(_workload(40, seed=4), StarvationPrevention(_KeptOrder(), 20, 100), SimConfig(max_num_seqs=4))
    fresh = simulate(_workload(40, seed=4), StarvationPrevention(_FreshOrder(), 20, 100), SimConfig(max_num_seqs=4))
    assert kept.summary["steps"] == fresh.summary["steps"]
    assert kept.requests["finish_time"].to_list() == fresh.requests["finish_time"].to_list()


def _trace(tmp_path, n: int = 20) -> str:
    """A .csv trace of ``n`` requests one second apart (1 req/s)."""
    path = tmp_path / "t.csv"
    path.write_text("arrival_time,prompt_tokens,output_tokens\n" + "".join(f"{i},{10 + i},{5 + i}\n" for i in range(n)))
    return str(path)


def test_replaying_a_sample_of_a_trace_says_it_is_thinned(tmp_path, capsys):
    """-n draws its requests at random from across the file: replayed, a 2,000-request trace at 10 req/s with -n 100
    served 100 requests over its whole span at 0.5 req/s, a load 20x lighter than the trace's, without a word."""
    r = run_cli_fast(capsys, "simulate", "-w", _trace(tmp_path), "--arrival", "replay", "-n", "5", "--seed", "1")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith(
        "note: --num-requests 5 drew 5 of t's 20 requests at random from across its trace, so replay arrivals "
        "served them thinned, at ") and "(the trace: 1 req/s); add --rate R" in notes[0], r.stderr


@pytest.mark.parametrize("args", [["-n", "20"], ["-n", "5", "--rate", "1"], ["--duration", "5"]])
def test_replaying_a_whole_trace_or_at_a_rate_says_nothing_of_thinning(tmp_path, capsys, args):
    r = run_cli_fast(capsys, "simulate", "-w", _trace(tmp_path), "--arrival", "replay", *args)
    assert r.returncode == 0 and "thinned" not in r.stderr, r.stderr


def test_a_sweep_replaying_a_sample_of_a_trace_says_it_is_thinned(tmp_path, capsys):
    _trace(tmp_path)
    (tmp_path / "s.toml").write_text('workloads = ["t.csv"]\npolicies = ["fcfs"]\narrival = "replay"\n'
                                     "num_requests = 5\nseeds = [1]\n")
    r = run_cli_fast(capsys, "sweep", tmp_path / "s.toml", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith(f"note: num_requests = 5 in {tmp_path / 's.toml'} drew 5 of t's 20 "
                                                   "requests") and "set rates = [R]" in notes[0], r.stderr


class _Declared(Policy):
    """FCFS with class attributes set per test."""

    def rank(self, view):
        return view.order_by()


@pytest.mark.parametrize("attrs, message", [
    ({"needs": "score"}, "policy 'declared' declares needs = 'score'; it must be a tuple of column names"),
    ({"needs": ("score", 3)}, "declares needs = ('score', 3)"),
    ({"extra_output_tokens": -5}, "declares extra_output_tokens = -5; it must be a whole number of tokens >= 0"),
    ({"extra_output_tokens": 2.5}, "declares extra_output_tokens = 2.5"),
    ({"extra_output_tokens": True}, "declares extra_output_tokens = True"),
])
def test_a_policy_declaring_needs_or_extra_tokens_of_the_wrong_kind_is_refused(attrs, message):
    """needs = "score" asked for columns 's', 'c', ... (the policy could never run, and the error named 's');
    extra_output_tokens = -5 served every request 5 tokens short, and one of 5 or fewer never finished (a
    RuntimeError traceback: "simulation ended with unfinished requests")."""
    policy = type("Declared", (_Declared,), {"name": "declared", **attrs})()
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        simulate(_workload(5), policy, SimConfig())
