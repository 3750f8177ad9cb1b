"""A cached run whose ``summary.json`` was edited or damaged since it was written (a number changed, a metric
removed, a ``NaN`` put in, another run's summary copied over it) is computed again, not used in a sweep's or a
reproduction's table: a rerun took any summary that parsed, and a removed metric came out as null, an edited one as
the edited number."""

from __future__ import annotations

import json
import re
import shutil

import polars as pl
import pytest

from cli_helpers import run_cli_fast
from ltrsched.experiments import runner
from ltrsched.experiments.runspec import RunSpec

WALL_CLOCK = ("wall_time_s", "speedup_vs_real_time")


def _spec(policy: str, replicas: int = 1) -> RunSpec:
    return RunSpec(experiment="sweep", setting="", label=policy, workload="lmsys-like", policy=policy,
                   profile="a100-llama3-8b", num_requests=20, replicas=replicas,
                   router="round-robin" if replicas > 1 else None)


SPECS = [_spec("fcfs"), _spec("ltr:tau=0.62"), _spec("fcfs", replicas=2)]


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """An output directory holding the three runs of :data:`SPECS`, computed once for the module."""
    out = tmp_path_factory.mktemp("cached") / "out"
    stats = runner.run_all(SPECS, out, jobs=1, progress=False)
    assert len(stats.ran) == len(SPECS)
    return out


def _copy(cached, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(cached, out)
    return out


def _summary_path(out, spec):
    return runner.run_dir(out, spec) / "summary.json"


def _results(out, spec) -> dict:
    return {k: v for k, v in runner.load_summary(out, spec).items() if k not in WALL_CLOCK}


def test_runs_as_written_are_reused_single_and_cluster(cached, tmp_path):
    """The digest reads back as written (a cluster's per-replica summaries too): nothing is recomputed."""
    out = _copy(cached, tmp_path)
    stats = runner.run_all(SPECS, out, jobs=1, progress=False)
    assert stats.ran == [] and len(stats.skipped) == len(SPECS)
    assert all(runner.why_not_done(out, s) is None for s in SPECS)


def _change_number(text: str) -> str:
    return re.sub(r'"latency_per_token_mean": [0-9.e+-]+', '"latency_per_token_mean": 99.5', text, count=1)


def _remove_key(text: str) -> str:
    doc = json.loads(text)
    del doc["summary"]["ttft_mean"]
    return json.dumps(doc, indent=2)


def _nan_literal(text: str) -> str:
    return re.sub(r'"throughput_rps": [0-9.e+-]+', '"throughput_rps": NaN', text, count=1)


def _no_digest(text: str) -> str:  # (what an earlier version wrote)
    doc = json.loads(text)
    del doc["meta"][runner.DIGEST_KEY]
    return json.dumps(doc, indent=2)


def _truncate(text: str) -> str:  # (a crash that a non-atomic copy or a full disk left)
    return text[:100]


def _edit_replica(text: str) -> str:
    doc = json.loads(text)
    doc["replicas"][0]["makespan"] = 1e9
    return json.dumps(doc, indent=2)


@pytest.mark.parametrize("spec_i,damage,why", [
    (0, _change_number, "edited or damaged"),
    (0, _remove_key, "edited or damaged"),
    (1, _nan_literal, "edited or damaged"),
    (1, _no_digest, "no digest"),
    (1, _truncate, "is damaged"),
    (2, _edit_replica, "edited or damaged"),
])
def test_an_edited_summary_is_computed_again(cached, tmp_path, capsys, spec_i, damage, why):
    out = _copy(cached, tmp_path)
    spec = SPECS[spec_i]
    fresh = _results(out, spec)
    path = _summary_path(out, spec)
    path.write_text(damage(path.read_text()))
    assert why in runner.why_not_done(out, spec) and not runner.is_done(out, spec)
    capsys.readouterr()
    stats = runner.run_all(SPECS, out, jobs=1, progress=False)
    assert stats.ran == [spec.run_hash()] and len(stats.skipped) == len(SPECS) - 1
    assert _results(out, spec) == fresh and runner.is_done(out, spec)
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: 1 cached run(s) under ") and spec.run_hash() in note[0]
    assert why in note[0]


def test_another_runs_summary_in_its_place_is_computed_again(cached, tmp_path):
    """A summary.json moved or copied from another run's directory (another version's, another spec's) is not
    taken for this run's, though it parses and matches its own digest."""
    out = _copy(cached, tmp_path)
    fcfs, ltr = SPECS[0], SPECS[1]
    fresh = _results(out, ltr)
    shutil.copyfile(_summary_path(out, fcfs), _summary_path(out, ltr))
    assert runner.why_not_done(out, ltr) == "its summary.json is not this run's"
    stats = runner.run_all(SPECS, out, jobs=1, progress=False)
    assert stats.ran == [ltr.run_hash()] and _results(out, ltr) == fresh


def test_a_sweep_table_is_not_built_from_an_edited_run(tmp_path, capsys):
    """The CLI end to end: the edited number never reaches sweep.csv, and a note says which run was redone."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs"]\nnum_requests = 20\n')
    args = ("sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1")
    first = run_cli_fast(capsys, *args)
    assert first.returncode == 0 and "1 runs simulated, 0 reused" in first.stdout, first.stderr
    fresh = pl.read_csv(tmp_path / "out" / "sweep.csv").drop(WALL_CLOCK)
    (summary,) = (tmp_path / "out" / "runs").glob("*/summary.json")
    summary.write_text(_change_number(summary.read_text()))
    second = run_cli_fast(capsys, *args)
    assert second.returncode == 0 and "1 runs simulated, 0 reused" in second.stdout, second.stderr
    assert "99.5" not in (tmp_path / "out" / "sweep.csv").read_text()
    assert [line for line in second.stderr.splitlines() if line.startswith("note: 1 cached run(s)")]
    assert pl.read_csv(tmp_path / "out" / "sweep.csv").drop(WALL_CLOCK).equals(fresh)


def test_a_summary_that_cannot_be_read_is_named_so_not_damaged(cached, tmp_path):
    """A directory in summary.json's place is not a damaged file: the note says it cannot be read, and why."""
    out = _copy(cached, tmp_path)
    path = _summary_path(out, SPECS[0])
    path.unlink()
    path.mkdir()
    assert runner.why_not_done(out, SPECS[0]).startswith("its summary.json cannot be read (")


def test_a_section_kept_from_another_version_says_so_in_the_report(tmp_path):
    """REPRODUCTION.md keeps the sections earlier commands wrote to its --out; one another ltrsched version wrote (its
    numbers from that version's runs) read as this version's, with only a date."""
    from ltrsched import __version__
    from ltrsched.experiments.report import SECTIONS_DIR, write_report
    from ltrsched.experiments.tables import Section

    (tmp_path / SECTIONS_DIR).mkdir()
    head = '<!-- ltrsched-section {"command": "c0", "date": "d", "passed": 0, "checks": 0%s} -->\n## Table %d\n'
    (tmp_path / SECTIONS_DIR / "table1.md").write_text(head % ("", 1))  # (kept before versions were recorded)
    (tmp_path / SECTIONS_DIR / "table2.md").write_text(head % (', "version": "0.0.1"', 2))
    (tmp_path / SECTIONS_DIR / "table3.md").write_text(head % (f', "version": "{__version__}"', 3))
    write_report([("fig3", Section("fig3", "Figure 3"))], tmp_path, "c1", 1.0, ["table1", "table2", "table3", "fig3"])
    report = (tmp_path / "REPRODUCTION.md").read_text()
    assert f"_From `c0`, d, by an ltrsched version it did not record (this is {__version__}): run that" in report
    assert f"_From `c0`, d, by ltrsched 0.0.1, not this one ({__version__}): run that command again" in report
    assert "_From `c0`, d._" in report  # (this version's)
    kept = (tmp_path / SECTIONS_DIR / "fig3.md").read_text().splitlines()[0]
    assert f'"version": "{__version__}"' in kept


@pytest.mark.parametrize("edit", [
    lambda text: text.replace('"passed": 0, "checks": 0', '"passed": 5, "checks": 5', 1),  # its pass count
    lambda text: text.replace("## Figure 3", "## Figure 3 (all checks hold)", 1),         # its markdown
])
def test_a_kept_section_edited_by_hand_is_not_counted_and_says_so(tmp_path, edit):
    """A section kept from an earlier command and edited since (its pass count raised by hand) was counted in the
    report's total as it stood ('5 of 5 hold') and shown as that command's."""
    from ltrsched.experiments.report import SECTIONS_DIR, write_report
    from ltrsched.experiments.tables import Section

    write_report([("fig3", Section("fig3", "Figure 3"))], tmp_path, "c0", 1.0, ["fig3"])
    path = tmp_path / SECTIONS_DIR / "fig3.md"
    edited = edit(path.read_text())
    assert edited != path.read_text()
    path.write_text(edited)
    write_report([("fig4", Section("fig4", "Figure 4"))], tmp_path, "c1", 1.0, ["fig3", "fig4"])
    report = (tmp_path / "REPRODUCTION.md").read_text()
    assert "**Checks of the paper's claims: 0 of 0 hold.**" in report
    assert "Left out of that count: fig3, edited by hand since written (each says so)." in report
    assert "_Edited by hand since `c0` wrote it, " in report and "run that command again to refresh it._" in report


def test_kept_sections_as_written_are_counted_as_before(tmp_path):
    from ltrsched.experiments.report import write_report
    from ltrsched.experiments.tables import Section

    write_report([("fig3", Section("fig3", "Figure 3"))], tmp_path, "c0", 1.0, ["fig3"])
    write_report([("fig4", Section("fig4", "Figure 4"))], tmp_path, "c1", 1.0, ["fig3", "fig4"])
    report = (tmp_path / "REPRODUCTION.md").read_text()
    assert "Edited by hand" not in report and "Left out" not in report and "_From `c0`, " in report
