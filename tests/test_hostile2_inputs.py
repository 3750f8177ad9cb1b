"""A second input audit of the CLI: a score column replaced by ``predict``, requests dropped by ``--duration``,
``train --kind class`` on absurd output lengths, and a long run's progress on a pipe. Each ends in a correct result
with what it did said on stderr, or one line naming the problem (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from cli_helpers import run_cli_fast


def _jsonl(path, rows, **extra) -> None:
    """A workload of ``(prompt, output_tokens)`` rows, each with the columns ``extra`` maps to per-row lists."""
    with open(path, "w") as f:
        for i, (prompt, out) in enumerate(rows):
            f.write(json.dumps({"prompt": prompt, "prompt_tokens": 5, "output_tokens": out,
                                **{k: v[i] for k, v in extra.items()}}) + "\n")


def _rows(n: int) -> list[tuple[str, int]]:
    return [(f"write {'a long ' * i}story number {i}", 10 + 7 * i) for i in range(n)]


# ---------------------------------------------------------------- predict over a score column the input has
def test_predict_over_an_existing_score_column_says_it_replaced_it(tmp_path, capsys):
    """``predict`` wrote its scores over a workload's own ``score`` column (another model's) without a word."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rows = _rows(12)
    predictor = Predictor(PredictorConfig(epochs=1))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(tmp_path / "m")
    _jsonl(tmp_path / "w.jsonl", rows, score=[1000.0 + i for i in range(12)])
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "o.parquet")
    assert r.returncode == 0, r
    notes = [line for line in r.stderr.splitlines() if "already has" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "w.jsonl already has the column 'score'" in notes[0]
    assert "--column" in notes[0], notes
    assert pl.read_parquet(tmp_path / "o.parquet")["score"].max() < 1000  # (replaced, as said)
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "o2.parquet",
                     "--column", "score_new")
    assert r.returncode == 0 and "already has" not in r.stderr, r
    out = pl.read_parquet(tmp_path / "o2.parquet")
    assert out["score"].to_list() == [1000.0 + i for i in range(12)] and "score_new" in out.columns


# ---------------------------------------------------------------- requests dropped by --duration
def test_simulate_says_how_many_requests_duration_kept(tmp_path, capsys):
    """``simulate --duration 0.001 --arrival poisson --rate 1`` ran 1 of the workload's requests and said only
    ``requests 1``."""
    _jsonl(tmp_path / "w.jsonl", _rows(20))
    r = run_cli_fast(capsys, "simulate", "-w", tmp_path / "w.jsonl", "--arrival", "poisson", "--rate", "1",
                     "--duration", "5")
    assert r.returncode == 0, r
    ran = int(r.stdout.split("requests ")[1].split()[0])
    assert 0 < ran < 20, r.stdout
    notes = [line for line in r.stderr.splitlines() if "--duration" in line]
    assert notes == [f"note: --duration 5 kept {ran} of 20 requests: those arriving in the first 5 s (the rest arrive "
                     "later and were not run); raise --duration or --rate to run more, or leave --duration out to run "
                     "them all"], r.stderr
    r = run_cli_fast(capsys, "simulate", "-w", tmp_path / "w.jsonl", "--arrival", "poisson", "--rate", "1")
    assert r.returncode == 0 and "kept" not in r.stderr, r


def test_a_sweep_says_once_how_many_requests_its_duration_kept(tmp_path, capsys):
    _jsonl(tmp_path / "w.jsonl", _rows(20))
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["w.jsonl"]\npolicies = ["fcfs", "srtf"]\narrival = "poisson"\nrates = [1.0, 2.0]\n'
                     'duration = 5\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert r.returncode == 0, r
    from ltrsched.workloads import apply_arrivals, load_workload

    kept = [len(apply_arrivals(load_workload(str(tmp_path / "w.jsonl")), "poisson", rate=rate, seed=0, duration=5))
            for rate in (1.0, 2.0)]
    assert sorted(pl.read_csv(tmp_path / "o" / "sweep.csv")["num_finished"].to_list()) == sorted(kept * 2)
    notes = [line for line in r.stderr.splitlines() if "kept" in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: duration = 5 in {sweep} kept {min(kept)} to {max(kept)} "
                                                   "of 20 requests in 4 of 4 runs: those arriving in the first 5 s"), r


def test_a_sweeps_duration_note_counts_without_arrivals_past_the_time_limit(tmp_path, capsys):
    """At 1e-5 req/s 2,000 requests arrive over ~2e8 s, past the 1e8 s arrival limit: only the duration's cut makes
    the run possible, so the count of all requests must not come from arrivals without the cut."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs"]\narrival = "poisson"\nrates = [0.00001]\n'
                     'num_requests = 2000\nduration = 200000\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert r.returncode == 0, r
    ran = pl.read_csv(tmp_path / "o" / "sweep.csv")["num_finished"].item()
    assert f"note: duration = 200000 in {sweep} kept {ran} of 2,000 requests: those arriving" in r.stderr, r


# ---------------------------------------------------------------- train --kind class on absurd lengths
def test_a_class_model_on_lengths_past_any_context_is_refused_in_one_line(tmp_path, capsys):
    """Outputs of 2**53 tokens got 65,536 classes of 820 tokens, the last "53738700+ tokens", and a 25 MB weights file
    for data of a few buckets. Now one line; the longest context itself (2**24) still trains."""
    from cli_helpers import assert_one_line_error

    rows = _rows(30)
    _jsonl(tmp_path / "tr.jsonl", [(p, 2**53 if i % 3 == 0 else n) for i, (p, n) in enumerate(rows[:24])])
    _jsonl(tmp_path / "ev.jsonl", rows[24:])
    args = ("train", "--kind", "class", "--eval-data", tmp_path / "ev.jsonl", "--epochs", "1", "-o", tmp_path / "c")
    r = run_cli_fast(capsys, *args, "--data", tmp_path / "tr.jsonl")
    assert_one_line_error(r, "8 of 24 training output lengths are above 16,777,216 tokens, the longest context a "
                             "profile or engine takes (the longest: 9,007,199,254,740,992)")
    assert not (tmp_path / "c").exists()
    _jsonl(tmp_path / "tr.jsonl", [(p, 2**24 if i % 3 == 0 else n) for i, (p, n) in enumerate(rows[:24])])
    r = run_cli_fast(capsys, *args, "--data", tmp_path / "tr.jsonl", "--bucket", 2**21)
    assert r.returncode == 0, r
    from ltrsched.predictors.config import PredictorConfig

    assert PredictorConfig.load(tmp_path / "c").num_classes == 9  # (0 .. 2**24 in buckets of 2**21: the last holds 2**24)
