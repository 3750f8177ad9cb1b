"""The engine commands on length-only workloads unlike ShareGPT's (other models' lengths, other settings): refusals
name what the user can change; `profile`'s probes and `validate --rates auto` follow the engine's context and KV
cache. (The emulated engine serving such workloads exactly as the simulator schedules them, every built-in policy:
``tests/test_engine_emulated.py``, ``tests/test_fuzz_sim_engine.py``.)"""

from __future__ import annotations

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast

EMU = ("--emulate", "a100-llama3-8b")


def _csv(path, rows) -> str:
    path.write_text("prompt_tokens,output_tokens\n" + "".join(f"{p},{o}\n" for p, o in rows))
    return str(path)


def test_a_kv_refusal_names_the_tokens_a_policys_extra_output_adds(capsys, tmp_path):
    """A request of 100 + 61 tokens holds the KV of 160: 10 blocks of 16, which a cache of 11 (10 usable) holds; PO
    serves it 15 more tokens (its estimate phase), 11 blocks. validate refused it with "request 0 needs 11 blocks",
    naming neither the 176 tokens nor the policy that adds them, of the several it was given. Without --max-model-len
    the 11 blocks bound the context to 160 tokens, as the real engine takes it (``default_context_bound``): the line
    is the context's, naming them too."""
    workload = _csv(tmp_path / "w.csv", [(100, 61)])
    r = run_cli_fast(capsys, "validate", *EMU, "-w", workload, "--num-gpu-blocks", "11", "--policies", "fcfs;po;srtf",
                     "-o", tmp_path / "v")
    assert_one_line_error(r, "1 request(s) exceed the engine's max_model_len 160 tokens (first: request 0 in row 1 of "
                             f"{workload}, 176 tokens, "
                             "15 of them policy po's extra output tokens), its context from the KV cache of "
                             "--num-gpu-blocks 11 (one of them vLLM's null block) x 16 tokens: give more "
                             "--num-gpu-blocks, or leave them out")
    assert not (tmp_path / "v").exists()


def test_a_context_refusal_under_a_short_max_model_len_says_to_raise_it(tmp_path):
    """The real engine (its check before it starts, as `replay`/`validate` make it): a prompt of 256 tokens + 1 under
    --max-model-len 256 on llama-tiny (a context of 4,096) was refused with "leave them out, or serve a model with a
    longer context", as if the model could not take it. At the model's own context that advice stands."""
    from ltrsched.errors import UserError
    from ltrsched.sim.commands import build_workload
    from ltrsched.validation.engines import check_context_before_start, engine_config

    workload = build_workload(_csv(tmp_path / "w.csv", [(256, 1), (10, 5)]), None, "burst", None, 1.0, None, 0)
    with pytest.raises(UserError) as short:
        check_context_before_start(workload, engine_config(model="llama-tiny", max_model_len=256, platform="cpu"))
    assert str(short.value) == ("1 request(s) exceed the engine's max_model_len 256 tokens (first: request 0 in row 1 "
                                f"of {tmp_path / 'w.csv'}, 257 "
                                "tokens), its context from --max-model-len: raise --max-model-len (up to 4096, "
                                "llama-tiny's context), or leave them out")
    long = build_workload(_csv(tmp_path / "l.csv", [(4096, 1)]), None, "burst", None, 1.0, None, 0)
    with pytest.raises(UserError, match="tokens\\), its context from --max-model-len: leave them out, or serve a model "
                                        "with a longer context$"):
        check_context_before_start(long, engine_config(model="llama-tiny", max_model_len=4096, platform="cpu"))


@pytest.mark.parametrize("context", [72, 100, 150, 300])
def test_profile_probes_fit_a_short_context(context):
    """Under a short --max-model-len, decode probes of a prompt plus the outputs outlasting their batch's prefill went
    beyond the context (150 tokens: 117 + 71 for 256 sequences), and profile refused every KV cache size for them.
    Each probe now fits the context, its prompt shortened where needed; a context of 8,192 keeps the plan as it was."""
    from ltrsched.engine.config import EngineConfig
    from ltrsched.validation.profiling import probe_plan

    config = EngineConfig(platform="cuda", block_size=16)
    plan = probe_plan(config, usable_blocks=9561, max_model_len=context, quick=True)
    requests = [r for probe in plan.probes(max_num_seqs=256, budget=768) for r in probe]
    assert max(p + o for p, o in requests) <= context and min(p for p, _ in requests) >= 1
    decode_batches = {len(probe) for probe in plan.probes(256, 768)[1:] if probe[0][1] > 1}
    assert decode_batches == {1, 4, 16, 64, 256}  # (every batch probed, at a shorter prompt)


@pytest.mark.parametrize("context", [2, 33, 71])
def test_profile_under_a_context_too_short_for_its_probes_names_the_context(capsys, tmp_path, context):
    """--max-model-len 33 or less left no decode probe (32 outputs + a prompt): profile said "profile-probes: 341
    request(s) with prompt_tokens < 1"; up to 150 tokens it blamed the KV cache, "which no KV cache size gives". The
    warm-up probe takes 72 tokens (64 + 8)."""
    r = run_cli_fast(capsys, "profile", "--quick", *EMU, "--max-model-len", str(context), "-o", tmp_path / "p.json")
    assert_one_line_error(r, f"the engine's context of {context} tokens is too short for the profile's probes",
                          "give --max-model-len 72 or more")
    assert not (tmp_path / "p.json").exists()


def test_auto_rates_take_the_context_given(tmp_path):
    """`validate --rates auto --max-model-len 8400` on a reasoning-length output (100 + 8,200 tokens): the capacity
    run refused it at the profile's context, "1 request(s) exceed the profile's context limit of 8192 tokens"."""
    from ltrsched.validation.commands import _auto_rates
    from ltrsched.validation.engines import engine_config

    workload = _csv(tmp_path / "w.csv", [(100, 8200), (50, 3)])
    config = engine_config(emulate_profile="a100-llama3-8b", max_model_len=8400)
    rates = _auto_rates(workload, None, 0, "a100-llama3-8b", config)
    assert len(rates) == 3 and 0 < rates[0] < rates[1] < rates[2]


def test_auto_rates_take_the_emulated_engines_kv_cache(tmp_path):
    """`validate --emulate ... --kv-cache-gib 0.05 --rates auto`: the engine holds 25 KV blocks, but the capacity run
    sized the profile's whole GPU (9,562 blocks): these 60 requests' 100% rate was 82.72 req/s either way; on the
    engine's 25 blocks it is 22.2 req/s."""
    from ltrsched.validation.commands import _auto_rates
    from ltrsched.validation.engines import engine_config

    workload = _csv(tmp_path / "w.csv", [(30 + 7 * (i % 5), 1 + 5 * (i % 7)) for i in range(60)])
    whole = _auto_rates(workload, None, 0, "a100-llama3-8b", engine_config(emulate_profile="a100-llama3-8b"),
                        "a100-llama3-8b")
    small = _auto_rates(workload, None, 0, "a100-llama3-8b",
                        engine_config(emulate_profile="a100-llama3-8b", kv_cache_gib=0.05), "a100-llama3-8b")
    assert small[1] < 0.6 * whole[1]


def test_auto_rates_take_the_cpu_engines_kv_cache(tmp_path):
    """The real CPU engine with --kv-cache-gib 0.01 holds 20 blocks of 128 tokens (1 GiB: 2,048); the capacity run
    sized the cpu-llama-tiny profile's memory (2,047 usable blocks) for either: a 100% rate of 6.75 req/s for these
    60 requests, 3.48 on the engine's 20 blocks. (The seconds this takes: transformers' import, reading config.json.)"""
    from ltrsched.validation.commands import _auto_rates
    from ltrsched.validation.engines import engine_config

    workload = _csv(tmp_path / "w.csv", [(200 + 37 * (i % 5), 100 + 41 * (i % 7)) for i in range(60)])
    whole = _auto_rates(workload, None, 0, "cpu-llama-tiny", engine_config(platform="cpu"))
    small = _auto_rates(workload, None, 0, "cpu-llama-tiny", engine_config(platform="cpu", kv_cache_gib=0.01))
    assert small[1] < 0.6 * whole[1]
