"""Runs as Ray tasks: on a local Ray instance (the default) or on a Ray cluster (``--address``).

Each task calls :func:`~ltrsched.experiments.runner.run_one`, the unit of work the process pool calls
too, so the run keys, the run cache, the per-run locks and the files written are the same whichever
backend computed them. The caller checks which runs are finished before any task is submitted, so a
resumed sweep submits only the missing ones, and a fully cached one starts no Ray at all.

At most as many tasks are in flight as there are CPUs, so that after a failing run no new one starts
(the runs under way finish and are written, as with the process pool). A task whose worker process
dies (killed, out of memory, a crash in native code, a lost node) is submitted once more and reported;
a second death marks the run failed, and the others go on. A worker that a plugin call which would not stop ended
(:mod:`ltrsched.plugin_watchdog`) left its line in the run's directory: that line is the command's error (exit
code 2), once, with no retry.

Ray is an optional dependency (``pip install 'ltrsched[ray]'``), imported only here, on first use. A
local instance gets ``jobs`` CPUs (default: the CPUs this process may use), no dashboard, and Ray's logging at
ERROR. With ``--address`` (``host:port``, ``ray://host:port`` or ``auto``) the cluster is checked before joining:
a TCP connection first, then ``ray.init`` in a child process bounded by :data:`CONNECT_TIMEOUT_S`
(``ray.init`` itself retries an address that answers but is not Ray for ever), so a bad address is a
one-line error. On a cluster, ``--out``, the workloads and ltrsched must be reachable from every node
at the same paths (a shared file system); tasks run in the driver's working directory where it exists
and see its ``LTRSCHED_PLUGINS``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from ltrsched.errors import MissingDependencyError, UserError
from ltrsched.experiments.runner import (BUSY, EXIT_LINE_FILE, Backend, Pending, RunStats, describe_run,
                                        report_notices, run_one_noting, usable_cpus)
from ltrsched.experiments.runspec import RunSpec
from ltrsched.plugin_watchdog import PluginTimeoutError, exit_line_left_in, leave_exit_line_in
from ltrsched.policies.batching import ThrashError

#: Seconds allowed to reach and join a Ray cluster given with ``--address``; the environment variable
#: ``LTRSCHED_RAY_TIMEOUT`` overrides it.
CONNECT_TIMEOUT_S = 60.0
#: Shared-memory object store of a local instance [bytes]: tasks exchange only small tuples.
OBJECT_STORE_BYTES = 128 * 2**20
#: Environment variables a task takes from the driver.
FORWARDED_ENV = ("LTRSCHED_PLUGINS", "LTRSCHED_PLUGIN_TIMEOUT")


def import_ray():
    """The ``ray`` module, or :class:`MissingDependencyError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    return ray


def connect_timeout() -> float:
    text = os.environ.get("LTRSCHED_RAY_TIMEOUT")
    if text is None:
        return CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):  # (an infinite wait would hang on a silent address)
        raise UserError(f"LTRSCHED_RAY_TIMEOUT must be a positive, finite number of seconds, got {text!r}")
    return value


def check_address(address: str, timeout: float) -> None:
    """Raise :class:`UserError` (one line) unless a Ray cluster answers at ``address`` within ``timeout``
    seconds. ``auto`` is looked up by Ray; ``host:port`` and ``ray://host:port`` are first tried with a
    plain TCP connection, so a closed port or an unknown host is reported at once."""
    if address != "auto":
        hostport = address.removeprefix("ray://")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--address {address!r}: expected host:port, ray://host:port or auto")
        if not 1 <= int(port) <= 65535:  # (0 and 99999999 were "Connection refused", as if nothing listened there)
            raise UserError(f"--address {address!r}: port {port} is not a TCP port (1..65535)")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout, 10.0)).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UserError(f"--address {address}: cannot reach a Ray cluster there ({reason})") from None
    probe = ("import logging, sys, ray\n"
             "ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)\n"
             "ray.shutdown()\n")
    returncode, stderr = _probe(probe, address, timeout)
    if _AUTH_REFUSED in stderr:  # (Ray retries a refused token until its own time-out: stopped at the first)
        raise UserError(f"--address {address}: the Ray cluster there requires token authentication; set "
                        "RAY_AUTH_MODE=token and give its token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                        "~/.ray/auth_token): Ray sends a token to an address given explicitly only when told to")
    if returncode is None:
        raise UserError(f"--address {address}: no Ray cluster answered within {timeout:g} s "
                        "(LTRSCHED_RAY_TIMEOUT sets the limit)")
    if returncode != 0:
        errors = [ln for ln in stderr.splitlines() if "Error" in ln.split(":")[0]]
        reason = errors[-1].split(": ", 1)[-1] if errors else f"exit code {returncode}"
        raise UserError(f"--address {address}: cannot join a Ray cluster there ({reason.split('. ')[0]})")


def _probe(code: str, address: str, timeout: float) -> tuple[int | None, str]:
    """Run ``code`` with ``address`` in a child Python for at most ``timeout`` seconds: its exit code (None: it was
    stopped at the time-out, or at a refused token) and its stderr so far."""
    proc = subprocess.Popen([sys.executable, "-c", code, address], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    got = bytearray()
    try:
        fd = proc.stderr.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None, got.decode(errors="replace")
            chunk = os.read(fd, 65536)
            if not chunk:  # the probe closed its stderr: it is exiting
                try:
                    return proc.wait(timeout=max(deadline - time.monotonic(), 1.0)), got.decode(errors="replace")
                except subprocess.TimeoutExpired:
                    return None, got.decode(errors="replace")
            got += chunk
            if _AUTH_REFUSED.encode() in got:
                return None, got.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


#: What Ray's GCS client logs when the cluster refused it for a missing or wrong token (Ray >= 2.5x's token
#: authentication, on by default for clusters started where a token exists; a client joining an explicit
#: address does not send one unless ``RAY_AUTH_MODE=token``).
_AUTH_REFUSED = "InvalidAuthToken"


def local_init_options(cpus: int) -> dict[str, Any]:
    """``ray.init`` arguments of the local instance the backend starts itself (``cpus`` CPUs): no dashboard,
    a small object store, Ray's logging at ERROR and workers' output not forwarded. Ray's fixed start-up
    cost (its daemons: GCS, raylet, the API server, the autoscaler monitor, the log monitor, the dashboard
    and runtime-env agents) is the same with or without these; see BENCHMARKS.md, "Sweeps on Ray"."""
    return dict(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                logging_level=logging.ERROR, log_to_driver=False)


#: Ray's own text for a worker that died; such deaths are reported by :meth:`RayBackend.run` instead.
_WORKER_DIED = "worker died or was killed"


def _route_pushed_errors(ray) -> None:
    """Errors the cluster pushes to the driver go to stderr, not stdout (which holds the command's table),
    and worker deaths are left to :meth:`RayBackend.run` to report, in one line each. Ray prints these
    from a thread through ``ray._private.worker.print_to_stdstream`` (Ray 2.60; left alone if absent)."""
    module = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(module, "print_to_stdstream", None)
    if original is None or getattr(original, "ltrsched_routed", False):
        return

    def route(data, ignore_prefix):
        if data.get("pid") == "raylet":
            lines = [ln for ln in data.get("lines", []) if _WORKER_DIED not in ln]
            if not lines:
                return
            data = {**data, "lines": lines, "is_err": True}
        original(data, ignore_prefix)

    route.ltrsched_routed = True
    module.print_to_stdstream = route


def _task(spec_dict: dict[str, Any], out: str, run_hash: str, wait: bool, context: dict[str, Any]) -> tuple[str, str]:
    """One run in a Ray worker: in the driver's working directory and plugin setting, with the driver's
    file digests (each input file is hashed once per invocation where the worker shares its disk)."""
    from ltrsched.fingerprint import remember_digests

    cwd = context["cwd"]
    if os.getcwd() != cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    for key, value in context["env"].items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    remember_digests(context["digests"])
    # a plugin call that will not stop ends this worker: its line goes where the driver looks after the death
    exit_line = _exit_line_path(out, run_hash)
    with contextlib.suppress(OSError):
        os.unlink(exit_line)  # (one an earlier invocation left)
    leave_exit_line_in(exit_line)
    try:
        return run_hash, *run_one_noting(RunSpec.from_dict(spec_dict), out, run_hash, wait)
    finally:
        leave_exit_line_in(None)


def _exit_line_path(out: str | Path, run_hash: str) -> str:
    """Where a task's worker leaves the line of a plugin call that ended it (:func:`leave_exit_line_in`): in the run's
    directory, which the driver shares (the output directory is on a shared file system on a cluster)."""
    return os.path.join(out, "runs", run_hash, EXIT_LINE_FILE)


def _plugin_exit_line(out: str | Path, run_hash: str) -> str | None:
    """The line a task's worker left before a stuck plugin call ended it (then removed), else None."""
    path = _exit_line_path(out, run_hash)
    line = exit_line_left_in(path)
    if line is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return line


class RayBackend(Backend):
    """Runs as Ray tasks (one CPU each); see the module's docstring.

    Args:
        jobs: CPUs of the local instance (default: the CPUs this process may use); on a cluster, the most runs at once
            (default: the cluster's CPUs).
        address: a Ray cluster to join (``host:port``, ``ray://host:port``, ``auto``); None: start a
            local instance (``RAY_ADDRESS`` is not consulted).
    """

    name = "ray"

    def __init__(self, jobs: int | None = None, address: str | None = None):
        self.jobs = jobs
        self.address = address
        self._ray = import_ray()  # fail before any work if Ray is missing
        self._remote = None
        self._slots = 1
        self._owns_session = True
        if address is not None:
            check_address(address, connect_timeout())

    def _connect(self) -> None:
        if self._remote is not None:
            return
        ray = self._ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline tool: no usage reports
        _route_pushed_errors(ray)
        quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
        if ray.is_initialized():  # a library caller's own Ray session: use it, leave it open
            self._owns_session = False
            cpus = self._cluster_cpus()
        elif self.address is None:
            cpus = self.jobs or usable_cpus()
            ray.init(**local_init_options(cpus))
        else:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"--address {self.address}: cannot join a Ray cluster there ({exc})") from None
            cpus = self._cluster_cpus()
        self._slots = cpus
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_task)

    def _cluster_cpus(self) -> int:
        """Runs in flight on a joined cluster: its CPUs, at most ``jobs``."""
        cpus = max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        return min(cpus, self.jobs) if self.jobs else cpus

    def run(self, pending: list[Pending], out: Path, stats: RunStats, bar, thrash_ok: bool = False) -> None:
        self._connect()
        ray = self._ray
        from ltrsched.fingerprint import known_digests
        from ltrsched.progress import beat, poll_s

        deaths = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError,
                  ray.exceptions.LocalRayletDiedError)
        context = ray.put({"cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in FORWARDED_ENV},
                           "digests": known_digests()})
        out_dir = os.path.abspath(out)
        queue: deque[tuple[RunSpec, str, bool]] = deque((s, h, False) for s, h in pending)
        in_flight: dict[Any, tuple[RunSpec, str, bool]] = {}
        error: BaseException | None = None
        task_error: BaseException | None = None
        seen: set[str] = set()
        wait_s = poll_s(bar)
        while queue or in_flight:
            while queue and error is None and len(in_flight) < self._slots:
                s, h, wait = queue.popleft()
                in_flight[self._remote.remote(s.to_dict(), out_dir, h, wait, context)] = (s, h, wait)
            if not in_flight:
                break
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait_s)
            if not done:  # (off a terminal: a heartbeat while slow runs are under way)
                beat(bar, len(in_flight))
            for ref in done:
                s, h, wait = in_flight.pop(ref)
                try:
                    _, status, notices = ray.get(ref)
                    report_notices(notices, seen, bar)
                except deaths as exc:
                    line = _plugin_exit_line(out_dir, h)
                    if line is not None:  # a plugin call would not stop: the one line a lone process prints, no retry
                        if error is None:
                            error = PluginTimeoutError(line)
                        continue
                    why = type(exc).__name__
                    if h in stats.retried:
                        stats.failed[h] = why
                        bar.write(f"warning: run {describe_run(s, h)} failed: its worker died again ({why})",
                                  file=sys.stderr)
                        bar.update(1)
                    else:
                        stats.retried[h] = why
                        bar.write(f"warning: run {describe_run(s, h)}: its worker died ({why}); running it again",
                                  file=sys.stderr)
                        queue.appendleft((s, h, wait))
                    continue
                except ray.exceptions.RayTaskError as exc:  # the run raised: re-raised below, after the others
                    cause = getattr(exc, "cause", None)
                    if thrash_ok and isinstance(cause, ThrashError):  # (this run only: the others go on)
                        stats.stopped[h] = str(cause)
                        bar.update(1)
                        continue
                    if error is None:
                        error = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                        task_error = exc  # (its text holds the worker's traceback: where the run failed)
                    continue
                if status == BUSY:  # another process is computing it: wait for it, last
                    queue.append((s, h, True))
                    continue
                stats.count(h, status)
                bar.update(1)
        if error is not None:
            if error is not task_error:
                raise error from task_error
            raise error

    def close(self) -> None:
        if self._remote is not None:
            self._remote = None
            if self._owns_session:
                self._ray.shutdown()
