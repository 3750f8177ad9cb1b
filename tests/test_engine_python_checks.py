"""The engine's Python API refuses what the command line refuses before the engine starts, in one line, with
Python's names (``EngineConfig``'s ``dtype``).

From Python, ``dtype="float64"`` was taken until vLLM's pydantic check, once imported; ``replay`` refuses it with
exit 2.
"""

from __future__ import annotations

import pytest

from ltrsched.engine.config import DTYPES, EngineConfig
from ltrsched.errors import UserError


@pytest.mark.parametrize("dtype", ["float64", "double", "bf16", "Float32", "", "fp8"])
def test_an_unknown_dtype_is_refused_from_python_as_on_the_command_line(dtype):
    from ltrsched.validation.engines import engine_config

    with pytest.raises(ValueError, match=rf"^dtype must be one of {', '.join(DTYPES)}, got {dtype!r}$"):
        EngineConfig(dtype=dtype)
    with pytest.raises(UserError, match=rf"^--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}$"):
        engine_config(platform="cpu", dtype=dtype)


def test_every_dtype_the_command_line_takes_python_takes():
    from ltrsched.validation.engines import engine_config

    for dtype in DTYPES:
        assert EngineConfig(dtype=dtype).dtype == dtype == engine_config(platform="cpu", dtype=dtype).dtype
    assert EngineConfig().dtype is None and EngineConfig(platform="cpu").dtype == "float32"  # (None: the platform's)
