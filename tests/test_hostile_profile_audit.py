"""Hostile step-time profiles where they are written and where a validation scales them (the reader's own checks are
in test_profiles.py and test_hostile_sim_inputs.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import make_workload
from ltrsched.errors import UserError
from ltrsched.sim.profiles import load_profile, save_profile
from ltrsched.sim.profiles.model import MIN_STEP_S


def test_a_profile_whose_file_would_not_load_is_not_written(tmp_path):
    """``ltrsched profile --emulate`` on a profile at a key's limit (1 s per KV token) fitted 1.0000000000000164 and
    wrote a file that ``simulate -p`` then refused; saving now checks the text it writes as loading does."""
    fitted = replace(load_profile("cpu-llama-tiny"), decode_attention_s_per_kv_token=1.0000000000000164)
    path = tmp_path / "p.json"
    with pytest.raises(UserError) as exc:
        save_profile(fitted, path)
    assert str(exc.value).startswith(f"profile 'cpu-llama-tiny' (not written to {str(path)!r}): key "
                                     "'decode_attention_s_per_kv_token' is 1.0000000000000164, more than")
    assert not path.exists()
    save_profile(replace(fitted, decode_attention_s_per_kv_token=1.0), path)  # (at the limit: written, and loads)
    assert load_profile(path).decode_attention_s_per_kv_token == 1.0


def test_the_simulator_at_an_engine_runs_own_speed_is_left_out_where_its_steps_would_be_too_short():
    """``validate -p`` with a profile 15,000 times slower than the engine: the simulator at the run's own speed (a
    factor of 6.7e-05) ended the validation, after every engine run, in an error about a profile 'NAMEx6.71e-05' the
    user never named. It is left out (None) as an unknown speed is; a factor whose lightest step is still the
    simulator's shortest runs."""
    from ltrsched.sim import SimConfig
    from ltrsched.validation.commands import too_fast_note
    from ltrsched.validation.own_speed import lightest_step_s, simulate_at_speed, too_fast_to_simulate

    profile = load_profile("cpu-llama-tiny")
    wl = make_workload([20, 40, 60], [3, 5, 7])
    config = SimConfig(profile=profile, block_size=128, semantics="vllm-v1", preemption="recompute")
    floor = MIN_STEP_S / lightest_step_s(profile)  # the smallest factor the simulator can run
    assert too_fast_to_simulate(profile, floor * 0.99) and not too_fast_to_simulate(profile, floor * 1.01)
    assert simulate_at_speed(wl, "fcfs", config, profile, floor * 0.5) is None
    assert simulate_at_speed(wl, "fcfs", config, profile, floor * 1.01).summary["num_requests"] == 3
    note = too_fast_note([("fcfs on burst, repeat 1 (v/runs/burst/fcfs/engine)", 6.71e-05), ("x", 1e-5)], "slow.json")
    assert "\n" not in too_fast_note([("x", 1e-5)], "a\nb.json")
    assert note.startswith("engine run fcfs on burst, repeat 1 (v/runs/burst/fcfs/engine) (and 1 more) took 6.71e-05 "
                           "times the step times of profile slow.json; the report leaves out the simulator at that "
                           "speed")


@pytest.mark.parametrize("content, says", [(b"", "the file is empty; a profile is a JSON object"),
                                           (b" \n\t\n", "the file is empty (blank: white space only); a profile"),
                                           (b"\xef\xbb\xbf\n", "the file is empty (blank: white space only)")])
def test_an_empty_profile_file_is_called_empty(tmp_path, capsys, content, says):
    """An empty profile file (a failed copy, a redirect that wrote nothing) was 'not valid JSON (Expecting value at
    line 1)', as if its text were broken."""
    from cli_helpers import assert_one_line_error, run_cli_fast

    path = tmp_path / "p.json"
    path.write_bytes(content)
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,5\n")
    r = run_cli_fast(capsys, "simulate", "-w", workload, "-p", path, "--no-progress")
    assert_one_line_error(r, f"error: {path}: {says}")


def test_validate_notes_a_profile_of_another_model_than_the_engine_serves(monkeypatch):
    """``validate -p`` with a profile of a 70B model beside an engine serving a tiny one compared their runs without a
    word (the report's errors then were the models', not the simulator's); the note names the first size that
    differs. The engine's model is the served one's (its config.json) or, emulated, the emulated profile's."""
    from types import SimpleNamespace

    from ltrsched.validation import engines
    from ltrsched.validation.commands import model_mismatch

    tiny, big = load_profile("cpu-llama-tiny"), load_profile("a100-llama3-70b-tp8")
    note = model_mismatch(big, None, "cpu-llama-tiny")
    assert note == ("the profile a100-llama3-70b-tp8 times a model of other sizes "
                    "(meta-llama/Meta-Llama-3-70B-Instruct: num_layers 80) than the engine serves "
                    "(llama-tiny (profile cpu-llama-tiny): 2), so the simulator's step times are another model's: "
                    "give --profile a profile of this model (`ltrsched profile`)")
    assert model_mismatch(tiny, None, "cpu-llama-tiny") is None
    assert model_mismatch(replace(big, name="big\nmodel"), None, "cpu-llama-tiny").startswith(
        "the profile big\\nmodel times")  # (one line: a hand-edited file's name may hold a line break)
    # (the served model's config.json as served_model_config reads it: reading it checks the architecture against
    # transformers', whose import takes 10 s)
    monkeypatch.setattr(engines, "served_model_config", lambda config: dict(tiny.model_config))
    config = SimpleNamespace(model="llama-tiny")
    assert model_mismatch(tiny, config, None) is None  # (the profile measured on this model)
    assert "num_layers 80) than the engine serves (" in model_mismatch(big, config, None)


@pytest.mark.parametrize("encode, says", [
    (lambda text: text.encode("utf-16"), "the file is UTF-16 text (its byte-order mark), not UTF-8; save it as UTF-8"),
    (lambda text: __import__("gzip").compress(text.encode()), "the file is gzip-compressed; decompress it first"),
    (lambda text: text.replace('"name": "cpu-llama-tiny"', '"name": "caf\xe9"').encode("latin-1"),
     ":4: not valid UTF-8: byte 0xe9 (byte 14 of the line"),
])
def test_a_profile_file_that_is_no_utf8_text_says_what_it_is(tmp_path, capsys, encode, says):
    """A profile saved as UTF-16 (Windows' "Unicode"), gzipped, or in Latin-1 was "cannot read profile file PATH:
    'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"; each is named as the workload reader names
    it (:mod:`ltrsched.workloads.utf8`)."""
    from cli_helpers import assert_one_line_error, run_cli_fast
    from ltrsched.sim.profiles.io import dumps_profile

    path = tmp_path / "p.json"
    path.write_bytes(encode(dumps_profile(load_profile("cpu-llama-tiny"))))
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,5\n")
    r = run_cli_fast(capsys, "simulate", "-w", workload, "-p", path, "--no-progress")
    assert_one_line_error(r, f"error: {path}", says)


def test_a_profile_path_that_is_a_loop_of_links_says_so(tmp_path, capsys):
    """It was "cannot read profile file PATH: [Errno 40] Too many levels of symbolic links: 'PATH'"."""
    from cli_helpers import assert_one_line_error, run_cli_fast

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.symlink_to(b)
    b.symlink_to(a)
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,5\n")
    r = run_cli_fast(capsys, "simulate", "-w", workload, "-p", a, "--no-progress")
    assert_one_line_error(r, f"error: profile file {a} is a symbolic link that leads back to itself (a loop of links)")
    assert "Errno" not in r.stderr


def test_fit_steps_refuses_a_log_it_cannot_fit_with_a_typed_error():
    """A step log without the columns the fit reads (a simulator's steps.parquet times no cycle) was a polars
    ColumnNotFoundError; too few usable steps a plain ValueError. Both are ArgumentValueError: a ValueError to Python,
    one line with exit code 2 on a command line."""
    import polars as pl

    from ltrsched.errors import ArgumentValueError
    from ltrsched.validation.profiling import fit_steps

    sim_log = pl.DataFrame({"start": [0.0], "num_prefill_tokens": [4], "num_decode_seqs": [0]})
    with pytest.raises(ArgumentValueError, match=r"lacks the column\(s\) cycle, num_prefill_seqs, "
                                                 r"decode_context_tokens, prefill_attention_pairs a profile's fit"):
        fit_steps(sim_log, overhead_from_log=False)
    one = pl.DataFrame({"start": [2e4], "cycle": [0.01], "num_prefill_tokens": [4], "num_prefill_seqs": [1],
                        "num_decode_seqs": [0], "decode_context_tokens": [0], "prefill_attention_pairs": [10.0],
                        "vllm_schedule_s": [1e-4], "plugin_s": [0.0]})
    with pytest.raises(ArgumentValueError, match=r"too few usable steps to fit a profile \(1\)"):
        fit_steps(one)


def test_profiles_lists_a_profile_file_whose_texts_hold_line_breaks_on_one_row(tmp_path, capsys):
    """A hand-edited profile whose name or description held a line break split `ltrsched profiles FILE`'s row in two
    (a row of no profile), and an ESC in it reached the terminal; they are shown escaped, as error lines show them."""
    import json

    from cli_helpers import run_cli_fast
    from ltrsched.sim.profiles import profile_to_dict

    data = profile_to_dict(load_profile("cpu-llama-tiny"))
    data.update(name="my\nprofile", description="measured\non\x1b[31m Tuesday")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    for steps in ((), ("--steps",)):
        r = run_cli_fast(capsys, "profiles", path, *steps)
        lines = r.stdout.splitlines()
        assert r.returncode == 0 and len(lines) == 2, r.stdout
        assert lines[1].startswith("my\\nprofile  ") and lines[1].endswith("measured\\non\\x1b[31m Tuesday")
