"""Workloads: request records, loaders, selection rules and arrival processes."""

from ltrsched.workloads.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Workload, validate

__all__ = ["OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "Workload", "validate"]
