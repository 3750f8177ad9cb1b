"""The environment variables ltrsched sets to start vLLM, put back when the engine closes.

Before starting vLLM in this process ltrsched sets :data:`ENGINE_VARIABLES`: ``VLLM_ENABLE_V1_MULTIPROCESSING=0``
(the scheduler lives in this process), ``VLLM_USE_FLASHINFER_SAMPLER=0`` and on a CPU
``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` (:func:`ltrsched.engine.platform.pin_threads`); where the user has not,
``VLLM_LOGGING_STREAM`` and ``VLLM_LOGGING_LEVEL`` (vLLM's log on stderr at WARNING,
:func:`ltrsched.engine.engine_log.route_engine_log`); and, only while vLLM is imported for an emulated engine,
``VLLM_LOGGING_LEVEL`` (:func:`ltrsched.engine.vllm_compat.require_vllm`). They stayed in the process after the engine was done: every
command it started later (a fresh process) inherited them, and the next engine or torch pool saw the first
engine's thread count.

:class:`EngineEnvironment` notes those variables when an engine starts and, on
:meth:`~EngineEnvironment.restore`, puts back each one the start changed (set, changed or removed) as it was. A
variable changed again after the start (by the caller, while the engine ran) is the caller's and is left as it
is. vLLM reads them while it starts (its engine class, its sampler, its logger; OpenMP its thread count), not
afterwards, so an engine keeps running as started; restoring at close keeps them for its whole life anyway.
What vLLM itself writes on import (e.g. ``TORCHINDUCTOR_COMPILE_THREADS``) is left alone: a later engine in
the process needs it, and vLLM does not write it twice.

A CPU engine's start also pins the process (:func:`ltrsched.engine.platform.pin_threads`): the CPUs it may run on
(``os.sched_setaffinity``) and torch's thread count (``torch.set_num_threads``, where torch was imported before).
Those stayed too: after the engine closed the process ran on the engine's CPUs alone (one, by default), and torch
on its thread count. :class:`EnginePinning` puts them back on close by the same rule: each one the start changed,
unless changed again since. Torch imported by the start itself (vLLM imports it) has no earlier count to go back
to: its pool took the engine's ``OMP_NUM_THREADS`` when it loaded, and keeps it.
"""

from __future__ import annotations

import os
import sys

#: The variables ltrsched writes before an engine starts (:mod:`ltrsched.engine.runner`,
#: :mod:`ltrsched.engine.vllm_compat`, :mod:`ltrsched.engine.platform`).
ENGINE_VARIABLES = ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_USE_FLASHINFER_SAMPLER", "VLLM_LOGGING_LEVEL",
                    "VLLM_LOGGING_STREAM", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class EngineEnvironment:
    """Which of ``names`` (:data:`ENGINE_VARIABLES`; None: every variable, those set later included) changed between
    this object's creation and :meth:`started` (or, without it, :meth:`restore`): :meth:`restore` puts them back. A
    context manager: ``with EngineEnvironment(): ...`` restores on leaving, an exception included."""

    def __init__(self, names: tuple[str, ...] | None = ENGINE_VARIABLES) -> None:
        self._every = names is None
        self._before: dict[str, str | None] = (dict(os.environ) if names is None  # None: unset
                                               else {name: os.environ.get(name) for name in names})
        self._changes: dict[str, str | None] | None = None  # name -> the value the start left (None: removed)

    def _changed(self) -> dict[str, str | None]:
        names = self._before.keys() | os.environ.keys() if self._every else self._before.keys()
        return {name: os.environ.get(name) for name in names if os.environ.get(name) != self._before.get(name)}

    def started(self) -> None:
        """The engine has started: what changed until now is what :meth:`restore` puts back (later changes are
        the caller's)."""
        if self._changes is None:
            self._changes = self._changed()

    @property
    def changed(self) -> dict[str, str | None]:
        """The variables the start changed and their values after it (None: removed); until :meth:`started`,
        those changed so far."""
        return dict(self._changes if self._changes is not None else self._changed())

    def restore(self) -> None:
        """Put back each variable the start changed, unless it was changed again since; once (later calls do
        nothing)."""
        changes = self.changed
        self._changes = {}
        for name, value in changes.items():
            if os.environ.get(name) != value:  # changed since the start: not the engine's to undo
                continue
            old = self._before.get(name)
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old

    def __enter__(self) -> "EngineEnvironment":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def _pinning() -> tuple[frozenset[int] | None, int | None]:
    """The CPUs this process may run on (None: not Linux) and torch's thread count (None: torch not imported)."""
    try:
        cpus = frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    torch = sys.modules.get("torch")
    return cpus, (None if torch is None else int(torch.get_num_threads()))


class EnginePinning:
    """The process's CPUs and torch's thread count between this object's creation and :meth:`started` (or, without
    it, :meth:`restore`): :meth:`restore` puts back each the start changed, unless it was changed again since
    (then it is the caller's), as :class:`EngineEnvironment` does the variables. Torch's count is set through
    ``torch.set_num_threads``, or where vLLM's CPU worker made that a no-op, ``torch._C.set_num_threads`` (torch's
    own setter)."""

    def __init__(self) -> None:
        self._before = _pinning()
        self._after: tuple[frozenset[int] | None, int | None] | None = None  # what the start left

    def started(self) -> None:
        """The engine has started: what changed until now is what :meth:`restore` puts back."""
        if self._after is None:
            self._after = _pinning()

    def restore(self) -> None:
        """Put back the CPUs and torch's thread count the start changed, unless changed again since; once (later
        calls do nothing)."""
        before, after, now = self._before, self._after if self._after is not None else _pinning(), _pinning()
        self._before = self._after = now  # (once: a later call finds nothing changed)
        if before[0] is not None and after[0] != before[0] and now[0] == after[0]:
            try:
                os.sched_setaffinity(0, before[0])
            except OSError:  # a CPU taken offline (or out of the cgroup) since: nothing to go back to
                pass
        torch = sys.modules.get("torch")
        if torch is not None and before[1] is not None and after[1] != before[1] and now[1] == after[1]:
            torch.set_num_threads(before[1])
            if torch.get_num_threads() != before[1]:  # vLLM's CPU worker made it a no-op: torch's own setter
                torch._C.set_num_threads(before[1])

    def __enter__(self) -> "EnginePinning":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
