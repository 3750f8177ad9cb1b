"""Hostile inputs that used to reach the real engine's start (seconds on a CPU, minutes on a GPU) before being
refused: each is refused first, in one line, or served."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import make_workload, save_word_chat_tokenizer
from ltrsched.errors import UserError


def _cpu_config(**options):
    from ltrsched.validation.engines import engine_config

    return engine_config(**{"model": "llama-tiny", "platform": "cpu", **options})


@pytest.mark.parametrize("options, context, source", [
    ({}, 4096, "max_position_embeddings in llama-tiny's config.json: leave them out, or serve a model with a longer"),
    ({"num_gpu_blocks": 10}, 1152, "the KV cache of --num-gpu-blocks 10 (one of them vLLM's null block) x 128 tokens: "
                                   "give more --num-gpu-blocks"),
    # llama-tiny: 0.5 MiB a block of 128 tokens; 0.001 GiB holds 2
    ({"kv_cache_gib": 0.001}, 128, "the KV cache of --kv-cache-gib 0.001, 2 blocks (one of them vLLM's null block) x "
                                   "128 tokens: give a larger --kv-cache-gib"),
])
def test_requests_beyond_the_models_context_are_refused_from_its_config(options, context, source):
    from ltrsched.validation.engines import check_context_before_start

    config = _cpu_config(**options)
    with pytest.raises(UserError) as caught:
        check_context_before_start(make_workload([10, 5000], [3, 4]), config)
    assert str(caught.value) == (f"1 request(s) exceed the engine's max_model_len {context} tokens (first: request 1, "
                                 f"5004 tokens), its context from {source}" + str(caught.value).split(source)[1])
    check_context_before_start(make_workload([10, context - 4], [3, 4]), config)  # fits exactly
    with pytest.raises(UserError, match="3 of them the policy's extra output tokens"):
        check_context_before_start(make_workload([context - 4], [4]), config, extra_output_tokens=3)


#: RoPE settings of a config.json (max_position_embeddings 4096) and the context vLLM 0.32 derives from them.
ROPE_CASES = [
    ({"rope_scaling": {"type": "linear", "factor": 4.0}}, 16384),
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 8192),
    ({"rope_parameters": {"rope_type": "linear", "factor": 3.0}}, 12288),
    ({"rope_scaling": {"factor": 2.0}}, 8192),  # (no type: "default", whose factor vLLM still applies)
    ({"rope_scaling": {"type": "linear", "factor": 4.0}, "rope_parameters": {"rope_type": "default"}}, 16384),
    ({"rope_parameters": {"rope_type": "default"}}, 4096),  # (SmolLM2's: no scaling)
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 512,
                       "low_freq_factor": 1.0, "high_freq_factor": 4.0}}, 4096),  # (already scaled)
    ({"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}}, 4096),
    ({"rope_scaling": {"type": "longrope", "long_factor": [1.0] * 4, "short_factor": [1.0] * 4, "factor": 4.0},
      "original_max_position_embeddings": 1024}, 1024),  # (LongRoPE: the unscaled context by default)
]


def _model_dir(path, **config):
    import json

    from ltrsched.models import LLAMA_TINY

    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps({**LLAMA_TINY, **config}))
    return path


@pytest.mark.parametrize("rope, context", ROPE_CASES)
def test_the_context_check_before_the_start_scales_the_context_by_rope_as_vllm_does(tmp_path, rope, context):
    """A RoPE-scaled model's context was left to the engine (no early refusal): requests beyond it started the engine
    first. It is now derived as vLLM derives it (model_context.py), so a request of the scaled context fits and one
    token more is refused before the start."""
    from ltrsched.validation.engines import check_context_before_start, expected_context

    config = _cpu_config(model=str(_model_dir(tmp_path / "scaled", **rope)))
    got, source = expected_context(config)
    assert got == context and source.endswith(f"in {tmp_path / 'scaled'}'s config.json")
    check_context_before_start(make_workload([context - 4], [4]), config)  # fits exactly
    nested = _model_dir(tmp_path / "nested", rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2}})
    with pytest.raises(UserError, match="are set per layer type"):  # (how the model's class reads them: refused)
        expected_context(_cpu_config(model=str(nested)))
    with pytest.raises(UserError, match=rf"^1 request\(s\) exceed the engine's max_model_len {context} tokens "
                                        r"\(first: request 0, \d+ tokens\), its context from "):
        check_context_before_start(make_workload([context - 3], [4]), config)


@pytest.mark.parametrize("factor", ["x", 0, -2.0, [4.0]])
def test_a_rope_factor_that_is_no_positive_number_is_refused_before_the_start(tmp_path, factor):
    """`"rope_scaling": {"type": "linear", "factor": "x"}` started the engine, then vLLM's multiplying the context by
    it was a TypeError traceback."""
    path = _model_dir(tmp_path / "bad", rope_scaling={"type": "linear", "factor": factor})
    with pytest.raises(UserError, match=rf"^{path / 'config.json'}: the RoPE scaling factor \(rope_scaling's "
                                        rf"factor\) must be a positive number, got {re.escape(repr(factor))}$"):
        _cpu_config(model=str(path))
    _cpu_config(model=str(_model_dir(tmp_path / "none", rope_scaling={"type": "linear", "factor": None})))  # (1.0)
    _cpu_config(model=str(_model_dir(tmp_path / "yarn", rope_scaling={"type": "yarn", "factor": None})))


@pytest.mark.vllm
@pytest.mark.parametrize("rope, context", ROPE_CASES)
def test_the_rope_scaled_context_is_vllms_own(tmp_path, rope, context):
    """The context above, from vLLM's own code (its config reading and ``_get_and_verify_max_len``)."""
    from transformers import AutoConfig
    from vllm.config.model import _get_and_verify_max_len
    from vllm.transformers_utils.config import patch_rope_parameters
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase

    hf = AutoConfig.from_pretrained(str(_model_dir(tmp_path / "scaled", **rope)))
    patch_rope_parameters(hf)
    arch = ModelArchConfigConvertorBase(hf, hf)
    derived = type("Arch", (), {"derived_max_model_len_and_key": arch.derive_max_model_len_and_key()})()
    assert _get_and_verify_max_len(hf, derived, None, None, False, None) == context


def _chat_model(path, max_position_embeddings: int):
    """llama-tiny's config and a word-level tokenizer whose chat template wraps a prompt in 6 tokens."""
    _model_dir(path, max_position_embeddings=max_position_embeddings)
    save_word_chat_tokenizer(path)
    return path


def test_the_context_check_before_the_start_counts_text_prompts_in_the_models_tokens(tmp_path):
    """`--prompts text` skipped the early check (its lengths are the model's token counts): a prompt beyond the
    context started the engine (seconds on a CPU, minutes on a GPU) before being refused. Now the prompts are
    rendered through the model's chat template first, as the engine will render them."""
    import polars as pl

    from ltrsched.validation.engines import check_context_before_start

    config = _cpu_config(model=str(_chat_model(tmp_path / "chat", 64)), prompts="text")
    # the workload's own counts (5 tokens) fit; the model's (the chat template's 6 more) do not
    text = pl.Series(["hello world", " ".join(["hello"] * 55)])
    long = make_workload([5, 5], [4, 4])
    long = long.with_df(long.df.with_columns(prompt=text))
    with pytest.raises(UserError) as caught:
        check_context_before_start(long, config)
    assert str(caught.value) == (
        "1 request(s) exceed the engine's max_model_len 64 tokens (first: request 1, 65 tokens), its context from "
        f"max_position_embeddings in {tmp_path / 'chat'}'s config.json (text prompts counted in the model's tokens, "
        "its chat template applied): leave them out, or serve a model with a longer context")
    fits = long.with_df(long.df.with_columns(prompt=pl.Series(["hello world", " ".join(["hello"] * 54)])))
    check_context_before_start(fits, config)  # 54 + 6 prompt tokens + 4 output tokens: exactly 64


def test_an_output_cap_beyond_the_context_names_max_tokens(tmp_path):
    """--eos model: a request may generate up to --max-tokens, which the context must hold."""
    import json

    from ltrsched.models import LLAMA_TINY
    from ltrsched.validation.engines import check_context_before_start

    (tmp_path / "config.json").write_text(json.dumps({**LLAMA_TINY, "max_position_embeddings": 8192}))
    (tmp_path / "model.safetensors").write_bytes(b"")  # (real weights: --eos model refuses random ones)

    def config(max_tokens):
        return _cpu_config(model=str(tmp_path), load_format="auto", eos="model", max_tokens=max_tokens)

    with pytest.raises(UserError, match=r"exceed the engine's max_model_len 8192 tokens \(first: request 0, 10010 "
                                        r"tokens\), its context from max_position_embeddings in .*: give a smaller "
                                        r"--max-tokens \(each request's output cap, 10000\), or leave"):
        check_context_before_start(make_workload([10], [3]), config(10_000))
    check_context_before_start(make_workload([10], [3]), config(8182))


def test_a_cpu_kv_cache_of_under_two_blocks_is_refused_before_the_start():
    """--kv-cache-gib 0.0001 (no block of llama-tiny's 0.5 MiB) was refused by vLLM once the engine had started,
    naming its own gpu_memory_utilization and max_model_len."""
    with pytest.raises(UserError, match=r"^--kv-cache-gib 0\.0001 holds 0 KV block\(s\) of 128 tokens \(524,288 bytes "
                                        r"each for llama-tiny\), and the engine needs 2 \(one is vLLM's null block\): "
                                        r"give --kv-cache-gib 0\.00098 or more$"):
        _cpu_config(kv_cache_gib=0.0001)
    assert _cpu_config(kv_cache_gib=0.00098).kv_cache_gib == 0.00098


@pytest.mark.vllm
def test_a_small_cpu_kv_cache_bounds_the_context_as_num_gpu_blocks_does():
    """--kv-cache-gib 0.001 (2 blocks) was refused at the engine's start: vLLM wants one request of the model's whole
    context (4,096 tokens) to fit. The context is bounded to the cache instead, as with --num-gpu-blocks."""
    from ltrsched.engine.runner import engine_kwargs

    kwargs = engine_kwargs(_cpu_config(kv_cache_gib=0.001), "dummy")
    assert (kwargs["max_model_len"], kwargs["kv_cache_memory_bytes"]) == (128, int(0.001 * 2**30))
    assert "max_model_len" not in engine_kwargs(_cpu_config(kv_cache_gib=0.002 * 2**10), "dummy")  # 2 GiB: all of it
    assert engine_kwargs(_cpu_config(num_gpu_blocks=3), "dummy")["max_model_len"] == 256


#: A model with a sliding window (every layer of a Mistral slides), and the same window turned off as vLLM reads it.
SLIDING = {"model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 64}
NOT_SLIDING = [{"sliding_window": 0}, {"sliding_window": None}, {**SLIDING, "model_type": "qwen2",
                                                                  "use_sliding_window": False}]


@pytest.mark.parametrize("blocks", [3, 4, 6])
def test_a_small_kv_cache_bounds_a_sliding_window_models_context_as_vllm_counts_it(tmp_path, blocks):
    """vLLM counts a request on a layer with a sliding window at one block more than with full attention (the window
    may start mid-block): --num-gpu-blocks 4 bounded this Mistral's context at 384 tokens, which vLLM refused at its
    start ("the estimated maximum model length is 256"; measured on the CPU engine). It is 256 now, before the start
    too; a model without a window keeps its bound."""
    from ltrsched.engine.runner import engine_kwargs
    from ltrsched.validation.engines import check_context_before_start, expected_context

    config = _cpu_config(model=str(_model_dir(tmp_path / "sliding", **SLIDING)), num_gpu_blocks=blocks)
    bound = (blocks - 2) * 128
    assert engine_kwargs(config, "dummy")["max_model_len"] == expected_context(config)[0] == bound
    check_context_before_start(make_workload([bound - 4], [4]), config)
    with pytest.raises(UserError) as caught:
        check_context_before_start(make_workload([bound - 3], [4]), config)
    assert (f"its context from the KV cache of --num-gpu-blocks {blocks} (one of them vLLM's null block, and one more "
            "per request as vLLM counts a layer with the model's 64-token sliding window, which may start mid-block) "
            "x 128 tokens: give more --num-gpu-blocks") in str(caught.value)
    for i, off in enumerate(NOT_SLIDING):
        plain = _cpu_config(model=str(_model_dir(tmp_path / f"plain{i}", **off)), num_gpu_blocks=blocks)
        assert engine_kwargs(plain, "dummy")["max_model_len"] == expected_context(plain)[0] == (blocks - 1) * 128
        assert "sliding" not in expected_context(plain)[1]


@pytest.mark.vllm
@pytest.mark.parametrize("blocks, window", [(3, 64), (4, 64), (6, 64), (6, 1)])
def test_the_sliding_window_bound_is_vllms_own_count(blocks, window):
    """vLLM's own per-request count (its KV spec classes, as its start-up check sums them) admits the bound on the
    usable blocks and refuses one token more, at ltrsched's token budget (the window plus the budget passes the
    context, so every layer of a sliding model counts the whole request)."""
    import torch
    from vllm.v1.kv_cache_interface import SlidingWindowSpec

    from ltrsched.engine.kv_layers import KVLayout, bounded_context

    budget = _cpu_config().max_num_batched_tokens
    layer = SlidingWindowSpec(block_size=128, num_kv_heads=4, head_size=64, dtype=torch.float32, sliding_window=window)
    bound = bounded_context(KVLayout(full=0, sliding=2, window=window), blocks, 128, budget, 4096)
    count = [layer.max_admission_blocks_per_request(max_in_flight_tokens=budget, max_model_len=n)
             for n in (bound, bound + 1)]
    assert count[0] <= blocks - 1 < count[1], count


@pytest.mark.vllm
def test_a_small_kv_cache_bounds_a_rope_scaled_context_too(tmp_path):
    """A cache between the config's 4,096 positions and the 16,384 that RoPE scaling x4 gives left vLLM's context at
    16,384, which it then refused at the start: the cache bounds the scaled context as the early check does."""
    from ltrsched.engine.runner import engine_kwargs
    from ltrsched.validation.engines import expected_context

    scaled = _model_dir(tmp_path / "scaled", rope_scaling={"type": "linear", "factor": 4.0})
    config = _cpu_config(model=str(scaled), num_gpu_blocks=40)
    assert engine_kwargs(config, "dummy")["max_model_len"] == expected_context(config)[0] == 39 * 128
    assert "max_model_len" not in engine_kwargs(_cpu_config(model=str(scaled), num_gpu_blocks=200), "dummy")


#: Engine commands given a request beyond llama-tiny's context (with -w and --model llama-tiny added).
TOO_LONG_COMMANDS = [
    ["replay"],
    ["validate", "--policies", "fcfs", "-o", "{tmp}/v"],
    ["replay", "--num-gpu-blocks", "10"],
    ["replay", "--kv-cache-gib", "0.0001"],
]

#: ``profile --quick`` options whose KV cache is too small for the probes, and the fix its one line names.
SMALL_CACHE_CASES = [
    (["--emulate", "a100-llama3-8b", "--num-gpu-blocks", "3"], "give --num-gpu-blocks 46 or more"),
    (["--emulate", "a100-llama3-8b", "--kv-cache-gib", "0.01"], "give --kv-cache-gib 0.09 (46 blocks) or more"),
    (["--model", "llama-tiny", "--num-gpu-blocks", "3"], "give --num-gpu-blocks 7 or more"),
]

#: Runs ``ltrsched ARGS`` for each ARGS (a JSON list, argv[1]) in turn, in this fresh interpreter: each command's
#: stderr (file descriptor 2: Python's and native writes alike) goes to its own file, stderr-<i>.txt, and a line
#: of JSON on stdout says its exit code and whether vLLM was imported by its end.
_ONE_INTERPRETER = """
import json, os, sys
from ltrsched.cli import main
for i, args in enumerate(json.loads(sys.argv[1])):
    sys.stderr.flush()
    fd = os.open(f"stderr-{i}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    sys.stderr.flush()
    print(json.dumps([code, "vllm" in sys.modules]), flush=True)
"""


@pytest.fixture(scope="module")
def refused_in_a_fresh_interpreter(tmp_path_factory):
    """The refusals before an engine start whose tests check that vLLM was not imported (this process may have it):
    :data:`TOO_LONG_COMMANDS` (on vLLM's CPU build) and :data:`SMALL_CACHE_CASES` (the llama-tiny one on the CPU
    build), one after another in ONE fresh interpreter, not one each (its start, with torch's and transformers'
    imports, was most of each test's time). A command that imported vLLM shows in its own result and every later
    one's. By (case list name, index): (exit code, vLLM imported, stderr, the command's own directory)."""
    from ltrsched.engine.platform import CPU, engine_platform

    cpu = engine_platform() == CPU
    root = tmp_path_factory.mktemp("refused")
    path = root / "long.csv"
    path.write_text("request_id,arrival_time,prompt_tokens,output_tokens\n0,0,10,3\n1,0,5000,4\n")
    commands = {}
    for i, command in enumerate(TOO_LONG_COMMANDS if cpu else []):
        (root / f"too-long-{i}").mkdir()
        commands["too long", i] = ([a.format(tmp=root / f"too-long-{i}") for a in command]
                                   + ["-w", str(path), "--model", "llama-tiny"])
    for i, (options, _) in enumerate(SMALL_CACHE_CASES):
        if cpu or "--model" not in options:
            commands["small cache", i] = ["profile", "--quick", "-o", "p.json", *options]
    r = subprocess.run([sys.executable, "-c", _ONE_INTERPRETER, json.dumps(list(commands.values()))],
                       capture_output=True, text=True, timeout=300, cwd=root)
    done = [json.loads(line) for line in r.stdout.splitlines()]
    failed = root / f"stderr-{len(done)}.txt"  # (the command it died in, if any)
    assert r.returncode == 0 and len(done) == len(commands), (
        r.stderr[-2000:], failed.read_text()[-2000:] if failed.exists() else None)
    return {key: (code, imported, (root / f"stderr-{i}.txt").read_text(), root / f"too-long-{key[1]}")
            for i, (key, (code, imported)) in enumerate(zip(commands, done))}


@pytest.mark.parametrize("index", range(len(TOO_LONG_COMMANDS)),
                         ids=[f"command{i}" for i in range(len(TOO_LONG_COMMANDS))])
def test_the_engine_commands_refuse_too_long_requests_without_starting_it(refused_in_a_fresh_interpreter, index):
    """`replay -w long.csv` started the engine (about 12 s on a CPU, minutes on a GPU), then said the requests
    exceed its max_model_len 4096, which the model's config.json told before: now a moment, vLLM not imported."""
    from ltrsched.engine.platform import CPU, engine_platform

    if engine_platform() != CPU:
        pytest.skip("needs vLLM's CPU build")
    command = TOO_LONG_COMMANDS[index]
    status, imported, stderr, tmp_path = refused_in_a_fresh_interpreter["too long", index]
    assert (status, imported) == (2, False), stderr[-2000:]  # (wall time: never asserted on a shared box)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert ("holds 0 KV block(s)" if "0.0001" in command else "exceed the engine's max_model_len") in lines[0]
    assert not (tmp_path / "v").exists()


def test_an_idle_real_engine_waits_at_most_a_minute_for_the_next_arrival(monkeypatch):
    """`replay --arrival replay` of a trace with a 10**9 s gap (epoch or nanosecond times) slept 31 years: an engine
    idle longer than MAX_IDLE_WAIT_S waits that long in wall time, and its run clock jumps the rest."""
    import time

    from ltrsched.engine import runner
    from ltrsched.engine.setup import MonotonicClock

    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    driver = object.__new__(runner.VllmDriver)
    driver.clock, driver.skip_idle = MonotonicClock(), False
    driver.wait_until(1e9)
    assert slept == [runner.MAX_IDLE_WAIT_S] == [60.0]
    assert driver.clock() >= 1e9 - runner.MAX_IDLE_WAIT_S  # (the sleep was not real: the jump alone)
    start = driver.clock()
    driver.wait_until(start + 2.5)  # a gap of the rates validated: waited in full, no jump
    assert slept[-1] == pytest.approx(2.5, abs=1e-3) and driver.clock() < start + 1
    driver.skip_idle = True  # (profile's probes: every idle gap jumped)
    driver.wait_until(driver.clock() + 100)
    assert len(slept) == 2


def test_simulate_does_not_replace_an_engine_run_in_its_out_dir(tmp_path, capsys):
    """`simulate -o RUN` on a directory holding `replay`'s run replaced the engine's requests.parquet and summary.json
    with the simulation's and removed its steps.parquet: an engine measurement (minutes of a GPU) lost."""
    from cli_helpers import run_cli_fast
    from test_cli_simulate import assert_one_line_error

    run = tmp_path / "run"
    run.mkdir()
    summary = '{"summary": {"steps": 6}, "meta": {"host": "cpu", "command": "ltrsched replay -w t.csv -o run"}}'
    for name, content in (("summary.json", summary), ("requests.parquet", "r"), ("steps.parquet", "s")):
        (run / name).write_text(content)
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "-o", "run", cwd=tmp_path)
    assert_one_line_error(r, "--out run holds a run of the engine (`ltrsched replay -w t.csv -o run`), which this "
                             "`simulate` would replace: give another --out")
    assert [(run / n).read_text() for n in ("summary.json", "requests.parquet", "steps.parquet")] == [summary, "r", "s"]
    assert run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "-o", "sim", cwd=tmp_path).returncode == 0
    assert run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "-o", "sim",
                        cwd=tmp_path).returncode == 0  # its own


def _engine(config, blocks: int, context: int, profile=None):
    """A started engine as check_probe_cache sees it (its config, KV blocks, context), without vLLM."""
    from types import SimpleNamespace

    return SimpleNamespace(config=config, emulated=profile is not None, emulated_profile=profile,
                           num_gpu_blocks=lambda: blocks, max_model_len=lambda: context)


def test_a_kv_cache_too_small_for_the_profiles_probes_names_the_smallest_that_works():
    """The probes' step count is known before they run (the simulator schedules them as the engine does): 46 blocks
    of 16 tokens give the quick emulated plan 70 steps (the engine measured 70), 45 give 37."""
    from ltrsched.sim.profiles import load_profile
    from ltrsched.validation.engines import engine_config
    from ltrsched.validation.probe_cache import check_probe_cache, planned_steps

    profile = load_profile("a100-llama3-8b")
    config = engine_config(emulate_profile="a100-llama3-8b", num_gpu_blocks=45)
    assert [planned_steps(config, b, 8192, True, None) for b in (2, 6, 19, 44, 45)] == [0, 2, 36, 37, 70]
    check_probe_cache(_engine(config, 46, 8192, profile), quick=True, repeats=None)
    with pytest.raises(UserError) as caught:
        check_probe_cache(_engine(config, 3, 8192, profile), quick=True, repeats=None)
    assert str(caught.value) == (
        "the engine's KV cache of 3 blocks x 16 tokens (one of them vLLM's null block) is too small for the profile's "
        "probes: those it holds give 0 step(s) to fit, and a fit needs 50: give --num-gpu-blocks 46 or more")
    gib = engine_config(emulate_profile="a100-llama3-8b", kv_cache_gib=0.01)  # (5 blocks of 2 MiB)
    with pytest.raises(UserError, match=r"KV cache of 5 blocks .*: give --kv-cache-gib 0\.09 \(46 blocks\) or more$"):
        check_probe_cache(_engine(gib, 5, 8192, profile), quick=True, repeats=None)
    cpu = _cpu_config(num_gpu_blocks=3)  # CPU plans on llama-tiny: 128-token blocks, the context bounded by them
    check_probe_cache(_engine(cpu, 3, 256), quick=False, repeats=None)  # (the full plan: 213 steps)
    check_probe_cache(_engine(cpu, 7, 768), quick=True, repeats=None)
    with pytest.raises(UserError, match=r"KV cache of 3 blocks x 128 tokens .* give --num-gpu-blocks 7 or more$"):
        check_probe_cache(_engine(cpu, 3, 256), quick=True, repeats=None)


def test_planned_steps_counts_a_probes_kv_and_context_as_the_fit_checks_do():
    """The warm-up probe, 4 requests of 64 + 8 tokens, holds KV for 71 tokens at most (its last sampled token gets
    none: BatchLimits.most_blocks_held, the simulator's and the engine's rule): one block of 71 tokens holds it, and
    its probe runs (1 usable step after it). planned_steps counted 72 tokens, 2 blocks, and gave 0 steps. Its context
    is 72 tokens: a context of 71 refuses it. One block holds no context of 72 tokens, which vLLM refuses to start
    with, and so does the simulator planned_steps runs (ltrsched.sim.config.cache_short): a context given beyond the
    cache is taken as the cache's, here 71 tokens, which refuses the probe (it gave 1 step on 1 block for a context of
    8,192 or 72 before)."""
    from ltrsched.validation.engines import engine_config
    from ltrsched.validation.probe_cache import planned_steps

    config = engine_config(emulate_profile="a100-llama3-8b", num_gpu_blocks=45, block_size=71)
    assert [planned_steps(config, b, 8192, True, None) for b in (1, 2)] == [0, 2]
    assert [planned_steps(config, 1, context, True, None) for context in (71, 72)] == [0, 0]
    assert [planned_steps(config, 2, context, True, None) for context in (71, 72)] == [0, 35]


@pytest.mark.parametrize("index", range(len(SMALL_CACHE_CASES)),
                         ids=[f"options{i}-{fix}" for i, (_, fix) in enumerate(SMALL_CACHE_CASES)])
def test_profile_refuses_a_kv_cache_too_small_for_its_probes_before_the_engine_starts(refused_in_a_fresh_interpreter,
                                                                                      index):
    """The cache's size is known before the start (the emulated engine's; a stated one on the CPU): said in a moment,
    vLLM not imported, where it took the engine's start (about 40 s on this machine) and its probes."""
    from ltrsched.engine.platform import CPU, engine_platform

    options, fix = SMALL_CACHE_CASES[index]
    if "--model" in options and engine_platform() != CPU:
        pytest.skip("a stated KV cache of the CPU engine")
    status, imported, stderr, _ = refused_in_a_fresh_interpreter["small cache", index]
    assert (status, imported) == (2, False), stderr[-2000:]  # (1.5 s unloaded; timing is not asserted)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the engine's KV cache of ") and lines[0].endswith(fix), lines


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("blocks, works", [(3, False), (45, False), (46, True)])
def test_profile_on_a_kv_cache_too_small_for_its_probes_names_the_fix(tmp_path, blocks, works):
    """`profile --num-gpu-blocks 3` stopped on a warm-up probe, "4 request(s) can never fit the engine's KV cache of 2
    usable blocks (first: request 0 needs 5 blocks)", requests the user never gave; 7 ran its few probes, then said
    only "too few usable steps to fit a profile (2)". The smallest cache named is the one that works. (About 9 s
    each: the emulated engine.)"""
    from test_cli_simulate import run_cli

    r = run_cli("profile", "--emulate", "h100-llama3-8b", "--quick", "--num-gpu-blocks", str(blocks), "-o", "p.json",
                cwd=tmp_path)
    if works:
        assert r.returncode == 0 and (tmp_path / "p.json").is_file(), r.stderr[-2000:]
        return
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (  # (after vLLM's own log lines)
        f"error: the engine's KV cache of {blocks} blocks x 16 tokens (one of them vLLM's null block) is too small for "
        f"the profile's probes: those it holds give {0 if blocks == 3 else 37} step(s) to fit, and a fit needs 50: "
        "give --num-gpu-blocks 46 or more")
    assert not (tmp_path / "p.json").exists()
