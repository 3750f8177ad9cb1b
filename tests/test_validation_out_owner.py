"""`validate -o D` and `replay -o D` into a directory holding another command's output (a replay's run, a
validation, a simulation, a profile, a sweep) wrote their files beside it: refused in one line before any
engine starts, naming what D holds. The same command into its own directory still replaces or resumes it."""

from __future__ import annotations

import json

import pytest

from test_cli_simulate import assert_one_line_error, run_cli

ENGINE_RUN = {"summary": {"steps": 6}, "meta": {"host": "cpu", "command": "ltrsched replay -o rep"}}
VALIDATION_RUN = {"summary": {"steps": 6}, "meta": {"host": "cpu", "validation": "0123456789abcdef",
                                                   "command": "ltrsched validate -o val"}}
SIM_RUN = {"summary": {"steps": 6}, "meta": {"policy": "fcfs"}}
SWEEP_RUN = {"summary": {"steps": 6}, "meta": {"policy": "fcfs", "run_hash": "88747cc67e07620a"}}


def _run_dir(path, summary):
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "requests.parquet").write_text("r")
    return path


def _outputs(tmp_path):
    """Each command's output (its marker files, as the command writes them), by the kind that names it."""
    made = {
        "engine-run": _run_dir(tmp_path / "rep", ENGINE_RUN),
        "simulated-run": _run_dir(tmp_path / "sim", SIM_RUN),
        "validation-engine-run": _run_dir(tmp_path / "vrun", VALIDATION_RUN),
        "cached-run": _run_dir(tmp_path / "cached", SWEEP_RUN),
    }
    for kind, files in (("validation", ("validate-manifest.json", "validation.md")), ("sweep", ("sweep.csv",)),
                        ("capacity", ("capacity.csv",)), ("reproduction", ("REPRODUCTION.md",)),
                        ("profile", ("p.json", "p.steps.parquet")), ("predictor", ("predictor.json",))):
        (tmp_path / kind).mkdir()
        for name in files:
            (tmp_path / kind / name).write_text("x")
        made[kind] = tmp_path / kind
    _run_dir(tmp_path / "runs-only" / "runs" / "88747cc67e07620a", SWEEP_RUN)
    made["cached-runs"] = tmp_path / "runs-only"
    return made


def test_each_commands_output_is_told_apart(tmp_path):
    from ltrsched.output_owner import held_output

    for kind, path in _outputs(tmp_path).items():
        assert held_output(path).kind == kind, path
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own")
    (tmp_path / "mine" / "p.json").write_text("{}")  # (a profile alone: an input kept beside the output)
    (tmp_path / "mine" / "sections").mkdir()
    _run_dir(tmp_path / "mine" / "runs" / "fcfs", SIM_RUN)  # (`simulate -o runs/fcfs`: the user's own runs/)
    assert held_output(tmp_path / "mine") is None and held_output(tmp_path / "nosuch") is None


def test_the_markers_are_the_files_the_commands_write():
    from ltrsched.experiments.commands import CAPACITY_FILES
    from ltrsched.output_owner import MARKERS, VALIDATION_FILES
    from ltrsched.predictors.config import CONFIG_FILE
    from ltrsched.validation.outdir import MANIFEST, REPORT_FILES

    assert set(VALIDATION_FILES) == {MANIFEST, *REPORT_FILES}
    markers = {kind: names for kind, names, _ in MARKERS}
    assert markers["capacity"] == CAPACITY_FILES and markers["predictor"] == (CONFIG_FILE,)


@pytest.mark.parametrize("command, accepts", [("replay", "engine-run"), ("validate", "validation"),
                                              ("simulate", "simulated-run")])
def test_a_command_takes_only_its_own_output(tmp_path, command, accepts):
    from ltrsched.errors import UserError
    from ltrsched.output_owner import check_output_owner

    for kind, path in _outputs(tmp_path).items():
        if kind == accepts:  # its own: a rerun replaces it (validate: resumes or replaces, validation/outdir.py)
            assert check_output_owner(path, command, (accepts,)).kind == kind
        else:
            with pytest.raises(UserError, match=rf"^--out {path} holds .*, which this `{command}` would "):
                check_output_owner(path, command, (accepts,))
    assert check_output_owner(tmp_path / "new", command, (accepts,)) is None


@pytest.mark.parametrize("kind, message", [
    ("engine-run", "holds a run of the engine (`ltrsched replay -o rep`), which this `validate` would mix with: "
                   "give another --out, or move that output away first"),
    ("simulated-run", "holds a simulated run (`ltrsched simulate`), which this `validate` would mix with"),
    ("profile", "holds a measured profile (`ltrsched profile`: p.json, p.steps.parquet), which this `validate`"),
    ("sweep", "holds a sweep (`ltrsched sweep`: sweep.csv), which this `validate` would mix with"),
])
def test_validate_refuses_another_commands_out_before_the_engine_starts(tmp_path, kind, message):
    out = _outputs(tmp_path)[kind]
    before = sorted(out.rglob("*"))
    r = run_cli("validate", "-n", "5", "--policies", "fcfs", "--emulate", "a100-llama3-8b", "-o", str(out))
    assert_one_line_error(r, f"--out {out} {message}")
    assert sorted(out.rglob("*")) == before  # nothing written, nothing removed


@pytest.mark.parametrize("kind, message", [
    ("validation", "holds a validation (`ltrsched validate`: validate-manifest.json, validation.md), which this "
                   "`replay` would mix with"),
    ("simulated-run", "holds a simulated run (`ltrsched simulate`), which this `replay` would replace"),
    ("validation-engine-run", "holds an engine run of a validation (`ltrsched validate -o val`), which this `replay` "
                              "would replace"),
    ("profile", "holds a measured profile"),
    ("cached-runs", "holds cached runs (runs/, of a `sweep`, `capacity` or `reproduce`)"),
])
def test_replay_refuses_another_commands_out_before_the_engine_starts(tmp_path, kind, message):
    out = _outputs(tmp_path)[kind]
    before = sorted(out.rglob("*"))
    r = run_cli("replay", "-n", "5", "--emulate", "a100-llama3-8b", "-o", str(out))
    assert_one_line_error(r, f"--out {out} {message}")
    assert sorted(out.rglob("*")) == before


def test_an_out_inside_another_commands_runs_is_refused(tmp_path):
    """`validate -o VAL/runs` wrote a report into the validation's runs/ (its rerun then refused VAL); `replay -o
    VAL/runs/new` a run the next validation there called foreign."""
    from ltrsched.errors import UserError
    from ltrsched.output_owner import check_output_owner

    val = _outputs(tmp_path)["validation"]
    for out, command in ((val / "runs", "validate"), (val / "runs" / "new", "replay"),
                         (val / "runs" / "burst" / "fcfs" / "sim", "simulate")):
        with pytest.raises(UserError, match=rf"^--out {out} lies in the runs/ of {val.resolve()}, which holds a "
                                            rf"validation .*: this `{command}` would mix with it; give an --out "
                                            "outside it$"):
            check_output_owner(out, command, ("validation", "engine-run", "simulated-run"))
    check_output_owner(tmp_path / "runs" / "x", "replay", ("engine-run",))  # (a runs/ of no command's output)


def test_profile_does_not_write_over_a_file_that_is_not_a_profile(tmp_path):
    """`profile -o RUN/summary.json` wrote the fitted profile over a replay's summary (and RUN/summary.steps.parquet
    beside it), after the probes ran."""
    from ltrsched.sim.profiles import load_profile
    from ltrsched.sim.profiles.io import save_profile

    outputs = _outputs(tmp_path)
    summary = outputs["engine-run"] / "summary.json"
    before = summary.read_text()
    r = run_cli("profile", "--emulate", "a100-llama3-8b", "--quick", "-o", str(summary))
    assert_one_line_error(r, f"--out {summary} exists and is not a step-time profile, a file of a run of the engine "
                             "(`ltrsched replay -o rep`): `profile` would write over it; give another --out")
    assert summary.read_text() == before and not summary.with_suffix(".steps.parquet").exists()

    from ltrsched.errors import UserError
    from ltrsched.output_owner import check_profile_out

    with pytest.raises(UserError, match=r"exists and is not a step-time profile: `profile` would write over it"):
        (tmp_path / "notes.json").write_text("[1, 2]")
        check_profile_out(tmp_path / "notes.json")
    with pytest.raises(UserError, match=r"lies in the runs/ of .*, which holds a validation"):
        check_profile_out(outputs["validation"] / "runs" / "p.json")
    save_profile(load_profile("a100-llama3-8b"), tmp_path / "mine.json")
    check_profile_out(tmp_path / "mine.json")  # a profile: a rerun replaces it
    check_profile_out(tmp_path / "new.json")
