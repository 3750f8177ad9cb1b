"""Data that is not ShareGPT's: other models' lengths (many replies of a token or two, heavy tails), other
formats and other prompt sources. What was lost or mislabelled without a word is now loaded, or said on stderr."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ltrsched.workloads import load_workload


def _chat(i: int, prompt: str, reply: str) -> dict:
    return {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": prompt},
                         {"role": "assistant", "content": reply}]}


def test_first_turns_the_papers_rules_leave_out_are_counted_on_stderr(tmp_path, capsys):
    """Another model's replies of a token or two (a yes/no model), prompts past 1,024 tokens and repeated prompts
    were left out of a conversations file without a word: 4 of 8 requests vanished and the run said nothing."""
    recs = [_chat(i, f"Please explain topic number {i} in a few words", "It is a topic about many things")
            for i in range(4)]
    recs += [_chat(4, "Is the sky blue today, yes or no?", "Yes"),  # a reply of 1 token
             _chat(5, "Is water wet at room temperature?", "No."),  # 2 tokens
             _chat(6, "word " * 1500, "A long prompt, answered at some length here"),  # a prompt of 1,500 tokens
             _chat(7, "Please explain topic number 0 in a few words", "Again, a topic about things")]  # repeated
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(recs))
    assert len(load_workload(str(path))) == 4
    assert capsys.readouterr().err == (
        f"warning: {path}: 4 of the 8 first turns are left out by the paper's selection rules: 1 with a prompt of "
        "over 1,024 tokens, 2 with a reply of under 4 tokens, 1 repeating an earlier prompt (each prompt is kept once)\n")
    path.write_text(json.dumps(recs[:4]))  # every first turn kept: quiet, as before
    assert len(load_workload(str(path))) == 4 and capsys.readouterr().err == ""


def test_prompts_files_of_conversations_count_what_the_rules_leave_out(tmp_path, capsys):
    """`ltrsched label --prompts chat.json`: the prompts whose ShareGPT-style reply was short were left out of the
    labelling silently, too."""
    from ltrsched.workloads.prompts import load_prompts

    recs = [_chat(i, f"Please explain topic number {i} in a few words", "It is a topic about many things")
            for i in range(3)] + [_chat(3, "Is the sky blue today, yes or no?", "Yes")]
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(recs))
    assert load_prompts(path).height == 3
    assert capsys.readouterr().err == (f"warning: {path}: 1 of the 4 first turns are left out by the paper's selection "
                                       "rules: 1 with a reply of under 4 tokens\n")


def test_a_conversations_parquet_counts_what_the_rules_leave_out(tmp_path, capsys):
    rows = [{"conversation": [{"role": "user", "content": f"Please explain topic number {i} in a few words"},
                              {"role": "assistant", "content": "Sure" if i < 2 else "It is a topic about things"}]}
            for i in range(5)]
    path = tmp_path / "lmsys.parquet"
    pl.DataFrame(rows).write_parquet(path)
    assert len(load_workload(str(path))) == 3
    assert "2 of the 5 first turns are left out by the paper's selection rules: 2 with a reply of under 4 tokens" \
        in capsys.readouterr().err


def test_prompts_files_of_conversations_without_ids_get_keys(tmp_path):
    """OpenAI's chat format (and LMSYS's without conversation_id) has no record id: every key was "", and
    `ltrsched label --prompts chat.json` refused the file ("the key '' names 3 prompts; keys must be unique")."""
    from ltrsched.workloads.prompts import load_prompts

    recs = [_chat(i, f"Please explain topic number {i} in a few words", "It is a topic about many things")
            for i in range(3)]
    recs.insert(1, {"id": "mine", **recs[0], "messages": recs[0]["messages"][:1] + [
        {"role": "user", "content": "Please explain the other topic in a few words"}, recs[0]["messages"][2]]})
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(recs))
    df = load_prompts(path)
    assert df["key"].to_list() == ["turn-1", "mine", "turn-3", "turn-4"]
    assert df["prompt"].to_list()[1] == "You are terse.\n\nPlease explain the other topic in a few words"


def test_a_csv_of_prompts_and_another_models_output_counts_loads(tmp_path):
    """A .csv of ``prompt`` and ``output_tokens`` (another model's counts) was refused ("no column for
    prompt_tokens"), where the same table as a parquet or a .jsonl has its prompts counted (Llama-3)."""
    from ltrsched.workloads.tokenizer import count_tokens

    prompts = ["Write a long essay on tax law, please.", "Yes or no?", "日本語で一言で答えてください。", "42"]
    path = tmp_path / "other.csv"
    pl.DataFrame({"prompt": prompts, "output_tokens": [20000, 1, 1, 3]}).write_csv(path)
    df = load_workload(str(path)).df
    assert df["prompt"].to_list() == prompts
    assert df["prompt_tokens"].to_list() == count_tokens(prompts).tolist()
    assert df["output_tokens"].to_list() == [20000, 1, 1, 3]  # another model's counts, as given (not capped)
    pq = tmp_path / "other.parquet"
    pl.DataFrame({"prompt": prompts, "output_tokens": [20000, 1, 1, 3]}).write_parquet(pq)
    assert load_workload(str(pq)).df["prompt_tokens"].to_list() == df["prompt_tokens"].to_list()


def test_a_csv_prompt_missing_where_its_count_is_needed_names_the_row(tmp_path):
    import pytest

    from ltrsched.errors import UserError

    path = tmp_path / "other.csv"
    path.write_text("prompt,output_tokens\nhello there,5\n,7\n")
    with pytest.raises(UserError, match=r"other.csv: row 2 has no 'prompt' text to count prompt_tokens from"):
        load_workload(str(path))
    path.write_text("prompt,prompt_tokens,output_tokens\nhello there,9,5\n,3,7\n")  # counts given: as before
    assert load_workload(str(path)).df["prompt_tokens"].to_list() == [9, 3]


def test_a_jsonl_of_openai_chat_conversations_loads_as_first_turns(tmp_path, capsys):
    """OpenAI's chat format is a .jsonl of ``{"messages": [...]}``, one conversation per line: it was refused
    ("expected an object with string fields 'prompt' and 'generated'"); it loads as the same records in a .json
    array do, for the workload and for `ltrsched label --prompts`."""
    from ltrsched.workloads.prompts import load_prompts

    recs = [_chat(i, f"Please explain topic number {i} in a few words", "It is a topic about many things " * (i + 1))
            for i in range(5)]
    lines = tmp_path / "chat.jsonl"
    lines.write_text("".join(json.dumps(r, ensure_ascii=i % 2 == 0) + "\n" for i, r in enumerate(recs)))
    array = tmp_path / "chat.json"
    array.write_text(json.dumps(recs))
    got, want = load_workload(str(lines)).df, load_workload(str(array)).df
    assert got.select("prompt", "prompt_tokens", "output_tokens").equals(
        want.select("prompt", "prompt_tokens", "output_tokens"))
    assert len(load_workload(str(lines), num_requests=3, seed=1)) == 3
    cr = tmp_path / "cr.jsonl"  # lines ending with \r alone, a byte-order mark first
    cr.write_bytes(b"\xef\xbb\xbf\r" + "".join(json.dumps(r) + "\r" for r in recs).encode())
    assert load_workload(str(cr)).df["prompt"].to_list() == got["prompt"].to_list()
    assert load_prompts(lines)["prompt"].to_list() == load_prompts(array)["prompt"].to_list()
    assert capsys.readouterr().err == ""


def test_a_jsonl_of_requests_with_a_conversation_line_says_so(tmp_path):
    import pytest

    from ltrsched.errors import UserError

    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"prompt": "hello there", "output_tokens": 5}) + "\n"
                    + json.dumps(_chat(0, "Please explain this topic", "It is a topic")) + "\n")
    with pytest.raises(UserError, match=r"mixed.jsonl:2: .*; this line is a conversation and the first line is not"):
        load_workload(str(path))


def test_a_trace_of_lengths_only_names_every_format_with_prompts(tmp_path):
    """A BurstGPT or Mooncake trace has no prompt text: the error named only .jsonl/.json traces, not the .csv and
    .parquet 'prompt' columns nor OpenAI's chat .jsonl that predictors read too."""
    import pytest

    from ltrsched.errors import UserError
    from ltrsched.predictors.data import prompts_and_lengths

    path = tmp_path / "burst.csv"
    path.write_text("Timestamp,Request tokens,Response tokens\n0.5,20,30\n1.0,40,0\n1.5,10,5\n")
    with pytest.raises(UserError, match=r"workload 'burst' has no prompt text \(a trace of lengths only\); predictors "
                                        r"need prompts: a file with a 'prompt' key or column \(.jsonl, .csv, .parquet\)"):
        prompts_and_lengths(str(path), "train")


def test_a_jsonl_of_prompt_and_response_text_loads_as_a_parquet_of_them_does(tmp_path):
    """A parquet's reply text is read from 'generated' or 'response'; a .jsonl of {"prompt", "response"} (many
    instruction data sets' names) was refused ("expected ... 'prompt' and 'generated'")."""
    import pytest

    from ltrsched.errors import UserError

    rows = [{"prompt": f"Explain topic {i} briefly", "response": "It is about things. " * (i + 1)} for i in range(4)]
    path = tmp_path / "pr.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq = tmp_path / "pr.parquet"
    pl.DataFrame(rows).write_parquet(pq)
    got, want = load_workload(str(path)).df, load_workload(str(pq)).df
    assert got["output_tokens"].to_list() == want["output_tokens"].to_list()
    assert got["prompt_tokens"].to_list() == want["prompt_tokens"].to_list()
    path.write_text(json.dumps({**rows[0], "generated": "other text"}) + "\n")
    with pytest.raises(UserError, match=r"pr.jsonl:1: 'generated' and 'response' both give the reply's text; give one"):
        load_workload(str(path))


def test_alpaca_and_dolly_records_are_named_as_such(tmp_path):
    """Alpaca's {"instruction", "input", "output"} and Dolly's {"instruction", "context", "response"} records were
    refused as having no 'prompt' (or no messages), with no word of what the file is or how to read it."""
    import pytest

    from ltrsched.errors import UserError
    from ltrsched.workloads.prompts import load_prompts

    alpaca = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    dolly = {"instruction": "Summarise this.", "context": "A long text.", "response": "Short.", "category": "summarization"}
    for name, rec in (("alpaca", alpaca), ("dolly", dolly)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(rec) + "\n")
        with pytest.raises(UserError, match=rf"{name}.jsonl:1: .*; it has 'instruction' text: Alpaca's or Dolly's "
                                            r"format, not read as it is; join each record's instruction and input"):
            load_workload(str(path))
        with pytest.raises(UserError, match=rf"{name}.jsonl:1: expected an object with a string field 'prompt'; it has "
                                            "'instruction' text"):
            load_prompts(path)  # (`ltrsched label --prompts`)
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([alpaca] * 2))
    with pytest.raises(UserError, match=r"2 with no messages \(first: record 1: no 'conversations', .* list "
                                        r"\('instruction': Alpaca's or Dolly's\)\)"):
        load_workload(str(path))


def test_a_csv_of_prompts_is_a_prompts_file_to_label(tmp_path):
    """A workload .csv may hold prompt text (a 'prompt' column), but `ltrsched label --prompts` refused every
    .csv ("a .csv trace holds lengths, not text"): a list of prompts in a spreadsheet could not be labelled."""
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "p.csv"
    pl.DataFrame({"ID": ["a", "b", "c"], "Prompt": ["Write, at length, on tax law", "007", "请解释一下"],
                  "output_tokens": [1, 2, 3]}).write_csv(path)
    assert load_prompts(path).rows() == [("a", "Write, at length, on tax law"), ("b", "007"), ("c", "请解释一下")]
    pl.DataFrame({"prompt": ["one prompt", "another prompt"]}).write_csv(path)
    assert load_prompts(path)["key"].to_list() == ["row-1", "row-2"]


def test_a_plain_text_file_of_prompts_one_per_line_is_a_prompts_file(tmp_path):
    """`ltrsched label --prompts prompts.txt`: the plainest prompt source, one prompt per line, was refused as an
    unknown format. Lines end at \\n, \\r\\n or \\r (not at U+2028, which is text), blank lines are skipped, keys name
    the line; as a workload (no lengths) it says how to label it."""
    from ltrsched.errors import UserError
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "prompts.txt"
    path.write_bytes("\ufeffWhat is 2+2?\r\n\r\n写一首关于秋天的诗 😀\rdef f(x):\u2028return x\n  \nWhat is 2+2?\nlast".encode())
    assert load_prompts(path).rows() == [("line-1", "What is 2+2?"), ("line-3", "写一首关于秋天的诗 😀"),
                                         ("line-4", "def f(x):\u2028return x"), ("line-7", "last")]  # (line 6 repeats 1)
    path.write_bytes(b"ok\nbad \xff byte\n")
    with pytest.raises(UserError, match=r"prompts.txt:2: not valid UTF-8: byte 0xff"):
        load_prompts(path)
    with pytest.raises(UserError, match=r"a \.txt file holds prompts without output lengths; label them with "
                                        r"`ltrsched label --prompts FILE.txt`"):
        load_workload(str(path))
