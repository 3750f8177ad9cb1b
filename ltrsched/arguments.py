"""One-line :class:`TypeError` for a Python API entry point (``simulate``, ``simulate_cluster``, ``emulate``,
``replay``) given the wrong kind of object for an argument: a string where a policy object goes, a polars frame where
a :class:`~ltrsched.workloads.schema.Workload` goes, a dict where a config goes. Without the check each failed inside
the run with an ``AttributeError`` about a missing attribute (``'str' object has no attribute 'needs'``)."""

from __future__ import annotations

from typing import Any


def shown(value: Any) -> str:
    """``value`` as an error shows it: its type's name, and for a short value its repr (``str 'fcfs'``)."""
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text}" if len(text) <= 60 else type(value).__name__


def check_argument(value: Any, kind: type | tuple[type, ...], argument: str, expected: str) -> None:
    """Raise ``TypeError("{argument} must be {expected}, got {shown(value)}")`` unless ``value`` is a ``kind``."""
    if not isinstance(value, kind):
        raise TypeError(f"{argument} must be {expected}, got {shown(value)}")


def check_flag(value: Any, argument: str) -> None:
    """Raise ``TypeError("{argument} must be True or False, got ...")`` unless ``value`` is a bool (a numpy one too):
    any truthy value counted, so ``progress="no"`` showed a progress bar."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if not (isinstance(value, bool) or numpy_bool):
        raise TypeError(f"{argument} must be True or False, got {shown(value)}")


def check_workload_and_policy(workload: Any, policy: Any) -> None:
    """One-line :class:`TypeError` naming the argument of a run (simulator or engine) that is not a
    :class:`~ltrsched.workloads.schema.Workload` or a :class:`~ltrsched.policies.base.Policy` (a frame, a policy's
    spec string: an ``AttributeError`` from inside the run)."""
    from ltrsched.policies.base import Policy
    from ltrsched.workloads.schema import Workload

    check_argument(workload, Workload, "workload", "a Workload (ltrsched.workloads.schema.Workload(df) for a frame)")
    check_argument(policy, Policy, "policy", "a Policy object (ltrsched.policies.make_policy('fcfs') for a spec)")
