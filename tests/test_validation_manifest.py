"""validate's --out holding a manifest that is damaged or hand-edited: one line naming it, exit 2; never a traceback."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error


@pytest.mark.parametrize("text, message", [
    # json.loads raised RecursionError, which no handler took: a traceback before the engine started
    ("[" * 100_000, "validate-manifest.json (nested too deeply to be read); give validate a new --out"),
    ("{\"format\": ", "validate-manifest.json (Expecting value: line 1 column 12 (char 11)); give validate a new"),
    ("\xff\xfe", "validate-manifest.json ("),
    (json.dumps({"format": "ltrsched-validate-manifest", "runs": ["runs/../../etc"]}),
     "validate-manifest.json is not a manifest of `ltrsched validate`; give validate a new --out"),
])
def test_a_damaged_manifest_is_one_line(capsys, tmp_path, text, message):
    out = tmp_path / "v"
    out.mkdir()
    (out / "validate-manifest.json").write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    r = run_cli_fast(capsys, "validate", "-n", "5", "--policies", "fcfs", "--emulate", "a100-llama3-8b", "--out", out)
    assert_one_line_error(r, f"cannot read {out}/" if "not a manifest" not in message else str(out))
    assert message in r.stderr
