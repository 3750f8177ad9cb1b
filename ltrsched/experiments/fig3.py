"""Figure 3: Poisson arrivals for 60 s at 2..64 req/s; mean latency per token (and TTFT, TPOT) per policy."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ltrsched.experiments.methods import METHODS, paper_tau_twin, poisson_window_spec
from ltrsched.experiments.plotting import line_panels
from ltrsched.experiments.reference import SETTINGS as ALL_SETTINGS, paper_value
from ltrsched.experiments.runner import load_summary
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.tables import Check, Section, add_setting_note, write_table

NAME = "fig3"
TITLE = "Figure 3: Poisson arrivals for 60 s, mean latency per token vs rate"
POLICIES = ("fcfs", "mlfq", "po", "class", "ltr")
DURATION_S = 60.0


def rates(quick: bool) -> list[float]:
    return [2, 8, 32] if quick else list(paper_value("figure3", "rates_req_s"))


def settings(quick: bool) -> tuple[str, ...]:
    return ALL_SETTINGS[:1] if quick else ALL_SETTINGS


def _spec(setting: str, policy: str, rate: float) -> RunSpec:
    return poisson_window_spec(NAME, setting, policy, rate, DURATION_S)


def policies(setting: str) -> tuple[str, ...]:
    return (*POLICIES, *paper_tau_twin(setting))


def specs(quick: bool) -> list[RunSpec]:
    return [_spec(s, p, r) for s in settings(quick) for p in policies(s) for r in rates(quick)]


def build(out: Path, quick: bool) -> Section:
    sec = Section(NAME, TITLE)
    rows = []
    for setting in settings(quick):
        for p in policies(setting):
            for r in rates(quick):
                spec = _spec(setting, p, r)
                s = load_summary(out, spec)
                rows.append({"setting": setting, "policy": METHODS[p].label, "rate": float(r),
                             "requests": s["num_requests"], "latency_per_token_mean": s["latency_per_token_mean"],
                             "ttft_mean": s["ttft_mean"], "tpot_mean": s.get("tpot_mean")})
                add_setting_note(sec.notes, setting, spec.note)
    table = pl.DataFrame(rows)
    top = max(rates(quick))
    for setting in settings(quick):
        at_top = table.filter((pl.col("setting") == setting) & (pl.col("rate") == top))
        get = {r["policy"]: r["latency_per_token_mean"] for r in at_top.iter_rows(named=True)}
        twin = METHODS["ltr-paper-tau"].label
        ours = {k: v for k, v in get.items() if k != twin}
        speedup = get["FCFS"] / get["LTR"]
        best = min(ours, key=ours.get)
        sec.checks.append(Check(f"{setting}: LTR has the lowest mean s/token at {top:g} req/s",
                                best == "LTR", f"LTR {get['LTR']:.3f}, FCFS {get['FCFS']:.3f}"
                                + ("" if best == "LTR" else f", lowest: {best} {get[best]:.3f}")))
        if twin in get:  # like for like: LTR and PO both at the paper's tau
            rest = {k: v for k, v in get.items() if k != "LTR"}
            best = min(rest, key=rest.get)
            sec.checks.append(Check(f"{setting}: LTR at the paper's tau has the lowest mean s/token at {top:g} req/s",
                                    best == twin, f"{get[twin]:.3f}" + ("" if best == twin else f"; lowest: {best} {get[best]:.3f}")))
        sec.notes.append(f"{setting}: at {top:g} req/s LTR is {speedup:.2f}x lower than FCFS "
                         f"(paper: up to {paper_value('figure3', 'ltr_over_fcfs_max_speedup_at_64')}x at 64 req/s) "
                         f"and {get['PO'] / get['LTR']:.2f}x lower than PO (paper: 1.5-1.9x)")
    sec.files += write_table(table, out / "tables", NAME, TITLE, sec.notes, digits=3)
    sec.tables.append(("Mean latency per token, TTFT and TPOT by rate", table))
    for metric, ylabel in (("latency_per_token_mean", "mean latency (s/token)"), ("ttft_mean", "mean TTFT (s)")):
        panels = {}
        for setting in settings(quick):
            sub = table.filter(pl.col("setting") == setting)
            panels[setting] = {label: (sub.filter(pl.col("policy") == label)["rate"].to_list(),
                                       sub.filter(pl.col("policy") == label)[metric].to_list())
                               for label in (METHODS[p].label for p in policies(setting))}
        fig = line_panels(panels, out / "figures" / f"fig3_{metric.split('_')[0]}.png", "request rate (req/s)", ylabel,
                          title=TITLE)
        sec.figures.append(fig)
        sec.files.append(fig)
    return sec
