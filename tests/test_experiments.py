"""reproduce / sweep: reference numbers, a quick reproduction with the paper's orderings, run caching."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from cli_helpers import run_cli_captured, run_cli_fast

from ltrsched.experiments.methods import make_spec
from ltrsched.experiments.reference import load_reference, paper_value


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
    """`reproduce table1 --quick` in this process (its --jobs 2 workers are spawned processes of their own)."""
    out = tmp_path_factory.mktemp("repro")
    first = run_cli_captured("reproduce", "table1", "--quick", "--out", str(out), "--jobs", "2")
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
    r = run_cli_captured("reproduce", "table1", "--quick", "--out", str(out))
    assert r.returncode == 0 and "0 runs simulated, 11 reused" in r.stdout


def _table_part(stdout: str) -> str:
    """What ``reproduce`` printed before its ``N runs simulated, M reused; S s`` line: the tables and checks."""
    return stdout[:stdout.rindex("\n", 0, stdout.index(" runs simulated, "))]


def test_a_cached_rerun_computes_no_score_and_loads_no_predictor(quick_table1, monkeypatch):
    """A cached rerun loaded both ShareGPT predictors (torch, the tokenizer: 3 of its 4.5 s CPU) before it found every
    run finished. Its run keys hold what the scores are made from (the scoring string with its tau, the seed, the
    workload), not the scores: with every scorer made to fail, it finds every run and prints the same table."""
    import ltrsched.policies
    from ltrsched.experiments import approx, scoring
    from ltrsched.predictors import pretrained

    def refuse(*args, **kwargs):
        raise AssertionError("a cached rerun computed scores or loaded a predictor")

    for module, name in ((scoring, "attach_scores"), (approx, "approx_lengths"), (approx, "approx_class_lengths"),
                         (ltrsched.policies, "approx_oracle_scores"), (pretrained, "sharegpt_predictor")):
        monkeypatch.setattr(module, name, refuse)
    out, first = quick_table1
    r = run_cli_captured("reproduce", "table1", "--quick", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "0 runs simulated, 11 reused" in r.stdout
    assert _table_part(r.stdout) == _table_part(first.stdout)


def test_a_second_experiment_keeps_the_first_in_the_report(quick_table1, tmp_path):
    """`reproduce table4` into the directory of an earlier `reproduce table1` rewrote REPRODUCTION.md with Table 4
    alone: Table 1's comparison and checks were gone from the report (its tables/ files stayed)."""
    import shutil

    out = tmp_path / "repro"
    shutil.copytree(quick_table1[0], out)
    r = run_cli_captured("reproduce", "table4", "--quick", "--out", str(out), "--jobs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    report = (out / "REPRODUCTION.md").read_text()
    assert report.count("## Table 1:") == 1 and report.count("## Table 4:") == 1
    assert report.index("## Table 1:") < report.index("## Table 4:") < report.index("## Known reasons")
    assert "Generated by `ltrsched reproduce table4 --quick`" in report
    assert "_From `ltrsched reproduce table1 --quick`," in report and "LTR/FCFS mean" in report
    table1_checks = (out / "sections" / "table1.md").read_text().count("\n- ")  # checks and notes are bullets
    assert table1_checks and "of 0 hold" not in report
    (out / "sections" / "table1.md").write_text("damaged")  # a section this version did not write: left out
    r = run_cli_captured("reproduce", "table4", "--quick", "--out", str(out), "--jobs", "1")
    assert r.returncode == 0 and "## Table 1:" not in (out / "REPRODUCTION.md").read_text()


def test_sweep_file(capsys, tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "ltr:tau=0.8"]\nnum_requests = 150\n'
                   'arrival = "poisson"\nrates = [4.0, 8.0]\n')
    r = run_cli_fast(capsys, "sweep", str(cfg), "--out", str(tmp_path / "o"), "--jobs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_csv(tmp_path / "o" / "sweep.csv")
    assert df.height == 4 and set(df["policy"]) == {"fcfs", "ltr:tau=0.8"}
    bad = tmp_path / "bad.toml"
    bad.write_text('policies = ["nope"]\n')
    r = run_cli_fast(capsys, "sweep", str(bad))
    assert r.returncode == 2 and "unknown policy" in r.stderr


_SWEEP_BASE = 'policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nnum_requests = 20\n'


@pytest.mark.parametrize("name, content, message", [
    ("s.toml", 'policies = "fcfs"\n', "'policies' must be a non-empty list, each item text; got 'fcfs'"),
    ("s.toml", "policies = [1]\n", "'policies' must be a non-empty list"),
    ("s.toml", _SWEEP_BASE + 'arrival = "poisson"\nrates = 4.0\n', "'rates' must be a non-empty list"),
    ("s.toml", _SWEEP_BASE + 'arrival = "poisson"\n', "arrival 'poisson' needs 'rates'"),
    ("s.toml", 'policies = ["fcfs"]\nnum_requests = "ten"\n', "'num_requests' must be an integer, got 'ten'"),
    ("s.toml", _SWEEP_BASE + "seeds = [-1]\n", "'seeds' must be >= 0"),
    # (they said "'max_num_batched_tokens' must be >= 1" beside "'max_model_len' must be positive": one rule, SimConfig's)
    ("s.toml", _SWEEP_BASE + "max_num_batched_tokens = 0\n", "'max_num_batched_tokens' must be positive, got 0"),
    ("s.toml", _SWEEP_BASE + "max_num_seqs = -3\n", "s.toml: 'max_num_seqs' must be positive, got -3"),
    ("s.toml", _SWEEP_BASE + 'preemption = "kill"\n', "'preemption' must be swap or recompute"),
    ("s.toml", _SWEEP_BASE + "block_size = 0\n", "'block_size' must be positive, got 0"),
    ("s.toml", _SWEEP_BASE + "block_size = 12.5\n", "'block_size' must be an integer"),
    # found by its first run, after the lone replica's run had been computed
    ("s.toml", _SWEEP_BASE + "replicas = [1, 5000]\n", "'replicas' must be at most 4,096, got 5,000"),
    ("s.toml", _SWEEP_BASE + 'scoring = "approx-po:tau=2"\n', "tau must be in (0, 1], got 2.0"),
    ("s.toml", _SWEEP_BASE + 'scoring = "approx-score:tau=0_5"\n', "needs a numeric tau="),  # float("0_5") is 5.0
    ("s.toml", 'policies = ["ltr:tau=0_5"]\n', "policy 'ltr': bad value for tau: '0_5' is not a plain number"),
    ("s.toml", _SWEEP_BASE + 'profiles = ["a100-llama3-8b", "nosuch"]\n', "unknown profile 'nosuch'"),
    ("s.yaml", "policies: [fcfs]\n", "unknown sweep file format '.yaml'"),
    # integers beyond float64 (JSON's are unbounded): OverflowError tracebacks from math.isfinite
    ("s.json", '{"policies": ["fcfs"], "arrival": "poisson", "rates": [1' + "0" * 400 + "]}",
     "'rates' must be positive and finite, got [1000"),
    ("s.json", '{"policies": ["fcfs"], "arrival": "poisson", "rates": [4], "duration": 1' + "0" * 400 + "}",
     "'duration' must be positive and finite, got 1000"),
    ("s.toml", b"\x8e\xff\x00", "cannot parse ('utf-8' codec can't decode"),
    # json keeps a repeated key's last value: this ran srtf alone, where TOML refuses the file
    ("s.json", '{"policies": ["fcfs"], "policies": ["srtf"]}', "cannot parse (the key 'policies' is given twice)"),
    # two spellings of one policy ran its runs twice and listed them twice in sweep.csv
    ("s.toml", 'policies = ["ltr:tau=0.5,starve=200,quantum=10", "ltr:quantum=10,starve=200,tau=5e-1"]\n',
     "'policies': 'ltr:tau=0.5,starve=200,quantum=10' and 'ltr:quantum=10,starve=200,tau=5e-1' are the same policy"),
])
def test_sweep_file_errors_are_one_line_before_any_run(tmp_path, capsys, name, content, message):
    from cli_helpers import run_cli_fast
    from test_cli_simulate import assert_one_line_error

    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(path), "--out", str(tmp_path / "o"), "--jobs", "1"),
                          message)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("router, column", [("rank", "score"), ("least-work", "predicted_length")])
def test_a_sweeps_router_missing_a_column_is_told_the_sweep_key_not_the_cli_option(capsys, tmp_path, router, column):
    """`routers = ["rank"]` in a sweep file was told to use `--router rank:tau=0.62`, an option sweep has not."""
    from test_cli_simulate import assert_one_line_error

    path = tmp_path / "s.toml"
    path.write_text(_SWEEP_BASE + f'arrival = "poisson"\nrates = [4.0]\nreplicas = [2]\nrouters = ["{router}"]\n')
    r = run_cli_fast(capsys, "sweep", str(path), "--out", str(tmp_path / "o"), "--jobs", "1")
    assert_one_line_error(r, f"router {router!r} needs a {column!r} column, which workload 'lmsys-like' lacks")
    assert f'e.g. `routers = ["{router}:tau=0.62"]` in the sweep file' in r.stderr and "--router" not in r.stderr


def test_sweep_block_size_follows_the_measured_profile(capsys, tmp_path):
    """A sweep models the KV blocks of the engine a measured profile came from (128 tokens for cpu-*), 16
    for the others, unless the file sets block_size; the cache key follows the block size actually used."""
    from ltrsched.experiments.runspec import RunSpec

    def sizes(content, out):
        path = tmp_path / f"{out}.toml"
        path.write_text(_SWEEP_BASE + 'profiles = ["cpu-smollm2", "a100-llama3-8b"]\n' + content)
        r = run_cli_fast(capsys, "sweep", str(path), "--out", str(tmp_path / out), "--jobs", "1")
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


@pytest.mark.parametrize("command", ["sweep", "reproduce", "capacity"])
@pytest.mark.parametrize("jobs", ["0", str(2**63 - 1)])
def test_jobs_must_be_positive_and_not_absurd(tmp_path, capsys, command, jobs):
    """--jobs 0 is refused; --jobs 2**63-1 was an OverflowError traceback from the process pool's semaphore (exit 1)
    once more than one run was to compute (capacity, reproduce, a sweep of several runs)."""
    from cli_helpers import run_cli_fast
    from test_cli_simulate import assert_one_line_error

    path = tmp_path / "s.toml"
    path.write_text(_SWEEP_BASE)
    args = {"sweep": [str(path)], "reproduce": ["table1", "--quick"], "capacity": ["--slo", "ttft_p90=2", "-n", "30"]}
    r = run_cli_fast(capsys, command, *args[command], "--out", str(tmp_path / "o"), "--jobs", jobs)
    assert_one_line_error(r, f"--jobs must be in 1..4,096 (parallel runs), got {int(jobs):,}")
    assert not (tmp_path / "o").exists()


def test_full_reproduction_never_asks_more_sharegpt_prompts_than_the_eval_split_holds():
    from ltrsched.experiments.commands import _modules
    from ltrsched.workloads.selection import EVAL_SIZE

    specs = [s for m in _modules().values() for s in m.specs(False)]
    assert specs
    for s in specs:
        if s.workload == "sharegpt":
            assert s.num_requests is None or s.num_requests <= EVAL_SIZE, (s.experiment, s.rate, s.num_requests)


def test_no_room_for_a_kv_block_names_each_commands_own_settings(capsys, tmp_path):
    """A profile without GPU memory for one KV block is refused before any run, and the hint names what the
    command can set: simulate's options, a sweep file's block_size, capacity's --profile (sweep and capacity
    have no --block-size, --gpu-memory-utilization or --num-gpu-blocks option)."""
    from test_cli_simulate import assert_one_line_error

    r = run_cli_fast(capsys, "simulate", "-n", "5", "--gpu-memory-utilization", "1e-9")
    assert_one_line_error(r, "16 tokens at --gpu-memory-utilization 1e-09; use a smaller --block-size or a larger "
                             "--gpu-memory-utilization, or set --num-gpu-blocks")
    path = tmp_path / "s.toml"
    path.write_text(_SWEEP_BASE + "block_size = 1000000000\n")
    r = run_cli_fast(capsys, "sweep", str(path), "--out", str(tmp_path / "o"), "--jobs", "1")
    assert_one_line_error(r, "1000000000 tokens in the 90% of its GPU memory the engine may use; set a smaller "
                             f"block_size in {path}")
    assert "--" not in r.stderr and not (tmp_path / "o" / "runs").exists()
    profile = json.loads((Path(__file__).parents[1] / "ltrsched/sim/profiles/a100-llama3-8b.json").read_text())
    from ltrsched.sim.kv_capacity import ModelShape, weight_bytes_per_gpu

    weights = weight_bytes_per_gpu(ModelShape.from_config(profile["model_config"]), 1)
    # (room for a KV cache in all of the GPU's memory, none in 90% of it: a file leaving none at all is refused on load)
    profile.update(name="tiny-gpu", activation_reserve_bytes=profile["gpu_memory_bytes"] * 95 // 100 - weights)
    (tmp_path / "tiny.json").write_text(json.dumps(profile))
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "--profile", str(tmp_path / "tiny.json"),
                     "-n", "20", "--out", str(tmp_path / "c"), "--jobs", "1")
    assert_one_line_error(r, "profile 'tiny-gpu' leaves no GPU memory for one KV block of 16 tokens "
                             "in the 90% of its GPU memory the engine may use; pick a profile with more GPU memory "
                             "(--profile)")


def test_sweep_refuses_to_write_its_table_over_a_workload(capsys, tmp_path):
    """A sweep of the trace `sweep.csv` written to the trace's directory replaced it with the sweep table (exit 0)."""
    from test_cli_simulate import assert_one_line_error

    trace = tmp_path / "sweep.csv"
    trace.write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{5 + i}\n" for i in range(20)))
    before = trace.read_bytes()
    (tmp_path / "s.toml").write_text('policies = ["fcfs"]\nworkloads = ["sweep.csv"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path)),
                          f"the sweep's workload {trace} would be overwritten by the output {trace}")
    assert trace.read_bytes() == before and not (tmp_path / "runs").exists()


def test_table1_writes_a_stand_in_note_shared_by_two_methods_once(tmp_path, monkeypatch):
    """Table 1 compared each run's bare note with the notes it had already written with their setting in front, so a
    note two methods share was written once per method."""
    from dataclasses import replace

    from ltrsched.experiments import table1

    real = table1.make_spec
    monkeypatch.setattr(table1, "make_spec", lambda *a, **k: replace(real(*a, **k), note="the same stand-in"))
    summary = {"latency_per_token_mean": 1.0, "latency_per_token_p90": 2.0, "scoring_kendall_tau": 0.5}
    monkeypatch.setattr(table1, "load_summary", lambda out, spec: summary)
    monkeypatch.setattr(table1, "grouped_bars", lambda *a, **k: tmp_path / "table1.png")
    sec = table1.build(tmp_path, quick=True)
    assert sec.notes == [f"{s}: the same stand-in" for s in table1.settings(True)]
