"""Write a large prompt workload for the predictor commands at scale (BENCHMARKS.md, "Predictors at scale"): the
parsed ShareGPT records cycled, each prompt made distinct by a suffix, and 1 prompt in 500 replaced by about 100,000
characters of records joined, as a ``.jsonl`` of ``{"prompt", "output_tokens"}`` lines.

    python benchmarks/bench_predictor_scale.py 100000 p100k.jsonl
"""

from __future__ import annotations

import json
import sys

from ltrsched.workloads.sharegpt import load_sharegpt_records


def main(n: int, out: str) -> None:
    df = load_sharegpt_records()
    prompts, outputs = df["prompt"].to_list(), df["output_tokens"].to_list()
    chars = longs = 0
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            text = prompts[i % len(prompts)] + f" #{i}"
            if i % 500 == 250:  # 1 in 500: ~100,000 characters
                parts, j = [], i
                while sum(map(len, parts)) < 100_000:
                    parts.append(prompts[j % len(prompts)])
                    j += 7
                text = "\n\n".join(parts)[:100_000] + f" #{i}"
                longs += 1
            chars += len(text)
            f.write(json.dumps({"prompt": text, "output_tokens": int(outputs[i % len(prompts)])}) + "\n")
    print(f"{n} prompts, {chars} characters, {longs} of ~100,000 characters")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
