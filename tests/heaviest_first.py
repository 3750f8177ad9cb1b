"""The order in which ``pytest -n 2 --dist loadfile`` (the README's test command) hands test files to its workers:
the heaviest file left first, so that the suite's longest files start at once instead of last.

Under ``--dist loadfile`` a whole file runs on one worker, and pytest-xdist hands the files out in order of their
number of tests, most first. The slowest files here have few tests each (engine starts, Ray, subprocess CLIs), so
they came out last: a worker that drew one of them near the end ran on alone, the other idle. Handing the heaviest
files out first (longest-processing-time-first scheduling) lets the light ones fill in beside them.

:data:`FILE_SECONDS` holds each slow file's seconds in a full run of the README's command (their tests among the 80
slowest, ``--durations=80``). Only the order matters, and roughly: a file weighed too heavy only starts early; one
not listed counts as 0 s and follows the listed ones in xdist's own order. Re-weigh a file whose time grows a lot
(tests/test_heaviest_first.py checks that every listed file exists).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

#: Seconds of each file's tests among the 80 slowest of ``pytest -q -m "not slow and not gpu" -n 2 --dist loadfile
#: --durations=80`` on the 2-core VM, 2026-12-06 10:47-11:25 UTC (at load 7-14: 2,287 s in all), before this
#: ordering: test_ray_backend.py (14 tests) was handed out after over 80% of the tests had run, and ended the run.
FILE_SECONDS: dict[str, float] = {
    "test_ray_backend.py": 787,
    "test_plugin_timeout.py": 194,
    "test_served_model.py": 171,
    "test_validation.py": 142,
    "test_experiments.py": 127,
    "test_labels.py": 126,
    "test_validation_resume.py": 124,
    "test_engine_hostile_start.py": 115,
    "test_run_io.py": 109,
    "test_policy_state.py": 86,
    "test_capacity.py": 79,
    "test_cli_hostile_options.py": 55,
    "test_sweep_max_model_len.py": 49,
    "test_workload_input_gaps.py": 47,
    "test_cli_simulate.py": 46,
    "test_engine_hostile.py": 42,
    "test_models_other.py": 40,
    "test_policies.py": 37,
    "test_hostile_policies.py": 36,
    "test_input_lifecycle_gaps.py": 27,
    "test_cli_notices.py": 26,
    "test_hostile_load_inputs.py": 22,
    "test_run_cache.py": 21,
    "test_engine_cpu.py": 19,
    "test_engine_emulated.py": 16,
}


def file_seconds(scope: str) -> float:
    """The recorded seconds of the test file ``scope`` (a node id's file part, e.g. ``tests/test_probe.py``)."""
    return FILE_SECONDS.get(Path(scope).name, 0.0)


def heaviest(files) -> str:
    """The file of ``files`` (in xdist's order) to hand out next: the one with the most recorded seconds, the
    first of equals."""
    return max(files, key=file_seconds)


def make_scheduler(config, log):
    """xdist's ``--dist loadfile`` scheduler, handing out the heaviest file left (:func:`heaviest`) whenever it
    hands out a file; None for any other ``--dist`` (xdist then makes its own)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    if not callable(getattr(LoadFileScheduling, "_assign_work_unit", None)):
        return None  # (an xdist whose scheduler no longer has this private step: its own order, not a broken run)

    class HeaviestFileFirst(LoadFileScheduling):
        def _assign_work_unit(self, node) -> None:
            queue = getattr(self, "workqueue", None)
            if isinstance(queue, OrderedDict) and queue:  # (else xdist's own order: only the order is ours)
                queue.move_to_end(heaviest(queue), last=False)  # (xdist pops the queue's first)
            super()._assign_work_unit(node)

    return HeaviestFileFirst(config, log)
