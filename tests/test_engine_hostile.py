"""Hostile inputs to the engine commands (replay, profile, validate, label): each is served correctly or
refused with a one-line error before the engine runs, never a silently wrong number or a lost file."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from label_data import FakeLabelDriver
from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import make_policy


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_policy_extra_tokens_beyond_the_context_are_refused_not_cut_short():
    """PO adds 15 tokens to every output: a request that fits max_model_len without them but not with them
    was served 8 tokens short by vLLM (it stops at max_model_len), with exit 0."""
    from ltrsched.engine.emulate import EngineConfig, emulate

    workload = make_workload([100, 10], [20, 5])  # 100 + 20 = 120 fits 128; + 15 = 135 does not
    config = EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=64, max_num_seqs=4, max_model_len=128)
    with pytest.raises(UserError, match=r"exceed the engine's max_model_len 128 tokens \(first: request 0, 135 tokens, "
                                        r"15 of them policy po's extra output tokens\)"):
        emulate(workload, make_policy("po:tokens=15"), LinearProfile().step_time, config)
    served = emulate(workload, make_policy("po:tokens=8"), LinearProfile().step_time, config)  # 128: fits exactly
    requests = served.requests.sort("request_id")
    assert requests["generated_tokens"].to_list() == [28, 13]


@pytest.mark.parametrize("prompts, out, what", [
    ("shared.json", "shared.parquet", "the labels' description"),
    ("p.parquet", "p.parquet", "the labels (--out)"),
    ("p.parquet", "./sub/../p.parquet", "the labels (--out)"),
    ("l.parquet.parts/p.jsonl", "l.parquet", "the part directory"),
])
def test_label_refuses_to_write_over_its_prompts_file(capsys, tmp_path, prompts, out, what):
    """`label --prompts x.json --out x.parquet` replaced the user's ShareGPT file with the labels' description
    at the end of the run (and a rerun was then refused: the prompts' hash had changed)."""
    from test_cli_simulate import assert_one_line_error

    source = tmp_path / prompts
    source.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "sub").mkdir()
    source.write_text("{\"prompt\": \"hello\"}\n")
    before = source.read_bytes()
    r = run_cli_fast(capsys, "label", "--prompts", prompts, "--out", out, cwd=tmp_path)
    assert_one_line_error(r, f"--prompts {prompts} would be overwritten by {what}")
    assert source.read_bytes() == before


@pytest.mark.parametrize("args, blocked, message", [
    (["replay", "--emulate", "h100-llama3-8b", "-n", "2", "-o", "run"], "run/summary.json",
     "--out run: run/summary.json is a directory, where the command writes a file"),
    (["replay", "--emulate", "h100-llama3-8b", "-n", "2", "-o", "run"], "run/steps.parquet",
     "--out run: run/steps.parquet is a directory, where the command writes a file"),
    (["profile", "--emulate", "h100-llama3-8b", "--quick", "--out", "p.json"], "p.steps.parquet",
     "--out p.json: p.steps.parquet, where the probes' steps are written, is a directory"),
    (["label-report", "missing.parquet", "--out", "rep"], "rep/learning_curve.csv",
     "--out rep: rep/learning_curve.csv is a directory, where the command writes a file"),
    (["label", "--prompts", "missing.jsonl", "--out", "l.parquet"], "l.json",
     "--out l.parquet: l.json, where the labels' description is written, is a directory"),
])
def test_an_output_taken_by_a_directory_is_refused_before_the_work(capsys, tmp_path, args, blocked, message):
    """replay and profile ran the engine, label-report trained its rankers and label labelled every prompt,
    then failed to write one file (replay had written requests.parquet: half a run)."""
    from test_cli_simulate import assert_one_line_error

    (tmp_path / blocked).mkdir(parents=True)
    r = run_cli_fast(capsys, *args, cwd=tmp_path)
    assert_one_line_error(r, message)
    assert not (tmp_path / "run" / "requests.parquet").exists() and not (tmp_path / "p.json").exists()


def test_label_refuses_a_file_where_its_part_directory_goes(capsys, tmp_path):
    from test_cli_simulate import assert_one_line_error

    (tmp_path / "l.parquet.parts").write_text("not a directory")
    r = run_cli_fast(capsys, "label", "--prompts", "missing.jsonl", "--out", "l.parquet", cwd=tmp_path)
    assert_one_line_error(r, "--out l.parquet: l.parquet.parts, the part directory, is a file")


def _write_workload(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    make_workload([10, 20], [3, 4]).df.write_parquet(path)


@pytest.mark.parametrize("args, source, message", [
    (["replay", "--emulate", "h100-llama3-8b", "-w", "run/requests.parquet", "-o", "run"], "run/requests.parquet",
     "--workload run/requests.parquet would be overwritten by the output run/requests.parquet"),
    (["profile", "--emulate", "p.json", "--quick", "--out", "./p.json"], "p.json",
     "--emulate p.json would be overwritten by the output p.json"),
    (["validate", "--emulate", "h100-llama3-8b", "--policies", "fcfs", "-w", "v/runs/burst/fcfs/engine/requests.parquet",
      "-o", "v"], "v/runs/burst/fcfs/engine/requests.parquet",
     "--workload v/runs/burst/fcfs/engine/requests.parquet lies in v/runs, whose files the command replaces"),
    (["label-report", "rep/report.json", "--out", "rep"], "rep/report.json",
     "labels file rep/report.json would be overwritten by the output rep/report.json"),
    (["real-model-results", "v", "--labels-report", "r.json", "-o", "r.json"], "r.json",
     "--labels-report r.json would be overwritten by the output r.json"),
])
def test_an_input_is_never_an_output(capsys, tmp_path, args, source, message):
    """replay -w RUN/requests.parquet -o RUN wrote the run over the workload it replayed; profile --emulate P
    --out P replaced the profile it emulated; validate deleted an earlier validation's requests.parquet given as
    its workload (its manifest listed it); label-report and real-model-results wrote their report over their input."""
    import json

    from test_cli_simulate import assert_one_line_error

    _write_workload(tmp_path / source)
    (tmp_path / "v").mkdir(exist_ok=True)
    (tmp_path / "v" / "validate-manifest.json").write_text(json.dumps(
        {"format": "ltrsched-validate-manifest", "format_version": 1, "command": "x", "runs": ["runs/burst/fcfs/engine"]}))
    before = (tmp_path / source).read_bytes()
    r = run_cli_fast(capsys, *args, cwd=tmp_path)
    assert_one_line_error(r, message)
    assert (tmp_path / source).read_bytes() == before


@pytest.mark.parametrize("options, message", [
    # (a block within --block-size's range, 16,777,216 tokens, that no GPU's memory holds)
    (["--block-size", "10000000"], "profile 'h100-llama3-8b' leaves no GPU memory for one KV block of 10000000 tokens"),
    (["--gpu-memory-utilization", "1e-9"], "leaves no GPU memory for one KV block of 16 tokens at --gpu-memory-utilization 1e-09"),
    (["--num-gpu-blocks", "1000000000000"], "the emulated engine cannot hold 1000000000000 KV blocks"),
    (["--kv-cache-gib", "1e-9"], "--kv-cache-gib 1e-09 holds 0 KV block(s) of 16 tokens (2,097,152 bytes each in "
                                 "profile 'h100-llama3-8b'), and the engine needs 2"),
])
def test_emulated_kv_cache_out_of_range_is_a_one_line_error(capsys, tmp_path, options, message):
    """No block (a huge block size, a tiny utilization) was a ValueError traceback from the adapter's limits;
    10**12 blocks never finished building vLLM's block pool (an object per block)."""
    from test_cli_simulate import assert_one_line_error

    r = run_cli_fast(capsys, "replay", "--emulate", "h100-llama3-8b", "-n", "2", *options, cwd=tmp_path)
    assert_one_line_error(r, message)


def test_emulated_engine_sizes_its_kv_cache_from_kv_cache_gib(capsys, tmp_path):
    """--kv-cache-gib was ignored by the emulated engine: it took the profile's GPU memory (16,381 blocks for
    h100-llama3-8b) while the run's summary recorded the GiB asked for. Now the GiB hold the blocks, as in vLLM
    (its null block among them): 0.25 GiB of 2 MiB blocks (16 tokens x 128 KiB a token of Llama-3-8B) = 128."""
    import json


    r = run_cli_fast(capsys, "replay", "--emulate", "h100-llama3-8b", "-w", "lmsys-like", "-n", "3", "--kv-cache-gib",
                     "0.25",
                             "-o", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads((tmp_path / "run" / "summary.json").read_text())["meta"]["config"]
    assert (config["num_gpu_blocks"], config["kv_cache_gib"]) == (128, 0.25)


def test_a_cpu_kv_cache_larger_than_the_available_ram_is_refused_before_the_engine_starts(monkeypatch):
    """`replay --kv-cache-gib 500` on a 24 GiB machine was refused by vLLM's CPU worker only after it had loaded the
    model (about 40 s); the same for --num-gpu-blocks. The options are checked against the RAM available first."""
    import ltrsched.engine.platform as platform
    from ltrsched.validation.engines import engine_config

    monkeypatch.setattr(platform, "available_memory_bytes", lambda: 2 * 2**30)
    monkeypatch.setattr(platform, "memory_gib", lambda: 8.0)
    with pytest.raises(UserError, match=r"^--kv-cache-gib 2\.5 asks for a KV cache of 2\.5 GiB, more than the 2\.0 GiB "
                                        r"of RAM available on this machine \(of 8\.0 GiB\): give a smaller --kv-cache-gib$"):
        engine_config(kv_cache_gib=2.5, platform="cpu")
    assert engine_config(kv_cache_gib=2.0, platform="cpu").kv_cache_gib == 2.0
    # llama-tiny: 2 layers x 4 KV heads x 64 x 2 (keys, values) x 4 bytes = 4,096 bytes a token, 0.5 MiB a block
    with pytest.raises(UserError, match=r"^--num-gpu-blocks 4097 asks for a KV cache of 2\.0 GiB \(4,097 blocks x 128 "
                                        r"tokens x 4,096 bytes per token of llama-tiny\), more than the 2\.0 GiB"):
        engine_config(num_gpu_blocks=4097, platform="cpu")
    assert engine_config(num_gpu_blocks=4096, platform="cpu").num_gpu_blocks == 4096
    with pytest.raises(UserError, match=r"asks for a KV cache of about 10\^396 GiB"):
        engine_config(num_gpu_blocks=10**400, platform="cpu")
    assert engine_config(kv_cache_gib=100.0, emulate_profile="h100-llama3-8b").kv_cache_gib == 100.0  # (a GPU's)
    monkeypatch.setattr(platform, "available_memory_bytes", lambda: None)  # unknown: vLLM's own check remains
    assert engine_config(kv_cache_gib=2.5, platform="cpu").kv_cache_gib == 2.5


def test_replay_refuses_a_huge_cpu_kv_cache_without_importing_vllm():
    """The check runs before anything imports vLLM (its import alone takes seconds): exit 2 in a moment."""
    import subprocess
    import sys

    from ltrsched.engine.platform import CPU, available_memory_bytes, engine_platform

    if engine_platform() != CPU or available_memory_bytes() is None:
        pytest.skip("needs vLLM's CPU build, on a machine whose available RAM can be read")
    code = ("import sys, time\n"
            "from ltrsched.cli import main\n"
            "t = time.perf_counter()\n"
            "try:\n"
            "    main(['replay', '-n', '2', '--kv-cache-gib', '100000'])\n"
            "except SystemExit as exc:\n"
            "    print(exc.code, 'vllm' in sys.modules, time.perf_counter() - t)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    status, imported, seconds = r.stdout.split()
    assert (status, imported) == ("2", "False"), r.stderr[-2000:]
    # (vLLM refused it after loading the model, about 40 s; the check now comes before vLLM's import, asserted above,
    # not by wall time, which a loaded 2-core box stretches past any fixed bound)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --kv-cache-gib 100000 asks for a KV cache of 100,000.0 GiB, "
                                                   "more than the "), r.stderr[-2000:]


def test_an_empty_model_or_profile_name_is_no_default(capsys, tmp_path):
    """replay/validate -m "" served the default model, validate -p "" compared with the default profile: an empty
    name (an unset shell variable) was read as no option."""
    from ltrsched.validation.engines import engine_config
    from test_cli_simulate import assert_one_line_error

    with pytest.raises(UserError, match="^model '' is neither a built-in name"):
        engine_config(model="", emulate_profile="h100-llama3-8b")
    assert_one_line_error(run_cli_fast(capsys, "validate", "--emulate", "h100-llama3-8b", "-n", "2", "--policies",
                                       "fcfs", "-p", "",
                                               "-o", "v", cwd=tmp_path), "no profile given (the name '' is empty)")


@pytest.mark.parametrize("options, named", [
    ({"tensor_parallel_size": 8}, "--tensor-parallel-size sets"),
    ({"dtype": "float32"}, "--dtype sets"),
    ({"enforce_eager": False}, "--enforce-eager/--no-enforce-eager sets"),
    ({"load_format": "auto", "dtype": "half"}, "--load-format, --dtype set"),
    ({"threads": 4}, "--threads sets"),  # was "--threads is for the CPU engine (a GPU engine computes on the GPU)"
])
def test_model_execution_options_are_refused_by_the_emulated_engine(options, named):
    """They were silently ignored: `replay --emulate h100-llama3-8b --tensor-parallel-size 8` timed TP1."""
    from ltrsched.validation.engines import engine_config

    with pytest.raises(UserError, match=f"^{named} how a model runs, and the emulated engine"):
        engine_config(emulate_profile="h100-llama3-8b", **options)
    assert engine_config(emulate_profile="h100-llama3-8b").tensor_parallel_size == 1


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_label_keeps_the_finished_prompts_of_unfinished_chunks_when_it_stops(tmp_path, monkeypatch, stop):
    """A labelling run stopped (Ctrl-C, an engine error) kept only its complete chunks: the labels of the
    prompts already finished in a chunk still in flight were lost, and a rerun served them again."""
    import ltrsched.engine.runner as runner
    import ltrsched.labelling.generate as generate
    from ltrsched.engine.config import EngineConfig
    from ltrsched.labelling.jobs import LabelJob
    from ltrsched.labelling.parts import open_parts
    from ltrsched.labelling.run import _serve, _Stats
    from ltrsched.labelling.settings import LabelSettings, Sampling

    closed = []
    monkeypatch.setattr(FakeLabelDriver, "closed", closed)  # (the engine shut down, its environment put back)
    def serve_then_stop(driver, requests, on_done, window):  # prompts 0, 2, 3 finish, then the run stops
        for i in (0, 2, 3):
            on_done(i, generate.Generated(prompt_tokens=len(requests[i].prompt_ids), output_tokens=5 + i,
                                          finish_reason="stop"))
        raise stop("stopped")

    monkeypatch.setattr(runner, "VllmDriver", FakeLabelDriver)
    monkeypatch.setattr(generate, "serve_requests", serve_then_stop)
    jobs = [LabelJob("main", "eval", f"k{i}", f"prompt {i}") for i in range(5)]
    settings = LabelSettings("m", "0" * 64, 100, Sampling(0.0, 1.0, 0), Sampling(0.8, 1.0, 1))
    stats = _Stats()
    stats.context = 1000
    out = tmp_path / "labels.parquet"
    with open_parts(out, settings) as store:
        with pytest.raises(stop):  # chunk 0 = prompts 0, 1 (1 unfinished); chunk 1 = 2, 3 (complete); chunk 2 = 4
            _serve(jobs, [[1, 2, 3]] * 5, EngineConfig(platform="cpu"), settings, store, 2, stats)
        held = store.labelled().sort("key")
    assert held["key"].to_list() == ["k0", "k2", "k3"]
    assert held["output_tokens"].to_list() == [5, 7, 8]
    assert closed == [True]  # the stopped run's engine was closed too


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_a_workload_holding_an_earlier_runs_columns_gets_this_runs_values():
    """Replaying an earlier run's requests.parquet (it has finish_time, generated_tokens, ...) ran the whole
    engine run, then failed with polars' DuplicateError traceback."""
    import polars as pl

    from ltrsched.engine.emulate import EngineConfig, emulate

    config = EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=64, max_num_seqs=4)
    workload = make_workload([30, 10, 20], [4, 6, 2], [0.0, 0.01, 0.5])
    first = emulate(workload, make_policy("fcfs"), LinearProfile().step_time, config)
    earlier = first.requests.with_columns(pl.col("finish_time") + 100.0, generated_tokens=pl.lit(1, pl.Int64))
    again = emulate(workload.with_df(earlier), make_policy("fcfs"), LinearProfile().step_time, config)
    assert sorted(again.requests.columns) == sorted(first.requests.columns)
    assert again.requests.select(first.requests.columns).equals(first.requests)
    assert again.summary["e2e_latency_mean"] == first.summary["e2e_latency_mean"]


@pytest.mark.parametrize("ids, row, first", [([-1, 1023], 1, -1), ([5, 10**15], 2, 10**15)])
def test_request_ids_outside_the_policies_arrays_are_refused(capsys, tmp_path, ids, row, first):
    """Policies index per-request state by id: -1 read request 1023's (PO gave request -1 the estimate 3 of
    request 1023 instead of its own 100, exit 0); 10**15 was a MemoryError traceback (7 PiB)."""
    import polars as pl

    from test_cli_simulate import assert_one_line_error

    pl.DataFrame({"request_id": ids, "arrival_time": [0.0, 0.0], "prompt_tokens": [5, 5], "output_tokens": [100, 3],
                  "po_estimate": [100.0, 3.0]}).write_parquet(tmp_path / "w.parquet")
    r = run_cli_fast(capsys, "simulate", "-w", "w.parquet", "-p", "h100-llama3-8b", "--policy", "po", cwd=tmp_path)
    assert_one_line_error(r, f"w.parquet: row {row}: request_id {first} is outside [0, 10,000,000)")


@pytest.mark.parametrize("quick", [False, True])
def test_profile_probes_of_a_small_kv_cache_all_fit_it(quick):
    """With --num-gpu-blocks 100 (99 usable blocks of 16 tokens) the plan kept its 2,048-token prefill probe,
    and profile failed with '1 request(s) can never fit the engine's KV cache', naming a probe request."""
    from ltrsched.engine.config import EngineConfig
    from ltrsched.validation.profiling import probe_plan

    config = EngineConfig(platform="cuda", block_size=16)
    plan = probe_plan(config, usable_blocks=99, max_model_len=8192, quick=quick)
    requests = [r for probe in plan.probes(max_num_seqs=256, budget=768) for r in probe]
    assert max(p + o for p, o in requests) <= 99 * 16
    assert plan.prefill_prompts and max(plan.prefill_prompts) == 768


@pytest.mark.parametrize("args, message", [
    # only separators: no rate was given (it was told "--rates must be positive, got ','")
    (["validate", "--emulate", "h100-llama3-8b", "-n", "2", "--rates", ",", "--out", "v"],
     "--rates must be numbers separated by ',' or 'auto', got ','"),
    (["validate", "--emulate", "h100-llama3-8b", "-n", "2", "--rates", " , ", "--out", "v"],
     "--rates must be numbers separated by ',' or 'auto', got ' , '"),
    (["validate", "--emulate", "h100-llama3-8b", "-n", "2", "--rates", "1,-2", "--out", "v"],
     "--rates must be positive, got '1,-2'"),
    # an empty profile name (it wrote a profile named "", which reports then name by nothing)
    (["profile", "--emulate", "h100-llama3-8b", "--quick", "--name", "", "--out", "p.json"],
     "--name must name the profile, got ''"),
    (["profile", "--emulate", "h100-llama3-8b", "--quick", "--name", "  ", "--out", "p.json"],
     "--name must name the profile, got '  '"),
])
def test_empty_rates_and_profile_names_are_named_as_such(capsys, tmp_path, args, message):
    from test_cli_simulate import assert_one_line_error

    assert_one_line_error(run_cli_fast(capsys, *args, cwd=tmp_path), message)
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "v").exists()


@pytest.mark.parametrize("command, out", [(["replay", "--emulate", "h100-llama3-8b", "-n", "2", "-o"], "out"),
                                          (["validate", "-n", "2", "--policies", "fcfs", "--out"], "out")])
def test_vllms_data_parallel_size_from_the_environment_is_refused_before_the_engine_starts(capsys, tmp_path,
                                                                                          monkeypatch, command, out):
    """vLLM reads its data parallel size from VLLM_DP_SIZE too: VLLM_DP_SIZE=2 reached the scheduler, which cannot
    run data parallelism and refused it with a ValueError traceback once the engine was being built. It is refused
    in one line before the engine starts; 1 is vLLM's default."""
    from ltrsched.validation.engines import engine_config
    from test_cli_simulate import assert_one_line_error

    for value in ("2", "x"):
        monkeypatch.setenv("VLLM_DP_SIZE", value)
        r = run_cli_fast(capsys, *command, tmp_path / out, cwd=tmp_path)
        assert_one_line_error(r, f"VLLM_DP_SIZE in the environment must be unset or 1 (vLLM's data parallel size: the "
                                 f"engine adapter cannot run data parallelism, each rank ranking only its own "
                                 f"requests), got '{value}'")
        assert not (tmp_path / out).exists()
    monkeypatch.setenv("VLLM_DP_SIZE", "1")
    assert engine_config(emulate_profile="h100-llama3-8b").block_size == 16
