"""The engine commands on length-only workloads unlike ShareGPT's (other models' lengths): their refusals name what
the user can change. (The emulated engine serving such workloads exactly as the simulator schedules them, every
built-in policy: ``tests/test_engine_emulated.py``, ``tests/test_fuzz_sim_engine.py``.)"""

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
    naming neither the 176 tokens nor the policy that adds them, of the several it was given."""
    workload = _csv(tmp_path / "w.csv", [(100, 61)])
    r = run_cli_fast(capsys, "validate", *EMU, "-w", workload, "--num-gpu-blocks", "11", "--policies", "fcfs;po;srtf",
                     "-o", tmp_path / "v")
    assert_one_line_error(r, "1 request(s) can never fit the engine's KV cache of 10 usable blocks (first: request 0 "
                             "needs 11 blocks for 176 tokens, 15 of them policy po's extra output tokens)")
    assert not (tmp_path / "v").exists()


def test_a_context_refusal_under_a_short_max_model_len_says_to_raise_it(capsys, tmp_path):
    """The real engine: a prompt of 256 tokens + 1 under --max-model-len 256 on llama-tiny (a context of 4,096) was
    refused with "leave them out, or serve a model with a longer context", as if the model could not take it."""
    workload = _csv(tmp_path / "w.csv", [(256, 1), (10, 5)])
    r = run_cli_fast(capsys, "replay", "-w", workload, "--max-model-len", "256", "-m", "llama-tiny")
    assert_one_line_error(r, "1 request(s) exceed the engine's max_model_len 256 tokens (first: request 0, 257 "
                             "tokens), its context from --max-model-len: raise --max-model-len (up to 4096, "
                             "llama-tiny's context), or leave them out")
