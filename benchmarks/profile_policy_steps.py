"""Where does a policy's engine step spend its time? cProfile one burst per policy on the real CPU engine
(llama-tiny, 32 sequences per step, each policy twice, alternating) and list the functions whose cumulative
time differs most between the last run of the first and of the second policy (VALIDATION.md section 1).

    python benchmarks/profile_policy_steps.py [--policies fcfs,mlfq] [--num-requests 100] [--top 45]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats


def _cumulative(profile: cProfile.Profile) -> dict[str, tuple[int, float]]:
    """function -> (calls, cumulative seconds)."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {f"{k[0].split('site-packages/')[-1]}:{k[1]}:{k[2]}": (v[1], v[3]) for k, v in stats.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="fcfs,mlfq", help="two policy specs separated by ';'")
    ap.add_argument("--num-requests", type=int, default=100)
    ap.add_argument("--max-num-seqs", type=int, default=32)
    ap.add_argument("--top", type=int, default=45)
    args = ap.parse_args()
    first, second = args.policies.split(";") if ";" in args.policies else args.policies.split(",")

    from cpu_engine_burst import cpu_engine_and_burst
    from ltrsched.policies import make_policy

    eng, wl = cpu_engine_and_burst(args.num_requests, model="llama-tiny", max_num_seqs=args.max_num_seqs)
    last: dict[str, dict[str, tuple[int, float]]] = {}
    for spec in (first, second, first, second):
        prof = cProfile.Profile()
        prof.enable()
        result = eng.run(wl, make_policy(spec))
        prof.disable()
        last[spec] = _cumulative(prof)
        print(f"{spec}: {result.summary.get('steps')} steps, makespan {result.summary['makespan']:.2f} s", flush=True)
    a, b = last[first], last[second]
    zero = (0, 0.0)
    rows = sorted(((b.get(k, zero)[1] - a.get(k, zero)[1], k) for k in set(a) | set(b)), reverse=True)
    for diff, k in rows[:args.top]:
        (ca, ta), (cb, tb) = a.get(k, zero), b.get(k, zero)
        print(f"{diff:+8.3f} s  {first} {ta:8.3f} s / {ca:>7} calls  {second} {tb:8.3f} s / {cb:>7} calls  {k}")


if __name__ == "__main__":
    main()
