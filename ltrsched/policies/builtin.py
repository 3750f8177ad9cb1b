"""Imports every built-in policy module so that each registers itself."""

from ltrsched.policies import classification, fcfs, ltr, mlfq, po, srtf  # noqa: F401
