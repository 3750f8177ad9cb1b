"""A request file's own ``split`` column (a ``.csv``'s or flat parquet's, in any case) or ``.jsonl`` key, read where a
split is asked for (``ltrsched train``'s training and held-out prompts, ``evaluate``/``predict --split``), as a labels
file's is: it was ignored (``train`` refused such a file, "has no train/eval split ... a 'split' column of another file
is not read"). A load that asks for none (``simulate``) reads every row, the column unread, as before."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.errors import UserError
from ltrsched.workloads import load_workload

PROMPTS = [f"Please write a short poem about the number {i} and the sea at night" for i in range(6)]
SPLITS = ["train", "eval", "Train", "train", " EVAL ", "train"]


def _write(tmp_path, kind: str, splits: list, name: str = "split") -> str:
    rows = [{"prompt": p, "output_tokens": 5 + i, name: s} for i, (p, s) in enumerate(zip(PROMPTS, splits))]
    path = tmp_path / f"s.{kind}"
    if kind == "csv":
        path.write_text(f"prompt_tokens,output_tokens,{name}\n" + "".join(
            f"{10 + i},{r['output_tokens']},{'' if r[name] is None else r[name]}\n" for i, r in enumerate(rows)))
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pl.DataFrame(rows).write_parquet(path)
    return str(path)


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_a_files_own_split_is_read_where_one_is_asked(tmp_path, kind):
    path = _write(tmp_path, kind, SPLITS, "Split" if kind != "jsonl" else "split")
    outputs = lambda split: sorted(load_workload(path, split=split).df["output_tokens"].to_list())  # noqa: E731
    assert outputs("train") == [5, 7, 8, 10]
    assert outputs("eval") == [6, 9]
    assert outputs("all") == outputs(None) == [5, 6, 7, 8, 9, 10]
    assert load_workload(path, split="train").meta["split"] == "train"
    assert "split" not in load_workload(path).meta


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_simulate_reads_every_row_whatever_the_split(capsys, tmp_path, kind):
    """simulate asks for no split: every row served, a value that is no split unread (as before)."""
    path = _write(tmp_path, kind, ["train", "test", "eval", "train", "eval", "train"])
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert pl.read_parquet(tmp_path / "run" / "requests.parquet").height == 6


@pytest.mark.parametrize("kind, value, says", [
    ("csv", "test", "s.csv: column 'split' in row 2 is 'test', not a split: give 'train' or 'eval' on every row"),
    ("parquet", "validation", "s.parquet: column 'split' in row 2 is 'validation', not a split"),
    ("parquet", None, "s.parquet: column 'split' in row 2 is missing (null), not a split"),
    ("jsonl", 1, "s.jsonl: key 'split' in line 2 is 1, not a split: give 'train' or 'eval' on every line"),
    ("jsonl", None, "s.jsonl: key 'split' in line 2 is missing (null), not a split"),
])
def test_a_split_that_is_none_is_one_line(capsys, tmp_path, kind, value, says):
    path = _write(tmp_path, kind, ["train", value, "eval", "train", "eval", "train"])
    with pytest.raises(UserError, match="not a split"):
        load_workload(path, split="eval")
    r = run_cli_fast(capsys, "train", "--data", path, "--epochs", "1", "--out", str(tmp_path / "ck"))
    assert_one_line_error(r, says)
    assert not (tmp_path / "ck").exists()


def test_a_jsonl_line_without_the_split_key_is_one_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "output_tokens": 5, **({"split": "eval"} if i != 3 else {})})
                            + "\n" for i, p in enumerate(PROMPTS)))
    with pytest.raises(UserError, match=r"s.jsonl: key 'split' in line 4 is missing \(null\), not a split"):
        load_workload(str(path), split="train")


def test_train_trains_on_a_files_train_rows_and_holds_out_its_eval_rows(tmp_path):
    from ltrsched.predictors.data import prompts_and_lengths

    path = _write(tmp_path, "jsonl", SPLITS)
    assert sorted(prompts_and_lengths(path, "train")[0]) == sorted(PROMPTS[i] for i in (0, 2, 3, 5))
    assert sorted(prompts_and_lengths(path, "eval")[0]) == sorted(PROMPTS[i] for i in (1, 4))


# A conversation record's own split (a .json's or .jsonl's record's 'split' key, a conversations parquet's 'split'
# column in any case) by the same rule: it was dropped by the parse (`train` refused such a file as one without a
# split, whose refusal says a file's own 'split' column or key qualifies; `evaluate --split eval` scored every record).
def _conversations(tmp_path, kind: str, splits: list, name: str = "split") -> str:
    records = [{"id": f"c{i}", "messages": [{"role": "user", "content": p},
                                            {"role": "assistant", "content": f"{p} " + "la " * i}],
                **({name: s} if s != "absent" else {})} for i, (p, s) in enumerate(zip(PROMPTS, splits))]
    path = tmp_path / f"c.{kind}"
    if kind == "json":
        path.write_text(json.dumps(records))
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        pl.DataFrame([{"id": r["id"], "conversation": r["messages"], name: r.get(name)} for r in records],
                     strict=False).write_parquet(path)
    return str(path)


@pytest.mark.parametrize("kind", ["json", "jsonl", "parquet"])
def test_a_conversation_records_own_split_is_read_where_one_is_asked(tmp_path, kind):
    path = _conversations(tmp_path, kind, SPLITS, "Split" if kind == "parquet" else "split")
    replies = lambda split: sorted(load_workload(path, split=split).df["prompt"].to_list())  # noqa: E731
    assert replies(None) == replies("all") == sorted(PROMPTS)  # (first: a parse cached by a load asking for none)
    assert replies("train") == sorted(PROMPTS[i] for i in (0, 2, 3, 5))
    assert replies("eval") == sorted(PROMPTS[i] for i in (1, 4))
    assert load_workload(path, split="eval").meta["split"] == "eval"
    assert "split" not in load_workload(path).meta


@pytest.mark.parametrize("kind", ["json", "jsonl", "parquet"])
def test_simulate_reads_every_conversation_whatever_its_split(capsys, tmp_path, kind):
    path = _conversations(tmp_path, kind, ["train", "test", "eval", "train", "eval", "train"])
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert pl.read_parquet(tmp_path / "run" / "requests.parquet").height == 6


@pytest.mark.parametrize("kind, value, says", [
    ("json", "test", "c.json: key 'split' in record 2 (id 'c1') is 'test', not a split: give 'train' or 'eval' on "
                     "every record"),
    ("jsonl", None, "c.jsonl: key 'split' in record 2 (id 'c1') is missing (null), not a split"),
    ("jsonl", "absent", "c.jsonl: key 'split' in record 2 (id 'c1') is missing (null), not a split"),
    ("parquet", "validation", "c.parquet: column 'split' in row 2 (id 'c1') is 'validation', not a split: give "
                              "'train' or 'eval' on every row"),
])
def test_a_conversation_split_that_is_none_is_one_line(capsys, tmp_path, kind, value, says):
    path = _conversations(tmp_path, kind, ["train", value, "eval", "train", "eval", "train"])
    r = run_cli_fast(capsys, "train", "--data", path, "--epochs", "1", "--out", str(tmp_path / "ck"))
    assert_one_line_error(r, says)
    assert not (tmp_path / "ck").exists()


def test_train_holds_out_a_conversation_files_eval_records(tmp_path):
    from ltrsched.predictors.data import prompts_and_lengths

    path = _conversations(tmp_path, "json", SPLITS)
    assert sorted(prompts_and_lengths(path, "train")[0]) == sorted(PROMPTS[i] for i in (0, 2, 3, 5))
    assert sorted(prompts_and_lengths(path, "eval")[0]) == sorted(PROMPTS[i] for i in (1, 4))


def test_two_split_columns_of_a_conversations_parquet_are_refused_only_where_a_split_is_asked(capsys, tmp_path):
    path = tmp_path / "c.parquet"
    pl.read_parquet(_conversations(tmp_path, "parquet", SPLITS)).with_columns(Split=pl.lit("eval")).write_parquet(path)
    assert load_workload(str(path)).df.height == 6  # (simulate's load: as a flat table's)
    with pytest.raises(UserError, match="columns 'split' and 'Split' both give the split; keep one"):
        load_workload(str(path), split="eval")


# A record the paper's rules leave out (no first turn they take: one opening with the assistant's turn, a later chunk
# of a split conversation) had its split never checked: a 'test' there passed where the same value on a record used is
# refused. Every record's is checked alike, in the file's order.
@pytest.mark.parametrize("kind", ["json", "jsonl", "parquet"])
@pytest.mark.parametrize("left_out", ["assistant first", "later chunk"])
def test_a_split_on_a_record_left_out_is_checked_alike(tmp_path, kind, left_out):
    splits = ["train", "test", "eval", "train", "eval", "train"]
    records = [{"id": f"c{i}", "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": p}],
                "split": s} for i, (p, s) in enumerate(zip(PROMPTS, splits))]
    if left_out == "assistant first":
        records[1]["messages"].reverse()
    else:
        records[1]["id"] = "c_2"
    path = tmp_path / f"c.{kind}"
    if kind == "parquet":
        pl.DataFrame([{"id": r["id"], "conversation": r["messages"], "split": r["split"]} for r in records]
                     ).write_parquet(path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records) if kind == "jsonl" else json.dumps(records))
    assert load_workload(str(path)).df.height == 5  # (simulate's load: the record left out, its split unread)
    with pytest.raises(UserError, match=r"is 'test', not a split: give 'train' or 'eval'") as caught:
        load_workload(str(path), split="train")
    where = "column 'split' in row 2" if kind == "parquet" else "key 'split' in record 2"
    assert f"c.{kind}: {where} (id '{records[1]['id']}')" in str(caught.value)


def test_train_refuses_a_split_on_a_record_left_out(capsys, tmp_path):
    path = tmp_path / "c.jsonl"
    records = [{"id": f"c{i}", "split": s, "messages": [{"role": "user", "content": PROMPTS[i]},
                                                          {"role": "assistant", "content": f"{PROMPTS[i]} la"}]}
               for i, s in enumerate(["train", "eval", "train"])]
    records.append({"id": "x", "split": "dev", "messages": [{"role": "assistant", "content": "Hi"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    r = run_cli_fast(capsys, "train", "--data", str(path), "--epochs", "1", "--out", str(tmp_path / "ck"))
    # (the note counting the record left out comes first: it may say why, as explain_error prints it)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and \
        "c.jsonl: key 'split' in record 4 (id 'x') is 'dev', not a split" in r.stderr.strip().splitlines()[-1]
