"""Table 2: synthetic data generation: a burst of 10,000 prompts; time until 1,000 have finished and
how many finish within 300 s (FCFS, Classification, LTR)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ltrsched.experiments.methods import METHODS, SETTINGS as SETTING_MAP, make_spec
from ltrsched.experiments.reference import SETTINGS as ALL_SETTINGS, paper_value
from ltrsched.experiments.runner import load_summary
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.tables import Check, Section, add_setting_note, ratio, write_table
from ltrsched.workloads.selection import EVAL_SIZE

NAME = "table2"
TITLE = "Table 2: synthetic data generation, time to 1,000 finished samples and samples finished in 300 s"
POLICIES = ("fcfs", "class", "ltr")
HORIZON_S = 700.0  # simulated horizon: past the paper's largest time-to-1000 of interest (and 300 s)
PROMPTS = {"sharegpt": EVAL_SIZE}  # the whole ShareGPT eval split (the paper: 10,000); synthetic: 10,000


def num_prompts(setting: str) -> int:
    return PROMPTS.get(SETTING_MAP[setting][1], 10_000)


def spec(experiment: str, setting: str, policy: str) -> RunSpec:
    return make_spec(experiment, setting, policy, num_requests=num_prompts(setting), arrival="burst",
                     stop_time=HORIZON_S)


def specs(quick: bool) -> list[RunSpec]:
    return [spec(NAME, s, p) for s in ALL_SETTINGS for p in POLICIES]


def build(out: Path, quick: bool) -> Section:
    sec = Section(NAME, TITLE)
    rows = []
    for setting in ALL_SETTINGS:
        got = {}
        for p in POLICIES:
            sp = spec(NAME, setting, p)
            s = got[p] = load_summary(out, sp)
            rows.append({"setting": setting, "policy": METHODS[p].label, "prompts": num_prompts(setting),
                         "ours_time_to_1000_s": s["time_to_1000_finished"],
                         "paper_time_to_1000_s": paper_value(NAME, setting, p, "time_to_1000_s"),
                         "ours_finished_in_300s": s["finished_within_300s"],
                         "paper_finished_in_300s": paper_value(NAME, setting, p, "finished_in_300s")})
            add_setting_note(sec.notes, setting, sp.note)
        ours_r = ratio(got["fcfs"]["time_to_1000_finished"], got["ltr"]["time_to_1000_finished"])
        paper_r = ratio(paper_value(NAME, setting, "fcfs", "time_to_1000_s"), paper_value(NAME, setting, "ltr", "time_to_1000_s"))
        rows.append({"setting": setting, "policy": "speedup FCFS/LTR", "prompts": None,
                     "ours_time_to_1000_s": ours_r, "paper_time_to_1000_s": paper_r,
                     "ours_finished_in_300s": None, "paper_finished_in_300s": None})
        reached = {p: got[p]["time_to_1000_finished"] for p in POLICIES}  # None: fewer than 1,000 finished
        sec.checks.append(Check(f"{setting}: LTR reaches 1,000 samples first and finishes the most in 300 s",
                                reached["ltr"] is not None
                                and reached["ltr"] <= min(t for t in reached.values() if t is not None)
                                and got["ltr"]["finished_within_300s"] >= max(got[p]["finished_within_300s"] for p in POLICIES),
                                f"FCFS/LTR time-to-1000 ours {ours_r:.2f}x, paper {paper_r:.2f}x"))
    sec.notes.append(f"Simulated horizon {HORIZON_S:g} s; ShareGPT settings use the {PROMPTS['sharegpt']:,} prompts "
                     "of our eval split (the paper: 10,000).")
    table = pl.DataFrame(rows)
    sec.files += write_table(table, out / "tables", NAME, TITLE, sec.notes)
    sec.tables.append(("Synthetic data generation", table))
    return sec
