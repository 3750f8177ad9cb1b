"""transformers' logging held below error level while ltrsched itself reads a config or loads a model (one place).

Its warnings there are notes of transformers' own (a config class that finds no RoPE parameters, a load report), not
the user's: printed, they made a one-line refusal two lines, and a normal run print lines that name nothing the user
gave."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def transformers_quiet():
    """transformers' logging at error level inside the block, its previous level restored on leaving (errors
    included)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
