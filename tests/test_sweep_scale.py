"""A sweep at scale (helper scaleaudit): work that must grow with the distinct workloads or runs, never with runs
times something else."""

from __future__ import annotations

import dataclasses
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


def _sweep_file(tmp_path, policies) -> tuple[str, ...]:
    """A sweep of ``policies`` on a 30-request CSV workload (8 requests a run, -j 1); its command's arguments."""
    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{4 + i % 3}\n"
                                                                           for i in range(30)))
    listed = ", ".join(f'"{p}"' for p in policies)
    (tmp_path / "s.toml").write_text(f'workloads = ["w.csv"]\npolicies = [{listed}]\nnum_requests = 8\n')
    return ("sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "-j", "1")


def test_a_sweep_hashes_each_run_once(tmp_path, capsys, monkeypatch):
    """Each run's hash was computed 5 times in a sweep (the checks, the duplicate runs, the cache check, the run's check
    that its inputs did not change, sweep.csv), 4 times in a rerun: a 10,000-run sweep spent seconds hashing before its
    first run. Now once, and once more in a run computed (its inputs checked after it read them)."""
    from cli_helpers import run_cli_fast

    args = _sweep_file(tmp_path, ["mlfq:quantum=0.01", "mlfq:quantum=0.02", "fcfs"])
    calls = []
    real = RunSpec.run_hash
    monkeypatch.setattr(RunSpec, "run_hash", lambda self: calls.append(self) or real(self))
    for ran, hashes in ((3, 2 * 3), (0, 3)):
        calls.clear()
        r = run_cli_fast(capsys, *args)
        assert r.returncode == 0, r.stderr
        assert f"{ran} runs simulated" in r.stdout
        assert len(calls) == hashes


def test_the_checks_before_the_runs_check_a_setup_once_per_kind_of_policy(tmp_path, monkeypatch):
    """check_runs checked the setup (the simulator's setup_run: columns, context, KV cache) of each distinct policy
    string: 10,000 `ltr:tau=...` policies, 10,000 checks of the same thing. A policy's class, name, needs and extra
    output tokens are all those checks read of it; a policy that differs in them is still checked."""
    calls = []
    real = runner._check_setup
    monkeypatch.setattr(runner, "_check_setup", lambda spec, *a: calls.append(spec.policy) or real(spec, *a))
    base = _specs(tmp_path)[0]
    policies = [f"mlfq:quantum={q / 100}" for q in range(1, 41)] + ["fcfs", "mlfq:quantum=0.5,starve=100"]
    runner.check_runs([dataclasses.replace(base, policy=p, label=p) for p in policies])
    assert calls == ["mlfq:quantum=0.01", "fcfs", "mlfq:quantum=0.5,starve=100"]


def test_a_policy_of_one_class_whose_needs_differ_is_checked_too(tmp_path):
    """``ltr`` needs a score column, ``ltr:tau=0.5`` does not (its needs are its instance's): checked apart, and
    refused as before."""
    from ltrsched.errors import UserError

    base = _specs(tmp_path)[0]
    specs = [dataclasses.replace(base, policy=p) for p in ("ltr:tau=0.5", "ltr:tau=0.6", "ltr")]
    try:
        runner.check_runs(specs)
    except UserError as exc:
        assert "policy 'ltr' needs a 'score' column" in str(exc), exc
    else:
        raise AssertionError("an LTR policy without a score column was not refused")


def test_a_sweep_whose_checks_take_long_says_so(tmp_path, capsys, monkeypatch):
    """A sweep of 10,000 runs checked them for 30-50 s before its first run (a loaded 2-core machine) and printed
    nothing; past progress.LATE_LINE_S seconds of that it prints one line, as its other progress lines."""
    from cli_helpers import run_cli_fast

    from ltrsched import progress

    args = _sweep_file(tmp_path, ["fcfs", "srtf"])
    monkeypatch.setenv(progress.ENV, "10")
    monkeypatch.setattr(progress, "LATE_LINE_S", 0.0)
    r = run_cli_fast(capsys, *args)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines().count("sweep: checking 2 runs ...") == 1, r.stderr
    monkeypatch.setattr(progress, "LATE_LINE_S", 60.0)  # (a sweep checked in less: no line)
    r = run_cli_fast(capsys, *args)
    assert "checking" not in r.stderr, r.stderr


def test_a_late_line_is_never_printed_after_its_block(capsys, monkeypatch):
    import time

    from ltrsched import progress

    monkeypatch.setenv(progress.ENV, "10")
    with progress.LateLine("late", after_s=0.05) as late:
        pass
    time.sleep(0.1)
    assert not late.printed and capsys.readouterr().err == ""
    monkeypatch.setenv(progress.ENV, "0")  # (no progress lines)
    with progress.LateLine("late", after_s=0.0) as late:
        time.sleep(0.05)
    assert not late.printed and capsys.readouterr().err == ""


def test_runs_not_under_out_are_not_looked_for_one_by_one(tmp_path, monkeypatch):
    """A fresh sweep looked for each run's summary.json twice before its first run (the checks, then run_all): 20,000
    failed opens for 10,000 runs. ``runs/`` is listed once; a run not there is not run (and one there still read)."""
    calls = []
    real = runner.why_not_done
    monkeypatch.setattr(runner, "why_not_done", lambda out, spec, h=None: calls.append(h) or real(out, spec, h))
    specs = _specs(tmp_path)[:3]
    backend = _Recording()
    runner.check_runs(specs, tmp_path / "out")
    runner.run_all(specs, tmp_path / "out", progress=False, backend=backend)
    assert calls == [] and len(backend.order) == 3
    (tmp_path / "out" / "runs" / specs[0].run_hash()).mkdir(parents=True)  # (a run's directory, no summary.json)
    runner.run_all(specs, tmp_path / "out", progress=False, backend=backend)
    assert calls == [specs[0].run_hash()] and len(backend.order) == 3


def test_the_default_jobs_are_the_cpus_this_process_may_use(monkeypatch):
    """``--jobs``'s default was ``os.cpu_count()``: under ``taskset -c 0`` on 2 cores, 2 workers shared 1 CPU."""
    import os

    from ltrsched.experiments.runner import ProcessBackend

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert ProcessBackend().jobs == 1
    assert ProcessBackend(jobs=5).jobs == 5
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert ProcessBackend().jobs == 3
