"""Figures 4-5: LTR vs LTR with starvation prevention (T=200, Q=10) vs FCFS, 70B, rates 2..32 req/s:
mean max waiting time and mean latency per token."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ltrsched.experiments.methods import METHODS, poisson_window_spec
from ltrsched.experiments.plotting import line_panels
from ltrsched.experiments.reference import paper_value
from ltrsched.experiments.runner import load_summary
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.tables import Check, Section, write_table

NAME = "fig4-5"
TITLE = "Figures 4-5: starvation prevention, 70B, Poisson arrivals for 60 s"
POLICIES = ("fcfs", "ltr", "ltr-sp")
SETTINGS = ("70B ShareGPT", "70B LMSYS")
DURATION_S = 60.0


def rates(quick: bool) -> list[float]:
    return [4, 16] if quick else list(paper_value("figures4_5", "rates_req_s"))


def _spec(setting: str, policy: str, rate: float) -> RunSpec:
    return poisson_window_spec(NAME, setting, policy, rate, DURATION_S)


def specs(quick: bool) -> list[RunSpec]:
    return [_spec(s, p, r) for s in SETTINGS for p in POLICIES for r in rates(quick)]


def build(out: Path, quick: bool) -> Section:
    sec = Section(NAME, TITLE)
    rows = []
    for setting in SETTINGS:
        for r in rates(quick):
            got = {p: load_summary(out, _spec(setting, p, r)) for p in POLICIES}
            for p in POLICIES:
                rows.append({"setting": setting, "rate": float(r), "policy": METHODS[p].label,
                             "max_waiting_time_mean": got[p]["max_waiting_time_mean"],
                             "latency_per_token_mean": got[p]["latency_per_token_mean"]})
            cut = got["ltr"]["max_waiting_time_mean"] / got["ltr-sp"]["max_waiting_time_mean"]
            cost = got["ltr-sp"]["latency_per_token_mean"] / got["ltr"]["latency_per_token_mean"] - 1
            rows[-1]["wait_cut_vs_ltr"] = cut
            rows[-1]["latency_cost_vs_ltr"] = cost
        note = _spec(setting, "ltr", rates(quick)[0]).note
        if note:
            sec.notes.append(f"{setting}: {note}")
    table = pl.DataFrame(rows)
    sp = table.filter(pl.col("policy") == METHODS["ltr-sp"].label)
    for setting in SETTINGS:
        sub = sp.filter(pl.col("setting") == setting)
        best = float(sub["wait_cut_vs_ltr"].max())
        worst_cost = float(sub["latency_cost_vs_ltr"].max())
        dataset = setting.split(" ")[1]
        sec.checks.append(Check(f"{setting}: starvation prevention cuts mean max waiting time (best {best:.2f}x; "
                                f"paper up to {paper_value('figures4_5', 'max_waiting_time_reduction_vs_ltr', dataset)}x)",
                                best > 1.0))
        sec.checks.append(Check(f"{setting}: its latency cost stays under 30% (worst {worst_cost:+.1%})",
                                worst_cost < paper_value("figures4_5", "latency_cost_all_cases")))
    sec.files += write_table(table, out / "tables", "fig4_5", TITLE, sec.notes, digits=3)
    sec.tables.append(("Max waiting time and latency per token by rate", table))
    for metric, ylabel, stem in (("max_waiting_time_mean", "mean max waiting time (s)", "fig4_max_wait"),
                                 ("latency_per_token_mean", "mean latency (s/token)", "fig5_latency")):
        panels = {s: {METHODS[p].label: (table.filter((pl.col("setting") == s) & (pl.col("policy") == METHODS[p].label))["rate"].to_list(),
                                         table.filter((pl.col("setting") == s) & (pl.col("policy") == METHODS[p].label))[metric].to_list())
                      for p in POLICIES} for s in SETTINGS}
        fig = line_panels(panels, out / "figures" / f"{stem}.png", "request rate (req/s)", ylabel, title=TITLE)
        sec.figures.append(fig)
        sec.files.append(fig)
    return sec
