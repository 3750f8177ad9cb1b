"""Writing comparison tables (markdown + CSV) and the shared pieces of every report section."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from ltrsched import atomic
#: LTR/FCFS latency ratios should land within this relative distance of the paper's.
RATIO_TOLERANCE = 0.15


@dataclass
class Check:
    """One qualitative claim of the paper tested on our numbers."""

    claim: str
    passed: bool
    detail: str = ""

    def markdown(self) -> str:
        return f"- [{'x' if self.passed else ' '}] {self.claim}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Section:
    """What one experiment contributes to REPRODUCTION.md and to the command's output."""

    name: str
    title: str
    tables: list[tuple[str, pl.DataFrame]] = field(default_factory=list)  # (caption, table)
    figures: list[Path] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def add_setting_note(notes: list[str], setting: str, note: str) -> None:
    """Append ``"<setting>: <note>"`` to ``notes`` unless it is empty or already there (a setting's runs at several
    policies or rates share their stand-in notes)."""
    line = f"{setting}: {note}"
    if note and line not in notes:
        notes.append(line)


def fmt(value: Any, digits: int = 2) -> str:
    """Numbers for markdown: fixed digits, '-' for missing/NaN, ints as ints."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def md_cell(text: str) -> str:
    """``text`` as one cell of a markdown table: ``|`` escaped, line breaks as spaces (a plugin policy named
    ``a|b``, as ``capacity -p`` names it, split its row of capacity.md into one cell more than the header)."""
    return " ".join(str(text).splitlines()).replace("|", "\\|")


def to_markdown(df: pl.DataFrame, digits: int = 2) -> str:
    """A GitHub markdown table of ``df``."""
    head = "| " + " | ".join(md_cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(md_cell(fmt(v, digits)) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join([head, sep, *rows])


def write_table(df: pl.DataFrame, out_dir: Path, stem: str, title: str, notes: Sequence[str] = (),
                digits: int = 2) -> list[Path]:
    """Write ``<stem>.md`` (title, table, notes) and ``<stem>.csv``; returns both paths."""
    md = out_dir / f"{stem}.md"
    csv = out_dir / f"{stem}.csv"
    text = f"# {title}\n\n{to_markdown(df, digits)}\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    atomic.write_text(md, text)
    atomic.write_csv(csv, df)
    return [md, csv]


def ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not b or (isinstance(b, float) and math.isnan(b)):
        return float("nan")
    return float(a) / float(b)


def ratio_row(setting: str, name: str, ours: float, paper: float, gated: bool) -> dict[str, Any]:
    """A ratio comparison row; ``gated`` ratios must land within :data:`RATIO_TOLERANCE` of the paper's."""
    rel = ours / paper - 1.0 if paper and not math.isnan(paper) and not math.isnan(ours) else float("nan")
    return {
        "setting": setting, "ratio": name, "ours": ours, "paper": paper, "ours/paper - 1": rel,
        "within_15pct": (abs(rel) <= RATIO_TOLERANCE) if gated and not math.isnan(rel) else None,
    }


def ratio_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"setting": pl.Utf8, "ratio": pl.Utf8, "ours": pl.Float64, "paper": pl.Float64,
                                      "ours/paper - 1": pl.Float64, "within_15pct": pl.Boolean})
