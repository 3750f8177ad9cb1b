"""The configuration rules written once (:mod:`ltrsched.policies.limit_rules`): BatchLimits, SimConfig, EngineConfig
and the engine commands' options refuse the same values with the same one-line reason, each naming the setting as
its user does (a field name in Python, a --flag on the command line)."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from ltrsched.engine.config import EngineConfig
from ltrsched.errors import UserError
from ltrsched.models import LLAMA3_8B
from ltrsched.policies import limit_rules
from ltrsched.policies.batching import BatchLimits
from ltrsched.sim.config import SimConfig
from ltrsched.sim.kv_capacity import kv_blocks_from_config
from ltrsched.validation.engines import engine_config

#: Values the engine commands refused before the engine started while EngineConfig (the Python API's engine
#: settings) took them, to fail later inside vLLM, or reported with another reason. Each: the settings, the reason
#: in field names.
ENGINE_CASES = [
    (dict(max_model_len=1), "max_model_len must be in 2..16,777,216 tokens, got 1"),
    (dict(max_model_len=(1 << 24) + 1), "max_model_len must be in 2..16,777,216 tokens, got 16777217"),
    (dict(max_num_batched_tokens=(1 << 24) + 1),
     "max_num_batched_tokens must be at most 16,777,216 tokens (the longest max_model_len; vLLM sizes its per-step "
     "buffers by it), got 16777217"),
    (dict(max_num_seqs=65537, max_num_batched_tokens=65537),
     "max_num_seqs must be at most 65,536 sequences (vLLM's model runner keeps a row of max_model_len token ids per "
     "sequence), got 65537"),
    (dict(max_resident_seqs=65537, max_num_batched_tokens=65537),
     "max_resident_seqs must be at most 65,536 sequences (vLLM's model runner keeps a row of max_model_len token "
     "ids per sequence), got 65537"),
    (dict(block_size=(1 << 24) + 16),
     "block_size must be at most 16,777,216 tokens (the longest max_model_len: a larger block holds no more of a "
     "request), got 16777232"),
    (dict(kv_cache_gib=float(1 << 21)),
     "kv_cache_gib must be at most 1,048,576 GiB (1 PiB, more than any machine holds), got 2097152.0"),
    # (EngineConfig said "num_gpu_blocks must be positive, got 0" and "max_resident_seqs must be positive, got 0")
    (dict(num_gpu_blocks=0), "num_gpu_blocks must be >= 2 (one is vLLM's null block), got 0"),
    (dict(max_resident_seqs=0), "max_resident_seqs (0) must be >= max_num_seqs (256)"),
]


def _as_options(reason: str) -> str:
    """``reason`` with every setting named as the command line names it."""
    for field in ("max_num_batched_tokens", "max_resident_seqs", "max_num_seqs", "max_model_len", "block_size",
                  "kv_cache_gib", "num_gpu_blocks", "tensor_parallel_size", "max_tokens"):
        reason = reason.replace(field, limit_rules.option_name(field))
    return reason


#: Options the emulated engine refuses outright (it runs no model), checked on the real engine's path.
REAL_ENGINE_CASES = [
    (dict(tensor_parallel_size=1025),
     "tensor_parallel_size must be at most 1,024 GPUs (vLLM starts a worker process per GPU of the group), got 1025"),
    (dict(max_tokens=(1 << 24) + 1, eos="model", model="smollm2"),
     "max_tokens must be at most 16,777,216 tokens (the longest max_model_len), got 16777217"),
]


@pytest.mark.parametrize("settings, reason, engine", [(*case, dict(emulate_profile="a100-llama3-8b"))
                                                      for case in ENGINE_CASES]
                         + [(*case, dict(platform="cuda")) for case in REAL_ENGINE_CASES])
def test_engine_config_refuses_what_the_engine_commands_refuse(settings, reason, engine):
    with pytest.raises(ValueError) as python_api:
        EngineConfig(**settings)
    assert str(python_api.value) == reason
    with pytest.raises(UserError) as command_line:
        engine_config(**engine, **settings)
    assert str(command_line.value) == _as_options(reason)


def test_the_resident_cap_reads_the_same_at_every_entry_point(capsys, tmp_path):
    """One rule, four entry points (and the simulator's command line): the same reason in each one's naming."""
    reason = "max_resident_seqs (4) must be >= max_num_seqs (8)"
    for build in (BatchLimits, SimConfig, EngineConfig):
        with pytest.raises(ValueError) as exc:
            build(max_num_seqs=8, max_resident_seqs=4)
        assert str(exc.value) == reason, build
    with pytest.raises(UserError) as exc:
        engine_config(emulate_profile="a100-llama3-8b", max_num_seqs=8, max_resident_seqs=4)
    assert str(exc.value) == _as_options(reason)
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "--max-num-seqs", "8",
                     "--max-resident-seqs", "4", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {_as_options(reason)}", r.stderr[-2000:]


@pytest.mark.parametrize("value", [0.0, 1.5, float("nan")])
def test_the_memory_fraction_reads_the_same_in_the_simulator_and_the_engine(value):
    reason = f"gpu_memory_utilization must be in (0, 1], got {value}"
    for build in (SimConfig, EngineConfig):
        with pytest.raises(ValueError) as exc:
            build(gpu_memory_utilization=value)
        assert str(exc.value) == reason, build
    with pytest.raises(UserError) as exc:
        kv_blocks_from_config(LLAMA3_8B, 80 << 30, util=value)
    assert str(exc.value) == reason


def test_the_kv_sizing_calls_a_string_utilization_what_it_is():
    """It said "gpu_memory_utilization must be in (0, 1], got '0.9'" of a fraction in (0, 1] given as text."""
    with pytest.raises(UserError, match=r"^gpu_memory_utilization must be a number, got '0\.9'$"):
        kv_blocks_from_config(LLAMA3_8B, 80 << 30, util="0.9")


def test_the_simulators_blocks_leave_the_null_block_out():
    """Not a disagreement: the simulator's (and BatchLimits') blocks are usable blocks, the engine's count vLLM's
    null block too; one block is a cache in the first, none in the second."""
    assert SimConfig(num_gpu_blocks=1).num_gpu_blocks == BatchLimits(num_gpu_blocks=1).num_gpu_blocks == 1
    with pytest.raises(ValueError, match=r"^num_gpu_blocks must be >= 2 \(one is vLLM's null block\), got 1$"):
        EngineConfig(num_gpu_blocks=1)


@pytest.mark.parametrize("rule, args", [
    (limit_rules.not_positive, ("max_num_seqs", None)),
    (limit_rules.not_positive, ("max_num_seqs", 1)),
    (limit_rules.resident_cap, (None, 256)),
    (limit_rules.resident_cap, (8, 8)),
    (limit_rules.engine_blocks, (2,)),
    (limit_rules.engine_token_budget, (8, 8, None)),
    (limit_rules.engine_model_len, (1 << 24,)),
    (limit_rules.kv_cache_size, (float(1 << 20),)),
    (limit_rules.memory_fraction, (1.0,)),
    (limit_rules.watermark_fraction, (0.0,)),
])
def test_the_edge_values_are_accepted(rule, args):
    assert rule(*args) is None


# ---------------------------------------------------------------------------- vLLM's token budget, under vllm-v1
@pytest.mark.parametrize("budget, seqs, resident, refused", [
    (16, 256, None, "max_num_batched_tokens (16) must be >= max_num_seqs (256), as vLLM requires"),
    (16, 8, 32, "max_num_batched_tokens (16) must be >= max_resident_seqs (32), as vLLM requires"),
    (16, 16, None, None),
    (32, 8, 32, None),
])
@pytest.mark.parametrize("chunked", [True, False])
def test_vllm_v1_semantics_refuse_the_budget_vllm_refuses(budget, seqs, resident, refused, chunked):
    """vLLM 0.32's SchedulerConfig refuses max_num_batched_tokens < max_num_seqs, chunked prefill or not, and the
    engine's EngineConfig refused it; SimConfig(semantics="vllm-v1"), which models that engine, ran it. It now refuses
    what EngineConfig refuses, for the same reason (paper semantics model no engine start: they still take it)."""
    settings = dict(max_num_batched_tokens=budget, max_num_seqs=seqs, max_resident_seqs=resident)
    sim = dict(settings, semantics="vllm-v1", preemption="recompute", chunked_prefill=chunked)
    if refused is None:
        SimConfig(**sim)
        EngineConfig(**settings)
    else:
        with pytest.raises(ValueError, match=rf"^under semantics='vllm-v1', {refused}$".replace("(", r"\(")
                           .replace(")", r"\)")):
            SimConfig(**sim)
        with pytest.raises(ValueError, match=rf"^{refused}$".replace("(", r"\(").replace(")", r"\)")):
            EngineConfig(**settings)
    SimConfig(**settings, chunked_prefill=chunked)  # (paper semantics)


def test_simulate_refuses_the_budget_vllm_refuses_in_one_line(capsys):
    r = run_cli_fast(capsys, "simulate", "-n", "5", "--semantics", "vllm-v1", "--max-num-batched-tokens", "8",
                     "--max-num-seqs", "12", "--no-progress")
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: under --semantics vllm-v1, --max-num-batched-tokens (8) must be >= "
                                "--max-num-seqs (12), as vLLM requires"), r.stderr


# ---------------------------------------------------------------------------- a request's context
def test_the_context_rule_counts_without_wrapping_around():
    """prompt + output + extra > max_model_len, compared without the int64 sum: 2**62 + 2**62 wrapped to -2**63 and
    passed."""
    import numpy as np

    huge = np.array([1 << 62, 100, 8000, 8000], dtype=np.int64)
    out = np.array([1 << 62, 50, 192, 177], dtype=np.int64)
    assert limit_rules.beyond_context(huge, out, 8192).tolist() == [0]
    assert limit_rules.beyond_context(huge, out, 8192, extra_output_tokens=15).tolist() == [0, 2]
    assert limit_rules.beyond_context(huge, np.int64((1 << 63) - 1), 1 << 60).tolist() == [0, 1, 2, 3]
    assert limit_rules.beyond_context(huge, out, 10, extra_output_tokens=11).tolist() == [0, 1, 2, 3]


def test_the_engines_context_check_never_sees_counts_whose_sum_wraps_around():
    """The engine's check summed prompt + output + extra in int64: a request of 2**62 + 2**62 tokens passed as
    -9.2e18 tokens long. A Workload (built in code or read from a file) now holds no count beyond 2**53, so such a
    request is refused where it is built; the check itself compares without the sum (limit_rules.beyond_context,
    above)."""
    from conftest import make_workload
    from ltrsched.engine.replay import check_context

    with pytest.raises(UserError, match=r"not a token count \(a whole number in 1\.\.2\*\*53\)"):
        make_workload([1 << 62, 10], [1 << 62, 5])
    with pytest.raises(UserError, match=r"^1 request\(s\) exceed the engine's max_model_len 8191 tokens \(first: "
                                        r"request 0, 8192 tokens, 15 of them policy po's extra output tokens\)"):
        check_context(make_workload([8000, 10], [177, 5]), 8191, 15, extra_from="policy po")
    assert check_context(make_workload([8000, 10], [177, 5]), 8192, 15).tolist() == [8192, 30]


def test_the_simulators_kv_refusal_names_the_tokens_po_adds(capsys, tmp_path):
    """A request of 100 + 60 tokens holds the KV of 159: 10 blocks of 16, the whole cache; PO serves it 15 more tokens
    (its estimate phase), 11 blocks. The simulator said "needs 11 blocks of 16 tokens", naming neither the 175 tokens
    nor PO (the engine's line names both)."""
    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n100,60\n")
    # (the context the 10 blocks hold, given: a longer one is refused as vLLM refuses it at its start; it was 8,192)
    args = ("simulate", "-w", tmp_path / "w.csv", "--num-gpu-blocks", "10", "--max-model-len", "160", "--no-progress")
    assert run_cli_fast(capsys, *args, "-P", "fcfs").returncode == 0
    r = run_cli_fast(capsys, *args, "-P", "po")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: 1 request(s) can never fit the KV cache of 10 usable blocks (first: request 0 in row 1 of "
        f"{tmp_path / 'w.csv'} needs 11 blocks of 16 tokens for 175 tokens, 15 of them policy po's extra output "
        "tokens); raise --num-gpu-blocks (or leave it to "
        "the profile), or leave such requests out"), r.stderr


def test_pos_estimate_tokens_stay_out_of_the_simulators_context_for_reproduce_table3():
    """PO's 15 estimate tokens do not count toward the simulator's context (the engine's do: vLLM would stop such a
    request), because counting them refused a run of the paper's experiments: `reproduce table3`'s synthetic data
    generation under PO on 10,000 lmsys-like-70b requests, 3 of them within 15 tokens of the profile's 8,192."""
    from ltrsched.experiments import table3
    from ltrsched.experiments.runner import _check_setup, _sim_config, build_workload
    from ltrsched.policies import make_policy

    spec = next(s for s in table3.specs(quick=False) if s.setting == "70B LMSYS" and s.policy.startswith("po")
                and s.num_requests == 10_000)
    wl = build_workload(spec)
    policy = make_policy(spec.policy)
    total = (wl.df["prompt_tokens"] + wl.df["output_tokens"]).to_numpy()
    assert policy.extra_output_tokens == 15 and int((total + 15 > 8192).sum()) == 3 and int(total.max()) == 8192
    _check_setup(spec, wl, policy, _sim_config(spec))  # (no refusal)
