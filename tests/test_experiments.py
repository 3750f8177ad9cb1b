"""reproduce / sweep: reference numbers, a quick reproduction with the paper's orderings, run caching."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from ltrsched.experiments.methods import make_spec
from ltrsched.experiments.reference import load_reference, paper_value


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ltrsched.cli", *args], capture_output=True, text=True, timeout=600)


def test_reference_numbers_exact():
    ref = load_reference()
    assert "arXiv" in ref["source"]["arxiv"]
    assert paper_value("table1", "8B ShareGPT", "ltr", "mean") == 0.56
    assert paper_value("table1", "70B LMSYS", "fcfs", "p90") == 5.54
    assert paper_value("table2", "8B LMSYS", "fcfs", "time_to_1000_s") == 197.38
    assert paper_value("table3", "ShareGPT", "class-100", "accuracy") == 0.281
    assert paper_value("table4", "70B ShareGPT", "overhead_pct") == 1.69
    assert paper_value("kendall_tau", "ltr", "8B ShareGPT") == 0.52
    assert paper_value("table1", "nope") is None


def test_run_hash_ignores_labels_only():
    a = make_spec("table1", "8B LMSYS", "fcfs", num_requests=100)
    b = make_spec("table3", "8B LMSYS", "fcfs", num_requests=100)
    c = make_spec("table1", "8B LMSYS", "fcfs", num_requests=101)
    assert a.run_hash() == b.run_hash() != c.run_hash()


def test_an_integer_rate_is_the_same_run_as_its_float():
    """A sweep's ``rates = [4]`` and ``[4.0]`` (or an integer duration, cv, stop time) are one run, not two."""
    from ltrsched.experiments.runspec import RunSpec

    base = dict(experiment="sweep", setting="s", label="l", workload="lmsys-like", policy="fcfs",
                profile="a100-llama3-8b", arrival="gamma")
    as_int = RunSpec(**base, rate=4, duration=30, cv=2, stop_time=100)
    as_float = RunSpec(**base, rate=4.0, duration=30.0, cv=2.0, stop_time=100.0)
    assert as_int.run_hash() == as_float.run_hash()
    assert as_int.run_hash() != RunSpec(**base, rate=4.5, duration=30, cv=2, stop_time=100).run_hash()


@pytest.fixture(scope="module")
def quick_table1(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    first = run_cli("reproduce", "table1", "--quick", "--out", str(out), "--jobs", "2")
    return out, first


def test_quick_reproduction_orderings_and_files(quick_table1):
    out, r = quick_table1
    assert r.returncode == 0, r.stderr[-2000:]
    table = pl.read_csv(out / "tables" / "table1.csv")
    for setting in ("8B ShareGPT", "8B LMSYS"):
        sub = table.filter(pl.col("setting") == setting)
        ours = dict(zip(sub["policy"], sub["ours_mean"]))
        ours.pop("LTR at the paper's tau", None)  # an extra row, not one of the paper's methods
        assert set(ours) == {"FCFS", "MLFQ", "PO", "Classification", "LTR"}
        assert min(ours, key=ours.get) == "LTR"  # the paper's ordering: LTR best
        assert ours["LTR"] < 0.8 * ours["FCFS"]
    for name in ("tables/table1.md", "tables/table1.csv", "tables/table1_ratios.csv", "figures/table1.png",
                 "REPRODUCTION.md"):
        assert (out / name).stat().st_size > 200, name
    report = (out / "REPRODUCTION.md").read_text()
    assert "LTR/FCFS mean" in report and "Known reasons" in report


def test_rerun_skips_finished_runs(quick_table1):
    out, _ = quick_table1
    r = run_cli("reproduce", "table1", "--quick", "--out", str(out))
    assert r.returncode == 0 and "0 runs simulated, 11 reused" in r.stdout


def test_sweep_file(tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "ltr:tau=0.8"]\nnum_requests = 150\n'
                   'arrival = "poisson"\nrates = [4.0, 8.0]\n')
    r = run_cli("sweep", str(cfg), "--out", str(tmp_path / "o"), "--jobs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_csv(tmp_path / "o" / "sweep.csv")
    assert df.height == 4 and set(df["policy"]) == {"fcfs", "ltr:tau=0.8"}
    bad = tmp_path / "bad.toml"
    bad.write_text('policies = ["nope"]\n')
    r = run_cli("sweep", str(bad))
    assert r.returncode == 2 and "unknown policy" in r.stderr


_SWEEP_BASE = 'policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nnum_requests = 20\n'


@pytest.mark.parametrize("name, content, message", [
    ("s.toml", 'policies = "fcfs"\n', "'policies' must be a non-empty list, each item text; got 'fcfs'"),
    ("s.toml", "policies = [1]\n", "'policies' must be a non-empty list"),
    ("s.toml", _SWEEP_BASE + 'arrival = "poisson"\nrates = 4.0\n', "'rates' must be a non-empty list"),
    ("s.toml", _SWEEP_BASE + 'arrival = "poisson"\n', "arrival 'poisson' needs 'rates'"),
    ("s.toml", 'policies = ["fcfs"]\nnum_requests = "ten"\n', "'num_requests' must be an integer, got 'ten'"),
    ("s.toml", _SWEEP_BASE + "seeds = [-1]\n", "'seeds' must be >= 0"),
    ("s.toml", _SWEEP_BASE + "max_num_batched_tokens = 0\n", "'max_num_batched_tokens' must be >= 1"),
    ("s.toml", _SWEEP_BASE + 'preemption = "kill"\n', "'preemption' must be swap or recompute"),
    ("s.toml", _SWEEP_BASE + "block_size = 0\n", "'block_size' must be >= 1"),
    ("s.toml", _SWEEP_BASE + "block_size = 12.5\n", "'block_size' must be an integer"),
    ("s.toml", _SWEEP_BASE + 'scoring = "approx-po:tau=2"\n', "tau must be in (0, 1], got 2.0"),
    ("s.toml", _SWEEP_BASE + 'profiles = ["a100-llama3-8b", "nosuch"]\n', "unknown profile 'nosuch'"),
    ("s.yaml", "policies: [fcfs]\n", "unknown sweep file format '.yaml'"),
    ("s.toml", b"\x8e\xff\x00", "cannot parse ('utf-8' codec can't decode"),
])
def test_sweep_file_errors_are_one_line_before_any_run(tmp_path, name, content, message):
    from test_cli_simulate import assert_one_line_error

    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_one_line_error(run_cli("sweep", str(path), "--out", str(tmp_path / "o"), "--jobs", "1"), message)
    assert not (tmp_path / "o").exists()


def test_sweep_block_size_follows_the_measured_profile(tmp_path):
    """A sweep models the KV blocks of the engine a measured profile came from (128 tokens for cpu-*), 16
    for the others, unless the file sets block_size; the cache key follows the block size actually used."""
    from ltrsched.experiments.runspec import RunSpec

    def sizes(content, out):
        path = tmp_path / f"{out}.toml"
        path.write_text(_SWEEP_BASE + 'profiles = ["cpu-smollm2", "a100-llama3-8b"]\n' + content)
        r = run_cli("sweep", str(path), "--out", str(tmp_path / out), "--jobs", "1")
        assert r.returncode == 0, r.stderr[-2000:]
        found = {}
        for f in (tmp_path / out).rglob("summary.json"):
            meta = json.loads(f.read_text())["meta"]
            found[meta["run_spec"]["profile"]] = meta["config"]["block_size"]
        return found

    assert sizes("", "default") == {"cpu-smollm2": 128, "a100-llama3-8b": 16}
    assert sizes("block_size = 32\n", "b32") == {"cpu-smollm2": 32, "a100-llama3-8b": 32}
    base = dict(experiment="sweep", setting="", label="", workload="lmsys-like", policy="fcfs")
    gpu, cpu = RunSpec(**base, profile="a100-llama3-8b"), RunSpec(**base, profile="cpu-smollm2")
    # runs cached before the field existed keep their hash; the size a run uses decides its key
    assert gpu.run_hash() == RunSpec(**base, profile="a100-llama3-8b", block_size=16).run_hash()
    assert "block_size" not in gpu.key()
    assert cpu.run_hash() == RunSpec(**base, profile="cpu-smollm2", block_size=128).run_hash()
    assert cpu.run_hash() != RunSpec(**base, profile="cpu-smollm2", block_size=16).run_hash()


def test_sweep_jobs_must_be_positive(tmp_path):
    from test_cli_simulate import assert_one_line_error

    path = tmp_path / "s.toml"
    path.write_text(_SWEEP_BASE)
    assert_one_line_error(run_cli("sweep", str(path), "--out", str(tmp_path / "o"), "--jobs", "0"), "--jobs must be >= 1")


def test_full_reproduction_never_asks_more_sharegpt_prompts_than_the_eval_split_holds():
    from ltrsched.experiments.commands import _modules
    from ltrsched.workloads.selection import EVAL_SIZE

    specs = [s for m in _modules().values() for s in m.specs(False)]
    assert specs
    for s in specs:
        if s.workload == "sharegpt":
            assert s.num_requests is None or s.num_requests <= EVAL_SIZE, (s.experiment, s.rate, s.num_requests)
