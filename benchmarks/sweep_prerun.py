"""Time to a sweep's first run: `ltrsched sweep` of a generated sweep file, in this process, stopped where its first
run would start (``runner.run_one`` replaced by a stop); prints the wall and CPU seconds from the command's start
(the package's imports included, the interpreter's start and writing the file not).

    PYTHONPATH=$PWD taskset -c 0 nice -n 10 python benchmarks/sweep_prerun.py policies   # 10,000 policies, 10 requests
    PYTHONPATH=$PWD taskset -c 0 nice -n 10 python benchmarks/sweep_prerun.py grid       # 10 x 5 rates x 20 seeds
    ... --profile    # and cProfile's top 30 (cumulative)

The sweep files: ``policies``: workloads = ["lmsys-like"], policies = 10,000 ``ltr:tau=0.10000`` ... ``0.89992``,
num_requests = 10; ``grid``: 10 policies ``ltr:tau=0.50`` ... ``0.59``, arrival = "poisson", rates = [2, 4, 8, 16, 32],
seeds 0-19, num_requests = 10. Each into a fresh --out (nothing cached).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path



def sweep_text(kind: str) -> str:
    if kind == "policies":
        policies = ", ".join(f'"ltr:tau={0.1 + i * 0.00008:.5f}"' for i in range(10_000))
        return f'workloads = ["lmsys-like"]\npolicies = [{policies}]\nnum_requests = 10\n'
    policies = ", ".join(f'"ltr:tau={0.5 + i * 0.01:.2f}"' for i in range(10))
    seeds = ", ".join(str(i) for i in range(20))
    return (f'workloads = ["lmsys-like"]\npolicies = [{policies}]\narrival = "poisson"\n'
            f'rates = [2.0, 4.0, 8.0, 16.0, 32.0]\nseeds = [{seeds}]\nnum_requests = 10\n')


class FirstRun(Exception):
    """Raised where the sweep's first run would start."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("policies", "grid"))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_text(sweep_text(args.kind))
        wall, cpu = time.perf_counter(), time.process_time()  # (the file written: not the sweep's)
        import ltrsched.experiments.runner as runner
        from ltrsched.cli import main as cli_main

        def first_run(*_, **__):
            raise FirstRun

        runner.run_one = first_run
        profile = None
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        try:
            cli_main(["sweep", str(path), "--out", str(Path(tmp) / "out"), "-j", "1"])
        except FirstRun:
            pass
        else:
            raise SystemExit("the sweep ended without starting a run")
        if profile is not None:
            profile.disable()
        print(f"{args.kind}: to the first run {time.perf_counter() - wall:.2f} s wall, "
              f"{time.process_time() - cpu:.2f} s CPU")
        if profile is not None:
            import pstats

            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
