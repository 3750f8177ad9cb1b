"""Table 3: 70B ablation: oracle, LTR, classification at bucket widths 820/100/10/1, PO. Predictor accuracy
and Kendall tau, mean latency per token (burst of 2,000), synthetic data generation time to 1,000."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ltrsched.experiments import table2
from ltrsched.experiments.methods import METHODS, make_spec, one_length_note
from ltrsched.experiments.reference import paper_value
from ltrsched.experiments.runner import load_summary
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.tables import Check, Section, add_setting_note, write_table

NAME = "table3"
TITLE = "Table 3: 70B ablation: predictor quality vs latency and synthetic data generation"
SETTINGS = ("70B ShareGPT", "70B LMSYS")
METHOD_KEYS = ("oracle", "ltr", "class", "class-100", "class-10", "class-1", "po")
REFERENCE_KEY = {"class": "class-820"}


def _latency(setting: str, method: str) -> RunSpec:
    return make_spec(NAME, setting, method, num_requests=2000, arrival="burst")


def specs(quick: bool) -> list[RunSpec]:
    return [s for setting in SETTINGS for m in METHOD_KEYS
            for s in (_latency(setting, m), table2.spec(NAME, setting, m))]


def build(out: Path, quick: bool) -> Section:
    sec = Section(NAME, TITLE)
    rows = []
    for setting in SETTINGS:
        dataset = setting.split(" ")[1]
        lat = {}
        for m in METHOD_KEYS:
            ref = REFERENCE_KEY.get(m, m)
            spec = _latency(setting, m)
            s = lat[m] = load_summary(out, spec)
            sdg = load_summary(out, table2.spec(NAME, setting, m))
            t1000 = sdg["time_to_1000_finished"]
            rows.append({
                "dataset": dataset, "method": METHODS[m].label,
                "ours_accuracy": s.get("scoring_accuracy"), "paper_accuracy": paper_value(NAME, dataset, ref, "accuracy"),
                "ours_tau": s.get("scoring_kendall_tau"), "paper_tau": paper_value(NAME, dataset, ref, "kendall_tau"),
                "ours_latency": s["latency_per_token_mean"], "paper_latency": paper_value(NAME, dataset, ref, "latency_mean"),
                "ours_sdg_1000_s": t1000,  # None: fewer than 1,000 finished
                "paper_sdg_1000_s": paper_value(NAME, dataset, ref, "sdg_time_to_1000_s"),
            })
            add_setting_note(sec.notes, setting, spec.note)
            if (one := one_length_note(setting, spec, s)) is not None:
                sec.notes.append(one)
        best = min(("ltr", "class", "class-100", "class-10", "class-1", "po"), key=lambda k: lat[k]["latency_per_token_mean"])
        sec.checks.append(Check(f"{setting}: LTR has the lowest latency among the non-oracle predictors",
                                best == "ltr", f"lowest: {METHODS[best].label}"))
        sec.checks.append(Check(f"{setting}: the oracle beats LTR", lat["oracle"]["latency_per_token_mean"]
                                < lat["ltr"]["latency_per_token_mean"]))
    sec.notes.append("Accuracy is the share of requests whose predicted bucket is the true one; '-' where the "
                     f"method has no buckets. SDG: ShareGPT over {table2.PROMPTS['sharegpt']:,} prompts, LMSYS-like "
                     f"over 10,000; '-' = fewer than 1,000 finished within {table2.HORIZON_S:g} s (paper: '>600').")
    table = pl.DataFrame(rows)
    sec.files += write_table(table, out / "tables", NAME, TITLE, sec.notes)
    sec.tables.append(("Ablation", table))
    return sec
