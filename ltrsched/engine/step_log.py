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
    """Per-step values, one row appended per step (a tuple: the engine's hot path), as columns on demand; the last
    ``max_steps`` of them where that is set."""

    def __init__(self, max_steps: int | None = None) -> None:
        """``max_steps``: keep only the last ``max_steps`` steps (at most twice as many between trims); None: all.
        A server's scheduler keeps no run's result, and every step kept holds ~360 bytes (tracemalloc): kept all,
        a server's log grew by 1 GB every ~3 million steps (``vllm serve``, docs/serving.md)."""
        self._rows: list[tuple] = []  # OTHER_FIELDS' values, then the StepShape
        self.max_steps = max_steps

    def __len__(self) -> int:
        return len(self._rows)

    def record(self, shape: StepShape, start: float, end: float, cycle: float, num_live: int, num_evicted: int,
               num_finished: int, blocks_in_use: int, mismatches: int, vllm_schedule_s: float,
               plugin_s: float) -> None:
        """Append a step (the values of ``OTHER_FIELDS``, in that order)."""
        rows = self._rows
        rows.append((start, end, cycle, num_live, num_evicted, num_finished, blocks_in_use, mismatches,
                     vllm_schedule_s, plugin_s, shape))
        if self.max_steps is not None and len(rows) >= 2 * self.max_steps:  # (amortised: one trim per max_steps steps)
            del rows[:len(rows) - self.max_steps]

    def last(self, name: str):
        """The last step's value of field ``name`` (one of ``OTHER_FIELDS`` or ``SHAPE_FIELDS``)."""
        row = self._rows[-1]
        return getattr(row[-1], name) if name in SHAPE_FIELDS else row[_POSITION[name]]

    @property
    def columns(self) -> dict[str, list]:
        """Field name -> its values, one per step."""
        cols: dict[str, list] = {name: [row[k] for row in self._rows] for name, k in _POSITION.items()}
        for name in SHAPE_FIELDS:
            cols[name] = [getattr(row[-1], name) for row in self._rows]
        return cols

    def frame(self) -> pl.DataFrame:
        df = pl.DataFrame(self.columns, strict=False)
        return df.with_columns(duration=pl.col("end") - pl.col("start"))


_POSITION = {name: k for k, name in enumerate(OTHER_FIELDS)}
