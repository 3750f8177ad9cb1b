"""The calibration plot of ``ltrsched evaluate --plot``: the true output lengths [tokens] of the held-out prompts by
decile of the predictor's score (1 = the shortest predicted), one box per decile."""

from __future__ import annotations

import numpy as np

#: Largest / smallest true length [tokens] above which the length axis is logarithmic: a heavy tail (lognormal
#: sigma 2: lengths from 1 to 8,927 tokens, median 50) drew its boxes in the bottom hundredth of a linear axis.
LOG_AXIS_SPAN = 100


def calibration_figure(scores: np.ndarray, lengths: np.ndarray, tau: float):
    """A matplotlib ``Figure`` (the caller closes it) of ``lengths`` [tokens] by decile of ``scores`` (higher =
    shorter predicted), titled with Kendall ``tau``. Every length is drawn: a decile's lengths beyond its whiskers
    as points (they were left out, so a heavy tail's longest outputs, 8% of the prompts up to 8,927 tokens, lay
    above an axis that ended at 450), on a log axis where they span more than :data:`LOG_AXIS_SPAN` times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, lengths = np.asarray(scores), np.asarray(lengths)
    deciles = np.minimum((np.argsort(np.argsort(-scores)) * 10) // len(scores), 9)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.boxplot([lengths[deciles == d] for d in range(10)], flierprops={"markersize": 3})
    if lengths.min() > 0 and lengths.max() > LOG_AXIS_SPAN * lengths.min():
        ax.set_yscale("log")
    ax.set_xlabel("predicted-length decile (1 = shortest score)")
    ax.set_ylabel("true output tokens")
    ax.set_title(f"calibration, Kendall tau-b {tau:.3f}")
    fig.tight_layout()
    return fig
