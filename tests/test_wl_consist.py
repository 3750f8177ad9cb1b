"""One value, every container: a request file's value is read the same, or refused with the same one line, whether
the file is a ``.csv``, a parquet or a ``.jsonl`` (a ``.json`` holds conversations alone, whose first turns give no
counts; a ``.tsv`` is no workload format). Each case writes the value in each container as that container holds it
(a ``.csv``'s field as written, a parquet's Utf8 value or typed number, a ``.jsonl``'s JSON string or number) and runs
``ltrsched simulate -w FILE`` in this process: the served requests must be equal, or every container's error must
be the same line once the file's path and its own words for a place (a ``.jsonl``'s key and line, a table's column
and row) are set aside."""

from __future__ import annotations

import json
import math
import re

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast

KINDS = ("csv", "parquet", "jsonl")


def _write(tmp_path, kind: str, rows: list[dict]) -> str:
    """``rows`` as ``t.<kind>``: a ``.csv``'s fields as ``str`` writes them (quoted where they hold a comma), a
    ``.jsonl``'s values as JSON, a parquet's columns as polars types them (text stays text)."""
    path = tmp_path / kind / f"t.{kind}"
    path.parent.mkdir(parents=True)
    if kind == "csv":
        cell = lambda v: "" if v is None else f'"{v}"' if "," in str(v) else str(v)  # noqa: E731
        path.write_text(",".join(rows[0]) + "\n" + "".join(",".join(cell(v) for v in r.values()) + "\n" for r in rows),
                        encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        pl.DataFrame(rows, strict=False).write_parquet(path)
    return str(path)


def _outcome(capsys, tmp_path, kind: str, rows: list[dict]):
    """``("read", prompt counts, output counts, stderr lines)`` or ``("refused", the one line)``, the file's path
    written ``FILE``."""
    path = _write(tmp_path, kind, rows)
    out = tmp_path / kind / "run"
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(out))
    if r.returncode == 0:
        served = pl.read_parquet(out / "requests.parquet").sort("request_id")
        notes = [line.replace(path, "FILE") for line in r.stderr.splitlines() if line.startswith("warning:")]
        return "read", served["prompt_tokens"].to_list(), served["output_tokens"].to_list(), notes
    assert_one_line_error(r, path)
    return "refused", r.stderr.strip().replace(path, "FILE")


def _place_free(line: str) -> str:
    """An error line without its container's words for a place: a ``.jsonl``'s ``key`` and ``line N`` (``in line
    N``, ``where line N``) read as a table's ``column`` and ``row N``."""
    return re.sub(r"\b(in|where) line (\d+)", r"\1 row \2", line.replace("error: FILE: key '", "error: FILE: column '"))


def _counts(value, where: str = "prompt_tokens") -> list[dict]:
    """Three requests, the second's ``where`` count ``value``."""
    rows = [{"prompt_tokens": 3, "output_tokens": 4}, {"prompt_tokens": 5, "output_tokens": 6},
            {"prompt_tokens": 7, "output_tokens": 8}]
    rows[1][where] = value
    return rows


# A count written as text (a .csv's every field; a parquet's Utf8 column; a .jsonl's JSON string): read where it is
# a number in ASCII decimal notation (spaces around it), the same number in every container.
TEXT_READ = {"12": 12, " 12": 12, "12 ": 12, "012": 12, "+12": 12, "12.0": 12, "12.": 12, "1e3": 1000, "1E3": 1000,
             "1.2e1": 12}
# ... and refused in one line, the same in every container, naming the file, the row (line) and the field.
TEXT_REFUSED = ("0x10", "1_000", "1,000", "١٢", "１２", "", "NaN", "nan", "inf", "-inf", "12e", "e3", "twelve", "1 2")


@pytest.mark.parametrize("text", list(TEXT_READ))
def test_a_count_written_as_text_is_read_alike_in_every_container(capsys, tmp_path, text):
    outcomes = {kind: _outcome(capsys, tmp_path, kind, _counts(text)) for kind in KINDS}
    assert outcomes["csv"] == ("read", [3, TEXT_READ[text], 7], [4, 6, 8], []), outcomes
    assert outcomes["parquet"] == outcomes["csv"] == outcomes["jsonl"], outcomes


@pytest.mark.parametrize("text", TEXT_REFUSED)
def test_a_count_text_that_spells_no_number_is_the_same_one_line_in_every_container(capsys, tmp_path, text):
    outcomes = {kind: _outcome(capsys, tmp_path, kind, _counts(text, "output_tokens")) for kind in KINDS}
    if text == "":  # (a .csv's empty field is a missing value, as a parquet's null: checked below)
        del outcomes["csv"]
    for kind, outcome in outcomes.items():
        assert outcome[0] == "refused" and f"'output_tokens' has non-numeric values (String, first: {text!r})" in \
            outcome[1] and ("in line 2" if kind == "jsonl" else "in row 2") in outcome[1], (kind, outcome)
    assert len({_place_free(outcome[1]) for outcome in outcomes.values()}) == 1, outcomes


@pytest.mark.parametrize("text, parts", [
    ("12.5", ("12.5",)), ("0", ("0",)), ("-0", ("0",)), ("-3", ("-3",)), ("1e30", ("2**53",)),
    ("9007199254740993", ("2**53",)),
])
def test_a_count_text_of_a_number_that_is_no_count_is_refused_in_every_container(capsys, tmp_path, text, parts):
    """The number the text spells is checked as any count is (a whole number in 1..2**53), in one line, the same in
    every container but for its words for a place (a .jsonl's key and line; a table's column and row)."""
    outcomes = {kind: _outcome(capsys, tmp_path, kind, _counts(text)) for kind in KINDS}
    for kind, outcome in outcomes.items():
        assert outcome[0] == "refused" and all(p in outcome[1] for p in parts), (kind, outcome)
        assert ("in line 2" if kind == "jsonl" else "in row 2") in outcome[1], (kind, outcome)
    assert len({_place_free(outcome[1]) for outcome in outcomes.values()}) == 1, outcomes


# A count that is a number (or null) but no count: one line in every container, naming the file, the field, the row
# (line) and the value as read. (A .jsonl said "'prompt_tokens' must be a whole number of tokens in 1..2**53, got
# None" where a table said "column prompt_tokens has 1 missing value(s), the first in row 2"; for 0, 12.5 and 2**60
# the tables had three other sentences.)
COUNT_REFUSED = {"0": (0, "0"), "-3": (-3, "-3"), "-0.0": (-0.0, "0"), "12.5": (12.5, "12.5"),
                 "2**60": (2**60, str(2**60)), "2**53 + 1": (2**53 + 1, str(2**53 + 1)), "1e30": (1e30, "1e+30"),
                 "null": (None, "missing (null)")}


@pytest.mark.parametrize("case", list(COUNT_REFUSED))
@pytest.mark.parametrize("field", ["prompt_tokens", "output_tokens"])
def test_a_number_that_is_no_count_is_the_same_one_line_in_every_container(capsys, tmp_path, case, field):
    value, shown = COUNT_REFUSED[case]
    outcomes = {kind: _outcome(capsys, tmp_path, kind, _counts(value, field)) for kind in KINDS}
    line = f"error: FILE: column {field!r} in row 2 is {shown}, not a token count (a whole number in 1..2**53)"
    zero = shown == "0" and field == "output_tokens"  # (with the likely cause: a count without its EOS token)
    assert outcomes["csv"][0] == "refused" and outcomes["csv"][1].startswith(line), outcomes
    assert ("; an output of 0 tokens" in outcomes["csv"][1]) == zero, outcomes
    assert len({_place_free(outcome[1]) for outcome in outcomes.values()}) == 1, outcomes


@pytest.mark.parametrize("prompt, output", [("input_len", "output_len"), ("prompt_tokens", "completion_tokens"),
                                            ("num_prompt_tokens", "num_output_tokens")])
@pytest.mark.parametrize("value", [12.5, 0, None])
def test_a_count_under_another_tools_name_is_named_so_in_every_container(capsys, tmp_path, prompt, output, value):
    """A table's line named our column ('prompt_tokens') where the file has 'input_len', which a .jsonl's names."""
    rows = [{prompt: 3, output: 4}, {prompt: 5, output: value}, {prompt: 7, output: 8}]
    outcomes = {kind: _outcome(capsys, tmp_path, kind, rows) for kind in KINDS}
    assert outcomes["csv"][1].startswith(f"error: FILE: column {output!r} in row 2 is "), outcomes
    assert len({_place_free(outcome[1]) for outcome in outcomes.values()}) == 1, outcomes


@pytest.mark.parametrize("field", ["prompt_tokens", "output_tokens"])
@pytest.mark.parametrize("every", [True, False])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_count_is_the_same_one_line_in_every_container(capsys, tmp_path, field, every, value):
    """A .jsonl's ``true`` and a parquet's Boolean column are values, refused in count_values' line; a .csv's ``True``
    is the same boolean (it was refused as text that spells no number, "non-numeric values (String, first: 'True')",
    and a column of them as "non-numeric values (Boolean, first: True) ...; it must hold numbers"). (Among numbers:
    polars writes a parquet column of 3 and True as integers, so only a .csv and a .jsonl hold it.)"""
    rows = [{**r, field: value} for r in _counts(5)] if every else _counts(value, field)
    kinds = KINDS if every else ("csv", "jsonl")
    outcomes = {kind: _outcome(capsys, tmp_path, kind, rows) for kind in kinds}
    row = 1 if every else 2
    assert outcomes["csv"] == ("refused", f"error: FILE: column {field!r} in row {row} is {value}, not a token count "
                                          "(a whole number in 1..2**53)"), outcomes
    assert {_place_free(outcome[1]) for outcome in outcomes.values()} == {outcomes["csv"][1]}, outcomes


# --- BurstGPT's failed requests (Response tokens 0): left out in every container, with the same warning -------------

def _burst(outputs: list, names=("Request tokens", "Response tokens")) -> list[dict]:
    return [{"Timestamp": t, "Model": "ChatGPT", names[0]: p, names[1]: o, "Log Type": "Conversation log"}
            for t, p, o in zip([5, 6, 7, 8], [472, 417, 29, 8], outputs)]


def test_burstgpt_failed_requests_are_left_out_alike_in_every_container(capsys, tmp_path):
    """A .jsonl's ``response tokens`` 0 (its keys match as written: ours in lower case) was refused ("must be a whole
    number of tokens in 1..2**53, got 0") where a .csv's and a parquet's rows were left out with a warning; BurstGPT's
    own spelling, ``Response tokens``, was refused as a key in another case ("write 'response tokens'")."""
    outcomes = {"csv": _outcome(capsys, tmp_path, "csv", _burst([18, 0, 340, 0])),
                "parquet": _outcome(capsys, tmp_path, "parquet", _burst([18, 0, 340, 0])),
                "jsonl": _outcome(capsys, tmp_path, "jsonl", _burst([18, 0, 340, "0"]))}  # ("0": as text too)
    csv = outcomes["csv"]
    assert csv[:3] == ("read", [472, 29], [18, 340]) and len(csv[3]) == 1 and "2 of its 4 requests" in csv[3][0], csv
    assert outcomes["parquet"] == csv == outcomes["jsonl"]
    lower = _outcome(capsys, tmp_path / "lower", "jsonl",
                     _burst([18, 0, 340, 0], ("request tokens", "response tokens")))
    assert lower == (*csv[:3], [csv[3][0].replace("'Response tokens'", "'response tokens'")])


def test_a_file_of_failed_burstgpt_requests_alone_is_the_same_one_line_in_every_container(capsys, tmp_path):
    outcomes = {kind: _outcome(capsys, tmp_path, kind, _burst([0, 0, 0, 0])) for kind in KINDS}
    assert outcomes["csv"] == outcomes["parquet"] == outcomes["jsonl"] == (
        "refused", "error: FILE: every request (4) has 'Response tokens' 0, BurstGPT's mark of a failed request (no "
                   "output): none is left to serve")


def test_an_output_of_0_under_another_name_is_still_refused_in_a_jsonl(capsys, tmp_path):
    """Only BurstGPT's name marks a failed request; ``output_tokens`` 0 on a line beside BurstGPT lines is refused,
    as a table's ``output_tokens`` 0 is."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"request tokens": 3, "response tokens": 0}\n{"prompt_tokens": 3, "output_tokens": 0}\n'
                    '{"request tokens": 3, "response tokens": 4}\n')
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "t.jsonl: key 'output_tokens' in line 2 is 0, not a token count", "EOS")


# --- other fields, other kinds of value: the same Workload (load_workload) or the same refusal (the CLI) ------------

def _two(**second) -> list[dict]:
    """Two requests with ids, arrival times and scores, the second's fields ``second``."""
    rows = [{"request_id": 1, "prompt_tokens": 3, "output_tokens": 4, "arrival_time": 0.0, "score": 0.25},
            {"request_id": 2, "prompt_tokens": 5, "output_tokens": 6, "arrival_time": 1.0, "score": 0.75}]
    rows[1].update(second)
    return rows


SAME_WORKLOAD = {  # case -> (rows, the second request's fields as read)
    # ids, predictor numbers and arrival times written as text are read by the counts' rule (a .jsonl's "7" and a
    # parquet's Utf8 "7.0" were refused, which a .csv reads; a parquet's and a .jsonl's arrival texts were read as
    # date-times, and refused)
    "id '7'": (_two(request_id="7"), {"request_id": 7}),
    "id ' 7'": (_two(request_id=" 7"), {"request_id": 7}),
    "id '+7'": (_two(request_id="+7"), {"request_id": 7}),
    "id '7.0'": (_two(request_id="7.0"), {"request_id": 7}),
    "id '7e0'": (_two(request_id="7e0"), {"request_id": 7}),
    "score '0.5'": (_two(score="0.5"), {"score": 0.5}),
    "score '-1e-3'": (_two(score="-1e-3"), {"score": -0.001}),
    "score null": (_two(score=None), {"score": None}),
    # NaN, a predictor's missing value, in any case (a .csv read NaN and refused numpy's nan; a parquet's and a
    # .jsonl's text refused both)
    "score 'nan'": (_two(score="nan"), {"score": "NaN"}),
    "score 'NaN'": (_two(score="NaN"), {"score": "NaN"}),
    "score '-NAN'": (_two(score="-NAN"), {"score": "NaN"}),
    "po_estimate '12'": ([{**r, "po_estimate": e} for r, e in zip(_two(), [3.0, "12"])], {"po_estimate": 12.0}),
    "arrival '12'": (_two(arrival_time="12"), {"arrival_time": 12.0}),
    "arrival ' 1.5'": (_two(arrival_time=" 1.5"), {"arrival_time": 1.5}),
    # numbers of other types, read alike (a whole float is a count; -0.0 s is t = 0; 2**53 is the largest count)
    "count 12.0": (_two(prompt_tokens=12.0), {"prompt_tokens": 12}),
    "id 7.0": (_two(request_id=7.0), {"request_id": 7}),
    "arrival -0.0": (_two(arrival_time=-0.0), {"arrival_time": 0.0}),
    "count 2**53": (_two(prompt_tokens=2**53), {"prompt_tokens": 2**53}),
}


def _columns(workload) -> list[dict]:
    """The workload's rows, NaN written ``"NaN"`` (NaN != NaN)."""
    df = workload.df
    rows = df.select(c for c in ("request_id", "prompt_tokens", "output_tokens", "arrival_time", "score",
                                 "po_estimate") if c in df.columns).to_dicts()
    return [{k: "NaN" if isinstance(v, float) and v != v else v for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("case", list(SAME_WORKLOAD))
def test_a_value_is_read_as_the_same_workload_in_every_container(tmp_path, case):
    from ltrsched.workloads import load_workload

    rows, second = SAME_WORKLOAD[case]
    read = {kind: _columns(load_workload(_write(tmp_path, kind, rows))) for kind in KINDS}
    assert read["csv"] == read["parquet"] == read["jsonl"], read
    assert {k: read["csv"][1][k] for k in second} == second, read["csv"]


SAME_REFUSAL = {  # case -> (rows, what every container's one line names[, the row (line) it names: 2])
    "count -0.0": (_two(prompt_tokens=-0.0), ("prompt_tokens", "0")),
    "count 2**53 + 1": (_two(output_tokens=2**53 + 1), ("output_tokens", str(2**53 + 1), "2**53")),
    "count 2**64": (_two(output_tokens=2**64), ("output_tokens", str(2**64), "2**53")),
    # (every row's: polars writes a parquet column of 3 and True as integers)
    "count true": ([{**r, "prompt_tokens": True} for r in _two()], ("prompt_tokens", "True"), 1),
    "count null": (_two(prompt_tokens=None), ("prompt_tokens",)),
    "id '7x'": (_two(request_id="7x"), ("request_id", "'7x'", "whole number")),
    "id true": ([{**r, "request_id": b} for r, b in zip(_two(), [False, True])], ("request_id", "whole number"), 1),
    "score '0.5x'": (_two(score="0.5x"), ("score", "'0.5x'")),
    # (a .jsonl named neither the key nor the line: "t.jsonl:1: the arrival time is a number where line 2 gives a
    # date-time ('soon')")
    "arrival 'soon'": (_two(arrival_time="soon"), ("arrival_time", "'soon'")),
}


@pytest.mark.parametrize("case", list(SAME_REFUSAL))
def test_a_value_is_refused_in_one_line_in_every_container(capsys, tmp_path, case):
    """Refused in every container, in one line naming the file, the field, the value and its row (line), in each
    container's words (a .jsonl's checks of a line's values speak of its key and line)."""
    rows, parts, *row = SAME_REFUSAL[case]
    row = row[0] if row else 2
    for kind in KINDS:
        outcome = _outcome(capsys, tmp_path, kind, rows)
        assert outcome[0] == "refused" and all(p in outcome[1] for p in parts), (kind, outcome)
        assert re.search(rf"FILE:{row}:|line {row}\b|row {row}\b", outcome[1]), (kind, outcome)


@pytest.mark.parametrize("key", ["arrival_time", "timestamp", "arrival_time_ms"])
@pytest.mark.parametrize("times", [[0.0, "soon"], ["soon", 1.0], ["soon", "later"]])
def test_an_arrival_text_that_is_no_time_is_the_same_one_line_in_every_container(capsys, tmp_path, key, times):
    """A .jsonl said "'arrival_time' must be a number of seconds or a date-time, got 'soon'" (among numbers: "the
    arrival time is a number where line 2 gives a date-time ('soon')", naming neither key nor line), a parquet
    "column arrival_time has non-numeric values ... it must hold numbers or date-times"; now a .csv's line in all."""
    rows = [{"prompt_tokens": 3, "output_tokens": 4, key: t} for t in times]
    outcomes = {kind: _outcome(capsys, tmp_path, kind, rows) for kind in KINDS}
    row = times.index("soon") + 1
    unit = "milliseconds" if key.endswith("_ms") else "seconds"
    assert outcomes["csv"] == ("refused", f"error: FILE: column {key!r} has non-numeric values (String, first: "
                                          f"'soon') in row {row}; it must hold numbers ({unit}) or date-times"), outcomes
    assert len({_place_free(outcome[1]) for outcome in outcomes.values()}) == 1, outcomes


# An arrival time that is no time (null, negative, NaN, infinite, a boolean): one line in every container, naming the
# file, the file's own column (key), the row (line) and the value as the file gives it (-1500 ms, not -1.5 s). (A table
# said "column arrival_time has 1 missing value(s), the first in row 2" where a .jsonl said "'arrival_time' must be a
# number of seconds or a date-time, got None"; every container "1 request(s) with a negative or non-finite
# arrival_time (first: -1.5) in row 2", under our name, in seconds.)
ARRIVAL_REFUSED = {  # case -> (the file's key, the two requests' times, the bad one's row (line), as shown, containers)
    "null": ("arrival_time", [0.0, None], 2, "missing (null)", KINDS),
    "null timestamp": ("timestamp", [None, 1.0], 1, "missing (null)", KINDS),
    "null among date-times": ("TIMESTAMP", ["2024-01-01 00:00:00", None], 2, "missing (null)", KINDS),
    "-1": ("arrival_time", [0.0, -1.0], 2, "-1", KINDS),
    "-0.5 timestamp": ("timestamp", [0.0, -0.5], 2, "-0.5", KINDS),
    "-1500 ms": ("arrival_time_ms", [0, -1500], 2, "-1500", KINDS),
    "'-1' as text": ("arrival_time", ["0", "-1"], 2, "-1", KINDS),
    "true": ("arrival_time", [True, True], 1, "True", KINDS),
    # (a .csv's 'nan' and 'inf' are text, refused as a parquet's Utf8 'NaN' is: below)
    "NaN": ("arrival_time", [0.0, math.nan], 2, "nan", ("parquet", "jsonl")),
    "inf": ("timestamp_s", [0.0, math.inf], 2, "inf", ("parquet", "jsonl")),
    "-inf ms": ("arrival_time_ms", [-math.inf, 0.0], 1, "-inf", ("parquet", "jsonl")),
}


@pytest.mark.parametrize("case", list(ARRIVAL_REFUSED))
def test_an_arrival_time_that_is_no_time_is_the_same_one_line_in_every_container(capsys, tmp_path, case):
    key, times, row, shown, kinds = ARRIVAL_REFUSED[case]
    rows = [{"prompt_tokens": 3, "output_tokens": 4, key: t} for t in times]
    outcomes = {kind: _outcome(capsys, tmp_path, kind, rows) for kind in kinds}
    unit = "milliseconds" if key.endswith("_ms") else "seconds"
    line = (f"error: FILE: column {key!r} in row {row} is {shown}, not an arrival time (a finite number of {unit} >= 0, "
            "or a date-time)")
    assert {_place_free(outcome[1]) for outcome in outcomes.values()} == {line}, outcomes
    assert all(outcome[0] == "refused" for outcome in outcomes.values()), outcomes


@pytest.mark.parametrize("text", ["NaN", "nan", "inf", "-inf", "Infinity"])
def test_a_non_finite_arrival_written_as_text_is_the_same_one_line_in_every_container(capsys, tmp_path, text):
    """As a count's: text that spells no number (a .csv read 'NaN', 'inf' and 'Infinity' as numbers, "1 request(s) with
    a negative or non-finite arrival_time (first: nan)", where a parquet's Utf8 and a .jsonl's string were text)."""
    rows = [{"prompt_tokens": 3, "output_tokens": 4, "arrival_time": t} for t in ["0", text]]
    outcomes = {kind: _outcome(capsys, tmp_path, kind, rows) for kind in KINDS}
    assert outcomes["csv"] == ("refused", f"error: FILE: column 'arrival_time' has non-numeric values (String, first: "
                                          f"{text!r}) in row 2; it must hold numbers (seconds) or date-times"), outcomes
    assert len({_place_free(outcome[1]) for outcome in outcomes.values()}) == 1, outcomes


@pytest.mark.parametrize("key", ["arrival_time", "TIMESTAMP", "arrival_time_ms"])
@pytest.mark.parametrize("number_first", [True, False])
def test_a_date_time_among_numbers_is_the_same_one_line_in_every_container(capsys, tmp_path, key, number_first):
    """A date-time after a number was a table's "non-numeric values (String, first: '2024-01-01 00:00:00')" (a
    date-time) and a .jsonl's "FILE:1: the arrival time is a number where line 2 gives a date-time" (naming the
    number's line); a number after one a table's "'5.0' in row 2 is not a date-time in the format of the first"."""
    stamp = "2024-01-01 00:00:00"
    times = [0.0, 5.0, stamp] if number_first else [stamp, 5.0, 7.0]
    rows = [{"prompt_tokens": 3, "output_tokens": 4, key: t} for t in times]
    outcomes = {kind: _outcome(capsys, tmp_path, kind, rows) for kind in KINDS}
    unit = "milliseconds" if key.endswith("_ms") else "seconds"
    this, first = (f"a date-time ({stamp!r})", "a number") if number_first else ("a number", f"a date-time ({stamp!r})")
    where = "row 3" if number_first else "row 2"
    assert outcomes["csv"] == ("refused", f"error: FILE: column {key!r} in {where} is {this} where row 1 gives {first}; "
                                          f"give every arrival time as a number ({unit}) or every one as a date-time")
    assert len({_place_free(outcome[1]) for outcome in outcomes.values()}) == 1, outcomes


def test_a_conversation_parquets_counts_as_text_are_read_as_a_flat_tables(capsys, tmp_path):
    """LMSYS-Chat-1M's kind of parquet (a ``conversation`` column) with its own ``output_tokens`` as text: refused
    ("holds String values ..., not token counts") where a flat table's are read."""
    from ltrsched.workloads import load_workload

    turn = [{"role": "user", "content": "hello there, how are you"},
            {"role": "assistant", "content": "fine, thanks; and you, my friend?"}]
    conversations = [turn, [{**turn[0], "content": "and what is new with you today"}, turn[1]]]
    read = {}
    for kind, counts in (("text", ["12", " 13"]), ("numbers", [12, 13])):
        path = tmp_path / f"{kind}.parquet"
        pl.DataFrame({"conversation_id": ["a", "b"], "conversation": conversations,
                      "output_tokens": counts}).write_parquet(path)
        read[kind] = _columns(load_workload(str(path)))
    assert read["text"] == read["numbers"] and sorted(r["output_tokens"] for r in read["text"]) == [12, 13]
    path = tmp_path / "bad.parquet"
    pl.DataFrame({"conversation_id": ["a", "b"], "conversation": conversations,
                  "output_tokens": ["12", "1x"]}).write_parquet(path)
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "bad.parquet", "column 'output_tokens' has non-numeric values (String, first: '1x') in "
                                            "row 2 (id 'b')")


@pytest.mark.parametrize("counts, reads", [("3,4\n5.0,6.0\n", 1), ("3,4\n12,6\n", 1), ("3,4\n+12,6\n", 2),
                                           ("3,4\nNaN,6\n", 2)])
def test_a_csv_is_read_again_only_where_the_text_rule_may_read_it_otherwise(tmp_path, monkeypatch, counts, reads):
    """A .csv's count column that polars read as numbers is the rule's own (digits; floats, but for inf and NaN):
    reading every float column again as text took twice as long (200,000 rows of '12.0' counts: 179 -> 356 ms)."""
    from ltrsched.workloads import loaders

    calls = []
    read = loaders._read_csv
    monkeypatch.setattr(loaders, "_read_csv", lambda *a, **k: calls.append(a) or read(*a, **k))
    path = tmp_path / "t.csv"
    path.write_text("prompt_tokens,output_tokens\n" + counts)
    try:
        loaders.load_workload(str(path))
    except loaders.UserError:
        pass
    assert len(calls) == reads


def test_a_mooncake_timestamp_as_text_is_read_as_other_arrival_texts(tmp_path):
    """A Mooncake line's ``timestamp`` [ms] as text was refused ("must be a number of milliseconds"), where a line's
    ``arrival_time`` text is read (and a .csv's ``timestamp_ms`` field)."""
    from ltrsched.workloads import load_workload

    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": "0", "input_length": 3, "output_length": 4}\n'
                    '{"timestamp": " 1500", "input_length": 5, "output_length": 6}\n')
    csv = tmp_path / "t.csv"
    csv.write_text("timestamp_ms,input_length,output_length\n0,3,4\n1500,5,6\n")
    assert _columns(load_workload(str(path))) == _columns(load_workload(str(csv)))
    assert load_workload(str(path)).df["arrival_time"].to_list() == [0.0, 1.5]


def _conversations(tmp_path, kind: str, counts: list, **more: list) -> str:
    """Two ShareGPT conversations, each with its own ``output_tokens`` (``counts``; None: no such key or column) and
    ``more`` counts under other names, as a ``.json`` array, a ``.jsonl`` or a parquet (LMSYS-Chat-1M's kind: a
    ``conversation`` column of role/content messages)."""
    prompts = ["hello there, how are you doing today my friend", "and what is new with you today, tell me"]
    reply = "fine, thanks; and you, my friend? all good here"
    path = tmp_path / f"c.{kind}"
    path.parent.mkdir(parents=True, exist_ok=True)
    given = {**({"output_tokens": counts} if counts is not None else {}), **more}
    if kind == "parquet":
        pl.DataFrame({"conversation_id": ["a", "b"], **given,
                      "conversation": [[{"role": "user", "content": p}, {"role": "assistant", "content": reply}]
                                       for p in prompts]}).write_parquet(path)
        return str(path)
    records = [{"id": i, "conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": reply}],
                **{name: values[n] for name, values in given.items()}} for n, (i, p) in enumerate(zip("ab", prompts))]
    path.write_text(json.dumps(records) if kind == "json" else "".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.mark.parametrize("counts", [[99, 98], ["99", " 98"]])
def test_a_conversation_records_own_counts_are_used_as_a_conversation_parquets(capsys, tmp_path, counts):
    """A .json's or .jsonl's conversation record's ``output_tokens`` was ignored (the reply's Llama-3 count, 13, used),
    where a conversations parquet's column is used (with a warning counting those that differ from the text's)."""
    from ltrsched.workloads import load_workload
    from ltrsched.workloads.loaders import workload_fingerprint

    read = {}
    for kind in ("parquet", "json", "jsonl"):
        read[kind] = sorted(load_workload(_conversations(tmp_path, kind, counts)).df["output_tokens"].to_list())
        assert "2 of the 2 first turns' output_tokens differ" in capsys.readouterr().err
    assert read == {"parquet": [98, 99], "json": [98, 99], "jsonl": [98, 99]}
    # (a run cached when such a file was read otherwise is not reused)
    assert (workload_fingerprint(_conversations(tmp_path, "json", counts))["conversation counts"]
            == "given, a reply optional, first turn alone")


def test_a_conversation_records_bad_count_is_one_line(capsys, tmp_path):
    path = _conversations(tmp_path, "json", [99, "9x"])
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "c.json", "key 'output_tokens' has non-numeric values (String, first: '9x') in record 2")
    path = _conversations(tmp_path, "jsonl", [99, 0])
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "c.jsonl: key 'output_tokens' in record 2 (id 'b') is 0, not a token count (a whole "
                                     "number in 1..2**53)", "EOS")


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_a_key_named_twice_in_a_conversation_record_is_refused_in_every_container(capsys, tmp_path, kind):
    """A .json record naming a key twice was read (json keeps the last: score 0.9 of 0.1 and 0.9), where a .jsonl's
    line is refused."""
    record = ('{"id": "a", "score": 0.1, "score": 0.9, "conversations": [{"from": "human", "value": "hello there, '
              'how are you doing today"}, {"from": "gpt", "value": "fine, thanks; and you, my friend?"}]}')
    path = tmp_path / f"c.{kind}"
    path.write_text(f"[{record}]" if kind == "json" else record + "\n")
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, f"c.{kind}", "the key 'score' is given twice; keep one",
                          "record 1 (from line 1)" if kind == "json" else f"c.{kind}:1:")


@pytest.mark.parametrize("prompt, output", [("input_len", "output_len"), ("prompt_tokens", "completion_tokens"),
                                            ("num_prompt_tokens", "num_output_tokens"),
                                            ("input_length", "output_length")])
def test_a_conversation_records_counts_under_another_tools_names_are_read_as_a_parquets(capsys, tmp_path, prompt,
                                                                                        output):
    """A .json's or .jsonl's conversation record's ``input_len``/``output_len`` (vLLM's benchmark names, OpenAI
    usage's ``completion_tokens``, ...) were ignored (the text's Llama-3 counts used: 13 for a record giving 98),
    where a conversations parquet's columns of those names are read (the name table every format reads counts by:
    :data:`~ltrsched.workloads.schema.LENGTH_NAMES`)."""
    from ltrsched.workloads import load_workload
    from ltrsched.workloads.loaders import workload_fingerprint

    read = {}
    for kind in ("parquet", "json", "jsonl"):
        df = load_workload(_conversations(tmp_path / kind, kind, None, **{prompt: [41, 42], output: [99, 98]})).df
        read[kind] = sorted(zip(df["prompt_tokens"].to_list(), df["output_tokens"].to_list()))
        # (a .jsonl line with a prompt count, prompt_tokens or input_length, is a request line of lengths: the same
        # counts, no conversation to compare them with)
        assert ("2 of the 2 first turns' output_tokens differ" in capsys.readouterr().err) == (
            kind != "jsonl" or prompt not in ("prompt_tokens", "input_length")), kind
    assert read == {"parquet": [(41, 99), (42, 98)], "json": [(41, 99), (42, 98)], "jsonl": [(41, 99), (42, 98)]}
    # (a run or parse cached when such a file was read otherwise is not reused)
    assert workload_fingerprint(_conversations(tmp_path / "fp", "json", None, **{output: [99, 98]}))[
        "conversation count names"] == "other tools', a reply optional, first turn alone"


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_two_names_for_a_conversation_records_count_are_a_request_lines_error(capsys, tmp_path, kind):
    """``output_tokens`` beside ``completion_tokens`` in a conversation record: refused as a .jsonl request line's two
    keys are (one was used, silently, or rather both ignored before the record's counts were read)."""
    path = _conversations(tmp_path, kind, [99, 98], completion_tokens=[7, 8])
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, f"c.{kind}: record 1 (id 'a'): 'output_tokens' and 'completion_tokens' both give the "
                             "output_tokens; which does? give one")
    line = tmp_path / "line.jsonl"  # (a request line's, the same words)
    line.write_text('{"prompt": "hi", "output_tokens": 99, "completion_tokens": 7}\n')
    r = run_cli_fast(capsys, "simulate", "-w", str(line), "--no-progress", "-o", str(tmp_path / "run2"))
    assert_one_line_error(r, "line.jsonl:1: 'output_tokens' and 'completion_tokens' both give the output_tokens; "
                             "which does? give one")


@pytest.mark.parametrize("value, shown", [(0, "0"), (12.5, "12.5"), (2**60, str(2**60)), (True, "True")])
def test_a_conversation_records_count_that_is_no_count_is_a_request_lines_line(capsys, tmp_path, value, shown):
    """A conversation record's count that is a number (or boolean) but no count, in the words every container uses
    (it said "row 2 (id 'b'): output_tokens 0 is not a whole number of tokens in 1..2**53 (1 row(s) so)", and of
    true "'output_tokens' must be a whole number of tokens (or null), got True")."""
    path = _conversations(tmp_path, "json", [99, value])
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, f"c.json: key 'output_tokens' in record 2 (id 'b') is {shown}, not a token count (a whole "
                             "number in 1..2**53)")


# A conversation record's arrival time that is no time: a .jsonl request line's one line (arrival_values), naming the
# record (and its id) where the line names its line. Conversation records said "record 2: 'arrival_time' must be a
# number of seconds (or, by its name, milliseconds) or a date-time, got a boolean", of -1, NaN or inf "column
# 'arrival_time' in record id '' is -1", of a date-time among numbers or 'soon' after one "record 2: its arrival time
# is text where record 1 gives a number (1.0); give one kind on every record", of 'soon' alone "column 'timestamp' has
# non-numeric values ... in record id ''"; a null was no time given (every record's null: all at t = 0, silently).
RECORD_ARRIVALS = {  # case -> (the key, each record's time)
    "null": ("arrival_time", [0.0, None]),
    "null on every record": ("timestamp", [None, None]),
    "-1": ("arrival_time", [0.0, -1]),
    "-1500 ms": ("arrival_time_ms", [0, -1500]),
    "'-1' as text": ("arrival_time", ["0", "-1"]),
    "NaN": ("arrival_time", [0.0, math.nan]),
    "inf": ("timestamp_s", [0.0, math.inf]),
    "true": ("arrival_time", [True, True]),
    "a list": ("arrival_time", [0, [1]]),
    "a date-time after a number": ("TIMESTAMP", [0.0, 5.0, "2024-01-01 00:00:00"]),
    "a number after a date-time": ("timestamp", ["2024-01-01 00:00:00", 5, 7]),
    "'soon' after a number": ("arrival_time", [0.0, "soon"]),
    "'soon' first": ("timestamp", ["soon", "later"]),
}


def _refused_as_lines_and_records(capsys, tmp_path, kind: str, times: list[dict]) -> dict[str, str]:
    """``simulate``'s one-line refusals (the file shown as ``FILE``) of a ``.jsonl`` of request lines and of a
    ``kind`` file of conversation records (ids ``c0``, ``c1``, ...), each line or record given its ``times`` keys."""
    prompts = [f"Write a short poem about the number {i} and the sea" for i in range(len(times))]
    lines = tmp_path / "requests.jsonl"
    lines.write_text("".join(json.dumps({"prompt": p, "output_tokens": 5, **t}) + "\n" for p, t in zip(prompts, times)))
    records = [{"id": f"c{i}", "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": p}], **t}
               for i, (p, t) in enumerate(zip(prompts, times))]
    path = tmp_path / f"c.{kind}"
    path.write_text(json.dumps(records) if kind == "json" else "".join(json.dumps(r) + "\n" for r in records))
    refused = {}
    for name, file in (("line", lines), ("record", path)):
        r = run_cli_fast(capsys, "simulate", "-w", str(file), "--no-progress", "-o", str(tmp_path / name))
        assert_one_line_error(r, str(file))
        refused[name] = r.stderr.strip().replace(str(file), "FILE")
    return refused


@pytest.mark.parametrize("kind", ["json", "jsonl"])
@pytest.mark.parametrize("case", list(RECORD_ARRIVALS))
def test_a_conversation_records_arrival_that_is_no_time_is_a_request_lines_line(capsys, tmp_path, case, kind):
    key, times = RECORD_ARRIVALS[case]
    refused = _refused_as_lines_and_records(capsys, tmp_path, kind, [{key: t} for t in times])
    assert re.search(r"\brecord \d+ \(id 'c\d'\)", refused["record"]), refused
    assert re.sub(r"\brecord (\d+) \(id 'c\d'\)", r"line \1", refused["record"]) == refused["line"], refused


def _as_lines(line: str) -> str:
    """A conversation record's error with a ``.jsonl`` request line's words for its place: ``FILE: record 2 (id
    'c1'): `` as ``FILE:2: ``, ``in record 2 (id 'c1')`` as ``in line 2``, other records as other lines."""
    line = re.sub(r"^error: FILE: record (\d+) \(id 'c\d+'\): ", r"error: FILE:\1: ", line)
    line = re.sub(r"\brecord (\d+) \(id 'c\d+'\)", r"line \1", line)
    return line.replace("other records", "other lines").replace("every record", "every line")


# Arrival times given in a way a .jsonl request line refuses: the same words for a conversation record's (its place
# set aside). A record said "'arrival_time' and 'timestamp' both give the arrival time; give one" (no word of the
# units), "no arrival time, where others give 'arrival_time'; give it on every record, under one name, or on none"; a
# request line whose date-time changed format "key 'timestamp' has non-numeric values (String, first: '01/02/2024
# 00:00:09') in line 2; it must hold numbers (seconds) or date-times" (a record's and a table's name the format).
RECORD_LINE_TIMES = {  # case -> (each record's or line's time keys, the line's error)
    "two keys in one": ([{"arrival_time": 0.0, "timestamp": 1.0}, {"arrival_time": 1.0}],
                        "FILE:1: 'arrival_time' and 'timestamp' both give the arrival time, both in seconds; give one"),
    "two keys in other units": ([{"arrival_time": 0.0}, {"arrival_time": 1.0, "timestamp_ms": 1000}],
                                "FILE:2: 'arrival_time' and 'timestamp_ms' both give the arrival time, in other units"),
    "one without a time": ([{"arrival_time": 0.0}, {}, {"arrival_time": 2.0}],
                           "FILE:2: no 'arrival_time', which other lines have; give it on every line or none"),
    "the first without a time": ([{}, {"timestamp": 1.0}],
                                 "FILE:1: no 'timestamp', which other lines have; give it on every line or none"),
    # (two names on two lines: both read, each as its name says, where a record's were refused; they may be two
    # units or epochs)
    "two names on two": ([{"arrival_time": 0.0}, {"arrival_time": 1.0}, {"timestamp": 2.0}],
                         "FILE:3: its arrival time is 'timestamp', where others give 'arrival_time'; give it on every "
                         "line, under one name, or on none"),
    "two names in other units": ([{"timestamp": 0.0}, {"arrival_time_ms": 1000}],
                                 "FILE:2: its arrival time is 'arrival_time_ms', where others give 'timestamp'"),
    "a date-time format change": ([{"timestamp": "2024-01-01 00:00:00"}, {"timestamp": "2024-01-01 00:00:05"},
                                   {"timestamp": "01/02/2024 00:00:09"}],
                                  "FILE: key 'timestamp': '01/02/2024 00:00:09' in line 3 is not a date-time in the "
                                  "format of the first, '2024-01-01 00:00:00'; write every arrival time as a date-time "
                                  "in one format"),
}


@pytest.mark.parametrize("kind", ["json", "jsonl"])
@pytest.mark.parametrize("case", list(RECORD_LINE_TIMES))
def test_a_conversation_records_arrival_keys_are_refused_in_a_request_lines_words(capsys, tmp_path, case, kind):
    times, says = RECORD_LINE_TIMES[case]
    refused = _refused_as_lines_and_records(capsys, tmp_path, kind, times)
    assert refused["line"].startswith(f"error: {says}"), refused
    assert re.search(r"\brecord \d+ \(id 'c\d'\)", refused["record"]), refused
    assert _as_lines(refused["record"]) == refused["line"], refused


def test_a_mooncake_lines_timestamp_beside_another_lines_arrival_time_is_refused(capsys, tmp_path):
    """A Mooncake line's 'timestamp' (milliseconds) and another line's 'arrival_time' (seconds) were both read."""
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"input_length": 3, "output_length": 4, "timestamp": 1000}) + "\n"
                    + json.dumps({"prompt_tokens": 3, "output_tokens": 4, "arrival_time": 2.0}) + "\n")
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, f"{path}:2: its arrival time is 'arrival_time', where others give 'timestamp'; give it "
                             "on every line, under one name, or on none")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_tables_two_arrival_columns_cannot_mix_names_by_row(capsys, tmp_path, kind):
    """A table gives a name per column, not per row: two columns, each filled on some rows, are refused as two."""
    rows = [{"prompt_tokens": 3, "output_tokens": 4, "arrival_time": 0.0, "timestamp": None},
            {"prompt_tokens": 3, "output_tokens": 4, "arrival_time": None, "timestamp": 1.0}]
    outcome = _outcome(capsys, tmp_path, kind, rows)
    assert outcome[0] == "refused" and "'arrival_time' and 'timestamp'" in outcome[1], outcome
