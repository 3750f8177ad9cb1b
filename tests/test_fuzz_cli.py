"""A fast, fixed subset of the seeded option fuzz (:mod:`fuzz_cli`): one option at a time of simulate, sweep (its
options and its file's keys), capacity, plot, profile, validate, replay, label, predict, evaluate, profiles, policies
and routers given a hostile value; each exits 0 or 2 with one ``error:`` line, no traceback, in time, and leaves its
inputs as they were. The engine never starts (the fuzz stops a case where it would). The full cross product ran once,
outside the suite."""

from __future__ import annotations

import pytest

import fuzz_cli
from cli_helpers import assert_one_line_error, run_cli_fast
from fuzz_cli import Case

BIG = str(2**63)

#: (command, option, value): value None is the option given twice.
CASES = [
    ("simulate", "-n", "nan"), ("simulate", "-n", None), ("simulate", "--rate", "1e308"),
    ("simulate", "-P", "ltr:tau="), ("simulate", "-P", "mlfq:levels=0"), ("simulate", "-P", "fcfs:x=1"),
    ("simulate", "-P", "ltr:tau=0.5,tau=0.6"), ("simulate", "--router", "random:seed=nan"),
    ("simulate", "--router", "least-kv:by="), ("simulate", "-w", "{IN}/adir"), ("simulate", "-w", "a\x1bb"),
    ("simulate", "-o", "{IN}/afile.txt"), ("simulate", "-o", "{INPUT}"), ("simulate", "--trace", "{INPUT}"),
    ("simulate", "--cdf", fuzz_cli.UNWRITABLE_DIR + "/x"), ("simulate", "--max-model-len", BIG),
    ("sweep", "ARG", "{IN}/adir"), ("sweep", "-o", "{INPUT}"), ("sweep", "-j", "-0"), ("sweep", "--max-runs", "inf"),
    ("sweep-file", "policies", "ltr:tau=nan"), ("sweep-file", "routers", "least-kv:by="),
    ("sweep-file", "rates", "nan"), ("sweep-file", "rates", "[]"), ("sweep-file", "num_requests", str(2**63 - 1)),
    ("sweep-file", "workloads", "{INPUT}"), ("sweep-file", "policies", "fcfs,,fcfs"), ("sweep-file", "arrival", None),
    ("capacity", "--slo", "ttft_p90=nan"), ("capacity", "-p", "fcfs:x=1"), ("capacity", "--replicas", BIG),
    ("capacity", "-o", fuzz_cli.UNWRITABLE_DIR + "/x"),
    ("plot cdf", "-o", "{INPUT}"), ("plot cdf", "ARG", "{IN}/afile.txt"),
    ("plot trace", "-o", "{IN}/adir"), ("plot trace", "-o", "{INPUT}"),
    ("profile", "-o", "{IN}/adir"), ("profile", "--name", "a\nb"), ("profile", "--runs", BIG),
    ("validate", "--policies", "fcfs;;srtf"), ("validate", "--rates", "1,,2"), ("validate", "-o", "{IN}/afile.txt"),
    ("validate", "--tolerance", "nan"),
    ("replay", "-P", "ltr:tau="), ("replay", "--emulate", "{IN}/adir"),
    ("label", "--splits", "eval,,eval"), ("label", "-o", "{INPUT}"),
    ("predict", "-o", "{INPUT}"), ("predict", "--column", "a\nb"), ("predict", "-w", "{IN}/adir"),
    ("evaluate", "--plot", "{INPUT}"), ("evaluate", "--data", "a,,b"), ("profiles", "--block-size", "-1"),
    ("profiles", "--gpu-memory-utilization", "nan"), ("policies", "--plugin", "{IN}/adir"), ("routers", "--plugin", ""),
    # workload files of other sources (fuzz_cli.WORKLOAD_FILES)
    ("simulate", "-w", "{IN}/wl/long128k.csv"), ("simulate", "-w", "{IN}/wl/list_content.jsonl"),
    ("simulate", "-w", "{IN}/wl/huge_arrivals.csv"), ("capacity", "-w", "{IN}/wl/mixed_dates.csv"),
    ("sweep-file", "workloads", "{IN}/wl/cap4096.csv"), ("replay", "-w", "{IN}/wl/nan_lengths.parquet"),
    ("validate", "-w", "{IN}/wl/utf16.jsonl"), ("predict", "-w", "{IN}/wl/intl.jsonl"),
    ("evaluate", "--data", "{IN}/wl/equal.csv"), ("label", "--prompts", "{IN}/wl/empty_prompt.jsonl"),
    # numbers as text int()/float() read otherwise than written (fuzz_cli.NUMBER_TEXTS), a 5,000-character value, a
    # file whose name holds a line break
    ("simulate", "--rate", "1e400"), ("simulate", "-n", "٣"), ("sweep", "-j", "0x10"),
    ("capacity", "--max-rate", "５"),
    ("simulate", "--seed", "1_000"), ("simulate", "-o", "x" * 5000), ("simulate", "-w", "{IN}/line\nbreak.csv"),
    # hostile profile files (fuzz_cli.PROFILES)
    ("simulate", "--profile", "{IN}/prof/nan.json"), ("simulate", "--profile", "{IN}/../special/fifo.json"),
    ("simulate", "--profile", "{IN}/../special/loop.json"), ("simulate", "--profile", "{IN}/../special/sparse.json"),
    ("capacity", "--profile", "{IN}/prof/missing_key.json"), ("replay", "--emulate", "{IN}/prof/zero_steps.json"),
    ("validate", "--emulate", "{IN}/prof/other_model.json"), ("sweep-file", "profiles", "{IN}/prof/empty.json"),
    ("profiles", "ARG", "{IN}/prof/binary.json"), ("profile", "--emulate", "{IN}/prof/inf.json"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return fuzz_cli.make_inputs(tmp_path_factory.mktemp("fuzz") / "inputs")


@pytest.mark.parametrize("command, option, value", CASES, ids=lambda v: repr(v)[:40])
def test_a_hostile_option_value_is_a_run_or_one_line(capsys, tmp_path, inputs, command, option, value):
    case = Case(command, option, value)
    outcome = fuzz_cli.run_case(case, inputs, tmp_path, limit=30,
                                run=lambda *args, cwd: run_cli_fast(capsys, *args, cwd=cwd))
    assert outcome.problem is None, (str(case), outcome.problem, outcome.stderr)


def test_a_label_limit_past_the_window_is_the_whole_window(inputs):
    """`label --limit 99999999999999999999` (or 2**63) was an OverflowError traceback from polars' DataFrame.head."""
    from ltrsched.labelling.jobs import select_jobs

    whole = select_jobs(("eval",), None, 0, inputs / "prompts.json")
    assert whole and select_jobs(("eval",), 10**20, 0, inputs / "prompts.json") == whole
    assert select_jobs(("eval",), 2**63, 0, inputs / "prompts.json") == whole


@pytest.mark.parametrize("title, control", [("\t", "\t"), ("a\x1bb", "\x1b"), ("load\rtitle", "\r"), ("a\x7f", "\x7f")])
def test_a_plot_title_with_a_control_character_is_refused(capsys, tmp_path, inputs, title, control):
    """It was drawn as an empty box, and the missing-glyph note advised installing a font that has the character."""
    r = run_cli_fast(capsys, "plot", "cdf", inputs / "run", "--title", title, "-o", tmp_path / "c.png")
    assert_one_line_error(r, f"--title {title!r}: {control!r} is a control character")
    assert not (tmp_path / "c.png").exists()


def test_a_plot_title_with_a_line_break_is_two_lines(capsys, tmp_path, inputs):
    r = run_cli_fast(capsys, "plot", "cdf", inputs / "run", "--title", "load\ntitle", "-o", tmp_path / "c.png")
    assert r.returncode == 0 and r.stderr == "" and (tmp_path / "c.png").stat().st_size > 0, r.stderr
