"""How a policy reaches the scheduler vLLM builds (pure Python; no vLLM import).

vLLM constructs the scheduler itself from ``scheduler_cls``. Two ways hand it a policy:

* in-process (the runner, the emulator, tests): :func:`install` an :class:`EngineSetup` just before the
  engine is built; the scheduler takes it in its constructor. This carries a prepared policy object (e.g.
  approximate-oracle scores derived from the whole workload) and the run's clock.
* from configuration (e.g. ``vllm serve --scheduler-cls ltrsched.engine.scheduler.PolicyScheduler
  --additional-config '{"ltrsched": {"policy": "ltr:starve=200,quantum=10"}}'``): the policy is built
  from its spec, and per-request scores travel in ``SamplingParams.extra_args["ltrsched"]``.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ltrsched.engine.live_table import RequestInfo
from ltrsched.policies.base import Policy

#: Key of the adapter's entries in ``SamplingParams.extra_args`` and in vLLM's ``additional_config``.
EXTRA_KEY = "ltrsched"
_EMPTY = np.zeros(0)


class MonotonicClock:
    """Seconds since ``start()`` (or since construction) on ``time.monotonic``."""

    def __init__(self) -> None:
        self.origin = time.monotonic()

    def start(self) -> None:
        self.origin = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.origin


@dataclass
class EngineSetup:
    """What a :class:`~ltrsched.engine.scheduler.PolicyScheduler` runs with.

    Attributes:
        policy: the ranking policy (prepared by the caller if it needs the workload).
        clock: the run's clock, seconds; arrival times in ``extra_args`` use it too.
        strict: raise :class:`EngineMismatchError` if vLLM does not realise a planned step exactly
            (otherwise count it in the step log).
        max_batch_seqs: the batch's sequence cap [sequences], if below vLLM's ``max_num_seqs`` (which
            then only caps the requests holding KV); None: vLLM's.
        watch_plugins: the scheduler applies the plugin time limit itself
            (:func:`ltrsched.plugin_watchdog.start_watchdog`): set where no ltrsched harness brackets the run with
            it, as under ``vllm serve`` (the replay loop brackets each run with ``plugin_time_limit``).
    """

    policy: Policy
    clock: Callable[[], float] = field(default_factory=MonotonicClock)
    strict: bool = True
    max_batch_seqs: int | None = None
    watch_plugins: bool = False


_PENDING: list[EngineSetup] = []


@contextmanager
def handed_to_next_scheduler(setup: EngineSetup) -> Iterator[None]:
    """Hand ``setup`` to the scheduler vLLM constructs in this process inside the block. A setup no scheduler took
    (the engine's start failed before building one) is dropped when the block ends: left pending, it went to the
    next scheduler built in the process, e.g. one ``vllm serve`` builds from its ``--additional-config``, which
    then ran the failed start's policy without the plugin time limit."""
    _PENDING[:] = [setup]
    try:
        yield
    finally:
        _PENDING.clear()


def take_setup(additional_config: Mapping[str, Any] | None) -> EngineSetup:
    """The installed setup, else one built from ``additional_config["ltrsched"]["policy"]`` (``vllm serve``'s:
    its scheduler applies the plugin time limit itself, ``watch_plugins``)."""
    if _PENDING:
        return _PENDING.pop()
    spec = ((additional_config or {}).get(EXTRA_KEY) or {}).get("policy")
    if not spec:
        raise ValueError(
            "PolicyScheduler has no policy: pass additional_config={'ltrsched': {'policy': 'ltr'}} "
            "(or --additional-config) or run through ltrsched's engine runner"
        )
    from ltrsched.plugin_watchdog import plugin_time_limit
    from ltrsched.policies import make_policy

    policy = make_policy(str(spec))
    with plugin_time_limit():  # (a plugin's prepare that never returns would hang the engine's start)
        policy.prepare({name: _EMPTY for name in ("request_id", "arrival_time", "prompt_tokens", "output_tokens",
                                                  "score", "po_estimate", "predicted_length")})
    extra = additional_config[EXTRA_KEY]
    return EngineSetup(policy=policy, strict=bool(extra.get("strict", False)), max_batch_seqs=extra.get("max_batch_seqs"),
                       watch_plugins=True)


def request_extra(info: RequestInfo) -> dict[str, Any]:
    """The ``extra_args`` entry that carries ``info`` to the scheduler."""
    return {EXTRA_KEY: {
        "id": info.request_id, "arrival": info.arrival_time, "output_tokens": info.output_tokens,
        "requested_output_tokens": info.requested_output_tokens, "score": info.score,
        "po_estimate": info.po_estimate, "predicted_length": info.predicted_length,
    }}


def request_info(extra: Mapping[str, Any] | None, prompt_tokens: int, max_tokens: int, now: float,
                 fallback_id: int) -> RequestInfo:
    """Read a request's :class:`RequestInfo` from its ``extra_args`` (missing fields: what vLLM knows)."""
    d = (extra or {}).get(EXTRA_KEY) or {}

    def num(key: str) -> float:
        v = d.get(key)
        return math.nan if v is None else float(v)

    out = int(d.get("output_tokens", max_tokens))
    return RequestInfo(
        request_id=int(d.get("id", fallback_id)),
        arrival_time=float(d.get("arrival", now)),
        prompt_tokens=int(prompt_tokens),
        output_tokens=out,
        requested_output_tokens=int(d.get("requested_output_tokens", out)),
        score=num("score"),
        po_estimate=num("po_estimate"),
        predicted_length=num("predicted_length"),
    )

