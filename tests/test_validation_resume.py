"""`ltrsched validate` resumed after an interruption: the engine runs it completed are kept, only the missing ones
run (ltrsched.validation.resume; run here on the emulated engine: vLLM's real scheduler on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import make_workload
from ltrsched.errors import UserError


def _cli(capsys, *args) -> tuple[int, str, str]:
    """``ltrsched ARGS`` in this process (so that a test can count and break engine runs): exit code, stdout,
    stderr."""
    from ltrsched.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


class _Counts:
    """Engine starts and engine runs in this process; ``fail_run``: the run (1-based) that is interrupted as by
    Ctrl-C."""

    def __init__(self, monkeypatch, fail_run: int | None = None):
        from ltrsched.validation import commands, engines

        self.starts = self.runs = 0
        self.fail_run = fail_run
        start, run = commands.start_engine, engines.Engine.run

        def counted_start(**kw):
            self.starts += 1
            return start(**kw)

        def counted_run(eng, *a, **kw):
            self.runs += 1
            if self.runs == self.fail_run:
                raise KeyboardInterrupt
            return run(eng, *a, **kw)

        monkeypatch.setattr(commands, "start_engine", counted_start)
        monkeypatch.setattr(engines.Engine, "run", counted_run)


def _manifest(out):
    return json.loads((out / "validate-manifest.json").read_text())


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_an_interrupted_validate_resumes_running_only_its_missing_engine_runs(tmp_path, monkeypatch, capsys):
    """An interrupted validation lost every engine run it had completed: the same command into its --out
    replaced them all. Now it keeps the complete runs, reruns the one cut off mid-way, and reports as an
    uninterrupted validation does."""
    wl = tmp_path / "wl.parquet"
    rng = np.random.default_rng(0)
    make_workload(rng.integers(5, 300, 40), rng.integers(1, 80, 40)).save(wl)
    args = ["validate", "-w", str(wl), "--policies", "fcfs;srtf", "--repeats", "2", "--emulate", "a100-llama3-8b",
            "--num-gpu-blocks", "60"]
    ref, out = tmp_path / "ref", tmp_path / "val"
    code, _, err = _cli(capsys, *args, "--out", str(ref))
    assert code == 0, err

    counts = _Counts(monkeypatch, fail_run=2)  # Ctrl-C during the second engine run (srtf, repeat 0)
    code, _, err = _cli(capsys, *args, "--out", str(out))
    assert code == 130 and counts.runs == 2
    runs = out / "runs" / "burst"
    kept = (runs / "fcfs" / "engine-0" / "summary.json").read_bytes()
    assert not (runs / "srtf" / "engine-0" / "summary.json").exists() and not (out / "validation.md").exists()
    assert _manifest(out)["finished"] is False
    # a rerun that differs (a typo) does not delete the completed run it came to resume
    code, _, err = _cli(capsys, *args[:-1], "61", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (f"--out {out} holds an unfinished validation with 1 completed engine run(s) that differs from this one "
            "(--num-gpu-blocks 60 there, 61 now, and 1 more difference): rerun its own command to resume it") in err
    assert (runs / "fcfs" / "engine-0" / "summary.json").read_bytes() == kept
    # what a kill in the middle of saving the run leaves: a run file without its summary.json, a temp file
    (runs / "srtf" / "engine-0").mkdir(parents=True, exist_ok=True)
    (runs / "srtf" / "engine-0" / "requests.parquet").write_bytes(b"cut off")
    (runs / "srtf" / "engine-0" / ".summary.json.tmp999").write_text("{")

    counts = _Counts(monkeypatch)
    code, stdout, err = _cli(capsys, *args, "--out", str(out))  # the same command: resumed by default
    assert code == 0, err
    assert (counts.starts, counts.runs) == (1, 3)  # one engine start, the three missing runs only
    assert f"resuming the unfinished validation in {out}: 1 of 4 engine runs kept" in err
    assert "resumed: 1 of 4 engine runs kept from an earlier start of this validation, 3 run now" in stdout
    assert "Resumed: 1 of 4 engine runs kept" in (out / "validation.md").read_text()
    assert (runs / "fcfs" / "engine-0" / "summary.json").read_bytes() == kept  # the kept run, untouched
    assert not (runs / "srtf" / "engine-0" / ".summary.json.tmp999").exists()
    assert pl.read_csv(out / "validation.csv").equals(pl.read_csv(ref / "validation.csv"))  # as if never cut off
    assert _manifest(out)["finished"] is True

    # --resume on the finished validation: every engine run kept, no engine started, the same report
    counts = _Counts(monkeypatch)
    code, stdout, err = _cli(capsys, *args, "--out", str(out), "--resume")
    assert code == 0, err
    assert (counts.starts, counts.runs) == (0, 0) and "engine: not started, every engine run kept" in stdout
    assert pl.read_csv(out / "validation.csv").equals(pl.read_csv(ref / "validation.csv"))

    # --resume with another argument: one line naming it, nothing touched
    before = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
    code, _, err = _cli(capsys, *args[:-1], "61", "--out", str(out), "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (f"error: --resume: --out {out} holds another validation (--num-gpu-blocks 60 there, 61 now, and 1 more "
            "difference): give a new --out, or leave out --resume to replace it") in err
    assert sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == before

    # the same command on a finished validation measures it again (a rerun is a new measurement)
    counts = _Counts(monkeypatch)
    code, stdout, err = _cli(capsys, *args, "--out", str(out))
    assert code == 0, err
    assert (counts.starts, counts.runs) == (1, 4) and "finished; --resume would have kept its engine runs" in err
    assert "resumed" not in stdout


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_a_killed_validate_spread_repeats_resumes_starting_only_the_passes_with_missing_runs(tmp_path, capsys):
    """`validate --spread-repeats` killed (SIGKILL) during its second pass: run again, the first pass's runs are
    kept and start no engine, the second pass runs only its missing runs on an engine start of its own, and the
    report is the uninterrupted validation's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    wl = tmp_path / "wl.parquet"
    rng = np.random.default_rng(1)
    make_workload(rng.integers(5, 300, 30), rng.integers(1, 60, 30)).save(wl)
    args = ["validate", "-w", str(wl), "--policies", "fcfs;srtf", "--repeats", "2", "--spread-repeats",
            "--emulate", "a100-llama3-8b", "--num-gpu-blocks", "60"]
    ref, out = tmp_path / "ref", tmp_path / "val"
    code, _, err = _cli(capsys, *args, "--out", str(ref))
    assert code == 0, err

    runs = out / "runs" / "burst"
    first_pass = [runs / spec / "engine-0" / "summary.json" for spec in ("fcfs", "srtf")]
    proc = subprocess.Popen([sys.executable, "-m", "ltrsched.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not all(p.is_file() for p in first_pass) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the second pass is starting its engine (a fresh interpreter)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(3 * 0.5 + 1)  # its engine process ends within a poll of its parent (fresh_process.PARENT_POLL_S)
    assert all(p.is_file() for p in first_pass) and _manifest(out)["finished"] is False
    second_pass = [runs / spec / "engine-1" / "summary.json" for spec in ("fcfs", "srtf")]
    missing = sum(not p.is_file() for p in second_pass)
    assert missing > 0  # (killed before its second pass finished)
    first_pids = {json.loads(p.read_text())["meta"]["engine_pid"] for p in first_pass}

    code, stdout, err = _cli(capsys, *args, "--out", str(out))
    assert code == 0, err
    assert "engine start 1 of 2 not needed: its runs are kept" in stdout and "engine start 2 of 2 done" in stdout
    assert f"resumed: {4 - missing} of 4 engine runs kept from an earlier start of this validation" in stdout
    assert {json.loads(p.read_text())["meta"]["engine_pid"] for p in first_pass} == first_pids  # kept as they were
    assert pl.read_csv(out / "validation.csv").equals(pl.read_csv(ref / "validation.csv"))
    assert _manifest(out)["finished"] is True


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_resume_refuses_runs_measured_by_other_ltrsched_code(tmp_path, monkeypatch, capsys):
    """The resume compared ltrsched's version string, which stays "0.1.0" while the adapter or a policy is edited:
    runs measured by the old code were kept beside runs of the new. Now the package's code is part of what makes a
    validation the same."""
    from ltrsched.validation import resume

    args = ["validate", "-n", "12", "--policies", "fcfs;srtf", "--emulate", "a100-llama3-8b", "--out",
            str(tmp_path / "val")]
    _Counts(monkeypatch, fail_run=2)  # interrupted after its first engine run
    code, _, err = _cli(capsys, *args)
    assert code == 130, err
    monkeypatch.setattr(resume, "package_code_digest", lambda: "0" * 64)  # (a .py file edited since)
    counts = _Counts(monkeypatch)
    code, _, err = _cli(capsys, *args, "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "ltrsched's own code differs (a .py file of the package changed since those runs)" in err
    assert (counts.starts, counts.runs) == (0, 0)


def test_the_package_code_digest_follows_its_python_files_only(tmp_path):
    import shutil

    import ltrsched
    from ltrsched.validation.resume import package_code_digest

    copy = tmp_path / "ltrsched"
    shutil.copytree(Path(ltrsched.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert package_code_digest(copy) == package_code_digest()
    (copy / "notes.txt").write_text("not code")
    assert package_code_digest(copy) == package_code_digest()
    policy = copy / "policies" / "fcfs.py"
    policy.write_text(policy.read_text() + "\n# edited\n")
    assert package_code_digest(copy) != package_code_digest()


def test_resume_refuses_a_validation_recorded_without_its_arguments(tmp_path, capsys):
    """A validation an earlier ltrsched wrote (manifest version 1) cannot be told the same: --resume refuses it
    before any engine starts; without --resume it is replaced, as before."""
    out = tmp_path / "val"
    (out / "runs" / "burst" / "fcfs" / "engine").mkdir(parents=True)
    (out / "runs" / "burst" / "fcfs" / "engine" / "summary.json").write_text("{}")
    (out / "validate-manifest.json").write_text(json.dumps({
        "format": "ltrsched-validate-manifest", "format_version": 1, "command": "ltrsched validate",
        "runs": ["runs/burst/fcfs/engine", "runs/burst/fcfs/sim"]}))
    code, _, err = _cli(capsys, "validate", "-n", "5", "--policies", "fcfs", "--emulate", "a100-llama3-8b",
                        "--out", str(out), "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert ("holds another validation (written by an earlier ltrsched, which did not record its arguments): "
            "give a new --out, or leave out --resume to replace it") in err
    assert (out / "runs" / "burst" / "fcfs" / "engine" / "summary.json").read_text() == "{}"


def test_a_second_validate_into_a_running_ones_out_is_refused(tmp_path, capsys):
    """A validate run again into the --out of one still running (another terminal; the first thought dead) would
    resume it: both running the same missing engine runs into the same files. It is refused before any engine
    starts (what the first holds: an flock the kernel releases when it ends or dies)."""
    from ltrsched.experiments.runlock import run_lock

    out = tmp_path / "val"
    args = ["validate", "-n", "5", "--policies", "fcfs", "--emulate", "a100-llama3-8b", "--out", str(out)]
    with run_lock(out / ".validate.lock", wait=False) as held:  # what the running validate holds
        assert held
        code, _, err = _cli(capsys, *args, "--rates", "nope")
        assert code == 2 and "--rates must be numbers" in err  # (bad arguments first, as before)
        code, _, err = _cli(capsys, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert (f"error: --out {out} is in use by another `ltrsched validate`, still running: wait for it to end, "
                "or give another --out") in err
        assert not (out / "validate-manifest.json").exists()


def test_the_first_difference_names_an_option_before_what_it_changed():
    from ltrsched.validation.resume import first_difference

    old = {"--seed": 0, "--policies": ["fcfs", "srtf"], "cases": ["burst"], "workload requests": ["a"]}
    assert first_difference(old, dict(old)) is None
    new = {**old, "--seed": 1, "workload requests": ["b"]}
    assert first_difference(old, new) == "--seed 0 there, 1 now, and 1 more difference"
    assert first_difference(old, {**old, "--policies": ["fcfs"]}) == "--policies 'fcfs;srtf' there, 'fcfs' now"
    assert first_difference(old, {**old, "workload requests": ["b"]}).startswith("the workload's requests differ")
    assert first_difference(old, {**old, "--max-tokens": 5}) == "--max-tokens not given there, 5 now"


class _Failing:
    def run(self, *a, **kw):
        raise RuntimeError("engine died")


def test_an_engine_run_cut_off_is_not_taken_for_the_complete_run_before_it(tmp_path):
    """A run is complete when its own summary.json exists: a run started again in a directory (a resumed
    validation's incomplete run) removes the earlier summary.json first, so a run cut off there leaves none."""
    from ltrsched.results import RunResult
    from ltrsched.validation.engine_passes import run_one
    from ltrsched.validation.resume import kept_runs

    d = tmp_path / "runs" / "burst" / "fcfs" / "engine"
    facts = {"host": "h", "num_gpu_blocks": 9, "block_size": 16, "max_resident_seqs": 8, "max_model_len": 99}
    requests = pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [3, 4]})
    from ltrsched.validation.resume import compared_keys

    summary = {**dict.fromkeys(compared_keys()), "steps": 1}  # (null: undefined)
    RunResult(requests, summary, None, {"validation": "abc", "case": "burst", "repeat": 0, "policy": "fcfs",
                                        "engine_facts": facts}).save(d)
    dirs = {("burst", "fcfs", 0): d}
    assert list(kept_runs(dirs, "abc")) == [("burst", "fcfs", 0)]
    assert kept_runs(dirs, "another") == {}  # another validation's run is not kept
    with pytest.raises(RuntimeError):
        run_one(_Failing(), None, "fcfs", d, False)
    assert kept_runs(dirs, "abc") == {}


def test_a_kept_run_gives_the_prompt_lengths_its_engine_served(tmp_path):
    """With --prompts text the engine serves the model's token counts; a validation whose every run is kept
    starts no engine, and takes them from the kept run for the simulator."""
    from ltrsched.results import RunResult
    from ltrsched.validation.resume import KeptEngine, served_workload

    wl = make_workload([10, 20, 30], [5, 5, 5])
    ids = wl.df["request_id"].to_list()
    run = RunResult(pl.DataFrame({"request_id": ids[::-1], "prompt_tokens": [33, 22, 11]}), {}, None,
                    {"case": "burst", "engine_facts": {"host": "h", "num_gpu_blocks": 9, "block_size": 16,
                                                       "max_resident_seqs": 8, "max_model_len": 99}})
    assert served_workload(wl, run, "random") is wl
    served = served_workload(wl, run, "text")
    assert served.df["prompt_tokens"].to_list() == [11, 22, 33]
    assert served.df["text_prompt_tokens"].to_list() == [10, 20, 30]
    expected = KeptEngine.of({("burst", "fcfs", 0): run})
    expected.check(expected.facts, {"burst": served}, "engine start 2")  # the same engine, the same prompts
    with pytest.raises(UserError, match="engine start 2 serves other prompt lengths in case 'burst'"):
        expected.check(expected.facts, {"burst": wl}, "engine start 2")
    from dataclasses import replace

    with pytest.raises(UserError, match="engine start 2 built another engine than the kept runs'"):
        expected.check(replace(expected.facts, num_gpu_blocks=10), {}, "engine start 2")


def test_a_model_directory_is_the_same_when_its_files_are_rewritten_alike(tmp_path, monkeypatch):
    """A built-in model's config.json is written again by every command: told apart by modification time, the real
    CPU engine's validation was never the same validation twice, and could not be resumed."""
    from ltrsched.engine.config import model_dir
    from ltrsched.validation import resume

    import os
    import time

    first = resume._model_files(model_dir("llama-tiny"))
    time.sleep(0.01)
    assert resume._model_files(model_dir("llama-tiny")) == first  # (rewritten meanwhile)
    (tmp_path / "m").mkdir()
    for name in ("config.json", "weights.safetensors"):
        (tmp_path / "m" / name).write_text(name)
    monkeypatch.setattr(resume, "HASHED_MODEL_FILE_BYTES", len("config.json"))  # (weights: by size and time)
    before = resume._model_files(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("config.json")  # the same bytes again
    assert resume._model_files(tmp_path / "m") == before
    (tmp_path / "m" / "config.json").write_text("config.jsoN")  # other bytes
    assert resume._model_files(tmp_path / "m") != before
    (tmp_path / "m" / "config.json").write_text("config.json")
    os.utime(tmp_path / "m" / "weights.safetensors", ns=(1, 1))  # weights replaced (a new modification time)
    assert resume._model_files(tmp_path / "m") != before


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.cpu_engine
def test_a_killed_validate_on_the_cpu_engine_resumes_with_its_completed_runs(tmp_path):
    """The real CPU engine (llama-tiny), killed after its first engine run: run again, that run is kept and the
    engine runs the other one only (its validation's arguments, model files and machine included, match)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from test_cli_simulate import run_cli

    out = tmp_path / "val"
    args = ["validate", "-n", "6", "--policies", "fcfs;srtf", "--model", "llama-tiny", "--out", str(out)]
    first = out / "runs" / "burst" / "fcfs" / "engine" / "summary.json"
    proc = subprocess.Popen([sys.executable, "-m", "ltrsched.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 400
        while not first.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # (the second run takes seconds: killed during it)
    finally:
        proc.kill()
        proc.wait()
    assert first.is_file() and not (out / "validation.md").exists()
    kept = first.read_bytes()
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed: 1 of 2 engine runs kept from an earlier start of this validation, 1 run now" in r.stdout
    assert first.read_bytes() == kept and "Resumed: 1 of 2" in (out / "validation.md").read_text()
