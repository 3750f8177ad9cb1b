"""Messages and inputs of the workload readers: an option named where a sample is too big, a tie warning worded by
what the lengths show, a replay's span refusal that fits a replay, labels files' bad rows named, prompts files with
user turns alone or a system text, a conversation's system text sent as a system turn when labelling."""

from __future__ import annotations

import json
import pickle
import types

import numpy as np
import polars as pl
import pytest

from ltrsched.errors import UserError
from cli_helpers import run_cli_fast


def one_line_error(r, message: str) -> None:
    """Bad input: exit code 2, one ``error:`` line on stderr holding ``message``, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert message in lines[0], lines[0]


# 1. train --limit above the data's size


def test_train_limit_above_the_data_names_the_option(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    r = run_cli_fast(capsys, "train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "ck"),
                     "--limit", "100")
    one_line_error(r, f"--limit 100: asked for 100 requests but {data} has only 8; give at most 8 (or leave --limit "
                      "out to train on all of them)")
    assert not (tmp_path / "ck").exists()


def test_too_few_requests_pickles_with_its_numbers():
    from ltrsched.workloads.selection import TooFewRequests, sample_rows

    with pytest.raises(TooFewRequests) as info:
        sample_rows(pl.DataFrame({"a": [1, 2]}), 3, 0, "f.csv")
    back = pickle.loads(pickle.dumps(info.value))  # (a sweep worker reports it to the main process)
    assert isinstance(back, UserError) and str(back) == "asked for 3 requests but f.csv has only 2"
    assert (back.asked, back.available, back.source) == (3, 2, "f.csv")


# 3. the tie warning


def test_a_tie_at_the_shortest_length_is_not_called_a_cap():
    from ltrsched.workloads.ties import ties_warning

    shortest = ties_warning(np.array([1] * 9 + [5, 7]), "x")  # (it said "1 tokens ... a cap?")
    assert "(the most common, 1 token, for 9 of 11 prompts, is the shortest length)" in shortest
    assert "cap" not in shortest and "1 tokens" not in shortest
    largest = ties_warning(np.array([512] * 9 + [5, 7]), "x")
    assert "(the most common, 512 tokens, for 9 of 11 prompts, is the largest length: a cap?)" in largest
    middle = ties_warning(np.array([3] * 9 + [1, 5]), "x")
    assert "(the most common, 3 tokens, for 9 of 11 prompts);" in middle
    assert "(all 4 prompts have one length, 1 token);" in ties_warning(np.array([1] * 4), "x")


# 6. a replay's arrival times decades apart


def test_a_replay_without_a_rate_is_not_told_to_raise_its_rate(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"prompt_tokens": 5, "output_tokens": 5, "request_id": i, "arrival_time": t})
                            + "\n" for i, t in enumerate([1680998400.0, 0.0, 1680998405.0])))
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival", "replay")
    one_line_error(r, "(request 2 in line 3 arrives 53 years after request 1 in line 2) has arrival times up to 1.68e+09 s; they must "
                      "stay below 1e+08 s (about 3 years), where float64 time still resolves a step (give a rate, to "
                      "which the replay rescales the file's times, or drop the requests far from the rest)")
    assert "raise the rate" not in r.stderr
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival", "replay", "--rate", "1e-8")
    one_line_error(r, "with replay arrivals at 1e-08 req/s")
    assert "(raise the rate, or use fewer requests)" in r.stderr  # (a rate it has: raising it helps)


# 2. labels files: NaN and 0-token lengths, empty prompts


def text_labels(prompts: list[str], outputs: list) -> pl.DataFrame:
    """A labels table of a prompts file (it carries the text), one main-run eval row per prompt."""
    from ltrsched.workloads.labels import prompt_digest

    n = len(prompts)
    return pl.DataFrame({
        "key": [f"k{i}" for i in range(n)], "split": ["eval"] * n, "run": ["main"] * n,
        "prompt_sha256": [prompt_digest(p) for p in prompts], "prompt_tokens": [5] * n, "output_tokens": outputs,
        "finish_reason": ["stop"] * n, "model": ["m"] * n, "model_sha256": ["0" * 64] * n, "temperature": [0.0] * n,
        "top_p": [1.0] * n, "max_tokens": [400] * n, "seed": [0] * n, "prompt": prompts})


@pytest.mark.parametrize("prompts, outputs, message", [
    # polars' cast message was the error ("conversion from `f64` to `i64` failed in column 'output_tokens' ...")
    (["a", "b", "c"], [3.0, float("nan"), 4.0], ": l: column output_tokens has 1 non-integer value(s) (first: "
                                               "nan, row 2 of 3, key 'k1'); token counts are whole numbers"),
    (["a", "b", "c"], [3.0, 5.0, float("inf")], "column output_tokens has 1 non-integer value(s) (first: inf, row 3"),
    (["a", "b", "c"], [3, 0, 4], ": l: 1 row(s) with output_tokens < 1 (first: row 2 of 3, key 'k1', "
                                 "output_tokens 0); an output of 0 tokens (an empty reply) is most likely a model "
                                 "that stopped at once (EOS as its first token)"),
    (["a", "b", "c"], [3, -2, 4], "output_tokens -2); output_tokens counts the EOS token, so a reply of the EOS token "
                                  "alone is 1 token (a 0 is a count without it: count the EOS token)"),
    # accepted, and then warned of as prompts "of another language?"
    (["a", "", " \n\t", "d"], [3, 4, 5, 6], ": l: 2 row(s) of 4 with an empty prompt (nothing, or whitespace and "
                                            "invisible characters alone: row(s) 2, 3; the first, key 'k1', holds "
                                            "nothing); a prompt is text to serve"),
])
def test_a_labels_file_with_a_bad_row_names_it(tmp_path, capsys, prompts, outputs, message):
    path = tmp_path / "l.parquet"
    text_labels(prompts, outputs).write_parquet(path)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), message)


def test_a_zero_prompt_count_in_labels_is_named_apart():
    from ltrsched.workloads.labels import check_labels

    df = text_labels(["a", "b"], [3, 4]).with_columns(prompt_tokens=pl.Series([5, 0]))
    with pytest.raises(UserError, match=r"^x: 1 row\(s\) with prompt_tokens < 1 \(first: row 2 of 2, key 'k1', "
                                        r"prompt_tokens 0\); a prompt has at least one token$"):
        check_labels(df, "x")


# 4, 5. a prompts file's system text: carried, and sent as the system turn when labelling


def test_a_jsonl_prompts_system_key_is_the_prompts_system_text(tmp_path):
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "p.jsonl"  # (the 'system' key was ignored without a word)
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"prompt": "please explain", "system": "be brief"},
                                                           {"prompt": "a few words", "system": ""}, {"prompt": "in"}]))
    assert load_prompts(path).rows() == [("line-1", "be brief\n\nplease explain"), ("line-2", "a few words"),
                                         ("line-3", "in")]
    assert load_prompts(path, with_system=True)["system"].to_list() == ["be brief", "", ""]
    path.write_text(json.dumps({"prompt": "p", "system": 7}) + "\n")
    with pytest.raises(UserError, match=r"p\.jsonl:1: 'system' must be text \(a JSON string\), got 7$"):
        load_prompts(path)


@pytest.mark.parametrize("kind", ["jsonl", "conversations"])
def test_label_sends_a_prompts_system_text_as_the_system_turn(tmp_path, monkeypatch, kind):
    """``label --prompts`` sent a conversation's system text inside the user message, where the engine sends it as
    the system turn (``ChatPrompts.encode``): the prompts' ids are rendered as the engine's are."""
    import ltrsched.engine.config
    import ltrsched.engine.served_models
    import ltrsched.validation.engines
    from ltrsched.labelling import run
    from ltrsched.labelling.jobs import select_jobs
    from ltrsched.labelling.settings import Sampling
    from test_workloads_more5 import PROMPTS, REPLIES, TEMPLATES, word_tokenizer

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    tok = word_tokenizer(tmp_path / "model", TEMPLATES["takes"])
    (tmp_path / "model" / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 100}))
    path = tmp_path / "p.jsonl"
    records = ([{"prompt": PROMPTS[i].lower(), **({"system": "be brief"} if i < 2 else {})} for i in range(3)]
               if kind == "jsonl" else
               [{"messages": [*([{"role": "system", "content": "be brief"}] if i < 2 else []),
                              {"role": "user", "content": PROMPTS[i].lower()},
                              {"role": "assistant", "content": REPLIES[i]}]} for i in range(3)])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    jobs = select_jobs(("eval", "train"), None, 0, path)
    assert sorted(j.system for j in jobs) == ["", "be brief", "be brief"]
    sent = {}

    def serve(todo, ids, *args):  # (no engine: the ids it would be sent)
        sent.update({j.key: tok.convert_ids_to_tokens(row) for j, row in zip(todo, ids)})

    monkeypatch.setattr(run, "engine_settings", lambda *a: types.SimpleNamespace(model="m", dtype="float32"))
    monkeypatch.setattr(ltrsched.engine.config, "model_dir", lambda model: tmp_path / "model")
    monkeypatch.setattr(ltrsched.engine.served_models, "model_fingerprint", lambda model: "0" * 64)
    monkeypatch.setattr(ltrsched.validation.engines, "expected_context", lambda config: (1000, "test"))
    monkeypatch.setattr(run, "_serve", serve)
    with pytest.raises(UserError, match="nothing labelled"):  # (nothing served)
        run.label_prompts(jobs, tmp_path / "l.parquet", "m", 100, Sampling(0.0, 1.0, 0), Sampling(0.8, 1.0, 1), 10,
                          {}, prompts=path)
    for job in jobs:
        user = ["<user>", *job.prompt.removeprefix("be brief\n\n").split(), "</user>", "<assistant>"]
        assert sent[job.key] == (["<sys>", "be", "brief", "</sys>", *user] if job.system else user)


# 4. conversation files of requests without replies


def test_a_prompts_file_of_requests_without_replies_is_labelled(tmp_path, capsys, monkeypatch):
    """An OpenAI-messages file of user turns alone was refused ("no complete conversation ... with a user turn and a
    reply"): labelling needs no reply."""
    from ltrsched.workloads.prompts import load_prompts

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    ask = "What is the capital of France and why is it famous?"
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": ask}],
        [{"role": "user", "content": "Write a long poem about the sea."}], [{"role": "user", "content": "Hi"}]]))
    df = load_prompts(path, with_system=True)
    assert df.rows() == [("request-1", f"Be brief.\n\n{ask}", "Be brief."),
                         ("request-2", "Write a long poem about the sea.", "")]
    assert capsys.readouterr().err == (f"warning: {path}: left out 1 of its 3 requests without the assistant's reply, "
                                       "with a prompt outside 4..1024 tokens (the paper's rule)\n")
    # ShareGPT's form, beside a complete conversation: both kinds are prompts, the notes say so
    path = tmp_path / "sg.json"
    path.write_text(json.dumps([
        {"id": "a", "conversations": [{"from": "human", "value": "Tell me a story about a fox please"},
                                      {"from": "gpt", "value": "Once upon a time there was a fox"}]},
        {"id": "b", "conversations": [{"from": "human", "value": ask}]}]))
    assert load_prompts(path).rows() == [("a", "Tell me a story about a fox please"), ("b", ask)]
    assert capsys.readouterr().err == (f"warning: {path}: labelling needs no reply: its 1 request without the "
                                       "assistant's reply is a prompt too\n")
    path.write_text(json.dumps([{"id": "b", "conversations": [{"from": "human", "value": "Hi"}]}]))
    with pytest.raises(UserError, match=r"sg\.json: no request with a prompt of 4\.\.1024 tokens \(the paper's rule\) "
                                        r"among its 1 without the assistant's reply$"):
        load_prompts(path)


def test_label_records_its_own_command_line_when_called_from_python(tmp_path, capsys, monkeypatch):
    """label recorded ``sys.argv``: called from Python (here pytest) that was the host program's arguments."""
    import ltrsched.labelling.run as run

    seen = {}

    def label_prompts(*args, command, **kwargs):
        seen["command"] = command
        return ["labelled"]

    monkeypatch.setattr(run, "label_prompts", label_prompts)
    prompts = tmp_path / "my prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Tell me a story about a fox please"}) + "\n")
    r = run_cli_fast(capsys, "label", "--prompts", prompts, "--splits", "eval", "--out", tmp_path / "l.parquet",
                     "--max-tokens", "7")
    assert r.returncode == 0, r.stderr
    assert seen["command"] == (f"ltrsched label --prompts '{prompts}' --splits eval --out {tmp_path / 'l.parquet'} "
                               "--max-tokens 7")
