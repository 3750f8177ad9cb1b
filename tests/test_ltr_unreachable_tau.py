"""``ltr:tau=X`` on a workload whose tied output lengths put tau X out of reach warns once, naming the reachable
maximum (the tie ceiling of :mod:`ltrsched.workloads.ties`); equal lengths leave no tau at all."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kendalltau

from ltrsched.policies.approx_oracle import approx_oracle_scores, unreachable_tau_warning
from ltrsched.workloads.ties import tau_ceiling


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ltrsched.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def write_trace(path, lengths) -> None:
    rows = "".join(f"{i * 0.1},50,{n}\n" for i, n in enumerate(lengths))
    path.write_text("arrival_time,prompt_tokens,output_tokens\n" + rows)


#: Two in three requests stop at a 1,024-token cap: 44% of the pairs tie, a tau-b ceiling of 0.748.
TIED = [1024 if i % 3 else 100 + i for i in range(60)]


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def assert_warned_once(r, expected: str | None) -> None:
    """``r`` (a run of the CLI) ended well with one warning line holding ``expected``, or none for None."""
    assert r.returncode == 0, r.stderr[-2000:]
    found = warnings_of(r.stderr)
    if expected is None:
        assert found == [], r.stderr
    else:
        assert len(found) == 1 and expected in found[0], r.stderr


def test_above_the_tie_ceiling_the_oracle_ranks_in_the_exact_order():
    """What the warning says: scores without ties reach at most the ceiling, and a tau above it is met only by
    tying equal lengths' scores, with every pair of distinct lengths in order."""
    lengths = np.array(TIED)
    ceiling = tau_ceiling(lengths)
    assert ceiling == pytest.approx(0.748, abs=5e-4)
    exact = -np.log(lengths.astype(float))
    for tau in (0.85, 0.95):
        scores = approx_oracle_scores(lengths, tau)
        assert kendalltau(scores, -lengths).statistic == pytest.approx(tau, abs=0.005)
        distinct = lengths[:, None] != lengths[None, :]
        assert (np.sign(scores[:, None] - scores[None, :]) == np.sign(exact[:, None] - exact[None, :]))[distinct].all()
    below = approx_oracle_scores(lengths, 0.6)
    assert not (np.sign(below[:, None] - below[None, :]) == np.sign(exact[:, None] - exact[None, :]))[
        lengths[:, None] != lengths[None, :]].all()


def test_the_warning_names_the_reachable_maximum_only_when_tau_is_out_of_reach():
    lengths = np.array(TIED)
    line = unreachable_tau_warning(lengths, 0.9, "ltr:tau=0.9")
    assert line.startswith("warning: ltr:tau=0.9: tau 0.9 cannot be reached") and "at most 0.748" in line
    assert "\n" not in line
    for reachable in (0.5, 0.748, 0.75, 0.996, 1.0):  # at or below the ceiling (+ tolerance), or the exact order
        assert unreachable_tau_warning(lengths, reachable, "ltr") is None, reachable
    assert unreachable_tau_warning(np.arange(1, 100), 0.9, "ltr") is None  # no ties: every tau is reachable
    equal = unreachable_tau_warning(np.full(30, 200), 0.62, "ltr:tau=0.62")
    assert "all 30 output lengths are equal (200 tokens)" in equal and "reachable maximum is 0" in equal
    assert unreachable_tau_warning(np.array([7]), 0.5, "ltr") is None  # one request: no pair to order


@pytest.mark.parametrize("lengths, policy, expected", [
    ([200] * 30, "ltr:tau=0.62", "all 30 output lengths are equal (200 tokens)"),
    (TIED, "ltr:tau=0.9", "scores without ties reach at most 0.748"),
    (TIED, "ltr:tau=0.9,starve=200,quantum=10", "scores without ties reach at most 0.748"),
    (TIED, "ltr:tau=0.7", None),
    (TIED, "ltr:tau=1", None),
    (list(range(100, 160)), "ltr:tau=0.9", None),
])
def test_simulate_warns_once(tmp_path, lengths, policy, expected):
    write_trace(tmp_path / "w.csv", lengths)
    r = run_cli("simulate", "-w", str(tmp_path / "w.csv"), "--arrival", "replay", "-P", policy)
    assert_warned_once(r, expected)


@pytest.mark.parametrize("router", ["rank:tau=0.9", "least-work:tau=0.9"])
def test_a_router_at_an_unreachable_tau_warns(tmp_path, router):
    """The routers' approximate oracle (``tau``) ran silently at the exact order too."""
    write_trace(tmp_path / "w.csv", TIED)
    r = run_cli("simulate", "-w", str(tmp_path / "w.csv"), "--arrival", "replay", "-P", "fcfs", "--replicas", "2",
                "--router", router)
    assert r.returncode == 0, r.stderr[-2000:]
    found = warnings_of(r.stderr)
    assert len(found) == 1 and f"router {router}: tau 0.9 cannot be reached" in found[0], r.stderr
    assert "scores without ties reach at most 0.748" in found[0]


def test_a_sweep_warns_once_for_its_runs(tmp_path):
    write_trace(tmp_path / "w.csv", TIED)
    (tmp_path / "s.toml").write_text('workloads = ["w.csv"]\npolicies = ["ltr:tau=0.9", "fcfs"]\nseeds = [0, 1, 2]\n')
    r = run_cli("sweep", "s.toml", "--out", "o", "--jobs", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    found = warnings_of(r.stderr)
    assert len(found) == 1 and "ltr:tau=0.9: tau 0.9 cannot be reached" in found[0], r.stderr


@pytest.mark.parametrize("lengths, policy, expected", [
    ([200] * 30, "po", "po:tau=0.51: tau 0.51 cannot be reached: all 30 output lengths are equal"),
    (TIED, "po:tau=0.9", "po:tau=0.9: tau 0.9 cannot be reached"),
    (TIED, "class:tau=0.9", "class:tau=0.9: tau 0.9 cannot be reached"),
    (TIED, "po", None),
])
def test_po_and_the_classifier_warn_where_their_noisy_lengths_cannot_reach_tau(tmp_path, capsys, lengths, policy,
                                                                                 expected):
    """PO's self-estimates and the classifier's lengths are drawn at ``tau`` as ``ltr:tau=``'s scores are, and ran
    silently at random (equal lengths) or at the exact order (tau above the tie ceiling)."""
    from cli_helpers import run_cli_fast

    write_trace(tmp_path / "w.csv", lengths)
    r = run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "w.csv"), "--arrival", "replay", "-P", policy)
    assert_warned_once(r, expected)
