"""The time to load a big ``.jsonl`` workload (``ltrsched simulate --workload FILE.jsonl`` reads it by
``load_workload``): a file of ``--lines`` requests made here from the packaged ShareGPT data's first turns (prompt and
reply text; past the file's own first turns, each prompt again with `` (copy K)`` after it, so that none repeats), as
request lines (``{"prompt", "response"}``, the default) or conversation lines (``{"conversations": [human, gpt]}``,
``--conversations``; ``--split`` gives every line a ``split`` key and loads the ``train`` ones). The file is written
to a temporary directory and removed (``--keep DIR`` writes it there instead); the parse cache is a fresh empty
directory each round, so each load is a first one (``--cached``: the second, timed after a first). Each load is timed by ``time.process_time`` (CPU time: a shared
machine's other jobs stretch wall time more); the best of ``--repeat`` rounds is printed, with a digest of the
requests loaded (every column), which a faster loader must not change. ``--profile FILE`` writes cProfile's stats of
the last round.

    python benchmarks/bench_load_jsonl.py [--lines 100000] [--conversations] [--split] [--cached] [--repeat 1]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("LTRSCHED_PROGRESS_EVERY_S", "0")

import polars as pl  # noqa: E402

from ltrsched.workloads.loaders import load_workload  # noqa: E402
from ltrsched.workloads.sharegpt import FirstTurn, _package_file, iter_records, read_first_turn  # noqa: E402


def first_turns() -> list[tuple[str, str]]:
    """The packaged ShareGPT file's first turns with text (prompt, reply), in its order."""
    turns = []
    path = _package_file()
    for record in iter_records(path.read_text(encoding="utf-8"), str(path)):  # (the file is cut off: its last
        # record is left out)
        turn = read_first_turn(record)
        if isinstance(turn, FirstTurn) and turn.prompt.strip() and turn.reply.strip():
            turns.append((turn.prompt, turn.reply))
    return turns


def write_file(path: Path, lines: int, conversations: bool, split: bool) -> None:
    turns = first_turns()
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            prompt, reply = turns[i % len(turns)]
            if i >= len(turns):
                prompt = f"{prompt} (copy {i // len(turns)})"
            rec: dict = ({"id": f"c{i}", "conversations": [{"from": "human", "value": prompt},
                                                           {"from": "gpt", "value": reply}]}
                         if conversations else {"prompt": prompt, "response": reply})
            if split:
                rec["split"] = "eval" if i % 5 == 0 else "train"
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")


def digest(df: pl.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(repr(df.schema).encode())
    for name in df.columns:
        h.update(repr(df[name].to_list()).encode())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--conversations", action="store_true", help="conversation lines, not request lines")
    ap.add_argument("--split", action="store_true", help="a 'split' key on every line; load split='train'")
    ap.add_argument("--cached", action="store_true", help="time a second load (a conversations file's parse cached)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="write the file in this directory (kept)")
    ap.add_argument("--profile", type=Path, help="write cProfile stats of the last round here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        path = folder / f"bench-{args.lines}{'-conv' if args.conversations else ''}{'-split' if args.split else ''}.jsonl"
        if not path.exists():
            write_file(path, args.lines, args.conversations, args.split)
        best, seen = None, None
        for round_ in range(args.repeat):
            os.environ["LTRSCHED_CACHE"] = str(Path(tmp) / f"cache{round_}")
            if args.cached:
                load_workload(str(path), split="train" if args.split else None)
            profiler = cProfile.Profile() if args.profile and round_ == args.repeat - 1 else None
            t = time.process_time()
            if profiler:
                profiler.enable()
            wl = load_workload(str(path), split="train" if args.split else None)
            if profiler:
                profiler.disable()
                profiler.dump_stats(args.profile)
            took = time.process_time() - t
            best = took if best is None else min(best, took)
            seen = digest(wl.df)
        print(f"{path.name} ({path.stat().st_size / 1e6:.0f} MB): {wl.df.height:,} requests, digest {seen}, "
              f"load {best:.2f} s CPU (best of {args.repeat})", file=sys.stdout)


if __name__ == "__main__":
    main()
