"""`ltrsched label` resumed in hostile ways: part files of other settings (a settings.json deleted, a part of another
run moved in), files in the part directory that are not its parts, a Ctrl-C. No engine, no model weights: parts are
written directly, and the CLI case runs the engine stand-in (``label_data.FakeLabelDriver``) on a word-level model."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from ltrsched.errors import UserError
from cli_helpers import assert_one_line_error, run_cli_fast


def _settings(**changes):
    from ltrsched.labelling.settings import LabelSettings, Sampling

    base = dict(model="m", model_sha256="a" * 64, max_tokens=8, main=Sampling(0.0, 1.0, 0), sample=Sampling(0.8, 1.0, 1))
    return LabelSettings(**{**base, **changes})


def _rows(settings, keys=("k0", "k1"), run="main") -> list[dict]:
    """A part's rows for prompts ``keys`` made with ``settings`` (as ``labelling.run`` writes them)."""
    from ltrsched.workloads.labels import prompt_digest

    s = settings.sampling(run)
    rows = [dict(key=k, split="eval", run=run, prompt_sha256=prompt_digest(f"prompt {k}"), prompt_tokens=5,
                 output_tokens=3, finish_reason="stop", model=settings.model, model_sha256=settings.model_sha256,
                 temperature=s.temperature, top_p=s.top_p, max_tokens=settings.max_tokens, seed=s.seed,
                 repetition_penalty=s.repetition_penalty) for k in keys]
    if settings.keeps_text:
        for row in rows:
            row["prompt"] = f"prompt {row['key']}"
    return rows


def _write_parts(out, settings, *chunks):
    from ltrsched.labelling.parts import open_parts

    with open_parts(out, settings) as store:
        for rows in chunks:
            store.write(rows)


def _resume(out, settings) -> pl.DataFrame:
    from ltrsched.labelling.parts import open_parts

    with open_parts(out, settings) as store:
        return store.labelled()


@pytest.mark.parametrize("other, diff", [
    (dict(max_tokens=9), "max_tokens 9 there, 8 here"),
    (dict(model_sha256="b" * 64), f'model_sha256 "{"b" * 64}" there'),
])
def test_a_part_of_another_run_moved_in_is_refused_not_mixed(tmp_path, other, diff):
    """A part file of other settings in the part directory (copied from another run's) was read as these settings'
    labels: the labels file mixed two caps (or two models). Refused, and the part is kept."""
    from ltrsched.labelling.parts import parts_dir

    out, elsewhere = tmp_path / "l.parquet", tmp_path / "other.parquet"
    _write_parts(out, _settings(), _rows(_settings(), ["k0"]))
    _write_parts(elsewhere, _settings(**other), _rows(_settings(**other), ["k1"]))
    (moved,) = parts_dir(elsewhere).glob("part-*.parquet")
    shutil.copy(moved, parts_dir(out) / moved.name)
    with pytest.raises(UserError, match=rf"{moved.name} holds labels made with other settings \({diff}.*\): move "
                                        rf"{moved.name} out of .* to resume, or use another --out"):
        _resume(out, _settings())
    assert (parts_dir(out) / moved.name).exists()


def test_parts_whose_settings_file_was_deleted_resume_only_with_their_own_settings(tmp_path):
    """With settings.json deleted, a rerun with other settings recorded its own and took the old parts as its labels
    (the labels file mixed --max-tokens 20 and 30). The parts' rows say what they were made with: a rerun with those
    resumes (and records them again), one with others is refused and records nothing."""
    from ltrsched.labelling.parts import SETTINGS_FILE, parts_dir

    out = tmp_path / "l.parquet"
    sampled = _settings()
    _write_parts(out, sampled, _rows(sampled, ["k0", "k1"]), _rows(sampled, ["k0"], run="sample"))
    recorded = parts_dir(out) / SETTINGS_FILE
    recorded.unlink()
    for other, diff in ((dict(max_tokens=9), "max_tokens 8 there, 9 here"),
                        (dict(model="n"), 'model "m" there, "n" here'),
                        (dict(sample=_settings().sample.__class__(0.8, 1.0, 2)), "sample.seed 1 there, 2 here")):
        with pytest.raises(UserError, match=diff):
            _resume(out, _settings(**other))
        assert not recorded.exists()
    assert _resume(out, _settings())["key"].to_list() == ["k0", "k1", "k0"]
    assert recorded.exists()


def test_a_prompts_file_run_neither_takes_nor_removes_parts_of_the_built_in_prompts(tmp_path):
    """Parts of the built-in prompts (no prompt text) under a --prompts run whose settings.json was deleted were
    removed as damaged (their labels lost). Refused, kept."""
    from ltrsched.labelling.parts import SETTINGS_FILE, parts_dir

    out = tmp_path / "l.parquet"
    _write_parts(out, _settings(), _rows(_settings()))
    (parts_dir(out) / SETTINGS_FILE).unlink()
    with pytest.raises(UserError, match=r"holds labels of the built-in ShareGPT prompts \(no prompt text\), not of "
                                        r"--prompts FILE's"):
        _resume(out, _settings(prompts_sha256="c" * 64))
    assert len(list(parts_dir(out).glob("part-*.parquet"))) == 1


def test_a_readable_file_named_like_a_part_is_refused_and_kept(tmp_path):
    """Any parquet file named part-*.parquet in the part directory that is not labels was removed as 'unreadable'."""
    from ltrsched.labelling.parts import parts_dir

    out = tmp_path / "l.parquet"
    _write_parts(out, _settings(), _rows(_settings()))
    mine = parts_dir(out) / "part-mine.parquet"
    pl.DataFrame({"a": [1, 2]}).write_parquet(mine)
    with pytest.raises(UserError, match=r"part-mine\.parquet: not a complete labels file, missing column\(s\) .*: not "
                                        r"a part file of these labels; move part-mine\.parquet out of"):
        _resume(out, _settings())
    assert mine.exists()


def test_a_part_that_cannot_be_read_is_an_error_not_removed(tmp_path, monkeypatch):
    """A part the system cannot read (permissions, an I/O error) was removed as damaged with its labels."""
    from ltrsched.labelling.parts import parts_dir

    out = tmp_path / "l.parquet"
    _write_parts(out, _settings(), _rows(_settings()))

    def unreadable(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pl, "read_parquet", unreadable)
    with pytest.raises(UserError, match=r"cannot read the part file .*part-.*\.parquet: Permission denied$"):
        _resume(out, _settings())
    monkeypatch.undo()
    assert _resume(out, _settings()).height == 2


# -- through the command line, the engine a stand-in ------------------------------------------------------------------

def _label(tmp_path, monkeypatch, capsys, *options, stop_after=None, after_done=lambda i: None):
    """``ltrsched label`` of 8 prompts of a .txt file on a word-level model, the engine a stand-in that generates
    3, 4, ... tokens (and raises KeyboardInterrupt before request ``stop_after``; calls ``after_done(i)`` once request
    ``i`` is labelled); returns the result and the number of requests served."""
    pytest.importorskip("transformers")
    import ltrsched.engine.runner as runner
    import ltrsched.labelling.generate as generate
    from label_data import FakeLabelDriver
    from test_labels import _tiny_chat_model

    model = tmp_path / "m"
    if not model.exists():
        _tiny_chat_model(model, context=256)
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"please explain topic number {i} in a few words\n" for i in range(8)))
    served = []

    def serve(driver, requests, on_done, window):
        for i, r in enumerate(requests):
            if i == stop_after:
                raise KeyboardInterrupt
            served.append(i)
            on_done(i, generate.Generated(len(r.prompt_ids), 3 + i, "stop"))
            after_done(i)

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runner, "VllmDriver", FakeLabelDriver)
    monkeypatch.setattr(generate, "serve_requests", serve)
    r = run_cli_fast(capsys, "label", "--model", model, "--prompts", prompts, "--out", tmp_path / "l.parquet",
                     "--chunk", "2", *options)
    return r, len(served)


def test_a_rerun_with_another_cap_after_settings_json_was_deleted_is_one_line(tmp_path, monkeypatch, capsys):
    """The case end to end: a run stopped by Ctrl-C, its settings.json deleted, a rerun with another --max-tokens
    wrote a labels file of two caps (3 labels at 20 tokens, 5 at 30)."""
    from ltrsched.labelling.parts import SETTINGS_FILE, parts_dir

    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20", stop_after=3)
    assert r.returncode == 130 and served == 3
    (parts_dir(tmp_path / "l.parquet") / SETTINGS_FILE).unlink()
    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "30")
    assert_one_line_error(r, "holds labels made with other settings (max_tokens 20 there, 30 here)")
    assert served == 0 and not (tmp_path / "l.parquet").exists()
    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20")
    assert r.returncode == 0 and served == 5, r.stderr
    assert pl.read_parquet(tmp_path / "l.parquet")["max_tokens"].to_list() == [20] * 8


def test_a_damaged_settings_file_can_be_deleted_to_resume(tmp_path):
    """A settings.json that is not one said to delete the whole part directory (every label made so far); deleting
    the file alone resumes, the parts' rows checked against the run's settings instead."""
    from ltrsched.labelling.parts import SETTINGS_FILE, parts_dir

    out = tmp_path / "l.parquet"
    _write_parts(out, _settings(), _rows(_settings()))
    recorded = parts_dir(out) / SETTINGS_FILE
    recorded.write_text('{"model": "m", "max_tok')  # (a disk that lost the end of it)
    with pytest.raises(UserError, match=r"settings\.json is not a labels settings file: delete it to resume \(the part "
                                        r"files' rows are checked against the settings\), or delete .* to start over$"):
        _resume(out, _settings())
    recorded.unlink()
    assert _resume(out, _settings())["key"].to_list() == ["k0", "k1"]


def test_ctrl_c_keeps_the_labels_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    """A run stopped by Ctrl-C kept its labels, but said only "aborted": nothing of what was kept or how to go on."""
    from ltrsched.labelling.parts import parts_dir

    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20", stop_after=3)
    assert r.returncode == 130 and served == 3
    assert r.stderr.splitlines() == [
        f"note: label stopped: 3 of the 8 prompt(s) this run was to label are labelled and kept in "
        f"{parts_dir(tmp_path / 'l.parquet')} (3 labels in all); the same command labels the other 5", "aborted"]
    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20", stop_after=2)  # (resumed: 5 to label)
    assert r.returncode == 130 and served == 2
    assert "2 of the 5 prompt(s) this run was to label" in r.stderr and "(5 labels in all); the same command labels the other 3" in r.stderr


def test_sigterm_keeps_the_finished_labels_of_unfinished_chunks(tmp_path, monkeypatch, capsys):
    """`kill` (SIGTERM, a batch system's time limit) ended the run at once: the finished prompts of the chunk in flight
    were lost (here 1 of 3; up to --chunk - 1 per chunk). It stops as Ctrl-C does, and the handler before is put back.
    (The test's own handler stands in for the default action, which would end pytest.)"""
    import os
    import signal

    from ltrsched.labelling.parts import parts_dir

    caught = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20",
                           after_done=lambda i: i == 2 and os.kill(os.getpid(), signal.SIGTERM))
        assert caught == [] and r.returncode == 143 and served == 3, (caught, r)  # (128 + SIGTERM, as the shell says)
        assert "note: label stopped: 3 of the 8 prompt(s)" in r.stderr
        rows = pl.concat([pl.read_parquet(p) for p in parts_dir(tmp_path / "l.parquet").glob("part-*.parquet")])
        assert rows.height == 3
        os.kill(os.getpid(), signal.SIGTERM)  # (the handler before is back)
        assert caught == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_resumed_run_in_another_dtype_is_refused_and_unrecorded_ones_resume(tmp_path):
    """The dtype the model is served in was no resume setting: a run begun in float32 (the CPU default) and resumed in
    bfloat16 (--dtype, or on a GPU, where auto serves a float32 model at 16 bits) mixed the lengths of two numeric
    precisions in one labels file. Settings recorded before the dtype resume in any."""
    import json

    from ltrsched.labelling.parts import SETTINGS_FILE, parts_dir

    out = tmp_path / "l.parquet"
    _write_parts(out, _settings(dtype="float32"), _rows(_settings()))
    with pytest.raises(UserError, match='other settings \\(dtype "float32" there, "bfloat16" here\\)'):
        _resume(out, _settings(dtype="bfloat16"))
    recorded = parts_dir(out) / SETTINGS_FILE
    old = json.loads(recorded.read_text())
    del old["dtype"]
    recorded.write_text(json.dumps(old))
    assert _resume(out, _settings(dtype="bfloat16")).height == 2


def test_label_records_the_served_dtype_and_refuses_another_on_resume(tmp_path, monkeypatch, capsys):
    """Through the command line: the default (float32 on a CPU) is recorded, and --dtype bfloat16 on the same part
    directory is one line."""
    import json

    from ltrsched.labelling.parts import SETTINGS_FILE, parts_dir

    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20", stop_after=3)
    assert r.returncode == 130
    assert json.loads((parts_dir(tmp_path / "l.parquet") / SETTINGS_FILE).read_text())["dtype"] == "float32"
    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20", "--dtype", "bfloat16")
    assert_one_line_error(r, 'holds labels made with other settings (dtype "float32" there, "bfloat16" here)')
    assert served == 0


def _part_rows(out) -> pl.DataFrame:
    """Every row of ``out``'s part files (none: an empty frame)."""
    from ltrsched.labelling.parts import parts_dir

    parts = sorted(parts_dir(out).glob("part-*.parquet"))
    return pl.concat([pl.read_parquet(p) for p in parts]) if parts else pl.DataFrame()


def test_sighup_keeps_the_finished_labels_of_unfinished_chunks_and_exits_129(tmp_path, monkeypatch, capsys):
    """A closed terminal or a dropped ssh session (SIGHUP) ended the run at once: the finished prompts of the chunk in
    flight were lost (here 1 of 3). It stops as SIGTERM does, exit code 129 (128 + SIGHUP), and the handler before is
    put back. (The test's own handler stands in for the default action, which would end pytest.)"""
    import os
    import signal

    caught = []
    before = signal.signal(signal.SIGHUP, lambda signum, frame: caught.append(signum))
    try:
        r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20",
                           after_done=lambda i: i == 2 and os.kill(os.getpid(), signal.SIGHUP))
        assert caught == [] and r.returncode == 129 and served == 3, (caught, r)
        assert "note: label stopped: 3 of the 8 prompt(s)" in r.stderr and r.stderr.endswith("aborted\n"), r.stderr
        assert _part_rows(tmp_path / "l.parquet").height == 3
        os.kill(os.getpid(), signal.SIGHUP)  # (the handler before is back)
        assert caught == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, before)
    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20")  # (resumed: the other 5)
    assert r.returncode == 0 and served == 5 and pl.read_parquet(tmp_path / "l.parquet").height == 8, r.stderr


def test_an_ignored_sighup_stays_ignored(tmp_path, monkeypatch, capsys):
    """Under ``nohup`` (SIGHUP ignored) a closed terminal does not stop the run, and SIGHUP is ignored after it too."""
    import os
    import signal

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20",
                           after_done=lambda i: i == 2 and os.kill(os.getpid(), signal.SIGHUP))
        assert r.returncode == 0 and served == 8, r
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize("second", ["SIGINT", "SIGTERM"])
def test_a_second_signal_waits_until_the_kept_labels_are_written(tmp_path, monkeypatch, capsys, second):
    """A second Ctrl-C (or SIGTERM) while a stopped run wrote its finished prompts interrupted the write: no torn part
    (writes are atomic: the temp file is removed), but those labels were lost. The signals wait until the part is
    written, the first says so once; the run exits with the first signal's code, and the handlers before are back."""
    import os
    import signal

    from ltrsched.labelling.parts import PartStore, parts_dir

    write, stopped = PartStore.write, []

    def write_signalled(store, rows):  # (two more signals arrive as the stopped run writes its last part)
        if stopped:
            os.kill(os.getpid(), getattr(signal, second))
            os.kill(os.getpid(), getattr(signal, second))
        return write(store, rows)

    def stop(i):
        if i == 2:
            stopped.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(PartStore, "write", write_signalled)
    caught = []
    # (a suite started in the background from a script, as CI may start it, inherits SIGINT ignored, which a run keeps)
    before_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20", after_done=stop)
        assert r.returncode == 143 and served == 3 and caught == [], (caught, r)
        assert r.stderr.count(f"note: label: {second}: still writing 1 label(s), please wait\n") == 1, r.stderr
        assert _part_rows(tmp_path / "l.parquet").height == 3  # (2 without the wait: the 3rd label was lost)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        os.kill(os.getpid(), signal.SIGTERM)
        assert caught == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, before_int)
    assert not list(parts_dir(tmp_path / "l.parquet").glob(".*tmp*"))
    monkeypatch.setattr(PartStore, "write", write)
    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20")
    assert r.returncode == 0 and served == 5, r.stderr


def test_ctrl_c_during_a_chunks_write_keeps_that_chunk(tmp_path, monkeypatch, capsys):
    """A Ctrl-C that lands while a finished chunk is written (before its part is renamed into place) lost that chunk:
    its rows were taken from the chunks in flight before the write, so the stopped run did not write them either."""
    from ltrsched.labelling.parts import PartStore

    write, calls = PartStore.write, []

    def write_interrupted(store, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise KeyboardInterrupt  # (atomic.write_bytes removes its temp file: no part)
        return write(store, rows)

    monkeypatch.setattr(PartStore, "write", write_interrupted)
    r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20")
    assert r.returncode == 130 and served == 2 and calls == [2, 2], (calls, r)
    assert "note: label stopped: 2 of the 8 prompt(s)" in r.stderr
    assert _part_rows(tmp_path / "l.parquet")["key"].n_unique() == 2  # (0 before)


def test_sighup_from_a_terminal_that_hung_up_keeps_the_labels_and_exits_129(tmp_path, monkeypatch, capsys):
    """SIGHUP as a terminal hangs up: every write to it fails (EIO). The progress bar's last line failed before the
    kept labels were written (they were lost), and the stopped note and "aborted" turned the stop into an OSError
    (exit 1). The labels are written and the exit code is 129. (A bar that, as tqdm's on a terminal, writes as it
    closes; stderr a stream that refuses every write from the hang-up on.)"""
    import errno
    import os
    import signal
    import sys

    import ltrsched.progress

    class HungUp:
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

        def flush(self):
            raise OSError(errno.EIO, "Input/output error")

        def isatty(self):
            return True

    class TerminalBar:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def update(self, n):
            pass

        def set_postfix(self, **values):
            pass

        def close(self):
            sys.stderr.write("\n")

    def hang_up(i):
        if i == 2:
            sys.stderr.stream = HungUp()  # (the CLI's Notices in front of it)
            os.kill(os.getpid(), signal.SIGHUP)

    monkeypatch.setattr(ltrsched.progress, "progress_bar", lambda *args, **kwargs: TerminalBar())
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # (restored by the run: not reached)
    try:
        r, served = _label(tmp_path, monkeypatch, capsys, "--max-tokens", "20", after_done=hang_up)
    finally:
        signal.signal(signal.SIGHUP, before)
    assert r.returncode == 129 and served == 3 and r.stderr.strip() == "", r  # (nothing after the hang-up)
    assert _part_rows(tmp_path / "l.parquet").height == 3
