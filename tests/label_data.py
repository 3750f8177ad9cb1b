"""Small labelled data and an engine stand-in for the predictor and labelling tests (no model, no engine)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

WORDS = "please explain the story of a word list write answer today city code python function loop summary".split()


def english_rows(n: int, seed: int) -> list[tuple[str, int]]:
    """``n`` (prompt, output length [tokens]) pairs of English words, longer prompts with longer answers."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(3, 12))))
        rows.append((" ".join(words) + f" {seed}-{i}", 20 * len(words) + int(rng.integers(1, 50))))
    return rows


def write_label_jsonl(path, rows) -> None:
    """A labels .jsonl of ``rows`` ((prompt, output tokens) pairs)."""
    path.write_text("".join(json.dumps({"prompt": p, "output_tokens": n}) + "\n" for p, n in rows))


class FakeLabelDriver:
    """Stands in for :class:`ltrsched.engine.runner.VllmDriver` under ``label`` (a context of 1,000 tokens); appends
    True to :attr:`closed` when the run leaves it (the engine shut down)."""

    closed: list = []

    def __init__(self, config, load_format, seed):
        self.host = SimpleNamespace(to_dict=lambda: {})
        self.max_model_len = 1000

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed.append(True)
