"""The adapter's docs name every release line it supports (0.26 and 0.32+), not 0.26 alone."""

from __future__ import annotations

from pathlib import Path

import ltrsched
from ltrsched.engine.vllm_compat import SUPPORTED_LINES

ROOT = Path(ltrsched.__file__).parent


def test_the_semantics_and_emulator_docs_name_every_supported_line():
    """sim/config.py said "what the vLLM 0.26 adapter realises" (and "makes vLLM 0.26 do"), engine/emulate.py
    "vLLM 0.26's own V1 Scheduler", though the adapter runs 0.32, 0.33 and 0.34 too."""
    assert SUPPORTED_LINES[0] == "0.26" and "0.32" in SUPPORTED_LINES
    for path in (ROOT / "sim" / "config.py", ROOT / "engine" / "emulate.py"):
        lines = [line for line in path.read_text().splitlines() if "0.26" in line]
        assert lines, path
        assert all("0.32" in line for line in lines), (path, [line for line in lines if "0.32" not in line])
