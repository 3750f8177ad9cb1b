"""Workload and prompts files audited as a user meets them: an output of 0 tokens refused with its likely cause (EOS
as the first token) and the remedy, prompts of invisible characters alone refused as empty."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.errors import UserError
from ltrsched.workloads import load_workload
from ltrsched.workloads.blank_text import blank_why, is_blank
from ltrsched.workloads.prompts import load_prompts

#: What every refusal of an output of 0 tokens says: the likely cause and what to do.
EOS_CAUSE = "most likely a model that stopped at once (EOS as its first token)"
EOS_REMEDY = "give output_tokens 1 (the EOS token), or leave the request out"


def _lines(path, *records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


# --- an output of 0 tokens -------------------------------------------------------------------------------------------


def _zero_output_files(tmp_path):
    """(file, what the error names first) for each way a user's file gives an output of 0 tokens."""
    yield _lines(tmp_path / "count.jsonl", {"prompt": "hi there", "output_tokens": 3},
                 {"prompt": "yo", "output_tokens": 0}), "count.jsonl: key 'output_tokens' in line 2 is 0, not a token count"
    # (it named 'generated', the key the reply is read by, not the line's 'response')
    yield _lines(tmp_path / "reply.jsonl", {"prompt": "hi there", "response": "ok"},
                 {"prompt": "yo", "response": ""}), "reply.jsonl:2: 'response' has no tokens (1 line(s) so)"
    yield _lines(tmp_path / "moon.jsonl", {"timestamp": 0, "input_length": 5, "output_length": 0}), \
        "moon.jsonl: key 'output_length' in line 1 is 0, not a token count"
    (tmp_path / "t.csv").write_text("prompt_tokens,output_tokens\n3,4\n5,0\n")
    yield str(tmp_path / "t.csv"), "t.csv: column 'output_tokens' in row 2 is 0, not a token count"
    pl.DataFrame({"prompt_tokens": [3, 4], "output_tokens": [2, 0]}).write_parquet(tmp_path / "t.parquet")
    yield str(tmp_path / "t.parquet"), "t.parquet: column 'output_tokens' in row 2 is 0, not a token count"
    pl.DataFrame({"prompt": ["hello there", "good day"], "response": ["fine", ""]}).write_parquet(tmp_path / "r.parquet")
    yield str(tmp_path / "r.parquet"), "r.parquet: column 'output_tokens' in row 2 is 0, not a token count"


def test_an_output_of_0_tokens_is_refused_with_its_likely_cause_and_remedy(tmp_path):
    """The refusal named the count alone ("must be a whole number of tokens in 1..2**53, got 0"): not that a model
    that stops at once (its EOS token first) gives it when the count leaves the EOS token out, nor what to do."""
    for path, first in _zero_output_files(tmp_path):
        with pytest.raises(UserError) as info:
            load_workload(path)
        message = str(info.value)
        assert first in message and EOS_CAUSE in message and EOS_REMEDY in message, message
        assert "\n" not in message


def test_an_output_of_0_tokens_is_one_line_on_the_command_line(tmp_path, capsys):
    path = _lines(tmp_path / "w.jsonl", {"prompt": "hi there", "output_tokens": 0})
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", path), "w.jsonl: key 'output_tokens' in line 1 is 0", EOS_CAUSE, EOS_REMEDY)


def test_a_conversation_tables_output_count_of_0_names_the_cause(tmp_path):
    conversation = [{"role": "user", "content": "how are you today my friend"},
                    {"role": "assistant", "content": "fine, thanks for asking, and you"}]
    pl.DataFrame({"conversation": [conversation], "output_tokens": [0]}).write_parquet(tmp_path / "c.parquet")
    with pytest.raises(UserError, match=r"column 'output_tokens' in row 1 \(id ''\) is 0, not a token count.*EOS as its first token"):
        load_workload(str(tmp_path / "c.parquet"))


def test_a_negative_output_count_keeps_its_message(tmp_path):
    """Only a 0 is the model's stop counted without its EOS token: a -3 is no count at all."""
    (tmp_path / "t.csv").write_text("prompt_tokens,output_tokens\n3,-3\n")
    with pytest.raises(UserError) as info:
        load_workload(str(tmp_path / "t.csv"))
    assert "'output_tokens' in row 1 is -3, not a token count" in str(info.value) and "EOS" not in str(info.value)


# --- prompts of invisible characters alone --------------------------------------------------------------------------

INVISIBLE = {
    "zero-width space": "\u200b",
    "zero-width joiners": "\u200c\u200d",
    "word joiner": "\u2060",
    "byte-order mark": "\ufeff\ufeff",
    "soft hyphen": "\u00ad",
    "combining marks alone": "\u0301\u0302\u0303",
    "Hangul filler": "\u3164",
    "mixed with spaces": " \u200b\t\u2060 \u00ad\n",
    "control characters": "\x00\x01",
}


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_characters_alone_are_blank(text):
    assert is_blank(text)
    assert blank_why(text).startswith("only invisible characters (first: U+")


@pytest.mark.parametrize("text", ["a", "\u200bhello", "e\u0301", "\u00a0x", "日本", "🙂", "\u200b1"])
def test_text_with_a_visible_character_is_not_blank(text):
    assert not is_blank(text)


def test_blank_why_names_whitespace_and_nothing():
    assert (blank_why(""), blank_why(" \t\n")) == ("nothing", "only whitespace")
    assert blank_why("\u200b") == "only invisible characters (first: U+200B ZERO WIDTH SPACE)"


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_prompts_file_refuses_a_prompt_of_invisible_characters(tmp_path, text):
    """They were prompts: served to the model for labels of a question it never saw."""
    path = _lines(tmp_path / "p.jsonl", {"prompt": "a real question"}, {"prompt": text})
    with pytest.raises(UserError, match=r"p\.jsonl:2: the prompt is empty \(only invisible characters"):
        load_prompts(path)


def test_prompt_tables_refuse_invisible_prompts_naming_the_row(tmp_path):
    (tmp_path / "p.csv").write_text("prompt\nquestion one\n\u200b\u200b\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"p\.csv: row 2: the prompt is empty \(only invisible characters \(first: "
                                        r"U\+200B ZERO WIDTH SPACE\)\)"):
        load_prompts(tmp_path / "p.csv")
    pl.DataFrame({"prompt": ["question one", "\u2060"]}).write_parquet(tmp_path / "p.parquet")
    with pytest.raises(UserError, match=r"p\.parquet: row 2: the prompt is empty \(only invisible characters"):
        load_prompts(tmp_path / "p.parquet")


def test_a_txt_line_of_invisible_characters_is_blank_as_an_empty_line(tmp_path):
    """Blank lines are skipped; one that shows blank but held a zero-width space was a prompt."""
    (tmp_path / "p.txt").write_text("first question\n\u200b\n\nsecond question\n", encoding="utf-8")
    assert load_prompts(tmp_path / "p.txt")["key"].to_list() == ["line-1", "line-4"]


@pytest.mark.parametrize("name, write, where", [
    ("w.jsonl", lambda p, t: _lines(p, {"prompt": "a question", "output_tokens": 3},
                                    {"prompt": t, "output_tokens": 3}), "w.jsonl:2"),
    ("w.csv", lambda p, t: p.write_text(f"prompt,output_tokens\na question,3\n{t},3\n", encoding="utf-8"),
     "w.csv: row 2"),
    ("w.parquet", lambda p, t: pl.DataFrame({"prompt": ["a question", t], "output_tokens": [3, 3]}).write_parquet(p),
     "w.parquet: row 2"),
])
def test_a_workloads_counted_prompt_of_invisible_characters_is_refused(tmp_path, name, write, where):
    """A workload refuses an empty prompt (its count, 0 tokens); a zero-width space counted 1 token and was served."""
    write(tmp_path / name, "\u200b\u2060")
    with pytest.raises(UserError) as info:
        load_workload(str(tmp_path / name))
    assert str(info.value).startswith(f"{tmp_path / name}"[: -len(name)] + where + ": the prompt is empty: only "
                                      "invisible characters (first: U+200B ZERO WIDTH SPACE), 1 request(s) so")


def test_a_workload_of_given_counts_keeps_its_counts_as_is(tmp_path):
    """A prompt's count given beside it is used as is, as before (the text is not what the counts come from); a blank
    text beside its count is refused all the same (it is what an engine replay sends: tests/test_wl_more.py)."""
    path = _lines(tmp_path / "w.jsonl", {"prompt": "hi \u200b", "prompt_tokens": 4, "output_tokens": 3})
    assert load_workload(path).df["prompt_tokens"].to_list() == [4]
    path = _lines(tmp_path / "w.jsonl", {"prompt": "\u200b", "prompt_tokens": 4, "output_tokens": 3})
    with pytest.raises(UserError, match=r"w\.jsonl:1: the prompt is empty: only invisible characters"):
        load_workload(path)


def test_labels_with_an_invisible_prompt_are_refused(tmp_path, capsys):
    from test_smallfix3 import text_labels

    text_labels(["a", "\u200d\u200d", "c"], [3, 4, 5]).write_parquet(tmp_path / "l.parquet")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "l.parquet")),
                          "1 row(s) of 3 with an empty prompt", "row(s) 2; the first, key 'k1', holds only invisible "
                          "characters (first: U+200D ZERO WIDTH JOINER)")


def test_a_conversations_invisible_first_turn_is_left_out_as_an_empty_prompt(tmp_path, capsys):
    """Six invisible characters counted 7 tokens: the paper's prompt rule (4..1,024) took them as a prompt."""
    reply = "fine, thanks for asking, and how are you doing"
    records = [{"id": "a", "conversations": [{"from": "human", "value": "how are you today my friend"},
                                             {"from": "gpt", "value": reply}]},
               {"id": "b", "conversations": [{"from": "human", "value": "\u200b\u200c\u200d\u2060\ufeff\u00ad"},
                                             {"from": "gpt", "value": reply}]}]
    (tmp_path / "c.json").write_text(json.dumps(records))
    assert load_workload(str(tmp_path / "c.json")).df["source_id"].to_list() == ["a"]
    assert "1 with an empty prompt (nothing, or whitespace and invisible characters alone)" in capsys.readouterr().err
    assert load_prompts(tmp_path / "c.json")["key"].to_list() == ["a"]


# --- warnings that explain a loading error ----------------------------------------------------------------------------

BURST_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def _burst(path, failed: int, ok: int) -> str:
    rows = [f"{i},ChatGPT,5,{0 if i < failed else 7},12,Conversation log\n" for i in range(failed + ok)]
    path.write_text(BURST_HEADER + "".join(rows))
    return str(path)


def _stderr_lines(r) -> list[str]:
    return r.stderr.strip().splitlines()


def test_rows_left_out_are_named_ahead_of_the_error_they_explain(tmp_path, capsys):
    """'asked for 3 requests but b.csv has only 1' came alone: the warning that 2 failed requests were left out was
    dropped with it."""
    path = _burst(tmp_path / "b.csv", failed=2, ok=1)
    r = run_cli_fast(capsys, "simulate", "-w", path, "-n", "3")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    warning, error = _stderr_lines(r)
    assert warning.startswith(f"warning: {path}: 2 of its 3 requests have 'Response tokens' 0"), r.stderr
    assert error == f"error: asked for 3 requests but {path} has only 1", r.stderr


def test_first_turns_left_out_are_named_ahead_of_the_error_they_explain(tmp_path, capsys):
    reply = "fine, thanks for asking, and how are you doing"
    records = [{"id": f"r{i}", "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reply}]}
               for i, prompt in enumerate(["how are you today my friend", "hi", "yo"])]
    (tmp_path / "c.json").write_text(json.dumps(records))
    r = run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "c.json"), "-n", "2")
    assert r.returncode == 2
    warning, error = _stderr_lines(r)
    assert warning.endswith("2 of the 3 first turns are left out by the paper's selection rules: 2 with a prompt of "
                            "under 4 tokens"), r.stderr
    assert error.startswith("error: asked for 2 requests but ") and error.endswith("has only 1"), r.stderr


def test_a_load_that_succeeds_keeps_its_warning_and_a_later_error_stays_alone(tmp_path, capsys):
    path = _burst(tmp_path / "b.csv", failed=1, ok=2)
    r = run_cli_fast(capsys, "simulate", "-w", path, "-n", "2", "--arrival", "replay")
    assert r.returncode == 0 and _stderr_lines(r) == [
        f"warning: {path}: 1 of its 3 requests have 'Response tokens' 0, BurstGPT's mark of a failed request (no "
        "output); they are left out (BurstGPT's *_without_fails_* files have none)"], r.stderr
    r = run_cli_fast(capsys, "simulate", "-w", path, "-P", "ltr")  # (the run's error, not the file's)
    assert_one_line_error(r, "policy 'ltr' needs a 'score' column")


def test_a_library_caller_sees_the_warnings_ahead_of_the_exception(tmp_path, capsys):
    path = _burst(tmp_path / "b.csv", failed=2, ok=1)
    with pytest.raises(UserError, match="has only 1"):
        load_workload(path, num_requests=3)
    assert capsys.readouterr().err.startswith(f"warning: {path}: 2 of its 3 requests")


def test_notices_print_explanations_ahead_of_the_error_line_only():
    import io

    from ltrsched.notices import Notices

    out = io.StringIO()
    notices = Notices(out)
    notices.write("warning: held\n")
    notices.explain_error(["warning: why\n", "warning: held\n"])
    notices.write("progress 1/2\n")
    assert out.getvalue() == "progress 1/2\n"
    notices.write("error: bad input\n")
    notices.drop()
    notices.release()
    assert out.getvalue() == "progress 1/2\nwarning: why\nwarning: held\nerror: bad input\n"
    quiet = io.StringIO()
    notices = Notices(quiet)
    notices.explain_error(["warning: of an error handled\n"])  # (no error line comes: forgotten)
    notices.write("warning: kept\n")
    notices.release()
    assert quiet.getvalue() == "warning: kept\n"


# --- the test helpers' one module name ---------------------------------------------------------------------------------


def test_test_modules_import_the_helpers_by_one_name():
    """``tests.cli_helpers`` beside ``cli_helpers`` loaded the helpers twice, as two modules (each its own state),
    and a file importing ``tests.X`` failed to collect under the ``pytest`` command (``No module named 'tests'``:
    only ``python -m pytest`` puts the repository root on the path). The tests import each other as the rest do:
    ``from cli_helpers import ...`` (pytest puts ``tests/`` on the path)."""
    import ast
    from pathlib import Path

    found = []
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else
                     [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.name}:{node.lineno}: {name}" for name in names if name.split(".")[0] == "tests"]
    assert not found, found


# --- other data sets' files, loaded as a user would ---------------------------------------------------------------------


def test_json_lines_in_a_json_file_are_refused_alike_whatever_was_parsed_before(tmp_path):
    """The parse cache keyed the bytes alone: a .json of conversations one per line (as `datasets`' to_json writes
    it) was refused, until the same bytes had been loaded as a .jsonl; then it loaded from that parse."""
    text = "".join(json.dumps({"conversation_id": f"c{i}", "conversation": [
        {"role": "user", "content": f"how are you today, friend number {i}"},
        {"role": "assistant", "content": "fine, thanks for asking, and you"}]}) + "\n" for i in range(3))
    (tmp_path / "c.jsonl").write_text(text)
    (tmp_path / "c.json").write_text(text)
    assert len(load_workload(str(tmp_path / "c.jsonl"))) == 3
    with pytest.raises(UserError, match=r"c\.json: not a JSON array of conversations: it starts with '\{' \(one object "
                                        r"per line is JSON Lines, as `datasets`' to_json writes it: name the file "
                                        r"\.jsonl"):
        load_workload(str(tmp_path / "c.json"))


def test_a_jsonl_line_of_a_prompt_alone_says_what_it_lacks(tmp_path):
    """"it has 'prompt'" named no missing output length, nor the command that makes them (a prompts file)."""
    path = _lines(tmp_path / "p.jsonl", {"prompt": "a question"})
    with pytest.raises(UserError, match=r"a prompt without its output length \(the reply's text or 'output_tokens'\) "
                                        r"is no request: label such prompts first \(`ltrsched label --prompts FILE`\)"):
        load_workload(path)
    path = _lines(tmp_path / "o.jsonl", {"prompt": "a question", "output": "an answer"})
    with pytest.raises(UserError) as info:
        load_workload(path)
    assert "its 'output' is not read as the reply's text (Alpaca's name): name it 'generated'" in str(info.value)
    assert "a prompt without its output length" not in str(info.value)


def test_a_prompts_csv_of_another_separator_says_so(tmp_path):
    """A ';'-separated file of prompts (Excel's, where the decimal mark is a comma) was "a .csv trace of lengths",
    which holds no prompts; a workload .csv said what it is."""
    (tmp_path / "p.csv").write_text("prompt;system\nhello there;be brief\n")
    with pytest.raises(UserError, match=r"p\.csv: no text column 'prompt' \(have prompt;system\) \(one column: the file "
                                        r"separates its fields by ';', where a \.csv here separates them by ','"):
        load_prompts(tmp_path / "p.csv")
    (tmp_path / "t.csv").write_text("prompt_tokens,output_tokens\n5,4\n")
    with pytest.raises(UserError, match=r"\(have prompt_tokens, output_tokens\); a \.csv trace of lengths holds no "
                                        "prompts$"):
        load_prompts(tmp_path / "t.csv")


def test_responses_api_text_parts_are_text(tmp_path):
    """OpenAI's Responses API writes a message's text as 'input_text' and 'output_text' parts: such conversations
    were skipped as "a part that is not text (an image, a tool call)", and a file of them was "no complete conversation"."""
    def parts(kind, text):
        return [{"type": kind, "text": text}]

    path = _lines(tmp_path / "r.jsonl", {"messages": [
        {"role": "user", "content": parts("input_text", "how are you today my friend")},
        {"role": "assistant", "content": parts("output_text", "fine, thanks for asking, and you")}]})
    assert load_workload(path).df.select("prompt", "prompt_tokens").rows() == [("how are you today my friend", 6)]
    image = _lines(tmp_path / "i.jsonl", {"messages": [
        {"role": "user", "content": [*parts("text", "what is this?"), {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": "a cat sitting on a mat"}]})
    with pytest.raises(UserError, match=r"1 first turns with a part that is not text \(an image, a tool call\) \(first: record 1: "
                                        r"message 1 has a part of type 'image_url'\)"):
        load_workload(image)


def test_a_byte_order_mark_inside_a_jsonl_names_its_line_and_cause(tmp_path):
    """Two files joined (each beginning with a byte-order mark): json's "Unexpected UTF-8 BOM (decode using
    utf-8-sig)", Python's advice, not the user's."""
    line = json.dumps({"prompt": "hello there", "output_tokens": 3}) + "\r\n"
    (tmp_path / "j.jsonl").write_text(("\ufeff" + line) * 2, encoding="utf-8")
    with pytest.raises(UserError, match=r"j\.jsonl:2: the line begins with a byte-order mark \(U\+FEFF\), which only "
                                        r"a file's start may hold: files joined together\? remove it"):
        load_workload(str(tmp_path / "j.jsonl"))
    (tmp_path / "one.jsonl").write_text("\ufeff" + line * 2, encoding="utf-8")  # (at the file's start: dropped)
    assert len(load_workload(str(tmp_path / "one.jsonl"))) == 2
