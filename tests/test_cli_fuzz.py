"""Hostile values for the simulator-side commands (simulate, sweep, capacity, reproduce, plot), in this process: each
is one `error:` line naming the option, exit code 2, or a run; never a traceback, a second line or a silent choice.
A representative set of what a fuzz of every option x {negative, 0, NaN, inf, 2**63, empty, blank, odd names,
directories, empty and binary files, repeats, conflicts} covered; the full cross product ran once, outside the suite."""

from __future__ import annotations

import re
import sys
import warnings

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error
from test_plot_styles import save_run

BIG = str(2**63)


# ---------------------------------------------------------------------------- an option given twice
@pytest.mark.parametrize("args, message", [
    # (each would otherwise have run with the last value, or failed later on something else)
    (["simulate", "-w", "lmsys-like", "-n", "5", "-n", "3"], "--num-requests / -n is given twice; give it once"),
    (["simulate", "-w", "lmsys-like", "-n", "3", "-P", "ltr:tau=0.6", "-P", "fcfs"], "--policy / -P is given twice"),
    (["simulate", "-w", "nope", "--chunked-prefill", "--no-chunked-prefill"],
     "--chunked-prefill / --no-chunked-prefill is given twice; give it once (one of them)"),
    (["simulate", "-w", "nope", "--rate", "1", "--rate", "2", "--rate", "3"], "--rate is given 3 times"),
    (["sweep", "missing.toml", "-j", "1", "-j", "2"], "--jobs / -j is given twice"),
    (["capacity", "--tolerance", "0.1", "--tolerance", "0.2"], "--tolerance is given twice"),
    (["reproduce", "nope", "--quick", "--quick"], "--quick is given twice"),
    (["plot", "cdf", "missing", "-o", "a.png", "-o", "b.png"], "--out / -o is given twice"),
    (["plot", "trace", "missing", "-o", "a.json", "--out", "b.json"], "--out / -o is given twice"),
])
def test_an_option_that_takes_one_value_given_twice_is_refused(capsys, tmp_path, args, message):
    """click kept the last value silently: `simulate ... -P ltr:tau=0.6 ... -P fcfs` ran FCFS alone."""
    r = run_cli_fast(capsys, *args, cwd=tmp_path)
    assert_one_line_error(r, message)
    assert f"(see 'ltrsched {' '.join(args[:2] if args[0] == 'plot' else args[:1])} --help')" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["capacity", "--slo", "ttft_p90=2", "--slo", "tpot_p90=0.1", "-w", "nope"], "workload 'nope'"),
    (["simulate", "-w", "nope", "--plugin", "a", "--plugin", "b"], "cannot load plugin a"),
])
def test_options_meant_to_repeat_still_repeat(capsys, tmp_path, args, message):
    assert_one_line_error(run_cli_fast(capsys, *args, cwd=tmp_path), message)


# ---------------------------------------------------------------------------- plugin names
@pytest.mark.parametrize("given, missing", [("policies.csv", "policies"), ("nosuch_plugin_mod", "nosuch_plugin_mod")])
def test_a_plugin_that_is_no_module_and_no_py_file_says_what_to_give(capsys, tmp_path, given, missing):
    """`--plugin policies.csv` said only "ModuleNotFoundError: No module named 'policies'"."""
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "2", "--plugin", given, cwd=tmp_path)
    assert_one_line_error(r, f"cannot load plugin {given}: no module {missing!r} is importable here; give a .py "
                             "file's path, or the name of a module on the Python path")


def test_a_module_the_plugin_imports_is_named_as_missing(capsys, tmp_path, monkeypatch):
    (tmp_path / "plug_with_dep.py").write_text("import nosuch_dependency_mod\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "2", "--plugin", "plug_with_dep", cwd=tmp_path)
    assert_one_line_error(r, "cannot load plugin plug_with_dep: ModuleNotFoundError: No module named "
                             "'nosuch_dependency_mod'")


@pytest.mark.parametrize("kind, escaped", [("policy", r"a\nb"), ("policy", r"tab\there"), ("router", r"bell\x07")])
def test_a_plugin_name_with_a_line_break_or_control_character_is_refused(capsys, tmp_path, kind, escaped):
    """Registered, `-P 'a<newline>b'` ran and split the run's printed header (and sweep.csv rows, report tables)."""
    base, module, method = (("Policy", "policies", "rank(self, view):\n        return view.order_by()")
                            if kind == "policy" else
                            ("Router", "routers", "route(self, request, now, replicas):\n        return 0"))
    plugin = tmp_path / f"ctl_{kind}.py"
    plugin.write_text(f"from ltrsched.{module} import {base}, register\n\n\n@register\nclass Named({base}):\n"
                      f"    name = '{escaped}'\n\n    def {method}\n")
    assert_one_line_error(run_cli_fast(capsys, module, "--plugin", plugin),
                          f"{kind} class Named has the name '{escaped}'; a {kind} name is a non-empty, printable text "
                          "(no line breaks or control characters)")


# ---------------------------------------------------------------------------- an --out holding one run
@pytest.mark.parametrize("args", [
    ["sweep", "s.toml"],  # (each would otherwise have failed on something else, or run: see the options given)
    ["capacity", "--slo", "ttft_p90=2", "-w", "lmsys-like", "-n", "5", "--address", "127.0.0.1:1"],
    ["reproduce", "table1", "--quick", "--address", "127.0.0.1:1"],
])
def test_a_sweep_capacity_or_reproduction_into_a_run_directory_is_refused(capsys, tmp_path, args):
    """`sweep -o RUN` wrote sweep.csv and runs/ beside a simulated run; `plot cdf RUN` then drew the one run alone."""
    save_run(tmp_path / "run", "fcfs")
    (tmp_path / "s.toml").write_text('policies = ["fcfs"]\nworkloads = ["nope.csv"]\n')
    r = run_cli_fast(capsys, *args, "-o", "run", cwd=tmp_path)
    assert_one_line_error(r, f"--out run holds a simulated run (`ltrsched simulate`), which this `{args[0]}` would mix "
                             "with: give another --out, or move that output away first")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["requests.parquet", "summary.json"]


# ---------------------------------------------------------------------------- markdown tables
def test_a_name_with_a_pipe_or_a_line_break_stays_in_its_markdown_cell(tmp_path):
    """capacity.md's row of a plugin policy named `a|b$c$` had one cell more than its header."""
    import polars as pl

    from ltrsched.experiments.tables import write_table

    df = pl.DataFrame({"policy": ["a|b$c$", "x\ny", "fcfs"], "capacity_rps": [8.0, 4.0, None]})
    md, _ = write_table(df, tmp_path, "capacity", "Capacity under SLOs")
    table = [line for line in md.read_text().splitlines() if line.startswith("|")]
    assert table[2:] == ["| a\\|b$c$ | 8.00 |", "| x y | 4.00 |", "| fcfs | - |"]
    assert {line.replace("\\|", "").count("|") for line in table} == {3}


# ---------------------------------------------------------------------------- a Ray address
@pytest.mark.parametrize("port", ["0", "65536", "99999999"])
def test_a_ray_address_whose_port_is_no_tcp_port_says_so(port):
    """It was tried and reported as "cannot reach a Ray cluster there (Connection refused)"."""
    from ltrsched.errors import UserError
    from ltrsched.experiments.ray_backend import check_address

    message = f"--address '127.0.0.1:{port}': port {port} is not a TCP port (1..65535)"
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        check_address(f"127.0.0.1:{port}", 1.0)


# ---------------------------------------------------------------------------- figures with names no font draws
def _real_process_warnings(monkeypatch):
    """Warnings printed to stderr as a fresh process prints them (pytest records them instead)."""
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None, line=None:
                        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line)))


def test_cjk_names_in_a_figure_are_one_note_not_a_warning_per_glyph(capsys, monkeypatch, tmp_path):
    """matplotlib warned once per missing glyph and drawing pass, two lines each: 32 lines for this figure."""
    _real_process_warnings(monkeypatch)
    save_run(tmp_path / "run", "先来先服务😀", policy="fcfs")
    r = run_cli_fast(capsys, "plot", "cdf", tmp_path / "run", "--title", "负载 标题", "-o", tmp_path / "c.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.png").stat().st_size > 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("note: the figures' font (DejaVu Sans) has no glyph for 8 character(s)"), lines
    assert "drawn as empty boxes: 先来服务负载标题; " in lines[0] and "font.family" in lines[0]


def test_other_warnings_still_print_beside_the_glyph_note(capsys, monkeypatch):
    from ltrsched.plots.glyphs import missing_glyphs_noted

    _real_process_warnings(monkeypatch)
    with missing_glyphs_noted(sys.stderr):
        warnings.warn("Glyph 20808 (\\N{CJK UNIFIED IDEOGRAPH-5148}) missing from font(s) DejaVu Sans.")
        warnings.warn("something else")
    err = capsys.readouterr().err
    assert "UserWarning: something else" in err and "Glyph" not in err
    assert err.endswith("drawn as empty boxes: 先; to see them, install a font that has them and name it after the "
                        "first in matplotlib's font.family (a matplotlibrc line such as 'font.family: DejaVu Sans, "
                        "Noto Sans CJK JP')\n")


def test_the_glyph_note_lists_twenty_characters_and_counts_the_rest():
    from ltrsched.plots.glyphs import missing_glyphs_note

    note = missing_glyphs_note({chr(0x4E00 + i): "DejaVu Sans" for i in range(25)} | {"\x07": "DejaVu Sans"})
    assert "has no glyph for 26 character(s)" in note and "一丁丂七丄丅丆万丈三上下丌不与丏丐丑丒专 and 6 more;" in note
    assert note.count("\n") == 1 and note.endswith("\n")


# ---------------------------------------------------------------------------- spec numbers
@pytest.mark.parametrize("args, message", [
    (["-P", "fcfs:starve=nan"], "policy 'fcfs': starve/quantum must be integers (steps): 'nan' is not a whole number"),
    (["-P", "ltr:tau=0.6,seed=1.5"], "policy 'ltr': bad value for seed: '1.5' is not a whole number (e.g. 10)"),
    (["-P", "ltr:tau=0.6;srtf"], "policy 'ltr': bad value for tau: '0.6;srtf' is not a number (e.g. 0.5)"),
    (["-P", "ltr:tau=1_0"], "policy 'ltr': bad value for tau: '1_0' is not a plain number"),
    (["--replicas", "2", "--router", "random:seed=nan"], "router 'random': bad value for seed: 'nan' is not a whole"),
])
def test_a_spec_value_that_is_no_number_is_named_in_plain_words(capsys, args, message):
    """Python's words were shown: "invalid literal for int() with base 10: 'nan'", "could not convert string to
    float: '0.6;srtf'"."""
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", *args), message)


# ---------------------------------------------------------------------------- hostile values (regressions)
@pytest.mark.parametrize("args, message", [
    (["simulate", "-n", "0"], "--num-requests must be positive, got 0"),
    (["simulate", "--arrival", "poisson", "--rate", "nan"], "--rate must be a positive number of requests per second"),
    (["simulate", "--arrival", "poisson", "--rate", "-inf"], "--rate must be a positive number"),
    (["simulate", "-w", "lmsys-like", "-n", "5", "--arrival", "gamma", "--rate", "5", "--cv", "1e308"],
     "coefficient of variation 1e+308"),
    (["simulate", "--seed", "1e308"], "Invalid value for '--seed': '1e308' is not a valid integer"),
    (["simulate", "--replicas", BIG], "--replicas must be at most 4,096"),
    (["simulate", "--gpu-memory-utilization", "inf"], "--gpu-memory-utilization must be in (0, 1], got inf"),
    (["simulate", "-w", " "], "no workload given"),
    (["simulate", "-w", "adir"], "workload 'adir' is a directory, not a file"),
    (["simulate", "-w", "empty.csv"], "empty.csv: the file is empty"),
    (["simulate", "-w", "bin.csv"], "bin.csv:1: not valid UTF-8"),
    (["simulate", "-p", "adir"], "profile path is a directory"),
    (["simulate", "-o", "afile"], "Invalid value for '--out' / '-o': Directory 'afile' is a file."),
    (["simulate", "--cdf", "afile/c.png"], "is a file, not a directory"),
    (["simulate", "-P", "ltr:tau=nan"], "policy 'ltr': tau must be in (0, 1], got nan"),
    (["simulate", "-P", f"fcfs:starve={BIG}"], "out of range for a 64-bit integer"),
    (["simulate", "-P", "中文|$"], "unknown policy '中文|$'"),
    (["simulate", "--replicas", "2", "--router", "least-kv:by=tokens,by=blocks"], "by is given twice"),
    (["sweep", "adir"], "Invalid value for 'SWEEP_FILE': File 'adir' is a directory."),
    (["sweep", "empty.toml"], "'policies' must list at least one policy spec"),
    (["sweep", "s.toml", "--max-runs", "nan"], "Invalid value for '--max-runs'"),
    (["capacity", "--slo", "ttft_p90=inf"], "--slo 'ttft_p90=inf': the limit must be at most 1e+08 s"),
    (["capacity", "--slo", "ttft_p90=2", "--max-rate", "1e308"], "--max-rate 1e+308 req/s is above 1e+09"),
    (["reproduce", "table1", "-j", BIG], "--jobs must be in 1..4,096"),
    (["plot", "cdf", "empty.csv"], "neither a run directory"),
    (["plot", "trace", "adir"], "adir: not a run directory (no summary.json)"),
])
def test_hostile_values_are_one_line_naming_the_option(capsys, tmp_path, args, message):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x\n")
    (tmp_path / "empty.csv").touch()
    (tmp_path / "empty.toml").touch()
    (tmp_path / "bin.csv").write_bytes(b"\x80\x81\xfe\xff" * 64)
    (tmp_path / "s.toml").write_text('policies = ["fcfs"]\n')
    assert_one_line_error(run_cli_fast(capsys, *args, cwd=tmp_path), message)
