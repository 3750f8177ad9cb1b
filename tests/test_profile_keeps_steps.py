"""`ltrsched profile` keeps the steps it measured where the fitted profile is refused (helper profreads): the steps were
written after the profile, so a fit that save_profile refused (a key past its limit) lost the probes' measurement,
minutes of an engine's time, and the line said nothing of it. The probes are a fake measurement here (the emulated
engine's probes take a minute under load): steps timed by a profile whose decode attention takes 2 s per KV token,
past the 1 s a profile file may hold."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from ltrsched.engine.config import EngineConfig
from ltrsched.sim.profiles import load_profile
from ltrsched.sim.step_shape import StepShape
from ltrsched.validation import probe_runs
from ltrsched.validation.engines import DeviceInfo
from ltrsched.validation.profiling import PROBE_GAP_S


def _fake_run(decode_s_per_kv_token: float) -> probe_runs.ProbeRun:
    """A probe run whose steps a100-llama3-8b's model times, its decode attention ``decode_s_per_kv_token``."""
    truth = replace(load_profile("a100-llama3-8b"), decode_attention_s_per_kv_token=decode_s_per_kv_token)
    shapes = [StepShape(num_decode_seqs=b, decode_context_tokens=b * c)
              for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) for c in (128, 1024, 3072)]
    shapes += [StepShape(num_prefill_tokens=t, num_prefill_seqs=1, prefill_attention_pairs=t * (t + 1) / 2)
               for t in (16, 32, 64, 128, 256, 384, 512, 640, 768)]
    shapes *= 3
    cycle = np.array([truth.step_time(s) for s in shapes])
    steps = pl.DataFrame({
        "start": PROBE_GAP_S + np.cumsum(cycle) - cycle, "cycle": cycle,
        "num_prefill_tokens": [s.num_prefill_tokens for s in shapes],
        "num_prefill_seqs": [s.num_prefill_seqs for s in shapes],
        "num_decode_seqs": [s.num_decode_seqs for s in shapes],
        "decode_context_tokens": [s.decode_context_tokens for s in shapes],
        "prefill_attention_pairs": [float(s.prefill_attention_pairs) for s in shapes],
    })
    return probe_runs.ProbeRun(
        steps=steps, plan_repeats=3, probe_requests=len(shapes), config=EngineConfig(model="fake-model", block_size=16),
        emulated=True, host="test host", host_info=None,
        device=DeviceInfo("fake GPU", "fake", truth.gpu_memory_bytes, 0.9), model_config=dict(truth.model_config),
        num_gpu_blocks=truth.num_gpu_blocks(16, 0.9) + 1, max_model_len=8192)


@pytest.fixture
def measured(monkeypatch):
    def use(decode_s_per_kv_token):
        run = _fake_run(decode_s_per_kv_token)
        monkeypatch.setattr(probe_runs, "measure_probe_runs", lambda *args, **kwargs: [run])
        return run
    return use


def test_a_fitted_profile_refused_keeps_the_measured_steps(capsys, tmp_path, measured):
    run = measured(2.0)
    out = tmp_path / "p.json"
    r = run_cli_fast(capsys, "profile", "--emulate", "a100-llama3-8b", "--out", out)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: profile 'fake-fake-model' (not written to {str(out)!r}): key "
                               "'decode_attention_s_per_kv_token' is 2")
    steps_out = tmp_path / "p.steps.parquet"
    assert r.stderr.endswith(f"; the {run.steps.height} measured steps are kept in {steps_out}\n")
    assert not out.exists()
    assert pl.read_parquet(steps_out).equals(run.steps)


def test_a_profile_fitted_is_written_beside_its_steps(capsys, tmp_path, measured):
    run = measured(1e-8)
    out = tmp_path / "p.json"
    r = run_cli_fast(capsys, "profile", "--emulate", "a100-llama3-8b", "--out", out)
    assert r.returncode == 0, r.stderr
    assert load_profile(out).decode_attention_s_per_kv_token == pytest.approx(1e-8, rel=0.05)
    assert pl.read_parquet(tmp_path / "p.steps.parquet").equals(run.steps)
