"""Tiny inputs: a CDF panel of one value, equal values, zeros or none; Kendall's tau of one request (scipy's own
warning reached the user's stderr); a tau on a handful of held-out prompts, printed as if it meant something."""

from __future__ import annotations

import polars as pl
import pytest

from test_other_lengths import _label_overlaps, _shown_labels


# ---------------------------------------------------------------- CDF panels
#: Values of every panel: one request; two equal values; values all 0 (drawn from -0.055 to 0.055 with labels
#: -0.050 and -0.025: negative latencies); no value at all ("no finite values").
FEW_VALUES = {"one": [0.0158938], "two-equal": [0.0158938, 0.0158938], "all-zero": [0.0, 0.0], "none": []}


@pytest.mark.parametrize("values", FEW_VALUES.values(), ids=FEW_VALUES.keys())
def test_cdf_panels_of_few_values_have_a_readable_non_negative_scale(values):
    import matplotlib.pyplot as plt

    from ltrsched.plots.cdf import CDF_METRICS, cdf_figure

    requests = pl.DataFrame({m: values for m in CDF_METRICS}, schema={m: pl.Float64 for m in CDF_METRICS})
    fig = cdf_figure([("", [("fcfs", requests)])])
    try:
        assert _label_overlaps(fig) == []
        for ax in fig.axes:
            shown = _shown_labels(ax)
            assert len(shown) >= 2, [t.get_text() for t in shown]  # (a scale to read)
            assert all(t.get_position()[0] >= 0 for t in shown), [t.get_text() for t in shown]  # (no negative time)
            low, high = ax.get_xlim()
            for line in ax.get_lines():  # (inside the panel, not on its left spine)
                assert low < min(line.get_xdata()) and max(line.get_xdata()) < high, (ax.get_xlim(), line.get_xdata())
    finally:
        plt.close(fig)

