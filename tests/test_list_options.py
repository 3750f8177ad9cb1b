"""List options whose value is split at a separator (``validate --policies 'fcfs;ltr'`` and ``--rates 1,2``,
``label --splits``, ``label-report --sizes``, a trained scoring's ``NAME,k=v``): an empty item (``fcfs;;ltr``,
``1,,2``, a trailing ``,``) was skipped silently, so a value lost between two separators (a shell variable that
expanded to nothing) went unnoticed and the run had one case fewer than written. It is now a one-line error
(exit 2) naming the option; a value of separators alone keeps its own message ("--policies is empty")."""

from __future__ import annotations

import pytest

from ltrsched.errors import UserError
from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error, run_cli

VALIDATE = ["validate", "--emulate", "a100-llama3-8b", "-n", "5"]


def test_list_items_splits_strips_and_refuses_an_empty_item():
    from ltrsched.errors import list_items

    assert list_items(" a ; b:x=1,y=2 ", ";", "--opt") == ["a", "b:x=1,y=2"]
    assert list_items(" , ", ",", "--opt") == []  # (no item at all: the caller says so in its words)
    with pytest.raises(UserError, match=r"^--opt '1,,2': item 2 of 3 is empty \(two ',' in a row, or one at an "
                                        r"end\); remove the extra ',' or give the missing item$"):
        list_items("1,,2", ",", "--opt")
    with pytest.raises(UserError, match=r"^--opt 'a;b; ': item 3 of 3 is empty"):
        list_items("a;b; ", ";", "--opt")


@pytest.mark.parametrize("option, value, item", [
    ("--policies", "fcfs;;srtf", "item 2 of 3"),
    ("--policies", "fcfs;srtf;", "item 3 of 3"),
    ("--policies", ";fcfs", "item 1 of 2"),
    ("--policies", "fcfs,,srtf", "item 2 of 3"),
    ("--policies", "ltr:tau=0.5,,starve=3", "item 2 of 3"),
    ("--rates", "1,,2", "item 2 of 3"),
    ("--rates", "1,2,", "item 3 of 3"),
])
def test_validate_refuses_an_empty_item_in_a_list_option(tmp_path, capsys, option, value, item):
    r = run_cli_fast(capsys, *VALIDATE, option, value, "--out", str(tmp_path / "v"))
    assert_one_line_error(r, f"{option} {value!r}: {item} is empty")
    assert not (tmp_path / "v" / "validation.md").exists()


def test_a_list_option_of_separators_alone_keeps_its_message(tmp_path):
    assert_one_line_error(run_cli(*VALIDATE, "--policies", ";", "--out", str(tmp_path / "v")), "--policies is empty")


def test_label_splits_refuse_an_empty_item():
    from ltrsched.labelling.jobs import parse_splits

    assert parse_splits("train, eval") == ("train", "eval")
    with pytest.raises(UserError, match=r"^--splits 'train,,eval': item 2 of 3 is empty"):
        parse_splits("train,,eval")
    with pytest.raises(UserError, match=r"^--splits 'eval,': item 2 of 2 is empty"):
        parse_splits("eval,")


def test_label_report_sizes_name_the_empty_item(tmp_path):
    from ltrsched.predictors.label_report import parse_sizes

    assert parse_sizes("250, all") == [250, "all"]
    with pytest.raises(UserError, match=r"^--sizes '250,,all': item 2 of 3 is empty"):
        parse_sizes("250,,all")


@pytest.mark.parametrize("scoring", ["trained-ltr:sharegpt,", "trained-class:sharegpt,,bucket=100"])
def test_a_trained_scoring_with_an_empty_item_is_refused(scoring):
    from ltrsched.experiments.scoring import check_scoring

    check_scoring(scoring.replace(",,", ",").rstrip(","))  # (the same without the empty item is fine)
    with pytest.raises(UserError, match=r"expected key=value, got ''"):
        check_scoring(scoring)


def test_capacity_refuses_a_scoring_with_an_empty_item_in_one_line(tmp_path):
    assert_one_line_error(run_cli("capacity", "--scoring", "trained-ltr:sharegpt,", "-p", "fcfs", "--slo",
                                  "ttft_p90=2", "--out", str(tmp_path / "c")),
                          "bad scoring 'trained-ltr:sharegpt,': expected key=value, got ''")


def test_validate_rates_given_empty_is_an_error(tmp_path):
    """``--rates ''`` (an unset shell variable) ran no rate at all, silently, as if the option were left out."""
    r = run_cli(*VALIDATE, "--rates", "", "--out", str(tmp_path / "v"))
    assert_one_line_error(r, "--rates is empty: give rates [req/s] separated by ',' or 'auto', or leave the option out")
    assert not (tmp_path / "v" / "validation.md").exists()


@pytest.mark.parametrize("args, message", [
    (["simulate", "-n", "2", "-p", ""], "no profile given (the name '' is empty): give a built-in ("),
    (["simulate", "-n", "2", "--plugin", ""], "--plugin '' is empty: give a module name or a .py file"),
])
def test_an_empty_profile_or_plugin_name_says_it_is_empty(args, message):
    """``-p ''`` was "profile path is a directory, not a JSON file: ." (the current directory), ``--plugin ''``
    "cannot load plugin : ValueError: Empty module name"."""
    assert_one_line_error(run_cli(*args), message)
