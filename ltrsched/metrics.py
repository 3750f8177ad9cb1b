"""Per-request and per-run serving metrics, shared by the simulator and the engine runner.

Both hosts produce a table of per-request timestamps (seconds, same clock as ``arrival_time``); this
module turns it into the metrics every report uses, so the two are computed identically.

Per request:
    ttft                 first_token_time - arrival_time [s]
    tpot                 (finish_time - first_token_time) / (served_output_tokens - 1) [s/token]; null if 1 token
    e2e_latency          finish_time - arrival_time [s]
    latency_per_token    e2e_latency / output_tokens [s/token] (the paper's main metric; output_tokens is
                         the workload's length, without any policy overhead tokens)
    max_token_gap        largest gap between two consecutive output tokens [s] (the host's column); null where the
                         request generated fewer than 2 tokens (no two tokens, no gap: 0.0 claimed a perfect stream)
    max_waiting_time     max(ttft, max_token_gap) [s] (ttft alone without a gap); NaN without a first token
    queueing_delay       first_scheduled_time - arrival_time [s]
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import polars as pl

from ltrsched.strict_json import fmt

#: Timestamp columns a host must provide (besides request_id, arrival_time, prompt_tokens, output_tokens).
TIMESTAMP_COLUMNS = ("first_scheduled_time", "first_token_time", "finish_time", "max_token_gap")
SUMMARY_METRICS = ("latency_per_token", "e2e_latency", "ttft", "tpot", "max_waiting_time", "queueing_delay")
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def _tokens_made(columns: Iterable[str]) -> pl.Expr:
    """The output tokens a request has generated [tokens], from the columns a table has: ``generated_tokens``, else
    (a table of finished requests without it) ``served_output_tokens``, else ``output_tokens``."""
    columns = set(columns)
    for name in ("generated_tokens", "served_output_tokens", "output_tokens"):
        if name in columns:
            return pl.col(name)
    raise KeyError("a table of requests needs generated_tokens, served_output_tokens or output_tokens")


def token_gap(columns: Iterable[str]) -> pl.Expr:
    """``max_token_gap`` [s] where the request generated at least two tokens, else null: the one rule for the
    simulator's and the engine's results (both hosts keep 0.0 until a second token comes)."""
    return pl.when(_tokens_made(columns) >= 2).then(pl.col("max_token_gap")).otherwise(None)


def request_metrics(df: pl.DataFrame) -> pl.DataFrame:
    """Add the derived per-request metric columns to a table of timestamps, and null ``max_token_gap`` where a
    request generated fewer than two tokens (:func:`token_gap`)."""
    served = pl.col("served_output_tokens") if "served_output_tokens" in df.columns else pl.col("output_tokens")
    ttft = pl.col("first_token_time") - pl.col("arrival_time")
    df = df.with_columns(max_token_gap=token_gap(df.columns))
    return df.with_columns(
        ttft=ttft,
        tpot=pl.when(served > 1)
        .then((pl.col("finish_time") - pl.col("first_token_time")) / (served - 1))
        .otherwise(None),
        e2e_latency=pl.col("finish_time") - pl.col("arrival_time"),
        latency_per_token=(pl.col("finish_time") - pl.col("arrival_time")) / pl.col("output_tokens"),
        # (NaN, or null, where there is no first token: max_horizontal skipped the NaN, and a request a stop time left
        # waiting had waited 0.0 s; max_horizontal skips a null gap: the TTFT alone, as max(ttft, 0.0) was)
        max_waiting_time=pl.when(ttft.is_not_nan()).then(pl.max_horizontal(ttft, pl.col("max_token_gap"))).otherwise(ttft),
        queueing_delay=pl.col("first_scheduled_time") - pl.col("arrival_time"),
    )


def summarize(requests: pl.DataFrame, metrics: Iterable[str] = SUMMARY_METRICS) -> dict[str, float | None]:
    """Run-level summary: makespan [s], throughput (req/s, output tok/s), mean and P50/P90/P99 per metric.

    Undefined values are None (``null`` in summary.json), not NaN: the makespan and throughput of no requests
    (a cluster's replica that got none), a throughput over a zero makespan. A metric no request has is absent."""
    if requests.height == 0:
        return {"num_requests": 0, "makespan": None, "throughput_rps": None, "throughput_tok_s": None}
    first = float(requests["arrival_time"].min())
    last = float(requests["finish_time"].max())
    makespan = last - first
    out: dict[str, float | None] = {
        "num_requests": requests.height,
        "makespan": makespan,
        "throughput_rps": requests.height / makespan if makespan > 0 else None,
        "throughput_tok_s": float(requests["output_tokens"].sum()) / makespan if makespan > 0 else None,
    }
    for m in metrics:
        if m not in requests.columns:
            continue
        values = requests[m].drop_nulls().to_numpy().astype(np.float64)
        values = values[~np.isnan(values)]
        if not len(values):
            continue
        out[f"{m}_mean"] = float(values.mean())
        for label, q in QUANTILES.items():
            out[f"{m}_{label}"] = float(np.quantile(values, q))
    return out


def speedup_vs_real_time(makespan: float | None, wall: float) -> float | None:
    """Simulated seconds per wall-clock second [x]; None where undefined (no makespan, or no wall time)."""
    return makespan / wall if makespan is not None and wall > 0 else None


#: Why a finished request has no value of a metric, for the line under the table (TPOT is a time between output tokens).
NO_VALUE_REASON = {"tpot": "1 output token (no time between tokens)"}


def metric_counts(requests: pl.DataFrame, metrics: Iterable[str] = SUMMARY_METRICS) -> dict[str, int]:
    """Finished requests (a finish time) with a value (not null, not NaN) of each metric, as :func:`summarize`
    counts them, for the metrics ``requests`` has; {} for a table without finish times."""
    if "finish_time" not in requests.columns:
        return {}
    done = requests.filter(pl.col("finish_time").is_not_null() & pl.col("finish_time").is_not_nan())
    return {m: int(done[m].cast(pl.Float64).fill_nan(None).count()) for m in metrics if m in done.columns}


def format_summary(summary: dict, title: str = "", counts: dict[str, int] | None = None) -> str:
    """A readable terminal table of a summary. A metric no finished request has (TPOT where every output is one
    token) is a row of ``n/a``; ``counts`` (:func:`metric_counts` of the run's requests; None: unknown) adds a line
    under the table for each metric fewer requests have than the run finished (its mean and quantiles are of those
    alone: TPOT of a mix with one-token outputs)."""
    lines = [title] if title else []
    lines.append(
        f"requests {int(summary['num_requests'])}  makespan {fmt(summary['makespan'], '.2f')} s  "
        f"throughput {fmt(summary['throughput_rps'], '.3f')} req/s, {fmt(summary['throughput_tok_s'], '.1f')} tok/s"
    )
    header = f"{'metric':<30}{'mean':>12}{'p50':>12}{'p90':>12}{'p99':>12}"
    lines.append(header)
    lines.append("-" * len(header))
    finished = int(summary["num_requests"])
    notes = []
    for m in SUMMARY_METRICS:
        if f"{m}_mean" not in summary and not (finished and counts is not None and counts.get(m) == 0):
            continue  # (no request, or the table lacks the metric)
        unit = "s/token" if m in ("latency_per_token", "tpot") else "s"
        row = f"{m + ' [' + unit + ']':<30}"
        for k in ("mean", "p50", "p90", "p99"):
            row += f"{fmt(summary.get(f'{m}_{k}'), '.4f'):>12}"
        lines.append(row)
        have = finished if counts is None else counts.get(m, finished)
        if have < finished:
            why = NO_VALUE_REASON.get(m, "no value")
            other = finished - have
            notes.append(f"{m}: n/a, every request has {why}" if not have else
                         f"{m}: over {have:,} of the {finished:,} requests; the other {other:,} "
                         f"{'has' if other == 1 else 'have'} {why}")
    return "\n".join(lines + notes)


def format_replicas(replicas: list[dict]) -> str:
    """One line per replica of a cluster run: requests, latency per token, TTFT, TPOT, steps, busy time."""
    header = (f"{'replica':>7}{'routed':>8}{'finished':>10}{'lat/tok mean':>14}{'ttft p90':>10}{'tpot mean':>11}"
              f"{'steps':>8}{'busy [s]':>10}{'peak KV':>9}")
    lines = [header, "-" * len(header)]
    for r in replicas:
        def num(key: str) -> str:
            return fmt(r.get(key), ".4f", undefined="-")

        lines.append(f"{r['replica']:>7}{r['num_routed']:>8}{r['num_finished']:>10}{num('latency_per_token_mean'):>14}"
                     f"{num('ttft_p90'):>10}{num('tpot_mean'):>11}{r['steps']:>8}{r['busy_time']:>10.1f}"
                     f"{r['peak_blocks_in_use']:>9}")
    return "\n".join(lines)
