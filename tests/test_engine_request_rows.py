"""The engine's refusals of a request beyond its context name the request's place in the workload's file, as the
simulator's do: "request 24" alone named an id the loader numbered, no row of the file once ``-n`` sampled it. And
``replay`` on the real engine says before it starts when a workload's arrivals alone take minutes of wall time."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


def _trace(path, long_row: int, rows: int = 30):
    """A length-only .csv of ``rows`` requests, the one in (1-based) row ``long_row`` 30,000 output tokens long."""
    with open(path, "w") as f:
        f.write("Request tokens,Response tokens\n")
        for i in range(1, rows + 1):
            f.write(f"100,{30000 if i == long_row else 10}\n")
    return path


def test_context_refusal_names_the_row_of_a_sampled_file(tmp_path, capsys):
    w = _trace(tmp_path / "other.csv", long_row=21)
    # (a file without ids numbers each request by its place in the file, before -n samples it: row 21 is request 20)
    r = run_cli_fast(capsys, "replay", "--emulate", "cpu-llama-tiny", "-w", w, "-n", "25", "--seed", "1")
    assert r.returncode == 2, r
    assert r.stderr == (f"error: 1 request(s) exceed the engine's max_model_len 4096 tokens (first: request 20 in row 21 "
                        f"of {w}, 30100 tokens): raise --max-model-len if the model takes longer contexts, or leave "
                        "them out\n"), r.stderr



def test_replay_on_the_real_engine_says_up_front_when_its_arrivals_take_long(tmp_path, capsys, monkeypatch):
    """Arrivals spread over an hour were served in wall-clock time (each idle gap up to a minute) without a word;
    now a note before the engine starts says how long at least, and how to compress them."""
    from ltrsched.engine import platform

    def no_start(*args, **kwargs):
        raise RuntimeError("the engine started")

    monkeypatch.setattr(platform, "engine_platform", lambda: platform.CPU)
    monkeypatch.setattr("ltrsched.engine.runner.VllmDriver", no_start)
    w = tmp_path / "hour.csv"
    w.write_text("arrival_time,prompt_tokens,output_tokens\n" + "".join(f"{i * 30},30,4\n" for i in range(121)))
    with pytest.raises(RuntimeError, match="the engine started"):
        run_cli_fast(capsys, "replay", "-w", w, "--arrival", "replay")
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: the real engine")]
    assert notes == ["note: the real engine adds requests at their arrival times, in wall-clock time: the last of 121 "
                     "arrives at 3,600 s, so this replay takes at least 3,600 s (an idle gap over 60 s is cut to it); "
                     "a higher --rate compresses the arrivals, --emulate PROFILE runs in virtual time"]
