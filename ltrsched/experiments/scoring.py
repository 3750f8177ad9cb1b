"""The scoring step: attach predictor columns (``score``, ``po_estimate``, ``predicted_length``) to a
workload before it is simulated, as a run's ``scoring`` string says.

Scoring strings:

* ``none`` - nothing attached (FCFS, MLFQ, SRTF).
* ``approx-score:tau=T`` - LTR scores from the approximate oracle at Kendall tau ``T``.
* ``approx-po:tau=T`` - PO self-estimates [tokens] at tau ``T``.
* ``approx-class:bucket=W,tau=T`` - a length classifier with bucket width ``W`` [tokens] at tau ``T``.
* ``trained-ltr:NAME`` / ``trained-class:NAME[,bucket=W]`` - a trained predictor (``ltrsched.predictors``)
  by name; a classifier of bucket width ``W`` [tokens] (default 820).

Each returns the scored workload and a record of what was attached (achieved Kendall tau-b, bucket
accuracy), which the runner stores in the run's summary. The ``approx-*`` kinds draw their noise over the requests in
order of request id (:func:`ltrsched.policies.approx_oracle.id_order`): each request gets the same value whatever order
the workload's rows come in.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import polars as pl

from ltrsched.errors import UserError
from ltrsched.experiments import approx
from ltrsched.policies.approx_oracle import id_order, in_id_order
from ltrsched.strict_json import defined
from ltrsched.workloads.schema import Workload

#: Where the trained predictors live ("module:function"). The function takes
#: ``(workload: Workload, name: str) -> Workload`` and returns the workload with a ``score`` column
#: (kind "ltr") or a ``predicted_length`` column (kind "class"). Until ``ltrsched.predictors`` ships a
#: checkpoint for a dataset, experiments fall back to the approximate oracle (and say so).
TRAINED_PREDICTORS: dict[str, str] = {
    "ltr": "ltrsched.predictors.pretrained:score_workload",
    "class": "ltrsched.predictors.pretrained:classify_workload",
}
#: Which datasets have a trained predictor shipped: name passed to the functions above.
TRAINED_FOR: dict[str, str] = {"sharegpt": "sharegpt"}


def _parse(scoring: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = scoring.partition(":")
    params: dict[str, str] = {}
    if kind.startswith("approx-") and rest:
        items = rest.split(",")
    elif rest:
        name, comma, opts = rest.partition(",")
        params["name"] = name
        items = opts.split(",") if comma else []  # (an empty item, "NAME,,k=v" or "NAME,", was skipped silently)
    else:
        items = []
    for item in items:
        k, eq, v = item.partition("=")
        if not eq:
            raise UserError(f"bad scoring {scoring!r}: expected key=value, got {item!r}")
        if k.strip() in params:
            raise UserError(f"bad scoring {scoring!r}: {k.strip()} is given twice")
        params[k.strip()] = v.strip()
    return kind, params


#: The scoring kinds (the part before ':') and the parameters each takes ("name": the trained predictor's).
PARAMETERS: dict[str, tuple[str, ...]] = {
    "none": (), "approx-score": ("tau",), "approx-po": ("tau",), "approx-class": ("bucket", "tau"),
    "trained-ltr": ("name",), "trained-class": ("name", "bucket"),
}
KINDS = tuple(PARAMETERS)
#: The column each scoring kind attaches (None: none).
COLUMNS: dict[str, str | None] = {
    "none": None, "approx-score": "score", "approx-po": "po_estimate", "approx-class": "predicted_length",
    "trained-ltr": "score", "trained-class": "predicted_length",
}


def scoring_column(scoring: str) -> str | None:
    """The column a checked scoring string attaches to a workload (:func:`attach_scores`), without attaching it."""
    return COLUMNS[_parse(scoring)[0]]


def check_scoring(scoring: str) -> None:
    """Raise :class:`UserError` for a scoring string of unknown kind or with numbers out of range (cheap: no
    workload, no predictor)."""
    kind, params = _parse(scoring)
    if kind not in KINDS:
        raise UserError(f"unknown scoring {scoring!r}; use none, approx-score:tau=T, approx-po:tau=T, "
                        "approx-class:bucket=W,tau=T, trained-ltr:NAME or trained-class:NAME")
    unknown = [k for k in params if k not in PARAMETERS[kind]]
    if unknown:  # it was silently ignored (e.g. approx-score:tau=0.6,seed=3)
        def shown(key: str) -> str:
            return "NAME" if key == "name" else f"{key}="

        takes = ", ".join(shown(k) for k in PARAMETERS[kind]) or "no parameters"
        raise UserError(f"scoring {scoring!r}: {kind} takes {takes}, not {shown(unknown[0])}")
    if kind.startswith("approx-"):
        tau = _float(params, "tau", scoring)
        if not 0 < tau <= 1:
            raise UserError(f"scoring {scoring!r}: tau must be in (0, 1], got {tau}")
    if kind == "approx-class" or "bucket" in params:
        bucket = _float(params, "bucket", scoring)
        if not (bucket >= 1 and bucket == int(bucket)):
            raise UserError(f"scoring {scoring!r}: bucket must be a whole number of tokens >= 1, got {params['bucket']}")


def _float(params: dict[str, str], key: str, scoring: str) -> float:
    from ltrsched.policies.registry import to_float

    try:
        return to_float(params[key])
    except (KeyError, ValueError):
        raise UserError(f"scoring {scoring!r} needs a numeric {key}=") from None


def _trained(kind: str) -> Any | None:
    """The trained-predictor function for ``kind``, or None if ``ltrsched.predictors`` lacks it."""
    module, _, attr = TRAINED_PREDICTORS[kind].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def trained_available(kind: str, workload: str) -> str | None:
    """Name of the trained predictor of ``kind`` ("ltr"/"class") for a workload, or None."""
    name = TRAINED_FOR.get(workload)
    return name if name is not None and _trained(kind) is not None else None


def scoring_fingerprint(scoring: str) -> str | None:
    """For a trained-predictor scoring, the predictor's cache key (what it was trained on and how: see
    :func:`ltrsched.predictors.pretrained.cache_key`); None for the others (their scores are a function of
    the workload, the seed and this package's code)."""
    kind, params = _parse(scoring)
    if kind not in ("trained-ltr", "trained-class"):
        return None
    try:
        from ltrsched.predictors.pretrained import cache_key
    except ImportError:
        return None
    if kind == "trained-ltr":
        return cache_key("rank")
    return cache_key("class", int(_float(params, "bucket", scoring)) if "bucket" in params else 820)


def _oracle_scores(out: np.ndarray, tau: float, seed: int) -> tuple[np.ndarray, str]:
    """LTR scores from the policies package's approximate oracle (the one used everywhere), of requests in id order."""
    from ltrsched.policies import approx_oracle_scores

    return np.asarray(approx_oracle_scores(out, tau, seed), dtype=np.float64), "ltrsched.policies.approx_oracle_scores"


def attach_scores(workload: Workload, scoring: str, seed: int = 0) -> tuple[Workload, dict[str, Any]]:
    """Return the workload with the columns ``scoring`` asks for, and a record of them."""
    check_scoring(scoring)
    kind, params = _parse(scoring)
    if kind == "none":
        return workload, {}
    out = workload.df["output_tokens"].to_numpy()
    info: dict[str, Any] = {"scoring": scoring}
    # (the noise is drawn over the requests in id order and put back in their rows: per request, not per row)
    order = id_order(workload.df["request_id"].to_numpy(), len(out))
    drawn = out if order is None else out[order]
    if kind == "approx-score":
        scores, source = _oracle_scores(drawn, _float(params, "tau", scoring), seed)
        scores = in_id_order(scores, order)
        df = workload.df.with_columns(score=pl.Series(scores, dtype=pl.Float64))
        info.update(kendall_tau=approx.kendall_tau_b(-scores, out), source=source)
    elif kind == "approx-po":
        est, tau = approx.approx_lengths(drawn, _float(params, "tau", scoring), seed)
        df = workload.df.with_columns(po_estimate=pl.Series(in_id_order(est, order), dtype=pl.Float64))
        info.update(kendall_tau=tau)
    elif kind == "approx-class":
        bucket = int(_float(params, "bucket", scoring))
        pred, tau, acc = approx.approx_class_lengths(drawn, bucket, _float(params, "tau", scoring), seed)
        df = workload.df.with_columns(predicted_length=pl.Series(in_id_order(pred, order), dtype=pl.Float64))
        info.update(kendall_tau=tau, accuracy=acc, bucket=bucket)
    elif kind in ("trained-ltr", "trained-class"):
        sub = kind.split("-", 1)[1]
        fn = _trained(sub)
        if fn is None:
            raise UserError(f"scoring {scoring!r}: no trained {sub} predictor installed ({TRAINED_PREDICTORS[sub]})")
        extra = {"bucket": int(_float(params, "bucket", scoring))} if "bucket" in params else {}
        scored = fn(workload, params.get("name", ""), **extra)
        col = "score" if sub == "ltr" else "predicted_length"
        values = scored.df[col].to_numpy()
        df = scored.df
        info.update(kendall_tau=approx.kendall_tau_b(-values if sub == "ltr" else values, out))
        if sub == "class" and "bucket" in scored.meta:  # (by the classifier's own classes: 0..W-1 tokens is class 0)
            from ltrsched.predictors.predictor import bucket_accuracy

            info["accuracy"] = defined(bucket_accuracy(values, out, int(scored.meta["bucket"]),
                                                       int(scored.meta["num_classes"])))
    if "kendall_tau" in info:  # undefined (NaN) where every request has one length: None, null in summary.json
        info["kendall_tau"] = defined(info["kendall_tau"])
    return workload.with_df(df, scoring=scoring), info
