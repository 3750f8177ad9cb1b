"""Workload files an audit found mishandled: records skipped without a word, prompts of digits refused as "not
text", a conversation table's predictor columns dropped, millisecond timestamps taken as seconds. Each is now a
correct load, a one-line note or warning on stderr, or a one-line error (exit code 2), never a traceback."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads.loaders import load_workload
from test_cli_simulate import assert_one_line_error, run_cli


# -- prompts that are numbers -------------------------------------------------------------------------------------

def test_a_csv_prompt_column_of_digits_is_text(tmp_path):
    """A CSV has no types: prompts "1", "42" were read as Int64 by polars and the file refused ("column prompt
    holds Int64 values, not text"); "007" would have become 7. They are text, as written."""
    path = tmp_path / "t.csv"
    path.write_text("prompt,prompt_tokens,output_tokens\n1,5,6\n42,7,8\n007,3,3\n1e3,2,2\n")
    wl = load_workload(str(path))
    assert wl.df["prompt"].dtype == pl.String and wl.df["prompt"].to_list() == ["1", "42", "007", "1e3"]
    r = run_cli("simulate", "-w", str(path), "--policy", "fcfs")
    assert r.returncode == 0, r.stderr


def test_a_csv_prompt_column_in_another_case_of_digits_is_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Prompt, prompt_tokens, output_tokens\n12,5,6\n13,7,8\n")
    assert load_workload(str(path)).df["prompt"].to_list() == ["12", "13"]


def test_a_json_number_where_a_prompt_belongs_names_the_line(tmp_path):
    """JSON has types: 42 is no text. The error named no field nor value ("expected an object with string fields
    'prompt' and 'generated' ...")."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "hi there", "generated": "yes"}\n{"prompt": 42, "generated": "no"}\n')
    with pytest.raises(UserError, match=r"t\.jsonl:2: 'prompt' must be text \(a JSON string\), got 42$"):
        load_workload(str(path))
    path.write_text('{"prompt": "hi", "generated": ["a", "b"]}\n')
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "t.jsonl:1: 'generated' must be text (a JSON string), got [\"a\", \"b\"]")


def test_a_parquet_prompt_column_of_numbers_is_a_type_error_naming_the_row(tmp_path):
    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt": [None, 42], "prompt_tokens": [5, 6], "output_tokens": [3, 4]}).write_parquet(path)
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "column prompt holds Int64 values (first: 42, row 2), not text")
    # without counts to keep, it said "missing column(s) prompt_tokens" of a table that has a prompt column
    pl.DataFrame({"prompt": [1, 42], "output_tokens": [3, 4]}).write_parquet(path)
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "column prompt holds Int64 values (first: 1, row 1), not text, so prompt_tokens cannot be "
                          "counted from it")


# -- records of a conversations file that are not conversations ---------------------------------------------------

def _conversation(i: int) -> dict:
    return {"id": f"g{i}", "conversations": [{"from": "human", "value": f"Please explain topic number {i} in words"},
                                             {"from": "gpt", "value": f"Topic {i} is about many things indeed"}]}


GARBAGE = ["junk", 3, {"id": "x"}, {"id": "y", "conversations": None},
           {"id": "z", "conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "ok"}]},
           {"id": "w", "conversations": [{"from": "bot", "value": "hi"}, {"from": "gpt", "value": "ok"}]},
           {"id": "v", "conversations": [{"from": "human"}, {"from": "gpt", "value": "ok"}]}]


def test_records_that_are_not_conversations_are_counted_on_stderr(tmp_path):
    """Records that are not conversations (not objects, no messages, first turns of wrong types) were skipped
    without a word: a file half garbage gave half its requests, silently. A one-line warning counts them by
    reason, on every load (the parse is cached), and the rest load."""
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([_conversation(i) for i in range(6)] + GARBAGE))
    for _ in range(2):  # parsed, then from the cache
        r = run_cli("simulate", "-w", str(path), "--policy", "fcfs")
        assert r.returncode == 0, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"warning: {path}: skipped 7 of the 13 records, which are not "
                                                       "conversations: 2 not objects (first: record 7: a string); "), lines
        for part in ("2 with no messages (first: record 9, id 'x': no 'conversations', 'items', 'conversation' or "
                     "'messages' list)", "2 with first turns that are not text (first: record 11, id 'z': message 1 "
                     "has a number for its text)", "1 with unknown speakers (first: record 12, id 'w': message 1 has "
                     "the speaker 'bot'"):
            assert part in lines[0]
    assert len(load_workload(str(path))) == 6  # the conversations load


def test_conversations_the_papers_rule_does_not_take_are_counted_in_a_note(tmp_path, capsys):
    """Later chunks of split conversations, empty ones, and ones that open with a reply are conversations,
    skipped by the paper's rule: they were left out without a note (3 of these 4 records), as a user's file's first
    turns the length rules leave out are not. The packaged ShareGPT file's thousands stay quiet (below)."""
    recs = [_conversation(0), {"id": "a_2", "conversations": _conversation(1)["conversations"]},
            {"id": "e", "conversations": []}, {"id": "r", "conversations": _conversation(2)["conversations"][::-1]}]
    path = tmp_path / "quiet.json"
    path.write_text(json.dumps(recs))
    assert len(load_workload(str(path))) == 1
    assert capsys.readouterr().err == (
        f"warning: {path}: left out 3 of the 4 records, conversations without a first turn the paper's rule takes (a "
        "user turn answered by the assistant, opening the conversation): 1 later chunks of a split conversation "
        "(first: record 2, id 'a_2'); 1 empty conversations (first: record 3, id 'e'); 1 conversations that do not "
        "open with a user turn answered by the assistant (first: record 4, id 'r')\n")
    path.write_text(json.dumps(recs[:1]))  # every record a first turn: quiet
    assert len(load_workload(str(path))) == 1 and capsys.readouterr().err == ""


def test_a_parse_cached_before_skips_were_noted_is_parsed_again(tmp_path, monkeypatch, capsys):
    """Its notes (cached beside it) lacked the count of conversations the paper's rule does not take."""
    from ltrsched.workloads.sharegpt import cache_dir, parse_sharegpt, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "skips.json"
    path.write_text(json.dumps([_conversation(0), {"id": "e", "conversations": []}]))
    old = cache_dir() / f"sharegpt-{records_key(path)}-utf8.parquet"  # the name a parse was cached under before
    old.parent.mkdir(parents=True)
    parse_sharegpt(path).write_parquet(old)
    (old.parent / (old.name + ".notes.json")).write_text("[]")
    capsys.readouterr()
    assert len(load_workload(str(path))) == 1
    assert "left out 1 of the 2 records, conversations without a first turn" in capsys.readouterr().err


def test_a_file_with_no_usable_record_says_why_in_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(GARBAGE[:3] + [{"id": "e", "conversations": []}]))
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "bad.json: no complete conversation (ShareGPT's or role/content messages) with a user turn "
                          "and a reply among its 4 record(s): 2 not objects (first: record 1: a string); 1 with no "
                          "messages (first: record 3, id 'x': ")
    path.write_text("[]")
    assert_one_line_error(run_cli("simulate", "-w", str(path)), "bad.json: no complete conversation (ShareGPT's or "
                                                                "role/content messages) with a user turn and a reply: "
                                                                "it holds no records")


def test_conversations_one_per_line_in_a_json_file_are_refused(tmp_path):
    """Not an array: the first "[" found was taken as the array, and the first conversation's messages read as
    its records."""
    path = tmp_path / "lines.json"
    path.write_text("\n".join(json.dumps(_conversation(i)) for i in range(3)))
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "lines.json: not a JSON array of conversations: it starts with '{' (one object per line "
                          "is JSON Lines, as `datasets`' to_json writes it: name the file .jsonl")


def test_a_users_file_cut_off_inside_a_record_is_noted(tmp_path, capsys):
    text = json.dumps([_conversation(i) for i in range(6)])
    path = tmp_path / "cut.json"
    path.write_text(text[:-40])
    assert len(load_workload(str(path))) == 5
    assert capsys.readouterr().err == (f"warning: {path}: the file ends inside record 6 (cut off): read the 5 "
                                       "complete record(s) before it\n")


def test_the_packaged_sharegpt_file_stays_quiet(capsys):
    """Its end is cut off (a known property, parsed record by record) and it holds no malformed record."""
    from ltrsched.workloads.sharegpt import _package_file, load_sharegpt_records

    records = load_sharegpt_records()
    assert capsys.readouterr().err == ""
    assert records.height > 8000 and load_sharegpt_records(_package_file()).height == records.height
    assert capsys.readouterr().err == ""


def test_a_parse_cached_before_notes_were_kept_is_parsed_again(tmp_path, monkeypatch, capsys):
    from ltrsched.workloads.sharegpt import cache_dir, load_sharegpt_records, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([_conversation(0), "junk"]))
    old = cache_dir() / f"sharegpt-{records_key(path)}-utf8-skips-case-recordno.parquet"
    old.parent.mkdir(parents=True)
    load_sharegpt_records(path).write_parquet(old)  # as the cache was written: no notes
    (cache_dir() / (old.name + ".notes.json")).unlink()
    capsys.readouterr()
    assert load_sharegpt_records(path).height == 1
    assert "skipped 1 of the 2 records, which are not conversations: 1 not objects" in capsys.readouterr().err


# -- a conversations parquet's predictor columns --------------------------------------------------------------------

def test_a_conversations_parquet_keeps_the_columns_a_flat_table_keeps(tmp_path):
    """LMSYS-style parquet of conversations with a predictor's score (and po_estimate, predicted_length,
    arrival_time, request_id): they were dropped, `ltr` said the file had no score and `po` drew its estimates."""
    from ltrsched.workloads.loaders import workload_fingerprint

    rows = [{"conversation_id": f"c{i}", "conversation": [
        {"role": "user", "content": f"Please explain topic number {i} in a few words"},
        {"role": "assistant", "content": f"Topic {i} is about many things indeed"}],
        "score": float(i), "po_estimate": 10.0 + i, "predicted_length": 20.0 + i, "arrival_time": 0.5 * i,
        "request_id": 100 + i} for i in range(5)]
    path = tmp_path / "conv.parquet"
    pl.DataFrame(rows).write_parquet(path)
    wl = load_workload(str(path))
    got = {r["source_id"]: r for r in wl.df.to_dicts()}
    assert set(got) == {r["conversation_id"] for r in rows}
    for r in rows:
        for col in ("score", "po_estimate", "predicted_length", "arrival_time", "request_id"):
            assert got[r["conversation_id"]][col] == r[col], col
    assert "columns" in workload_fingerprint(str(path))  # runs cached without them are not reused
    sampled = load_workload(str(path), num_requests=2, seed=3).df
    assert all(got[s]["score"] == sc for s, sc in zip(sampled["source_id"], sampled["score"]))
    r = run_cli("simulate", "-w", str(path), "--policy", "ltr")
    assert r.returncode == 0, r.stderr
    pl.DataFrame([{k: v for k, v in row.items() if k in ("conversation_id", "conversation")} for row in rows]
                 ).write_parquet(path)
    assert "columns" not in workload_fingerprint(str(path))
    assert load_workload(str(path)).df["request_id"].sort().to_list() == [0, 1, 2, 3, 4]


# -- arrival times in milliseconds -------------------------------------------------------------------------------------

def _trace(n: int = 400, rate: float = 2.0, seed: int = 0):
    """Arrival times of ``rate`` req/s in milliseconds, and lengths."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1000.0 / rate, n)), rng.integers(10, 200, n), rng.integers(10, 200, n)


@pytest.mark.parametrize("name, header", [("t.csv", "arrived_at_ms"), ("t.csv", "Timestamp_MS"),
                                          ("t.jsonl", "arrival_time_ms"), ("t.parquet", "arrival_time_ms")])
def test_a_unit_suffix_reads_milliseconds(tmp_path, name, header):
    """A column (or key) named ..._ms holds milliseconds: it was no arrival column at all (every request at t = 0;
    a plain `arrival_time` in ms was taken as seconds, a trace 1000x slower)."""
    from ltrsched.workloads.loaders import workload_fingerprint

    ms, p, o = _trace()
    path = tmp_path / name
    if name.endswith(".csv"):
        pl.DataFrame({header: ms, "prompt_tokens": p, "output_tokens": o}).write_csv(path)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps({"prompt_tokens": int(a), "output_tokens": int(b), header: t}) + "\n"
                                for t, a, b in zip(ms, p, o)))
    else:
        pl.DataFrame({header: ms, "prompt_tokens": p, "output_tokens": o}).write_parquet(path)
    wl = load_workload(str(path))
    assert wl.df["arrival_time"].to_list() == pytest.approx((ms / 1000).tolist())
    assert "arrival_warning" not in wl.meta
    assert workload_fingerprint(str(path))["arrivals"] == "units"  # runs cached with every request at t = 0


def test_a_conversations_parquet_reads_milliseconds_too(tmp_path):
    rows = [{"conversation_id": f"c{i}", "conversation": [
        {"role": "user", "content": f"Please explain topic number {i} in a few words"},
        {"role": "assistant", "content": f"Topic {i} is about many things indeed"}], "arrival_time_ms": 1500 * i}
        for i in range(4)]
    pl.DataFrame(rows).write_parquet(tmp_path / "c.parquet")
    df = load_workload(str(tmp_path / "c.parquet")).df.sort("arrival_time")
    assert df["arrival_time"].to_list() == [0.0, 1.5, 3.0, 4.5] and "arrival_time_ms" not in df.columns


def test_arrival_times_in_two_units_are_refused(tmp_path):
    ms, p, o = _trace(10)
    path = tmp_path / "t.csv"
    pl.DataFrame({"arrived_at": ms / 1000, "arrived_at_ms": ms, "prompt_tokens": p, "output_tokens": o}).write_csv(path)
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "t.csv: columns 'arrived_at' and 'arrived_at_ms' both give arrival times, in other units; "
                          "keep one")
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt_tokens": 3, "output_tokens": 4, "arrival_time": 1, "arrival_time_ms": 1000}\n')
    assert_one_line_error(run_cli("simulate", "-w", str(path)), "t.jsonl:1: 'arrival_time' and 'arrival_time_ms' both "
                                                                "give the arrival time")


def test_replaying_milliseconds_read_as_seconds_warns_naming_the_fix(tmp_path):
    """A trace in ms under a plain name ran 1000x slower, silently: replaying it warns (one line, exit 0), naming
    the column to rename; with a rate (the unit cancels), burst arrivals, or a unit in the name, it does not."""
    ms, p, o = _trace()
    path = tmp_path / "t.csv"
    pl.DataFrame({"arrived_at": ms, "num_prefill_tokens": p, "num_decode_tokens": o}).write_csv(path)
    r = run_cli("simulate", "-w", str(path), "--arrival", "replay")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"warning: {path}: its arrival times, read as seconds (column 'arrived_at'), span 2.6 days with a median gap "
        "of 400 s between arrivals; if they are milliseconds, name the column arrived_at_ms (if seconds, "
        "arrived_at_s, to say so)"]
    for args in (["--arrival", "replay", "--rate", "2"], []):
        r = run_cli("simulate", "-w", str(path), *args)
        assert r.returncode == 0 and "arrived_at_ms" not in r.stderr, r.stderr
    pl.DataFrame({"arrived_at_s": ms, "num_prefill_tokens": p, "num_decode_tokens": o}).write_csv(path)
    r = run_cli("simulate", "-w", str(path), "--arrival", "replay")
    assert r.returncode == 0 and r.stderr == "", r.stderr  # seconds, said so: no warning


def test_unix_milliseconds_read_as_seconds_warn(tmp_path, capsys):
    from ltrsched.workloads import apply_arrivals

    ms, p, o = _trace(rate=200.0)  # gaps of 5 ms: the median gap alone looks like seconds
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"prompt_tokens": int(a), "output_tokens": int(b), "arrival_time": 1.7e12 + t})
                            + "\n" for t, a, b in zip(ms, p, o)))
    apply_arrivals(load_workload(str(path)), "replay")
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {path}: its arrival times, read as seconds (key 'arrival_time'), start at 1.7e+12 "
                          "s, past the year 5000 as Unix time") and "name the key arrival_time_ms" in err


def test_a_span_too_long_for_seconds_names_the_unit_fix(tmp_path):
    import numpy as np

    path = tmp_path / "week.csv"
    pl.DataFrame({"arrived_at": np.linspace(0, 7 * 86_400e3, 300), "prompt_tokens": [5] * 300,
                  "output_tokens": [5] * 300}).write_csv(path)
    assert_one_line_error(run_cli("simulate", "-w", str(path), "--arrival", "replay"),
                          "must stay below 1e+08 s (about 3 years), where float64 time still resolves a step (give a "
                          "rate, to which the replay rescales the file's times, or drop the requests far from the "
                          "rest); if the file's times are milliseconds, name the column arrived_at_ms")


@pytest.mark.parametrize("name", ["azure-2023-code.csv", "azure-2023-conv.csv"])
def test_the_azure_traces_replay_without_a_unit_warning(name, capsys):
    from ltrsched.sim.profiles.derive_a100 import default_data_dir
    from ltrsched.workloads import apply_arrivals

    trace = default_data_dir().parent / "traces" / name  # ../shared/data, from the repository
    if not trace.exists():
        pytest.skip(f"reference data not found at {trace}")
    wl = apply_arrivals(load_workload(str(trace)), "replay")
    assert 3400 < wl.df["arrival_time"].max() < 3600 and capsys.readouterr().err == ""


def test_a_parquet_of_both_message_forms_reads_each(tmp_path):
    """A parquet holding ShareGPT's and OpenAI's messages has every field in each message, the other form's null:
    {"from": null, "role": "user"} had no speaker (skipped: a null "from" hid the "role")."""
    def message(form, who, text):
        fields = {"from": None, "value": None, "role": None, "content": None}
        fields.update({"from": who, "value": text} if form == "sharegpt" else {"role": who, "content": text})
        return fields

    rows = [{"id": "a", "conversations": [message("sharegpt", "human", "Please explain topic number one in words"),
                                          message("sharegpt", "gpt", "It is about many things indeed")]},
            {"id": "b", "conversations": [message("openai", "user", "Please explain topic number two in words"),
                                          message("openai", "assistant", "It is about other things indeed")]}]
    pl.DataFrame(rows).write_parquet(tmp_path / "mixed.parquet")
    assert sorted(load_workload(str(tmp_path / "mixed.parquet")).df["source_id"]) == ["a", "b"]


def test_a_prompts_file_with_numbers_for_prompts_says_so(tmp_path):
    """`ltrsched label --prompts`: a number for a prompt said "expected an object with a string field 'prompt'" (a
    .jsonl) or "no text column 'prompt' (have prompt, ...)" (a parquet that has one)."""
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "What is a fox?"}\n{"prompt": 17}\n')
    with pytest.raises(UserError, match=r"p\.jsonl:2: 'prompt' must be text \(a JSON string\), got 17$"):
        load_prompts(path)
    pl.DataFrame({"prompt": [None, 17]}).write_parquet(tmp_path / "p.parquet")
    with pytest.raises(UserError, match=r"p\.parquet: column 'prompt' holds Int64 values \(first: 17, row 2\), "
                                        r"not text$"):
        load_prompts(tmp_path / "p.parquet")
