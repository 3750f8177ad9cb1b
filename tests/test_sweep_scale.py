"""A sweep at scale (helper scaleaudit): work that must grow with the distinct workloads or runs, never with runs
times something else."""

from __future__ import annotations

import itertools

from ltrsched.experiments import runner
from ltrsched.experiments.runspec import RunSpec

#: More seeds than the per-process base-workload cache keeps (16).
SEEDS = range(20)
RATES = (2.0, 8.0)
POLICIES = ("fcfs", "srtf")


def _specs(tmp_path) -> list[RunSpec]:
    path = tmp_path / "w.csv"
    path.write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{4 + i % 3}\n" for i in range(30)))
    # (the order a sweep makes them in: policy, then rate, then seed)
    return [RunSpec(experiment="sweep", setting="s", label=p, workload=str(path), policy=p, profile="a100-llama3-8b",
                    num_requests=8, arrival="poisson", rate=r, seed=s)
            for p, r, s in itertools.product(POLICIES, RATES, SEEDS)]


class _Recording(runner.Backend):
    """Records the order it is handed the pending runs in; runs nothing."""

    def __init__(self):
        self.order: list[RunSpec] = []

    def run(self, pending, out, stats, bar, thrash_ok=False):
        self.order = [spec for spec, _ in pending]


def test_pending_runs_of_one_workload_are_handed_out_together(tmp_path):
    """The runs were sorted by workload and rate but not seed: each worker met a seed's workload once per rate and
    policy, and with more seeds than its cache keeps built it again for each (1,000 runs of 100 seeds: 1,000 builds,
    a sweep of ~1 s a run instead of ~0.1 s)."""
    backend = _Recording()
    runner.run_all(_specs(tmp_path), tmp_path / "out", progress=False, backend=backend)
    keys = [runner.workload_key(s) for s in backend.order]
    assert len(keys) == len(POLICIES) * len(RATES) * len(SEEDS)
    changes = sum(a != b for a, b in zip(keys, keys[1:]))
    assert changes == len(set(keys)) - 1  # each workload's runs in one stretch
    seeds = [s.seed for s in backend.order]
    assert sum(a != b for a, b in zip(seeds, seeds[1:])) == len(SEEDS) - 1  # and each seed's (its base workload)


def test_run_checks_build_each_base_workload_once(tmp_path):
    """check_runs built the workloads in the sweep's order (rate before seed): 40 base workloads for 20 seeds."""
    runner._base_workload.cache_clear()
    runner._arrived_workload.cache_clear()
    runner.check_runs(_specs(tmp_path))
    assert runner._base_workload.cache_info().misses == len(SEEDS)
    assert runner._arrived_workload.cache_info().misses == len(SEEDS) * len(RATES)


def test_a_rerun_that_reuses_every_run_builds_no_workload(tmp_path, capsys):
    """The checks before the runs built every run's workload, finished or not: a rerun of a 1,000-run sweep, all
    reused, took 20 s of CPU, 18.6 s of it building 500 workloads (97 s before the runs were ordered by seed). Runs that are not finished are still checked (the second
    call's new rate)."""
    from cli_helpers import run_cli_fast

    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{4 + i % 3}\n"
                                                                           for i in range(30)))
    toml = 'workloads = ["w.csv"]\npolicies = ["fcfs", "srtf"]\narrival = "poisson"\nnum_requests = 8\nrates = [{}]\n'
    (tmp_path / "s.toml").write_text(toml.format("2.0, 8.0"))
    args = ("sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "-j", "1")
    assert run_cli_fast(capsys, *args).returncode == 0
    for extra, ran, built in (("", 0, 0), (", 16.0", 2, 1)):
        (tmp_path / "s.toml").write_text(toml.format("2.0, 8.0" + extra))
        runner._arrived_workload.cache_clear()
        r = run_cli_fast(capsys, *args)
        assert r.returncode == 0, r.stderr
        assert f"{ran} runs simulated, {4} reused" in r.stdout
        assert runner._arrived_workload.cache_info().misses == built


def test_the_duration_note_builds_each_base_workload_once(tmp_path, capsys):
    """A sweep with a duration counts each workload's requests kept for its note, on every invocation (a rerun that
    reuses every run too); it built them in the sweep's order (rate before seed), each seed's base workload once per
    rate: 40 for 20 seeds."""
    import dataclasses

    from ltrsched.experiments.commands import _note_duration_cut

    specs = [dataclasses.replace(s, duration=0.3) for s in _specs(tmp_path)]
    runner._base_workload.cache_clear()
    _note_duration_cut(specs, tmp_path / "s.toml")
    assert "duration = 0.3 in" in capsys.readouterr().err  # (the note: some of the 8 requests arrive later)
    assert runner._base_workload.cache_info().misses == len(SEEDS)
