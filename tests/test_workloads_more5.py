"""Workload files from other sources, given as their users would: Chatbot Arena's ``tstamp`` arrival times (every
request arrived at t = 0), its two-conversation records, and odd or hostile files (OpenAI request logs, WildChat
records, time zones, encodings). Each case was loaded wrongly, or refused misleadingly, before its fix."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ltrsched.workloads import load_workload
from ltrsched.workloads.loaders import workload_fingerprint
from cli_helpers import run_cli_fast

PROMPTS = [f"Please explain topic number {i} in a few words" for i in range(3)]
REPLIES = [f"Topic {i} is about many things indeed" for i in range(3)]
TSTAMPS = [1682351591.25, 1682351596.25, 1682351601.25]  # (Unix seconds, 5 s apart: Arena's own are so)


def one_line_error(r, message: str) -> None:
    """Exit code 2 and one stderr line, ``error: ...`` holding ``message``, no traceback."""
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def messages(i: int) -> list[dict]:
    return [{"content": PROMPTS[i], "role": "user"}, {"content": REPLIES[i], "role": "assistant"}]


def arena(i: int, **extra) -> dict:
    """A Chatbot Arena record (``lmsys/chatbot_arena_conversations``) with its chosen conversation renamed
    ``conversation``, as :data:`~ltrsched.workloads.sharegpt.ARENA_HINT` says to."""
    return {"question_id": f"q{i}", "model_a": "vicuna-13b", "winner": "model_a", "conversation": messages(i),
            "turn": 1, "anony": True, "language": "English", "tstamp": TSTAMPS[i], **extra}


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def arrivals(path) -> dict[str, float]:
    """Each prompt's arrival time as loaded [s], relative to the first (replay shifts them so)."""
    df = load_workload(str(path)).df
    first = df["arrival_time"].min()
    return {p: round(t - first, 6) for p, t in zip(df["prompt"], df["arrival_time"])}


EXPECTED = {PROMPTS[i]: 5.0 * i for i in range(3)}


@pytest.mark.parametrize("name, write", [
    ("arena.parquet", lambda p: pl.DataFrame([arena(i) for i in range(3)]).write_parquet(p)),
    ("arena.json", lambda p: p.write_text(json.dumps([arena(i) for i in range(3)]))),
    ("arena.jsonl", lambda p: p.write_text(lines({**{k: v for k, v in arena(i).items() if k != "tstamp"},
                                                  "TSTAMP_ms": TSTAMPS[i] * 1000} for i in range(3)))),
    ("flat.csv", lambda p: p.write_text("prompt,generated,tstamp\n" + "".join(
        f"{PROMPTS[i]},{REPLIES[i]},{TSTAMPS[i]}\n" for i in range(3)))),
    ("flat.jsonl", lambda p: p.write_text(lines({"prompt": PROMPTS[i], "generated": REPLIES[i],
                                                 " Tstamp ": TSTAMPS[i]} for i in range(3)))),
    ("flat.parquet", lambda p: pl.DataFrame({"prompt": PROMPTS, "generated": REPLIES, "tstamp": TSTAMPS})
     .write_parquet(p)),
])
def test_tstamp_is_read_as_the_arrival_time(tmp_path, name, write):
    """Chatbot Arena's ``tstamp`` (Unix seconds) was no arrival name: every request arrived at t = 0. It is read in
    every format by arrival_names' rule (any case, a unit suffix), and the run cache key marks such files."""
    path = tmp_path / name
    write(path)
    assert arrivals(path) == EXPECTED
    assert workload_fingerprint(str(path))["added arrival names"] == "read"  # (runs cached before had t = 0)


def test_replay_of_tstamp_starts_at_zero(tmp_path, capsys):
    path = tmp_path / "arena.json"
    path.write_text(json.dumps([arena(i) for i in range(3)]))
    r = run_cli_fast(capsys, "simulate", "-w", path, "--arrival", "replay", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(pl.read_parquet(tmp_path / "out" / "requests.parquet")["arrival_time"]) == [0.0, 5.0, 10.0]


def test_files_without_tstamp_keep_their_cache_keys(tmp_path):
    """Only a file that may name ``tstamp`` has its run cache key changed; its text elsewhere (a prompt) does not."""
    chat = tmp_path / "chat.jsonl"
    chat.write_text(lines({"messages": messages(i), "timestamp": TSTAMPS[i], "note": "tstamp"} for i in range(3)))
    table = tmp_path / "t.csv"
    table.write_text("prompt,generated,timestamp\n" + "".join(f"tstamp,{REPLIES[i]},{i}\n" for i in range(3)))
    lmsys = tmp_path / "lmsys.parquet"
    pl.DataFrame({"conversation_id": ["a", "b", "c"], "conversation": [messages(i) for i in range(3)],
                  "timestamp": TSTAMPS}).write_parquet(lmsys)
    for path in (chat, table, lmsys):
        assert "added arrival names" not in workload_fingerprint(str(path))
    assert "added arrival names" not in workload_fingerprint("sharegpt")


def test_a_parse_cached_before_tstamp_was_read_is_not_reused(tmp_path, monkeypatch):
    """A conversation file's first turns are cached; one cached before ``tstamp`` was read has no arrival times."""
    from ltrsched.workloads.sharegpt import cache_dir, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "arena.json"
    path.write_text(json.dumps([arena(i) for i in range(3)]))
    stale = cache_dir() / f"sharegpt-{records_key(path)}-utf8-skips-case.parquet"  # (the name it had)
    stale.parent.mkdir(parents=True)
    pl.DataFrame({"source_id": [""] * 3, "prompt": PROMPTS, "response": REPLIES, "prompt_tokens": [10] * 3,
                  "output_tokens": [8] * 3}).write_parquet(stale)
    stale.with_name(stale.name + ".notes.json").write_text("[]")
    assert arrivals(path) == EXPECTED


def arena_pair(i: int) -> dict:
    """A Chatbot Arena record as published: two models' conversations, ``conversation_a`` and ``conversation_b``."""
    record = arena(i)
    del record["conversation"]
    return {**record, "conversation_a": messages(i), "conversation_b": messages((i + 1) % 3)}


@pytest.mark.parametrize("name, write", [
    ("a.parquet", lambda p: pl.DataFrame([arena_pair(i) for i in range(3)]).write_parquet(p)),
    ("a.jsonl", lambda p: p.write_text(lines(arena_pair(i) for i in range(3)))),
    ("a.json", lambda p: p.write_text(json.dumps([arena_pair(i) for i in range(3)]))),
])
def test_arena_pairs_name_their_format(tmp_path, capsys, name, write):
    """Chatbot Arena's own records said "missing column(s) prompt_tokens, output_tokens" (a parquet), "expected an
    object with string fields 'prompt' and 'generated'" (a .jsonl) or "no 'conversations', ... list" (a .json):
    they name the format and what to write instead."""
    path = tmp_path / name
    write(path)
    r = run_cli_fast(capsys, "simulate", "-w", path)
    one_line_error(r, "Chatbot Arena's format, not read as it is (which reply is served?); rename the one to serve "
                   "'conversation'")


def lmsys(system: bool) -> pl.DataFrame:
    """LMSYS-Chat-1M's parquet (conversation_id, model, conversation, turn, language), a system message first in
    each conversation if ``system``."""
    head = [{"content": "Answer briefly.", "role": "system"}] if system else []
    return pl.DataFrame({"conversation_id": [f"c{i}" for i in range(3)], "model": ["vicuna-13b"] * 3,
                         "conversation": [head + messages(i) for i in range(3)], "turn": [1] * 3,
                         "language": ["English"] * 3})


@pytest.mark.parametrize("system", [True, False])
def test_a_cached_conversations_parquet_is_not_read_again(tmp_path, monkeypatch, system):
    """A conversations parquet's speakers were read on every load (the parse cache's name and the run cache key ask
    whether it holds system messages), and its messages in full (to tell it is one), though its first turns were
    cached: 2.8-3.1 s of every load of 100,000 conversations. Its speakers are read once per content now, its
    columns alone on a cached load; the answer is the same."""
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "lmsys.parquet"
    lmsys(system).write_parquet(path)
    first = load_workload(str(path)).df
    key = workload_fingerprint(str(path))
    reads = []
    scan, read = pl.scan_parquet, pl.read_parquet
    monkeypatch.setattr(pl, "scan_parquet", lambda source, *a, **k: reads.append(("scan", source)) or scan(
        source, *a, **k))
    monkeypatch.setattr(pl, "read_parquet", lambda source, *a, **k: reads.append(("read", source, k.get("n_rows")))
                        or read(source, *a, **k))
    again = load_workload(str(path)).df
    assert workload_fingerprint(str(path)) == key
    assert [r for r in reads if r[1] == path and (r[0] == "scan" or r[2] is None)] == []
    assert again.equals(first)
    assert ("system text" in key) is system
    assert all(p.startswith("Answer briefly.\n\n") is system for p in again["prompt"])


def test_a_damaged_remembered_probe_is_probed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "lmsys.parquet"
    lmsys(True).write_parquet(path)
    assert workload_fingerprint(str(path))["system text"] == "counted, a blank user turn empty"
    kept = list((tmp_path / "cache").glob("*-system-p*.probe.json"))  # (its system probe; a prompter one beside it)
    assert len(kept) == 1 and kept[0].read_text() == "true"
    kept[0].write_text("tru")
    assert workload_fingerprint(str(path))["system text"] == "counted, a blank user turn empty"
    assert kept[0].read_text() == "true"


SYSTEM = "be brief"
#: Chat templates of a word-level tokenizer: one that renders a system turn, one that refuses it (as Gemma's does),
#: one that leaves it out without a word.
TEMPLATES = {
    "takes": ("{% for m in messages %}{% if m['role'] == 'system' %}<sys> {{ m['content'] }} </sys> {% else %}"
              "<user> {{ m['content'] }} </user> {% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>"
              "{% endif %}"),
    "refuses": ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
                "{% for m in messages %}<user> {{ m['content'] }} </user> {% endfor %}"
                "{% if add_generation_prompt %}<assistant>{% endif %}"),
    "drops": ("{% for m in messages %}{% if m['role'] != 'system' %}<user> {{ m['content'] }} </user> {% endif %}"
              "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"),
}


def word_tokenizer(path, template: str):
    """A word-level tokenizer (no download) whose chat template is ``template``, saved in ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<sys>", "</sys>", "<user>", "</user>", "<assistant>", "be", "brief", "please", "explain",
             "topic", "number", "0", "1", "2", "in", "a", "few", "words"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    fast.chat_template = template
    fast.save_pretrained(str(path))
    return fast


def rendered(tok, chat: list[dict]) -> list[int]:
    ids = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    return list(ids if isinstance(ids, list) else ids["input_ids"])


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_text_prompts_send_system_text_as_the_system_turn(tmp_path, template):
    """``--prompts text`` put a conversation's system text inside the user message (``"be brief\\n\\nPlease ..."``):
    it is the system turn where the chat template renders one, as vLLM's chat endpoint is sent it; a template that
    refuses a system turn or drops it keeps the joined text as the user's. The prompt's token count is the rendered
    ids' length either way."""
    from ltrsched.engine.served_models import ChatPrompts, with_text_prompts

    tok = word_tokenizer(tmp_path / "model", TEMPLATES[template])
    path = tmp_path / "chat.jsonl"
    path.write_text(lines({"messages": [{"role": "system", "content": SYSTEM}, *messages(i)]} for i in range(2))
                    + lines([{"messages": messages(2)}]))  # (one without a system message)
    workload = load_workload(str(path))
    served, ids = with_text_prompts(workload, ChatPrompts(tmp_path / "model"))
    for prompt, row, count in zip(workload.df["prompt"], ids, served.df["prompt_tokens"]):
        user = prompt.removeprefix(f"{SYSTEM}\n\n")
        system = SYSTEM if user != prompt else None
        if system is None:
            chat = [{"role": "user", "content": prompt}]
        elif template == "takes":
            chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        else:
            chat = [{"role": "user", "content": f"{SYSTEM}\n\n{user}"}]
        assert row == rendered(tok, chat) and count == len(row)
        assert (tok.convert_ids_to_tokens(row)[:1] == ["<sys>"]) is (system is not None and template == "takes")
    assert sum(p.startswith(SYSTEM) for p in workload.df["prompt"]) == 2
    assert "system_prompt" not in workload.df.columns  # (a workload's columns are the flat formats')


def test_a_parse_cached_before_the_system_turn_is_not_reused(tmp_path, monkeypatch):
    """A parse cached as "-system" (its prompts counted the system text, which it did not keep apart) is parsed
    again; a file without system messages keeps its entry and has no system turns."""
    from ltrsched.workloads.sharegpt import cache_dir, records_key, system_turns

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "chat.jsonl"
    path.write_text(lines({"messages": [{"role": "system", "content": SYSTEM}, *messages(i)]} for i in range(3)))
    stale = cache_dir() / f"sharegpt-{records_key(path)}-utf8-skips-case-system.parquet"  # (the name it had)
    stale.parent.mkdir(parents=True)
    pl.DataFrame({"source_id": [""] * 3, "prompt": [f"{SYSTEM}\n\n{p}" for p in PROMPTS], "response": REPLIES,
                  "prompt_tokens": [10] * 3, "output_tokens": [8] * 3}).write_parquet(stale)
    stale.with_name(stale.name + ".notes.json").write_text("[]")
    assert system_turns(path) == {f"{SYSTEM}\n\n{p}": SYSTEM for p in PROMPTS}
    plain = tmp_path / "plain.jsonl"
    plain.write_text(lines({"messages": messages(i)} for i in range(3)))
    assert system_turns(plain) == {} and len(load_workload(str(plain))) == 3
    assert not any("system" in p.name for p in (tmp_path / "cache").iterdir() if records_key(plain) in p.name)


# -- other sources' odd and hostile files -------------------------------------------------------------------------

def flat(times, key: str = "timestamp") -> str:
    return lines({"prompt": PROMPTS[i], "generated": REPLIES[i], key: t} for i, t in enumerate(times))


def conversations_json(n: int = 3) -> str:
    return json.dumps([{"id": f"a{i}", "conversations": [{"from": "human", "value": PROMPTS[i]},
                                                         {"from": "gpt", "value": REPLIES[i]}]} for i in range(n)],
                      indent=1)


ODD_ERRORS = [
    ("oai.jsonl", lines({"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEM},
                                                        {"role": "user", "content": p}], "max_tokens": 256}
                        for p in PROMPTS),
     "3 requests without the assistant's reply (first: record 1: 'max_tokens' is a cap, not the reply's length: "
     "give the assistant's reply or its output_tokens)"),
    ("ask.json", json.dumps([{"messages": [{"role": "user", "content": p}]} for p in PROMPTS]),
     "3 requests without the assistant's reply (first: record 1: the last message is the user's: give the assistant's reply"),
    ("one.json", json.dumps({"id": "a", "conversations": messages(0)}),
     "not a JSON array of conversations: it starts with '{' (one conversation: wrap it in [ ])"),
    ("wrapped.json", json.dumps({"version": 2, "data": [{"messages": messages(i)} for i in range(3)]}),
     "it starts with '{' (an object whose records are under 'data': write that array alone)"),
    ("u16.json", conversations_json().encode("utf-16"),
     "u16.json: the file is UTF-16 text (its byte-order mark), not UTF-8; save it as UTF-8"),
    ("u16le.json", conversations_json().encode("utf-16-le"),
     "u16le.json: the file is UTF-16 text (NUL bytes beside its characters), not UTF-8"),
    ("u16.jsonl", flat([0, 1, 2]).encode("utf-16"), "u16.jsonl: the file is UTF-16 text (its byte-order mark)"),
    ("u16be.csv", "prompt,generated\nhello there,hi\n".encode("utf-16-be"),
     "u16be.csv: the file is UTF-16 text (NUL bytes beside its characters)"),
    ("u32.csv", "prompt,generated\nhello there,hi\n".encode("utf-32"), "u32.csv: the file is UTF-32 text (its byte-"),
    ("u32le.jsonl", flat([0, 1, 2]).encode("utf-32-le"), "the file is UTF-32 text (NUL bytes beside its characters)"),
    ("tz.jsonl", flat(["2023-04-09T00:00:00+00:00", "2023-04-09 00:00:05", "2023-04-09T00:00:10Z"]),
     "tz.jsonl: key 'timestamp': the date-time '2023-04-09 00:00:05' has no time zone where others have one (first: "
     "'2023-04-09T00:00:00+00:00'): which zone is it in?"),
    ("tz.csv", "prompt,generated,Timestamp\n" + "".join(
        f"{PROMPTS[i]},{REPLIES[i]},{t}\n" for i, t in enumerate(["2023-04-09 00:00:00", "2023-04-09T00:00:05-05:00"])),
     "tz.csv: column 'Timestamp': the date-time '2023-04-09 00:00:00' has no time zone where others have one"),
    ("dup.jsonl", lines({"prompt": p, "generated": "ok", "request_id": 4} for p in PROMPTS[:2]),
     "dup.jsonl: line 2: request_id 4 is line 1's too; request ids must be unique"),
]


@pytest.mark.parametrize("name, data, message", ODD_ERRORS, ids=[case[0] for case in ODD_ERRORS])
def test_odd_files_are_one_line_errors_saying_what_they_are(tmp_path, capsys, name, data, message):
    """Before: an OpenAI chat-completions request log was "conversations that do not open with a user turn answered
    by the assistant"; a single conversation or a wrapped array said "wrap them in [ ] with commas"; a UTF-16 file
    "not valid UTF-8: byte 0xff" or (no mark) "not valid JSON at line 1 column 2"; a date-time without a zone among
    zoned ones "must be a number of seconds or a date-time"."""
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), message)


ODD_LOADS = [
    ("zones.jsonl", flat(["2023-04-09T00:00:00+00:00", "2023-04-09T02:00:05+02:00", "2023-04-08T19:00:10-05:00"])),
    ("zones.csv", "prompt,generated,timestamp\n" + "".join(f"{PROMPTS[i]},{REPLIES[i]},{t}\r\n" for i, t in enumerate(
        ["2023-04-09T00:00:00Z", "2023-04-09T02:00:05+0200", "2023-04-08T19:00:10-05:00"]))),
    ("bom-crlf.jsonl", b"\xef\xbb\xbf" + flat([0, 5, 10]).replace("\n", "\r\n").encode()),
    ("bom-crlf.json", b"\xef\xbb\xbf" + json.dumps([{"messages": messages(i), "timestamp": 5 * i} for i in range(3)],
                                                   indent=1).replace("\n", "\r\n").encode()),
    ("wildchat.jsonl", lines({"conversation_hash": f"h{i}", "model": "gpt-4", "turn": 1, "language": "English",
                              "toxic": i == 1, "redacted": False, "timestamp": f"2023-04-09T00:00:{5 * i:02}+00:00",
                              "conversation": [{**m, "language": "English", "toxic": False, "turn_identifier": 1,
                                                "timestamp": None} for m in messages(i)]} for i in range(3))),
    ("future.jsonl", flat([4102444800.0, 4102444805.0, 4102444810.0])),  # (2100, Unix seconds: replay shifts them)
]


@pytest.mark.parametrize("name, data", ODD_LOADS, ids=[case[0] for case in ODD_LOADS])
def test_odd_files_that_load(tmp_path, name, data):
    """Mixed time zones are one clock (UTC); byte-order marks and CRLF line ends are read; WildChat's records (ISO
    date-times with a zone, per-message keys, ``toxic``) load; times decades ahead replay from 0."""
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    assert arrivals(path) == EXPECTED


def test_a_json_array_of_one_record_is_one_request(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(conversations_json(1))
    df = load_workload(str(path)).df
    assert df["prompt"].to_list() == PROMPTS[:1] and df["request_id"].to_list() == [0]


def test_times_decades_apart_name_the_requests(tmp_path, capsys):
    """A time at Unix 0 among 2023's (a missing value written as 0) was refused naming neither request."""
    path = tmp_path / "d.jsonl"
    path.write_text(lines({"prompt": PROMPTS[i], "generated": REPLIES[i], "request_id": 10 + i, "arrival_time_s": t}
                          for i, t in enumerate([1680998400.0, 0.0, 1680998405.0])))
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path, "--arrival", "replay"),
                   "d with replay arrivals (request 12 in line 3 arrives 53 years after request 11 in line 2) has arrival times up to "
                   "1.68e+09 s; they must stay below 1e+08 s")


def test_a_conversations_parquet_sends_its_system_turn_and_a_sample_too(tmp_path):
    from ltrsched.engine.served_models import ChatPrompts, with_text_prompts

    word_tokenizer(tmp_path / "model", TEMPLATES["takes"])
    path = tmp_path / "lmsys.parquet"
    lmsys(True).write_parquet(path)
    chat = ChatPrompts(tmp_path / "model")
    for workload in (load_workload(str(path)), load_workload(str(path), num_requests=2, seed=3)):
        served, ids = with_text_prompts(workload, chat)
        tokens = [chat.tokenizer.convert_ids_to_tokens(row) for row in ids]
        assert all(t[0] == "<sys>" and "</sys>" in t for t in tokens) and len(ids) == len(workload)
        assert served.df["prompt_tokens"].to_list() == [len(row) for row in ids]


def test_a_conversations_parquets_repeated_ids_name_its_rows(tmp_path, capsys):
    """A conversations parquet without conversation ids and a repeated request_id said "a record without an id:
    request_id 1 is a record without an id's too" (its first turns were chosen and shuffled before the check)."""
    path = tmp_path / "c.parquet"
    pl.DataFrame({"conversation": [messages(i) for i in range(3)], "request_id": [1, 1, 2]}).write_parquet(path)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "c.parquet: row 2: request_id 1 is row 1's too; request ids must be unique")


def test_a_wildchat_parquet_loads_with_its_zoned_timestamps(tmp_path):
    """WildChat's parquet: a record-level ``timestamp`` of UTC date-times, per-message ``timestamp``, ``toxic`` and
    ``language`` fields (not read), ``turn``: its first turns, 5 s apart."""
    import datetime as dt

    utc = dt.timezone.utc
    path = tmp_path / "wildchat.parquet"
    pl.DataFrame({"conversation_hash": ["h0", "h1", "h2"], "model": ["gpt-4"] * 3,
                  "timestamp": [dt.datetime(2023, 4, 9, 0, 0, 5 * i, tzinfo=utc) for i in range(3)],
                  "conversation": [[{**m, "language": "English", "toxic": False, "turn_identifier": 1,
                                     "timestamp": dt.datetime(2023, 4, 9, 1, tzinfo=utc)} for m in messages(i)]
                                   for i in range(3)],
                  "turn": [1] * 3, "language": ["English"] * 3, "toxic": [False, True, False]}).write_parquet(path)
    assert arrivals(path) == EXPECTED
