"""A request that the KV cache holds but not beside the watermark the paper's batch rules keep free (helper
profreads): `simulate --num-gpu-blocks 200` refused 199 blocks as "can never fit the KV cache of 198 usable blocks ...;
raise --num-gpu-blocks", naming neither the watermark nor the blocks that fit, while `--semantics vllm-v1` (and the
emulated engine, vLLM V1's rules) served it. The line now says the watermark is why and what to give."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from ltrsched.policies import make_policy
from ltrsched.sim.config import SimConfig
from ltrsched.sim.simulate import fewest_blocks_beside_watermark, simulate


@pytest.fixture
def one_request(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("prompt_tokens,output_tokens\n3170,10\n")  # (3,179 tokens of KV: 199 blocks of 16)
    return path


def test_the_refusal_names_the_watermark_and_what_to_give(capsys, one_request):
    r = run_cli_fast(capsys, "simulate", "-w", one_request, "--num-gpu-blocks", "200", "--no-progress")
    assert r.returncode == 2
    assert r.stderr == (
        f"error: 1 request(s) can never fit the KV cache of 198 usable blocks (first: request 0 in row 1 of "
        f"{one_request} needs 199 blocks of 16 tokens); 2 of the cache's 200 blocks are held back as the watermark "
        "under the paper's batch rules (--semantics paper), which vLLM V1's rules let a request admitted alone use: "
        "give --num-gpu-blocks 201 or more, or --semantics vllm-v1, or leave such requests out\n")


@pytest.mark.parametrize("fix", [("--num-gpu-blocks", "201"), ("--num-gpu-blocks", "200", "--semantics", "vllm-v1")])
def test_each_fix_the_line_names_runs_the_request(capsys, one_request, fix):
    r = run_cli_fast(capsys, "simulate", "-w", one_request, *fix, "--no-progress")
    assert r.returncode == 0, r.stderr


def test_a_request_beyond_the_whole_cache_keeps_the_plain_fix(capsys, tmp_path):
    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n100,60\n")
    r = run_cli_fast(capsys, "simulate", "-w", tmp_path / "w.csv", "--num-gpu-blocks", "10", "--max-model-len", "160",
                     "-P", "po", "--no-progress")
    assert r.returncode == 2
    assert "watermark" not in r.stderr and r.stderr.endswith("raise --num-gpu-blocks (or leave it to the profile), or "
                                                             "leave such requests out\n")


def test_the_python_api_names_its_own_settings():
    config = SimConfig(num_gpu_blocks=200, max_model_len=3200)
    with pytest.raises(ValueError) as err:
        simulate(make_workload([3170], [10]), make_policy("fcfs"), config)
    assert str(err.value).endswith(
        "2 of the cache's 200 blocks are held back as the watermark under the paper's batch rules (semantics='paper'), "
        "which vLLM V1's rules let a request admitted alone use: give num_gpu_blocks=201 or more, or "
        "semantics='vllm-v1', or a smaller watermark, or leave such requests out")


@pytest.mark.parametrize("watermark", [0.0, 0.01, 0.2, 0.5, 0.99, 0.999999])
@pytest.mark.parametrize("needed", [1, 2, 199, 10**6])
def test_the_fewest_blocks_beside_the_watermark(needed, watermark):
    blocks = fewest_blocks_beside_watermark(needed, watermark)
    assert blocks - int(watermark * blocks) >= needed  # (enough)
    assert blocks == needed or (blocks - 1) - int(watermark * (blocks - 1)) < needed  # (and the fewest)


def test_a_sweep_names_the_watermark_with_its_own_fix(capsys, tmp_path):
    """A sweep file sets neither the KV blocks nor the batch rules: the line names the watermark (one block of the
    181 that cpu-smollm2's GPU memory sizes) and the sweep's own fix."""
    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n23000,100\n")  # (23,099 tokens: 181 blocks of 128)
    (tmp_path / "s.toml").write_text('workloads = ["w.csv"]\npolicies = ["fcfs"]\nprofiles = ["cpu-smollm2"]\n'
                                     "max_model_len = 23168\n")
    r = run_cli_fast(capsys, "sweep", tmp_path / "s.toml", "--out", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr.endswith(
        "1 request(s) can never fit the KV cache of 180 usable blocks (first: request 0 in row 1 needs 181 blocks of "
        "128 tokens); 1 of the cache's 181 blocks is held back as the watermark under the paper's batch rules, which "
        "vLLM V1's rules let a request admitted alone use; use a profile with more GPU memory, or leave such requests "
        "out\n"), r.stderr
