"""A cached run's parquet files are taken only as written: ``summary.json`` records their digests, and a
``requests.parquet`` edited or swapped for another run's (which ``plot cdf`` and the tables read), a ``steps.parquet``
put where the run wrote none (which ``plot trace`` reads), or a run cached before the digests were recorded, is computed
again with the cache's note line. Before, any parquet file whose schema read back was taken
(and a pipe in requests.parquet's place blocked the check for good)."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from ltrsched.experiments import runner
from ltrsched.experiments.runspec import RunSpec
from ltrsched.results import FILES_DIGEST_KEY


def _spec(policy: str) -> RunSpec:
    return RunSpec(experiment="sweep", setting="", label=policy, workload="lmsys-like", policy=policy,
                   profile="a100-llama3-8b", num_requests=20)


SPECS = [_spec("fcfs"), _spec("srtf")]


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    out = tmp_path_factory.mktemp("cached") / "out"
    assert len(runner.run_all(SPECS, out, jobs=1, progress=False).ran) == len(SPECS)
    return out


def _requests(out, spec) -> pl.DataFrame:
    return pl.read_parquet(runner.run_dir(out, spec) / "requests.parquet")


def _recomputed(out, spec, capsys, why: str) -> None:
    """``spec``'s run is not taken (``why`` says so), is computed again alone, with one note naming it, and reads back
    as its first computation did."""
    assert why in runner.why_not_done(out, spec)
    capsys.readouterr()
    stats = runner.run_all(SPECS, out, jobs=1, progress=False)
    assert stats.ran == [spec.run_hash()] and len(stats.skipped) == len(SPECS) - 1
    assert runner.why_not_done(out, spec) is None
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: 1 cached run(s)") and spec.run_hash() in note[0] and why in note[0]


def test_the_digests_name_the_files_written(cached):
    meta = json.loads((runner.run_dir(cached, SPECS[0]) / "summary.json").read_text())["meta"]
    assert set(meta[FILES_DIGEST_KEY]) == {"requests.parquet"}  # (no steps recorded: none written)


def test_another_runs_requests_in_its_place_is_computed_again(cached, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(cached, out)
    fcfs, srtf = SPECS
    fresh = _requests(out, srtf)
    shutil.copyfile(runner.run_dir(out, fcfs) / "requests.parquet", runner.run_dir(out, srtf) / "requests.parquet")
    _recomputed(out, srtf, capsys, "its requests.parquet was edited or replaced since it was written")
    assert _requests(out, srtf).equals(fresh)


def test_an_edited_requests_file_is_computed_again(cached, tmp_path, capsys):
    """A value changed by hand, the file still a readable parquet of the same schema."""
    out = tmp_path / "out"
    shutil.copytree(cached, out)
    spec = SPECS[0]
    path = runner.run_dir(out, spec) / "requests.parquet"
    fresh = pl.read_parquet(path)
    fresh.with_columns(pl.col("output_tokens") * 2).write_parquet(path)
    _recomputed(out, spec, capsys, "its requests.parquet was edited or replaced")
    assert _requests(out, spec).equals(fresh)


def test_a_steps_file_the_run_did_not_write_is_computed_again(cached, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(cached, out)
    spec = SPECS[1]
    pl.DataFrame({"start": [0.0], "duration": [1.0]}).write_parquet(runner.run_dir(out, spec) / "steps.parquet")
    _recomputed(out, spec, capsys, "its steps.parquet was not written by this run")
    assert not (runner.run_dir(out, spec) / "steps.parquet").exists()


def test_a_run_cached_without_the_file_digests_is_computed_once_more(cached, tmp_path, capsys):
    """What the previous version wrote: its summary's own digest, none of the parquet files."""
    out = tmp_path / "out"
    shutil.copytree(cached, out)
    spec = SPECS[0]
    path = runner.run_dir(out, spec) / "summary.json"
    doc = json.loads(path.read_text())
    del doc["meta"][FILES_DIGEST_KEY]
    path.write_text(json.dumps(doc, indent=2))
    _recomputed(out, spec, capsys, "no digest of its parquet files")


def test_a_pipe_in_place_of_requests_is_named_not_read(cached, tmp_path):
    """(Hashing it would wait on the pipe for good.)"""
    import os

    out = tmp_path / "out"
    shutil.copytree(cached, out)
    path = runner.run_dir(out, SPECS[0]) / "requests.parquet"
    path.unlink()
    os.mkfifo(path)
    assert runner.why_not_done(out, SPECS[0]) == "its requests.parquet cannot be read (not a regular file)"
