"""The built-in profiles are reproducible from the reference data (../shared/data/a100-profiles)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from ltrsched.errors import UserError
from ltrsched.sim.profiles import hardware as hw
from ltrsched.sim.profiles import load_profile
from ltrsched.sim.profiles.commands import decode_shape, prefill_shape
from ltrsched.sim.profiles.derive_a100 import (
    PROFILE_DIR,
    RECIPES,
    default_data_dir,
    derive_all,
    derive_profile,
    derive_profiles,
    retarget_gemm,
)
from ltrsched.sim.profiles.io import dumps_profile

DATA = default_data_dir()
needs_data = pytest.mark.skipif(not (DATA / "llama3-8b-mlp.csv").exists(),
                                reason=f"reference data not found at {DATA}")
MS = 1e-3


@pytest.fixture(scope="module")
def derived():
    return derive_all(DATA)


@needs_data
@pytest.mark.parametrize("name", [r.name for r in RECIPES])
def test_committed_json_is_reproduced(derived, name):
    committed = (PROFILE_DIR / f"{name}.json").read_text(encoding="utf-8")
    assert dumps_profile(derived[name]) == committed
    assert derived[name] == load_profile(name)


@needs_data
def test_check_mode(tmp_path):
    ok = CliRunner().invoke(derive_profiles, ["--check"])
    assert ok.exit_code == 0, ok.output
    written = CliRunner().invoke(derive_profiles, ["--out", str(tmp_path)])
    assert written.exit_code == 0, written.output
    (tmp_path / "a100-llama3-8b.json").write_text("{}")
    stale = CliRunner().invoke(derive_profiles, ["--check", "--out", str(tmp_path)])
    assert stale.exit_code == 1
    assert "a100-llama3-8b: differs" in stale.output


def test_missing_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="reference data not found"):
        derive_profile(RECIPES[0], tmp_path)


@needs_data
def test_on_vidur_gpu_decode_matches_public_record():
    """Derived for the GPU vidur measured on (A100-80GB, no bandwidth correction), a batch-1 decode
    step lands in the public record's 10-13 ms."""
    recipe = dataclasses.replace(RECIPES[0], gpu=hw.A100_SXM4_80GB)
    p = derive_profile(recipe, DATA)
    assert 10 * MS <= p.step_time(decode_shape(1)) <= 13 * MS


@needs_data
def test_bandwidth_correction_only_hits_memory_bound_steps(derived):
    """40GB vs 80GB: ~1.31x at 1 token (weight streaming), within a few % once compute-bound."""
    recipe80 = dataclasses.replace(RECIPES[0], gpu=hw.A100_SXM4_80GB)
    p80, p40 = derive_profile(recipe80, DATA), derived["a100-llama3-8b"]
    small = p40.breakdown(decode_shape(1))["non_attention_s"] / p80.breakdown(decode_shape(1))["non_attention_s"]
    assert small == pytest.approx(2.039 / 1.555, rel=0.01)
    large = (p40.breakdown(prefill_shape(4096))["non_attention_s"]
             / p80.breakdown(prefill_shape(4096))["non_attention_s"])
    assert 1.0 <= large < 1.05


def test_retarget_gemm_roofline():
    tokens = np.array([1.0, 64, 4096])
    measured = np.array([1.0, 1.1, 20.0])  # memory-bound, then compute-bound
    same = retarget_gemm(tokens, measured, 4096, 4096, 2, 1.0, 1.0)
    assert same[0] == 1.0 and same[2] == 20.0
    slower_hbm = retarget_gemm(tokens, measured, 4096, 4096, 2, 2.0, 1.0)
    assert slower_hbm[0] == pytest.approx(2.0)
    assert slower_hbm[2] == 20.0  # compute-bound: unaffected by bandwidth
    faster = retarget_gemm(tokens, measured, 4096, 4096, 2, 0.5, 2.5)
    assert faster[0] == pytest.approx(0.5) and faster[2] == pytest.approx(8.0)


@pytest.mark.parametrize("base", ["a100-llama3-8b", "a100-llama3-70b-tp8"])
def test_vllm041_eager_variant_differs_only_in_cpu_time_per_sequence(base):
    """The paper's-engine variant keeps every GPU time and memory fact of its base profile; only the
    per-sequence CPU time changes, to the measured vLLM 0.4.1 value (PROFILES.md)."""
    b, v = load_profile(base), load_profile(f"{base}-vllm041-eager")
    for f in dataclasses.fields(b):
        if f.name in ("name", "description", "provenance", "overhead_s_per_seq") or f.name.startswith("_"):
            continue
        assert getattr(v, f.name) == getattr(b, f.name), f.name
    assert b.overhead_s_per_seq == hw.VLLM04_EAGER_ESTIMATE.s_per_seq
    assert v.overhead_s_per_seq == hw.VLLM041_EAGER_MEASURED.s_per_seq > b.overhead_s_per_seq
    assert v.provenance["engine_cpu"]["name"] == hw.VLLM041_EAGER_MEASURED.name
    assert "engine_cpu" not in b.provenance
    # a full decode step of 256 sequences pays 256 x the difference, nothing else
    shape = decode_shape(256)
    assert v.step_time(shape) - b.step_time(shape) == pytest.approx(256 * (v.overhead_s_per_seq - b.overhead_s_per_seq))
