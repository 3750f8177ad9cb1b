"""``ltrsched real-model-results``: gather a real-model validation into the results `reproduce` renders.

Reads a ``validate`` directory (each case's engine repeats and simulator run per policy), the
``label-report`` JSON (held-out tau of the rankers, the ceiling, the learning curve) and the trained ranker
(its CPU time to score the served prompts, for the predictor's share of serving time), and writes one
small JSON (:mod:`ltrsched.experiments.real_model`).

``--update`` re-measures some cases of committed results: the cases the given directories hold replace the
same-named ones, the others stay, and each re-measured case carries its own host, date and commands
(``measured``), which the section names beside it.
"""

from __future__ import annotations

import math

import time
from pathlib import Path

import click
import numpy as np

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.experiments.real_model import FORMAT, FORMAT_VERSION, METRICS, RESULTS, policy_roles
from ltrsched.names import shown_path
from ltrsched.outputs import OutFile

#: Engine-only counts copied from an engine run's summary (real stopping).
ENGINE_COUNTS = ("num_requests", "num_capped", "num_label_mismatches", "num_finished", "num_preemptions",
                 "mismatched_steps")


def _read_json(path: Path) -> dict:
    try:
        return strict_json.loads(path.read_text(encoding="utf-8"))  # (NaN of an earlier version: None)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


#: What ``label-report``'s report.json holds that the rendered section reads.
LABEL_REPORT_KEYS = ("model", "num_train", "num_eval", "served_ranker", "chatgpt_ranker", "ceiling", "prompt_length")


def read_label_report(path: Path) -> dict:
    """``label-report``'s report.json; one-line :class:`UserError` for any other JSON."""
    doc = _read_json(path)
    missing = [k for k in LABEL_REPORT_KEYS if k not in doc] if isinstance(doc, dict) else list(LABEL_REPORT_KEYS)
    if missing:
        raise UserError(f"{path} is not a report.json of `ltrsched label-report` (no {', '.join(missing)})")
    bad = [k for k in ("served_ranker", "chatgpt_ranker", "ceiling", "prompt_length", "probe_ranker")
           if doc.get(k) is not None and (isinstance(doc[k], bool) or not isinstance(doc[k], (int, float)))]
    if bad:
        raise UserError(f"{path}: {bad[0]} must be a Kendall tau (a number or null), got {doc[bad[0]]!r}")
    return doc


def side_metrics(run_dir: Path) -> tuple[dict, dict]:
    """One run's metrics (:data:`METRICS`, the engine counts) and its meta, from summary.json and
    requests.parquet (the largest max waiting time is not in the summary)."""
    import polars as pl

    path = run_dir / "summary.json"
    doc = _read_json(path)
    summary, meta = (doc.get("summary", {}), doc.get("meta", {})) if isinstance(doc, dict) else (None, None)
    if not (isinstance(summary, dict) and isinstance(meta, dict)):
        raise UserError(f"{path} is not a run's summary (an object with 'summary' and 'meta' objects)")
    got = {m: summary[m] for m in (*METRICS, *ENGINE_COUNTS) if m in summary}
    bad = next((k for k, v in got.items() if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))), None)
    if bad is not None:
        raise UserError(f"{path}: {bad} must be a number, got {got[bad]!r}")
    requests = run_dir / "requests.parquet"
    if requests.is_file():
        try:
            wait = pl.read_parquet(requests, columns=["max_waiting_time"])["max_waiting_time"].cast(pl.Float64)
        except Exception as exc:  # damaged, not parquet, no such column
            raise UserError(f"cannot read {requests}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        got["max_waiting_time_max"] = float(wait.max()) if wait.len() and wait.null_count() < wait.len() else None
    return got, meta


def step_time_ratios(directory: Path) -> dict[tuple[str, str, int], float]:
    """validate's ``step_time_ratio.csv`` (each engine run's step time over the profile's for the same steps)
    keyed by the run's directory names (case, policy) and repeat; empty when the directory has none."""
    import polars as pl

    path = directory / "step_time_ratio.csv"
    if not path.is_file():
        return {}
    try:
        table = pl.read_csv(path, schema_overrides={"case": pl.Utf8, "policy": pl.Utf8, "repeat": pl.Int64,
                                                    "step_time_ratio": pl.Float64})
        rows = table.select("case", "policy", "repeat", "step_time_ratio").iter_rows()
        return {(case.replace("/", "_"), policy.replace(":", "_").replace(",", "_"), repeat): ratio
                for case, policy, repeat, ratio in rows
                if None not in (case, policy, repeat, ratio) and np.isfinite(ratio) and ratio > 0}
    except Exception as exc:  # damaged, not CSV, no such column, not numbers
        raise UserError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def _at_profile_speed(got: dict, ratio: float | None) -> None:
    """Record the run's step-time ratio and its mean latency per token at the profile's speed (divided by the
    ratio: what the run would have measured had the machine run its steps as fast as when profiled)."""
    got["step_time_ratio"] = ratio
    lpt = got.get("latency_per_token_mean")
    got["latency_per_token_mean_at_profile_speed"] = lpt / ratio if ratio is not None and lpt is not None else None


def _mean_over(repeats: list[dict]) -> dict:
    """Per metric, the mean over the repeats that have it; counts summed are not meaningful, so also means."""
    keys = sorted({k for r in repeats for k in r})
    out = {}
    for k in keys:
        vals = [r[k] for r in repeats if r.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    out["repeats"] = len(repeats)
    return out


def _case_name(case: str, config: dict, configs: dict[str, dict]) -> str:
    """``case``, or ``case (key=value, ...)`` naming the engine settings (and the number of requests) where a
    run's differ from the first run of that case: only runs of the same settings and workload size pool."""
    first = configs.setdefault(case, config)
    differ = [f"{k}={config.get(k)}" for k in sorted(set(first) | set(config)) if first.get(k) != config.get(k)]
    return f"{case} ({', '.join(differ)})" if differ else case


def collect_validation(directories: list[Path]) -> tuple[dict, list[str], str | None]:
    """Cases -> policies -> {"engine": mean over repeats (and each repeat), "sim": ...}; the commands; the host.

    Several directories pool their engine repeats of the same case and policy (e.g. a later run adding
    repeats); the simulator's run of a case and policy is taken from the first directory that has it."""
    seen: dict[Path, Path] = {}
    for directory in directories:  # one directory twice would pool each of its repeats twice
        first = seen.setdefault(directory.resolve(), directory)
        if first is not directory:
            raise UserError(f"{directory}: the validate directory {first} is given twice; give each once")
    repeats_of: dict[tuple[str, str], list[dict]] = {}
    configs: dict[str, dict] = {}
    sims: dict[tuple[str, str], dict] = {}
    commands: list[str] = []
    measured: dict[str, dict] = {}  # per case: its host, its commands, its first engine run's start [unix s]
    host = None
    for directory in directories:
        runs = directory / "runs"
        if not runs.is_dir():
            raise UserError(f"{directory}: not a validate directory (no runs/)")
        ratios = step_time_ratios(directory)
        for case_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
            for policy_dir in sorted(p for p in case_dir.iterdir() if p.is_dir()):
                # validate writes engine/ for one repeat, engine-0/, engine-1/, ... for several
                engine_runs = sorted(p for p in policy_dir.glob("engine*") if p.is_dir())
                if not engine_runs or not (policy_dir / "sim").is_dir():
                    continue
                repeats, meta, started = [], {}, []
                for run in engine_runs:
                    got, meta = side_metrics(run)
                    start = meta.get("started_unix_s")  # (runs of older versions have none)
                    if isinstance(start, (int, float)) and not isinstance(start, bool):
                        started.append(float(start))
                    repeat = meta.get("repeat") if isinstance(meta.get("repeat"), int) else 0
                    _at_profile_speed(got, ratios.get((case_dir.name, policy_dir.name, repeat)))
                    repeats.append(got)
                config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
                settings = {**config, "num_requests": repeats[-1].get("num_requests")}
                key = (_case_name(meta.get("case", case_dir.name), settings, configs),
                       meta.get("policy", policy_dir.name))
                repeats_of.setdefault(key, []).extend(repeats)
                sims.setdefault(key, side_metrics(policy_dir / "sim")[0])
                host = host or meta.get("host")
                case = measured.setdefault(key[0], {"host": meta.get("host"), "commands": [], "started": []})
                case["started"] += started
                for listed in (commands, case["commands"]):
                    if meta.get("command") and meta["command"] not in listed:
                        listed.append(meta["command"])
    if not repeats_of:
        raise UserError(f"{', '.join(map(str, directories))}: no finished engine + simulator runs under runs/")
    cases: dict = {}
    for (case, policy), repeats in repeats_of.items():
        engine = _mean_over(repeats)
        engine["each_repeat"] = repeats
        m = measured[case]
        date = time.strftime("%Y-%m-%d", time.gmtime(min(m["started"])) if m["started"] else time.localtime())
        cases.setdefault(case, {"policies": {}, "measured": {"host": m["host"], "date": date, "commands": m["commands"]}})
        cases[case]["policies"][policy] = {"engine": engine, "sim": sims[(case, policy)]}
    return cases, commands, host


def merge_into(existing: dict, cases: dict, path: Path) -> dict:
    """``existing`` results with ``cases`` replacing the same-named cases (``--update``); the cases kept carry
    the host and date they were measured on (the file's, where they carry none yet)."""
    if not isinstance(existing.get("cases"), dict):
        raise UserError(f"{path}: no cases to update")
    merged = {}
    for name, body in existing["cases"].items():  # (in their order; a re-measured case keeps its place)
        if name in cases:
            merged[name] = cases[name]
            continue
        if not isinstance(body, dict) or not isinstance(body.get("policies"), dict):
            raise UserError(f"{path}: case {name!r} is damaged (no policies)")
        measured = body.get("measured") or {"host": existing.get("host"), "date": existing.get("date"), "commands": None}
        merged[name] = {**body, "measured": measured}
    return {**existing, "cases": {**merged, **cases}}


def _existing_results(path: Path) -> dict:
    """The results ``--update`` re-measures cases of; one-line :class:`UserError` when there are none."""
    if not path.is_file():
        raise UserError(f"--update: {path} does not exist (run real-model-results without --update first)")
    doc = _read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise UserError(f"--update: {path} is not {FORMAT} results version {FORMAT_VERSION}")
    if not isinstance(doc.get("labels"), dict):
        raise UserError(f"--update: {path} has no labels")
    return doc


def ranker_identity(predictor) -> dict:
    """What the LTR runs' ranker is: its kind and backbone, and for a model-based one the model (and the
    probe's layer), so the rendered section sets the right held-out tau beside the runs."""
    config = predictor.describe() if hasattr(predictor, "describe") else {}
    if not config:  # an ensemble
        return {"backbone": "ensemble"}
    keys = ("kind", "backbone") + (("hf_path",) if config.get("backbone") in ("hf", "probe") else ()) \
        + (("probe_layer",) if config.get("backbone") == "probe" else ()) \
        + (("probe_precision",) if config.get("probe_precision", "float32") != "float32" else ())
    identity = {k: config.get(k) for k in keys}
    tau = held_out_tau(config.get("metrics"))
    if tau is not None:
        identity["held_out_tau"] = tau
    return identity


def held_out_tau(metrics) -> float | None:
    """The Kendall tau ``ltrsched train`` recorded on its held-out prompts after the last epoch, if any."""
    last = metrics[-1] if isinstance(metrics, list) and metrics and isinstance(metrics[-1], dict) else {}
    tau = last.get("tau")
    if isinstance(tau, (int, float)) and not isinstance(tau, bool) and math.isfinite(tau):
        return float(tau)
    return None


def predictor_share(predictor, workload: str, num_requests: int | None, seed: int, cases: dict) -> dict:
    """The ranker's best-of-3 wall time to score the served prompts (lists of 32) against the burst LTR
    engine run's makespan (else the first case with an LTR run)."""
    from ltrsched.predictors.data import texts_of
    from ltrsched.predictors.overhead import measure_overhead
    from ltrsched.workloads import load_workload

    case = "burst" if "burst" in cases else next(iter(cases))
    roles = policy_roles(list(cases[case]["policies"]))
    if roles["ltr"] is None:
        raise UserError(f"case {case!r} has no LTR run to compare the predictor's time with")
    makespan = cases[case]["policies"][roles["ltr"]]["engine"].get("makespan")
    prompts = texts_of(load_workload(workload, num_requests=num_requests, seed=seed))
    measured = measure_overhead(predictor, prompts, batch_size=32)
    return {"num_prompts": measured["num_prompts"], "total_s": measured["total_s"],
            "per_request_s": measured["per_request_s"], "serving_s": makespan, "serving_case": case}


@click.command("real-model-results")
@click.argument("validation", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--labels-report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="report.json written by `ltrsched label-report` (required, except with --update).")
@click.option("--ranker", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The trained ranker the LTR runs used: its time to score the served prompts (predictor overhead).")
@click.option("-w", "--workload", default=None, help="The validated workload (for the predictor's prompts).")
@click.option("-n", "--num-requests", type=int, default=None, help="As given to validate.")
@click.option("--seed", type=int, default=0, show_default=True, help="As given to validate.")
@click.option("-o", "--out", type=OutFile(), default=RESULTS,
              help="Results JSON [default: the package's ltrsched/experiments/real_model_results.json, the file "
                   "`reproduce` renders].")
@click.option("--update", is_flag=True,
              help="Re-measured cases: replace the cases these directories hold in the existing --out, keep the "
                   "others (and its labels and ranker unless given).")
def real_model_results(validation, labels_report, ranker, workload, num_requests, seed, out, update):
    """Gather real-model validate runs (VALIDATION directories: repeats of a case and policy pool), the label
    report and the ranker into reproduce's real-engine section."""
    from ltrsched.outputs import check_inputs_kept, check_out_file

    check_out_file(out, "--out", ".json")  # before the ranker's timing
    if labels_report is None and not update:
        raise UserError("--labels-report is required (report.json of `ltrsched label-report`), except with --update")
    if labels_report is not None:
        check_inputs_kept({"--labels-report": labels_report}, files=(out,))
    if ranker is not None and workload is None:
        raise UserError("--ranker needs --workload (and -n/--seed as given to validate): the prompts it scores")
    if ranker is None and (workload is not None or num_requests is not None):
        raise UserError("--workload and -n give the prompts --ranker scores: add --ranker, or leave them out")
    existing = _existing_results(out) if update else None
    labels = read_label_report(labels_report) if labels_report is not None else existing["labels"]
    cases, commands, host = collect_validation(validation)
    if existing is not None:
        data = merge_into(existing, cases, out)
        data["labels"] = labels
    else:
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, "date": time.strftime("%Y-%m-%d"),
                "model": labels.get("model"), "host": host, "commands": commands, "labels": labels, "cases": cases}
    if ranker is not None:
        from ltrsched.predictors.predictor import Predictor

        predictor = Predictor.load(ranker)
        data["ranker"] = ranker_identity(predictor)
        data["predictor"] = predictor_share(predictor, workload, num_requests, seed, data["cases"])
    atomic.write_text(out, strict_json.dumps(data, indent=1, sort_keys=True) + "\n")
    runs = sum(len(c['policies']) for c in cases.values())
    if existing is not None:
        click.echo(f"updated {shown_path(out)}: {len(cases)} case(s) re-measured ({', '.join(cases)}; {runs} policy runs), "
                   f"{len(data['cases'])} case(s) in all")
    else:
        click.echo(f"wrote {shown_path(out)} ({len(cases)} case(s), {runs} policy runs)")
