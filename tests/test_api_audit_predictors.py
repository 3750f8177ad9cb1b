"""The predictors' Python entry points (``Predictor`` fit / score / evaluate / save / load, ``Ensemble``,
``PredictorConfig``) and the score-taking policies' arguments, given hostile values: each is one TypeError or
ValueError naming the argument, never a silently wrong result (a string scored one character a prompt, a batch size
of -1 that scored nothing, NaN lengths trained as -2**63 tokens) or an error from deep inside (an ``IndexError`` of
the n-gram featuriser, an ``AttributeError``). The command line's cases are checked where its inputs are read
(tests/test_cli_hostile_values.py, tests/test_audit_pred2.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from label_data import english_rows

ROWS = english_rows(12, 0)
PROMPTS = [p for p, _ in ROWS]
LENGTHS = np.array([n for _, n in ROWS])


@pytest.fixture(scope="module")
def ranker():
    """A tiny n-gram ranker (1,024 buckets), trained one epoch on :data:`ROWS`."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, dim=1024))
    predictor.fit(PROMPTS, LENGTHS)
    return predictor


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- prompts

@pytest.mark.parametrize("prompts, match", [
    ("one prompt as text", r"^prompts must be a list of prompt strings \(a single prompt: \[prompt\]\), got str "),
    (b"bytes", r"^prompts must be a list of prompt strings .*got bytes "),
    (None, r"^prompts must be a list of prompt strings .*got None$"),
    (3, r"^prompts must be a list of prompt strings, got int 3$"),
    (["a b", None], r"^prompts\[1\] must be a prompt string, got None$"),
    (["a b", b"c d"], r"^prompts\[1\] must be a prompt string, got bytes b'c d' \(decode bytes first"),
    (["a b", 3], r"^prompts\[1\] must be a prompt string, got int 3$"),
    (pl.Series(["a b", None]), r"^prompts\[1\] must be a prompt string, got None$"),
])
def test_prompts_that_are_no_list_of_text_are_a_type_error_naming_them(ranker, prompts, match):
    """A str was scored one prompt per character (11 scores for "hello world"), bytes one per byte, items of bytes
    or numbers scored as if text; a None item (a polars null) was an IndexError from the featuriser."""
    for call in (ranker.scores, ranker.score, ranker.prompts_cut, ranker.training_overlap):
        with pytest.raises(TypeError, match=match) as exc:
            call(prompts)
        _one_line(exc)


def test_any_iterable_of_text_scores_as_its_list(ranker):
    want = ranker.scores(PROMPTS[:3])
    for given in (tuple(PROMPTS[:3]), np.array(PROMPTS[:3], dtype=object), np.array(PROMPTS[:3]),
                  pl.Series(PROMPTS[:3]), (p for p in PROMPTS[:3])):
        np.testing.assert_array_equal(ranker.scores(given), want)
    assert ranker.scores([]).shape == (0,)
    assert ranker.scores(PROMPTS[:1]).shape == (1,)


@pytest.mark.parametrize("batch_size, error, match", [
    (0, ValueError, r"^batch_size must be >= 1 prompt, got 0$"),
    (-1, ValueError, r"^batch_size must be >= 1 prompt, got -1$"),
    (1.5, TypeError, r"^batch_size must be a whole number of prompts >= 1, got float 1\.5$"),
    (float("nan"), TypeError, r"^batch_size must be a whole number of prompts >= 1, got float nan$"),
    (True, TypeError, r"^batch_size must be a whole number of prompts >= 1, got bool True$"),
    ("8", TypeError, r"^batch_size must be a whole number of prompts >= 1, got str '8'$"),
])
def test_a_batch_size_below_1_or_no_integer_is_refused(ranker, batch_size, error, match):
    """-1 scored no prompt and returned an empty array without a word; 0 was range()'s "arg 3 must not be zero"."""
    with pytest.raises(error, match=match):
        ranker.scores(PROMPTS[:2], batch_size=batch_size)


def test_a_numpy_batch_size_scores_as_its_int(ranker):
    np.testing.assert_array_equal(ranker.scores(PROMPTS[:3], batch_size=np.int64(2)), ranker.scores(PROMPTS[:3], 2))


# ---------------------------------------------------------------- lengths

BAD_LENGTHS = [
    (np.array([30, 40, 50]), ValueError, r"^lengths holds 3 output length\(s\) for 2 prompt\(s\): give one per prompt$"),
    (np.array([30, np.nan]), ValueError, r"^lengths\[1\] must be a whole number of tokens >= 0, got nan \(1 of 2 such\)$"),
    (np.array([np.inf, 30]), ValueError, r"^lengths\[0\] must be a whole number of tokens >= 0, got inf"),
    ([30, 40.5], ValueError, r"^lengths\[1\] must be a whole number of tokens >= 0, got 40\.5"),
    ([30, -5], ValueError, r"^lengths\[1\] must be a number of tokens >= 0, got -5$"),
    ([30, 10 ** 30], ValueError, r"^lengths\[1\] must be in \[0, 9223372036854775807\] tokens, got 10{30}$"),
    ([True, False], TypeError, r"^lengths must be numbers of tokens, got bool values"),
    (["30", "40"], TypeError, r"^lengths must be numbers of tokens, got <U2 values \(the first: str '30'\)$"),
    (None, TypeError, r"^lengths must be a sequence of output lengths \[tokens\], one per prompt, got None$"),
    ("3040", TypeError, r"^lengths must be a sequence of output lengths"),
    (np.array([[30, 40]]), ValueError, r"^lengths must be one output length per prompt \(a flat sequence\), got an "
                                       r"array of shape \(1, 2\)$"),
]


@pytest.mark.parametrize("lengths, error, match", BAD_LENGTHS)
def test_evaluate_refuses_lengths_that_are_no_token_count_per_prompt(ranker, lengths, error, match):
    """A NaN length gave tau None as if the scores were constant, an infinite or negative one a tau, text lengths a
    tau of the strings' order; three lengths for two prompts were numpy's "shapes are incompatible for
    broadcasting"."""
    with pytest.raises(error, match=match) as exc:
        ranker.evaluate(PROMPTS[:2], lengths)
    _one_line(exc)
    with pytest.raises(error, match=match):
        ranker.measure(ranker.score(PROMPTS[:2]), lengths)


def test_evaluate_takes_lengths_as_lists_floats_of_whole_values_and_numpy_ints(ranker):
    want = ranker.evaluate(PROMPTS, LENGTHS)
    assert want["tau"] is not None
    for given in (list(LENGTHS), LENGTHS.astype(np.float64), LENGTHS.astype(np.uint32), pl.Series(LENGTHS)):
        assert ranker.evaluate(PROMPTS, given) == want


@pytest.mark.parametrize("lengths, error, match", [(np.r_[LENGTHS[:-1], np.nan], ValueError, r"^lengths\[11\] .* nan"),
                                                   (LENGTHS + 0.5, ValueError, r"^lengths\[0\] .* got \d+\.5"),
                                                   (LENGTHS[:5], ValueError, r"^lengths holds 5 output .* for 12 prompt"),
                                                   (list(LENGTHS[:-1]) + [2 ** 70], ValueError, r"^lengths\[11\] must be in"),
                                                   ([str(n) for n in LENGTHS], TypeError, r"^lengths must be numbers")])
def test_fit_refuses_bad_lengths_before_training(ranker, lengths, error, match):
    """NaN and infinite lengths trained (cast to -2**63 tokens), fractions were cut down silently, a Python int past
    int64 was an OverflowError and text lengths numpy's UFuncTypeError."""
    before = [p.detach().clone() for p in ranker.backbone.model.parameters()]
    with pytest.raises(error, match=match):
        ranker.fit(PROMPTS, lengths)
    assert all(bool((a == b.detach()).all()) for a, b in zip(before, ranker.backbone.model.parameters()))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(prompts="".join(PROMPTS)), TypeError, r"^prompts must be a list of prompt strings"),
    (dict(prompts=PROMPTS[:-1] + [None]), TypeError, r"^prompts\[11\] must be a prompt string, got None$"),
    (dict(eval_prompts=PROMPTS[:4], eval_lengths=LENGTHS[:3]), ValueError, r"^eval_lengths holds 3 .* for 4 prompt"),
    (dict(eval_prompts=PROMPTS[:4]), TypeError, r"^eval_lengths must be a sequence of output lengths .*got None$"),
    (dict(eval_lengths=LENGTHS[:4]), ValueError, r"^eval_lengths is given without eval_prompts: give both, or neither$"),
    (dict(eval_prompts="abcd", eval_lengths=LENGTHS[:4]), TypeError, r"^eval_prompts must be a list of prompt strings"),
    (dict(eval_prompts=PROMPTS[:2], eval_lengths=[1, float("nan")]), ValueError, r"^eval_lengths\[1\] .* got nan"),
])
def test_fit_names_the_bad_argument(ranker, kwargs, error, match):
    """A str of prompts trained on its characters; a None prompt was an AttributeError about ``encode``; eval
    lengths of another count, numpy's broadcasting error, or None, "object of type 'numpy.float64' has no len()"."""
    args = {"prompts": PROMPTS, "lengths": LENGTHS, **kwargs}
    with pytest.raises(error, match=match) as exc:
        ranker.fit(args.pop("prompts"), args.pop("lengths"), **args)
    _one_line(exc)


# ---------------------------------------------------------------- checkpoints and config

@pytest.mark.parametrize("directory", [None, 3, ["ck"]])
def test_save_and_load_name_a_directory_that_is_no_path(ranker, directory):
    """It was "expected str, bytes or os.PathLike object, not NoneType", naming no argument."""
    from ltrsched.predictors.predictor import Predictor

    for call in (ranker.save, Predictor.load):
        with pytest.raises(TypeError, match=r"^directory must be a checkpoint directory path \(str or pathlib\.Path\), "
                                            r"got "):
            call(directory)


def test_save_into_a_file_says_the_path_is_a_file(ranker, tmp_path):
    """It said "cannot write FILE/weights.pt: File exists", of a weights file that was not there."""
    from ltrsched.predictors.ensemble import Ensemble

    file = tmp_path / "scores.parquet"
    file.write_text("not a directory")
    with pytest.raises(ValueError, match=r"^directory '.*scores\.parquet' is a file, not a directory: a checkpoint is a "
                                         r"directory of files; give a directory path$"):
        ranker.save(file)
    with pytest.raises(ValueError, match=r"^directory '.*scores\.parquet/ck' is below the file '.*scores\.parquet', "
                                         r"not a directory"):
        Ensemble([ranker, ranker], [1, 1], [0, 0], [1, 1]).save(file / "ck", [tmp_path / "a", tmp_path / "b"])
    assert file.read_text() == "not a directory"


@pytest.mark.parametrize("config", [{"kind": "rank"}, None, "rank"])
def test_a_predictor_of_no_config_is_a_type_error_naming_it(config):
    """It was "'dict' object has no attribute 'kind'"."""
    from ltrsched.predictors.predictor import Predictor

    with pytest.raises(TypeError, match=r"^config must be a PredictorConfig \(e\.g\. PredictorConfig\(kind='rank'\); "
                                        r"PredictorConfig\(\*\*settings\) for a dict\), got "):
        Predictor(config)


def test_config_takes_numpy_numbers_as_python_ones():
    """np.int64(2) epochs was "epochs must be an integer, got np.int64(2)"; an np.float32 rate was refused, an
    np.float64 one taken."""
    from ltrsched.predictors.config import PredictorConfig

    config = PredictorConfig(epochs=np.int64(2), seed=np.uint8(3), list_size=np.int32(8), lr=np.float32(0.5))
    assert (config.epochs, config.seed, config.list_size, config.lr) == (2, 3, 8, 0.5)
    assert all(type(v) is int for v in (config.epochs, config.seed, config.list_size)) and type(config.lr) is float


def test_a_bool_learning_rate_is_called_a_bool():
    from ltrsched.errors import UserError
    from ltrsched.predictors.config import PredictorConfig

    with pytest.raises(UserError, match=r"^lr must be a finite number, got True$"):  # (was "an integer of 4 digits")
        PredictorConfig(lr=True)


@pytest.mark.parametrize("args, error, match", [
    (("banana",), ValueError, r"^kind must be one of 'rank', 'class', got str 'banana'$"),
    (("class", 0), ValueError, r"^bucket must be >= 1 token, got 0$"),
    (("class", 1.5), TypeError, r"^bucket must be a whole number of tokens >= 1, got float 1\.5$"),
    (("class", True), TypeError, r"^bucket must be a whole number of tokens >= 1, got bool True$"),
])
def test_the_default_predictors_config_refuses_another_kind_or_bucket(args, error, match):
    """Any kind but "rank" gave a classifier (``sharegpt_predictor("banana")`` trained one); bucket 0 was a
    ZeroDivisionError."""
    from ltrsched.predictors.pretrained import default_config

    with pytest.raises(error, match=match):
        default_config(*args)


def test_scoring_a_workload_with_the_default_predictors_checks_it_before_any_training(monkeypatch):
    """A workload that is no Workload failed after the default ranker trained (on first use) or loaded, on
    "'str' object has no attribute 'df'"; a bad bucket after the classifier trained."""
    from ltrsched.predictors import pretrained
    from ltrsched.workloads.schema import Workload

    def trains(*args):
        raise AssertionError("trained or loaded a predictor before checking the arguments")

    monkeypatch.setattr(pretrained, "sharegpt_predictor", trains)
    for call in (pretrained.score_workload, pretrained.classify_workload):
        with pytest.raises(TypeError, match=r"^workload must be a Workload with prompt text \(ltrsched\.workloads\."
                                            r"load_workload\(\.\.\.\)\), got str 'sharegpt'$"):
            call("sharegpt")
    frame = pl.DataFrame({"request_id": [0, 1], "arrival_time": [0.0, 0.0], "prompt_tokens": [5, 6],
                          "output_tokens": [7, 8]})
    with pytest.raises(ValueError, match=r"^bucket must be >= 1 token, got 0$"):
        pretrained.classify_workload(Workload(frame), bucket=0)
    from ltrsched.errors import UserError

    with pytest.raises(UserError, match="has no prompt text"):
        pretrained.score_workload(Workload(frame))


# ---------------------------------------------------------------- ensembles

def test_ensemble_members_and_weights_of_the_wrong_kind_are_type_errors(ranker):
    """A path as a member was "'str' object has no attribute 'config'"; a text weight failed comparing '<=' with an
    int; True and False weighted a member 1 and 0."""
    from ltrsched.predictors.ensemble import Ensemble

    with pytest.raises(TypeError, match=r"^members\[0\] must be a Predictor \(Predictor\.load\(directory\) for a "
                                        r"checkpoint\), got str 'ck'$"):
        Ensemble(["ck", ranker], [1, 1], [0, 0], [1, 1])
    for weights, bad in (([1, "2"], r"weights\[1\] must be a number, got str '2'"),
                         ([True, False], r"weights\[0\] must be a number, got bool True")):
        with pytest.raises(TypeError, match=rf"^{bad}$"):
            Ensemble([ranker, ranker], weights, [0, 0], [1, 1])


def test_ensemble_calibrate_refuses_an_empty_weight_list_and_text_prompts(ranker):
    """``weights=[]`` silently weighted every member 1; a str of prompts calibrated on its characters."""
    from ltrsched.errors import UserError
    from ltrsched.predictors.ensemble import Ensemble

    with pytest.raises(UserError, match="an ensemble needs at least 2 members, with one weight each"):
        Ensemble.calibrate([ranker, ranker], PROMPTS, weights=[])
    with pytest.raises(TypeError, match=r"^prompts must be a list of prompt strings"):
        Ensemble.calibrate([ranker, ranker], "".join(PROMPTS))


def test_ensemble_save_refuses_a_text_source_and_a_count_of_sources_other_than_its_members(ranker, tmp_path,
                                                                                          monkeypatch):
    """A str of sources was copied one character a member: of an absolute path, member0 a copy of "/", the whole file
    system (here a relative one, whose "c" is not there); no sources wrote an ensemble.json of no member, which no
    load takes."""
    from ltrsched.predictors.ensemble import Ensemble

    monkeypatch.chdir(tmp_path)
    ensemble = Ensemble([ranker, ranker], [1, 1], [0, 0], [1, 1])
    with pytest.raises(TypeError, match=r"^sources must be a list of checkpoint directories, one per member, got str "):
        ensemble.save(tmp_path / "ens", "ck")
    for sources in ([], [tmp_path / "a"], [tmp_path / "a"] * 3):
        with pytest.raises(ValueError, match=rf"^sources holds {len(sources)} checkpoint directories for 2 members"):
            ensemble.save(tmp_path / "ens", sources)
    with pytest.raises(TypeError, match=r"^sources\[1\] must be a checkpoint directory path"):
        ensemble.save(tmp_path / "ens", [tmp_path / "a", None])
    assert not (tmp_path / "ens").exists()


def test_ensemble_scoring_checks_prompts_lengths_and_batch_size(ranker):
    from ltrsched.predictors.ensemble import Ensemble

    ensemble = Ensemble([ranker, ranker], [1, 2], [0, 0], [1, 1])
    with pytest.raises(TypeError, match=r"^prompts must be a list of prompt strings"):
        ensemble.scores("abc")
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1 prompt, got -1$"):
        ensemble.scores(PROMPTS, batch_size=-1)
    with pytest.raises(ValueError, match=r"^lengths\[1\] must be a whole number of tokens >= 0, got nan"):
        ensemble.evaluate(PROMPTS[:2], [3, float("nan")])


# ---------------------------------------------------------------- policies that take scores

@pytest.mark.parametrize("build, match", [
    (lambda: __import__("ltrsched.policies.ltr", fromlist=["LTR"]).LTR(tau=True), r"^tau must be a number in \(0, 1\], got bool True$"),
    (lambda: __import__("ltrsched.policies.ltr", fromlist=["LTR"]).LTR(tau="0.5"), r"^tau must be a number in \(0, 1\], got str '0\.5'$"),
    (lambda: __import__("ltrsched.policies.ltr", fromlist=["LTR"]).LTR(seed=1.5), r"^seed must be an integer >= 0, got float 1\.5$"),
    (lambda: __import__("ltrsched.policies.ltr", fromlist=["LTR"]).LTR(seed=None), r"^seed must be an integer >= 0, got None$"),
    (lambda: __import__("ltrsched.policies.po", fromlist=["PO"]).PO(tokens=1.5), r"^tokens must be a whole number of output tokens >= 0, got float 1\.5$"),
    (lambda: __import__("ltrsched.policies.po", fromlist=["PO"]).PO(tokens=float("nan")), r"^tokens must be a whole number .*got float nan$"),
    (lambda: __import__("ltrsched.policies.po", fromlist=["PO"]).PO(tokens=True), r"^tokens must be a whole number .*got bool True$"),
    (lambda: __import__("ltrsched.policies.classification", fromlist=["Classification"]).Classification(bucket=float("nan")),
     r"^bucket must be a whole number of tokens >= 1 or None, got float nan$"),
    (lambda: __import__("ltrsched.policies.classification", fromlist=["Classification"]).Classification(bucket=1.5),
     r"^bucket must be a whole number of tokens >= 1 or None, got float 1\.5$"),
    (lambda: __import__("ltrsched.policies.classification", fromlist=["Classification"]).Classification(bucket="8"),
     r"^bucket must be a whole number of tokens >= 1 or None, got str '8'$"),
])
def test_score_policies_built_in_python_refuse_arguments_of_the_wrong_kind(build, match):
    """tau=True ran as tau 1, seed=1.5, tokens=1.5 or NaN and a NaN bucket (every request one bucket) were taken; text
    and None failed comparing '<' with an int."""
    with pytest.raises(TypeError, match=match):
        build()


def test_score_policies_still_take_numpy_numbers_and_their_specs():
    from ltrsched.policies import make_policy
    from ltrsched.policies.classification import Classification
    from ltrsched.policies.ltr import LTR
    from ltrsched.policies.po import PO

    assert LTR(tau=np.float64(0.5), seed=np.int64(3)).seed == 3
    assert PO(tokens=np.int32(0)).extra_output_tokens == 0
    assert Classification(bucket=np.int64(100)).bucket == 100
    assert make_policy("po:tokens=0").tokens == 0 and make_policy("class:bucket=10").bucket == 10
