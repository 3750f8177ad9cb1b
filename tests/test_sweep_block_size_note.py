"""A sweep file's ``block_size`` other than a profile's engine's is noted as ``simulate --block-size`` notes it, naming
the file's key."""

from __future__ import annotations

from cli_helpers import run_cli_fast


def test_a_sweep_notes_a_block_size_other_than_a_profiles_engine_once_per_profile(capsys, tmp_path):
    """``simulate --block-size`` notes a size other than the profile's engine's (128 for the cpu-* profiles); a sweep's
    ``block_size`` said nothing. The same note, once per (profile, block size) pair however many runs share it; none
    for a profile whose engine's size is not known (a100-llama3-8b) or equals it. It names the file's key: it said
    ``--block-size``, an option a sweep has not."""

    (tmp_path / "w.csv").write_text("arrival_time,prompt_tokens,output_tokens\n"
                                    + "".join(f"{i * 0.1},{50 + i},{20 + i}\n" for i in range(20)))
    profiles = '["cpu-smollm2", "cpu-llama-tiny", "a100-llama3-8b"]'
    for size, noted in ((16, ["cpu-smollm2", "cpu-llama-tiny"]), (128, []), (None, [])):
        key = f"block_size = {size}\n" if size is not None else ""
        (tmp_path / "s.toml").write_text(f'workloads = ["w.csv"]\npolicies = ["fcfs", "srtf"]\nprofiles = {profiles}\n'
                                         f"{key}")
        r = run_cli_fast(capsys, "sweep", "s.toml", "--out", f"o{size}", "--jobs", "1", cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        notes = [line for line in r.stderr.splitlines() if "KV blocks" in line]
        assert notes == [f"note: profile {p} was measured on an engine with 128-token KV blocks; with block_size = "
                         f"{size} the simulation's KV cache differs from the engine's (leave 'block_size' out to use "
                         "128)" for p in noted], (size, notes)
