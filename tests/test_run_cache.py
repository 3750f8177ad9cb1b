"""Caches keyed by content (issue 12, section 2): an edited workload, profile or plugin file is never
answered from a cache filled by its old bytes; nor is one ShareGPT file by another's parse."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import polars as pl
import pytest

from ltrsched.experiments.runspec import RunSpec


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "ltrsched.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def counts(stdout: str) -> tuple[int, int]:
    """(runs simulated, runs reused) from a sweep's last line."""
    m = re.search(r"(\d+) runs simulated, (\d+) reused", stdout)
    assert m, stdout[-2000:]
    return int(m.group(1)), int(m.group(2))


def write_csv(path, prompt_tokens: int, n: int = 40) -> None:
    rows = "".join(f"{i * 0.05},{prompt_tokens},100\n" for i in range(n))
    path.write_text("arrival_time,prompt_tokens,output_tokens\n" + rows)


def sweep(tmp_path, toml: str, env=None):
    cfg = tmp_path / "s.toml"
    cfg.write_text(toml)
    r = run_cli("sweep", str(cfg), "--out", str(tmp_path / "out"), "--jobs", "1", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return counts(r.stdout), pl.read_csv(tmp_path / "out" / "sweep.csv")


def test_sweep_recomputes_after_the_workload_csv_is_edited(tmp_path):
    """The issue's scenario: 50 -> 2,000-token prompts used to be answered with the old numbers."""
    write_csv(tmp_path / "w.csv", 50)
    toml = 'workloads = ["w.csv"]\npolicies = ["fcfs"]\n'
    (ran, reused), before = sweep(tmp_path, toml)
    assert (ran, reused) == (1, 0)
    write_csv(tmp_path / "w.csv", 2000)
    (ran, reused), after = sweep(tmp_path, toml)
    assert (ran, reused) == (1, 0)
    assert after["mean_prompt_tokens"][0] == 2000 and before["mean_prompt_tokens"][0] == 50
    assert after["latency_per_token_mean"][0] > before["latency_per_token_mean"][0]
    (ran, reused), again = sweep(tmp_path, toml)  # unchanged bytes: reused
    assert (ran, reused) == (0, 1) and again.equals(after)


def test_sweep_recomputes_after_the_profile_json_is_edited(tmp_path):
    from ltrsched.sim.profiles.io import load_profile, profile_to_dict

    data = profile_to_dict(load_profile("a100-llama3-8b"))
    (tmp_path / "p.json").write_text(json.dumps(data))
    write_csv(tmp_path / "w.csv", 200)
    toml = 'workloads = ["w.csv"]\npolicies = ["fcfs"]\nprofiles = ["p.json"]\n'
    (ran, _), before = sweep(tmp_path, toml)
    data["overhead_s_per_step"] = 0.05
    (tmp_path / "p.json").write_text(json.dumps(data))
    (ran2, reused2), after = sweep(tmp_path, toml)
    assert (ran, ran2, reused2) == (1, 1, 0)
    assert after["makespan"][0] > 2 * before["makespan"][0]


PLUGIN = '''
import numpy as np
from ltrsched.policies import LiveView, Policy, register


@register
class Edited(Policy):
    name = "edited"

    def rank(self, view: LiveView) -> np.ndarray:
        return view.order_by({key})
'''


def test_a_plugin_policys_code_is_part_of_its_runs_key(tmp_path):
    plugin = tmp_path / "edited_policy.py"
    plugin.write_text(PLUGIN.format(key="view.prompt_tokens"))  # shortest prompt first
    env = {**os.environ, "LTRSCHED_PLUGINS": str(plugin)}
    rows = "".join(f"0,{p},{o}\n" for p, o in [(10, 400), (500, 5)] * 20)
    (tmp_path / "w.csv").write_text("arrival_time,prompt_tokens,output_tokens\n" + rows)
    toml = 'workloads = ["w.csv"]\npolicies = ["edited"]\nmax_num_seqs = 1\n'
    (ran, _), before = sweep(tmp_path, toml, env=env)
    plugin.write_text(PLUGIN.format(key="-view.prompt_tokens"))  # longest prompt first
    (ran2, reused2), after = sweep(tmp_path, toml, env=env)
    assert (ran, ran2, reused2) == (1, 1, 0)
    assert after["latency_per_token_mean"][0] != before["latency_per_token_mean"][0]


def test_run_hash_is_the_same_in_every_process_and_follows_the_bytes(tmp_path):
    path = tmp_path / "w.csv"
    write_csv(path, 50)
    spec = RunSpec("sweep", "s", "l", workload=str(path), policy="fcfs", profile="a100-llama3-8b")
    code = ("from ltrsched.experiments.runspec import RunSpec; import sys; "
            f"print(RunSpec.from_dict({spec.to_dict()!r}).run_hash())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == spec.run_hash()
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # a new modification time alone: the same key
    assert spec.run_hash() == other
    write_csv(path, 60)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # new bytes of the same size and mtime: a new key
    assert spec.run_hash() != other


def test_the_runners_workload_cache_rereads_an_edited_file(tmp_path):
    """Within one process (a notebook, a long-lived worker), the per-process workload cache must not
    hand out a file's old content either."""
    from ltrsched.experiments.runner import build_workload

    path = tmp_path / "w.csv"
    write_csv(path, 50)
    spec = RunSpec("sweep", "s", "l", workload=str(path), policy="fcfs", profile="a100-llama3-8b")
    assert build_workload(spec).df["prompt_tokens"].max() == 50
    write_csv(path, 70)
    assert build_workload(spec).df["prompt_tokens"].max() == 70


def _sharegpt_file(path, prompt: str) -> None:
    conv = [{"id": "a_0", "conversations": [{"from": "human", "value": prompt},
                                             {"from": "gpt", "value": "fine reply"}]}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(conv))


def test_sharegpt_parse_cache_is_keyed_by_content(tmp_path, monkeypatch):
    """Two different files with equal name, size and modification time used to share a cache entry."""
    from ltrsched.workloads.sharegpt import load_sharegpt_records

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "a" / "data.json", tmp_path / "b" / "data.json"
    _sharegpt_file(a, "first prompt")
    _sharegpt_file(b, "other prompt")
    for p in (a, b):
        os.utime(p, (1_700_000_000, 1_700_000_000))
    assert a.stat().st_size == b.stat().st_size
    assert load_sharegpt_records(a)["prompt"].to_list() == ["first prompt"]
    assert load_sharegpt_records(b)["prompt"].to_list() == ["other prompt"]
    _sharegpt_file(a, "third prompt")  # the same path rewritten: same size, mtime set back
    os.utime(a, (1_700_000_000, 1_700_000_000))
    assert load_sharegpt_records(a)["prompt"].to_list() == ["third prompt"]
    assert len(list((tmp_path / "cache").glob("sharegpt-*.parquet"))) == 3


def test_the_trained_predictors_key_covers_its_data_and_how_it_was_trained(monkeypatch):
    from ltrsched.experiments.scoring import scoring_fingerprint
    from ltrsched.predictors import pretrained
    from ltrsched.workloads import sharegpt

    key = pretrained.cache_key("rank")
    assert key != pretrained.cache_key("class") != pretrained.cache_key("class", 100)
    assert scoring_fingerprint("trained-ltr:sharegpt") == key
    assert scoring_fingerprint("trained-class:sharegpt,bucket=100") == pretrained.cache_key("class", 100)
    assert scoring_fingerprint("approx-score:tau=0.5") is None
    monkeypatch.setattr(sharegpt, "records_key", lambda path=None: "other-data")  # other training bytes
    assert pretrained.cache_key("rank") != key
    monkeypatch.undo()
    monkeypatch.setattr("ltrsched.__version__", "99.0")  # other training code
    assert pretrained.cache_key("rank") != key


def test_a_run_whose_input_changed_under_way_is_not_filed_under_the_old_hash(tmp_path):
    """The main process hashed the inputs before a worker read them: results of other bytes must not be
    stored under that hash (a later rerun would reuse them as the old file's)."""
    from ltrsched.errors import UserError
    from ltrsched.experiments import runner

    path = tmp_path / "w.csv"
    write_csv(path, 50)
    spec = RunSpec("sweep", "s", "l", workload=str(path), policy="fcfs", profile="a100-llama3-8b")
    hashed = spec.run_hash()
    write_csv(path, 2000)
    with pytest.raises(UserError, match="changed while the runs were under way"):
        runner.execute_run(spec, tmp_path / "out", hashed)
    assert not runner.is_done(tmp_path / "out", spec, hashed) and not runner.is_done(tmp_path / "out", spec)


def test_a_file_is_one_run_whatever_path_names_it(tmp_path, monkeypatch):
    """A workload or profile file is keyed by its bytes, not its path: a sweep file's relative paths now
    resolve against the file's directory, and the same file found from another directory (or as ./w.csv)
    must not be simulated again."""
    from ltrsched.sim.profiles.io import load_profile, profile_to_dict

    (tmp_path / "d").mkdir()
    write_csv(tmp_path / "d" / "w.csv", 50)
    (tmp_path / "d" / "p.json").write_text(json.dumps(profile_to_dict(load_profile("a100-llama3-8b"))))
    absolute = RunSpec("sweep", "s", "l", workload=str(tmp_path / "d" / "w.csv"), policy="fcfs",
                       profile=str(tmp_path / "d" / "p.json"))
    monkeypatch.chdir(tmp_path)
    for w, p in (("d/w.csv", "d/p.json"), ("./d/w.csv", "d/../d/p.json")):
        relative = RunSpec("sweep", "s", "l", workload=w, policy="fcfs", profile=p)
        assert relative.run_hash() == absolute.run_hash()
    jsonl = RunSpec("sweep", "s", "l", workload="d/w.jsonl", policy="fcfs", profile="d/p.json")
    (tmp_path / "d" / "w.jsonl").write_bytes((tmp_path / "d" / "w.csv").read_bytes())
    assert jsonl.run_hash() != absolute.run_hash()  # the same bytes read as another format


def test_sweep_file_paths_are_relative_to_the_sweep_file(tmp_path):
    """`ltrsched sweep configs/a.toml` from the parent directory read "data/w.csv" and "p.json" from the
    current directory: a sweep file kept beside its data ran only from its own directory. The --out given
    on the command line stays relative to the current directory, and the runs are the same from either."""
    from test_cli_simulate import assert_one_line_error

    from ltrsched.sim.profiles.io import load_profile, profile_to_dict

    configs = tmp_path / "configs"
    (configs / "data").mkdir(parents=True)
    write_csv(configs / "data" / "w.csv", 50)
    (configs / "p.json").write_text(json.dumps(profile_to_dict(load_profile("a100-llama3-8b"))))
    (configs / "a.toml").write_text('workloads = ["data/w.csv", "lmsys-like"]\npolicies = ["fcfs"]\n'
                                    'profiles = ["p.json", "a100-llama3-8b"]\nnum_requests = 20\n')
    r = run_cli("sweep", "configs/a.toml", "--out", "out", "--jobs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert counts(r.stdout) == (4, 0) and (tmp_path / "out" / "sweep.csv").is_file()
    assert not (configs / "out").exists()
    r = run_cli("sweep", "a.toml", "--out", "../out", "--jobs", "1", cwd=configs)
    assert r.returncode == 0, r.stderr[-2000:]
    assert counts(r.stdout) == (0, 4)
    (configs / "b.toml").write_text('workloads = ["data/nope.csv"]\npolicies = ["fcfs"]\n')
    assert_one_line_error(run_cli("sweep", "configs/b.toml", "--jobs", "1", cwd=tmp_path),
                          "workload 'configs/data/nope.csv' is neither a file nor a built-in")
    (configs / "c.toml").write_text('policies = ["fcfs"]\nprofiles = ["nope.json"]\nnum_requests = 20\n')
    assert_one_line_error(run_cli("sweep", "configs/c.toml", "--jobs", "1", cwd=tmp_path),
                          "profile file not found: configs/nope.json")
