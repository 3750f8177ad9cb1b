"""A sweep's ``max_model_len`` key and capacity's ``--max-model-len``: a long-tail workload (outputs up to 32k
tokens) runs in a sweep without a copied profile; the key is checked as ``simulate --max-model-len`` is, and a
run's cache key covers it only when it is set (runs cached before the key existed keep their hashes)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import run_cli_fast
from ltrsched.experiments.runspec import RunSpec
from test_cli_simulate import assert_one_line_error


def write_long_tail(path, n: int = 30) -> None:
    """A length-only trace whose every tenth request generates 32,000 tokens (beyond the 8,192 of the
    Llama-3 profiles), the others a few hundred."""
    rows = "".join(f"{i * 0.1},{100 + i},{32000 if i % 10 == 0 else 200 + i}\n" for i in range(n))
    path.write_text("arrival_time,prompt_tokens,output_tokens\n" + rows)


def test_a_long_tail_sweep_runs_with_max_model_len_and_is_told_the_key_without_it(capsys, tmp_path):
    write_long_tail(tmp_path / "longtail.csv")
    base = 'workloads = ["longtail.csv"]\npolicies = ["fcfs", "srtf"]\n'
    (tmp_path / "without.toml").write_text(base)
    r = run_cli_fast(capsys, "sweep", "without.toml", "--out", "o1", "--jobs", "1", cwd=tmp_path)
    assert_one_line_error(r, "3 request(s) exceed the profile's context limit of 8192 tokens")
    assert "set max_model_len (tokens) in the sweep file" in r.stderr and "copy" not in r.stderr
    assert not (tmp_path / "o1" / "sweep.csv").exists()

    (tmp_path / "with.toml").write_text(base + "max_model_len = 32768\n")
    r = run_cli_fast(capsys, "sweep", "with.toml", "--out", "o2", "--jobs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_csv(tmp_path / "o2" / "sweep.csv")
    assert df.height == 2 and df["num_finished"].to_list() == [30, 30]
    assert df["mean_output_tokens"][0] == pytest.approx((3 * 32000 + sum(200 + i for i in range(30) if i % 10)) / 30)
    for f in (tmp_path / "o2").rglob("summary.json"):
        meta = json.loads(f.read_text())["meta"]
        assert meta["config"]["max_model_len"] == 32768 and meta["run_spec"]["max_model_len"] == 32768


@pytest.mark.parametrize("name, content, message", [
    # simulate --max-model-len 0 says "--max-model-len must be positive, got 0": the same check, in the file's key
    ("s.toml", 'policies = ["fcfs"]\nmax_model_len = 0\n', "s.toml: 'max_model_len' must be positive, got 0"),
    ("s.toml", 'policies = ["fcfs"]\nmax_model_len = -4096\n', "'max_model_len' must be positive, got -4096"),
    ("s.toml", 'policies = ["fcfs"]\nmax_model_len = "32k"\n', "'max_model_len' must be an integer, got '32k'"),
    ("s.toml", 'policies = ["fcfs"]\nmax_model_len = 32768.0\n', "'max_model_len' must be an integer, got 32768.0"),
    ("s.json", '{"policies": ["fcfs"], "max_model_len": true}', "'max_model_len' must be an integer, got True"),
])
def test_a_bad_max_model_len_is_one_line_before_any_run(capsys, tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(tmp_path / name), "--out", str(tmp_path / "o"), "--jobs",
                                       "1"),
                          message)
    assert not (tmp_path / "o").exists()
    simulate = run_cli_fast(capsys, "simulate", "-n", "5", "--max-model-len", "0")
    assert_one_line_error(simulate, "--max-model-len must be positive, got 0")


def test_the_run_key_has_max_model_len_only_when_set():
    """Unset, the key is what it was before the field existed (cached runs are reused); set, it is a new run."""
    base = RunSpec(experiment="sweep", setting="", label="", workload="lmsys-like", policy="fcfs",
                   profile="a100-llama3-8b", num_requests=20)
    assert "max_model_len" not in base.key()
    longer = RunSpec(**{**base.to_dict(), "max_model_len": 32768})
    assert longer.key()["max_model_len"] == 32768
    assert len({base.run_hash(), longer.run_hash(), RunSpec(**{**base.to_dict(), "max_model_len": 16384}).run_hash()}) == 3
    assert RunSpec.from_dict(longer.to_dict()).run_hash() == longer.run_hash()


def test_the_profiles_own_max_model_len_given_explicitly_is_the_same_run():
    """8,192 is the Llama-3 profiles' own context: set or unset, one simulation, one cache key (it was two); on a
    profile whose context is another (cpu-llama-tiny: 4,096), 8,192 is a different run."""
    base = RunSpec(experiment="sweep", setting="", label="", workload="lmsys-like", policy="fcfs",
                   profile="a100-llama3-8b", num_requests=20)
    same = RunSpec(**{**base.to_dict(), "max_model_len": 8192})
    assert same.profile_max_model_len() == 8192
    assert same.key() == base.key() and same.run_hash() == base.run_hash()
    tiny = RunSpec(**{**base.to_dict(), "profile": "cpu-llama-tiny"})
    assert tiny.profile_max_model_len() == 4096
    assert RunSpec(**{**tiny.to_dict(), "max_model_len": 4096}).run_hash() == tiny.run_hash()
    longer = RunSpec(**{**tiny.to_dict(), "max_model_len": 8192})
    assert longer.key()["max_model_len"] == 8192 and longer.run_hash() != tiny.run_hash()


def test_the_key_of_a_run_that_sets_no_max_model_len_is_unchanged():
    """The golden key of a run without max_model_len: what runs cached before the field existed are filed under."""
    from ltrsched import __version__

    base = RunSpec(experiment="sweep", setting="", label="", workload="lmsys-like", policy="fcfs",
                   profile="a100-llama3-8b", num_requests=20)
    assert base.key() == {
        "workload": "lmsys-like", "policy": "fcfs", "profile": "a100-llama3-8b", "num_requests": 20, "arrival": "burst",
        "rate": None, "duration": None, "cv": 1.0, "scoring": "none", "seed": 0, "max_num_batched_tokens": 768,
        "max_num_seqs": 256, "preemption": "swap", "chunked_prefill": True, "record_steps": False, "stop_time": None,
        "cache_version": 4, "inputs": {"ltrsched": __version__, "workload": {"builtin": "lmsys-like"},
                                       "profile": {"builtin": "a100-llama3-8b"}, "policy": None, "scoring": None}}


def test_capacity_takes_max_model_len_like_simulate(capsys, tmp_path):
    write_long_tail(tmp_path / "longtail.csv", n=40)
    args = ["capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "-w", "longtail.csv", "-n", "40", "--seeds", "1",
            "--max-num-seqs", "4", "--tolerance", "0.5", "--jobs", "1"]
    r = run_cli_fast(capsys, *args, "--out", "o1", cwd=tmp_path)
    assert_one_line_error(r, "exceed the profile's context limit of 8192 tokens")
    assert "raise --max-model-len" in r.stderr
    assert_one_line_error(run_cli_fast(capsys, *args, "--out", "o0", "--max-model-len", "0", cwd=tmp_path),
                          "--max-model-len must be positive, got 0")
    assert not (tmp_path / "o0").exists()
    r = run_cli_fast(capsys, *args, "--out", "o2", "--max-model-len", "32768", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    table = pl.read_csv(tmp_path / "o2" / "capacity.csv")
    assert table.height == 1 and table["status"][0] == "found" and table["capacity_rps"][0] > 0
