"""The JSON the tool writes is strict JSON: an undefined value (a replica that got no request, fewer than 1,000
requests finished) is null, never NaN, which other tools' parsers refuse; every reader takes the null (and
the NaN of files an earlier version wrote), and the printed tables say n/a."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import polars as pl
import pytest

from test_cli_simulate import run_cli

ROOT = Path(__file__).resolve().parents[1]


def strict_load(path: Path):
    """The file's JSON as a strict parser (jq, JavaScript) reads it: NaN or Infinity is an error."""
    def refuse(constant):
        raise ValueError(f"{path.name}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_cluster_run_with_idle_replicas_writes_null_and_prints_no_nan(tmp_path):
    """`simulate --replicas 8 -n 3` wrote "makespan": NaN for each replica that got no request."""
    out = tmp_path / "run"
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "3", "--replicas", "8", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    doc = strict_load(out / "summary.json")
    idle = [s for s in doc["replicas"] if s["num_routed"] == 0]
    assert len(idle) == 5
    assert all(s["makespan"] is None and s["throughput_rps"] is None and s["throughput_tok_s"] is None for s in idle)
    assert doc["summary"]["makespan"] > 0
    assert "nan" not in r.stdout.lower() and "None" not in r.stdout
    plot = run_cli("plot", "cdf", str(out), "-o", str(tmp_path / "cdf.png"))  # a reader of the run
    assert plot.returncode == 0 and (tmp_path / "cdf.png").is_file(), plot.stderr[-2000:]


def test_a_sweep_writes_null_for_undefined_metrics_and_reads_them_back(tmp_path):
    """Every sweep run of fewer than 1,000 requests wrote "time_to_1000_finished": NaN (and its idle replicas
    NaN makespans); sweep.csv said NaN. A rerun reads the runs back from their summary.json."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs"]\nnum_requests = 3\nreplicas = [8]\n')
    for rerun in (False, True):
        r = run_cli("sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1")
        assert r.returncode == 0, r.stderr[-2000:]
        assert ("0 runs simulated, 1 reused" if rerun else "1 runs simulated, 0 reused") in r.stdout, r.stdout
        assert "None" not in r.stdout and "nan" not in r.stdout.lower()
    [summary] = list((tmp_path / "out" / "runs").glob("*/summary.json"))
    doc = strict_load(summary)
    assert doc["summary"]["time_to_1000_finished"] is None
    assert sum(s["makespan"] is None for s in doc["replicas"]) == 5
    table = pl.read_csv(tmp_path / "out" / "sweep.csv")
    assert table["time_to_1000_finished"].to_list() == [None] and table["num_finished"].to_list() == [3]


def test_a_summary_an_earlier_version_wrote_with_nan_reads_as_null(tmp_path):
    from ltrsched.results import RunResult, read_summary_file

    RunResult(pl.DataFrame({"request_id": [0]}), {"num_requests": 1, "makespan": 1.0, "throughput_rps": 1.0,
                                                  "throughput_tok_s": 9.0}).save(tmp_path)
    text = (tmp_path / "summary.json").read_text()
    (tmp_path / "summary.json").write_text(text.replace('"makespan": 1.0', '"makespan": NaN')
                                           .replace('"throughput_rps": 1.0', '"throughput_rps": Infinity'))
    summary = read_summary_file(tmp_path / "summary.json")["summary"]
    assert summary["makespan"] is None and summary["throughput_rps"] is None and summary["throughput_tok_s"] == 9.0
    assert "makespan n/a s  throughput n/a req/s, 9.0 tok/s" in RunResult.load(tmp_path).table()


def test_undefined_values_are_null_and_a_stray_nan_too():
    from ltrsched import strict_json
    from ltrsched.metrics import format_summary, summarize

    empty = summarize(pl.DataFrame({"arrival_time": [], "finish_time": [], "output_tokens": []}))
    assert empty["makespan"] is None and json.loads(strict_json.dumps(empty))["throughput_rps"] is None
    assert "makespan n/a s  throughput n/a req/s, n/a tok/s" in format_summary(empty)
    for value in (math.nan, math.inf, -math.inf):  # one that slips through is null, not a failed save
        assert strict_json.dumps({"makespan": value, "taus": [0.5, value], "pair": (value,)}) == \
            '{"makespan": null, "taus": [0.5, null], "pair": [null]}'


def test_capacity_counts_an_undefined_metric_as_missed():
    """A null metric (a float(None) before) misses its SLO, as a missing one does."""
    from ltrsched.experiments.capacity import Slo, evaluate

    point = evaluate([Slo("ttft_p90", 2.0)], 4.0, [{"ttft_p90": 1.0}, {"ttft_p90": None}])
    assert point.violated == ("ttft_p90",) and point.means["ttft_p90"] == math.inf


#: json.dumps calls that build a hash key or a message, not a file
NOT_WRITTEN = {"ltrsched/experiments/runspec.py", "ltrsched/experiments/runner.py", "ltrsched/predictors/pretrained.py",
               "ltrsched/labelling/settings.py", "ltrsched/strict_json.py"}


def test_every_json_the_tool_writes_goes_through_strict_json():
    """Every file (or stdout) that gets JSON gets strict JSON: a future NaN is null there, not NaN for jq to refuse."""
    plain = []
    for path in sorted((ROOT / "ltrsched").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("dumps", "dump")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "json" and rel not in NOT_WRITTEN):
                plain.append(f"{rel}:{node.lineno}")
    assert plain == [], f"use ltrsched.strict_json.dumps: {plain}"


def test_a_summary_nested_too_deeply_is_a_damaged_file_not_a_traceback(tmp_path):
    """`plot cdf` on a run whose summary.json is '[' * 100,000 ... raised RecursionError from the JSON parser."""
    from ltrsched.results import read_summary_file

    (tmp_path / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_summary_file(tmp_path / "summary.json")
