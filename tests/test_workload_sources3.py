"""Workload files from other public sources, each given to ``ltrsched simulate --workload FILE`` as its user would:
conversation files' arrival times (LMSYS's ``timestamp``), tables with two reply-text columns, and formats that are
no request table (Alpaca, Dolly, Anthropic HH, UltraChat, OpenAI tool calls). Each case was loaded wrongly, or
refused with a misleading message, before its fix."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ltrsched.workloads import load_workload
from ltrsched.workloads.loaders import workload_fingerprint
from ltrsched.workloads.tokenizer import count_tokens
from tests.cli_helpers import run_cli_fast

PROMPTS = [f"Please explain topic number {i} in a few words" for i in range(3)]
REPLIES = [f"Topic {i} is about many things indeed" for i in range(3)]


def one_line_error(r, message: str) -> None:
    """Exit code 2 and one stderr line, ``error: ...`` holding ``message``, no traceback."""
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def chat(i: int, **extra) -> dict:
    """OpenAI's chat format: conversation ``i`` of :data:`PROMPTS` and :data:`REPLIES`, with ``extra`` keys."""
    return {"messages": [{"role": "user", "content": PROMPTS[i]}, {"role": "assistant", "content": REPLIES[i]}],
            **extra}


def sharegpt(i: int, **extra) -> dict:
    return {"id": f"s{i}", "conversations": [{"from": "human", "value": PROMPTS[i]},
                                             {"from": "gpt", "value": REPLIES[i]}], **extra}


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def replayed(capsys, tmp_path, path) -> dict[str, float]:
    """``simulate --arrival replay`` of ``path``: each prompt's arrival time [s] as served."""
    r = run_cli_fast(capsys, "simulate", "-w", path, "--arrival", "replay", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    served = load_workload(str(path)).df.join(df.select("request_id", "arrival_time"), on="request_id", suffix="_run")
    assert served["prompt_tokens"].to_list() == count_tokens(served["prompt"].to_list()).tolist()
    return dict(zip(served["prompt"], served["arrival_time_run"]))


def lmsys_rows(**columns) -> pl.DataFrame:
    """LMSYS-Chat-1M's parquet (conversation_id, model, conversation, turn, language), with ``columns``."""
    return pl.DataFrame({"conversation_id": [f"c{i}" for i in range(3)], "model": ["vicuna-13b"] * 3,
                         "conversation": [[{"role": "user", "content": PROMPTS[i]},
                                           {"role": "assistant", "content": REPLIES[i]}] for i in range(3)],
                         "turn": [1] * 3, "language": ["English"] * 3, **columns})


@pytest.mark.parametrize("name, write", [
    ("lmsys.parquet", lambda p: lmsys_rows(timestamp=[1000.0, 1005.0, 1010.0]).write_parquet(p)),
    ("lmsys-dates.parquet", lambda p: lmsys_rows(timestamp=pl.Series(
        ["2023-04-01 10:00:00", "2023-04-01 10:00:05", "2023-04-01 10:00:10"]).str.to_datetime()).write_parquet(p)),
    ("chat.jsonl", lambda p: p.write_text(lines(chat(i, timestamp=1000 + 5 * i) for i in range(3)))),
    ("sharegpt.jsonl", lambda p: p.write_text(lines(sharegpt(i, arrived_at_ms=5000 * i) for i in range(3)))),
    ("sharegpt.json", lambda p: p.write_text(json.dumps([sharegpt(i, Timestamp=f"2023-04-01 10:00:{5 * i:02}")
                                                          for i in range(3)]))),
])
def test_conversation_files_read_arrival_times(tmp_path, capsys, name, write):
    """A conversation file's arrival times (LMSYS's ``timestamp`` column, a record's ``timestamp`` key) were dropped:
    every request arrived at t = 0 (replay refused the file, "no arrival times"). They are read by the rule of the
    flat formats: the same names, units by suffix, date-times as seconds since the earliest."""
    path = tmp_path / name
    write(path)
    times = replayed(capsys, tmp_path, path)
    assert times == {PROMPTS[0]: 0.0, PROMPTS[1]: 5.0, PROMPTS[2]: 10.0}
    assert workload_fingerprint(str(path))["conversation arrivals"] == "read"  # (runs cached before had t = 0)


def test_conversation_files_without_new_arrival_times_keep_their_cache_keys(tmp_path):
    """Files whose parse is unchanged keep their run cache keys: no arrival key, or a parquet's own arrival_time
    column (read before)."""
    plain = tmp_path / "plain.jsonl"
    plain.write_text(lines(chat(i) for i in range(3)))
    ours = tmp_path / "ours.parquet"
    lmsys_rows(arrival_time=[0.0, 1.0, 2.0]).write_parquet(ours)
    flat = tmp_path / "flat.jsonl"
    flat.write_text(lines({"prompt": PROMPTS[i], "generated": REPLIES[i], "arrival_time": i} for i in range(3)))
    for path in (plain, ours, flat):
        assert "conversation arrivals" not in workload_fingerprint(str(path))
    assert load_workload(str(ours)).df.sort("arrival_time")["arrival_time"].to_list() == [0.0, 1.0, 2.0]


def test_a_parse_cached_before_the_arrival_times_is_not_reused(tmp_path, monkeypatch):
    """The first turns of a conversations file are cached; one cached before arrival times were read has none."""
    from ltrsched.workloads.sharegpt import cache_dir, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "chat.jsonl"
    path.write_text(lines(chat(i, timestamp=5 * i) for i in range(3)))
    stale = cache_dir() / f"sharegpt-{records_key(path)}-utf8-skips-case.parquet"  # (the name it had)
    stale.parent.mkdir(parents=True)
    pl.DataFrame({"source_id": [""] * 3, "prompt": PROMPTS, "response": REPLIES, "prompt_tokens": [10] * 3,
                  "output_tokens": [8] * 3}).write_parquet(stale)
    stale.with_name(stale.name + ".notes.json").write_text("[]")
    assert sorted(load_workload(str(path)).df["arrival_time"].to_list()) == [0.0, 5.0, 10.0]


@pytest.mark.parametrize("records, message", [
    ([chat(0, timestamp=0), chat(1), chat(2, timestamp=2)],
     "c.jsonl: record 2: no arrival time, where others give 'timestamp'; give it on every record"),
    ([chat(0, timestamp=0), chat(1, arrival_time=1), chat(2, timestamp=2)],
     "c.jsonl: record 2: its arrival time is 'arrival_time', where others give 'timestamp'"),
    ([chat(0, timestamp=0), chat(1, timestamp="2023-04-01 10:00:00")],
     "c.jsonl: record 2: its arrival time is text where record 1 gives a number (0); give one kind on every record"),
    ([chat(0, timestamp=True)], "c.jsonl: record 1: 'timestamp' must be a number of seconds"),
    ([chat(0, timestamp=0, arrived_at=1)], "c.jsonl: record 1: 'timestamp' and 'arrived_at' both give the arrival"),
    ([sharegpt(0, timestamp="soon"), sharegpt(1, timestamp="later")],
     "c.jsonl: column timestamp has non-numeric values (String, first: 'soon'); it must hold numbers or date-times"),
    ([sharegpt(0, timestamp=-3), sharegpt(1, timestamp=2)],
     "c.jsonl: 1 request(s) with a negative or non-finite arrival_time (first: -3.0) in record id 's0'"),
])
def test_bad_conversation_arrival_times_are_one_line(tmp_path, capsys, records, message):
    path = tmp_path / "c.jsonl"
    path.write_text(lines(records))
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), message)


@pytest.mark.parametrize("name, write, message", [
    ("two.parquet", lambda p: pl.DataFrame({"prompt": PROMPTS, "response": REPLIES, "completion": ["a b c d"] * 3})
     .write_parquet(p), "two.parquet: columns 'response' and 'completion' both may give the reply's text, from which "
                        "output_tokens is counted; which does? keep one (drop or rename the other), or give "
                        "output_tokens"),
    ("two.parquet", lambda p: pl.DataFrame({"prompt": PROMPTS, "Output": REPLIES, "generated": ["a b c d"] * 3})
     .write_parquet(p), "two.parquet: columns 'Output' and 'generated' both may give the reply's text"),
    ("two.csv", lambda p: p.write_text("prompt,output,response\n" + "".join(
        f"{PROMPTS[i]},{REPLIES[i]},a b c d\n" for i in range(3))),
     "two.csv: columns 'output' and 'response' both may give the reply's text"),
    ("two.jsonl", lambda p: p.write_text(lines({"prompt": PROMPTS[i], "output": REPLIES[i], "response": "a b c d"}
                                               for i in range(3))),
     "two.jsonl:1: keys 'output' and 'response' both may give the reply's text"),
])
def test_two_reply_text_columns_are_refused(tmp_path, capsys, name, write, message):
    """A table with two columns of reply text (``response`` and ``completion``; Alpaca's ``output`` beside
    ``response``) had the first of our names counted, silently (a parquet's 'response', a .csv's and a .jsonl's
    'response' beside an unread 'output'): which is the reply? A count column given decides it."""
    path = tmp_path / name
    write(path)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), message)
    if name.endswith(".parquet"):  # (the count given is used: the texts are not read)
        pl.read_parquet(path).with_columns(output_tokens=pl.lit(6)).write_parquet(path)
        assert load_workload(str(path)).df["output_tokens"].to_list() == [6] * 3
