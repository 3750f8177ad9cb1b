"""What a command's start imports: ``simulate`` of FCFS imported scipy.stats (0.9 s of a 2.2 s CPU run of 20 requests)
only because the approximate oracle's module named Kendall's tau at its top; it is imported where a tau is computed."""

from __future__ import annotations

import subprocess
import sys


def test_the_policies_and_the_simulator_import_no_scipy_stats():
    code = ("import sys\nimport ltrsched.policies, ltrsched.sim, ltrsched.routers\n"
            "print(sorted(m for m in ('scipy.stats', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_approximate_oracle_still_reaches_its_tau():
    import numpy as np
    from scipy.stats import kendalltau

    from ltrsched.policies.approx_oracle import approx_oracle_scores

    lengths = np.arange(1, 201, dtype=float)
    scores = approx_oracle_scores(lengths, tau=0.5, seed=1)
    assert abs(kendalltau(scores, -lengths).statistic - 0.5) <= 0.01


def test_the_experiments_run_specs_and_keys_import_no_scipy_stats_nor_torch():
    """A cached ``reproduce`` builds every run's spec and key and computes no score; the scoring module, which the
    specs' methods name, imported the approximate predictors' module, and with it scipy.stats, at its top (about 0.9 s
    CPU of a cached ``reproduce table1 --quick``: BENCHMARKS.md, "A command's start")."""
    code = ("import sys\nfrom ltrsched.experiments.commands import _modules\n"
            "from ltrsched.experiments.runner import run_hashes\n"
            "specs = [s for m in _modules().values() for quick in (True, False) for s in m.specs(quick)]\n"
            "assert len(run_hashes(specs)) > 100\n"
            "print(sorted(m for m in ('scipy.stats', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
