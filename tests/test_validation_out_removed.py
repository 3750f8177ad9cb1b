"""``validate`` whose ``--out`` is removed while it runs (a cleanup script, a user's ``rm -rf``): its manifest gone, the
report written anew and then a FileNotFoundError traceback where it recorded the validation as finished. Now one line
saying what happened, exit code 2."""

from __future__ import annotations

import shutil

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


@pytest.mark.parametrize("damage", ["remove", "edit"])
def test_an_out_removed_or_its_manifest_edited_mid_validation_is_one_line(capsys, tmp_path, monkeypatch, damage):
    from ltrsched.engine.emulate import EmulatedDriver

    (tmp_path / "w.csv").write_text("arrival_time,prompt_tokens,output_tokens\n"
                                    + "".join(f"{i * 0.01},{40 + i},{8 + i}\n" for i in range(6)))
    begin, runs = EmulatedDriver.begin, []

    def begin_then_damage(self, policy):  # (as the second engine run begins)
        runs.append(policy.name)
        if len(runs) == 2:
            if damage == "remove":
                shutil.rmtree(tmp_path / "v")
            else:
                (tmp_path / "v" / "validate-manifest.json").write_text("[]")
        begin(self, policy)

    monkeypatch.setattr(EmulatedDriver, "begin", begin_then_damage)
    r = run_cli_fast(capsys, "validate", "--emulate", "cpu-llama-tiny", "-w", "w.csv", "--policies", "fcfs,srtf",
                     "-o", "v", cwd=tmp_path)
    assert_one_line_error(r, "error: cannot record the validation in v as finished: its validate-manifest.json was "
                             "removed or changed while the validation ran (",
                          "remove v and run the validation again")
