"""Workloads: request records, loaders, the paper's selection rules and arrival processes."""

from ltrsched.workloads.arrivals import PROCESSES, apply_arrivals, arrival_times
from ltrsched.workloads.builtin import builtin_workloads
from ltrsched.workloads.loaders import load_workload
from ltrsched.workloads.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Workload, validate
from ltrsched.workloads.selection import paper_selection
from ltrsched.workloads.sharegpt import load_sharegpt_records
from ltrsched.workloads.tokenizer import count_tokens

__all__ = [
    "OPTIONAL_COLUMNS", "PROCESSES", "REQUIRED_COLUMNS", "Workload", "apply_arrivals", "arrival_times",
    "builtin_workloads", "count_tokens", "load_sharegpt_records", "load_workload", "paper_selection", "validate",
]
