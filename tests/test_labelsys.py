"""Labels and prompts files round-trip: a labels file of prompts with a system text replays the chat that labelled
them; a conversations file's answered and unanswered prompts keep the file's order with one note; an old parse
cache does not hide the refusal of repeated ids; hostile prompts files are one line or work. No engine, no model:
the engine loop is a stand-in (``label_data.FakeLabelDriver``) and the tokenizers are word-level."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads import load_workload
from tests.cli_helpers import run_cli_fast
from tests.test_workloads_more5 import PROMPTS, REPLIES, messages, one_line_error


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
