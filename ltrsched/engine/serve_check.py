"""``ArgsCheck``: a request's ltrsched arguments checked in ``vllm serve``'s front end, so a bad one is an HTTP 400.

The scheduler runs in vLLM's engine core process, after the API server has accepted a request: a request whose
ltrsched arguments it cannot read (:class:`~ltrsched.engine.setup.BadRequestArgs`) is failed there alone
(``FINISHED_ERROR``), which vLLM answers with HTTP 500 "Internal server error", naming nothing. vLLM (0.32 on) calls
each custom logits processor's ``validate_params`` in the API server on every request before it reaches the engine, and
answers the ``ValueError`` it raises with HTTP 400 and its message. ``--logits-processors
ltrsched.engine.serve_check:ArgsCheck`` loads this one: it checks the arguments as the scheduler reads them
(:func:`~ltrsched.engine.setup.request_fields`) and leaves the logits as they are (a no-op per step in the model
runner; argmax-invariant). Optional: without it the scheduler's own refusal still keeps the server up.
"""

from __future__ import annotations

from ltrsched.engine.setup import request_fields
from ltrsched.engine.vllm_compat import logits_processor_bases


class ArgsCheck(*logits_processor_bases()):
    """Refuses, in vLLM's front end, a request whose ltrsched ``extra_args`` the scheduler cannot read (HTTP 400 with
    :class:`~ltrsched.engine.setup.BadRequestArgs`' line); changes no logits. It derives from the logits processor
    base of each model runner interface this vLLM has (:func:`~ltrsched.engine.vllm_compat.logits_processor_bases`):
    vLLM 0.34 has only Model Runner V2's, and 0.32 serves with it on a CUDA host (the V1 runner's on the CPU build);
    its front end loads no processor that is not a subclass of its runner's base."""

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        request_fields(sampling_params.extra_args)  # (BadRequestArgs is a ValueError: vLLM answers 400)

    def __init__(self, *args, **kwargs) -> None:  # V1: (vllm_config, device, is_pin_memory); V2: (vllm_config, states)
        pass

    def apply(self, logits, ctx=None):  # (V2 passes the step's LogitsContext)
        return logits

    def is_argmax_invariant(self) -> bool:  # (V1)
        return True

    def update_state(self, batch_update) -> None:  # (V1)
        pass

    def add_request(self, req_idx: int, sampling_params) -> bool:  # (V2) it modifies no request's logits
        return False
