"""Loading a Hugging Face model without transformers' notes on stderr (one place for every backbone)."""

from __future__ import annotations

import contextlib
import functools

from ltrsched.hf_quiet import transformers_quiet


@contextlib.contextmanager
def quiet_load():
    """Silence transformers while a model loads: its load report (a causal LM's ``lm_head`` is "unexpected" in a
    probe or a sequence classifier, the classifier's new ``score`` head "missing"), its "Loading weights" progress
    bar and its GGUF dequantisation progress bar (its own tqdm, not switched off by its logging settings). The
    logging settings and the bar are restored on leaving, errors included."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # ("Loading weights")
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        with transformers_quiet():
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if bar is not None:
            gguf_utils.tqdm = bar


#: transformers' key for its one-time "Token indices sequence length is longer than the specified maximum sequence
#: length for this model (600 > 512). Running this sequence through the model will result in indexing errors".
_TOO_LONG_WARNING = "sequence-length-is-longer-than-the-specified-maximum"


def no_length_warning(tokenizer):
    """``tokenizer`` without transformers' warning that a prompt is longer than the model takes: the backbones cut
    every prompt to what the model reads before it runs (no indexing error follows) and say so in their own note
    (:func:`~ltrsched.predictors.predictor.cut_note`). The warning is marked as given already, as transformers does
    after giving it once."""
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned[_TOO_LONG_WARNING] = True
    return tokenizer
