"""Labels and prompts files round-trip: a labels file of prompts with a system text replays the chat that labelled
them; a conversations file's answered and unanswered prompts keep the file's order with one note; an old parse
cache does not hide the refusal of repeated ids; hostile prompts files are one line or work. No engine, no model:
the engine loop is a stand-in (``label_data.FakeLabelDriver``) and the tokenizers are word-level."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads import load_workload
from cli_helpers import run_cli_fast
from test_workloads_more5 import messages, one_line_error


# -- an old parse cache and repeated ids -----------------------------------------------------------------------------

def test_a_parse_cached_before_the_id_check_does_not_hide_repeated_ids(tmp_path, capsys, monkeypatch):
    """A conversations parquet's parse cached before its repeated request_id was refused (the parse kept it) was
    reused: the load said "a record without an id: request_id 1 is a record without an id's too" (checked after the
    shuffle), not the row. The cached parse is parsed again, and the one-line message names the row."""
    import ltrsched.workloads.sharegpt as sharegpt

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "c.parquet"
    pl.DataFrame({"conversation": [messages(i) for i in range(3)], "request_id": [1, 1, 2]}).write_parquet(path)
    plain = tmp_path / "plain.parquet"  # (the same conversations without ids: the parse before the check)
    pl.DataFrame({"conversation": [messages(i) for i in range(3)]}).write_parquet(plain)
    stale = sharegpt.parse_sharegpt(plain).with_columns(request_id=pl.Series([1, 1, 2]))
    monkeypatch.setattr(sharegpt, "parse_sharegpt", lambda *args, **kwargs: stale)
    assert sharegpt.load_sharegpt_records(path, notes=[])["request_id"].to_list() == [1, 1, 2]  # (cached so)
    monkeypatch.undo()
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "c.parquet: row 2: request_id 1 is row 1's too; request ids must be unique")


# -- one reader of a conversations file's records ---------------------------------------------------------------

@pytest.mark.parametrize("part", ["workloads", "labelling"])
def test_no_module_imports_another_modules_private_names(part):
    """prompts.py imported sharegpt's private ``_table_records`` (and kept its own copy of the parse's dispatch over
    the three conversation formats): the one reader is public now (``sharegpt.conversation_records``)."""
    import ast
    from pathlib import Path

    import ltrsched

    private = []
    for path in sorted((Path(ltrsched.__file__).parent / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ltrsched"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not private, private


# -- conversations files of answered and unanswered prompts ----------------------------------------------------------

def _ask(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Please write a long story about a city number {i} and its people"}]


def test_answered_and_unanswered_prompts_keep_the_files_order_with_one_note(tmp_path, capsys, monkeypatch):
    """The requests without the assistant's reply came after every answered conversation (c1, c3 after c4), and two
    notes spoke of them: the parse's "left out 2 of the 7 records ... 2 requests without the assistant's reply" and
    "labelling needs no reply: the 2 requests ... left out above are prompts too". Now the file's order, the parse's
    note counts only what is left out (a conversation opening with the assistant's turn), and one note says the
    requests are prompts."""
    from ltrsched.workloads.prompts import load_prompts

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    records = [{"id": "c0", "messages": messages(0)}, {"id": "c1", "messages": _ask(1)},
               {"messages": messages(1)},  # (no id: turn-2, the second first turn parsed)
               {"id": "c3", "messages": [{"role": "system", "content": "Be brief."}, *_ask(3)]},
               {"id": "c4", "messages": messages(2)},
               {"id": "c5", "messages": [{"role": "assistant", "content": "Hello"}, *messages(0)]},
               {"id": "c6", "messages": [{"role": "user", "content": "Hi"}]}]  # (too short for the paper's rule)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(records))
    for _ in range(2):  # parsed, then from the parse cache: the same prompts and notes
        df = load_prompts(path, with_system=True)
        assert df["key"].to_list() == ["c0", "c1", "turn-2", "c3", "c4"]
        assert df.filter(pl.col("key") == "c3").row(0)[1:] == (f"Be brief.\n\n{_ask(3)[0]['content']}", "Be brief.")
        assert capsys.readouterr().err.splitlines() == [
            f"warning: {path}: left out 1 of the 7 records, conversations without a first turn the paper's rule takes "
            "(a user turn answered by the assistant, opening the conversation): 1 conversations that do not open with "
            "a user turn answered by the assistant (first: record 6, id 'c5')",
            f"warning: {path}: labelling needs no reply: its 3 requests without the assistant's reply are prompts "
            "too, but for 1 with a prompt outside 4..1024 tokens (the paper's rule)"]


def test_a_mixed_file_whose_requests_are_all_too_short_keeps_its_answered_prompts(tmp_path, capsys, monkeypatch):
    """Its requests all too short for the paper's rule, a file with answered conversations was refused ("no request
    with a prompt of 4..1024 tokens") though its answered prompts are labelled."""
    from ltrsched.workloads.prompts import load_prompts

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in
                            [messages(0), [{"role": "user", "content": "Hi"}], messages(1)]))
    assert load_prompts(path)["key"].to_list() == ["turn-1", "turn-2"]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {path}: labelling needs no reply: its 1 request without the assistant's reply is a prompt too, but "
        "for 1 with a prompt outside 4..1024 tokens (the paper's rule)"]


# -- a labels file replays the chat that was labelled ----------------------------------------------------------------

def _label_with_a_stand_in_engine(tmp_path, monkeypatch, capsys, prompts_file, *options) -> tuple[dict, str]:
    """``ltrsched label --prompts PROMPTS_FILE`` on a word-level model whose chat template renders a system turn, the
    engine a stand-in: {prompt token ids sent: output tokens generated (1, 2, ... as sent)}, and its report."""
    import ltrsched.engine.runner as runner
    import ltrsched.labelling.generate as generate
    from label_data import FakeLabelDriver
    from test_labels import _tiny_chat_model
    from test_workloads_more5 import TEMPLATES, word_tokenizer

    model = _tiny_chat_model(tmp_path / "m", context=256)
    word_tokenizer(model, TEMPLATES["takes"])
    sent = {}

    def serve(driver, requests, on_done, window):
        for i, r in enumerate(requests):
            sent[tuple(r.prompt_ids)] = 1 + len(sent)
            on_done(i, generate.Generated(len(r.prompt_ids), sent[tuple(r.prompt_ids)], "stop"))

    monkeypatch.setattr(runner, "VllmDriver", FakeLabelDriver)
    monkeypatch.setattr(generate, "serve_requests", serve)
    r = run_cli_fast(capsys, "label", "--model", model, "--prompts", prompts_file, "--max-tokens", "20",
                     "--out", tmp_path / "l.parquet", *options)
    assert r.returncode == 0, r.stderr
    return sent, r.stdout


@pytest.mark.parametrize("kind", ["jsonl", "conversations"])
def test_a_labels_file_replays_the_system_turn_it_was_labelled_with(tmp_path, monkeypatch, capsys, kind):
    """Prompts with a system text (a .jsonl's "system", a conversation's system message) were labelled with it as
    the system turn, but the labels file kept it only joined in front of the prompt: the labels loaded as a workload
    (replay, validate, simulate, train) sent the whole text as the user message, a request other than the labelled
    one. The labels file keeps it in its own column, and the engine sends the chat that was labelled."""
    pytest.importorskip("transformers")
    from ltrsched.engine.served_models import ChatPrompts, with_text_prompts

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    users = [f"please explain topic number {i} in a few words" for i in range(4)]
    path = tmp_path / ("p.jsonl" if kind == "jsonl" else "p.json")
    if kind == "jsonl":
        path.write_text("".join(json.dumps({"prompt": u, "id": f"k{i}", **({"system": "be brief"} if i % 2 else {})})
                                + "\n" for i, u in enumerate(users)))
    else:
        path.write_text(json.dumps([{"id": f"k{i}", "messages": [
            *([{"role": "system", "content": "be brief"}] if i % 2 else []), {"role": "user", "content": u},
            {"role": "assistant", "content": "a few words in a number of words"}]} for i, u in enumerate(users)]))
    sent, _ = _label_with_a_stand_in_engine(tmp_path, monkeypatch, capsys, path)
    labels = pl.read_parquet(tmp_path / "l.parquet")
    assert dict(zip(labels["key"], labels["system_prompt"])) == {"k0": "", "k1": "be brief", "k2": "", "k3": "be brief"}
    chat = ChatPrompts(tmp_path / "m")
    workload = load_workload(str(tmp_path / "l.parquet"), split="all")
    served, ids = with_text_prompts(workload, chat)
    assert sorted(map(tuple, ids)) == sorted(sent)  # the replay sends the token ids that were labelled
    assert served.df["prompt_tokens"].to_list() == workload.df["prompt_tokens"].to_list()
    assert workload.df["output_tokens"].to_list() == [sent[tuple(i)] for i in ids]
    starts = {key: chat.tokenizer.convert_ids_to_tokens(row)[0] for key, row in zip(workload.df["key"], ids)}
    assert starts == {"k0": "<user>", "k1": "<sys>", "k2": "<user>", "k3": "<sys>"}


def test_a_resumed_run_labels_again_a_part_holding_another_text_under_the_key(tmp_path, monkeypatch, capsys):
    """A part written by an ltrsched that read the prompts file otherwise (before a .jsonl's system text began its
    prompt, the user's text alone) was reused by key: the labels file held the label of another request. It is
    labelled again, and the file holds this text's label."""
    from ltrsched.labelling.parts import parts_dir
    from ltrsched.workloads.labels import prompt_digest

    path = tmp_path / "p.jsonl"
    users = [f"please explain topic number {i} in a few words" for i in range(2)]
    path.write_text("".join(json.dumps({"prompt": u, "id": f"k{i}", "system": "be brief"}) + "\n"
                            for i, u in enumerate(users)))
    _label_with_a_stand_in_engine(tmp_path, monkeypatch, capsys, path, "--splits", "eval")
    (part,) = parts_dir(tmp_path / "l.parquet").glob("part-*.parquet")
    old = pl.read_parquet(part).with_columns(prompt=pl.lit(users[0]), prompt_sha256=pl.lit(prompt_digest(users[0])),
                                             output_tokens=pl.lit(19, dtype=pl.Int64))
    old.write_parquet(part)
    sent, report = _label_with_a_stand_in_engine(tmp_path, monkeypatch, capsys, path, "--splits", "eval")
    assert "unreadable" not in report  # (the part was read, not dropped as damaged)
    assert len(sent) == 1  # (the eval window: the first of the two prompts, relabelled)
    labels = pl.read_parquet(tmp_path / "l.parquet")
    assert labels.select("prompt", "system_prompt", "output_tokens").rows() == [
        (f"be brief\n\n{labels['prompt'][0].removeprefix('be brief' + chr(10) * 2)}", "be brief", 1)]
    assert load_workload(str(tmp_path / "l.parquet")).df["output_tokens"].to_list() == [1]


def _labels_file(path, systems: list[str]) -> pl.DataFrame:
    """What `label --prompts` writes, of prompts with the system texts ``systems`` ("": none)."""
    from ltrsched.workloads.labels import LABEL_COLUMNS, prompt_digest

    prompts = [(f"{s}\n\n" if s else "") + f"please explain topic number {i}" for i, s in enumerate(systems)]
    df = pl.DataFrame({"key": [f"k{i}" for i in range(len(systems))], "split": "eval", "run": "main",
                       "prompt_sha256": [prompt_digest(p) for p in prompts], "prompt_tokens": 9, "output_tokens": 5,
                       "finish_reason": "stop", "model": "m", "model_sha256": "0" * 64, "temperature": 0.0,
                       "top_p": 1.0, "max_tokens": 20, "seed": 0, "repetition_penalty": 1.0, "prompt": prompts, "system_prompt": systems})
    df = df.with_columns(pl.col(c).cast(t) for c, t in LABEL_COLUMNS.items())
    df.write_parquet(path)
    return df


def test_labels_without_the_system_column_still_load_and_send_one_user_message(tmp_path):
    from ltrsched.workloads.sharegpt import system_turns

    labels = _labels_file(tmp_path / "new.parquet", ["be brief", ""])
    assert system_turns(tmp_path / "new.parquet") == {labels["prompt"][0]: "be brief"}
    labels.drop("system_prompt").write_parquet(tmp_path / "old.parquet")  # (made before the column)
    workload = load_workload(str(tmp_path / "old.parquet"))
    assert workload.df["prompt"].to_list() == labels["prompt"].to_list()
    assert system_turns(tmp_path / "old.parquet") == {}


@pytest.mark.parametrize("edit, message", [
    pytest.param(lambda df: df.with_columns(system_prompt=pl.lit("be long")), "error: l: row 1 of 2 (key 'k0'): the prompt does "
     "not begin with its system_prompt and a blank line; the file was edited after labelling", id="edited"),
    pytest.param(lambda df: df.drop("prompt"), "column system_prompt without the prompt text (prompt)", id="no-text"),
    pytest.param(lambda df: df.with_columns(system_prompt=pl.lit(3)),
                 "column system_prompt holds Int32, not the system text", id="number"),
    pytest.param(lambda df: df.with_columns(system_prompt=pl.lit(None, pl.Utf8)),
                 "column system_prompt has 2 missing value(s)", id="null"),
])
def test_a_damaged_system_column_is_one_line(tmp_path, capsys, edit, message):
    edit(_labels_file(tmp_path / "l.parquet", ["be brief", ""])).write_parquet(tmp_path / "l.parquet")
    one_line_error(run_cli_fast(capsys, "simulate", "-w", tmp_path / "l.parquet"), message)


# -- hostile and foreign prompts files -------------------------------------------------------------------------------

ASK = "please explain the topic of cities and their history"
TWO = f"{ASK} again"


def _jsonl(*records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


#: (file name, its bytes, the one-line error's text): refused, exit code 2.
HOSTILE_PROMPTS = [
    ("gz.jsonl", gzip.compress(_jsonl({"prompt": ASK})), "gz.jsonl: the file is gzip-compressed; "
     "decompress it first and give the file it holds"),  # (was "not valid UTF-8: byte 0x8b")
    ("gz.txt", gzip.compress(ASK.encode()), "gz.txt: the file is gzip-compressed"),
    ("z.parquet", gzip.compress(b"PAR1....PAR1"), "z.parquet: the file is gzip-compressed"),  # (was
    # "cannot read parquet (ComputeError: parquet: File out of specification: The file must end with PAR1 or PARE)")
    ("a.zip.json", b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe", "a.zip.json: the file is a zip archive; extract"),
    ("empty.parquet", b"", "empty.parquet: the file is empty"),  # (was "A Parquet file must contain a header ...")
    ("empty.csv", b"", "empty.csv: the file is empty"),  # (was "cannot parse CSV (NoDataError: empty CSV)")
    ("empty.jsonl", b"", "empty.jsonl: the file is empty"),
    ("blank.csv", b"\r\n\r\n", "blank.csv: no prompts (no line with text)"),  # (was "NoDataError: empty CSV")
    ("surrogate.jsonl", _jsonl({"prompt": ASK + "\ud800"}), "surrogate.jsonl:1: the prompt holds a lone UTF-16 "
     "surrogate (\\ud800 at character 53)"),
    ("utf16.txt", ASK.encode("utf-16"), "utf16.txt: the file is UTF-16 text (its byte-order mark), not UTF-8"),
    ("latin1.txt", f"café {ASK}".encode("latin-1"), "latin1.txt:1: not valid UTF-8: byte 0xe9"),
]


@pytest.mark.parametrize("name, data, message", HOSTILE_PROMPTS, ids=[c[0] for c in HOSTILE_PROMPTS])
def test_hostile_prompts_files_are_one_line(tmp_path, capsys, monkeypatch, name, data, message):
    import ltrsched.labelling.run as run

    monkeypatch.setattr(run, "label_prompts", lambda *a, **k: pytest.fail("labelled"))
    (tmp_path / name).write_bytes(data)
    one_line_error(run_cli_fast(capsys, "label", "--prompts", tmp_path / name, "--out", tmp_path / "l.parquet"),
                   message)


def test_a_directory_as_prompts_is_one_line(tmp_path, capsys):
    (tmp_path / "d.jsonl").mkdir()
    one_line_error(run_cli_fast(capsys, "label", "--prompts", tmp_path / "d.jsonl", "--out", tmp_path / "l.parquet"),
                   "is a directory")


#: (file name, its bytes, the prompts labelled): read as they should be.
FOREIGN_PROMPTS = [
    ("nul.jsonl", _jsonl({"prompt": ASK + "\u0000x", "id": "a"}, {"prompt": TWO, "id": "b"}),
     [ASK + "\u0000x", TWO]),  # (a NUL is a character a tokenizer encodes)
    ("nul.txt", f"{ASK}\x00x\n{TWO}\n".encode(), [ASK + "\x00x", TWO]),
    ("crlf.jsonl", _jsonl({"prompt": ASK, "id": "a"}, {"prompt": TWO, "id": "b"}).replace(b"\n", b"\r\n"), [ASK, TWO]),
    ("crlf.txt", f"{ASK}\r\n{TWO}\r\n".encode(), [ASK, TWO]),
    ("crlf.csv", f"prompt,id\r\n{ASK},a\r\n{TWO},b\r\n".encode(), [ASK, TWO]),
    ("bom.jsonl", b"\xef\xbb\xbf" + _jsonl({"prompt": ASK, "id": "a"}, {"prompt": TWO, "id": "b"}), [ASK, TWO]),
    ("bom.txt", b"\xef\xbb\xbf" + f"{ASK}\n{TWO}\n".encode(), [ASK, TWO]),
    ("bom.csv", b"\xef\xbb\xbf" + f"prompt\n{ASK}\n{TWO}\n".encode(), [ASK, TWO]),
    ("bom-crlf.json", b"\xef\xbb\xbf" + json.dumps([{"id": k, "messages": [{"role": "user", "content": p}]}
                                                     for k, p in (("a", ASK), ("b", TWO))], indent=1)
     .replace("\n", "\r\n").encode(), [ASK, TWO]),
    ("long.txt", ("word " * 200_000 + f"\n{TWO}\n").encode(), ["word " * 200_000, TWO]),  # (1 MB: skipped as too long
    # for the context when labelled, as the label run's report says)
]


@pytest.mark.parametrize("name, data, prompts", FOREIGN_PROMPTS, ids=[c[0] for c in FOREIGN_PROMPTS])
def test_foreign_prompts_files_are_read(tmp_path, capsys, monkeypatch, name, data, prompts):
    import ltrsched.labelling.run as run

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    seen = []
    monkeypatch.setattr(run, "label_prompts", lambda jobs, *a, **k: seen.extend(jobs) or ["labelled"])
    (tmp_path / name).write_bytes(data)
    r = run_cli_fast(capsys, "label", "--prompts", tmp_path / name, "--out", tmp_path / "l.parquet")
    assert (r.returncode, r.stderr) == (0, "")
    assert sorted(j.prompt for j in seen) == sorted(prompts)


HOSTILE_WORKLOADS = [
    ("gz.jsonl", gzip.compress(b'{"prompt_tokens": 5, "output_tokens": 5}\n'),
     "gz.jsonl: the file is gzip-compressed"),  # (was "not valid UTF-8: byte 0x8b")
    ("gz.parquet", gzip.compress(b"PAR1....PAR1"), "gz.parquet: the file is gzip-compressed"),
    ("blank.csv", b"\n\n", "blank.csv: no requests (no line with text)"),  # (was "NoDataError: empty CSV")
]


@pytest.mark.parametrize("name, data, message", HOSTILE_WORKLOADS, ids=[c[0] for c in HOSTILE_WORKLOADS])
def test_hostile_workload_files_are_one_line(tmp_path, capsys, name, data, message):
    (tmp_path / name).write_bytes(data)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", tmp_path / name), message)


def test_requests_with_a_lone_surrogate_are_skipped_with_a_note(tmp_path, capsys, monkeypatch):
    """A request without the assistant's reply whose prompt (or system text) holds an escaped lone UTF-16 surrogate was
    a UnicodeEncodeError traceback (the requests' table could not be built), in a file of requests alone or beside
    answered conversations; it is skipped with a note, as the parse skips such a conversation."""
    from ltrsched.workloads.prompts import load_prompts

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    bad = [{"id": "a", "messages": [{"role": "user", "content": ASK + "\ud800"}]},
           {"id": "s", "messages": [{"role": "system", "content": "\udc00"}, {"role": "user", "content": ASK}]}]
    path = tmp_path / "requests.json"
    path.write_text(json.dumps([*bad, {"id": "b", "messages": [{"role": "user", "content": TWO}]}]))
    assert load_prompts(path)["key"].to_list() == ["b"]
    assert capsys.readouterr().err == (f"warning: {path}: skipped 2 of its 3 requests without the assistant's reply, "
                                       "whose prompt holds a lone UTF-16 surrogate, which cannot be tokenized (first: "
                                       "record 1, id 'a': \\ud800 at character 53)\n")
    path.write_text(json.dumps([*bad, {"id": "b", "messages": messages(0)},
                                {"id": "c", "messages": [{"role": "user", "content": TWO}]}]))
    assert load_prompts(path)["key"].to_list() == ["b", "c"]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {path}: skipped 2 of its 3 requests without the assistant's reply, whose prompt holds a lone UTF-16 "
        "surrogate, which cannot be tokenized (first: record 1, id 'a': \\ud800 at character 53)",
        f"warning: {path}: labelling needs no reply: the other 1 request without the assistant's reply is a prompt too"]


@pytest.mark.parametrize("name", ["p.parquet", "p.csv"])
def test_a_prompt_tables_system_column_is_its_system_text(tmp_path, name):
    """A .jsonl's "system" begins its prompt and is sent as the system turn; a parquet's or a .csv's system column was
    ignored without a word (the prompts labelled without the system text they were given with)."""
    from ltrsched.workloads.prompts import load_prompts

    table = pl.DataFrame({"id": ["a", "b"], "prompt": [ASK, TWO], "System": ["be brief", ""]})
    if name.endswith(".csv"):
        table.write_csv(tmp_path / name)
    else:
        table.rename({"System": "system"}).write_parquet(tmp_path / name)
    assert load_prompts(tmp_path / name, with_system=True).rows() == [("a", f"be brief\n\n{ASK}", "be brief"),
                                                                      ("b", TWO, "")]
    pl.DataFrame({"prompt": [ASK], "system": [3]}).write_parquet(tmp_path / "n.parquet")
    with pytest.raises(UserError, match=r"n\.parquet: column 'system' holds Int64 values \(first: 3, row 1\), not text$"):
        load_prompts(tmp_path / "n.parquet")


# -- label --repetition-penalty: sent, recorded, carried to a replay ------------------------------------------------

def _label_penalised(tmp_path, monkeypatch, capsys, *options):
    """``ltrsched label`` on prompts of a word-level model with a stand-in engine; returns the requests it was sent."""
    pytest.importorskip("transformers")
    import ltrsched.engine.runner as runner
    import ltrsched.labelling.generate as generate
    from label_data import FakeLabelDriver
    from test_labels import _tiny_chat_model

    model = _tiny_chat_model(tmp_path / "m", context=256)
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"please explain topic number {i} in a few words\n" for i in range(8)))
    sent = []

    def serve(driver, requests, on_done, window):
        for i, r in enumerate(requests):
            sent.append(r)
            on_done(i, generate.Generated(len(r.prompt_ids), 3 + i, "stop"))

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runner, "VllmDriver", FakeLabelDriver)
    monkeypatch.setattr(generate, "serve_requests", serve)
    r = run_cli_fast(capsys, "label", "--model", model, "--prompts", prompts, "--max-tokens", "20",
                     "--out", tmp_path / "l.parquet", *options)
    return r, sent


def test_the_penalty_is_sent_and_recorded_and_a_replay_decodes_with_it(tmp_path, monkeypatch, capsys):
    r, sent = _label_penalised(tmp_path, monkeypatch, capsys, "--repetition-penalty", "1.3", "--sample-subset", "2")
    assert r.returncode == 0, r.stderr
    assert sorted({(q.temperature, q.repetition_penalty) for q in sent}) == [(0.0, 1.3), (0.8, 1.3)]  # (sample: main's)
    labels = pl.read_parquet(tmp_path / "l.parquet")
    assert labels["repetition_penalty"].unique().to_list() == [1.3]
    settings = json.loads((tmp_path / "l.json").read_text())["settings"]
    assert settings["main"]["repetition_penalty"] == settings["sample"]["repetition_penalty"] == 1.3
    from ltrsched.engine.runner import workload_penalty

    assert workload_penalty(load_workload(str(tmp_path / "l.parquet"), split="all")) == 1.3
    # another penalty on the same --out would mix two samplers' labels
    r, sent = _label_penalised(tmp_path, monkeypatch, capsys, "--repetition-penalty", "1.1", "--sample-subset", "2")
    one_line_error(r, "main.repetition_penalty 1.3 there, 1.1 here")
    assert sent == []


def test_the_sampled_run_takes_its_own_penalty(tmp_path, monkeypatch, capsys):
    r, sent = _label_penalised(tmp_path, monkeypatch, capsys, "--sample-subset", "2", "--sample-repetition-penalty", "1.2")
    assert r.returncode == 0, r.stderr
    assert sorted({(q.temperature, q.repetition_penalty) for q in sent}) == [(0.0, 1.0), (0.8, 1.2)]
    labels = pl.read_parquet(tmp_path / "l.parquet")
    assert dict(labels.group_by("run").agg(pl.col("repetition_penalty").first()).rows()) == {"main": 1.0, "sample": 1.2}
    from ltrsched.engine.runner import workload_penalty

    assert workload_penalty(load_workload(str(tmp_path / "l.parquet"), split="all")) == 1.0  # (the main run's)


def test_the_labelling_loop_asks_the_engine_for_each_requests_penalty(monkeypatch):
    """The labelling loop builds vLLM's sampling parameters of each request: the penalty must be among them (a
    Request's penalty that the loop left out labelled every run without one)."""
    import sys
    import types
    from types import SimpleNamespace

    from ltrsched.labelling.generate import Request, serve_requests

    fakes = {"vllm": {"SamplingParams": lambda **kw: SimpleNamespace(**kw)},
             "vllm.inputs": {"TokensPrompt": lambda **kw: kw},
             "vllm.sampling_params": {"RequestOutputKind": SimpleNamespace(FINAL_ONLY="final")}}
    for name, attrs in fakes.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    added = {}

    class Engine:
        def add_request(self, rid, prompt, params):
            added[rid] = (prompt, params)

        def has_unfinished_requests(self):
            return bool(added)

        def step(self):
            done = [SimpleNamespace(finished=True, request_id=rid, prompt_token_ids=p["prompt_token_ids"],
                                    outputs=[SimpleNamespace(finish_reason="stop", token_ids=[1, 2])])
                    for rid, (p, _) in added.items()]
            params.update({rid: q for rid, (_, q) in added.items()})
            added.clear()
            return done

    params = {}
    driver = SimpleNamespace(engine=Engine(), begin=lambda policy: None, start=lambda: None, now=lambda: 0.0)
    finished = []
    serve_requests(driver, [Request([5, 6], 8, 0.0, 1.0, None, 1.1), Request([7], 8, 0.8, 0.9, 3, 1.3)],
                   lambda i, g: finished.append((i, g.output_tokens)), window=4)
    assert finished == [(0, 2), (1, 2)]
    assert [(p.repetition_penalty, p.temperature, p.top_p, p.seed) for p in params.values()] == [
        (1.1, 0.0, 1.0, None), (1.3, 0.8, 0.9, 3)]
