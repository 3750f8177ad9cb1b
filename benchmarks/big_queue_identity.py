"""Proof that a change to the policies leaves every per-request result as it was: run each policy to the end on the
big burst of ``bench_big_queue.py`` (N requests at once, uniform lengths, seed 0) with the tree on ``PYTHONPATH``, and
save its per-request table; then compare two such directories column by column (exact equality, NaN equal to NaN).

    PYTHONPATH=<old tree> taskset -c 0 python benchmarks/big_queue_identity.py run --n 20000 --out /tmp/old
    PYTHONPATH=<new tree> taskset -c 0 python benchmarks/big_queue_identity.py run --n 20000 --out /tmp/new
    python benchmarks/big_queue_identity.py compare /tmp/old /tmp/new

``compare`` prints one line per policy (``identical``, or the columns that differ and in how many rows) and exits 1
if any differs or is missing. A run that raises (LTR with starvation prevention thrashes at a 20,000 burst and stops
with a ``ThrashError``) is saved as its message, compared word for word.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from bench_big_queue import POLICIES, big_burst, split_policies  # noqa: E402


def file_name(spec: str) -> str:
    return spec.replace(":", "_").replace(",", "_").replace("=", "-") + ".parquet"


def run(args) -> None:
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wl = big_burst(args.n)
    for spec in split_policies(args.policies):
        t0 = time.process_time()
        try:
            res = simulate(wl, make_policy(spec), SimConfig(stop_time=args.stop_time))
        except Exception as exc:  # (a run that stops, e.g. LTR + starvation prevention's thrash at a burst: its message)
            (out / file_name(spec)).with_suffix(".error").write_text(f"{type(exc).__name__}: {exc}\n")
            print(f"{spec}: {type(exc).__name__} after {time.process_time() - t0:.1f} s CPU", flush=True)
            continue
        res.requests.write_parquet(out / file_name(spec))
        print(f"{spec}: {res.summary['steps']:,} steps, {res.summary['num_finished']:,} finished, "
              f"{time.process_time() - t0:.1f} s CPU", flush=True)


def compare(args) -> int:
    bad = 0
    a_dir, b_dir = Path(args.a), Path(args.b)
    for path in sorted(a_dir.glob("*.error")):
        other = b_dir / path.name
        same = other.exists() and other.read_text() == path.read_text()
        print(f"{path.stem}: " + ("the same error, word for word" if same else "DIFFERS: an error in one only, or another"))
        bad += not same
    for path in sorted(a_dir.glob("*.parquet")):
        other = b_dir / path.name
        if not other.exists():
            print(f"{path.stem}: missing in {b_dir}")
            bad += 1
            continue
        a, b = pl.read_parquet(path), pl.read_parquet(other)
        if a.columns != b.columns or a.height != b.height:
            print(f"{path.stem}: columns or rows differ ({a.shape} vs {b.shape})")
            bad += 1
            continue
        diffs = []
        for col in a.columns:
            x, y = a[col].to_numpy(), b[col].to_numpy()
            if x.dtype.kind == "f":
                same = (x == y) | (np.isnan(x) & np.isnan(y))
            else:
                same = x == y
            if not same.all():
                diffs.append(f"{col} ({int((~same).sum())} rows)")
        print(f"{path.stem}: " + ("identical, " + f"{len(a.columns)} columns x {a.height:,} rows" if not diffs
                                  else "DIFFERS: " + ", ".join(diffs)))
        bad += bool(diffs)
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--n", type=int, default=20000)
    r.add_argument("--policies", default=POLICIES)
    r.add_argument("--stop-time", type=float, default=None, help="[simulated s] (None: every request to the end)")
    r.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = ap.parse_args()
    if args.cmd == "run":
        run(args)
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
