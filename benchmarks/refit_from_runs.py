"""Fit a step-time profile to the steps of served runs (``ltrsched replay`` or ``ltrsched validate`` engine runs)
instead of, or beside, the profile's own probes. For cross-checks such as: fit on a validation's burst and 150%
cases, then re-simulate the validation (``benchmarks/resimulate_validation.py``) and read the other cases' errors;
or fit on calibration replays of other requests and validate with that profile.

The fit is ``ltrsched profile``'s (``fit_steps``) over every ``steps.parquet`` found under the PATHs (a file, or
a directory searched recursively: a replay's ``--out``, a validation's ``runs/<case>``; served runs have no
warm-up probe, so every step counts), plus ``--probes`` (a profile's ``.steps.parquet``, its warm-up probe left
out) if given; ``--probes`` repeated pools several ``ltrsched profile`` runs (engine starts), whose speeds differ
by up to ~10% on the CPU engine (VALIDATION.md). ``--drop-after-prefill K`` leaves out the decode-only steps among the K steps after each step
with prompt tokens (they run slow on the CPU engine after a large prefill). The profile written is ``--base`` with its fitted fields replaced (tables, attention
coefficients, overhead per step); KV sizes and the model stay the base's.

    python benchmarks/refit_from_runs.py VAL/runs/burst VAL/runs/poisson@7.62_s --base cpu-llama-tiny \\
        --out fit-burst-150.json [--probes cpu-llama-tiny.steps.parquet] [--drop-after-prefill 10]
    python benchmarks/refit_from_runs.py --probes cpu-llama-tiny.steps.parquet --drop-after-prefill 10 \\
        --base cpu-llama-tiny --out probes-k10.json
    python benchmarks/refit_from_runs.py --probes P1.steps.parquet --contexts 64,512,2048 --max-decode-steps 32 \\
        --base P1.json --out P1-as-P0.json   # the steps a smaller probe plan would have measured in that run
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import polars as pl

from ltrsched.errors import UserError
from ltrsched.sim.profiles import load_profile
from ltrsched.sim.profiles.io import save_profile
from ltrsched.validation.profiling import (PROBE_GAP_S, decode_steps_so_far, fit_steps,
                                          without_decodes_after_prefill)


def served_steps(paths: list[Path]) -> list[pl.DataFrame]:
    """The engine step logs under ``paths`` (``steps.parquet`` files, or directories holding them at any depth;
    a validation's simulated runs, ``sim/``, have none)."""
    logs = []
    for path in paths:
        found = [path] if path.is_file() else sorted(path.rglob("steps.parquet"))
        if not found:
            raise UserError(f"{path}: no steps.parquet (an engine run's step log) there")
        for f in found:
            try:
                logs.append(pl.read_parquet(f))
            except (OSError, pl.exceptions.PolarsError) as exc:
                raise UserError(f"{f}: not a readable step log ({str(exc).splitlines()[0]})") from None
    return logs


def probe_subset(log: pl.DataFrame, contexts: tuple[int, ...] | None, max_decode_steps: int | None) -> pl.DataFrame:
    """A profile run's steps restricted to the decode probes of prompt lengths near ``contexts`` (within a quarter
    of each, or 8 tokens; prefill probes are kept) and to each probe's first ``max_decode_steps`` decode steps
    (steps with prompt tokens are kept): what a smaller probe plan would have measured, from the same run."""
    if contexts:
        probe = (pl.col("start") // PROBE_GAP_S).cast(pl.Int64)
        decode = (pl.col("num_prefill_tokens") == 0) & (pl.col("num_decode_seqs") > 0)
        per_seq = pl.col("decode_context_tokens") / pl.col("num_decode_seqs")
        log = log.with_columns(_len=per_seq.filter(decode).first().over(probe))  # (rows keep their order)
        near = pl.lit(False)
        for c in contexts:
            near = near | ((pl.col("_len") - c).abs() <= max(8.0, 0.25 * c))
        log = log.filter(pl.col("_len").is_null() | near).drop("_len")
    if max_decode_steps is not None:
        log = log.filter((pl.col("num_prefill_tokens") > 0) | (decode_steps_so_far() <= max_decode_steps))
    return log


def refit(paths: list[Path], base: str, probes: list[Path] | None, drop_after: int = 0,
          contexts: tuple[int, ...] | None = None, max_decode_steps: int | None = None):
    """The profile ``base`` with its step-time terms fitted to the served steps under ``paths`` (and
    ``probes``), less the decode steps ``drop_after`` steps after a prefill; and the fit."""
    logs = served_steps(paths)
    for probe_steps in probes or ():  # (a profile's clock starts the probes at PROBE_GAP_S; a served run's at 0)
        logs += [probe_subset(log.filter(pl.col("start") >= PROBE_GAP_S), contexts, max_decode_steps)
                 for log in served_steps([probe_steps])]
    if not logs:
        raise UserError("no step logs: give PATHs, --probes, or both")
    if drop_after:
        logs = [without_decodes_after_prefill(log, drop_after) for log in logs]
    fit = fit_steps(pl.concat(logs, how="diagonal_relaxed"), warmup_s=0.0)
    prof = load_profile(base)
    what = " and ".join(part for part in (", ".join(map(str, paths)),
                                          f"the probes {', '.join(map(str, probes))}" if probes else "") if part)
    return dataclasses.replace(
        prof, name=f"{prof.name}-refit", description=f"{prof.name} refitted to the engine steps of {what}",
        non_attention_num_tokens=tuple(float(k) for k in fit.token_knots), non_attention_s=fit.non_attention_s,
        sampling_num_seqs=tuple(float(k) for k in fit.seq_knots), sampling_s=fit.sampling_s,
        decode_attention_s_per_kv_token=fit.decode_attention_s_per_kv_token,
        prefill_attention_s_per_pair=fit.prefill_attention_s_per_pair, overhead_s_per_step=fit.overhead_s_per_step,
        provenance={**prof.provenance, "refit": {"command": " ".join(["python", *sys.argv]), "fit": fit.summary()}},
    ), fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", type=Path, nargs="*", help="steps.parquet files or directories holding them")
    ap.add_argument("--base", required=True, help="profile (built-in name or JSON) whose other fields are kept")
    ap.add_argument("--probes", type=Path, action="append", default=None,
                    help="a profile's steps.parquet to fit beside the runs; repeat it to pool several profile runs")
    ap.add_argument("--drop-after-prefill", type=int, default=0, metavar="K",
                    help="leave out decode-only steps among the K steps after each step with prompt tokens")
    ap.add_argument("--contexts", default=None,
                    help="--probes: keep only the decode probes of these prompt lengths [tokens], separated by ','")
    ap.add_argument("--max-decode-steps", type=int, default=None,
                    help="--probes: keep only each probe's first N decode steps")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        if args.out.exists():
            raise UserError(f"{args.out} exists: give a new file")
        try:
            contexts = tuple(int(c) for c in args.contexts.split(",") if c.strip()) if args.contexts else None
        except ValueError:
            raise UserError(f"--contexts must be integers separated by ',', got {args.contexts!r}") from None
        prof, fit = refit(args.paths, args.base, args.probes, args.drop_after_prefill, contexts, args.max_decode_steps)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    save_profile(prof, args.out)
    s = fit.summary()
    print(f"wrote {args.out}: {fit.num_samples} steps fitted, median error {s['median_rel_error']:.1%}, "
          f"P90 {s['p90_rel_error']:.1%}")


if __name__ == "__main__":
    main()
