"""`reproduce`'s "real engine, real model" section (issue 14), rendered from committed results.

The paper's pipeline on a model that really answers: the served model's own output lengths as labels, a
ranker trained on them, and the policies replayed on vLLM's CPU build with real stopping (EOS). Running it
takes hours on a CPU, so `reproduce` does not: it renders ``real_model_results.json``, which
``ltrsched real-model-results`` gathers from a ``validate`` directory, a ``label-report`` and the ranker
(the README's section "A real model" has every command). No engine is needed to render it.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from ltrsched import strict_json
from ltrsched.experiments.reference import paper_value
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.tables import Check, Section, write_table

NAME = "real-model"
TITLE = "Real engine, real model: the served model's labels, its ranker, LTR vs FCFS with real stopping"
#: Committed results this section renders.
RESULTS = Path(__file__).with_name("real_model_results.json")
FORMAT = "ltrsched-real-model"
FORMAT_VERSION = 1
#: Issue 14's targets.
TAU_TARGET = 0.50
LTR_FCFS_TARGET = 0.60
STARVE_WITHIN = 0.05
SIM_RATIO_WITHIN = 0.10
#: The paper's Table 4 puts the predictor at about 1-2% of serving time.
OVERHEAD_SHARE_LIMIT = 0.02
#: Per-side metrics the results carry (a run's summary names, plus the largest max waiting time).
METRICS = ("latency_per_token_mean", "latency_per_token_p90", "ttft_mean", "ttft_p90", "e2e_latency_mean",
           "max_waiting_time_p99", "max_waiting_time_max", "makespan")


def specs(quick: bool) -> list[RunSpec]:
    """No runs: the section renders committed results."""
    return []


def load_results(path: Path = RESULTS) -> dict | None:
    """The committed results, or None when none are committed yet."""
    if not path.is_file():
        return None
    data = strict_json.loads(path.read_text(encoding="utf-8"))  # (NaN of an earlier version: None)
    if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not {FORMAT} version {FORMAT_VERSION}")
    return data


def policy_roles(policies: list[str]) -> dict[str, str | None]:
    """Which policy spec plays FCFS, LTR (trained scores) and SRTF (the starvation settings: :func:`is_starve`)."""
    def first(pred):
        return next((p for p in policies if pred(p)), None)

    return {
        "fcfs": first(lambda p: p == "fcfs"),
        "ltr": first(lambda p: p == "ltr" or (p.startswith("ltr:") and "starve" not in p)),
        "srtf": first(lambda p: p == "srtf"),
    }


def is_starve(policy: str) -> bool:
    """An LTR spec with starvation prevention (any threshold and quantum)."""
    return policy.startswith("ltr") and "starve" in policy


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not b:
        return float("nan")
    return float(a) / float(b)


def _labels_table(labels: dict) -> pl.DataFrame:
    rows = [("ranker trained on the served model's lengths", labels.get("served_ranker"), "0.52-0.64 (OPT-125M)"),
            *([(f"ranker on the served model's own hidden state (probe, layer {labels.get('probe_layer')}), trained "
                "on its lengths", labels.get("probe_ranker"), "-")] if labels.get("probe_model") is not None else []),
            ("ranker trained on ChatGPT's lengths, same prompts", labels.get("chatgpt_ranker"), "-"),
            ("the served model with another seed (ceiling)", labels.get("ceiling"), "0.74"),
            ("prompt length alone", labels.get("prompt_length"), "-")]
    return pl.DataFrame({"predictor": [r[0] for r in rows], "tau": [r[1] for r in rows], "paper": [r[2] for r in rows]},
                        schema={"predictor": pl.Utf8, "tau": pl.Float64, "paper": pl.Utf8})


def _remeasured_notes(data: dict) -> list[str]:
    """A note per case measured on another host or day than the results' own (``real-model-results --update``),
    with its commands: those replace the case's numbers the commands above gave."""
    notes = []
    for case, body in data.get("cases", {}).items():
        measured = body.get("measured") or {}
        if (measured.get("host"), measured.get("date")) in ((None, None), (data.get("host"), data.get("date"))):
            continue
        notes.append(f"Case {case}: re-measured {measured.get('date')} on {measured.get('host')} (these numbers "
                     "replace the commands' above for this case).")
        notes += [f"Command ({case}): `{c}`" for c in measured.get("commands") or []]
    return notes


def _runs_table(cases: dict) -> pl.DataFrame:
    rows = []
    for case, body in cases.items():
        for policy, sides in body["policies"].items():
            eng, sim = sides.get("engine", {}), sides.get("sim", {})
            requests = eng.get("num_requests")
            rows.append({"case": case, "policy": policy, "requests": None if requests is None else int(requests),
                         "engine s/token mean": eng.get("latency_per_token_mean"),
                         "engine s/token p90": eng.get("latency_per_token_p90"),
                         "engine TTFT mean [s]": eng.get("ttft_mean"),
                         "engine max wait [s]": eng.get("max_waiting_time_max"),
                         "sim s/token mean": sim.get("latency_per_token_mean"),
                         "sim s/token p90": sim.get("latency_per_token_p90"),
                         "capped": eng.get("num_capped"), "label mismatches": eng.get("num_label_mismatches")})
    return pl.DataFrame(rows, infer_schema_length=None)


def _starvation_check(case: str, starve: dict, ltr: dict, note: str = "", policy: str | None = None) -> Check:
    """Issue 14: LTR with starvation prevention at most 5% above LTR on the mean, with a smaller max waiting time.

    The 5% bounds what starvation prevention costs: a starve mean above LTR's by more fails, one below it
    (fewer idle requests, no cost) passes. The detail line gives the signed difference either way.
    """
    mean_rel = _ratio(starve.get("latency_per_token_mean"), ltr.get("latency_per_token_mean")) - 1
    wait_s, wait_l = starve.get("max_waiting_time_max"), ltr.get("max_waiting_time_max")
    cut = wait_s is not None and wait_l is not None and wait_s < wait_l
    which = f" ({policy})" if policy else ""
    return Check(f"{case}: LTR with starvation prevention{which} at most {STARVE_WITHIN:.0%} above LTR on the mean, cutting "
                 f"the max waiting time{note}", mean_rel <= STARVE_WITHIN and cut,
                 f"mean {mean_rel:+.1%}; max waiting {wait_s if wait_s is not None else float('nan'):.1f} s vs "
                 f"{wait_l if wait_l is not None else float('nan'):.1f} s")


def build(out: Path, quick: bool, results: Path = RESULTS) -> Section:
    sec = Section(NAME, TITLE)
    data = load_results(results)
    if data is None:
        sec.notes.append(f"No committed results ({results.name}); the README's section \"A real model\" regenerates them.")
        return sec
    labels, cases, pred = data.get("labels", {}), data.get("cases", {}), data.get("predictor")
    tables_dir = out / "tables"
    sec.notes.append(f"Model: {data.get('model')}; engine: {data.get('host')}; measured {data.get('date')}.")
    sec.notes += [f"Command: `{c}`" for c in data.get("commands", [])]
    sec.notes += _remeasured_notes(data)

    label_table = _labels_table(labels)
    ranker = data.get("ranker") or {}
    own_tau = ranker.get("held_out_tau")  # as its `train` recorded it (rankers gathered by older versions: none)
    if own_tau is not None and (isinstance(own_tau, bool) or not isinstance(own_tau, (int, float))):
        raise ValueError(f"{results}: ranker.held_out_tau must be a number, not {own_tau!r}")
    precision = ranker.get("probe_precision")
    if ranker.get("backbone") == "probe" and (own_tau is not None or labels.get("probe_ranker") is not None):
        # the LTR runs' ranker: its own tau where recorded (a bf16 probe is not the label report's float32 one)
        tau = own_tau if own_tau is not None else labels["probe_ranker"]
        which = f"probe ranker (layer {ranker.get('probe_layer', labels.get('probe_layer'))}" \
            + (f", {precision})" if precision else ")")
        if precision:
            label_table = pl.concat([label_table, pl.DataFrame(
                {"predictor": [f"the same probe in {precision}: the ranker the LTR runs used"], "tau": [float(tau)],
                 "paper": ["-"]}, schema=label_table.schema)])
        sec.notes.append(f"LTR's scores: the probe ranker on {ranker.get('hf_path')}'s hidden state after layer "
                         f"{ranker.get('probe_layer')} (`--backbone probe"
                         + (f" --probe-precision {precision}" if precision else "")
                         + "`).")
    else:
        tau, which = labels.get("served_ranker"), "ranker"
    caption = (f"Held-out Kendall tau against the served model's greedy lengths ({labels.get('num_train')} train / "
               f"{labels.get('num_eval')} eval prompts labelled)")
    sec.tables.append((caption, label_table))
    sec.files += write_table(label_table, tables_dir, "real-model-tau", caption, digits=3)
    ceiling = labels.get("ceiling")
    if tau is not None:  # the ceiling is null when the labels have no sampled run (label --sample-subset 0)
        sec.checks.append(Check(f"{which} trained on the served model's labels: held-out tau >= {TAU_TARGET:.2f}",
                                tau >= TAU_TARGET, f"{tau:.3f}; another-seed ceiling "
                                + ("not measured" if ceiling is None else f"{ceiling:.3f}")))

    if cases:
        runs = _runs_table(cases)
        sec.tables.append(("Each policy on the real engine (mean over repeats) and in the simulator", runs))
        sec.files += write_table(runs, tables_dir, "real-model-runs", "Real engine vs simulator, real model", digits=4)
    burst_ltr = cases.get("burst", {}).get("policies", {}).get(policy_roles(list(cases.get("burst", {}).get("policies", {})))["ltr"] or "", {})
    paper = _ratio(paper_value("table1", "8B ShareGPT", "ltr", "mean"), paper_value("table1", "8B ShareGPT", "fcfs", "mean"))
    ratio_rows = []
    for case, body in cases.items():
        roles = policy_roles(list(body["policies"]))
        is_burst = case == "burst" or case.startswith("burst (")  # the starvation target is a burst's
        starves = [p for p in body["policies"] if is_starve(p)]  # each setting measured gets its own check
        named = len(starves) > 1
        for starve in starves if is_burst else ():
            if roles["ltr"] is not None:
                sec.checks.append(_starvation_check(case, body["policies"][starve]["engine"],
                                                    body["policies"][roles["ltr"]]["engine"],
                                                    policy=starve if named else None))
            elif case.startswith("burst (") and burst_ltr:
                sec.checks.append(_starvation_check(case, body["policies"][starve]["engine"], burst_ltr["engine"],
                                                    " (LTR: the burst's LTR runs)", policy=starve if named else None))
        if roles["fcfs"] is None or roles["ltr"] is None:
            continue

        def metric(role, side, name, body=body, roles=roles):
            return body["policies"][roles[role]].get(side, {}).get(name) if roles[role] else None

        eng = _ratio(metric("ltr", "engine", "latency_per_token_mean"), metric("fcfs", "engine", "latency_per_token_mean"))
        sim = _ratio(metric("ltr", "sim", "latency_per_token_mean"), metric("fcfs", "sim", "latency_per_token_mean"))
        # each engine run at the profile's speed (its latency over its step-time ratio): the machine's drift out
        at_speed = _ratio(metric("ltr", "engine", "latency_per_token_mean_at_profile_speed"),
                          metric("fcfs", "engine", "latency_per_token_mean_at_profile_speed"))
        ratio_rows.append({"case": case, "LTR/FCFS engine": eng, "LTR/FCFS sim": sim, "sim/engine - 1": sim / eng - 1,
                           "LTR/FCFS engine at the profile's speed": at_speed, "sim/that - 1": sim / at_speed - 1,
                           "paper (8B ShareGPT)": paper})
        if case == "burst":
            sec.checks.append(Check(f"burst on the real engine: LTR/FCFS mean latency per token <= {LTR_FCFS_TARGET}",
                                    eng <= LTR_FCFS_TARGET, f"{eng:.3f}; paper {paper:.3f}"))
        if not (math.isnan(eng) or math.isnan(sim)):
            speed = "" if math.isnan(at_speed) else f"; engine runs at the profile's speed {at_speed:.3f}"
            sec.checks.append(Check(f"{case}: simulator's LTR/FCFS within {SIM_RATIO_WITHIN:.0%} of the real engine's",
                                    abs(sim / eng - 1) <= SIM_RATIO_WITHIN, f"sim {sim:.3f} vs engine {eng:.3f}{speed}"))
    if ratio_rows:
        ratios = pl.DataFrame(ratio_rows)
        sec.tables.append(("LTR/FCFS mean latency per token: real engine, simulator, paper", ratios))
        sec.files += write_table(ratios, tables_dir, "real-model-ratios", "LTR/FCFS, real model", digits=3)
    if pred:
        share = pred["total_s"] / pred["serving_s"]
        overhead = pl.DataFrame([{"prompts": pred["num_prompts"], "predictor [s]": pred["total_s"],
                                  "serving [s]": pred["serving_s"], "share": share}])
        caption = f"Predictor overhead: the ranker scoring the served prompts on this CPU vs the {pred['serving_case']} LTR run's makespan"
        sec.tables.append((caption, overhead))
        sec.files += write_table(overhead, tables_dir, "real-model-overhead", caption, digits=4)
        sec.checks.append(Check(f"predictor overhead below {OVERHEAD_SHARE_LIMIT:.0%} of serving time (paper: ~1-2%)",
                                share < OVERHEAD_SHARE_LIMIT, f"{share:.3%}"))
    return sec
