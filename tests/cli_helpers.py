"""Running ``ltrsched`` in the test process: a bad-input test that checks one line and exit code 2 needs no fresh
interpreter (1-2 s of imports each under load). Tests whose point is the process itself (a signal, a pipe,
import-time behaviour, plugins loaded at start-up, a real engine start, a hang) keep a subprocess."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class CliResult:
    """What :func:`subprocess.run` would have given: the exit code and the text written to stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


def _exit_code(code) -> int:
    """``sys.exit(code)``'s process exit code: None is 0, an integer itself, anything else (a message) 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _figures() -> set[int]:
    """The numbers of pyplot's open figures (none if pyplot was never imported)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    return set(pyplot.get_fignums()) if pyplot is not None else set()


def _restore_matplotlib(old_rc: dict | None, old_figures: set[int]) -> None:
    """Close the figures a call left open and put back the rcParams it changed (``old_rc``: None if matplotlib was
    not imported before the call: its settings then are its defaults, which a call's import gives too)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        for number in _figures() - old_figures:
            pyplot.close(number)
    if old_rc is not None:
        rc = sys.modules["matplotlib"].rcParams
        changed = {k: v for k, v in old_rc.items() if dict.get(rc, k) is not v and dict.get(rc, k) != v}
        dict.update(rc, changed)  # (the raw values, as copied: an unresolved backend stays unresolved)


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is at the time of the write, as a fresh process's logging
    handler writes to the stderr of its one command."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _handlers_follow_stderr() -> None:
    """Point library loggers' stream handlers (transformers' binds ``sys.stderr`` once, when first used) at the
    stderr of the call running, not the one of the call that created them: that one's stream is a closed capture
    by now (a "--- Logging error ---" traceback on the next call's stderr) or another test's (its lines lost)."""
    loggers = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if (type(handler) is logging.StreamHandler
                    and handler.stream not in (sys.__stderr__, sys.__stdout__)
                    and not isinstance(handler.stream, _CurrentStderr)):
                with handler.lock:  # (not setStream: it flushes the old stream first, a closed capture by now)
                    handler.stream = _CurrentStderr()


@contextlib.contextmanager
def _call_state(cwd, env):
    """Runs the body in ``cwd`` with the environment ``env`` (the whole environment, as subprocess's ``env=``) and
    puts back, whatever the body did: the working directory, environment, warnings filters, root logging handlers,
    CPU affinity, torch's thread count, matplotlib's settings (a plot's ``matplotlib.use("Agg")`` changed its
    ``backend`` rcParams for every later test) and open figures, and sys.stdin/stdout/stderr. Library loggers' stream
    handlers write to the stderr of the call running (:func:`_handlers_follow_stderr`)."""
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    old_streams = sys.stdin, sys.stdout, sys.stderr
    root = logging.getLogger()
    old_handlers, old_level = list(root.handlers), root.level
    old_cpus = os.sched_getaffinity(0)
    old_threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    old_rc = dict.copy(sys.modules["matplotlib"].rcParams) if "matplotlib" in sys.modules else None  # (raw: unresolved)
    old_figures = _figures()
    _handlers_follow_stderr()
    try:
        with warnings.catch_warnings():
            if env is not None:  # the whole environment, as subprocess's env=
                os.environ.clear()
                os.environ.update(env)
            if cwd is not None:
                os.chdir(cwd)
            yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        sys.stdin, sys.stdout, sys.stderr = old_streams
        root.handlers[:] = old_handlers
        root.setLevel(old_level)
        if os.sched_getaffinity(0) != old_cpus:  # (an engine start pins its threads)
            os.sched_setaffinity(0, old_cpus)
        if old_threads is not None and sys.modules["torch"].get_num_threads() != old_threads:
            sys.modules["torch"]._C.set_num_threads(old_threads)
        _restore_matplotlib(old_rc, old_figures)
        _handlers_follow_stderr()


def _main(args) -> int:
    """``ltrsched ARGS``'s exit code, run by the CLI's own ``main``."""
    from ltrsched.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def run_cli_fast(capsys, *args, cwd=None, env=None) -> CliResult:
    """``ltrsched ARGS`` in this process, in ``cwd`` with the environment ``env`` (the whole environment, as
    subprocess's ``env=``) for the call only; the result holds only this call's output. The process state
    :func:`_call_state` lists is as before once it returns, whatever the command did. An exception that escapes
    the CLI (a traceback in a real process) propagates and fails the test."""
    capsys.readouterr()  # (only this call's output)
    with _call_state(cwd, env):
        code = _main(args)
    out = capsys.readouterr()
    return CliResult(code, out.out, out.err)


def run_cli_captured(*args, cwd=None, env=None) -> CliResult:
    """:func:`run_cli_fast` without pytest's ``capsys`` (which a module-scoped fixture cannot take): the call's
    stdout and stderr are caught in memory with ``contextlib.redirect_stdout``/``redirect_stderr``. Like a pipe,
    neither is a terminal (``isatty()`` is False: no progress bars). Same state restored, same propagation of an
    exception that escapes the CLI."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with _call_state(cwd, env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = _main(args)
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def assert_one_line_error(r: CliResult, *parts: str) -> None:
    """Bad input: exit code 2 and one stderr line, ``error: ...``, holding each of ``parts``; no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for part in parts:
        assert part in lines[0], lines[0]
