"""The labelling loop: token-id prompts through vLLM (the adapter's scheduler under FCFS), a window of
requests in flight so that the batch stays full, each finished request reported as it ends.

Requests are fed continuously rather than chunk by chunk: a chunk's longest response (often the full
``max_tokens``) would otherwise leave the batch nearly empty for hundreds of steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ltrsched.engine.live_table import RequestInfo
from ltrsched.engine.setup import request_extra


@dataclass(frozen=True)
class Generated:
    """What the engine generated for one request.

    Attributes:
        prompt_tokens: the prompt's length [tokens] as the engine saw it.
        output_tokens: generated tokens, a final EOS token included [tokens].
        finish_reason: ``stop`` (EOS) or ``length`` (``max_tokens`` or the context's end).
    """

    prompt_tokens: int
    output_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class Request:
    """One request: its token ids and sampling (``max_tokens`` [tokens], ``temperature``, ``top_p``, vLLM ``seed``,
    ``repetition_penalty``: 1 is off)."""

    prompt_ids: Sequence[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    repetition_penalty: float = 1.0


def serve_requests(driver: Any, requests: Sequence[Request], on_done: Callable[[int, Generated], None],
                   window: int) -> None:
    """Serve ``requests`` on ``driver``'s engine (a :class:`~ltrsched.engine.runner.VllmDriver`) with at most
    ``window`` of them added and unfinished; ``on_done(index, generated)`` is called as each finishes."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    from ltrsched.policies import make_policy

    engine = driver.engine
    driver.begin(make_policy("fcfs"))
    driver.start()
    in_flight: dict[str, int] = {}
    following = 0
    while following < len(requests) or in_flight:
        while following < len(requests) and len(in_flight) < window:
            r = requests[following]
            info = RequestInfo(request_id=following, arrival_time=driver.now(), prompt_tokens=len(r.prompt_ids),
                               output_tokens=r.max_tokens, requested_output_tokens=r.max_tokens)
            params = SamplingParams(max_tokens=r.max_tokens, temperature=r.temperature, top_p=r.top_p, seed=r.seed,
                                    repetition_penalty=r.repetition_penalty, ignore_eos=False, detokenize=False,
                                    extra_args=request_extra(info), output_kind=RequestOutputKind.FINAL_ONLY)
            rid = f"label-{following}"
            engine.add_request(rid, TokensPrompt(prompt_token_ids=list(r.prompt_ids)), params)
            in_flight[rid] = following
            following += 1
        if not engine.has_unfinished_requests():
            raise RuntimeError(f"the engine dropped {len(in_flight)} request(s) without finishing them")
        for out in engine.step():
            if not out.finished or out.request_id not in in_flight:
                continue
            i = in_flight.pop(out.request_id)
            c = out.outputs[0]
            if c.finish_reason not in ("stop", "length"):
                raise RuntimeError(f"request {i} ended with finish reason {c.finish_reason!r} (expected stop or length)")
            on_done(i, Generated(prompt_tokens=len(out.prompt_token_ids), output_tokens=len(c.token_ids),
                                 finish_reason=c.finish_reason))
