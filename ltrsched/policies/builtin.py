"""Imports every built-in policy module so that each registers itself."""

from ltrsched.policies import fcfs, srtf  # noqa: F401
