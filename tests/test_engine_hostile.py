"""Hostile inputs to the engine commands (replay, profile, validate, label): each is served correctly or
refused with a one-line error before the engine runs, never a silently wrong number or a lost file."""

from __future__ import annotations

import pytest

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
                                        r"15 of them the policy's extra output tokens\)"):
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
def test_label_refuses_to_write_over_its_prompts_file(tmp_path, prompts, out, what):
    """`label --prompts x.json --out x.parquet` replaced the user's ShareGPT file with the labels' description
    at the end of the run (and a rerun was then refused: the prompts' hash had changed)."""
    from test_cli_simulate import assert_one_line_error, run_cli

    source = tmp_path / prompts
    source.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "sub").mkdir()
    source.write_text("{\"prompt\": \"hello\"}\n")
    before = source.read_bytes()
    r = run_cli("label", "--prompts", prompts, "--out", out, cwd=tmp_path)
    assert_one_line_error(r, f"--prompts {prompts} would be overwritten by {what}")
    assert source.read_bytes() == before
