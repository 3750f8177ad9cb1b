"""Conversation files (``.json``, ``.jsonl``: ShareGPT's form and OpenAI's ``messages``) given to ``ltrsched simulate
--workload FILE``: a record's ``request_id``, ``score``, ``po_estimate`` and ``predicted_length`` (dropped: ``ltr``
said the file had no score) and the system or developer text before the first user turn (left out of the prompt's
tokens). Each case was loaded wrongly before its fix."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ltrsched.workloads import load_workload
from ltrsched.workloads.loaders import workload_fingerprint
from ltrsched.workloads.tokenizer import count_tokens
from cli_helpers import run_cli_fast

PROMPTS = [f"Please explain topic number {i} in a few words" for i in range(4)]
REPLIES = [f"Topic {i} is about many things indeed" for i in range(4)]
SYSTEM = "You are a terse assistant who answers in one sentence."


def one_line_error(r, message: str) -> None:
    """Exit code 2 and one stderr line, ``error: ...`` holding ``message``, no traceback."""
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def chat(i: int, system: tuple[dict, ...] = (), **extra) -> dict:
    """OpenAI's chat format: conversation ``i`` of :data:`PROMPTS` and :data:`REPLIES` after the messages ``system``,
    with ``extra`` keys."""
    return {"messages": [*system, {"role": "user", "content": PROMPTS[i]},
                         {"role": "assistant", "content": REPLIES[i]}], **extra}


def sharegpt(i: int, system: tuple[dict, ...] = (), **extra) -> dict:
    return {"id": f"s{i}", "conversations": [*system, {"from": "human", "value": PROMPTS[i]},
                                             {"from": "gpt", "value": REPLIES[i]}], **extra}


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


SCORES = [0.9, -0.2, 0.4, 0.1]  # (the prompts served in the order of these scores, highest first)


@pytest.mark.parametrize("name, write", [
    ("chat.jsonl", lambda p: p.write_text(lines(chat(i, score=SCORES[i], request_id=7 + i) for i in range(4)))),
    ("sharegpt.json", lambda p: p.write_text(json.dumps([sharegpt(i, score=SCORES[i], request_id=7 + i)
                                                          for i in range(4)]))),
])
def test_conversation_records_give_scores_and_ids_as_a_csv_does(tmp_path, capsys, name, write):
    """``ltr`` on a chat file with a ``score`` on every record said "policy 'ltr' needs a 'score' column, which
    workload ... lacks"; its requests now run as the same rows of a ``.csv`` do."""
    path = tmp_path / name
    write(path)
    table = tmp_path / "same.csv"
    pl.DataFrame({"request_id": [7 + i for i in range(4)], "prompt": PROMPTS, "generated": REPLIES,
                  "score": SCORES}).write_csv(table)
    runs = {}
    for source in (path, table):  # (one request at a time: served in the scores' order)
        out = tmp_path / f"out-{source.suffix}"
        r = run_cli_fast(capsys, "simulate", "-w", source, "--policy", "ltr", "--max-num-seqs", "1", "-o", out)
        assert r.returncode == 0, r.stderr[-2000:]
        runs[source] = pl.read_parquet(out / "requests.parquet").sort("request_id")
    # the same requests, served alike (the conversations' own first-turn ids beside them)
    assert runs[path].drop("source_id").select(runs[table].columns).equals(runs[table])
    served = runs[path].sort("first_scheduled_time")
    assert served["request_id"].to_list() == [7, 9, 10, 8]  # (highest score first)
    assert workload_fingerprint(str(path))["conversation columns"] == "kept"  # (runs cached before had no score)


def test_a_conversation_record_keeps_po_estimate_and_predicted_length(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(lines(chat(i, po_estimate=10.0 * (i + 1), predicted_length=None if i == 1 else i + 0.5)
                          for i in range(4)))
    df = load_workload(str(path)).df.sort("prompt")
    assert df["po_estimate"].to_list() == [10.0, 20.0, 30.0, 40.0]
    assert df["predicted_length"].to_list() == [0.5, None, 2.5, 3.5]
    assert "score" not in df.columns and df["request_id"].sort().to_list() == [0, 1, 2, 3]  # (numbered, as before)


@pytest.mark.parametrize("records, message", [
    ([chat(0, score="high")], "c.jsonl: record 1: 'score' must be a number (or null), got 'high'"),
    ([sharegpt(0, po_estimate=True)], "c.jsonl: record 1 (id 's0'): 'po_estimate' must be a number (or null)"),
    ([chat(0, score=10**400)], "c.jsonl: record 1: 'score' is too large to be a number (401 digits)"),
    ([chat(0, request_id="a")], "c.jsonl: record 1: 'request_id' must be a whole number, got 'a'"),
    ([chat(0, request_id=1), chat(1), chat(2, request_id=3)],
     "c.jsonl: record 2: no 'request_id', which other records have; give it on every record or none"),
    ([chat(0, request_id=1), chat(1, request_id=1)], "c.jsonl: record 2"),
    ([chat(0, request_id=-1)], "c.jsonl: record 1"),
    ([sharegpt(0, predicted_length=-5.0)], "c.jsonl: column predicted_length has 1 negative or non-finite value(s) "
                                            "(first: -5.0) in record id 's0'"),
])
def test_bad_conversation_record_columns_are_one_line(tmp_path, capsys, records, message):
    """A record's values are checked as a ``.jsonl`` request line's, the error naming the record."""
    path = tmp_path / "c.jsonl"
    path.write_text(lines(records))
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), message)


DEVELOPER = ({"role": "developer", "content": [{"type": "text", "text": SYSTEM}]},)


@pytest.mark.parametrize("name, write", [
    ("chat.jsonl", lambda p: p.write_text(lines(chat(i, ({"role": "system", "content": SYSTEM},) if i % 2 else ())
                                                for i in range(4)))),
    ("dev.jsonl", lambda p: p.write_text(lines(chat(i, DEVELOPER if i % 2 else ()) for i in range(4)))),
    ("escaped.jsonl", lambda p: p.write_text(lines(chat(i, ({"role": "system", "content": SYSTEM},) if i % 2 else ())
                                                   for i in range(4)).replace('"system"', '"\\u0073ystem"'))),
    ("sharegpt.json", lambda p: p.write_text(json.dumps([sharegpt(i, ({"from": "System", "value": SYSTEM},)
                                                                  if i % 2 else ()) for i in range(4)]))),
    ("lmsys.parquet", lambda p: pl.DataFrame({"conversation": [chat(i, ({"role": "system", "content": SYSTEM},)
                                                                    if i % 2 else ())["messages"] for i in range(4)]}
                                             ).write_parquet(p)),
])
def test_system_text_before_the_first_user_turn_is_in_the_prompt(tmp_path, capsys, name, write):
    """A server is sent the system (or developer) messages with the user's; their tokens were left out of the
    prompt's (and their text out of the prompt a text-mode engine serves)."""
    path = tmp_path / name
    write(path)
    df = load_workload(str(path)).df.sort("prompt")
    expected = sorted([PROMPTS[0], PROMPTS[2], f"{SYSTEM}\n\n{PROMPTS[1]}", f"{SYSTEM}\n\n{PROMPTS[3]}"])
    assert df["prompt"].to_list() == expected
    assert df["prompt_tokens"].to_list() == count_tokens(expected).tolist()
    assert df["prompt_tokens"][3] > count_tokens([PROMPTS[3]])[0] + 5
    r = run_cli_fast(capsys, "simulate", "-w", path, "-o", tmp_path / "out")  # (served with those lengths)
    assert r.returncode == 0, r.stderr[-2000:]
    served = pl.read_parquet(tmp_path / "out" / "requests.parquet")["prompt_tokens"].sort().to_list()
    assert served == sorted(count_tokens(expected).tolist())
    # (runs cached before left it out)
    assert workload_fingerprint(str(path))["system text"] == "counted, a blank user turn empty"


def test_files_without_new_columns_or_system_text_keep_their_cache_keys(tmp_path):
    """A file whose parse is unchanged keeps its run cache key; the packaged ShareGPT file keeps the paper's first
    user turns (its 26 with a system message before them too) and its key."""
    from ltrsched.workloads.sharegpt import may_give_system_text

    plain = tmp_path / "plain.jsonl"  # (non-ASCII text escaped, "caf\u00e9": no letter of a key or speaker)
    plain.write_text(lines([*(chat(i) for i in range(3)), {"messages": [
        {"role": "user", "content": "Un café, s'il vous plaît, et l'addition"},
        {"role": "assistant", "content": "Voilà"}]}]))
    assert "\\u00e9" in plain.read_text()
    late = tmp_path / "late.json"  # (a system message after the first turn: not read before, nor now)
    late.write_text(json.dumps([{"messages": [*chat(i)["messages"], {"role": "system", "content": "later"}]}
                                for i in range(3)]))
    lmsys = tmp_path / "lmsys.parquet"
    pl.DataFrame({"conversation": [chat(i)["messages"] for i in range(3)], "score": [0.1, 0.2, 0.3]}).write_parquet(
        lmsys)  # (a parquet's score was kept before)
    flat = tmp_path / "flat.jsonl"
    flat.write_text(lines({"prompt": PROMPTS[i], "generated": REPLIES[i], "score": 0.5, "note": "system"}
                          for i in range(3)))
    for path in (plain, lmsys, flat):
        key = workload_fingerprint(str(path))
        assert "conversation columns" not in key and "system text" not in key, path
    assert "conversation columns" not in workload_fingerprint(str(late))
    assert may_give_system_text(late)  # (a byte probe: "may"), and its prompts are the user turns alone
    assert sorted(load_workload(str(late)).df["prompt"].to_list()) == PROMPTS[:3]
    assert "system text" not in workload_fingerprint("sharegpt")


def test_a_parse_cached_before_is_not_reused(tmp_path, monkeypatch):
    """A conversation file's first turns are cached; one cached before the records' scores and system text were read
    has neither."""
    from ltrsched.workloads.sharegpt import cache_dir, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "chat.jsonl"
    path.write_text(lines(chat(i, ({"role": "system", "content": SYSTEM},), score=0.1 * i) for i in range(3)))
    stale = cache_dir() / f"sharegpt-{records_key(path)}-utf8-skips-case.parquet"  # (the name it had)
    stale.parent.mkdir(parents=True)
    pl.DataFrame({"source_id": [""] * 3, "prompt": PROMPTS[:3], "response": REPLIES[:3], "prompt_tokens": [10] * 3,
                  "output_tokens": [8] * 3}).write_parquet(stale)
    stale.with_name(stale.name + ".notes.json").write_text("[]")
    df = load_workload(str(path)).df
    assert sorted(df["score"].to_list()) == pytest.approx([0.0, 0.1, 0.2])
    assert all(p.startswith(SYSTEM) for p in df["prompt"])
