"""Peak RSS [MB], CPU time [s] and the output's sha256 of one ``ltrsched`` command (``plot trace``, ``plot cdf``...)
or one write of :mod:`ltrsched.atomic`, each run in a fresh child process: its peak RSS is the child's
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (imports and loading included), its CPU time user + system.

    python benchmarks/bench_plot_memory.py cli OUT -- plot trace RUN --end 3977.98 -o OUT   # OUT: the file digested
    python benchmarks/bench_plot_memory.py csv OUT --rows 1000000      # atomic.write_csv of a 1,000,000-row table
    python benchmarks/bench_plot_memory.py figure OUT --panels 40      # atomic.write_figure of a 40 x 3-panel figure

The child imports ``ltrsched`` from the current directory first, then ``PYTHONPATH``: to compare two checkouts, run
this from outside both (``cd /tmp; PYTHONPATH=CHECKOUT python CHECKOUT/benchmarks/bench_plot_memory.py ...``).
One measurement a call (``RUSAGE_CHILDREN``'s peak is the largest child's so far): call it again to repeat. Run it
under ``taskset -c 0`` to keep to one core.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
from pathlib import Path

#: A child that builds a table of ROWS rows (8 float and integer columns, fixed seed) and writes it with
#: atomic.write_csv; the table's own memory is printed (to subtract).
_CSV = """
import sys, numpy as np, polars as pl
from ltrsched import atomic
rows = int(sys.argv[2]); rng = np.random.default_rng(0)
df = pl.DataFrame({"run": np.arange(rows), **{f"m{k}": rng.random(rows) for k in range(6)},
                   "tokens": rng.integers(1, 4000, rows)})
print(f"table {df.estimated_size() / 2**20:.1f} MB in memory", file=sys.stderr)
atomic.write_csv(sys.argv[1], df)
"""

#: A child that draws PANELS rows of 3 panels, each with 3 lines of 4,000 steps, and saves it with atomic.write_figure.
_FIGURE = """
import sys, numpy as np, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from ltrsched import atomic
rows = int(sys.argv[2]); rng = np.random.default_rng(0)
fig, axes = plt.subplots(rows, 3, figsize=(12.6, 3.2 * rows + 0.6), squeeze=False)
for ax in axes.flat:
    for _ in range(3):
        x = np.sort(rng.random(4000)); ax.step(x, np.arange(1, 4001) / 4000, where="post")
atomic.write_figure(sys.argv[1], fig, dpi=120)
"""


def run_child(argv: list[str], out: Path) -> str:
    """Run ``argv`` in a fresh process; its peak RSS, CPU time and ``out``'s size and sha256, as one line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = (done.stderr.strip().splitlines() or [""])[-1]
    if done.returncode:
        return f"exit {done.returncode}: {tail}; CPU {cpu:.2f} s, peak RSS {after.ru_maxrss / 1024:.1f} MB"
    with open(out, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return (f"peak RSS {after.ru_maxrss / 1024:.1f} MB, CPU {cpu:.2f} s; {out.name} {out.stat().st_size / 2**20:.2f} "
            f"MB sha256 {digest[:16]}" + (f" ({tail})" if tail else ""))


def main() -> None:
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("cli", "csv", "figure"))
    ap.add_argument("out", type=Path, help="the file the command writes (digested)")
    ap.add_argument("--rows", type=int, default=1_000_000, help="csv: rows of the table")
    ap.add_argument("--panels", type=int, default=40, help="figure: rows of 3 panels")
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.what == "cli":
        child = [sys.executable, "-c", "import sys; from ltrsched.cli import main; sys.argv[0] = 'ltrsched'; main()",
                 *rest]
    elif args.what == "csv":
        child = [sys.executable, "-c", _CSV, str(args.out), str(args.rows)]
    else:
        child = [sys.executable, "-c", _FIGURE, str(args.out), str(args.panels)]
    print(run_child(child, args.out))


if __name__ == "__main__":
    main()
