"""A cProfile of one simulation shown per simulator step: each function's own and cumulative time [us/step] and its
calls per step, the top ``top`` by each."""

from __future__ import annotations

import cProfile
import os
import pstats
from typing import Callable


def print_step_profile(run: Callable[[], int], label: str, top: int) -> None:
    """Profile ``run()`` (a simulation returning its step count) and print the table, headed by ``label``."""
    prof = cProfile.Profile()
    prof.enable()
    steps = run()
    prof.disable()
    rows = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in pstats.Stats(prof).stats.items():
        where = f"{os.path.relpath(file) if file.startswith(os.getcwd()) else os.path.basename(file)}:{line}({func})"
        rows.append((tottime, cumtime, calls, where))
    for title, key in (("own time (tottime)", 0), ("cumulative time (cumtime)", 1)):
        print(f"  {label}: {steps} steps, top {top} by {title} [us/step] (under cProfile)")
        for row in sorted(rows, key=lambda x: -x[key])[:top]:
            print(f"    {row[0] / steps * 1e6:9.1f} own {row[1] / steps * 1e6:9.1f} cum {row[2] / steps:8.3f} "
                  f"calls/step  {row[3]}")
