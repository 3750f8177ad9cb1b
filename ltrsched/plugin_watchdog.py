"""A time limit on plugin calls: a run stops with one line when plugin code has been in one call too long.

A plugin policy's or router's ``rank``, ``route`` or hook that never returns (``time.sleep(10**6)``, an endless
loop) hung ``simulate``, ``sweep``, ``capacity`` and engine replays with no message. :func:`plugin_time_limit`
brackets a run (the policy's ``prepare`` to the last step): while it lasts, a watchdog thread looks at the run
thread's stack every ``period`` seconds (the limit / 10, at most 1 s) for the outermost frame of a plugin file
(:func:`ltrsched.plugin_errors.plugin_files`). The same frame object seen again means the same call is still
under way; once it has been under way for the limit, the watchdog interrupts the run thread: a signal whose
handler raises :class:`PluginInterrupt` (it also wakes a ``time.sleep``) on the main thread, else an
asynchronous exception (which lands at the thread's next Python instruction). The bracket turns it into
:class:`PluginTimeoutError`, a one-line :class:`UserError` naming the plugin, the method, the step and the limit.
A plugin call the run makes after that one, before the interrupt has reached the bracket (a cluster's other replicas
stepping at the same instant, each calling its own copy of the policy), is interrupted as soon as it is seen.
A call stuck where neither reaches (C code that holds the GIL, or plugin code that swallows every exception)
for :data:`GRACE_S` more seconds ends the process: the line on stderr, exit code 2. A process-pool sweep worker
(:func:`leave_exit_line_in`) leaves the line in a file instead, for the main process to print as its one line with
exit code 2 (it printed the worker's line and then its own about a dead worker, with exit code 1).
Where no run is bracketed (vLLM's engine core steps the scheduler for as long as ``vllm serve`` runs),
:func:`start_watchdog` starts the same watchdog for the caller to stop (:class:`ltrsched.engine.scheduler.PolicyScheduler`
does, at its shutdown).

Nothing runs per step: the run's loop is untouched, and without a plugin registered (or with the limit off) no
thread starts. Built-in policies and routers are not watched (a predictor's ``prepare`` on a large workload may
legitimately take minutes).

The limit [s] is ``LTRSCHED_PLUGIN_TIMEOUT`` (default :data:`DEFAULT_LIMIT_S`; 0: no limit), read when a run
starts, in the command's process and in every sweep worker (Ray tasks get it from the driver).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from ltrsched.errors import UserError
from ltrsched.numbers import seconds_from_env

#: The environment variable holding the limit [s].
ENV = "LTRSCHED_PLUGIN_TIMEOUT"
#: The limit when ``LTRSCHED_PLUGIN_TIMEOUT`` is unset [s of wall time per plugin call].
DEFAULT_LIMIT_S = 60.0
#: How long an interrupted call may stay stuck before the process ends [s].
GRACE_S = 5.0
#: Seconds between two looks at the stack once the limit was passed: a plugin call the run makes after the one
#: interrupted (before the interrupt has ended the run) is interrupted this soon.
AFTER_PERIOD_S = 0.01
#: The signal that interrupts the main thread (left alone when something else handles it).
SIGNAL = signal.SIGUSR2

_ACTIVE = threading.local()  # .on: a bracket is open in this thread (an inner one does nothing)
_EXIT_LINE_FILE: str | None = None  # where :func:`end_process` leaves its line instead of stderr (a pool worker)


def leave_exit_line_in(path: str | None) -> None:
    """Make :func:`end_process` write its line (without ``error:``) to the file ``path`` instead of stderr; None:
    stderr again. A process-pool worker calls it: its parent reads the file when the worker is gone
    (:func:`exit_line_left_in`)."""
    global _EXIT_LINE_FILE
    _EXIT_LINE_FILE = None if path is None else os.fspath(path)


def exit_line_left_in(path) -> str | None:
    """The line a process left in ``path`` (:func:`leave_exit_line_in`) before :func:`end_process` ended it; None if
    there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def end_process(line: str) -> None:
    """End this process at once with exit code 2 (nothing else can stop a stuck call): ``error: line`` on stderr, or
    ``line`` in the file :func:`leave_exit_line_in` named."""
    if _EXIT_LINE_FILE is not None:
        try:
            fd = os.open(_EXIT_LINE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
            os._exit(2)
        except OSError:  # (the folder is gone): stderr, as a lone process does
            pass
    os.write(2, f"error: {line}\n".encode())
    os._exit(2)


class PluginTimeoutError(UserError):
    """A plugin call ran longer than the time limit (one line, exit code 2)."""


class PluginInterrupt(BaseException):
    """Raised in the run thread to stop a plugin call past the limit (a BaseException, so that plugin code's
    ``except Exception`` does not swallow it); :func:`plugin_time_limit` turns it into :class:`PluginTimeoutError`."""


def time_limit() -> float:
    """The limit on one plugin call [s]: ``LTRSCHED_PLUGIN_TIMEOUT``, else :data:`DEFAULT_LIMIT_S`; 0 is none.
    A value that is no finite number >= 0 is a :class:`UserError`."""
    return seconds_from_env(ENV, DEFAULT_LIMIT_S, "no limit on a plugin call")


@contextmanager
def plugin_time_limit():
    """Bracket a run: stop it with :class:`PluginTimeoutError` when one plugin call lasts longer than
    :func:`time_limit` [s]. Does nothing when the limit is 0, no plugin is registered, or a bracket is already
    open in this thread."""
    limit, files = _watched()
    if not files:
        yield
        return
    dog = Watchdog(limit, files)
    _ACTIVE.on = True
    try:
        try:
            dog.start(outside=sys._getframe(1))  # (contextlib's __enter__, the `with` statement's frame, its callers)
            yield
        finally:
            _ACTIVE.on = False
            dog.stop()  # (a pending interrupt may land here: caught below)
    except PluginInterrupt:
        if dog.message is None:  # not this bracket's
            raise
        raise PluginTimeoutError(dog.message) from None
    if dog.message is not None:  # the interrupt was swallowed, yet the call returned: the limit was passed
        raise PluginTimeoutError(dog.message)


def start_watchdog() -> Watchdog | None:
    """A started :class:`Watchdog` on the calling thread, for plugin calls that no :func:`plugin_time_limit`
    bracket encloses (vLLM's engine core steps the scheduler for as long as it serves); None where a bracket would
    do nothing (limit 0, no plugin registered, a bracket open in this thread). The caller turns the
    :class:`PluginInterrupt` raised in its thread into ``PluginTimeoutError(dog.message)`` and calls
    :meth:`Watchdog.stop` when done."""
    limit, files = _watched()
    if not files:
        return None
    dog = Watchdog(limit, files)
    dog.start()
    return dog


def _watched() -> tuple[float, set[str]]:
    """The limit [s] and the plugin files to watch in this thread (none: nothing to watch)."""
    from ltrsched.plugin_errors import plugin_files

    limit = time_limit()
    return limit, plugin_files() if limit > 0 and not getattr(_ACTIVE, "on", False) else set()


class Watchdog:
    """Watches the thread that calls :meth:`start` until :meth:`stop` (see the module's docstring).

    Attributes:
        limit: the limit on one plugin call [s].
        period: seconds between two looks at the stack.
        message: the error line once the limit was passed, else None.
    """

    def __init__(self, limit: float, files: set[str]):
        self.limit = limit
        self.period = min(1.0, max(0.01, limit / 10))
        self.message: str | None = None
        self._files = files
        self._is_plugin: dict[str, bool] = {}  # code file name -> in a plugin file (real paths, cached)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._target = 0
        self._old_handler = None
        self._raised = False
        self._outside: list = []  # the frames of the thread's stack that called the bracket (held while watched)
        self._outside_ids: set[int] = set()

    def start(self, outside=None) -> None:
        """Watch the calling thread. ``outside``: the frame that opened the bracket (:func:`plugin_time_limit`): it
        and its callers are not calls the bracket runs, so a plugin file's frame among them is no plugin call (a
        script that registers its own router or policy and then simulates, its ``<module>`` frame under way for the
        whole run, had every run longer than the limit stopped as a plugin call that "ran longer than the limit")."""
        while outside is not None:
            self._outside.append(outside)
            outside = outside.f_back
        self._outside_ids = {id(frame) for frame in self._outside}
        self._target = threading.get_ident()
        if threading.current_thread() is threading.main_thread() and signal.getsignal(SIGNAL) == signal.SIG_DFL:
            self._old_handler = signal.signal(SIGNAL, self._on_signal)
        self._thread = threading.Thread(target=self._watch, name="ltrsched-plugin-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._old_handler is not None:
            signal.signal(SIGNAL, self._old_handler)
            self._old_handler = None
        self._outside, self._outside_ids = [], set()

    # ------------------------------------------------------------------ the watchdog thread

    def _on_signal(self, signum, frame) -> None:
        if self.message is not None and not self._raised and not self._done.is_set():  # (stopped: the run is over)
            self._raised = True
            raise PluginInterrupt(self.message)

    def _plugin_file(self, name: str) -> bool:
        known = self._is_plugin.get(name)
        if known is None:
            known = self._is_plugin[name] = os.path.realpath(name) in self._files
        return known

    def _plugin_frames(self):
        """(outermost, innermost) frame of plugin code on the run thread's stack above the frames outside the
        bracket; (None, None) if none."""
        frame = sys._current_frames().get(self._target)
        outer = inner = None
        while frame is not None and id(frame) not in self._outside_ids:
            if self._plugin_file(frame.f_code.co_filename):
                outer = frame
                if inner is None:
                    inner = frame
            frame = frame.f_back
        return outer, inner

    def _watch(self) -> None:
        seen, since, fired, first = None, 0.0, 0.0, 0.0
        while not self._done.wait(self.period if self.message is None else AFTER_PERIOD_S):
            outer, inner = self._plugin_frames()
            now = time.monotonic()
            if outer is not seen:  # another call (or none): a frame object is one call while it runs
                seen, since = outer, now
                if outer is not None and self.message is not None:
                    # the interrupted call stopped, yet the run went on into another plugin call before the
                    # interrupt reached the bracket: it is interrupted too, at once (a cluster's other replicas
                    # step at the same instant, each calling its own copy of the policy, before the failed
                    # replica's exception leaves SimPy's loop; each had the process ended, GRACE_S later, as a
                    # call that "did not stop"), unless plugin calls have gone on for GRACE_S since the first
                    # interrupt (plugin code that swallows each one and returns)
                    if now - first >= GRACE_S:
                        end_process(f"{self.message}; it did not stop when interrupted, so ltrsched exits")
                    self._interrupt()
                    fired = now
            elif outer is not None and self.message is None and now - since >= self.limit:
                self.message = describe(outer, inner, self.limit)
                self._interrupt()
                fired = first = now
            elif outer is not None and self.message is not None and now - fired >= GRACE_S:
                end_process(f"{self.message}; it did not stop when interrupted, so ltrsched exits")
            del outer, inner

    def _interrupt(self) -> None:
        self._raised = False  # (each interrupt raises once)
        if self._old_handler is not None:  # the main thread: a signal also ends a sleep or a wait
            signal.pthread_kill(self._target, SIGNAL)
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._target), ctypes.py_object(PluginInterrupt))


def describe(outer, inner, limit: float) -> str:
    """The error line: which plugin, which method, at which step, the limit, and where the code is now."""
    code = outer.f_code
    method = getattr(code, "co_qualname", code.co_name)
    return (f"{_owner(code.co_filename, method)}: its {method}() call {_when(outer)} ran longer than the plugin "
            f"time limit of {limit:g} s (now at {inner.f_code.co_filename}:{inner.f_lineno}, in {inner.f_code.co_name});"
            f" fix the plugin, or set {ENV} to a larger limit in seconds (0: no limit)")


def _owner(file: str, method: str) -> str:
    """``policy 'name'`` or ``router 'name'`` for the registered plugin class that defines ``method``, else
    ``plugin <file>``."""
    cls_name = method.rpartition(".")[0]
    real = os.path.realpath(file)
    for kind, module in (("policy", "ltrsched.policies.registry"), ("router", "ltrsched.routers.registry")):
        registry = getattr(sys.modules.get(module), "_REGISTRY", {})
        for name, cls in list(registry.items()):
            defined = getattr(sys.modules.get(cls.__module__), "__file__", None)
            if cls.__qualname__ == cls_name and defined and os.path.realpath(defined) == real:
                return f"{kind} {name!r} (plugin {file})"
    return f"plugin {file}"


def _when(frame) -> str:
    """``at step N`` (the simulator's replica, or the engine adapter, running the call), ``at t=X s`` (a router
    routing an arrival), or ``before the first step`` (``prepare``)."""
    kinds = tuple(cls for cls in (getattr(sys.modules.get("ltrsched.sim.replica"), "Replica", None),
                                  getattr(sys.modules.get("ltrsched.engine.scheduler"), "PolicyScheduler", None))
                  if cls is not None)
    at = None
    frame = frame.f_back
    while frame is not None:
        local = frame.f_locals
        owner = local.get("self")
        if kinds and isinstance(owner, kinds):
            return f"at step {getattr(owner, 'steps', getattr(owner, 'num_steps', '?'))}"
        if at is None and isinstance(local.get("at"), float):
            at = local["at"]
        frame = frame.f_back
    return f"for the arrival at t={at:.3f} s" if at is not None else "before the first step"
