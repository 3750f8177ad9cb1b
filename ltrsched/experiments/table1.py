"""Table 1: a burst of 2,000 requests at t=0; mean and P90 latency per output token [s/token]."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ltrsched.experiments.methods import METHODS, make_spec, one_length_note, paper_tau_twin
from ltrsched.experiments.plotting import grouped_bars
from ltrsched.experiments.reference import SETTINGS as ALL_SETTINGS, paper_value
from ltrsched.experiments.runner import load_summary
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.tables import Check, Section, add_setting_note, ratio, ratio_frame, ratio_row, write_table

NAME = "table1"
TITLE = "Table 1: burst of 2,000 requests, latency per output token (s/token)"
POLICIES = ("fcfs", "mlfq", "po", "class", "ltr")
NUM_REQUESTS = 2000


def settings(quick: bool) -> tuple[str, ...]:
    """Quick: the 8B model on both workloads; full: all four settings."""
    return ALL_SETTINGS[:2] if quick else ALL_SETTINGS


def specs(quick: bool) -> list[RunSpec]:
    return [make_spec(NAME, s, p, num_requests=NUM_REQUESTS, arrival="burst")
            for s in settings(quick) for p in (*POLICIES, *paper_tau_twin(s))]


def build(out: Path, quick: bool) -> Section:
    sec = Section(NAME, TITLE)
    rows, ratios, notes = [], [], []
    for setting in settings(quick):
        ours: dict[str, dict] = {}
        for p in POLICIES:
            spec = make_spec(NAME, setting, p, num_requests=NUM_REQUESTS, arrival="burst")
            s = load_summary(out, spec)
            ours[p] = s
            add_setting_note(notes, setting, spec.note)
            if (one := one_length_note(setting, spec, s)) is not None:
                notes.append(one)
            rows.append({
                "setting": setting, "policy": METHODS[p].label,
                "ours_mean": s["latency_per_token_mean"], "paper_mean": paper_value(NAME, setting, p, "mean"),
                "ours_p90": s["latency_per_token_p90"], "paper_p90": paper_value(NAME, setting, p, "p90"),
                "kendall_tau": s.get("scoring_kendall_tau"),
            })
        for p in paper_tau_twin(setting):
            spec = make_spec(NAME, setting, p, num_requests=NUM_REQUESTS, arrival="burst")
            s = ours[p] = load_summary(out, spec)
            rows.append({
                "setting": setting, "policy": METHODS[p].label,
                "ours_mean": s["latency_per_token_mean"], "paper_mean": paper_value(NAME, setting, "ltr", "mean"),
                "ours_p90": s["latency_per_token_p90"], "paper_p90": paper_value(NAME, setting, "ltr", "p90"),
                "kendall_tau": s.get("scoring_kendall_tau"),
            })
            ours_r = ratio(s["latency_per_token_mean"], ours["fcfs"]["latency_per_token_mean"])
            paper_r = ratio(paper_value(NAME, setting, "ltr", "mean"), paper_value(NAME, setting, "fcfs", "mean"))
            ratios.append(ratio_row(setting, "LTR at the paper's tau / FCFS mean", ours_r, paper_r, False))
        for stat in ("mean", "p90"):
            for base, gated in (("fcfs", stat == "mean"), ("po", False)):
                ours_r = ratio(ours["ltr"][f"latency_per_token_{stat}"], ours[base][f"latency_per_token_{stat}"])
                paper_r = ratio(paper_value(NAME, setting, "ltr", stat), paper_value(NAME, setting, base, stat))
                ratios.append(ratio_row(setting, f"LTR/{METHODS[base].label} {stat}", ours_r, paper_r, gated))
        best = min(POLICIES, key=lambda p: ours[p]["latency_per_token_mean"])
        sec.checks.append(Check(f"{setting}: LTR has the lowest mean s/token", best == "ltr",
                                f"lowest: {METHODS[best].label}"))
        sec.checks.append(Check(
            f"{setting}: LTR beats FCFS, PO and Classification on P90 s/token",
            all(ours["ltr"]["latency_per_token_p90"] < ours[p]["latency_per_token_p90"] for p in ("fcfs", "po", "class"))))
    table = pl.DataFrame(rows)
    rt = ratio_frame(ratios)
    for r in rt.filter(pl.col("within_15pct").is_not_null()).iter_rows(named=True):
        sec.checks.append(Check(f"{r['setting']}: {r['ratio']} within ±15% of the paper's",
                                bool(r["within_15pct"]), f"ours {r['ours']:.3f} vs paper {r['paper']:.3f}"))
    tdir = out / "tables"
    sec.files += write_table(table, tdir, "table1", TITLE, notes)
    sec.files += write_table(rt, tdir, "table1_ratios", "Table 1 ratios: ours vs paper", digits=3)
    sec.tables += [("Latency per token, ours vs paper", table), ("Ratios", rt)]
    sec.notes += notes
    groups = list(settings(quick))
    series = {}
    for p in POLICIES:
        label = METHODS[p].label
        series[f"{label} (ours)"] = [r["ours_mean"] for r in rows if r["policy"] == label]
        series[f"{label} (paper)"] = [r["paper_mean"] for r in rows if r["policy"] == label]
    fig = grouped_bars(groups, series, out / "figures" / "table1.png", "mean latency (s/token)", TITLE,
                       hatched=[k for k in series if k.endswith("(paper)")])
    sec.figures.append(fig)
    sec.files.append(fig)
    return sec
