"""Messages and inputs of the workload readers: an option named where a sample is too big, a tie warning worded by
what the lengths show, a replay's span refusal that fits a replay, labels files' bad rows named, prompts files with
user turns alone or a system text, a conversation's system text sent as a system turn when labelling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import polars as pl
import pytest

from ltrsched.errors import UserError
from tests.cli_helpers import run_cli_fast


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
    one_line_error(r, "(request 2 arrives 53 years after request 1) has arrival times up to 1.68e+09 s; they must "
                      "stay below 1e+08 s (about 3 years), where float64 time still resolves a step (give a rate, to "
                      "which the replay rescales the file's times, or drop the requests far from the rest)")
    assert "raise the rate" not in r.stderr
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival", "replay", "--rate", "1e-8")
    one_line_error(r, "with replay arrivals at 1e-08 req/s")
    assert "(raise the rate, or use fewer requests)" in r.stderr  # (a rate it has: raising it helps)
