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
        max_log_steps: the step log keeps only the last this many steps (None: every step, a run's result needs
            them): a server's scheduler serves one endless run, whose log grew without bound.
        compact_rows: the scheduler drops the finished requests' rows from its table once the table holds at least
            this many rows and the finished ones are at least half of them [rows] (None: never, a run's result
            needs every row): a server's table otherwise kept a row for every request it ever served.
    """

    policy: Policy
    clock: Callable[[], float] = field(default_factory=MonotonicClock)
    strict: bool = True
    max_batch_seqs: int | None = None
    watch_plugins: bool = False
    max_log_steps: int | None = None
    compact_rows: int | None = None


_PENDING: list[EngineSetup] = []
#: Steps a server's scheduler keeps in its step log (~360 bytes each: ~36 MB).
SERVE_LOG_STEPS = 100_000
#: Rows a server's scheduler's table holds before it drops the finished requests' (``EngineSetup.compact_rows``).
SERVE_COMPACT_ROWS = 4096


def _shown(value: Any) -> str:
    """``value``'s repr, cut to 40 characters (a line names what a client or config gave)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


#: The keys of ``additional_config["ltrsched"]`` (``vllm serve --additional-config``) and what each takes.
SERVE_KEYS = {"policy": "a policy spec, e.g. \"ltr:starve=200,quantum=10\"", "strict": "true or false",
              "max_batch_seqs": "a positive integer"}


def serve_config(additional_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``additional_config["ltrsched"]``, checked: an object with a ``policy`` string and at most the other
    :data:`SERVE_KEYS`, each of its type. A one-line ``ValueError`` otherwise (before, ``"strict": "no"`` read as true,
    ``"max_batch_seqs": "8"`` raised a TypeError at the scheduler's start and ``{"ltrsched": "ltr"}`` an
    AttributeError)."""
    extra = (additional_config or {}).get(EXTRA_KEY)
    if extra is None or isinstance(extra, Mapping) and not extra.get("policy"):
        raise ValueError(
            "PolicyScheduler has no policy: pass additional_config={'ltrsched': {'policy': 'ltr'}} "
            "(or --additional-config) or run through ltrsched's engine runner"
        )
    if not isinstance(extra, Mapping):
        raise ValueError(f"additional_config[{EXTRA_KEY!r}] must be an object, e.g. {{\"policy\": \"ltr\"}}, got "
                         f"{_shown(extra)}")
    wrong = [key for key in extra if key not in SERVE_KEYS]
    if wrong:
        raise ValueError(f"additional_config[{EXTRA_KEY!r}] has an unknown key {_shown(wrong[0])} (known: "
                         f"{', '.join(SERVE_KEYS)})")
    policy, strict, seqs = extra["policy"], extra.get("strict", False), extra.get("max_batch_seqs")
    for key, ok in (("policy", isinstance(policy, str)), ("strict", isinstance(strict, bool)),
                    ("max_batch_seqs", seqs is None or type(seqs) is int and seqs > 0)):
        if not ok:
            raise ValueError(f"additional_config[{EXTRA_KEY!r}][{key!r}] must be {SERVE_KEYS[key]}, got "
                             f"{_shown(extra[key])}")
    return {"policy": policy, "strict": strict, "max_batch_seqs": seqs}


def take_setup(additional_config: Mapping[str, Any] | None) -> EngineSetup:
    """The installed setup, else one built from ``additional_config["ltrsched"]`` (:func:`serve_config`: ``vllm
    serve``'s; its scheduler applies the plugin time limit itself, ``watch_plugins``). A bad policy spec raises the
    registry's one-line :class:`~ltrsched.errors.UserError`."""
    if _PENDING:
        return _PENDING.pop()
    config = serve_config(additional_config)
    from ltrsched.plugin_watchdog import plugin_time_limit
    from ltrsched.policies import make_policy

    policy = make_policy(config["policy"])
    with plugin_time_limit():  # (a plugin's prepare that never returns would hang the engine's start)
        policy.prepare({name: _EMPTY for name in ("request_id", "arrival_time", "prompt_tokens", "output_tokens",
                                                  "score", "po_estimate", "predicted_length")})
    return EngineSetup(policy=policy, strict=config["strict"], max_batch_seqs=config["max_batch_seqs"],
                       watch_plugins=True, max_log_steps=SERVE_LOG_STEPS,
                       compact_rows=SERVE_COMPACT_ROWS)


def request_extra(info: RequestInfo) -> dict[str, Any]:
    """The ``extra_args`` entry that carries ``info`` to the scheduler."""
    return {EXTRA_KEY: {
        "id": info.request_id, "arrival": info.arrival_time, "output_tokens": info.output_tokens,
        "requested_output_tokens": info.requested_output_tokens, "score": info.score,
        "po_estimate": info.po_estimate, "predicted_length": info.predicted_length,
    }}


#: Flat ``extra_args`` keys read beside the ``ltrsched`` entry, and the field each gives: the OpenAI API's
#: ``vllm_xargs`` (how an HTTP client's arguments reach ``extra_args`` under ``vllm serve``) takes only strings, numbers
#: and lists as values, so it cannot carry the ``ltrsched`` object (vLLM answers 400).
FLAT_KEYS = {f"{EXTRA_KEY}_{name}": name for name in ("score", "po_estimate", "predicted_length")}
#: The fields of :class:`RequestInfo` a request's extra arguments may give: name -> integer field.
_FIELDS = {"id": True, "arrival": False, "output_tokens": True, "requested_output_tokens": True, "score": False,
           "po_estimate": False, "predicted_length": False}
#: Integer fields' bound (the table's int64 columns; a token count far beyond any context).
_INT_MAX = 2**62


class BadRequestArgs(ValueError):
    """A request's ltrsched arguments (``SamplingParams.extra_args``) are not what the adapter reads: one line,
    naming the argument and the value (shortened)."""


def request_fields(extra: Mapping[str, Any] | None) -> dict[str, float | int]:
    """The ltrsched fields of a request's ``extra_args``: its ``ltrsched`` object's (in-process callers,
    :func:`request_extra`) and the flat :data:`FLAT_KEYS` (an HTTP client's ``vllm_xargs``), checked.

    Each is a number (``True``, a string or a list is not); the integer fields (``id``, the output lengths) are
    non-negative integers below 2**62; ``score``, ``po_estimate`` and ``predicted_length`` may be NaN ("none": a
    request without a score ranks after every scored one under LTR) but not infinite, ``arrival`` neither. A
    missing or ``None`` field is left out (the caller's default). Raises :class:`BadRequestArgs` otherwise."""
    if not extra:
        return {}
    fields: dict[str, float | int] = {}
    nested = extra.get(EXTRA_KEY)
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise BadRequestArgs(f"extra_args[{EXTRA_KEY!r}] must be an object of fields ({', '.join(_FIELDS)}), "
                                 f"got {_shown(nested)}")
        for key, value in nested.items():
            integer = _FIELDS.get(key)
            if integer is None:
                raise BadRequestArgs(f"extra_args[{EXTRA_KEY!r}] has an unknown field {_shown(key)} "
                                     f"(known: {', '.join(_FIELDS)})")
            if value is not None:
                fields[key] = _checked(value, key, integer, None)
    for key, name in FLAT_KEYS.items():
        value = extra.get(key)
        if value is not None:
            if name in fields:
                raise BadRequestArgs(f"{name} given twice: as {key} and in extra_args[{EXTRA_KEY!r}]")
            fields[name] = _checked(value, name, False, key)
    return fields


def _checked(value: Any, name: str, integer: bool, flat_key: str | None) -> float | int:
    """Field ``name``'s ``value`` as :func:`request_fields` takes it (``flat_key``: the key it came as, if flat)."""
    kind = type(value)
    if integer:
        if kind is int and 0 <= value < _INT_MAX:  # (the common case first: exact type checks)
            return value
    elif kind is float:
        if value - value == 0 or value != value and name != "arrival":  # finite, or NaN where NaN means none
            return value
    where = flat_key or f"extra_args[{EXTRA_KEY!r}][{name!r}]"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BadRequestArgs(f"{where} must be a number, got {_shown(value)}")
    if integer:
        if isinstance(value, (float, np.floating)) and not float(value).is_integer() or not 0 <= value < _INT_MAX:
            raise BadRequestArgs(f"{where} must be an integer in [0, 2**62), got {_shown(value)}")
        return int(value)
    try:
        number = float(value)
    except OverflowError:  # (an integer beyond a float's range)
        number = math.inf
    if math.isinf(number) or (name == "arrival" and math.isnan(number)):
        raise BadRequestArgs(f"{where} must be a finite number{'' if name == 'arrival' else ' (or NaN: none)'}, "
                             f"got {_shown(value)}")
    return number


def request_info(extra: Mapping[str, Any] | None, prompt_tokens: int, max_tokens: int, now: float,
                 fallback_id: int) -> RequestInfo:
    """Read a request's :class:`RequestInfo` from its ``extra_args`` (:func:`request_fields`; missing fields: what
    vLLM knows). Raises :class:`BadRequestArgs` for a field that is not a number of its kind."""
    d = request_fields(extra)
    out = d.get("output_tokens", max_tokens)
    return RequestInfo(
        request_id=d.get("id", fallback_id),
        arrival_time=d.get("arrival", now),
        prompt_tokens=int(prompt_tokens),
        output_tokens=int(out),
        requested_output_tokens=d.get("requested_output_tokens", int(out)),
        score=d.get("score", math.nan),
        po_estimate=d.get("po_estimate", math.nan),
        predicted_length=d.get("predicted_length", math.nan),
    )
