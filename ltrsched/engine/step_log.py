"""The adapter's per-step record: what each step computed and how long it took (pure Python + polars).

This is the raw material of a measured step-time profile (``ltrsched profile``) and of the plug-in's
overhead report. Times in seconds on the run's clock; ``cycle`` is the time from the previous step's end
to this step's end when the engine ran them back to back (NaN after an idle gap): the step time the
simulator needs, CPU overhead between steps included.
"""

from __future__ import annotations

import polars as pl

from ltrsched.policies.step_shape import StepShape

SHAPE_FIELDS = ("num_prefill_tokens", "num_prefill_seqs", "num_decode_seqs", "decode_context_tokens",
                "prefill_attention_pairs")
OTHER_FIELDS = ("start", "end", "cycle", "num_live", "num_evicted", "num_finished", "blocks_in_use",
                "mismatches", "vllm_schedule_s", "plugin_s")


class StepLog:
    """Columns of per-step values, appended once per step."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {name: [] for name in OTHER_FIELDS + SHAPE_FIELDS}

    def __len__(self) -> int:
        return len(self.columns["start"])

    def record(self, shape: StepShape, **values: float) -> None:
        cols = self.columns
        for name in OTHER_FIELDS:
            cols[name].append(values[name])
        for name in SHAPE_FIELDS:
            cols[name].append(getattr(shape, name))

    def frame(self) -> pl.DataFrame:
        df = pl.DataFrame(self.columns, strict=False)
        return df.with_columns(duration=pl.col("end") - pl.col("start"))
