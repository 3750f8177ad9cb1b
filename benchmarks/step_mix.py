"""Where a profile's step times go wrong, by step kind, for a profile's own probe steps and for served runs.

For the step logs (``steps.parquet``) under each PATH (a file, or a directory searched recursively) and for the
profile's probe steps (``--probes``), prints: per decode-only batch size and per context bin (tokens per
sequence, batches of 2-8), the measured time over the profile's prediction (time-weighted) and the share of the
logs' time; and the median duration of decode-only steps by how many steps came since the last step with prompt
tokens (decode steps right after a large prefill run slow on the CPU engine). Steps timed back to back only.
With several profile runs (several ``--probes``, or one from ``ltrsched profile --runs K``), also the median duration of each decode probe cell (batch, context,
decode steps 6-32 of the probe) in each run: how far two runs of the same probes differ.

    python benchmarks/step_mix.py --profile cpu-llama-tiny --probes cpu-llama-tiny.steps.parquet \\
        val/runs/poisson@2.54_s
    python benchmarks/step_mix.py --profile P1.json --probes P0.steps.parquet --probes P1.steps.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

from ltrsched.sim.profiles import load_profile
from ltrsched.validation.profiling import PROBE_GAP_S, decode_steps_so_far, steps_since_prefill
from ltrsched.validation.step_time_ratio import back_to_back, predicted_step_times

BATCHES = (1, 2, 3, 4, 6, 8, 12, 16, 32)
CONTEXT_BINS = ((1, 100), (100, 400), (400, 800), (800, 4096))
SINCE_BINS = ((1, 2), (3, 5), (6, 10), (11, 20), (21, 40), (41, None))


def _with_since_prefill(log: pl.DataFrame) -> pl.DataFrame:
    """``since``: steps since the last step with prompt tokens (0 for that step), within one log."""
    return log.with_columns(since=steps_since_prefill())


def load_logs(paths: list[Path], probes: list[Path]) -> dict[str, pl.DataFrame]:
    logs = {}
    for path in probes:
        try:
            log = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            print(f"error: {path}: not a readable step log ({str(exc).splitlines()[0]})", file=sys.stderr)
            sys.exit(2)
        # `ltrsched profile --runs K` pools K engine starts in one file, told apart by its `run` column
        parts = log.partition_by("run", maintain_order=True, include_key=False) if "run" in log.columns else [log]
        for i, part in enumerate(parts):
            label = f"probes {path}" + (f" run {i}" if len(parts) > 1 else "")
            logs[label] = _with_since_prefill(part).filter(pl.col("start") >= PROBE_GAP_S)
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob("steps.parquet"))
        if not files:
            print(f"error: {path}: no steps.parquet there", file=sys.stderr)
            sys.exit(2)
        logs[str(path)] = pl.concat([_with_since_prefill(pl.read_parquet(f)) for f in files], how="diagonal_relaxed")
    return logs


def report(name: str, log: pl.DataFrame, profile) -> None:
    log = back_to_back(log)
    log = log.with_columns(pred=pl.Series(predicted_step_times(log, profile)))
    total = float(log["cycle"].sum())
    decode = log.filter(pl.col("num_prefill_tokens") == 0)
    print(f"== {name}: {log.height:,} steps, {total:.1f} s")

    def line(label, part):
        if part.height:
            print(f"  {label:34s} steps {part.height:7,d}  share {part['cycle'].sum() / total:6.1%}  "
                  f"measured/profile {part['cycle'].sum() / part['pred'].sum():.3f}")

    for b in BATCHES:
        line(f"decode-only, {b} seqs", decode.filter(pl.col("num_decode_seqs") == b))
    per_seq = pl.col("decode_context_tokens") / pl.col("num_decode_seqs")
    small = decode.filter(pl.col("num_decode_seqs").is_between(2, 8))
    for lo, hi in CONTEXT_BINS:
        line(f"decode-only, 2-8 seqs, {lo}-{hi} tok/seq", small.filter(per_seq.is_between(lo, hi, closed="left")))
    line("with prompt tokens", log.filter(pl.col("num_prefill_tokens") > 0))
    for b in (2, 4, 8):
        cells = []
        for lo, hi in SINCE_BINS:
            part = decode.filter(pl.col("num_decode_seqs") == b, pl.col("since") >= lo,
                                 pl.col("since") <= (hi if hi is not None else 1 << 40))
            if part.height >= 5:
                cells.append(f"{lo}-{hi or ''}: {np.median(part['duration'].to_numpy()) * 1e3:.2f} ms "
                             f"({part.height})")
        if cells:
            print(f"  {b} seqs, median by steps since a prefill: " + ", ".join(cells))


def probe_cells(runs: dict[str, pl.DataFrame]) -> None:
    """Median duration [ms] of each decode probe cell in each profile run (decode steps 6-32 of a probe)."""
    cells = {}
    for name, log in runs.items():
        decode = (pl.col("num_prefill_tokens") == 0) & (pl.col("num_decode_seqs") > 0)
        log = log.filter(decode & decode_steps_so_far().is_between(6, 32))
        for b in (1, 2, 4, 8, 16, 32, 64):
            for lo, hi in ((60, 100), (180, 260), (500, 550)):
                part = log.filter(pl.col("num_decode_seqs") == b,
                                  (pl.col("decode_context_tokens") / b).is_between(lo, hi))
                if part.height:
                    cells.setdefault((b, lo, hi), {})[name] = (np.median(part["duration"].to_numpy()) * 1e3,
                                                              part.height)
    print("== decode probe cells, median duration [ms] (steps) per profile run: " + " | ".join(runs))
    for (b, lo, hi), by_run in sorted(cells.items()):
        print(f"  {b:3d} seqs, {lo}-{hi} tok/seq: " + " | ".join(
            f"{by_run[n][0]:.2f} ({by_run[n][1]})" if n in by_run else "-" for n in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", type=Path, nargs="*", help="steps.parquet files or directories holding them")
    ap.add_argument("--profile", required=True, help="profile (built-in name or JSON) to predict steps with")
    ap.add_argument("--probes", type=Path, action="append", default=[],
                    help="a profile run's .steps.parquet (repeat it for several runs)")
    args = ap.parse_args()
    profile = load_profile(args.profile)
    logs = load_logs(args.paths, args.probes)
    for name, log in logs.items():
        report(name, log, profile)
    runs = {name: log for name, log in logs.items() if name.startswith("probes ")}
    if len(runs) > 1:
        probe_cells(runs)


if __name__ == "__main__":
    main()
