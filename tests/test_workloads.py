"""Workloads: loaders, selection rules, built-ins, arrival processes."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from conftest import make_workload
from ltrsched.errors import UserError
from ltrsched.workloads import (
    apply_arrivals, count_tokens, load_sharegpt_records, load_workload, paper_selection,
)
from ltrsched.workloads.selection import EVAL_SIZE


def test_count_tokens_llama3():
    # "Hello world, how are you?" is 7 Llama-3 tokens (Hello| world|,| how| are| you|?)
    assert count_tokens(["Hello world, how are you?", ""]).tolist() == [7, 0]


def test_jsonl_loader_retokenizes(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"prompt": "Hello world, how are you?", "generated": "Fine thanks"}) + "\n\n"
                    + json.dumps({"prompt": "Hi", "generated": "Hello world, how are you?"}) + "\n")
    wl = load_workload(str(path))
    assert wl.df["prompt_tokens"].to_list() == [7, 1]
    assert wl.df["output_tokens"].to_list() == [2, 7]
    assert wl.df["request_id"].to_list() == [0, 1]


@pytest.mark.parametrize(
    "content, message",
    [("", "empty"), ("{bad json\n", ":1: not valid JSON"), ('{"prompt": "x"}\n', "'generated'")],
)
def test_jsonl_errors(tmp_path, content, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_workload(str(path))


def test_jsonl_arrival_time_beyond_float_range_is_a_one_line_error(tmp_path):
    """JSON integers have no bound: an arrival_time of 10**400 was an OverflowError traceback (float())."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "Hello there", "generated": "Hi", "arrival_time": 0}\n'
                    '{"prompt": "Hello there", "generated": "Hi", "arrival_time": 1' + "0" * 400 + '}\n')
    with pytest.raises(UserError, match=r"t\.jsonl:2: 'arrival_time' is too large to be a number of seconds \(401 digits\)"):
        load_workload(str(path))


@pytest.mark.parametrize("field", ["prompt", "generated"])
def test_jsonl_lone_surrogate_names_the_line(tmp_path, field):
    """JSON's ``\\ud83d`` escape decodes to half a character that no tokenizer encodes: an error naming the line,
    not the tokenizer's TypeError; a whole escaped pair is a character like any other."""
    path = tmp_path / "t.jsonl"
    rec = {"prompt": "Hello there", "generated": "General Kenobi"}
    bad = dict(rec, **{field: "cut emoji \ud83d here"})
    path.write_text(json.dumps(rec) + "\n" + json.dumps(bad) + "\n")  # json.dumps escapes it as \ud83d
    with pytest.raises(UserError, match=rf":2: '{field}' holds a lone UTF-16 surrogate \(\\ud83d at character 11\)"):
        load_workload(str(path))
    path.write_text(json.dumps(rec) + "\n" + json.dumps(dict(rec, **{field: "emoji \U0001F600"})) + "\n")
    assert len(load_workload(str(path))) == 2


def test_sharegpt_skips_lone_surrogates_with_a_warning(tmp_path, capsys):
    recs = [
        {"id": "a", "conversations": [{"from": "human", "value": "Tell me a story please"},
                                      {"from": "gpt", "value": "Once upon a time there was a fox."}]},
        {"id": "b", "conversations": [{"from": "human", "value": "What is two plus two?"},
                                      {"from": "gpt", "value": "Four \udc00 of course."}]},
    ]
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(recs))
    assert load_sharegpt_records(path)["source_id"].to_list() == ["a"]
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "skipped 1 conversation(s) whose first turn holds a lone UTF-16 " \
        "surrogate, which cannot be tokenized (first: id 'b', reply \\udc00 at character 6)" in err


def test_sharegpt_outputs_cut_to_the_context_are_counted_on_stderr(tmp_path, capsys):
    """A reply longer than the 8,192-token context leaves was cut to it without a word; the cut stays (the
    paper's rule: the model would have stopped there), and a warning counts the first turns it changed."""
    recs = [{"id": f"r{i}", "conversations": [{"from": "human", "value": f"please write a long story number {i}"},
                                              {"from": "gpt", "value": "word " * (9000 if i < 2 else 50 + i)}]}
            for i in range(5)]
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(recs))
    df = load_workload(str(path)).df
    assert sorted(df["output_tokens"].to_list())[-2:] == [8192 - df["prompt_tokens"][0]] * 2
    err = capsys.readouterr().err
    assert err == (f"warning: {path}: 2 of the 5 first turn(s) used have a prompt + output of more than 8,192 tokens "
                   "(the paper's context); their outputs are cut to 8,192 tokens minus the prompt, as the model would "
                   "have stopped there\n")
    path.write_text(json.dumps(recs[2:]))
    assert load_workload(str(path)).df.height == 3 and capsys.readouterr().err == ""


def test_sharegpt_cut_outputs_are_counted_in_the_sample_used(tmp_path, capsys):
    """The warning counted the cut outputs of the whole file, whatever ``-n`` sampled: a sample without any said
    some were cut. It counts those among the requests the command uses."""
    recs = [{"id": f"r{i}", "conversations": [{"from": "human", "value": f"please write a long story number {i}"},
                                              {"from": "gpt", "value": "word " * (9000 if i < 2 else 50 + i)}]}
            for i in range(6)]
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(recs))
    counts = set()
    for seed in range(8):
        df = load_workload(str(path), num_requests=2, seed=seed).df
        cut = int((df["output_tokens"] == 8192 - df["prompt_tokens"]).sum())
        err = capsys.readouterr().err
        assert err == (f"warning: {path}: {cut} of the 2 first turn(s) used have a prompt + output of more than 8,192 "
                       "tokens (the paper's context); their outputs are cut to 8,192 tokens minus the prompt, as the "
                       "model would have stopped there\n" if cut else ""), (seed, err)
        counts.add(cut)
    assert 0 in counts and len(counts) > 1  # samples with and without cut outputs were drawn


def test_jsonl_lengths_given_as_numbers(tmp_path):
    """Another model's lengths come as numbers more often than as its text: a line may give 'output_tokens'
    instead of 'generated' (used as is; the prompt's tokens are still counted from its text)."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"prompt": "Hello world, how are you?", "output_tokens": 321}) + "\n"
                    + json.dumps({"prompt": "Hi", "generated": "Hello world, how are you?"}) + "\n"
                    + json.dumps({"prompt": "Hi again", "output_tokens": 12.0}) + "\n")
    wl = load_workload(str(path))
    assert wl.df["prompt_tokens"].to_list() == [7, 1, 2] and wl.df["output_tokens"].to_list() == [321, 7, 12]
    # beside the text, the count given is used as a parquet's is (it was ignored for the text's Llama-3 count, 7)
    path.write_text(json.dumps({"prompt": "Hi", "generated": "Hello world, how are you?", "output_tokens": 9}) + "\n")
    assert load_workload(str(path)).df["output_tokens"].to_list() == [9]
    for bad in (0, -3, 2.5, "12.5", True, None, 2**60):  # ("12" is read: number_text)
        path.write_text(json.dumps({"prompt": "Hi", "output_tokens": bad}) + "\n")
        with pytest.raises(UserError, match=r"t\.jsonl: key 'output_tokens' in line 1 is .+, not a token count \(a whole number in 1\.\.2\*\*53\)"):
            load_workload(str(path))


def test_jsonl_keeps_predictor_columns(tmp_path):
    """A .jsonl line's score, po_estimate and predicted_length were dropped (a CSV's are kept): `po` then drew its
    estimates instead of the file's, silently, and `ltr` said the file had no score column. They are kept (null
    or a line without one: missing), and a value that is no number is an error naming its line."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"prompt": "Hi", "output_tokens": 3, "score": 0.5, "po_estimate": 40}) + "\n"
                    + json.dumps({"prompt": "Hey", "output_tokens": 4, "score": None, "predicted_length": 820}) + "\n")
    df = load_workload(str(path)).df
    assert df["score"].to_list() == [0.5, None] and df["po_estimate"].to_list() == [40.0, None]
    assert df["predicted_length"].to_list() == [None, 820.0]
    assert np.array_equal(load_workload(str(path)).policy_columns()["po_estimate"], [40.0, np.nan], equal_nan=True)
    path.write_text(json.dumps({"prompt": "Hi", "output_tokens": 3}) + "\n")
    assert "score" not in load_workload(str(path)).df.columns
    for bad, message in [('"0.5x"', "'score' must be a number \\(or null\\), got '0.5x'"),  # ("0.5" is read)
                         ("true", "'score' must be a number \\(or null\\), got True"),
                         ("1" + "0" * 400, "'score' is too large to be a number \\(401 digits\\)")]:
        path.write_text('{"prompt": "Hi", "output_tokens": 3}\n{"prompt": "Hi", "output_tokens": 3, "score": '
                        + bad + "}\n")
        with pytest.raises(UserError, match=r"t\.jsonl:2: " + message):
            load_workload(str(path))
    path.write_text('{"prompt": "Hi", "output_tokens": 3, "po_estimate": -1}\n')
    with pytest.raises(UserError, match="column po_estimate has 1 negative or non-finite value"):
        load_workload(str(path))


def test_jsonl_prompt_count_given_beside_the_text_is_kept(tmp_path):
    """A line's 'prompt_tokens' (the served model's own count) was ignored and the prompt re-counted with Llama-3's
    tokenizer, while its 'output_tokens' and a parquet's counts are kept: the same rows as .jsonl and .parquet gave
    different workloads. Lines without it are still counted from their text; a bad count is one line."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"prompt": "Hi", "prompt_tokens": 500, "output_tokens": 3}) + "\n"
                    + json.dumps({"prompt": "Hello world, how are you?", "generated": "Hi"}) + "\n"
                    + json.dumps({"prompt": "Hi", "prompt_tokens": 40.0, "generated": "Hi"}) + "\n")
    wl = load_workload(str(path))
    assert wl.df["prompt_tokens"].to_list() == [500, 7, 40] and wl.df["output_tokens"].to_list() == [3, 1, 1]
    pl.DataFrame({"prompt": ["Hi"], "prompt_tokens": [500], "output_tokens": [3]}).write_parquet(tmp_path / "t.parquet")
    assert load_workload(str(tmp_path / "t.parquet")).df["prompt_tokens"].to_list() == [500]
    for bad in (0, -3, 2.5, "12.5", True, None, 2**60):  # ("12" is read: number_text)
        path.write_text(json.dumps({"prompt": "Hi", "prompt_tokens": bad, "output_tokens": 3}) + "\n")
        with pytest.raises(UserError, match=r"t\.jsonl: key 'prompt_tokens' in line 1 is .+, not a token count \(a whole number in 1\.\.2\*\*53\)"):
            load_workload(str(path))


def test_parquet_with_text_but_no_counts_is_counted(tmp_path):
    """A table of prompts and another model's lengths (no prompt_tokens, no arrival times, no ids) was refused for
    its missing columns; the counts come from the text as a .jsonl's do, every request at t = 0."""
    pl.DataFrame({"prompt": ["Hello world, how are you?", "Hi"], "output_tokens": [40, 9]}).write_parquet(tmp_path / "a.parquet")
    wl = load_workload(str(tmp_path / "a.parquet"))
    assert wl.df.select("request_id", "prompt_tokens", "output_tokens", "arrival_time").rows() == [(0, 7, 40, 0.0), (1, 1, 9, 0.0)]
    pl.DataFrame({"prompt": ["Hi"], "response": ["Hello world, how are you?"], "prompt_tokens": [5]}).write_parquet(
        tmp_path / "b.parquet")  # a count given is kept
    assert load_workload(str(tmp_path / "b.parquet")).df.select("prompt_tokens", "output_tokens").rows() == [(5, 7)]
    pl.DataFrame({"prompt": ["Hi", None], "output_tokens": [3, 4]}).write_parquet(tmp_path / "c.parquet")
    with pytest.raises(UserError, match="row 2 has no 'prompt' text to count prompt_tokens from"):
        load_workload(str(tmp_path / "c.parquet"))
    pl.DataFrame({"output_tokens": [3, 4]}).write_parquet(tmp_path / "d.parquet")
    with pytest.raises(UserError, match=r"missing column\(s\) prompt_tokens; have output_tokens$"):
        load_workload(str(tmp_path / "d.parquet"))  # (it named 'request_id, arrival_time' too, which it lacks)


def _lmsys_records(n: int) -> list[dict]:
    """Conversations as LMSYS-Chat-1M stores them: ``conversation_id`` and a ``conversation`` of role/content."""
    return [{"conversation_id": f"{i:032x}", "model": "vicuna-13b", "turn": 2, "language": "English",
             "conversation": [{"content": f"Please explain topic number {i} in a few words", "role": "user"},
                              {"content": "Sure. " + "word " * (5 + 7 * i), "role": "assistant"},
                              {"content": "thanks", "role": "user"}]} for i in range(n)]


def test_lmsys_and_openai_conversations_are_first_turns_like_sharegpt(tmp_path):
    """The paper's other data set, LMSYS-Chat-1M, ships as parquet with a `conversation` column of {role, content}
    messages (OpenAI's chat format names them `messages`): read as ShareGPT's first turns are (the paper's rules,
    keyed by conversation id), from a parquet or a .json array; a system message first precedes the prompt."""
    recs = _lmsys_records(12)
    pl.DataFrame(recs).write_parquet(tmp_path / "lmsys.parquet")
    wl = load_workload(str(tmp_path / "lmsys.parquet"))
    assert sorted(wl.df["source_id"].to_list()) == [r["conversation_id"] for r in recs]
    by_id = {r["conversation_id"]: r["conversation"] for r in recs}
    for sid, prompt, out in wl.df.select("source_id", "prompt", "output_tokens").rows():
        assert prompt == by_id[sid][0]["content"] and out == count_tokens([by_id[sid][1]["content"]])[0]
    assert (wl.df["arrival_time"] == 0).all()
    openai = [{"id": r["conversation_id"], "messages": [{"role": "system", "content": "Be brief."}, *r["conversation"]]}
              for r in recs]
    (tmp_path / "oai.json").write_text(json.dumps(openai))
    oai = load_workload(str(tmp_path / "oai.json")).df
    assert oai["prompt"].to_list() == [f"Be brief.\n\n{prompt}" for prompt in wl.df["prompt"]]
    assert oai["prompt_tokens"].to_list() == count_tokens(oai["prompt"].to_list()).tolist()
    same = ("request_id", "prompt", "prompt_tokens")
    assert oai.drop(same).equals(wl.df.drop(same))
    assert len(load_workload(str(tmp_path / "lmsys.parquet"), num_requests=5, seed=1)) == 5
    # a reply first, or a parquet with no conversations: nothing to read, said so
    pl.DataFrame([{"conversation_id": "x", "conversation": [{"content": "hello", "role": "assistant"}]}]).write_parquet(
        tmp_path / "reply-first.parquet")
    with pytest.raises(UserError, match="no complete conversation .* with a user turn and a reply"):
        load_workload(str(tmp_path / "reply-first.parquet"))


def test_openai_content_parts_are_the_message_text(tmp_path):
    """OpenAI's chat format allows a message's content as a list of parts ({"type": "text", "text": ...}): such
    conversations were skipped, and a file of them was "no complete conversation". Text parts are joined by
    newlines; a conversation whose first turn holds another part (an image) stays ineligible."""
    recs = _lmsys_records(6)
    plain = [{"id": r["conversation_id"], "messages": r["conversation"]} for r in recs]
    parts = [{"id": r["id"], "messages": [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
                                          for m in r["messages"]]} for r in plain]
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    (tmp_path / "parts.json").write_text(json.dumps(parts))
    assert load_workload(str(tmp_path / "parts.json")).df.equals(load_workload(str(tmp_path / "plain.json")).df)
    two = [{"type": "text", "text": "Please explain topic"}, {"type": "text", "text": "number 3 in a few words"}]
    image = [{"type": "image_url", "image_url": {"url": "x.png"}}, {"type": "text", "text": "Please describe it"}]
    mixed = [{"id": "two", "messages": [{"role": "user", "content": two}, recs[3]["conversation"][1]]},
             {"id": "image", "messages": [{"role": "user", "content": image}, recs[3]["conversation"][1]]}]
    (tmp_path / "mixed.json").write_text(json.dumps(mixed))
    wl = load_workload(str(tmp_path / "mixed.json"))
    assert wl.df["prompt"].to_list() == ["Please explain topic\nnumber 3 in a few words"]


def test_no_eligible_requests_says_why(tmp_path):
    path = tmp_path / "sg.json"
    path.write_text(json.dumps([{"id": "a", "conversations": [{"from": "human", "value": "hi"},
                                                               {"from": "gpt", "value": "hello there friend"}]}]))
    with pytest.raises(UserError, match=r"sg\.json: no eligible requests .* none of the 1 first turn\(s\) has a "
                                        r"prompt of 4\.\.1024 tokens"):
        load_workload(str(path))  # (the file was not named: a sweep of several said not which)
    recs = _lmsys_records(3)
    pl.DataFrame(recs).write_parquet(tmp_path / "lmsys.parquet")
    with pytest.raises(UserError, match=r"asked for 5 requests but .*lmsys\.parquet \(its eligible first turns\) "
                                        r"has only 3$"):
        load_workload(str(tmp_path / "lmsys.parquet"), num_requests=5)  # (it said 'the all split')


def test_truncated_sharegpt_json(tmp_path):
    recs = [
        {"id": "a", "conversations": [{"from": "human", "value": "Tell me a story please"},
                                      {"from": "gpt", "value": "Once upon a time there was a fox."}]},
        {"id": "b", "conversations": [{"from": "gpt", "value": "orphan"}]},  # no user turn: skipped
        {"id": "c", "conversations": [{"from": "human", "value": "What is two plus two?"},
                                      {"from": "gpt", "value": "Four, of course my friend."}]},
    ]
    text = json.dumps(recs, indent=1)
    text = text[: text.rindex("Four") + 3]  # truncated inside the last record
    path = tmp_path / "sg.json"
    path.write_text(text)
    df = load_sharegpt_records(path)
    assert df["source_id"].to_list() == ["a"]
    assert df["output_tokens"][0] == count_tokens(["Once upon a time there was a fox."])[0]
    wl = load_workload(str(path))
    assert len(wl) == 1 and wl.df["prompt"][0] == "Tell me a story please"


def test_sharegpt_keeps_only_conversation_openings(tmp_path):
    """FastChat's split file cuts long conversations into chunks ``<id>_<n>``: only ``_0`` (or no
    suffix) opens a conversation; a later chunk's first user turn is mid-conversation."""
    def conv(*turns):
        return [{"from": f, "value": v} for f, v in turns]

    recs = [
        {"id": "x_0", "conversations": conv(("human", "Write a poem about autumn"), ("gpt", "Leaves fall softly."))},
        {"id": "x_2", "conversations": conv(("human", "continue"), ("gpt", "And winter comes."))},
        {"id": "y_0", "conversations": conv(("gpt", "Hello, how can I help?"), ("human", "Now shorter"),
                                            ("gpt", "Hi."))},  # opens with a reply: no first user turn
        {"id": "z", "conversations": conv(("system", "Be brief."), ("human", "Name a colour"), ("gpt", "Blue."))},
        {"id": "w_10", "conversations": conv(("gpt", "...as I said"), ("human", "more please"), ("gpt", "More."))},
    ]
    path = tmp_path / "split.json"
    path.write_text(json.dumps(recs))
    df = load_sharegpt_records(path)
    assert df["source_id"].to_list() == ["x_0", "z"]
    assert df["prompt"].to_list() == ["Write a poem about autumn", "Be brief.\n\nName a colour"]


def test_csv_trace_loader_real_file():
    from ltrsched.sim.profiles.derive_a100 import default_data_dir

    trace = default_data_dir().parent / "traces" / "azure-2023-code.csv"  # ../shared/data, from the repository
    if not trace.exists():
        pytest.skip(f"reference data not found at {trace}")
    wl = load_workload(str(trace))
    assert len(wl) == 8819
    assert wl.df["arrival_time"][0] == 0.0 and wl.df["arrival_time"].is_sorted()
    assert wl.df["prompt_tokens"].min() >= 1


def test_csv_of_lengths_alone_is_a_burst(tmp_path):
    """A CSV of prompt and output lengths without arrival times (a .jsonl may omit them too) was refused with
    "no column for arrival_time", even for a burst; its requests now arrive at t = 0, and replaying its (absent)
    timestamps is refused."""
    path = tmp_path / "t.csv"
    path.write_text("Prompt_Tokens,output_tokens\n10,20\n30,5\n7,400\n")
    wl = load_workload(str(path))
    assert wl.df["arrival_time"].to_list() == [0.0] * 3 and wl.df["output_tokens"].to_list() == [20, 5, 400]
    with pytest.raises(UserError, match="every request of t arrives at t = 0"):
        apply_arrivals(wl, "replay")
    assert apply_arrivals(wl, "poisson", rate=2.0, seed=0).df["arrival_time"].to_numpy()[-1] > 0


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_blank_lines_are_no_requests(tmp_path, newline):
    """A blank line after the last record or between records (editors, `cat` of several files) was read by polars as
    a row of nulls, and the file refused for "1 missing value(s)" it does not have; the csv module and pandas skip
    such lines. A line of empty fields stays a row of missing values; a blank line inside a quoted field is text."""
    path = tmp_path / "t.csv"
    path.write_bytes(newline.join(["prompt_tokens,output_tokens", "10,20", "", "", "30,5", "", ""]).encode())
    wl = load_workload(str(path))
    assert wl.df["prompt_tokens"].to_list() == [10, 30] and wl.df["output_tokens"].to_list() == [20, 5]
    path.write_bytes(newline.join(["prompt,prompt_tokens,output_tokens", '"a', "", 'b",10,20', "", ""]).encode())
    assert load_workload(str(path)).df["prompt"].to_list() == [newline.join(["a", "", "b"])]
    path.write_bytes(newline.join(["prompt_tokens,output_tokens", "10,20", ",", ""]).encode())
    with pytest.raises(UserError, match=r"column 'prompt_tokens' in row 2 is missing \(null\), not a token count"):
        load_workload(str(path))
    path.write_bytes(newline.join(["prompt_tokens,output_tokens", "", "", ""]).encode())
    with pytest.raises(UserError, match=r"no requests \(empty file\)"):
        load_workload(str(path))


@pytest.mark.parametrize("content, message", [("a,b\n1,2\n", "no column for"), ("arrived_at,num_prefill_tokens,num_decode_tokens\n", "empty"),
                                              ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,x,3\n", "non-numeric"),
                                              # the first of two same-named columns was used, silently
                                              ("prompt_tokens,output_tokens,prompt_tokens\n10,3,11\n",
                                               "the header names column 'prompt_tokens' 2 times"),
                                              ("Arrival_Time,prompt_tokens,output_tokens,arrival_time\n0,10,3,5\n",
                                               "the header names column 'Arrival_Time' 2 times")])
def test_csv_errors(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_workload(str(path))


def test_unknown_source_and_format(tmp_path):
    with pytest.raises(UserError, match="neither a file nor a built-in"):
        load_workload("no-such-workload")
    path = tmp_path / "x.xyz"
    path.write_text("hello")
    with pytest.raises(UserError, match="unknown workload format"):
        load_workload(str(path))
    path = tmp_path / "x.txt"  # prompts without lengths: said so, with how to label them
    path.write_text("hello")
    with pytest.raises(UserError, match="a .txt file holds prompts without output lengths; label them"):
        load_workload(str(path))


def test_selection_rules_and_disjoint_splits():
    rng = np.random.default_rng(1)
    n = 20000
    df = pl.DataFrame({
        "prompt": [f"p{i % 18000}" for i in range(n)],  # 2,000 duplicate prompts
        "prompt_tokens": rng.integers(1, 1500, n),
        "output_tokens": rng.integers(1, 10000, n),
    })
    ev = paper_selection(df, "eval")
    tr = paper_selection(df, "train")
    for part in (ev, tr):
        assert part["prompt_tokens"].min() >= 4 and part["prompt_tokens"].max() <= 1024
        assert part["output_tokens"].min() >= 4
        assert (part["output_tokens"] + part["prompt_tokens"]).max() <= 8192
        assert part["prompt"].n_unique() == part.height
    assert ev.height == min(EVAL_SIZE, ev.height)
    assert not set(ev["prompt"]) & set(tr["prompt"])
    a = paper_selection(df, "eval", n=100, seed=3)
    b = paper_selection(df, "eval", n=100, seed=3)
    assert a.equals(b) and set(a["prompt"]) <= set(ev["prompt"])
    with pytest.raises(UserError, match="only"):
        paper_selection(df, "eval", n=10**6)


def test_builtin_sharegpt_is_real_data():
    wl = load_workload("sharegpt", num_requests=2000, seed=0)
    df = wl.df
    assert len(wl) == 2000 and wl.has_text
    print("sharegpt means", df["prompt_tokens"].mean(), df["output_tokens"].mean())
    assert 60 < df["prompt_tokens"].mean() < 150   # ChatGPT-era first turns (paper's own: 240)
    assert 250 < df["output_tokens"].mean() < 400  # ChatGPT responses (paper's Llama-3: 412)
    train = load_workload("sharegpt", split="train")
    assert not set(train.df["prompt"]) & set(load_workload("sharegpt").df["prompt"])
    assert len(load_workload("sharegpt")) == EVAL_SIZE and len(train) > 4000
    # only conversation openings: no later chunk of a split conversation
    assert not train.df["source_id"].str.contains(r"_[1-9][0-9]*$").any()


@pytest.mark.parametrize("name, prompt_mean, output_mean", [("lmsys-like", 85, 293), ("lmsys-like-70b", 85, 307),
                                                            ("sharegpt-like", 240, 412)])
def test_synthetic_means(name, prompt_mean, output_mean):
    df = load_workload(name, num_requests=20000, seed=0).df
    assert df["prompt_tokens"].mean() == pytest.approx(prompt_mean, rel=0.05)
    assert df["output_tokens"].mean() == pytest.approx(output_mean, rel=0.05)
    assert df["output_tokens"].quantile(0.99) > 5 * output_mean  # heavy tail
    assert (df["output_tokens"] + df["prompt_tokens"]).max() <= 8192
    assert load_workload(name, num_requests=50, seed=1).df.equals(load_workload(name, num_requests=50, seed=1).df)


def test_poisson_and_gamma_arrivals():
    wl = make_workload([4] * 5000, [4] * 5000)
    p = apply_arrivals(wl, "poisson", rate=10.0, seed=0).df["arrival_time"].to_numpy()
    gaps = np.diff(p)
    assert p[0] == 0 and gaps.mean() == pytest.approx(0.1, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.08)
    g = np.diff(apply_arrivals(wl, "gamma", rate=10.0, cv=3.0, seed=0).df["arrival_time"].to_numpy())
    assert g.mean() == pytest.approx(0.1, rel=0.15) and g.std() / g.mean() == pytest.approx(3.0, rel=0.15)
    assert np.array_equal(p, apply_arrivals(wl, "poisson", rate=10.0, seed=0).df["arrival_time"].to_numpy())
    assert (apply_arrivals(wl, "burst").df["arrival_time"] == 0).all()


def test_replay_scaling_and_duration():
    wl = make_workload([4] * 5, [4] * 5, arrivals=[10, 11, 12, 14, 18])
    r = apply_arrivals(wl, "replay").df["arrival_time"].to_list()
    assert r == [0, 1, 2, 4, 8]
    s = apply_arrivals(wl, "replay", rate=0.25).df["arrival_time"].to_list()  # observed: 4 gaps over 8 s = 0.5/s
    assert s == pytest.approx([0, 2, 4, 8, 16])
    d = apply_arrivals(wl, "replay", duration=3.0)
    assert len(d) == 3
    with pytest.raises(UserError, match="only 5 requests"):
        apply_arrivals(wl, "replay", duration=100.0)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(UserError, match="positive"):
            apply_arrivals(wl, "poisson", rate=bad)


def _ids_file(tmp_path, suffix, ids):
    """A workload file of ``len(ids)`` requests giving ``ids`` (None: no request_id there) as ``suffix``'s format."""
    path = tmp_path / f"w{suffix}"
    rows = [{"prompt_tokens": 3 + i, "output_tokens": 2 + i, **({} if rid is None else {"request_id": rid})}
            for i, rid in enumerate(ids)]
    if suffix == ".csv":
        given = any(rid is not None for rid in ids)
        path.write_text(("Request_ID," if given else "") + "prompt_tokens,output_tokens\n" + "".join(
            (f"{'' if r.get('request_id') is None else r['request_id']}," if given else "")
            + f"{r['prompt_tokens']},{r['output_tokens']}\n" for r in rows))
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps({"prompt": "Hello there", **r}) + "\n\n" for r in rows))  # line 2i + 1
    else:
        pl.DataFrame(rows).with_columns(arrival_time=pl.lit(0.0)).write_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_request_ids_a_file_gives_are_kept(tmp_path, suffix):
    """A .csv's (and a .jsonl's) request_id was dropped and the rows numbered 0, 1, ...: results named other ids
    than the user's. Every format keeps them now, as a parquet did; without them the rows are numbered."""
    wl = load_workload(str(_ids_file(tmp_path, suffix, [10, 5, 1000])))
    assert wl.df["request_id"].to_list() == [10, 5, 1000] and wl.df["prompt_tokens"].to_list() == [3, 4, 5]
    assert sorted(load_workload(str(_ids_file(tmp_path, suffix, [10, 5, 1000])), num_requests=2, seed=1)
                  .df["request_id"].to_list()) in ([5, 10], [5, 1000], [10, 1000])
    assert load_workload(str(_ids_file(tmp_path, suffix, [None] * 3))).df["request_id"].to_list() == [0, 1, 2]


@pytest.mark.parametrize("suffix, row", [(".csv", "row 3"), (".jsonl", "line 5"), (".parquet", "row 3")])
@pytest.mark.parametrize("ids, what", [
    ([4, 7, 4], "request_id 4 is {first}'s too; request ids must be unique"),
    ([4, 7, -1], "request_id -1 is outside [0, 10,000,000)"),
    ([4, 7, 10_000_000], "request_id 10000000 is outside [0, 10,000,000)"),
    ([4, 7, 2.5], "request_id 2.5 is not a whole number"),
])
def test_bad_request_ids_name_the_file_and_the_first_bad_row(tmp_path, suffix, row, ids, what):
    """Duplicate ids in a .csv passed unnoticed (the column was dropped); in a parquet they were "request_id values
    are not unique", naming neither the file nor the id. One check for every format, naming file, row and id."""
    path = _ids_file(tmp_path, suffix, ids)
    first = "line 1" if suffix == ".jsonl" else "row 1"
    with pytest.raises(UserError) as err:
        load_workload(str(path))
    assert str(err.value).startswith(f"{path}: {row}: " + what.format(first=first)), str(err.value)


@pytest.mark.parametrize("content, message", [
    ("request_id,prompt_tokens,output_tokens\n1,3,2\nx,3,2\n", "w.csv: row 2: request_id 'x' is not a whole number"),
    ("request_id,prompt_tokens,output_tokens\n1,3,2\n,3,2\n", "w.csv: row 2: no request_id"),
    ("request_id,prompt_tokens,REQUEST_ID,output_tokens\n1,3,2,2\n",
     "the header names column 'request_id' 2 times (in any case); which holds the request_id? keep one"),
])
def test_csv_request_id_column_errors(tmp_path, content, message):
    path = tmp_path / "w.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=re.escape(message)):
        load_workload(str(path))


@pytest.mark.parametrize("second, message", [
    ({}, "w.jsonl:2: no 'request_id', which other lines have; give it on every line or none"),
    ({"request_id": "2x"}, "w.jsonl:2: 'request_id' must be a whole number, got '2x'"),  # ("2" is read: number_text)
    ({"request_id": True}, "w.jsonl:2: 'request_id' must be a whole number, got True"),
    ({"request_id": 10**30}, "w.jsonl: line 2: request_id 1e+30 is outside [0, 10,000,000)"),
])
def test_jsonl_request_id_errors(tmp_path, second, message):
    path = tmp_path / "w.jsonl"
    first = {"prompt": "Hello there", "output_tokens": 3, "request_id": 1}
    path.write_text(json.dumps(first) + "\n" + json.dumps({"prompt": "Hi", "output_tokens": 3, **second}) + "\n")
    with pytest.raises(UserError, match=re.escape(message)):
        load_workload(str(path))


def test_parquet_of_text_without_counts_can_be_sampled(tmp_path):
    """-n on a parquet of prompt text and output_tokens (no prompt_tokens, arrival times or ids) was refused for
    "missing column(s) prompt_tokens, arrival_time": every row was checked before its counts were made."""
    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt": ["Hello world, how are you?", "Hi", "Hi there"], "output_tokens": [5, 6, 7]}).write_parquet(path)
    df = load_workload(str(path), num_requests=2, seed=0).df
    counts = count_tokens(["Hello world, how are you?", "Hi", "Hi there"]).tolist()
    assert df.height == 2 and df["prompt_tokens"].to_list() == [counts[i] for i in df["request_id"]]


def test_a_file_giving_ids_is_another_cache_key(tmp_path):
    """Runs of a .csv giving ids were cached with the rows numbered: a file giving ids has its own key now, and a
    file without them keeps the key it had (its results are the same)."""
    from ltrsched.workloads.loaders import workload_fingerprint

    for name, text, given in [("a.csv", "REQUEST_ID,prompt_tokens,output_tokens\n7,3,2\n", True),
                              ("b.csv", "prompt_tokens,output_tokens\n3,2\n", False),
                              ("c.jsonl", '\n{"prompt": "Hi", "output_tokens": 2, "request_id": 4}\n', True),
                              ("d.jsonl", '\n{"prompt": "Hi", "output_tokens": 2}\n', False)]:
        (tmp_path / name).write_text(text)
        assert ("ids" in workload_fingerprint(str(tmp_path / name))) is given, name


def test_a_jsonl_giving_predictor_columns_is_another_cache_key(tmp_path):
    """A .jsonl's score/po_estimate/predicted_length were dropped: runs cached then (`po` with drawn estimates)
    are not reused for a file giving them; a file without them keeps its key."""
    from ltrsched.workloads.loaders import workload_fingerprint

    for name, text, given in [("a.jsonl", '{"prompt": "Hi", "output_tokens": 2, "po_estimate": 5}\n', True),
                              ("b.jsonl", '{"prompt": "Hi", "output_tokens": 2}\n{"prompt": "x", "output_tokens": 2, '
                                          '"\\u0073core": 0.5}\n', True),
                              ("c.jsonl", '{"prompt": "score", "output_tokens": 2, "score": null}\n', False),
                              ("d.jsonl", '{"prompt": "Hi", "output_tokens": 2}\n', False),
                              ("e.csv", "prompt_tokens,output_tokens,score\n3,2,0.5\n", False)]:
        (tmp_path / name).write_text(text)
        assert ("columns" in workload_fingerprint(str(tmp_path / name))) is given, name


@pytest.mark.parametrize("name, text, message", [
    ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", r"deep\.jsonl:1: not readable JSON \(nested too deeply\)"),
    ("big.jsonl", '{"prompt": "Hi", "generated": "Yo"}\n{"prompt": "Hi", "output_tokens": ' + "1" * 5000 + "}\n",
     r"big\.jsonl:2: not readable JSON \(Exceeds the limit \(4300 digits\)"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, r"deep\.json: record 1 \(from line 1\) is not readable JSON "
                                                  r"\(nested too deeply\)"),
    ("big.json", '[{"id": "a", "conversations": []},\n{"id": ' + "1" * 5000 + "}]",
     r"big\.json: record 2 \(from line 2\) is not readable JSON \(Exceeds the limit \(4300 digits\)"),
])
def test_json_python_cannot_read_is_a_one_line_error(tmp_path, name, text, message):
    """JSON nested deeper than Python's recursion limit, or an integer of over 4,300 digits, in a .jsonl line or a
    ShareGPT .json was a RecursionError or ValueError traceback; the file's cache key (its ids) read the first
    record unguarded too."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_workload(str(path))
    assert "sha256" in workload_fingerprint(str(path))


def test_jsonl_line_naming_a_key_twice_is_refused(tmp_path):
    """json keeps the last of two values for a key silently: a line giving output_tokens 5 and then 500 was
    served 500 tokens, without a word."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "Hi", "output_tokens": 4}\n{"prompt": "Hi", "output_tokens": 5, "output_tokens": 500}\n')
    with pytest.raises(UserError, match=r"t\.jsonl:2: the key 'output_tokens' is given twice; keep one"):
        load_workload(str(path))


def test_csv_dates_day_and_month_first_are_read_in_the_order_every_row_allows(tmp_path):
    """Day-first dates were read day first whatever the rows said: 01/02/2023 23:59 then 01/03/2023 00:01 (a US
    trace, 2 minutes apart) arrived 28 days apart, silently; a US trace with a day above 12 was refused as
    "non-numeric". Both orders reading every row with other times is an error; one order is used as it reads."""
    def arrivals(text):
        (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n" + text)
        return load_workload(str(tmp_path / "t.csv")).df["arrival_time"].to_list()

    with pytest.raises(UserError, match=r"t\.csv: column 'timestamp': date-times such as '01/02/2023 23:59:00' read "
                                        r"day first or month first, and the two readings give other arrival times"):
        arrivals("01/02/2023 23:59:00,3,4\n01/03/2023 00:01:00,5,6\n")
    assert arrivals("02/13/2023 23:59:00,3,4\n02/14/2023 00:01:00,5,6\n") == [0.0, 120.0]  # month first
    assert arrivals("13/02/2023 23:59:00,3,4\n14/02/2023 00:01:00,5,6\n") == [0.0, 120.0]  # day first
    assert arrivals("01/02/2023 23:59:00,3,4\n01/02/2023 23:59:30,5,6\n") == [0.0, 30.0]  # one date: either
    assert arrivals("2023-11-16 18:15:46.68,3,4\n2023-11-16 18:15:45,5,6\n") == [1.68, 0.0]


def test_jsonl_of_lengths_alone_loads_as_a_csv_does(tmp_path):
    """Another model's lengths without their texts, {"prompt_tokens", "output_tokens"} lines, were refused for
    want of a 'prompt' (a .csv or parquet of lengths alone loads): they load, without prompt text."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt_tokens": 5, "output_tokens": 7, "arrival_time": 0.5}\n'
                    '{"prompt_tokens": 9, "output_tokens": 3, "arrival_time": 1.5}\n')
    wl = load_workload(str(path))
    assert wl.df.select("prompt_tokens", "output_tokens", "arrival_time").rows() == [(5, 7, 0.5), (9, 3, 1.5)]
    assert not wl.has_text and "prompt" not in wl.df.columns
    path.write_text('{"prompt_tokens": 5, "output_tokens": 7}\n{"prompt": "Hello world, how are you?", "output_tokens": 3}\n')
    assert load_workload(str(path)).df.select("prompt", "prompt_tokens").rows() == [
        (None, 5), ("Hello world, how are you?", 7)]
    for line in ('{"prompt_tokens": 5}', '{"prompt": null, "prompt_tokens": 5, "output_tokens": 7}',
                 '{"output_tokens": 7}'):
        path.write_text(line + "\n")
        with pytest.raises(UserError, match=r"t\.jsonl:1: expected an object with string fields 'prompt' and "
                                            r"'generated' \(or, instead of a text, its length"):
            load_workload(str(path))


def test_csv_written_with_spaces_after_its_commas_loads(tmp_path):
    """A hand-written CSV, `prompt_tokens, output_tokens` and `3, 4`, was refused: polars reads ' output_tokens' as
    the header name and ' 4' as text. Names and numbers match with their spaces stripped (text stays as it is);
    a file whose columns were dropped for their spaces (an id, a score) has its own cache key."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / "t.csv"
    path.write_text("prompt_tokens, output_tokens, arrival_time, score, request_id, prompt\n"
                    "3, 4, 0.5, 0.1, 7, hi\n5, 6, 1.5,, 9, yo\n")
    df = load_workload(str(path)).df
    assert df.select("request_id", "prompt_tokens", "output_tokens", "arrival_time", "score", "prompt").rows() == [
        (7, 3, 4, 0.5, 0.1, " hi"), (9, 5, 6, 1.5, None, " yo")]
    assert {"ids", "columns"} <= set(workload_fingerprint(str(path)))
    path.write_text("prompt_tokens, output_tokens\n3, high\n")
    with pytest.raises(UserError, match="column ' output_tokens' has non-numeric values \\(String, first: ' high'\\)"):
        load_workload(str(path))
    path.write_text("timestamp, prompt_tokens, output_tokens\n2023-11-16 18:15:46.68, 3, 4\n2023-11-16 18:15:45, 5, 6\n")
    assert load_workload(str(path)).df["arrival_time"].to_list() == [1.68, 0.0]


def test_csv_column_of_empty_fields_is_missing_values(tmp_path):
    """polars reads a column of empty fields as text: an empty score column (every score missing, which a workload
    may have) was refused as "non-numeric values (String)", and so was an empty length column, which lacks values."""
    path = tmp_path / "t.csv"
    path.write_text("prompt_tokens,output_tokens,score\n3,4,\n5,6,\n")
    assert load_workload(str(path)).df["score"].to_list() == [None, None]
    path.write_text("prompt_tokens,output_tokens\n,4\n,6\n")
    with pytest.raises(UserError, match=r"t\.csv: column 'prompt_tokens' in row 1 is missing \(null\), not a token count"):
        load_workload(str(path))
