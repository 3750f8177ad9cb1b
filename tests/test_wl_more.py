"""Workload files audited further: a blank prompt beside its own count, two CSVs joined, ChatML text records, blank
conversation prompts counted as empty, and the tau ceiling of tied lengths worded as what it bounds."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.errors import UserError
from ltrsched.workloads import load_workload


def _lines(path, *records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


# --- 1. a blank prompt that carries its own prompt_tokens ------------------------------------------------------------


def _blank_with_counts(tmp_path):
    """(file, where the error names it, what it holds) for a blank prompt given with prompt_tokens, per format."""
    yield _lines(tmp_path / "w.jsonl", {"prompt": "hello there", "prompt_tokens": 3, "output_tokens": 4},
                 {"prompt": "\u200b  ", "prompt_tokens": 3, "output_tokens": 4}), "w.jsonl:2", "only invisible"
    yield _lines(tmp_path / "e.jsonl", {"prompt": "hello there", "prompt_tokens": 3, "output_tokens": 4},
                 {"prompt": "", "prompt_tokens": 3, "output_tokens": 4}), "e.jsonl:2", "nothing"
    (tmp_path / "w.csv").write_text('prompt,prompt_tokens,output_tokens\nhello,3,4\n"  ",3,4\n')
    yield str(tmp_path / "w.csv"), "w.csv: row 2", "only whitespace"
    pl.DataFrame({"prompt": ["hi there", "\u2060"], "prompt_tokens": [3, 3], "output_tokens": [4, 4]}).write_parquet(
        tmp_path / "w.parquet")
    yield str(tmp_path / "w.parquet"), "w.parquet: row 2", "only invisible characters (first: U+2060 WORD JOINER)"


def test_a_blank_prompt_with_its_own_count_is_refused_naming_the_record(tmp_path):
    """Its text was kept (only a counted text was checked): an engine replay would send blank text."""
    for path, where, holds in _blank_with_counts(tmp_path):
        with pytest.raises(UserError) as info:
            load_workload(path)
        message = str(info.value)
        assert message.startswith(f"{path[: -len(where.split(':')[0])]}{where}: the prompt is empty: ") and \
            holds in message and "engine replay" in message and "\n" not in message, message


def test_a_blank_prompt_with_its_count_is_one_line_on_the_command_line(tmp_path, capsys):
    path = _lines(tmp_path / "w.jsonl", {"prompt": " \t", "prompt_tokens": 3, "output_tokens": 4})
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", path), "w.jsonl:1: the prompt is empty")


def test_lengths_only_traces_and_missing_texts_still_load(tmp_path):
    """No text (no prompt at all, or a null one beside others' text) is a request of lengths alone, as before."""
    (tmp_path / "l.csv").write_text("prompt_tokens,output_tokens\n3,4\n5,6\n")
    assert load_workload(str(tmp_path / "l.csv")).df["prompt_tokens"].to_list() == [3, 5]
    pl.DataFrame({"prompt": ["hi there", None], "prompt_tokens": [3, 5], "output_tokens": [4, 4]}).write_parquet(
        tmp_path / "n.parquet")
    assert load_workload(str(tmp_path / "n.parquet")).df["prompt"].to_list() == ["hi there", None]


# --- 2. two CSVs joined, the header line repeated ---------------------------------------------------------------------


@pytest.mark.parametrize("text, row", [
    ("arrival_time,prompt_tokens,output_tokens\n0.1,3,4\n0.2,5,6\narrival_time,prompt_tokens,output_tokens\n0.3,3,4\n",
     3),
    ("prompt,output_tokens\nhello,4\n\n there ,6\n prompt , output_tokens\nyo,4\n", 4),  # (a blank line counts)
])
def test_two_csvs_joined_name_the_repeated_header(tmp_path, capsys, text, row):
    """It was "column 'arrival_time' has non-numeric values (String, first: 'arrival_time') in row 3"."""
    (tmp_path / "j.csv").write_text(text)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "j.csv")),
                          f"j.csv: the header line repeats at row {row} (the files were joined")


def test_a_csv_of_text_with_a_word_of_its_header_loads(tmp_path):
    """Only a row of every column's own name is a header: a prompt that is one column's name is text."""
    (tmp_path / "t.csv").write_text("prompt,prompt_tokens,output_tokens\nprompt,1,4\nhello there,2,6\n")
    assert load_workload(str(tmp_path / "t.csv")).df["prompt"].to_list() == ["prompt", "hello there"]


# --- 3. records of a ChatML 'text' alone ------------------------------------------------------------------------------

CHATML = "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\nhi!<|im_end|>"


def _chatml_files(tmp_path):
    """Each format's file of records with one ChatML 'text' each, and where its error begins."""
    yield _lines(tmp_path / "c.jsonl", {"text": CHATML}, {"text": CHATML}), "c.jsonl:1: expected an object"
    (tmp_path / "c.json").write_text(json.dumps([{"text": CHATML}, {"text": CHATML}]))
    yield str(tmp_path / "c.json"), "c.json: no complete conversation"
    pl.DataFrame({"text": [CHATML, CHATML]}).write_parquet(tmp_path / "c.parquet")
    yield str(tmp_path / "c.parquet"), "c.parquet: missing column(s) prompt_tokens, output_tokens"
    pl.DataFrame({"text": [CHATML, CHATML]}).write_csv(tmp_path / "c.csv")
    yield str(tmp_path / "c.csv"), "c.csv: no column for prompt_tokens"


def test_records_of_a_chatml_text_say_what_is_read_instead(tmp_path):
    """A .jsonl's said "it has 'text'" and no more (the .json's, parquet's and .csv's not even that)."""
    for path, first in _chatml_files(tmp_path):
        with pytest.raises(UserError) as info:
            load_workload(path)
        message = str(info.value)
        assert first in message and "'text', not read as it is" in message and "ChatML" in message, message
        assert "as a 'prompt' and the reply to it as 'generated'" in message and '{"messages": ' in message, message


def test_a_prompts_file_of_chatml_text_says_what_is_read_instead(tmp_path, capsys):
    path = _lines(tmp_path / "p.jsonl", {"text": CHATML})
    assert_one_line_error(run_cli_fast(capsys, "label", "--prompts", path, "-o", str(tmp_path / "l.parquet")),
                          "p.jsonl:1: expected an object with a string field 'prompt'; it has 'text', not read as it is")


# --- 4. a blank conversation prompt is counted as empty -------------------------------------------------------------

STORY = "once upon a time there was a ship on the sea"


def _conversation(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": STORY}]


def test_a_blank_first_turn_is_left_out_as_empty_not_short(tmp_path, capsys):
    """It was counted among "with a prompt of under 4 tokens" (its count is 0)."""
    prompts = [f"please tell me a long story about the sea, number {i}" for i in range(3)] + [" \u200b ", "", "hi"]
    (tmp_path / "b.json").write_text(json.dumps([{"messages": _conversation(p)} for p in prompts]))
    assert load_workload(str(tmp_path / "b.json")).df.height == 3
    err = capsys.readouterr().err
    assert ("3 of the 6 first turns are left out by the paper's selection rules: 2 with an empty prompt (nothing, or "
            "whitespace and invisible characters alone), 1 with a prompt of under 4 tokens") in err, err


def test_a_blank_first_turn_with_its_own_count_is_left_out(tmp_path, capsys):
    """A conversations parquet's prompt_tokens for a blank prompt was kept: the blank prompt was served."""
    prompts = [f"please tell me a long story about the sea, number {i}" for i in range(3)] + ["\u200b\u200b  "]
    pl.DataFrame({"conversation": [_conversation(p) for p in prompts], "prompt_tokens": [12, 12, 12, 9]}).write_parquet(
        tmp_path / "c.parquet")
    df = load_workload(str(tmp_path / "c.parquet")).df
    assert df.height == 3 and "\u200b" not in "".join(df["prompt"].to_list())
    err = capsys.readouterr().err
    assert "1 of the 4 first turns are left out by the paper's selection rules: 1 with an empty prompt" in err, err
    assert "3 of the 4 first turns' prompt_tokens differ" in err, err  # (not the blank one's: its count is not used)


# --- 5. the tau ceiling of tied lengths, beside a tau of 1 ---------------------------------------------------------


def test_the_ties_warning_says_what_its_ceiling_bounds():
    """Copies of two prompts: tau-b 1.0000 was printed beside "a ranker whose scores never tie reaches at most 0.707",
    which read as a contradiction (copies of a prompt score alike). Both hold, and the warning now says why."""
    import numpy as np
    from scipy.stats import kendalltau

    from ltrsched.workloads.ties import tau_ceiling, ties_warning

    lengths = np.repeat([40, 300], 500)  # two prompts, 500 copies each, one length each
    alike = -lengths.astype(float)  # each prompt's score, the same for its copies
    untied = alike + np.linspace(0, 1e-3, lengths.size)  # the same order, no two scores equal
    assert kendalltau(alike, -lengths).statistic == pytest.approx(1.0)
    assert kendalltau(untied, -lengths).statistic == pytest.approx(tau_ceiling(lengths)) == pytest.approx(0.707, abs=1e-3)
    line = ties_warning(lengths, "held-out lengths")
    assert "a ranker whose scores never tie reaches at most 0.707 here (scores that tie exactly where the lengths tie, " \
           "as copies of one prompt do, are not so bounded: they reach 1 in the right order)" in line, line
    assert "\n" not in line


def _requests_file(path, prompts, answered=()) -> str:
    """A .jsonl of OpenAI chat requests without the assistant's reply (``prompts``), after conversations (``answered``)."""
    return _lines(path, *({"messages": _conversation(p)} for p in answered),
                  *({"messages": [{"role": "user", "content": p}]} for p in prompts))


@pytest.mark.parametrize("answered, note", [
    ((), "left out 2 of its 3 requests without the assistant's reply: 1 with an empty prompt (nothing, or whitespace "
         "and invisible characters alone), 1 with a prompt outside 4..1024 tokens (the paper's rule)"),
    (("please tell me a story about the sea",), "its 3 requests without the assistant's reply are prompts too, but for "
                                                "1 with an empty prompt (nothing, or whitespace and invisible characters "
                                                "alone) and 1 with a prompt outside 4..1024 tokens"),
])
def test_a_blank_request_to_label_is_counted_as_empty(tmp_path, capsys, answered, note):
    """`label --prompts` of requests without a reply counted a blank one as "a prompt outside 4..1024 tokens"."""
    from ltrsched.workloads.prompts import load_prompts

    path = _requests_file(tmp_path / "u.jsonl", ["please tell me a story about ships", " \u200b ", "hi"], answered)
    assert load_prompts(path)["prompt"].to_list()[-1] == "please tell me a story about ships"
    err = capsys.readouterr().err
    assert note in err, err


def test_a_file_of_only_blank_requests_to_label_says_they_are_blank(tmp_path):
    """`label --prompts` of a file whose requests without a reply are all blank said "no complete conversation ...
    write the reply as an assistant message": advice to add replies, where what lacks is a prompt."""
    from ltrsched.workloads.prompts import load_prompts

    path = _requests_file(tmp_path / "u.jsonl", [" \u200b ", "   "])
    with pytest.raises(UserError, match=r"no prompt to send: 2 request\(s\) without the assistant's reply, each with "
                                        r"an empty prompt .* and no complete conversation$"):
        load_prompts(path)
