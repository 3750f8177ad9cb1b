"""Table 4: predictor overhead vs overall and prefill time for 1,000 requests.

Overall and prefill time come from a simulated LTR burst of 1,000 requests (prefill time = each step's
duration apportioned to its prefill tokens). Predictor time is *measured* on this machine's CPU: the
default ranker scoring 1,000 real ShareGPT prompts in lists of 32 (LMSYS-like has no text, so its row
reuses those prompts: the n-gram predictor's cost depends on prompt length only mildly).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ltrsched.experiments.methods import make_spec
from ltrsched.experiments.reference import SETTINGS as ALL_SETTINGS, paper_value
from ltrsched.experiments.runner import load_summary
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.tables import Check, Section, write_table

NAME = "table4"
TITLE = "Table 4: predictor overhead for 1,000 requests"
NUM_REQUESTS = 1000


def _spec(setting: str) -> RunSpec:
    return make_spec(NAME, setting, "ltr", num_requests=NUM_REQUESTS, arrival="burst", record_steps=True)


def specs(quick: bool) -> list[RunSpec]:
    return [_spec(s) for s in ALL_SETTINGS]


def predictor_seconds() -> float:
    """Measured CPU time of the default ShareGPT ranker on 1,000 prompts, in lists of 32 [s]."""
    from ltrsched.predictors.data import texts_of
    from ltrsched.predictors.overhead import measure_overhead
    from ltrsched.predictors.pretrained import sharegpt_predictor
    from ltrsched.workloads import load_workload

    prompts = texts_of(load_workload("sharegpt", num_requests=NUM_REQUESTS, seed=0))
    return measure_overhead(sharegpt_predictor("rank"), prompts, batch_size=32)["total_s"]


def build(out: Path, quick: bool) -> Section:
    sec = Section(NAME, TITLE)
    pred_s = predictor_seconds()
    rows = []
    for setting in ALL_SETTINGS:
        s = load_summary(out, _spec(setting))
        overall = s["makespan"]
        rows.append({"setting": setting, "ours_overall_s": overall, "paper_overall_s": paper_value(NAME, setting, "overall_s"),
                     "ours_prefill_s": s["prefill_time_s"], "paper_prefill_s": paper_value(NAME, setting, "prefill_s"),
                     "ours_predictor_s": pred_s, "paper_predictor_s": paper_value(NAME, setting, "predictor_s"),
                     "ours_overhead_pct": 100 * pred_s / overall, "paper_overhead_pct": paper_value(NAME, setting, "overhead_pct")})
        sec.checks.append(Check(f"{setting}: predictor overhead below the paper's ~1-2% of serving time",
                                100 * pred_s / overall < 2.0, f"{100 * pred_s / overall:.3f}%"))
    sec.notes.append("Predictor: our hashed n-gram ranker on this machine's CPU (the paper: OPT-125M/350M on the GPU).")
    table = pl.DataFrame(rows)
    sec.files += write_table(table, out / "tables", NAME, TITLE, sec.notes, digits=3)
    sec.tables.append(("Overhead", table))
    return sec
