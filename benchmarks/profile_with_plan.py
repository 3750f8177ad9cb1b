"""``ltrsched profile`` with other decode probes: prompt lengths (contexts) and decode steps per probe.

For experiments on the probe plan (VALIDATION.md, "Two profile runs minutes apart"): everything else is the
command's own (its options follow ``--``), including the batch sizes, the repeats and the fit.

    python benchmarks/profile_with_plan.py --contexts 64,192,512,2048 --decode-outputs 64 -- \\
        --model llama-tiny --out P1.json
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", required=True, help="decode probes' prompt lengths [tokens], separated by ','")
    ap.add_argument("--decode-outputs", type=int, required=True,
                    help="decode-only steps each decode probe runs after its prefill [steps]")
    ap.add_argument("profile_args", nargs=argparse.REMAINDER, help="-- then `ltrsched profile`'s options")
    args = ap.parse_args()
    try:
        contexts = tuple(int(c) for c in args.contexts.split(",") if c.strip())
    except ValueError:
        print(f"error: --contexts must be integers separated by ',', got {args.contexts!r}", file=sys.stderr)
        sys.exit(2)
    if not contexts or min(contexts) < 1 or args.decode_outputs < 1:
        print("error: --contexts and --decode-outputs must be positive", file=sys.stderr)
        sys.exit(2)

    import ltrsched.validation.profiling as profiling

    plan_of = profiling.probe_plan

    def probe_plan(*a, **k):
        return dataclasses.replace(plan_of(*a, **k), decode_prompts=contexts, decode_outputs=args.decode_outputs)

    profiling.probe_plan = probe_plan  # (`ltrsched profile` imports it when it runs)
    rest = args.profile_args[1:] if args.profile_args[:1] == ["--"] else args.profile_args
    sys.argv = ["ltrsched", "profile", *rest]
    from ltrsched.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
