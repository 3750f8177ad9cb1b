"""A trained classifier's accuracy in a run's summary (Table 3's ``ours_accuracy``) counts its own classes, and a
classifier that predicts one length for every request is named in the tables' notes."""

from __future__ import annotations

import numpy as np
import polars as pl

from ltrsched.experiments import scoring
from ltrsched.experiments.methods import make_spec, one_length_note
from ltrsched.experiments.runspec import RunSpec
from ltrsched.predictors.predictor import bucket_accuracy
from ltrsched.workloads.schema import Workload

LENGTHS = np.array([1, 5, 99, 100, 101, 250, 1_000, 5_000])


def _classifier(predict):
    """A stand-in for the trained classifier: ``predict(lengths) -> predicted lengths`` [tokens]."""
    def classify(workload, name="sharegpt", bucket=820):
        out = workload.df["output_tokens"].to_numpy()
        return workload.with_df(workload.df.with_columns(predicted_length=pl.Series(predict(out, bucket),
                                                                                 dtype=pl.Float64)),
                                bucket=bucket, num_classes=4)
    return classify


def _workload() -> Workload:
    return Workload(pl.DataFrame({"request_id": np.arange(len(LENGTHS)), "prompt_tokens": np.full(len(LENGTHS), 10),
                                  "output_tokens": LENGTHS, "arrival_time": np.zeros(len(LENGTHS))}), "test")


def test_a_perfect_classifier_scores_accuracy_one(monkeypatch):
    # the classifier's midpoints are (class + 0.5) x bucket, class = length // bucket (the last one open-ended);
    # the summary compared them with another convention's midpoints ((bucket + 1) / 2 for 1..bucket): always 0.0
    perfect = _classifier(lambda out, b: (np.minimum(out // b, 3) + 0.5) * b)
    monkeypatch.setattr(scoring, "_trained", lambda kind: perfect)
    _, info = scoring.attach_scores(_workload(), "trained-class:sharegpt,bucket=100")
    assert info["accuracy"] == 1.0


def test_accuracy_counts_the_open_ended_last_class():
    # 4 classes of 100 tokens: 1,000 and 5,000 tokens are both class 3 (300+)
    predicted = (np.array([0, 0, 0, 1, 1, 2, 3, 2]) + 0.5) * 100
    assert bucket_accuracy(predicted, LENGTHS, 100, 4) == 7 / 8
    assert np.isnan(bucket_accuracy(np.array([]), np.array([], dtype=np.int64), 100, 4))


def test_one_predicted_length_is_named_in_the_notes(monkeypatch):
    one = _classifier(lambda out, b: np.full(len(out), 0.5 * b))
    monkeypatch.setattr(scoring, "_trained", lambda kind: one)
    _, info = scoring.attach_scores(_workload(), "trained-class:sharegpt,bucket=820")
    assert info["kendall_tau"] is None and info["accuracy"] == 0.75  # 6 of 8 lengths under 820 tokens
    spec = RunSpec(experiment="table1", setting="8B ShareGPT", label="Classification", workload="sharegpt",
                   profile="a100-llama3-8b", policy="class:bucket=820", scoring="trained-class:sharegpt")
    note = one_length_note("8B ShareGPT", spec, {"scoring_kendall_tau": None, "scoring_accuracy": 0.75})
    assert note is not None and "one bucket (accuracy 0.75" in note and "as FCFS does" in note
    assert one_length_note("8B ShareGPT", spec, {"scoring_kendall_tau": 0.2, "scoring_accuracy": 0.75}) is None
    approx = make_spec("table1", "8B LMSYS", "class", num_requests=10, arrival="burst")
    assert one_length_note("8B LMSYS", approx, {"scoring_kendall_tau": None}) is None


def test_trained_classifier_runs_cached_with_the_old_accuracy_are_not_reused():
    base = dict(experiment="table1", setting="8B ShareGPT", label="Classification", workload="sharegpt",
                profile="a100-llama3-8b", policy="class:bucket=820")
    trained = RunSpec(**base, scoring="trained-class:sharegpt").key()
    assert trained["class_accuracy"] == "own-classes"
    assert "class_accuracy" not in RunSpec(**base, scoring="approx-class:bucket=820,tau=0.2").key()
