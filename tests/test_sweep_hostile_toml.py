"""Hostile sweep files (helper sweephash): each is refused in one line of under 1,000 characters, exit code 2, before any run (no --out
made). The fixed cases echoed the file's values whole: a list of 10,000 seeds, 10,000 unknown keys or a policy of
600,000 characters made an error line of 23,000 to 600,000 characters, and a key holding a right-to-left override
(U+202E) was printed raw, turning the rest of the line around; the others were refused so already (the audit)."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

BASE = 'workloads = ["lmsys-like"]\nnum_requests = 20\n'
POLICY = 'policies = ["fcfs"]\n'


def _list(items) -> str:
    return "[" + ", ".join(items) + "]"


FIXED = [
    (POLICY + 'seeds = ' + _list([str(i) for i in range(9999)] + ["-1"]) + "\n",
     "'seeds' must be >= 0, got [0, 1, 2, 3, 4, 5, ...] (item 10,000: -1)"),
    (POLICY + 'replicas = ' + _list([str(i) for i in range(1, 4000)] + ["0"]) + "\n",
     "'replicas' must be >= 1, got [1, 2, 3, 4, 5, 6, ...] (item 4,000: 0)"),
    ("policies = " + _list(str(i) for i in range(10000)) + "\n",
     "'policies' must be a non-empty list, each item text; got [0, 1, 2, 3, 4, 5, ...]"),
    ("policies = {" + ", ".join(f"k{i} = {i}" for i in range(10000)) + "}\n",
     "'policies' must be a non-empty list, each item text; got {'k0': 0, 'k1': 1, 'k10': 10, 'k100': 100, ...}"),
    (POLICY + 'arrival = "poisson"\nrates = [1.0]\nduration = ' + _list(str(i) for i in range(10000)) + "\n",
     "'duration' must be a number, got [0, 1, 2, 3, 4, 5, ...]"),
    (POLICY + "".join(f"k{i} = 1\n" for i in range(10000)),
     "unknown key(s) k0, k1, k10, k100, k1000, k1001, k1002, k1003, k1004, k1005 and 9,990 more; known: arrival"),
    (POLICY + '"rates\\u202e" = 1\n', "unknown key(s) 'rates\\u202e'; known"),
    ('policies = ["' + "a " * 300000 + '"]\n',
     "'policies' item 1 of 1 is 600,000 characters long, more than the 1,000 a spec may have (it starts 'a a a "),
    (POLICY + 'replicas = [2]\nrouters = ["' + "a " * 1000 + '"]\n', "'routers' item 1 of 1 is 2,000 characters long"),
    (POLICY + 'scoring = "' + "a " * 1000 + '"\n', "'scoring' is 2,000 characters long"),
]

AUDITED = [  # (refused so before: TOML's nan and inf, a rate of 1e308, a key given twice, look-alike names)
    (POLICY + 'arrival = "poisson"\nrates = [nan]\n', "'rates' must be positive and finite, got [nan]"),
    (POLICY + 'arrival = "poisson"\nrates = [4.0]\nduration = inf\n', "'duration' must be positive and finite"),
    (POLICY + 'arrival = "poisson"\nrates = [1e308]\n', "'rates' item 1 of 1: 1e+308 req/s is above 1e+09"),
    (POLICY + POLICY, "cannot parse (Cannot overwrite a value"),
    (POLICY + "seeds = [1, 2, 1]\n", "'seeds' lists 1 twice"),
    ('policies = ["\uff46\uff43\uff46\uff53"]\n', "unknown policy '\uff46\uff43\uff46\uff53'"),
    ('policies = ["fcfs\u202e"]\n', "must be printable text, without line breaks or control characters, got 'fcfs\\u202e'"),
]


@pytest.mark.parametrize("content, message", FIXED + AUDITED)
def test_a_hostile_sweep_file_is_one_short_line_before_any_run(tmp_path, capsys, content, message):
    sweep = tmp_path / "s.toml"
    sweep.write_text(BASE + content, encoding="utf-8")
    result = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(result, message)
    assert len(result.stderr) < 1000 and "\u202e" not in result.stderr, result.stderr[:1000]
    assert not (tmp_path / "o").exists()
