"""The paper's published numbers, baked into the package as reference data (``paper_results.json``).

The JSON restates Tables 1-4 and the numbers stated for Figures 3-5 of "Efficient LLM Scheduling by
Learning to Rank" (arXiv v1); its ``source`` entry says where they come from. Latencies are in
s/token, times in seconds, accuracies as fractions.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

#: Settings of the paper's tables: model size x dataset, in the paper's row order.
SETTINGS = ("8B ShareGPT", "8B LMSYS", "70B ShareGPT", "70B LMSYS")


@lru_cache(maxsize=1)
def _load() -> str:
    return resources.files("ltrsched.experiments").joinpath("paper_results.json").read_text()


def load_reference() -> dict[str, Any]:
    """The paper's numbers as a fresh nested dict (callers may mutate it)."""
    return json.loads(_load())


def paper_value(*path: str) -> Any:
    """One reference entry by key path, e.g. ``paper_value("table1", "8B LMSYS", "ltr", "mean")``;
    None if any key is absent."""
    node: Any = load_reference()
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def dataset_of(setting: str) -> str:
    """``"70B LMSYS"`` -> ``"LMSYS"``."""
    return setting.split(" ", 1)[1]


def model_of(setting: str) -> str:
    """``"70B LMSYS"`` -> ``"70B"``."""
    return setting.split(" ", 1)[0]
